//! A restart keeps the signing keys and the registry.

use gatehouse_tests::{json, spawn_app, str_field, verify_with_jwks};

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_registry_survive_a_restart() -> anyhow::Result<()> {
    let mut app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let jwks_before = app.jwks().await?;
    verify_with_jwks(&jwks_before, &token, Some(&fx.audience), Some(&app.issuer))?;
    let issuer_before = app.issuer.clone();

    app.restart().await?;

    // The issuer follows the new port in tests; signature, exp and aud still hold.
    let jwks_after = app.jwks().await?;
    let claims = verify_with_jwks(&jwks_after, &token, Some(&fx.audience), None)?;
    assert_eq!(claims["iss"].as_str(), Some(issuer_before.as_str()));
    let kids = |j: &serde_json::Value| -> Vec<String> {
        j["keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect()
    };
    for kid in kids(&jwks_before) {
        assert!(
            kids(&jwks_after).contains(&kid),
            "key {kid} survives the restart"
        );
    }

    // The registry is still there, and the same credentials still work.
    let got = app
        .admin_get(&format!("/collections/{}", fx.collection_id()))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["name"], fx.collection["name"]);
    let p = app
        .admin_get(&format!("/access-profiles/{}", fx.profile_id()))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(p["oauth_client_id"], fx.oauth_client_id.as_str());
    let fresh = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    verify_with_jwks(&jwks_after, &fresh, Some(&fx.audience), Some(&app.issuer))?;
    // The bootstrap admin was not duplicated by the second start.
    let clients = app
        .admin_get("/clients?limit=1000")
        .await?
        .expect_status(200)
        .json();
    let n = clients["items"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    assert!(
        n <= 2,
        "fixture client + at most the bootstrap admin client: {clients}"
    );
    assert!(str_field(&got, "id").is_ok());
    Ok(())
}
