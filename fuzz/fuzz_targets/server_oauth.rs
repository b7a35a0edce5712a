//! `cargo fuzz run server_oauth`: a real server on loopback, see
//! `gatehouse_tests::fuzzing::ServerHarness::oauth`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::shared_harness().oauth(data));
