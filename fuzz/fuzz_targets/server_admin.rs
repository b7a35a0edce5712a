//! `cargo fuzz run server_admin`: a real server on loopback, see
//! `gatehouse_tests::fuzzing::ServerHarness::admin`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse_tests::fuzzing::shared_harness().admin(data));
