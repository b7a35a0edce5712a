//! The restore drill: back the database up with `gatehouse backup` while the server serves
//! under load, wipe the database, `gatehouse restore` it, start again — and a token minted
//! before the backup still verifies and introspects active, while what was written after the
//! backup is gone. SQLite (online `VACUUM INTO`) here; PostgreSQL (`pg_dump` / `pg_restore`)
//! in CI's PostgreSQL pass.

use base64::Engine;
use gatehouse_tests::process::{free_port, run, start};
use gatehouse_tests::{Value, fresh_pg_database, random_base62, server_binary, unique};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

async fn admin_token(
    http: &reqwest::Client,
    public: &str,
    id: &str,
    secret: &str,
) -> anyhow::Result<String> {
    let body: Value = http
        .post(format!("{public}/oauth/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "gatehouse:admin"),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: &str,
    body: Value,
) -> anyhow::Result<Value> {
    Ok(http
        .post(url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backup_taken_under_load_restores_and_old_tokens_stay_valid() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let data = tempfile::tempdir()?;
    let pg = fresh_pg_database().await?;
    let (public_port, admin_port) = (free_port()?, free_port()?);
    let (admin_id, admin_secret) = (format!("gco_{}", random_base62(22)), random_base62(43));
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let db_url = match &pg {
        Some((url, _)) => url.clone(),
        None => format!("sqlite://{}/gh.db?mode=rwc", data.path().display()),
    };
    for (k, v) in [
        ("GATEHOUSE_DATABASE_URL", db_url.clone()),
        ("GATEHOUSE_PUBLIC_ADDR", format!("127.0.0.1:{public_port}")),
        ("GATEHOUSE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}")),
        (
            "GATEHOUSE_ISSUER",
            format!("http://127.0.0.1:{public_port}"),
        ),
        (
            "GATEHOUSE_ADMIN_URL",
            format!("http://127.0.0.1:{admin_port}"),
        ),
        ("GATEHOUSE_DATA_DIR", data.path().display().to_string()),
        ("GATEHOUSE_BOOTSTRAP_CLIENT_ID", admin_id.clone()),
        ("GATEHOUSE_BOOTSTRAP_CLIENT_SECRET", admin_secret.clone()),
        (
            "GATEHOUSE_SECRET_KEY",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>()),
        ),
        ("GATEHOUSE_LOG", "warn".to_owned()),
    ] {
        env.insert(k.to_owned(), v);
    }
    let http = reqwest::Client::builder().no_proxy().build()?;
    let public = format!("http://127.0.0.1:{public_port}");
    let admin = format!("http://127.0.0.1:{admin_port}/admin/v1");

    let server = start(&bin, &env, &[]).await?;
    let token = admin_token(&http, &public, &admin_id, &admin_secret).await?;
    let collection = post(
        &http,
        format!("{admin}/collections"),
        &token,
        serde_json::json!({"name": unique("Orders"), "audience": format!("https://{}.example.com/", unique("orders")), "scopes": [{"name": format!("{}:read", unique("o"))}]}),
    )
    .await?;
    let client = post(
        &http,
        format!("{admin}/clients"),
        &token,
        serde_json::json!({"name": unique("ACME")}),
    )
    .await?;
    let profile = post(
        &http,
        format!("{admin}/clients/{}/access-profiles", client["id"].as_str().unwrap_or_default()),
        &token,
        serde_json::json!({"name": "batch", "auth_type": "oauth2", "collections": [collection["id"]]}),
    )
    .await?;
    let (cid, csecret) = (
        profile["oauth_client_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        profile["oauth_client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    );
    let minted: Value = http
        .post(format!("{public}/oauth/token"))
        .basic_auth(&cid, Some(&csecret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let before = minted["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();

    // Load while the backup runs: token requests and registry writes.
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, served, http, public, admin, token) = (
            stop.clone(),
            served.clone(),
            http.clone(),
            public.clone(),
            admin.clone(),
            token.clone(),
        );
        let (cid, csecret) = (cid.clone(), csecret.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let t = http
                    .post(format!("{public}/oauth/token"))
                    .basic_auth(&cid, Some(&csecret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await;
                let w = http
                    .post(format!("{admin}/clients"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({"name": format!("load-{n}-{}", unique("c"))}))
                    .send()
                    .await;
                if t.is_ok_and(|r| r.status().is_success())
                    && w.is_ok_and(|r| r.status().is_success())
                {
                    served.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let file = data.path().join("gatehouse.backup");
    let bin2 = bin.clone();
    let env2 = env.clone();
    let file2 = file.clone();
    let (ok, output) = tokio::task::spawn_blocking(move || {
        run(
            &bin2,
            &env2,
            &["backup", file2.to_str().unwrap_or_default()],
        )
    })
    .await??;
    assert!(ok, "backup under load failed: {output}");
    let during = served.load(Ordering::Relaxed);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    load.await?;
    assert!(
        during > 0 && served.load(Ordering::Relaxed) > during,
        "the server served while backing up"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file)?.permissions().mode() & 0o777,
            0o600
        );
    }
    // A backup never overwrites.
    let (ok, output) = run(&bin, &env, &["backup", file.to_str().unwrap_or_default()])?;
    assert!(!ok && output.contains("exists"), "{output}");

    // Written after the backup: must be gone after the restore.
    let late = post(
        &http,
        format!("{admin}/clients"),
        &token,
        serde_json::json!({"name": unique("after-backup")}),
    )
    .await?;
    let late_id = late["id"].as_str().unwrap_or_default().to_owned();
    drop(server);

    // Wipe.
    match &pg {
        None => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(data.path().join(format!("gh.db{suffix}")));
            }
        }
        Some((url, _)) => {
            let (ok, output) = run_psql(url, "DROP SCHEMA public CASCADE; CREATE SCHEMA public;")?;
            assert!(ok, "wipe: {output}");
        }
    }
    let (ok, output) = run(&bin, &env, &["restore", file.to_str().unwrap_or_default()])?;
    assert!(ok, "restore failed: {output}");

    let _server = start(&bin, &env, &[]).await?;
    let token = admin_token(&http, &public, &admin_id, &admin_secret).await?;
    // The token minted before the backup verifies (same keys) and introspects active.
    let seen: Value = http
        .post(format!("{public}/oauth/introspect"))
        .bearer_auth(&token)
        .form(&[("token", before.as_str())])
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(seen["active"], true, "{seen}");
    let gone = http
        .get(format!("{admin}/clients/{late_id}"))
        .bearer_auth(&token)
        .send()
        .await?
        .status();
    assert_eq!(
        gone, 404,
        "a client written after the backup survived the restore"
    );
    Ok(())
}

/// Run SQL with psql against `url` (password through the environment).
fn run_psql(url: &str, sql: &str) -> anyhow::Result<(bool, String)> {
    let parsed = url::Url::parse(url)?;
    let out = std::process::Command::new("psql")
        .env("PGHOST", parsed.host_str().unwrap_or("localhost"))
        .env("PGPORT", parsed.port().unwrap_or(5432).to_string())
        .env("PGUSER", parsed.username())
        .env("PGPASSWORD", parsed.password().unwrap_or_default())
        .env("PGDATABASE", parsed.path().trim_start_matches('/'))
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()?;
    Ok((
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}
