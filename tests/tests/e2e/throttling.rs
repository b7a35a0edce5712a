//! Failed-authentication throttling (RFC 6749 §2.3.1, RFC 7662 §4): a budget of 10 failures
//! per minute per (client id, source address) and 100 per minute per source address, refilled
//! smoothly. Past it the token endpoint, introspection and revocation answer 429
//! `rate_limited` with `Retry-After` without running argon2 — except for a caller whose
//! secret is in the verified cache, who is never throttled.
//!
//! The server trusts 127.0.0.0/8 as a proxy, so `X-Forwarded-For` chooses the source address.

use std::time::{Duration, Instant};

use gatehouse_tests::{
    Fixture, Reply, TestApp, assert_active, assert_no_store, collection_credentials, json,
    spawn_app_with,
};

async fn spawn_behind_proxy() -> anyhow::Result<TestApp> {
    spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
    })
    .await
}

/// A client-credentials request with Basic credentials, from `ip`.
async fn token_from(app: &TestApp, id: &str, secret: &str, ip: &str) -> anyhow::Result<Reply> {
    app.token_form(
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
        &[("x-forwarded-for", ip)],
    )
    .await
}

/// `POST {path}` (introspection or revocation) with Basic credentials and this form, from `ip`.
async fn post_from(
    app: &TestApp,
    path: &str,
    (id, secret): (&str, &str),
    form: &[(&str, &str)],
    ip: &str,
) -> anyhow::Result<Reply> {
    let req = app
        .http
        .post(app.public_url(path))
        .basic_auth(id, Some(secret))
        .header("x-forwarded-for", ip)
        .form(form);
    Reply::read(req.send().await?).await
}

fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in whole seconds expected: {reply:?}"))
}

/// Asserts a throttling answer: 429 `rate_limited`, no-store, `Retry-After` within 1..=max.
#[track_caller]
fn assert_throttled(reply: &Reply, max_wait: u64) -> u64 {
    reply.expect_error(429, "rate_limited");
    assert_no_store(reply);
    let wait = retry_after(reply);
    assert!(
        (1..=max_wait).contains(&wait),
        "Retry-After within 1..={max_wait}: {reply:?}"
    );
    wait
}

#[track_caller]
fn assert_invalid_client(reply: &Reply) {
    reply.expect_error(401, "invalid_client");
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        www.to_ascii_lowercase().starts_with("basic"),
        "Basic was used: WWW-Authenticate: Basic: {reply:?}"
    );
}

fn mean(v: &[Duration]) -> Duration {
    v.iter().sum::<Duration>() / u32::try_from(v.len().max(1)).unwrap_or(1)
}

fn creds(fx: &Fixture) -> (&str, &str) {
    (&fx.oauth_client_id, &fx.oauth_client_secret)
}

/// 30 wrong secrets for one client id from one address: 10 answers 401 after argon2, then 429
/// without it (measured). The right secret from that address is refused while the budget is
/// spent, unless verified before; from another address it works. One failure comes back after
/// six seconds.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_secrets_are_throttled_after_ten_without_running_argon2() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (id, secret) = creds(&fx);
    let attacker = "198.51.100.10";

    let (mut slow, mut fast) = (Vec::new(), Vec::new());
    for i in 0..30 {
        let started = Instant::now();
        let reply = token_from(&app, id, &format!("wrong-secret-{i}"), attacker).await?;
        let took = started.elapsed();
        if i < 10 {
            assert_invalid_client(&reply);
            slow.push(took);
        } else {
            // 10 failures at once: the next is allowed one emission interval (6 s) later.
            assert_throttled(&reply, 6);
            assert!(
                reply.header("ratelimit").is_none(),
                "no policy figures on a failure throttle: {reply:?}"
            );
            fast.push(took);
        }
    }
    let (argon2, throttled) = (mean(&slow), mean(&fast));
    eprintln!(
        "wrong secrets from one address: mean {argon2:?} for the 10 answers with argon2 (401), \
         {throttled:?} for the 20 throttled answers (429)"
    );
    assert!(
        throttled * 5 < argon2,
        "a throttled answer must not run argon2: 429 mean {throttled:?} vs 401 mean {argon2:?}"
    );

    // The right secret, never verified, from the attacked address: refused too.
    assert_throttled(&token_from(&app, id, secret, attacker).await?, 6);
    // From another address the legitimate client is unaffected.
    token_from(&app, id, secret, "198.51.100.11")
        .await?
        .expect_status(200);
    // Another client id from the attacked address has its own budget.
    let other = app.oauth_fixture(&["other:read"], json!({})).await?;
    assert_invalid_client(&token_from(&app, &other.oauth_client_id, "wrong", attacker).await?);
    token_from(
        &app,
        &other.oauth_client_id,
        &other.oauth_client_secret,
        attacker,
    )
    .await?
    .expect_status(200);
    // Now the right secret is in the verified cache: never throttled, from anywhere.
    token_from(&app, id, secret, attacker)
        .await?
        .expect_status(200);

    // Smooth refill: after Retry-After one more attempt runs (401), the next is throttled.
    let refused = token_from(&app, id, "still-wrong", attacker).await?;
    let wait = assert_throttled(&refused, 6);
    // The budgets run on the server's clock: move it instead of sleeping.
    app.clock.advance(wait as f64);
    assert_invalid_client(&token_from(&app, id, "wrong-after-wait", attacker).await?);
    assert_throttled(&token_from(&app, id, "wrong-again", attacker).await?, 6);
    Ok(())
}

/// A client that authenticated correctly first (its secret is in the verified cache) keeps
/// getting tokens while its id is attacked from its own address.
#[tokio::test(flavor = "multi_thread")]
async fn a_caller_in_the_verified_cache_is_never_throttled() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (id, secret) = creds(&fx);
    let shared_nat = "198.51.100.20";
    token_from(&app, id, secret, shared_nat)
        .await?
        .expect_status(200);
    for i in 0..10 {
        assert_invalid_client(&token_from(&app, id, &format!("guess-{i}"), shared_nat).await?);
    }
    assert_throttled(&token_from(&app, id, "guess-10", shared_nat).await?, 6);
    for _ in 0..3 {
        token_from(&app, id, secret, shared_nat)
            .await?
            .expect_status(200);
        assert_throttled(&token_from(&app, id, "guess-more", shared_nat).await?, 6);
    }
    // client_secret_post with the same secret is the same verified caller.
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    app.token_form(None, &form, &[("x-forwarded-for", shared_nat)])
        .await?
        .expect_status(200);
    Ok(())
}

/// Introspection and revocation callers have the same budget: wrong collection secrets at
/// `/oauth/introspect` are throttled after 10, and so is that collection id at
/// `/oauth/revoke` from that address; wrong client secrets at `/oauth/revoke` likewise.
#[tokio::test(flavor = "multi_thread")]
async fn introspection_and_revocation_callers_are_throttled_too() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let attacker = "198.51.100.30";
    let form = [("token", token.as_str())];

    let (mut slow, mut fast) = (Vec::new(), Vec::new());
    for i in 0..15 {
        let started = Instant::now();
        let reply = post_from(
            &app,
            "/oauth/introspect",
            (rs_id, &format!("wrong-{i}")),
            &form,
            attacker,
        )
        .await?;
        if i < 10 {
            assert_invalid_client(&reply);
            slow.push(started.elapsed());
        } else {
            assert_throttled(&reply, 6);
            fast.push(started.elapsed());
        }
    }
    eprintln!(
        "wrong collection secrets at /oauth/introspect: mean {:?} (401), {:?} (429)",
        mean(&slow),
        mean(&fast)
    );
    // The right collection secret, never verified, from the attacked address: refused.
    assert_throttled(
        &post_from(
            &app,
            "/oauth/introspect",
            (rs_id, rs_secret),
            &form,
            attacker,
        )
        .await?,
        6,
    );
    // The same collection id at the revocation endpoint: the same budget.
    assert_throttled(
        &post_from(&app, "/oauth/revoke", (rs_id, "wrong"), &form, attacker).await?,
        6,
    );
    // From another address the resource server works; then it is verified everywhere.
    let ok = post_from(
        &app,
        "/oauth/introspect",
        (rs_id, rs_secret),
        &form,
        "198.51.100.31",
    )
    .await?;
    assert_active(&ok);
    assert_active(
        &post_from(
            &app,
            "/oauth/introspect",
            (rs_id, rs_secret),
            &form,
            attacker,
        )
        .await?,
    );

    // Wrong client secrets at /oauth/revoke.
    let revoker = "198.51.100.32";
    for i in 0..10 {
        let reply = post_from(
            &app,
            "/oauth/revoke",
            (&fx.oauth_client_id, &format!("nope-{i}")),
            &form,
            revoker,
        )
        .await?;
        assert_invalid_client(&reply);
    }
    assert_throttled(
        &post_from(
            &app,
            "/oauth/revoke",
            (&fx.oauth_client_id, "nope-10"),
            &form,
            revoker,
        )
        .await?,
        6,
    );
    // Nothing was revoked by all that.
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    // The same client id is throttled at the token endpoint from that address, too.
    assert_throttled(
        &token_from(&app, &fx.oauth_client_id, "nope-11", revoker).await?,
        6,
    );
    Ok(())
}

/// One address has 100 failures a minute across all client ids (here: unknown ids, one
/// attempt each, so the per-client budget never applies); past it every unverified attempt
/// from that address is throttled, while other addresses are not.
#[tokio::test(flavor = "multi_thread")]
async fn one_address_has_a_budget_of_one_hundred_failures_across_client_ids() -> anyhow::Result<()>
{
    let app = spawn_behind_proxy().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let sprayer = "198.51.100.50";
    let started = Instant::now();
    let mut failures = 0u64;
    let throttled = loop {
        let reply =
            token_from(&app, &format!("gco_unknown{failures:04}"), "wrong", sprayer).await?;
        if reply.status == 429 {
            break reply;
        }
        assert_invalid_client(&reply);
        failures += 1;
        assert!(
            failures <= 200,
            "no per-address throttling after 200 failures"
        );
    };
    let elapsed = started.elapsed();
    // A failure comes back every 0.6 s: allow what refilled while the attempts ran.
    let refilled = elapsed.as_millis() / 600 + 1;
    eprintln!("one address: throttled after {failures} failures in {elapsed:?}");
    assert!(
        (100..=100 + u64::try_from(refilled).unwrap_or(u64::MAX)).contains(&failures),
        "100 failures per address per minute (+{refilled} refilled in {elapsed:?}): {failures}"
    );
    // Any other unverified attempt from that address, even with a right secret, is refused
    // (asked at once: the budget gains one failure back every 0.6 s).
    assert_throttled(
        &token_from(&app, &fx.oauth_client_id, &fx.oauth_client_secret, sprayer).await?,
        1,
    );
    assert_throttled(&throttled, 1);
    assert_throttled(
        &token_from(&app, "gco_unknown-new", "wrong", sprayer).await?,
        1,
    );
    // Another address is unaffected.
    assert_invalid_client(&token_from(&app, "gco_unknown-new", "wrong", "198.51.100.51").await?);
    token_from(
        &app,
        &fx.oauth_client_id,
        &fx.oauth_client_secret,
        "198.51.100.51",
    )
    .await?
    .expect_status(200);
    Ok(())
}
