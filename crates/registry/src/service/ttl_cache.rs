//! A bounded cache whose entries may also go stale after a time to live. With several
//! instances on one PostgreSQL, a change made on another instance reaches this one at the
//! latest after the TTL (issue 5 replaces this bound with LISTEN/NOTIFY); a change made here
//! clears the cache at once.

use quick_cache::Equivalent;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// See the module documentation.
pub(crate) struct TtlCache<K, V> {
    inner: quick_cache::sync::Cache<K, (Instant, V)>,
    ttl: Option<Duration>,
    counters: Option<&'static crate::metrics::CacheCounters>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(capacity.max(16)),
            ttl,
            counters: None,
        }
    }

    /// Count hits and misses in `counters` (for `/metrics`).
    pub(crate) fn counted(mut self, counters: &'static crate::metrics::CacheCounters) -> Self {
        self.counters = Some(counters);
        self
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let found = self.inner.get(key).and_then(|(at, value)| match self.ttl {
            Some(ttl) if at.elapsed() >= ttl => {
                self.inner.remove(key);
                None
            }
            _ => Some(value),
        });
        if let Some(c) = self.counters {
            c.record(found.is_some());
        }
        found
    }

    pub(crate) fn insert(&self, key: K, value: V) {
        self.inner.insert(key, (Instant::now(), value));
    }

    pub(crate) fn clear(&self) {
        self.inner.clear();
    }
}
