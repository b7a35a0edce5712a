//! A bounded registry cache with three guarantees the hot paths rely on:
//!
//! - **Single flight.** When many requests miss the same key at once, one loads it from the
//!   database and the others wait for that value (quick_cache placeholders), so a cold or
//!   just-cleared cache costs one query per key, not one per request.
//! - **No stale refill.** [`TtlCache::clear`] bumps a generation; a load that started before
//!   the clear returns its value to its caller but does not put it in the cache, so an
//!   invalidation (a local write, or another instance's `NOTIFY`) is never undone by a
//!   query that was already in flight.
//! - **Optional time to live**, a safety net for several instances on one PostgreSQL should
//!   a notification be lost; the change feed is what normally clears entries.

use quick_cache::Equivalent;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// See the module documentation.
pub(crate) struct TtlCache<K, V> {
    inner: quick_cache::sync::Cache<K, (Instant, V)>,
    ttl: Option<Duration>,
    generation: AtomicU64,
    counters: Option<&'static crate::metrics::CacheCounters>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(capacity.max(16)),
            ttl,
            generation: AtomicU64::new(0),
            counters: None,
        }
    }

    /// Count hits and misses in `counters` (for `/metrics`).
    pub(crate) fn counted(mut self, counters: &'static crate::metrics::CacheCounters) -> Self {
        self.counters = Some(counters);
        self
    }

    fn fresh(&self, at: Instant) -> bool {
        self.ttl.is_none_or(|ttl| at.elapsed() < ttl)
    }

    /// The cached value, if present and not past its time to live.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let found = self.inner.get(key).and_then(|(at, value)| {
            if self.fresh(at) {
                Some(value)
            } else {
                self.inner.remove(key);
                None
            }
        });
        if let Some(c) = self.counters {
            c.record(found.is_some());
        }
        found
    }

    /// The cached value, or the one `load` produces (cached unless the cache was cleared
    /// meanwhile). Concurrent callers missing the same key share one `load`; an error is
    /// returned to the loader and not cached, and a waiter then loads for itself.
    pub(crate) async fn get_or_load<Q, E, F, Fut>(&self, key: &Q, load: F) -> Result<V, E>
    where
        Q: Hash + Equivalent<K> + ToOwned<Owned = K> + ?Sized,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        let generation = self.generation.load(Ordering::Acquire);
        match self.inner.get_value_or_guard_async(key).await {
            // Another request loaded it while this one waited.
            Ok((_, v)) => Ok(v),
            Err(guard) => {
                let value = load().await?;
                if self.generation.load(Ordering::Acquire) == generation {
                    let _ = guard.insert((Instant::now(), value.clone()));
                    // A clear that raced with the insert wins.
                    if self.generation.load(Ordering::Acquire) != generation {
                        self.inner.remove(key);
                    }
                }
                Ok(value)
            }
        }
    }

    /// Put a value known to be current (e.g. written by this instance just now).
    pub(crate) fn insert(&self, key: K, value: V) {
        self.inner.insert(key, (Instant::now(), value));
    }

    /// Drop every entry, and keep loads already in flight from refilling the cache.
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.inner.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_misses_share_one_load() {
        let cache: Arc<TtlCache<String, u32>> = Arc::new(TtlCache::new(100, None));
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..32 {
            let (cache, loads) = (cache.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load("k", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(7)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.ok().and_then(|r| r.ok()), Some(7));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_clear_during_a_load_keeps_the_old_value_out() {
        let cache: TtlCache<String, u32> = TtlCache::new(100, None);
        let got = cache
            .get_or_load("k", || async {
                // The write (and its invalidation) lands while the query is in flight.
                cache.clear();
                Ok::<_, ()>(1)
            })
            .await;
        assert_eq!(got, Ok(1), "the caller still gets what it read");
        assert_eq!(cache.get("k"), None, "but the cache does not keep it");
        let again = cache.get_or_load("k", || async { Ok::<_, ()>(2) }).await;
        assert_eq!(again, Ok(2));
        assert_eq!(cache.get("k"), Some(2));
    }

    #[tokio::test]
    async fn errors_are_not_cached_and_entries_expire() {
        let cache: TtlCache<String, u32> = TtlCache::new(100, Some(Duration::from_millis(30)));
        let err = cache
            .get_or_load("k", || async { Err::<u32, _>("down") })
            .await;
        assert_eq!(err, Err("down"));
        assert_eq!(cache.get("k"), None);
        assert_eq!(
            cache.get_or_load("k", || async { Ok::<_, ()>(3) }).await,
            Ok(3)
        );
        assert_eq!(cache.get("k"), Some(3));
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(cache.get("k"), None, "past its time to live");
    }
}
