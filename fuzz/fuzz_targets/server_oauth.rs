//! `cargo fuzz run server_oauth`: a real server on loopback, see
//! `gatehouse_tests::fuzzing::ServerHarness::oauth`.
#![no_main]

use std::sync::OnceLock;

use gatehouse_tests::fuzzing::ServerHarness;

static HARNESS: OnceLock<ServerHarness> = OnceLock::new();

fn harness() -> &'static ServerHarness {
    HARNESS.get_or_init(|| {
        // No log capture: the test harness would keep every line in memory.
        let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new());
        match ServerHarness::start() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("cannot start the server: {e:#}");
                std::process::exit(2)
            }
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness().oauth(data));
