//! RFC 7662 introspection: who may ask, the active answer and its extension members, the
//! exact inactive answer, audience isolation between collections, ownership for oauth2
//! clients, IP rules with `client_ip` (IPv4, IPv6, CIDR edges), the hint, malformed requests,
//! and the verified-token cache never hiding a revocation or a deactivation.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_tests::{
    Auth, Reply, TestApp, Value, assert_active, assert_inactive, assert_no_store,
    collection_credentials, decode_jwt_unverified, json, random_base62, scope_set, spawn_app,
    str_field,
};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or_default()
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

/// Asserts a 401 `invalid_client` with `Cache-Control: no-store`; when `basic` is set, an
/// RFC 6749 §5.2 `WWW-Authenticate: Basic` challenge too.
#[track_caller]
/// 401 `invalid_client`, with the Basic challenge every 401 carries (RFC 9110 §15.5.2),
/// whichever way the client tried to authenticate.
fn assert_invalid_client(reply: &Reply) {
    reply.expect_error(401, "invalid_client");
    assert_no_store(reply);
    let www = reply.header("www-authenticate").unwrap_or_default();
    assert!(
        www.starts_with("Basic realm=\"gatehouse\""),
        "WWW-Authenticate: Basic expected: {reply:?}"
    );
}

/// A client resource with an oauth2 profile granted exactly these collections.
async fn profile_on(
    app: &TestApp,
    collections: &[&Value],
    extra: Value,
) -> anyhow::Result<(String, String, Value)> {
    let client = app.create_client(&gatehouse_tests::unique("acme")).await?;
    let ids: Vec<Value> = collections.iter().map(|c| c["id"].clone()).collect();
    let mut body = json!({
        "name": gatehouse_tests::unique("job"),
        "auth_type": "oauth2",
        "collections": ids,
    });
    if let (Some(obj), Value::Object(extra)) = (body.as_object_mut(), extra) {
        obj.extend(extra);
    }
    let profile = app.create_profile(str_field(&client, "id")?, &body).await?;
    Ok((
        str_field(&profile, "oauth_client_id")?.to_owned(),
        str_field(&profile, "oauth_client_secret")?.to_owned(),
        profile,
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn active_answer_carries_the_rfc7662_fields_and_extensions() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read", "orders:write"],
            json!({"token_ttl_seconds": 600}),
        )
        .await?;
    let (col_id, col_secret) = collection_credentials(&fx.collection)?;
    assert!(
        col_id.starts_with("grs_"),
        "introspection_client_id is a grs_ id: {}",
        fx.collection
    );
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (_, claims) = decode_jwt_unverified(&token)?;

    for auth in [fx.collection_basic(), fx.collection_post()] {
        let reply = app.introspect_token(auth, &token).await?;
        let body = assert_active(&reply);
        // RFC 7662 §2.2 members, equal to the token's own claims.
        assert_eq!(
            body["scope"].as_str().map(scope_set),
            Some(set(&["orders:read", "orders:write"])),
            "{auth:?}: {body}"
        );
        assert_eq!(
            body["client_id"].as_str(),
            Some(fx.oauth_client_id.as_str()),
            "{body}"
        );
        assert!(
            body["token_type"]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
            "token_type Bearer: {body}"
        );
        let exp = body["exp"].as_i64().expect("exp is an integer");
        let iat = body["iat"].as_i64().expect("iat is an integer");
        assert_eq!(Some(exp), claims["exp"].as_i64(), "{body}");
        assert_eq!(Some(iat), claims["iat"].as_i64(), "{body}");
        assert!((exp - iat - 600).abs() <= 2, "{body}");
        assert_eq!(
            body["sub"].as_str(),
            Some(fx.oauth_client_id.as_str()),
            "{body}"
        );
        assert_eq!(body["aud"], claims["aud"], "{body}");
        assert_eq!(body["aud"].as_str(), Some(fx.audience.as_str()), "{body}");
        assert_eq!(body["iss"].as_str(), Some(app.issuer.as_str()), "{body}");
        assert_eq!(body["jti"], claims["jti"], "{body}");
        assert!(
            body["jti"].as_str().is_some_and(|j| !j.is_empty()),
            "{body}"
        );
        // Gatehouse extensions.
        assert_eq!(body["profile_id"].as_str(), Some(fx.profile_id()), "{body}");
        assert!(fx.profile_id().starts_with("prf_"), "{}", fx.profile);
        assert_eq!(
            body["client"]["id"].as_str(),
            Some(fx.client_id()),
            "{body}"
        );
        assert!(fx.client_id().starts_with("cli_"), "{}", fx.client);
        assert_eq!(body["client"]["name"], fx.client["name"], "{body}");
        assert_eq!(body["auth_type"], "oauth2", "{body}");
        assert_eq!(
            strings(&body["collections"]),
            set(&[fx.collection_id()]),
            "{body}"
        );
        assert!(fx.collection_id().starts_with("col_"), "{}", fx.collection);
        let ttl = body["gatehouse_cache_ttl"]
            .as_i64()
            .unwrap_or_else(|| panic!("gatehouse_cache_ttl is an integer: {body}"));
        assert!(
            ttl >= 0 && ttl <= exp - now() + 2,
            "gatehouse_cache_ttl within the token's lifetime: {body}"
        );
        // Never a secret in the answer.
        let text = reply.text();
        assert!(!text.contains(&fx.oauth_client_secret), "{reply:?}");
        assert!(!text.contains(col_secret), "{reply:?}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn collections_admins_and_the_owner_may_introspect() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (_, claims) = decode_jwt_unverified(&token)?;
    let admin = app.admin_token().await?;
    let reader = app.read_only_admin_token().await?;
    let (_, reader_claims) = decode_jwt_unverified(&reader)?;
    assert_eq!(
        reader_claims["scope"], "gatehouse:admin:read",
        "{reader_claims}"
    );

    for auth in [
        fx.collection_basic(),
        fx.collection_post(),
        Auth::Bearer(&admin),
        Auth::Bearer(&reader),
        fx.client_basic(),
        fx.client_post(),
    ] {
        let reply = app.introspect_token(auth, &token).await?;
        let body = assert_active(&reply);
        assert_eq!(body["jti"], claims["jti"], "{auth:?}: {body}");
        assert_eq!(body["profile_id"].as_str(), Some(fx.profile_id()), "{body}");
        assert_eq!(
            strings(&body["collections"]),
            set(&[fx.collection_id()]),
            "{body}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn anyone_else_is_invalid_client() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let (col_id, col_secret) = collection_credentials(&fx.collection)?;
    let unknown_grs = format!("grs_{}", random_base62(24));
    let unknown_gco = format!("gco_{}", random_base62(24));
    let wrong = "definitely-not-the-secret";
    let admin = app.admin_token().await?;
    let mut parts: Vec<String> = admin.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let forged = parts.join(".");

    assert_invalid_client(&app.introspect_token(Auth::None, &token).await?);
    // Basic.
    for (id, secret) in [
        (col_id, wrong),
        (unknown_grs.as_str(), col_secret),
        (unknown_gco.as_str(), wrong),
        (fx.oauth_client_id.as_str(), wrong),
        // One caller's id with another's secret.
        (col_id, fx.oauth_client_secret.as_str()),
        (fx.oauth_client_id.as_str(), col_secret),
    ] {
        let reply = app
            .introspect_token(Auth::Basic(id, secret), &token)
            .await?;
        assert_invalid_client(&reply);
        assert!(reply.json().get("active").is_none(), "{reply:?}");
    }
    // Form parameters.
    for (id, secret) in [(col_id, wrong), (unknown_grs.as_str(), col_secret)] {
        let reply = app.introspect_token(Auth::Post(id, secret), &token).await?;
        assert_invalid_client(&reply);
    }
    // An id without a secret is no authentication.
    let reply = app
        .introspect(Auth::None, &[("client_id", col_id), ("token", &token)])
        .await?;
    assert_invalid_client(&reply);
    // Bearer tokens that are not admin tokens: an ordinary access token (even the one being
    // introspected), garbage, a forged admin token — RFC 6750 §3.1 `invalid_token`.
    for bearer in [token.as_str(), "not-a-token", forged.as_str()] {
        let reply = app.introspect_token(Auth::Bearer(bearer), &token).await?;
        reply.expect_error(401, "invalid_token");
        let www = reply.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("Bearer ") && www.contains("error=\"invalid_token\""),
            "{reply:?}"
        );
    }
    // The same token with real credentials is active: the refusals were about the caller.
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    assert_active(&app.introspect_token(Auth::Bearer(&admin), &token).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn unverifiable_tokens_are_exactly_inactive() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let parts: Vec<&str> = token.split('.').collect();
    let (header, claims) = decode_jwt_unverified(&token)?;

    // Claims changed, signature kept.
    let mut more = claims.clone();
    more["scope"] = json!("orders:read orders:admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&more)?),
        parts[2]
    );
    // Signature changed.
    let resigned = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        parts[2].chars().rev().collect::<String>()
    );
    // alg: none.
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&none_header)?),
        parts[1]
    );
    // A token from another Gatehouse (other keys, other issuer) for the same audience.
    let other = spawn_app().await?;
    let ofx = other.oauth_fixture(&["orders:read"], json!({})).await?;
    let foreign = other
        .access_token(&ofx.oauth_client_id, &ofx.oauth_client_secret, &[])
        .await?;

    let admin = app.admin_token().await?;
    for bad in [
        "not-a-token".to_owned(),
        random_base62(43),
        "a.b.c".to_owned(),
        tampered,
        resigned,
        unsigned,
        foreign,
        format!("{token}x"),
    ] {
        for auth in [
            fx.collection_basic(),
            Auth::Bearer(&admin),
            fx.client_basic(),
        ] {
            let reply = app.introspect_token(auth, &bad).await?;
            assert_inactive(&reply);
        }
    }
    // The genuine token is active for the same callers.
    for auth in [
        fx.collection_basic(),
        Auth::Bearer(&admin),
        fx.client_basic(),
    ] {
        assert_active(&app.introspect_token(auth, &token).await?);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn audience_isolation_between_two_collections() -> anyhow::Result<()> {
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
    assert_ne!(a_id, b_id);

    // Granted only A: A sees it, B never does (Basic or post).
    let (id, secret, _) = profile_on(&app, &[&a], json!({})).await?;
    let only_a = app.access_token(&id, &secret, &[]).await?;
    let body = assert_active(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &only_a)
            .await?,
    );
    assert_eq!(strings(&body["collections"]), set(&[str_field(&a, "id")?]));
    assert_eq!(body["aud"], "https://orders.example.com/api", "{body}");
    assert_inactive(
        &app.introspect_token(Auth::Basic(b_id, b_secret), &only_a)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Post(b_id, b_secret), &only_a)
            .await?,
    );
    // Again after A has warmed any cache.
    assert_active(
        &app.introspect_token(Auth::Post(a_id, a_secret), &only_a)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Basic(b_id, b_secret), &only_a)
            .await?,
    );

    // Granted both: a token for both audiences is active for each, and each collection sees
    // only its own part of it (contract: `aud`, `scope` and `collections` narrowed).
    let (id, secret, _) = profile_on(&app, &[&a, &b], json!({})).await?;
    let both = app.access_token(&id, &secret, &[]).await?;
    for (cid, csecret, collection, audience) in [
        (a_id, a_secret, &a, "https://orders.example.com/api"),
        (b_id, b_secret, &b, "https://billing.example.com/api"),
    ] {
        let body = assert_active(
            &app.introspect_token(Auth::Basic(cid, csecret), &both)
                .await?,
        );
        assert_eq!(
            strings(&body["collections"]),
            set(&[str_field(collection, "id")?]),
            "{body}"
        );
        assert_eq!(body["aud"], audience, "{body}");
    }
    // An admin sees the whole token.
    let body = assert_active(
        &app.introspect_token(Auth::Bearer(&app.admin_token().await?), &both)
            .await?,
    );
    assert_eq!(
        strings(&body["collections"]),
        set(&[str_field(&a, "id")?, str_field(&b, "id")?]),
        "{body}"
    );
    assert_eq!(
        strings(&body["aud"]),
        set(&[
            "https://orders.example.com/api",
            "https://billing.example.com/api"
        ]),
        "{body}"
    );
    // The same profile narrowed to A's scope: only A's audience, only A sees it.
    let narrowed = app
        .access_token(&id, &secret, &[("scope", "orders:read")])
        .await?;
    let body = assert_active(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &narrowed)
            .await?,
    );
    assert_eq!(strings(&body["collections"]), set(&[str_field(&a, "id")?]));
    assert_eq!(body["scope"], "orders:read", "{body}");
    assert_inactive(
        &app.introspect_token(Auth::Basic(b_id, b_secret), &narrowed)
            .await?,
    );
    // ... and resource=B's audience: only B sees it.
    let to_b = app
        .access_token(
            &id,
            &secret,
            &[("resource", "https://billing.example.com/api")],
        )
        .await?;
    assert_active(
        &app.introspect_token(Auth::Basic(b_id, b_secret), &to_b)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Basic(a_id, a_secret), &to_b)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oauth2_client_sees_only_its_own_tokens() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    // A second profile on the same client resource and the same collection, and a third
    // profile elsewhere.
    let second = app
        .create_profile(
            fx.client_id(),
            &json!({"name": "second", "auth_type": "oauth2", "collections": [fx.collection["id"]]}),
        )
        .await?;
    let (id2, secret2) = (
        str_field(&second, "oauth_client_id")?,
        str_field(&second, "oauth_client_secret")?,
    );
    let other = app.oauth_fixture(&["billing:read"], json!({})).await?;

    let mine = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let sibling = app.access_token(id2, secret2, &[]).await?;
    let foreign = app
        .access_token(&other.oauth_client_id, &other.oauth_client_secret, &[])
        .await?;

    for auth in [fx.client_basic(), fx.client_post()] {
        let body = assert_active(&app.introspect_token(auth, &mine).await?);
        assert_eq!(
            body["client_id"].as_str(),
            Some(fx.oauth_client_id.as_str())
        );
        assert_inactive(&app.introspect_token(auth, &sibling).await?);
        assert_inactive(&app.introspect_token(auth, &foreign).await?);
    }
    // Each of the others sees its own.
    assert_active(
        &app.introspect_token(Auth::Basic(id2, secret2), &sibling)
            .await?,
    );
    assert_inactive(
        &app.introspect_token(Auth::Basic(id2, secret2), &mine)
            .await?,
    );
    assert_active(&app.introspect_token(other.client_basic(), &foreign).await?);
    assert_inactive(&app.introspect_token(other.client_basic(), &mine).await?);
    // The collection sees both tokens of its audience.
    assert_active(&app.introspect_token(fx.collection_basic(), &mine).await?);
    assert_active(
        &app.introspect_token(fx.collection_basic(), &sibling)
            .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn deactivation_takes_effect_at_once_and_reactivation_restores() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let admin = app.admin_token().await?;
    let callers = [fx.collection_basic(), Auth::Bearer(&admin)];
    // Warm any cache.
    for _ in 0..5 {
        for auth in callers {
            assert_active(&app.introspect_token(auth, &token).await?);
        }
    }

    let profile = format!("/access-profiles/{}", fx.profile_id());
    app.admin_patch(&profile, &json!({"active": false}))
        .await?
        .expect_status(200);
    for auth in callers {
        assert_inactive(&app.introspect_token(auth, &token).await?);
    }
    app.admin_patch(&profile, &json!({"active": true}))
        .await?
        .expect_status(200);
    for auth in callers {
        assert_active(&app.introspect_token(auth, &token).await?);
    }

    let client = format!("/clients/{}", fx.client_id());
    app.admin_patch(&client, &json!({"active": false}))
        .await?
        .expect_status(200);
    for auth in callers {
        assert_inactive(&app.introspect_token(auth, &token).await?);
    }
    app.admin_patch(&client, &json!({"active": true}))
        .await?
        .expect_status(200);
    for auth in callers {
        assert_active(&app.introspect_token(auth, &token).await?);
    }

    // A deleted profile's tokens are inactive too.
    let r = app.admin_delete(&profile).await?;
    assert!(r.status.is_success(), "delete profile: {r:?}");
    for auth in callers {
        assert_inactive(&app.introspect_token(auth, &token).await?);
    }
    Ok(())
}

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

#[tokio::test(flavor = "multi_thread")]
async fn ip_deny_lists_need_and_check_client_ip() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {
                "default_access": "allow",
                "allow": [],
                "deny": ["203.0.113.0/24", "2001:db8::/32"],
            }}),
        )
        .await?;
    // Issued from 127.0.0.1, which the rules allow.
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let admin = app.admin_token().await?;

    let cases: &[(Option<&str>, bool)] = &[
        (None, false), // IP rules apply and the address is unknown: ip_unknown
        (Some("198.51.100.7"), true),
        (Some("127.0.0.1"), true),
        (Some("203.0.113.0"), false),
        (Some("203.0.113.77"), false),
        (Some("203.0.113.255"), false),
        (Some("203.0.112.255"), true),
        (Some("203.0.114.0"), true),
        (Some("2001:db8::1"), false),
        (Some("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), false),
        (Some("2001:db9::1"), true),
        (Some("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), true),
        (Some("not-an-ip"), false),
        (Some("203.0.113.300"), false),
    ];
    for auth in [fx.collection_basic(), Auth::Bearer(&admin)] {
        for &(ip, active) in cases {
            let reply = introspect_from(&app, auth, &token, ip).await?;
            if active {
                let body = assert_active(&reply);
                assert_eq!(
                    body["gatehouse_cache_ttl"], 0,
                    "IP rules apply: an answer must not be cached ({ip:?}): {body}"
                );
            } else {
                assert_inactive(&reply);
            }
        }
    }
    // Without IP rules, no client_ip is needed.
    let open = app.oauth_fixture(&["stock:read"], json!({})).await?;
    let open_token = app
        .access_token(&open.oauth_client_id, &open.oauth_client_secret, &[])
        .await?;
    assert_active(&introspect_from(&app, open.collection_basic(), &open_token, None).await?);
    assert_active(
        &introspect_from(
            &app,
            open.collection_basic(),
            &open_token,
            Some("203.0.113.5"),
        )
        .await?,
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ip_allow_lists_need_and_check_client_ip() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app
        .oauth_fixture(
            &["orders:read"],
            json!({"ip_rules": {
                "default_access": "deny",
                "allow": ["127.0.0.1/32", "10.0.0.0/8", "2001:db8::/32"],
                "deny": ["10.1.0.0/16"],
            }}),
        )
        .await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let cases: &[(Option<&str>, bool)] = &[
        (None, false),
        (Some("10.0.0.0"), true),
        (Some("10.255.255.255"), true),
        (Some("9.255.255.255"), false),
        (Some("11.0.0.0"), false),
        (Some("10.1.2.3"), false), // deny wins over allow
        (Some("10.2.0.0"), true),
        (Some("2001:db8::5"), true),
        (Some("2001:db9::"), false),
        (Some("192.0.2.1"), false),
    ];
    for &(ip, active) in cases {
        let reply = introspect_from(&app, fx.collection_basic(), &token, ip).await?;
        if active {
            let body = assert_active(&reply);
            assert_eq!(body["gatehouse_cache_ttl"], 0, "{ip:?}: {body}");
        } else {
            assert_inactive(&reply);
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn token_type_hint_is_only_a_hint() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    for hint in ["access_token", "refresh_token"] {
        let reply = app
            .introspect(
                fx.collection_basic(),
                &[("token", &token), ("token_type_hint", hint)],
            )
            .await?;
        assert_active(&reply);
        let reply = app
            .introspect(
                fx.collection_basic(),
                &[("token", "not-a-token"), ("token_type_hint", hint)],
            )
            .await?;
        assert_inactive(&reply);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_invalid_request() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let enc: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    for auth in [fx.collection_basic(), fx.collection_post()] {
        for body in [
            String::new(),
            "token_type_hint=access_token".to_owned(),
            format!("token={enc}&token={enc}"),
            format!("token={enc}&token=other"),
            format!("token={enc}&token_type_hint=access_token&token_type_hint=access_token"),
            format!("token={enc}&client_ip=198.51.100.1&client_ip=198.51.100.2"),
        ] {
            let reply = app.oauth_raw("/oauth/introspect", auth, &body).await?;
            reply.expect_error(400, "invalid_request");
            assert_no_store(&reply);
        }
    }
    // A repeated client_secret in the form.
    let (id, secret) = collection_credentials(&fx.collection)?;
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", id)
        .append_pair("client_secret", secret)
        .append_pair("client_secret", secret)
        .append_pair("token", &token)
        .finish();
    let reply = app
        .oauth_raw("/oauth/introspect", Auth::None, &body)
        .await?;
    reply.expect_error(400, "invalid_request");
    // Two authentication methods at once (RFC 6749 §2.3).
    let reply = app
        .oauth_raw(
            "/oauth/introspect",
            fx.collection_basic(),
            &format!(
                "client_id={id}&client_secret={}&token={enc}",
                url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>()
            ),
        )
        .await?;
    reply.expect_error(400, "invalid_request");
    // The well-formed request works.
    assert_active(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn only_post_is_allowed() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        for method in [
            reqwest::Method::GET,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let reply = Reply::read(
                app.http
                    .request(method.clone(), app.public_url(path))
                    .send()
                    .await?,
            )
            .await?;
            assert_eq!(reply.status.as_u16(), 405, "{method} {path}: {reply:?}");
            assert!(
                reply.header("allow").unwrap_or_default().contains("POST"),
                "405 names the allowed method: {reply:?}"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_never_hides_a_revocation() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let other = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    let admin = app.admin_token().await?;
    let callers = [
        fx.collection_basic(),
        Auth::Bearer(&admin),
        fx.client_basic(),
    ];
    for _ in 0..10 {
        for auth in callers {
            assert_active(&app.introspect_token(auth, &token).await?);
        }
    }
    assert_active(&app.introspect_token(fx.collection_basic(), &other).await?);

    let r = app.revoke_token(fx.client_basic(), &token).await?;
    assert_eq!(r.status.as_u16(), 200, "{r:?}");

    for _ in 0..5 {
        for auth in callers {
            assert_inactive(&app.introspect_token(auth, &token).await?);
        }
    }
    // Only that token: another token of the same profile stays active.
    assert_active(&app.introspect_token(fx.collection_basic(), &other).await?);
    // Deactivating and reactivating the profile does not bring the revoked token back.
    let path = format!("/access-profiles/{}", fx.profile_id());
    app.admin_patch(&path, &json!({"active": false}))
        .await?
        .expect_status(200);
    assert_inactive(&app.introspect_token(fx.collection_basic(), &other).await?);
    app.admin_patch(&path, &json!({"active": true}))
        .await?
        .expect_status(200);
    assert_active(&app.introspect_token(fx.collection_basic(), &other).await?);
    assert_inactive(&app.introspect_token(fx.collection_basic(), &token).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_advertises_introspection_and_revocation() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let meta = app.get_public(path).await?.expect_status(200).json();
        assert_eq!(
            meta["introspection_endpoint"].as_str(),
            Some(format!("{}/oauth/introspect", app.issuer).as_str()),
            "{path}: {meta}"
        );
        assert_eq!(
            meta["revocation_endpoint"].as_str(),
            Some(format!("{}/oauth/revoke", app.issuer).as_str()),
            "{path}: {meta}"
        );
    }
    Ok(())
}
