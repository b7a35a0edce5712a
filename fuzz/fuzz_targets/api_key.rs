//! `cargo fuzz run api_key`: see `gatehouse_tests::fuzzing::api_key`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::api_key(data));
