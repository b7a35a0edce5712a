//! `GET /metrics` on the admin listener: Prometheus text format (OpenMetrics when `Accept`
//! asks for it), the token and HTTP counters move, labels are route templates (never raw ids),
//! no secret leaks, and the public listener does not serve it.
//!
//! The registry's counters are process-wide and tests run in parallel in one process, so
//! values are compared with `>=`, never exactly.

use gatehouse_tests::{Reply, assert_active, json, spawn_app};

/// The exposition formats the reference parser reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Prometheus,
    OpenMetrics,
}

/// Whether python3 can import the reference parser `module`; without it the test skips with
/// a reason (`Ok(false)`), or fails when `GATEHOUSE_TEST_REQUIRE_PROMETHEUS_PARSER=1` (CI).
fn reference_parser_available(module: &str) -> anyhow::Result<bool> {
    let available = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !available {
        gatehouse_tests::skip_unless_required(
            "GATEHOUSE_TEST_REQUIRE_PROMETHEUS_PARSER",
            &format!("python3 cannot import {module}"),
        )?;
    }
    Ok(available)
}

/// `body` parsed by the reference parser (`python/parse_metrics.py`): every family by name,
/// with its type and samples. Fails with the parser's message if it does not parse.
fn parse_with_reference(body: &str, format: Format) -> anyhow::Result<serde_json::Value> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, body)?;
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/parse_metrics.py");
    let mut command = std::process::Command::new("python3");
    command.arg(script).arg(&file);
    if format == Format::OpenMetrics {
        command.arg("openmetrics");
    }
    let out = command.output()?;
    assert!(
        out.status.success(),
        "the reference parser refuses /metrics ({format:?}): {}\n{body}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The value of the sample line whose name and labels are exactly `series`.
fn value_of(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_exposition_on_the_admin_listener() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    // A route with an id in its path, and a path no route matches.
    app.admin_get(&format!("/clients/{}", fx.client_id()))
        .await?
        .expect_status(200);
    app.get_public(&format!("/no/such/{}", fx.profile_id()))
        .await?
        .expect_status(404);
    // A refused token request: counted by its OAuth error code.
    let refused = app
        .http
        .post(app.public_url("/oauth/token"))
        .basic_auth(&fx.oauth_client_id, Some("not-the-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?;
    assert_eq!(refused.status(), 401);

    let r = app.get_url(&app.admin_url("/metrics")).await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8"),
        "{r:?}"
    );
    let body = r.text();

    for family in [
        "gatehouse_http_requests_total counter",
        "gatehouse_http_request_duration_seconds histogram",
        "gatehouse_http_requests_in_flight gauge",
        "gatehouse_tokens_issued_total counter",
        "gatehouse_introspections_total counter",
        "gatehouse_token_policy_refusals_total counter",
        "gatehouse_oauth_errors_total counter",
        "gatehouse_argon2_verifications_total counter",
        "gatehouse_auth_failures_total counter",
        "gatehouse_auth_throttled_total counter",
        "gatehouse_redis_errors_total counter",
        "gatehouse_cache_hits_total counter",
        "gatehouse_cache_misses_total counter",
        "gatehouse_db_pool_connections gauge",
        "gatehouse_db_pool_max gauge",
        "gatehouse_build_info gauge",
    ] {
        assert!(
            body.contains(&format!("\n# TYPE {family}\n")),
            "# TYPE {family} missing:\n{body}"
        );
    }

    let issued = value_of(&body, "gatehouse_tokens_issued_total");
    assert!(
        issued.is_some_and(|v| v >= 1.0),
        "tokens issued {issued:?}:\n{body}"
    );
    let token_ok = value_of(
        &body,
        r#"gatehouse_http_requests_total{listener="public",endpoint="/oauth/token",method="POST",status="2xx"}"#,
    );
    assert!(token_ok.is_some_and(|v| v >= 1.0), "{token_ok:?}:\n{body}");
    let introspect_ok = value_of(
        &body,
        r#"gatehouse_http_requests_total{listener="public",endpoint="/oauth/introspect",method="POST",status="2xx"}"#,
    );
    assert!(
        introspect_ok.is_some_and(|v| v >= 1.0),
        "{introspect_ok:?}:\n{body}"
    );
    let client_get = value_of(
        &body,
        r#"gatehouse_http_requests_total{listener="admin",endpoint="/admin/v1/clients/{id}",method="GET",status="2xx"}"#,
    );
    assert!(
        client_get.is_some_and(|v| v >= 1.0),
        "{client_get:?}:\n{body}"
    );
    let unmatched = value_of(
        &body,
        r#"gatehouse_http_requests_total{listener="public",endpoint="unmatched",method="GET",status="4xx"}"#,
    );
    assert!(
        unmatched.is_some_and(|v| v >= 1.0),
        "{unmatched:?}:\n{body}"
    );
    let refusals = value_of(
        &body,
        r#"gatehouse_oauth_errors_total{error="invalid_client"}"#,
    );
    assert!(refusals.is_some_and(|v| v >= 1.0), "{refusals:?}:\n{body}");
    let active = value_of(&body, r#"gatehouse_introspections_total{outcome="active"}"#);
    assert!(active.is_some_and(|v| v >= 1.0), "{active:?}:\n{body}");
    assert!(
        body.contains(r#"gatehouse_introspections_total{outcome="inactive",reason="revoked"} "#),
        "{body}"
    );

    // Histogram: cumulative buckets ending with +Inf, _sum and _count.
    let inf = value_of(
        &body,
        r#"gatehouse_http_request_duration_seconds_bucket{listener="public",endpoint="/oauth/token",le="+Inf"}"#,
    );
    let count = value_of(
        &body,
        r#"gatehouse_http_request_duration_seconds_count{listener="public",endpoint="/oauth/token"}"#,
    );
    assert!(inf.is_some_and(|v| v >= 1.0), "{inf:?}:\n{body}");
    assert_eq!(inf, count, "+Inf bucket equals _count:\n{body}");
    assert!(
        body.contains(r#"gatehouse_http_request_duration_seconds_sum{listener="public",endpoint="/oauth/token"} "#),
        "{body}"
    );
    assert!(body.contains(r#"gatehouse_build_info{version=""#), "{body}");

    // Bounded labels: route templates only, never an id.
    for line in body.lines() {
        for raw in ["cli_", "prf_", "col_", "gco_"] {
            assert!(!line.contains(raw), "raw id in a metric line: {line}");
        }
        for id in [
            fx.client_id(),
            fx.profile_id(),
            fx.collection_id(),
            fx.oauth_client_id.as_str(),
        ] {
            assert!(!line.contains(id), "id {id} in a metric line: {line}");
        }
    }
    // No secret.
    for secret in app.seen_secrets() {
        assert!(!body.contains(&secret), "a secret appears in /metrics");
    }

    // Not on the public listener.
    let r = app.get_public("/metrics").await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    Ok(())
}

/// The samples of `family` in an exposition parsed by [`parse_with_reference`]:
/// `[name, labels, value]` each.
fn samples_of(families: &serde_json::Value, family: &str) -> Vec<serde_json::Value> {
    families[family]["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Every `(family, type)` of `expected` is in the parsed exposition with that type.
#[track_caller]
fn assert_types(families: &serde_json::Value, expected: &[(&str, &str)]) {
    for (family, kind) in expected {
        assert_eq!(families[family]["type"], *kind, "{family} in {families}");
    }
}

/// A server that has issued a token and introspected it (so the token and introspection
/// series have samples).
async fn app_with_traffic() -> anyhow::Result<gatehouse_tests::TestApp> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(app)
}

/// The exposition parses with the reference Prometheus text-format parser (Python's
/// `prometheus_client`), every family has a type, and the series a dashboard needs are there
/// with their labels. Needs python3 with `prometheus_client`; skipped with a reason without
/// it unless `GATEHOUSE_TEST_REQUIRE_PROMETHEUS_PARSER=1` (CI sets it).
#[tokio::test(flavor = "multi_thread")]
async fn the_exposition_parses_with_the_reference_prometheus_parser() -> anyhow::Result<()> {
    if !reference_parser_available("prometheus_client.parser")? {
        return Ok(());
    }
    let app = app_with_traffic().await?;
    let body = app.get_url(&app.admin_url("/metrics")).await?.text();
    let families = parse_with_reference(&body, Format::Prometheus)?;
    let samples = |family: &str| samples_of(&families, family);
    assert_types(
        &families,
        &[
            ("gatehouse_tokens_issued", "counter"),
            ("gatehouse_introspections", "counter"),
            ("gatehouse_http_requests", "counter"),
            ("gatehouse_http_request_duration_seconds", "histogram"),
            ("gatehouse_http_requests_in_flight", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            ("gatehouse_build_info", "gauge"),
            ("gatehouse_http_responses", "counter"),
            ("gatehouse_redis_call_duration_seconds", "histogram"),
            ("gatehouse_argon2_admitted", "gauge"),
            ("gatehouse_listen_connected", "gauge"),
            ("gatehouse_remote_key_fetches", "counter"),
            ("gatehouse_signing_key_age_seconds", "gauge"),
        ],
    );
    // Labels: introspections by outcome and denial reason; HTTP by listener, route template,
    // method and status class; a histogram's buckets end at +Inf.
    assert!(
        samples("gatehouse_introspections")
            .iter()
            .any(|s| s[1]["outcome"] == "active")
    );
    assert!(
        samples("gatehouse_introspections")
            .iter()
            .any(|s| s[1]["reason"] == "revoked")
    );
    assert!(
        samples("gatehouse_http_requests")
            .iter()
            .any(|s| s[1]["endpoint"] == "/oauth/token" && s[1]["listener"] == "public")
    );
    assert!(
        samples("gatehouse_http_request_duration_seconds")
            .iter()
            .any(|s| s[1]["le"] == "+Inf")
    );
    // Responses by status code, per listener.
    assert!(
        samples("gatehouse_http_responses")
            .iter()
            .any(|s| s[1]["code"] == "200" && s[1]["listener"] == "public"),
        "{families}"
    );
    let age = samples("gatehouse_signing_key_age_seconds")[0][2]
        .as_f64()
        .unwrap_or(-1.0);
    assert!(age >= 0.0, "{age}");
    // The resident memory is a real size (VmRSS), not pages × a guessed page size.
    let rss = samples("process_resident_memory_bytes")[0][2]
        .as_f64()
        .unwrap_or(0.0);
    assert!(rss > 1_000_000.0, "{rss}");
    Ok(())
}

/// The default answer stays the Prometheus text format 0.0.4 (what dashboards were built on);
/// either way the answer varies on `Accept`.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_answer_is_the_prometheus_text_format() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for accept in [
        None,
        Some("*/*"),
        Some("text/plain"),
        Some("text/plain;version=0.0.4"),
    ] {
        let mut request = app.http.get(app.admin_url("/metrics"));
        if let Some(accept) = accept {
            request = request.header("accept", accept);
        }
        let r = Reply::read(request.send().await?).await?;
        assert_eq!(r.status.as_u16(), 200, "{accept:?}: {r:?}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("text/plain; version=0.0.4; charset=utf-8"),
            "{accept:?}: {r:?}"
        );
        assert_eq!(r.header("vary").as_deref(), Some("accept"), "{r:?}");
        let body = r.text();
        assert!(!body.contains("# EOF"), "{accept:?}:\n{body}");
        assert!(
            body.contains("\n# TYPE gatehouse_tokens_issued_total counter\n"),
            "{accept:?}:\n{body}"
        );
    }
    Ok(())
}

/// `Accept: application/openmetrics-text` (Prometheus asks for it first) gets OpenMetrics
/// 1.0.0, ending with `# EOF`, that the reference OpenMetrics parser reads with the same
/// families, types and labels. Needs python3 with `prometheus_client`, like the test above.
#[tokio::test(flavor = "multi_thread")]
async fn openmetrics_when_asked_for_parses_with_the_reference_parser() -> anyhow::Result<()> {
    if !reference_parser_available("prometheus_client.openmetrics.parser")? {
        return Ok(());
    }
    let app = app_with_traffic().await?;

    // What Prometheus sends.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    for accept in ["application/openmetrics-text", prometheus_accept] {
        let r = Reply::read(
            app.http
                .get(app.admin_url("/metrics"))
                .header("accept", accept)
                .send()
                .await?,
        )
        .await?;
        assert_eq!(r.status.as_u16(), 200, "{r:?}");
        assert_eq!(
            r.header("content-type").as_deref(),
            Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
            "{accept}: {r:?}"
        );
        assert_eq!(r.header("vary").as_deref(), Some("accept"), "{r:?}");
        let body = r.text();
        assert!(body.ends_with("\n# EOF\n"), "{accept}:\n{body}");
        // Counter families are named without `_total`; their samples keep it.
        assert!(
            body.contains("\n# TYPE gatehouse_tokens_issued counter\n"),
            "{body}"
        );
        assert!(body.contains("\ngatehouse_tokens_issued_total "), "{body}");
    }

    let body = Reply::read(
        app.http
            .get(app.admin_url("/metrics"))
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .send()
            .await?,
    )
    .await?
    .text();
    let families = parse_with_reference(&body, Format::OpenMetrics)?;
    let samples = |family: &str| samples_of(&families, family);
    assert_types(
        &families,
        &[
            ("gatehouse_tokens_issued", "counter"),
            ("gatehouse_introspections", "counter"),
            ("gatehouse_http_requests", "counter"),
            ("gatehouse_http_request_duration_seconds", "histogram"),
            ("gatehouse_http_requests_in_flight", "gauge"),
            ("gatehouse_http_responses", "counter"),
            ("gatehouse_token_policy_refusals", "counter"),
            ("gatehouse_argon2_verifications", "counter"),
            ("gatehouse_auth_failures", "counter"),
            ("gatehouse_auth_throttled", "counter"),
            ("gatehouse_argon2_busy", "counter"),
            ("gatehouse_redis_errors", "counter"),
            ("gatehouse_redis_call_duration_seconds", "histogram"),
            ("gatehouse_argon2_admitted", "gauge"),
            ("gatehouse_listen_connected", "gauge"),
            ("gatehouse_remote_key_fetches", "counter"),
            ("gatehouse_cache_hits", "counter"),
            ("gatehouse_cache_misses", "counter"),
            ("gatehouse_signing_key_age_seconds", "gauge"),
            ("gatehouse_db_pool_connections", "gauge"),
            ("gatehouse_db_pool_max", "gauge"),
            ("process_resident_memory_bytes", "gauge"),
            ("gatehouse_build_info", "gauge"),
        ],
    );
    assert!(
        samples("gatehouse_tokens_issued")
            .iter()
            .any(|s| s[0] == "gatehouse_tokens_issued_total" && s[2].as_f64() >= Some(1.0)),
        "{families}"
    );
    assert!(
        samples("gatehouse_introspections")
            .iter()
            .any(|s| s[1]["outcome"] == "inactive" && s[1]["reason"] == "revoked")
    );
    assert!(
        samples("gatehouse_http_requests")
            .iter()
            .any(|s| s[1]["endpoint"] == "/oauth/token"
                && s[1]["listener"] == "public"
                && s[1]["method"] == "POST"
                && s[1]["status"] == "2xx")
    );
    // The parser checked the buckets are cumulative, end at +Inf and that +Inf is _count.
    assert!(
        samples("gatehouse_http_request_duration_seconds")
            .iter()
            .any(|s| s[1]["le"] == "+Inf" && s[1]["endpoint"] == "/oauth/token")
    );
    assert!(
        samples("gatehouse_build_info")
            .iter()
            .any(|s| s[1]["version"].is_string())
    );
    Ok(())
}
