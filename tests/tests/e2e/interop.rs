//! Real third-party clients against Gatehouse: Python's authlib (the most used OAuth client
//! library there) with its own RFC 7523 client authentication and defaults — `exp = iat +
//! 3600`, a 36-character `jti`, `aud` = the token endpoint — getting a token, introspecting it
//! and revoking it with the same authentication.
//!
//! Needs `python3` with `authlib` and `requests` (`pip install authlib requests`). Skipped with
//! a printed reason when they are missing, unless `GATEHOUSE_TEST_REQUIRE_AUTHLIB=1` (CI sets
//! it), which turns the skip into a failure.

use gatehouse_tests::{TestApp, Value, json, skip_unless_required, spawn_app, str_field};
use std::path::PathBuf;

const REQUIRE: &str = "GATEHOUSE_TEST_REQUIRE_AUTHLIB";

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/authlib_client.py")
}

/// Whether authlib can run here; an error when CI requires it and it cannot.
fn authlib_available() -> anyhow::Result<bool> {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_unless_required(REQUIRE, "python3 cannot import authlib and requests")?;
    }
    Ok(ok)
}

/// Runs the authlib client; its JSON report.
fn run_authlib(
    app: &TestApp,
    method: &str,
    client_id: &str,
    credential: &str,
) -> anyhow::Result<Value> {
    let output = std::process::Command::new("python3")
        .arg(script())
        .args([
            method,
            &app.public_url("/oauth/token"),
            &app.public_url("/oauth/introspect"),
            &app.public_url("/oauth/revoke"),
            client_id,
            credential,
        ])
        .env("NO_PROXY", "*")
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "authlib failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

async fn jwt_profile(app: &TestApp, extra: Value) -> anyhow::Result<(Value, Value)> {
    let collection = app
        .create_collection(
            "Interop API",
            "https://interop.example.com/api",
            &["interop:read"],
        )
        .await?;
    let client = app.create_client("Python Inc").await?;
    let mut body = json!({"name": "authlib", "auth_type": "jwt",
        "collections": [collection["id"]], "allowed_audiences": ["https://interop.example.com/api"]});
    if let (Some(o), Value::Object(e)) = (body.as_object_mut(), extra) {
        o.extend(e);
    }
    let profile = app.create_profile(str_field(&client, "id")?, &body).await?;
    Ok((collection, profile))
}

fn check_report(report: &Value, collection: &Value) -> anyhow::Result<()> {
    let token = &report["token"];
    assert!(token["access_token"].is_string(), "{report}");
    assert!(
        token["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{report}"
    );
    assert_eq!(token["scope"], "interop:read", "{report}");
    assert_eq!(report["introspection_status"], 200, "{report}");
    assert_eq!(report["introspection"]["active"], true, "{report}");
    assert_eq!(
        report["introspection"]["collections"],
        json!([collection["id"]]),
        "{report}"
    );
    assert_eq!(report["revoked_status"], 200, "{report}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_private_key_jwt_gets_introspects_and_revokes_a_token() -> anyhow::Result<()> {
    if !authlib_available()? {
        return Ok(());
    }
    let app = spawn_app().await?;
    let pair = josekit::jws::RS256.generate_key_pair(2048)?;
    let (collection, profile) = jwt_profile(
        &app,
        json!({"jwt_method": "rsa", "jwt_public_key": String::from_utf8(pair.to_pem_public_key())?}),
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let key_file = dir.path().join("client.pem");
    std::fs::write(&key_file, pair.to_pem_private_key())?;
    let client_id = str_field(&profile, "oauth_client_id")?.to_owned();
    let app_ref = &app;
    let report = tokio::task::block_in_place(|| {
        run_authlib(
            app_ref,
            "private_key_jwt",
            &client_id,
            &key_file.display().to_string(),
        )
    })?;
    check_report(&report, &collection)?;
    // Revoked by its own client: a collection now sees it inactive.
    let (id, secret) = gatehouse_tests::collection_credentials(&collection)?;
    let token = report["token"]["access_token"].as_str().unwrap_or_default();
    gatehouse_tests::assert_inactive(
        &app.introspect_token(gatehouse_tests::Auth::Basic(id, secret), token)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn authlib_client_secret_jwt_gets_introspects_and_revokes_a_token() -> anyhow::Result<()> {
    if !authlib_available()? {
        return Ok(());
    }
    let app = spawn_app().await?;
    let (collection, profile) = jwt_profile(&app, json!({"jwt_method": "hmac"})).await?;
    let secret = str_field(&profile, "jwt_secret")?.to_owned();
    app.record_secret(&secret);
    let client_id = str_field(&profile, "oauth_client_id")?.to_owned();
    let app_ref = &app;
    let report = tokio::task::block_in_place(|| {
        run_authlib(app_ref, "client_secret_jwt", &client_id, &secret)
    })?;
    check_report(&report, &collection)
}
