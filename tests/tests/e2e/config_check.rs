//! `gatehouse config check`: every setting given, where it came from (flag, environment, TOML
//! file) with secrets elided, then the effective configuration; durations with units; exit 1
//! with the reason for an invalid configuration.

use gatehouse_tests::process::run;
use gatehouse_tests::server_binary;
use std::collections::BTreeMap;

fn line<'a>(out: &'a str, setting: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(setting))
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread")]
async fn config_check_names_each_settings_source_and_elides_secrets() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(
        &file,
        "sweep_interval = \"10m\"\nmax_api_keys_per_profile = 7\n",
    )?;
    let key = "bWFzdGVyLWtleS1tYXN0ZXIta2V5LW1hc3Rlci1rZXkhIQ";
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("GATEHOUSE_CONFIG", file.display().to_string()),
        ("GATEHOUSE_CACHE_TTL", "15m".to_owned()),
        ("GATEHOUSE_SECRET_KEY", key.to_owned()),
        (
            "GATEHOUSE_DATABASE_URL",
            "postgres://gh:hunter2-password@127.0.0.1:1/gh".to_owned(),
        ),
        ("GATEHOUSE_DATA_DIR", dir.path().display().to_string()),
    ] {
        env.insert(k.to_owned(), v);
    }
    let (ok, out) = run(
        &bin,
        &env,
        &["config", "check", "--key-publish-ahead", "2h"],
    )?;
    assert!(ok, "{out}");
    let cache = line(&out, "--cache-ttl");
    assert!(
        cache.contains("env") && cache.contains("GATEHOUSE_CACHE_TTL") && cache.contains("15m"),
        "{cache}"
    );
    let publish = line(&out, "--key-publish-ahead");
    assert!(
        publish.contains("flag") && publish.contains("2h"),
        "{publish}"
    );
    let sweep = line(&out, "--sweep-interval");
    assert!(sweep.contains("file") && sweep.contains("10m"), "{sweep}");
    let keys = line(&out, "--max-api-keys-per-profile");
    assert!(keys.contains("file") && keys.contains('7'), "{keys}");
    let ttl = line(&out, "--max-token-ttl");
    assert!(ttl.contains("default"), "{ttl}");
    assert!(
        line(&out, "--secret-key").contains("[secret elided]"),
        "{out}"
    );
    // No secret anywhere in the output, the effective configuration included.
    assert!(
        !out.contains(key) && !out.contains("hunter2-password"),
        "{out}"
    );
    // The effective values, durations resolved.
    assert!(out.contains("effective configuration"), "{out}");
    assert!(out.contains("cache_ttl: 900s"), "{out}");
    assert!(out.contains("key_publish_ahead: 7200s"), "{out}");
    assert!(out.contains("sweep_interval: 600s"), "{out}");

    // Invalid: a bad duration is a usage error; an invalid value says why, exit 1.
    let mut bad = env.clone();
    bad.insert("GATEHOUSE_CACHE_TTL".into(), "soon".into());
    let (ok, out) = run(&bin, &bad, &["config", "check"])?;
    assert!(!ok && out.contains("not a duration"), "{out}");
    let mut bad = env.clone();
    bad.insert("GATEHOUSE_MAX_TOKEN_TTL".into(), "30s".into());
    let (ok, out) = run(&bin, &bad, &["config", "check"])?;
    assert!(!ok && out.contains("GATEHOUSE_MAX_TOKEN_TTL"), "{out}");
    Ok(())
}
