//! Projects (`/admin/v1/projects`) and admins limited to projects (`admin_projects`): such an
//! admin sees and changes only the clients of its projects and what hangs under them
//! (profiles, API keys, logos, usage, audit events); every other client is "not found", as
//! if it did not exist; creating or moving a client outside its projects is 403; shared
//! resources (collections, policies, projects, signing keys) are readable and not writable;
//! and it can neither create nor change an admin profile. One check per admin route.

use gatehouse_tests::{Auth, Reply, TINY_PNG, TestApp, Value, json, spawn_app, str_field, unique};
use reqwest::Method;

/// The id of the built-in admin collection.
async fn admin_collection_id(app: &TestApp) -> anyhow::Result<String> {
    let (items, _) = app.admin_list_all("/collections", 1000).await?;
    items
        .iter()
        .find(|c| c["builtin"] == json!(true))
        .and_then(|c| c["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no built-in admin collection"))
}

/// Two projects with a client each (an oauth2 and a token profile under B's), and an admin
/// limited to A with its token.
struct World {
    /// An access token of B's oauth2 profile.
    token_b: String,
    a: String,
    b: String,
    client_a: String,
    client_b: String,
    profile_b: String,
    token_profile_b: String,
    key_b: String,
    limited_profile: String,
    limited: String,
}

async fn world(app: &TestApp) -> anyhow::Result<World> {
    let a = app.create_project(&unique("Project A")).await?;
    let b = app.create_project(&unique("Project B")).await?;
    let client_a = app
        .create_client_json(&json!({"name": unique("Client A"), "project": a}))
        .await?;
    let client_b = app
        .create_client_json(&json!({"name": unique("Client B"), "project": b}))
        .await?;
    let client_a = str_field(&client_a, "id")?.to_owned();
    let client_b = str_field(&client_b, "id")?.to_owned();
    let collection = app
        .create_collection(
            &unique("orders"),
            &format!("https://{}.example.com/", unique("orders")),
            &[],
        )
        .await?;
    let col = str_field(&collection, "id")?.to_owned();
    let profile_b = app
        .create_profile(
            &client_b,
            &json!({"name": "b-oauth", "auth_type": "oauth2", "collections": [col]}),
        )
        .await?;
    let token_profile_b = app
        .create_profile(
            &client_b,
            &json!({"name": "b-token", "auth_type": "token", "collections": [col]}),
        )
        .await?;
    let key_b = str_field(&token_profile_b, "api_key_id")?.to_owned();
    let token_b = app
        .access_token(
            str_field(&profile_b, "oauth_client_id")?,
            str_field(&profile_b, "oauth_client_secret")?,
            &[],
        )
        .await?;
    // The limited admin lives on a client of project A.
    let admin_col = admin_collection_id(app).await?;
    let limited_profile = app
        .create_profile(
            &client_a,
            &json!({"name": "a-admin", "auth_type": "oauth2", "collections": [admin_col],
                    "admin_projects": [a]}),
        )
        .await?;
    assert_eq!(
        limited_profile["admin_projects"],
        json!([a]),
        "{limited_profile}"
    );
    let limited = app
        .access_token(
            str_field(&limited_profile, "oauth_client_id")?,
            str_field(&limited_profile, "oauth_client_secret")?,
            &[("scope", "gatehouse:admin")],
        )
        .await?;
    Ok(World {
        token_b,
        a,
        b,
        client_a,
        client_b,
        profile_b: str_field(&profile_b, "id")?.to_owned(),
        token_profile_b: str_field(&token_profile_b, "id")?.to_owned(),
        key_b,
        limited_profile: str_field(&limited_profile, "id")?.to_owned(),
        limited,
    })
}

async fn as_limited(
    app: &TestApp,
    w: &World,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Reply> {
    app.admin_request_as(method, path, Some(&w.limited), body)
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn projects_crud_names_unique_and_in_use_projects_kept() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let name = unique("Payments");
    let created = app
        .admin_post(
            "/projects",
            &json!({"name": name, "description": "The payments team"}),
        )
        .await?
        .expect_status(201)
        .json();
    let id = str_field(&created, "id")?.to_owned();
    assert!(id.starts_with("prj_"), "{created}");
    assert_eq!(created["description"], "The payments team");
    for field in ["created_at", "updated_at"] {
        assert!(created[field].is_string(), "{created}");
    }
    // Unique names.
    app.admin_post("/projects", &json!({"name": name}))
        .await?
        .expect_error(409, "conflict");
    // Validation and unknown fields.
    let r = app.admin_post("/projects", &json!({"name": ""})).await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert_eq!(r.json()["fields"][0]["field"], "name", "{r:?}");
    let r = app
        .admin_post("/projects", &json!({"name": "x", "colour": "red"}))
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // Get, list, merge patch (null description clears; null name refused).
    let got = app
        .admin_get(&format!("/projects/{id}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["name"], name.as_str());
    let (items, _) = app.admin_list_all("/projects", 1000).await?;
    assert!(items.iter().any(|p| p["id"] == id.as_str()));
    let patched = app
        .admin_patch(&format!("/projects/{id}"), &json!({"description": null}))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(patched["description"], "", "{patched}");
    assert_eq!(patched["name"], name.as_str(), "{patched}");
    let r = app
        .admin_patch(&format!("/projects/{id}"), &json!({"name": null}))
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // A client names a project by id; an unknown id is 422 on `project`.
    let r = app
        .admin_post(
            "/clients",
            &json!({"name": unique("c"), "project": "prj_doesnotexist"}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert_eq!(r.json()["fields"][0]["field"], "project", "{r:?}");
    let r = app
        .admin_post(
            "/clients",
            &json!({"name": unique("c"), "project": "free text"}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let client = app
        .create_client_json(&json!({"name": unique("c"), "project": id}))
        .await?;
    // `?q=` searches names, ignoring case; `%` and `_` are literal.
    let needle = unique("Needle_50%");
    app.create_client_json(&json!({"name": needle, "project": id}))
        .await?;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let found = app
        .admin_get(&format!(
            "/clients?q={}",
            needle.to_uppercase().replace('%', "%25")
        ))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(names(&found), vec![needle.clone()], "{found}");
    let literal = app
        .admin_get("/clients?q=%25")
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        names(&literal),
        vec![needle.clone()],
        "`%` is literal: {literal}"
    );
    let none = app
        .admin_get("/clients?q=_50%25zz")
        .await?
        .expect_status(200)
        .json();
    assert!(names(&none).is_empty(), "{none}");
    let clients = app
        .admin_get(&format!("/clients?project={id}"))
        .await?
        .expect_status(200)
        .json();
    for c in clients["items"].as_array().cloned().unwrap_or_default() {
        if c["id"] != client["id"] {
            app.admin_delete(&format!(
                "/clients/{}",
                c["id"].as_str().unwrap_or_default()
            ))
            .await?
            .expect_status(204);
        }
    }
    // A project with clients is kept (409); empty, it goes.
    app.admin_delete(&format!("/projects/{id}"))
        .await?
        .expect_error(409, "conflict");
    app.admin_patch(
        &format!("/clients/{}", str_field(&client, "id")?),
        &json!({"project": null}),
    )
    .await?
    .expect_status(200);
    app.admin_delete(&format!("/projects/{id}"))
        .await?
        .expect_status(204);
    app.admin_get(&format!("/projects/{id}"))
        .await?
        .expect_error(404, "not_found");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_limited_to_a_project_reaches_no_other_projects_client_on_any_route()
-> anyhow::Result<()> {
    let app = spawn_app().await?;
    let w = world(&app).await?;
    let b = &w.client_b;
    let pb = &w.profile_b;
    let tb = &w.token_profile_b;
    let kb = &w.key_b;

    // Lists show only project A's clients, whatever the filter says.
    let list = as_limited(&app, &w, Method::GET, "/clients", None)
        .await?
        .expect_status(200)
        .json();
    let ids: Vec<&str> = list["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&w.client_a.as_str()), "{list}");
    assert!(
        !ids.contains(&b.as_str()),
        "project B leaks into the list: {list}"
    );
    let filtered = as_limited(
        &app,
        &w,
        Method::GET,
        &format!("/clients?project={}", w.b),
        None,
    )
    .await?
    .expect_status(200)
    .json();
    assert_eq!(filtered["items"], json!([]), "{filtered}");

    // Every route under project B's client is "not found" for it — reads and writes alike.
    let patch = json!({"description": "changed by a limited admin"});
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/clients/{b}"), None),
        (Method::PATCH, format!("/clients/{b}"), Some(patch.clone())),
        (Method::DELETE, format!("/clients/{b}"), None),
        (Method::GET, format!("/clients/{b}/logo"), None),
        (Method::DELETE, format!("/clients/{b}/logo"), None),
        (Method::GET, format!("/clients/{b}/usage"), None),
        (Method::GET, format!("/clients/{b}/access-profiles"), None),
        (
            Method::POST,
            format!("/clients/{b}/access-profiles"),
            Some(json!({"name": "sneaky", "auth_type": "oauth2", "all_collections": true})),
        ),
        (Method::GET, format!("/access-profiles/{pb}"), None),
        (
            Method::PATCH,
            format!("/access-profiles/{pb}"),
            Some(patch.clone()),
        ),
        (Method::DELETE, format!("/access-profiles/{pb}"), None),
        (
            Method::POST,
            format!("/access-profiles/{pb}/secret"),
            Some(json!({})),
        ),
        (Method::GET, format!("/access-profiles/{pb}/usage"), None),
        (Method::GET, format!("/access-profiles/{tb}/api-keys"), None),
        (
            Method::POST,
            format!("/access-profiles/{tb}/api-keys"),
            Some(json!({"name": "sneaky"})),
        ),
        (Method::GET, format!("/api-keys/{kb}"), None),
        (
            Method::PATCH,
            format!("/api-keys/{kb}"),
            Some(json!({"active": false})),
        ),
        (
            Method::POST,
            format!("/api-keys/{kb}/refresh"),
            Some(json!({})),
        ),
        (Method::DELETE, format!("/api-keys/{kb}"), None),
    ];
    for (method, path, body) in &routes {
        let r = as_limited(&app, &w, method.clone(), path, body.as_ref()).await?;
        assert_eq!(
            r.status.as_u16(),
            404,
            "{method} {path} must not reach project B: {r:?}"
        );
    }
    // The logo upload (raw bytes) likewise.
    let r = Reply::read(
        app.http
            .put(app.api_url(&format!("/clients/{b}/logo")))
            .bearer_auth(&w.limited)
            .header("content-type", "image/png")
            .body(TINY_PNG.to_vec())
            .send()
            .await?,
    )
    .await?;
    assert_eq!(r.status.as_u16(), 404, "logo upload into project B: {r:?}");

    // At the OAuth endpoints too: B's token is inactive for it, and it cannot revoke it.
    let seen = app
        .introspect_token(Auth::Bearer(&w.limited), &w.token_b)
        .await?
        .expect_status(200)
        .json();
    assert_eq!(seen, json!({"active": false}), "project B's token: {seen}");
    let _ = app
        .revoke_token(Auth::Bearer(&w.limited), &w.token_b)
        .await?;
    let token = app.admin_token().await?;
    let still = app
        .introspect_token(Auth::Bearer(&token), &w.token_b)
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        still["active"], true,
        "a limited admin revoked B's token: {still}"
    );

    // Nothing changed: the unlimited admin still sees B's client, profile and key as before.
    let client_b = app
        .admin_get(&format!("/clients/{b}"))
        .await?
        .expect_status(200)
        .json();
    assert_ne!(client_b["description"], "changed by a limited admin");
    app.admin_get(&format!("/access-profiles/{pb}"))
        .await?
        .expect_status(200);
    let key = app
        .admin_get(&format!("/api-keys/{kb}"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(key["active"], true, "{key}");

    // Its own project works on the same routes.
    let a = &w.client_a;
    as_limited(&app, &w, Method::GET, &format!("/clients/{a}"), None)
        .await?
        .expect_status(200);
    as_limited(
        &app,
        &w,
        Method::PATCH,
        &format!("/clients/{a}"),
        Some(&patch),
    )
    .await?
    .expect_status(200);
    as_limited(&app, &w, Method::GET, &format!("/clients/{a}/usage"), None)
        .await?
        .expect_status(200);
    let own = as_limited(
        &app,
        &w,
        Method::POST,
        &format!("/clients/{a}/access-profiles"),
        Some(&json!({"name": "own", "auth_type": "token", "all_collections": true})),
    )
    .await?
    .expect_status(201)
    .json();
    app.record_secret(str_field(&own, "auth_token")?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limited_admin_keeps_clients_in_its_projects_and_shared_resources_read_only()
-> anyhow::Result<()> {
    let app = spawn_app().await?;
    let w = world(&app).await?;
    let forbidden = |r: &Reply, what: &str| {
        assert_eq!(r.status.as_u16(), 403, "{what}: {r:?}");
        assert_eq!(r.json()["error"], "forbidden", "{what}: {r:?}");
    };
    // Creating a client outside its projects (in B, or in none) is 403; in A it works.
    let r = as_limited(
        &app,
        &w,
        Method::POST,
        "/clients",
        Some(&json!({"name": unique("x"), "project": w.b})),
    )
    .await?;
    forbidden(&r, "client in project B");
    let r = as_limited(
        &app,
        &w,
        Method::POST,
        "/clients",
        Some(&json!({"name": unique("x")})),
    )
    .await?;
    forbidden(&r, "client in no project");
    let mine = as_limited(
        &app,
        &w,
        Method::POST,
        "/clients",
        Some(&json!({"name": unique("x"), "project": w.a})),
    )
    .await?
    .expect_status(201)
    .json();
    // Moving its client out of its projects is 403.
    let r = as_limited(
        &app,
        &w,
        Method::PATCH,
        &format!("/clients/{}", str_field(&mine, "id")?),
        Some(&json!({"project": w.b})),
    )
    .await?;
    forbidden(&r, "moving a client to project B");

    // Shared resources: readable, not writable.
    for path in [
        "/collections",
        "/policies",
        "/projects",
        "/keys",
        "/audit-events",
    ] {
        as_limited(&app, &w, Method::GET, path, None)
            .await?
            .expect_status(200);
    }
    let collection = app
        .create_collection(
            &unique("shared"),
            &format!("https://{}.example.com/", unique("s")),
            &[],
        )
        .await?;
    let col = str_field(&collection, "id")?;
    let policy = app
        .admin_post(
            "/policies",
            &json!({"name": unique("p"), "rate_limit": {"requests": 5, "per": "second"}}),
        )
        .await?
        .expect_status(201)
        .json();
    let pol = str_field(&policy, "id")?;
    let writes: Vec<(Method, String, Option<Value>)> = vec![
        (
            Method::POST,
            "/collections".into(),
            Some(json!({"name": unique("c"), "audience": "https://c.example.com/"})),
        ),
        (
            Method::PATCH,
            format!("/collections/{col}"),
            Some(json!({"description": "x"})),
        ),
        (
            Method::POST,
            format!("/collections/{col}/secret"),
            Some(json!({})),
        ),
        (Method::DELETE, format!("/collections/{col}"), None),
        (
            Method::POST,
            "/policies".into(),
            Some(json!({"name": unique("p")})),
        ),
        (
            Method::PATCH,
            format!("/policies/{pol}"),
            Some(json!({"name": unique("p")})),
        ),
        (Method::DELETE, format!("/policies/{pol}"), None),
        (
            Method::POST,
            "/projects".into(),
            Some(json!({"name": unique("p")})),
        ),
        (
            Method::PATCH,
            format!("/projects/{}", w.a),
            Some(json!({"description": "x"})),
        ),
        (Method::DELETE, format!("/projects/{}", w.b), None),
        (Method::POST, "/keys/rotate".into(), Some(json!({}))),
    ];
    for (method, path, body) in &writes {
        let r = as_limited(&app, &w, method.clone(), path, body.as_ref()).await?;
        forbidden(&r, &format!("{method} {path}"));
    }
    // It may attach a shared policy to its own project's profile.
    let own = as_limited(
        &app,
        &w,
        Method::POST,
        &format!("/clients/{}/access-profiles", w.client_a),
        Some(&json!({"name": "with-policy", "auth_type": "oauth2", "collections": [col], "policy_id": pol})),
    )
    .await?
    .expect_status(201)
    .json();
    app.record_secret(str_field(&own, "oauth_client_secret")?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limited_admin_can_neither_make_nor_change_admins() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let w = world(&app).await?;
    let admin_col = admin_collection_id(&app).await?;
    // Granting the admin collection (with or without a limit) is for unlimited admins.
    for body in [
        json!({"name": "me-too", "auth_type": "oauth2", "collections": [admin_col]}),
        json!({"name": "me-too", "auth_type": "oauth2", "collections": [admin_col], "admin_projects": [w.a]}),
    ] {
        let r = as_limited(
            &app,
            &w,
            Method::POST,
            &format!("/clients/{}/access-profiles", w.client_a),
            Some(&body),
        )
        .await?;
        assert_eq!(r.status.as_u16(), 403, "{body}: {r:?}");
    }
    // Its own admin profile sits in its project, yet it cannot widen, refresh or delete it.
    let own = format!("/access-profiles/{}", w.limited_profile);
    for (method, path, body) in [
        (
            Method::PATCH,
            own.clone(),
            Some(json!({"admin_projects": null})),
        ),
        (
            Method::PATCH,
            own.clone(),
            Some(json!({"admin_projects": [w.a, w.b]})),
        ),
        (Method::POST, format!("{own}/secret"), Some(json!({}))),
        (Method::DELETE, own.clone(), None),
    ] {
        let r = as_limited(&app, &w, method.clone(), &path, body.as_ref()).await?;
        assert_eq!(r.status.as_u16(), 403, "{method} {path}: {r:?}");
    }
    // `admin_projects` belongs on admin profiles only, and names real projects.
    let r = app
        .admin_post(
            &format!("/clients/{}/access-profiles", w.client_a),
            &json!({"name": "not-admin", "auth_type": "oauth2", "all_collections": true, "admin_projects": [w.a]}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert_eq!(r.json()["fields"][0]["code"], "not_admin", "{r:?}");
    let r = app
        .admin_post(
            &format!("/clients/{}/access-profiles", w.client_a),
            &json!({"name": "bad-limit", "auth_type": "oauth2", "collections": [admin_col], "admin_projects": ["prj_nope"]}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert_eq!(r.json()["fields"][0]["field"], "admin_projects[0]", "{r:?}");
    // The unlimited admin widens the limit: effective for the token already issued.
    let before = as_limited(
        &app,
        &w,
        Method::GET,
        &format!("/clients/{}", w.client_b),
        None,
    )
    .await?;
    assert_eq!(before.status.as_u16(), 404, "{before:?}");
    app.admin_patch(&own, &json!({"admin_projects": [w.a, w.b]}))
        .await?
        .expect_status(200);
    as_limited(
        &app,
        &w,
        Method::GET,
        &format!("/clients/{}", w.client_b),
        None,
    )
    .await?
    .expect_status(200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_limited_admin_sees_only_its_projects_audit_events() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let w = world(&app).await?;
    let (events, _) = {
        let r = as_limited(&app, &w, Method::GET, "/audit-events?limit=1000", None)
            .await?
            .expect_status(200)
            .json();
        (r["items"].as_array().cloned().unwrap_or_default(), ())
    };
    let targets: Vec<&str> = events
        .iter()
        .filter_map(|e| e["target_id"].as_str())
        .collect();
    assert!(
        targets.contains(&w.client_a.as_str()),
        "its own client's creation: {events:?}"
    );
    for hidden in [
        &w.client_b,
        &w.profile_b,
        &w.token_profile_b,
        &w.key_b,
        &w.b,
    ] {
        assert!(
            !targets.contains(&hidden.as_str()),
            "{hidden} leaks: {events:?}"
        );
    }
    // The unlimited admin sees both, and the filters narrow.
    let all = app
        .admin_get(&format!(
            "/audit-events?limit=1000&target_id={}",
            w.client_b
        ))
        .await?
        .expect_status(200)
        .json();
    let items = all["items"].as_array().cloned().unwrap_or_default();
    assert!(!items.is_empty(), "{all}");
    assert!(
        items.iter().all(|e| e["target_id"] == w.client_b.as_str()),
        "{all}"
    );
    let creates = app
        .admin_get("/audit-events?limit=1000&action=project.create")
        .await?
        .expect_status(200)
        .json();
    let items = creates["items"].as_array().cloned().unwrap_or_default();
    assert!(
        items.len() >= 2 && items.iter().all(|e| e["action"] == "project.create"),
        "{creates}"
    );
    let r = app.admin_get("/audit-events?from=yesterday").await?;
    assert_eq!(r.status.as_u16(), 400, "{r:?}");
    Ok(())
}
