//! Response headers: the admin listener's security headers, and CORS on the public listener
//! (discovery and the JWKS open to any origin by default; the token endpoint only to the
//! configured origins; introspection never).

use gatehouse_server::config::CorsOrigins;
use gatehouse_tests::{Reply, TestApp, json, spawn_app, spawn_app_with};

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> anyhow::Result<Reply> {
    Reply::read(
        app.http
            .request(reqwest::Method::OPTIONS, app.public_url(path))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
            .await?,
    )
    .await
}

async fn get_with_origin(app: &TestApp, path: &str, origin: &str) -> anyhow::Result<Reply> {
    Reply::read(
        app.http
            .get(app.public_url(path))
            .header("origin", origin)
            .send()
            .await?,
    )
    .await
}

async fn token_with_origin(
    app: &TestApp,
    id: &str,
    secret: &str,
    origin: &str,
) -> anyhow::Result<Reply> {
    Reply::read(
        app.http
            .post(app.public_url("/oauth/token"))
            .header("origin", origin)
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_listener_sends_security_headers() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let ok = app.admin_get("/clients").await?;
    assert_eq!(ok.status.as_u16(), 200, "{ok:?}");
    let unauthenticated = Reply::read(app.http.get(app.api_url("/clients")).send().await?).await?;
    assert_eq!(unauthenticated.status.as_u16(), 401, "{unauthenticated:?}");
    let missing = app.admin_get("/clients/cli_nope").await?;
    assert_eq!(missing.status.as_u16(), 404, "{missing:?}");
    for r in [&ok, &unauthenticated, &missing] {
        assert_eq!(
            r.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(r.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(r.header("referrer-policy").as_deref(), Some("no-referrer"));
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        assert!(r.header("x-request-id").is_some(), "{r:?}");
        // The admin API is not for browsers on other origins.
        assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_and_jwks_are_open_to_any_origin_by_default() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
        "/oauth/jwks",
    ] {
        let r = get_with_origin(&app, path, "https://spa.example").await?;
        assert_eq!(r.status.as_u16(), 200, "{path}: {r:?}");
        assert_eq!(
            r.header("access-control-allow-origin").as_deref(),
            Some("*"),
            "{path}"
        );
        assert!(r.header("access-control-allow-credentials").is_none());
        let p = preflight(&app, path, "https://spa.example", "GET").await?;
        assert!(p.status.is_success(), "{path}: {p:?}");
        assert_eq!(
            p.header("access-control-allow-origin").as_deref(),
            Some("*")
        );
        let methods = p.header("access-control-allow-methods").unwrap_or_default();
        assert!(
            methods.contains("GET") && !methods.contains("POST"),
            "{methods}"
        );
    }

    // By default the token endpoint is closed to browsers: no CORS header on the answer,
    // and a preflight is not approved.
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let r = token_with_origin(
        &app,
        &fx.oauth_client_id,
        &fx.oauth_client_secret,
        "https://spa.example",
    )
    .await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    let p = preflight(&app, "/oauth/token", "https://spa.example", "POST").await?;
    assert!(p.header("access-control-allow-origin").is_none(), "{p:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_endpoint_admits_only_configured_origins() -> anyhow::Result<()> {
    let app = spawn_app_with(|c| {
        c.cors_token_origins = CorsOrigins::List(vec!["https://console.example".to_owned()]);
        c.cors_discovery_origins = CorsOrigins::None;
    })
    .await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;

    let p = preflight(&app, "/oauth/token", "https://console.example", "POST").await?;
    assert!(p.status.is_success(), "{p:?}");
    assert_eq!(
        p.header("access-control-allow-origin").as_deref(),
        Some("https://console.example")
    );
    let allowed = p
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    let r = token_with_origin(
        &app,
        &fx.oauth_client_id,
        &fx.oauth_client_secret,
        "https://console.example",
    )
    .await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://console.example")
    );
    // Errors carry the header too, so the page can read the RFC 6749 error body.
    let bad = token_with_origin(
        &app,
        &fx.oauth_client_id,
        "wrong",
        "https://console.example",
    )
    .await?;
    bad.expect_error(401, "invalid_client");
    assert_eq!(
        bad.header("access-control-allow-origin").as_deref(),
        Some("https://console.example")
    );

    // Another origin, even a look-alike, gets nothing.
    for other in [
        "https://evil.example",
        "https://console.example.evil.example",
        "http://console.example",
    ] {
        let r =
            token_with_origin(&app, &fx.oauth_client_id, &fx.oauth_client_secret, other).await?;
        assert!(r.header("access-control-allow-origin").is_none(), "{other}");
    }
    // Introspection is for resource servers only, whatever the configuration.
    let p = preflight(&app, "/oauth/introspect", "https://console.example", "POST").await?;
    assert!(p.header("access-control-allow-origin").is_none(), "{p:?}");
    // Discovery was closed by the configuration.
    let r = get_with_origin(&app, "/oauth/jwks", "https://console.example").await?;
    assert_eq!(r.status.as_u16(), 200);
    assert!(r.header("access-control-allow-origin").is_none(), "{r:?}");
    Ok(())
}

#[test]
fn cors_origins_are_validated() {
    let parse = |items: &[&str]| {
        CorsOrigins::parse(
            &items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
            "X",
        )
    };
    assert_eq!(parse(&[]).ok(), Some(CorsOrigins::None));
    assert_eq!(parse(&[""]).ok(), Some(CorsOrigins::None));
    assert_eq!(parse(&["*"]).ok(), Some(CorsOrigins::Any));
    assert_eq!(
        parse(&["https://a.example", " http://localhost:3000 "]).ok(),
        Some(CorsOrigins::List(vec![
            "https://a.example".to_owned(),
            "http://localhost:3000".to_owned()
        ]))
    );
    for bad in [
        &["*", "https://a.example"][..],
        &["https://a.example/"],
        &["https://a.example/path"],
        &["a.example"],
        &["ftp://a.example"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

/// Request ids: a short, plain `X-Request-Id` from the client is kept and echoed; a long or
/// odd one is replaced by one the server makes; either way the id is in the request's log
/// lines (the tracing span carries it).
#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_plain_bounded_and_logged() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let get = |id: String| {
        let app = &app;
        async move {
            Reply::read(
                app.http
                    .get(app.public_url("/oauth/jwks"))
                    .header("x-request-id", id)
                    .send()
                    .await?,
            )
            .await
        }
    };
    let plain = format!("trace-{}", gatehouse_tests::random_base62(12));
    let r = get(plain.clone()).await?.expect_status(200);
    assert_eq!(r.header("x-request-id").as_deref(), Some(plain.as_str()));
    for hostile in [
        "a".repeat(65),
        "x".repeat(10_000),
        "has space".to_owned(),
        "semi;colon".to_owned(),
        "quote\"d".to_owned(),
    ] {
        let r = get(hostile.clone()).await?.expect_status(200);
        let echoed = r.header("x-request-id").unwrap_or_default();
        assert_ne!(echoed, hostile, "a hostile id is not echoed");
        assert_eq!(echoed.len(), 36, "a server-made UUID: {echoed}");
    }
    // Logged with the request.
    let logs = gatehouse_tests::captured_logs();
    assert!(
        logs.contains(&format!("request_id={plain}")),
        "the request id is in the request's log lines"
    );
    Ok(())
}
