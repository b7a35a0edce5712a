//! Several instances starting together on one empty PostgreSQL database: migrations, the first
//! signing key and the bootstrap admin are created once, under the advisory lock.

use base64::Engine;
use gatehouse_server::Config;
use gatehouse_tests::{pg_database_or_skip, random_base62};

#[tokio::test(flavor = "multi_thread")]
async fn instances_starting_together_share_one_key_and_one_admin() -> anyhow::Result<()> {
    let Some((database_url, _db)) = pg_database_or_skip().await? else {
        return Ok(());
    };
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let admin_id = format!("gco_admin{}", random_base62(16));
    let admin_secret = random_base62(48);
    let dir = tempfile::tempdir()?;
    let config = |issuer: &str| {
        let mut c = Config::for_tests(database_url.clone(), dir.path().to_path_buf());
        c.secret_key = Some(key.clone());
        c.bootstrap_client_id = Some(admin_id.clone());
        c.bootstrap_client_secret = Some(admin_secret.clone());
        // One issuer and one admin URL for all, as behind a load balancer.
        c.issuer = Some(issuer.to_owned());
        c.admin_url = Some("http://127.0.0.1:2".to_owned());
        c
    };
    let issuer = "http://127.0.0.1:1";
    let (a, b, c) = tokio::join!(
        gatehouse_server::start(config(issuer)),
        gatehouse_server::start(config(issuer)),
        gatehouse_server::start(config(issuer)),
    );
    let servers = [a?, b?, c?];
    let http = reqwest::Client::new();
    let mut kids = Vec::new();
    for s in &servers {
        let jwks: serde_json::Value = http
            .get(format!("http://{}/oauth/jwks", s.public_addr))
            .send()
            .await?
            .json()
            .await?;
        let keys = jwks["keys"].as_array().cloned().unwrap_or_default();
        assert_eq!(
            keys.len(),
            2,
            "exactly one signing key and one next key: {jwks}"
        );
        let mut set: Vec<String> = keys
            .iter()
            .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
            .collect();
        set.sort();
        kids.push(set.join(","));
    }
    assert!(
        kids.iter().all(|k| k == &kids[0]),
        "all instances publish the same keys: {kids:?}"
    );
    // The bootstrap admin exists once and works on every instance.
    for s in &servers {
        let r = http
            .post(format!("http://{}/oauth/token", s.public_addr))
            .basic_auth(&admin_id, Some(&admin_secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await?;
        assert_eq!(r.status(), 200);
    }
    let token: serde_json::Value = http
        .post(format!("http://{}/oauth/token", servers[0].public_addr))
        .basic_auth(&admin_id, Some(&admin_secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .json()
        .await?;
    let at = token["access_token"].as_str().unwrap_or_default();
    let clients: serde_json::Value = http
        .get(format!("http://{}/admin/v1/clients", servers[1].admin_addr))
        .bearer_auth(at)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        clients["items"].as_array().map(Vec::len),
        Some(1),
        "one bootstrap client: {clients}"
    );
    for s in servers {
        s.shutdown().await?;
    }
    Ok(())
}

/// A deactivation made through instance A reaches instance B within the 5 s cache bound.
#[tokio::test(flavor = "multi_thread")]
async fn a_deactivation_on_one_instance_reaches_another() -> anyhow::Result<()> {
    let Some((database_url, _db)) = pg_database_or_skip().await? else {
        return Ok(());
    };
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let admin_id = format!("gco_admin{}", random_base62(16));
    let admin_secret = random_base62(48);
    let dir = tempfile::tempdir()?;
    let config = || {
        let mut c = Config::for_tests(database_url.clone(), dir.path().to_path_buf());
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
    let admin: serde_json::Value = token(a.public_addr, admin_id.clone(), admin_secret.clone())
        .await?
        .json()
        .await?;
    let at = admin["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("http://{}/admin/v1{path}", a.admin_addr))
            .bearer_auth(&at)
            .json(&body)
            .send()
    };
    let col: serde_json::Value = post("/collections", serde_json::json!({"name": "C", "audience": "https://c.example.com", "scopes": [{"name": "c:r"}]})).await?.json().await?;
    let cli: serde_json::Value = post("/clients", serde_json::json!({"name": "K"}))
        .await?
        .json()
        .await?;
    let prf: serde_json::Value = post(
        &format!(
            "/clients/{}/access-profiles",
            cli["id"].as_str().unwrap_or_default()
        ),
        serde_json::json!({"name": "p", "auth_type": "oauth2", "collections": [col["id"]]}),
    )
    .await?
    .json()
    .await?;
    let id = prf["oauth_client_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let secret = prf["oauth_client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // B has seen (and cached) the profile.
    assert_eq!(
        token(b.public_addr, id.clone(), secret.clone())
            .await?
            .status(),
        200
    );
    let off = http
        .patch(format!(
            "http://{}/admin/v1/access-profiles/{}",
            a.admin_addr,
            prf["id"].as_str().unwrap_or_default()
        ))
        .bearer_auth(&at)
        .json(&serde_json::json!({"active": false}))
        .send()
        .await?;
    assert_eq!(off.status(), 200);
    assert_eq!(
        token(a.public_addr, id.clone(), secret.clone())
            .await?
            .status(),
        401,
        "at once on A"
    );
    let started = std::time::Instant::now();
    loop {
        let status = token(b.public_addr, id.clone(), secret.clone())
            .await?
            .status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(7),
            "B still accepts after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    eprintln!(
        "deactivation reached instance B after {:?}",
        started.elapsed()
    );
    a.shutdown().await?;
    b.shutdown().await?;
    Ok(())
}
