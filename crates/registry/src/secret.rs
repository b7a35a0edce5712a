//! Secrets: generation from the OS CSPRNG, a wrapper that never prints, argon2id hashing
//! behind a bounded semaphore with a bounded waiting room, and SHA-256 digests for cache keys.

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, PasswordVerifier, Version};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// A secret value. Not `Clone`, `Debug` prints `[secret elided]`, and reading it takes a call
/// whose name says so.
pub struct SecretString(String);

impl SecretString {
    /// Wrap a secret.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret text. Every call site is a place where the secret leaves its box.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret elided]")
    }
}

impl Drop for SecretString {
    fn drop(&mut self) {
        // Best-effort wipe; the allocator may have copied it earlier.
        // SAFETY-free: overwrite through the safe byte view of an owned String.
        let bytes = std::mem::take(&mut self.0).into_bytes();
        let mut bytes = bytes;
        for b in bytes.iter_mut() {
            *b = 0;
        }
        std::hint::black_box(&bytes);
    }
}

/// Prefix of generated OAuth client secrets (and collection introspection secrets).
pub const CLIENT_SECRET_PREFIX: &str = "gcs_";

/// A fresh client secret: prefix + 43 base62 characters (≥ 256 bits from the OS CSPRNG).
pub fn generate_client_secret() -> SecretString {
    SecretString::new(format!("{CLIENT_SECRET_PREFIX}{}", crate::ids::base62(43)))
}

/// SHA-256 of arbitrary bytes.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    h.finalize().into()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Errors of the password hasher.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The hashing task failed to run.
    #[error("hashing task failed")]
    Task,
    /// argon2 refused the input or parameters.
    #[error("argon2 error: {0}")]
    Argon2(String),
    /// Every worker is busy and the waiting room is full: refused at once, without waiting.
    #[error("the hashing pool is busy")]
    Busy,
}

/// Calls that may wait for an argon2 worker, per worker, before more are refused with
/// [`HashError::Busy`]. A run takes ~30 ms, so a full waiting room is about half a second of
/// work.
pub const WAITING_PER_WORKER: usize = 16;

/// A job for the argon2 workers.
type Job = Box<dyn FnOnce(&Argon2<'static>) + Send>;

/// argon2id hashing and verification on a fixed set of long-lived worker threads, entered
/// through a semaphore so a flood cannot queue unbounded work: at most `workers` calls run
/// and [`WAITING_PER_WORKER`] per worker wait; any call beyond that fails at once with
/// [`HashError::Busy`] (counted in `/metrics`), instead of holding a request and its memory
/// for as long as the queue ahead of it takes. Each worker reuses its own
/// memory for every hash, so the process holds at most `workers × m_cost` KiB for argon2 no
/// matter how many requests arrive (with `spawn_blocking`, every new pool thread got its own
/// malloc arena and kept the 12–19 MiB it last used).
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::SyncSender<Job>,
    dummy_hash: Arc<str>,
    /// Calls running or waiting for a permit.
    admitted: Arc<AtomicUsize>,
    workers: usize,
    /// Most calls that may wait for a worker.
    waiting: usize,
}

/// A place among the admitted calls, given back when the call ends or is dropped (a client
/// that hangs up while waiting frees its place).
struct Admission(Arc<AtomicUsize>);

impl Admission {
    fn enter(admitted: &Arc<AtomicUsize>, capacity: usize) -> Option<Self> {
        admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .ok()
            .map(|_| {
                crate::metrics::METRICS.argon2_admitted.inc();
                Self(admitted.clone())
            })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        crate::metrics::METRICS.argon2_admitted.dec();
    }
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("m_cost", &self.params.m_cost())
            .field("t_cost", &self.params.t_cost())
            .field("permits", &self.permits.available_permits())
            .field("waiting_room", &self.waiting)
            .finish()
    }
}

impl PasswordHasher {
    /// OWASP's second argon2id configuration: 12 MiB, 3 passes, 1 lane (same strength as
    /// 19 MiB × 2 passes, less memory); `workers` hashes at once.
    pub fn new(workers: usize) -> Result<Self, HashError> {
        let params =
            Params::new(12 * 1024, 3, 1, None).map_err(|e| HashError::Argon2(e.to_string()))?;
        Self::with_params(params, workers)
    }

    /// A hasher with explicit parameters (tests and benchmarks may lower the cost).
    pub fn with_params(params: Params, workers: usize) -> Result<Self, HashError> {
        let workers = workers.max(1);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(workers * 4);
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(poisoned) => poisoned.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(&argon),
                            Err(_) => break,
                        }
                    }
                })
                .map_err(|e| HashError::Argon2(e.to_string()))?;
        }
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let dummy = argon
            .hash_password(crate::ids::base62(43).as_bytes())
            .map_err(|e| HashError::Argon2(e.to_string()))?
            .to_string();
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(workers)),
            jobs: tx,
            dummy_hash: dummy.into(),
            admitted: Arc::new(AtomicUsize::new(0)),
            workers,
            waiting: workers * WAITING_PER_WORKER,
        })
    }

    /// Let at most `waiting` calls wait for a worker (default: [`WAITING_PER_WORKER`] per
    /// worker); more are refused with [`HashError::Busy`].
    pub fn with_waiting_room(mut self, waiting: usize) -> Self {
        self.waiting = waiting;
        self
    }

    /// Run `f` on a worker and wait for its answer; [`HashError::Busy`] at once when the
    /// workers and the waiting room are full.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Argon2<'static>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let Some(_admission) = Admission::enter(&self.admitted, self.workers + self.waiting) else {
            crate::metrics::METRICS.argon2_busy.inc();
            return Err(HashError::Busy);
        };
        let _permit = self.permits.acquire().await.map_err(|_| HashError::Task)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |argon| {
            let _ = tx.send(f(argon));
        });
        self.jobs.send(job).map_err(|_| HashError::Task)?;
        rx.await.map_err(|_| HashError::Task)
    }

    /// Hash a secret into a PHC string.
    pub async fn hash(&self, secret: &SecretString) -> Result<String, HashError> {
        let candidate = SecretString::new(secret.expose_secret().to_owned());
        self.run(move |argon| {
            argon
                .hash_password(candidate.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| HashError::Argon2(e.to_string()))
        })
        .await?
    }

    /// Check a secret against any of several PHC hashes; the index of the first match.
    /// With no hashes, the secret is checked against a dummy hash so that an unknown client
    /// costs the same time as a known one.
    pub async fn verify_any(
        &self,
        secret: &str,
        hashes: Vec<String>,
    ) -> Result<Option<usize>, HashError> {
        let dummy = self.dummy_hash.clone();
        let candidate = SecretString::new(secret.to_owned());
        self.run(move |argon| {
            let check = |phc: &str| {
                PasswordVerifier::<str>::verify_password(
                    argon,
                    candidate.expose_secret().as_bytes(),
                    phc,
                )
                .is_ok()
            };
            if hashes.is_empty() {
                let _ = check(&dummy);
                return None;
            }
            hashes.iter().position(|h| check(h))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cheap() -> PasswordHasher {
        PasswordHasher::with_params(Params::new(256, 1, 1, None).unwrap(), 2).unwrap()
    }

    #[test]
    fn secrets_do_not_print() {
        let s = generate_client_secret();
        assert_eq!(format!("{s:?}"), "[secret elided]");
        assert!(s.expose_secret().starts_with("gcs_"));
        assert_eq!(s.expose_secret().len(), 4 + 43);
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let h = cheap();
        let s = generate_client_secret();
        let phc = h.hash(&s).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(!phc.contains(s.expose_secret()));
        assert_eq!(
            h.verify_any(s.expose_secret(), vec!["junk".into(), phc.clone()])
                .await
                .unwrap(),
            Some(1)
        );
        assert_eq!(h.verify_any("wrong", vec![phc]).await.unwrap(), None);
        assert_eq!(h.verify_any("anything", vec![]).await.unwrap(), None);
    }

    /// One worker and a waiting room of one: a third concurrent call is refused at once
    /// (it used to wait behind every call before it, however many), and a place is given
    /// back when a call finishes or its caller goes away.
    #[tokio::test]
    async fn a_full_waiting_room_refuses_at_once() {
        use std::future::Future;
        use std::task::Poll;
        // Costly enough (~0.1 s a run) that the first call is still running below.
        let h = PasswordHasher::with_params(Params::new(32 * 1024, 3, 1, None).unwrap(), 1)
            .unwrap()
            .with_waiting_room(1);
        let mut running = Box::pin(h.verify_any("a", vec![]));
        let mut waiting = Box::pin(h.verify_any("b", vec![]));
        // Poll both once: the first holds the worker, the second waits for it.
        std::future::poll_fn(|cx| {
            assert!(running.as_mut().poll(cx).is_pending());
            assert!(waiting.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let before = crate::metrics::METRICS.argon2_busy.get();
        // Refused at once; without a bound it would wait (here: forever, as the running call
        // is not polled meanwhile).
        let third = tokio::time::timeout(Duration::from_secs(2), h.verify_any("c", vec![])).await;
        assert!(
            matches!(third, Ok(Err(HashError::Busy))),
            "refused at once: {third:?}"
        );
        assert!(crate::metrics::METRICS.argon2_busy.get() > before);
        // A caller that gives up frees its place.
        drop(waiting);
        let mut again = Box::pin(h.verify_any("d", vec![]));
        std::future::poll_fn(|cx| {
            assert!(again.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(running.await.unwrap(), None);
        assert_eq!(again.await.unwrap(), None);
        assert_eq!(h.verify_any("e", vec![]).await.unwrap(), None);
    }
}
