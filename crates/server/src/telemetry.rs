//! Logs and traces: the `tracing` subscriber the binary installs (text or JSON lines filtered
//! by `GATEHOUSE_LOG`) and, when `GATEHOUSE_OTLP_ENDPOINT` is set, OpenTelemetry export of
//! request spans over OTLP/HTTP, continuing the caller's W3C `traceparent`.
//!
//! Without an endpoint nothing OpenTelemetry-related runs: no layer, no header parsing.
//! With one, the export runs on the SDK's own batch thread (a bounded queue: spans are
//! dropped, never buffered without limit, when the collector is slow or away) and the request
//! path only builds the span.

use crate::config::{Config, LogFormat, Otlp};
use anyhow::{Context, Result};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Whether request spans are exported (set once, by [`init`]).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// The installed trace pipeline, flushed by [`Telemetry::shutdown`].
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

/// Install the process's subscriber: the log lines `config.log` selects and, when
/// configured, the OpenTelemetry layer. Call once, before serving.
pub fn init(config: &Config) -> Result<Telemetry> {
    let provider = match &config.otlp {
        None => {
            logs_only(config)
                .try_init()
                .context("installing the log subscriber")?;
            None
        }
        Some(otlp) => {
            let provider = tracer_provider(otlp)?;
            logs_and_traces(config, provider.tracer("gatehouse"))
                .try_init()
                .context("installing the log subscriber")?;
            Some(provider)
        }
    };
    if let Some(otlp) = &config.otlp {
        EXPORTING.store(true, Ordering::Relaxed);
        gatehouse_jwks::remote::set_context_headers(add_trace_context);
        tracing::info!(
            endpoint = %otlp.traces_url,
            sample_ratio = otlp.sample_ratio,
            "exporting request spans over OTLP"
        );
    }
    Ok(Telemetry { provider })
}

/// The log lines: text or one JSON object a line, with the target.
fn log_lines<S>(format: LogFormat) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .with_target(true)
            .json()
            .flatten_event(true)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_target(true).boxed(),
    }
}

/// Log lines only, under one global filter: a span or event it disables costs a callsite
/// check, as before traces existed.
fn logs_only(config: &Config) -> impl tracing::Subscriber + Send + Sync + 'static {
    tracing_subscriber::registry()
        .with(log_filter(config))
        .with(log_lines(config.log_format))
}

/// Log lines and exported spans, each with its own filter: the log filter decides the lines;
/// spans are Gatehouse's own at INFO and above whatever it says, except the access log (it
/// repeats the span) and dependencies' spans.
fn logs_and_traces(
    config: &Config,
    tracer: opentelemetry_sdk::trace::SdkTracer,
) -> impl tracing::Subscriber + Send + Sync + 'static {
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(
            Targets::new()
                .with_target("gatehouse", LevelFilter::INFO)
                .with_target("gatehouse::access", LevelFilter::OFF),
        );
    tracing_subscriber::registry()
        .with(log_lines(config.log_format).with_filter(log_filter(config)))
        .with(traces)
}

/// `GATEHOUSE_LOG` (validated when the configuration was read; `info` otherwise).
fn log_filter(config: &Config) -> EnvFilter {
    EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"))
}

/// The SDK pipeline: a batch exporter to the collector, parent-based sampling (a caller's
/// `traceparent` decides for its trace; new traces are sampled at the configured ratio).
fn tracer_provider(otlp: &Otlp) -> Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(otlp.traces_url.as_str())
        .with_timeout(Duration::from_secs(10))
        .build()
        .context("building the OTLP exporter")?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "gatehouse".to_owned());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            otlp.sample_ratio,
        ))))
        .with_resource(resource)
        .build())
}

impl Telemetry {
    /// Export the spans still queued (at most 5 s), then stop the exporter.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The SDK blocks while it flushes: not on a runtime worker.
        let done = tokio::task::spawn_blocking(move || {
            provider.shutdown_with_timeout(Duration::from_secs(5))
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "flushing the OTLP exporter failed"),
            Err(e) => tracing::warn!(error = %e, "flushing the OTLP exporter failed"),
        }
    }
}

/// Whether request spans are exported (OTLP configured).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Make `span` continue the trace of the request's W3C `traceparent` (and `tracestate`)
/// header, when spans are exported. A missing or malformed header (W3C Trace Context §3.2:
/// wrong version, length, or all-zero ids) leaves the span the root of a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    if !exporting() {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Fails only when the span is disabled or has no OpenTelemetry data: nothing to join.
    let _ = span.set_parent(parent);
}

/// Name the current request's exported span `{method} {route}` once the route is known
/// (OpenTelemetry HTTP semantic conventions); nothing when spans are not exported.
pub fn name_request_span(method: &http::Method, route: &str) {
    if !exporting() {
        return;
    }
    // The span has started by now, and a started span's name changes only through
    // OpenTelemetry (recording `otel.name` would be ignored).
    tracing::Span::current()
        .context()
        .span()
        .update_name(format!("{method} {route}"));
}

/// The current span's trace context as W3C `traceparent` (and `tracestate`) headers, for an
/// outbound fetch made while serving a request (an identity provider's discovery document or
/// JWKS); nothing outside a sampled, exported span.
fn add_trace_context(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeadersMut(headers));
}

/// Write access to outbound headers for the propagator.
struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// Read access to request headers for the propagator.
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(log: &str) -> Config {
        let mut config = Config::for_tests(String::new(), std::path::PathBuf::from("."));
        config.log = log.to_owned();
        config
    }

    /// Which spans exist. Without OTLP, at `GATEHOUSE_LOG=warn` an INFO request span is
    /// disabled at its callsite (nothing built, nothing recorded) and WARN still logs. With
    /// OTLP, our INFO spans exist for export whatever the log filter says; other crates' spans,
    /// DEBUG and the access log do not.
    ///
    /// One test, not several: callsite interest is process-wide, and scoped subscribers in
    /// parallel tests would answer for each other.
    #[test]
    fn the_log_filter_decides_lines_and_the_trace_filter_spans() {
        tracing::subscriber::with_default(logs_only(&config("warn")), || {
            assert!(tracing::info_span!(target: "gatehouse_server::app", "request").is_disabled());
            assert!(!tracing::warn_span!(target: "gatehouse_server::app", "w").is_disabled());
        });
        tracing::subscriber::with_default(logs_only(&config("info")), || {
            assert!(!tracing::info_span!(target: "gatehouse_server::app", "i").is_disabled());
        });
        let provider = SdkTracerProvider::builder().build();
        let subscriber = logs_and_traces(&config("warn"), provider.tracer("test"));
        tracing::subscriber::with_default(subscriber, || {
            assert!(!tracing::info_span!(target: "gatehouse_server::app", "r").is_disabled());
            assert!(tracing::info_span!(target: "sqlx::query", "q").is_disabled());
            assert!(tracing::debug_span!(target: "gatehouse_server::app", "d").is_disabled());
            assert!(tracing::info_span!(target: "gatehouse::access", "a").is_disabled());
        });
    }

    /// A span that continues a caller's trace hands that trace to outbound fetches: the
    /// injected `traceparent` has the caller's trace id, a new span id (this span's), and the
    /// sampled flag; outside any span nothing is added.
    #[test]
    fn outbound_fetches_carry_the_served_requests_trace() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
            let parent = "00f067aa0ba902b7";
            let mut incoming = http::HeaderMap::new();
            incoming.insert(
                "traceparent",
                http::HeaderValue::from_str(&format!("00-{trace}-{parent}-01")).unwrap(),
            );
            let span = tracing::info_span!("request");
            let cx = TraceContextPropagator::new().extract(&Headers(&incoming));
            span.set_parent(cx).unwrap();
            let outbound = span.in_scope(|| {
                let mut headers = http::HeaderMap::new();
                add_trace_context(&mut headers);
                headers
            });
            let value = outbound
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let parts: Vec<&str> = value.split('-').collect();
            assert_eq!(parts.len(), 4, "{value}");
            assert_eq!(parts[0], "00");
            assert_eq!(parts[1], trace, "the caller's trace");
            assert_ne!(parts[2], parent, "our span is the parent of the fetch");
            assert_eq!(parts[3], "01");

            let mut outside = http::HeaderMap::new();
            add_trace_context(&mut outside);
            assert!(outside.is_empty(), "{outside:?}");
        });
    }
}
