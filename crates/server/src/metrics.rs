//! Prometheus metrics: per-route HTTP counters and latency histograms recorded by a
//! middleware on both listeners, and `GET /metrics` (admin listener only) exposing them
//! together with the registry's process-wide counters, the database pool and the process.
//!
//! The exposition is encoded by `prometheus-client`: the Prometheus text format (version
//! 0.0.4) by default, OpenMetrics (1.0.0) when the `Accept` header asks for it. The counters
//! stay our own atomics, bumped on the request path as before (a shared read lock finds a
//! route's counters, no allocation once the route was seen); `Exposition`, a
//! `prometheus-client` collector, reads them at each scrape. (The crate's own labelled
//! `Family` takes a lock on every increment.)
//!
//! Label values are bounded: the endpoint is the matched route template (`/oauth/token`,
//! `/admin/v1/clients/{id}`) or `unmatched`, never a raw path; the method is one of the
//! standard methods or `OTHER`; the status is a class (`2xx`). No label carries an id or a
//! credential.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_registry::metrics::{METRICS, Metrics, Reason};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sea_orm::{DatabaseConnection, DatabaseConnectionType};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The content type of the Prometheus text format, the default answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The content type of the OpenMetrics text format, for a scraper that asks for it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds (seconds, inclusive) of the latency histogram's buckets; `+Inf` is implied.
pub const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The method labels; anything else is counted as `OTHER` (bounded cardinality).
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "OTHER",
];

/// The status class labels.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The status codes counted on their own in `gatehouse_http_responses_total`; any other is
/// `other` (bounded cardinality).
const CODES: [u16; 21] = [
    200, 201, 204, 302, 303, 304, 400, 401, 403, 404, 405, 408, 409, 413, 415, 422, 429, 431, 500,
    502, 503,
];

fn code_index(status: u16) -> usize {
    CODES
        .iter()
        .position(|c| *c == status)
        .unwrap_or(CODES.len())
}

/// The endpoint label of requests that matched no route.
const UNMATCHED: &str = "unmatched";

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// `1xx` → 0 … `5xx` → 4; non-standard codes (600–999) are counted as `5xx`.
fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, CLASSES.len()) - 1
}

/// The bucket a duration falls into (`BUCKETS.len()` is the `+Inf` bucket).
fn bucket_index(elapsed: Duration) -> usize {
    let secs = elapsed.as_secs_f64();
    BUCKETS
        .iter()
        .position(|&le| secs <= le)
        .unwrap_or(BUCKETS.len())
}

/// The counters of one route on one listener.
#[derive(Debug)]
struct EndpointStats {
    /// Requests by method and status class.
    requests: [[AtomicU64; CLASSES.len()]; METHODS.len()],
    /// Latency observations per bucket (not cumulative; the last one is `+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Total latency in nanoseconds.
    sum_nanos: AtomicU64,
}

impl EndpointStats {
    fn new() -> Self {
        Self {
            requests: std::array::from_fn(|_| std::array::from_fn(|_| AtomicU64::new(0))),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn record(&self, method: usize, class: usize, elapsed: Duration) {
        if let Some(c) = self.requests.get(method).and_then(|row| row.get(class)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = self.buckets.get(bucket_index(elapsed)) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The counters of one listener.
#[derive(Debug)]
struct ListenerStats {
    name: &'static str,
    in_flight: AtomicI64,
    /// Responses by status code ([`CODES`], then one for any other code).
    codes: [AtomicU64; CODES.len() + 1],
    /// By route template. Bounded by the router's routes (plus `unmatched`).
    endpoints: RwLock<HashMap<Arc<str>, Arc<EndpointStats>>>,
}

impl ListenerStats {
    /// The stats of `endpoint`: a read lock and no allocation once the route was seen.
    fn endpoint(&self, endpoint: &str) -> Arc<EndpointStats> {
        if let Some(stats) = self
            .endpoints
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
        {
            return stats.clone();
        }
        self.endpoints
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(Arc::from(endpoint))
            .or_insert_with(|| Arc::new(EndpointStats::new()))
            .clone()
    }
}

/// HTTP request metrics of one server: request counters by (listener, endpoint, method,
/// status class), a latency histogram by (listener, endpoint) and an in-flight gauge by
/// listener.
#[derive(Debug, Default)]
pub struct HttpMetrics {
    listeners: Mutex<Vec<Arc<ListenerStats>>>,
}

impl HttpMetrics {
    /// No listener, no observation.
    pub fn new() -> Self {
        Self::default()
    }

    fn listener(&self, name: &'static str) -> Arc<ListenerStats> {
        let mut listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(l) = listeners.iter().find(|l| l.name == name) {
            return l.clone();
        }
        let stats = Arc::new(ListenerStats {
            name,
            in_flight: AtomicI64::new(0),
            codes: [const { AtomicU64::new(0) }; CODES.len() + 1],
            endpoints: RwLock::new(HashMap::new()),
        });
        listeners.push(stats.clone());
        stats
    }

    /// Record every request `router` serves under the label `listener="<name>"`.
    ///
    /// Applied with [`Router::layer`], so it runs after routing (the matched route template
    /// is known) for every route and for the fallback; apply it last to also time the other
    /// layers and count the responses they produce (timeouts, body limits).
    pub fn track(&self, name: &'static str, router: Router) -> Router {
        let stats = self.listener(name);
        router.layer(axum::middleware::from_fn_with_state(stats, record))
    }

    /// Encode the HTTP families.
    fn encode(&self, encoder: &mut DescriptorEncoder<'_>) -> fmt::Result {
        let mut listeners: Vec<Arc<ListenerStats>> = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        listeners.sort_by_key(|l| l.name);
        let mut series: Vec<(&'static str, Arc<str>, Arc<EndpointStats>)> = Vec::new();
        for l in &listeners {
            let endpoints = l.endpoints.read().unwrap_or_else(PoisonError::into_inner);
            for (endpoint, stats) in endpoints.iter() {
                series.push((l.name, endpoint.clone(), stats.clone()));
            }
        }
        series.sort_by(|a, b| (a.0, &*a.1).cmp(&(b.0, &*b.1)));

        let mut family = encoder.encode_descriptor(
            "gatehouse_http_requests",
            "HTTP requests served, by listener, route template, method and status class.",
            None,
            MetricType::Counter,
        )?;
        for (listener, endpoint, stats) in &series {
            for (method, row) in METHODS.iter().zip(&stats.requests) {
                for (class, counter) in CLASSES.iter().zip(row) {
                    let n = counter.load(Ordering::Relaxed);
                    if n > 0 {
                        let labels = [
                            ("listener", *listener),
                            ("endpoint", &**endpoint),
                            ("method", *method),
                            ("status", *class),
                        ];
                        counter_sample(&mut family, &labels, n)?;
                    }
                }
            }
        }

        let mut family = encoder.encode_descriptor(
            "gatehouse_http_request_duration_seconds",
            "HTTP request latency in seconds (until the response head), by listener and route template.",
            None,
            MetricType::Histogram,
        )?;
        for (listener, endpoint, stats) in &series {
            let counts: Vec<u64> = stats
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let sum = Duration::from_nanos(stats.sum_nanos.load(Ordering::Relaxed));
            let labels = [("listener", *listener), ("endpoint", &**endpoint)];
            histogram_sample(
                &mut family.encode_family(&labels)?,
                &BUCKETS,
                &counts,
                sum.as_secs_f64(),
            )?;
        }

        let mut family = encoder.encode_descriptor(
            "gatehouse_http_requests_in_flight",
            "HTTP requests being served, by listener.",
            None,
            MetricType::Gauge,
        )?;
        for l in &listeners {
            family
                .encode_family(&[("listener", l.name)])?
                .encode_gauge(&l.in_flight.load(Ordering::Relaxed))?;
        }

        let mut family = encoder.encode_descriptor(
            "gatehouse_http_responses",
            "HTTP responses, by listener and status code (`other` for codes not listed).",
            None,
            MetricType::Counter,
        )?;
        for l in &listeners {
            for (i, counter) in l.codes.iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let code = CODES.get(i).map_or("other".to_owned(), u16::to_string);
                    counter_sample(&mut family, &[("listener", l.name), ("code", &code)], n)?;
                }
            }
        }
        Ok(())
    }
}

/// Decrements the in-flight gauge however the request ends (a dropped future included).
struct InFlight<'a>(&'a AtomicI64);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a AtomicI64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn record(
    State(listener): State<Arc<ListenerStats>>,
    request: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = method_index(request.method());
    let template = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, MatchedPath::as_str);
    // The access log line carries the route template (the request's span is current here).
    tracing::Span::current().record("route", tracing::field::display(template));
    crate::telemetry::name_request_span(request.method(), template);
    let endpoint = listener.endpoint(template);
    let _in_flight = InFlight::enter(&listener.in_flight);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    endpoint.record(method, class_index(status), start.elapsed());
    if let Some(c) = listener.codes.get(code_index(status)) {
        c.fetch_add(1, Ordering::Relaxed);
    }
    response
}

/// `GET /metrics`, for the admin listener only: it is unauthenticated, like most Prometheus
/// endpoints, so the admin listener must stay on a private network.
pub fn router(
    http: Arc<HttpMetrics>,
    db: DatabaseConnection,
    keys: Arc<gatehouse_jwks::KeyManager>,
    clock: Arc<dyn gatehouse_registry::clock::Clock>,
) -> Router {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition {
        http,
        db,
        keys,
        clock,
    }));
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(Arc::new(registry))
}

/// Every family `/metrics` exposes, read at each scrape: the HTTP metrics, the registry's
/// process-wide counters ([`METRICS`]), the signing key's age, the database pool and the
/// process.
struct Exposition {
    http: Arc<HttpMetrics>,
    db: DatabaseConnection,
    keys: Arc<gatehouse_jwks::KeyManager>,
    clock: Arc<dyn gatehouse_registry::clock::Clock>,
}

impl fmt::Debug for Exposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exposition").finish_non_exhaustive()
    }
}

impl Exposition {
    fn readings(&self) -> Readings {
        // From the key set in memory: a scrape (unauthenticated, like most Prometheus
        // endpoints) reads no storage.
        let signing_key_age = self
            .keys
            .current()
            .active_since()
            .map(|at| (self.clock.now() - at).num_seconds().max(0));
        Readings {
            pool: pool_stats(&self.db),
            rss: resident_memory_bytes(),
            signing_key_age,
        }
    }
}

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        encode_all(&mut encoder, &self.http, &METRICS, self.readings())
    }
}

/// What a scrape reads besides the counters.
#[derive(Debug, Default, Clone, Copy)]
struct Readings {
    pool: Option<PoolStats>,
    rss: Option<u64>,
    /// Seconds since the signing key in use began to sign.
    signing_key_age: Option<i64>,
}

/// The exposition formats `/metrics` speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The Prometheus text format 0.0.4, the default.
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when an `Accept` header lists `application/openmetrics-text` with a
    /// non-zero quality no lower than `text/plain`'s; the Prometheus text format otherwise.
    fn negotiate(headers: &HeaderMap) -> Self {
        let mut openmetrics: f32 = 0.0;
        let mut text: f32 = 0.0;
        let ranges = headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        for range in ranges {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let quality = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, q)| q.trim().parse::<f32>().ok())
                .unwrap_or(0.0);
            if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(quality);
            } else if media.eq_ignore_ascii_case("text/plain") {
                text = text.max(quality);
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    fn encode(self, out: &mut String, registry: &Registry) -> fmt::Result {
        match self {
            Self::Prometheus => prometheus_client::encoding::prometheus_text::encode(out, registry),
            Self::OpenMetrics => prometheus_client::encoding::text::encode(out, registry),
        }
    }
}

async fn metrics_handler(State(registry): State<Arc<Registry>>, headers: HeaderMap) -> Response {
    let format = Format::negotiate(&headers);
    let mut body = String::with_capacity(16 * 1024);
    let mut response = match format.encode(&mut body, &registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            )],
            body,
        )
            .into_response(),
        Err(fmt::Error) => {
            gatehouse_admin::error::ApiError::Registry(gatehouse_registry::RegistryError::Internal(
                "the metrics could not be encoded".to_owned(),
            ))
            .into_response()
        }
    };
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

/// A snapshot of the database pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolStats {
    idle: u64,
    in_use: u64,
    max: u64,
}

impl PoolStats {
    fn new(size: u32, idle: usize, max: u32) -> Self {
        let idle = u64::try_from(idle).unwrap_or(u64::MAX);
        Self {
            idle,
            in_use: u64::from(size).saturating_sub(idle),
            max: u64::from(max),
        }
    }
}

fn pool_stats(db: &DatabaseConnection) -> Option<PoolStats> {
    // Match first: the pool getters panic on another backend.
    match &db.inner {
        DatabaseConnectionType::SqlxSqlitePoolConnection(_) => {
            let pool = db.get_sqlite_connection_pool();
            Some(PoolStats::new(
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ))
        }
        DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            let pool = db.get_postgres_connection_pool();
            Some(PoolStats::new(
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ))
        }
        _ => None,
    }
}

/// Resident set size: `VmRSS` of `/proc/self/status`, which the kernel gives in kB whatever
/// the page size (`statm` counts pages, and pages are 16 KiB or 64 KiB on some arm64 kernels).
#[cfg(target_os = "linux")]
fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    vm_rss_bytes(&status)
}

/// The `VmRSS:  1234 kB` line of a `/proc/<pid>/status` text, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line.split_whitespace().skip(1);
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => Some(value.saturating_mul(1024)),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn resident_memory_bytes() -> Option<u64> {
    None
}

/// Every family, in the order of the exposition.
fn encode_all(
    encoder: &mut DescriptorEncoder<'_>,
    http: &HttpMetrics,
    counters: &Metrics,
    readings: Readings,
) -> fmt::Result {
    let Readings {
        pool,
        rss,
        signing_key_age,
    } = readings;
    http.encode(encoder)?;
    encode_counters(encoder, counters)?;
    if let Some(age) = signing_key_age {
        gauge(
            encoder,
            "gatehouse_signing_key_age_seconds",
            "Seconds since the signing key in use began to sign.",
            age,
        )?;
    }
    if let Some(pool) = pool {
        let mut family = encoder.encode_descriptor(
            "gatehouse_db_pool_connections",
            "Database pool connections, by state.",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("idle", pool.idle), ("in_use", pool.in_use)] {
            family
                .encode_family(&[("state", state)])?
                .encode_gauge(&n)?;
        }
        gauge(
            encoder,
            "gatehouse_db_pool_max",
            "Maximum size of the database pool.",
            pool.max,
        )?;
    }
    if let Some(rss) = rss {
        gauge(
            encoder,
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
            rss,
        )?;
    }
    encoder
        .encode_descriptor(
            "gatehouse_build_info",
            "Build information; the value is always 1.",
            None,
            MetricType::Gauge,
        )?
        .encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?
        .encode_gauge(&1_u64)
}

/// The registry's process-wide counters.
fn encode_counters(encoder: &mut DescriptorEncoder<'_>, m: &Metrics) -> fmt::Result {
    counter(
        encoder,
        "gatehouse_tokens_issued",
        "Access tokens signed.",
        m.tokens_issued.get(),
    )?;

    let mut family = encoder.encode_descriptor(
        "gatehouse_introspections",
        "Introspections answered, by outcome (and, when inactive, by reason).",
        None,
        MetricType::Counter,
    )?;
    counter_sample(
        &mut family,
        &[("outcome", "active")],
        m.introspections_active.get(),
    )?;
    for (reason, n) in Reason::ALL.iter().zip(&m.introspections_inactive) {
        counter_sample(
            &mut family,
            &[("outcome", "inactive"), ("reason", reason.code())],
            n.get(),
        )?;
    }

    counter(
        encoder,
        "gatehouse_token_policy_refusals",
        "Token requests refused by a policy.",
        m.token_policy_refusals.get(),
    )?;
    let mut family = encoder.encode_descriptor(
        "gatehouse_oauth_errors",
        "Refusals answered by the token, introspection and revocation endpoints, by OAuth error code.",
        None,
        MetricType::Counter,
    )?;
    for (code, n) in gatehouse_registry::metrics::OAUTH_ERRORS
        .iter()
        .zip(&m.oauth_errors)
    {
        counter_sample(&mut family, &[("error", *code)], n.get())?;
    }
    counter(
        encoder,
        "gatehouse_argon2_verifications",
        "argon2id verifications run (verified-secret cache misses).",
        m.argon2_verifications.get(),
    )?;
    counter(
        encoder,
        "gatehouse_auth_failures",
        "Failed client authentications.",
        m.auth_failures.get(),
    )?;
    counter(
        encoder,
        "gatehouse_auth_throttled",
        "Client authentications refused by the failed-attempt budget, without argon2.",
        m.auth_throttled.get(),
    )?;
    counter(
        encoder,
        "gatehouse_argon2_busy",
        "Client authentications refused at once (503) because every argon2 worker was busy and the waiting room full.",
        m.argon2_busy.get(),
    )?;
    counter(
        encoder,
        "gatehouse_redis_errors",
        "Calls to the shared (Redis) limiter that failed or timed out.",
        m.redis_errors.get(),
    )?;
    let (counts, sum) = m.redis_seconds.snapshot();
    histogram_sample(
        &mut encoder.encode_descriptor(
            "gatehouse_redis_call_duration_seconds",
            "Latency of the shared (Redis) limiter's calls that answered.",
            None,
            MetricType::Histogram,
        )?,
        &gatehouse_registry::metrics::FAST_BUCKETS,
        &counts,
        sum,
    )?;
    gauge(
        encoder,
        "gatehouse_argon2_admitted",
        "argon2id verifications running or waiting for a worker.",
        m.argon2_admitted.get(),
    )?;
    gauge(
        encoder,
        "gatehouse_listen_connected",
        "1 while this instance LISTENs for other instances' changes (PostgreSQL), else 0.",
        m.listen_connected.get(),
    )?;

    let mut family = encoder.encode_descriptor(
        "gatehouse_remote_key_fetches",
        "Fetches of remote key sets (identity providers' discovery and JWKS), by outcome.",
        None,
        MetricType::Counter,
    )?;
    let fetches = &gatehouse_jwks::remote::REMOTE_FETCHES;
    for (outcome, n) in [("ok", &fetches.ok), ("failed", &fetches.failed)] {
        counter_sample(
            &mut family,
            &[("outcome", outcome)],
            n.load(Ordering::Relaxed),
        )?;
    }

    let caches = m.caches();
    let mut family = encoder.encode_descriptor(
        "gatehouse_cache_hits",
        "Cache lookups answered from memory, by cache.",
        None,
        MetricType::Counter,
    )?;
    for (name, c) in &caches {
        counter_sample(&mut family, &[("cache", *name)], c.hits.get())?;
    }
    let mut family = encoder.encode_descriptor(
        "gatehouse_cache_misses",
        "Cache lookups that missed, by cache.",
        None,
        MetricType::Counter,
    )?;
    for (name, c) in &caches {
        counter_sample(&mut family, &[("cache", *name)], c.misses.get())?;
    }
    Ok(())
}

/// A counter family of one unlabelled sample. `name` is without `_total`: the encoder adds
/// it.
fn counter(encoder: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// A gauge family of one unlabelled sample.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: impl EncodeGaugeValue,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// One labelled sample of a counter family.
fn counter_sample(
    family: &mut MetricEncoder<'_>,
    labels: &impl EncodeLabelSet,
    value: u64,
) -> fmt::Result {
    family
        .encode_family(labels)?
        .encode_counter::<NoLabelSet, _, u64>(&value, None)
}

/// One histogram from per-bucket (not cumulative) `counts`, one per bound of `bounds` and a
/// last one for `+Inf`, and their `sum`; the encoder makes the buckets cumulative. The count
/// is the buckets' total, so `+Inf` equals `_count` even while requests are being recorded.
fn histogram_sample(
    metric: &mut MetricEncoder<'_>,
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) -> fmt::Result {
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain([f64::INFINITY])
        .zip(counts.iter().copied())
        .collect();
    let count = counts
        .iter()
        .fold(0_u64, |total, n| total.saturating_add(*n));
    metric.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A collector over fixed readings and the given HTTP metrics.
    #[derive(Debug)]
    struct Fixed {
        http: Arc<HttpMetrics>,
        readings: Readings,
    }

    impl Collector for Fixed {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
            encode_all(&mut encoder, &self.http, &METRICS, self.readings)
        }
    }

    fn registry(http: &Arc<HttpMetrics>, readings: Readings) -> Registry {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Fixed {
            http: http.clone(),
            readings,
        }));
        registry
    }

    fn render_as(http: &Arc<HttpMetrics>, readings: Readings, format: Format) -> String {
        let mut out = String::new();
        format
            .encode(&mut out, &registry(http, readings))
            .expect("encodes");
        out
    }

    fn render(http: &Arc<HttpMetrics>) -> String {
        render_as(http, Readings::default(), Format::Prometheus)
    }

    fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn resident_memory_comes_from_vm_rss_in_kilobytes() {
        let status = "Name:\tgatehouse\nVmPeak:\t  200 kB\nVmRSS:\t   51234 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(51_234 * 1024));
        assert_eq!(vm_rss_bytes("VmRSS: 12 pages"), None);
        assert_eq!(vm_rss_bytes("Name: x"), None);
        #[cfg(target_os = "linux")]
        assert!(resident_memory_bytes().is_some_and(|b| b > 1024 * 1024));
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let http = Arc::new(HttpMetrics::new());
        let x = http.listener("public").endpoint("/x");
        for elapsed in [
            Duration::ZERO,             // ≤ 0.0005
            Duration::from_micros(500), // ≤ 0.0005
            Duration::from_millis(4),   // ≤ 0.005
            Duration::from_secs(11),    // > 10 s
            Duration::from_secs(11),
            Duration::from_secs(11),
            Duration::from_millis(10_500), // > 10 s
        ] {
            x.record(2, 1, elapsed);
        }
        let out = render(&http);
        let name = "gatehouse_http_request_duration_seconds";
        let labels = "listener=\"public\",endpoint=\"/x\"";
        let buckets = lines_of(&out, &format!("{name}_bucket"));
        assert_eq!(buckets.len(), BUCKETS.len() + 1, "{out}");
        assert_eq!(
            buckets[0],
            format!("{name}_bucket{{{labels},le=\"0.0005\"}} 2")
        );
        assert_eq!(
            buckets[2],
            format!("{name}_bucket{{{labels},le=\"0.0025\"}} 2")
        );
        assert_eq!(
            buckets[3],
            format!("{name}_bucket{{{labels},le=\"0.005\"}} 3")
        );
        assert_eq!(buckets[10], format!("{name}_bucket{{{labels},le=\"1\"}} 3"));
        assert_eq!(
            buckets[13],
            format!("{name}_bucket{{{labels},le=\"10\"}} 3")
        );
        assert_eq!(
            buckets[14],
            format!("{name}_bucket{{{labels},le=\"+Inf\"}} 7")
        );
        assert!(
            out.contains(&format!("\n{name}_sum{{{labels}}} 43.5045\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("\n{name}_count{{{labels}}} 7\n")),
            "{out}"
        );
        // Monotonic.
        let values: Vec<u64> = buckets
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
    }

    #[test]
    fn bucket_bounds_are_inclusive() {
        assert_eq!(bucket_index(Duration::ZERO), 0);
        assert_eq!(bucket_index(Duration::from_micros(500)), 0);
        assert_eq!(bucket_index(Duration::from_micros(501)), 1);
        assert_eq!(bucket_index(Duration::from_secs(1)), 10);
        assert_eq!(bucket_index(Duration::from_secs(10)), 13);
        assert_eq!(bucket_index(Duration::from_secs(11)), BUCKETS.len());
    }

    #[test]
    fn label_values_are_escaped_by_the_encoder() {
        let http = Arc::new(HttpMetrics::new());
        http.listener("public")
            .endpoint("/x\\y\"z\nw")
            .record(0, 1, Duration::ZERO);
        let out = render(&http);
        assert!(
            out.contains(
                "gatehouse_http_requests_total{listener=\"public\",endpoint=\"/x\\\\y\\\"z\\nw\",method=\"GET\",status=\"2xx\"} 1\n"
            ),
            "{out}"
        );
        // The raw newline never reaches the exposition: every line is a comment or a sample.
        assert!(
            out.lines()
                .all(|l| l.starts_with('#') || l.starts_with("gatehouse_")),
            "{out}"
        );
    }

    #[test]
    fn classes_and_methods_are_bounded() {
        assert_eq!(CLASSES[class_index(100)], "1xx");
        assert_eq!(CLASSES[class_index(204)], "2xx");
        assert_eq!(CLASSES[class_index(302)], "3xx");
        assert_eq!(CLASSES[class_index(404)], "4xx");
        assert_eq!(CLASSES[class_index(503)], "5xx");
        assert_eq!(CLASSES[class_index(999)], "5xx");
        assert_eq!(METHODS[method_index(&Method::POST)], "POST");
        let custom = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(METHODS[method_index(&custom)], "OTHER");
    }

    #[test]
    fn http_metrics_render_requests_histogram_and_in_flight() {
        let http = Arc::new(HttpMetrics::new());
        let public = http.listener("public");
        let admin = http.listener("admin");
        assert!(Arc::ptr_eq(&public, &http.listener("public")));
        public
            .endpoint("/oauth/token")
            .record(2, 1, Duration::from_millis(3));
        public
            .endpoint("/oauth/token")
            .record(2, 3, Duration::from_millis(30));
        admin
            .endpoint("/admin/v1/clients/{id}")
            .record(0, 1, Duration::from_secs(20));
        let out = render(&http);
        assert!(out.contains(
            "# HELP gatehouse_http_requests_total HTTP requests served, by listener, route template, method and status class.\n# TYPE gatehouse_http_requests_total counter\n"
        ), "{out}");
        assert!(out.contains("# TYPE gatehouse_http_request_duration_seconds histogram\n"));
        assert!(out.contains(
            "gatehouse_http_requests_total{listener=\"public\",endpoint=\"/oauth/token\",method=\"POST\",status=\"2xx\"} 1\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_requests_total{listener=\"public\",endpoint=\"/oauth/token\",method=\"POST\",status=\"4xx\"} 1\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_requests_total{listener=\"admin\",endpoint=\"/admin/v1/clients/{id}\",method=\"GET\",status=\"2xx\"} 1\n"
        ), "{out}");
        // Zero series are not rendered.
        assert!(!out.contains("method=\"DELETE\""), "{out}");
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_bucket{listener=\"public\",endpoint=\"/oauth/token\",le=\"0.005\"} 1\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_bucket{listener=\"public\",endpoint=\"/oauth/token\",le=\"0.05\"} 2\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_bucket{listener=\"admin\",endpoint=\"/admin/v1/clients/{id}\",le=\"10\"} 0\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_count{listener=\"admin\",endpoint=\"/admin/v1/clients/{id}\"} 1\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_sum{listener=\"public\",endpoint=\"/oauth/token\"} 0.033\n"
        ), "{out}");
        assert!(out.contains("gatehouse_http_requests_in_flight{listener=\"public\"} 0\n"));
        {
            let _guard = InFlight::enter(&admin.in_flight);
            let out = render(&http);
            assert!(out.contains("gatehouse_http_requests_in_flight{listener=\"admin\"} 1\n"));
        }
        assert_eq!(admin.in_flight.load(Ordering::Relaxed), 0);
    }

    const FAMILIES: [&str; 24] = [
        "gatehouse_http_requests_total",
        "gatehouse_http_request_duration_seconds",
        "gatehouse_http_requests_in_flight",
        "gatehouse_tokens_issued_total",
        "gatehouse_introspections_total",
        "gatehouse_token_policy_refusals_total",
        "gatehouse_oauth_errors_total",
        "gatehouse_argon2_verifications_total",
        "gatehouse_auth_failures_total",
        "gatehouse_auth_throttled_total",
        "gatehouse_argon2_busy_total",
        "gatehouse_redis_errors_total",
        "gatehouse_cache_hits_total",
        "gatehouse_cache_misses_total",
        "gatehouse_db_pool_connections",
        "gatehouse_db_pool_max",
        "gatehouse_http_responses_total",
        "gatehouse_redis_call_duration_seconds",
        "gatehouse_argon2_admitted",
        "gatehouse_listen_connected",
        "gatehouse_remote_key_fetches_total",
        "gatehouse_signing_key_age_seconds",
        "process_resident_memory_bytes",
        "gatehouse_build_info",
    ];

    fn full_readings() -> Readings {
        let pool = PoolStats::new(3, 1, 16);
        assert_eq!(
            pool,
            PoolStats {
                idle: 1,
                in_use: 2,
                max: 16
            }
        );
        Readings {
            pool: Some(pool),
            rss: Some(4096),
            signing_key_age: Some(60),
        }
    }

    #[test]
    fn full_render_has_every_family_once() {
        let http = Arc::new(HttpMetrics::new());
        let out = render_as(&http, full_readings(), Format::Prometheus);
        for family in FAMILIES {
            assert_eq!(
                out.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{family}: {out}"
            );
            assert_eq!(
                out.matches(&format!("# HELP {family} ")).count(),
                1,
                "{family}: {out}"
            );
        }
        for reason in Reason::ALL {
            assert!(out.contains(&format!(
                "gatehouse_introspections_total{{outcome=\"inactive\",reason=\"{}\"}} ",
                reason.code()
            )));
        }
        assert!(out.contains("gatehouse_introspections_total{outcome=\"active\"} "));
        assert!(out.contains("gatehouse_cache_hits_total{cache=\"verified_secrets\"} "));
        assert!(out.contains("gatehouse_db_pool_connections{state=\"in_use\"} 2\n"));
        assert!(out.contains("gatehouse_db_pool_max 16\n"));
        assert!(out.contains("gatehouse_signing_key_age_seconds 60\n"));
        assert!(out.contains("process_resident_memory_bytes 4096\n"));
        assert!(out.contains("gatehouse_redis_call_duration_seconds_bucket{le=\"+Inf\"} "));
        assert!(out.contains(&format!(
            "gatehouse_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        let without = render(&http);
        assert!(!without.contains("gatehouse_db_pool"));
        assert!(!without.contains("process_resident_memory_bytes"));
        assert!(!without.contains("gatehouse_signing_key_age_seconds"));
    }

    #[test]
    fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
        let http = Arc::new(HttpMetrics::new());
        http.listener("public")
            .endpoint("/oauth/token")
            .record(2, 1, Duration::from_millis(3));
        let out = render_as(&http, full_readings(), Format::OpenMetrics);
        assert!(out.ends_with("\n# EOF\n"), "{out}");
        assert!(
            out.contains("# TYPE gatehouse_tokens_issued counter\n"),
            "{out}"
        );
        assert!(out.contains("\ngatehouse_tokens_issued_total "), "{out}");
        assert!(out.contains(
            "gatehouse_http_requests_total{listener=\"public\",endpoint=\"/oauth/token\",method=\"POST\",status=\"2xx\"} 1\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_bucket{le=\"+Inf\",listener=\"public\",endpoint=\"/oauth/token\"} 1\n"
        ), "{out}");
        // Bounds as floats.
        assert!(out.contains(
            "gatehouse_http_request_duration_seconds_bucket{le=\"1.0\",listener=\"public\",endpoint=\"/oauth/token\"} 1\n"
        ), "{out}");
        assert!(
            out.contains("# TYPE gatehouse_db_pool_max gauge\n"),
            "{out}"
        );
        for family in FAMILIES {
            let family = family.strip_suffix("_total").unwrap_or(family);
            assert_eq!(
                out.matches(&format!("# TYPE {family} ")).count(),
                1,
                "{family}: {out}"
            );
        }
    }

    fn accept(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        use Format::{OpenMetrics, Prometheus};
        for (values, format) in [
            (&[][..], Prometheus),
            (&["*/*"][..], Prometheus),
            (&["text/plain"][..], Prometheus),
            (&["application/openmetrics-text"][..], OpenMetrics),
            (
                &["Application/OpenMetrics-Text; version=1.0.0"][..],
                OpenMetrics,
            ),
            // What Prometheus sends: OpenMetrics preferred.
            (
                &[
                    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                ][..],
                OpenMetrics,
            ),
            (
                &["text/plain;q=0.9, application/openmetrics-text;q=0.5"][..],
                Prometheus,
            ),
            (&["application/openmetrics-text;q=0"][..], Prometheus),
            (&["application/openmetrics-text;q=bogus"][..], Prometheus),
            (
                &["text/html", "application/openmetrics-text"][..],
                OpenMetrics,
            ),
        ] {
            assert_eq!(Format::negotiate(&accept(values)), format, "{values:?}");
        }
    }

    #[derive(Debug)]
    struct Failing;

    impl Collector for Failing {
        fn encode(&self, _: DescriptorEncoder<'_>) -> fmt::Result {
            Err(fmt::Error)
        }
    }

    #[tokio::test]
    async fn an_encoding_error_is_a_json_500() {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Failing));
        let response = metrics_handler(State(Arc::new(registry)), HeaderMap::new()).await;
        assert_eq!(response.status(), 500);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"], "internal_error", "{body}");
    }

    #[tokio::test]
    async fn the_handler_negotiates_and_varies_on_accept() {
        let http = Arc::new(HttpMetrics::new());
        let registry = Arc::new(registry(&http, Readings::default()));
        let response = metrics_handler(State(registry.clone()), HeaderMap::new()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(response.headers()[header::VARY], "accept");
        let response = metrics_handler(
            State(registry),
            accept(&["application/openmetrics-text; version=1.0.0"]),
        )
        .await;
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            OPENMETRICS_CONTENT_TYPE
        );
        assert_eq!(response.headers()[header::VARY], "accept");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert!(body.ends_with(b"# EOF\n"));
    }

    #[tokio::test]
    async fn middleware_labels_route_templates_not_raw_paths() {
        use tower::ServiceExt;
        let http = Arc::new(HttpMetrics::new());
        let router = http.track(
            "public",
            Router::new().route("/things/{id}", get(|| async { "ok" })),
        );
        for uri in ["/things/abc123", "/things/def456", "/nope/xyz789"] {
            let request = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let _ = router.clone().oneshot(request).await.unwrap();
        }
        let out = render(&http);
        assert!(out.contains(
            "gatehouse_http_requests_total{listener=\"public\",endpoint=\"/things/{id}\",method=\"GET\",status=\"2xx\"} 2\n"
        ), "{out}");
        assert!(out.contains(
            "gatehouse_http_requests_total{listener=\"public\",endpoint=\"unmatched\",method=\"GET\",status=\"4xx\"} 1\n"
        ), "{out}");
        for raw in ["abc123", "def456", "xyz789", "/nope"] {
            assert!(!out.contains(raw), "{raw}: {out}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn resident_memory_is_read_on_linux() {
        assert!(resident_memory_bytes().is_some_and(|b| b > 0));
    }
}
