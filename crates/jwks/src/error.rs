//! Errors of key handling and token verification.

/// What can go wrong with keys or tokens.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The master key is missing or malformed.
    #[error("invalid GATEHOUSE_SECRET_KEY: {0}")]
    MasterKey(String),
    /// A stored key could not be decrypted (wrong master key?) or parsed.
    #[error("stored signing key {kid} is unusable: {reason}")]
    StoredKey {
        /// The key id.
        kid: String,
        /// Why.
        reason: String,
    },
    /// A JOSE operation failed.
    #[error("crypto error: {0}")]
    Crypto(String),
    /// The key store (database) failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A token failed verification; the reason is for logs only.
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    /// A rotation would start signing with a key published for less than the configured
    /// lead time (verifiers caching the JWKS might not know it yet).
    #[error("the next key is published only since {published}; it may sign from {ready_at}")]
    TooSoon {
        /// When the next key was published.
        published: chrono::DateTime<chrono::Utc>,
        /// When it has been published long enough.
        ready_at: chrono::DateTime<chrono::Utc>,
    },
    /// Configuration is invalid (issuer URL and the like).
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<josekit::JoseError> for JwksError {
    fn from(e: josekit::JoseError) -> Self {
        JwksError::Crypto(e.to_string())
    }
}
