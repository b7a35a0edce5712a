//! `cargo fuzz run ip_rule`: see `gatehouse_tests::fuzzing::ip_rule`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::ip_rule(data));
