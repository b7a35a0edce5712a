//! API keys (`auth_type: token` profiles): the first key on profile creation, admin CRUD,
//! the key format, the per-profile limit, refresh with and without grace, introspection
//! (active answer, every reason to be inactive, audience isolation, per-key IP rules that
//! only narrow the profile's), revocation, lazy `last_used_at`, and secret hygiene.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use gatehouse_tests::{
    Auth, Reply, TestApp, Value, assert_active, assert_inactive, captured_logs,
    collection_credentials, hex_lower, json, random_base62, scope_set, spawn_app, spawn_app_with,
    str_field, unique,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Length of an API key: `ghk_` + 43 base62 + 6 checksum characters.
const KEY_LEN: usize = 53;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Days since 1970-01-01 → (year, month, day) (proleptic Gregorian, H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Unix seconds → RFC 3339 UTC (`2030-01-02T03:04:05Z`).
fn rfc3339(unix: i64) -> String {
    let (y, m, d) = civil_from_days(unix.div_euclid(86_400));
    let s = unix.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// RFC 3339 → Unix seconds (fraction dropped; `Z` or a numeric offset).
fn parse_rfc3339(text: &str) -> Option<i64> {
    let num = |a: usize, b: usize| text.get(a..b)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let rest = text.get(19..)?;
    let rest = match rest.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    let offset = if rest.eq_ignore_ascii_case("z") {
        0
    } else {
        let sign = match rest.get(..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let oh = rest.get(1..3)?.parse::<i64>().ok()?;
        let om = rest.get(4..6)?.parse::<i64>().ok()?;
        sign * (oh * 3600 + om * 60)
    };
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset)
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected strings in {v}"))
                .to_owned()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// Panics unless `key` has the documented shape: `ghk_` + 49 base62 characters.
#[track_caller]
fn assert_key_format(key: &str) {
    assert!(
        key.starts_with("ghk_"),
        "API keys start with ghk_: {key:.8}…"
    );
    assert_eq!(key.len(), KEY_LEN, "ghk_ + 43 random + 6 checksum");
    assert!(
        key.bytes().skip(4).all(|b| b.is_ascii_alphanumeric()),
        "base62 after the prefix"
    );
}

/// `key` with the character at `index` replaced by a different alphanumeric one.
fn with_char_changed(key: &str, index: usize) -> String {
    let mut chars: Vec<char> = key.chars().collect();
    chars[index] = match chars[index] {
        'a' => 'b',
        '9' => '8',
        _ => 'a',
    };
    chars.into_iter().collect()
}

/// A collection, a client, and a `token` profile on that collection (with its first key).
struct KeyFixture {
    collection: Value,
    client: Value,
    profile: Value,
    /// The first key's value (`auth_token` of the profile create answer).
    key: String,
    /// The first key's id (`api_key_id`).
    key_id: String,
}

impl KeyFixture {
    fn profile_id(&self) -> &str {
        self.profile["id"].as_str().unwrap_or_default()
    }

    fn client_id(&self) -> &str {
        self.client["id"].as_str().unwrap_or_default()
    }

    fn collection_id(&self) -> &str {
        self.collection["id"].as_str().unwrap_or_default()
    }

    fn oauth_client_id(&self) -> &str {
        self.profile["oauth_client_id"].as_str().unwrap_or_default()
    }

    /// The collection's introspection credentials as HTTP Basic.
    fn col(&self) -> Auth<'_> {
        Auth::Basic(
            self.collection["introspection_client_id"]
                .as_str()
                .unwrap_or_default(),
            self.collection["introspection_client_secret"]
                .as_str()
                .unwrap_or_default(),
        )
    }
}

/// Creates a `token` profile on `client_id` (asserts 201), records its `auth_token` and
/// returns the create answer.
async fn create_token_profile(
    app: &TestApp,
    client_id: &str,
    collections: &[&Value],
    extra: Value,
) -> anyhow::Result<Value> {
    let ids: Vec<Value> = collections.iter().map(|c| c["id"].clone()).collect();
    let mut body = json!({
        "name": unique("keys"),
        "description": "API key consumer",
        "auth_type": "token",
        "collections": ids,
    });
    if let (Some(obj), Value::Object(extra)) = (body.as_object_mut(), extra) {
        obj.extend(extra);
    }
    let reply = app
        .admin_post(&format!("/clients/{client_id}/access-profiles"), &body)
        .await?;
    assert_eq!(
        reply.status.as_u16(),
        201,
        "create token profile: {reply:?}"
    );
    let created = reply.json();
    if let Some(token) = created["auth_token"].as_str() {
        app.record_secret(token);
    }
    Ok(created)
}

async fn key_fixture(app: &TestApp, profile_extra: Value) -> anyhow::Result<KeyFixture> {
    let name = unique("orders");
    let collection = app
        .create_collection(
            &name,
            &format!("https://{name}.example.com/api"),
            &["orders:read", "orders:write"],
        )
        .await?;
    let client = app.create_client(&unique("acme")).await?;
    let profile = create_token_profile(
        app,
        str_field(&client, "id")?,
        &[&collection],
        profile_extra,
    )
    .await?;
    let key = str_field(&profile, "auth_token")?.to_owned();
    let key_id = str_field(&profile, "api_key_id")?.to_owned();
    Ok(KeyFixture {
        collection,
        client,
        profile,
        key,
        key_id,
    })
}

/// `POST /access-profiles/{id}/api-keys` (any status; records an `auth_token` it carries).
async fn post_key(app: &TestApp, profile_id: &str, body: &Value) -> anyhow::Result<Reply> {
    let reply = app
        .admin_post(&format!("/access-profiles/{profile_id}/api-keys"), body)
        .await?;
    if reply.status.is_success()
        && let Some(token) = reply.json()["auth_token"].as_str()
    {
        app.record_secret(token);
    }
    Ok(reply)
}

/// Creates an API key (asserts 201); returns the create answer.
async fn create_key(app: &TestApp, profile_id: &str, body: &Value) -> anyhow::Result<Value> {
    let reply = post_key(app, profile_id, body).await?;
    assert_eq!(reply.status.as_u16(), 201, "create API key: {reply:?}");
    Ok(reply.json())
}

/// `POST /api-keys/{id}/refresh` (asserts 200; records the new value); returns the answer.
async fn refresh_key(app: &TestApp, key_id: &str, body: &Value) -> anyhow::Result<Value> {
    let reply = app
        .admin_post(&format!("/api-keys/{key_id}/refresh"), body)
        .await?;
    assert_eq!(reply.status.as_u16(), 200, "refresh API key: {reply:?}");
    let answer = reply.json();
    if let Some(token) = answer["auth_token"].as_str() {
        app.record_secret(token);
    }
    Ok(answer)
}

/// Introspects `key` as `auth`, with `client_ip` when given.
async fn introspect_from(
    app: &TestApp,
    auth: Auth<'_>,
    key: &str,
    client_ip: Option<&str>,
) -> anyhow::Result<Reply> {
    let mut form = vec![("token", key)];
    if let Some(ip) = client_ip {
        form.push(("client_ip", ip));
    }
    app.introspect(auth, &form).await
}

/// Polls `GET /api-keys/{id}` for up to `within` until `pred` holds; returns the last body.
async fn poll_key(
    app: &TestApp,
    key_id: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let start = Instant::now();
    loop {
        let body = app
            .admin_get(&format!("/api-keys/{key_id}"))
            .await?
            .expect_status(200)
            .json();
        if pred(&body) || start.elapsed() >= within {
            return Ok(body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// True when `haystack` contains `secret` as text or as (lower-case) hex.
fn leaks(haystack: &str, secret: &str) -> bool {
    haystack.contains(secret) || haystack.to_ascii_lowercase().contains(&hex_lower(secret))
}

/// Asserts the public fields of an API key resource (no `auth_token`).
#[track_caller]
fn assert_key_resource(key: &Value, id: &str, profile_id: &str, value: &str) {
    assert_eq!(key["id"].as_str(), Some(id), "{key}");
    assert_eq!(key["profile_id"].as_str(), Some(profile_id), "{key}");
    assert!(
        key.get("auth_token").is_none_or(Value::is_null),
        "a read never shows auth_token: {key}"
    );
    assert_eq!(
        key["prefix"].as_str(),
        value.get(..12),
        "prefix is the first 12 characters (ghk_ + 8): {key}"
    );
    assert!(
        key["created_at"]
            .as_str()
            .and_then(parse_rfc3339)
            .is_some_and(|t| (t - now()).abs() < 600),
        "created_at is an RFC 3339 time of now: {key}"
    );
    assert!(key["ip_rules"]["allow"].is_array(), "{key}");
    assert!(key["ip_rules"]["deny"].is_array(), "{key}");
    assert!(key["active"].is_boolean(), "{key}");
    assert!(key.get("last_used_at").is_some(), "{key}");
    assert!(key.get("expires_at").is_some(), "{key}");
}

// ---------------------------------------------------------------------------------------------
// Creation and admin CRUD
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_key_token_profile_returns_its_first_key_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;

    // The create answer: the first key and its id, no oauth2 secret.
    assert_eq!(fx.profile["auth_type"], "token", "{}", fx.profile);
    assert!(fx.profile_id().starts_with("prf_"), "{}", fx.profile);
    assert!(fx.oauth_client_id().starts_with("gco_"), "{}", fx.profile);
    assert_key_format(&fx.key);
    assert!(fx.key_id.starts_with("key_"), "{}", fx.profile);
    assert!(
        fx.profile
            .get("oauth_client_secret")
            .is_none_or(Value::is_null),
        "a token profile has no oauth_client_secret: {}",
        fx.profile
    );

    // Reads of the profile never show the key.
    for path in [
        format!("/access-profiles/{}", fx.profile_id()),
        format!("/clients/{}/access-profiles", fx.client_id()),
    ] {
        let r = app.admin_get(&path).await?.expect_status(200);
        assert!(
            !r.text().contains(&fx.key),
            "auth_token in GET {path}: {r:?}"
        );
    }
    let got = app
        .admin_get(&format!("/access-profiles/{}", fx.profile_id()))
        .await?
        .expect_status(200)
        .json();
    assert!(got.get("auth_token").is_none_or(Value::is_null), "{got}");
    assert_eq!(got["auth_type"], "token", "{got}");

    // The first key is an ordinary key of the profile.
    let list = app
        .admin_get(&format!("/access-profiles/{}/api-keys", fx.profile_id()))
        .await?
        .expect_status(200);
    assert!(!list.text().contains(&fx.key), "{list:?}");
    let body = list.json();
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert!(body.get("next_cursor").is_some(), "{body}");
    assert_key_resource(&items[0], &fx.key_id, fx.profile_id(), &fx.key);
    assert_eq!(items[0]["active"], true, "{body}");
    assert!(items[0]["last_used_at"].is_null(), "never used yet: {body}");
    assert!(items[0]["expires_at"].is_null(), "{body}");

    let one = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200);
    assert!(!one.text().contains(&fx.key), "{one:?}");
    assert_key_resource(&one.json(), &fx.key_id, fx.profile_id(), &fx.key);

    // And it works.
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_crud_and_validation() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let pid = fx.profile_id().to_owned();
    let expires = now() + 86_400 * 30;

    let reply = post_key(
        &app,
        &pid,
        &json!({
            "name": "ci-runner",
            "expires_at": rfc3339(expires),
            "ip_rules": {"allow": ["198.51.100.0/24"], "deny": ["198.51.100.7"]},
        }),
    )
    .await?;
    assert_eq!(reply.status.as_u16(), 201, "{reply:?}");
    let created = reply.json();
    let id = str_field(&created, "id")?.to_owned();
    let value = str_field(&created, "auth_token")?.to_owned();
    assert!(id.starts_with("key_"), "{created}");
    assert_ne!(id, fx.key_id);
    assert_key_format(&value);
    assert_ne!(value, fx.key, "every key is random");
    assert_eq!(
        created["profile_id"].as_str(),
        Some(pid.as_str()),
        "{created}"
    );
    assert_eq!(created["name"], "ci-runner", "{created}");
    assert_eq!(created["active"], true, "keys start active: {created}");
    assert_eq!(
        created["expires_at"].as_str().and_then(parse_rfc3339),
        Some(expires),
        "{created}"
    );
    assert_eq!(
        strings(&created["ip_rules"]["allow"]),
        set(&["198.51.100.0/24"]),
        "{created}"
    );
    assert_eq!(
        created["ip_rules"]["deny"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(created["prefix"].as_str(), value.get(..12), "{created}");
    assert!(created["last_used_at"].is_null(), "{created}");
    assert!(created["created_at"].is_string(), "{created}");

    // A key created inactive.
    let off = create_key(&app, &pid, &json!({"name": "spare", "active": false})).await?;
    assert_eq!(off["active"], false, "{off}");
    let off_value = str_field(&off, "auth_token")?.to_owned();
    assert_inactive(&app.introspect_token(fx.col(), &off_value).await?);

    // The list has all three, none with its value.
    let list = app
        .admin_get(&format!("/access-profiles/{pid}/api-keys"))
        .await?
        .expect_status(200);
    for v in [&fx.key, &value, &off_value] {
        assert!(!list.text().contains(v.as_str()), "value in list: {list:?}");
    }
    let listed = list.json();
    let ids: BTreeSet<String> = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|k| k["id"].as_str().map(str::to_owned))
        .collect();
    let off_id = str_field(&off, "id")?;
    assert_eq!(ids, set(&[&fx.key_id, &id, off_id]), "{listed}");
    // Paging works on keys like on every list.
    let (paged, pages) = app
        .admin_list_all(&format!("/access-profiles/{pid}/api-keys"), 1)
        .await?;
    assert_eq!(paged.len(), 3, "{paged:?}");
    assert!(pages >= 3, "limit=1 pages through the keys");

    // GET.
    let got = app
        .admin_get(&format!("/api-keys/{id}"))
        .await?
        .expect_status(200);
    assert!(!got.text().contains(&value), "{got:?}");
    let got = got.json();
    assert_key_resource(&got, &id, &pid, &value);
    assert_eq!(got["name"], "ci-runner");

    // PATCH (merge patch): rename, drop the expiry, change the rules; the rest stays.
    let patched = app
        .admin_patch(
            &format!("/api-keys/{id}"),
            &json!({"name": "ci-runner-2", "expires_at": null, "ip_rules": {"allow": [], "deny": ["203.0.113.0/24"]}}),
        )
        .await?
        .expect_status(200);
    assert!(!patched.text().contains(&value), "{patched:?}");
    let patched = patched.json();
    assert_eq!(patched["name"], "ci-runner-2", "{patched}");
    assert!(patched["expires_at"].is_null(), "{patched}");
    assert_eq!(
        patched["ip_rules"]["allow"].as_array().map(Vec::len),
        Some(0),
        "{patched}"
    );
    assert_eq!(
        strings(&patched["ip_rules"]["deny"]),
        set(&["203.0.113.0/24"]),
        "{patched}"
    );
    assert_eq!(patched["active"], true, "{patched}");
    assert_eq!(patched["prefix"].as_str(), value.get(..12), "{patched}");
    // A partial patch keeps what it does not name.
    let patched = app
        .admin_patch(&format!("/api-keys/{id}"), &json!({"active": false}))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(patched["active"], false, "{patched}");
    assert_eq!(patched["name"], "ci-runner-2", "{patched}");
    assert_eq!(
        strings(&patched["ip_rules"]["deny"]),
        set(&["203.0.113.0/24"]),
        "{patched}"
    );

    // Validation.
    let r = post_key(
        &app,
        &pid,
        &json!({"name": "bad", "ip_rules": {"allow": ["999.1.1.1"], "deny": []}}),
    )
    .await?;
    r.expect_error(422, "validation_failed");
    assert!(r.json()["fields"].is_array(), "{r:?}");
    let r = post_key(
        &app,
        &pid,
        &json!({"name": "bad", "ip_rules": {"allow": [], "deny": ["10.0.0.0/33"]}}),
    )
    .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let r = app
        .admin_patch(
            &format!("/api-keys/{id}"),
            &json!({"ip_rules": {"allow": ["not-an-ip"], "deny": []}}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    let r = post_key(
        &app,
        &pid,
        &json!({"name": "bad", "expires_at": "tomorrow"}),
    )
    .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    // Not on an oauth2 profile.
    // (scope names are unique across collections: the fixture needs one of its own)
    let oauth = app.oauth_fixture(&["refunds:read"], json!({})).await?;
    let r = post_key(&app, oauth.profile_id(), &json!({"name": "nope"})).await?;
    assert_eq!(
        r.status.as_u16(),
        422,
        "API keys only on token profiles: {r:?}"
    );
    let r = app
        .admin_get(&format!("/access-profiles/{}/api-keys", oauth.profile_id()))
        .await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_eq!(r.json()["items"], json!([]), "{r:?}");
    // Unknown profile / key.
    let r = post_key(&app, "prf_nope", &json!({"name": "nope"})).await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    let r = app.admin_get("/access-profiles/prf_nope/api-keys").await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    for r in [
        app.admin_get("/api-keys/key_nope").await?,
        app.admin_patch("/api-keys/key_nope", &json!({"name": "x"}))
            .await?,
        app.admin_delete("/api-keys/key_nope").await?,
        app.admin_post("/api-keys/key_nope/refresh", &json!({}))
            .await?,
    ] {
        assert_eq!(r.status.as_u16(), 404, "{r:?}");
    }

    // DELETE → 204, then 404, and the value is dead.
    let r = app.admin_delete(&format!("/api-keys/{id}")).await?;
    assert_eq!(r.status.as_u16(), 204, "{r:?}");
    let r = app.admin_get(&format!("/api-keys/{id}")).await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    let r = app.admin_delete(&format!("/api-keys/{id}")).await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    let listed = app
        .admin_get(&format!("/access-profiles/{pid}/api-keys"))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_inactive(&introspect_from(&app, fx.col(), &value, Some("198.51.100.1")).await?);
    // The other keys are untouched.
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_limit_is_twenty_per_profile() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let pid = fx.profile_id().to_owned();
    // The profile's first key counts: 19 more make 20.
    let mut last = Value::Null;
    for i in 2..=20 {
        last = create_key(&app, &pid, &json!({"name": format!("key-{i}")})).await?;
    }
    let (all, _) = app
        .admin_list_all(&format!("/access-profiles/{pid}/api-keys"), 50)
        .await?;
    assert_eq!(all.len(), 20, "{all:?}");
    let r = post_key(&app, &pid, &json!({"name": "key-21"})).await?;
    r.expect_error(422, "validation_failed");
    assert!(r.json().get("auth_token").is_none(), "{r:?}");
    let (all, _) = app
        .admin_list_all(&format!("/access-profiles/{pid}/api-keys"), 50)
        .await?;
    assert_eq!(all.len(), 20, "the refused key was not stored: {all:?}");
    // The 20th works.
    assert_active(
        &app.introspect_token(fx.col(), str_field(&last, "auth_token")?)
            .await?,
    );
    // Deleting one makes room again.
    let r = app
        .admin_delete(&format!("/api-keys/{}", str_field(&last, "id")?))
        .await?;
    assert_eq!(r.status.as_u16(), 204, "{r:?}");
    create_key(&app, &pid, &json!({"name": "key-20-again"})).await?;
    post_key(&app, &pid, &json!({"name": "key-21-again"}))
        .await?
        .expect_error(422, "validation_failed");
    // The limit is per profile: another token profile of the same client is not affected.
    let other = create_token_profile(&app, fx.client_id(), &[&fx.collection], json!({})).await?;
    create_key(&app, str_field(&other, "id")?, &json!({"name": "other-2"})).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_limit_is_configurable() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| cfg.max_api_keys_per_profile = 3).await?;
    let fx = key_fixture(&app, json!({})).await?;
    create_key(&app, fx.profile_id(), &json!({"name": "two"})).await?;
    create_key(&app, fx.profile_id(), &json!({"name": "three"})).await?;
    post_key(&app, fx.profile_id(), &json!({"name": "four"}))
        .await?
        .expect_error(422, "validation_failed");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Introspection
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_key_introspection_active_answer() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let (col_id, col_secret) = collection_credentials(&fx.collection)?;
    let admin = app.admin_token().await?;

    for auth in [
        Auth::Basic(col_id, col_secret),
        Auth::Post(col_id, col_secret),
        Auth::Bearer(&admin),
    ] {
        let reply = app.introspect_token(auth, &fx.key).await?;
        let body = assert_active(&reply);
        assert_eq!(body["auth_type"], "token", "{auth:?}: {body}");
        assert_eq!(body["token_type"], "api_key", "{body}");
        assert_eq!(body["profile_id"].as_str(), Some(fx.profile_id()), "{body}");
        assert_eq!(
            body["client"]["id"].as_str(),
            Some(fx.client_id()),
            "{body}"
        );
        assert_eq!(body["client"]["name"], fx.client["name"], "{body}");
        assert_eq!(
            body["client_id"].as_str(),
            Some(fx.oauth_client_id()),
            "{body}"
        );
        assert_eq!(body["sub"].as_str(), Some(fx.oauth_client_id()), "{body}");
        assert_eq!(
            strings(&body["collections"]),
            set(&[fx.collection_id()]),
            "{body}"
        );
        assert_eq!(
            body["scope"].as_str().map(scope_set),
            Some(set(&["orders:read", "orders:write"])),
            "{body}"
        );
        let ttl = body["gatehouse_cache_ttl"]
            .as_i64()
            .unwrap_or_else(|| panic!("gatehouse_cache_ttl is an integer: {body}"));
        assert!(ttl >= 0, "{body}");
        assert!(body.get("exp").is_none(), "no expires_at, no exp: {body}");
        // Never the key itself nor a secret.
        let text = reply.text();
        assert!(!text.contains(&fx.key), "{reply:?}");
        assert!(!text.contains(col_secret), "{reply:?}");
    }

    // A key with expires_at carries exp = expires_at; the cache TTL never outlives it.
    let expires = now() + 3600;
    let k = create_key(
        &app,
        fx.profile_id(),
        &json!({"name": "expiring", "expires_at": rfc3339(expires)}),
    )
    .await?;
    let body = assert_active(
        &app.introspect_token(fx.col(), str_field(&k, "auth_token")?)
            .await?,
    );
    assert_eq!(body["exp"].as_i64(), Some(expires), "{body}");
    let ttl = body["gatehouse_cache_ttl"].as_i64().expect("cache ttl");
    assert!(ttl >= 0 && ttl <= expires - now() + 2, "{body}");
    assert_eq!(body["token_type"], "api_key", "{body}");

    // A profile narrowed to one scope reports only that one.
    let narrow = create_token_profile(
        &app,
        fx.client_id(),
        &[&fx.collection],
        json!({"scopes": ["orders:read"]}),
    )
    .await?;
    let body = assert_active(
        &app.introspect_token(fx.col(), str_field(&narrow, "auth_token")?)
            .await?,
    );
    assert_eq!(
        body["scope"].as_str().map(scope_set),
        Some(set(&["orders:read"])),
        "{body}"
    );
    assert_eq!(body["profile_id"], narrow["id"], "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_and_unknown_api_keys_are_inactive() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);

    let mut bad = vec![
        "ghk_short".to_owned(),
        "ghk_".to_owned(),
        // One character changed in the random part, and one in the checksum.
        with_char_changed(&fx.key, 10),
        with_char_changed(&fx.key, KEY_LEN - 1),
        // Truncated, extended, other prefix, lower-cased.
        fx.key[..KEY_LEN - 1].to_owned(),
        format!("{}A", fx.key),
        fx.key.replacen("ghk_", "ghx_", 1),
        // A random 53-character string, and a random one with the right prefix.
        random_base62(KEY_LEN),
        format!("ghk_{}", random_base62(KEY_LEN - 4)),
    ];
    if fx.key.to_lowercase() != fx.key {
        bad.push(fx.key.to_lowercase());
    }
    for token in &bad {
        let reply = app.introspect_token(fx.col(), token).await?;
        assert_inactive(&reply);
    }

    // Unknown but well-formed: a key that existed and was deleted.
    let k = create_key(&app, fx.profile_id(), &json!({"name": "doomed"})).await?;
    let value = str_field(&k, "auth_token")?.to_owned();
    assert_active(&app.introspect_token(fx.col(), &value).await?);
    let r = app
        .admin_delete(&format!("/api-keys/{}", str_field(&k, "id")?))
        .await?;
    assert_eq!(r.status.as_u16(), 204, "{r:?}");
    assert_inactive(&app.introspect_token(fx.col(), &value).await?);
    let admin = app.admin_token().await?;
    assert_inactive(&app.introspect_token(Auth::Bearer(&admin), &value).await?);

    // The real key is unaffected by all of this.
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_api_key_is_inactive() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let pid = fx.profile_id().to_owned();

    // Well in the past (beyond any 60 s leeway).
    let r = post_key(
        &app,
        &pid,
        &json!({"name": "expired", "expires_at": rfc3339(now() - 3600)}),
    )
    .await?;
    // Accepted (the key is simply never active), as a PATCH into the past is below.
    assert_eq!(r.status.as_u16(), 201, "past expires_at: {r:?}");
    let v = str_field(&r.json(), "auth_token")?.to_owned();
    assert_inactive(&app.introspect_token(fx.col(), &v).await?);

    // Expiring in 2 s: active now, inactive after.
    let k = create_key(
        &app,
        &pid,
        &json!({"name": "short", "expires_at": rfc3339(now() + 2)}),
    )
    .await?;
    let v = str_field(&k, "auth_token")?.to_owned();
    let body = assert_active(&app.introspect_token(fx.col(), &v).await?);
    assert!(body["exp"].is_i64(), "{body}");
    app.clock.advance(3.0);
    assert_inactive(&app.introspect_token(fx.col(), &v).await?);
    app.clock.advance(-3.0);

    // Patching an active key's expiry into the past ends it; removing the expiry revives it.
    let path = format!("/api-keys/{}", fx.key_id);
    let r = app
        .admin_patch(&path, &json!({"expires_at": rfc3339(now() - 3600)}))
        .await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_inactive(&app.introspect_token(fx.col(), &fx.key).await?);
    app.admin_patch(&path, &json!({"expires_at": null}))
        .await?
        .expect_status(200);
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivated_key_profile_or_client_makes_the_key_inactive() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);

    let key = format!("/api-keys/{}", fx.key_id);
    let profile = format!("/access-profiles/{}", fx.profile_id());
    let client = format!("/clients/{}", fx.client_id());
    for path in [&key, &profile, &client] {
        let r = app.admin_patch(path, &json!({"active": false})).await?;
        assert_eq!(r.status.as_u16(), 200, "deactivate {path}: {r:?}");
        assert_inactive(&app.introspect_token(fx.col(), &fx.key).await?);
        let admin = app.admin_token().await?;
        assert_inactive(&app.introspect_token(Auth::Bearer(&admin), &fx.key).await?);
        let r = app.admin_patch(path, &json!({"active": true})).await?;
        assert_eq!(r.status.as_u16(), 200, "reactivate {path}: {r:?}");
        assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    }
    // Deleting the profile kills its keys, and the keys themselves.
    let r = app.admin_delete(&profile).await?;
    assert_eq!(r.status.as_u16(), 204, "{r:?}");
    assert_inactive(&app.introspect_token(fx.col(), &fx.key).await?);
    let r = app.admin_get(&key).await?;
    assert_eq!(r.status.as_u16(), 404, "keys go with their profile: {r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_keys_are_isolated_by_audience() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let other = app
        .create_collection(
            "billing",
            "https://billing.example.com/api",
            &["billing:read"],
        )
        .await?;
    let (oid, osecret) = collection_credentials(&other)?;
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    // A collection the profile is not granted never sees the key active.
    assert_inactive(
        &app.introspect_token(Auth::Basic(oid, osecret), &fx.key)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Post(oid, osecret), &fx.key)
            .await?,
    );

    // A profile granted both: each collection sees only itself.
    let both =
        create_token_profile(&app, fx.client_id(), &[&fx.collection, &other], json!({})).await?;
    let value = str_field(&both, "auth_token")?;
    let body = assert_active(&app.introspect_token(fx.col(), value).await?);
    assert_eq!(
        strings(&body["collections"]),
        set(&[fx.collection_id()]),
        "{body}"
    );
    assert_eq!(
        body["scope"].as_str().map(scope_set),
        Some(set(&["orders:read", "orders:write"])),
        "a collection sees only its own scopes: {body}"
    );
    let body = assert_active(
        &app.introspect_token(Auth::Basic(oid, osecret), value)
            .await?,
    );
    assert_eq!(
        strings(&body["collections"]),
        set(&[str_field(&other, "id")?]),
        "{body}"
    );
    assert_eq!(
        body["scope"].as_str().map(scope_set),
        Some(set(&["billing:read"])),
        "{body}"
    );

    // Wrong credentials are refused outright.
    let r = app
        .introspect_token(Auth::Basic(oid, "wrong-secret-wrong-secret"), &fx.key)
        .await?;
    r.expect_error(401, "invalid_client");
    let r = app.introspect_token(Auth::None, &fx.key).await?;
    r.expect_error(401, "invalid_client");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_ip_allow_list_needs_and_checks_client_ip() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let k = create_key(
        &app,
        fx.profile_id(),
        &json!({"name": "office", "ip_rules": {"allow": ["198.51.100.0/24"], "deny": []}}),
    )
    .await?;
    let v = str_field(&k, "auth_token")?.to_owned();

    // No client_ip: inactive (ip_unknown).
    assert_inactive(&introspect_from(&app, fx.col(), &v, None).await?);
    for ip in ["198.51.100.200", "198.51.100.0", "198.51.100.255"] {
        let body = assert_active(&introspect_from(&app, fx.col(), &v, Some(ip)).await?);
        assert_eq!(
            body["gatehouse_cache_ttl"].as_i64(),
            Some(0),
            "IP rules apply, so no caching: {body}"
        );
    }
    for ip in [
        "198.51.101.1",
        "198.51.99.255",
        "203.0.113.9",
        "2001:db8::1",
    ] {
        assert_inactive(&introspect_from(&app, fx.col(), &v, Some(ip)).await?);
    }
    // A malformed client_ip never makes a key with IP rules active: 200 inactive.
    let r = introspect_from(&app, fx.col(), &v, Some("not-an-ip")).await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_eq!(r.json(), json!({"active": false}), "{r:?}");

    // The profile's first key has no rules of its own: no client_ip needed.
    let body = assert_active(&introspect_from(&app, fx.col(), &fx.key, None).await?);
    assert!(body["gatehouse_cache_ttl"].is_i64(), "{body}");
    assert_active(&introspect_from(&app, fx.col(), &fx.key, Some("198.51.101.1")).await?);

    // Patching the rules away lifts the restriction.
    app.admin_patch(
        &format!("/api-keys/{}", str_field(&k, "id")?),
        &json!({"ip_rules": {"allow": [], "deny": []}}),
    )
    .await?
    .expect_status(200);
    assert_active(&introspect_from(&app, fx.col(), &v, None).await?);
    assert_active(&introspect_from(&app, fx.col(), &v, Some("198.51.101.1")).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_ip_deny_list_ipv6() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let k = create_key(
        &app,
        fx.profile_id(),
        &json!({"name": "v6", "ip_rules": {"allow": [], "deny": ["2001:db8::/32"]}}),
    )
    .await?;
    let v = str_field(&k, "auth_token")?.to_owned();
    assert_inactive(&introspect_from(&app, fx.col(), &v, None).await?);
    for ip in [
        "2001:db8::5",
        "2001:db8::",
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
    ] {
        assert_inactive(&introspect_from(&app, fx.col(), &v, Some(ip)).await?);
    }
    for ip in ["2001:db9::5", "2001:db7:ffff::1", "198.51.100.1"] {
        assert_active(&introspect_from(&app, fx.col(), &v, Some(ip)).await?);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_ip_rules_only_narrow_the_profiles() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    // The profile denies by default and allows 203.0.113.0/24 except 203.0.113.7.
    let fx = key_fixture(
        &app,
        json!({"ip_rules": {"default_access": "deny", "allow": ["203.0.113.0/24"], "deny": ["203.0.113.7"]}}),
    )
    .await?;
    // A key that tries to allow more than the profile does.
    let k = create_key(
        &app,
        fx.profile_id(),
        &json!({"name": "wide", "ip_rules": {"allow": ["198.51.100.0/24", "203.0.113.0/24"], "deny": []}}),
    )
    .await?;
    let v = str_field(&k, "auth_token")?.to_owned();
    // Allowed by both.
    assert_active(&introspect_from(&app, fx.col(), &v, Some("203.0.113.5")).await?);
    // Allowed by the key, not by the profile (default deny).
    assert_inactive(&introspect_from(&app, fx.col(), &v, Some("198.51.100.1")).await?);
    // Allowed by the key, denied by the profile.
    assert_inactive(&introspect_from(&app, fx.col(), &v, Some("203.0.113.7")).await?);

    // A key narrower than the profile.
    let k = create_key(
        &app,
        fx.profile_id(),
        &json!({"name": "narrow", "ip_rules": {"allow": ["203.0.113.0/28"], "deny": ["203.0.113.3"]}}),
    )
    .await?;
    let n = str_field(&k, "auth_token")?.to_owned();
    assert_active(&introspect_from(&app, fx.col(), &n, Some("203.0.113.15")).await?);
    assert_inactive(&introspect_from(&app, fx.col(), &n, Some("203.0.113.16")).await?);
    assert_inactive(&introspect_from(&app, fx.col(), &n, Some("203.0.113.3")).await?);
    // The profile's own rules apply to its first key.
    assert_active(&introspect_from(&app, fx.col(), &fx.key, Some("203.0.113.16")).await?);
    assert_inactive(&introspect_from(&app, fx.col(), &fx.key, Some("198.51.100.1")).await?);
    assert_inactive(&introspect_from(&app, fx.col(), &fx.key, None).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_key_refresh_without_grace_retires_the_old_value_at_once() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let old = fx.key.clone();
    assert_active(&app.introspect_token(fx.col(), &old).await?);

    let answer = refresh_key(&app, &fx.key_id, &json!({})).await?;
    assert_eq!(
        answer["id"].as_str(),
        Some(fx.key_id.as_str()),
        "refresh keeps the id: {answer}"
    );
    let new = str_field(&answer, "auth_token")?.to_owned();
    assert_key_format(&new);
    assert_ne!(new, old);
    assert_eq!(answer["prefix"].as_str(), new.get(..12), "{answer}");

    assert_inactive(&app.introspect_token(fx.col(), &old).await?);
    let body = assert_active(&app.introspect_token(fx.col(), &new).await?);
    assert_eq!(body["profile_id"].as_str(), Some(fx.profile_id()), "{body}");

    // The resource shows the new prefix, never the value.
    let got = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200);
    assert!(
        !got.text().contains(&new) && !got.text().contains(&old),
        "{got:?}"
    );
    assert_key_resource(&got.json(), &fx.key_id, fx.profile_id(), &new);
    // Still one key.
    let listed = app
        .admin_get(&format!("/access-profiles/{}/api-keys", fx.profile_id()))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        listed["items"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );

    // A negative grace is refused.
    let r = app
        .admin_post(
            &format!("/api-keys/{}/refresh", fx.key_id),
            &json!({"grace_seconds": -5}),
        )
        .await?;
    assert_eq!(r.status.as_u16(), 422, "{r:?}");
    assert_active(&app.introspect_token(fx.col(), &new).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn api_key_refresh_with_grace_keeps_both_values() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let old = fx.key.clone();
    assert_active(&app.introspect_token(fx.col(), &old).await?);

    let answer = refresh_key(&app, &fx.key_id, &json!({"grace_seconds": 120})).await?;
    assert_eq!(answer["id"].as_str(), Some(fx.key_id.as_str()), "{answer}");
    let new = str_field(&answer, "auth_token")?.to_owned();
    assert_key_format(&new);
    assert_ne!(new, old);

    let body = assert_active(&app.introspect_token(fx.col(), &old).await?);
    assert_eq!(body["profile_id"].as_str(), Some(fx.profile_id()), "{body}");
    // The old value ends with its grace period.
    if let Some(exp) = body["exp"].as_i64() {
        assert!((exp - (now() + 120)).abs() <= 5, "{body}");
    }
    let ttl = body["gatehouse_cache_ttl"].as_i64().expect("cache ttl");
    assert!(
        ttl <= 122,
        "a cache never outlives the grace period: {body}"
    );
    assert_active(&app.introspect_token(fx.col(), &new).await?);

    // A second refresh without grace ends every older value.
    let answer = refresh_key(&app, &fx.key_id, &json!({})).await?;
    let newest = str_field(&answer, "auth_token")?.to_owned();
    assert_active(&app.introspect_token(fx.col(), &newest).await?);
    assert_inactive(&app.introspect_token(fx.col(), &new).await?);
    assert_inactive(&app.introspect_token(fx.col(), &old).await?);

    // A short grace really ends.
    let answer = refresh_key(&app, &fx.key_id, &json!({"grace_seconds": 1})).await?;
    let last = str_field(&answer, "auth_token")?.to_owned();
    assert_active(&app.introspect_token(fx.col(), &last).await?);
    app.clock.advance(2.5);
    assert_inactive(&app.introspect_token(fx.col(), &newest).await?);
    assert_active(&app.introspect_token(fx.col(), &last).await?);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Revocation
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_key_revocation_by_a_granted_collection() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let other = app
        .create_collection(
            "billing",
            "https://billing.example.com/api",
            &["billing:read"],
        )
        .await?;
    let (oid, osecret) = collection_credentials(&other)?;
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);

    // A collection not granted to the profile is refused, and the key stays active.
    for auth in [Auth::Basic(oid, osecret), Auth::Post(oid, osecret)] {
        let r = app.revoke_token(auth, &fx.key).await?;
        r.expect_error(400, "unauthorized_client");
        assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    }
    let got = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(got["active"], true, "{got}");

    // Another key of the same profile, to check only the revoked one dies.
    let k = create_key(&app, fx.profile_id(), &json!({"name": "keep"})).await?;
    let keep = str_field(&k, "auth_token")?.to_owned();

    // The granted collection revokes it.
    let r = app.revoke_token(fx.col(), &fx.key).await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_inactive(&app.introspect_token(fx.col(), &fx.key).await?);
    let admin = app.admin_token().await?;
    assert_inactive(&app.introspect_token(Auth::Bearer(&admin), &fx.key).await?);
    let got = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(
        got["active"], false,
        "a revoked key shows active: false: {got}"
    );
    // Revoking again is fine; with a hint too.
    let r = app
        .revoke(
            fx.col(),
            &[
                ("token", fx.key.as_str()),
                ("token_type_hint", "access_token"),
            ],
        )
        .await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_active(&app.introspect_token(fx.col(), &keep).await?);

    // An admin (gatehouse:admin) may revoke any key.
    let r = app.revoke_token(Auth::Bearer(&admin), &keep).await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    assert_inactive(&app.introspect_token(fx.col(), &keep).await?);

    // Unknown and malformed keys get 200 (RFC 7009 §2.2).
    let unknown = format!("ghk_{}", random_base62(KEY_LEN - 4));
    for token in [unknown.as_str(), "ghk_short"] {
        let r = app.revoke_token(fx.col(), token).await?;
        assert_eq!(r.status.as_u16(), 200, "{r:?}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// last_used_at
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_key_last_used_at_is_recorded_after_use() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let k = create_key(&app, fx.profile_id(), &json!({"name": "unused"})).await?;
    let unused_id = str_field(&k, "id")?.to_owned();
    let unused = str_field(&k, "auth_token")?.to_owned();

    let before = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200)
        .json();
    assert!(before["last_used_at"].is_null(), "{before}");

    let started = now();
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    let after = poll_key(&app, &fx.key_id, Duration::from_secs(5), |k| {
        k["last_used_at"].is_string()
    })
    .await?;
    let used = after["last_used_at"]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("last_used_at set within 5 s of a use: {after}"));
    assert!(
        used >= started - 2 && used <= now() + 2,
        "last_used_at is the time of use: {after}"
    );

    // An inactive answer is not a use: a refused introspection of the other key (wrong
    // audience) leaves it unused.
    let other = app
        .create_collection(
            "billing",
            "https://billing.example.com/api",
            &["billing:read"],
        )
        .await?;
    let (oid, osecret) = collection_credentials(&other)?;
    assert_inactive(
        &app.introspect_token(Auth::Basic(oid, osecret), &unused)
            .await?,
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = app
        .admin_get(&format!("/api-keys/{unused_id}"))
        .await?
        .expect_status(200)
        .json();
    assert!(still["last_used_at"].is_null(), "{still}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Secret hygiene
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn api_key_values_never_appear_in_reads_logs_or_the_database() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = key_fixture(
        &app,
        json!({"ip_rules": {"default_access": "allow", "allow": [], "deny": ["192.0.2.0/24"]}}),
    )
    .await?;
    let mut keys = vec![fx.key.clone()];
    let mut key_ids = vec![fx.key_id.clone()];
    let k = create_key(
        &app,
        fx.profile_id(),
        &json!({"name": "second", "ip_rules": {"allow": ["198.51.100.0/24"], "deny": []}}),
    )
    .await?;
    keys.push(str_field(&k, "auth_token")?.to_owned());
    key_ids.push(str_field(&k, "id")?.to_owned());
    // Use them: active, inactive (IP, audience), a malformed variant, a refresh with grace,
    // a revocation.
    assert_active(&introspect_from(&app, fx.col(), &keys[0], Some("198.51.100.1")).await?);
    assert_active(&introspect_from(&app, fx.col(), &keys[1], Some("198.51.100.1")).await?);
    assert_inactive(&introspect_from(&app, fx.col(), &keys[1], Some("192.0.2.1")).await?);
    assert_inactive(&introspect_from(&app, fx.col(), &keys[1], None).await?);
    let typo = with_char_changed(&keys[0], 20);
    app.record_secret(&typo);
    assert_inactive(&app.introspect_token(fx.col(), &typo).await?);
    let refreshed = refresh_key(&app, &key_ids[1], &json!({"grace_seconds": 60})).await?;
    keys.push(str_field(&refreshed, "auth_token")?.to_owned());
    assert_active(&introspect_from(&app, fx.col(), &keys[2], Some("198.51.100.1")).await?);
    let k = create_key(&app, fx.profile_id(), &json!({"name": "revoked"})).await?;
    keys.push(str_field(&k, "auth_token")?.to_owned());
    key_ids.push(str_field(&k, "id")?.to_owned());
    let r = app.revoke_token(fx.col(), &keys[3]).await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");
    // Let the lazy last_used_at write happen, so the DB is checked after it.
    poll_key(&app, &key_ids[0], Duration::from_secs(5), |k| {
        k["last_used_at"].is_string()
    })
    .await?;

    let secrets = app.seen_secrets();
    for k in &keys {
        assert_key_format(k);
        assert!(secrets.contains(k), "every auth_token is in the registry");
    }

    // 1. Every admin read.
    let mut reads = vec![
        format!("/access-profiles/{}", fx.profile_id()),
        format!("/clients/{}/access-profiles", fx.client_id()),
        format!("/access-profiles/{}/api-keys", fx.profile_id()),
        format!("/access-profiles/{}/api-keys?limit=1000", fx.profile_id()),
        "/audit-events?limit=1000".to_owned(),
    ];
    reads.extend(key_ids.iter().map(|id| format!("/api-keys/{id}")));
    for path in &reads {
        let r = app.admin_get(path).await?;
        assert_eq!(r.status.as_u16(), 200, "{path}: {r:?}");
        let body = r.text();
        for s in &secrets {
            assert!(
                !leaks(&body, s),
                "secret {s:.8}… appears in GET {path}: {body}"
            );
        }
        // Not even the random part past the displayed prefix.
        for k in &keys {
            assert!(!body.contains(&k[12..]), "key body in GET {path}: {body}");
        }
    }

    // 2. Every log line of this process.
    let logs = captured_logs();
    assert!(logs.contains("gatehouse"), "log capture works");
    for s in &secrets {
        assert!(!leaks(&logs, s), "secret {s:.8}… appears in the logs");
    }
    for k in &keys {
        assert!(
            !logs.contains(&k[12..]),
            "an API key's body appears in the logs"
        );
    }

    // 3. Every column of every table.
    let dump = app.db_dump().await?;
    for id in &key_ids {
        assert!(
            dump.contains(id.as_str()),
            "the dump reads the key table ({id})"
        );
    }
    for s in &secrets {
        assert!(
            !leaks(&dump, s),
            "secret {s:.8}… stored in clear in the database"
        );
    }
    for k in &keys {
        assert!(
            !dump.contains(&k[12..]),
            "an API key's body is stored in clear"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn last_used_at_is_written_in_batches_and_survives_a_restart() -> anyhow::Result<()> {
    let mut app = spawn_app().await?;
    let fx = key_fixture(&app, json!({})).await?;
    let started = now();
    assert_active(&app.introspect_token(fx.col(), &fx.key).await?);
    // Shown at once by this instance, written to the database with the counters (the
    // periodic flush, or at shutdown, as here).
    let shown = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200)
        .json();
    assert!(shown["last_used_at"].is_string(), "{shown}");
    app.restart().await?;
    let stored = app
        .admin_get(&format!("/api-keys/{}", fx.key_id))
        .await?
        .expect_status(200)
        .json();
    let used = stored["last_used_at"]
        .as_str()
        .and_then(parse_rfc3339)
        .unwrap_or_else(|| panic!("last_used_at written before the restart: {stored}"));
    assert!(used >= started - 2 && used <= now() + 2, "{stored}");
    Ok(())
}
