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
//! - **Misses kept apart** (optional, [`TtlCache::negatives_apart`]): values that say "no such
//!   thing" (an unknown client id) go to a small cache of their own, so a flood of random keys
//!   evicts other random keys, never the entries real clients use.

use quick_cache::Equivalent;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Values with the time they were stored.
type Stamped<K, V> = quick_cache::sync::Cache<K, (Instant, V)>;

/// Negative values kept apart, and the test that tells them.
struct Negatives<K, V> {
    cache: Stamped<K, V>,
    is_negative: fn(&V) -> bool,
}

/// See the module documentation.
pub(crate) struct TtlCache<K, V> {
    inner: Stamped<K, V>,
    /// Negative values, when kept apart.
    negative: Option<Negatives<K, V>>,
    ttl: Option<Duration>,
    generation: AtomicU64,
    counters: Option<&'static crate::metrics::CacheCounters>,
}

impl<K: Eq + Hash + Clone, V: Clone> TtlCache<K, V> {
    pub(crate) fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            inner: quick_cache::sync::Cache::new(capacity.max(16)),
            negative: None,
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

    /// Keep values that `is_negative` (say "no such thing") in a separate cache of at most
    /// `capacity` entries, out of the main one.
    pub(crate) fn negatives_apart(mut self, capacity: usize, is_negative: fn(&V) -> bool) -> Self {
        self.negative = Some(Negatives {
            cache: quick_cache::sync::Cache::new(capacity.max(16)),
            is_negative,
        });
        self
    }

    fn fresh(&self, at: Instant) -> bool {
        self.ttl.is_none_or(|ttl| at.elapsed() < ttl)
    }

    fn lookup<Q>(&self, cache: &Stamped<K, V>, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        cache.get(key).and_then(|(at, value)| {
            if self.fresh(at) {
                Some(value)
            } else {
                cache.remove(key);
                None
            }
        })
    }

    fn negative_lookup<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        self.negative
            .as_ref()
            .and_then(|n| self.lookup(&n.cache, key))
    }

    fn is_negative(&self, value: &V) -> bool {
        self.negative
            .as_ref()
            .is_some_and(|n| (n.is_negative)(value))
    }

    /// The cached value, if present and not past its time to live.
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let found = self
            .lookup(&self.inner, key)
            .or_else(|| self.negative_lookup(key));
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
                // A negative value another request loaded while this one waited (it holds no
                // place in the main cache, so the wait ended without one).
                if let Some(v) = self.negative_lookup(key) {
                    return Ok(v);
                }
                let value = load().await?;
                if self.is_negative(&value) {
                    drop(guard);
                    if let Some(n) = &self.negative
                        && self.generation.load(Ordering::Acquire) == generation
                    {
                        n.cache
                            .insert(key.to_owned(), (Instant::now(), value.clone()));
                        if self.generation.load(Ordering::Acquire) != generation {
                            n.cache.remove(key);
                        }
                    }
                    return Ok(value);
                }
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
        match &self.negative {
            Some(n) if (n.is_negative)(&value) => {
                self.inner.remove(&key);
                n.cache.insert(key, (Instant::now(), value));
            }
            Some(n) => {
                n.cache.remove(&key);
                self.inner.insert(key, (Instant::now(), value));
            }
            None => self.inner.insert(key, (Instant::now(), value)),
        }
    }

    /// Drop every entry, and keep loads already in flight from refilling the cache.
    pub(crate) fn clear(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.inner.clear();
        if let Some(n) = &self.negative {
            n.cache.clear();
        }
    }

    /// Entries in the main cache (negative ones apart excluded).
    #[cfg(test)]
    pub(crate) fn main_len(&self) -> usize {
        self.inner.len()
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

    /// Misses kept apart: a flood of unknown keys (20 times the capacity) leaves the entries
    /// of the main cache alone, concurrent misses of one key still share one load, and a
    /// clear forgets them too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn negative_values_stay_out_of_the_main_cache() {
        let cache: Arc<TtlCache<String, Option<u32>>> =
            Arc::new(TtlCache::new(1000, None).negatives_apart(16, Option::is_none));
        for i in 0..100 {
            let got = cache
                .get_or_load(&format!("known{i}"), || async { Ok::<_, ()>(Some(i)) })
                .await;
            assert_eq!(got, Ok(Some(i)));
        }
        assert_eq!(cache.main_len(), 100);
        for i in 0..20_000 {
            let got = cache
                .get_or_load(&format!("unknown{i}"), || async { Ok::<_, ()>(None) })
                .await;
            assert_eq!(got, Ok(None));
        }
        assert_eq!(cache.main_len(), 100);
        for i in 0..100 {
            assert_eq!(cache.get(&format!("known{i}")), Some(Some(i)), "known{i}");
        }
        let loads = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let (cache, loads) = (cache.clone(), loads.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load("nobody", || async {
                        loads.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Ok::<_, ()>(None)
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.ok().and_then(|r| r.ok()), Some(None));
        }
        assert_eq!(loads.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("nobody"), Some(None));
        cache.clear();
        assert_eq!(cache.get("nobody"), None);
        cache.insert("nobody".to_owned(), Some(7));
        assert_eq!(cache.get("nobody"), Some(Some(7)));
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
