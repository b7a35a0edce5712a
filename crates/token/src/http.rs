//! HTTP handlers of the token endpoint: extract, call the flow, map the error.

use crate::client_ip;
use crate::error::{TokenError, no_store};
use crate::request::parse;
use crate::state::TokenState;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// Largest token request body accepted (the public listener also caps bodies).
const MAX_BODY: usize = 64 * 1024;

/// Every token-crate route: token, revocation, introspection and the `/oauth/authorize` stub.
pub fn router(state: Arc<TokenState>) -> Router {
    client_routes(state.clone()).merge(resource_server_routes(state))
}

/// The endpoints a consumer calls: `/oauth/token` and `/oauth/revoke` (RFC 7009 §2.1 lets
/// the client that holds a token revoke it). The server may open these to configured browser
/// origins (CORS); the rest of the router never is.
pub fn client_routes(state: Arc<TokenState>) -> Router {
    Router::new()
        .route("/oauth/token", post(token).fallback(method_not_allowed))
        .route(
            "/oauth/revoke",
            post(crate::introspect::revoke).fallback(method_not_allowed),
        )
        .with_state(state)
}

/// The endpoints resource servers call (`/oauth/introspect`) and the refused
/// `/oauth/authorize`; never opened to browsers.
pub fn resource_server_routes(state: Arc<TokenState>) -> Router {
    Router::new()
        .route("/oauth/authorize", any(authorize))
        .route(
            "/oauth/introspect",
            post(crate::introspect::introspect).fallback(method_not_allowed),
        )
        .with_state(state)
}

/// `POST /oauth/token` (RFC 6749 §3.2): extract, run the grant, answer.
async fn token(State(state): State<Arc<TokenState>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let client_ip = client_ip::resolve(peer, &parts.headers, &state.trusted_proxies);
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return TokenError::InvalidRequest("the body is too large or unreadable").into_response();
    };
    let headers = &parts.headers;
    let parsed = parse(
        headers.get(header::CONTENT_TYPE),
        headers.get(header::AUTHORIZATION),
        &bytes,
    );
    match parsed {
        Ok(request) => crate::flow::grant(state, request, client_ip)
            .await
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn method_not_allowed() -> Response {
    let body = serde_json::json!({"error": "invalid_request", "error_description": "use POST"});
    let mut response = (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("POST"));
    no_store(&mut response);
    response
}

/// OIDC Discovery requires an authorization endpoint. Gatehouse issues tokens only to
/// clients acting for themselves, so every request is `unsupported_response_type`
/// (RFC 6749 §4.1.2.1). It never redirects: no redirect URI is registered anywhere.
async fn authorize() -> Response {
    let body = serde_json::json!({
        "error": "unsupported_response_type",
        "error_description": "this server issues tokens only through the client_credentials grant at the token endpoint"
    });
    let mut response = (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    no_store(&mut response);
    response
}
