//! The operator's first start and the way back in, with the real binary as a child process:
//! the gatehouse environment of `docker-compose.yml` exactly (empty bootstrap values
//! included) gives a ready server and an admin token; a stale bootstrap file is never reused
//! or overwritten (the start fails, nothing is created); `gatehouse admin recover` makes a
//! fresh admin on a database whose admin credentials are lost.
//!
//! Runs on SQLite, and on PostgreSQL in CI's PostgreSQL pass. Needs the server binary
//! (`cargo build -p gatehouse-server`; CI builds it first and sets
//! `GATEHOUSE_TEST_REQUIRE_PG_FAULTS=1`, which turns a missing binary into a failure).

use base64::Engine;
use gatehouse_tests::process::{free_port, run, start};
use gatehouse_tests::{Value, fresh_pg_database, server_binary};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The `environment:` block of the `gatehouse` service in `docker-compose.yml`, with
/// `${VAR:-default}` and `${VAR:?message}` resolved the way compose resolves them when the
/// variable is not set (`:?` gets `required`).
fn compose_environment() -> anyhow::Result<BTreeMap<String, String>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docker-compose.yml");
    let text = std::fs::read_to_string(&path)?;
    let mut env = BTreeMap::new();
    let (mut in_service, mut in_env) = (false, false);
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if indent == 2 {
            in_service = trimmed == "gatehouse:";
            in_env = false;
        } else if in_service && indent == 4 {
            in_env = trimmed == "environment:";
        } else if in_service && in_env && indent == 6 {
            let (key, value) = trimmed
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("not `KEY: value`: {trimmed}"))?;
            let value = value.trim();
            let resolved = match value.strip_prefix("${").and_then(|v| v.strip_suffix('}')) {
                Some(expr) => match (expr.split_once(":-"), expr.split_once(":?")) {
                    (Some((_, default)), _) => default.to_owned(),
                    (_, Some(_)) => "required".to_owned(),
                    _ => String::new(),
                },
                None => value.to_owned(),
            };
            env.insert(key.trim().to_owned(), resolved);
        }
    }
    anyhow::ensure!(
        !env.is_empty(),
        "no gatehouse environment in {}",
        path.display()
    );
    Ok(env)
}

/// The compose environment, made local: this test's database (PostgreSQL in the PostgreSQL
/// pass), loopback ports, a data directory, a master key; Redis as CI provides it or unset
/// (empty counts as unset). Everything else exactly as the compose file says.
async fn local_environment(
    data: &Path,
) -> anyhow::Result<(
    BTreeMap<String, String>,
    Option<Box<dyn std::any::Any + Send>>,
)> {
    let mut env = compose_environment()?;
    let (public, admin) = (free_port()?, free_port()?);
    let (url, guard): (String, Option<Box<dyn std::any::Any + Send>>) =
        match fresh_pg_database().await? {
            Some((url, guard)) => (url, Some(Box::new(guard))),
            None => (format!("sqlite://{}/gh.db?mode=rwc", data.display()), None),
        };
    env.insert("GATEHOUSE_DATABASE_URL".into(), url);
    env.insert(
        "GATEHOUSE_REDIS_URL".into(),
        std::env::var("GATEHOUSE_TEST_REDIS_URL").unwrap_or_default(),
    );
    env.insert(
        "GATEHOUSE_SECRET_KEY".into(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
    );
    env.insert(
        "GATEHOUSE_PUBLIC_ADDR".into(),
        format!("127.0.0.1:{public}"),
    );
    env.insert("GATEHOUSE_ADMIN_ADDR".into(), format!("127.0.0.1:{admin}"));
    env.insert(
        "GATEHOUSE_ISSUER".into(),
        format!("http://127.0.0.1:{public}"),
    );
    env.insert(
        "GATEHOUSE_ADMIN_URL".into(),
        format!("http://127.0.0.1:{admin}"),
    );
    env.insert("GATEHOUSE_DATA_DIR".into(), data.display().to_string());
    Ok((env, guard))
}

/// An admin token from a credentials file the server wrote; checks the file is 0600.
async fn admin_token_from(file: &Path, public: &str) -> anyhow::Result<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file)?.permissions().mode() & 0o777;
        anyhow::ensure!(mode == 0o600, "{} has mode {mode:o}", file.display());
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let (id, secret) = (
        doc["client_id"].as_str().unwrap_or_default(),
        doc["client_secret"].as_str().unwrap_or_default(),
    );
    let reply = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(format!("{public}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    anyhow::ensure!(reply.status().is_success(), "token: {}", reply.status());
    let body: Value = reply.json().await?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn create_client(admin: &str, token: &str, name: &str) -> anyhow::Result<u16> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .build()?
        .post(format!("http://{admin}/admin/v1/clients"))
        .bearer_auth(token)
        .json(&serde_json::json!({"name": name}))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_compose_environment_starts_a_server_with_an_admin() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let compose = compose_environment()?;
    assert_eq!(
        compose
            .get("GATEHOUSE_BOOTSTRAP_CLIENT_ID")
            .map(String::as_str),
        Some("")
    );
    assert_eq!(
        compose
            .get("GATEHOUSE_BOOTSTRAP_CLIENT_SECRET")
            .map(String::as_str),
        Some("")
    );
    let data = tempfile::tempdir()?;
    let (env, _pg) = local_environment(data.path()).await?;
    let server = start(&bin, &env, &[]).await?;
    let file = data.path().join("gatehouse.bootstrap.json");
    let token = admin_token_from(&file, &server.public).await?;
    let admin = env["GATEHOUSE_ADMIN_ADDR"].clone();
    assert_eq!(create_client(&admin, &token, "First").await?, 201);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_bootstrap_file_is_never_reused_and_recover_gets_back_in() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let data = tempfile::tempdir()?;
    let (env, _pg) = local_environment(data.path()).await?;
    // A bootstrap file left from an earlier database: the first start refuses, names the
    // file, and creates no admin (so no secret is lost); the old file is untouched.
    let file = data.path().join("gatehouse.bootstrap.json");
    std::fs::write(&file, b"{\"client_id\":\"from-an-old-database\"}")?;
    let refused = start(&bin, &env, &[]).await;
    let Err(why) = refused else {
        anyhow::bail!("started although a stale bootstrap file exists");
    };
    assert!(
        why.to_string().contains("gatehouse.bootstrap.json"),
        "{why}"
    );
    assert_eq!(
        std::fs::read_to_string(&file)?,
        "{\"client_id\":\"from-an-old-database\"}"
    );
    // Removed: the start works and writes a fresh file.
    std::fs::remove_file(&file)?;
    let server = start(&bin, &env, &[]).await?;
    let first = admin_token_from(&file, &server.public).await?;
    let admin = env["GATEHOUSE_ADMIN_ADDR"].clone();
    assert_eq!(create_client(&admin, &first, "Before").await?, 201);
    // Every admin credential lost: `gatehouse admin recover`, against the database of the
    // running server, makes a new admin and says where its credentials are.
    std::fs::remove_file(&file)?;
    let out: PathBuf = data.path().join("recovered.json");
    let (ok, text) = run(
        &bin,
        &env,
        &["admin", "recover", "--output", &out.display().to_string()],
    )?;
    assert!(ok, "{text}");
    assert!(text.contains(&out.display().to_string()), "{text}");
    let doc = std::fs::read_to_string(&out)?;
    let secret = serde_json::from_str::<Value>(&doc)?["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        !secret.is_empty() && !text.contains(&secret),
        "the secret is in the file only"
    );
    let recovered = admin_token_from(&out, &server.public).await?;
    assert_eq!(create_client(&admin, &recovered, "After").await?, 201);
    // Audited.
    let audit: Value = reqwest::Client::builder()
        .no_proxy()
        .build()?
        .get(format!("http://{admin}/admin/v1/audit-events?limit=1000"))
        .bearer_auth(&recovered)
        .send()
        .await?
        .json()
        .await?;
    assert!(audit.to_string().contains("admin.recover"), "{audit}");
    // The recovery file is never overwritten either.
    let (ok, text) = run(
        &bin,
        &env,
        &["admin", "recover", "--output", &out.display().to_string()],
    )?;
    assert!(!ok && text.contains("already exists"), "{text}");
    Ok(())
}
