//! Access profiles: creation, credentials shown once, connection details, immutable fields.

use gatehouse_tests::{Value, json, spawn_app, str_field, unique};

#[tokio::test(flavor = "multi_thread")]
async fn oauth2_profile_shows_its_secret_once_and_connection_details() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("orders", "https://orders.example.com/api", &["orders:read"])
        .await?;
    let client = app.create_client("Acme").await?;
    let client_id = str_field(&client, "id")?;

    let reply = app
        .admin_post(
            &format!("/clients/{client_id}/access-profiles"),
            &json!({
                "name": "nightly-sync",
                "description": "Nightly sync job",
                "auth_type": "oauth2",
                "collections": [collection["id"]],
                "token_ttl_seconds": 900,
                "custom_claims": {"tenant": "acme"},
            }),
        )
        .await?;
    assert_eq!(reply.status.as_u16(), 201, "{reply:?}");
    let created = reply.json();
    let profile_id = str_field(&created, "id")?.to_owned();
    assert!(profile_id.starts_with("prf_"), "{created}");
    assert_eq!(created["client_id"], client["id"], "{created}");
    assert_eq!(created["auth_type"], "oauth2");
    assert_eq!(created["active"], true, "profiles start active: {created}");
    assert_eq!(created["token_ttl_seconds"], 900);
    assert_eq!(created["custom_claims"]["tenant"], "acme", "{created}");
    assert_eq!(
        created["collections"],
        json!([collection["id"]]),
        "{created}"
    );
    let oauth_client_id = str_field(&created, "oauth_client_id")?.to_owned();
    assert!(oauth_client_id.starts_with("gco_"), "{created}");
    let secret = str_field(&created, "oauth_client_secret")?.to_owned();
    assert!(secret.len() >= 32, "secret carries ≥ 256 bits: {created}");
    app.record_secret(&secret);

    // Reads never show the secret.
    let reads = [
        app.admin_get(&format!("/access-profiles/{profile_id}"))
            .await?,
        app.admin_get(&format!("/clients/{client_id}/access-profiles"))
            .await?,
    ];
    for r in &reads {
        assert_eq!(r.status.as_u16(), 200, "{r:?}");
        assert!(!r.text().contains(&secret), "secret in a read: {r:?}");
    }
    let got = reads[0].json();
    assert!(
        got.get("oauth_client_secret").is_none_or(Value::is_null),
        "{got}"
    );
    assert_eq!(got["oauth_client_id"], oauth_client_id.as_str(), "{got}");
    let listed = reads[1].json();
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["id"], profile_id.as_str());
    assert!(
        items[0]
            .get("oauth_client_secret")
            .is_none_or(Value::is_null)
    );

    // Connection details for the consumer.
    let conn = &got["connection"];
    assert_eq!(conn["issuer"].as_str(), Some(app.issuer.as_str()), "{got}");
    assert_eq!(
        conn["token_endpoint"].as_str(),
        Some(format!("{}/oauth/token", app.issuer).as_str()),
        "{got}"
    );
    let discovery_url = str_field(conn, "discovery_url")?;
    assert!(discovery_url.starts_with(&app.issuer), "{got}");
    let meta = app.get_url(discovery_url).await?.expect_status(200).json();
    assert_eq!(meta["issuer"].as_str(), Some(app.issuer.as_str()), "{meta}");
    assert_eq!(meta["token_endpoint"], conn["token_endpoint"]);
    let conn_cols = conn["collections"]
        .as_array()
        .expect("connection.collections");
    assert!(
        conn_cols
            .iter()
            .any(|c| c["audience"] == "https://orders.example.com/api"),
        "{got}"
    );

    // auth_type cannot change.
    let r = app
        .admin_patch(
            &format!("/access-profiles/{profile_id}"),
            &json!({"auth_type": "token"}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let got = app
        .admin_get(&format!("/access-profiles/{profile_id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["auth_type"], "oauth2");

    // Ordinary patches work and keep the rest.
    let patched = app
        .admin_patch(
            &format!("/access-profiles/{profile_id}"),
            &json!({"description": "Hourly sync", "token_ttl_seconds": 300}),
        )
        .await?
        .expect_status(200)
        .json();
    assert_eq!(patched["description"], "Hourly sync");
    assert_eq!(patched["token_ttl_seconds"], 300);
    assert_eq!(patched["name"], "nightly-sync");
    assert_eq!(patched["oauth_client_id"], oauth_client_id.as_str());
    assert!(
        patched
            .get("oauth_client_secret")
            .is_none_or(Value::is_null)
    );

    // Delete → 404.
    let r = app
        .admin_delete(&format!("/access-profiles/{profile_id}"))
        .await?;
    assert_eq!(r.status.as_u16(), 204, "{r:?}");
    let r = app
        .admin_get(&format!("/access-profiles/{profile_id}"))
        .await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    // Its credentials are gone with it.
    let r = app.token_basic(&oauth_client_id, &secret, &[]).await?;
    r.expect_error(401, "invalid_client");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn profile_validation() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("orders", "https://orders.example.com/api", &["orders:read"])
        .await?;
    let client = app.create_client("Acme").await?;
    let path = format!("/clients/{}/access-profiles", str_field(&client, "id")?);
    let base = |extra: Value| {
        let mut body = json!({
            "name": unique("p"),
            "auth_type": "oauth2",
            "collections": [collection["id"]],
        });
        if let (Some(o), Value::Object(e)) = (body.as_object_mut(), extra) {
            o.extend(e);
        }
        body
    };

    // Registered JWT claims cannot be custom claims.
    for claim in [
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "jti",
        "client_id",
        "scope",
    ] {
        let r = app
            .admin_post(&path, &base(json!({"custom_claims": {claim: "x"}})))
            .await?;
        assert_eq!(r.status.as_u16(), 422, "custom claim {claim}: {r:?}");
        assert!(r.json()["fields"].is_array(), "{r:?}");
    }

    // A scope the collections do not define.
    let r = app
        .admin_post(&path, &base(json!({"scopes": ["billing:read"]})))
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // An unknown collection.
    let r = app
        .admin_post(
            &path,
            &json!({"name": unique("p"), "auth_type": "oauth2", "collections": ["col_nope"]}),
        )
        .await?;
    // A reference in the body, not the resource addressed: a validation error, not 404.
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // An unknown auth_type.
    let r = app
        .admin_post(&path, &base(json!({"auth_type": "kerberos"})))
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // Bad IP rules.
    let r = app
        .admin_post(
            &path,
            &base(json!({"ip_rules": {"default_access": "allow", "allow": ["999.1.1.1"], "deny": []}})),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // Unknown client.
    let r = app
        .admin_post("/clients/cli_nope/access-profiles", &base(json!({})))
        .await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");

    // A valid one, then patches that must be refused.
    let profile = app
        .create_profile(str_field(&client, "id")?, &base(json!({})))
        .await?;
    let ppath = format!("/access-profiles/{}", str_field(&profile, "id")?);
    let r = app
        .admin_patch(&ppath, &json!({"custom_claims": {"exp": 1}}))
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let r = app
        .admin_patch(&ppath, &json!({"auth_type": "jwt"}))
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    Ok(())
}
