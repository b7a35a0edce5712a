//! Signing-key lifecycle: the next key is published before it signs, rotation on demand
//! (admin API and CLI), a verifier that caches the JWKS sees no failure across a rotation,
//! and — on PostgreSQL — a change made through one instance reaches another within 1 s.

use base64::Engine;
use gatehouse_server::config::KeysCommand;
use gatehouse_tests::{
    Auth, Value, assert_active, collection_credentials, decode_jwt_unverified, json,
    pg_database_or_skip, random_base62, spawn_app_with, str_field,
};
use josekit::jwk::JwkSet;
use josekit::jws::ES256;
use std::time::{Duration, Instant};

fn kid_of(token: &str) -> String {
    decode_jwt_unverified(token)
        .map(|(h, _)| h["kid"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// A verifier as a resource server would have one: the JWKS fetched once and kept.
fn verifies_with(cached: &JwkSet, token: &str) -> bool {
    let kid = kid_of(token);
    cached.get(&kid).iter().any(|jwk| {
        ES256
            .verifier_from_jwk(jwk)
            .is_ok_and(|v| josekit::jwt::decode_with_verifier(token, &v).is_ok())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotate_without_failing_a_caching_verifier() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| cfg.key_publish_ahead = Duration::from_secs(2)).await?;
    let fx = app.oauth_fixture(&["orders:read"], json!({})).await?;
    let listed = app.admin_get("/keys").await?.expect_status(200).json();
    let states: Vec<&str> = listed["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k["state"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(states, vec!["next", "active"], "{listed}");
    let text = listed.to_string();
    assert!(
        !text.contains("private") && !text.contains("\"d\""),
        "no private material"
    );

    // A verifier caches the JWKS now (as it may for max-age): the next key is already in it.
    let jwks = app.get_public("/oauth/jwks").await?.expect_status(200);
    assert_eq!(
        jwks.header("cache-control").as_deref(),
        Some("public, max-age=300")
    );
    let cached = JwkSet::from_bytes(&jwks.bytes)?;
    let before = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    assert!(verifies_with(&cached, &before));

    // Too early: the next key has not been published for GATEHOUSE_KEY_PUBLISH_AHEAD yet.
    let early = app.admin_post("/keys/rotate", &json!({})).await?;
    early.expect_error(409, "conflict");
    app.clock.advance(2.1);
    let rotated = app
        .admin_post("/keys/rotate", &json!({}))
        .await?
        .expect_status(200)
        .json();
    let active = str_field(&rotated, "active_kid")?.to_owned();
    assert_eq!(
        rotated["retired_kid"].as_str(),
        Some(kid_of(&before).as_str())
    );

    // New tokens are signed by the key the verifier already had; old ones stay valid.
    let after = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    assert_eq!(kid_of(&after), active);
    assert!(
        verifies_with(&cached, &after),
        "the cached JWKS knew the new key"
    );
    let (rs_id, rs_secret) = collection_credentials(&fx.collection)?;
    for token in [&before, &after] {
        assert_active(
            &app.introspect_token(Auth::Basic(rs_id, rs_secret), token)
                .await?,
        );
    }
    // The JWKS now has the retired key (until its tokens expire), the active and a new next.
    let jwks: Value = app.get_public("/oauth/jwks").await?.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .map(|a| a.iter().filter_map(|k| k["kid"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(kids.len(), 3, "{jwks}");
    assert!(kids.contains(&kid_of(&before).as_str()));
    assert!(kids.contains(&rotated["next_kid"].as_str().unwrap_or_default()));

    // force skips the lead time; the operator command does the same as the API.
    let forced = app
        .admin_post("/keys/rotate", &json!({"force": true}))
        .await?
        .expect_status(200)
        .json();
    assert_eq!(forced["retired_kid"].as_str(), Some(active.as_str()));
    let listed = gatehouse_server::keys_command(&app.config(), &KeysCommand::List).await?;
    assert_eq!(
        listed["items"][1]["kid"].as_str(),
        forced["active_kid"].as_str()
    );
    let cli =
        gatehouse_server::keys_command(&app.config(), &KeysCommand::Rotate { force: true }).await?;
    assert_eq!(cli["retired_kid"], forced["active_kid"]);
    // The running server picks the CLI's rotation up at its next key check at the latest; the
    // audit log names who rotated.
    let audit = app.admin_get("/audit-events").await?.json().to_string();
    assert!(audit.contains("keys.rotate"));
    Ok(())
}

/// Issue 5 scale-out: two instances on one PostgreSQL. A revocation, a deactivation and a key
/// rotation made through A each take effect on B within 1 s (LISTEN/NOTIFY).
#[tokio::test(flavor = "multi_thread")]
async fn changes_on_one_instance_reach_another_within_a_second() -> anyhow::Result<()> {
    let Some((database_url, _db)) = pg_database_or_skip().await? else {
        return Ok(());
    };
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let admin_id = format!("gco_admin{}", random_base62(16));
    let admin_secret = random_base62(48);
    let dir = tempfile::tempdir()?;
    let config = || {
        let mut c =
            gatehouse_server::Config::for_tests(database_url.clone(), dir.path().to_path_buf());
        c.secret_key = Some(key.clone());
        c.bootstrap_client_id = Some(admin_id.clone());
        c.bootstrap_client_secret = Some(admin_secret.clone());
        c.issuer = Some("http://127.0.0.1:1".to_owned());
        c.admin_url = Some("http://127.0.0.1:2".to_owned());
        c
    };
    let a = gatehouse_server::start(config()).await?;
    let b = gatehouse_server::start(config()).await?;
    let http = reqwest::Client::new();
    let token = |addr: std::net::SocketAddr, id: String, secret: String| {
        let http = http.clone();
        async move {
            http.post(format!("http://{addr}/oauth/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
        }
    };
    let admin: Value = token(a.public_addr, admin_id.clone(), admin_secret.clone())
        .await?
        .json()
        .await?;
    let at = admin["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let admin_call = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("http://{}/admin/v1{path}", a.admin_addr))
            .bearer_auth(&at)
            .json(&body)
            .send()
    };
    let col: Value = admin_call(
        reqwest::Method::POST,
        "/collections",
        json!({"name": "C", "audience": "https://c.example.com", "scopes": [{"name": "c:r"}]}),
    )
    .await?
    .json()
    .await?;
    let cli: Value = admin_call(reqwest::Method::POST, "/clients", json!({"name": "K"}))
        .await?
        .json()
        .await?;
    let prf: Value = admin_call(
        reqwest::Method::POST,
        &format!("/clients/{}/access-profiles", str_field(&cli, "id")?),
        json!({"name": "p", "auth_type": "oauth2", "collections": [col["id"]]}),
    )
    .await?
    .json()
    .await?;
    let (cid, csecret) = (
        str_field(&prf, "oauth_client_id")?.to_owned(),
        str_field(&prf, "oauth_client_secret")?.to_owned(),
    );
    let (rs_id, rs_secret) = collection_credentials(&col)?;
    let introspect_on_b = |t: String| {
        let http = http.clone();
        let (rs_id, rs_secret) = (rs_id.to_owned(), rs_secret.to_owned());
        async move {
            let v: Value = http
                .post(format!("http://{}/oauth/introspect", b.public_addr))
                .basic_auth(rs_id, Some(rs_secret))
                .form(&[("token", t.as_str())])
                .send()
                .await?
                .json()
                .await?;
            anyhow::Ok(v["active"] == json!(true))
        }
    };
    // Poll B every 20 ms until `check` holds; the time it took.
    async fn within<F, Fut>(limit: Duration, mut check: F) -> anyhow::Result<Duration>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<bool>>,
    {
        let start = Instant::now();
        loop {
            if check().await? {
                return Ok(start.elapsed());
            }
            anyhow::ensure!(start.elapsed() < limit, "not seen within {limit:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // 1. Revocation through A; B had cached the token as live.
    let t1: Value = token(a.public_addr, cid.clone(), csecret.clone())
        .await?
        .json()
        .await?;
    let t1 = str_field(&t1, "access_token")?.to_owned();
    assert!(introspect_on_b(t1.clone()).await?, "B sees it active first");
    let revoked = http
        .post(format!("http://{}/oauth/revoke", a.public_addr))
        .basic_auth(rs_id, Some(rs_secret))
        .form(&[("token", t1.as_str())])
        .send()
        .await?;
    assert_eq!(revoked.status(), 200);
    let took = within(Duration::from_secs(1), || {
        let t = t1.clone();
        let f = introspect_on_b(t);
        async move { Ok(!f.await?) }
    })
    .await?;
    eprintln!("revocation reached B in {took:?}");

    // 2. Deactivation through A.
    let t2: Value = token(b.public_addr, cid.clone(), csecret.clone())
        .await?
        .json()
        .await?;
    let t2 = str_field(&t2, "access_token")?.to_owned();
    assert!(introspect_on_b(t2.clone()).await?);
    let patched = admin_call(
        reqwest::Method::PATCH,
        &format!("/access-profiles/{}", str_field(&prf, "id")?),
        json!({"active": false}),
    )
    .await?;
    assert_eq!(patched.status(), 200);
    let took = within(Duration::from_secs(1), || {
        let f = introspect_on_b(t2.clone());
        async move { Ok(!f.await?) }
    })
    .await?;
    eprintln!("deactivation reached B in {took:?}");
    let reactivated = admin_call(
        reqwest::Method::PATCH,
        &format!("/access-profiles/{}", str_field(&prf, "id")?),
        json!({"active": true}),
    )
    .await?;
    assert_eq!(reactivated.status(), 200);

    // 3. Key rotation through A: B publishes the new next key and accepts tokens A signs
    // with the new active key.
    let rotated: Value = admin_call(
        reqwest::Method::POST,
        "/keys/rotate",
        json!({"force": true}),
    )
    .await?
    .json()
    .await?;
    let next = str_field(&rotated, "next_kid")?.to_owned();
    let took = within(Duration::from_secs(1), || {
        let http = http.clone();
        let next = next.clone();
        async move {
            let jwks: Value = http
                .get(format!("http://{}/oauth/jwks", b.public_addr))
                .send()
                .await?
                .json()
                .await?;
            Ok(jwks.to_string().contains(&next))
        }
    })
    .await?;
    eprintln!("key rotation reached B in {took:?}");
    let t3: Value = token(a.public_addr, cid.clone(), csecret.clone())
        .await?
        .json()
        .await?;
    let t3 = str_field(&t3, "access_token")?.to_owned();
    assert_eq!(kid_of(&t3), str_field(&rotated, "active_kid")?);
    assert!(introspect_on_b(t3).await?, "B verifies A's new key");
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}
