//! Process-wide counters for `/metrics`: lock-free atomics, bumped on the hot paths and read
//! by the server's Prometheus exporter. Nothing here carries a credential or an id, so label
//! cardinality stays fixed.

use std::sync::atomic::{AtomicU64, Ordering};

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
            argon2_verifications: Counter::new(),
            auth_throttled: Counter::new(),
            argon2_busy: Counter::new(),
            auth_failures: Counter::new(),
            redis_errors: Counter::new(),
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
