//! Usage reports: per profile and per client, by UTC hour or day, counting tokens issued,
//! introspections answered active for a collection, and refusals of an identified profile by
//! reason — exactly, at once (this instance's unflushed counts are included) and across a
//! restart (counters are flushed at shutdown). Admin and owner introspections are not counted.

use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_tests::{
    Auth, Reply, TestApp, Value, assert_active, assert_inactive, json, spawn_app, str_field, unique,
};

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 UTC, e.g. `2026-11-22T00:00:00Z`.
fn rfc3339(secs: i64) -> String {
    let (y, m, d) = civil(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Sums of a report's items: (tokens_issued, introspections_active, denied by reason).
fn totals(report: &Value) -> Value {
    let items = report["items"]
        .as_array()
        .unwrap_or_else(|| panic!("a report has an items array: {report}"));
    let (mut tokens, mut active) = (0, 0);
    let mut denied = serde_json::Map::new();
    for item in items {
        tokens += item["tokens_issued"]
            .as_u64()
            .unwrap_or_else(|| panic!("tokens_issued is a count: {item}"));
        active += item["introspections_active"]
            .as_u64()
            .unwrap_or_else(|| panic!("introspections_active is a count: {item}"));
        let reasons = item["denied"]
            .as_object()
            .unwrap_or_else(|| panic!("denied is an object: {item}"));
        for (reason, n) in reasons {
            let n = n.as_u64().unwrap_or_else(|| panic!("a count: {item}"));
            let sum = denied.get(reason).and_then(Value::as_u64).unwrap_or(0) + n;
            denied.insert(reason.clone(), json!(sum));
        }
    }
    json!({"tokens_issued": tokens, "introspections_active": active, "denied": denied})
}

/// `GET {path}` (asserts 200); returns the report.
async fn report(app: &TestApp, path: &str) -> anyhow::Result<Value> {
    Ok(app.admin_get(path).await?.expect_status(200).json())
}

/// Asserts that a report's items all start at a bucket boundary, are ordered, and — when
/// everything happened within one bucket — that there is exactly one item starting there.
#[track_caller]
fn assert_buckets(report: &Value, width: i64, first: i64, last: i64) {
    let items = report["items"].as_array().cloned().unwrap_or_default();
    let starts: Vec<String> = items
        .iter()
        .map(|i| i["start"].as_str().unwrap_or_default().to_owned())
        .collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(starts, sorted, "oldest first: {report}");
    for item in &items {
        let keys: Vec<&str> = item
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["denied", "introspections_active", "start", "tokens_issued"],
            "{item}"
        );
    }
    let (b0, b1) = (first.div_euclid(width), last.div_euclid(width));
    if b0 == b1 {
        assert_eq!(starts, [rfc3339(b0 * width)], "one bucket of use: {report}");
    } else {
        assert!(
            !starts.is_empty() && starts.len() <= 2,
            "the test straddled a bucket boundary: {report}"
        );
    }
}

fn introspect_form<'a>(token: &'a str, client_ip: Option<&'a str>) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![("token", token)];
    if let Some(ip) = client_ip {
        form.push(("client_ip", ip));
    }
    form
}

/// Tokens, active introspections and refusals of a profile are reported exactly; the client's
/// report adds up its profiles; `granularity=day` sums the hours; explicit windows select;
/// a restart loses nothing.
#[tokio::test(flavor = "multi_thread")]
async fn usage_reports_count_exactly_what_happened() -> anyhow::Result<()> {
    let began = unix_now();
    let mut app = spawn_app().await?;
    let policy = app
        .admin_post(
            "/policies",
            &json!({"name": "seven", "rate_limit": {"requests": 7, "per": "hour"}}),
        )
        .await?
        .expect_status(201)
        .json();
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({
                "policy_id": policy["id"],
                "ip_rules": {"default_access": "allow", "allow": [], "deny": ["203.0.113.0/24"]},
            }),
        )
        .await?;
    let rs = fx.collection_basic();
    let profile_usage = format!("/access-profiles/{}/usage", fx.profile_id());
    let client_usage = format!("/clients/{}/usage", fx.client_id());
    let consumer_ip = Some("198.51.100.7");

    // Nothing yet.
    assert_eq!(report(&app, &profile_usage).await?, json!({"items": []}));

    // 3 tokens and 4 active introspections: the 7 uses of the policy.
    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(
            app.access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
                .await?,
        );
    }
    for t in [&tokens[0], &tokens[1], &tokens[2], &tokens[0]] {
        let body = assert_active(&app.introspect(rs, &introspect_form(t, consumer_ip)).await?);
        assert!(body["rate_limit"].is_object(), "{body}");
    }
    // Over the limit: one token request and one introspection refused (rate_limited).
    app.token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?
        .expect_error(429, "rate_limited");
    let denied = app
        .introspect(rs, &introspect_form(&tokens[1], consumer_ip))
        .await?
        .json();
    assert_eq!(
        denied["gatehouse_denial"]["reason"], "rate_limited",
        "{denied}"
    );
    // Inactive for reasons of the identified profile: IP rules without client_ip (twice), a
    // denied address, another collection's look (audience).
    for _ in 0..2 {
        assert_inactive(
            &app.introspect(rs, &introspect_form(&tokens[0], None))
                .await?,
        );
    }
    assert_inactive(
        &app.introspect(rs, &introspect_form(&tokens[0], Some("203.0.113.9")))
            .await?,
    );
    let stranger = app
        .create_collection(
            &unique("stranger"),
            &format!("https://{}.example.com", unique("stranger")),
            &["stranger:read"],
        )
        .await?;
    let stranger_auth = Auth::Basic(
        str_field(&stranger, "introspection_client_id")?,
        str_field(&stranger, "introspection_client_secret")?,
    );
    assert_inactive(
        &app.introspect(stranger_auth, &introspect_form(&tokens[0], consumer_ip))
            .await?,
    );
    // Not counted: admins and the owning client, with or without client_ip, active or not.
    let admin = app.admin_token().await?;
    for ip in [consumer_ip, None] {
        app.introspect(Auth::Bearer(&admin), &introspect_form(&tokens[0], ip))
            .await?
            .expect_status(200);
        app.introspect(fx.client_basic(), &introspect_form(&tokens[0], ip))
            .await?
            .expect_status(200);
    }

    let expected_profile = json!({
        "tokens_issued": 3,
        "introspections_active": 4,
        "denied": {"rate_limited": 2, "ip_unknown": 2, "ip": 1, "audience": 1},
    });
    let hourly = report(&app, &profile_usage).await?;
    assert_eq!(totals(&hourly), expected_profile, "{hourly}");
    assert_buckets(&hourly, 3600, began, unix_now());
    let explicit = report(
        &app,
        &format!(
            "{profile_usage}?granularity=hour&from={}&to={}",
            rfc3339(began - 7200),
            rfc3339(unix_now() + 3600)
        ),
    )
    .await?;
    assert_eq!(totals(&explicit), expected_profile, "{explicit}");
    let past = report(
        &app,
        &format!("{profile_usage}?from=2020-01-01T00:00:00Z&to=2020-01-02T00:00:00Z"),
    )
    .await?;
    assert_eq!(past, json!({"items": []}), "a window without use");

    // A second profile of the same client (no policy, no IP rules), later deactivated.
    let second = app
        .create_profile(
            fx.client_id(),
            &json!({"name": unique("second"), "auth_type": "oauth2",
                    "collections": [fx.collection_id()]}),
        )
        .await?;
    let (id2, secret2) = (
        str_field(&second, "oauth_client_id")?.to_owned(),
        str_field(&second, "oauth_client_secret")?.to_owned(),
    );
    let t2 = app.access_token(&id2, &secret2, &[]).await?;
    app.access_token(&id2, &secret2, &[]).await?;
    assert_active(&app.introspect_token(rs, &t2).await?);
    app.admin_patch(
        &format!("/access-profiles/{}", str_field(&second, "id")?),
        &json!({"active": false}),
    )
    .await?
    .expect_status(200);
    for _ in 0..2 {
        assert_inactive(&app.introspect_token(rs, &t2).await?);
    }
    // A profile of another client does not show in this client's report.
    let elsewhere = app.oauth_fixture(&["elsewhere:read"], json!({})).await?;
    app.access_token(
        &elsewhere.oauth_client_id,
        &elsewhere.oauth_client_secret,
        &[],
    )
    .await?;

    let expected_second = json!({
        "tokens_issued": 2,
        "introspections_active": 1,
        "denied": {"inactive": 2},
    });
    let expected_client = json!({
        "tokens_issued": 5,
        "introspections_active": 5,
        "denied": {"rate_limited": 2, "ip_unknown": 2, "ip": 1, "audience": 1, "inactive": 2},
    });
    let second_usage = format!("/access-profiles/{}/usage", str_field(&second, "id")?);
    assert_eq!(totals(&report(&app, &second_usage).await?), expected_second);
    assert_eq!(
        totals(&report(&app, &profile_usage).await?),
        expected_profile,
        "the second profile's use is its own"
    );
    let client_hourly = report(&app, &client_usage).await?;
    assert_eq!(totals(&client_hourly), expected_client, "{client_hourly}");
    assert_buckets(&client_hourly, 3600, began, unix_now());
    let client_daily = report(&app, &format!("{client_usage}?granularity=day")).await?;
    assert_eq!(totals(&client_daily), expected_client, "{client_daily}");
    assert_buckets(&client_daily, 86_400, began, unix_now());
    let other_client = report(&app, &format!("/clients/{}/usage", elsewhere.client_id())).await?;
    assert_eq!(
        totals(&other_client),
        json!({"tokens_issued": 1, "introspections_active": 0, "denied": {}})
    );

    // A graceful restart flushes the counters: the reports are unchanged.
    let before: Vec<Value> = vec![
        report(&app, &profile_usage).await?,
        report(&app, &second_usage).await?,
        report(&app, &client_usage).await?,
        report(&app, &format!("{client_usage}?granularity=day")).await?,
    ];
    app.restart().await?;
    let after: Vec<Value> = vec![
        report(&app, &profile_usage).await?,
        report(&app, &second_usage).await?,
        report(&app, &client_usage).await?,
        report(&app, &format!("{client_usage}?granularity=day")).await?,
    ];
    assert_eq!(before, after, "usage survives a restart");
    // And counting goes on from there, stored and unflushed counts adding up.
    app.admin_patch(
        &format!("/access-profiles/{}", str_field(&second, "id")?),
        &json!({"active": true}),
    )
    .await?
    .expect_status(200);
    app.access_token(&id2, &secret2, &[]).await?;
    let second_after = totals(&report(&app, &second_usage).await?);
    assert_eq!(second_after["tokens_issued"], 3, "{second_after}");
    Ok(())
}

/// Bad report queries: granularity, window order and width, malformed times, unknown ids.
#[tokio::test(flavor = "multi_thread")]
async fn usage_queries_are_validated() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let profile_usage = format!("/access-profiles/{}/usage", fx.profile_id());
    let client_usage = format!("/clients/{}/usage", fx.client_id());
    for base in [&profile_usage, &client_usage] {
        for query in [
            "?granularity=hour",
            "?granularity=day",
            "?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z",
        ] {
            app.admin_get(&format!("{base}{query}"))
                .await?
                .expect_status(200);
        }
        let check = |reply: Reply, field: &str| {
            reply.expect_error(422, "validation_failed");
            let named = reply.json()["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["field"] == field));
            assert!(named, "the field {field} is named: {reply:?}");
        };
        check(
            app.admin_get(&format!("{base}?granularity=week")).await?,
            "granularity",
        );
        check(
            app.admin_get(&format!("{base}?granularity=minute")).await?,
            "granularity",
        );
        check(
            app.admin_get(&format!(
                "{base}?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z"
            ))
            .await?,
            "from",
        );
        check(
            app.admin_get(&format!(
                "{base}?from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z"
            ))
            .await?,
            "from",
        );
        let malformed = app
            .admin_get(&format!("{base}?from=yesterday&to=2026-01-01T00:00:00Z"))
            .await?;
        // A query string that does not parse is malformed (400), like a non-numeric `limit`;
        // 422 is for well-formed values that do not fit (`from` after `to`).
        assert_eq!(
            malformed.status, 400,
            "a malformed time is refused: {malformed:?}"
        );
    }
    app.admin_get("/access-profiles/prf_doesnotexist/usage")
        .await?
        .expect_error(404, "not_found");
    app.admin_get("/clients/cli_doesnotexist/usage")
        .await?
        .expect_error(404, "not_found");
    // Reading usage needs only the read scope; no token, no report.
    let read_only = app.read_only_admin_token().await?;
    let reply = app
        .admin_request_as(reqwest::Method::GET, &profile_usage, Some(&read_only), None)
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let reply = app
        .admin_request_as(reqwest::Method::GET, &profile_usage, None, None)
        .await?;
    assert_eq!(reply.status, 401, "{reply:?}");
    Ok(())
}
