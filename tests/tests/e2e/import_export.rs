//! `gatehouse export` / `gatehouse import`: the registry as YAML (references by name, no
//! secrets), the round trip into an empty database byte for byte, a second import that changes
//! nothing, `--dry-run` that prints the plan and changes nothing, and `--prune`.

use gatehouse_tests::{TestApp, Value, json, server_binary, spawn_app, str_field, unique};
use std::path::Path;

fn gatehouse(bin: &Path, app: &TestApp, args: &[&str]) -> anyhow::Result<(i32, String, String)> {
    let mut cmd = std::process::Command::new(bin);
    for (k, _) in std::env::vars() {
        if k.starts_with("GATEHOUSE_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .env("GATEHOUSE_ISSUER", &app.issuer)
        .env("GATEHOUSE_ADMIN_URL", &app.admin)
        .env("GATEHOUSE_CLIENT_ID", &app.bootstrap_id)
        .env("GATEHOUSE_CLIENT_SECRET", &app.bootstrap_secret)
        .args(args)
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A registry with one of everything.
async fn populate(app: &TestApp) -> anyhow::Result<()> {
    let project = app.create_project("Retail").await?;
    let orders = app
        .create_collection(
            "Orders",
            "https://api.example.com/orders",
            &["orders:read", "orders:write"],
        )
        .await?;
    let billing = app
        .create_collection(
            "Billing",
            "https://api.example.com/billing",
            &["billing:read"],
        )
        .await?;
    let policy = app
        .admin_post("/policies", &json!({"name": "Standard", "rate_limit": {"requests": 10, "per": "second"}, "quota": {"requests": 1000, "per": "day"}}))
        .await?
        .expect_status(201)
        .json();
    let client = app
        .create_client_json(
            &json!({"name": "ACME", "description": "Retail partner", "project": project,
            "contact": {"first_name": "Ada", "email": "ada@acme.example"}}),
        )
        .await?;
    let cid = str_field(&client, "id")?.to_owned();
    app.create_profile(
        &cid,
        &json!({"name": "batch", "auth_type": "oauth2", "collections": [orders["id"], billing["id"]],
                "scopes": ["orders:read", "billing:read"], "policy_id": policy["id"], "token_ttl_seconds": 900,
                "ip_rules": {"allow": "10.0.0.0/8, 192.168.1.7, 127.0.0.1"}, "custom_claims": {"tenant": "acme"}}),
    )
    .await?;
    let keys = app
        .create_profile(
            &cid,
            &json!({"name": "keys", "auth_type": "token", "collections": [orders["id"]]}),
        )
        .await?;
    let extra = app
        .admin_post(
            &format!("/access-profiles/{}/api-keys", str_field(&keys, "id")?),
            &json!({"name": "ci", "ip_rules": {"deny": ["192.0.2.0/24"]}}),
        )
        .await?
        .expect_status(201)
        .json();
    app.record_secret(str_field(&extra, "auth_token")?);
    app.create_profile(
        &cid,
        &json!({"name": "signed", "auth_type": "jwt", "jwt_method": "hmac", "collections": [orders["id"]],
                "allowed_audiences": ["https://api.example.com/orders"], "required_claims": [{"name": "tenant", "value": "acme"}]}),
    )
    .await?;
    let admin_col = app
        .admin_list_all("/collections", 1000)
        .await?
        .0
        .into_iter()
        .find(|c| c["builtin"] == json!(true))
        .map(|c| c["id"].clone())
        .unwrap_or_default();
    app.create_profile(
        &cid,
        &json!({"name": "retail-admin", "auth_type": "oauth2", "collections": [admin_col], "admin_projects": [project]}),
    )
    .await?;
    app.create_client_json(&json!({"name": "Globex", "active": false}))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn export_imports_into_an_empty_database_and_exports_the_same_bytes() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let source = spawn_app().await?;
    populate(&source).await?;
    let (code, exported, err) = gatehouse(&bin, &source, &["export"])?;
    assert_eq!(code, 0, "{err}");
    // References by name, no ids of the source, no secret.
    assert!(
        exported.contains("project: Retail") && exported.contains("- Orders"),
        "{exported}"
    );
    assert!(exported.contains("builtin:admin"), "{exported}");
    for id_prefix in ["prj_", "col_", "cli_", "prf_", "pol_", "key_"] {
        assert!(
            !exported.contains(id_prefix),
            "an id ({id_prefix}) in the file:\n{exported}"
        );
    }
    for secret in source.seen_secrets() {
        assert!(!exported.contains(&secret), "a secret in the export");
    }
    assert!(
        !exported.contains("ghk_") && !exported.contains("jwt_secret"),
        "{exported}"
    );

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("registry.yaml");
    std::fs::write(&file, &exported)?;
    let target = spawn_app().await?;
    let secrets = dir.path().join("secrets.json");
    let f = file.to_str().unwrap_or_default();
    let sf = secrets.to_str().unwrap_or_default();

    // Dry run first: a plan, and nothing changes.
    let before = gatehouse(&bin, &target, &["export"])?.1;
    let (code, plan, err) = gatehouse(&bin, &target, &["import", f, "--dry-run"])?;
    assert_eq!(code, 0, "{err}");
    assert!(
        plan.contains("+ project Retail") && plan.contains("+ client ACME"),
        "{plan}"
    );
    assert!(plan.contains("nothing was changed"), "{plan}");
    assert_eq!(
        gatehouse(&bin, &target, &["export"])?.1,
        before,
        "a dry run changed the registry"
    );

    // The import, its credentials in a 0600 file, and the same export back.
    let (code, out, err) = gatehouse(&bin, &target, &["import", f, "--secrets-file", sf])?;
    assert_eq!(code, 0, "{out}\n{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&secrets)?.permissions().mode() & 0o777,
            0o600
        );
    }
    let created: Value = serde_json::from_str(&std::fs::read_to_string(&secrets)?)?;
    let batch = &created["client ACME / profile batch"];
    assert!(
        batch["oauth_client_secret"].is_string() && batch["oauth_client_id"].is_string(),
        "{created}"
    );
    assert!(
        created["collection Orders"]["introspection_client_secret"].is_string(),
        "{created}"
    );
    assert!(
        created["client ACME / profile keys / key ci"]["auth_token"].is_string(),
        "{created}"
    );
    for v in created.as_object().into_iter().flat_map(|m| m.values()) {
        for s in v
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(Value::as_str)
        {
            target.record_secret(s);
            assert!(
                !out.contains(s) || s.starts_with("gco_") || s.starts_with("grs_"),
                "a secret on standard output"
            );
        }
    }
    let (_, again, _) = gatehouse(&bin, &target, &["export"])?;
    assert_eq!(
        again, exported,
        "export → import → export must give the same bytes"
    );
    // The imported client works: a token with the credentials the import wrote.
    let token = target
        .access_token(
            batch["oauth_client_id"].as_str().unwrap_or_default(),
            batch["oauth_client_secret"].as_str().unwrap_or_default(),
            &[("scope", "orders:read")],
        )
        .await?;
    assert!(!token.is_empty());

    // A second import changes nothing, and says so.
    let (code, out, err) = gatehouse(&bin, &target, &["import", f])?;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("no changes"), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn import_changes_what_differs_and_prunes_only_when_asked() -> anyhow::Result<()> {
    let Some(bin) = server_binary()? else {
        return Ok(());
    };
    let app = spawn_app().await?;
    populate(&app).await?;
    let (_, exported, _) = gatehouse(&bin, &app, &["export"])?;
    // Edit the file: a new description, a client less, a new project.
    let edited = exported
        .replace(
            "description: Retail partner",
            "description: Our best retail partner",
        )
        .replacen(
            "projects:\n",
            &format!("projects:\n- name: {}\n", unique("Wholesale")),
            1,
        );
    let mut doc: serde_yaml::Value = serde_yaml::from_str(&edited)?;
    if let Some(clients) = doc
        .get_mut("clients")
        .and_then(serde_yaml::Value::as_sequence_mut)
    {
        clients.retain(|c| c.get("name").and_then(serde_yaml::Value::as_str) != Some("Globex"));
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("registry.yaml");
    std::fs::write(&file, serde_yaml::to_string(&doc)?)?;
    let f = file.to_str().unwrap_or_default();

    let (code, plan, err) = gatehouse(&bin, &app, &["import", f, "--dry-run", "--prune"])?;
    assert_eq!(code, 0, "{err}");
    assert!(plan.contains("~ client ACME: description"), "{plan}");
    assert!(plan.contains("+ project Wholesale"), "{plan}");
    assert!(plan.contains("- client Globex"), "{plan}");
    // Without --prune Globex stays.
    let (code, out, err) = gatehouse(&bin, &app, &["import", f])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("- client Globex"), "{out}");
    let (_, now, _) = gatehouse(&bin, &app, &["export"])?;
    assert!(
        now.contains("Our best retail partner") && now.contains("name: Globex"),
        "{now}"
    );
    // With --prune it goes; the importing admin's own client and profile are never pruned.
    let (code, out, err) = gatehouse(&bin, &app, &["import", f, "--prune"])?;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("- client Globex"), "{out}");
    let (_, now, _) = gatehouse(&bin, &app, &["export"])?;
    assert!(!now.contains("name: Globex"), "{now}");
    let status = gatehouse(&bin, &app, &["clients", "list"])?.0;
    assert_eq!(status, 0, "the importing admin still works");
    // A file that names something unknown is a usage error, before any change.
    std::fs::write(
        &file,
        "version: 1\nclients:\n- name: X\n  project: Nowhere\n",
    )?;
    let (code, _, err) = gatehouse(&bin, &app, &["import", f])?;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("Nowhere"), "{err}");
    Ok(())
}
