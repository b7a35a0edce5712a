//! `jwt` profiles: consumers sign their own JWTs (HMAC or RSA) and resource servers
//! introspect them. Includes the RFC 8725 attacks the contract names.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{
    Auth, TestApp, Value, assert_active, assert_inactive, collection_credentials, json, spawn_app,
    str_field,
};
use josekit::jwk::KeyPair;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};

const AUD: &str = "https://consumer-api.example.com";
const ISS: &str = "https://idp.consumer.example";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

struct Setup {
    app: TestApp,
    collection: Value,
    profile: Value,
}

async fn setup(profile_extra: Value) -> anyhow::Result<Setup> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection(
            "Consumer API",
            "https://api.example.com/consumer",
            &["consumer:read"],
        )
        .await?;
    let client = app.create_client("Consumer Inc").await?;
    let mut body = json!({"name": "signed", "auth_type": "jwt", "collections": [collection["id"]],
        "allowed_audiences": [AUD]});
    if let (Some(obj), Value::Object(extra)) = (body.as_object_mut(), profile_extra) {
        obj.extend(extra);
    }
    let reply = app
        .admin_post(
            &format!("/clients/{}/access-profiles", str_field(&client, "id")?),
            &body,
        )
        .await?;
    anyhow::ensure!(reply.status.is_success(), "create jwt profile: {reply:?}");
    let profile = reply.json();
    if let Some(s) = profile["jwt_secret"].as_str() {
        app.record_secret(s);
    }
    Ok(Setup {
        app,
        collection,
        profile,
    })
}

fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "iss": ISS, "aud": AUD, "iat": now(), "exp": now() + 300, "jti": gatehouse_tests::random_base62(12)});
    if let (Some(obj), Value::Object(extra)) = (c.as_object_mut(), extra) {
        obj.extend(extra);
    }
    c
}

async fn introspect(s: &Setup, token: &str) -> anyhow::Result<gatehouse_tests::Reply> {
    let (id, secret) = collection_credentials(&s.collection)?;
    s.app.introspect_token(Auth::Basic(id, secret), token).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hmac_profile_tokens_introspect_and_attacks_fail() -> anyhow::Result<()> {
    let s = setup(json!({"jwt_method": "hmac", "allowed_issuers": [ISS],
        "required_claims": [{"name": "tenant", "value": "acme"}, {"name": "jti"}]}))
    .await?;
    let secret = str_field(&s.profile, "jwt_secret")?.to_owned();
    assert!(
        secret.len() >= 32,
        "server-generated secret of at least 256 bits"
    );
    let sub = str_field(&s.profile, "oauth_client_id")?.to_owned();
    assert_eq!(s.profile["jwt_claim"], "sub");
    assert_eq!(s.profile["jwt_claim_value"], sub.as_str());
    let key = EncodingKey::from_secret(secret.as_bytes());
    let sign = |c: &Value| encode(&Header::new(Algorithm::HS256), c, &key);

    let good = sign(&claims(&sub, json!({"tenant": "acme"})))?;
    let reply = introspect(&s, &good).await?;
    let body = assert_active(&reply);
    assert_eq!(body["auth_type"], "jwt");
    assert_eq!(body["client_id"], sub.as_str());
    assert_eq!(body["profile_id"], s.profile["id"]);
    assert_eq!(body["scope"], "consumer:read");

    // Missing required claim, wrong value, wrong issuer, wrong audience, expired, not yet valid.
    for bad in [
        claims(&sub, json!({})),
        claims(&sub, json!({"tenant": "evil"})),
        claims(
            &sub,
            json!({"tenant": "acme", "iss": "https://evil.example"}),
        ),
        claims(
            &sub,
            json!({"tenant": "acme", "aud": "https://other-app.example"}),
        ),
        claims(&sub, json!({"tenant": "acme", "exp": now() - 120})),
        claims(&sub, json!({"tenant": "acme", "nbf": now() + 600})),
        claims("someone-else", json!({"tenant": "acme"})),
    ] {
        let token = sign(&bad)?;
        assert_inactive(&introspect(&s, &token).await?);
    }
    // No exp at all.
    let mut no_exp = claims(&sub, json!({"tenant": "acme"}));
    no_exp.as_object_mut().map(|m| m.remove("exp"));
    assert_inactive(&introspect(&s, &sign(&no_exp)?).await?);
    // Signed with another secret.
    let other = encode(
        &Header::new(Algorithm::HS256),
        &claims(&sub, json!({"tenant": "acme"})),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
    )?;
    assert_inactive(&introspect(&s, &other).await?);
    // HS512 is not pinned (only HS256).
    let hs512 = encode(
        &Header::new(Algorithm::HS512),
        &claims(&sub, json!({"tenant": "acme"})),
        &key,
    )?;
    assert_inactive(&introspect(&s, &hs512).await?);
    // alg: none.
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims(&sub, json!({"tenant": "acme"})).to_string());
    assert_inactive(&introspect(&s, &format!("{header}.{payload}.")).await?);
    // A collection the profile does not grant sees nothing.
    let stranger = s
        .app
        .create_collection("Stranger", "https://stranger.example.com/api", &["x:y"])
        .await?;
    let (sid, ssecret) = collection_credentials(&stranger)?;
    assert_inactive(
        &s.app
            .introspect_token(Auth::Basic(sid, ssecret), &good)
            .await?,
    );

    // Reads never show the secret.
    let read = s
        .app
        .admin_get(&format!(
            "/access-profiles/{}",
            str_field(&s.profile, "id")?
        ))
        .await?;
    assert!(!read.text().contains(&secret));
    assert!(read.json().get("jwt_secret").is_none());

    // Rotation without grace: the old secret stops, the new one works.
    let rotated = s
        .app
        .admin_post(
            &format!("/access-profiles/{}/secret", str_field(&s.profile, "id")?),
            &json!({}),
        )
        .await?;
    assert!(rotated.status.is_success(), "{rotated:?}");
    let new_secret = str_field(&rotated.json(), "jwt_secret")?.to_owned();
    s.app.record_secret(&new_secret);
    assert_inactive(&introspect(&s, &sign(&claims(&sub, json!({"tenant": "acme"})))?).await?);
    let new_key = EncodingKey::from_secret(new_secret.as_bytes());
    let fresh = encode(
        &Header::new(Algorithm::HS256),
        &claims(&sub, json!({"tenant": "acme"})),
        &new_key,
    )?;
    assert_active(&introspect(&s, &fresh).await?);
    // No secret in the database in clear.
    let dump = s.app.db_dump().await?;
    assert!(!dump.contains(&new_secret) && !dump.contains(&secret));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_profile_tokens_introspect_and_algorithm_confusion_fails() -> anyhow::Result<()> {
    let pair = josekit::jws::RS256.generate_key_pair(2048)?;
    let private_pem = pair.to_pem_private_key();
    let public_pem = String::from_utf8(pair.to_pem_public_key())?;
    // RFC 8725 §3.1: a PEM key verifies with exactly one algorithm.
    let two = setup(json!({"jwt_method": "rsa", "jwt_public_key": public_pem,
        "jwt_algorithms": ["RS256", "PS256"], "jwt_claim": "client", "jwt_claim_value": "c-2"}))
    .await;
    let Err(refused) = two else {
        anyhow::bail!("a PEM key pinned to two algorithms was accepted");
    };
    assert!(refused.to_string().contains("422"), "{refused}");
    let s = setup(
        json!({"jwt_method": "rsa", "jwt_public_key": public_pem, "jwt_algorithms": ["PS256"],
        "jwt_claim": "client", "jwt_claim_value": "consumer-42"}),
    )
    .await?;
    assert!(s.profile.get("jwt_secret").is_none());
    let key = EncodingKey::from_rsa_pem(&private_pem)?;
    let c = claims("whoever", json!({"client": "consumer-42"}));
    assert_active(&introspect(&s, &encode(&Header::new(Algorithm::PS256), &c, &key)?).await?);
    // RS256 and RS512, with the same key, are not its algorithm.
    assert_inactive(&introspect(&s, &encode(&Header::new(Algorithm::RS256), &c, &key)?).await?);
    assert_inactive(&introspect(&s, &encode(&Header::new(Algorithm::RS512), &c, &key)?).await?);
    // HS256 "signed" with the public key as the HMAC secret: the classic confusion.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )?;
    assert_inactive(&introspect(&s, &confused).await?);
    // Another RSA key.
    let other = josekit::jws::RS256.generate_key_pair(2048)?;
    let forged = encode(
        &Header::new(Algorithm::PS256),
        &c,
        &EncodingKey::from_rsa_pem(&other.to_pem_private_key())?,
    )?;
    assert_inactive(&introspect(&s, &forged).await?);
    // jku/x5u headers are ignored: the key comes only from the profile.
    let mut h = Header::new(Algorithm::PS256);
    h.jku = Some("https://evil.example/jwks".into());
    h.x5u = Some("https://evil.example/cert".into());
    assert_active(&introspect(&s, &encode(&h, &c, &key)?).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_profile_validation() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("V", "https://v.example.com/api", &["v:r"])
        .await?;
    let client = app.create_client("V Inc").await?;
    let path = format!("/clients/{}/access-profiles", str_field(&client, "id")?);
    // A 1024-bit RSA public key: too weak.
    let weak_pem = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCUSzEbwA3ZVqnZJUX6WmuiRfzC\n2iPKOQ7lmrrlbpKVylA3shUPfK0sY63CHJ2EJBJSGA6IHa1dW/Hvood1PaJmrNAD\n89nWaVXrt1A1Y6hvQNp4bSEY5A9BxUuJ5xURjk/vybxwE2z07N0DLEUi1o6z0Q5u\nSd6/eUmo2kjtuUJgywIDAQAB\n-----END PUBLIC KEY-----\n";
    for (body, field) in [
        (json!({"jwt_method": "hmac"}), "allowed_audiences"),
        (json!({"allowed_audiences": [AUD]}), "jwt_method"),
        (
            json!({"jwt_method": "hmac", "allowed_audiences": [AUD], "jwt_secret": "short"}),
            "jwt_secret",
        ),
        (
            json!({"jwt_method": "hmac", "allowed_audiences": [AUD], "jwt_algorithms": ["RS256"]}),
            "jwt_algorithms[0]",
        ),
        (
            json!({"jwt_method": "rsa", "allowed_audiences": [AUD]}),
            "jwt_public_key",
        ),
        (
            json!({"jwt_method": "rsa", "allowed_audiences": [AUD], "jwt_public_key": weak_pem}),
            "jwt_public_key",
        ),
        (
            json!({"jwt_method": "rsa", "allowed_audiences": [AUD], "jwt_public_key": "not a key"}),
            "jwt_public_key",
        ),
        (
            json!({"jwt_method": "rsa", "allowed_audiences": [AUD], "jwt_algorithms": ["HS256"], "jwt_public_key": "x"}),
            "jwt_algorithms[0]",
        ),
    ] {
        let mut b = json!({"name": gatehouse_tests::unique("p"), "auth_type": "jwt", "collections": [collection["id"]]});
        if let (Some(o), Value::Object(extra)) = (b.as_object_mut(), body) {
            o.extend(extra);
        }
        let reply = app.admin_post(&path, &b).await?;
        assert_eq!(reply.status, 422, "{reply:?}");
        let fields: Vec<String> = reply.json()["fields"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            fields.iter().any(|f| f == field),
            "expected a complaint about {field}: {fields:?}"
        );
    }
    // jwt fields on an oauth2 profile are refused.
    let reply = app
        .admin_post(&path, &json!({"name": "o", "auth_type": "oauth2", "collections": [collection["id"]], "allowed_audiences": [AUD]}))
        .await?;
    assert_eq!(reply.status, 422, "{reply:?}");
    // A user-supplied secret is accepted and never echoed; jwt_method cannot change; the
    // secret cannot be PATCHed.
    let secret = "a-user-supplied-secret-of-at-least-32-bytes";
    app.record_secret(secret);
    let created = app
        .admin_post(
            &path,
            &json!({"name": "u", "auth_type": "jwt", "collections": [collection["id"]],
            "jwt_method": "hmac", "jwt_secret": secret, "allowed_audiences": [AUD]}),
        )
        .await?;
    assert!(created.status.is_success(), "{created:?}");
    assert!(!created.text().contains(secret));
    let id = str_field(&created.json(), "id")?.to_owned();
    let patched = app
        .admin_patch(
            &format!("/access-profiles/{id}"),
            &json!({"jwt_method": "rsa"}),
        )
        .await?;
    assert_eq!(patched.status, 422, "{patched:?}");
    let patched = app
        .admin_patch(
            &format!("/access-profiles/{id}"),
            &json!({"jwt_secret": "x".repeat(40)}),
        )
        .await?;
    assert_eq!(patched.status, 422, "{patched:?}");
    let patched = app
        .admin_patch(
            &format!("/access-profiles/{id}"),
            &json!({"allowed_audiences": [AUD, "https://second.example"]}),
        )
        .await?;
    assert!(patched.status.is_success(), "{patched:?}");
    assert_eq!(
        patched.json()["allowed_audiences"],
        json!([AUD, "https://second.example"])
    );
    Ok(())
}

/// RFC 7523 §2.2 client authentication: client_secret_jwt (hmac) and private_key_jwt (rsa).
#[tokio::test(flavor = "multi_thread")]
async fn client_assertions_authenticate_jwt_profiles() -> anyhow::Result<()> {
    let s = setup(json!({"jwt_method": "hmac"})).await?;
    let secret = str_field(&s.profile, "jwt_secret")?.to_owned();
    let id = str_field(&s.profile, "oauth_client_id")?.to_owned();
    let key = EncodingKey::from_secret(secret.as_bytes());
    let token_endpoint = s.app.public_url("/oauth/token");
    let assertion = |extra: Value| {
        let mut c = json!({"iss": id, "sub": id, "aud": token_endpoint, "exp": now() + 120, "iat": now(),
            "jti": gatehouse_tests::random_base62(16)});
        if let (Some(o), Value::Object(e)) = (c.as_object_mut(), extra) {
            o.extend(e);
        }
        encode(&Header::new(Algorithm::HS256), &c, &key)
    };
    let ask = |a: String| {
        let app = &s.app;
        async move {
            app.token_form(
                None,
                &[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &a),
                ],
                &[],
            )
            .await
        }
    };
    let good = assertion(json!({}))?;
    let reply = ask(good.clone()).await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let access = str_field(&reply.json(), "access_token")?.to_owned();
    let verified = s
        .app
        .verify_token(&access, Some("https://api.example.com/consumer"))
        .await?;
    assert_eq!(verified["client_id"], id.as_str());
    // Replay of the same assertion (same jti).
    let replay = ask(good).await?;
    replay.expect_error(401, "invalid_client");
    // The issuer itself is also an accepted audience.
    let issuer_aud = assertion(json!({"aud": s.app.issuer}))?;
    assert_eq!(ask(issuer_aud).await?.status, 200);
    for bad in [
        json!({"aud": [token_endpoint.clone()]}),
        json!({"aud": "https://elsewhere.example/token"}),
        // At most an hour ahead, plus the 60 s leeway (authlib signs `iat + 3600`).
        json!({"exp": now() + 3600 + 120}),
        json!({"exp": now() - 120}),
        json!({"sub": "gco_someone_else"}),
        json!({"jti": ""}),
    ] {
        let reply = ask(assertion(bad.clone())?).await?;
        reply.expect_error(401, "invalid_client");
    }
    // Missing exp, wrong key, alg none.
    let mut c = json!({"iss": id, "sub": id, "aud": token_endpoint, "jti": "x1"});
    reply_is_invalid(&ask(encode(&Header::new(Algorithm::HS256), &c, &key)?).await?);
    c["exp"] = json!(now() + 60);
    let wrong = encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-not!!"),
    )?;
    reply_is_invalid(&ask(wrong).await?);
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
        URL_SAFE_NO_PAD.encode(c.to_string())
    );
    reply_is_invalid(&ask(none).await?);
    // An oauth2 profile cannot use assertions, and the answer does not tell that the id
    // exists: the same `invalid_client` as an unknown client.
    let fx = s.app.oauth_fixture(&["o:r"], json!({})).await?;
    let oauth_assertion = encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": fx.oauth_client_id, "sub": fx.oauth_client_id, "aud": token_endpoint, "exp": now() + 60, "jti": "j"}),
        &EncodingKey::from_secret(fx.oauth_client_secret.as_bytes()),
    )?;
    ask(oauth_assertion)
        .await?
        .expect_error(401, "invalid_client");
    // Discovery advertises the methods.
    let meta = s
        .app
        .get_public("/.well-known/openid-configuration")
        .await?
        .json();
    let methods = meta["token_endpoint_auth_methods_supported"].to_string();
    assert!(
        methods.contains("private_key_jwt") && methods.contains("client_secret_jwt"),
        "{methods}"
    );
    Ok(())
}

fn reply_is_invalid(reply: &gatehouse_tests::Reply) {
    reply.expect_error(401, "invalid_client");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_key_jwt_authenticates_an_rsa_profile() -> anyhow::Result<()> {
    let pair = josekit::jws::RS256.generate_key_pair(2048)?;
    let public_pem = String::from_utf8(pair.to_pem_public_key())?;
    let s = setup(json!({"jwt_method": "rsa", "jwt_public_key": public_pem})).await?;
    let id = str_field(&s.profile, "oauth_client_id")?.to_owned();
    let key = EncodingKey::from_rsa_pem(&pair.to_pem_private_key())?;
    let c = json!({"iss": id, "sub": id, "aud": s.app.public_url("/oauth/token"), "exp": now() + 60, "jti": "rsa-1"});
    let a = encode(&Header::new(Algorithm::RS256), &c, &key)?;
    let reply = s
        .app
        .token_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &a),
            ],
            &[],
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    // HS256 with the public key as secret: refused.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({"iss": id, "sub": id, "aud": s.app.public_url("/oauth/token"), "exp": now() + 60, "jti": "rsa-2"}),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )?;
    let reply = s
        .app
        .token_form(
            None,
            &[
                ("grant_type", "client_credentials"),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", &confused),
            ],
            &[],
        )
        .await?;
    reply.expect_error(401, "invalid_client");
    Ok(())
}

/// RFC 7523 §2.1: a consumer's JWT traded for a Gatehouse access token.
#[tokio::test(flavor = "multi_thread")]
async fn the_jwt_bearer_grant_trades_a_consumer_jwt() -> anyhow::Result<()> {
    let s = setup(json!({"jwt_method": "hmac", "allowed_issuers": [ISS]})).await?;
    let secret = str_field(&s.profile, "jwt_secret")?.to_owned();
    let sub = str_field(&s.profile, "oauth_client_id")?.to_owned();
    let key = EncodingKey::from_secret(secret.as_bytes());
    let grant = |assertion: &str, basic: Option<(&str, &str)>| {
        jwt_bearer(
            &s.app,
            assertion.to_owned(),
            basic.map(|(a, b)| (a.to_owned(), b.to_owned())),
        )
    };
    // RFC 7523 §3: the assertion is addressed to Gatehouse (the issuer or the token
    // endpoint), never to a resource server.
    let to_us = json!({"aud": s.app.issuer});
    let jwt = encode(
        &Header::new(Algorithm::HS256),
        &claims(&sub, to_us.clone()),
        &key,
    )?;
    let reply = grant(&jwt, None).await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    let access = str_field(&reply.json(), "access_token")?.to_owned();
    let verified = s
        .app
        .verify_token(&access, Some("https://api.example.com/consumer"))
        .await?;
    assert_eq!(verified["client_id"], sub.as_str());
    assert_eq!(verified["scope"], "consumer:read");
    // The same JWT (same jti) cannot be traded twice.
    grant(&jwt, None).await?.expect_error(400, "invalid_grant");
    // A JWT the consumer sent to its API (aud = the resource server) cannot be forwarded
    // here; nor can an expired one, one from another issuer, or one for someone else.
    for bad in [
        claims(&sub, json!({})),
        claims(&sub, json!({"aud": s.app.issuer, "exp": now() - 120})),
        claims(
            &sub,
            json!({"aud": s.app.issuer, "iss": "https://evil.example"}),
        ),
        claims(&sub, json!({"aud": "https://someone-else.example"})),
    ] {
        let token = encode(&Header::new(Algorithm::HS256), &bad, &key)?;
        grant(&token, None)
            .await?
            .expect_error(400, "invalid_grant");
    }
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &claims(&sub, to_us.clone()),
        &EncodingKey::from_secret(b"wrong-secret-wrong-secret-wrong-secret"),
    )?;
    grant(&forged, None)
        .await?
        .expect_error(400, "invalid_grant");
    // Client authentication is optional; a failed one is `invalid_client`.
    let fresh = encode(&Header::new(Algorithm::HS256), &claims(&sub, to_us), &key)?;
    grant(&fresh, Some(("gco_x", "y")))
        .await?
        .expect_error(401, "invalid_client");
    s.app
        .token_form(
            None,
            &[("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")],
            &[],
        )
        .await?
        .expect_error(400, "invalid_request");
    Ok(())
}

async fn jwt_bearer(
    app: &TestApp,
    assertion: String,
    basic: Option<(String, String)>,
) -> anyhow::Result<gatehouse_tests::Reply> {
    app.token_form(
        basic.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ],
        &[],
    )
    .await
}

/// One `jwt`/`oidc` profile per (`jwt_claim`, `jwt_claim_value`), also under concurrent
/// creates (on PostgreSQL the admin API's check-then-insert alone let several through; the
/// unique index holds): eight simultaneous creates with one pair give one 201 and seven 409s.
/// The same value under another claim name is another identity.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_cannot_share_a_claim_value() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("Race API", "https://race.example.com/api", &["race:read"])
        .await?;
    let client = app.create_client("Racer").await?;
    let path = format!("/clients/{}/access-profiles", str_field(&client, "id")?);
    let body = |name: String, claim: &str| {
        json!({"name": name, "auth_type": "jwt", "jwt_method": "hmac",
            "collections": [collection["id"]], "allowed_audiences": [AUD],
            "jwt_claim": claim, "jwt_claim_value": "shared-consumer"})
    };
    let attempts = (0..8).map(|i| {
        let (app, path, body) = (&app, path.clone(), body(format!("racer-{i}"), "sub"));
        async move { app.admin_post(&path, &body).await }
    });
    let replies = futures_util::future::join_all(attempts).await;
    let mut statuses: Vec<u16> = Vec::new();
    for reply in replies {
        let reply = reply?;
        if let Some(s) = reply.json()["jwt_secret"].as_str() {
            app.record_secret(s);
        }
        if reply.status.as_u16() == 409 {
            reply.expect_error(409, "conflict");
            assert!(reply.text().contains("jwt_claim_value"), "{reply:?}");
        }
        statuses.push(reply.status.as_u16());
    }
    statuses.sort_unstable();
    assert_eq!(statuses, vec![201, 409, 409, 409, 409, 409, 409, 409]);
    // The same value under another claim is a different identity.
    let other = app
        .admin_post(&path, &body("by-tenant".to_owned(), "tenant"))
        .await?
        .expect_status(201);
    if let Some(s) = other.json()["jwt_secret"].as_str() {
        app.record_secret(s);
    }
    Ok(())
}
