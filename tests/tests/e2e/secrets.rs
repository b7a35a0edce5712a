//! Secret rotation with and without grace, and secret hygiene: no secret in any admin read,
//! log line or database column.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_tests::{Value, captured_logs, hex_lower, json, random_base62, spawn_app, str_field};

#[tokio::test(flavor = "multi_thread")]
async fn secret_refresh_without_grace_retires_the_old_secret_at_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (id, old) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    // Warm the verified-secret cache with the old secret.
    app.token_basic(id, old, &[]).await?.expect_status(200);

    let reply = app
        .admin_post(
            &format!("/access-profiles/{}/secret", fx.profile_id()),
            &json!({}),
        )
        .await?;
    assert!(reply.status.is_success(), "{reply:?}");
    let body = reply.json();
    let new = str_field(&body, "oauth_client_secret")?.to_owned();
    app.record_secret(&new);
    assert_ne!(new, old, "a new secret");
    assert!(new.len() >= 32, "{body}");
    if let Some(cid) = body["oauth_client_id"].as_str() {
        assert_eq!(cid, id, "the public id stays");
    }

    app.token_basic(id, old, &[])
        .await?
        .expect_error(401, "invalid_client");
    app.token_post(id, old, &[])
        .await?
        .expect_error(401, "invalid_client");
    app.token_basic(id, &new, &[]).await?.expect_status(200);
    app.token_post(id, &new, &[]).await?.expect_status(200);

    // The profile read still never shows the secret.
    let got = app
        .admin_get(&format!("/access-profiles/{}", fx.profile_id()))
        .await?;
    assert!(!got.text().contains(&new), "{got:?}");

    // Unknown profile.
    let r = app
        .admin_post("/access-profiles/prf_nope/secret", &json!({}))
        .await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    // A negative grace is a validation error.
    let r = app
        .admin_post(
            &format!("/access-profiles/{}/secret", fx.profile_id()),
            &json!({"grace_seconds": -5}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_refresh_with_grace_keeps_both_secrets_valid() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (id, old) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    app.token_basic(id, old, &[]).await?.expect_status(200);

    let reply = app
        .admin_post(
            &format!("/access-profiles/{}/secret", fx.profile_id()),
            &json!({"grace_seconds": 60}),
        )
        .await?;
    assert!(reply.status.is_success(), "{reply:?}");
    let new = str_field(&reply.json(), "oauth_client_secret")?.to_owned();
    app.record_secret(&new);
    assert_ne!(new, old);

    app.token_basic(id, old, &[]).await?.expect_status(200);
    app.token_post(id, old, &[]).await?.expect_status(200);
    app.token_basic(id, &new, &[]).await?.expect_status(200);
    app.token_post(id, &new, &[]).await?.expect_status(200);

    // A second refresh without grace ends the grace of every older secret.
    let reply = app
        .admin_post(
            &format!("/access-profiles/{}/secret", fx.profile_id()),
            &json!({}),
        )
        .await?;
    assert!(reply.status.is_success(), "{reply:?}");
    let newest = str_field(&reply.json(), "oauth_client_secret")?.to_owned();
    app.record_secret(&newest);
    app.token_basic(id, &newest, &[]).await?.expect_status(200);
    app.token_basic(id, &new, &[])
        .await?
        .expect_error(401, "invalid_client");
    app.token_basic(id, old, &[])
        .await?
        .expect_error(401, "invalid_client");
    Ok(())
}

/// True when `haystack` contains `secret` as text or as (lower-case) hex.
/// Whether `secret` shows in `haystack` in clear or in a common encoding (hex, base64 with
/// and without padding, base64url, percent-encoding).
fn leaks(haystack: &str, secret: &str) -> bool {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let percent: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    haystack.contains(secret)
        || haystack.to_ascii_lowercase().contains(&hex_lower(secret))
        || haystack.contains(&STANDARD_NO_PAD.encode(secret))
        || haystack.contains(&URL_SAFE_NO_PAD.encode(secret))
        || (percent != secret && haystack.contains(&percent))
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_appear_in_reads_logs_or_the_database() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let admin_token = app.admin_token().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"custom_claims": {"tenant": "acme"}}),
        )
        .await?;
    // Tokens via both methods, a rotation with grace, a collection secret rotation.
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let reply = app
        .token_post(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?
        .expect_status(200);
    let post_token = reply.json()["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    app.record_secret(&gatehouse_tests::jwt_signature(&post_token));
    let rotated = app
        .admin_post(
            &format!("/access-profiles/{}/secret", fx.profile_id()),
            &json!({"grace_seconds": 30}),
        )
        .await?;
    assert!(rotated.status.is_success(), "{rotated:?}");
    let new_secret = str_field(&rotated.json(), "oauth_client_secret")?.to_owned();
    app.record_secret(&new_secret);
    app.access_token(&fx.oauth_client_id, &new_secret, &[])
        .await?;
    let col_rot = app
        .admin_post(
            &format!("/collections/{}/secret", fx.collection_id()),
            &json!({}),
        )
        .await?
        .expect_success();
    let col_secret = str_field(&col_rot.json(), "introspection_client_secret")?.to_owned();
    app.record_secret(&col_secret);
    let col_id = str_field(&fx.collection, "introspection_client_id")?.to_owned();
    // Failed attempts log something too; the attempted secret must not be logged either.
    let attempted = format!("attempted{}", random_base62(32));
    app.record_secret(&attempted);
    app.token_basic(&fx.oauth_client_id, &attempted, &[])
        .await?
        .expect_error(401, "invalid_client");
    // API keys: one on a `token` profile's creation and one more, both used.
    let key_profile = app
        .create_profile(
            fx.client_id(),
            &json!({"name": "keys", "auth_type": "token", "collections": [fx.collection_id()]}),
        )
        .await?;
    let first_key = str_field(&key_profile, "auth_token")?.to_owned();
    app.record_secret(&first_key);
    let second = app
        .admin_post(
            &format!(
                "/access-profiles/{}/api-keys",
                str_field(&key_profile, "id")?
            ),
            &json!({"name": "second"}),
        )
        .await?
        .expect_status(201)
        .json();
    let second_key = str_field(&second, "auth_token")?.to_owned();
    app.record_secret(&second_key);
    for key in [&first_key, &second_key] {
        let r = app
            .introspect_token(gatehouse_tests::Auth::Basic(&col_id, &col_secret), key)
            .await?;
        assert_eq!(r.json()["active"], true, "{r:?}");
    }

    let secrets = app.seen_secrets();
    assert!(
        secrets.len() >= 6,
        "bootstrap, introspection, client secrets and token signatures recorded: {}",
        secrets.len()
    );
    for s in &secrets {
        assert!(s.len() >= 20, "only real secrets are searched for: {s}");
    }
    // The Basic credentials as sent on the wire (a logged Authorization header shows these).
    let basic = |id: &str, secret: &str| STANDARD.encode(format!("{id}:{secret}"));
    let wire = [
        basic(&app.bootstrap_id, &app.bootstrap_secret),
        basic(&fx.oauth_client_id, &fx.oauth_client_secret),
        basic(&fx.oauth_client_id, &new_secret),
    ];

    // 1. Every admin read.
    let mut reads = Vec::new();
    for path in [
        "/collections".to_owned(),
        format!("/collections/{}", fx.collection_id()),
        "/clients".to_owned(),
        format!("/clients/{}", fx.client_id()),
        format!("/clients/{}/access-profiles", fx.client_id()),
        format!("/access-profiles/{}", fx.profile_id()),
        "/audit-events".to_owned(),
        "/audit-events?limit=1000".to_owned(),
    ] {
        let r = app.admin_get(&path).await?;
        assert_eq!(r.status.as_u16(), 200, "{path}: {r:?}");
        reads.push((path, r.text()));
    }
    // The built-in admin collection and the bootstrap client's profile(s) too.
    let clients = app
        .admin_get("/clients?limit=1000")
        .await?
        .expect_status(200)
        .json();
    for c in clients["items"].as_array().into_iter().flatten() {
        if let Some(cid) = c["id"].as_str() {
            let path = format!("/clients/{cid}/access-profiles");
            let r = app.admin_get(&path).await?.expect_status(200);
            reads.push((path, r.text()));
        }
    }
    for (path, body) in &reads {
        for s in &secrets {
            assert!(
                !leaks(body, s),
                "secret {s:.6}… appears in GET {path}: {body}"
            );
        }
        assert!(!body.contains(&admin_token), "admin token echoed in {path}");
    }

    // 2. Every log line (this process's, at TRACE level).
    let logs = captured_logs();
    assert!(
        logs.contains("gatehouse"),
        "log capture works: the servers' own log lines are in the buffer"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "the capture runs below INFO, where request details would show"
    );
    for s in &secrets {
        assert!(!leaks(&logs, s), "secret {s:.6}… appears in the logs");
    }
    for w in &wire {
        assert!(
            !logs.contains(w.as_str()),
            "a Basic Authorization header was logged"
        );
    }
    assert!(
        !logs.contains(&jwt_sig(&admin_token)),
        "admin bearer token logged"
    );
    assert!(!logs.contains(&jwt_sig(&token)), "access token logged");

    // 3. Every column of every table.
    let dump = app.db_dump().await?;
    // The dump really holds the registry (so the search below can fail).
    assert!(
        dump.contains(&fx.oauth_client_id),
        "dump reads the profile table"
    );
    assert!(
        dump.contains(str_field(&fx.collection, "name")?),
        "dump reads the collection table"
    );
    for s in &secrets {
        assert!(
            !leaks(&dump, s),
            "secret {s:.6}… stored in clear in the database"
        );
    }
    Ok(())
}

fn jwt_sig(token: &str) -> String {
    gatehouse_tests::jwt_signature(token)
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_secret_is_shown_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let col = app
        .create_collection("orders", "https://orders.example.com/", &["orders:read"])
        .await?;
    let first = str_field(&col, "introspection_client_secret")?.to_owned();
    let id = str_field(&col, "id")?;
    let r = app
        .admin_post(&format!("/collections/{id}/secret"), &json!({}))
        .await?;
    assert!(r.status.is_success(), "{r:?}");
    let body = r.json();
    let second = str_field(&body, "introspection_client_secret")?.to_owned();
    app.record_secret(&second);
    assert_ne!(first, second);
    assert_eq!(
        body["introspection_client_id"],
        col["introspection_client_id"]
    );
    let got = app
        .admin_get(&format!("/collections/{id}"))
        .await?
        .expect_status(200);
    assert!(
        !got.text().contains(&second) && !got.text().contains(&first),
        "{got:?}"
    );
    assert!(
        got.json()
            .get("introspection_client_secret")
            .is_none_or(Value::is_null)
    );
    Ok(())
}
