//! RFC 7009 revocation: the owning client, a collection of the token's audience and a
//! `gatehouse:admin` admin may revoke; unknown tokens get 200; anyone else is refused with
//! `unauthorized_client` and the token stays active; revocations survive a restart.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{
    Auth, Fixture, Reply, TestApp, assert_active, assert_inactive, assert_no_store,
    collection_credentials, decode_jwt_unverified, json, random_base62, spawn_app, spawn_app_with,
    str_field,
};

/// Asserts a successful revocation (RFC 7009 §2.2: 200; the body is not specified).
#[track_caller]
fn assert_revoked_ok(reply: &Reply) {
    assert_eq!(reply.status.as_u16(), 200, "revocation accepted: {reply:?}");
}

/// Asserts the token is inactive for the collection, an admin and the owner.
async fn assert_inactive_everywhere(
    app: &TestApp,
    fx: &Fixture,
    token: &str,
) -> anyhow::Result<()> {
    let admin = app.admin_token().await?;
    for auth in [
        fx.collection_basic(),
        Auth::Bearer(&admin),
        fx.client_basic(),
    ] {
        assert_inactive(&app.introspect_token(auth, token).await?);
    }
    Ok(())
}

async fn token_of(app: &TestApp, fx: &Fixture) -> anyhow::Result<String> {
    app.access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn the_owning_client_revokes_its_own_tokens() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let keep = token_of(&app, &fx).await?;
    for (auth, hint) in [
        (fx.client_basic(), None),
        (fx.client_post(), None),
        (fx.client_basic(), Some("access_token")),
        (fx.client_post(), Some("refresh_token")),
    ] {
        let token = token_of(&app, &fx).await?;
        assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
        let mut form = vec![("token", token.as_str())];
        if let Some(hint) = hint {
            form.push(("token_type_hint", hint));
        }
        let reply = app.revoke(auth, &form).await?;
        assert_revoked_ok(&reply);
        assert_no_store(&reply);
        assert_inactive_everywhere(&app, &fx, &token).await?;
        // Revoking it again is still fine.
        assert_revoked_ok(&app.revoke(auth, &form).await?);
    }
    // Only the revoked tokens: another token of the same profile is untouched.
    assert_active(&app.introspect_token(fx.collection_basic(), &keep).await?);
    // The client can still get new tokens, and they are active.
    let fresh = token_of(&app, &fx).await?;
    assert_active(&app.introspect_token(fx.collection_basic(), &fresh).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collection_revokes_tokens_of_its_audience() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let a = app
        .create_collection("orders", "https://orders.example.com/api", &["orders:read"])
        .await?;
    let b = app
        .create_collection(
            "billing",
            "https://billing.example.com/api",
            &["billing:read"],
        )
        .await?;
    let (a_id, a_secret) = collection_credentials(&a)?;
    let (b_id, b_secret) = collection_credentials(&b)?;
    let client = app.create_client("Acme").await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({"name": "both", "auth_type": "oauth2", "collections": [a["id"], b["id"]]}),
        )
        .await?;
    let id = str_field(&profile, "oauth_client_id")?;
    let secret = str_field(&profile, "oauth_client_secret")?;

    // A token for A only, revoked by A (Basic).
    let only_a = app
        .access_token(id, secret, &[("scope", "orders:read")])
        .await?;
    assert_active(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &only_a)
            .await?,
    );
    assert_revoked_ok(
        &app.revoke_token(Auth::Basic(a_id, a_secret), &only_a)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &only_a)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Basic(id, secret), &only_a)
            .await?,
    );

    // A token for A and B, revoked by B (post): inactive for A as well.
    let both = app.access_token(id, secret, &[]).await?;
    assert_active(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &both)
            .await?,
    );
    assert_revoked_ok(&app.revoke_token(Auth::Post(b_id, b_secret), &both).await?);
    assert_inactive(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &both)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Basic(b_id, b_secret), &both)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_admin_revokes_any_token() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = token_of(&app, &fx).await?;
    let admin = app.admin_token().await?;
    let (_, claims) = decode_jwt_unverified(&admin)?;
    assert!(
        claims["scope"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|s| s == "gatehouse:admin")),
        "{claims}"
    );
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    assert_revoked_ok(&app.revoke_token(Auth::Bearer(&admin), &token).await?);
    assert_inactive_everywhere(&app, &fx, &token).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_and_invalid_tokens_get_200_and_revoke_nothing() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = token_of(&app, &fx).await?;
    let parts: Vec<&str> = token.split('.').collect();
    let (_, mut claims) = decode_jwt_unverified(&token)?;
    // Same jti, claims changed, signature kept: it does not verify, so it must not revoke the
    // genuine token that shares its jti.
    claims["scope"] = json!("orders:read orders:admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims)?),
        parts[2]
    );
    let resigned = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        parts[2].chars().rev().collect::<String>()
    );
    let admin = app.admin_token().await?;
    for bad in [
        "not-a-token".to_owned(),
        random_base62(43),
        "a.b.c".to_owned(),
        tampered,
        resigned,
    ] {
        for auth in [
            fx.collection_basic(),
            fx.client_basic(),
            Auth::Bearer(&admin),
        ] {
            let reply = app.revoke_token(auth, &bad).await?;
            assert_revoked_ok(&reply);
        }
    }
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_revocations_leave_the_token_active() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = token_of(&app, &fx).await?;

    // Another oauth2 client elsewhere, and a sibling profile on the same client resource and
    // collection: neither owns the token.
    let other = app.oauth_fixture(&["billing:read"], json!({})).await?;
    let sibling = app
        .create_profile(
            fx.client_id(),
            &json!({"name": "sibling", "auth_type": "oauth2", "collections": [fx.collection["id"]]}),
        )
        .await?;
    let (sib_id, sib_secret) = (
        str_field(&sibling, "oauth_client_id")?,
        str_field(&sibling, "oauth_client_secret")?,
    );
    // A collection whose audience is not in the token.
    let (b_id, b_secret) = collection_credentials(&other.collection)?;
    // An admin with only gatehouse:admin:read.
    let reader = app.read_only_admin_token().await?;

    for (who, auth) in [
        ("another client (Basic)", other.client_basic()),
        ("another client (post)", other.client_post()),
        ("a sibling profile", Auth::Basic(sib_id, sib_secret)),
        ("another collection (Basic)", Auth::Basic(b_id, b_secret)),
        ("another collection (post)", Auth::Post(b_id, b_secret)),
        ("a read-only admin", Auth::Bearer(&reader)),
    ] {
        let reply = app.revoke_token(auth, &token).await?;
        assert_eq!(reply.status.as_u16(), 400, "{who}: {reply:?}");
        reply.expect_error(400, "unauthorized_client");
        assert_no_store(&reply);
        // The token stays active.
        let body = assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
        assert_eq!(
            body["client_id"].as_str(),
            Some(fx.oauth_client_id.as_str()),
            "{who}: {body}"
        );
        assert_active(&app.introspect_token(fx.client_basic(), &token).await?);
    }
    // The refusals had teeth: the owner can revoke it.
    assert_revoked_ok(&app.revoke_token(fx.client_basic(), &token).await?);
    assert_inactive_everywhere(&app, &fx, &token).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_revocation_is_invalid_client() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = token_of(&app, &fx).await?;
    let (col_id, _) = collection_credentials(&fx.collection)?;
    let wrong = "definitely-not-the-secret";
    let unknown = format!("grs_{}", random_base62(24));

    let none = app.revoke_token(Auth::None, &token).await?;
    none.expect_error(401, "invalid_client");
    assert_no_store(&none);
    for (id, secret) in [
        (col_id, wrong),
        (fx.oauth_client_id.as_str(), wrong),
        (unknown.as_str(), wrong),
    ] {
        let reply = app.revoke_token(Auth::Basic(id, secret), &token).await?;
        reply.expect_error(401, "invalid_client");
        let www = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            www.to_ascii_lowercase().starts_with("basic"),
            "WWW-Authenticate: Basic: {reply:?}"
        );
        app.revoke_token(Auth::Post(id, secret), &token)
            .await?
            .expect_error(401, "invalid_client");
    }
    // A bearer token that is not an admin token (here: the very token to revoke): RFC 6750
    // `invalid_token` with its Bearer challenge.
    for bearer in [token.as_str(), "not-a-token"] {
        let reply = app.revoke_token(Auth::Bearer(bearer), &token).await?;
        reply.expect_error(401, "invalid_token");
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|w| w.starts_with("Bearer ")),
            "{reply:?}"
        );
    }
    // Unauthenticated callers get 401 even for unknown tokens.
    app.revoke_token(Auth::None, "not-a-token")
        .await?
        .expect_error(401, "invalid_client");
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_revocations_are_invalid_request() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = token_of(&app, &fx).await?;
    let enc: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    for auth in [fx.client_basic(), fx.collection_basic()] {
        for body in [
            String::new(),
            "token_type_hint=access_token".to_owned(),
            format!("token={enc}&token={enc}"),
            format!("token={enc}&token_type_hint=access_token&token_type_hint=access_token"),
        ] {
            let reply = app.oauth_raw("/oauth/revoke", auth, &body).await?;
            reply.expect_error(400, "invalid_request");
        }
    }
    // None of those revoked anything.
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revocation_survives_a_restart() -> anyhow::Result<()> {
    // A fixed issuer, so the tokens stay valid although the listener ports change.
    let issuer = format!("http://127.0.0.1:9/{}", random_base62(8));
    let fixed = issuer.clone();
    let mut app = spawn_app_with(move |cfg| cfg.issuer = Some(fixed.clone())).await?;
    assert_eq!(app.issuer, issuer);
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let revoked = token_of(&app, &fx).await?;
    let kept = token_of(&app, &fx).await?;
    assert_revoked_ok(&app.revoke_token(fx.client_basic(), &revoked).await?);
    assert_inactive(
        &app.introspect_token(fx.collection_basic(), &revoked)
            .await?,
    );

    app.restart().await?;

    assert_active(&app.introspect_token(fx.collection_basic(), &kept).await?);
    assert_inactive(
        &app.introspect_token(fx.collection_basic(), &revoked)
            .await?,
    );
    assert_inactive(&app.introspect_token(fx.client_basic(), &revoked).await?);
    Ok(())
}
