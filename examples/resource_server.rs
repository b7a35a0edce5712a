//! An example resource server protected by the Gatehouse guard.
//!
//! ```sh
//! GATEHOUSE_INTROSPECTION_ENDPOINT=http://127.0.0.1:8080/oauth/introspect \
//! GATEHOUSE_INTROSPECTION_CLIENT_ID=grs_… GATEHOUSE_INTROSPECTION_CLIENT_SECRET=gcs_… \
//!   cargo run -p gatehouse-examples --example resource_server
//! # behind a reverse proxy at 10.0.0.2, so that IP rules see the consumer, not the proxy:
//! RESOURCE_SERVER_TRUSTED_PROXIES=10.0.0.2/32 …
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/orders
//! curl -H "X-API-Key: $KEY" http://127.0.0.1:3000/orders
//! ```

use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use gatehouse_guard::{Guard, GuardConfig, IpNet, Principal};
use std::net::SocketAddr;
use std::sync::Arc;

async fn list_orders(Extension(who): Extension<Arc<Principal>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"orders": [], "for": who.client_id}))
}

async fn create_order(Extension(who): Extension<Arc<Principal>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"created": true, "by": who.client_id}))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().init();
    let env = |k: &str| std::env::var(k).map_err(|_| anyhow::anyhow!("set {k}"));
    let mut config = GuardConfig::new(
        env("GATEHOUSE_INTROSPECTION_ENDPOINT")?,
        env("GATEHOUSE_INTROSPECTION_CLIENT_ID")?,
        env("GATEHOUSE_INTROSPECTION_CLIENT_SECRET")?,
    );
    // Comma-separated addresses or CIDRs of the proxies in front of this server.
    if let Ok(list) = std::env::var("RESOURCE_SERVER_TRUSTED_PROXIES") {
        config.trusted_proxies = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<IpNet>())
            .collect::<Result<_, _>>()?;
    }
    let guard = Guard::new(config)?;
    let app = Router::new()
        .route(
            "/orders",
            get(list_orders).route_layer(guard.require(&["orders:read"])),
        )
        .route(
            "/orders",
            post(create_order).route_layer(guard.require(&["orders:write"])),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    tracing::info!("resource server on http://127.0.0.1:3000");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
