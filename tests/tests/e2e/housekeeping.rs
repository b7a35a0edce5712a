//! Housekeeping on a running server: expired rows are swept in the background, so the
//! revoked-token and used-assertion tables do not grow forever. Time moves on the server's
//! injected clock; the sweep interval is short so the test waits a second, not ten minutes.

use gatehouse_tests::{Auth, json, spawn_app_with};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn expired_revocations_are_swept_in_the_background() -> anyhow::Result<()> {
    let app = spawn_app_with(|cfg| cfg.sweep_interval = Duration::from_millis(200)).await?;
    let fx = app
        .oauth_fixture(&["sweep:read"], json!({"token_ttl_seconds": 60}))
        .await?;
    let token = app
        .access_token(&fx.oauth_client_id, &fx.oauth_client_secret, &[])
        .await?;
    app.revoke_token(
        Auth::Basic(&fx.oauth_client_id, &fx.oauth_client_secret),
        &token,
    )
    .await?
    .expect_status(200);
    let jti = gatehouse_tests::decode_jwt_unverified(&token)?.1["jti"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // The row, as the dump shows it (SQLite `table.column=value`, PostgreSQL `table: (…)`);
    // the audit event naming the jti stays, by design.
    let revoked_row = |dump: &str| {
        dump.lines()
            .any(|l| l.starts_with("revoked_tokens") && l.contains(&jti))
    };
    // Still needed while the token lives: kept across sweeps.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(revoked_row(&app.db_dump().await?), "kept before exp");
    // Past its expiry it goes at the next sweep.
    app.clock.advance(120.0);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !revoked_row(&app.db_dump().await?) {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the revoked-token row was swept within 5 s of expiring"
    );
    Ok(())
}
