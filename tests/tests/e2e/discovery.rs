//! Discovery metadata (OIDC Discovery and RFC 8414), the authorization endpoint stub, JWKS.

use gatehouse_tests::{Reply, Value, spawn_app};

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn assert_max_age(reply: &Reply) {
    let cc = reply.header("cache-control").unwrap_or_default();
    assert!(
        cc.to_ascii_lowercase().contains("max-age="),
        "expected Cache-Control with max-age: {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_documents_describe_the_server() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    assert!(
        app.issuer.starts_with("http://127.0.0.1:"),
        "test issuer is derived from the public address: {}",
        app.issuer
    );
    assert_eq!(app.issuer, app.public, "issuer = public base URL in tests");

    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let reply = app.get_public(path).await?.expect_status(200);
        assert!(
            reply
                .header("content-type")
                .unwrap_or_default()
                .starts_with("application/json"),
            "{path}: {reply:?}"
        );
        assert_max_age(&reply);
        let meta = reply.json();
        // Byte for byte: no trailing slash, no normalisation.
        assert_eq!(meta["issuer"].as_str(), Some(app.issuer.as_str()), "{path}");
        assert_eq!(
            meta["token_endpoint"].as_str(),
            Some(format!("{}/oauth/token", app.issuer).as_str()),
            "{path}"
        );
        assert_eq!(
            meta["jwks_uri"].as_str(),
            Some(format!("{}/oauth/jwks", app.issuer).as_str()),
            "{path}"
        );
        assert!(
            strings(&meta["grant_types_supported"]).contains(&"client_credentials".to_owned()),
            "{path}: {meta}"
        );
        let methods = strings(&meta["token_endpoint_auth_methods_supported"]);
        for m in ["client_secret_basic", "client_secret_post"] {
            assert!(
                methods.contains(&m.to_owned()),
                "{path}: {m} missing in {meta}"
            );
        }
        // OIDC Discovery's required members, honestly filled.
        assert!(meta["authorization_endpoint"].is_string(), "{path}: {meta}");
        assert!(
            meta["response_types_supported"].is_array(),
            "{path}: {meta}"
        );
        if path.contains("openid") {
            assert!(meta["subject_types_supported"].is_array(), "{path}: {meta}");
            assert!(
                strings(&meta["id_token_signing_alg_values_supported"])
                    .contains(&"RS256".to_owned()),
                "{path}: OIDC requires RS256 in id_token_signing_alg_values_supported: {meta}"
            );
        }

        // The jwks_uri really serves the keys.
        let jwks_uri = meta["jwks_uri"].as_str().unwrap_or_default();
        let jwks = app.get_url(jwks_uri).await?.expect_status(200).json();
        assert!(
            jwks["keys"].as_array().is_some_and(|k| !k.is_empty()),
            "{jwks}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn authorization_endpoint_answers_unsupported_response_type() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let meta = app
        .get_public("/.well-known/openid-configuration")
        .await?
        .expect_status(200)
        .json();
    let authorize = meta["authorization_endpoint"]
        .as_str()
        .expect("authorization_endpoint")
        .to_owned();
    assert!(authorize.starts_with(&app.issuer), "{authorize}");

    for query in [
        "",
        "?response_type=code&client_id=gco_x&redirect_uri=https%3A%2F%2Fexample.com%2Fcb",
        "?response_type=token&client_id=gco_x",
    ] {
        let reply = app.get_url(&format!("{authorize}{query}")).await?;
        assert!(reply.status.is_client_error(), "{query}: {reply:?}");
        assert_eq!(
            reply.error_code(),
            "unsupported_response_type",
            "{query}: {reply:?}"
        );
    }
    // Every request, POST included.
    let reply = Reply::read(
        app.http
            .post(&authorize)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("response_type=code&client_id=gco_x")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(reply.error_code(), "unsupported_response_type", "{reply:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn jwks_publishes_public_signing_keys_only() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let reply = app.get_public("/oauth/jwks").await?.expect_status(200);
    assert_max_age(&reply);
    let jwks = reply.json();
    let keys = jwks["keys"].as_array().expect("keys array");
    assert!(!keys.is_empty(), "at least one signing key: {jwks}");
    let mut kids = std::collections::BTreeSet::new();
    for key in keys {
        let kid = key["kid"].as_str().expect("kid");
        assert!(!kid.is_empty());
        assert!(kids.insert(kid.to_owned()), "duplicate kid {kid}: {jwks}");
        assert_eq!(key["use"], "sig", "{key}");
        assert!(key["alg"].is_string(), "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            assert!(
                key.get(private).is_none(),
                "private member {private} published: {key}"
            );
        }
    }
    // The default algorithm is ES256 (P-256), and at least one key is usable for it.
    let es = keys
        .iter()
        .find(|k| k["alg"] == "ES256")
        .unwrap_or_else(|| panic!("no ES256 key by default: {jwks}"));
    assert_eq!(es["kty"], "EC", "{es}");
    assert_eq!(es["crv"], "P-256", "{es}");
    assert!(es["x"].is_string() && es["y"].is_string(), "{es}");
    Ok(())
}

/// A third-party OIDC library (openidconnect's `CoreProviderMetadata`, the type relying
/// parties deserialize discovery into) accepts our document and finds the same endpoints.
#[tokio::test(flavor = "multi_thread")]
async fn a_third_party_oidc_library_parses_the_discovery_document() -> anyhow::Result<()> {
    use openidconnect::core::{CoreGrantType, CoreProviderMetadata};
    let app = spawn_app().await?;
    let reply = app
        .get_public("/.well-known/openid-configuration")
        .await?
        .expect_status(200);
    let meta: CoreProviderMetadata = serde_json::from_slice(&reply.bytes)?;
    assert_eq!(meta.issuer().as_str(), app.issuer);
    assert_eq!(
        meta.token_endpoint().map(|u| u.as_str().to_owned()),
        Some(format!("{}/oauth/token", app.issuer))
    );
    assert_eq!(
        meta.jwks_uri().as_str(),
        format!("{}/oauth/jwks", app.issuer)
    );
    assert!(
        meta.grant_types_supported()
            .is_some_and(|g| g.contains(&CoreGrantType::ClientCredentials))
    );
    // Its JWKS type parses our keys too.
    let jwks = app.get_public("/oauth/jwks").await?.expect_status(200);
    let set: openidconnect::core::CoreJsonWebKeySet = serde_json::from_slice(&jwks.bytes)?;
    // The active key and the next one (published ahead of its first signature).
    assert_eq!(set.keys().len(), 2);
    Ok(())
}
