//! `oidc` profiles: a consumer's own identity provider signs its JWTs, and Gatehouse verifies
//! them with the provider's published keys (OpenID Connect Discovery, then `jwks_uri`, or a
//! JWKS URL given directly); `jwt`/rsa profiles may take a JWKS URL too.
//!
//! Two kinds of identity provider: a second, real Gatehouse (ES256 access tokens, a real
//! discovery document), and a scriptable stub served by axum in the test, which counts
//! fetches, rotates keys, and misbehaves on demand (500, redirect, oversized body, slow
//! answer, wrong issuer) to check the outbound-fetch rules and the key cache.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode as HttpStatus, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{
    Auth, Fixture, Reply, TestApp, Value, assert_active, assert_inactive, collection_credentials,
    decode_jwt_unverified, json, merged, random_base62, scope_set, spawn_app, spawn_app_with,
    str_field, unique,
};
use josekit::jwk::KeyPair;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::{HS256, JwsSigner, RS256, RS512};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The audience consumers' JWTs are minted for, in the stub tests.
const AUD: &str = "https://consumer-api.example.com";
/// The relying Gatehouse's collection.
const RP_AUDIENCE: &str = "https://rp-api.example.com/api";
/// The refresh interval the stub tests run with.
const MIN_REFRESH: Duration = Duration::from_secs(1);
/// A little more than [`MIN_REFRESH`].
const PAST_MIN_REFRESH: Duration = Duration::from_millis(1200);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `{"active": false}` and nothing else.
#[track_caller]
fn inactive(reply: &Reply) {
    assert_inactive(reply);
}

/// A `temporarily_unavailable` 503.
#[track_caller]
fn unavailable(reply: &Reply) {
    reply.expect_error(503, "temporarily_unavailable");
}

// ---------------------------------------------------------------------------------------------
// Keys and tokens
// ---------------------------------------------------------------------------------------------

/// An RSA signing key of the stub identity provider.
struct Key {
    kid: String,
    pair: RsaKeyPair,
}

impl Key {
    fn new(kid: &str) -> anyhow::Result<Self> {
        Ok(Self {
            kid: kid.to_owned(),
            pair: RsaKeyPair::generate(2048)?,
        })
    }

    /// The public JWK as a JWKS member (`kid`, `alg: RS256`, `use: sig`).
    fn jwk(&self) -> anyhow::Result<Value> {
        let mut jwk = self.pair.to_jwk_public_key();
        jwk.set_key_id(&self.kid);
        jwk.set_algorithm("RS256");
        jwk.set_key_use("sig");
        Ok(serde_json::to_value(jwk.as_ref())?)
    }

    fn public_pem(&self) -> Vec<u8> {
        self.pair.to_pem_public_key()
    }

    /// A compact JWS of `claims` with exactly this header, signed with this key (`RS256` or
    /// `RS512`, as the header's `alg` says).
    fn sign_header(&self, header: &Value, claims: &Value) -> anyhow::Result<String> {
        let pem = self.pair.to_pem_private_key();
        let signer: Box<dyn JwsSigner> = match header["alg"].as_str() {
            Some("RS512") => Box::new(RS512.signer_from_pem(&pem)?),
            _ => Box::new(RS256.signer_from_pem(&pem)?),
        };
        compact(header, claims, |input| Ok(signer.sign(input)?))
    }

    /// An RS256 JWS with this key's `kid`.
    fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        self.sign_kid(&self.kid, claims)
    }

    /// An RS256 JWS signed with this key but naming `kid`.
    fn sign_kid(&self, kid: &str, claims: &Value) -> anyhow::Result<String> {
        self.sign_header(&json!({"alg": "RS256", "typ": "JWT", "kid": kid}), claims)
    }
}

fn compact(
    header: &Value,
    claims: &Value,
    sign: impl FnOnce(&[u8]) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<String> {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let signature = sign(input.as_bytes())?;
    Ok(format!("{input}.{}", b64(signature)))
}

/// An HS256 JWS with `secret` as the HMAC key.
fn sign_hs256(header: &Value, claims: &Value, secret: &[u8]) -> anyhow::Result<String> {
    let signer = HS256.signer_from_bytes(secret)?;
    compact(header, claims, |input| Ok(signer.sign(input)?))
}

/// Claims of a consumer token from `iss` for `sub`: audience [`AUD`], valid for 5 minutes,
/// a fresh `jti`, `tenant: acme`. Members of `extra` replace them; a `null` removes one.
fn claims(iss: &str, sub: &str, extra: Value) -> Value {
    let base = json!({"iss": iss, "sub": sub, "aud": AUD, "iat": now(), "exp": now() + 300,
        "jti": random_base62(16), "tenant": "acme"});
    merged(base, extra)
}

// ---------------------------------------------------------------------------------------------
// The stub identity provider
// ---------------------------------------------------------------------------------------------

/// How the stub answers its discovery document and JWKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Valid answers.
    Healthy,
    /// 500 on everything.
    Failing,
    /// 302 to the same document under `/moved` (which would be valid, if followed).
    Redirect,
    /// A valid JWKS padded with whitespace past 64 KiB (with a Content-Length).
    Oversized,
    /// Valid answers after 6 seconds.
    Slow,
    /// A discovery document whose `issuer` is not the stub's URL.
    WrongIssuer,
}

struct StubState {
    mode: Mode,
    keys: Vec<Value>,
    hits: HashMap<String, usize>,
}

/// A scriptable OpenID provider on a random loopback port; its issuer is [`Stub::url`].
#[derive(Clone)]
struct Stub {
    url: String,
    state: Arc<Mutex<StubState>>,
}

impl Stub {
    /// Starts a stub publishing `keys`.
    async fn spawn(keys: &[&Key]) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stub = Stub {
            url,
            state: Arc::new(Mutex::new(StubState {
                mode: Mode::Healthy,
                keys: Vec::new(),
                hits: HashMap::new(),
            })),
        };
        stub.set_keys(keys)?;
        let router = Router::new()
            .fallback(stub_handler)
            .with_state(stub.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(stub)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StubState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    fn set_keys(&self, keys: &[&Key]) -> anyhow::Result<()> {
        let jwks = keys
            .iter()
            .map(|k| k.jwk())
            .collect::<anyhow::Result<_>>()?;
        self.lock().keys = jwks;
        Ok(())
    }

    /// Requests seen for `path`.
    fn hits(&self, path: &str) -> usize {
        self.lock().hits.get(path).copied().unwrap_or(0)
    }

    /// Requests seen for any path.
    fn total_hits(&self) -> usize {
        self.lock().hits.values().sum()
    }

    /// Requests seen for any path under `/moved/` (redirect targets).
    fn moved_hits(&self) -> usize {
        self.lock()
            .hits
            .iter()
            .filter(|(p, _)| p.starts_with("/moved/"))
            .map(|(_, n)| n)
            .sum()
    }

    fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.url)
    }
}

async fn stub_handler(State(stub): State<Stub>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    let (mode, keys) = {
        let mut s = stub.lock();
        *s.hits.entry(path.clone()).or_default() += 1;
        (s.mode, s.keys.clone())
    };
    let moved = path.starts_with("/moved/");
    let real = path.strip_prefix("/moved").unwrap_or(&path);
    let prefix = if moved { "/moved" } else { "" };
    if !moved {
        match mode {
            Mode::Failing => {
                return (HttpStatus::INTERNAL_SERVER_ERROR, "the IdP is down").into_response();
            }
            Mode::Redirect => {
                let to = format!("{}/moved{path}", stub.url);
                return (HttpStatus::FOUND, [(header::LOCATION, to)]).into_response();
            }
            Mode::Slow => tokio::time::sleep(Duration::from_secs(6)).await,
            Mode::Healthy | Mode::Oversized | Mode::WrongIssuer => {}
        }
    }
    let json_body =
        |body: String| ([(header::CONTENT_TYPE, "application/json")], body).into_response();
    match real {
        "/.well-known/openid-configuration" => {
            let issuer = if mode == Mode::WrongIssuer {
                format!("{}/elsewhere", stub.url)
            } else {
                stub.url.clone()
            };
            json_body(
                json!({
                    "issuer": issuer,
                    "authorization_endpoint": format!("{}/authorize", stub.url),
                    "token_endpoint": format!("{}/token", stub.url),
                    "jwks_uri": format!("{}{prefix}/jwks", stub.url),
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                })
                .to_string(),
            )
        }
        "/jwks" => {
            let mut body = json!({"keys": keys}).to_string();
            if mode == Mode::Oversized {
                body.push_str(&" ".repeat(70 * 1024));
            }
            json_body(body)
        }
        "/authorize" => (
            HttpStatus::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"error": "unsupported_response_type"}).to_string(),
        )
            .into_response(),
        _ => HttpStatus::NOT_FOUND.into_response(),
    }
}

/// A bare HTTP/1.1 server that answers every request with `body` as `application/json`
/// *without* a Content-Length (the body ends when the connection closes), so only a reader
/// that counts bytes as they arrive can enforce a size limit. Returns its URL and a request
/// counter.
async fn raw_json_server(body: String) -> anyhow::Result<(String, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let body = Arc::new(body);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0_u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let start = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
                if sock.write_all(start.as_bytes()).await.is_ok() {
                    let _ = sock.write_all(body.as_bytes()).await;
                }
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok((url, hits))
}

// ---------------------------------------------------------------------------------------------
// The relying Gatehouse
// ---------------------------------------------------------------------------------------------

/// A Gatehouse that trusts consumers' identity providers: one collection (granted to every
/// profile made with [`Rp::profile`]), one client, and a collection granted to nothing.
struct Rp {
    app: TestApp,
    collection: Value,
    stranger: Value,
    client_id: String,
}

impl Rp {
    /// A relying Gatehouse whose remote key sets refresh at most once per [`MIN_REFRESH`]
    /// (and live `ttl`, when given).
    async fn spawn(ttl: Option<Duration>) -> anyhow::Result<Self> {
        let app = spawn_app_with(move |cfg| {
            cfg.remote_keys_min_refresh = MIN_REFRESH;
            if let Some(ttl) = ttl {
                cfg.remote_keys_ttl = ttl;
            }
        })
        .await?;
        Self::on(app).await
    }

    async fn on(app: TestApp) -> anyhow::Result<Self> {
        let collection = app
            .create_collection("RP API", RP_AUDIENCE, &["rp:read", "rp:write"])
            .await?;
        let stranger = app
            .create_collection("Stranger", "https://stranger.example.com/api", &["x:y"])
            .await?;
        let client = app.create_client("Consumer Inc").await?;
        let client_id = str_field(&client, "id")?.to_owned();
        Ok(Self {
            app,
            collection,
            stranger,
            client_id,
        })
    }

    /// Creates a profile granted the collection; `body` is merged over
    /// `{name, auth_type: oidc, collections, allowed_audiences: [AUD]}`.
    async fn profile(&self, body: Value) -> anyhow::Result<Value> {
        let base = json!({"name": unique("idp"), "auth_type": "oidc",
            "collections": [self.collection["id"]], "allowed_audiences": [AUD]});
        self.app
            .create_profile(&self.client_id, &merged(base, body))
            .await
    }

    /// An oidc profile trusting the stub by discovery, for `sub` = `consumer`, pinned to
    /// RS256, requiring `tenant: acme`.
    async fn stub_profile(&self, stub: &Stub, consumer: &str) -> anyhow::Result<Value> {
        self.profile(json!({"oidc_issuer": stub.url, "jwt_claim_value": consumer,
            "jwt_algorithms": ["RS256"], "required_claims": [{"name": "tenant", "value": "acme"}]}))
            .await
    }

    fn basic(&self) -> Auth<'_> {
        let (id, secret) = collection_credentials(&self.collection).unwrap_or(("", ""));
        Auth::Basic(id, secret)
    }

    fn stranger_basic(&self) -> Auth<'_> {
        let (id, secret) = collection_credentials(&self.stranger).unwrap_or(("", ""));
        Auth::Basic(id, secret)
    }

    /// Introspects with the granted collection's credentials.
    async fn introspect(&self, token: &str) -> anyhow::Result<Reply> {
        self.app.introspect_token(self.basic(), token).await
    }

    /// Trades `assertion` with the RFC 7523 §2.1 JWT-bearer grant (no client authentication).
    async fn jwt_bearer(&self, assertion: &str) -> anyhow::Result<Reply> {
        self.app
            .token_form(
                None,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion),
                ],
                &[],
            )
            .await
    }
}

/// A client-credentials token of an IdP-side Gatehouse fixture.
async fn idp_token(idp: &TestApp, fx: &Fixture) -> anyhow::Result<String> {
    idp.access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await
}

// ---------------------------------------------------------------------------------------------
// A real OpenID provider: another Gatehouse
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_second_gatehouse_is_the_consumers_openid_provider() -> anyhow::Result<()> {
    let idp = spawn_app().await?;
    let rp = Rp::on(spawn_app().await?).await?;

    // At the IdP: two consumers with oauth2 profiles. Their access tokens are ES256, `iss` is
    // the IdP, `sub` their oauth_client_id, `aud` the IdP collection's audience.
    let by_issuer = idp.oauth_fixture(&["idp:read"], json!({})).await?;
    let by_jwks = idp.oauth_fixture(&["idp:write"], json!({})).await?;
    let first = idp_token(&idp, &by_issuer).await?;
    let (header, c) = decode_jwt_unverified(&first)?;
    assert_eq!(header["alg"], "ES256", "{header}");
    assert_eq!(c["iss"], idp.issuer.as_str(), "{c}");
    assert_eq!(c["sub"], by_issuer.oauth_client_id.as_str(), "{c}");
    assert_eq!(c["aud"], by_issuer.audience.as_str(), "{c}");

    // At the RP: an oidc profile trusting the IdP by discovery.
    let profile = rp
        .profile(
            json!({"oidc_issuer": idp.issuer, "jwt_claim_value": by_issuer.oauth_client_id,
            "allowed_audiences": [by_issuer.audience], "jwt_algorithms": ["ES256"]}),
        )
        .await?;
    assert_eq!(profile["auth_type"], "oidc", "{profile}");
    assert_eq!(profile["oidc_issuer"], idp.issuer.as_str(), "{profile}");
    assert_eq!(profile["jwt_algorithms"], json!(["ES256"]), "{profile}");
    assert_eq!(profile["jwt_claim"], "sub", "{profile}");
    assert!(
        profile.get("jwt_secret").is_none() && profile.get("oauth_client_secret").is_none(),
        "an oidc profile has no secret: {profile}"
    );
    let profile_path = format!("/access-profiles/{}", str_field(&profile, "id")?);

    let body = assert_active(&rp.introspect(&first).await?);
    assert_eq!(body["auth_type"], "oidc", "{body}");
    assert_eq!(body["profile_id"], profile["id"], "{body}");
    assert_eq!(body["client_id"], profile["oauth_client_id"], "{body}");
    assert_eq!(body["sub"], by_issuer.oauth_client_id.as_str(), "{body}");
    assert_eq!(body["iss"], idp.issuer.as_str(), "{body}");
    assert!(
        body["aud"] == json!(by_issuer.audience)
            || body["aud"]
                .as_array()
                .is_some_and(|a| a.contains(&json!(by_issuer.audience))),
        "{body}"
    );
    assert_eq!(body["exp"], c["exp"], "{body}");
    assert_eq!(
        scope_set(body["scope"].as_str().unwrap_or_default()),
        BTreeSet::from(["rp:read".to_owned(), "rp:write".to_owned()]),
        "{body}"
    );
    // A collection the profile does not grant sees nothing.
    inactive(&rp.app.introspect_token(rp.stranger_basic(), &first).await?);

    // The algorithms are pinned per profile: RS256 only refuses the IdP's ES256 tokens.
    let patched = rp
        .app
        .admin_patch(&profile_path, &json!({"jwt_algorithms": ["RS256"]}))
        .await?;
    assert!(patched.status.is_success(), "{patched:?}");
    inactive(&rp.introspect(&first).await?);
    let patched = rp
        .app
        .admin_patch(&profile_path, &json!({"jwt_algorithms": ["ES256"]}))
        .await?;
    assert!(patched.status.is_success(), "{patched:?}");
    assert_active(&rp.introspect(&first).await?);

    // A profile taking the IdP's JWKS URL directly (default algorithms).
    let jwks_uri = idp.public_url("/oauth/jwks");
    let by_uri = rp
        .profile(
            json!({"oidc_jwks_uri": jwks_uri, "jwt_claim_value": by_jwks.oauth_client_id,
            "allowed_audiences": [by_jwks.audience]}),
        )
        .await?;
    assert_eq!(by_uri["oidc_jwks_uri"], jwks_uri.as_str(), "{by_uri}");
    let algs: BTreeSet<&str> = by_uri["jwt_algorithms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(algs, BTreeSet::from(["RS256", "ES256"]), "{by_uri}");
    let other = idp_token(&idp, &by_jwks).await?;
    let body = assert_active(&rp.introspect(&other).await?);
    assert_eq!(body["auth_type"], "oidc", "{body}");
    assert_eq!(body["profile_id"], by_uri["id"], "{body}");
    assert_eq!(body["client_id"], by_uri["oauth_client_id"], "{body}");

    // RFC 7523 §2.1: the IdP's token traded for one of the RP's. The assertion must be
    // addressed to the RP itself (§3: `aud` identifies the authorization server), so the
    // consumer's IdP profile also gets a collection whose audience is the RP's issuer, and the
    // token is asked for that resource (RFC 8707). A token for the IdP's own API cannot be
    // forwarded.
    rp.jwt_bearer(&idp_token(&idp, &by_issuer).await?)
        .await?
        .expect_error(400, "invalid_grant");
    let to_rp = idp
        .create_collection("The RP", &rp.app.issuer, &["rp:assert"])
        .await?;
    let patched = idp
        .admin_patch(
            &format!("/access-profiles/{}", by_issuer.profile_id()),
            &json!({"collections": [by_issuer.collection["id"], to_rp["id"]]}),
        )
        .await?;
    assert!(patched.status.is_success(), "{patched:?}");
    let assertion = idp
        .access_token(
            &by_issuer.oauth_client_id,
            &by_issuer.oauth_client_secret,
            &[("resource", rp.app.issuer.as_str())],
        )
        .await?;
    let reply = rp.jwt_bearer(&assertion).await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let access = str_field(&reply.json(), "access_token")?.to_owned();
    rp.app
        .record_secret(&gatehouse_tests::jwt_signature(&access));
    let verified = rp.app.verify_token(&access, Some(RP_AUDIENCE)).await?;
    assert_eq!(verified["iss"], rp.app.issuer.as_str(), "{verified}");
    assert_eq!(
        verified["client_id"], profile["oauth_client_id"],
        "{verified}"
    );
    let body = assert_active(&rp.introspect(&access).await?);
    assert_eq!(body["profile_id"], profile["id"], "{body}");
    // The same assertion (same jti) cannot be traded twice.
    rp.jwt_bearer(&assertion)
        .await?
        .expect_error(400, "invalid_grant");

    // Revocation at the RP: a collection the profile does not grant is refused and the token
    // stays active; the granted collection revokes it; other tokens of the consumer live on.
    let doomed = idp_token(&idp, &by_issuer).await?;
    assert_active(&rp.introspect(&doomed).await?);
    rp.app
        .revoke_token(rp.stranger_basic(), &doomed)
        .await?
        .expect_error(400, "unauthorized_client");
    assert_active(&rp.introspect(&doomed).await?);
    rp.app
        .revoke_token(rp.basic(), &doomed)
        .await?
        .expect_status(200);
    inactive(&rp.introspect(&doomed).await?);
    assert_active(&rp.introspect(&first).await?);
    // The IdP knows nothing of the RP's revocation.
    assert_active(
        &idp.introspect_token(by_issuer.collection_basic(), &doomed)
            .await?,
    );
    // An admin with write rights revokes too.
    let by_admin = idp_token(&idp, &by_issuer).await?;
    assert_active(&rp.introspect(&by_admin).await?);
    let admin = rp.app.admin_token().await?;
    rp.app
        .revoke_token(Auth::Bearer(&admin), &by_admin)
        .await?
        .expect_status(200);
    inactive(&rp.introspect(&by_admin).await?);
    // Unknown tokens: 200.
    rp.app
        .revoke_token(rp.basic(), "not-a-token")
        .await?
        .expect_status(200);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The stub identity provider: key cache and outbound-fetch rules
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_key_rotation_at_the_idp_is_picked_up_by_an_unknown_kid() -> anyhow::Result<()> {
    let old = Key::new("key-2024")?;
    let new = Key::new("key-2025")?;
    let stub = Stub::spawn(&[&old]).await?;
    let rp = Rp::spawn(None).await?;
    let profile = rp.stub_profile(&stub, "consumer-42").await?;
    assert_eq!(profile["oidc_issuer"], stub.url.as_str(), "{profile}");

    let body = assert_active(
        &rp.introspect(&old.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    assert_eq!(body["auth_type"], "oidc", "{body}");
    assert_eq!(body["iss"], stub.url.as_str(), "{body}");
    assert_eq!(body["sub"], "consumer-42", "{body}");
    let first_fetch = Instant::now();
    assert_eq!(stub.hits("/jwks"), 1, "fetched once");
    // Cached: more tokens with the known kid fetch nothing.
    for _ in 0..3 {
        assert_active(
            &rp.introspect(&old.sign(&claims(&stub.url, "consumer-42", json!({})))?)
                .await?,
        );
    }
    assert_eq!(stub.hits("/jwks"), 1, "served from the cache");

    // The IdP rotates: only the new key is published.
    stub.set_keys(&[&new])?;
    tokio::time::sleep(PAST_MIN_REFRESH.saturating_sub(first_fetch.elapsed())).await;
    let body = assert_active(
        &rp.introspect(&new.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    assert_eq!(body["profile_id"], profile["id"], "{body}");
    assert_eq!(
        stub.hits("/jwks"),
        2,
        "the unknown kid refreshed the key set once"
    );
    // The key the IdP withdrew no longer verifies anything.
    inactive(
        &rp.introspect(&old.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    assert_active(
        &rp.introspect(&new.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_interval() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let stub = Stub::spawn(&[&key]).await?;
    let rp = Arc::new(Rp::spawn(None).await?);
    rp.stub_profile(&stub, "consumer-42").await?;
    let good = key.sign(&claims(&stub.url, "consumer-42", json!({})))?;
    assert_active(&rp.introspect(&good).await?);
    let before = stub.hits("/jwks");
    assert_eq!(before, 1);
    // Let the interval pass, so the flood may cause one refresh.
    tokio::time::sleep(PAST_MIN_REFRESH).await;

    let started = Instant::now();
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let token = key.sign_kid(
            &random_base62(20),
            &claims(&stub.url, "consumer-42", json!({})),
        )?;
        let rp = rp.clone();
        flood.spawn(async move { rp.introspect(&token).await });
    }
    while let Some(reply) = flood.join_next().await {
        inactive(&reply??);
    }
    let elapsed = started.elapsed();
    let grew = stub.hits("/jwks") - before;
    // One refresh per started interval at most; the 50 requests take well under a second,
    // so that is at most 2.
    assert!(
        grew >= 1,
        "an unknown kid past the interval refreshes the key set"
    );
    let allowed = 2_usize.max(1 + elapsed.as_secs() as usize);
    assert!(
        grew <= allowed,
        "{grew} JWKS fetches for 50 unknown kids in {elapsed:?} (at most {allowed})"
    );
    assert!(
        stub.hits("/.well-known/openid-configuration") <= before + allowed,
        "discovery fetched as often as the JWKS at most"
    );
    // The real key still works.
    assert_active(
        &rp.introspect(&key.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn cached_keys_outlive_an_idp_outage() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let stub = Stub::spawn(&[&key]).await?;
    // A 1 s TTL too: the stale set must keep answering while refreshes fail.
    let rp = Rp::spawn(Some(Duration::from_secs(1))).await?;
    rp.stub_profile(&stub, "consumer-42").await?;
    assert_active(
        &rp.introspect(&key.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );

    stub.set_mode(Mode::Failing);
    let before = stub.total_hits();
    tokio::time::sleep(PAST_MIN_REFRESH).await;
    // Past the TTL and the refresh interval: an unknown kid makes the RP ask the IdP again,
    // which fails...
    inactive(
        &rp.introspect(&key.sign_kid("k-new", &claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while stub.total_hits() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stub.total_hits() > before, "the RP tried to refresh");
    // ...and tokens whose key is cached stay active.
    for _ in 0..3 {
        assert_active(
            &rp.introspect(&key.sign(&claims(&stub.url, "consumer-42", json!({})))?)
                .await?,
        );
    }
    tokio::time::sleep(PAST_MIN_REFRESH).await;
    assert_active(
        &rp.introspect(&key.sign(&claims(&stub.url, "consumer-42", json!({})))?)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_idp_answers_503_until_the_keys_are_fetched() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let stub = Stub::spawn(&[&key]).await?;
    stub.set_mode(Mode::Failing);
    let rp = Rp::spawn(None).await?;
    rp.stub_profile(&stub, "consumer-42").await?;

    // Never fetched, and the IdP answers 500: introspection cannot decide.
    let token = key.sign(&claims(&stub.url, "consumer-42", json!({})))?;
    unavailable(&rp.introspect(&token).await?);
    let failed_at = Instant::now();
    assert!(stub.total_hits() >= 1, "the RP asked the IdP");
    // The token endpoint likewise (an assertion addressed to the RP, RFC 7523 §3).
    let assertion = key.sign(&claims(
        &stub.url,
        "consumer-42",
        json!({"aud": rp.app.issuer}),
    ))?;
    unavailable(&rp.jwt_bearer(&assertion).await?);

    // The IdP recovers; once the refresh interval has passed, the keys are fetched.
    stub.set_mode(Mode::Healthy);
    tokio::time::sleep(PAST_MIN_REFRESH.saturating_sub(failed_at.elapsed())).await;
    let body = assert_active(&rp.introspect(&token).await?);
    assert_eq!(body["auth_type"], "oidc", "{body}");
    let reply = rp.jwt_bearer(&assertion).await?;
    assert_eq!(reply.status, 200, "{reply:?}");

    // A JWKS URL on a port where nothing listens: 503 as well.
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        listener.local_addr()?
    };
    rp.profile(json!({"oidc_jwks_uri": format!("http://{closed}/jwks"),
        "jwt_claim_value": "consumer-43"}))
        .await?;
    unavailable(
        &rp.introspect(&key.sign(&claims(&stub.url, "consumer-43", json!({})))?)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_fetches_follow_no_redirect_and_read_at_most_64_kib() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let rp = Rp::spawn(None).await?;
    let token_for = |stub: &Stub, consumer: &str| key.sign(&claims(&stub.url, consumer, json!({})));

    // Discovery answers 302 (to a document that would be valid): not followed.
    let redirecting = Stub::spawn(&[&key]).await?;
    redirecting.set_mode(Mode::Redirect);
    rp.stub_profile(&redirecting, "consumer-redirect").await?;
    unavailable(
        &rp.introspect(&token_for(&redirecting, "consumer-redirect")?)
            .await?,
    );
    assert_eq!(
        redirecting.hits("/.well-known/openid-configuration"),
        1,
        "discovery asked once"
    );
    assert_eq!(redirecting.moved_hits(), 0, "the redirect was not followed");

    // A JWKS URL answering 302: not followed either.
    let redirecting_jwks = Stub::spawn(&[&key]).await?;
    redirecting_jwks.set_mode(Mode::Redirect);
    rp.profile(json!({"oidc_jwks_uri": redirecting_jwks.jwks_uri(),
        "jwt_claim_value": "consumer-redirect-jwks", "jwt_algorithms": ["RS256"]}))
        .await?;
    unavailable(
        &rp.introspect(&token_for(&redirecting_jwks, "consumer-redirect-jwks")?)
            .await?,
    );
    assert_eq!(redirecting_jwks.hits("/jwks"), 1);
    assert_eq!(
        redirecting_jwks.moved_hits(),
        0,
        "the redirect was not followed"
    );

    // A JWKS over 64 KiB (announced by Content-Length) behind discovery: refused.
    let oversized = Stub::spawn(&[&key]).await?;
    oversized.set_mode(Mode::Oversized);
    rp.stub_profile(&oversized, "consumer-big").await?;
    unavailable(
        &rp.introspect(&token_for(&oversized, "consumer-big")?)
            .await?,
    );
    assert_eq!(oversized.hits("/jwks"), 1, "the JWKS was asked for");

    // Without a Content-Length: 60 KiB is read and works, 70 KiB is refused.
    let jwks = json!({"keys": [key.jwk()?]}).to_string();
    let padded = |size: usize| format!("{jwks}{}", " ".repeat(size - jwks.len()));
    let (small_url, small_hits) = raw_json_server(padded(60 * 1024)).await?;
    let (big_url, big_hits) = raw_json_server(padded(70 * 1024)).await?;
    rp.profile(json!({"oidc_jwks_uri": format!("{small_url}/jwks"),
        "jwt_claim_value": "consumer-60k", "jwt_algorithms": ["RS256"]}))
        .await?;
    rp.profile(json!({"oidc_jwks_uri": format!("{big_url}/jwks"),
        "jwt_claim_value": "consumer-70k", "jwt_algorithms": ["RS256"]}))
        .await?;
    assert_active(
        &rp.introspect(&key.sign(&claims("https://anyone.example", "consumer-60k", json!({})))?)
            .await?,
    );
    unavailable(
        &rp.introspect(&key.sign(&claims("https://anyone.example", "consumer-70k", json!({})))?)
            .await?,
    );
    assert_eq!(small_hits.load(Ordering::SeqCst), 1);
    assert_eq!(big_hits.load(Ordering::SeqCst), 1);

    // The discovered issuer is not the configured one: nothing is trusted.
    let impostor = Stub::spawn(&[&key]).await?;
    impostor.set_mode(Mode::WrongIssuer);
    rp.stub_profile(&impostor, "consumer-impostor").await?;
    let reply = rp
        .introspect(&token_for(&impostor, "consumer-impostor")?)
        .await?;
    if reply.status == 200 {
        inactive(&reply);
    } else {
        unavailable(&reply);
    }
    assert_eq!(impostor.hits("/.well-known/openid-configuration"), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_idp_is_abandoned_after_5_seconds() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let stub = Stub::spawn(&[&key]).await?;
    stub.set_mode(Mode::Slow);
    let rp = Rp::spawn(None).await?;
    rp.stub_profile(&stub, "consumer-42").await?;
    let started = Instant::now();
    let reply = rp
        .introspect(&key.sign(&claims(&stub.url, "consumer-42", json!({})))?)
        .await?;
    let elapsed = started.elapsed();
    unavailable(&reply);
    assert!(
        elapsed < Duration::from_secs(8),
        "answered after {elapsed:?}: the fetch must give up after 5 s"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_misdirected_idp_tokens_are_inactive() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let stub = Stub::spawn(&[&key]).await?;
    let attacker_key = Key::new("k1")?;
    let attacker = Stub::spawn(&[&attacker_key]).await?;
    let rp = Rp::spawn(None).await?;
    let profile = rp.stub_profile(&stub, "consumer-42").await?;
    let good = |extra: Value| claims(&stub.url, "consumer-42", extra);

    let token = key.sign(&good(json!({})))?;
    let body = assert_active(&rp.introspect(&token).await?);
    assert_eq!(body["auth_type"], "oidc", "{body}");
    assert_eq!(body["profile_id"], profile["id"], "{body}");

    let jwk = key.jwk()?;
    let pem = key.public_pem();
    let mut forged: Vec<(&str, String)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(json!({"alg": "none", "kid": "k1"}).to_string()),
                b64(good(json!({})).to_string())
            ),
        ),
        (
            "HS256 with the public key PEM as secret",
            sign_hs256(
                &json!({"alg": "HS256", "kid": "k1"}),
                &good(json!({})),
                &pem,
            )?,
        ),
        (
            "HS256 with the public JWK as secret",
            sign_hs256(
                &json!({"alg": "HS256", "kid": "k1"}),
                &good(json!({})),
                jwk.to_string().as_bytes(),
            )?,
        ),
        (
            "RS512, not pinned",
            key.sign_header(&json!({"alg": "RS512", "kid": "k1"}), &good(json!({})))?,
        ),
        (
            "another key under the same kid",
            attacker_key.sign(&good(json!({})))?,
        ),
        (
            "another key, its JWKS named in jku",
            attacker_key.sign_header(
                &json!({"alg": "RS256", "kid": "k1", "jku": attacker.jwks_uri()}),
                &good(json!({})),
            )?,
        ),
        (
            "another key, embedded as jwk",
            attacker_key.sign_header(
                &json!({"alg": "RS256", "kid": "k1", "jwk": attacker_key.jwk()?}),
                &good(json!({})),
            )?,
        ),
        (
            "a kid the IdP does not publish",
            key.sign_kid("k-unknown", &good(json!({})))?,
        ),
        (
            "wrong iss",
            key.sign(&good(json!({"iss": "https://evil.example"})))?,
        ),
        (
            "iss with a trailing slash",
            key.sign(&good(json!({"iss": format!("{}/", stub.url)})))?,
        ),
        ("no iss", key.sign(&good(json!({"iss": null})))?),
        (
            "missing required claim",
            key.sign(&good(json!({"tenant": null})))?,
        ),
        (
            "wrong required claim value",
            key.sign(&good(json!({"tenant": "evil"})))?,
        ),
        (
            "wrong aud",
            key.sign(&good(json!({"aud": "https://other-api.example.com"})))?,
        ),
        ("no aud", key.sign(&good(json!({"aud": null})))?),
        ("expired", key.sign(&good(json!({"exp": now() - 120})))?),
        ("no exp", key.sign(&good(json!({"exp": null})))?),
        (
            "not yet valid",
            key.sign(&good(json!({"nbf": now() + 600})))?,
        ),
        (
            "issued in the future",
            key.sign(&good(json!({"iat": now() + 600})))?,
        ),
        (
            "another consumer",
            key.sign(&claims(&stub.url, "consumer-99", json!({})))?,
        ),
    ];
    // A tampered payload under a valid signature.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = b64(good(json!({"tenant": "acme", "admin": true})).to_string());
    forged.push(("tampered payload", parts.join(".")));

    for (what, token) in &forged {
        let reply = rp.introspect(token).await?;
        assert_eq!(
            (reply.status.as_u16(), reply.json()),
            (200, json!({"active": false})),
            "{what}: {reply:?}"
        );
        inactive(&reply);
    }
    assert_eq!(
        attacker.total_hits(),
        0,
        "jku / embedded keys are never fetched"
    );
    // Nothing of that disturbed the real key.
    assert_active(&rp.introspect(&key.sign(&good(json!({})))?).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jwt_rsa_profile_may_take_its_keys_from_a_jwks_uri() -> anyhow::Result<()> {
    let key = Key::new("k1")?;
    let stub = Stub::spawn(&[&key]).await?;
    let rp = Rp::spawn(None).await?;
    let profile = rp
        .profile(
            json!({"auth_type": "jwt", "jwt_method": "rsa", "oidc_jwks_uri": stub.jwks_uri(),
            "jwt_claim": "client", "jwt_claim_value": "consumer-7"}),
        )
        .await?;
    assert_eq!(profile["auth_type"], "jwt", "{profile}");
    assert_eq!(
        profile["oidc_jwks_uri"],
        stub.jwks_uri().as_str(),
        "{profile}"
    );
    let c = |extra: Value| {
        let consumer = claims(
            "https://consumer.example",
            "whoever",
            json!({"client": "consumer-7"}),
        );
        merged(consumer, extra)
    };
    let token = key.sign(&c(json!({})))?;
    let body = assert_active(&rp.introspect(&token).await?);
    assert_eq!(body["auth_type"], "jwt", "{body}");
    assert_eq!(body["profile_id"], profile["id"], "{body}");
    assert_eq!(body["client_id"], profile["oauth_client_id"], "{body}");
    assert_eq!(stub.hits("/jwks"), 1);
    assert_eq!(
        stub.hits("/.well-known/openid-configuration"),
        0,
        "a JWKS URL needs no discovery"
    );
    // Another key under the same kid, and HS256 with the public key: inactive.
    let other = Key::new("k1")?;
    inactive(&rp.introspect(&other.sign(&c(json!({})))?).await?);
    inactive(
        &rp.introspect(&sign_hs256(
            &json!({"alg": "HS256", "kid": "k1"}),
            &c(json!({})),
            &key.public_pem(),
        )?)
        .await?,
    );

    // Revocation of a consumer's JWT: refused to a stranger collection and to a read-only
    // admin (the token stays active); accepted from the granted collection.
    rp.app
        .revoke_token(rp.stranger_basic(), &token)
        .await?
        .expect_error(400, "unauthorized_client");
    let reader = rp.app.read_only_admin_token().await?;
    rp.app
        .revoke_token(Auth::Bearer(&reader), &token)
        .await?
        .expect_error(400, "unauthorized_client");
    assert_active(&rp.introspect(&token).await?);
    rp.app
        .revoke_token(rp.basic(), &token)
        .await?
        .expect_status(200);
    inactive(&rp.introspect(&token).await?);
    let admin = rp.app.admin_token().await?;
    inactive(
        &rp.app
            .introspect_token(Auth::Bearer(&admin), &token)
            .await?,
    );
    // Revoking again, or revoking garbage: 200.
    rp.app
        .revoke_token(rp.basic(), &token)
        .await?
        .expect_status(200);
    rp.app
        .revoke_token(
            rp.basic(),
            &format!("{}.e30.AAAA", b64("{\"alg\":\"RS256\"}")),
        )
        .await?
        .expect_status(200);
    // Another token of the same consumer is untouched.
    assert_active(&rp.introspect(&key.sign(&c(json!({})))?).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/// The `field` members of a 422's `fields`.
fn fields_of(reply: &Reply) -> Vec<String> {
    reply.json()["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["field"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn oidc_profile_validation() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("V", "https://v.example.com/api", &["v:r"])
        .await?;
    let client = app.create_client("V Inc").await?;
    let path = format!("/clients/{}/access-profiles", str_field(&client, "id")?);
    let pem = String::from_utf8(Key::new("k")?.public_pem())?;
    let issuer = "https://idp.example.com";
    let jwks = "https://idp.example.com/jwks";
    let oidc = |extra: Value| {
        let base = json!({"name": unique("p"), "auth_type": "oidc",
            "collections": [collection["id"]], "allowed_audiences": [AUD],
            "jwt_claim_value": unique("consumer")});
        merged(base, extra)
    };
    let rsa = |extra: Value| {
        merged(
            oidc(json!({"auth_type": "jwt", "jwt_method": "rsa"})),
            extra,
        )
    };
    let cases: Vec<(&str, Value, &[&str])> = vec![
        (
            "both issuer and JWKS URL",
            oidc(json!({"oidc_issuer": issuer, "oidc_jwks_uri": jwks})),
            &["oidc_issuer", "oidc_jwks_uri"],
        ),
        (
            "neither issuer nor JWKS URL",
            oidc(json!({})),
            &["oidc_issuer", "oidc_jwks_uri"],
        ),
        (
            "no jwt_claim_value",
            oidc(json!({"oidc_issuer": issuer, "jwt_claim_value": null})),
            &["jwt_claim_value"],
        ),
        (
            "no allowed_audiences",
            oidc(json!({"oidc_issuer": issuer, "allowed_audiences": null})),
            &["allowed_audiences"],
        ),
        (
            "empty allowed_audiences",
            oidc(json!({"oidc_issuer": issuer, "allowed_audiences": []})),
            &["allowed_audiences"],
        ),
        (
            "HS256 pinned",
            oidc(json!({"oidc_issuer": issuer, "jwt_algorithms": ["HS256"]})),
            &["jwt_algorithms[0]"],
        ),
        (
            "HS512 second",
            oidc(json!({"oidc_issuer": issuer, "jwt_algorithms": ["RS256", "HS512"]})),
            &["jwt_algorithms[1]"],
        ),
        (
            "alg none",
            oidc(json!({"oidc_issuer": issuer, "jwt_algorithms": ["none"]})),
            &["jwt_algorithms[0]"],
        ),
        (
            "jwt_method on oidc",
            oidc(json!({"oidc_issuer": issuer, "jwt_method": "rsa"})),
            &["jwt_method"],
        ),
        (
            "jwt_secret on oidc",
            oidc(json!({"oidc_issuer": issuer, "jwt_secret": "s".repeat(40)})),
            &["jwt_secret"],
        ),
        (
            "jwt_public_key on oidc",
            oidc(json!({"oidc_issuer": issuer, "jwt_public_key": pem})),
            &["jwt_public_key"],
        ),
        (
            "http issuer off loopback",
            oidc(json!({"oidc_issuer": "http://example.com"})),
            &["oidc_issuer"],
        ),
        (
            "http JWKS URL off loopback",
            oidc(json!({"oidc_jwks_uri": "http://example.com/jwks"})),
            &["oidc_jwks_uri"],
        ),
        (
            "http JWKS URL to a private address",
            oidc(json!({"oidc_jwks_uri": "http://10.0.0.1/jwks"})),
            &["oidc_jwks_uri"],
        ),
        (
            "http JWKS URL to the metadata service",
            oidc(json!({"oidc_jwks_uri": "http://169.254.169.254/latest/meta-data"})),
            &["oidc_jwks_uri"],
        ),
        (
            "file JWKS URL",
            oidc(json!({"oidc_jwks_uri": "file:///etc/passwd"})),
            &["oidc_jwks_uri"],
        ),
        (
            "not a URL",
            oidc(json!({"oidc_issuer": "idp.example.com"})),
            &["oidc_issuer"],
        ),
        (
            "jwt/rsa with a PEM and a JWKS URL",
            rsa(json!({"jwt_public_key": pem, "oidc_jwks_uri": jwks})),
            &["jwt_public_key", "oidc_jwks_uri"],
        ),
        (
            "jwt/rsa with neither",
            rsa(json!({})),
            &["jwt_public_key", "oidc_jwks_uri"],
        ),
        (
            "jwt/rsa with an http JWKS URL off loopback",
            rsa(json!({"oidc_jwks_uri": "http://example.com/jwks"})),
            &["oidc_jwks_uri"],
        ),
        (
            "oauth2 with an issuer",
            json!({"name": unique("p"), "auth_type": "oauth2",
                "collections": [collection["id"]], "oidc_issuer": issuer}),
            &["auth_type", "oidc_issuer"],
        ),
    ];
    for (what, body, expected) in cases {
        let reply = app.admin_post(&path, &body).await?;
        assert_eq!(reply.status, 422, "{what}: {reply:?}");
        let fields = fields_of(&reply);
        assert!(
            fields.iter().any(|f| expected.contains(&f.as_str())),
            "{what}: expected a complaint about one of {expected:?}, got {fields:?}: {reply:?}"
        );
    }

    // Accepted: https to any name, http only to loopback (the harness allow-lists it); every
    // allowed algorithm.
    for (field, url) in [
        ("oidc_issuer", "https://idp.example.com"),
        ("oidc_issuer", "http://127.0.0.1:9"),
        ("oidc_issuer", "http://localhost:9/realms/acme"),
        ("oidc_jwks_uri", "http://[::1]:9/jwks"),
        (
            "oidc_jwks_uri",
            "https://idp.example.com/.well-known/jwks.json",
        ),
    ] {
        let reply = app.admin_post(&path, &oidc(json!({field: url}))).await?;
        assert!(reply.status.is_success(), "{field} {url}: {reply:?}");
        let created = reply.json();
        assert_eq!(created["auth_type"], "oidc", "{created}");
        assert_eq!(created[field], url, "{created}");
    }
    let all = [
        "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
    ];
    let reply = app
        .admin_post(
            &path,
            &oidc(json!({"oidc_issuer": issuer, "jwt_algorithms": all})),
        )
        .await?;
    assert!(reply.status.is_success(), "{reply:?}");
    assert_eq!(reply.json()["jwt_algorithms"], json!(all));
    let created = app
        .admin_post(&path, &oidc(json!({"oidc_jwks_uri": jwks})))
        .await?;
    assert!(created.status.is_success(), "{created:?}");
    let created = created.json();
    assert_eq!(created["jwt_claim"], "sub", "{created}");
    let algs: BTreeSet<&str> = created["jwt_algorithms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert_eq!(algs, BTreeSet::from(["RS256", "ES256"]), "{created}");
    let reply = app
        .admin_post(&path, &rsa(json!({"oidc_jwks_uri": jwks})))
        .await?;
    assert!(reply.status.is_success(), "{reply:?}");
    assert_eq!(reply.json()["oidc_jwks_uri"], jwks);

    // PATCH: auth_type is fixed, HS* stays refused, the URL rules hold.
    let profile_path = format!("/access-profiles/{}", str_field(&created, "id")?);
    for patch in [
        json!({"auth_type": "jwt"}),
        json!({"auth_type": "jwt", "jwt_method": "rsa"}),
        json!({"auth_type": "jwt", "jwt_method": "rsa", "jwt_algorithms": ["RS256"]}),
        json!({"auth_type": "oauth2", "oidc_jwks_uri": null, "jwt_claim_value": null,
            "allowed_audiences": null, "jwt_algorithms": null, "jwt_claim": null}),
    ] {
        let reply = app.admin_patch(&profile_path, &patch).await?;
        assert_eq!(reply.status, 422, "{patch}: {reply:?}");
        assert_eq!(
            fields_of(&reply),
            vec!["auth_type".to_owned()],
            "{patch}: the answer names the real problem"
        );
        let read = app
            .admin_get(&profile_path)
            .await?
            .expect_status(200)
            .json();
        assert_eq!(
            read["auth_type"], "oidc",
            "{patch} changed the auth_type: {read}"
        );
    }
    for (patch, field) in [
        (json!({"jwt_algorithms": ["HS256"]}), "jwt_algorithms[0]"),
        (
            json!({"oidc_jwks_uri": "http://example.com/jwks"}),
            "oidc_jwks_uri",
        ),
    ] {
        let reply = app.admin_patch(&profile_path, &patch).await?;
        assert_eq!(reply.status, 422, "{patch}: {reply:?}");
        let fields = fields_of(&reply);
        assert!(
            fields.iter().any(|f| f == field),
            "{patch}: expected {field} in {fields:?}"
        );
    }
    Ok(())
}
