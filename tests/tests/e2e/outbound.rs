//! Outbound fetches cannot be aimed inside (server-side request forgery): an `oidc_issuer` /
//! `oidc_jwks_uri` naming an internal address is refused with a 422 on the field, at create
//! and at update; a stored one that the allow list no longer covers is refused at the fetch,
//! before any connection; a discovery document cannot send the key fetch to another host.
//!
//! Every refusal here happens before a connection is attempted, and no test sends anything
//! anywhere but loopback: refused URLs are only stored or judged, never reached, and the
//! stub identity providers listen on 127.0.0.1 (the harness allow-lists loopback).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode as HttpStatus, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_jwks::outbound::OutboundAllow;
use gatehouse_tests::{
    Auth, Reply, TestApp, Value, assert_active, captured_logs, collection_credentials, json,
    random_base62, spawn_app, spawn_app_with, str_field, unique,
};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::{JwsSigner, RS256};

/// The audience the consumers' tokens are minted for.
const AUD: &str = "https://outbound-api.example.com";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// A stub identity provider on loopback
// ---------------------------------------------------------------------------------------------

/// An OpenID provider on a random 127.0.0.1 port whose discovery document names `jwks_uri`
/// (its own `/jwks` unless told otherwise), counting requests per path.
#[derive(Clone)]
struct Idp {
    url: String,
    jwks_uri: Arc<Mutex<String>>,
    jwks: Value,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    key: Arc<RsaKeyPair>,
}

impl Idp {
    async fn spawn() -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let key = RsaKeyPair::generate(2048)?;
        let mut jwk = key.to_jwk_public_key();
        jwk.set_key_id("k1");
        jwk.set_algorithm("RS256");
        let idp = Idp {
            jwks_uri: Arc::new(Mutex::new(format!("{url}/jwks"))),
            url,
            jwks: json!({"keys": [serde_json::to_value(jwk.as_ref())?]}),
            hits: Arc::new(Mutex::new(HashMap::new())),
            key: Arc::new(key),
        };
        let router = Router::new().fallback(idp_handler).with_state(idp.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(idp)
    }

    /// The discovery document will name `uri` as the `jwks_uri`.
    fn name_jwks_uri(&self, uri: &str) {
        *self.jwks_uri.lock().unwrap_or_else(PoisonError::into_inner) = uri.to_owned();
    }

    fn hits(&self, path: &str) -> usize {
        let hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        hits.get(path).copied().unwrap_or(0)
    }

    fn total_hits(&self) -> usize {
        let hits = self.hits.lock().unwrap_or_else(PoisonError::into_inner);
        hits.values().sum()
    }

    /// An RS256 token from this provider for `sub`, addressed to `aud`.
    fn token(&self, sub: &str, aud: &str) -> anyhow::Result<String> {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let header = json!({"alg": "RS256", "typ": "JWT", "kid": "k1"});
        let claims = json!({"iss": self.url, "sub": sub, "aud": aud, "iat": now(),
            "exp": now() + 300, "jti": random_base62(16)});
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let signer = RS256.signer_from_pem(self.key.to_pem_private_key())?;
        let signature = signer.sign(input.as_bytes())?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

async fn idp_handler(State(idp): State<Idp>, uri: Uri) -> Response {
    let path = uri.path().to_owned();
    *idp.hits
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(path.clone())
        .or_default() += 1;
    let body = match path.as_str() {
        "/.well-known/openid-configuration" => json!({
            "issuer": idp.url,
            "authorization_endpoint": format!("{}/authorize", idp.url),
            "jwks_uri": *idp.jwks_uri.lock().unwrap_or_else(PoisonError::into_inner),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }),
        "/jwks" => idp.jwks.clone(),
        _ => return HttpStatus::NOT_FOUND.into_response(),
    };
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

// ---------------------------------------------------------------------------------------------
// The relying Gatehouse
// ---------------------------------------------------------------------------------------------

/// A collection and a client on `app`, to hang `oidc` profiles on.
struct Rp {
    collection: Value,
    client_id: String,
}

impl Rp {
    async fn on(app: &TestApp) -> anyhow::Result<Self> {
        let collection = app
            .create_collection(&unique("Outbound"), AUD, &[&unique("o:r")])
            .await?;
        let client = app.create_client("Outbound Inc").await?;
        Ok(Self {
            collection,
            client_id: str_field(&client, "id")?.to_owned(),
        })
    }

    fn profiles_path(&self) -> String {
        format!("/clients/{}/access-profiles", self.client_id)
    }

    /// An `oidc` profile body for consumer `sub`, with `extra` (the URL field) merged in.
    fn body(&self, sub: &str, extra: Value) -> Value {
        gatehouse_tests::merged(
            json!({"name": unique("idp"), "auth_type": "oidc",
                "collections": [self.collection["id"]], "allowed_audiences": [AUD],
                "jwt_claim_value": sub, "jwt_algorithms": ["RS256"]}),
            extra,
        )
    }

    fn basic(&self) -> Auth<'_> {
        let (id, secret) = collection_credentials(&self.collection).unwrap_or(("", ""));
        Auth::Basic(id, secret)
    }
}

/// A Gatehouse with the production default: no allow list.
async fn strict_app() -> anyhow::Result<TestApp> {
    spawn_app_with(|cfg| cfg.outbound_allow = OutboundAllow::default()).await
}

/// Asserts a 422 naming exactly `field` with `code`.
#[track_caller]
fn refused(reply: &Reply, field: &str, code: &str) {
    reply.expect_error(422, "validation_failed");
    let fields: Vec<(String, String)> = reply.json()["fields"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|f| {
                    let s = |k: &str| f[k].as_str().unwrap_or_default().to_owned();
                    (s("field"), s("code"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        fields,
        vec![(field.to_owned(), code.to_owned())],
        "{reply:?}"
    );
}

/// RFC 7523 §2.1: trade `assertion` for a token.
async fn jwt_bearer(app: &TestApp, assertion: &str) -> anyhow::Result<Reply> {
    app.token_form(
        None,
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ],
        &[],
    )
    .await
}

/// URLs naming an internal address (or http to a host nothing allows), none of them reachable
/// from a test: field, URL, expected code.
const INTERNAL: &[(&str, &str, &str)] = &[
    ("oidc_jwks_uri", "https://10.0.0.1/jwks", "internal_address"),
    ("oidc_issuer", "https://10.0.0.1", "internal_address"),
    ("oidc_issuer", "https://169.254.169.254", "internal_address"),
    (
        "oidc_jwks_uri",
        "https://169.254.169.254/latest/meta-data",
        "internal_address",
    ),
    (
        "oidc_jwks_uri",
        "https://[::ffff:169.254.169.254]/jwks",
        "internal_address",
    ),
    ("oidc_jwks_uri", "https://[::1]/jwks", "internal_address"),
    ("oidc_issuer", "https://[::1]:8443", "internal_address"),
    (
        "oidc_jwks_uri",
        "https://[fd00::1]/jwks",
        "internal_address",
    ),
    (
        "oidc_jwks_uri",
        "https://100.64.0.1/jwks",
        "internal_address",
    ),
    (
        "oidc_jwks_uri",
        "https://192.168.1.1/jwks",
        "internal_address",
    ),
    ("oidc_jwks_uri", "https://0.0.0.0/jwks", "internal_address"),
    ("oidc_issuer", "https://localhost", "internal_address"),
    (
        "oidc_jwks_uri",
        "https://idp.localhost/jwks",
        "internal_address",
    ),
    (
        "oidc_jwks_uri",
        "https://2130706433/jwks",
        "internal_address",
    ),
    ("oidc_issuer", "http://127.0.0.1:9", "insecure_url"),
    ("oidc_jwks_uri", "http://127.0.0.1:9/jwks", "insecure_url"),
    ("oidc_jwks_uri", "http://localhost:9/jwks", "insecure_url"),
    ("oidc_jwks_uri", "http://10.0.0.1/jwks", "insecure_url"),
];

// ---------------------------------------------------------------------------------------------
// Create and update
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn internal_urls_are_refused_at_create_and_update() -> anyhow::Result<()> {
    let app = strict_app().await?;
    let rp = Rp::on(&app).await?;
    for (field, url, code) in INTERNAL {
        let reply = app
            .admin_post(
                &rp.profiles_path(),
                &rp.body(&unique("c"), json!({*field: url})),
            )
            .await?;
        refused(&reply, field, code);
    }
    // A jwt/rsa profile's JWKS URL obeys the same rules.
    let reply = app
        .admin_post(
            &rp.profiles_path(),
            &rp.body(
                &unique("c"),
                json!({"auth_type": "jwt", "jwt_method": "rsa",
                    "oidc_jwks_uri": "https://169.254.169.254/jwks"}),
            ),
        )
        .await?;
    refused(&reply, "oidc_jwks_uri", "internal_address");

    // A host name is not looked up in the admin request (the fetch judges its addresses).
    let created = app
        .create_profile(
            &rp.client_id,
            &rp.body(
                &unique("c"),
                json!({"oidc_jwks_uri": "https://idp.example.com/jwks"}),
            ),
        )
        .await?;
    let path = format!("/access-profiles/{}", str_field(&created, "id")?);
    for (field, url, code) in INTERNAL {
        // An issuer replaces the JWKS URL (one of the two, never both).
        let patch = if *field == "oidc_issuer" {
            json!({"oidc_issuer": url, "oidc_jwks_uri": null})
        } else {
            json!({*field: url})
        };
        refused(&app.admin_patch(&path, &patch).await?, field, code);
    }
    let read = app.admin_get(&path).await?.expect_status(200).json();
    assert_eq!(
        read["oidc_jwks_uri"], "https://idp.example.com/jwks",
        "{read}"
    );
    assert!(read.get("oidc_issuer").is_none_or(Value::is_null), "{read}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_allow_list_admits_what_it_names_and_nothing_else() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.outbound_allow = OutboundAllow::parse(&["10.0.0.0/8", "idp.corp"]).unwrap();
    })
    .await?;
    let rp = Rp::on(&app).await?;
    // Stored only: nothing fetches them in this test.
    for (field, url) in [
        ("oidc_jwks_uri", "https://10.0.0.1/jwks"),
        ("oidc_jwks_uri", "http://10.20.30.40:8080/jwks"),
        ("oidc_jwks_uri", "https://[::ffff:10.0.0.1]/jwks"),
        ("oidc_issuer", "http://idp.corp"),
        ("oidc_issuer", "https://idp.corp/realms/acme"),
    ] {
        let created = app
            .create_profile(&rp.client_id, &rp.body(&unique("c"), json!({field: url})))
            .await?;
        assert_eq!(created[field], url, "{created}");
    }
    for (field, url, code) in [
        (
            "oidc_jwks_uri",
            "https://169.254.169.254/jwks",
            "internal_address",
        ),
        (
            "oidc_jwks_uri",
            "https://127.0.0.1/jwks",
            "internal_address",
        ),
        (
            "oidc_jwks_uri",
            "http://idp.example.com/jwks",
            "insecure_url",
        ),
        ("oidc_issuer", "http://sub.idp.corp", "insecure_url"),
    ] {
        let reply = app
            .admin_post(
                &rp.profiles_path(),
                &rp.body(&unique("c"), json!({field: url})),
            )
            .await?;
        refused(&reply, field, code);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Fetch time
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_idp_is_reached_only_while_allow_listed() -> anyhow::Result<()> {
    let idp = Idp::spawn().await?;
    let allowed = Arc::new(AtomicBool::new(true));
    let flag = allowed.clone();
    let mut app = spawn_app_with(move |cfg| {
        if !flag.load(Ordering::SeqCst) {
            cfg.outbound_allow = OutboundAllow::default();
        }
    })
    .await?;
    let rp = Rp::on(&app).await?;
    app.create_profile(
        &rp.client_id,
        &rp.body("consumer-1", json!({"oidc_issuer": idp.url})),
    )
    .await?;
    let body = assert_active(
        &app.introspect_token(rp.basic(), &idp.token("consumer-1", AUD)?)
            .await?,
    );
    assert_eq!(body["iss"], idp.url.as_str(), "{body}");
    assert_eq!(idp.hits("/jwks"), 1);

    // The allow list shrinks: the stored issuer breaks the rules, and the next fetch (the
    // restarted server has no cached keys) is refused without contacting the provider.
    allowed.store(false, Ordering::SeqCst);
    app.restart().await?;
    let before = idp.total_hits();
    app.introspect_token(rp.basic(), &idp.token("consumer-1", AUD)?)
        .await?
        .expect_error(503, "temporarily_unavailable");
    jwt_bearer(&app, &idp.token("consumer-1", &app.issuer)?)
        .await?
        .expect_error(503, "temporarily_unavailable");
    assert_eq!(idp.total_hits(), before, "the provider was not contacted");
    assert!(
        captured_logs()
            .lines()
            .any(|l| l.contains(&idp.url) && l.contains("refused URL: http is allowed only")),
        "the refusal is logged"
    );
    // And the admin API refuses it now.
    let reply = app
        .admin_post(
            &rp.profiles_path(),
            &rp.body("consumer-2", json!({"oidc_issuer": idp.url})),
        )
        .await?;
    refused(&reply, "oidc_issuer", "insecure_url");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_discovered_jwks_uri_cannot_send_the_key_fetch_elsewhere() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let rp = Rp::on(&app).await?;
    for (i, elsewhere) in [
        "http://10.0.0.1/jwks",
        "https://169.254.169.254/latest/meta-data",
        "http://[::ffff:169.254.169.254]/jwks",
        "https://keys.invalid/jwks",
    ]
    .into_iter()
    .enumerate()
    {
        let idp = Idp::spawn().await?;
        idp.name_jwks_uri(elsewhere);
        let sub = format!("consumer-elsewhere-{i}");
        app.create_profile(
            &rp.client_id,
            &rp.body(&sub, json!({"oidc_issuer": idp.url})),
        )
        .await?;
        // The key set cannot be fetched: the answer is the one for an unreachable provider.
        app.introspect_token(rp.basic(), &idp.token(&sub, AUD)?)
            .await?
            .expect_error(503, "temporarily_unavailable");
        assert_eq!(
            idp.hits("/.well-known/openid-configuration"),
            1,
            "{elsewhere}: discovery was asked"
        );
        assert_eq!(idp.hits("/jwks"), 0, "{elsewhere}");
        assert!(
            captured_logs().lines().any(|l| l.contains(&idp.url)
                && l.contains("jwks_uri of the discovery document has another scheme or host")),
            "{elsewhere}: refused by the jwks_uri rule, before any connection"
        );
        if i == 0 {
            jwt_bearer(&app, &idp.token(&sub, &app.issuer)?)
                .await?
                .expect_error(503, "temporarily_unavailable");
        }
    }

    // Another host the allow list covers (`localhost`, by its loopback addresses) is fine.
    let idp = Idp::spawn().await?;
    let port = idp.url.rsplit(':').next().unwrap_or_default();
    idp.name_jwks_uri(&format!("http://localhost:{port}/jwks"));
    app.create_profile(
        &rp.client_id,
        &rp.body("consumer-localhost", json!({"oidc_issuer": idp.url})),
    )
    .await?;
    assert_active(
        &app.introspect_token(rp.basic(), &idp.token("consumer-localhost", AUD)?)
            .await?,
    );
    assert_eq!(idp.hits("/jwks"), 1);
    Ok(())
}
