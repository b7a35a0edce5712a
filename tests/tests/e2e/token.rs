//! Client-credentials tokens: both auth methods, the response, RFC 9068 claims, verification
//! with a JOSE library other than the server's, scopes and resource indicators.

use std::collections::BTreeSet;

use gatehouse_tests::{
    Reply, decode_jwt_unverified, json, scope_set, spawn_app, str_field, verify_with_jwks,
};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[track_caller]
fn assert_token_response(reply: &Reply, ttl: i64) -> String {
    assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
    let cc = reply.header("cache-control").unwrap_or_default();
    assert!(
        cc.to_ascii_lowercase().contains("no-store"),
        "Cache-Control: {reply:?}"
    );
    assert_eq!(
        reply
            .header("pragma")
            .map(|p| p.to_ascii_lowercase())
            .as_deref(),
        Some("no-cache"),
        "{reply:?}"
    );
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{reply:?}"
    );
    let body = reply.json();
    assert!(
        body["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{body}"
    );
    let expires_in = body["expires_in"].as_i64().expect("expires_in integer");
    assert!(
        (expires_in - ttl).abs() <= 2,
        "expires_in {expires_in} vs ttl {ttl}"
    );
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh token for client credentials"
    );
    body["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn token_via_basic_and_post_carries_rfc9068_claims() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read", "orders:write"],
            json!({"token_ttl_seconds": 600, "custom_claims": {"tenant": "acme", "tier": 3}}),
        )
        .await?;

    let basic = app
        .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let post = app
        .token_post(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let jwks = app.jwks().await?;
    let mut jtis = BTreeSet::new();
    for reply in [basic, post] {
        let token = assert_token_response(&reply, 600);
        app.record_secret(&gatehouse_tests::jwt_signature(&token));
        let body = reply.json();
        assert_eq!(
            body["scope"].as_str().map(scope_set),
            Some(set(&["orders:read", "orders:write"])),
            "{body}"
        );

        let (header, claims) = decode_jwt_unverified(&token)?;
        assert_eq!(
            header["typ"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("at+jwt"),
            "{header}"
        );
        assert_eq!(header["alg"], "ES256", "{header}");
        let kid = header["kid"].as_str().expect("kid");
        assert!(
            jwks["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .any(|k| k["kid"] == kid),
            "kid {kid} is published"
        );

        assert_eq!(
            claims["iss"].as_str(),
            Some(app.issuer.as_str()),
            "{claims}"
        );
        assert_eq!(
            claims["sub"].as_str(),
            Some(fx.oauth_client_id.as_str()),
            "{claims}"
        );
        assert_eq!(
            claims["client_id"].as_str(),
            Some(fx.oauth_client_id.as_str()),
            "{claims}"
        );
        assert_eq!(
            claims["aud"].as_str(),
            Some(fx.audience.as_str()),
            "one audience is a string: {claims}"
        );
        assert_eq!(
            claims["scope"].as_str().map(scope_set),
            Some(set(&["orders:read", "orders:write"])),
            "{claims}"
        );
        assert_eq!(
            claims["profile_id"].as_str(),
            Some(fx.profile_id()),
            "{claims}"
        );
        assert_eq!(claims["tenant"], "acme", "{claims}");
        assert_eq!(claims["tier"], 3, "{claims}");
        let iat = claims["iat"]
            .as_u64()
            .expect("iat is an integer (not a float)");
        let exp = claims["exp"]
            .as_u64()
            .expect("exp is an integer (not a float)");
        assert!(
            exp > iat && (exp - iat).abs_diff(600) <= 2,
            "exp - iat = ttl: {claims}"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        assert!(iat.abs_diff(now) <= 60, "iat is now: {claims}");
        let jti = claims["jti"].as_str().expect("jti");
        assert!(jti.len() >= 16, "jti is random: {claims}");
        assert!(jtis.insert(jti.to_owned()), "jti unique per token");

        // Verified by jsonwebtoken against the published JWKS, with aud and iss.
        let verified = verify_with_jwks(&jwks, &token, Some(&fx.audience), Some(&app.issuer))?;
        assert_eq!(verified, claims);
        // ... and a wrong audience fails verification (the check has teeth).
        assert!(verify_with_jwks(&jwks, &token, Some("https://other.example.com/"), None).is_err());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_token_does_not_verify() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    app.verify_token(&token, Some(&fx.audience)).await?;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let parts: Vec<&str> = token.split('.').collect();
    let (_, mut claims) = decode_jwt_unverified(&token)?;
    claims["scope"] = json!("orders:read orders:admin");
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?),
        parts[2]
    );
    assert!(app.verify_token(&forged, Some(&fx.audience)).await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn default_ttl_is_an_hour() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    assert_eq!(fx.profile["token_ttl_seconds"], 3600, "{}", fx.profile);
    let reply = app
        .token_basic(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    assert_token_response(&reply, 3600);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn scopes_and_resource_indicators() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(&["orders:read", "orders:write"], json!({}))
        .await?;
    let (id, secret) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());

    // A subset.
    let r = app
        .token_basic(id, secret, &[("scope", "orders:read")])
        .await?
        .expect_status(200);
    let token = r.json()["access_token"].as_str().expect("token").to_owned();
    let (_, claims) = decode_jwt_unverified(&token)?;
    assert_eq!(claims["scope"], "orders:read", "{claims}");
    assert_eq!(
        r.json()["scope"].as_str().map(scope_set),
        Some(set(&["orders:read"]))
    );

    // Outside the profile.
    app.token_basic(id, secret, &[("scope", "billing:read")])
        .await?
        .expect_error(400, "invalid_scope");
    app.token_basic(id, secret, &[("scope", "orders:read billing:read")])
        .await?
        .expect_error(400, "invalid_scope");
    // The reserved admin scopes are never implied.
    app.token_basic(id, secret, &[("scope", "gatehouse:admin")])
        .await?
        .expect_error(400, "invalid_scope");

    // RFC 8707 resource.
    let r = app
        .token_basic(id, secret, &[("resource", &fx.audience)])
        .await?
        .expect_status(200);
    let (_, claims) = decode_jwt_unverified(r.json()["access_token"].as_str().expect("token"))?;
    assert_eq!(
        claims["aud"].as_str(),
        Some(fx.audience.as_str()),
        "{claims}"
    );
    app.token_basic(id, secret, &[("resource", "https://unknown.example.com/")])
        .await?
        .expect_error(400, "invalid_target");
    // An existing collection that this profile was not granted is no better.
    let other = app
        .create_collection("billing", "https://billing.example.com/", &["billing:read"])
        .await?;
    app.token_basic(id, secret, &[("resource", str_field(&other, "audience")?)])
        .await?
        .expect_error(400, "invalid_target");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_profile_restricted_to_some_scopes_gets_only_those() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read", "orders:write"],
            json!({"scopes": ["orders:read"]}),
        )
        .await?;
    let (id, secret) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    let r = app.token_basic(id, secret, &[]).await?.expect_status(200);
    let (_, claims) = decode_jwt_unverified(r.json()["access_token"].as_str().expect("token"))?;
    assert_eq!(
        claims["scope"], "orders:read",
        "default = the profile's subset: {claims}"
    );
    app.token_basic(id, secret, &[("scope", "orders:write")])
        .await?
        .expect_error(400, "invalid_scope");
    app.token_basic(id, secret, &[("scope", "orders:read orders:write")])
        .await?
        .expect_error(400, "invalid_scope");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audiences_follow_the_granted_scopes() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let orders = app
        .create_collection("orders", "https://orders.example.com/", &["orders:read"])
        .await?;
    let billing = app
        .create_collection("billing", "https://billing.example.com/", &["billing:read"])
        .await?;
    let client = app.create_client("Acme").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({
                "name": "both",
                "auth_type": "oauth2",
                "collections": [orders["id"], billing["id"]],
            }),
        )
        .await?;
    let id = str_field(&profile, "oauth_client_id")?;
    let secret = str_field(&profile, "oauth_client_secret")?;

    // Both collections: aud is an array of both audiences.
    let token = app.access_token(id, secret, &[]).await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    let auds: BTreeSet<String> = claims["aud"]
        .as_array()
        .unwrap_or_else(|| panic!("two audiences are an array: {claims}"))
        .iter()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        auds,
        set(&[
            "https://orders.example.com/",
            "https://billing.example.com/"
        ])
    );
    assert_eq!(
        claims["scope"].as_str().map(scope_set),
        Some(set(&["orders:read", "billing:read"]))
    );
    let jwks = app.jwks().await?;
    verify_with_jwks(
        &jwks,
        &token,
        Some("https://billing.example.com/"),
        Some(&app.issuer),
    )?;

    // One scope: only the audience of the collection that owns it.
    let token = app
        .access_token(id, secret, &[("scope", "billing:read")])
        .await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    assert_eq!(claims["aud"], "https://billing.example.com/", "{claims}");

    // A resource picks one audience.
    let token = app
        .access_token(id, secret, &[("resource", "https://orders.example.com/")])
        .await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    assert_eq!(claims["aud"], "https://orders.example.com/", "{claims}");

    // all_collections covers user collections, never the built-in admin one.
    let all = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({"name": "all", "auth_type": "oauth2", "all_collections": true}),
        )
        .await?;
    let all_id = str_field(&all, "oauth_client_id")?;
    let all_secret = str_field(&all, "oauth_client_secret")?;
    let token = app.access_token(all_id, all_secret, &[]).await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    let scopes = claims["scope"].as_str().map(scope_set).unwrap_or_default();
    assert!(
        scopes.contains("orders:read") && scopes.contains("billing:read"),
        "{claims}"
    );
    assert!(
        !scopes.iter().any(|s| s.starts_with("gatehouse:")),
        "all_collections must not include admin scopes: {claims}"
    );
    app.token_basic(all_id, all_secret, &[("scope", "gatehouse:admin:read")])
        .await?
        .expect_error(400, "invalid_scope");
    Ok(())
}
