//! The access log: one INFO line per request (target `gatehouse::access`) with the method,
//! path, route template, status, latency and request id, and the client's public id when the
//! request authenticated one — never a credential.

use gatehouse_tests::{captured_logs, spawn_app, unique};

/// The access lines that name this request id.
fn access_lines(id: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains("gatehouse::access") && l.contains(&format!("request_id={id}")))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_info_line_per_request_with_route_status_latency_and_request_id() -> anyhow::Result<()>
{
    let app = spawn_app().await?;
    let token = app.admin_token().await?;

    // An admin call whose route has a parameter: the line gives the template, not the id.
    let id = unique("req-admin");
    let client = app.create_client(&unique("Logged")).await?;
    let client_id = client["id"].as_str().unwrap_or_default().to_owned();
    let status = app
        .http
        .get(app.api_url(&format!("/clients/{client_id}")))
        .bearer_auth(&token)
        .header("x-request-id", &id)
        .send()
        .await?
        .status();
    assert_eq!(status, 200);
    // A refused token request, and a granted one that names its client.
    let refused = unique("req-refused");
    let status = app
        .http
        .post(app.public_url("/oauth/token"))
        .basic_auth(&app.bootstrap_id, Some("not-the-secret"))
        .header("x-request-id", &refused)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .status();
    assert_eq!(status, 401);
    let granted = unique("req-granted");
    let status = app
        .http
        .post(app.public_url("/oauth/token"))
        .basic_auth(&app.bootstrap_id, Some(&app.bootstrap_secret))
        .header("x-request-id", &granted)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await?
        .status();
    assert_eq!(status, 200);
    // An unknown route.
    let lost = unique("req-lost");
    app.http
        .get(app.public_url("/nowhere"))
        .header("x-request-id", &lost)
        .send()
        .await?;

    // The line is written when the response is; give the logger a moment.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let lines = access_lines(&id);
    assert_eq!(
        lines.len(),
        1,
        "exactly one access line per request: {lines:#?}"
    );
    let line = &lines[0];
    for part in [
        " INFO ",
        "method=GET",
        "route=/admin/v1/clients/{id}",
        "status=200",
        "latency_ms=",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    let lines = access_lines(&refused);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("status=401") && lines[0].contains("route=/oauth/token"),
        "{}",
        lines[0]
    );
    let lines = access_lines(&granted);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains(&format!("client_id={}", app.bootstrap_id)),
        "the granted request names its client: {}",
        lines[0]
    );
    let lines = access_lines(&lost);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("status=404"), "{}", lines[0]);
    // No credential in any access line.
    for line in captured_logs()
        .lines()
        .filter(|l| l.contains("gatehouse::access"))
    {
        assert!(
            !line.contains(&app.bootstrap_secret),
            "secret in the access log: {line}"
        );
        assert!(!line.contains(&token), "token in the access log: {line}");
    }
    Ok(())
}
