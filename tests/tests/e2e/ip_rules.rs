//! IP rules that mean what the seeds say (issue 13), old and new semantics side by side:
//!
//! - an `allow` list alone admits only the listed addresses (before: it did nothing, because
//!   `default_access` defaulted to `allow`);
//! - an explicit `default_access: allow` beside a non-empty allow list is 422 `no_effect`
//!   (before: accepted, and the list silently did nothing);
//! - an entry with host bits set (`106.226.100.3/20`) is its network (`106.226.96.0/20`)
//!   (before: 422 `invalid_ip`);
//! - a list may be one comma-separated string (before: arrays only);
//! - merge patches derive `default_access` unless it is stored explicitly;
//! - migration m0009 keeps every stored row's behaviour.
//!
//! The server trusts 127.0.0.0/8 as a proxy, so `X-Forwarded-For` chooses the token
//! requester's address; introspection takes the consumer's address as `client_ip`.

use gatehouse_tests::{
    Auth, Fixture, Reply, TestApp, Value, assert_active, assert_inactive, json, spawn_app_with,
    str_field, unique,
};
use sea_orm::{ConnectionTrait, Database};

async fn spawn_behind_proxy() -> anyhow::Result<TestApp> {
    spawn_app_with(|cfg| {
        cfg.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap_or_else(|e| panic!("{e}"))];
    })
    .await
}

/// A client-credentials request with the fixture's Basic credentials, from `ip`.
async fn token_from(app: &TestApp, fx: &Fixture, ip: &str) -> anyhow::Result<Reply> {
    app.token_form(
        Some((&fx.oauth_client_id, &fx.oauth_client_secret)),
        &[("grant_type", "client_credentials")],
        &[("x-forwarded-for", ip)],
    )
    .await
}

/// Asserts that `ip` gets a token (`true`) or the indistinguishable 401 (`false`).
async fn assert_token_from(app: &TestApp, fx: &Fixture, ip: &str, admitted: bool) {
    let reply = token_from(app, fx, ip)
        .await
        .unwrap_or_else(|e| panic!("token request from {ip}: {e}"));
    if admitted {
        reply.expect_status(200);
    } else {
        reply.expect_error(401, "invalid_client");
    }
}

/// Introspects `token` as `auth` with `client_ip` when given.
async fn introspect_from(
    app: &TestApp,
    auth: Auth<'_>,
    token: &str,
    client_ip: Option<&str>,
) -> anyhow::Result<Reply> {
    let mut form = vec![("token", token)];
    if let Some(ip) = client_ip {
        form.push(("client_ip", ip));
    }
    app.introspect(auth, &form).await
}

/// The `(field, code)` pairs of a 422 answer (asserting the contract's error shape).
#[track_caller]
fn field_errors(reply: &Reply) -> Vec<(String, String)> {
    assert_eq!(reply.status.as_u16(), 422, "expected 422: {reply:?}");
    let body = reply.json();
    assert!(body["error"].is_string(), "error: {reply:?}");
    assert!(body["message"].is_string(), "message: {reply:?}");
    body["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("422 without fields: {reply:?}"))
        .iter()
        .map(|f| {
            assert!(f["message"].is_string(), "{reply:?}");
            (
                f["field"].as_str().unwrap_or_default().to_owned(),
                f["code"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(f, c)| ((*f).to_owned(), (*c).to_owned()))
        .collect()
}

/// The create body of an oauth2 profile on `collection` with these `ip_rules`.
fn profile_body(collection: &Value, ip_rules: Value) -> Value {
    json!({
        "name": unique("backend"),
        "auth_type": "oauth2",
        "collections": [collection["id"]],
        "ip_rules": ip_rules,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn allow_list_alone_now_admits_only_listed_addresses() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    // Before: `{"allow": [...]}` alone meant default_access allow: everyone got in.
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {"allow": ["10.0.0.0/8"]}}),
        )
        .await?;
    assert_eq!(
        fx.profile["ip_rules"],
        json!({"default_access": "deny", "allow": ["10.0.0.0/8"], "deny": []}),
        "the answer shows the derived default: {}",
        fx.profile
    );
    let got = app
        .admin_get(&format!("/access-profiles/{}", fx.profile_id()))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["ip_rules"], fx.profile["ip_rules"], "{got}");

    assert_token_from(&app, &fx, "10.1.2.3", true).await;
    // Before: 200. Now: refused, like any other IP denial.
    assert_token_from(&app, &fx, "192.0.2.7", false).await;
    assert_token_from(&app, &fx, "11.0.0.1", false).await;

    // Introspection: the same rules, with `client_ip`.
    let token = {
        let reply = token_from(&app, &fx, "10.1.2.3").await?.expect_status(200);
        str_field(&reply.json(), "access_token")?.to_owned()
    };
    app.record_secret(&token);
    assert_active(&introspect_from(&app, fx.collection_basic(), &token, Some("10.9.9.9")).await?);
    assert_inactive(
        &introspect_from(&app, fx.collection_basic(), &token, Some("192.0.2.7")).await?,
    );
    // Before: no restriction, so no client_ip needed. Now: rules apply → ip_unknown.
    assert_inactive(&introspect_from(&app, fx.collection_basic(), &token, None).await?);

    // A deny list alone still leaves everyone else in (default allow, as before).
    let open = app
        .oauth_fixture(
            &["stock:read"],
            json!({"ip_rules": {"deny": ["192.0.2.0/24"]}}),
        )
        .await?;
    assert_eq!(open.profile["ip_rules"]["default_access"], "allow");
    assert_token_from(&app, &open, "198.51.100.1", true).await;
    assert_token_from(&app, &open, "192.0.2.7", false).await;
    // No rules at all: open, and shown with the explicit default.
    let none = app.oauth_fixture(&["misc:read"], json!({})).await?;
    assert_eq!(
        none.profile["ip_rules"],
        json!({"default_access": "allow", "allow": [], "deny": []})
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_range_with_host_bits_is_stored_as_its_network() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    // Before: 422 invalid_ip ("host bits are set"). Now: the network of the entry.
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {"allow": ["106.226.100.3/20"], "deny": ["2001:db8:1234::1/32"]}}),
        )
        .await?;
    assert_eq!(
        fx.profile["ip_rules"],
        json!({"default_access": "deny", "allow": ["106.226.96.0/20"], "deny": ["2001:db8::/32"]}),
        "{}",
        fx.profile
    );
    let got = app
        .admin_get(&format!("/access-profiles/{}", fx.profile_id()))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        got["ip_rules"]["allow"],
        json!(["106.226.96.0/20"]),
        "{got}"
    );

    assert_token_from(&app, &fx, "106.226.101.7", true).await;
    assert_token_from(&app, &fx, "106.226.96.0", true).await;
    assert_token_from(&app, &fx, "106.226.111.255", true).await;
    assert_token_from(&app, &fx, "106.226.112.1", false).await;
    assert_token_from(&app, &fx, "106.226.95.255", false).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn comma_separated_allow_list_works_at_token_endpoint_and_introspection() -> anyhow::Result<()>
{
    let app = spawn_behind_proxy().await?;
    // Before: a string was a type error (422). Now: one comma-separated list.
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {"allow": " 10.0.0.1, 192.168.0.0/16 ,, ", "deny": "192.168.7.0/24"}}),
        )
        .await?;
    assert_eq!(
        fx.profile["ip_rules"],
        json!({"default_access": "deny", "allow": ["10.0.0.1", "192.168.0.0/16"], "deny": ["192.168.7.0/24"]}),
        "{}",
        fx.profile
    );
    assert_token_from(&app, &fx, "10.0.0.1", true).await;
    assert_token_from(&app, &fx, "192.168.5.5", true).await;
    assert_token_from(&app, &fx, "10.0.0.2", false).await;
    assert_token_from(&app, &fx, "192.168.7.1", false).await;

    let token = {
        let reply = token_from(&app, &fx, "10.0.0.1").await?.expect_status(200);
        str_field(&reply.json(), "access_token")?.to_owned()
    };
    app.record_secret(&token);
    let admin = app.admin_token().await?;
    for auth in [fx.collection_basic(), Auth::Bearer(&admin)] {
        for (ip, active) in [
            (Some("10.0.0.1"), true),
            (Some("192.168.200.1"), true),
            (Some("::ffff:192.168.200.1"), true),
            (Some("10.0.0.2"), false),
            (Some("192.168.7.9"), false),
            (None, false),
        ] {
            let reply = introspect_from(&app, auth, &token, ip).await?;
            if active {
                assert_active(&reply);
            } else {
                assert_inactive(&reply);
            }
        }
    }

    // A patch may use the string form too; errors name the entry's index in the split list.
    let path = format!("/access-profiles/{}", fx.profile_id());
    let r = app
        .admin_patch(
            &path,
            &json!({"ip_rules": {"allow": "10.0.0.1, , nope, 10.0.0.0/33"}}),
        )
        .await?;
    assert_eq!(
        field_errors(&r),
        pairs(&[
            ("ip_rules.allow[1]", "invalid_ip"),
            ("ip_rules.allow[2]", "invalid_ip")
        ]),
        "{r:?}"
    );
    let r = app
        .admin_patch(&path, &json!({"ip_rules": {"allow": "203.0.113.9"}}))
        .await?
        .expect_status(200);
    assert_eq!(r.json()["ip_rules"]["allow"], json!(["203.0.113.9"]));
    assert_token_from(&app, &fx, "203.0.113.9", true).await;
    assert_token_from(&app, &fx, "10.0.0.1", false).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn explicit_allow_with_an_allow_list_is_422_no_effect() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    let collection = app
        .create_collection(
            &unique("orders"),
            "https://orders.example.com/api",
            &["orders:read"],
        )
        .await?;
    let client = app.create_client(&unique("acme")).await?;
    let path = format!("/clients/{}/access-profiles", str_field(&client, "id")?);
    // Before: 201, and the allow list did nothing.
    let r = app
        .admin_post(
            &path,
            &profile_body(
                &collection,
                json!({"default_access": "allow", "allow": ["10.0.0.0/8"]}),
            ),
        )
        .await?;
    assert_eq!(
        field_errors(&r),
        pairs(&[("ip_rules.allow", "no_effect")]),
        "{r:?}"
    );
    // Also with the string form.
    let r = app
        .admin_post(
            &path,
            &profile_body(
                &collection,
                json!({"default_access": "allow", "allow": "10.0.0.1"}),
            ),
        )
        .await?;
    assert_eq!(field_errors(&r), pairs(&[("ip_rules.allow", "no_effect")]));
    // Explicit deny with a list, or explicit allow without one, are fine.
    for rules in [
        json!({"default_access": "deny", "allow": ["10.0.0.0/8"]}),
        json!({"default_access": "allow", "allow": [], "deny": ["192.0.2.0/24"]}),
        json!({"default_access": "deny"}),
    ] {
        let r = app
            .admin_post(&path, &profile_body(&collection, rules.clone()))
            .await?;
        assert_eq!(r.status.as_u16(), 201, "{rules}: {r:?}");
        if let Some(s) = r.json()["oauth_client_secret"].as_str() {
            app.record_secret(s);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn patching_an_allow_list_derives_the_default_unless_it_was_given() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    // Created without ip_rules: nothing stored explicitly.
    let derived = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let path = format!("/access-profiles/{}", derived.profile_id());
    let r = app
        .admin_patch(&path, &json!({"ip_rules": {"allow": ["10.0.0.0/8"]}}))
        .await?
        .expect_status(200);
    // Before: default_access stayed allow, and the patch changed nothing.
    assert_eq!(
        r.json()["ip_rules"],
        json!({"default_access": "deny", "allow": ["10.0.0.0/8"], "deny": []})
    );
    assert_token_from(&app, &derived, "10.1.1.1", true).await;
    assert_token_from(&app, &derived, "192.0.2.1", false).await;
    // Emptying the list makes it open again (derived default allow).
    let r = app
        .admin_patch(&path, &json!({"ip_rules": {"allow": []}}))
        .await?
        .expect_status(200);
    assert_eq!(r.json()["ip_rules"]["default_access"], "allow");
    assert_token_from(&app, &derived, "192.0.2.1", true).await;

    // Created with an explicit `allow` default: the same patch is refused, so the profile
    // never silently switches from "everyone" to "only these".
    let explicit = app
        .oauth_fixture(
            &["stock:read"],
            json!({"ip_rules": {"default_access": "allow", "deny": ["192.0.2.0/24"]}}),
        )
        .await?;
    let path = format!("/access-profiles/{}", explicit.profile_id());
    let r = app
        .admin_patch(&path, &json!({"ip_rules": {"allow": ["10.0.0.0/8"]}}))
        .await?;
    assert_eq!(field_errors(&r), pairs(&[("ip_rules.allow", "no_effect")]));
    assert_token_from(&app, &explicit, "198.51.100.1", true).await;
    // Dropping the explicit default (null in a merge patch) lets it be derived.
    let r = app
        .admin_patch(
            &path,
            &json!({"ip_rules": {"default_access": null, "allow": ["10.0.0.0/8"]}}),
        )
        .await?
        .expect_status(200);
    assert_eq!(
        r.json()["ip_rules"],
        json!({"default_access": "deny", "allow": ["10.0.0.0/8"], "deny": ["192.0.2.0/24"]})
    );
    assert_token_from(&app, &explicit, "198.51.100.1", false).await;
    assert_token_from(&app, &explicit, "10.0.0.1", true).await;

    // An explicit deny stays when the list is emptied: nobody gets in.
    let r = app
        .admin_patch(
            &path,
            &json!({"ip_rules": {"default_access": "deny", "allow": []}}),
        )
        .await?
        .expect_status(200);
    assert_eq!(r.json()["ip_rules"]["default_access"], "deny");
    assert_token_from(&app, &explicit, "10.0.0.1", false).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_rules_take_a_comma_list_and_clear_host_bits() -> anyhow::Result<()> {
    let app = spawn_behind_proxy().await?;
    let collection = app
        .create_collection(
            &unique("orders"),
            "https://orders.example.com/api",
            &["orders:read"],
        )
        .await?;
    let client = app.create_client(&unique("acme")).await?;
    let profile = app
        .create_profile(
            str_field(&client, "id")?,
            &json!({
                "name": unique("keys"),
                "auth_type": "token",
                "collections": [collection["id"]],
            }),
        )
        .await?;
    if let Some(key) = profile["auth_token"].as_str() {
        app.record_secret(key);
    }
    let keys = format!("/access-profiles/{}/api-keys", str_field(&profile, "id")?);
    // Before: the string was a type error and `106.226.100.3/20` was invalid_ip.
    let r = app
        .admin_post(
            &keys,
            &json!({"name": "seed", "ip_rules": {
                "allow": "106.226.100.3/20, 10.0.0.1 ,",
                "deny": "106.226.101.0/24",
            }}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 201, "{r:?}");
    let created = r.json();
    let key = str_field(&created, "auth_token")?.to_owned();
    app.record_secret(&key);
    assert_eq!(
        created["ip_rules"],
        json!({"allow": ["106.226.96.0/20", "10.0.0.1"], "deny": ["106.226.101.0/24"]}),
        "{created}"
    );
    let (id, secret) = (
        str_field(&collection, "introspection_client_id")?,
        str_field(&collection, "introspection_client_secret")?,
    );
    for (ip, active) in [
        ("106.226.102.1", true),
        ("10.0.0.1", true),
        ("106.226.101.7", false), // deny wins
        ("106.226.112.1", false), // outside the /20
        ("10.0.0.2", false),
    ] {
        let reply = introspect_from(&app, Auth::Basic(id, secret), &key, Some(ip)).await?;
        if active {
            assert_active(&reply);
        } else {
            assert_inactive(&reply);
        }
    }
    // Per-entry errors keep their index in the split list.
    let r = app
        .admin_post(
            &keys,
            &json!({"name": "bad", "ip_rules": {"allow": "10.0.0.1,, nope", "deny": ["x"]}}),
        )
        .await?;
    assert_eq!(
        field_errors(&r),
        pairs(&[
            ("ip_rules.allow[1]", "invalid_ip"),
            ("ip_rules.deny[0]", "invalid_ip")
        ])
    );
    // A patch with the string form.
    let key_path = format!("/api-keys/{}", str_field(&created, "id")?);
    let r = app
        .admin_patch(
            &key_path,
            &json!({"ip_rules": {"allow": "2001:db8:1234::1/32"}}),
        )
        .await?
        .expect_status(200);
    assert_eq!(r.json()["ip_rules"]["allow"], json!(["2001:db8::/32"]));
    Ok(())
}

/// Rows written before m0009 spelled `default_access` out. The test writes such rows, marks
/// m0009 as not applied, and restarts: the migration runs again on them.
#[tokio::test(flavor = "multi_thread")]
async fn migration_keeps_every_stored_rows_behaviour() -> anyhow::Result<()> {
    let mut app = spawn_behind_proxy().await?;
    let ineffective = app.oauth_fixture(&["a:read"], json!({})).await?;
    let listed = app.oauth_fixture(&["b:read"], json!({})).await?;
    let open = app.oauth_fixture(&["c:read"], json!({})).await?;
    let closed = app.oauth_fixture(&["d:read"], json!({})).await?;
    let old_rows = [
        // The old "list that does nothing": everyone but 192.0.2.0/24 got in.
        (
            &ineffective,
            r#"{"default_access":"allow","allow":["10.0.0.0/8","198.51.100.7"],"deny":["192.0.2.0/24"]}"#,
        ),
        (
            &listed,
            r#"{"default_access":"deny","allow":["10.0.0.0/8"],"deny":[]}"#,
        ),
        (&open, r#"{"default_access":"allow","allow":[],"deny":[]}"#),
        (&closed, r#"{"default_access":"deny","allow":[],"deny":[]}"#),
    ];
    app.shutdown().await?;
    {
        let db = Database::connect(&app.database_url).await?;
        for (fx, text) in &old_rows {
            db.execute_unprepared(&format!(
                "UPDATE access_profiles SET ip_rules = '{text}' WHERE id = '{}'",
                fx.profile_id()
            ))
            .await?;
        }
        let done = db
            .execute_unprepared(
                "DELETE FROM seaql_migrations WHERE version = 'm0009_ip_rules_defaults'",
            )
            .await?;
        assert_eq!(done.rows_affected(), 1, "m0009 was applied once");
        db.close().await?;
    }
    app.restart().await?;

    let show = |fx: &Fixture| {
        let path = format!("/access-profiles/{}", fx.profile_id());
        let app = &app;
        async move {
            app.admin_get(&path)
                .await
                .map(|r| r.expect_status(200).json()["ip_rules"].clone())
        }
    };
    // The ineffective list moved out; default allow stays; behaviour unchanged.
    assert_eq!(
        show(&ineffective).await?,
        json!({"default_access": "allow", "allow": [], "deny": ["192.0.2.0/24"]})
    );
    assert_token_from(&app, &ineffective, "203.0.113.1", true).await;
    assert_token_from(&app, &ineffective, "192.0.2.1", false).await;
    let (events, _) = app.admin_list_all("/audit-events", 500).await?;
    let moved: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "profile.ip_rules.migrate")
        .collect();
    assert_eq!(
        moved.len(),
        1,
        "one event, for the one moved list: {moved:?}"
    );
    assert_eq!(moved[0]["actor"], "system");
    assert_eq!(moved[0]["target_type"], "access_profile");
    assert_eq!(moved[0]["target_id"], ineffective.profile_id());
    assert_eq!(
        moved[0]["details"]["dropped_allow"],
        json!(["10.0.0.0/8", "198.51.100.7"])
    );
    assert!(moved[0]["details"]["why"].is_string(), "{}", moved[0]);
    // Its explicit allow stays stored: re-adding the list is refused, not silently applied.
    let r = app
        .admin_patch(
            &format!("/access-profiles/{}", ineffective.profile_id()),
            &json!({"ip_rules": {"allow": ["10.0.0.0/8"]}}),
        )
        .await?;
    assert_eq!(field_errors(&r), pairs(&[("ip_rules.allow", "no_effect")]));

    // deny + list: the same as derived, so it now follows the list.
    assert_eq!(show(&listed).await?["default_access"], "deny");
    assert_token_from(&app, &listed, "10.0.0.1", true).await;
    assert_token_from(&app, &listed, "203.0.113.1", false).await;
    // allow, no lists: open, and a later allow list narrows it.
    assert_eq!(show(&open).await?["default_access"], "allow");
    assert_token_from(&app, &open, "203.0.113.1", true).await;
    app.admin_patch(
        &format!("/access-profiles/{}", open.profile_id()),
        &json!({"ip_rules": {"allow": ["10.0.0.0/8"]}}),
    )
    .await?
    .expect_status(200);
    assert_token_from(&app, &open, "203.0.113.1", false).await;
    // deny, no lists: closed, and stays explicit.
    assert_eq!(show(&closed).await?["default_access"], "deny");
    assert_token_from(&app, &closed, "10.0.0.1", false).await;

    // What is stored: the key is gone where it was derived, kept where it was not.
    let db = Database::connect(&app.database_url).await?;
    for (fx, explicit) in [
        (&ineffective, true),
        (&listed, false),
        (&open, false),
        (&closed, true),
    ] {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!(
                    "SELECT ip_rules FROM access_profiles WHERE id = '{}'",
                    fx.profile_id()
                ),
            ))
            .await?
            .unwrap_or_else(|| panic!("no row for {}", fx.profile_id()));
        let text: String = row.try_get("", "ip_rules")?;
        assert_eq!(
            text.contains("default_access"),
            explicit,
            "{}: {text}",
            fx.profile_id()
        );
    }
    db.close().await?;
    Ok(())
}
