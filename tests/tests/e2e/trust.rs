//! Trust boundaries, as `shared/CONTRACT.md` draws them: the RFC 7523 JWT-bearer grant
//! (addressed to Gatehouse, `jti` once, `exp` at most an hour ahead, failures throttled),
//! client assertions (authlib's defaults accepted, no answer that tells whether a client id
//! exists), the challenges every 401 carries, Bearer tokens that are not admin tokens, an
//! admin's **current** grant, collection access that follows the profile's current grant,
//! IP rules for callers of introspection and revocation, no leeway on our own `exp`, the
//! collection-scoped introspection answer, `scope` omitted when empty, jwt clients at
//! introspection and revocation, HS384/HS512 secret sizes, and RFC 8414 path-inserted
//! discovery.
//!
//! These tests were written before the server fix they describe. On the code they were
//! written against (`trust-tests` branched from main at 2e77ee7):
//!
//! | test | before the fix | why |
//! |---|---|---|
//! | `jwt_bearer_grant_accepts_assertions_addressed_to_gatehouse` | FAILS | `aud` = issuer / token endpoint → 400 `invalid_grant` (only `allowed_audiences` accepted) |
//! | `jwt_bearer_grant_refuses_a_resource_server_audience` | FAILS | control (`aud` = issuer) refused; the resource audience is accepted |
//! | `jwt_bearer_grant_requires_a_jti` | FAILS | control refused (`aud`); a JWT without `jti` is accepted when `aud` is a resource's |
//! | `jwt_bearer_grant_refuses_exp_more_than_an_hour_ahead` | FAILS | control refused (`aud`); no upper bound on `exp` |
//! | `jwt_bearer_grant_refuses_a_replayed_jti` | FAILS | the first use (`aud` = issuer) is refused |
//! | `jwt_bearer_grant_refuses_client_authentication_as_another_profile` | FAILS | 400 `invalid_request` (any client authentication is refused) |
//! | `refused_jwt_bearer_grants_spend_the_failed_attempt_budget` | FAILS | 150 refused grants from one address, never a 429 |
//! | `client_assertions_signed_with_authlib_defaults_are_accepted` | FAILS | `exp = iat + 3600` → 401 (limit is 300 s + 60 s) |
//! | `client_assertions_expiring_past_the_hour_and_leeway_are_invalid_client` | passes | refused today for the same reason |
//! | `client_assertion_failures_do_not_tell_whether_the_client_exists` | passes | both already identical 401 `invalid_client` (neither has a challenge yet) |
//! | `client_assertions_naming_an_oauth2_profile_are_invalid_client` | FAILS | 400 `unauthorized_client`: tells that the id exists |
//! | `every_401_from_the_oauth_endpoints_carries_a_basic_challenge` | FAILS | 401s without Basic credentials (post, assertion, none) have no challenge |
//! | `a_bearer_token_that_is_not_an_admin_token_gets_invalid_token` | FAILS | 401 `invalid_client`, no `WWW-Authenticate: Bearer` |
//! | `the_admin_api_answers_invalid_token_to_a_token_for_another_audience` | FAILS | 403 `insufficient_scope` |
//! | `narrowing_an_admin_grant_applies_to_tokens_already_issued` | FAILS | rights come from the token's `scope` claim: the write still succeeds |
//! | `removing_the_admin_collection_stops_tokens_already_issued` | FAILS | the old token still reads the admin API (200) |
//! | `a_collection_sees_a_token_only_while_the_profile_holds_it` | FAILS | only the token's `aud` is checked: A still sees it active |
//! | `ip_rules_apply_to_a_client_introspecting_or_revoking_its_own_tokens` | FAILS | the client's own introspection ignores its IP rules (active) |
//! | `our_own_tokens_are_inactive_the_second_they_expire` | FAILS | 60 s of leeway: still active |
//! | `a_collection_sees_only_its_own_audience_scope_and_collection` | FAILS | `scope`, `aud` and `collections` show both collections |
//! | `token_responses_omit_scope_when_the_token_has_none` | FAILS | the client-credentials answer carries `"scope": ""` |
//! | `jwt_clients_introspect_and_revoke_with_client_assertions` | FAILS | a client assertion at introspection → 401 `invalid_client` |
//! | `hs512_profiles_get_a_generated_secret_of_at_least_64_bytes` | FAILS | the generated secret has 43 bytes (josekit then refuses the HS512 key: 401) |
//! | `an_hs384_profile_refuses_a_secret_shorter_than_48_bytes` | FAILS | a 40-byte secret is accepted (201) |
//! | `discovery_answers_at_the_rfc8414_path_inserted_url` | FAILS | 404 |

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use gatehouse_tests::{
    Auth, Reply, TestApp, Value, assert_active, assert_inactive, collection_credentials,
    decode_jwt_unverified, json, merged, random_base62, spawn_app, spawn_app_with, str_field,
    unique,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::Method;

/// RFC 7523 §2.2 `client_assertion_type`.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// RFC 7523 §2.1 `grant_type`.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The `iss` of the consumers' own JWTs in the grant tests (the profiles have no
/// `allowed_issuers`, so any issuer is fine).
const CONSUMER_ISS: &str = "https://idp.consumer.example";
/// The challenge every 401 of the token, introspection and revocation endpoints starts with.
const BASIC_CHALLENGE: &str = "Basic realm=\"gatehouse\"";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// A random 36-character UUID-shaped `jti` (`8-4-4-4-12` hex digits).
fn uuid_like() -> String {
    let hex = format!("{:032x}", rand::random::<u128>());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The token endpoint URL as the contract names it for `aud`: `{issuer}/oauth/token`.
fn token_endpoint(app: &TestApp) -> String {
    format!("{}/oauth/token", app.issuer.trim_end_matches('/'))
}

/// A `jwt` profile on a fresh client and collection (audience `https://<name>.example.com/api`,
/// one scope `scope`); `allowed_audiences` is that collection's audience. `extra` is merged
/// into the create body.
struct JwtProfile {
    collection: Value,
    profile: Value,
    /// The profile's `oauth_client_id` (also its default `jwt_claim_value`).
    id: String,
}

async fn jwt_profile(app: &TestApp, scope: &str, extra: Value) -> anyhow::Result<JwtProfile> {
    let name = unique("consumer");
    let audience = format!("https://{name}.example.com/api");
    let collection = app.create_collection(&name, &audience, &[scope]).await?;
    let client = app.create_client(&unique("consumer-inc")).await?;
    let body = merged(
        json!({
            "name": unique("signed"),
            "auth_type": "jwt",
            "collections": [collection["id"]],
            "allowed_audiences": [audience],
        }),
        extra,
    );
    let profile = app.create_profile(str_field(&client, "id")?, &body).await?;
    if let Some(secret) = profile["jwt_secret"].as_str() {
        app.record_secret(secret);
    }
    let id = str_field(&profile, "oauth_client_id")?.to_owned();
    Ok(JwtProfile {
        collection,
        profile,
        id,
    })
}

/// Signs JWTs as a jwt profile's consumer does.
struct Signer {
    /// The profile's `oauth_client_id`.
    id: String,
    key: EncodingKey,
    alg: Algorithm,
}

impl Signer {
    /// With the profile's generated HMAC secret (its bytes are the key).
    fn hmac(p: &JwtProfile, alg: Algorithm) -> anyhow::Result<Self> {
        let secret = str_field(&p.profile, "jwt_secret")?;
        Ok(Self {
            id: p.id.clone(),
            key: EncodingKey::from_secret(secret.as_bytes()),
            alg,
        })
    }

    fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        Ok(encode(&Header::new(self.alg), claims, &self.key)?)
    }

    /// An RFC 7523 §2.2 client assertion as authlib signs one: `iss` = `sub` = the client id,
    /// this `aud`, `iat` = now, `exp` = `iat + lifetime`, a fresh `jti`.
    fn client_assertion(&self, aud: &str, lifetime: i64, jti: &str) -> anyhow::Result<String> {
        let iat = now();
        self.sign(&json!({
            "iss": self.id, "sub": self.id, "aud": aud,
            "iat": iat, "exp": iat + lifetime, "jti": jti,
        }))
    }

    /// A JWT-bearer grant assertion: `sub` = the profile's `jwt_claim_value` (its
    /// `oauth_client_id` by default), `aud` = the issuer, five minutes of life, a fresh
    /// `jti`; `extra` is merged (`null` removes a claim).
    fn grant_assertion(&self, app: &TestApp, extra: Value) -> anyhow::Result<String> {
        let iat = now();
        let claims = json!({
            "iss": CONSUMER_ISS, "sub": self.id, "aud": app.issuer,
            "iat": iat, "exp": iat + 300, "jti": uuid_like(),
        });
        self.sign(&merged(claims, extra))
    }
}

/// The JWT-bearer grant, with optional Basic client authentication and extra headers.
async fn grant(
    app: &TestApp,
    assertion: &str,
    basic: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> anyhow::Result<Reply> {
    app.token_form(
        basic,
        &[("grant_type", JWT_BEARER_GRANT), ("assertion", assertion)],
        headers,
    )
    .await
}

/// Client credentials authenticated by a client assertion (nothing else in the form).
async fn token_by_assertion(app: &TestApp, assertion: &str) -> anyhow::Result<Reply> {
    app.token_form(
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
        &[],
    )
    .await
}

/// Asserts a 200 token answer and returns its access token.
#[track_caller]
fn access_token_of(reply: &Reply) -> String {
    assert_eq!(
        reply.status.as_u16(),
        200,
        "a token was expected: {reply:?}"
    );
    reply.json()["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access_token: {reply:?}"))
        .to_owned()
}

/// The `error` member of a JSON body, if any (never panics).
fn error_of(reply: &Reply) -> Option<String> {
    serde_json::from_slice::<Value>(&reply.bytes)
        .ok()
        .and_then(|b| b["error"].as_str().map(str::to_owned))
}

/// Asserts an RFC 6750 §3.1 `invalid_token` refusal: 401, `error` = `invalid_token`, and a
/// `WWW-Authenticate: Bearer … error="invalid_token"` challenge.
#[track_caller]
fn assert_invalid_token(reply: &Reply) {
    reply.expect_error(401, "invalid_token");
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Bearer") && www.contains("error=\"invalid_token\""),
        "WWW-Authenticate: Bearer … error=\"invalid_token\" expected: {reply:?}"
    );
}

/// The id of the built-in admin collection (`builtin: true` in `GET /collections`).
async fn builtin_collection_id(app: &TestApp) -> anyhow::Result<String> {
    let (items, _) = app.admin_list_all("/collections", 1000).await?;
    items
        .iter()
        .find(|c| c["builtin"] == json!(true))
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned)
        .context("no built-in collection is listed")
}

/// A second admin: a client with an oauth2 profile on the built-in admin collection holding
/// both admin scopes. Returns (profile id, oauth_client_id, secret).
async fn second_admin(app: &TestApp) -> anyhow::Result<(String, String, String)> {
    let builtin = builtin_collection_id(app).await?;
    let client = app.create_client(&unique("operator")).await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({
                "name": unique("operations"),
                "auth_type": "oauth2",
                "collections": [builtin],
                "scopes": ["gatehouse:admin", "gatehouse:admin:read"],
            }),
        )
        .await?;
    Ok((
        str_field(&profile, "id")?.to_owned(),
        str_field(&profile, "oauth_client_id")?.to_owned(),
        str_field(&profile, "oauth_client_secret")?.to_owned(),
    ))
}

/// A client create body (a write to the admin API).
fn new_client_body() -> Value {
    json!({
        "name": unique("written"),
        "description": "Created by an admin token under test",
        "contact": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
    })
}

/// Asserts `aud` names exactly `audience`, as a string (RFC 7519 §4.1.3: one audience is a
/// string, as in our tokens).
#[track_caller]
fn assert_only_audience(body: &Value, audience: &str) {
    assert_eq!(
        body["aud"],
        json!(audience),
        "aud must name only {audience}: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. The JWT-bearer grant is addressed to Gatehouse
// ---------------------------------------------------------------------------------------------

/// `aud` = the issuer, or the token endpoint URL, with `exp` an hour ahead and a fresh `jti`:
/// a token.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_grant_accepts_assertions_addressed_to_gatehouse() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "grant-a:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let audience = str_field(&p.collection, "audience")?;
    for aud in [app.issuer.clone(), token_endpoint(&app)] {
        let assertion = signer.grant_assertion(&app, json!({"aud": aud, "exp": now() + 3600}))?;
        let reply = grant(&app, &assertion, None, &[]).await?;
        let token = access_token_of(&reply);
        let claims = app.verify_token(&token, Some(audience)).await?;
        assert_eq!(claims["client_id"], p.id.as_str(), "aud {aud}: {claims}");
        assert_eq!(claims["scope"], "grant-a:read", "aud {aud}: {claims}");
    }
    Ok(())
}

/// An assertion addressed to a resource server (one of `allowed_audiences`) is not a grant.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_grant_refuses_a_resource_server_audience() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "grant-b:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let audience = str_field(&p.collection, "audience")?;
    // Control: the same assertion addressed to Gatehouse is a grant.
    let control = signer.grant_assertion(&app, json!({}))?;
    access_token_of(&grant(&app, &control, None, &[]).await?);

    let to_resource = signer.grant_assertion(&app, json!({"aud": audience}))?;
    grant(&app, &to_resource, None, &[])
        .await?
        .expect_error(400, "invalid_grant");
    Ok(())
}

/// An assertion without `jti` is refused.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_grant_requires_a_jti() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "grant-c:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let control = signer.grant_assertion(&app, json!({}))?;
    access_token_of(&grant(&app, &control, None, &[]).await?);

    let no_jti = signer.grant_assertion(&app, json!({"jti": null}))?;
    grant(&app, &no_jti, None, &[])
        .await?
        .expect_error(400, "invalid_grant");
    Ok(())
}

/// `exp` more than an hour (plus a minute of leeway) ahead is refused.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_grant_refuses_exp_more_than_an_hour_ahead() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "grant-d:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let control = signer.grant_assertion(&app, json!({"exp": now() + 3600}))?;
    access_token_of(&grant(&app, &control, None, &[]).await?);

    let far = signer.grant_assertion(&app, json!({"exp": now() + 3600 + 60 + 240}))?;
    grant(&app, &far, None, &[])
        .await?
        .expect_error(400, "invalid_grant");
    Ok(())
}

/// A `jti` is used once: the same assertion, or a newly signed one with the same `jti`, is
/// refused the second time.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_grant_refuses_a_replayed_jti() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "grant-e:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let jti = uuid_like();
    let first = signer.grant_assertion(&app, json!({"jti": jti}))?;
    access_token_of(&grant(&app, &first, None, &[]).await?);

    grant(&app, &first, None, &[])
        .await?
        .expect_error(400, "invalid_grant");
    let resigned = signer.grant_assertion(&app, json!({"jti": jti, "exp": now() + 600}))?;
    grant(&app, &resigned, None, &[])
        .await?
        .expect_error(400, "invalid_grant");
    Ok(())
}

/// Client authentication is optional; when given it must be the assertion's profile. Valid
/// credentials of another (oauth2) profile are refused with `invalid_grant`.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_bearer_grant_refuses_client_authentication_as_another_profile() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "grant-f:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let other = app.oauth_fixture(&["other-f:read"], json!({})).await?;
    // The other profile's credentials are valid.
    app.access_token(&other.oauth_client_id, &other.oauth_client_secret, &[])
        .await?;

    let assertion = signer.grant_assertion(&app, json!({}))?;
    let basic = Some((
        other.oauth_client_id.as_str(),
        other.oauth_client_secret.as_str(),
    ));
    grant(&app, &assertion, basic, &[])
        .await?
        .expect_error(400, "invalid_grant");
    // Control: without client authentication a fresh assertion is a grant.
    let control = signer.grant_assertion(&app, json!({}))?;
    access_token_of(&grant(&app, &control, None, &[]).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Refused grants count against the failed-attempt budgets
// ---------------------------------------------------------------------------------------------

/// Refused JWT-bearer grants from one address spend the failed-attempt budgets
/// (`crates/registry/src/limits.rs`: 10 a minute per client id and address, 100 per address):
/// past them the token endpoint answers 429 `rate_limited` with `Retry-After`. Another
/// address is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn refused_jwt_bearer_grants_spend_the_failed_attempt_budget() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
    })
    .await?;
    let p = jwt_profile(&app, "throttle:read", json!({"jwt_method": "hmac"})).await?;
    let forger = Signer {
        id: p.id.clone(),
        key: EncodingKey::from_secret(b"not-the-profile-secret-not-the-profile-secret"),
        alg: Algorithm::HS256,
    };
    let attacker = "198.51.100.77";
    let started = std::time::Instant::now();
    let mut refused = 0u64;
    let throttled = loop {
        let forged = forger.grant_assertion(&app, json!({}))?;
        let reply = grant(&app, &forged, None, &[("x-forwarded-for", attacker)]).await?;
        if reply.status.as_u16() == 429 {
            break reply;
        }
        reply.expect_error(400, "invalid_grant");
        refused += 1;
        assert!(
            refused < 150,
            "150 refused grants from one address and no 429: {reply:?}"
        );
    };
    // The per-address budget (100) is the most there can be, plus what refilled meanwhile
    // (one failure every 0.6 s).
    let refilled = u64::try_from(started.elapsed().as_millis() / 600 + 1).unwrap_or(u64::MAX);
    assert!(
        (10..=100 + refilled).contains(&refused),
        "throttled after {refused} refused grants"
    );
    throttled.expect_error(429, "rate_limited");
    let retry_after: u64 = throttled
        .header("retry-after")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("Retry-After in seconds expected: {throttled:?}"));
    assert!(retry_after >= 1, "{throttled:?}");
    // Another address still gets a grant.
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let good = signer.grant_assertion(&app, json!({}))?;
    access_token_of(&grant(&app, &good, None, &[("x-forwarded-for", "198.51.100.78")]).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Client assertions
// ---------------------------------------------------------------------------------------------

/// authlib's defaults (`aud` = token endpoint, `exp = iat + 3600`, a 36-character `jti`)
/// authenticate both `client_secret_jwt` (hmac) and `private_key_jwt` (rsa).
#[tokio::test(flavor = "multi_thread")]
async fn client_assertions_signed_with_authlib_defaults_are_accepted() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let endpoint = token_endpoint(&app);

    // client_secret_jwt; authlib's own jti: 36 random alphanumerics.
    let hmac = jwt_profile(&app, "authlib-h:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&hmac, Algorithm::HS256)?;
    let assertion = signer.client_assertion(&endpoint, 3600, &random_base62(36))?;
    let token = access_token_of(&token_by_assertion(&app, &assertion).await?);
    let claims = app.verify_token(&token, None).await?;
    assert_eq!(claims["client_id"], hmac.id.as_str(), "{claims}");

    // private_key_jwt; a UUID-shaped jti, and client_id in the form too.
    let pair = josekit::jws::RS256.generate_key_pair(2048)?;
    let public_pem = String::from_utf8(pair.to_pem_public_key())?;
    let rsa = jwt_profile(
        &app,
        "authlib-r:read",
        json!({"jwt_method": "rsa", "jwt_public_key": public_pem}),
    )
    .await?;
    let signer = Signer {
        id: rsa.id.clone(),
        key: EncodingKey::from_rsa_pem(&pair.to_pem_private_key())?,
        alg: Algorithm::RS256,
    };
    let jti = uuid_like();
    assert_eq!(jti.len(), 36);
    let assertion = signer.client_assertion(&endpoint, 3600, &jti)?;
    let reply = app
        .token_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", rsa.id.as_str()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
            ],
            &[],
        )
        .await?;
    let token = access_token_of(&reply);
    let claims = app.verify_token(&token, None).await?;
    assert_eq!(claims["client_id"], rsa.id.as_str(), "{claims}");
    Ok(())
}

/// `exp = iat + 3700 + 60` is past the hour and its minute of leeway: `invalid_client`.
#[tokio::test(flavor = "multi_thread")]
async fn client_assertions_expiring_past_the_hour_and_leeway_are_invalid_client()
-> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "long:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let assertion = signer.client_assertion(&token_endpoint(&app), 3700 + 60, &uuid_like())?;
    token_by_assertion(&app, &assertion)
        .await?
        .expect_error(401, "invalid_client");
    Ok(())
}

/// A bad signature for an existing jwt client and an assertion naming an unknown client id
/// get the same answer: 401 `invalid_client`.
#[tokio::test(flavor = "multi_thread")]
async fn client_assertion_failures_do_not_tell_whether_the_client_exists() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "exists:read", json!({"jwt_method": "hmac"})).await?;
    let endpoint = token_endpoint(&app);
    let wrong_key = EncodingKey::from_secret(b"a-key-that-verifies-for-nobody-at-all-here");
    let forged = Signer {
        id: p.id.clone(),
        key: wrong_key.clone(),
        alg: Algorithm::HS256,
    };
    let unknown = Signer {
        id: format!("gco_{}", random_base62(22)),
        key: wrong_key,
        alg: Algorithm::HS256,
    };
    let known = token_by_assertion(
        &app,
        &forged.client_assertion(&endpoint, 300, &uuid_like())?,
    )
    .await?;
    let stranger = token_by_assertion(
        &app,
        &unknown.client_assertion(&endpoint, 300, &uuid_like())?,
    )
    .await?;
    known.expect_error(401, "invalid_client");
    stranger.expect_error(401, "invalid_client");
    assert_eq!(known.json(), stranger.json(), "same body for both");
    assert_eq!(
        known.header("www-authenticate"),
        stranger.header("www-authenticate"),
        "same challenge for both: {known:?} / {stranger:?}"
    );
    Ok(())
}

/// An oauth2 profile cannot use assertions; an assertion naming one whose signature cannot
/// verify is answered exactly like an unknown client (401 `invalid_client`), not with
/// `unauthorized_client`, which would tell that the id exists.
#[tokio::test(flavor = "multi_thread")]
async fn client_assertions_naming_an_oauth2_profile_are_invalid_client() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["oauth2-only:read"], json!({})).await?;
    let endpoint = token_endpoint(&app);
    let key = EncodingKey::from_secret(b"a-key-that-verifies-for-nobody-at-all-here");
    let oauth2 = Signer {
        id: fx.oauth_client_id.clone(),
        key: key.clone(),
        alg: Algorithm::HS256,
    };
    let unknown = Signer {
        id: format!("gco_{}", random_base62(22)),
        key,
        alg: Algorithm::HS256,
    };
    let reply = token_by_assertion(
        &app,
        &oauth2.client_assertion(&endpoint, 300, &uuid_like())?,
    )
    .await?;
    reply.expect_error(401, "invalid_client");
    let stranger = token_by_assertion(
        &app,
        &unknown.client_assertion(&endpoint, 300, &uuid_like())?,
    )
    .await?;
    assert_eq!(reply.json(), stranger.json(), "same body as an unknown id");
    assert_eq!(
        reply.header("www-authenticate"),
        stranger.header("www-authenticate"),
        "same challenge as an unknown id"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Every 401 carries a challenge
// ---------------------------------------------------------------------------------------------

/// Every 401 from `/oauth/token`, `/oauth/introspect` and `/oauth/revoke` carries
/// `WWW-Authenticate: Basic realm="gatehouse"…`, whatever the client tried: Basic, form
/// parameters, an assertion, or nothing.
#[tokio::test(flavor = "multi_thread")]
async fn every_401_from_the_oauth_endpoints_carries_a_basic_challenge() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["challenge:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (rs_id, _) = collection_credentials(&fx.collection)?;
    let id = fx.oauth_client_id.as_str();
    let unknown = format!("gco_{}", random_base62(22));
    let forged = Signer {
        id: unknown.clone(),
        key: EncodingKey::from_secret(b"a-key-that-verifies-for-nobody-at-all-here"),
        alg: Algorithm::HS256,
    }
    .client_assertion(&token_endpoint(&app), 300, &uuid_like())?;

    let mut cases: Vec<(&str, Reply)> = vec![
        (
            "token: Basic, wrong secret",
            app.token_basic(id, "wrong-secret", &[]).await?,
        ),
        (
            "token: Basic, unknown client",
            app.token_basic(&unknown, "wrong-secret", &[]).await?,
        ),
        (
            "token: client_secret_post, wrong secret",
            app.token_post(id, "wrong-secret", &[]).await?,
        ),
        (
            "token: client_secret_post, unknown client",
            app.token_post(&unknown, "wrong-secret", &[]).await?,
        ),
        (
            "token: client assertion, unknown client",
            token_by_assertion(&app, &forged).await?,
        ),
        (
            "token: no client authentication",
            app.token_form(None, &[("grant_type", "client_credentials")], &[])
                .await?,
        ),
    ];
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let form = [("token", token.as_str())];
        for (label, auth) in [
            (
                "Basic, wrong collection secret",
                Auth::Basic(rs_id, "wrong"),
            ),
            ("post, wrong collection secret", Auth::Post(rs_id, "wrong")),
            ("Basic, wrong client secret", Auth::Basic(id, "wrong")),
            ("post, wrong client secret", Auth::Post(id, "wrong")),
            ("post, unknown client", Auth::Post(&unknown, "wrong")),
            ("no credentials", Auth::None),
        ] {
            let reply = app.oauth_form(path, auth, &form).await?;
            cases.push((label, reply));
        }
    }
    // Labels repeat per endpoint; number them so the report says which.
    let problems: Vec<String> = cases
        .iter()
        .enumerate()
        .filter(|(_, (_, reply))| {
            let www = reply.header("www-authenticate").unwrap_or_default();
            reply.status.as_u16() != 401
                || error_of(reply).as_deref() != Some("invalid_client")
                || !www.starts_with(BASIC_CHALLENGE)
        })
        .map(|(i, (label, reply))| format!("#{i} {label}: {reply:?}"))
        .collect();
    assert!(
        problems.is_empty(),
        "401 invalid_client with `WWW-Authenticate: {BASIC_CHALLENGE}…` expected \
         (#0-5 token, #6-11 introspect, #12-17 revoke):\n{}",
        problems.join("\n")
    );
    // Nothing above revoked the token.
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5 and 6. Bearer tokens that are not admin tokens
// ---------------------------------------------------------------------------------------------

/// An ordinary client's access token (or garbage) as the caller's Bearer credential at
/// introspection and revocation: RFC 6750's 401 `invalid_token` with its challenge.
#[tokio::test(flavor = "multi_thread")]
async fn a_bearer_token_that_is_not_an_admin_token_gets_invalid_token() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["bearer:read"], json!({})).await?;
    let ordinary = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let target = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    for caller in [ordinary.as_str(), "not-a-token"] {
        for path in ["/oauth/introspect", "/oauth/revoke"] {
            let reply = app
                .oauth_form(path, Auth::Bearer(caller), &[("token", &target)])
                .await?;
            assert_invalid_token(&reply);
        }
    }
    assert_active(&app.introspect_token(fx.collection_basic(), &target).await?);
    Ok(())
}

/// The admin API given a Gatehouse access token for another audience: 401 `invalid_token`
/// (the token is not an admin token at all), not 403.
#[tokio::test(flavor = "multi_thread")]
async fn the_admin_api_answers_invalid_token_to_a_token_for_another_audience() -> anyhow::Result<()>
{
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["not-admin:read"], json!({})).await?;
    let ordinary = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let read = app
        .admin_request_as(Method::GET, "/collections", Some(&ordinary), None)
        .await?;
    assert_invalid_token(&read);
    let write = app
        .admin_request_as(
            Method::POST,
            "/clients",
            Some(&ordinary),
            Some(&new_client_body()),
        )
        .await?;
    assert_invalid_token(&write);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 7. An admin token's rights are the profile's current grant
// ---------------------------------------------------------------------------------------------

/// A second admin's token with `gatehouse:admin` writes; after its profile is narrowed to
/// `gatehouse:admin:read` the same token gets 403 on a write (the admin API and revocation)
/// and still reads.
#[tokio::test(flavor = "multi_thread")]
async fn narrowing_an_admin_grant_applies_to_tokens_already_issued() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let (profile_id, id, secret) = second_admin(&app).await?;
    let admin = app
        .access_token(&id, &secret, &[("scope", "gatehouse:admin")])
        .await?;
    app.admin_request_as(
        Method::POST,
        "/clients",
        Some(&admin),
        Some(&new_client_body()),
    )
    .await?
    .expect_status(201);
    let fx = app.oauth_fixture(&["narrow:read"], json!({})).await?;
    let victim = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;

    app.admin_patch(
        &format!("/access-profiles/{profile_id}"),
        &json!({"scopes": ["gatehouse:admin:read"]}),
    )
    .await?
    .expect_status(200);

    let write = app
        .admin_request_as(
            Method::POST,
            "/clients",
            Some(&admin),
            Some(&new_client_body()),
        )
        .await?;
    write.expect_error(403, "insufficient_scope");
    app.admin_request_as(Method::GET, "/clients", Some(&admin), None)
        .await?
        .expect_status(200);
    // Introspection needs only the read right; revocation needs gatehouse:admin.
    assert_active(&app.introspect_token(Auth::Bearer(&admin), &victim).await?);
    app.revoke_token(Auth::Bearer(&admin), &victim)
        .await?
        .expect_error(400, "unauthorized_client");
    assert_active(&app.introspect_token(fx.collection_basic(), &victim).await?);
    Ok(())
}

/// When the built-in admin collection is taken off a second admin's profile, its token
/// already issued gets 401 from the admin API and is no admin token at introspection.
#[tokio::test(flavor = "multi_thread")]
async fn removing_the_admin_collection_stops_tokens_already_issued() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let (profile_id, id, secret) = second_admin(&app).await?;
    let admin = app.access_token(&id, &secret, &[]).await?;
    let fx = app.oauth_fixture(&["removed:read"], json!({})).await?;
    let victim = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    app.admin_request_as(Method::GET, "/collections", Some(&admin), None)
        .await?
        .expect_status(200);
    assert_active(&app.introspect_token(Auth::Bearer(&admin), &victim).await?);

    app.admin_patch(
        &format!("/access-profiles/{profile_id}"),
        &json!({"collections": [fx.collection_id()], "scopes": null}),
    )
    .await?
    .expect_status(200);

    let read = app
        .admin_request_as(Method::GET, "/collections", Some(&admin), None)
        .await?;
    assert_invalid_token(&read);
    assert_invalid_token(&app.introspect_token(Auth::Bearer(&admin), &victim).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 8 and 11. What a collection sees
// ---------------------------------------------------------------------------------------------

/// Two collections A and B on one profile, and a token for both.
struct TwoCollections {
    a: Value,
    b: Value,
    profile_id: String,
    token: String,
}

async fn two_collections(app: &TestApp) -> anyhow::Result<TwoCollections> {
    let a = app
        .create_collection("alpha", "https://alpha.example.com/api", &["a:read"])
        .await?;
    let b = app
        .create_collection("beta", "https://beta.example.com/api", &["b:read"])
        .await?;
    let client = app.create_client("Two APIs Inc").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({"name": "both", "auth_type": "oauth2", "collections": [a["id"], b["id"]]}),
        )
        .await?;
    let token = app
        .access_token(
            str_field(&profile, "oauth_client_id")?,
            str_field(&profile, "oauth_client_secret")?,
            &[],
        )
        .await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    anyhow::ensure!(
        claims["aud"].as_array().is_some_and(|a| a.len() == 2),
        "a token without scope names both audiences: {claims}"
    );
    Ok(TwoCollections {
        a,
        b,
        profile_id: str_field(&profile, "id")?.to_owned(),
        token,
    })
}

fn basic(collection: &Value) -> anyhow::Result<Auth<'_>> {
    let (id, secret) = collection_credentials(collection)?;
    Ok(Auth::Basic(id, secret))
}

/// Taking collection A off the profile makes the token inactive for A at once; B still sees
/// it.
#[tokio::test(flavor = "multi_thread")]
async fn a_collection_sees_a_token_only_while_the_profile_holds_it() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let t = two_collections(&app).await?;
    assert_active(&app.introspect_token(basic(&t.a)?, &t.token).await?);
    assert_active(&app.introspect_token(basic(&t.b)?, &t.token).await?);

    app.admin_patch(
        &format!("/access-profiles/{}", t.profile_id),
        &json!({"collections": [t.b["id"]]}),
    )
    .await?
    .expect_status(200);

    assert_inactive(&app.introspect_token(basic(&t.a)?, &t.token).await?);
    assert_active(&app.introspect_token(basic(&t.b)?, &t.token).await?);
    Ok(())
}

/// A collection caller's active answer shows only that collection: its audience in `aud`,
/// its scopes in `scope`, its id in `collections`.
#[tokio::test(flavor = "multi_thread")]
async fn a_collection_sees_only_its_own_audience_scope_and_collection() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let t = two_collections(&app).await?;
    for (me, scope) in [(&t.a, "a:read"), (&t.b, "b:read")] {
        let body = assert_active(&app.introspect_token(basic(me)?, &t.token).await?);
        assert_eq!(body["scope"], scope, "{body}");
        assert_eq!(body["collections"], json!([me["id"]]), "{body}");
        assert_only_audience(&body, str_field(me, "audience")?);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 9. IP rules for client callers
// ---------------------------------------------------------------------------------------------

/// A profile whose IP rules come to deny 127.0.0.1 cannot introspect or revoke its own token
/// from there (401 `invalid_client`, as at the token endpoint); the token stays active for
/// its collection.
#[tokio::test(flavor = "multi_thread")]
async fn ip_rules_apply_to_a_client_introspecting_or_revoking_its_own_tokens() -> anyhow::Result<()>
{
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["ip:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    // Control: unrestricted, the client sees its own token.
    assert_active(&app.introspect_token(fx.client_basic(), &token).await?);

    app.admin_patch(
        &format!("/access-profiles/{}", fx.profile_id()),
        &json!({"ip_rules": {"deny": ["127.0.0.1"]}}),
    )
    .await?
    .expect_status(200);

    app.introspect_token(fx.client_basic(), &token)
        .await?
        .expect_error(401, "invalid_client");
    app.revoke_token(fx.client_basic(), &token)
        .await?
        .expect_error(401, "invalid_client");
    // The consumer's own address is allowed: the token is still active for its collection.
    let reply = app
        .introspect(
            fx.collection_basic(),
            &[("token", &token), ("client_ip", "10.20.30.40")],
        )
        .await?;
    assert_active(&reply);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 10. No leeway on our own clock
// ---------------------------------------------------------------------------------------------

/// A token is active until the second before `exp` and inactive from `exp` on — also when the
/// verified-token cache already holds it. Time moves on the server's injected clock.
#[tokio::test(flavor = "multi_thread")]
async fn our_own_tokens_are_inactive_the_second_they_expire() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(&["short:read"], json!({"token_ttl_seconds": 60}))
        .await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    let exp = claims["exp"].as_i64().context("exp")?;
    assert_eq!(exp - claims["iat"].as_i64().context("iat")?, 60, "{claims}");
    let at = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).context("a representable time");
    app.clock.set(at(exp - 1)?);
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    app.clock.set(at(exp)?);
    assert_inactive(&app.introspect_token(fx.collection_basic(), &token).await?);
    // An admin token likewise stops at its `exp`, on the admin API too.
    let admin = app.admin_token().await?;
    let (_, admin_claims) = decode_jwt_unverified(&admin)?;
    let admin_exp = admin_claims["exp"].as_i64().context("exp")?;
    app.clock.set(at(admin_exp)?);
    app.admin_request_as(Method::GET, "/clients", Some(&admin), None)
        .await?
        .expect_error(401, "invalid_token");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 12. `scope` is omitted when the token has none
// ---------------------------------------------------------------------------------------------

/// A profile whose only collection defines no scopes gets tokens without scope: the token
/// response has no `scope` member.
#[tokio::test(flavor = "multi_thread")]
async fn token_responses_omit_scope_when_the_token_has_none() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&[], json!({})).await?;
    let reply = app
        .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    access_token_of(&reply);
    let body = reply.json();
    assert!(
        body.get("scope").is_none(),
        "no scope member for a token without scope: {body}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 13. jwt clients at introspection and revocation
// ---------------------------------------------------------------------------------------------

/// A `client_secret_jwt` client introspects and revokes its own token with fresh client
/// assertions (`aud` = the issuer), as it authenticates at the token endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn jwt_clients_introspect_and_revoke_with_client_assertions() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(&app, "own:read", json!({"jwt_method": "hmac"})).await?;
    let signer = Signer::hmac(&p, Algorithm::HS256)?;
    let first = signer.client_assertion(&token_endpoint(&app), 300, &uuid_like())?;
    let token = access_token_of(&token_by_assertion(&app, &first).await?);

    let assertion = signer.client_assertion(&app.issuer, 300, &uuid_like())?;
    let reply = app
        .introspect(
            Auth::None,
            &[
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &assertion),
                ("token", &token),
            ],
        )
        .await?;
    let body = assert_active(&reply);
    assert_eq!(body["client_id"], p.id.as_str(), "{body}");

    let assertion = signer.client_assertion(&app.issuer, 300, &uuid_like())?;
    app.revoke(
        Auth::None,
        &[
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("token", &token),
        ],
    )
    .await?
    .expect_status(200);
    assert_inactive(&app.introspect_token(basic(&p.collection)?, &token).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 14. HS384 / HS512 secret sizes
// ---------------------------------------------------------------------------------------------

/// An HS512 profile's generated secret has at least 64 bytes (its bytes are the HMAC key),
/// and an HS512 client assertion signed with it gets a token.
#[tokio::test(flavor = "multi_thread")]
async fn hs512_profiles_get_a_generated_secret_of_at_least_64_bytes() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let p = jwt_profile(
        &app,
        "hs512:read",
        json!({"jwt_method": "hmac", "jwt_algorithms": ["HS512"]}),
    )
    .await?;
    let secret = str_field(&p.profile, "jwt_secret")?;
    assert!(
        secret.len() >= 64,
        "an HS512 secret needs at least 64 bytes; generated {} bytes",
        secret.len()
    );
    let signer = Signer::hmac(&p, Algorithm::HS512)?;
    let assertion = signer.client_assertion(&token_endpoint(&app), 300, &uuid_like())?;
    access_token_of(&token_by_assertion(&app, &assertion).await?);
    Ok(())
}

/// An HS384 profile with a given secret of 40 bytes: 422.
#[tokio::test(flavor = "multi_thread")]
async fn an_hs384_profile_refuses_a_secret_shorter_than_48_bytes() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("hs384", "https://hs384.example.com/api", &["hs384:read"])
        .await?;
    let client = app.create_client("HS384 Inc").await?;
    let secret = random_base62(40);
    app.record_secret(&secret);
    let reply = app
        .admin_post(
            &format!("/clients/{}/access-profiles", str_field(&client, "id")?),
            &json!({
                "name": "hs384",
                "auth_type": "jwt",
                "collections": [collection["id"]],
                "allowed_audiences": ["https://hs384.example.com/api"],
                "jwt_method": "hmac",
                "jwt_algorithms": ["HS384"],
                "jwt_secret": secret,
            }),
        )
        .await?;
    reply.expect_status(422);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 15. RFC 8414 §3.1 path-inserted discovery
// ---------------------------------------------------------------------------------------------

/// With an issuer that has a path, the metadata is served at
/// `/.well-known/oauth-authorization-server/<path>` and names that issuer.
#[tokio::test(flavor = "multi_thread")]
async fn discovery_answers_at_the_rfc8414_path_inserted_url() -> anyhow::Result<()> {
    const ISSUER: &str = "http://127.0.0.1/tenants/acme";
    let app = spawn_app_with(|cfg| cfg.issuer = Some(ISSUER.to_owned())).await?;
    assert_eq!(app.issuer, ISSUER);
    let reply = app
        .get_public("/.well-known/oauth-authorization-server/tenants/acme")
        .await?
        .expect_status(200);
    assert_eq!(reply.json()["issuer"], ISSUER, "{reply:?}");
    Ok(())
}
