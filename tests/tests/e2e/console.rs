//! The admin console (`/console` on the admin listener): sign-in with an admin profile's
//! client credentials (the token endpoint's check and throttle), database sessions with idle
//! and absolute expiry on the server's clock, CSRF and same-site checks on every POST, the
//! security headers on every page, and one-time secrets that are never shown again.

use gatehouse_tests::{Reply, TestApp, Value, json, spawn_app};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// A browser of the console: no redirects followed, one session cookie.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.admin.clone(),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        let mut r = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        Reply::read(r.send().await.unwrap()).await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Reply {
        let mut r = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        Reply::read(r.send().await.unwrap()).await.unwrap()
    }

    /// Sign in; keeps the cookie on success. The reply of the sign-in POST.
    async fn sign_in(&mut self, id: &str, secret: &str) -> Reply {
        let r = self
            .post(
                "/console/sign-in",
                &[("client_id", id), ("client_secret", secret)],
                &[],
            )
            .await;
        if let Some(set) = r.header("set-cookie") {
            self.cookie = set.split(';').next().map(str::to_owned);
        }
        r
    }

    /// The session's CSRF token, read from a page's sign-out form.
    async fn csrf(&self) -> String {
        let page = self.get("/console/clients").await;
        assert_eq!(page.status, 200, "{page:?}");
        hidden(&page.text(), "_csrf").expect("a _csrf field")
    }
}

/// The value of the first hidden input `name` in `html`.
fn hidden(html: &str, name: &str) -> Option<String> {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker)? + marker.len();
    let end = html[start..].find('"')?;
    Some(html[start..start + end].to_owned())
}

#[track_caller]
fn assert_redirect(reply: &Reply, to: &str) {
    assert_eq!(reply.status, 303, "{reply:?}");
    assert_eq!(reply.header("location").as_deref(), Some(to), "{reply:?}");
}

#[track_caller]
fn assert_console_headers(reply: &Reply, what: &str) {
    assert_eq!(
        reply.header("content-security-policy").as_deref(),
        Some(CSP),
        "{what}"
    );
    assert_eq!(
        reply.header("x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        reply.header("referrer-policy").as_deref(),
        Some("no-referrer"),
        "{what}"
    );
    assert_eq!(
        reply.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
}

#[track_caller]
fn assert_no_inline_code(html: &str, what: &str) {
    assert!(
        !html.contains("style="),
        "{what}: an inline style attribute"
    );
    assert!(!html.contains("<style"), "{what}: an inline style element");
    for (i, _) in html.match_indices("<script") {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "{what}: an inline script: {tag}");
    }
    for handler in [
        " onclick=",
        " onload=",
        " onchange=",
        " onsubmit=",
        " onerror=",
    ] {
        assert!(!html.contains(handler), "{what}: an inline event handler");
    }
}

async fn signed_in(app: &TestApp) -> Browser {
    let mut b = Browser::new(app);
    let r = b.sign_in(&app.bootstrap_id, &app.bootstrap_secret).await;
    assert_redirect(&r, "/console/clients");
    b
}

/// The built-in admin collection's id.
async fn admin_collection(app: &TestApp) -> String {
    let (items, _) = app.admin_list_all("/collections", 1000).await.unwrap();
    items
        .into_iter()
        .find(|c| c["builtin"] == true)
        .and_then(|c| c["id"].as_str().map(str::to_owned))
        .expect("the built-in admin collection")
}

/// An oauth2 profile (on a new client) with `collections`; (oauth_client_id, secret, id).
async fn oauth_profile(app: &TestApp, collections: Value) -> (String, String, String) {
    let client = app
        .create_client(&gatehouse_tests::unique("console"))
        .await
        .unwrap();
    let p = app
        .create_profile(
            client["id"].as_str().unwrap(),
            &json!({"name": "p", "auth_type": "oauth2", "collections": collections}),
        )
        .await
        .unwrap();
    (
        p["oauth_client_id"].as_str().unwrap().to_owned(),
        p["oauth_client_secret"].as_str().unwrap().to_owned(),
        p["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn console_cookie_and_headers_on_every_page() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let anonymous = Browser::new(&app);
    let r = anonymous.get("/console/clients").await;
    assert_redirect(&r, "/console/sign-in");
    let htmx = anonymous
        .http
        .get(format!("{}/console/clients", app.admin))
        .header("hx-request", "true")
        .send()
        .await?;
    assert_eq!(
        htmx.headers()
            .get("hx-redirect")
            .and_then(|v| v.to_str().ok()),
        Some("/console/sign-in")
    );

    let mut b = Browser::new(&app);
    let page = b.get("/console/sign-in").await;
    assert_eq!(page.status, 200);
    assert_console_headers(&page, "sign-in");
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    let html = page.text();
    assert!(
        html.contains(r#"<label for="client_id">"#),
        "labelled inputs"
    );
    assert!(html.contains(r#"name="htmx-config""#));
    assert!(html.contains(r#""allowEval":false"#) && html.contains(r#""historyCacheSize":0"#));

    let r = b.sign_in(&app.bootstrap_id, &app.bootstrap_secret).await;
    assert_redirect(&r, "/console/clients");
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with("gatehouse_console="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "http admin URL: no Secure flag: {cookie}"
    );
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1;
    assert_eq!(token.len(), 43, "256 bits, base64url");

    // Something to show on every page.
    let client = app.create_client("Acme").await?;
    let client_id = client["id"].as_str().unwrap();
    let collection = app
        .create_collection("orders", "https://orders.example/api", &["orders:read"])
        .await?;
    let profile = app
        .create_profile(
            client_id,
            &json!({"name": "tok", "auth_type": "token", "collections": [collection["id"]]}),
        )
        .await?;
    let profile_id = profile["id"].as_str().unwrap();
    let policy = app
        .admin_post(
            "/policies",
            &json!({"name": "gold", "rate_limit": {"requests": 5, "per": "second"}}),
        )
        .await?;
    let policy_id = policy.json()["id"].as_str().unwrap().to_owned();
    let project = app
        .admin_post("/projects", &json!({"name": "retail"}))
        .await?;
    assert_eq!(project.status, 201, "{project:?}");
    let project_id = project.json()["id"].as_str().unwrap().to_owned();
    let pages = [
        "/console/clients".to_owned(),
        "/console/clients?q=acm".to_owned(),
        "/console/clients/new".to_owned(),
        format!("/console/clients/{client_id}"),
        format!("/console/clients/{client_id}?range=30d"),
        format!("/console/clients/{client_id}/edit"),
        format!("/console/clients/{client_id}/delete"),
        format!("/console/clients/{client_id}/profiles/new"),
        format!("/console/profiles/{profile_id}"),
        format!("/console/profiles/{profile_id}/edit"),
        "/console/collections".to_owned(),
        "/console/collections/new".to_owned(),
        format!(
            "/console/collections/{}",
            collection["id"].as_str().unwrap()
        ),
        "/console/policies".to_owned(),
        "/console/policies/new".to_owned(),
        format!("/console/policies/{policy_id}"),
        "/console/projects".to_owned(),
        "/console/projects/new".to_owned(),
        format!("/console/projects/{project_id}"),
        format!("/console/clients?project={project_id}"),
        "/console/audit".to_owned(),
        "/console/audit?action=client.create".to_owned(),
        "/console/keys".to_owned(),
    ];
    for path in &pages {
        let r = b.get(path).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_console_headers(&r, path);
        assert_eq!(
            r.header("cache-control").as_deref(),
            Some("no-store"),
            "{path}"
        );
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .starts_with("text/html"),
            "{path}"
        );
        assert_no_inline_code(&r.text(), path);
    }
    let list = b.get("/console/clients").await.text();
    assert!(list.contains("Acme"));
    assert!(list.contains("overflow-auto"), "tables scroll at 360 px");
    let nothing = b.get("/console/clients?q=zzzz").await.text();
    assert!(!nothing.contains(">Acme<"), "the name search filters");

    // Static files: compiled in, typed, cached for a year under a content tag.
    let pico = hidden_link(&list, "pico.min.css");
    let r = b.get(&pico).await;
    assert_eq!(r.status, 200, "{pico}");
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    assert_console_headers(&r, &pico);
    let js = hidden_link(&list, "htmx.min.js");
    let r = b.get(&js).await;
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert!(r.text().contains("htmx"));
    assert_eq!(b.get("/console/static/x/nothing.js").await.status, 404);
    let missing = b.get("/console/no-such-page").await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let api = b.get("/admin/v1/no-such-route").await;
    assert_eq!(api.status, 404);
    assert!(
        api.header("content-type").unwrap().contains("json"),
        "the admin API keeps its JSON 404"
    );
    Ok(())
}

/// The URL of a stylesheet or script the page links to.
fn hidden_link(html: &str, file: &str) -> String {
    let end = html.find(file).expect(file) + file.len();
    let start = html[..end].rfind("\"/console/static/").unwrap() + 1;
    html[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn console_posts_need_the_csrf_token_and_the_same_site() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    let csrf = b.csrf().await;
    let form = |token: &'static str| vec![("name", "policy"), ("_csrf", token)];
    let none = b.post("/console/policies", &[("name", "p1")], &[]).await;
    assert_eq!(none.status, 403, "no CSRF token: {none:?}");
    let wrong = b.post("/console/policies", &form("nope"), &[]).await;
    assert_eq!(wrong.status, 403, "a wrong CSRF token: {wrong:?}");
    let good: Vec<(&str, &str)> = vec![
        ("name", "p1"),
        ("rate_requests", "5"),
        ("rate_per", "second"),
        ("_csrf", &csrf),
    ];
    let cross = b
        .post(
            "/console/policies",
            &good,
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403, "a cross-site Origin: {cross:?}");
    let fetch = b
        .post(
            "/console/policies",
            &good,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(fetch.status, 403, "Sec-Fetch-Site cross-site: {fetch:?}");
    assert_eq!(
        app.admin_get("/policies").await?.json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing was created"
    );
    let origin = app.admin.clone();
    let ok = b
        .post(
            "/console/policies",
            &good,
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(ok.status, 303, "{ok:?}");
    assert!(
        ok.header("location")
            .unwrap()
            .starts_with("/console/policies/pol_")
    );
    // The sign-in form refuses other sites too.
    let r = Browser::new(&app)
        .post(
            "/console/sign-in",
            &[
                ("client_id", &app.bootstrap_id),
                ("client_secret", &app.bootstrap_secret),
            ],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_form_errors_are_shown_beside_their_fields() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    let csrf = b.csrf().await;
    let client = app.create_client("Acme").await?;
    let collection = app
        .create_collection("orders", "https://orders.example/api", &["orders:read"])
        .await?;
    let path = format!(
        "/console/clients/{}/profiles",
        client["id"].as_str().unwrap()
    );
    let r = b
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("name", "p"),
                ("auth_type", "oauth2"),
                ("collections", collection["id"].as_str().unwrap()),
                ("ip_allow", "10.0.0.1, 10.0.0.2\nnot-an-ip"),
                ("active", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    let html = r.text();
    assert!(html.contains(r#"id="ip_allow-error""#), "{html}");
    assert!(html.contains("not-an-ip"), "the input is kept");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_expire_after_idle_and_absolute_limits() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    assert_eq!(b.get("/console/clients").await.status, 200);
    app.clock.advance(29.0 * 60.0);
    assert_eq!(
        b.get("/console/clients").await.status,
        200,
        "29 minutes idle"
    );
    app.clock.advance(31.0 * 60.0);
    assert_redirect(&b.get("/console/clients").await, "/console/sign-in");

    // Busy all day: still ends 12 hours after sign-in.
    let b = signed_in(&app).await;
    for _ in 0..28 {
        app.clock.advance(25.0 * 60.0);
        assert_eq!(b.get("/console/clients").await.status, 200);
    }
    // 11 h 40 min so far.
    app.clock.advance(21.0 * 60.0);
    assert_redirect(&b.get("/console/clients").await, "/console/sign-in");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_refuses_profiles_that_are_not_admins() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let collection = app
        .create_collection("orders", "https://orders.example/api", &["orders:read"])
        .await?;
    let (id, secret, _) = oauth_profile(&app, json!([collection["id"]])).await;
    let mut b = Browser::new(&app);
    let r = b.sign_in(&id, &secret).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.text().contains("Invalid credentials"));
    assert!(r.header("set-cookie").is_none());
    let wrong = b.sign_in(&id, "wrong").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.text().replace(&id, ""),
        r.text().replace(&id, ""),
        "the same answer for a non-admin and a wrong secret"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_rights_follow_the_profiles_current_grant() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let admin = admin_collection(&app).await;
    let orders = app
        .create_collection("orders", "https://orders.example/api", &["orders:read"])
        .await?;
    let (id, secret, profile) = oauth_profile(&app, json!([admin, orders["id"]])).await;
    let mut b = Browser::new(&app);
    assert_redirect(&b.sign_in(&id, &secret).await, "/console/clients");
    assert_eq!(b.get("/console/clients").await.status, 200);
    let r = app
        .admin_patch(
            &format!("/access-profiles/{profile}"),
            &json!({"collections": [orders["id"]]}),
        )
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    assert_redirect(&b.get("/console/clients").await, "/console/sign-in");
    // And it cannot sign in again.
    assert_eq!(b.sign_in(&id, &secret).await.status, 401);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sign_in_is_throttled_like_the_token_endpoint() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let mut b = Browser::new(&app);
    for i in 0..10 {
        let r = b.sign_in(&app.bootstrap_id, "wrong-secret").await;
        assert_eq!(r.status, 401, "attempt {i}: {r:?}");
    }
    let r = b.sign_in(&app.bootstrap_id, "wrong-secret").await;
    assert_eq!(r.status, 429, "{r:?}");
    let retry: u64 = r.header("retry-after").unwrap().parse()?;
    assert!(retry >= 1);
    assert_console_headers(&r, "429");
    // One budget: the token endpoint refuses this address too, even with the right secret
    // (the verified-secret cache is cold).
    let token = app
        .token_basic(&app.bootstrap_id, "still-wrong", &[])
        .await?;
    assert_eq!(token.status, 429, "{token:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sign_out_ends_the_session() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    let csrf = b.csrf().await;
    let r = b.post("/console/sign-out", &[("_csrf", &csrf)], &[]).await;
    assert_redirect(&r, "/console/sign-in");
    let cleared = r.header("set-cookie").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    assert_redirect(&b.get("/console/clients").await, "/console/sign-in");
    assert!(
        !app.db_dump().await?.contains("console_sessions.token_hash"),
        "row deleted"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_one_time_secrets_are_shown_once_and_never_stored() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    let csrf = b.csrf().await;
    let r = b
        .post(
            "/console/collections",
            &[
                ("_csrf", &csrf),
                ("name", "orders"),
                ("audience", "https://orders.example/api"),
                ("scope_name", "orders:read"),
                ("scope_description", "Read orders"),
                ("scope_name", ""),
                ("scope_description", ""),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "the panel is the POST's own answer: {r:?}");
    assert!(r.header("location").is_none());
    assert!(r.header("cache-control").unwrap().contains("no-store"));
    assert_console_headers(&r, "secret panel");
    let html = r.text();
    assert!(html.contains(r#"hx-history="false""#));
    assert!(html.contains("You will not see this again"));
    assert!(html.contains(">Copy</button>"));
    let col_secret = hidden_value(&html, "one-time-secret");
    assert!(col_secret.starts_with("gcs_"), "{col_secret}");
    let collection = app.admin_get("/collections").await?.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "orders")
        .cloned()
        .unwrap();
    let col_id = collection["id"].as_str().unwrap().to_owned();

    let client = app.create_client("Acme").await?;
    let client_id = client["id"].as_str().unwrap();
    let r = b
        .post(
            &format!("/console/clients/{client_id}/profiles"),
            &[
                ("_csrf", &csrf),
                ("name", "backend"),
                ("auth_type", "oauth2"),
                ("collections", &col_id),
                ("active", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let secret = hidden_value(&r.text(), "one-time-secret");
    // The secret works at the token endpoint.
    let id = app
        .admin_get(&format!("/clients/{client_id}/access-profiles"))
        .await?
        .json()["items"][0]["oauth_client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.token_basic(&id, &secret, &[]).await?;
    assert_eq!(token.status, 200, "{token:?}");
    // The usage chart counts it (hourly, last 24 h), as a bar title and in the table.
    let usage = b.get(&format!("/console/clients/{client_id}")).await.text();
    assert!(usage.contains("Tokens issued: 1 in all"), "{usage}");
    let daily = b
        .get(&format!("/console/clients/{client_id}?range=30d"))
        .await
        .text();
    assert!(daily.contains("Tokens issued: 1 in all"));
    let profile_id = app
        .admin_get(&format!("/clients/{client_id}/access-profiles"))
        .await?
        .json()["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = b
        .post(
            &format!("/console/profiles/{profile_id}/secret"),
            &[("_csrf", &csrf), ("grace_seconds", "60")],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let refreshed = hidden_value(&r.text(), "one-time-secret");
    assert_ne!(refreshed, secret);

    for path in [
        "/console/clients".to_owned(),
        format!("/console/clients/{client_id}"),
        format!("/console/profiles/{profile_id}"),
        "/console/collections".to_owned(),
        format!("/console/collections/{col_id}"),
        "/console/audit".to_owned(),
    ] {
        let page = b.get(&path).await.text();
        for s in [&col_secret, &secret, &refreshed] {
            assert!(!page.contains(s.as_str()), "{path} shows a one-time secret");
        }
    }
    // The session table holds the token's hash only.
    let dump = app.db_dump().await?;
    let token = b.cookie.as_deref().unwrap().split_once('=').unwrap().1;
    assert!(dump.contains("console_sessions"), "a session row");
    assert!(!dump.contains(token), "the raw session token is stored");
    for s in [&col_secret, &secret, &refreshed] {
        assert!(!dump.contains(s.as_str()), "a secret in the database");
    }
    Ok(())
}

/// The value of the input with this id.
fn hidden_value(html: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let start = rest.find("value=\"").unwrap() + 7;
    let end = rest[start..].find('"').unwrap();
    rest[start..start + end].to_owned()
}

/// A multipart form body (text fields and one file), as a browser sends it.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----gatehouse-console-test";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, filename, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn console_walks_the_new_client_and_access_profile_flow() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    let csrf = b.csrf().await;

    // API platform › Projects › New project.
    let r = b
        .post(
            "/console/projects",
            &[("_csrf", &csrf), ("name", "retail")],
            &[],
        )
        .await;
    assert_eq!(r.status, 303, "{r:?}");
    let project = r
        .header("location")
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    assert!(project.starts_with("prj_"));

    // Clients › New client (name, description, logo, project).
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-really-an-image";
    let (content_type, body) = multipart(
        &[
            ("_csrf", &csrf),
            ("name", "Acme Retail"),
            ("description", "Shop front"),
            ("project", &project),
            ("contact_first_name", "Ada"),
            ("contact_last_name", "Lovelace"),
            ("contact_email", "ada@example.com"),
            ("active", "on"),
        ],
        Some(("logo", "logo.png", png)),
    );
    let r = Reply::read(
        b.http
            .post(format!("{}/console/clients", b.base))
            .header("cookie", b.cookie.as_deref().unwrap())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(r.status, 303, "{r:?}");
    let client_path = r.header("location").unwrap();
    let client_id = client_path.rsplit('/').next().unwrap().to_owned();
    let client = app
        .admin_get(&format!("/clients/{client_id}"))
        .await?
        .json();
    assert_eq!(client["project"], project.as_str());
    assert_eq!(client["has_logo"], true);
    assert_eq!(client["contact"]["email"], "ada@example.com");
    let logo = b.get(&format!("/console/clients/{client_id}/logo")).await;
    assert_eq!(logo.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(logo.bytes, png.to_vec());
    let page = b.get(&client_path).await.text();
    assert!(page.contains("retail"), "the project's name is shown");

    // A file that is no image changes nothing and says why beside the field.
    let (content_type, body) = multipart(
        &[("_csrf", &csrf), ("name", "Bad logo")],
        Some(("logo", "x.png", b"GIF89a")),
    );
    let r = Reply::read(
        b.http
            .post(format!("{}/console/clients", b.base))
            .header("cookie", b.cookie.as_deref().unwrap())
            .header("content-type", content_type)
            .body(body)
            .send()
            .await?,
    )
    .await?;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.text().contains(r#"id="logo-error""#));

    // The Active/Inactive toggle on the list.
    let r = b
        .post(
            &format!("/console/clients/{client_id}/active"),
            &[
                ("_csrf", &csrf),
                ("active", "false"),
                ("back", "/console/clients"),
            ],
            &[],
        )
        .await;
    assert_redirect(&r, "/console/clients");
    assert_eq!(
        app.admin_get(&format!("/clients/{client_id}"))
            .await?
            .json()["active"],
        false
    );
    let r = b
        .post(
            &format!("/console/clients/{client_id}/active"),
            &[
                ("_csrf", &csrf),
                ("active", "true"),
                ("back", "https://evil.example/"),
            ],
            &[],
        )
        .await;
    assert_redirect(&r, &format!("/console/clients/{client_id}"));

    // Create access profile (auth token): the first key's token, once.
    let collection = app
        .create_collection("orders", "https://orders.example/api", &["orders:read"])
        .await?;
    let r = b
        .post(
            &format!("/console/clients/{client_id}/profiles"),
            &[
                ("_csrf", &csrf),
                ("name", "shop"),
                ("auth_type", "token"),
                ("collections", collection["id"].as_str().unwrap()),
                ("ip_allow", "203.0.113.7, 198.51.100.0/24"),
                ("active", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let token = hidden_value(&r.text(), "one-time-secret");
    assert!(token.starts_with("ghk_"), "{token}");
    let profiles = app
        .admin_get(&format!("/clients/{client_id}/access-profiles"))
        .await?
        .json();
    let profile = &profiles["items"][0];
    assert_eq!(
        profile["ip_rules"]["allow"],
        json!(["203.0.113.7", "198.51.100.0/24"])
    );
    let profile_id = profile["id"].as_str().unwrap().to_owned();

    // API keys: create, refresh with grace, deactivate.
    let r = b
        .post(
            &format!("/console/profiles/{profile_id}/api-keys"),
            &[("_csrf", &csrf), ("name", "second"), ("expires_at", "")],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let second = hidden_value(&r.text(), "one-time-secret");
    let keys = app
        .admin_get(&format!("/access-profiles/{profile_id}/api-keys"))
        .await?
        .json();
    let key_id = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "second")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = b
        .post(
            &format!("/console/api-keys/{key_id}/refresh"),
            &[("_csrf", &csrf), ("grace_seconds", "300")],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let html = r.text();
    assert!(html.contains("The previous secret keeps working until"));
    assert_ne!(hidden_value(&html, "one-time-secret"), second);
    let r = b
        .post(
            &format!("/console/api-keys/{key_id}/deactivate"),
            &[("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_redirect(&r, &format!("/console/profiles/{profile_id}"));
    assert_eq!(
        app.admin_get(&format!("/api-keys/{key_id}")).await?.json()["active"],
        false
    );
    let page = b
        .get(&format!("/console/profiles/{profile_id}"))
        .await
        .text();
    assert!(page.contains(">second<"), "the key is listed");
    assert!(!page.contains(&token) && !page.contains(&second));

    // A JWT (HMAC) profile whose secret the server generates: shown once.
    let r = b
        .post(
            &format!("/console/clients/{client_id}/profiles"),
            &[
                ("_csrf", &csrf),
                ("name", "signed"),
                ("auth_type", "jwt"),
                ("collections", collection["id"].as_str().unwrap()),
                ("jwt_method", "hmac"),
                ("hmac_algorithm", "HS256"),
                ("jwt_secret", ""),
                ("allowed_audiences", "https://orders.example/api"),
                ("active", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let html = r.text();
    assert!(html.contains("JWT HMAC secret"));
    assert!(hidden_value(&html, "one-time-secret").len() >= 32);
    // Without allowed audiences, and with a bad JWKS URL, the fields say so.
    let r = b
        .post(
            &format!("/console/clients/{client_id}/profiles"),
            &[
                ("_csrf", &csrf),
                ("name", "signed2"),
                ("auth_type", "jwt"),
                ("collections", collection["id"].as_str().unwrap()),
                ("jwt_method", "rsa"),
                ("jwt_jwks_uri", "not a url"),
                ("active", "on"),
            ],
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    let html = r.text();
    assert!(html.contains(r#"id="allowed_audiences-error""#), "{html}");
    assert!(html.contains(r#"id="jwt_jwks_uri-error""#), "{html}");

    // Edit the profile: the form comes filled in; saving is a merge patch.
    let form = b.get(&format!("/console/profiles/{profile_id}/edit")).await;
    assert_eq!(form.status, 200, "{form:?}");
    let html = form.text();
    assert!(
        html.contains("203.0.113.7\n198.51.100.0/24"),
        "IP rules one per line"
    );
    assert!(html.contains(r#"value="shop""#));
    let r = b
        .post(
            &format!("/console/profiles/{profile_id}/edit"),
            &[
                ("_csrf", &csrf),
                ("name", "shop front"),
                ("auth_type", "token"),
                ("collections", collection["id"].as_str().unwrap()),
                ("ip_default_access", ""),
                ("ip_allow", "203.0.113.8"),
                ("ip_deny", ""),
                ("token_ttl_seconds", "600"),
                ("active", "on"),
            ],
            &[],
        )
        .await;
    assert_redirect(&r, &format!("/console/profiles/{profile_id}"));
    let edited = app
        .admin_get(&format!("/access-profiles/{profile_id}"))
        .await?
        .json();
    assert_eq!(edited["name"], "shop front");
    assert_eq!(edited["ip_rules"]["allow"], json!(["203.0.113.8"]));
    assert_eq!(edited["token_ttl_seconds"], 600);

    // The audit log, filtered.
    let audit = b
        .get(&format!("/console/audit?target_id={client_id}"))
        .await
        .text();
    assert!(audit.contains("client.create"), "{audit}");
    assert!(!audit.contains("project.create"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_read_only_and_project_limited_admins_see_what_the_registry_allows()
-> anyhow::Result<()> {
    let app = spawn_app().await?;
    let admin = admin_collection(&app).await;
    let a = app
        .admin_post("/projects", &json!({"name": "a"}))
        .await?
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b_project = app
        .admin_post("/projects", &json!({"name": "b"}))
        .await?
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for (name, project) in [("In A", &a), ("In B", &b_project)] {
        app.create_client_json(&json!({"name": name, "project": project}))
            .await?;
    }
    let owner = app.create_client_json(&json!({"name": "admins"})).await?;
    let owner = owner["id"].as_str().unwrap();

    // A reader: pages, no buttons, and a POST is refused by the registry.
    let reader = app
        .create_profile(
            owner,
            &json!({"name": "reader", "auth_type": "oauth2", "collections": [admin],
                    "scopes": ["gatehouse:admin:read"]}),
        )
        .await?;
    let mut b = Browser::new(&app);
    let r = b
        .sign_in(
            reader["oauth_client_id"].as_str().unwrap(),
            reader["oauth_client_secret"].as_str().unwrap(),
        )
        .await;
    assert_redirect(&r, "/console/clients");
    let page = b.get("/console/clients").await.text();
    assert!(page.contains("(read only)"));
    assert!(
        !page.contains("New client"),
        "no write buttons for a reader"
    );
    let csrf = b.csrf().await;
    let r = b
        .post("/console/projects", &[("_csrf", &csrf), ("name", "c")], &[])
        .await;
    assert_eq!(r.status, 403, "{r:?}");

    // An admin limited to project A sees A's clients only.
    let limited = app
        .create_profile(
            owner,
            &json!({"name": "limited", "auth_type": "oauth2", "collections": [admin],
                    "admin_projects": [a]}),
        )
        .await?;
    let mut b = Browser::new(&app);
    let r = b
        .sign_in(
            limited["oauth_client_id"].as_str().unwrap(),
            limited["oauth_client_secret"].as_str().unwrap(),
        )
        .await;
    assert_redirect(&r, "/console/clients");
    let page = b.get("/console/clients").await.text();
    assert!(page.contains("In A"));
    assert!(!page.contains("In B"), "another project's client");
    let form = b.get("/console/clients/new").await.text();
    assert!(
        form.contains(&a) && !form.contains(&b_project),
        "only its projects to choose"
    );
    assert!(
        page.contains("New client"),
        "it may add clients to its project"
    );
    let shared = b.get("/console/collections").await.text();
    assert!(
        !shared.contains("New collection"),
        "collections are read-only for it"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_sessions_keep_to_the_profiles_ip_rules() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let admin = admin_collection(&app).await;
    let owner = app.create_client("admins").await?;
    let p = app
        .create_profile(
            owner["id"].as_str().unwrap(),
            &json!({"name": "office", "auth_type": "oauth2", "collections": [admin],
                    "ip_rules": {"allow": ["127.0.0.1"]}}),
        )
        .await?;
    let (id, secret) = (
        p["oauth_client_id"].as_str().unwrap(),
        p["oauth_client_secret"].as_str().unwrap(),
    );
    let mut b = Browser::new(&app);
    assert_redirect(&b.sign_in(id, secret).await, "/console/clients");
    let old_cookie = b.cookie.clone();
    // Signing in again replaces the session: the old cookie no longer works.
    assert_redirect(&b.sign_in(id, secret).await, "/console/clients");
    assert_ne!(b.cookie, old_cookie);
    let mut stale = Browser::new(&app);
    stale.cookie = old_cookie;
    assert_redirect(&stale.get("/console/clients").await, "/console/sign-in");

    assert_eq!(b.get("/console/clients").await.status, 200);
    let r = app
        .admin_patch(
            &format!("/access-profiles/{}", p["id"].as_str().unwrap()),
            &json!({"ip_rules": {"allow": ["10.1.2.3"]}}),
        )
        .await?;
    assert_eq!(r.status, 200, "{r:?}");
    assert_redirect(&b.get("/console/clients").await, "/console/sign-in");
    assert_eq!(
        b.sign_in(id, secret).await.status,
        401,
        "refused from this address"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_cookie_is_host_prefixed_and_secure_behind_an_https_admin_url() -> anyhow::Result<()>
{
    let app = gatehouse_tests::spawn_app_with(|c| {
        c.admin_url = Some("https://admin.gatehouse.example".to_owned());
    })
    .await?;
    let mut b = Browser::new(&app);
    let r = b.sign_in(&app.bootstrap_id, &app.bootstrap_secret).await;
    assert_redirect(&r, "/console/clients");
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-gatehouse_console="), "{cookie}");
    for flag in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(
        !cookie.contains("Domain="),
        "__Host- cookies carry no Domain"
    );
    assert_eq!(b.get("/console/clients").await.status, 200);
    // The plain name means nothing here.
    let mut plain = Browser::new(&app);
    plain.cookie = b.cookie.as_ref().map(|c| c.replacen("__Host-", "", 1));
    assert_redirect(&plain.get("/console/clients").await, "/console/sign-in");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn console_deletes_after_a_confirmation_page() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let b = signed_in(&app).await;
    let csrf = b.csrf().await;
    let collection = app
        .create_collection("stock", "https://stock.example/api", &["stock:read"])
        .await?;
    let (_, _, profile) = oauth_profile(&app, json!([collection["id"]])).await;
    let client = app
        .admin_get(&format!("/access-profiles/{profile}"))
        .await?
        .json()["client_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = b.get(&format!("/console/profiles/{profile}/delete")).await;
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.contains("Delete access profile"));
    assert!(html.contains(&format!(r#"action="/console/profiles/{profile}/delete""#)));
    assert!(
        html.contains(&format!(r#"href="/console/profiles/{profile}""#)),
        "Cancel"
    );
    assert_eq!(
        app.admin_get(&format!("/access-profiles/{profile}"))
            .await?
            .status,
        200,
        "a GET deletes nothing"
    );
    let r = b
        .post(
            &format!("/console/profiles/{profile}/delete"),
            &[("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_redirect(&r, &format!("/console/clients/{client}"));
    assert_eq!(
        app.admin_get(&format!("/access-profiles/{profile}"))
            .await?
            .status,
        404
    );
    let r = b
        .post(
            &format!("/console/clients/{client}/delete"),
            &[("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_redirect(&r, "/console/clients");
    assert_eq!(
        app.admin_get(&format!("/clients/{client}")).await?.status,
        404
    );

    // A policy still in use is not deleted; the page says why.
    let policy = app
        .admin_post(
            "/policies",
            &json!({"name": "gold", "rate_limit": {"requests": 5, "per": "second"}}),
        )
        .await?
        .json();
    let policy_id = policy["id"].as_str().unwrap();
    let collection = app
        .create_collection("orders", "https://orders.example/api", &["orders:read"])
        .await?;
    let owner = app.create_client("owner").await?;
    app.create_profile(
        owner["id"].as_str().unwrap(),
        &json!({"name": "p", "auth_type": "oauth2", "collections": [collection["id"]],
                "policy_id": policy_id}),
    )
    .await?;
    let r = b
        .post(
            &format!("/console/policies/{policy_id}/delete"),
            &[("_csrf", &csrf)],
            &[],
        )
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(
        app.admin_get(&format!("/policies/{policy_id}"))
            .await?
            .status,
        200
    );
    Ok(())
}
