//! The command line over a running server (`gatehouse token|introspect|revoke|collections|
//! projects|clients|profiles|api-keys|policies|signing-keys|usage|audit`): the real binary
//! against a server on a random port, every command, its output, secrets printed once or
//! written to a 0600 file, and the exit codes scripts rely on (0 done, 1 refused, 2 usage,
//! 3 unreachable).

use gatehouse_tests::{TestApp, Value, server_binary, spawn_app, unique};
use std::path::Path;

/// What one run of the binary gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.stdout, self.stderr))
    }
}

fn run_with(bin: &Path, app: &TestApp, env: &[(&str, &str)], args: &[&str]) -> anyhow::Result<Run> {
    let mut cmd = std::process::Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("GATEHOUSE_ISSUER", &app.issuer)
        .env("GATEHOUSE_ADMIN_URL", &app.admin)
        .env("GATEHOUSE_CLIENT_ID", &app.bootstrap_id)
        .env("GATEHOUSE_CLIENT_SECRET", &app.bootstrap_secret);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output()?;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn s(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_resource_and_oauth_command_works_through_the_cli() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let app = spawn_app().await?;
    let dir = tempfile::tempdir()?;
    let gh = |args: &[&str]| run_with(&bin, &app, &[], args);

    // Projects.
    let project = gh(&[
        "projects",
        "create",
        "--data",
        &format!(r#"{{"name": "{}"}}"#, unique("Retail")),
    ])?
    .ok()
    .json();
    let prj = s(&project, "id");
    assert!(prj.starts_with("prj_"), "{project}");
    let patched = gh(&[
        "projects",
        "update",
        &prj,
        "--data",
        r#"{"description": "Shops"}"#,
    ])?
    .ok()
    .json();
    assert_eq!(patched["description"], "Shops");
    let listed = gh(&["projects", "list", "--all"])?.ok().json();
    assert!(
        listed["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|p| p["id"] == prj.as_str()))
    );

    // A collection; its secret goes to a 0600 file, not to the output.
    let secret_file = dir.path().join("collection-secret.json");
    let audience = format!("https://{}.example.com/orders", unique("api"));
    let scope = format!("{}:read", unique("orders"));
    let col = gh(&[
        "collections",
        "create",
        "--secret-file",
        secret_file.to_str().unwrap_or_default(),
        "--data",
        &format!(
            r#"{{"name": "{}", "audience": "{audience}", "scopes": [{{"name": "{scope}"}}]}}"#,
            unique("Orders")
        ),
    ])?
    .ok();
    let collection = col.json();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&secret_file)?)?;
    let rs_secret = s(&written, "introspection_client_secret");
    assert!(rs_secret.len() >= 32, "{written}");
    app.record_secret(&rs_secret);
    assert!(
        !col.stdout.contains(&rs_secret),
        "the secret went to the file only"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secret_file)?.permissions().mode() & 0o777,
            0o600
        );
    }
    let col_id = s(&collection, "id");
    gh(&["collections", "get", &col_id])?.ok();

    // A client in the project, listed by project and by search.
    let client = gh(&[
        "clients",
        "create",
        "--data",
        &format!(r#"{{"name": "{}", "project": "{prj}"}}"#, unique("ACME")),
    ])?
    .ok()
    .json();
    let cli_id = s(&client, "id");
    let in_project = gh(&["clients", "list", "--project", &prj])?.ok().json();
    assert_eq!(
        in_project["items"][0]["id"],
        cli_id.as_str(),
        "{in_project}"
    );
    gh(&[
        "clients",
        "update",
        &cli_id,
        "--data",
        r#"{"contact": {"email": "ops@acme.example"}}"#,
    ])?
    .ok();

    // An oauth2 profile: its secret printed once; a token; introspect; revoke.
    let profile = gh(&[
        "profiles",
        "create",
        "--client",
        &cli_id,
        "--data",
        &format!(r#"{{"name": "batch", "auth_type": "oauth2", "collections": ["{col_id}"]}}"#),
    ])?
    .ok()
    .json();
    let (id, secret) = (
        s(&profile, "oauth_client_id"),
        s(&profile, "oauth_client_secret"),
    );
    app.record_secret(&secret);
    let got = gh(&["profiles", "get", &s(&profile, "id")])?.ok();
    assert!(
        !got.stdout.contains(&secret),
        "a later answer never shows the secret"
    );
    let listed = gh(&["profiles", "list", "--client", &cli_id])?.ok().json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    let token = run_with(
        &bin,
        &app,
        &[
            ("GATEHOUSE_CLIENT_ID", &id),
            ("GATEHOUSE_CLIENT_SECRET", &secret),
        ],
        &["token", "--scope", &scope],
    )?
    .ok()
    .json();
    let at = s(&token, "access_token");
    assert!(!at.is_empty(), "{token}");
    app.record_secret(&at);
    let seen = gh(&["introspect", &at])?.ok().json();
    assert_eq!(seen["active"], true, "{seen}");
    gh(&["revoke", &at])?.ok();
    let seen = gh(&["introspect", &at])?.ok().json();
    assert_eq!(seen, serde_json::json!({"active": false}));

    // A token profile and its API keys.
    let tp = gh(&[
        "profiles",
        "create",
        "--client",
        &cli_id,
        "--data",
        &format!(r#"{{"name": "keys", "auth_type": "token", "collections": ["{col_id}"]}}"#),
    ])?
    .ok()
    .json();
    app.record_secret(&s(&tp, "auth_token"));
    let tp_id = s(&tp, "id");
    let key = gh(&[
        "api-keys",
        "create",
        "--profile",
        &tp_id,
        "--data",
        r#"{"name": "second", "ip_rules": {"deny": "192.0.2.0/24"}}"#,
    ])?
    .ok()
    .json();
    app.record_secret(&s(&key, "auth_token"));
    let key_id = s(&key, "id");
    let refreshed = gh(&[
        "api-keys",
        "refresh-secret",
        &key_id,
        "--grace-seconds",
        "60",
    ])?
    .ok()
    .json();
    app.record_secret(&s(&refreshed, "auth_token"));
    assert!(
        refreshed["previous_token_expires_at"].is_string(),
        "{refreshed}"
    );
    gh(&[
        "api-keys",
        "update",
        &key_id,
        "--data",
        r#"{"active": false}"#,
    ])?
    .ok();
    let keys = gh(&["api-keys", "list", "--profile", &tp_id])?.ok().json();
    assert_eq!(keys["items"].as_array().map(Vec::len), Some(2), "{keys}");
    gh(&["api-keys", "delete", &key_id])?.ok();

    // Policies, profile refresh, collection refresh.
    let policy = gh(&[
        "policies",
        "create",
        "--data",
        &format!(
            r#"{{"name": "{}", "rate_limit": {{"requests": 5, "per": "second"}}}}"#,
            unique("p")
        ),
    ])?
    .ok()
    .json();
    let pol = s(&policy, "id");
    gh(&[
        "policies",
        "update",
        &pol,
        "--data",
        r#"{"rate_limit": {"requests": 10}}"#,
    ])?
    .ok();
    gh(&["policies", "list"])?.ok();
    gh(&["policies", "delete", &pol])?.ok();
    let r = gh(&["profiles", "refresh-secret", &s(&profile, "id")])?
        .ok()
        .json();
    app.record_secret(&s(&r, "oauth_client_secret"));
    let r = gh(&[
        "collections",
        "refresh-secret",
        &col_id,
        "--grace-seconds",
        "5",
    ])?
    .ok()
    .json();
    app.record_secret(&s(&r, "introspection_client_secret"));

    // Signing keys, usage, audit.
    let keys = gh(&["signing-keys", "list"])?.ok().json();
    assert!(
        keys["items"].as_array().is_some_and(|k| !k.is_empty()),
        "{keys}"
    );
    gh(&["signing-keys", "rotate", "--force"])?.ok();
    let usage = gh(&["usage", "--profile", &s(&profile, "id")])?.ok().json();
    assert!(usage["items"].is_array(), "{usage}");
    let audit = gh(&["audit", "list", "--action", "client.create", "--all"])?
        .ok()
        .json();
    assert!(
        audit["items"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["target_id"] == cli_id.as_str())),
        "{audit}"
    );

    // Tables for people.
    let table = gh(&["clients", "list", "-o", "table"])?.ok();
    assert!(table.stdout.starts_with("ID"), "{}", table.stdout);
    assert!(table.stdout.contains(&cli_id), "{}", table.stdout);

    // Deletes.
    gh(&["clients", "delete", &cli_id])?.ok();
    gh(&["projects", "delete", &prj])?.ok();
    gh(&["collections", "delete", &col_id])?.ok();
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_say_refused_usage_or_unreachable() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let app = spawn_app().await?;
    let gh = |env: &[(&str, &str)], args: &[&str]| run_with(&bin, &app, env, args);

    // 1: the server refused, with its error and field messages.
    let r = gh(
        &[],
        &[
            "clients",
            "create",
            "--data",
            r#"{"name": "x", "contact": {"email": "nope"}}"#,
        ],
    )?;
    assert_eq!(r.code, 1, "{} {}", r.stdout, r.stderr);
    assert!(
        r.stderr.contains("422") && r.stderr.contains("contact.email"),
        "{}",
        r.stderr
    );
    let r = gh(&[], &["clients", "get", "cli_doesnotexist"])?;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = gh(
        &[("GATEHOUSE_CLIENT_SECRET", "wrong")],
        &["clients", "list"],
    )?;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("invalid_client"), "{}", r.stderr);

    // 2: usage — unknown flag, body that is not JSON, body that does not fit, no credentials.
    assert_eq!(gh(&[], &["clients", "list", "--colour"])?.code, 2);
    let r = gh(&[], &["clients", "create", "--data", "{not json"])?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = gh(
        &[],
        &[
            "clients",
            "create",
            "--data",
            r#"{"name": "x", "colour": "red"}"#,
        ],
    )?;
    assert_eq!(
        r.code, 2,
        "checked against the admin API's own types before sending: {}",
        r.stderr
    );
    assert!(r.stderr.contains("colour"), "{}", r.stderr);
    let r = gh(
        &[("GATEHOUSE_CLIENT_ID", ""), ("GATEHOUSE_CLIENT_SECRET", "")],
        &["clients", "list"],
    )?;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        gh(&[], &["profiles", "list"])?.code,
        2,
        "profiles list needs --client"
    );

    // A credentials file must be private; a 0600 one works (the bootstrap file's shape).
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("credentials.json");
    std::fs::write(
        &file,
        serde_json::json!({"client_id": app.bootstrap_id, "client_secret": app.bootstrap_secret})
            .to_string(),
    )?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        let no_env = [("GATEHOUSE_CLIENT_ID", ""), ("GATEHOUSE_CLIENT_SECRET", "")];
        let path = file.to_str().unwrap_or_default();
        let r = gh(&no_env, &["clients", "list", "--credentials-file", path])?;
        assert_eq!(
            r.code, 2,
            "a world-readable credentials file is refused: {}",
            r.stderr
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        gh(&no_env, &["clients", "list", "--credentials-file", path])?.ok();
    }

    // 3: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let r = gh(
        &[
            ("GATEHOUSE_ISSUER", &format!("http://{closed}")),
            ("GATEHOUSE_ADMIN_URL", &format!("http://{closed}")),
        ],
        &["clients", "list"],
    )?;
    assert_eq!(r.code, 3, "{}", r.stderr);
    Ok(())
}
