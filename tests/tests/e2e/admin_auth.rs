//! The admin API is a protected resource: RFC 6750 bearer tokens with `gatehouse:admin`
//! (write) or `gatehouse:admin:read` (read), issued by the same token endpoint.

use gatehouse_tests::{Reply, TestApp, Value, json, scope_set, spawn_app, str_field};
use reqwest::Method;

#[track_caller]
fn assert_bearer_challenge(reply: &Reply) {
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        www.to_ascii_lowercase().starts_with("bearer"),
        "RFC 6750 challenge expected: {reply:?}"
    );
}

/// The built-in admin collection as listed by the admin API.
async fn builtin_collection(app: &TestApp) -> anyhow::Result<Value> {
    let (items, _) = app.admin_list_all("/collections", 1000).await?;
    items
        .into_iter()
        .find(|c| {
            c["scopes"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "gatehouse:admin"))
        })
        .ok_or_else(|| anyhow::anyhow!("the built-in admin collection is not listed"))
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_api_refuses_missing_and_wrong_tokens() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for (method, path) in [
        (Method::GET, "/collections"),
        (Method::GET, "/clients"),
        (Method::POST, "/collections"),
        (Method::GET, "/audit-events"),
    ] {
        let body = (method == Method::POST).then(|| json!({"name": "x"}));
        let none = app
            .admin_request_as(method.clone(), path, None, body.as_ref())
            .await?;
        assert_eq!(
            none.status.as_u16(),
            401,
            "{method} {path} without token: {none:?}"
        );
        assert_bearer_challenge(&none);

        let garbage = app
            .admin_request_as(method.clone(), path, Some("not-a-token"), body.as_ref())
            .await?;
        assert_eq!(garbage.status.as_u16(), 401, "{method} {path}: {garbage:?}");
        assert_bearer_challenge(&garbage);
        assert!(
            garbage
                .header("www-authenticate")
                .unwrap_or_default()
                .contains("invalid_token"),
            "RFC 6750 error=\"invalid_token\": {garbage:?}"
        );
    }
    // A well-formed JWT with a forged signature.
    let token = app.admin_token().await?;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let forged = parts.join(".");
    let r = app
        .admin_request_as(Method::GET, "/collections", Some(&forged), None)
        .await?;
    assert_eq!(r.status.as_u16(), 401, "{r:?}");
    // Basic credentials are not a bearer token.
    let r = Reply::read(
        app.http
            .get(app.api_url("/collections"))
            .basic_auth(&app.bootstrap_id, Some(&app.bootstrap_secret))
            .send()
            .await?,
    )
    .await?;
    assert_eq!(r.status.as_u16(), 401, "{r:?}");
    // The real token works (so the refusals above are about the token).
    app.admin_request_as(Method::GET, "/collections", Some(&token), None)
        .await?
        .expect_status(200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_admin_tokens_can_read_but_not_write() -> anyhow::Result<()> {
    let app = spawn_app().await?;

    // The bootstrap admin gets both admin scopes by default.
    let full = app.admin_token().await?;
    let (_, claims) = gatehouse_tests::decode_jwt_unverified(&full)?;
    let scopes = claims["scope"].as_str().map(scope_set).unwrap_or_default();
    assert!(scopes.contains("gatehouse:admin"), "{claims}");

    // 1. The bootstrap admin narrowing itself to the read scope.
    let narrowed = app
        .access_token(
            &app.bootstrap_id,
            &app.bootstrap_secret,
            &[("scope", "gatehouse:admin:read")],
        )
        .await?;
    check_read_only(&app, &narrowed).await?;

    // 2. A separate client whose profile is granted only gatehouse:admin:read.
    let builtin = builtin_collection(&app).await?;
    let aud = str_field(&builtin, "audience")?;
    assert!(
        aud.starts_with(&app.admin),
        "admin audience is the admin base URL: {builtin}"
    );
    let client = app.create_client("Auditor").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({
                "name": "read-only",
                "auth_type": "oauth2",
                "collections": [builtin["id"]],
                "scopes": ["gatehouse:admin:read"],
            }),
        )
        .await?;
    let id = str_field(&profile, "oauth_client_id")?;
    let secret = str_field(&profile, "oauth_client_secret")?;
    let reader = app.access_token(id, secret, &[]).await?;
    let (_, claims) = gatehouse_tests::decode_jwt_unverified(&reader)?;
    assert_eq!(claims["scope"], "gatehouse:admin:read", "{claims}");
    check_read_only(&app, &reader).await?;
    // It cannot ask for more than its profile allows.
    app.token_basic(id, secret, &[("scope", "gatehouse:admin")])
        .await?
        .expect_error(400, "invalid_scope");
    Ok(())
}

async fn check_read_only(app: &TestApp, token: &str) -> anyhow::Result<()> {
    app.admin_request_as(Method::GET, "/collections", Some(token), None)
        .await?
        .expect_status(200);
    app.admin_request_as(Method::GET, "/clients", Some(token), None)
        .await?
        .expect_status(200);
    let writes = [
        (
            Method::POST,
            "/collections",
            Some(json!({"name": "ro", "audience": "https://ro.example.com/", "scopes": []})),
        ),
        (
            Method::POST,
            "/clients",
            Some(json!({"name": "ro", "description": "d", "project": "p",
                        "contact": {"first_name": "a", "last_name": "b", "email": "a@b.example"}})),
        ),
    ];
    for (method, path, body) in writes {
        let r = app
            .admin_request_as(method.clone(), path, Some(token), body.as_ref())
            .await?;
        assert_eq!(r.status.as_u16(), 403, "read-only {method} {path}: {r:?}");
        assert_bearer_challenge(&r);
        assert!(
            r.header("www-authenticate")
                .unwrap_or_default()
                .contains("insufficient_scope"),
            "RFC 6750 error=\"insufficient_scope\": {r:?}"
        );
        assert_eq!(r.error_code(), "insufficient_scope", "{r:?}");
    }
    // Nothing was written.
    let clients = app
        .admin_get("/clients?limit=1000")
        .await?
        .expect_status(200)
        .json();
    assert!(
        !clients["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "ro"),
        "a refused write left a trace: {clients}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ordinary_client_tokens_are_not_admin_tokens() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    for (method, path) in [(Method::GET, "/collections"), (Method::GET, "/clients")] {
        let r = app
            .admin_request_as(method.clone(), path, Some(&token), None)
            .await?;
        // Not a token for the admin API's audience: RFC 6750 `invalid_token`, not 403.
        assert_eq!(
            r.status.as_u16(),
            401,
            "{method} {path} with a non-admin token: {r:?}"
        );
        assert_bearer_challenge(&r);
    }
    let r = app
        .admin_request_as(
            Method::POST,
            "/collections",
            Some(&token),
            Some(&json!({"name": "evil", "audience": "https://evil.example.com/", "scopes": []})),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 401, "{r:?}");
    Ok(())
}
