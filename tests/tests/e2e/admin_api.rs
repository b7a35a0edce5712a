//! The admin JSON API: collections, clients, logos, lists, validation and error shapes.

use gatehouse_tests::{Reply, TINY_PNG, TestApp, Value, json, spawn_app, str_field, unique};
use reqwest::Method;

/// Asserts a 422 validation error whose `fields` names `field` (prefix match, so
/// `contact.email` and `contact` both count for `contact`).
#[track_caller]
fn assert_validation(reply: &Reply, field: &str) {
    assert_eq!(reply.status.as_u16(), 422, "expected 422: {reply:?}");
    let body = reply.json();
    assert!(body["error"].is_string(), "error code: {reply:?}");
    assert!(body["message"].is_string(), "message: {reply:?}");
    let fields = body["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("422 without a fields array: {reply:?}"));
    assert!(!fields.is_empty(), "422 with empty fields: {reply:?}");
    for f in fields {
        assert!(
            f["field"].is_string() && f["code"].is_string() && f["message"].is_string(),
            "each field error has field, code and message: {reply:?}"
        );
    }
    assert!(
        fields.iter().any(|f| {
            let name = f["field"].as_str().unwrap_or_default();
            name.starts_with(field) || field.starts_with(name)
        }),
        "no field error for {field}: {reply:?}"
    );
}

fn assert_created(reply: &Reply) {
    assert_eq!(reply.status.as_u16(), 201, "create answers 201: {reply:?}");
}

fn assert_rfc3339(v: &Value) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("time must be a string: {v}"));
    // 2024-01-02T03:04:05Z or with fraction / offset; UTC required.
    assert!(
        s.len() >= 20
            && s.as_bytes().get(10) == Some(&b'T')
            && (s.ends_with('Z') || s.ends_with("+00:00")),
        "not an RFC 3339 UTC time: {s}"
    );
}

async fn malformed(app: &TestApp, method: Method, path: &str) -> anyhow::Result<Reply> {
    let token = app.admin_token().await?;
    Reply::read(
        app.http
            .request(method, app.api_url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body("{\"name\": \"oops\",")
            .send()
            .await?,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_crud_and_merge_patch() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let body = json!({
        "name": "orders",
        "description": "Orders API",
        "audience": "https://orders.example.com/api",
        "scopes": [
            {"name": "orders:read", "description": "Read orders"},
            {"name": "orders:write", "description": "Write orders"},
        ],
        "integration_url": "https://orders.example.com/integrate",
        "documentation_url": "https://orders.example.com/docs",
    });
    let reply = app.admin_post("/collections", &body).await?;
    assert_created(&reply);
    let created = reply.json();
    let id = str_field(&created, "id")?.to_owned();
    assert!(id.starts_with("col_"), "{created}");
    assert!(
        str_field(&created, "introspection_client_id")?.starts_with("grs_"),
        "{created}"
    );
    let intro_secret = str_field(&created, "introspection_client_secret")?.to_owned();
    assert!(intro_secret.len() >= 32, "secret has ≥ 256 bits: {created}");
    assert_eq!(created["name"], "orders");
    assert_eq!(created["audience"], "https://orders.example.com/api");
    assert_eq!(
        created["integration_url"],
        "https://orders.example.com/integrate"
    );
    assert_eq!(
        created["documentation_url"],
        "https://orders.example.com/docs"
    );
    assert_rfc3339(&created["created_at"]);
    assert_rfc3339(&created["updated_at"]);

    // GET shows the same resource, never the secret.
    let got = app
        .admin_get(&format!("/collections/{id}"))
        .await?
        .expect_status(200);
    assert!(
        !got.text().contains(&intro_secret),
        "secret in GET: {got:?}"
    );
    let got = got.json();
    assert!(
        got.get("introspection_client_secret")
            .is_none_or(Value::is_null),
        "{got}"
    );
    assert_eq!(got["id"], id.as_str());
    assert_eq!(
        got["introspection_client_id"],
        created["introspection_client_id"]
    );
    assert_eq!(got["description"], "Orders API");
    let scopes: Vec<(String, String)> = got["scopes"]
        .as_array()
        .expect("scopes")
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_owned(),
                s["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        scopes.contains(&("orders:read".into(), "Read orders".into())),
        "{got}"
    );
    assert!(
        scopes.contains(&("orders:write".into(), "Write orders".into())),
        "{got}"
    );

    // Merge patch: change one member, null another (removes it), leave the rest.
    let patched = app
        .admin_patch(
            &format!("/collections/{id}"),
            &json!({"description": "Orders API v2", "documentation_url": null}),
        )
        .await?
        .expect_status(200)
        .json();
    assert_eq!(patched["description"], "Orders API v2", "{patched}");
    assert!(
        patched["documentation_url"].is_null(),
        "null removes: {patched}"
    );
    assert_eq!(
        patched["name"], "orders",
        "untouched member kept: {patched}"
    );
    assert_eq!(
        patched["audience"], "https://orders.example.com/api",
        "{patched}"
    );
    assert_eq!(
        patched["integration_url"],
        "https://orders.example.com/integrate"
    );
    assert_eq!(
        patched["scopes"].as_array().map(Vec::len),
        Some(2),
        "{patched}"
    );
    let got = app
        .admin_get(&format!("/collections/{id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        got["description"], "Orders API v2",
        "patch persisted: {got}"
    );
    assert!(got["documentation_url"].is_null(), "{got}");

    // A patch that breaks validation is refused and changes nothing.
    let bad = app
        .admin_patch(
            &format!("/collections/{id}"),
            &json!({"audience": "not a uri"}),
        )
        .await?;
    assert_validation(&bad, "audience");
    let got = app
        .admin_get(&format!("/collections/{id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["audience"], "https://orders.example.com/api");

    // Delete, then 404.
    let del = app.admin_delete(&format!("/collections/{id}")).await?;
    assert_eq!(del.status.as_u16(), 204, "{del:?}");
    let gone = app.admin_get(&format!("/collections/{id}")).await?;
    assert_eq!(gone.status.as_u16(), 404, "{gone:?}");
    assert!(gone.json()["error"].is_string(), "{gone:?}");
    let again = app.admin_delete(&format!("/collections/{id}")).await?;
    assert_eq!(again.status.as_u16(), 404, "{again:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_lists_paginate_with_limit_and_cursor() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let c = app
            .create_collection(
                &format!("paged-{i}"),
                &format!("https://paged{i}.example.com/"),
                &[&format!("paged{i}:read")],
            )
            .await?;
        ids.push(str_field(&c, "id")?.to_owned());
    }

    let first = app
        .admin_get("/collections?limit=2")
        .await?
        .expect_status(200)
        .json();
    assert_eq!(first["items"].as_array().map(Vec::len), Some(2), "{first}");
    assert!(
        first["next_cursor"].is_string(),
        "more pages remain: {first}"
    );

    let (items, pages) = app.admin_list_all("/collections", 2).await?;
    assert!(pages >= 2, "3+ items in pages of 2 take ≥ 2 pages");
    let listed: Vec<String> = items
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    let mut unique_ids = listed.clone();
    unique_ids.sort();
    unique_ids.dedup();
    assert_eq!(
        unique_ids.len(),
        listed.len(),
        "no item twice across pages: {listed:?}"
    );
    for id in &ids {
        assert!(
            listed.contains(id),
            "{id} missing from the paged list {listed:?}"
        );
    }
    // Lists never carry secrets either.
    for item in &items {
        assert!(
            item.get("introspection_client_secret")
                .is_none_or(Value::is_null),
            "{item}"
        );
    }

    // The default page holds everything here (default limit 50).
    let all = app
        .admin_get("/collections")
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        all["items"].as_array().map(Vec::len),
        Some(items.len()),
        "{all}"
    );
    assert!(all["next_cursor"].is_null(), "{all}");

    // An over-large limit is clamped to the maximum (1000), not refused.
    let big = app
        .admin_get("/collections?limit=100000")
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        big["items"].as_array().map(Vec::len),
        Some(items.len()),
        "{big}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_validation_and_conflicts() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let good = |name: &str, audience: &str, scope: &str| {
        json!({
            "name": name,
            "description": "d",
            "audience": audience,
            "scopes": [{"name": scope, "description": "s"}],
        })
    };
    app.create_collection_json(&good(
        "billing",
        "https://billing.example.com/",
        "billing:read",
    ))
    .await?;

    // Reserved scope namespace.
    let r = app
        .admin_post(
            "/collections",
            &good("sneaky", "https://sneaky.example.com/", "gatehouse:x"),
        )
        .await?;
    assert_validation(&r, "scopes");
    let r = app
        .admin_post(
            "/collections",
            &good("sneaky2", "https://sneaky2.example.com/", "gatehouse:admin"),
        )
        .await?;
    assert_validation(&r, "scopes");

    // Audience must be an absolute URI.
    for audience in ["not a uri", "/relative/path", ""] {
        let r = app
            .admin_post(
                "/collections",
                &good(&unique("aud"), audience, &unique("s")),
            )
            .await?;
        assert_validation(&r, "audience");
    }

    // Missing name.
    let r = app
        .admin_post(
            "/collections",
            &json!({"audience": "https://noname.example.com/", "scopes": []}),
        )
        .await?;
    // A missing required member is a validation error naming it.
    assert_validation(&r, "name");

    // Duplicate name → 409.
    let r = app
        .admin_post(
            "/collections",
            &good("billing", "https://billing2.example.com/", "billing2:read"),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 409, "duplicate name: {r:?}");
    assert!(r.json()["error"].is_string(), "{r:?}");

    // Malformed JSON → 400.
    let r = malformed(&app, Method::POST, "/collections").await?;
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    assert!(r.json()["error"].is_string(), "{r:?}");

    // Unknown ids → 404 with a JSON error.
    for path in [
        "/collections/col_doesnotexist",
        "/clients/cli_doesnotexist",
        "/access-profiles/prf_doesnotexist",
    ] {
        let r = app.admin_get(path).await?;
        assert_eq!(r.status.as_u16(), 404, "{path}: {r:?}");
        assert!(r.json()["error"].is_string(), "{path}: {r:?}");
    }
    let r = app
        .admin_patch(
            "/collections/col_doesnotexist",
            &json!({"description": "x"}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn client_crud_contact_and_project_filter() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let alpha_id = app.create_project("alpha").await?;
    let beta_id = app.create_project("beta").await?;
    let reply = app
        .admin_post(
            "/clients",
            &json!({
                "name": "Acme Corp",
                "description": "Acme's integration",
                "project": alpha_id,
                "contact": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@acme.example"},
            }),
        )
        .await?;
    assert_created(&reply);
    let acme = reply.json();
    let acme_id = str_field(&acme, "id")?.to_owned();
    assert!(acme_id.starts_with("cli_"), "{acme}");
    assert_eq!(acme["active"], true, "clients start active: {acme}");
    assert_eq!(acme["has_logo"], false, "{acme}");
    assert_eq!(acme["project"], alpha_id.as_str());
    assert_eq!(acme["contact"]["email"], "ada@acme.example", "{acme}");
    assert_rfc3339(&acme["created_at"]);

    let globex = app
        .create_client_json(&json!({
            "name": "Globex", "description": "g", "project": beta_id,
            "contact": {"first_name": "Hank", "last_name": "Scorpio", "email": "hank@globex.example"},
        }))
        .await?;
    let initech = app
        .create_client_json(&json!({
            "name": "Initech", "description": "i", "project": alpha_id,
            "contact": {"first_name": "Bill", "last_name": "Lumbergh", "email": "bill@initech.example"},
        }))
        .await?;

    let got = app
        .admin_get(&format!("/clients/{acme_id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["contact"]["first_name"], "Ada");
    assert_eq!(got["contact"]["last_name"], "Lovelace");
    assert_eq!(got["description"], "Acme's integration");

    // ?project= filters.
    let alpha = app
        .admin_get(&format!("/clients?project={alpha_id}"))
        .await?
        .expect_status(200)
        .json();
    let names: Vec<&str> = alpha["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Acme Corp") && names.contains(&"Initech"),
        "{alpha}"
    );
    assert!(
        !names.contains(&"Globex"),
        "project filter leaks other projects: {alpha}"
    );
    let beta = app
        .admin_get(&format!("/clients?project={beta_id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(beta["items"].as_array().map(Vec::len), Some(1), "{beta}");
    assert_eq!(beta["items"][0]["id"], globex["id"]);
    let none = app
        .admin_get("/clients?project=prj_nope")
        .await?
        .expect_status(200)
        .json();
    assert_eq!(none["items"].as_array().map(Vec::len), Some(0), "{none}");
    let all = app.admin_get("/clients").await?.expect_status(200).json();
    let all_ids: Vec<&Value> = all["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| &c["id"])
        .collect();
    for c in [&acme, &globex, &initech] {
        assert!(all_ids.contains(&&c["id"]), "{all}");
    }

    // Merge patch on a nested object keeps its other members.
    let patched = app
        .admin_patch(
            &format!("/clients/{acme_id}"),
            &json!({"contact": {"email": "ops@acme.example"}, "active": false}),
        )
        .await?
        .expect_status(200)
        .json();
    assert_eq!(patched["contact"]["email"], "ops@acme.example", "{patched}");
    assert_eq!(
        patched["contact"]["first_name"], "Ada",
        "nested merge: {patched}"
    );
    assert_eq!(patched["active"], false, "{patched}");
    assert_eq!(patched["name"], "Acme Corp");

    // Validation.
    let r = app
        .admin_post(
            "/clients",
            &json!({"name": "Bad Mail", "description": "b",
                    "contact": {"first_name": "A", "last_name": "B", "email": "not-an-email"}}),
        )
        .await?;
    assert_validation(&r, "contact");
    let r = app
        .admin_patch(
            &format!("/clients/{acme_id}"),
            &json!({"contact": {"email": "still not an email"}}),
        )
        .await?;
    assert_validation(&r, "contact");
    let r = app
        .admin_post(
            "/clients",
            &json!({"name": "x".repeat(10_000), "description": "b",
                    "contact": {"first_name": "A", "last_name": "B", "email": "a@b.example"}}),
        )
        .await?;
    assert_validation(&r, "name");
    let r = malformed(&app, Method::POST, "/clients").await?;
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    let r = malformed(&app, Method::PATCH, &format!("/clients/{acme_id}")).await?;
    assert_eq!(r.status.as_u16(), 400, "{r:?}");

    // Delete → 404.
    let del = app.admin_delete(&format!("/clients/{acme_id}")).await?;
    assert_eq!(del.status.as_u16(), 204, "{del:?}");
    let r = app.admin_get(&format!("/clients/{acme_id}")).await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn client_logo_upload_is_type_and_size_checked() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let client = app.create_client(&unique("logo")).await?;
    let id = str_field(&client, "id")?.to_owned();
    let logo = format!("/clients/{id}/logo");

    // No logo yet.
    let r = app.admin_get(&logo).await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");

    // A real PNG.
    let r = app
        .admin_bytes(Method::PUT, &logo, "image/png", TINY_PNG.to_vec())
        .await?;
    assert_eq!(r.status.as_u16(), 200, "PNG accepted: {r:?}");
    let got = app
        .admin_get(&format!("/clients/{id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["has_logo"], true, "{got}");
    let r = app.admin_get(&logo).await?.expect_status(200);
    assert_eq!(r.bytes, TINY_PNG, "the logo comes back byte for byte");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("image/png"),
        "{r:?}"
    );

    // Text claiming to be a PNG: the type is checked by content, not by header.
    let r = app
        .admin_bytes(
            Method::PUT,
            &logo,
            "image/png",
            b"hello, I am not an image\n".to_vec(),
        )
        .await?;
    assert_validation(&r, "logo");
    let r = app
        .admin_bytes(Method::PUT, &logo, "text/plain", b"plain text".to_vec())
        .await?;
    assert_validation(&r, "logo");
    // The earlier logo is untouched by refused uploads.
    let r = app.admin_get(&logo).await?.expect_status(200);
    assert_eq!(r.bytes, TINY_PNG);

    // Over 256 KiB, with valid PNG magic.
    let mut big = TINY_PNG.to_vec();
    big.resize(256 * 1024 + 1, 0);
    let r = app
        .admin_bytes(Method::PUT, &logo, "image/png", big)
        .await?;
    assert_validation(&r, "logo");

    // Delete.
    let r = app.admin_delete(&logo).await?;
    assert_eq!(r.status.as_u16(), 204, "{r:?}");
    let r = app.admin_get(&logo).await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    let got = app
        .admin_get(&format!("/clients/{id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["has_logo"], false, "{got}");

    // Logo of an unknown client.
    let r = app
        .admin_bytes(
            Method::PUT,
            "/clients/cli_nope/logo",
            "image/png",
            TINY_PNG.to_vec(),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    Ok(())
}
