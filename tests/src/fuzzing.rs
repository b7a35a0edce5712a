//! The bodies of the fuzz targets in `fuzz/` (run with `cargo fuzz`), kept here so that the
//! corpus replay test (`tests/tests/e2e/fuzz_corpora.rs`) runs exactly the same code on every
//! `cargo test`. Each body panics when a property fails; libFuzzer reports the panic as a crash.
//!
//! - [`token_request`]: the token endpoint's parser (RFC 6749 §2.3.1, §3.2, §3.3; RFC 7523;
//!   RFC 8707) on arbitrary content types, `Authorization` headers and bodies.
//! - [`ip_rule`]: the IP rule parser (addresses, CIDR ranges, IPv4-mapped IPv6).
//! - [`api_key`]: the API key format check and its stored digest.
//! - [`ServerHarness::oauth`]: a real server over real HTTP, fed token requests, foreign and
//!   own JWTs (as introspected tokens, as client assertions and as JWT-bearer grants: some
//!   signed with the profile's real HMAC secret or RSA key so that the claim checks are
//!   reached), raw introspection and revocation bodies.
//! - [`ServerHarness::admin`]: the same server fed arbitrary admin JSON bodies on every
//!   create and update route.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse_registry::api_key_format;
use gatehouse_registry::types::IpRule;
use gatehouse_token::request::{self, ClientAuth, GrantType};
use josekit::jws::JwsSigner;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use crate::{Auth, Reply, TestApp, Value, collection_credentials, json, str_field};

const FORM: &str = "application/x-www-form-urlencoded";

/// Split `data` at the first `sep`; everything is the head when `sep` is absent.
fn split(data: &[u8], sep: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == sep) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// The token request parser: never panics, and whatever it accepts is well-formed.
///
/// Byte 0 picks the content type (form, form with a charset, none, or the first line of the
/// input) and the shape of the `Authorization` header (none, raw bytes, or a Basic header
/// built from an id and secret with RFC 6749 §2.3.1's encoding); the rest is the body.
pub fn token_request(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (content_type, rest) = match selector & 0b11 {
        0 => (Some(HeaderValue::from_static(FORM)), rest),
        1 => (
            Some(HeaderValue::from_static(
                "Application/X-WWW-Form-Urlencoded ; charset=UTF-8",
            )),
            rest,
        ),
        2 => (None, rest),
        _ => {
            let (line, rest) = split(rest, b'\n');
            (HeaderValue::from_bytes(line).ok(), rest)
        }
    };
    // A Basic header built the way a conforming client builds it: what comes back out must
    // be exactly what went in.
    let mut expected_basic: Option<(String, String)> = None;
    let (authorization, body) = match (selector >> 2) & 0b11 {
        0 | 1 => (None, rest),
        2 => {
            let (line, rest) = split(rest, b'\n');
            (HeaderValue::from_bytes(line).ok(), rest)
        }
        _ => {
            let (creds, rest) = split(rest, b'\n');
            let (id, secret) = split(creds, 0);
            let id = String::from_utf8_lossy(id).into_owned();
            let secret = String::from_utf8_lossy(secret).into_owned();
            let encode = |s: &str| -> String {
                url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
            };
            let raw = format!("{}:{}", encode(&id), encode(&secret));
            let header = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).ok();
            expected_basic = Some((id, secret));
            (header, rest)
        }
    };
    let parsed = request::parse(content_type.as_ref(), authorization.as_ref(), body);
    let Ok(req) = parsed else {
        return;
    };
    // Accepted only for the form content type (RFC 6749 §4.4.2 / Appendix B).
    let ct = content_type
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        ct.split(';')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(FORM)),
        "accepted a body of content type {ct:?}"
    );
    if let Some(scope) = &req.scope {
        for s in scope {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ).
            assert!(!s.is_empty(), "an empty scope token was accepted");
            assert!(
                s.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)),
                "scope token {s:?} has characters RFC 6749 §3.3 forbids"
            );
        }
        let mut dedup = scope.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), scope.len(), "duplicate scopes kept");
    }
    for r in &req.resources {
        // RFC 8707 §2: an absolute URI without a fragment.
        let url = url::Url::parse(r).unwrap_or_else(|e| panic!("resource {r:?} accepted: {e}"));
        assert!(url.fragment().is_none(), "resource {r:?} has a fragment");
    }
    if req.grant_type == GrantType::JwtBearer {
        assert!(
            req.assertion.is_some(),
            "JWT-bearer grant without assertion"
        );
    }
    match &req.auth {
        ClientAuth::Basic { client_id, secret } => {
            assert!(authorization.is_some(), "Basic auth without a header");
            assert!(!client_id.is_empty(), "empty client id accepted");
            if let Some((id, s)) = &expected_basic {
                assert_eq!(client_id, id, "Basic client id changed in decoding");
                assert_eq!(
                    secret.expose_secret(),
                    s.as_str(),
                    "Basic secret changed in decoding"
                );
            }
        }
        ClientAuth::Post { .. } => assert!(authorization.is_none(), "two auth methods accepted"),
        ClientAuth::Assertion { .. } => {
            assert!(authorization.is_none(), "two auth methods accepted");
        }
        ClientAuth::None => {
            assert_eq!(
                req.grant_type,
                GrantType::JwtBearer,
                "no client authentication outside the JWT-bearer grant"
            );
        }
        ClientAuth::Bearer(_) => panic!("a Bearer token accepted as client authentication"),
    }
}

/// The IP rule parser: never panics; an accepted rule prints to a form that parses back to the
/// same rule, contains its own address, and treats an IPv4 address and its IPv4-mapped IPv6
/// form alike.
pub fn ip_rule(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rule) = IpRule::parse(text) else {
        return;
    };
    let printed = rule.to_string();
    let again = IpRule::parse(&printed)
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which fails: {e:?}"));
    assert_eq!(again, rule, "{text:?} -> {printed:?} is not a fixed point");
    let base = printed.split('/').next().unwrap_or_default();
    let addr: IpAddr = base
        .parse()
        .unwrap_or_else(|e| panic!("{printed:?}: network address {base:?}: {e}"));
    assert!(rule.contains(addr), "{printed:?} does not contain {addr}");
    if let IpAddr::V4(v4) = addr {
        assert!(
            rule.contains(IpAddr::V6(v4.to_ipv6_mapped())),
            "{printed:?} treats the mapped form of {v4} differently"
        );
    }
    // Probe addresses derived from the input: never a panic, mapped forms agree.
    for chunk in data.chunks(4) {
        let mut octets = [0u8; 4];
        octets[..chunk.len()].copy_from_slice(chunk);
        let v4 = Ipv4Addr::from(octets);
        assert_eq!(
            rule.contains(IpAddr::V4(v4)),
            rule.contains(IpAddr::V6(v4.to_ipv6_mapped())),
            "{printed:?}: {v4} and its mapped form disagree"
        );
    }
    for chunk in data.chunks(16) {
        let mut octets = [0u8; 16];
        octets[..chunk.len()].copy_from_slice(chunk);
        let _ = rule.contains(IpAddr::V6(Ipv6Addr::from(octets)));
    }
}

/// The API key format: never panics; whatever passes the check has the documented shape, and
/// the digest is 64 lowercase hex characters, the same every time.
pub fn api_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let well_formed = api_key_format::is_well_formed(&text);
    if well_formed {
        assert_eq!(text.len(), api_key_format::LEN);
        assert!(text.starts_with(api_key_format::PREFIX));
        assert!(
            text[api_key_format::PREFIX.len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric())
        );
        // One changed character breaks the checksum (CRC-32 catches every single-symbol error).
        let mut bytes = text.as_bytes().to_vec();
        let i = api_key_format::PREFIX.len() + usize::from(data[0]) % (bytes.len() - 4);
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8_lossy(&bytes);
        assert!(
            !api_key_format::is_well_formed(&changed),
            "a one-character change kept the checksum valid"
        );
    }
    let digest = api_key_format::digest(&text);
    assert_eq!(digest.len(), 64);
    assert!(
        digest
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    assert_eq!(digest, api_key_format::digest(&text));
    let shown = api_key_format::display_prefix(&text);
    assert!(shown.chars().count() <= api_key_format::DISPLAY_PREFIX_LEN);
}

/// A running server with one collection, a client with an oauth2, a token, an HMAC `jwt`, an
/// RSA `jwt` and an `oidc` profile (its identity provider served by the harness), driven from
/// a runtime of its own (fuzz targets are synchronous).
pub struct ServerHarness {
    rt: tokio::runtime::Runtime,
    fx: Fixtures,
}

/// The server and what the harness made on it; built on, and used from, [`ServerHarness`]'s
/// runtime.
struct Fixtures {
    app: Option<TestApp>,
    collection: Value,
    client_id: String,
    oauth_profile_id: String,
    token_profile_id: String,
    oauth_id: String,
    oauth_secret: String,
    hmac_id: String,
    hmac: Box<dyn JwsSigner>,
    rsa_id: String,
    rsa: Box<dyn JwsSigner>,
    idp_url: String,
    idp: Box<dyn JwsSigner>,
    next_ip: AtomicU32,
    reached: Reached,
}

/// How far inputs got: the replay test checks that the stored corpus still reaches the code
/// behind a successful authentication, not only the refusals.
#[derive(Debug, Default)]
pub struct Reached {
    /// Access tokens issued (client credentials, client assertions, JWT-bearer grants).
    pub tokens: AtomicU32,
    /// Introspections that answered `active: true`.
    pub active: AtomicU32,
    /// Admin writes that succeeded.
    pub admin_writes: AtomicU32,
    /// Admin writes refused with a 4xx.
    pub admin_refusals: AtomicU32,
}

/// The audience the `jwt` and `oidc` profiles accept for consumer-signed tokens.
const JWT_AUD: &str = "https://consumer-api.example.com";
/// The `sub` the `oidc` profile expects from its identity provider.
const IDP_SUBJECT: &str = "consumer-1";
/// The key id of the identity provider's one signing key.
const IDP_KID: &str = "idp-1";

/// A consumer's OpenID provider on a loopback port: a discovery document and a JWKS with one
/// RSA key. Returns its issuer URL and the key pair.
async fn spawn_idp() -> anyhow::Result<(String, josekit::jwk::alg::rsa::RsaKeyPair)> {
    use axum::routing::get;
    let pair = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048)?;
    let mut jwk = josekit::jwk::KeyPair::to_jwk_public_key(&pair);
    jwk.set_key_id(IDP_KID);
    jwk.set_algorithm("RS256");
    jwk.set_key_use("sig");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let discovery = json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let jwks = json!({"keys": [serde_json::to_value(jwk.as_ref())?]});
    let router = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { axum::Json(discovery) }),
        )
        .route("/jwks", get(move || async move { axum::Json(jwks) }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok((url, pair))
}

impl ServerHarness {
    /// Start the server (SQLite, or PostgreSQL under `GATEHOUSE_TEST_DATABASE_URL`) and create
    /// the fixtures. The server trusts loopback as a proxy, so every request can come from an
    /// address of its own and the failed-authentication budget never hides code from the
    /// fuzzer.
    pub fn start() -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let fx = rt.block_on(Fixtures::setup())?;
        Ok(Self { rt, fx })
    }

    /// How far the inputs so far got.
    pub fn reached(&self) -> &Reached {
        &self.fx.reached
    }

    /// One fuzz input against the OAuth endpoints (see [`Fixtures::oauth`] for its layout and
    /// the properties checked).
    pub fn oauth(&self, data: &[u8]) {
        if let Some((&mode, rest)) = data.split_first() {
            harness_ok(self.rt.block_on(self.fx.oauth(mode, rest)));
        }
    }

    /// One fuzz input against the admin API (see [`Fixtures::admin`]).
    pub fn admin(&self, data: &[u8]) {
        if let Some((&route, body)) = data.split_first() {
            harness_ok(self.rt.block_on(self.fx.admin(route, body)));
        }
    }

    /// Shut the server down and drop its database.
    pub fn finish(mut self) -> anyhow::Result<()> {
        if let Some(mut app) = self.fx.app.take() {
            self.rt.block_on(app.shutdown()).context("shutdown")?;
            drop(app);
        }
        Ok(())
    }
}

/// The one harness of a fuzzing process, which libFuzzer calls once per input for as long as
/// it runs: started on first use, with logging switched off (the test harness's log capture
/// would keep every line in memory). If the server cannot start, the process exits with
/// status 2 rather than report every input as a crash.
pub fn shared_harness() -> &'static ServerHarness {
    static HARNESS: std::sync::OnceLock<ServerHarness> = std::sync::OnceLock::new();
    HARNESS.get_or_init(|| {
        let _ = tracing::subscriber::set_global_default(tracing::subscriber::NoSubscriber::new());
        match ServerHarness::start() {
            Ok(h) => h,
            Err(e) => {
                eprintln!("cannot start the server: {e:#}");
                std::process::exit(2)
            }
        }
    })
}

/// A failure of the harness itself (the server would not answer at all, say) is not a
/// finding about the input, but it must not pass silently either.
fn harness_ok(result: anyhow::Result<()>) {
    if let Err(e) = result {
        panic!("the harness itself failed (not a finding about the input): {e:#}");
    }
}

impl Fixtures {
    /// Start the server and create the fixtures (on the runtime that will drive them).
    async fn setup() -> anyhow::Result<Self> {
        let app = crate::spawn_app_with(|c| {
            c.trusted_proxies = vec!["127.0.0.0/8".parse().expect("a CIDR range")];
        })
        .await?;
        let collection = app
            .create_collection(
                "Fuzzed API",
                "https://api.example.com/fuzz",
                &["fuzz:read", "fuzz:write"],
            )
            .await?;
        let client = app.create_client("Fuzz Inc").await?;
        let client_id = str_field(&client, "id")?.to_owned();
        let profile = |body: Value| {
            let app = &app;
            let client_id = &client_id;
            async move { app.create_profile(client_id, &body).await }
        };
        let oauth = profile(json!({"name": "oauth", "auth_type": "oauth2",
            "collections": [collection["id"]]}))
        .await?;
        let token = profile(json!({"name": "keys", "auth_type": "token",
            "collections": [collection["id"]]}))
        .await?;
        let hmac = profile(
            json!({"name": "hmac", "auth_type": "jwt", "jwt_method": "hmac",
            "collections": [collection["id"]], "allowed_audiences": [JWT_AUD]}),
        )
        .await?;
        let pair = josekit::jws::RS256.generate_key_pair(2048)?;
        let public_pem = String::from_utf8(pair.to_pem_public_key())?;
        let rsa = profile(
            json!({"name": "rsa", "auth_type": "jwt", "jwt_method": "rsa",
            "jwt_public_key": public_pem, "collections": [collection["id"]],
            "allowed_audiences": [JWT_AUD]}),
        )
        .await?;
        let (idp_url, idp_pair) = spawn_idp().await?;
        profile(
            json!({"name": "idp", "auth_type": "oidc", "oidc_issuer": idp_url,
            "jwt_claim_value": IDP_SUBJECT, "collections": [collection["id"]],
            "allowed_audiences": [JWT_AUD]}),
        )
        .await?;
        let hmac_secret = str_field(&hmac, "jwt_secret")?;
        let hmac_signer = josekit::jws::HS256.signer_from_bytes(hmac_secret.as_bytes())?;
        let rsa_signer = josekit::jws::RS256.signer_from_pem(pair.to_pem_private_key())?;
        Ok(Self {
            collection,
            client_id,
            oauth_profile_id: str_field(&oauth, "id")?.to_owned(),
            token_profile_id: str_field(&token, "id")?.to_owned(),
            oauth_id: str_field(&oauth, "oauth_client_id")?.to_owned(),
            oauth_secret: str_field(&oauth, "oauth_client_secret")?.to_owned(),
            hmac_id: str_field(&hmac, "oauth_client_id")?.to_owned(),
            hmac: Box::new(hmac_signer),
            rsa_id: str_field(&rsa, "oauth_client_id")?.to_owned(),
            rsa: Box::new(rsa_signer),
            idp_url,
            idp: Box::new(josekit::jws::RS256.signer_from_pem(idp_pair.to_pem_private_key())?),
            app: Some(app),
            next_ip: AtomicU32::new(1),
            reached: Reached::default(),
        })
    }

    fn app(&self) -> &TestApp {
        self.app.as_ref().expect("the app runs until finish()")
    }

    /// A fresh source address per request (sent as `X-Forwarded-For` from a trusted proxy).
    fn source(&self) -> String {
        let n = self.next_ip.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(2) {
            Ipv4Addr::from(0x0a00_0000 | (n & 0x00ff_ffff)).to_string()
        } else {
            Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n)).to_string()
        }
    }

    /// Fill the placeholders a corpus entry may carry with live values, so that stored inputs
    /// stay valid: `{now}`, `{exp}` (now + 300 s), `{past}` (now − 3600 s), `{aud}` (the
    /// token endpoint), `{rs}` (the JWT profiles' accepted audience), `{hmac}`/`{rsa}`/
    /// `{oauth}` (those profiles' client ids), `{jti}` (unique per use).
    fn fill(&self, raw: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(raw);
        if !text.contains('{') {
            return raw.to_vec();
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let jti = format!("j{}", self.next_ip.fetch_add(1, Ordering::Relaxed));
        text.replace("{now}", &now.to_string())
            .replace("{exp}", &(now + 300).to_string())
            .replace("{past}", &(now.saturating_sub(3600)).to_string())
            .replace("{aud}", &self.app().public_url("/oauth/token"))
            .replace("{rs}", JWT_AUD)
            .replace("{hmac}", &self.hmac_id)
            .replace("{rsa}", &self.rsa_id)
            .replace("{oauth}", &self.oauth_id)
            .replace("{idp}", &self.idp_url)
            .replace("{idp_sub}", IDP_SUBJECT)
            .replace("{jti}", &jti)
            .into_bytes()
    }

    /// `header.payload.signature` with the given signer (or the raw signature bytes).
    fn jwt(&self, header: &[u8], payload: &[u8], signer: Option<&dyn JwsSigner>) -> String {
        let header = URL_SAFE_NO_PAD.encode(self.fill(header));
        let payload = URL_SAFE_NO_PAD.encode(self.fill(payload));
        let input = format!("{header}.{payload}");
        let signature = signer
            .and_then(|s| s.sign(input.as_bytes()).ok())
            .unwrap_or_default();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// One fuzz input against the OAuth endpoints. Byte 0 picks what the rest is:
    ///
    /// - 0: a raw token request body;
    /// - 1: a raw token, introspected by the collection;
    /// - 2, 3: `header \0 payload` signed with the HMAC secret (2) or RSA key (3), tried as an
    ///   introspected token, a client assertion and a JWT-bearer grant;
    /// - 4: `header \0 payload \0 signature` with the raw signature bytes, tried the same ways;
    /// - 5: a raw introspection body from the collection;
    /// - 6: a raw revocation body from the oauth2 client;
    /// - 7: `header \0 payload` signed by the `oidc` profile's identity provider (key id
    ///   `idp-1`), tried the same ways as 2.
    ///
    /// Properties: no 5xx; every refusal is a JSON object with an RFC error code (RFC 6749
    /// §5.2); introspection answers 200 with a boolean `active` or 400 `invalid_request`;
    /// a 429 carries `Retry-After`; an active introspection names one of our profiles.
    async fn oauth(&self, mode: u8, rest: &[u8]) -> anyhow::Result<()> {
        match mode % 8 {
            0 => {
                let reply = self.token_raw(self.fill(rest), None).await?;
                check_oauth_reply("token", &reply);
                if reply.status == 200 {
                    self.reached.tokens.fetch_add(1, Ordering::Relaxed);
                }
            }
            1 => self.introspect(rest).await?,
            2 | 3 => {
                let (header, payload) = split(rest, 0);
                let signer = if mode % 8 == 2 {
                    self.hmac.as_ref()
                } else {
                    self.rsa.as_ref()
                };
                let token = self.jwt(header, payload, Some(signer));
                self.every_jwt_use(&token).await?;
            }
            4 => {
                let (header, rest) = split(rest, 0);
                let (payload, signature) = split(rest, 0);
                let token = format!(
                    "{}.{}",
                    self.jwt(header, payload, None).trim_end_matches('.'),
                    URL_SAFE_NO_PAD.encode(signature)
                );
                self.every_jwt_use(&token).await?;
            }
            5 => {
                let (id, secret) = collection_credentials(&self.collection)?;
                let body = String::from_utf8_lossy(&self.fill(rest)).into_owned();
                let reply = self
                    .app()
                    .oauth_raw("/oauth/introspect", Auth::Basic(id, secret), &body)
                    .await?;
                if check_introspection(&reply) {
                    self.reached.active.fetch_add(1, Ordering::Relaxed);
                }
            }
            7 => {
                let (header, payload) = split(rest, 0);
                let token = self.jwt(header, payload, Some(self.idp.as_ref()));
                self.every_jwt_use(&token).await?;
            }
            _ => {
                let body = String::from_utf8_lossy(&self.fill(rest)).into_owned();
                let reply = self
                    .app()
                    .oauth_raw(
                        "/oauth/revoke",
                        Auth::Basic(&self.oauth_id, &self.oauth_secret),
                        &body,
                    )
                    .await?;
                // RFC 7009 §2.2: 200 for any token, valid or not; errors per RFC 6749 §5.2.
                check_oauth_reply("revocation", &reply);
            }
        }
        Ok(())
    }

    async fn token_raw(&self, body: Vec<u8>, basic: Option<(&str, &str)>) -> anyhow::Result<Reply> {
        let app = self.app();
        let mut req = app
            .http
            .post(app.public_url("/oauth/token"))
            .header(CONTENT_TYPE, FORM)
            .header("x-forwarded-for", self.source())
            .body(body);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        Reply::read(req.send().await?).await
    }

    async fn introspect(&self, token: &[u8]) -> anyhow::Result<()> {
        let (id, secret) = collection_credentials(&self.collection)?;
        let body: String = url::form_urlencoded::byte_serialize(token).collect();
        let reply = self
            .app()
            .oauth_raw(
                "/oauth/introspect",
                Auth::Basic(id, secret),
                &format!("token={body}"),
            )
            .await?;
        if check_introspection(&reply) {
            self.reached.active.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    async fn every_jwt_use(&self, token: &str) -> anyhow::Result<()> {
        self.introspect(token.as_bytes()).await?;
        let form = |pairs: &[(&str, &str)]| {
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(pairs)
                .finish()
                .into_bytes()
        };
        let assertion = form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", request::JWT_BEARER_ASSERTION),
            ("client_assertion", token),
        ]);
        let reply = self.token_raw(assertion, None).await?;
        check_oauth_reply("client assertion", &reply);
        if reply.status == 200 {
            self.reached.tokens.fetch_add(1, Ordering::Relaxed);
            self.introspect(access_token(&reply).as_bytes()).await?;
        }
        let grant = form(&[
            ("grant_type", request::JWT_BEARER_GRANT),
            ("assertion", token),
        ]);
        let reply = self.token_raw(grant, None).await?;
        check_oauth_reply("jwt-bearer grant", &reply);
        if reply.status == 200 {
            self.reached.tokens.fetch_add(1, Ordering::Relaxed);
            self.introspect(access_token(&reply).as_bytes()).await?;
        }
        Ok(())
    }

    /// One fuzz input against the admin API: byte 0 picks the route (create or update of a
    /// collection, client, profile, policy or API key), the rest is the JSON body.
    /// Properties: no 5xx; every answer is JSON; every refusal carries an `error`.
    async fn admin(&self, route: u8, body: &[u8]) -> anyhow::Result<()> {
        let body = self.fill(body);
        let app = self.app();
        let c = &self.client_id;
        let (method, path) = match route % 8 {
            0 => (Method::POST, "/collections".to_owned()),
            1 => (Method::POST, "/clients".to_owned()),
            2 => (Method::PATCH, format!("/clients/{c}")),
            3 => (Method::POST, format!("/clients/{c}/access-profiles")),
            4 => (Method::POST, "/policies".to_owned()),
            5 => (
                Method::PATCH,
                format!(
                    "/collections/{}",
                    self.collection["id"].as_str().unwrap_or("")
                ),
            ),
            6 => (
                Method::PATCH,
                format!("/access-profiles/{}", self.oauth_profile_id),
            ),
            _ => (
                Method::POST,
                format!("/access-profiles/{}/api-keys", self.token_profile_id),
            ),
        };
        let token = app.admin_token().await?;
        let resp = app
            .http
            .request(method.clone(), app.api_url(&path))
            .header(AUTHORIZATION, format!("Bearer {token}"))
            .header(CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await?;
        let reply = Reply::read(resp).await?;
        assert!(
            reply.status.as_u16() < 500,
            "{method} {path} answered {}: {}",
            reply.status,
            reply.text()
        );
        let value: Value = serde_json::from_slice(&reply.bytes)
            .unwrap_or_else(|_| panic!("{method} {path}: not JSON: {}", reply.text()));
        if reply.status.is_success() {
            self.reached.admin_writes.fetch_add(1, Ordering::Relaxed);
        }
        if reply.status.is_client_error() {
            self.reached.admin_refusals.fetch_add(1, Ordering::Relaxed);
            assert!(
                value.get("error").is_some(),
                "{method} {path}: a refusal without an error: {value}"
            );
        }
        Ok(())
    }
}

fn access_token(reply: &Reply) -> String {
    reply.json()["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("200 without an access_token: {}", reply.text()))
        .to_owned()
}

/// The RFC 6749 §5.2 error codes, plus RFC 6750's and RFC 8707's.
const ERROR_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "invalid_target",
    "unsupported_token_type",
    "rate_limited",
    "quota_exceeded",
    "slow_down",
    "temporarily_unavailable",
];

fn check_oauth_reply(what: &str, reply: &Reply) {
    let status = reply.status.as_u16();
    assert!(status < 500, "{what}: {status}: {}", reply.text());
    if status == 429 {
        assert!(
            reply.header("retry-after").is_some(),
            "{what}: 429 without Retry-After"
        );
    }
    if status >= 400 {
        let body: Value = serde_json::from_slice(&reply.bytes)
            .unwrap_or_else(|_| panic!("{what}: {status} without a JSON body: {}", reply.text()));
        let code = body["error"].as_str().unwrap_or_default();
        assert!(
            ERROR_CODES.contains(&code),
            "{what}: {status} with error {code:?}: {body}"
        );
    }
}

/// Checks an introspection answer; whether it was active.
fn check_introspection(reply: &Reply) -> bool {
    let status = reply.status.as_u16();
    match status {
        200 => {
            let body: Value = serde_json::from_slice(&reply.bytes)
                .unwrap_or_else(|_| panic!("introspection: not JSON: {}", reply.text()));
            let active = body["active"]
                .as_bool()
                .unwrap_or_else(|| panic!("introspection without a boolean active: {body}"));
            if active {
                assert!(
                    body["profile_id"].as_str().is_some(),
                    "an active answer that names no profile: {body}"
                );
            }
            active
        }
        _ => {
            check_oauth_reply("introspection", reply);
            false
        }
    }
}
