//! What the token endpoint's handlers share.

use gatehouse_jwks::KeyManager;
use gatehouse_jwks::remote::RemoteKeys;
use gatehouse_registry::Registry;
use ipnet::IpNet;
use std::sync::Arc;

/// State of the token endpoint router.
#[derive(Debug)]
pub struct TokenState {
    /// The profile registry.
    pub registry: Registry,
    /// Signing keys.
    pub keys: Arc<KeyManager>,
    /// The issuer, exactly as configured.
    pub issuer: String,
    /// Upper bound of a token lifetime (GATEHOUSE_MAX_TOKEN_TTL).
    pub max_token_ttl: i64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Audience of admin tokens (the built-in admin collection's).
    pub admin_audience: String,
    pub(crate) placeholder_redirect: url::Url,
    /// Verified access tokens by SHA-256 of the token; an entry is used only before `exp`.
    pub(crate) verified_tokens:
        quick_cache::sync::Cache<[u8; 32], Arc<gatehouse_jwks::VerifiedToken>>,
    /// Verifiers for consumers' RSA keys, by SHA-256 of (profile, algorithm, PEM): parsed once.
    pub(crate) foreign_verifiers:
        quick_cache::sync::Cache<[u8; 32], Arc<dyn josekit::jws::JwsVerifier>>,
    /// Key sets of consumers' identity providers and JWKS URLs (`oidc`, `jwt`/rsa).
    pub remote_keys: Arc<RemoteKeys>,
}

impl TokenState {
    /// Build the state.
    pub fn new(
        registry: Registry,
        keys: Arc<KeyManager>,
        issuer: String,
        max_token_ttl: i64,
        trusted_proxies: Vec<IpNet>,
        admin_audience: String,
        remote_keys: Arc<RemoteKeys>,
    ) -> Result<Self, url::ParseError> {
        let placeholder_redirect = url::Url::parse(&issuer)?;
        Ok(Self {
            registry,
            keys,
            issuer,
            max_token_ttl,
            trusted_proxies,
            admin_audience,
            placeholder_redirect,
            verified_tokens: quick_cache::sync::Cache::new(20_000),
            foreign_verifiers: quick_cache::sync::Cache::new(10_000),
            remote_keys,
        })
    }
}
