//! Policies: the admin resource (validation, merge patch, paging, attachment to profiles),
//! GCRA rate limits with `Retry-After` and the `RateLimit-Policy` / `RateLimit` header fields,
//! UTC calendar quotas that survive a restart, what counts (tokens and collection
//! introspections; never an admin's or the owner's look), edits taking effect at once, limits
//! shared by two instances through Redis, and Redis being unreachable (fail open or closed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use gatehouse_registry::limits::FailureMode;
use gatehouse_server::Config;
use gatehouse_tests::{
    Auth, Fixture, Reply, TestApp, Value, assert_active, assert_no_store, collection_credentials,
    json, pg_database_or_skip, random_base62, redis_url_or_skip, spawn_app, spawn_app_with,
    str_field, unique,
};

/// Seconds since the Unix epoch.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// The server's current time (its injected clock).
fn server_now(app: &TestApp) -> i64 {
    use gatehouse_registry::clock::Clock;
    app.clock.now().timestamp()
}

/// Seconds until the next UTC midnight on the server's clock.
fn secs_to_utc_midnight(app: &TestApp) -> i64 {
    86_400 - server_now(app).rem_euclid(86_400)
}

/// (year, month) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn year_month(days: i64) -> (i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m)
}

/// Seconds until the first instant of the next UTC calendar month on the server's clock.
fn secs_to_utc_month_end(app: &TestApp) -> i64 {
    let now = server_now(app);
    let this_month = year_month(now.div_euclid(86_400));
    let mut day = now.div_euclid(86_400) + 1;
    while year_month(day) == this_month {
        day += 1;
    }
    day * 86_400 - now
}

/// Quota periods are UTC calendar days: a test that counts a daily quota must not straddle
/// midnight, so the server's clock is pinned to midday (UTC) of today instead of waiting.
fn midday() -> chrono::DateTime<chrono::Utc> {
    let now = unix_now();
    chrono::DateTime::from_timestamp(now - now.rem_euclid(86_400) + 43_200, 0).unwrap_or_default()
}

/// `Retry-After` in whole seconds (panics when absent or not an integer).
#[track_caller]
fn retry_after(reply: &Reply) -> i64 {
    reply
        .header("retry-after")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in whole seconds expected: {reply:?}"))
}

/// `q` and `w` of `RateLimit-Policy: "gatehouse";q=…;w=…`.
#[track_caller]
fn ratelimit_policy(reply: &Reply) -> (i64, i64) {
    let v = reply
        .header("ratelimit-policy")
        .unwrap_or_else(|| panic!("RateLimit-Policy expected: {reply:?}"));
    let q = param(&v, "q").unwrap_or_else(|| panic!("q in RateLimit-Policy {v:?}"));
    let w = param(&v, "w").unwrap_or_else(|| panic!("w in RateLimit-Policy {v:?}"));
    assert!(
        v.starts_with("\"gatehouse\";"),
        "RateLimit-Policy names the policy \"gatehouse\": {v:?}"
    );
    (q, w)
}

/// `r` and `t` of `RateLimit: "gatehouse";r=…;t=…`.
#[track_caller]
fn ratelimit(reply: &Reply) -> (i64, i64) {
    let v = reply
        .header("ratelimit")
        .unwrap_or_else(|| panic!("RateLimit expected: {reply:?}"));
    assert!(
        v.starts_with("\"gatehouse\";"),
        "RateLimit names the policy \"gatehouse\": {v:?}"
    );
    let r = param(&v, "r").unwrap_or_else(|| panic!("r in RateLimit {v:?}"));
    let t = param(&v, "t").unwrap_or_else(|| panic!("t in RateLimit {v:?}"));
    (r, t)
}

fn param(field: &str, key: &str) -> Option<i64> {
    field
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[track_caller]
fn assert_no_ratelimit_headers(reply: &Reply) {
    assert!(
        reply.header("ratelimit-policy").is_none() && reply.header("ratelimit").is_none(),
        "no policy, no RateLimit header fields: {reply:?}"
    );
}

/// Asserts a 429 of the token endpoint with this error code; returns `Retry-After`.
#[track_caller]
fn assert_limited(reply: &Reply, code: &str) -> i64 {
    reply.expect_error(429, code);
    assert_no_store(reply);
    assert!(
        reply.json()["error_description"].is_string(),
        "429 carries an error_description: {reply:?}"
    );
    let wait = retry_after(reply);
    assert!(wait >= 1, "Retry-After at least 1: {reply:?}");
    wait
}

/// Asserts the exact over-the-limit introspection answer; returns `retry_after`.
#[track_caller]
fn assert_denial(reply: &Reply, reason: &str) -> i64 {
    assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
    assert_no_store(reply);
    let body = reply.json();
    let retry = body["gatehouse_denial"]["retry_after"]
        .as_i64()
        .unwrap_or_else(|| panic!("gatehouse_denial.retry_after (integer) expected: {body}"));
    assert_eq!(
        body,
        json!({"active": false, "gatehouse_denial": {"reason": reason, "retry_after": retry}}),
        "an over-the-limit answer is exactly this: {reply:?}"
    );
    assert!(retry >= 1, "{body}");
    retry
}

/// Creates a policy (asserts 201); returns it.
async fn create_policy(app: &TestApp, body: Value) -> anyhow::Result<Value> {
    Ok(app
        .admin_post("/policies", &body)
        .await?
        .expect_status(201)
        .json())
}

async fn create_policy_id(app: &TestApp, body: Value) -> anyhow::Result<String> {
    Ok(str_field(&create_policy(app, body).await?, "id")?.to_owned())
}

/// A client-credentials token request with the fixture's credentials.
async fn token(app: &TestApp, fx: &Fixture) -> anyhow::Result<Reply> {
    app.token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await
}

fn access_token_of(reply: &Reply) -> anyhow::Result<String> {
    Ok(str_field(&reply.json(), "access_token")?.to_owned())
}

/// The `field` names of an admin error body.
fn error_fields(reply: &Reply) -> Vec<String> {
    reply.json()["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn assert_validation(reply: &Reply, field_prefix: &str) {
    reply.expect_error(422, "validation_failed");
    let fields = error_fields(reply);
    assert!(
        fields.iter().any(|f| f.starts_with(field_prefix)),
        "a field error naming {field_prefix:?} expected: {reply:?}"
    );
}

// -------------------------------------------------------------------------------------------
// The admin resource
// -------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn policies_are_validated_paged_patched_and_deleted() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let created = create_policy(
        &app,
        json!({"name": "standard", "rate_limit": {"requests": 10, "per": "second"}}),
    )
    .await?;
    let id = str_field(&created, "id")?.to_owned();
    assert!(id.starts_with("pol_"), "policy ids are pol_…: {created}");
    assert_eq!(created["name"], "standard");
    assert_eq!(
        created["rate_limit"],
        json!({"requests": 10, "per": "second"})
    );
    assert!(created["quota"].is_null(), "{created}");
    assert_eq!(created["profiles"], 0, "{created}");
    assert!(
        created["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(created["updated_at"].is_string(), "{created}");

    // Validation.
    assert_validation(
        &app.admin_post("/policies", &json!({"name": "nothing"}))
            .await?,
        "rate_limit",
    );
    for bad in [
        json!({"name": "zero", "rate_limit": {"requests": 0, "per": "minute"}}),
        json!({"name": "negative", "rate_limit": {"requests": -5, "per": "minute"}}),
    ] {
        assert_validation(&app.admin_post("/policies", &bad).await?, "rate_limit");
    }
    assert_validation(
        &app.admin_post(
            "/policies",
            &json!({"name": "zero-quota", "quota": {"requests": 0, "per": "day"}}),
        )
        .await?,
        "quota",
    );
    for bad in [
        json!({"name": "weekly", "quota": {"requests": 5, "per": "week"}}),
        json!({"name": "daily-rate", "rate_limit": {"requests": 5, "per": "day"}}),
        json!({"name": "extra", "rate_limit": {"requests": 5, "per": "minute"}, "burst": 3}),
        json!({"name": "extra-inner", "rate_limit": {"requests": 5, "per": "minute", "burst": 3}}),
    ] {
        let reply = app.admin_post("/policies", &bad).await?;
        reply.expect_error(422, "validation_failed");
    }
    let extra = app
        .admin_post(
            "/policies",
            &json!({"name": "extra", "quota": {"requests": 5, "per": "day"}, "burst": 3}),
        )
        .await?;
    assert!(
        error_fields(&extra).iter().any(|f| f == "burst"),
        "the unknown field is named: {extra:?}"
    );
    app.admin_post(
        "/policies",
        &json!({"name": "standard", "quota": {"requests": 1, "per": "month"}}),
    )
    .await?
    .expect_error(409, "conflict");

    // Both limits, then paging over three policies.
    let both = create_policy(
        &app,
        json!({"name": "both", "rate_limit": {"requests": 100, "per": "hour"},
               "quota": {"requests": 1000, "per": "month"}}),
    )
    .await?;
    assert_eq!(both["quota"], json!({"requests": 1000, "per": "month"}));
    create_policy(
        &app,
        json!({"name": "daily", "quota": {"requests": 50, "per": "day"}}),
    )
    .await?;
    let (items, pages) = app.admin_list_all("/policies", 2).await?;
    assert_eq!(pages, 2, "three policies in pages of two");
    let mut names: Vec<&str> = items.iter().filter_map(|p| p["name"].as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["both", "daily", "standard"]);
    let first = app.admin_get("/policies").await?.expect_status(200).json();
    assert!(first["next_cursor"].is_null(), "{first}");
    assert_eq!(first["items"].as_array().map(Vec::len), Some(3));

    // GET one; merge patch adds, keeps and removes members.
    let got = app
        .admin_get(&format!("/policies/{id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["id"], json!(id));
    assert_eq!(got["rate_limit"], created["rate_limit"]);
    let patched = app
        .admin_patch(
            &format!("/policies/{id}"),
            &json!({"quota": {"requests": 500, "per": "day"}}),
        )
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        patched["rate_limit"],
        json!({"requests": 10, "per": "second"}),
        "untouched by the patch: {patched}"
    );
    assert_eq!(patched["quota"], json!({"requests": 500, "per": "day"}));
    assert_eq!(patched["name"], "standard");
    let patched = app
        .admin_patch(
            &format!("/policies/{id}"),
            &json!({"rate_limit": {"requests": 20}}),
        )
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        patched["rate_limit"],
        json!({"requests": 20, "per": "second"}),
        "a merge patch merges nested objects: {patched}"
    );
    let patched = app
        .admin_patch(&format!("/policies/{id}"), &json!({"quota": null}))
        .await?
        .expect_status(200)
        .json();
    assert!(
        patched["quota"].is_null(),
        "null removes the quota: {patched}"
    );
    assert_eq!(patched["rate_limit"]["requests"], 20);
    let again = app.admin_get(&format!("/policies/{id}")).await?.json();
    assert!(again["quota"].is_null(), "the removal is stored: {again}");
    assert_validation(
        &app.admin_patch(&format!("/policies/{id}"), &json!({"rate_limit": null}))
            .await?,
        "rate_limit",
    );
    assert_validation(
        &app.admin_patch(
            &format!("/policies/{id}"),
            &json!({"rate_limit": {"requests": 0}}),
        )
        .await?,
        "rate_limit",
    );
    app.admin_patch(&format!("/policies/{id}"), &json!({"name": "both"}))
        .await?
        .expect_error(409, "conflict");
    app.admin_patch(&format!("/policies/{id}"), &json!({"colour": "red"}))
        .await?
        .expect_error(422, "validation_failed");
    app.admin_patch("/policies/pol_doesnotexist", &json!({"name": "x"}))
        .await?
        .expect_error(404, "not_found");

    // DELETE of an unused policy.
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_status(204);
    app.admin_get(&format!("/policies/{id}"))
        .await?
        .expect_error(404, "not_found");
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_error(404, "not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn profiles_attach_and_detach_policies_by_id() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let id = create_policy_id(
        &app,
        json!({"name": "p", "rate_limit": {"requests": 5, "per": "minute"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    assert_eq!(fx.profile["policy_id"], json!(id), "{}", fx.profile);
    let profile_path = format!("/access-profiles/{}", fx.profile_id());
    assert_eq!(
        app.admin_get(&profile_path).await?.json()["policy_id"],
        json!(id)
    );
    assert_eq!(
        app.admin_get(&format!("/policies/{id}")).await?.json()["profiles"],
        1
    );
    // A second profile with the same policy.
    let second = app
        .create_profile(
            fx.client_id(),
            &json!({"name": unique("second"), "auth_type": "oauth2",
                    "collections": [fx.collection_id()], "policy_id": id}),
        )
        .await?;
    let listed = app.admin_get("/policies").await?.json();
    assert_eq!(listed["items"][0]["profiles"], 2, "{listed}");

    // Unknown policy ids are refused on create and on patch.
    let refused = app
        .admin_post(
            &format!("/clients/{}/access-profiles", fx.client_id()),
            &json!({"name": unique("third"), "auth_type": "oauth2",
                    "collections": [fx.collection_id()], "policy_id": "pol_doesnotexist"}),
        )
        .await?;
    assert_validation(&refused, "policy_id");
    assert_validation(
        &app.admin_patch(&profile_path, &json!({"policy_id": "pol_doesnotexist"}))
            .await?,
        "policy_id",
    );
    assert_eq!(
        app.admin_get(&profile_path).await?.json()["policy_id"],
        json!(id),
        "a refused patch changes nothing"
    );

    // In use: DELETE is a conflict until every profile lets go.
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_error(409, "conflict");
    let detached = app
        .admin_patch(&profile_path, &json!({"policy_id": null}))
        .await?
        .expect_status(200)
        .json();
    assert!(detached["policy_id"].is_null(), "{detached}");
    assert_eq!(
        app.admin_get(&format!("/policies/{id}")).await?.json()["profiles"],
        1
    );
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_error(409, "conflict");
    app.admin_patch(
        &format!("/access-profiles/{}", str_field(&second, "id")?),
        &json!({"policy_id": null}),
    )
    .await?
    .expect_status(200);
    app.admin_delete(&format!("/policies/{id}"))
        .await?
        .expect_status(204);
    // The detached profile works without limits.
    let ok = token(&app, &fx).await?.expect_status(200);
    assert_no_ratelimit_headers(&ok);
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Rate limits and quotas
// -------------------------------------------------------------------------------------------

/// 5 per minute: a burst of five (remaining 4, 3, 2, 1, 0), the sixth 429 with
/// `Retry-After: 12`; after waiting that long exactly one more call succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn five_per_minute_allows_a_burst_of_five_then_one_every_twelve_seconds() -> anyhow::Result<()>
{
    let app = spawn_app().await?;
    let id = create_policy_id(
        &app,
        json!({"name": "five", "rate_limit": {"requests": 5, "per": "minute"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    for i in 0..5 {
        let reply = token(&app, &fx).await?.expect_status(200);
        assert_eq!(ratelimit_policy(&reply), (5, 60), "call {i}: {reply:?}");
        let (remaining, reset) = ratelimit(&reply);
        assert_eq!(remaining, 4 - i, "call {i}: {reply:?}");
        assert!((1..=60).contains(&reset), "call {i}: t={reset}");
    }
    let refused = token(&app, &fx).await?;
    let wait = assert_limited(&refused, "rate_limited");
    assert!(
        (11..=13).contains(&wait),
        "5/minute: one call every 12 s: {refused:?}"
    );
    assert_eq!(ratelimit_policy(&refused), (5, 60), "{refused:?}");
    let (remaining, reset) = ratelimit(&refused);
    assert_eq!(remaining, 0, "{refused:?}");
    assert!((1..=60).contains(&reset), "{refused:?}");
    // Refusals spend nothing: asking again at once is refused the same way.
    let again = token(&app, &fx).await?;
    assert!((11..=13).contains(&assert_limited(&again, "rate_limited")));

    tokio::time::sleep(Duration::from_secs(u64::try_from(wait).unwrap_or(12))).await;
    let ok = token(&app, &fx).await?.expect_status(200);
    assert_eq!(ratelimit(&ok).0, 0, "one call regained, and spent: {ok:?}");
    let next = token(&app, &fx).await?;
    let wait = assert_limited(&next, "rate_limited");
    assert!((11..=13).contains(&wait), "{next:?}");
    Ok(())
}

/// A quota of 3 a day: two tokens, a restart (graceful: counters are flushed), one more
/// token, then `quota_exceeded` until UTC midnight, at the token endpoint and at
/// introspection. A monthly quota runs until the end of the UTC month.
#[tokio::test(flavor = "multi_thread")]
async fn quotas_count_per_utc_period_and_survive_a_restart() -> anyhow::Result<()> {
    let mut app = spawn_app().await?;
    app.clock.set(midday());
    let daily = create_policy_id(
        &app,
        json!({"name": "three-a-day", "quota": {"requests": 3, "per": "day"}}),
    )
    .await?;
    let monthly = create_policy_id(
        &app,
        json!({"name": "one-a-month", "quota": {"requests": 1, "per": "month"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": daily}))
        .await?;
    let fx_month = app
        .oauth_fixture(&["monthly:read"], json!({"policy_id": monthly}))
        .await?;

    for i in 0..2 {
        let reply = token(&app, &fx).await?.expect_status(200);
        let (q, w) = ratelimit_policy(&reply);
        assert_eq!(q, 3, "{reply:?}");
        assert!(
            (w - secs_to_utc_midnight(&app)).abs() <= 5,
            "the quota window is what is left of the UTC day: {reply:?}"
        );
        assert_eq!(ratelimit(&reply).0, 2 - i, "call {i}: {reply:?}");
    }
    app.restart().await?;
    let last = token(&app, &fx).await?.expect_status(200);
    assert_eq!(
        ratelimit(&last).0,
        0,
        "the two uses before the restart still count: {last:?}"
    );
    let token_value = access_token_of(&last)?;
    let refused = token(&app, &fx).await?;
    let wait = assert_limited(&refused, "quota_exceeded");
    assert!(
        (wait - secs_to_utc_midnight(&app)).abs() <= 5,
        "Retry-After is the time to UTC midnight ({} s): {refused:?}",
        secs_to_utc_midnight(&app)
    );
    assert_eq!(ratelimit(&refused).0, 0, "{refused:?}");
    // A collection's introspection is a use too, and refused the same way.
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let denied = app
        .introspect_token(Auth::Basic(rs_id, rs_secret), &token_value)
        .await?;
    let retry = assert_denial(&denied, "quota_exceeded");
    assert!(
        (retry - secs_to_utc_midnight(&app)).abs() <= 5,
        "{denied:?}"
    );
    // And after another restart it is still spent.
    app.restart().await?;
    assert_limited(&token(&app, &fx).await?, "quota_exceeded");

    let first = token(&app, &fx_month).await?.expect_status(200);
    assert_eq!(ratelimit_policy(&first).0, 1, "{first:?}");
    assert_eq!(ratelimit(&first).0, 0, "{first:?}");
    let refused = token(&app, &fx_month).await?;
    let wait = assert_limited(&refused, "quota_exceeded");
    assert!(
        (wait - secs_to_utc_month_end(&app)).abs() <= 5,
        "Retry-After is the time to the end of the UTC month ({} s): {refused:?}",
        secs_to_utc_month_end(&app)
    );
    Ok(())
}

/// A rate-limit refusal does not spend the quota; raising the limit takes effect at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_refusal_does_not_spend_the_quota() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    app.clock.set(midday());
    let id = create_policy_id(
        &app,
        json!({"name": "mixed", "rate_limit": {"requests": 2, "per": "hour"},
               "quota": {"requests": 3, "per": "day"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    for _ in 0..2 {
        token(&app, &fx).await?.expect_status(200);
    }
    for _ in 0..3 {
        assert_limited(&token(&app, &fx).await?, "rate_limited");
    }
    app.admin_patch(
        &format!("/policies/{id}"),
        &json!({"rate_limit": {"requests": 100}}),
    )
    .await?
    .expect_status(200);
    let third = token(&app, &fx).await?;
    assert_eq!(
        third.status.as_u16(),
        200,
        "two tokens of a quota of three were used; the rate refusals spent nothing: {third:?}"
    );
    // The tighter limit is reported: one request of the quota was left, now none.
    assert_eq!(ratelimit_policy(&third).0, 3, "{third:?}");
    assert_eq!(ratelimit(&third).0, 0, "{third:?}");
    assert_limited(&token(&app, &fx).await?, "quota_exceeded");
    Ok(())
}

/// Attaching, changing and detaching a policy applies to the very next request, even for a
/// profile whose snapshot is cached.
#[tokio::test(flavor = "multi_thread")]
async fn policy_edits_take_effect_at_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let profile_path = format!("/access-profiles/{}", fx.profile_id());
    for _ in 0..3 {
        assert_no_ratelimit_headers(&token(&app, &fx).await?.expect_status(200));
    }
    let id = create_policy_id(
        &app,
        json!({"name": "two", "rate_limit": {"requests": 2, "per": "hour"}}),
    )
    .await?;
    app.admin_patch(&profile_path, &json!({"policy_id": id}))
        .await?
        .expect_status(200);
    let first = token(&app, &fx).await?.expect_status(200);
    assert_eq!(ratelimit_policy(&first), (2, 3600), "{first:?}");
    assert_eq!(ratelimit(&first).0, 1);
    token(&app, &fx).await?.expect_status(200);
    let refused = token(&app, &fx).await?;
    let wait = assert_limited(&refused, "rate_limited");
    assert!(
        (1795..=1800).contains(&wait),
        "2/hour: 30 min apart: {refused:?}"
    );

    // Raising the limit lets the next call through.
    app.admin_patch(
        &format!("/policies/{id}"),
        &json!({"rate_limit": {"requests": 50, "per": "minute"}}),
    )
    .await?
    .expect_status(200);
    let raised = token(&app, &fx).await?.expect_status(200);
    assert_eq!(ratelimit_policy(&raised), (50, 60), "{raised:?}");

    // Replacing the rate limit by a quota.
    app.admin_patch(
        &format!("/policies/{id}"),
        &json!({"rate_limit": null, "quota": {"requests": 1000, "per": "day"}}),
    )
    .await?
    .expect_status(200);
    let quota = token(&app, &fx).await?.expect_status(200);
    assert_eq!(ratelimit_policy(&quota).0, 1000, "{quota:?}");

    // Detaching frees the profile at once; attaching again applies at once.
    app.admin_patch(&profile_path, &json!({"policy_id": null}))
        .await?
        .expect_status(200);
    for _ in 0..3 {
        assert_no_ratelimit_headers(&token(&app, &fx).await?.expect_status(200));
    }
    app.admin_patch(&profile_path, &json!({"policy_id": id}))
        .await?
        .expect_status(200);
    let back = token(&app, &fx).await?.expect_status(200);
    assert_eq!(ratelimit_policy(&back).0, 1000, "{back:?}");
    // A second, exhausted policy swapped in refuses at once.
    let one = create_policy_id(
        &app,
        json!({"name": "one", "rate_limit": {"requests": 1, "per": "hour"}}),
    )
    .await?;
    app.admin_patch(&profile_path, &json!({"policy_id": one}))
        .await?
        .expect_status(200);
    token(&app, &fx).await?.expect_status(200);
    assert_limited(&token(&app, &fx).await?, "rate_limited");
    app.admin_patch(&profile_path, &json!({"policy_id": id}))
        .await?
        .expect_status(200);
    token(&app, &fx).await?.expect_status(200);
    Ok(())
}

/// A collection's introspection is a use of the consumer's credential: counted with the
/// token requests and refused past the limit with `gatehouse_denial`. An admin's or the
/// owning client's introspection is neither counted nor limited.
#[tokio::test(flavor = "multi_thread")]
async fn collection_introspections_count_and_are_limited_but_admin_and_owner_looks_are_not()
-> anyhow::Result<()> {
    let app = spawn_app().await?;
    let id = create_policy_id(
        &app,
        json!({"name": "three", "rate_limit": {"requests": 3, "per": "hour"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["orders:read"], json!({"policy_id": id}))
        .await?;
    let issued = token(&app, &fx).await?.expect_status(200);
    assert_eq!(ratelimit(&issued).0, 2);
    let at = access_token_of(&issued)?;
    let admin = app.admin_token().await?;
    for _ in 0..5 {
        assert_active(&app.introspect_token(Auth::Bearer(&admin), &at).await?);
        assert_active(&app.introspect_token(fx.client_basic(), &at).await?);
    }
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    let rs = Auth::Basic(rs_id, rs_secret);
    let body = assert_active(&app.introspect_token(rs, &at).await?);
    assert_eq!(
        body["rate_limit"]["limit"], 3,
        "admin and owner looks were not counted: {body}"
    );
    assert_eq!(body["rate_limit"]["remaining"], 1, "{body}");
    let reset = body["rate_limit"]["reset"].as_i64().unwrap_or(-1);
    assert!((1..=3600).contains(&reset), "{body}");
    assert_eq!(
        body["gatehouse_cache_ttl"], 0,
        "a counted answer must not be cached: {body}"
    );
    assert_eq!(
        body["rate_limit"].as_object().map(serde_json::Map::len),
        Some(3),
        "rate_limit is {{limit, remaining, reset}}: {body}"
    );
    let body = assert_active(&app.introspect_token(rs, &at).await?);
    assert_eq!(body["rate_limit"]["remaining"], 0, "{body}");

    let denied = app.introspect_token(rs, &at).await?;
    let retry = assert_denial(&denied, "rate_limited");
    assert!(
        (1195..=1200).contains(&retry),
        "3/hour: one every 20 min: {denied:?}"
    );
    // The token endpoint shares the same limit.
    assert_limited(&token(&app, &fx).await?, "rate_limited");
    // Admin and owner still see the token active.
    assert_active(&app.introspect_token(Auth::Bearer(&admin), &at).await?);
    assert_active(&app.introspect_token(fx.client_basic(), &at).await?);
    // Another profile's consumers are not affected.
    let other = app
        .create_profile(
            fx.client_id(),
            &json!({"name": unique("other"), "auth_type": "oauth2",
                    "collections": [fx.collection_id()], "policy_id": id}),
        )
        .await?;
    app.token_basic(
        str_field(&other, "oauth_client_id")?,
        str_field(&other, "oauth_client_secret")?,
        &[],
    )
    .await?
    .expect_status(200);
    Ok(())
}

/// Without a policy: no RateLimit header fields, no `rate_limit` member, and a cacheable
/// introspection answer.
#[tokio::test(flavor = "multi_thread")]
async fn without_a_policy_there_are_no_limit_fields() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let mut at = String::new();
    for _ in 0..20 {
        let reply = token(&app, &fx).await?.expect_status(200);
        assert_no_ratelimit_headers(&reply);
        at = access_token_of(&reply)?;
    }
    let body = assert_active(&app.introspect_token(fx.collection_basic(), &at).await?);
    assert!(body.get("rate_limit").is_none(), "{body}");
    assert!(body.get("gatehouse_denial").is_none(), "{body}");
    assert!(
        body["gatehouse_cache_ttl"].as_i64().unwrap_or(0) > 0,
        "no policy and no IP rules: cacheable: {body}"
    );
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Redis
// -------------------------------------------------------------------------------------------

/// Redis unreachable, `open` (the default): the in-memory limiter enforces the policy on
/// this instance; profiles without a policy are untouched.
#[tokio::test(flavor = "multi_thread")]
async fn redis_unreachable_fails_open_to_the_in_memory_limiter() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        // Nothing listens on port 1.
        cfg.redis_url = Some("redis://127.0.0.1:1".to_owned());
    })
    .await?;
    app.clock.set(midday());
    let rate = create_policy_id(
        &app,
        json!({"name": "five", "rate_limit": {"requests": 5, "per": "minute"}}),
    )
    .await?;
    let quota = create_policy_id(
        &app,
        json!({"name": "two-a-day", "quota": {"requests": 2, "per": "day"}}),
    )
    .await?;
    let limited = app
        .oauth_fixture(&["a:read"], json!({"policy_id": rate}))
        .await?;
    let counted = app
        .oauth_fixture(&["b:read"], json!({"policy_id": quota}))
        .await?;
    let free = app.oauth_fixture(&["c:read"], json!({})).await?;
    for i in 0..5 {
        let reply = token(&app, &limited).await?;
        assert_eq!(reply.status.as_u16(), 200, "call {i}: {reply:?}");
        assert_eq!(ratelimit(&reply).0, 4 - i, "{reply:?}");
    }
    let refused = token(&app, &limited).await?;
    let wait = assert_limited(&refused, "rate_limited");
    assert!((11..=13).contains(&wait), "{refused:?}");
    for _ in 0..2 {
        token(&app, &counted).await?.expect_status(200);
    }
    assert_limited(&token(&app, &counted).await?, "quota_exceeded");
    for _ in 0..10 {
        assert_no_ratelimit_headers(&token(&app, &free).await?.expect_status(200));
    }
    Ok(())
}

/// Redis unreachable, `closed`: every request of a rate-limited profile is refused with
/// `rate_limited` and `Retry-After: 1`, at the token endpoint and at introspection; a profile
/// without a policy still gets tokens.
#[tokio::test(flavor = "multi_thread")]
async fn redis_unreachable_fails_closed_for_limited_profiles_only() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.redis_url = Some("redis://127.0.0.1:1".to_owned());
        cfg.ratelimit_failure = FailureMode::Closed;
    })
    .await?;
    let id = create_policy_id(
        &app,
        json!({"name": "generous", "rate_limit": {"requests": 1000, "per": "second"}}),
    )
    .await?;
    let limited = app.oauth_fixture(&["a:read"], json!({})).await?;
    let free = app.oauth_fixture(&["b:read"], json!({})).await?;
    // A token issued before the policy is attached, to introspect afterwards.
    let at = access_token_of(&token(&app, &limited).await?.expect_status(200))?;
    app.admin_patch(
        &format!("/access-profiles/{}", limited.profile_id()),
        &json!({"policy_id": id}),
    )
    .await?
    .expect_status(200);
    for i in 0..6 {
        let refused = token(&app, &limited).await?;
        assert_eq!(
            assert_limited(&refused, "rate_limited"),
            1,
            "call {i}: Retry-After 1 while Redis is down: {refused:?}"
        );
    }
    let denied = app
        .introspect_token(limited.collection_basic(), &at)
        .await?;
    assert_eq!(assert_denial(&denied, "rate_limited"), 1, "{denied:?}");
    // Admins still see the token (not counted, not limited).
    let admin = app.admin_token().await?;
    assert_active(&app.introspect_token(Auth::Bearer(&admin), &at).await?);
    for _ in 0..5 {
        let ok = token(&app, &free).await?.expect_status(200);
        assert_no_ratelimit_headers(&ok);
        let free_at = access_token_of(&ok)?;
        assert_active(
            &app.introspect_token(free.collection_basic(), &free_at)
                .await?,
        );
    }
    Ok(())
}

/// Redis unreachable, `closed`, and a policy with only a quota: the request is refused
/// because Redis is down, which is a short `rate_limited` refusal — not `quota_exceeded`
/// with a `Retry-After` of hours that would make a well-behaved consumer stop until midnight.
#[tokio::test(flavor = "multi_thread")]
async fn redis_unreachable_fails_closed_for_quota_only_policies_as_rate_limited()
-> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.redis_url = Some("redis://127.0.0.1:1".to_owned());
        cfg.ratelimit_failure = FailureMode::Closed;
    })
    .await?;
    let id = create_policy_id(
        &app,
        json!({"name": "big-quota", "quota": {"requests": 1000000, "per": "month"}}),
    )
    .await?;
    let fx = app
        .oauth_fixture(&["a:read"], json!({"policy_id": id}))
        .await?;
    let refused = token(&app, &fx).await?;
    assert_eq!(
        assert_limited(&refused, "rate_limited"),
        1,
        "every request of a limited profile is refused with rate_limited and Retry-After 1 \
         while Redis is down: {refused:?}"
    );
    Ok(())
}

/// Fails clearly when the configured Redis does not answer `PING` (rather than letting the
/// servers fail open and the counts come out wrong).
async fn assert_redis_answers(url: &str) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let parsed = url::Url::parse(url)?;
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = parsed.port().unwrap_or(6379);
    let mut stream = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| anyhow::anyhow!("connecting to Redis at {url} timed out"))?
    .map_err(|e| anyhow::anyhow!("Redis at {url} is unreachable: {e}"))?;
    if parsed.password().is_none() {
        stream.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf)).await??;
        let answer = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
        anyhow::ensure!(
            answer.starts_with("+PONG"),
            "Redis at {url} answered PING with {answer:?}"
        );
    }
    Ok(())
}

/// A running instance of the two-instance test.
struct Instance {
    server: gatehouse_server::Server,
}

impl Instance {
    fn public(&self) -> SocketAddr {
        self.server.public_addr
    }
}

/// Two instances on one PostgreSQL database and one Redis share a rate limit of 100 per hour:
/// 300 token requests alternating between them allow 100 ± 5 in total, and both instances
/// refuse some. A quota is shared the same way.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_rate_limits_and_quotas_through_redis() -> anyhow::Result<()> {
    let Some(redis) = redis_url_or_skip()? else {
        return Ok(());
    };
    let Some((database_url, _db)) = pg_database_or_skip().await? else {
        return Ok(());
    };
    assert_redis_answers(&redis).await?;
    // Both instances on one clock pinned to midday, so the daily quota period cannot change.
    let clock = Arc::new(gatehouse_registry::clock::ManualClock::new());
    clock.set(midday());
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let admin_id = format!("gco_admin{}", random_base62(16));
    let admin_secret = random_base62(48);
    let dir = tempfile::tempdir()?;
    let config = || {
        let mut c = Config::for_tests(database_url.clone(), dir.path().to_path_buf());
        c.secret_key = Some(key.clone());
        c.bootstrap_client_id = Some(admin_id.clone());
        c.bootstrap_client_secret = Some(admin_secret.clone());
        // One issuer and one admin URL for both, as behind a load balancer.
        c.issuer = Some("http://127.0.0.1:1".to_owned());
        c.admin_url = Some("http://127.0.0.1:2".to_owned());
        c.redis_url = Some(redis.clone());
        c.clock = clock.clone();
        c
    };
    let a = Instance {
        server: gatehouse_server::start(config()).await?,
    };
    let b = Instance {
        server: gatehouse_server::start(config()).await?,
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let token_at = |addr: SocketAddr, id: String, secret: String| {
        let http = http.clone();
        async move {
            Reply::read(
                http.post(format!("http://{addr}/oauth/token"))
                    .basic_auth(id, Some(secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await?,
            )
            .await
        }
    };
    let admin_reply = token_at(a.public(), admin_id.clone(), admin_secret.clone())
        .await?
        .expect_status(200);
    let admin_token = access_token_of(&admin_reply)?;
    let admin_addr = a.server.admin_addr;
    let post = |path: String, body: Value| {
        let (http, admin_token) = (http.clone(), admin_token.clone());
        async move {
            let reply = Reply::read(
                http.post(format!("http://{admin_addr}/admin/v1{path}"))
                    .bearer_auth(admin_token)
                    .json(&body)
                    .send()
                    .await?,
            )
            .await?;
            anyhow::ensure!(reply.status.is_success(), "POST {path}: {reply:?}");
            anyhow::Ok(reply.json())
        }
    };
    let rate = post(
        "/policies".to_owned(),
        json!({"name": unique("hundred-an-hour"), "rate_limit": {"requests": 100, "per": "hour"}}),
    )
    .await?;
    let quota = post(
        "/policies".to_owned(),
        json!({"name": unique("ten-a-day"), "quota": {"requests": 10, "per": "day"}}),
    )
    .await?;
    let collection = post(
        "/collections".to_owned(),
        json!({"name": unique("shared"), "audience": format!("https://{}.example.com", unique("shared")),
               "scopes": [{"name": "shared:read"}]}),
    )
    .await?;
    let client = post("/clients".to_owned(), json!({"name": unique("k")})).await?;
    let profile = |policy: &Value| {
        post(
            format!(
                "/clients/{}/access-profiles",
                client["id"].as_str().unwrap_or_default()
            ),
            json!({"name": unique("p"), "auth_type": "oauth2",
                   "collections": [collection["id"]], "policy_id": policy["id"]}),
        )
    };
    let rate_profile = profile(&rate).await?;
    let quota_profile = profile(&quota).await?;
    let creds = |p: &Value| -> anyhow::Result<(String, String)> {
        Ok((
            str_field(p, "oauth_client_id")?.to_owned(),
            str_field(p, "oauth_client_secret")?.to_owned(),
        ))
    };

    let (id, secret) = creds(&rate_profile)?;
    let (mut allowed, mut refused_a, mut refused_b) = (0, 0, 0);
    for i in 0..300 {
        let on_a = i % 2 == 0;
        let addr = if on_a { a.public() } else { b.public() };
        let reply = token_at(addr, id.clone(), secret.clone()).await?;
        match (reply.status.as_u16(), on_a) {
            (200, _) => {
                allowed += 1;
                assert_eq!(ratelimit_policy(&reply), (100, 3600), "{reply:?}");
            }
            (429, on_a) => {
                assert_limited(&reply, "rate_limited");
                if on_a {
                    refused_a += 1;
                } else {
                    refused_b += 1;
                }
            }
            _ => anyhow::bail!("call {i}: unexpected answer {reply:?}"),
        }
    }
    eprintln!(
        "shared limit 100/hour over two instances: {allowed} of 300 allowed; refused {refused_a} \
         on A and {refused_b} on B"
    );
    assert!(
        (95..=105).contains(&allowed),
        "100 per hour shared by both instances (±5 %): {allowed} allowed"
    );
    assert!(
        refused_a > 0 && refused_b > 0,
        "both instances enforce the shared limit: A refused {refused_a}, B refused {refused_b}"
    );

    let (id, secret) = creds(&quota_profile)?;
    let (mut allowed, mut refused_a, mut refused_b) = (0, 0, 0);
    for i in 0..20 {
        let on_a = i % 2 == 0;
        let addr = if on_a { a.public() } else { b.public() };
        let reply = token_at(addr, id.clone(), secret.clone()).await?;
        match reply.status.as_u16() {
            200 => allowed += 1,
            429 => {
                assert_limited(&reply, "quota_exceeded");
                if on_a {
                    refused_a += 1;
                } else {
                    refused_b += 1;
                }
            }
            _ => anyhow::bail!("call {i}: unexpected answer {reply:?}"),
        }
    }
    eprintln!("shared quota 10/day: {allowed} of 20 allowed; refused {refused_a} + {refused_b}");
    assert_eq!(allowed, 10, "a quota of 10 shared by both instances");
    assert!(refused_a > 0 && refused_b > 0);

    a.server.shutdown().await?;
    b.server.shutdown().await?;
    Ok(())
}
