//! Process-wide counters for `/metrics`: lock-free atomics, bumped on the hot paths and read
//! by the server's Prometheus exporter. Nothing here carries a credential or an id, so label
//! cardinality stays fixed.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Add one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Counter {
    fn default() -> Self {
        Self::new()
    }
}

/// A value that goes up and down.
#[derive(Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Self {
        Self(AtomicI64::new(0))
    }

    /// Add one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// Take one away.
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Set it.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Self::new()
    }
}

/// Upper bounds (seconds) of [`Histogram`] buckets: 0.25 ms to 1 s; `+Inf` is implied.
pub const FAST_BUCKETS: [f64; 11] = [
    0.000_25, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A latency histogram with the [`FAST_BUCKETS`], lock-free.
#[derive(Debug)]
pub struct Histogram {
    buckets: [AtomicU64; 12],
    sum_nanos: AtomicU64,
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Self {
            buckets: [const { AtomicU64::new(0) }; 12],
            sum_nanos: AtomicU64::new(0),
        }
    }

    /// Record one observation.
    pub fn observe(&self, elapsed: std::time::Duration) {
        let secs = elapsed.as_secs_f64();
        let i = FAST_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(FAST_BUCKETS.len());
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Per-bucket (not cumulative) counts, the last for `+Inf`, and the sum in seconds.
    pub fn snapshot(&self) -> (Vec<u64>, f64) {
        (
            self.buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
            std::time::Duration::from_nanos(self.sum_nanos.load(Ordering::Relaxed)).as_secs_f64(),
        )
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// Hits and misses of one cache.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Lookups answered from memory.
    pub hits: Counter,
    /// Lookups that went to the database (or were recomputed).
    pub misses: Counter,
}

impl CacheCounters {
    /// Zeroed counters.
    pub const fn new() -> Self {
        Self {
            hits: Counter::new(),
            misses: Counter::new(),
        }
    }

    /// Count one lookup.
    pub fn record(&self, hit: bool) {
        if hit {
            self.hits.inc();
        } else {
            self.misses.inc();
        }
    }
}

pub use crate::decision::Reason;

/// The error codes the OAuth endpoints (token, introspection, revocation) answer with
/// (RFC 6749 §5.2, RFC 6750 §3.1, and `rate_limited` / `quota_exceeded` for policies), in
/// the index order of [`Metrics::oauth_errors`]; anything else counts as the last, `other`.
pub const OAUTH_ERRORS: [&str; 13] = [
    "invalid_request",
    "invalid_client",
    "invalid_token",
    "invalid_grant",
    "unauthorized_client",
    "invalid_scope",
    "invalid_target",
    "unsupported_grant_type",
    "rate_limited",
    "quota_exceeded",
    "temporarily_unavailable",
    "server_error",
    "other",
];

/// The process's counters.
#[derive(Debug)]
pub struct Metrics {
    /// Access tokens signed.
    pub tokens_issued: Counter,
    /// Introspections answered active.
    pub introspections_active: Counter,
    /// Introspections answered inactive, by [`Reason`] (index order of [`Reason::ALL`]).
    pub introspections_inactive: [Counter; 11],
    /// Token requests refused by a policy.
    pub token_policy_refusals: Counter,
    /// Refusals answered by the OAuth endpoints, by error code ([`OAUTH_ERRORS`] order).
    pub oauth_errors: [Counter; OAUTH_ERRORS.len()],
    /// argon2id verifications actually run (cache misses of the verified-secret cache).
    pub argon2_verifications: Counter,
    /// Client authentications refused by the failed-attempt budget, without argon2.
    pub auth_throttled: Counter,
    /// argon2id calls refused at once because every worker was busy and the waiting room
    /// full (answered 503 `temporarily_unavailable`).
    pub argon2_busy: Counter,
    /// Failed client authentications.
    pub auth_failures: Counter,
    /// Calls to the shared (Redis) limiter that failed or timed out.
    pub redis_errors: Counter,
    /// Latency of the shared (Redis) limiter's calls that answered.
    pub redis_seconds: Histogram,
    /// argon2id calls running or waiting for a worker (the waiting room's occupancy).
    pub argon2_admitted: Gauge,
    /// 1 while this instance LISTENs for other instances' changes (PostgreSQL), else 0.
    pub listen_connected: Gauge,
    /// Profile snapshots.
    pub cache_profiles: CacheCounters,
    /// Collection snapshots.
    pub cache_collections: CacheCounters,
    /// API keys by digest.
    pub cache_api_keys: CacheCounters,
    /// Revoked-token lookups.
    pub cache_revocations: CacheCounters,
    /// Verified secrets (argon2 avoided on a hit).
    pub cache_verified_secrets: CacheCounters,
    /// Verified access tokens (signature check avoided on a hit).
    pub cache_verified_tokens: CacheCounters,
}

impl Metrics {
    const fn new() -> Self {
        Self {
            tokens_issued: Counter::new(),
            introspections_active: Counter::new(),
            introspections_inactive: [const { Counter::new() }; 11],
            token_policy_refusals: Counter::new(),
            oauth_errors: [const { Counter::new() }; OAUTH_ERRORS.len()],
            argon2_verifications: Counter::new(),
            auth_throttled: Counter::new(),
            argon2_busy: Counter::new(),
            auth_failures: Counter::new(),
            redis_errors: Counter::new(),
            redis_seconds: Histogram::new(),
            argon2_admitted: Gauge::new(),
            listen_connected: Gauge::new(),
            cache_profiles: CacheCounters::new(),
            cache_collections: CacheCounters::new(),
            cache_api_keys: CacheCounters::new(),
            cache_revocations: CacheCounters::new(),
            cache_verified_secrets: CacheCounters::new(),
            cache_verified_tokens: CacheCounters::new(),
        }
    }

    /// Count an inactive introspection.
    pub fn inactive(&self, reason: Reason) {
        if let Some(c) = self.introspections_inactive.get(reason.index()) {
            c.inc();
        }
    }

    /// Count one refusal answered with this OAuth error code.
    pub fn oauth_error(&self, code: &str) {
        let i = OAUTH_ERRORS
            .iter()
            .position(|c| *c == code)
            .unwrap_or(OAUTH_ERRORS.len() - 1);
        if let Some(c) = self.oauth_errors.get(i) {
            c.inc();
        }
    }

    /// The caches, by the name `/metrics` gives them.
    pub fn caches(&self) -> [(&'static str, &CacheCounters); 6] {
        [
            ("profiles", &self.cache_profiles),
            ("collections", &self.cache_collections),
            ("api_keys", &self.cache_api_keys),
            ("revocations", &self.cache_revocations),
            ("verified_secrets", &self.cache_verified_secrets),
            ("verified_tokens", &self.cache_verified_tokens),
        ]
    }
}

/// The counters of this process.
pub static METRICS: Metrics = Metrics::new();

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_errors_count_by_code_and_the_unknown_as_other() {
        let m = Metrics::new();
        m.oauth_error("invalid_client");
        m.oauth_error("invalid_client");
        m.oauth_error("quota_exceeded");
        m.oauth_error("made_up");
        let count = |code: &str| {
            let i = OAUTH_ERRORS.iter().position(|c| *c == code).unwrap();
            m.oauth_errors[i].get()
        };
        assert_eq!(count("invalid_client"), 2);
        assert_eq!(count("quota_exceeded"), 1);
        assert_eq!(count("other"), 1);
        assert_eq!(count("invalid_scope"), 0);
    }
}
