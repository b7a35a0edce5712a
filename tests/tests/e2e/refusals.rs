//! Refusals that must look exactly like a wrong secret: inactive profile or client, IP rules.

use gatehouse_tests::{Fixture, Reply, TestApp, json, spawn_app, spawn_app_with};

const WRONG: &str = "definitely-not-the-secret-of-this-profile";

/// The answer to a wrong secret, the reference every refusal must be indistinguishable from.
async fn wrong_secret_reply(app: &TestApp, fx: &Fixture) -> anyhow::Result<Reply> {
    let r = app.token_basic(&fx.oauth_client_id, WRONG, &[]).await?;
    r.expect_error(401, "invalid_client");
    Ok(r)
}

#[track_caller]
fn assert_indistinguishable(refusal: &Reply, reference: &Reply) {
    refusal.expect_error(401, "invalid_client");
    assert_eq!(
        refusal.json(),
        reference.json(),
        "a refusal must not say why: {refusal:?} vs wrong secret {reference:?}"
    );
    assert_eq!(
        refusal.header("www-authenticate"),
        reference.header("www-authenticate"),
        "{refusal:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_profile_is_refused_as_invalid_client() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (id, secret) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    let reference = wrong_secret_reply(&app, &fx).await?;
    // Warm any verified-secret cache first: deactivation must still take effect at once.
    app.token_basic(id, secret, &[]).await?.expect_status(200);

    let path = format!("/access-profiles/{}", fx.profile_id());
    let p = app
        .admin_patch(&path, &json!({"active": false}))
        .await?
        .expect_status(200);
    assert_eq!(p.json()["active"], false);
    assert_indistinguishable(&app.token_basic(id, secret, &[]).await?, &reference);
    app.token_post(id, secret, &[])
        .await?
        .expect_error(401, "invalid_client");

    app.admin_patch(&path, &json!({"active": true}))
        .await?
        .expect_status(200);
    app.token_basic(id, secret, &[]).await?.expect_status(200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn inactive_client_is_refused_as_invalid_client() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let (id, secret) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    let reference = wrong_secret_reply(&app, &fx).await?;
    app.token_basic(id, secret, &[]).await?.expect_status(200);

    let path = format!("/clients/{}", fx.client_id());
    app.admin_patch(&path, &json!({"active": false}))
        .await?
        .expect_status(200);
    assert_indistinguishable(&app.token_basic(id, secret, &[]).await?, &reference);
    app.token_post(id, secret, &[])
        .await?
        .expect_error(401, "invalid_client");
    // The profile itself is still active: only the client switch refuses it.
    let p = app
        .admin_get(&format!("/access-profiles/{}", fx.profile_id()))
        .await?
        .expect_status(200);
    assert_eq!(p.json()["active"], true);

    app.admin_patch(&path, &json!({"active": true}))
        .await?
        .expect_status(200);
    app.token_basic(id, secret, &[]).await?.expect_status(200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_rules_refuse_and_forwarded_for_is_ignored_from_untrusted_peers() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {"default_access": "deny", "allow": ["10.0.0.0/8"], "deny": []}}),
        )
        .await?;
    assert_eq!(
        fx.profile["ip_rules"]["default_access"], "deny",
        "{}",
        fx.profile
    );
    let (id, secret) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    let reference = wrong_secret_reply(&app, &fx).await?;

    // From 127.0.0.1: denied, indistinguishable from a wrong secret.
    assert_indistinguishable(&app.token_basic(id, secret, &[]).await?, &reference);
    app.token_post(id, secret, &[])
        .await?
        .expect_error(401, "invalid_client");
    // X-Forwarded-For from an untrusted peer (no trusted proxies) changes nothing.
    let spoofed = app
        .token_form(
            Some((id, secret)),
            &[("grant_type", "client_credentials")],
            &[("x-forwarded-for", "10.1.2.3")],
        )
        .await?;
    assert_indistinguishable(&spoofed, &reference);

    // Allowing loopback opens it; a deny entry then closes it again.
    let path = format!("/access-profiles/{}", fx.profile_id());
    app.admin_patch(
        &path,
        &json!({"ip_rules": {"default_access": "deny", "allow": ["10.0.0.0/8", "127.0.0.1/32"], "deny": []}}),
    )
    .await?
    .expect_status(200);
    app.token_basic(id, secret, &[]).await?.expect_status(200);
    app.admin_patch(
        &path,
        &json!({"ip_rules": {"default_access": "allow", "allow": [], "deny": ["127.0.0.1"]}}),
    )
    .await?
    .expect_status(200);
    assert_indistinguishable(&app.token_basic(id, secret, &[]).await?, &reference);
    // Deny wins over allow. (The explicit `allow` default goes: beside an allow list it
    // would be 422 `no_effect`; derived, it is `deny`.)
    app.admin_patch(
        &path,
        &json!({"ip_rules": {"default_access": null, "allow": ["127.0.0.0/8"], "deny": ["127.0.0.1/32"]}}),
    )
    .await?
    .expect_status(200);
    assert_indistinguishable(&app.token_basic(id, secret, &[]).await?, &reference);
    // Default allow, no lists: open.
    app.admin_patch(
        &path,
        &json!({"ip_rules": {"default_access": "allow", "allow": [], "deny": []}}),
    )
    .await?
    .expect_status(200);
    app.token_basic(id, secret, &[]).await?.expect_status(200);
    Ok(())
}

async fn forwarded(app: &TestApp, id: &str, secret: &str, xff: &str) -> anyhow::Result<Reply> {
    app.token_form(
        Some((id, secret)),
        &[("grant_type", "client_credentials")],
        &[("x-forwarded-for", xff)],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarded_for_is_honoured_from_a_trusted_proxy() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.1/32".parse().expect("cidr")];
    })
    .await?;
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {"default_access": "deny", "allow": ["10.0.0.0/8"], "deny": []}}),
        )
        .await?;
    let (id, secret) = (fx.oauth_client_id.as_str(), fx.oauth_client_secret.as_str());
    let xff = |value: &'static str| forwarded(&app, id, secret, value);

    // The proxy (127.0.0.1) is trusted, so the forwarded address counts.
    xff("10.1.2.3").await?.expect_status(200);
    xff("192.0.2.7").await?.expect_error(401, "invalid_client");
    // Read right to left: the right-most untrusted address is the client.
    xff("10.9.9.9, 192.0.2.7")
        .await?
        .expect_error(401, "invalid_client");
    xff("192.0.2.7, 10.1.2.3").await?.expect_status(200);
    // Without the header the peer itself (127.0.0.1) is the client: denied.
    app.token_basic(id, secret, &[])
        .await?
        .expect_error(401, "invalid_client");

    // A deny entry for the forwarded address wins.
    app.admin_patch(
        &format!("/access-profiles/{}", fx.profile_id()),
        &json!({"ip_rules": {"default_access": "allow", "allow": [], "deny": ["10.1.2.3"]}}),
    )
    .await?
    .expect_status(200);
    xff("10.1.2.3").await?.expect_error(401, "invalid_client");
    xff("10.1.2.4").await?.expect_status(200);
    Ok(())
}
