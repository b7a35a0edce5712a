//! Health probes on both listeners, the OpenAPI document and Swagger UI.

use gatehouse_tests::{Reply, spawn_app};

#[tokio::test(flavor = "multi_thread")]
async fn health_probes_answer_on_both_listeners() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    for base in [&app.public, &app.admin] {
        for path in ["/healthz", "/readyz"] {
            let r = app.get_url(&format!("{base}{path}")).await?;
            assert_eq!(r.status.as_u16(), 200, "{base}{path}: {r:?}");
        }
    }
    // The admin API is not served on the public listener.
    let r = app.get_public("/admin/v1/collections").await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    // ...and the token endpoint is not served on the admin listener.
    let r = Reply::read(
        app.http
            .post(app.admin_url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await?,
    )
    .await?;
    assert_eq!(r.status.as_u16(), 404, "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn openapi_document_and_swagger_ui() -> anyhow::Result<()> {
    let app = spawn_app().await?;
    let token = app.admin_token().await?;
    let r = Reply::read(
        app.http
            .get(app.admin_url("/admin/v1/openapi.json"))
            .bearer_auth(&token)
            .send()
            .await?,
    )
    .await?
    .expect_status(200);
    let doc = r.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1")),
        "OpenAPI 3.1: {}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for p in ["collections", "clients", "access-profiles", "audit-events"] {
        assert!(
            paths.keys().any(|k| k.contains(p)),
            "OpenAPI documents {p}: {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }

    let mut html = None;
    for path in ["/admin/docs", "/admin/docs/", "/admin/docs/index.html"] {
        let r = Reply::read(
            app.http
                .get(app.admin_url(path))
                .bearer_auth(&token)
                .send()
                .await?,
        )
        .await?;
        if r.status.as_u16() == 200 {
            html = Some(r);
            break;
        }
    }
    let r = html.expect("Swagger UI at /admin/docs");
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{r:?}"
    );
    assert!(r.text().to_ascii_lowercase().contains("<html"), "{r:?}");
    assert!(r.text().to_ascii_lowercase().contains("swagger"), "{r:?}");
    Ok(())
}
