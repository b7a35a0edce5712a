//! Issue 4 acceptance: policies (rate limit, quota across a restart, shared limits through
//! Redis, Redis down), failed-authentication throttling without argon2, and usage counters.

use gatehouse_tests::{
    Auth, Reply, TestApp, Value, assert_active, collection_credentials, json, pg_database_or_skip,
    random_base62, redis_url_or_skip, spawn_app, spawn_app_with, str_field,
};
use std::time::{Duration, Instant};

async fn policy(app: &TestApp, body: Value) -> anyhow::Result<String> {
    let reply = app.admin_post("/policies", &body).await?.expect_status(201);
    Ok(str_field(&reply.json(), "id")?.to_owned())
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_have_full_crud_and_attach_to_profiles() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let id = policy(
        &app,
        json!({"name": "std", "rate_limit": {"requests": 10, "per": "second"}, "quota": {"requests": 1000, "per": "day"}}),
    )
    .await?;
    app.admin_post("/policies", &json!({"name": "none"}))
        .await?
        .expect_error(422, "validation_failed");
    app.admin_post(
        "/policies",
        &json!({"name": "zero", "rate_limit": {"requests": 0, "per": "second"}}),
    )
    .await?
    .expect_error(422, "validation_failed");
    app.admin_post(
        "/policies",
        &json!({"name": "std", "quota": {"requests": 1, "per": "month"}}),
    )
    .await?
    .expect_error(409, "conflict");
    let list = app.admin_get("/policies").await?.expect_status(200).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    let patched = app
        .admin_patch(&format!("/policies/{id}"), &json!({"quota": null}))
        .await?
        .expect_status(200)
        .json();
    assert!(patched["quota"].is_null(), "{patched}");
    assert_eq!(patched["rate_limit"]["requests"], 10);
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    assert_eq!(fx.profile["policy_id"], json!(id));
    let used = app.admin_get(&format!("/policies/{id}")).await?.json();
    assert_eq!(used["profiles"], 1);
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_error(409, "conflict");
    let unknown = app
        .admin_patch(
            &format!("/access-profiles/{}", str_field(&fx.profile, "id")?),
            &json!({"policy_id": "pol_nope"}),
        )
        .await?;
    assert_eq!(unknown.status, 422, "{unknown:?}");
    assert!(unknown.text().contains("policy_id"));
    app.admin_patch(
        &format!("/access-profiles/{}", str_field(&fx.profile, "id")?),
        &json!({"policy_id": null}),
    )
    .await?
    .expect_status(200);
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_status(204);
    Ok(())
}

/// 5 per minute: five tokens, the sixth 429 with Retry-After 12 and the RateLimit fields;
/// after Retry-After a call works again. Introspection is counted and refused the same way.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_refuses_the_sixth_call_and_recovers() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let id = policy(
        &app,
        json!({"name": "five", "rate_limit": {"requests": 5, "per": "minute"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    let mut token = String::new();
    for i in 0..5 {
        let r = app
            .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
            .await?
            .expect_status(200);
        assert_eq!(
            r.header("ratelimit-policy").as_deref(),
            Some("\"gatehouse\";q=5;w=60")
        );
        let remaining = r.header("ratelimit").unwrap_or_default();
        assert!(
            remaining.starts_with(&format!("\"gatehouse\";r={};t=", 4 - i)),
            "call {i}: {remaining}"
        );
        token = str_field(&r.json(), "access_token")?.to_owned();
    }
    let refused = app
        .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    refused.expect_error(429, "rate_limited");
    let wait = retry_after(&refused);
    assert!((11..=13).contains(&wait), "Retry-After {wait}");
    assert!(refused.header("ratelimit").is_some());
    // Introspection by the collection is a use too: refused now, with the denial member.
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let denied = app
        .introspect_token(Auth::Basic(rs_id, rs_secret), &token)
        .await?
        .expect_status(200)
        .json();
    assert_eq!(denied["active"], false);
    assert_eq!(denied["gatehouse_denial"]["reason"], "rate_limited");
    assert!(
        denied["gatehouse_denial"]["retry_after"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    assert_eq!(denied.as_object().map(|o| o.len()), Some(2), "{denied}");
    // An admin's look is neither counted nor limited.
    let admin = app.admin_token().await?;
    assert_active(&app.introspect_token(Auth::Bearer(&admin), &token).await?);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let again = app
        .introspect_token(Auth::Basic(rs_id, rs_secret), &token)
        .await?;
    let answer = assert_active(&again);
    assert_eq!(answer["rate_limit"]["limit"], 5);
    assert_eq!(answer["rate_limit"]["remaining"], 0);
    assert_eq!(answer["gatehouse_cache_ttl"], 0);
    Ok(())
}

/// A quota of 3 a day holds across a restart (counters are flushed at shutdown).
#[tokio::test(flavor = "multi_thread")]
async fn a_quota_holds_across_a_restart() -> anyhow::Result<()> {
    let mut app = spawn_app().await?;
    let id = policy(
        &app,
        json!({"name": "three", "quota": {"requests": 3, "per": "day"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    for _ in 0..2 {
        app.token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
            .await?
            .expect_status(200);
    }
    app.restart().await?;
    app.token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?
        .expect_status(200);
    let refused = app
        .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    refused.expect_error(429, "quota_exceeded");
    let wait = retry_after(&refused);
    assert!(
        (1..=86_400).contains(&wait),
        "Retry-After {wait} = until UTC midnight"
    );
    Ok(())
}

/// Redis unreachable: `open` falls back to the in-memory limiter, `closed` refuses every
/// limited request; profiles without a policy are untouched either way.
#[tokio::test(flavor = "multi_thread")]
async fn redis_down_fails_open_or_closed_as_configured() -> anyhow::Result<()> {
    for closed in [false, true] {
        let app = spawn_app_with(move |cfg| {
            cfg.redis_url = Some("redis://127.0.0.1:1".to_owned());
            if closed {
                cfg.ratelimit_failure = gatehouse_registry::limits::FailureMode::Closed;
            }
        })
        .await?;
        let id = policy(
            &app,
            json!({"name": "five", "rate_limit": {"requests": 5, "per": "minute"}}),
        )
        .await?;
        let limited = app
            .oauth_fixture(&["a:read"], json!({"policy_id": id}))
            .await?;
        let free = app.oauth_fixture(&["b:read"], json!({})).await?;
        let mut ok = 0;
        for _ in 0..6 {
            let r = app
                .token_basic(&limited.oauth_client_id, &limited.oauth_client_secret, &[])
                .await?;
            if r.status == 200 {
                ok += 1;
            } else {
                r.expect_error(429, "rate_limited");
            }
        }
        assert_eq!(ok, if closed { 0 } else { 5 }, "closed={closed}");
        app.token_basic(&free.oauth_client_id, &free.oauth_client_secret, &[])
            .await?
            .expect_status(200);
    }
    Ok(())
}

/// Two instances on one PostgreSQL and one Redis share a limit of 100 per hour: the total
/// allowed over 300 alternating calls is within ±5 % of 100.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_a_limit_through_redis() -> anyhow::Result<()> {
    let Some(redis) = redis_url_or_skip()? else {
        return Ok(());
    };
    let Some((database_url, _db)) = pg_database_or_skip().await? else {
        return Ok(());
    };
    use base64::Engine;
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let admin_id = format!("gco_admin{}", random_base62(16));
    let admin_secret = random_base62(48);
    let dir = tempfile::tempdir()?;
    let config = || {
        let mut c =
            gatehouse_server::Config::for_tests(database_url.clone(), dir.path().to_path_buf());
        c.secret_key = Some(key.clone());
        c.bootstrap_client_id = Some(admin_id.clone());
        c.bootstrap_client_secret = Some(admin_secret.clone());
        c.issuer = Some("http://127.0.0.1:1".to_owned());
        c.admin_url = Some("http://127.0.0.1:2".to_owned());
        c.redis_url = Some(redis.clone());
        c
    };
    let a = gatehouse_server::start(config()).await?;
    let b = gatehouse_server::start(config()).await?;
    let http = reqwest::Client::new();
    let token = |addr: std::net::SocketAddr, id: &str, secret: &str| {
        http.post(format!("http://{addr}/oauth/token"))
            .basic_auth(id, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let admin: Value = token(a.public_addr, &admin_id, &admin_secret)
        .await?
        .json()
        .await?;
    let at = str_field(&admin, "access_token")?.to_owned();
    let post = |path: &str, body: Value| {
        http.post(format!("http://{}/admin/v1{path}", a.admin_addr))
            .bearer_auth(&at)
            .json(&body)
            .send()
    };
    let pol: Value = post(
        "/policies",
        json!({"name": "hundred", "rate_limit": {"requests": 100, "per": "hour"}}),
    )
    .await?
    .json()
    .await?;
    let col: Value = post(
        "/collections",
        json!({"name": "C", "audience": "https://c.example.com", "scopes": [{"name": "c:r"}]}),
    )
    .await?
    .json()
    .await?;
    let cli: Value = post("/clients", json!({"name": "K"})).await?.json().await?;
    let prf: Value = post(
        &format!("/clients/{}/access-profiles", str_field(&cli, "id")?),
        json!({"name": "p", "auth_type": "oauth2", "collections": [col["id"]], "policy_id": pol["id"]}),
    )
    .await?
    .json()
    .await?;
    let (id, secret) = (
        str_field(&prf, "oauth_client_id")?.to_owned(),
        str_field(&prf, "oauth_client_secret")?.to_owned(),
    );
    let (mut allowed, mut refused_a, mut refused_b) = (0, 0, 0);
    for i in 0..300 {
        let on_a = i % 2 == 0;
        let addr = if on_a { a.public_addr } else { b.public_addr };
        let status = token(addr, &id, &secret).await?.status().as_u16();
        match (status, on_a) {
            (200, _) => allowed += 1,
            (429, true) => refused_a += 1,
            (429, false) => refused_b += 1,
            (other, _) => anyhow::bail!("unexpected status {other}"),
        }
    }
    eprintln!("shared limit 100/hour: {allowed} allowed, {refused_a} + {refused_b} refused");
    assert!((95..=105).contains(&allowed), "{allowed} allowed");
    assert!(refused_a > 0 && refused_b > 0);
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}

/// A burst of wrong secrets for one client id from one address: 10 cost argon2 and answer
/// 401, the rest 429 without argon2 (measured). Another address, and a caller whose secret
/// is in the verified cache, are not throttled.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_wrong_secrets_is_throttled_without_argon2() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
    })
    .await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let good = |ip: &'static str| {
        let (app, fx) = (&app, &fx);
        async move {
            app.token_form(
                Some((&fx.oauth_client_id, &fx.oauth_client_secret)),
                &[("grant_type", "client_credentials")],
                &[("x-forwarded-for", ip)],
            )
            .await
        }
    };
    // Verified once from the attacked address: it is in the verified-secret cache.
    good("198.51.100.1").await?.expect_status(200);
    let (mut slow, mut fast) = (Vec::new(), Vec::new());
    for i in 0..30 {
        let started = Instant::now();
        let r = app
            .token_form(
                Some((&fx.oauth_client_id, &format!("wrong-{i}"))),
                &[("grant_type", "client_credentials")],
                &from("198.51.100.1"),
            )
            .await?;
        let took = started.elapsed();
        match r.status.as_u16() {
            401 => slow.push(took),
            429 => {
                assert!(retry_after(&r) >= 1);
                r.expect_error(429, "rate_limited");
                fast.push(took);
            }
            other => anyhow::bail!("unexpected {other}: {r:?}"),
        }
    }
    assert_eq!(slow.len(), 10, "the budget is 10 failures");
    assert_eq!(fast.len(), 20);
    let mean = |v: &[Duration]| v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(1);
    let (argon, throttled) = (mean(&slow), mean(&fast));
    eprintln!("wrong secrets: mean {argon:?} with argon2 (401), {throttled:?} throttled (429)");
    assert!(
        throttled * 5 < argon,
        "throttled answers skip argon2: {throttled:?} vs {argon:?}"
    );
    // The legitimate caller (cached) and another address are unaffected.
    good("198.51.100.1").await?.expect_status(200);
    good("198.51.100.2").await?.expect_status(200);
    // Introspection callers have the same budget.
    let (rs_id, _) = collection_credentials(&fx.collection)?;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = app
            .introspect_token(Auth::Basic(rs_id, "wrong"), "x")
            .await?;
        statuses.push(r.status.as_u16());
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
    Ok(())
}

/// Usage counters equal the calls made: tokens, active introspections, refusals by reason.
#[tokio::test(flavor = "multi_thread")]
async fn usage_counts_equal_the_calls() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let id = policy(
        &app,
        json!({"name": "four", "rate_limit": {"requests": 4, "per": "hour"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        tokens.push(
            app.access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
                .await?,
        );
    }
    for t in &tokens {
        assert_active(
            &app.introspect_token(Auth::Basic(rs_id, rs_secret), t)
                .await?,
        );
    }
    // The fifth use is refused by the policy (counted as rate_limited).
    let refused = app
        .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    refused.expect_error(429, "rate_limited");
    // Deactivate: introspections by the collection are now `inactive`, counted.
    let pid = str_field(&fx.profile, "id")?.to_owned();
    app.admin_patch(
        &format!("/access-profiles/{pid}"),
        &json!({"active": false}),
    )
    .await?
    .expect_status(200);
    for _ in 0..3 {
        let r = app
            .introspect_token(Auth::Basic(rs_id, rs_secret), &tokens[0])
            .await?;
        assert_eq!(r.json(), json!({"active": false}));
    }
    // An admin's introspection is not counted.
    let admin = app.admin_token().await?;
    app.introspect_token(Auth::Bearer(&admin), &tokens[0])
        .await?;

    let report = app
        .admin_get(&format!("/access-profiles/{pid}/usage"))
        .await?
        .expect_status(200)
        .json();
    let items = report["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "{report}");
    assert_eq!(items[0]["tokens_issued"], 2, "{report}");
    assert_eq!(items[0]["introspections_active"], 2, "{report}");
    assert_eq!(
        items[0]["denied"],
        json!({"rate_limited": 1, "inactive": 3}),
        "{report}"
    );
    // A second profile of the same client adds up in the client's report, by day.
    let client_id = str_field(&fx.client, "id")?.to_owned();
    let other = app
        .create_profile(
            &client_id,
            &json!({"name": "second", "auth_type": "oauth2", "collections": [fx.collection["id"]]}),
        )
        .await?;
    app.access_token(
        str_field(&other, "oauth_client_id")?,
        str_field(&other, "oauth_client_secret")?,
        &[],
    )
    .await?;
    let daily = app
        .admin_get(&format!("/clients/{client_id}/usage?granularity=day"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(daily["items"][0]["tokens_issued"], 3, "{daily}");
    assert_eq!(daily["items"][0]["introspections_active"], 2, "{daily}");
    app.admin_get(&format!("/access-profiles/{pid}/usage?granularity=week"))
        .await?
        .expect_error(422, "validation_failed");
    app.admin_get(&format!(
        "/access-profiles/{pid}/usage?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"
    ))
    .await?
    .expect_error(422, "validation_failed");
    let missing = app.admin_get("/access-profiles/prf_nope/usage").await?;
    assert_eq!(missing.status, 404);
    Ok(())
}
