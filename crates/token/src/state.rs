//! What the token endpoint's handlers share.

use gatehouse_jwks::KeyManager;
use gatehouse_jwks::remote::RemoteKeys;
use gatehouse_registry::Registry;
use ipnet::IpNet;
use std::sync::Arc;

/// Verified claims, shared between the cache and the decision.
pub(crate) type VerifiedClaims = Arc<serde_json::Map<String, serde_json::Value>>;

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
    /// Our access tokens already verified, by SHA-256 of the token: their claims and `exp`;
    /// an entry is used only before `exp`.
    pub(crate) verified_tokens: quick_cache::sync::Cache<[u8; 32], (VerifiedClaims, i64)>,
    /// `{issuer}/oauth/token`: with the issuer, what an assertion's `aud` may be.
    pub token_endpoint: String,
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
        // The issuer must be a URL (the server validated it more strictly at start).
        url::Url::parse(&issuer)?;
        Ok(Self {
            token_endpoint: format!("{}/oauth/token", issuer.trim_end_matches('/')),
            registry,
            keys,
            issuer,
            max_token_ttl,
            trusted_proxies,
            admin_audience,
            verified_tokens: quick_cache::sync::Cache::new(20_000),
            remote_keys,
        })
    }
}
