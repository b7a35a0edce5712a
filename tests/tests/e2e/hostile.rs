//! Hostile input (issue 6): oversized and dribbled requests, odd bodies and encodings,
//! repeated parameters, metacharacters, and hostile JWTs on every endpoint that reads one.
//! Every case must get a 4xx JSON error, or the answer the RFC defines (introspection and
//! revocation answer 200 to a bad token), never a 5xx, a panic or a hang; after each group
//! the server still serves a normal request. (The RFC 8725 signature cases — `alg: none`,
//! HS256 keyed with the public key, foreign keys, `jku`/`x5u` — are also in
//! `introspection.rs`, `jwt_profiles.rs` and `guard.rs`.)

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{
    Auth, Fixture, Reply, TestApp, assert_inactive, decode_jwt_unverified, json, spawn_app,
    spawn_app_with, str_field,
};
use reqwest::Method;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A 4xx answer whose body is a JSON object with a string `error`.
fn assert_4xx_json(r: &Reply, what: &str) {
    assert!(r.status.is_client_error(), "{what}: {r:?}");
    let body = r.json();
    assert!(body["error"].is_string(), "{what}: no JSON error: {r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.contains("application/json")),
        "{what}: {r:?}"
    );
}

/// The server still works: a normal token request succeeds.
async fn still_serving(app: &TestApp, fx: &Fixture) -> anyhow::Result<()> {
    app.token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?
        .expect_status(200);
    Ok(())
}

/// Send raw bytes on a fresh connection and read whatever comes back (bounded).
async fn raw_exchange(addr: &str, bytes: &[u8], limit: Duration) -> anyhow::Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    // The server may answer and close before everything is written; that is fine.
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn host_port(base: &str) -> String {
    base.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_and_headers_are_refused_cleanly() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;

    // Token endpoint: 64 KiB cap.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let r = app
        .token_raw(
            Some((&fx.oauth_client_id, &fx.oauth_client_secret)),
            big.clone(),
            &[],
        )
        .await?;
    assert_eq!(r.status.as_u16(), 413, "{r:?}");
    assert_4xx_json(&r, "token body over 64 KiB");
    // In the token endpoint's own error shape (RFC 6749 §5.2), not cacheable.
    let body = r.json();
    assert_eq!(body["error"], "invalid_request", "{r:?}");
    assert!(body["error_description"].is_string(), "{r:?}");
    assert_eq!(
        r.header("cache-control").as_deref(),
        Some("no-store"),
        "{r:?}"
    );
    // Introspection: the same cap.
    let r = app
        .oauth_raw("/oauth/introspect", fx.collection_basic(), &big)
        .await?;
    assert_eq!(r.status.as_u16(), 413, "{r:?}");
    assert_4xx_json(&r, "introspection body over 64 KiB");
    // Admin API: 1 MiB cap.
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(1100 * 1024));
    let r = app
        .admin_bytes(
            Method::POST,
            "/clients",
            "application/json",
            huge.into_bytes(),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 413, "{r:?}");
    assert_4xx_json(&r, "admin body over 1 MiB");
    // In the admin API's shape.
    assert!(r.json()["message"].is_string(), "{r:?}");

    // A request head far past the 64 KiB read buffer: hyper answers 431 and closes. (The
    // buffer grows in steps, so heads up to about 128 KiB still pass; 256 KiB never does.)
    let addr = host_port(&app.public);
    let head = format!(
        "GET /oauth/jwks HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(256 * 1024)
    );
    let got = raw_exchange(&addr, head.as_bytes(), Duration::from_secs(10)).await?;
    assert!(got.starts_with("HTTP/1.1 431"), "huge header: {got:.200}");
    // Very many small headers.
    let mut many = String::from("GET /oauth/jwks HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let got = raw_exchange(&addr, many.as_bytes(), Duration::from_secs(10)).await?;
    assert!(
        got.starts_with("HTTP/1.1 431") || got.starts_with("HTTP/1.1 400"),
        "500 headers: {got:.200}"
    );
    still_serving(&app, &fx).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_dribbling_its_headers_is_cut_off() -> anyhow::Result<()> {
    let app = spawn_app_with(|c| c.header_read_timeout = Duration::from_secs(1)).await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let addr = host_port(&app.public);
    let mut s = TcpStream::connect(&addr).await?;
    s.write_all(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\n")
        .await?;
    let started = Instant::now();
    // One byte every 200 ms: never a complete head.
    let dribble = async {
        for b in b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
            .cycle()
        {
            if s.write_all(&[*b]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // Meanwhile other clients are served.
    let others = async {
        for _ in 0..3 {
            still_serving(&app, &fx).await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        anyhow::Ok(())
    };
    let (cut, served) = tokio::join!(
        tokio::time::timeout(Duration::from_secs(10), dribble),
        others
    );
    served?;
    assert!(cut.is_ok(), "the slow connection was never closed");
    let elapsed = started.elapsed();
    assert!(
        elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}, header-read timeout 1 s"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_admin_bodies_get_json_errors() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "deeply nested arrays",
            "application/json",
            "[".repeat(100_000).into_bytes(),
        ),
        (
            "deeply nested objects",
            "application/json",
            "{\"a\":".repeat(50_000).into_bytes(),
        ),
        (
            "invalid UTF-8",
            "application/json",
            b"{\"name\":\"\xff\xfe\"}".to_vec(),
        ),
        (
            "NUL in a name",
            "application/json",
            b"{\"name\":\"a\\u0000b\"}".to_vec(),
        ),
        ("not JSON", "application/json", b"name=acme".to_vec()),
        (
            "wrong content type",
            "text/plain",
            b"{\"name\":\"acme\"}".to_vec(),
        ),
        ("a JSON array", "application/json", b"[]".to_vec()),
        (
            "a 600 KB name",
            "application/json",
            format!("{{\"name\":\"{}\"}}", "n".repeat(600_000)).into_bytes(),
        ),
        (
            "numbers for strings",
            "application/json",
            b"{\"name\":1e999}".to_vec(),
        ),
    ];
    for (what, ct, body) in cases {
        let r = app.admin_bytes(Method::POST, "/clients", ct, body).await?;
        assert_4xx_json(&r, what);
    }
    still_serving(&app, &fx).await
}

#[tokio::test(flavor = "multi_thread")]
async fn metacharacters_in_names_are_stored_verbatim() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for name in [
        "'; DROP TABLE clients; --",
        "<script>alert(1)</script>",
        "Robert\"); DELETE FROM access_profiles; --",
        "名前 🚀 \\ % _ ' \"",
    ] {
        let created = app.create_client(name).await?;
        assert_eq!(created["name"], name, "{created}");
        let id = str_field(&created, "id")?;
        let got = app
            .admin_get(&format!("/clients/{id}"))
            .await?
            .expect_status(200);
        assert_eq!(got.json()["name"], name);
        assert!(
            got.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{got:?}"
        );
    }
    // The tables are all still there.
    let list = app
        .admin_get("/clients?limit=100")
        .await?
        .expect_status(200);
    assert!(
        list.json()["items"]
            .as_array()
            .is_some_and(|a| a.len() >= 4)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_encodings_and_repeated_parameters() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let basic = Some((fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str()));

    // RFC 6749 §3.2: parameters MUST NOT be included more than once.
    for body in [
        "grant_type=client_credentials&grant_type=client_credentials",
        "grant_type=client_credentials&scope=orders:read&scope=orders:read",
    ] {
        let r = app.token_raw(basic, body.to_owned(), &[]).await?;
        r.expect_error(400, "invalid_request");
    }
    // Values that are not what they claim: an undecodable or NUL-carrying grant type, a stray
    // `%` or a truncated UTF-8 sequence in the scope (form decoding keeps a lone `%` as is).
    for body in [
        "grant_type=%FF%FE",
        "grant_type=client_credentials%00",
        "grant_type=client_credentials&scope=%",
        "grant_type=client_credentials&scope=%E2%82",
    ] {
        let r = app.token_raw(basic, body.to_owned(), &[]).await?;
        assert_eq!(r.status.as_u16(), 400, "{body}: {r:?}");
        assert!(
            matches!(
                r.error_code().as_str(),
                "invalid_request" | "unsupported_grant_type" | "invalid_scope"
            ),
            "{body}: {r:?}"
        );
    }
    // Raw invalid UTF-8 bytes in the body.
    let r = Reply::read(
        app.http
            .post(app.public_url("/oauth/token"))
            .basic_auth(&fx.oauth_client_id, Some(&fx.oauth_client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"grant_type=client_credentials&scope=\xff\xfe".to_vec())
            .send()
            .await?,
    )
    .await?;
    // Decoded lossily, the scope names nothing the profile grants.
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    assert!(
        matches!(r.error_code().as_str(), "invalid_request" | "invalid_scope"),
        "{r:?}"
    );
    // Out of order and unknown parameters are fine.
    app.token_raw(
        basic,
        "foo=bar&scope=orders:read&grant_type=client_credentials&zzz=1".to_owned(),
        &[],
    )
    .await?
    .expect_status(200);
    // A Basic header that is not base64, or whose parts are not UTF-8.
    for auth in ["Basic !!!", "Basic /w==", "Basic", "Bearer", "Basic Og=="] {
        let r = app
            .token_raw(
                None,
                "grant_type=client_credentials".to_owned(),
                &[("authorization", auth)],
            )
            .await?;
        assert_4xx_json(&r, auth);
    }
    // Introspection: a malformed request (a repeated parameter) is a 400 (RFC 7662 §2.3); a
    // token that is merely garbage (percent-decoding is lossy, as in every form parser) is
    // 200 inactive.
    for (body, malformed) in [
        ("token=%FF%FE", false),
        ("token=a&token=b", true),
        ("token=%", false),
    ] {
        let r = app
            .oauth_raw("/oauth/introspect", fx.collection_basic(), body)
            .await?;
        if malformed {
            assert_eq!(r.status.as_u16(), 400, "{body}: {r:?}");
            assert_4xx_json(&r, body);
        } else {
            assert_eq!(r.status.as_u16(), 200, "{body}: {r:?}");
            assert_eq!(r.json(), json!({"active": false}), "{body}: {r:?}");
        }
    }
    still_serving(&app, &fx).await
}

/// Compact JWS from a header and claims, with the given signature bytes.
fn jws(header: &serde_json::Value, claims: &serde_json::Value, sig: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_jwts_are_inactive_everywhere() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (header, claims) = decode_jwt_unverified(&token)?;
    let sig = token.rsplit('.').next().unwrap_or_default().to_owned();
    let real_sig = URL_SAFE_NO_PAD.decode(&sig)?;
    let kid = header["kid"].as_str().unwrap_or_default().to_owned();
    let now = chrono_now();

    let mut bad: Vec<(String, String)> = Vec::new();
    let mut with_header = |what: &str, h: serde_json::Value| {
        bad.push((what.to_owned(), jws(&h, &claims, &real_sig)));
    };
    with_header(
        "crit",
        json!({"alg": "ES256", "kid": kid, "typ": "at+jwt", "crit": ["exp"]}),
    );
    with_header("typ JWT", json!({"alg": "ES256", "kid": kid, "typ": "JWT"}));
    with_header("no typ", json!({"alg": "ES256", "kid": kid}));
    with_header(
        "nested JWT",
        json!({"alg": "ES256", "kid": kid, "typ": "at+jwt", "cty": "JWT"}),
    );
    for odd_kid in [
        "../../../../etc/passwd".to_owned(),
        "' OR 1=1 --".to_owned(),
        "k\u{0}id".to_owned(),
        "🔑".repeat(500),
        "k".repeat(20_000),
    ] {
        with_header(
            "odd kid",
            json!({"alg": "ES256", "kid": odd_kid, "typ": "at+jwt"}),
        );
    }
    with_header(
        "kid as an array",
        json!({"alg": "ES256", "kid": [kid, "x"], "typ": "at+jwt"}),
    );
    with_header(
        "jku/x5u/jwk to elsewhere",
        json!({"alg": "ES256", "kid": "attacker", "typ": "at+jwt",
               "jku": "http://127.0.0.1:1/jwks", "x5u": "http://127.0.0.1:1/c",
               "jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}}),
    );
    with_header("alg none", json!({"alg": "none", "typ": "at+jwt"}));
    with_header(
        "alg HS256",
        json!({"alg": "HS256", "kid": kid, "typ": "at+jwt"}),
    );
    with_header(
        "alg RS256",
        json!({"alg": "RS256", "kid": kid, "typ": "at+jwt"}),
    );
    with_header(
        "alg ES512",
        json!({"alg": "ES512", "kid": kid, "typ": "at+jwt"}),
    );

    // Claims the server would refuse even with a valid signature: expired, not yet valid,
    // another audience or issuer (the signature no longer matches either way).
    for (what, patch) in [
        ("expired", json!({"exp": now - 3600, "iat": now - 7200})),
        ("not yet valid", json!({"nbf": now + 3600})),
        ("wrong aud", json!({"aud": "https://elsewhere.example"})),
        ("wrong iss", json!({"iss": "https://evil.example"})),
    ] {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().into_iter().flatten() {
            c[k] = v.clone();
        }
        bad.push((what.to_owned(), jws(&header, &c, &real_sig)));
    }
    // A JWE (five parts) where a JWS is expected, a huge JWT, and junk shapes.
    bad.push((
        "JWE".to_owned(),
        "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.AAAA.BBBB.CCCC.DDDD".to_owned(),
    ));
    let mut fat = claims.clone();
    fat["pad"] = json!("x".repeat(40_000));
    bad.push(("40 KB JWT".to_owned(), jws(&header, &fat, &real_sig)));
    bad.push(("many dots".to_owned(), ".".repeat(5000)));
    bad.push(("base64 junk".to_owned(), format!("{sig}.{sig}.{sig}")));

    for (what, t) in &bad {
        let r = app.introspect_token(fx.collection_basic(), t).await?;
        assert_eq!(r.status.as_u16(), 200, "{what}: {r:?}");
        assert_inactive(&r);
        let r = app.revoke_token(fx.client_basic(), t).await?;
        assert_eq!(r.status.as_u16(), 200, "revoke {what}: {r:?}");
        // As a private_key_jwt client assertion (RFC 7523): a 4xx JSON error.
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_assertion_type={}&client_assertion={}",
            fx.oauth_client_id,
            "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer",
            t
        );
        let r = app.token_raw(None, body, &[]).await?;
        assert_4xx_json(&r, what);
    }
    // The genuine token still works, and no bad one was mistaken for it.
    let r = app.introspect_token(fx.collection_basic(), &token).await?;
    assert_eq!(r.json()["active"], true, "{r:?}");
    let r = app.introspect_token(Auth::None, &token).await?;
    assert_4xx_json(&r, "introspection without credentials");
    still_serving(&app, &fx).await
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Found by replaying the fuzz corpus on PostgreSQL: a NUL byte in a client id reached the
/// database, whose `text` cannot hold it, and the token endpoint answered 503. A NUL can name
/// nothing stored, so each of these is now the ordinary refusal — on SQLite and PostgreSQL
/// alike — and an assertion `jti` with a NUL is still remembered (a replay is refused).
#[tokio::test(flavor = "multi_thread")]
async fn nul_bytes_in_identifiers_are_ordinary_refusals() -> anyhow::Result<()> {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["n:read"], json!({})).await?;

    // Token endpoint: the id in the form and in Basic.
    let r = app
        .token_raw(
            None,
            "grant_type=client_credentials&client_id=gco_a%00b&client_secret=x".to_owned(),
            &[],
        )
        .await?;
    r.expect_error(401, "invalid_client");
    let r = app.token_basic("gco_a\0b", "secret", &[]).await?;
    r.expect_error(401, "invalid_client");
    // Introspection and revocation callers.
    let r = app
        .introspect_token(Auth::Basic("col\0x", "secret"), "t")
        .await?;
    r.expect_error(401, "invalid_client");
    let r = app
        .revoke_token(Auth::Basic("gco\0x", "secret"), "t")
        .await?;
    r.expect_error(401, "invalid_client");
    // Admin paths.
    for path in [
        "/clients/cli_%00",
        "/policies/pol_%00",
        "/access-profiles/prf_%00",
    ] {
        let r = app.admin_get(path).await?;
        assert_4xx_json(&r, path);
    }

    // A jwt profile: a consumer token whose `sub` has a NUL is inactive; a client assertion
    // whose `jti` has one works once and is refused as a replay.
    let client = app.create_client("Nul Inc").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({"name": "nul", "auth_type": "jwt", "jwt_method": "hmac",
                "collections": [fx.collection["id"]],
                "allowed_audiences": ["https://consumer.example"]}),
        )
        .await?;
    let id = str_field(&profile, "oauth_client_id")?.to_owned();
    let key = EncodingKey::from_secret(str_field(&profile, "jwt_secret")?.as_bytes());
    let now = chrono_now();
    let consumer = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": format!("{id}\0"), "aud": "https://consumer.example", "exp": now + 60}),
        &key,
    )?;
    let (cid, csecret) = gatehouse_tests::collection_credentials(&fx.collection)?;
    assert_inactive(
        &app.introspect_token(Auth::Basic(cid, csecret), &consumer)
            .await?,
    );
    let assertion = encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": id, "sub": id, "aud": app.public_url("/oauth/token"), "exp": now + 60,
            "jti": "a\0b"}),
        &key,
    )?;
    let form = [
        ("grant_type", "client_credentials"),
        (
            "client_assertion_type",
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        ("client_assertion", assertion.as_str()),
    ];
    app.token_form(None, &form, &[]).await?.expect_status(200);
    app.token_form(None, &form, &[])
        .await?
        .expect_error(401, "invalid_client");
    still_serving(&app, &fx).await
}

/// The status line of each HTTP answer in `raw`, in order (an answer starts right after the
/// previous body, which has no line end of its own).
fn status_lines(raw: &str) -> Vec<&str> {
    raw.match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| raw[at..].split("\r\n").next())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_oversized_body_gets_its_413_even_under_load() -> anyhow::Result<()> {
    // A server that answers 413 without reading the body leaves bytes unread, and the
    // kernel's reset can destroy the answer before the client reads it. Without the drain in
    // `body_guard.rs`, 16 clients × 100 such requests lost 277 of 1,600 answers here.
    let app = std::sync::Arc::new(spawn_app().await?);
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let pad = "a".repeat(70 * 1024);
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..16 {
        let app = app.clone();
        let body = format!("token=x&pad={pad}");
        let id = str_field(&fx.collection, "introspection_client_id")?.to_owned();
        let secret = str_field(&fx.collection, "introspection_client_secret")?.to_owned();
        let client = (fx.oauth_client_id.clone(), fx.oauth_client_secret.clone());
        tasks.spawn(async move {
            for i in 0..40 {
                let r = if (task + i) % 2 == 0 {
                    app.oauth_raw("/oauth/introspect", Auth::Basic(&id, &secret), &body)
                        .await
                } else {
                    app.token_raw(Some((&client.0, &client.1)), body.clone(), &[])
                        .await
                };
                let r = r.map_err(|e| anyhow::anyhow!("request {i} of task {task}: {e:#}"))?;
                assert_eq!(r.status.as_u16(), 413, "{r:?}");
                assert_4xx_json(&r, "oversized public body");
            }
            anyhow::Ok(())
        });
    }
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(1100 * 1024)).into_bytes();
    for task in 0..4 {
        let app = app.clone();
        let huge = huge.clone();
        tasks.spawn(async move {
            for i in 0..5 {
                let r = app
                    .admin_bytes(Method::POST, "/clients", "application/json", huge.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("admin request {i} of task {task}: {e:#}"))?;
                assert_eq!(r.status.as_u16(), 413, "{r:?}");
                assert_4xx_json(&r, "oversized admin body");
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    still_serving(&app, &fx).await
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_leave_the_connection_usable() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let addr = host_port(&app.public);
    let pad = "a".repeat(70 * 1024);

    // Declared length over the limit, then a second request on the same connection: the
    // body was read to its end, so the second request is parsed where it starts.
    let body = format!("grant_type=client_credentials&pad={pad}");
    let pipelined = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\n\r\n{body}\
         GET /oauth/jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let got = raw_exchange(&addr, pipelined.as_bytes(), Duration::from_secs(10)).await?;
    assert_eq!(
        status_lines(&got),
        ["HTTP/1.1 413 Payload Too Large", "HTTP/1.1 200 OK"],
        "{got:.400}"
    );
    assert!(got.contains("\"error\":\"invalid_request\""), "{got:.400}");

    // Chunked, no declared length: refused once the limit is passed, drained, same again.
    let mut chunked = String::from(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Transfer-Encoding: chunked\r\n\r\n",
    );
    for piece in body.as_bytes().chunks(8 * 1024) {
        chunked.push_str(&format!(
            "{:x}\r\n{}\r\n",
            piece.len(),
            String::from_utf8_lossy(piece)
        ));
    }
    chunked.push_str("0\r\n\r\nGET /oauth/jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let got = raw_exchange(&addr, chunked.as_bytes(), Duration::from_secs(10)).await?;
    assert_eq!(
        status_lines(&got),
        ["HTTP/1.1 413 Payload Too Large", "HTTP/1.1 200 OK"],
        "{got:.400}"
    );
    // A small chunked body is read as usual.
    let small = "grant_type=client_credentials";
    let creds = base64::engine::general_purpose::STANDARD
        .encode(format!("{}:{}", fx.oauth_client_id, fx.oauth_client_secret));
    let chunked_ok = format!(
        "POST /oauth/token HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {creds}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n{small}\r\n0\r\n\r\n",
        small.len()
    );
    let got = raw_exchange(&addr, chunked_ok.as_bytes(), Duration::from_secs(10)).await?;
    assert_eq!(status_lines(&got), ["HTTP/1.1 200 OK"], "{got:.400}");
    assert!(got.contains("\"access_token\""), "{got:.400}");

    // A client that waits for 100 Continue is refused from the header alone: no body sent.
    let expect = "POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 5000000\r\nExpect: 100-continue\r\n\r\n";
    let got = raw_exchange(&addr, expect.as_bytes(), Duration::from_secs(10)).await?;
    assert_eq!(
        status_lines(&got),
        ["HTTP/1.1 413 Payload Too Large"],
        "{got:.400}"
    );
    still_serving(&app, &fx).await
}
