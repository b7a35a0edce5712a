//! OpenTelemetry: with `GATEHOUSE_OTLP_ENDPOINT` the real binary exports one server span per
//! request over OTLP/HTTP (protobuf) to a collector — here a loopback HTTP server that decodes
//! what it receives with the OTLP protobuf definitions — continuing the caller's W3C
//! `traceparent` and following its sampling decision; a malformed header starts a new trace;
//! no credential reaches the collector; the queue is flushed on a graceful stop; a collector
//! that is away costs the requests nothing.

use gatehouse_tests::process::{Server, free_port, start};
use gatehouse_tests::{fresh_pg_database, random_base62, server_binary};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the collector received: the decoded spans (with their resource's service name) and
/// every raw body, for the secret search.
#[derive(Default)]
struct Received {
    spans: Vec<(String, Span)>,
    bodies: Vec<Vec<u8>>,
    paths: Vec<String>,
}

/// A loopback OTLP/HTTP collector; answers 200 to every export.
async fn collector() -> anyhow::Result<(u16, Arc<Mutex<Received>>)> {
    let received = Arc::new(Mutex::new(Received::default()));
    let state = received.clone();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
        let state = state.clone();
        async move {
            let mut r = state.lock().unwrap_or_else(|e| e.into_inner());
            r.paths.push(uri.path().to_owned());
            if let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) {
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| r.attributes.iter())
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Any::StringValue(s) => Some(s.clone()),
                            _ => None,
                        })
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            r.spans.push((service.clone(), span));
                        }
                    }
                }
            }
            r.bodies.push(body.to_vec());
            axum::http::StatusCode::OK
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, received))
}

/// A string attribute of a span.
fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            Any::IntValue(i) => Some(i.to_string()),
            Any::BoolValue(b) => Some(b.to_string()),
            Any::DoubleValue(d) => Some(d.to_string()),
            _ => None,
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The exported span whose request id is `id`, waiting up to 15 s for it.
async fn span_of(received: &Mutex<Received>, id: &str) -> anyhow::Result<(String, Span)> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        {
            let r = received.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(found) = r
                .spans
                .iter()
                .find(|(_, s)| attr(s, "request_id").as_deref() == Some(id))
            {
                return Ok(found.clone());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "no span with request_id {id} reached the collector; it received {} spans on {:?}",
                    r.spans.len(),
                    r.paths
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The binary with OTLP export to `endpoint`; `(server, public URL, admin id, admin secret)`.
async fn server_exporting_to(
    bin: &std::path::Path,
    data: &std::path::Path,
    database_url: &str,
    endpoint: &str,
    schedule_delay_ms: u64,
) -> anyhow::Result<(Server, String, String, String)> {
    let (public_port, admin_port) = (free_port()?, free_port()?);
    let (admin_id, admin_secret) = (format!("gco_{}", random_base62(22)), random_base62(43));
    let mut env = BTreeMap::new();
    for (k, v) in [
        ("GATEHOUSE_DATABASE_URL", database_url.to_owned()),
        ("GATEHOUSE_PUBLIC_ADDR", format!("127.0.0.1:{public_port}")),
        ("GATEHOUSE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}")),
        ("GATEHOUSE_DATA_DIR", data.display().to_string()),
        ("GATEHOUSE_BOOTSTRAP_CLIENT_ID", admin_id.clone()),
        ("GATEHOUSE_BOOTSTRAP_CLIENT_SECRET", admin_secret.clone()),
        (
            "GATEHOUSE_SECRET_KEY",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                rand::random::<[u8; 32]>(),
            ),
        ),
        // Spans are exported whatever the log filter says.
        ("GATEHOUSE_LOG", "warn".to_owned()),
        ("GATEHOUSE_OTLP_ENDPOINT", endpoint.to_owned()),
        ("OTEL_BSP_SCHEDULE_DELAY", schedule_delay_ms.to_string()),
    ] {
        env.insert(k.to_owned(), v);
    }
    let server = start(bin, &env, &[]).await?;
    let public = server.public.clone();
    Ok((server, public, admin_id, admin_secret))
}

/// The database for one server of these tests: a fresh PostgreSQL database in the
/// PostgreSQL pass, else a SQLite file in `dir`.
async fn database(dir: &std::path::Path) -> anyhow::Result<(String, Option<impl Drop>)> {
    Ok(match fresh_pg_database().await? {
        Some((url, guard)) => (url, Some(guard)),
        None => (format!("sqlite://{}/gh.db?mode=rwc", dir.display()), None),
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn request_spans_continue_the_callers_trace_and_carry_no_credential() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let (port, received) = collector().await?;
    let dir = tempfile::tempdir()?;
    let (database_url, _db) = database(dir.path()).await?;
    let (_server, public, admin_id, admin_secret) = server_exporting_to(
        &bin,
        dir.path(),
        &database_url,
        &format!("http://127.0.0.1:{port}"),
        100,
    )
    .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let trace_id = hex(&rand::random::<[u8; 16]>());
    let parent_id = hex(&rand::random::<[u8; 8]>());

    // A caller's trace the caller did not sample: followed, so nothing is exported for it.
    let unsampled_trace = hex(&rand::random::<[u8; 16]>());
    let unsampled = format!("unsampled-{}", random_base62(8));
    http.get(format!("{public}/.well-known/openid-configuration"))
        .header(
            "traceparent",
            format!("00-{unsampled_trace}-{parent_id}-00"),
        )
        .header("x-request-id", &unsampled)
        .send()
        .await?
        .error_for_status()?;

    // A token request inside the caller's sampled trace.
    let joined = format!("joined-{}", random_base62(8));
    let token: serde_json::Value = http
        .post(format!("{public}/oauth/token"))
        .basic_auth(&admin_id, Some(&admin_secret))
        .header("traceparent", format!("00-{trace_id}-{parent_id}-01"))
        .header("x-request-id", &joined)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access_token = token["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!access_token.is_empty(), "{token}");

    // An introspection carrying the token in its body: a new trace (no traceparent).
    let fresh = format!("fresh-{}", random_base62(8));
    http.post(format!("{public}/oauth/introspect"))
        .basic_auth(&admin_id, Some(&admin_secret))
        .header("x-request-id", &fresh)
        .form(&[("token", access_token.as_str())])
        .send()
        .await?
        .error_for_status()?;

    // A malformed traceparent (all-zero trace id, W3C Trace Context §3.2.2.3): a new trace.
    let malformed = format!("malformed-{}", random_base62(8));
    http.get(format!("{public}/nowhere"))
        .header(
            "traceparent",
            format!("00-{}-{parent_id}-01", "0".repeat(32)),
        )
        .header("x-request-id", &malformed)
        .send()
        .await?;

    let (service, span) = span_of(&received, &joined).await?;
    assert_eq!(service, "gatehouse");
    assert_eq!(
        hex(&span.trace_id),
        trace_id,
        "the caller's trace continues"
    );
    assert_eq!(
        hex(&span.parent_span_id),
        parent_id,
        "the caller's span is the parent"
    );
    assert_eq!(span.name, "POST /oauth/token", "{span:?}");
    assert_eq!(span.kind, 2, "a server span (SPAN_KIND_SERVER)");
    assert_eq!(attr(&span, "route").as_deref(), Some("/oauth/token"));
    assert_eq!(
        attr(&span, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(attr(&span, "client_id").as_deref(), Some(admin_id.as_str()));

    let (_, span) = span_of(&received, &fresh).await?;
    assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
    assert_ne!(hex(&span.trace_id), trace_id);
    assert_eq!(span.name, "POST /oauth/introspect");

    let (_, span) = span_of(&received, &malformed).await?;
    assert!(span.parent_span_id.is_empty(), "a root span: {span:?}");
    assert_ne!(hex(&span.trace_id), "0".repeat(32));
    assert_eq!(
        attr(&span, "http.response.status_code").as_deref(),
        Some("404")
    );

    let r = received.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        r.paths.iter().all(|p| p == "/v1/traces"),
        "spans are POSTed to <endpoint>/v1/traces: {:?}",
        r.paths
    );
    assert!(
        !r.spans.iter().any(
            |(_, s)| attr(s, "request_id").as_deref() == Some(unsampled.as_str())
                || hex(&s.trace_id) == unsampled_trace
        ),
        "a trace its caller did not sample is not exported"
    );
    for body in &r.bodies {
        let text = String::from_utf8_lossy(body);
        for secret in [admin_secret.as_str(), access_token.as_str(), "Basic "] {
            assert!(!text.contains(secret), "a credential reached the collector");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_flushes_spans_and_a_missing_collector_costs_nothing() -> anyhow::Result<()>
{
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let http = reqwest::Client::builder().no_proxy().build()?;

    // Nothing listens on the endpoint: requests are served as usual, without waiting for it.
    let dir = tempfile::tempdir()?;
    let (database_url, _db) = database(dir.path()).await?;
    let away = free_port()?;
    let (server, public, _, _) = server_exporting_to(
        &bin,
        dir.path(),
        &database_url,
        &format!("http://127.0.0.1:{away}/"),
        50,
    )
    .await?;
    let started = Instant::now();
    for _ in 0..20 {
        http.get(format!("{public}/.well-known/openid-configuration"))
            .send()
            .await?
            .error_for_status()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "requests waited for the collector: {:?}",
        started.elapsed()
    );
    drop(server);

    // A long export delay: the span is still queued when SIGTERM arrives, and the graceful
    // stop exports it.
    let (port, received) = collector().await?;
    let dir = tempfile::tempdir()?;
    let (database_url, _db) = database(dir.path()).await?;
    let (mut server, public, _, _) = server_exporting_to(
        &bin,
        dir.path(),
        &database_url,
        &format!("http://127.0.0.1:{port}/v1/traces"),
        600_000,
    )
    .await?;
    let id = format!("last-{}", random_base62(8));
    http.get(format!("{public}/oauth/jwks"))
        .header("x-request-id", &id)
        .send()
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .spans
            .is_empty(),
        "exported before the delay: the flush on stop would not be tested"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.child.try_wait()?.is_none() {
        anyhow::ensure!(Instant::now() < deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, span) = span_of(&received, &id).await?;
    assert!(span.name.starts_with("GET "), "{span:?}");
    Ok(())
}
