//! `cargo fuzz run token_request`: see `gatehouse_tests::fuzzing::token_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::token_request(data));
