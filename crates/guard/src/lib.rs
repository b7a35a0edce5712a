//! `gatehouse-guard`: a tower [`Layer`] that protects an axum resource server with Gatehouse.
//!
//! On each request it takes the credential from `Authorization: Bearer …` or `X-API-Key`,
//! introspects it (RFC 7662) with the collection's introspection credentials through a
//! pooled HTTP client, passes the consumer's address as `client_ip`, and enforces the scopes
//! the route requires. Refusals follow RFC 6750 §3: 401 `invalid_token` with
//! `WWW-Authenticate`, 403 `insufficient_scope`.
//!
//! Answers are cached, keyed by a SHA-256 of the credential and the consumer's address: an
//! active answer for at most its `gatehouse_cache_ttl` (0 — no reuse — whenever a policy or IP
//! rules apply, so limits are never bypassed), never past `exp`; an inactive answer for a few
//! seconds. The guard knows nothing of Gatehouse's registry: it speaks HTTP like any
//! resource server would.
//!
//! - A credential longer than [`jws::MAX_TOKEN_LEN`] (16 KiB, the longest Gatehouse
//!   verifies) is refused here as `invalid_token`, without a call.
//! - A 4xx answer from Gatehouse about the request (400, 413, …) means the credential cannot
//!   be valid: `invalid_token`, cached like an inactive answer. 401 and 403 (the guard's own
//!   credentials refused) and 429 (the guard itself throttled) are outages: 503, not cached.
//! - Outages are logged at most once per [`LOG_INTERVAL`] per kind, with the number of lines
//!   held back since the last one.
//! - Layers of one [`Guard`] stacked on a route (one on the router, one on the route)
//!   introspect once: an inner layer reuses the principal an outer layer of the same guard
//!   resolved and checks only its own scopes.
//! - Behind reverse proxies, [`GuardConfig::trusted_proxies`] makes the consumer's address
//!   the nearest untrusted hop of `X-Forwarded-For`, read right to left, as Gatehouse reads
//!   it (`GATEHOUSE_TRUSTED_PROXIES`).

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_jwks::jws::{self, Alg, Rules};
use gatehouse_jwks::outbound::OutboundAllow;
use gatehouse_jwks::remote::{KeySource, RemoteKeys};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tower::{Layer, Service};

pub use ipnet::IpNet;

/// Least time between two log lines of one kind of trouble with Gatehouse (refused, failing,
/// unreachable, unreadable, rejecting requests); the lines held back in between are counted
/// in the next one's `suppressed` field.
pub const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// How the guard reaches Gatehouse.
#[derive(Clone)]
pub struct GuardConfig {
    /// `https://…/oauth/introspect` (from the discovery document's `introspection_endpoint`).
    pub introspection_endpoint: String,
    /// The collection's `introspection_client_id` (`grs_…`).
    pub client_id: String,
    /// The collection's `introspection_client_secret`.
    pub client_secret: String,
    /// How long an inactive answer is reused (default 5 s).
    pub negative_cache_ttl: Duration,
    /// Upper bound on reusing an active answer (default 60 s).
    pub max_cache_ttl: Duration,
    /// Most cached answers (default 10,000).
    pub cache_capacity: usize,
    /// Timeout of one introspection call (default 5 s).
    pub timeout: Duration,
    /// Verify Gatehouse's own JWTs locally with its JWKS instead of introspecting them
    /// (see [`LocalVerification`]); `None` (the default) introspects every credential.
    pub local: Option<LocalVerification>,
    /// Reverse proxies in front of the resource server (addresses or CIDRs; default none).
    /// When the socket peer is one of them, the consumer's address — sent to Gatehouse as
    /// `client_ip` for IP rules — is read from `X-Forwarded-For` right to left: the first
    /// address that is not a trusted proxy. A malformed entry makes the whole header
    /// untrustworthy, and the peer is used. The same rule as `GATEHOUSE_TRUSTED_PROXIES`.
    pub trusted_proxies: Vec<IpNet>,
}

/// Local mode: Gatehouse access tokens (RFC 9068 JWTs, `typ: at+jwt`, `iss` equal to
/// `issuer`) are verified with Gatehouse's JWKS — fetched once, refreshed in the background
/// after `refresh` and on an unknown `kid` (at most once per `min_refresh`) — with no network
/// call per request. API keys and consumers' own JWTs are still introspected.
///
/// What this gives up, until each token's `exp`: revocation (RFC 7009), a profile or client
/// switched off, changed IP rules, and policies (rate limits, quotas) are not seen. Keep token
/// lifetimes short where that matters, or use introspection.
#[derive(Debug, Clone)]
pub struct LocalVerification {
    /// Gatehouse's issuer, exactly as in its discovery document.
    pub issuer: String,
    /// The collection's audience: a token is accepted only when its `aud` includes it.
    pub audience: String,
    /// Gatehouse's JWKS (the discovery document's `jwks_uri`). Fetched under the outbound
    /// rules, except that its own host may be internal and served over http (it is the
    /// operator's URL, not a third party's).
    pub jwks_uri: String,
    /// How long a fetched JWKS is used before a background refresh (default 300 s).
    pub refresh: Duration,
    /// Least time between two fetches, also on an unknown `kid` (default 30 s).
    pub min_refresh: Duration,
}

impl LocalVerification {
    /// Local verification for `audience` against the Gatehouse at `issuer` (its JWKS at
    /// `{issuer}/oauth/jwks`), with the documented defaults.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        let issuer = issuer.into();
        let jwks_uri = format!("{}/oauth/jwks", issuer.trim_end_matches('/'));
        Self {
            issuer,
            audience: audience.into(),
            jwks_uri,
            refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for GuardConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardConfig")
            .field("introspection_endpoint", &self.introspection_endpoint)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[secret elided]")
            .field("trusted_proxies", &self.trusted_proxies)
            .finish_non_exhaustive()
    }
}

impl GuardConfig {
    /// A configuration with the documented defaults.
    pub fn new(
        introspection_endpoint: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self {
            introspection_endpoint: introspection_endpoint.into(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            negative_cache_ttl: Duration::from_secs(5),
            max_cache_ttl: Duration::from_secs(60),
            cache_capacity: 10_000,
            timeout: Duration::from_secs(5),
            local: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// Errors building a guard.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// Who called: what introspection said about the credential. Handlers read it with
/// `Extension<Arc<Principal>>`.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The profile's `oauth_client_id`.
    pub client_id: String,
    /// The access profile.
    pub profile_id: String,
    /// `oauth2`, `token`, `jwt` or `oidc` (empty in local mode: the token does not say).
    pub auth_type: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The whole introspection answer (in local mode: the token's claims).
    pub introspection: Value,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// No credential (RFC 6750 §3.1: no error code).
    Missing,
    /// Two different credentials in one request.
    Ambiguous,
    /// Introspection said inactive.
    InvalidToken,
    /// Active, but without a scope the route needs.
    InsufficientScope(String),
    /// A policy refused it; retry after this many seconds.
    RateLimited(u64),
    /// Gatehouse could not be asked (or refused the guard's own credentials).
    Unavailable,
}

const REALM: &str = "Bearer realm=\"api\"";

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        let (status, error, www) = match &self {
            Rejection::Missing => (
                StatusCode::UNAUTHORIZED,
                "invalid_request",
                REALM.to_owned(),
            ),
            Rejection::Ambiguous => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("{REALM}, error=\"invalid_request\""),
            ),
            Rejection::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                format!("{REALM}, error=\"invalid_token\""),
            ),
            Rejection::InsufficientScope(scope) => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("{REALM}, error=\"insufficient_scope\", scope=\"{scope}\""),
            ),
            Rejection::RateLimited(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", String::new())
            }
            Rejection::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                String::new(),
            ),
        };
        let body = serde_json::json!({"error": error});
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(v) = (!www.is_empty())
            .then(|| HeaderValue::from_str(&www).ok())
            .flatten()
        {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        if let Rejection::RateLimited(secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

#[derive(Clone)]
struct Cached {
    answer: Result<Arc<Principal>, Rejection>,
    until: Instant,
}

struct Inner {
    config: GuardConfig,
    http: reqwest::Client,
    cache: quick_cache::sync::Cache<[u8; 32], Cached>,
    /// Local mode's JWKS cache.
    keys: Option<Arc<RemoteKeys>>,
    log: LogLimiter,
}

/// What can go wrong when asking Gatehouse; each is logged on its own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// 401/403/429: the guard's own credentials refused, or the guard throttled.
    Refused,
    /// A 5xx or another answer that is neither success nor a client error.
    Failing,
    /// No answer at all (connection, timeout).
    Unreachable,
    /// A success whose body is not an introspection answer.
    Unreadable,
    /// A 4xx about the request: the credential is treated as invalid.
    Rejecting,
}

impl Trouble {
    const COUNT: usize = 5;

    fn slot(self) -> usize {
        self as usize
    }
}

/// At most one log line per [`Trouble`] per [`LOG_INTERVAL`], counting those held back.
#[derive(Default)]
struct LogLimiter {
    /// Per trouble: when the last line was written, and how many were held back since.
    slots: Mutex<[(Option<Instant>, u64); Trouble::COUNT]>,
}

impl LogLimiter {
    /// `Some(lines held back since the last one)` when a line of this kind may be written
    /// at `now`; `None` (and one more held back) otherwise.
    fn admit(&self, trouble: Trouble, now: Instant) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held_back) = slots.get_mut(trouble.slot())?;
        match last {
            Some(at) if now.saturating_duration_since(*at) < LOG_INTERVAL => {
                *held_back += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(held_back))
            }
        }
    }
}

/// A configured guard; cheap to clone. Make per-route layers with [`Guard::require`].
#[derive(Clone)]
pub struct Guard {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("config", &self.inner.config)
            .finish()
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Guard {
    /// Build a guard with a pooled HTTP client that follows no redirects.
    pub fn new(config: GuardConfig) -> Result<Self, GuardError> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| GuardError::Client(e.to_string()))?;
        let cache = quick_cache::sync::Cache::new(config.cache_capacity.max(16));
        let keys = match &config.local {
            Some(local) => Some(
                // The JWKS URL is the operator's own (often an internal Gatehouse): its host
                // is allowed whatever it resolves to, and over http.
                RemoteKeys::new(
                    local.refresh,
                    local.min_refresh,
                    OutboundAllow::host_of(&local.jwks_uri),
                )
                .map_err(|e| GuardError::Client(e.to_string()))?,
            ),
            None => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                http,
                cache,
                keys,
                log: LogLimiter::default(),
            }),
        })
    }

    /// A layer that lets a request through only with an active credential holding every
    /// scope in `scopes` (none: any active credential).
    pub fn require(&self, scopes: &[&str]) -> GuardLayer {
        GuardLayer {
            guard: self.clone(),
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Introspect a credential for a consumer address, using the cache. A credential longer
    /// than [`jws::MAX_TOKEN_LEN`] is refused without a call.
    pub async fn check(
        &self,
        credential: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Arc<Principal>, Rejection> {
        if credential.len() > jws::MAX_TOKEN_LEN {
            return Err(Rejection::InvalidToken);
        }
        let ip_text = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let mut h = Sha256::new();
        h.update((credential.len() as u64).to_be_bytes());
        h.update(credential.as_bytes());
        h.update(ip_text.as_bytes());
        let key: [u8; 32] = h.finalize().into();
        let now = Instant::now();
        if let Some(hit) = self.inner.cache.get(&key) {
            if hit.until > now {
                return hit.answer;
            }
            self.inner.cache.remove(&key);
        }
        let (answer, ttl) = match self.verify_locally(credential).await {
            Some(local) => local,
            None => {
                self.introspect(credential, client_ip.map(|_| ip_text.as_str()))
                    .await
            }
        };
        if !ttl.is_zero() {
            self.inner.cache.insert(
                key,
                Cached {
                    answer: answer.clone(),
                    until: now + ttl,
                },
            );
        }
        answer
    }

    /// Local mode: `None` when the credential is not a Gatehouse JWT for this guard (or the
    /// JWKS cannot be fetched), so introspection decides.
    async fn verify_locally(
        &self,
        credential: &str,
    ) -> Option<(Result<Arc<Principal>, Rejection>, Duration)> {
        let (local, keys) = (self.inner.config.local.as_ref()?, self.inner.keys.as_ref()?);
        let decoded = match jws::decode(credential) {
            Ok(decoded) => decoded,
            // Not a JWS at all (an API key, an opaque token): introspection decides.
            Err(jws::Rejection::Malformed | jws::Rejection::TooLong) => return None,
            // A JWS no verifier accepts (`alg: none`, `crit`, an unknown alg): refused here.
            Err(_) => {
                return Some((
                    Err(Rejection::InvalidToken),
                    self.inner.config.negative_cache_ttl,
                ));
            }
        };
        if decoded
            .unverified_claims()
            .get("iss")
            .and_then(Value::as_str)
            != Some(local.issuer.as_str())
        {
            return None;
        }
        let invalid = Some((
            Err(Rejection::InvalidToken),
            self.inner.config.negative_cache_ttl,
        ));
        // Through the one verifier: only the algorithms Gatehouse signs with (RFC 8725 §3.1),
        // each key with its own `alg`; then RFC 9068's rules (`typ` `at+jwt` or
        // `application/at+jwt`, the issuer, this collection's audience) with the leeway of a
        // clock that is not Gatehouse's.
        let source = KeySource::JwksUri(local.jwks_uri.clone());
        let signed = match keys
            .verify(&source, decoded, &[Alg::Es256, Alg::Rs256, Alg::EdDsa])
            .await
        {
            Ok(signed) => signed,
            Err(jws::Rejection::Unavailable) => return None,
            Err(_) => return invalid,
        };
        let now = unix_now();
        let rules = Rules::access_token_elsewhere(&local.issuer, &local.audience);
        let Ok(verified) = signed.validate(&rules, now) else {
            return invalid;
        };
        let exp = verified.exp;
        let claims = Value::Object(verified.claims);
        let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        let ttl = Duration::from_secs(u64::try_from(exp - now).unwrap_or(0))
            .min(self.inner.config.max_cache_ttl);
        let principal = Principal {
            client_id: text(&claims, "client_id").unwrap_or_default(),
            profile_id: text(&claims, "profile_id").unwrap_or_default(),
            auth_type: String::new(),
            scopes: text(&claims, "scope")
                .unwrap_or_default()
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            introspection: claims,
        };
        Some((Ok(Arc::new(principal)), ttl))
    }

    async fn introspect(
        &self,
        credential: &str,
        client_ip: Option<&str>,
    ) -> (Result<Arc<Principal>, Rejection>, Duration) {
        let config = &self.inner.config;
        let mut form = vec![("token", credential)];
        if let Some(ip) = client_ip {
            form.push(("client_ip", ip));
        }
        let sent = self
            .inner
            .http
            .post(&config.introspection_endpoint)
            .basic_auth(&config.client_id, Some(&config.client_secret))
            .form(&form)
            .send()
            .await;
        let outage = (Err(Rejection::Unavailable), Duration::ZERO);
        let response = match sent {
            Ok(r) if r.status().is_success() => r,
            Ok(r) => {
                let status = r.status();
                return match status {
                    StatusCode::UNAUTHORIZED
                    | StatusCode::FORBIDDEN
                    | StatusCode::TOO_MANY_REQUESTS => {
                        self.log(Trouble::Refused, &status);
                        outage
                    }
                    s if s.is_client_error() => {
                        self.log(Trouble::Rejecting, &status);
                        (Err(Rejection::InvalidToken), config.negative_cache_ttl)
                    }
                    _ => {
                        self.log(Trouble::Failing, &status);
                        outage
                    }
                };
            }
            Err(e) => {
                self.log(Trouble::Unreachable, &e);
                return outage;
            }
        };
        let answer = match response.json::<Value>().await {
            Ok(answer) if answer.is_object() => answer,
            Ok(_) => {
                self.log(Trouble::Unreadable, &"not a JSON object");
                return outage;
            }
            Err(e) => {
                self.log(Trouble::Unreadable, &e);
                return outage;
            }
        };
        if answer.get("active").and_then(Value::as_bool) != Some(true) {
            if let Some(denial) = answer.get("gatehouse_denial") {
                let retry = denial
                    .get("retry_after")
                    .and_then(Value::as_u64)
                    .unwrap_or(1);
                return (Err(Rejection::RateLimited(retry)), Duration::ZERO);
            }
            return (Err(Rejection::InvalidToken), config.negative_cache_ttl);
        }
        let text = |k: &str| {
            answer
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let mut ttl = answer
            .get("gatehouse_cache_ttl")
            .and_then(Value::as_u64)
            .map_or(Duration::ZERO, Duration::from_secs);
        if let Some(exp) = answer.get("exp").and_then(Value::as_i64) {
            let left = u64::try_from(exp - unix_now()).unwrap_or(0);
            ttl = ttl.min(Duration::from_secs(left));
        }
        ttl = ttl.min(config.max_cache_ttl);
        let principal = Principal {
            client_id: text("client_id"),
            profile_id: text("profile_id"),
            auth_type: text("auth_type"),
            scopes: text("scope")
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            introspection: answer,
        };
        (Ok(Arc::new(principal)), ttl)
    }
}

impl Guard {
    /// Log a trouble with Gatehouse, unless a line of its kind was written less than
    /// [`LOG_INTERVAL`] ago.
    fn log(&self, trouble: Trouble, detail: &dyn std::fmt::Display) {
        let Some(suppressed) = self.inner.log.admit(trouble, Instant::now()) else {
            return;
        };
        let endpoint = self.inner.config.introspection_endpoint.as_str();
        match trouble {
            Trouble::Refused => tracing::error!(
                endpoint,
                %detail,
                suppressed,
                "Gatehouse refused the guard's introspection credentials (or throttled them); \
                 requests get 503: check the collection's introspection_client_id and secret"
            ),
            Trouble::Failing => tracing::error!(
                endpoint,
                %detail,
                suppressed,
                "Gatehouse failed to introspect; requests get 503"
            ),
            Trouble::Unreachable => tracing::error!(
                endpoint,
                %detail,
                suppressed,
                "Gatehouse is unreachable; requests get 503"
            ),
            Trouble::Unreadable => tracing::error!(
                endpoint,
                %detail,
                suppressed,
                "Gatehouse's introspection answer is unreadable; requests get 503"
            ),
            Trouble::Rejecting => tracing::warn!(
                endpoint,
                %detail,
                suppressed,
                "Gatehouse rejected an introspection request; the credential is refused as invalid"
            ),
        }
    }
}

/// A principal as resolved by one guard, so that its other layers on the same request reuse
/// it. Kept apart from the `Arc<Principal>` handlers read, which anything could replace.
#[derive(Clone)]
struct Resolved {
    by: Arc<Inner>,
    principal: Arc<Principal>,
}

/// The credential a request carries: `Authorization: Bearer` or `X-API-Key`.
fn credential(headers: &http::HeaderMap) -> Result<String, Rejection> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_owned());
    match (bearer, key) {
        (Some(a), Some(b)) if a != b => Err(Rejection::Ambiguous),
        (Some(t), _) | (None, Some(t)) if !t.is_empty() => Ok(t),
        _ => Err(Rejection::Missing),
    }
}

/// The layer made by [`Guard::require`].
#[derive(Clone, Debug)]
pub struct GuardLayer {
    guard: Guard,
    scopes: Arc<[String]>,
}

impl<S> Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService {
            guard: self.guard.clone(),
            scopes: self.scopes.clone(),
            inner,
        }
    }
}

/// The service made by [`GuardLayer`].
#[derive(Clone, Debug)]
pub struct GuardService<S> {
    guard: Guard,
    scopes: Arc<[String]>,
    inner: S,
}

impl<S> Service<Request<Body>> for GuardService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            // An outer layer of this guard already resolved the credential: only the scopes
            // are this layer's to check.
            let resolved = request
                .extensions()
                .get::<Resolved>()
                .filter(|r| Arc::ptr_eq(&r.by, &guard.inner))
                .map(|r| r.principal.clone());
            let principal = match resolved {
                Some(principal) => principal,
                None => {
                    let token = match credential(request.headers()) {
                        Ok(t) => t,
                        Err(r) => return Ok(r.into_response()),
                    };
                    let ip = request
                        .extensions()
                        .get::<ConnectInfo<SocketAddr>>()
                        .map(|c| {
                            gatehouse_net::resolve(
                                c.0.ip(),
                                request.headers(),
                                &guard.inner.config.trusted_proxies,
                            )
                        });
                    match guard.check(&token, ip).await {
                        Ok(p) => p,
                        Err(r) => return Ok(r.into_response()),
                    }
                }
            };
            if let Some(missing) = scopes.iter().find(|s| !principal.scopes.contains(s)) {
                return Ok(Rejection::InsufficientScope(missing.clone()).into_response());
            }
            request.extensions_mut().insert(Resolved {
                by: guard.inner.clone(),
                principal: principal.clone(),
            });
            request.extensions_mut().insert(principal);
            inner.call(request).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log sink for one test: every line written, in order.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Lines {
        fn errors(&self) -> Vec<String> {
            let bytes = self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            String::from_utf8_lossy(&bytes)
                .lines()
                .filter(|l| l.contains("ERROR"))
                .map(str::to_owned)
                .collect()
        }
    }

    /// A Gatehouse that answers every introspection with 500: each request is an outage
    /// (503), but the log gets one ERROR line, not one per request.
    #[test]
    fn an_outage_is_logged_once_not_per_request() -> Result<(), Box<dyn std::error::Error>> {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                let failing = axum::Router::new().route(
                    "/oauth/introspect",
                    axum::routing::post(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
                );
                tokio::spawn(async move { axum::serve(listener, failing).await });
                let guard = Guard::new(GuardConfig::new(
                    format!("http://{addr}/oauth/introspect"),
                    "grs_x",
                    "secret",
                ))?;
                for i in 0..20 {
                    let answer = guard.check(&format!("token-{i}"), None).await;
                    assert_eq!(answer.err(), Some(Rejection::Unavailable));
                }
                Ok::<(), Box<dyn std::error::Error>>(())
            })
        })?;
        let errors = lines.errors();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors.iter().all(|l| l.contains("500")), "{errors:#?}");
        Ok(())
    }

    #[test]
    fn credentials_are_taken_from_bearer_or_api_key() {
        let mut h = http::HeaderMap::new();
        assert_eq!(credential(&h), Err(Rejection::Missing));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert_eq!(credential(&h), Ok("abc".to_owned()));
        h.insert("x-api-key", HeaderValue::from_static("abc"));
        assert_eq!(credential(&h), Ok("abc".to_owned()));
        h.insert("x-api-key", HeaderValue::from_static("other"));
        assert_eq!(credential(&h), Err(Rejection::Ambiguous));
        let mut k = http::HeaderMap::new();
        k.insert("x-api-key", HeaderValue::from_static("ghk_x"));
        assert_eq!(credential(&k), Ok("ghk_x".to_owned()));
        let mut basic = http::HeaderMap::new();
        basic.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&basic), Err(Rejection::Missing));
    }

    #[test]
    fn each_trouble_is_logged_once_per_interval_with_the_count_held_back() {
        let limiter = LogLimiter::default();
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert_eq!(limiter.admit(Trouble::Refused, at(0)), Some(0));
        assert_eq!(limiter.admit(Trouble::Refused, at(1)), None);
        assert_eq!(limiter.admit(Trouble::Refused, at(59)), None);
        // Another kind has its own schedule.
        assert_eq!(limiter.admit(Trouble::Unreachable, at(30)), Some(0));
        // One interval after the last line: the next line, counting the two held back.
        assert_eq!(limiter.admit(Trouble::Refused, at(60)), Some(2));
        assert_eq!(limiter.admit(Trouble::Refused, at(61)), None);
        assert_eq!(limiter.admit(Trouble::Refused, at(200)), Some(1));
        assert_eq!(limiter.admit(Trouble::Unreachable, at(200)), Some(0));
    }

    fn forwarded(values: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in values {
            if let Ok(v) = HeaderValue::from_str(v) {
                h.append("x-forwarded-for", v);
            }
        }
        h
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// The same cases as Gatehouse's own `client_ip::resolve`, plus a few more.
    #[test]
    fn x_forwarded_for_is_read_right_to_left_from_trusted_proxies_only() {
        let trusted: Vec<IpNet> = ["10.0.0.0/8", "2001:db8:1::/48"]
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect();
        let proxy = ip("10.0.0.1");
        let outsider = ip("203.0.113.9");
        let resolve = |peer: IpAddr, values: &[&str]| {
            gatehouse_net::resolve(peer, &forwarded(values), &trusted)
        };
        // A peer that is no trusted proxy is the client, whatever it claims.
        assert_eq!(resolve(outsider, &["1.2.3.4"]), outsider);
        assert_eq!(resolve(proxy, &["1.2.3.4"]), ip("1.2.3.4"));
        // Right to left: trusted hops are skipped, a spoofed left-most entry is ignored.
        assert_eq!(
            resolve(proxy, &["6.6.6.6, 1.2.3.4, 10.0.0.7"]),
            ip("1.2.3.4")
        );
        // Several headers are one list, in order.
        assert_eq!(
            resolve(proxy, &["6.6.6.6, 1.2.3.4", "10.0.0.7"]),
            ip("1.2.3.4")
        );
        // Every hop trusted: the left-most.
        assert_eq!(resolve(proxy, &["10.9.9.9, 10.0.0.7"]), ip("10.9.9.9"));
        assert_eq!(
            resolve(ip("2001:db8:1::5"), &["2001:db8:2::1"]),
            ip("2001:db8:2::1")
        );
        // A malformed entry anywhere, or an empty one, makes the chain untrustworthy.
        assert_eq!(resolve(proxy, &["garbage"]), proxy);
        assert_eq!(resolve(proxy, &["1.2.3.4, garbage, 10.0.0.7"]), proxy);
        assert_eq!(resolve(proxy, &["1.2.3.4,"]), proxy);
        assert_eq!(resolve(proxy, &[]), proxy);
        // No trusted proxies configured: always the peer.
        assert_eq!(
            gatehouse_net::resolve(proxy, &forwarded(&["1.2.3.4"]), &[]),
            proxy
        );
    }

    #[test]
    fn rejections_follow_rfc6750() {
        let r = Rejection::InvalidToken.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let www = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(www.contains("invalid_token"));
        let r = Rejection::InsufficientScope("orders:write".into()).into_response();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let r = Rejection::RateLimited(7).into_response();
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            r.headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("7")
        );
    }
}
