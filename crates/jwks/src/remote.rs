//! Keys published by someone else: a consumer's identity provider (OpenID Connect Discovery,
//! then its `jwks_uri`), a consumer's JWKS URL, or — for resource servers that verify
//! Gatehouse tokens locally — Gatehouse's own JWKS.
//!
//! Every outbound fetch goes through [`Fetcher`]: the address rules of [`crate::outbound`]
//! (https only, http only to a host `GATEHOUSE_OUTBOUND_ALLOW` covers; no internal address
//! unless it covers it; the connection goes to the vetted address), no redirects followed, no
//! proxy, at most 64 KiB read, at most 5 s (the contract's rule, so an admin-supplied URL, or
//! a URL an identity provider names, cannot be turned against internal hosts). Metadata is
//! fetched with openidconnect's discovery client, which checks that the discovered `issuer`
//! is exactly the configured one (OpenID Connect Discovery 1.0 §4.3); the `jwks_uri` it names
//! must have the issuer's scheme and host, unless the allow list covers its host.
//!
//! [`RemoteKeys`] caches one key set per source:
//! - a key set is reused for its TTL; past it, the stale keys keep answering while one
//!   background refresh runs, so an identity provider that is down fails no token whose key
//!   is already known;
//! - an unknown `kid` triggers a refresh, and refreshes of one source are at most one per
//!   `min_refresh`, so a flood of made-up `kid`s cannot hammer the identity provider;
//! - only asymmetric keys are used (`oct` keys are ignored: an HMAC key from a public
//!   document would be the HS-with-public-key confusion of RFC 8725 §2.1), each only with the
//!   algorithms its type and `crv` fit, and RSA moduli under 2048 bits are ignored.

use crate::jws::{Alg, Jws, Rejection, Signed, VerifyKey};
use crate::outbound::{OutboundAllow, Refusal, VettingResolver, check_jwks_uri, check_url};
use josekit::jwk::Jwk;
use openidconnect::core::{CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{HttpRequest, HttpResponse, IssuerUrl, JsonWebKeySetUrl};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use url::Url;

/// Most bytes read from any outbound response (contract: 64 KiB).
pub const MAX_FETCH_BYTES: usize = 64 * 1024;
/// Longest wait for any outbound fetch (contract: 5 s).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most keys taken from one JWKS.
const MAX_KEYS: usize = 100;
/// Most sources cached at once.
const MAX_SOURCES: usize = 10_000;

/// Adds the served request's context to an outbound fetch's headers (the W3C
/// `traceparent`/`tracestate` of the request that caused it, when traces are exported).
pub type ContextHeaders = fn(&mut reqwest::header::HeaderMap);

/// The one [`ContextHeaders`] of this process, if the server installed one.
static CONTEXT_HEADERS: std::sync::OnceLock<ContextHeaders> = std::sync::OnceLock::new();

/// Install the [`ContextHeaders`] every [`Fetcher`] applies (once per process; a later call
/// changes nothing). Without it fetches carry no context.
pub fn set_context_headers(add: ContextHeaders) {
    let _ = CONTEXT_HEADERS.set(add);
}

/// Why an outbound fetch failed (for logs; never shown to API callers in detail).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The URL, or the address its host resolves to, breaks the outbound rules; nothing was
    /// sent.
    #[error("refused URL: {0}")]
    Refused(Refusal),
    /// Connecting, sending or reading failed (including the timeout).
    #[error("request failed: {0}")]
    Transport(String),
    /// The body is larger than [`MAX_FETCH_BYTES`].
    #[error("the response is larger than {MAX_FETCH_BYTES} bytes")]
    TooLarge,
}

impl From<reqwest::Error> for FetchError {
    /// A refusal by the [`VettingResolver`] stays a refusal; anything else is transport.
    fn from(e: reqwest::Error) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        while let Some(c) = cause {
            if let Some(refusal) = c.downcast_ref::<Refusal>() {
                return FetchError::Refused(*refusal);
            }
            cause = c.source();
        }
        FetchError::Transport(e.without_url().to_string())
    }
}

/// The one HTTP client for outbound fetches, with the contract's limits built in.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    allow: Arc<OutboundAllow>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A fetcher that reaches public addresses and those `allow` covers, connects only to
    /// addresses its [`VettingResolver`] checked, uses no proxy (a proxy would resolve and
    /// connect on its own), follows no redirect and gives up after [`FETCH_TIMEOUT`].
    pub fn new(allow: OutboundAllow) -> Result<Self, FetchError> {
        let allow = Arc::new(allow);
        Self::with_resolver(allow.clone(), VettingResolver::new(allow))
    }

    fn with_resolver(
        allow: Arc<OutboundAllow>,
        resolver: VettingResolver,
    ) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(resolver)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .user_agent(concat!("gatehouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self { client, allow })
    }

    /// GET `url` under the outbound rules; any status is returned as is (a 3xx is not
    /// followed: the caller sees it and fails).
    pub async fn get(&self, url: &str) -> Result<HttpResponse, FetchError> {
        let parsed = Url::parse(url).map_err(|_| FetchError::Refused(Refusal::NotAUrl))?;
        self.get_url(parsed).await
    }

    async fn get_url(&self, url: Url) -> Result<HttpResponse, FetchError> {
        // IP literals never reach the resolver: this is their only check.
        check_url(&url, &self.allow).map_err(FetchError::Refused)?;
        let mut request = self
            .client
            .get(url)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(add) = CONTEXT_HEADERS.get() {
            let mut headers = reqwest::header::HeaderMap::new();
            add(&mut headers);
            request = request.headers(headers);
        }
        let mut response = request.send().await?;
        if response
            .content_length()
            .is_some_and(|n| n > MAX_FETCH_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_FETCH_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = openidconnect::http::Response::new(body);
        *out.status_mut() = response.status();
        *out.headers_mut() = response.headers().clone();
        Ok(out)
    }

    /// The adapter openidconnect's clients call: GET only. For a discovery source `issuer` is
    /// the issuer URL: every URL fetched for it (the discovery document, then the `jwks_uri`
    /// the document names) must have its scheme and host, or a host the allow list covers.
    async fn execute(
        &self,
        request: HttpRequest,
        issuer: Option<&Url>,
    ) -> Result<HttpResponse, FetchError> {
        if request.method() != openidconnect::http::Method::GET {
            return Err(FetchError::Transport("only GET is used".to_owned()));
        }
        let url = Url::parse(&request.uri().to_string())
            .map_err(|_| FetchError::Refused(Refusal::NotAUrl))?;
        if let Some(issuer) = issuer {
            check_jwks_uri(issuer, &url, &self.allow).map_err(FetchError::Refused)?;
        }
        self.get_url(url).await
    }
}

/// Where a key set comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// An OpenID Connect issuer: discovery document, then its `jwks_uri`.
    Issuer(String),
    /// A JWKS URL.
    JwksUri(String),
}

impl KeySource {
    fn url(&self) -> &str {
        match self {
            KeySource::Issuer(u) | KeySource::JwksUri(u) => u,
        }
    }
}

/// A fetched key set.
#[derive(Default)]
struct Fetched {
    /// The issuer discovery returned (issuer sources only).
    issuer: Option<String>,
    /// One key per (JWK, algorithm it may verify).
    keys: Vec<VerifyKey>,
    /// When it was fetched; `None` until the first success.
    at: Option<Instant>,
}

struct Entry {
    current: RwLock<Arc<Fetched>>,
    /// Single flight: one refresh of a source at a time.
    refreshing: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
}

impl Entry {
    fn snapshot(&self) -> Arc<Fetched> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, fetched: Arc<Fetched>) {
        match self.current.write() {
            Ok(mut g) => *g = fetched,
            Err(poisoned) => *poisoned.into_inner() = fetched,
        }
    }

    /// Claim the right to fetch now, if the last attempt is at least `min` ago.
    fn claim_attempt(&self, min: Duration) -> bool {
        let mut last = match self.last_attempt.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if last.is_some_and(|t| t.elapsed() < min) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

/// A bounded cache of remote key sets, shared by every request.
pub struct RemoteKeys {
    fetcher: Fetcher,
    ttl: Duration,
    min_refresh: Duration,
    entries: Mutex<HashMap<KeySource, Arc<Entry>>>,
}

impl std::fmt::Debug for RemoteKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteKeys")
            .field("ttl", &self.ttl)
            .field("min_refresh", &self.min_refresh)
            .finish_non_exhaustive()
    }
}

impl RemoteKeys {
    /// A cache whose key sets live `ttl`, refreshed at most once per `min_refresh` each,
    /// fetched from public addresses and those `allow` covers (`GATEHOUSE_OUTBOUND_ALLOW`).
    pub fn new(
        ttl: Duration,
        min_refresh: Duration,
        allow: OutboundAllow,
    ) -> Result<Arc<Self>, FetchError> {
        Ok(Arc::new(Self {
            fetcher: Fetcher::new(allow)?,
            ttl,
            min_refresh,
            entries: Mutex::new(HashMap::new()),
        }))
    }

    fn entry(&self, source: &KeySource) -> Arc<Entry> {
        let mut map = match self.entries.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(e) = map.get(source) {
            return e.clone();
        }
        if map.len() >= MAX_SOURCES {
            map.clear();
        }
        let e = Arc::new(Entry {
            current: RwLock::new(Arc::new(Fetched::default())),
            refreshing: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
        });
        map.insert(source.clone(), e.clone());
        e
    }

    /// Check `jws`'s signature with `source`'s key set through the one verifier: the key
    /// named by `kid` (or, without one, any key) for the header's algorithm, which must be one
    /// of `pinned`. A JWK that declares its `alg` verifies only with it; one that does not is
    /// used only when exactly one algorithm is pinned (RFC 8725 §3.1: one key, one
    /// algorithm). For a discovery source, `iss` must equal the discovered issuer (OpenID
    /// Connect Discovery 1.0 §4.3). An unknown `kid` refreshes the set (rate-limited) once.
    pub async fn verify(
        self: &Arc<Self>,
        source: &KeySource,
        jws: Jws<'_>,
        pinned: &[Alg],
    ) -> Result<Signed, Rejection> {
        if !pinned.contains(&jws.header().alg) {
            return Err(Rejection::AlgMismatch);
        }
        let entry = self.entry(source);
        let mut snap = entry.snapshot();
        match snap.at {
            None => snap = self.refresh(&entry, source).await,
            Some(at) if at.elapsed() >= self.ttl => self.refresh_in_background(&entry, source),
            Some(_) => {}
        }
        if snap.at.is_none() {
            return Err(Rejection::Unavailable);
        }
        let usable = |set: &Arc<Fetched>| {
            let keys: Vec<&VerifyKey> = set
                .keys
                .iter()
                .filter(|k| k.declared() || pinned.len() == 1)
                .collect();
            jws.signature_matches(keys)
        };
        let mut outcome = usable(&snap);
        if outcome == Err(Rejection::UnknownKey) {
            // The provider may have rotated: refresh (rate-limited) and retry once.
            let fresh = self.refresh(&entry, source).await;
            if !Arc::ptr_eq(&fresh, &snap) {
                outcome = usable(&fresh);
                snap = fresh;
            }
        }
        outcome?;
        let signed = jws.into_signed();
        if let Some(issuer) = &snap.issuer
            && signed.claims().get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(Rejection::Issuer);
        }
        Ok(signed)
    }

    /// Fetch now unless another fetch ran within `min_refresh`; answers the newest set.
    async fn refresh(&self, entry: &Arc<Entry>, source: &KeySource) -> Arc<Fetched> {
        let _flight = entry.refreshing.lock().await;
        if !entry.claim_attempt(self.min_refresh) {
            return entry.snapshot();
        }
        match fetch(&self.fetcher, source).await {
            Ok(fetched) => {
                REMOTE_FETCHES
                    .ok
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let fetched = Arc::new(fetched);
                entry.store(fetched.clone());
                fetched
            }
            Err(why) => {
                REMOTE_FETCHES
                    .failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(source = source.url(), error = %why, "remote key set fetch failed");
                entry.snapshot()
            }
        }
    }

    fn refresh_in_background(self: &Arc<Self>, entry: &Arc<Entry>, source: &KeySource) {
        if entry.refreshing.try_lock().is_err() {
            return;
        }
        let (this, entry, source) = (self.clone(), entry.clone(), source.clone());
        tokio::spawn(async move {
            this.refresh(&entry, &source).await;
        });
    }
}

#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error("{0}")]
    Discovery(String),
}

/// Outcomes of remote key set fetches (identity providers' discovery and JWKS), for
/// `/metrics`.
#[derive(Debug)]
pub struct RemoteFetches {
    /// Fetches that brought a key set.
    pub ok: std::sync::atomic::AtomicU64,
    /// Fetches that failed (refused address, timeout, bad answer); the last good set stays.
    pub failed: std::sync::atomic::AtomicU64,
}

/// This process's remote fetch outcomes.
pub static REMOTE_FETCHES: RemoteFetches = RemoteFetches {
    ok: std::sync::atomic::AtomicU64::new(0),
    failed: std::sync::atomic::AtomicU64::new(0),
};

async fn fetch(fetcher: &Fetcher, source: &KeySource) -> Result<Fetched, SourceError> {
    let issuer_url = match source {
        KeySource::Issuer(issuer) => {
            Some(Url::parse(issuer).map_err(|e| SourceError::Discovery(e.to_string()))?)
        }
        KeySource::JwksUri(_) => None,
    };
    let client = |request: HttpRequest| {
        let (fetcher, issuer_url) = (fetcher.clone(), issuer_url.clone());
        async move { fetcher.execute(request, issuer_url.as_ref()).await }
    };
    let describe = |e: openidconnect::DiscoveryError<FetchError>| {
        use std::error::Error;
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        SourceError::Discovery(text)
    };
    let (issuer, jwks) = match source {
        KeySource::Issuer(issuer) => {
            let url = IssuerUrl::new(issuer.clone())
                .map_err(|e| SourceError::Discovery(e.to_string()))?;
            let metadata = CoreProviderMetadata::discover_async(url, &client)
                .await
                .map_err(describe)?;
            (
                Some(metadata.issuer().as_str().to_owned()),
                metadata.jwks().clone(),
            )
        }
        KeySource::JwksUri(uri) => {
            let url = JsonWebKeySetUrl::new(uri.clone())
                .map_err(|e| SourceError::Discovery(e.to_string()))?;
            let jwks = CoreJsonWebKeySet::fetch_async(&url, &client)
                .await
                .map_err(describe)?;
            (None, jwks)
        }
    };
    let value = serde_json::to_value(&jwks).map_err(|e| SourceError::Discovery(e.to_string()))?;
    Ok(Fetched {
        issuer,
        keys: usable_keys(&value),
        at: Some(Instant::now()),
    })
}

/// The asymmetric signing keys of a JWKS document: one [`VerifyKey`] for the algorithm a JWK
/// declares, or (no `alg`) one per algorithm its type fits, marked as not declared. `oct` keys
/// never (RFC 8725 §2.1), RSA moduli under 2048 bits never.
fn usable_keys(jwks: &Value) -> Vec<VerifyKey> {
    let Some(list) = jwks.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for k in list.iter().take(MAX_KEYS) {
        let Some(jwk) = k.as_object().and_then(|m| Jwk::from_map(m.clone()).ok()) else {
            continue;
        };
        if jwk.key_type() == "RSA" {
            let bits = jwk
                .parameter("n")
                .and_then(Value::as_str)
                .map_or(0, |n| n.trim_end_matches('=').len() * 6);
            if bits < 2040 {
                continue;
            }
        }
        let candidates = Alg::for_key_type(jwk.key_type());
        match jwk.algorithm() {
            Some(declared) => {
                if let Some(alg) = Alg::parse(declared).filter(|a| candidates.contains(a))
                    && let Ok(key) = VerifyKey::public_jwk(alg, &jwk, true)
                {
                    out.push(key);
                }
            }
            None => out.extend(
                candidates
                    .iter()
                    .filter_map(|alg| VerifyKey::public_jwk(*alg, &jwk, false).ok()),
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use josekit::jwk::alg::rsa::RsaKeyPair;
    use serde_json::json;

    /// A loopback listener that counts the connections it accepts and closes each at once.
    async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                drop(socket);
            }
        });
        (port, count)
    }

    /// Connects once ourselves and waits until the listener saw it: afterwards the count
    /// includes every connection made before.
    async fn settled(port: u16, count: &std::sync::atomic::AtomicUsize) -> usize {
        let _probe = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        while count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        count.load(std::sync::atomic::Ordering::SeqCst) - 1
    }

    #[tokio::test]
    async fn refused_fetches_open_no_connection() {
        use crate::outbound::InternalRange::Loopback;
        let (port, count) = counting_listener().await;
        let strict = Arc::new(OutboundAllow::default());
        // `idp.test` resolves to loopback (a rebinding answer), without any DNS.
        let fetcher = Fetcher::with_resolver(
            strict.clone(),
            VettingResolver::fixed(strict, &[("idp.test", "127.0.0.1")]),
        )
        .unwrap();
        for (url, expected) in [
            (format!("http://127.0.0.1:{port}/jwks"), Refusal::Insecure),
            (
                format!("https://127.0.0.1:{port}/jwks"),
                Refusal::Internal(Loopback),
            ),
            (
                format!("https://[::ffff:127.0.0.1]:{port}/jwks"),
                Refusal::Internal(Loopback),
            ),
            (
                format!("https://localhost:{port}/jwks"),
                Refusal::Internal(Loopback),
            ),
            (
                format!("https://idp.test:{port}/jwks"),
                Refusal::Internal(Loopback),
            ),
            (
                "https://10.0.0.1/jwks".to_owned(),
                Refusal::Internal(crate::outbound::InternalRange::Private),
            ),
            (
                "https://169.254.169.254/latest/meta-data".to_owned(),
                Refusal::Internal(crate::outbound::InternalRange::LinkLocal),
            ),
        ] {
            match fetcher.get(&url).await {
                Err(FetchError::Refused(r)) => assert_eq!(r, expected, "{url}"),
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(settled(port, &count).await, 0, "no connection was opened");
    }

    #[tokio::test]
    async fn an_allowed_fetch_connects_to_the_vetted_address() {
        let (port, count) = counting_listener().await;
        let allow = Arc::new(OutboundAllow::parse(&["127.0.0.0/8"]).unwrap());
        let fetcher = Fetcher::with_resolver(
            allow.clone(),
            VettingResolver::fixed(allow, &[("idp.test", "127.0.0.1")]),
        )
        .unwrap();
        // The listener speaks no TLS: the fetch fails, but only after connecting.
        let outcome = fetcher.get(&format!("https://idp.test:{port}/jwks")).await;
        assert!(
            matches!(outcome, Err(FetchError::Transport(_))),
            "{outcome:?}"
        );
        assert_eq!(settled(port, &count).await, 1);
    }

    #[tokio::test]
    async fn fetches_carry_the_installed_context_headers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        fn add(headers: &mut reqwest::header::HeaderMap) {
            headers.insert(
                "traceparent",
                reqwest::header::HeaderValue::from_static(
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                ),
            );
        }
        set_context_headers(add);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = socket.read(&mut buf).await.unwrap();
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                .await;
            String::from_utf8_lossy(&buf[..n]).to_lowercase()
        });
        let allow = OutboundAllow::parse(&["127.0.0.0/8"]).unwrap();
        let fetcher = Fetcher::new(allow).unwrap();
        let response = fetcher
            .get(&format!("http://127.0.0.1:{port}/jwks"))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let request = seen.await.unwrap();
        assert!(
            request.contains(
                "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n"
            ),
            "{request}"
        );
    }

    #[test]
    fn keys_get_only_the_algorithms_they_fit() {
        let rsa = RsaKeyPair::generate(2048).unwrap().to_jwk_public_key();
        let ec = EcKeyPair::generate(EcCurve::P256)
            .unwrap()
            .to_jwk_public_key();
        let small = RsaKeyPair::generate(1024).unwrap().to_jwk_public_key();
        let oct = json!({"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0"});
        let mut enc = RsaKeyPair::generate(2048).unwrap().to_jwk_public_key();
        enc.set_key_use("enc");
        let doc = json!({"keys": [
            serde_json::to_value(rsa.as_ref()).unwrap(),
            serde_json::to_value(ec.as_ref()).unwrap(),
            serde_json::to_value(small.as_ref()).unwrap(),
            oct,
            serde_json::to_value(enc.as_ref()).unwrap(),
        ]});
        let algs = |doc: &Value| -> Vec<(&'static str, bool)> {
            usable_keys(doc)
                .iter()
                .map(|k| (k.alg().as_str(), k.declared()))
                .collect()
        };
        assert_eq!(
            algs(&doc),
            vec![
                ("RS256", false),
                ("RS384", false),
                ("RS512", false),
                ("PS256", false),
                ("PS384", false),
                ("PS512", false),
                ("ES256", false),
            ]
        );
        let mut declared = RsaKeyPair::generate(2048).unwrap().to_jwk_public_key();
        declared.set_algorithm("PS256");
        assert_eq!(
            algs(&json!({"keys": [serde_json::to_value(declared.as_ref()).unwrap()]})),
            vec![("PS256", true)],
            "a declared alg is the key's only one"
        );
    }
}
