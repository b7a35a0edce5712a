//! The admin API's OpenAPI document is valid OpenAPI 3.1 for an independent validator
//! (Python's `openapi-spec-validator`), so clients can be generated from it; every operation
//! lists the answers it can give.
//!
//! Needs `python3` with `openapi-spec-validator`; skipped with a printed reason when it is
//! missing, unless `GATEHOUSE_TEST_REQUIRE_OPENAPI_VALIDATOR=1` (CI sets it).

use gatehouse_tests::{Reply, Value, skip_unless_required, spawn_app};
use std::path::PathBuf;

const REQUIRE: &str = "GATEHOUSE_TEST_REQUIRE_OPENAPI_VALIDATOR";

fn validator_available() -> anyhow::Result<bool> {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip_unless_required(REQUIRE, "python3 cannot import openapi_spec_validator")?;
    }
    Ok(ok)
}

async fn document() -> anyhow::Result<Value> {
    let app = spawn_app().await?;
    let token = app.admin_token().await?;
    Ok(Reply::read(
        app.http
            .get(app.admin_url("/admin/v1/openapi.json"))
            .bearer_auth(&token)
            .send()
            .await?,
    )
    .await?
    .expect_status(200)
    .json())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openapi_document_passes_an_independent_validator() -> anyhow::Result<()> {
    if !validator_available()? {
        return Ok(());
    }
    let doc = document().await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&doc)?)?;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/validate_openapi.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(&file)
        .output()?;
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn every_operation_lists_its_error_answers_and_patches_are_typed() -> anyhow::Result<()> {
    let doc = document().await?;
    let paths = doc["paths"].as_object().cloned().unwrap_or_default();
    let mut missing = Vec::new();
    for (path, item) in &paths {
        if !path.starts_with("/admin/v1/") || path.ends_with("openapi.json") {
            continue;
        }
        for (method, op) in item.as_object().cloned().unwrap_or_default() {
            let responses = op["responses"].as_object().cloned().unwrap_or_default();
            let mut needed = vec!["401", "403", "503"];
            if path.contains('{') {
                needed.push("404");
            }
            if matches!(method.as_str(), "post" | "patch" | "put") {
                needed.push("400");
                needed.push("422");
            }
            for code in needed {
                if !responses.contains_key(code) {
                    missing.push(format!("{method} {path}: {code}"));
                }
            }
            for (code, answer) in &responses {
                if answer["description"].as_str().is_none_or(str::is_empty) {
                    missing.push(format!("{method} {path}: {code} has no description"));
                }
            }
            if method == "patch" {
                let schema =
                    &op["requestBody"]["content"]["application/merge-patch+json"]["schema"];
                if schema.is_null()
                    || schema["type"] == "object"
                        && schema.get("properties").is_none()
                        && schema.get("$ref").is_none()
                {
                    missing.push(format!("{method} {path}: untyped merge patch body"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "incomplete operations:\n{}",
        missing.join("\n")
    );
    // The security scheme Swagger UI's Authorize button uses to fetch a token itself.
    let schemes = &doc["components"]["securitySchemes"];
    assert!(
        schemes.as_object().is_some_and(|s| s.values().any(
            |v| v["type"] == "oauth2" && !v["flows"]["clientCredentials"]["tokenUrl"].is_null()
        )),
        "an OAuth 2.0 client-credentials scheme: {schemes}"
    );
    Ok(())
}
