//! The resource-server guard end to end: a real Gatehouse, a real axum resource server
//! protected by `gatehouse-guard`, real HTTP between all three.

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use gatehouse_guard::{Guard, GuardConfig, IpNet, LocalVerification, Principal};
use gatehouse_tests::{Value, collection_credentials, json, spawn_app, str_field};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

async fn whoami(Extension(p): Extension<Arc<Principal>>) -> String {
    format!("{}|{}", p.client_id, p.scopes.join(" "))
}

/// Start a resource server with two routes: GET /read needs orders:read, GET /write needs
/// orders:write.
async fn resource_server(guard: &Guard) -> anyhow::Result<String> {
    let app = Router::new()
        .route(
            "/read",
            get(whoami).route_layer(guard.require(&["orders:read"])),
        )
        .route(
            "/write",
            get(whoami).route_layer(guard.require(&["orders:write"])),
        );
    serve(app).await
}

/// Serve `app` on a random loopback port with the peer address available to the guard.
async fn serve(app: Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });
    Ok(format!("http://{addr}"))
}

/// A stand-in for Gatehouse's introspection endpoint that answers every call with one status
/// and body, and counts the calls.
struct StubIntrospection {
    endpoint: String,
    calls: Arc<AtomicUsize>,
}

impl StubIntrospection {
    async fn start(status: u16, body: Value) -> anyhow::Result<Self> {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let status = StatusCode::from_u16(status)?;
        let app = Router::new().route(
            "/oauth/introspect",
            post(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                let body = body.clone();
                async move { (status, Json(body)) }
            }),
        );
        let base = serve(app).await?;
        Ok(Self {
            endpoint: format!("{base}/oauth/introspect"),
            calls,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// A guard (default caching) that asks this stub.
    fn guard(&self) -> anyhow::Result<Guard> {
        Ok(Guard::new(GuardConfig::new(
            &self.endpoint,
            "grs_stub",
            "stub-secret",
        ))?)
    }
}

/// GET `url` with `token` as a Bearer credential: the status and the `WWW-Authenticate`.
async fn get_with(url: &str, token: &str) -> anyhow::Result<(u16, String)> {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await?;
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    Ok((r.status().as_u16(), www))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_protects_a_resource_server() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read", "orders:write"],
            json!({"scopes": ["orders:read"]}),
        )
        .await?;
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let mut config = GuardConfig::new(app.public_url("/oauth/introspect"), rs_id, rs_secret);
    // No positive caching here, so revocation must show at once.
    config.max_cache_ttl = Duration::ZERO;
    config.negative_cache_ttl = Duration::ZERO;
    let guard = Guard::new(config)?;
    let rs = resource_server(&guard).await?;
    let http = reqwest::Client::new();

    // No credential: 401 with a bare Bearer challenge (RFC 6750 §3.1).
    let r = http.get(format!("{rs}/read")).send().await?;
    assert_eq!(r.status(), 401);
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(www.starts_with("Bearer"), "{www}");

    // Garbage: 401 invalid_token.
    let r = http
        .get(format!("{rs}/read"))
        .bearer_auth("not-a-token")
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(www.contains("invalid_token"), "{www}");

    // A real token with orders:read passes /read, and the handler sees the principal.
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let r = http
        .get(format!("{rs}/read"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let body = r.text().await?;
    assert_eq!(body, format!("{}|orders:read", fx.oauth_client_id));

    // …but not /write: 403 insufficient_scope naming the scope.
    let r = http
        .get(format!("{rs}/write"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        www.contains("insufficient_scope") && www.contains("orders:write"),
        "{www}"
    );

    // Revoked by its owner: refused at once.
    let revoked = app
        .revoke_token(
            gatehouse_tests::Auth::Basic(&fx.oauth_client_id, &fx.oauth_client_secret),
            &token,
        )
        .await?;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let r = http
        .get(format!("{rs}/read"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_guard_accepts_api_keys_and_passes_the_consumer_address() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("Stock", "https://stock.example.com/api", &["orders:read"])
        .await?;
    let (rs_id, rs_secret) = collection_credentials(&collection)?;
    let client = app.create_client("ACME stock").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({"name": "keys", "auth_type": "token", "collections": [collection["id"]]}),
        )
        .await?;
    let key = str_field(&profile, "auth_token")?.to_owned();
    app.record_secret(&key);
    let guard = Guard::new(GuardConfig::new(
        app.public_url("/oauth/introspect"),
        rs_id,
        rs_secret,
    ))?;
    let rs = resource_server(&guard).await?;
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{rs}/read"))
        .header("x-api-key", &key)
        .send()
        .await?;
    assert_eq!(r.status(), 200);

    // Deny the consumer's address (the guard passes it as client_ip): refused.
    let deny = app
        .admin_patch(
            &format!("/access-profiles/{}", str_field(&profile, "id")?),
            &json!({"ip_rules": {"default_access": "allow", "allow": [], "deny": ["127.0.0.1"]}}),
        )
        .await?;
    assert!(deny.status.is_success(), "{deny:?}");
    // The active answer above was cached for at most its gatehouse_cache_ttl; use a fresh
    // guard so the test does not wait for it.
    let (rs_id, rs_secret) = collection_credentials(&collection)?;
    let fresh = Guard::new(GuardConfig::new(
        app.public_url("/oauth/introspect"),
        rs_id,
        rs_secret,
    ))?;
    let rs2 = resource_server(&fresh).await?;
    let r = http
        .get(format!("{rs2}/read"))
        .header("x-api-key", &key)
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    Ok(())
}

/// Local mode: Gatehouse JWTs are verified with the JWKS, without an introspection call per
/// request — and, as documented, a revocation is not seen until `exp`.
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_verifies_gatehouse_jwts_locally() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read", "orders:write"],
            json!({"scopes": ["orders:read"]}),
        )
        .await?;
    let other = app.oauth_fixture(&["stock:read"], json!({})).await?;
    // Introspection credentials that do not work: any introspection call would fail with
    // 503, so a 200 proves the token was verified locally.
    let mut config = GuardConfig::new(
        app.public_url("/oauth/introspect"),
        "grs_not_a_real_collection",
        "wrong",
    );
    config.max_cache_ttl = Duration::ZERO;
    config.negative_cache_ttl = Duration::ZERO;
    config.local = Some(LocalVerification::new(&app.issuer, &fx.audience));
    let guard = Guard::new(config)?;
    let rs = resource_server(&guard).await?;
    let http = reqwest::Client::new();

    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let get = |path: &'static str, token: String| {
        let http = http.clone();
        let rs = rs.clone();
        async move {
            http.get(format!("{rs}{path}"))
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    };
    assert_eq!(get("/read", token.clone()).await?, 200);
    assert_eq!(get("/write", token.clone()).await?, 403);

    // A token for another collection's audience: refused locally.
    let foreign = app
        .access_token(&other.oauth_client_id, &other.oauth_client_secret, &[])
        .await?;
    assert_eq!(get("/read", foreign).await?, 401);

    // A tampered signature, alg none, and a wrong typ: refused.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut sig = parts[2].clone().into_bytes();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    parts[2] = String::from_utf8(sig)?;
    assert_eq!(get("/read", parts.join(".")).await?, 401);
    let claims = token.split('.').nth(1).unwrap_or("");
    let none_header = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        br#"{"alg":"none","typ":"at+jwt"}"#,
    );
    assert_eq!(get("/read", format!("{none_header}.{claims}.")).await?, 401);

    // Documented trade-off: a revoked token still passes a local-mode guard until exp.
    let revoked = app
        .revoke_token(
            gatehouse_tests::Auth::Basic(&fx.oauth_client_id, &fx.oauth_client_secret),
            &token,
        )
        .await?;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(get("/read", token.clone()).await?, 200);

    // An API key is not a JWT: it goes to introspection, which refuses the guard's bad
    // credentials: 503.
    assert_eq!(
        get("/read", "ghk_notarealkey".to_owned()).await?,
        503,
        "non-JWT credentials are introspected"
    );
    Ok(())
}

/// A policy refusal reaches the consumer as 429 with `Retry-After`; under the limit the
/// introspection answer is never reused (`gatehouse_cache_ttl: 0`), so every call counts.
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_turns_a_policy_refusal_into_429() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let policy = app
        .admin_post(
            "/policies",
            &json!({"name": "two a minute", "rate_limit": {"requests": 2, "per": "minute"}}),
        )
        .await?
        .expect_status(201)
        .json();
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": policy["id"]}))
        .await?;
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    // Positive answers may be cached for a minute — but not these.
    let guard = Guard::new(GuardConfig::new(
        app.public_url("/oauth/introspect"),
        rs_id,
        rs_secret,
    ))?;
    let rs = resource_server(&guard).await?;
    let http = reqwest::Client::new();
    // The token request itself is one use of the profile: one introspection is left.
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let r = http
        .get(format!("{rs}/read"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{rs}/read"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 429, "the second call is over the limit");
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    Ok(())
}

/// A credential over 16 KiB (the longest token Gatehouse verifies) is refused by the guard
/// itself as `invalid_token`: it is never sent — Gatehouse would answer 413 to one over its
/// 64 KiB body limit, which the guard used to report as an outage (503).
#[tokio::test(flavor = "multi_thread")]
async fn the_guard_refuses_oversized_credentials_without_asking() -> anyhow::Result<()> {
    let stub = StubIntrospection::start(200, json!({"active": false})).await?;
    let guard = stub.guard()?;
    let rs = resource_server(&guard).await?;
    let max = 16 * 1024;

    let (status, www) = get_with(&format!("{rs}/read"), &"a".repeat(max + 1)).await?;
    assert_eq!(status, 401);
    assert!(www.contains("invalid_token"), "{www}");
    assert_eq!(
        stub.calls(),
        0,
        "an oversized credential is not introspected"
    );
    // At the limit it is still Gatehouse's to judge.
    let (status, _) = get_with(&format!("{rs}/read"), &"b".repeat(max)).await?;
    assert_eq!(status, 401);
    assert_eq!(stub.calls(), 1, "a credential of 16 KiB is introspected");

    // Against a real Gatehouse: over its body limit, still an invalid token, not an outage.
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let real = Guard::new(GuardConfig::new(
        app.public_url("/oauth/introspect"),
        rs_id,
        rs_secret,
    ))?;
    let rs = resource_server(&real).await?;
    let (status, www) = get_with(&format!("{rs}/read"), &"c".repeat(70 * 1024)).await?;
    assert_eq!(status, 401, "{www}");
    assert!(www.contains("invalid_token"), "{www}");
    Ok(())
}

/// A 4xx from Gatehouse about the request (400, 404, 413, 422…) means the credential cannot
/// be valid: 401 `invalid_token`, cached like an inactive answer. A 401 or 403 (the guard's
/// own credentials refused) or a 429 (the guard itself throttled) is an outage: 503, never
/// cached.
#[tokio::test(flavor = "multi_thread")]
async fn a_4xx_from_gatehouse_is_an_invalid_token_unless_it_refuses_the_guard() -> anyhow::Result<()>
{
    for status in [400, 404, 413, 422] {
        let stub = StubIntrospection::start(status, json!({"error": "invalid_request"})).await?;
        let rs = resource_server(&stub.guard()?).await?;
        for _ in 0..2 {
            let (got, www) = get_with(&format!("{rs}/read"), "some-token").await?;
            assert_eq!(got, 401, "Gatehouse answered {status}");
            assert!(www.contains("invalid_token"), "{status}: {www}");
        }
        assert_eq!(stub.calls(), 1, "{status}: cached like an inactive answer");
    }
    for status in [401, 403, 429] {
        let stub = StubIntrospection::start(status, json!({"error": "invalid_client"})).await?;
        let rs = resource_server(&stub.guard()?).await?;
        for _ in 0..2 {
            let (got, _) = get_with(&format!("{rs}/read"), "some-token").await?;
            assert_eq!(got, 503, "Gatehouse answered {status}");
        }
        assert_eq!(stub.calls(), 2, "{status}: an outage is not cached");
    }
    Ok(())
}

/// The remaining count of the policy the handler's principal was introspected under.
async fn remaining(Extension(p): Extension<Arc<Principal>>) -> String {
    p.introspection["rate_limit"]["remaining"].to_string()
}

/// Two guard layers stacked on one route (one for the router, one for the route) introspect
/// once: the inner layer reuses the principal the outer one resolved and checks only its own
/// scopes. Each introspection counts against the consumer's rate limit, so a second one
/// would charge it twice.
#[tokio::test(flavor = "multi_thread")]
async fn stacked_guard_layers_introspect_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let policy = app
        .admin_post(
            "/policies",
            &json!({"name": "a hundred a minute", "rate_limit": {"requests": 100, "per": "minute"}}),
        )
        .await?
        .expect_status(201)
        .json();
    let fx = app
        .oauth_fixture(
            &["orders:read", "orders:write"],
            json!({"policy_id": policy["id"], "scopes": ["orders:read"]}),
        )
        .await?;
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let guard = Guard::new(GuardConfig::new(
        app.public_url("/oauth/introspect"),
        rs_id,
        rs_secret,
    ))?;
    let rs = serve(
        Router::new()
            .route("/single", get(remaining))
            .route(
                "/stacked",
                get(remaining).route_layer(guard.require(&["orders:read"])),
            )
            .route(
                "/more",
                get(remaining).route_layer(guard.require(&["orders:write"])),
            )
            .layer(guard.require(&["orders:read"])),
    )
    .await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let http = reqwest::Client::new();
    let left = |path: &'static str| {
        let (http, rs, token) = (http.clone(), rs.clone(), token.clone());
        async move {
            let r = http
                .get(format!("{rs}{path}"))
                .bearer_auth(token)
                .send()
                .await?;
            anyhow::ensure!(r.status() == 200, "{path}: {}", r.status());
            Ok::<i64, anyhow::Error>(r.text().await?.parse()?)
        }
    };
    let single = left("/single").await?;
    let stacked = left("/stacked").await?;
    assert_eq!(
        single - stacked,
        1,
        "two stacked layers spend one introspection, not two"
    );
    // The inner layer still enforces its own scopes, on the principal the outer one found.
    let r = http
        .get(format!("{rs}/more"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    let www = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(www.contains("orders:write"), "{www}");
    assert_eq!(
        left("/single").await?,
        stacked - 2,
        "/more introspected once"
    );
    Ok(())
}

/// A principal is reused only by layers of the guard that resolved it: a guard for another
/// collection stacked inside still asks Gatehouse, which says a token for the first
/// collection is not active for it.
#[tokio::test(flavor = "multi_thread")]
async fn a_principal_is_not_reused_by_another_guard() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let orders = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let stock = app.oauth_fixture(&["stock:read"], json!({})).await?;
    let guard_for = |fx: &gatehouse_tests::Fixture| -> anyhow::Result<Guard> {
        let (id, secret) = collection_credentials(&fx.collection)?;
        Ok(Guard::new(GuardConfig::new(
            app.public_url("/oauth/introspect"),
            id,
            secret,
        ))?)
    };
    let (outer, inner) = (guard_for(&orders)?, guard_for(&stock)?);
    let rs = serve(
        Router::new()
            .route("/stock", get(whoami).route_layer(inner.require(&[])))
            .layer(outer.require(&[])),
    )
    .await?;
    let token = app
        .access_token(&orders.oauth_client_id, &orders.oauth_client_secret, &[])
        .await?;
    let (status, www) = get_with(&format!("{rs}/stock"), &token).await?;
    assert_eq!(status, 401, "{www}");
    assert!(www.contains("invalid_token"), "{www}");
    Ok(())
}

/// A reverse proxy in front of `upstream`, as nginx with `proxy_add_x_forwarded_for`: it
/// forwards GETs with the `X-API-Key`, appending its peer to `X-Forwarded-For`.
async fn forwarding_proxy(upstream: String) -> anyhow::Result<String> {
    let http = reqwest::Client::new();
    let forward =
        move |ConnectInfo(peer): ConnectInfo<SocketAddr>, uri: Uri, headers: HeaderMap| {
            let (http, upstream) = (http.clone(), upstream.clone());
            async move {
                let chain = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
                    Some(before) => format!("{before}, {}", peer.ip()),
                    None => peer.ip().to_string(),
                };
                let mut request = http
                    .get(format!("{upstream}{uri}"))
                    .header("x-forwarded-for", chain);
                if let Some(key) = headers.get("x-api-key") {
                    request = request.header("x-api-key", key);
                }
                match request.send().await {
                    Ok(r) => (r.status(), r.text().await.unwrap_or_default()).into_response(),
                    Err(_) => StatusCode::BAD_GATEWAY.into_response(),
                }
            }
        };
    serve(Router::new().fallback(forward)).await
}

/// Behind a reverse proxy the socket peer is the proxy. With the proxy in
/// `trusted_proxies`, the guard sends Gatehouse the consumer's address from
/// `X-Forwarded-For` (right to left, as Gatehouse reads it), so a profile's IP rules admit
/// the consumer they name and no one else; without it, every consumer looks like the proxy.
#[tokio::test(flavor = "multi_thread")]
async fn behind_a_trusted_proxy_the_guard_passes_the_forwarded_address() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("Stock", "https://stock.example.com/api", &["orders:read"])
        .await?;
    let client = app.create_client("ACME stock").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({"name": "keys", "auth_type": "token", "collections": [collection["id"]],
                    "ip_rules": {"default_access": "deny", "allow": ["203.0.113.7"]}}),
        )
        .await?;
    let key = str_field(&profile, "auth_token")?.to_owned();
    app.record_secret(&key);
    let guard = |trusted: &[&str]| -> anyhow::Result<Guard> {
        let (id, secret) = collection_credentials(&collection)?;
        let mut config = GuardConfig::new(app.public_url("/oauth/introspect"), id, secret);
        config.trusted_proxies = trusted
            .iter()
            .map(|n| n.parse::<IpNet>())
            .collect::<Result<_, _>>()?;
        Ok(Guard::new(config)?)
    };
    let behind_trusting =
        forwarding_proxy(resource_server(&guard(&["127.0.0.1/32"])?).await?).await?;
    let behind_plain = forwarding_proxy(resource_server(&guard(&[])?).await?).await?;
    let http = reqwest::Client::new();
    let status = |base: &str, forwarded: &str| {
        let request = http
            .get(format!("{base}/read"))
            .header("x-api-key", &key)
            .header("x-forwarded-for", forwarded);
        async move { Ok::<u16, anyhow::Error>(request.send().await?.status().as_u16()) }
    };

    // The chain the guard sees is "203.0.113.7, 127.0.0.1" from the proxy at 127.0.0.1.
    assert_eq!(status(&behind_trusting, "203.0.113.7").await?, 200);
    // A consumer prepending an address gains nothing: the nearest untrusted hop decides.
    assert_eq!(
        status(&behind_trusting, "203.0.113.7, 198.51.100.9").await?,
        401
    );
    // A malformed hop: the whole header is ignored, and the proxy is not allowed.
    assert_eq!(status(&behind_trusting, "203.0.113.7, junk").await?, 401);
    // Without trusted proxies the header is ignored: every consumer is the proxy.
    assert_eq!(status(&behind_plain, "203.0.113.7").await?, 401);
    Ok(())
}
