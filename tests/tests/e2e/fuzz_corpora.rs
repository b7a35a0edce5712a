//! Replays the hand-written seeds (`fuzz/seeds/<target>/`), the committed fuzz corpora
//! (`fuzz/corpus/<target>/`) and every minimised crash (`fuzz/regressions/<target>/`) through the very bodies `cargo fuzz` runs
//! (`gatehouse_tests::fuzzing`), so each finding stays fixed and the corpora stay meaningful
//! on every `cargo test`, without a fuzzer installed.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use gatehouse_tests::fuzzing::{self, ServerHarness};

/// Every input stored for `target`: seeds, corpus, regressions.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut out = Vec::new();
    for dir in ["seeds", "corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((path, data));
        }
    }
    assert!(
        out.len() >= 10,
        "fuzz/seeds and fuzz/corpus hold {} inputs for {target}; they are committed with the code",
        out.len()
    );
    out
}

fn replay(target: &str, body: impl Fn(&[u8])) {
    for (path, data) in inputs(target) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&data)));
        assert!(result.is_ok(), "{target}: {} fails again", path.display());
    }
}

#[test]
fn token_request_corpus() {
    replay("token_request", fuzzing::token_request);
}

#[test]
fn ip_rule_corpus() {
    replay("ip_rule", fuzzing::ip_rule);
}

#[test]
fn api_key_corpus() {
    replay("api_key", fuzzing::api_key);
}

#[test]
fn server_oauth_corpus() -> anyhow::Result<()> {
    let harness = ServerHarness::start()?;
    replay("server_oauth", |d| harness.oauth(d));
    // The corpus must still get past authentication, not only collect refusals (placeholders
    // like `{exp}` keep the signed seeds valid).
    let reached = harness.reached();
    eprintln!("reached: {reached:?}");
    assert!(reached.tokens.load(Ordering::Relaxed) >= 3, "{reached:?}");
    assert!(reached.active.load(Ordering::Relaxed) >= 3, "{reached:?}");
    harness.finish()
}

#[test]
fn server_admin_corpus() -> anyhow::Result<()> {
    let harness = ServerHarness::start()?;
    replay("server_admin", |d| harness.admin(d));
    let reached = harness.reached();
    eprintln!("reached: {reached:?}");
    assert!(
        reached.admin_writes.load(Ordering::Relaxed) >= 3,
        "{reached:?}"
    );
    assert!(
        reached.admin_refusals.load(Ordering::Relaxed) >= 3,
        "{reached:?}"
    );
    harness.finish()
}
