//! Changing the master key (GATEHOUSE_SECRET_KEY) online: every instance gets the new key and
//! the old one as GATEHOUSE_SECRET_KEY_PREVIOUS, `gatehouse secret-key rotate` seals every
//! signing key and `jwt`/hmac secret again under the new key while the server serves, and
//! afterwards the new key alone reads everything — while an instance that still has only the
//! old key refuses to start with a message that says why, rather than serving garbage.
//! SQLite here; PostgreSQL in CI's PostgreSQL pass.

use base64::Engine;
use gatehouse_tests::process::{free_port, run, start};
use gatehouse_tests::{Value, fresh_pg_database, random_base62, server_binary, unique};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use std::collections::BTreeMap;

fn key() -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

struct Env {
    base: BTreeMap<String, String>,
    public: String,
    admin: String,
}

impl Env {
    /// This test's environment with the master key(s) given.
    fn with_keys(&self, current: &str, previous: Option<&str>) -> BTreeMap<String, String> {
        let mut env = self.base.clone();
        env.insert("GATEHOUSE_SECRET_KEY".into(), current.to_owned());
        if let Some(p) = previous {
            env.insert("GATEHOUSE_SECRET_KEY_PREVIOUS".into(), p.to_owned());
        }
        env
    }

    /// The same database on other ports (a second instance).
    fn elsewhere(
        &self,
        env: &BTreeMap<String, String>,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let mut env = env.clone();
        let (p, a) = (free_port()?, free_port()?);
        env.insert("GATEHOUSE_PUBLIC_ADDR".into(), format!("127.0.0.1:{p}"));
        env.insert("GATEHOUSE_ADMIN_ADDR".into(), format!("127.0.0.1:{a}"));
        Ok(env)
    }
}

async fn introspect(
    http: &reqwest::Client,
    e: &Env,
    admin_token: &str,
    token: &str,
) -> anyhow::Result<Value> {
    Ok(http
        .post(format!("{}/oauth/introspect", e.public))
        .bearer_auth(admin_token)
        .form(&[("token", token)])
        .send()
        .await?
        .json()
        .await?)
}

async fn token(
    http: &reqwest::Client,
    e: &Env,
    id: &str,
    secret: &str,
    scope: Option<&str>,
) -> anyhow::Result<String> {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let body: Value = http
        .post(format!("{}/oauth/token", e.public))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_master_key_changes_online_and_the_new_key_alone_reads_everything() -> anyhow::Result<()>
{
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let data = tempfile::tempdir()?;
    let pg = fresh_pg_database().await?;
    let (public_port, admin_port) = (free_port()?, free_port()?);
    let (admin_id, admin_secret) = (format!("gco_{}", random_base62(22)), random_base62(43));
    let mut base = BTreeMap::new();
    for (k, v) in [
        (
            "GATEHOUSE_DATABASE_URL",
            match &pg {
                Some((url, _)) => url.clone(),
                None => format!("sqlite://{}/gh.db?mode=rwc", data.path().display()),
            },
        ),
        ("GATEHOUSE_PUBLIC_ADDR", format!("127.0.0.1:{public_port}")),
        ("GATEHOUSE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}")),
        (
            "GATEHOUSE_ISSUER",
            format!("http://127.0.0.1:{public_port}"),
        ),
        (
            "GATEHOUSE_ADMIN_URL",
            format!("http://127.0.0.1:{admin_port}"),
        ),
        ("GATEHOUSE_DATA_DIR", data.path().display().to_string()),
        ("GATEHOUSE_BOOTSTRAP_CLIENT_ID", admin_id.clone()),
        ("GATEHOUSE_BOOTSTRAP_CLIENT_SECRET", admin_secret.clone()),
        ("GATEHOUSE_LOG", "warn".to_owned()),
    ] {
        base.insert(k.to_owned(), v);
    }
    let e = Env {
        base,
        public: format!("http://127.0.0.1:{public_port}"),
        admin: format!("http://127.0.0.1:{admin_port}/admin/v1"),
    };
    let http = reqwest::Client::builder().no_proxy().build()?;
    let (old, new) = (key(), key());

    // Under the old key: a signing key and an HMAC secret are sealed with it.
    let server = start(&bin, &e.with_keys(&old, None), &[]).await?;
    let admin = token(&http, &e, &admin_id, &admin_secret, Some("gatehouse:admin")).await?;
    let post = |path: String, body: Value| {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let v: Value = http
                .post(path)
                .bearer_auth(admin)
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            anyhow::Ok(v)
        }
    };
    let aud = format!("https://{}.example.com/api", unique("consumer"));
    let collection = post(
        format!("{}/collections", e.admin),
        serde_json::json!({"name": unique("C"), "audience": aud, "scopes": [{"name": format!("{}:read", unique("c"))}]}),
    )
    .await?;
    let client = post(
        format!("{}/clients", e.admin),
        serde_json::json!({"name": unique("ACME")}),
    )
    .await?;
    let profiles = format!(
        "{}/clients/{}/access-profiles",
        e.admin,
        client["id"].as_str().unwrap_or_default()
    );
    let oauth = post(
        profiles.clone(),
        serde_json::json!({"name": "o", "auth_type": "oauth2", "collections": [collection["id"]]}),
    )
    .await?;
    let hmac = post(
        profiles,
        serde_json::json!({"name": "h", "auth_type": "jwt", "jwt_method": "hmac",
                           "collections": [collection["id"]], "allowed_audiences": [aud]}),
    )
    .await?;
    let minted = token(
        &http,
        &e,
        oauth["oauth_client_id"].as_str().unwrap_or_default(),
        oauth["oauth_client_secret"].as_str().unwrap_or_default(),
        None,
    )
    .await?;
    let consumer_jwt = |now: i64| {
        encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": hmac["oauth_client_id"], "aud": aud, "iat": now, "exp": now + 600}),
            &EncodingKey::from_secret(hmac["jwt_secret"].as_str().unwrap_or_default().as_bytes()),
        )
    };
    // The real binary runs on the wall clock.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
        .unwrap_or(0);
    assert_eq!(
        introspect(&http, &e, &admin, &consumer_jwt(now)?).await?["active"],
        true
    );
    drop(server);

    // Roll out: the new key, with the old one for reading.
    let both = e.with_keys(&new, Some(&old));
    let _server = start(&bin, &both, &[]).await?;
    let admin = token(&http, &e, &admin_id, &admin_secret, Some("gatehouse:admin")).await?;
    assert_eq!(
        introspect(&http, &e, &admin, &minted).await?["active"],
        true
    );
    assert_eq!(
        introspect(&http, &e, &admin, &consumer_jwt(now)?).await?["active"],
        true
    );

    // Rotate while serving; a second run has nothing left to do.
    let (ok, out) = run(&bin, &both, &["secret-key", "rotate"])?;
    assert!(ok, "rotate: {out}");
    let report: Value = serde_json::from_str(out.trim())?;
    assert!(report["signing_keys"].as_u64() >= Some(1), "{report}");
    assert!(report["hmac_secrets"].as_u64() >= Some(1), "{report}");
    let (ok, out) = run(&bin, &both, &["secret-key", "rotate"])?;
    assert!(ok, "{out}");
    let again: Value = serde_json::from_str(out.trim())?;
    assert_eq!(
        (
            again["signing_keys"].as_u64(),
            again["hmac_secrets"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    // Without a previous key there is nothing to rotate from: refused, with the procedure.
    let (ok, out) = run(&bin, &e.with_keys(&new, None), &["secret-key", "rotate"])?;
    assert!(
        !ok && out.contains("GATEHOUSE_SECRET_KEY_PREVIOUS"),
        "{out}"
    );

    // The serving instance goes on.
    assert_eq!(
        introspect(&http, &e, &admin, &minted).await?["active"],
        true
    );
    let fresh = token(
        &http,
        &e,
        oauth["oauth_client_id"].as_str().unwrap_or_default(),
        oauth["oauth_client_secret"].as_str().unwrap_or_default(),
        None,
    )
    .await?;
    assert!(!fresh.is_empty());

    // A second instance that still has only the old key refuses to start, and says why.
    match start(&bin, &e.elsewhere(&e.with_keys(&old, None))?, &[]).await {
        Ok(_) => anyhow::bail!("an instance with only the old key started and would serve"),
        Err(why) => assert!(why.to_string().contains("GATEHOUSE_SECRET_KEY"), "{why}"),
    }

    // The new key alone reads everything: an instance without the previous key.
    let alone = e.elsewhere(&e.with_keys(&new, None))?;
    let public = format!("http://{}", alone["GATEHOUSE_PUBLIC_ADDR"]);
    let _second = start(&bin, &alone, &[]).await?;
    let e2 = Env {
        base: alone.clone(),
        public,
        admin: String::new(),
    };
    assert_eq!(
        introspect(&http, &e2, &admin, &minted).await?["active"],
        true
    );
    assert_eq!(
        introspect(&http, &e2, &admin, &consumer_jwt(now)?).await?["active"],
        true
    );
    // The generator makes keys of the right shape.
    let (ok, out) = run(&bin, &both, &["secret-key", "generate"])?;
    assert!(
        ok && gatehouse_jwks::MasterKey::parse(out.trim()).is_ok(),
        "{out}"
    );
    Ok(())
}
