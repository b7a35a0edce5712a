//! RFC 6749 §5.2 errors of the token endpoint, as the contract's table maps them.

use gatehouse_tests::{Reply, json, spawn_app};
use reqwest::Method;

#[track_caller]
fn assert_basic_challenge(reply: &Reply) {
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        www.to_ascii_lowercase().starts_with("basic"),
        "401 after Basic carries WWW-Authenticate: Basic: {reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_client_errors() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let id = fx.oauth_client_id.as_str();

    // Wrong secret via Basic: 401 + WWW-Authenticate: Basic.
    let wrong_basic = app
        .token_basic(id, "wrong-secret-wrong-secret-wrong-secret", &[])
        .await?;
    wrong_basic.expect_error(401, "invalid_client");
    assert_basic_challenge(&wrong_basic);
    // Wrong secret via post: 401, with the Basic challenge too (RFC 9110 §15.5.2: every 401
    // carries one).
    let wrong_post = app
        .token_post(id, "wrong-secret-wrong-secret-wrong-secret", &[])
        .await?;
    wrong_post.expect_error(401, "invalid_client");
    assert_basic_challenge(&wrong_post);
    // Unknown client, both ways; same answer as a wrong secret.
    let unknown = app
        .token_basic("gco_doesnotexist0000000000", &fx.oauth_client_secret, &[])
        .await?;
    unknown.expect_error(401, "invalid_client");
    assert_basic_challenge(&unknown);
    assert_eq!(unknown.json(), wrong_basic.json(), "never say which");
    app.token_post("gco_doesnotexist0000000000", &fx.oauth_client_secret, &[])
        .await?
        .expect_error(401, "invalid_client");
    // The secret of one profile does not open another.
    let other = app.oauth_fixture(&["other:read"], json!({})).await?;
    app.token_basic(&other.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?
        .expect_error(401, "invalid_client");
    // No client authentication at all.
    let none = app
        .token_form(None, &[("grant_type", "client_credentials")], &[])
        .await?;
    // RFC 6749 §5.2: "no client authentication included" is `invalid_client`, 401 with a
    // challenge like every other failed client authentication.
    none.expect_error(401, "invalid_client");
    assert_basic_challenge(&none);
    // The right secret still works after all that.
    app.token_basic(id, &fx.oauth_client_secret, &[])
        .await?
        .expect_status(200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_request_and_unsupported_grant_type() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let creds = Some((fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str()));

    // Repeated parameter.
    app.token_raw(
        creds,
        "grant_type=client_credentials&grant_type=client_credentials".into(),
        &[],
    )
    .await?
    .expect_error(400, "invalid_request");
    app.token_raw(
        creds,
        "grant_type=client_credentials&scope=orders%3Aread&scope=orders%3Aread".into(),
        &[],
    )
    .await?
    .expect_error(400, "invalid_request");
    // Missing grant_type.
    app.token_form(creds, &[("scope", "orders:read")], &[])
        .await?
        .expect_error(400, "invalid_request");
    app.token_raw(creds, String::new(), &[])
        .await?
        .expect_error(400, "invalid_request");
    // Two authentication methods at once.
    app.token_form(
        creds,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &fx.oauth_client_id),
            ("client_secret", &fx.oauth_client_secret),
        ],
        &[],
    )
    .await?
    .expect_error(400, "invalid_request");
    // Unknown / unsupported grants.
    for grant in ["password", "authorization_code", "urn:example:nope"] {
        app.token_form(
            creds,
            &[("grant_type", grant), ("username", "u"), ("password", "p")],
            &[],
        )
        .await?
        .expect_error(400, "unsupported_grant_type");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_post_is_allowed_on_the_token_endpoint() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let url = app.public_url("/oauth/token");
    for method in [Method::GET, Method::PUT, Method::DELETE, Method::PATCH] {
        let reply = Reply::read(app.http.request(method.clone(), &url).send().await?).await?;
        assert_eq!(reply.status.as_u16(), 405, "{method}: {reply:?}");
        let allow = reply.header("allow").unwrap_or_default();
        assert!(
            allow
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case("POST")),
            "{method}: Allow lists POST: {reply:?}"
        );
        assert!(
            !allow
                .split(',')
                .any(|m| m.trim().eq_ignore_ascii_case(method.as_str())),
            "{method}: Allow must not list {method}: {reply:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn error_bodies_are_json_with_rfc_codes() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let replies = [
        app.token_basic("gco_nobody000000000000", "x".repeat(40).as_str(), &[])
            .await?,
        app.token_raw(None, "grant_type=password".into(), &[])
            .await?,
        app.token_raw(None, "grant_type=a&grant_type=b".into(), &[])
            .await?,
        // A body that is not a form at all.
        Reply::read(
            app.http
                .post(app.public_url("/oauth/token"))
                .header("content-type", "application/json")
                .body("{\"grant_type\":\"client_credentials\"}")
                .send()
                .await?,
        )
        .await?,
    ];
    for reply in &replies {
        assert!(reply.status.is_client_error(), "{reply:?}");
        let body = reply.json();
        let code = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("error: {reply:?}"));
        assert!(
            [
                "invalid_request",
                "invalid_client",
                "invalid_grant",
                "unauthorized_client",
                "unsupported_grant_type",
                "invalid_scope",
                "invalid_target",
            ]
            .contains(&code),
            "RFC 6749 §5.2 code: {reply:?}"
        );
        // Never echo internal error text through error_description.
        if let Some(desc) = body["error_description"].as_str() {
            assert!(
                !desc.contains("sqlx") && !desc.contains("DbErr"),
                "{reply:?}"
            );
        }
    }
    Ok(())
}
