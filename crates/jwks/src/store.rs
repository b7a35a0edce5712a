//! Where signing keys are kept: a small storage trait, so this crate depends on no other
//! Gatehouse crate. The registry implements it on its database; tests can use memory.

use chrono::{DateTime, Utc};

/// A signing key as stored: the private part is a JWE, never clear text.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Key id (`kid`).
    pub kid: String,
    /// JWS algorithm (`ES256`, `RS256`, `EdDSA`).
    pub alg: String,
    /// `next`, `active`, `retired` or `expired`.
    pub state: String,
    /// The private key encrypted under GATEHOUSE_SECRET_KEY (compact JWE).
    pub private_jwe: String,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
}

/// Why the key store failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Another instance changed the keys meanwhile (a rotation lost a race).
    #[error("the keys were changed meanwhile")]
    Conflict,
    /// The store cannot be reached now.
    #[error("key store unavailable: {0}")]
    Unavailable(String),
    /// Anything else (details for logs).
    #[error("key store failed: {0}")]
    Failed(String),
}

/// Persistent storage of signing keys, and the clock and limits the key lifecycle needs.
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every stored key, oldest first.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Store a new key.
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// In one transaction: `next_kid` (still `next`) becomes active, the active key retires,
    /// `new_next` is published; audited as `actor`. [`StoreError::Conflict`] when `next_kid`
    /// is no longer the next key.
    async fn rotate_signing_keys(
        &self,
        actor: &str,
        next_kid: &str,
        new_next: &StoredKey,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Mark retired keys that retired before `before` as expired; how many changed.
    async fn expire_signing_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
    /// The current time (the injected clock).
    fn now(&self) -> DateTime<Utc>;
    /// The longest access-token lifetime (GATEHOUSE_MAX_TOKEN_TTL), in seconds.
    fn max_token_ttl(&self) -> i64;
}
