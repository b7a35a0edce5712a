//! Prometheus metrics: per-route HTTP counters and latency histograms recorded by a
//! middleware on both listeners, and `GET /metrics` (admin listener only) rendering them
//! together with the registry's process-wide counters, the database pool and the process in
//! the Prometheus text exposition format (version 0.0.4), written by hand.
//!
//! Label values are bounded: the endpoint is the matched route template (`/oauth/token`,
//! `/admin/v1/clients/{id}`) or `unmatched`, never a raw path; the method is one of the
//! standard methods or `OTHER`; the status is a class (`2xx`). No label carries an id or a
//! credential.

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gatehouse_registry::metrics::{METRICS, Metrics, Reason};
use sea_orm::{DatabaseConnection, DatabaseConnectionType};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

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

    /// Render the HTTP metrics.
    fn render(&self, out: &mut String) {
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

        header(
            out,
            "gatehouse_http_requests_total",
            "counter",
            "HTTP requests served, by listener, route template, method and status class.",
        );
        for (listener, endpoint, stats) in &series {
            for (m, row) in METHODS.iter().zip(&stats.requests) {
                for (class, counter) in CLASSES.iter().zip(row) {
                    let n = counter.load(Ordering::Relaxed);
                    if n > 0 {
                        sample(
                            out,
                            "gatehouse_http_requests_total",
                            &[
                                ("listener", listener),
                                ("endpoint", endpoint),
                                ("method", m),
                                ("status", class),
                            ],
                            n,
                        );
                    }
                }
            }
        }

        header(
            out,
            "gatehouse_http_request_duration_seconds",
            "histogram",
            "HTTP request latency in seconds (until the response head), by listener and route template.",
        );
        for (listener, endpoint, stats) in &series {
            let counts: Vec<u64> = stats
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let sum = Duration::from_nanos(stats.sum_nanos.load(Ordering::Relaxed));
            render_histogram(
                out,
                "gatehouse_http_request_duration_seconds",
                &[("listener", listener), ("endpoint", endpoint)],
                &counts,
                sum.as_secs_f64(),
            );
        }

        header(
            out,
            "gatehouse_http_requests_in_flight",
            "gauge",
            "HTTP requests being served, by listener.",
        );
        for l in &listeners {
            sample(
                out,
                "gatehouse_http_requests_in_flight",
                &[("listener", l.name)],
                l.in_flight.load(Ordering::Relaxed),
            );
        }

        header(
            out,
            "gatehouse_http_responses_total",
            "counter",
            "HTTP responses, by listener and status code (`other` for codes not listed).",
        );
        for l in &listeners {
            for (i, counter) in l.codes.iter().enumerate() {
                let n = counter.load(Ordering::Relaxed);
                if n > 0 {
                    let code = CODES.get(i).map_or("other".to_owned(), u16::to_string);
                    sample(
                        out,
                        "gatehouse_http_responses_total",
                        &[("listener", l.name), ("code", &code)],
                        n,
                    );
                }
            }
        }
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
    Router::new()
        .route("/metrics", get(metrics_handler))
        .with_state(Arc::new(Scrape {
            http,
            db,
            keys,
            clock,
        }))
}

/// What `/metrics` reads.
struct Scrape {
    http: Arc<HttpMetrics>,
    db: DatabaseConnection,
    keys: Arc<gatehouse_jwks::KeyManager>,
    clock: Arc<dyn gatehouse_registry::clock::Clock>,
}

/// What a scrape reads besides the counters.
#[derive(Debug, Default, Clone, Copy)]
struct Readings {
    pool: Option<PoolStats>,
    rss: Option<u64>,
    /// Seconds since the signing key in use began to sign.
    signing_key_age: Option<i64>,
}

async fn metrics_handler(State(state): State<Arc<Scrape>>) -> Response {
    // From the key set in memory: a scrape (unauthenticated, like most Prometheus endpoints)
    // reads no storage.
    let signing_key_age = state
        .keys
        .current()
        .active_since()
        .map(|at| (state.clock.now() - at).num_seconds().max(0));
    let readings = Readings {
        pool: pool_stats(&state.db),
        rss: resident_memory_bytes(),
        signing_key_age,
    };
    let body = render(&state.http, &METRICS, readings);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        body,
    )
        .into_response()
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

/// The whole exposition.
fn render(http: &HttpMetrics, counters: &Metrics, readings: Readings) -> String {
    let Readings {
        pool,
        rss,
        signing_key_age,
    } = readings;
    let mut out = String::with_capacity(8 * 1024);
    http.render(&mut out);
    render_counters(&mut out, counters);
    if let Some(age) = signing_key_age {
        header(
            &mut out,
            "gatehouse_signing_key_age_seconds",
            "gauge",
            "Seconds since the signing key in use began to sign.",
        );
        sample(&mut out, "gatehouse_signing_key_age_seconds", &[], age);
    }
    if let Some(pool) = pool {
        header(
            &mut out,
            "gatehouse_db_pool_connections",
            "gauge",
            "Database pool connections, by state.",
        );
        sample(
            &mut out,
            "gatehouse_db_pool_connections",
            &[("state", "idle")],
            pool.idle,
        );
        sample(
            &mut out,
            "gatehouse_db_pool_connections",
            &[("state", "in_use")],
            pool.in_use,
        );
        header(
            &mut out,
            "gatehouse_db_pool_max",
            "gauge",
            "Maximum size of the database pool.",
        );
        sample(&mut out, "gatehouse_db_pool_max", &[], pool.max);
    }
    if let Some(rss) = rss {
        header(
            &mut out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        sample(&mut out, "process_resident_memory_bytes", &[], rss);
    }
    header(
        &mut out,
        "gatehouse_build_info",
        "gauge",
        "Build information; the value is always 1.",
    );
    sample(
        &mut out,
        "gatehouse_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    out
}

/// The registry's process-wide counters.
fn render_counters(out: &mut String, m: &Metrics) {
    let simple = |out: &mut String, name: &str, help: &str, value: u64| {
        header(out, name, "counter", help);
        sample(out, name, &[], value);
    };
    simple(
        out,
        "gatehouse_tokens_issued_total",
        "Access tokens signed.",
        m.tokens_issued.get(),
    );

    header(
        out,
        "gatehouse_introspections_total",
        "counter",
        "Introspections answered, by outcome (and, when inactive, by reason).",
    );
    sample(
        out,
        "gatehouse_introspections_total",
        &[("outcome", "active")],
        m.introspections_active.get(),
    );
    for (reason, counter) in Reason::ALL.iter().zip(&m.introspections_inactive) {
        sample(
            out,
            "gatehouse_introspections_total",
            &[("outcome", "inactive"), ("reason", reason.code())],
            counter.get(),
        );
    }

    simple(
        out,
        "gatehouse_token_policy_refusals_total",
        "Token requests refused by a policy.",
        m.token_policy_refusals.get(),
    );
    simple(
        out,
        "gatehouse_argon2_verifications_total",
        "argon2id verifications run (verified-secret cache misses).",
        m.argon2_verifications.get(),
    );
    simple(
        out,
        "gatehouse_auth_failures_total",
        "Failed client authentications.",
        m.auth_failures.get(),
    );
    simple(
        out,
        "gatehouse_auth_throttled_total",
        "Client authentications refused by the failed-attempt budget, without argon2.",
        m.auth_throttled.get(),
    );
    simple(
        out,
        "gatehouse_argon2_busy_total",
        "Client authentications refused at once (503) because every argon2 worker was busy and the waiting room full.",
        m.argon2_busy.get(),
    );
    simple(
        out,
        "gatehouse_redis_errors_total",
        "Calls to the shared (Redis) limiter that failed or timed out.",
        m.redis_errors.get(),
    );
    header(
        out,
        "gatehouse_redis_call_duration_seconds",
        "histogram",
        "Latency of the shared (Redis) limiter's calls that answered.",
    );
    let (counts, sum) = m.redis_seconds.snapshot();
    render_histogram_with(
        out,
        "gatehouse_redis_call_duration_seconds",
        &[],
        &gatehouse_registry::metrics::FAST_BUCKETS,
        &counts,
        sum,
    );
    header(
        out,
        "gatehouse_argon2_admitted",
        "gauge",
        "argon2id verifications running or waiting for a worker.",
    );
    sample(
        out,
        "gatehouse_argon2_admitted",
        &[],
        m.argon2_admitted.get(),
    );
    header(
        out,
        "gatehouse_listen_connected",
        "gauge",
        "1 while this instance LISTENs for other instances' changes (PostgreSQL), else 0.",
    );
    sample(
        out,
        "gatehouse_listen_connected",
        &[],
        m.listen_connected.get(),
    );
    header(
        out,
        "gatehouse_remote_key_fetches_total",
        "counter",
        "Fetches of remote key sets (identity providers' discovery and JWKS), by outcome.",
    );
    let fetches = &gatehouse_jwks::remote::REMOTE_FETCHES;
    for (outcome, n) in [("ok", &fetches.ok), ("failed", &fetches.failed)] {
        sample(
            out,
            "gatehouse_remote_key_fetches_total",
            &[("outcome", outcome)],
            n.load(Ordering::Relaxed),
        );
    }

    let caches = m.caches();
    header(
        out,
        "gatehouse_cache_hits_total",
        "counter",
        "Cache lookups answered from memory, by cache.",
    );
    for (name, c) in &caches {
        sample(
            out,
            "gatehouse_cache_hits_total",
            &[("cache", name)],
            c.hits.get(),
        );
    }
    header(
        out,
        "gatehouse_cache_misses_total",
        "counter",
        "Cache lookups that missed, by cache.",
    );
    for (name, c) in &caches {
        sample(
            out,
            "gatehouse_cache_misses_total",
            &[("cache", name)],
            c.misses.get(),
        );
    }
}

/// `# HELP` and `# TYPE` lines.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str("# HELP ");
    out.push_str(name);
    out.push(' ');
    escape_help(out, help);
    out.push_str("\n# TYPE ");
    out.push_str(name);
    out.push(' ');
    out.push_str(kind);
    out.push('\n');
}

/// One sample line: `name{label="value",...} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    push_labels(out, labels, None);
    let _ = writeln!(out, " {value}");
}

fn push_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    out.push('}');
}

/// A histogram's `_bucket` (cumulative, ending with `+Inf`), `_sum` and `_count` lines.
/// `counts` holds the per-bucket (not cumulative) observations, one per [`BUCKETS`] bound
/// and a last one for `+Inf`.
fn render_histogram(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    counts: &[u64],
    sum: f64,
) {
    render_histogram_with(out, name, labels, &BUCKETS, counts, sum);
}

/// [`render_histogram`] with other bucket bounds.
fn render_histogram_with(
    out: &mut String,
    name: &str,
    labels: &[(&str, &str)],
    bounds: &[f64],
    counts: &[u64],
    sum: f64,
) {
    let bucket = format!("{name}_bucket");
    let mut cumulative: u64 = 0;
    for (i, n) in counts.iter().enumerate() {
        cumulative = cumulative.saturating_add(*n);
        let le = bounds
            .get(i)
            .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
        out.push_str(&bucket);
        push_labels(out, labels, Some(&le));
        let _ = writeln!(out, " {cumulative}");
    }
    sample(out, &format!("{name}_sum"), labels, sum);
    sample(out, &format!("{name}_count"), labels, cumulative);
}

/// Label values escape `\`, `"` and newlines.
fn escape_label_value(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text escapes `\` and newlines.
fn escape_help(out: &mut String, help: &str) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_comes_from_vm_rss_in_kilobytes() {
        let status = "Name:\tgatehouse\nVmPeak:\t  200 kB\nVmRSS:\t   51234 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_bytes(status), Some(51_234 * 1024));
        assert_eq!(vm_rss_bytes("VmRSS: 12 pages"), None);
        assert_eq!(vm_rss_bytes("Name: x"), None);
        #[cfg(target_os = "linux")]
        assert!(resident_memory_bytes().is_some_and(|b| b > 1024 * 1024));
    }

    fn lines_of<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_inf() {
        let mut out = String::new();
        let mut counts = vec![0u64; BUCKETS.len() + 1];
        counts[0] = 2; // ≤ 0.0005
        counts[3] = 1; // ≤ 0.005
        counts[BUCKETS.len()] = 4; // > 10 s
        render_histogram(&mut out, "h", &[("endpoint", "/x")], &counts, 42.5);
        let buckets = lines_of(&out, "h_bucket");
        assert_eq!(buckets.len(), BUCKETS.len() + 1);
        assert_eq!(buckets[0], "h_bucket{endpoint=\"/x\",le=\"0.0005\"} 2");
        assert_eq!(buckets[2], "h_bucket{endpoint=\"/x\",le=\"0.0025\"} 2");
        assert_eq!(buckets[3], "h_bucket{endpoint=\"/x\",le=\"0.005\"} 3");
        assert_eq!(buckets[10], "h_bucket{endpoint=\"/x\",le=\"1\"} 3");
        assert_eq!(buckets[13], "h_bucket{endpoint=\"/x\",le=\"10\"} 3");
        assert_eq!(buckets[14], "h_bucket{endpoint=\"/x\",le=\"+Inf\"} 7");
        assert!(out.contains("\nh_sum{endpoint=\"/x\"} 42.5\n"), "{out}");
        assert!(out.ends_with("h_count{endpoint=\"/x\"} 7\n"), "{out}");
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
    fn label_values_and_help_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("a", "x\\y\"z\nw"), ("b", "plain")], 1);
        assert_eq!(out, "m{a=\"x\\\\y\\\"z\\nw\",b=\"plain\"} 1\n");
        let mut out = String::new();
        header(&mut out, "m", "counter", "back\\slash \"quoted\"\nnext");
        assert_eq!(
            out,
            "# HELP m back\\\\slash \"quoted\"\\nnext\n# TYPE m counter\n"
        );
        let mut out = String::new();
        sample(&mut out, "m", &[], 3);
        assert_eq!(out, "m 3\n");
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
        let http = HttpMetrics::new();
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
        let mut out = String::new();
        http.render(&mut out);
        assert!(out.contains("# TYPE gatehouse_http_requests_total counter\n"));
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
            let mut out = String::new();
            http.render(&mut out);
            assert!(out.contains("gatehouse_http_requests_in_flight{listener=\"admin\"} 1\n"));
        }
        assert_eq!(admin.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn full_render_has_every_family_once() {
        let http = HttpMetrics::new();
        let pool = PoolStats::new(3, 1, 16);
        assert_eq!(
            pool,
            PoolStats {
                idle: 1,
                in_use: 2,
                max: 16
            }
        );
        let out = render(
            &http,
            &METRICS,
            Readings {
                pool: Some(pool),
                rss: Some(4096),
                signing_key_age: Some(60),
            },
        );
        for family in [
            "gatehouse_http_requests_total",
            "gatehouse_http_request_duration_seconds",
            "gatehouse_http_requests_in_flight",
            "gatehouse_tokens_issued_total",
            "gatehouse_introspections_total",
            "gatehouse_token_policy_refusals_total",
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
        ] {
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
        assert!(out.contains("process_resident_memory_bytes 4096\n"));
        assert!(out.contains(&format!(
            "gatehouse_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        let without = render(&http, &METRICS, Readings::default());
        assert!(!without.contains("gatehouse_db_pool"));
        assert!(!without.contains("process_resident_memory_bytes"));
    }

    #[tokio::test]
    async fn middleware_labels_route_templates_not_raw_paths() {
        use tower::ServiceExt;
        let http = HttpMetrics::new();
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
        let mut out = String::new();
        http.render(&mut out);
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
