//! The public documents: `/oauth/jwks` and the two discovery URLs, served from bytes that were
//! serialized once, with `Cache-Control: max-age`.

use crate::{DiscoveryDocuments, KeyManager};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use std::sync::Arc;

/// How long verifiers may cache the JWKS and discovery documents.
pub const MAX_AGE_SECONDS: u32 = 300;

#[derive(Clone)]
struct DocsState {
    keys: Arc<KeyManager>,
    discovery: DiscoveryDocuments,
    cache_control: HeaderValue,
}

/// Routes for the JWKS and discovery documents.
pub fn router(keys: Arc<KeyManager>, discovery: DiscoveryDocuments) -> Router {
    let cache_control = HeaderValue::from_str(&format!("public, max-age={MAX_AGE_SECONDS}"))
        .unwrap_or(HeaderValue::from_static("public, max-age=300"));
    let issuer_path = discovery.issuer_path.clone();
    let state = DocsState {
        keys,
        discovery,
        cache_control,
    };
    let mut router = Router::new()
        .route("/oauth/jwks", get(jwks))
        .route("/.well-known/openid-configuration", get(discovery_doc))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery_doc),
        );
    if let Some(path) = issuer_path {
        // RFC 8414 §3.1: for an issuer with a path, the well-known segment goes between the
        // host and the path; clients that follow RFC 8414 §5's note do the same for OpenID.
        router = router
            .route(
                &format!("/.well-known/oauth-authorization-server{path}"),
                get(discovery_doc),
            )
            .route(
                &format!("/.well-known/openid-configuration{path}"),
                get(discovery_doc),
            );
    }
    router.with_state(state)
}

fn json(bytes: bytes::Bytes, content_type: &'static str, cache_control: &HeaderValue) -> Response {
    let mut response = Response::new(Body::from(bytes));
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, cache_control.clone());
    response
}

async fn jwks(State(state): State<DocsState>) -> Response {
    // RFC 7517 §8.5.1 registers application/jwk-set+json.
    json(
        state.keys.current().jwks_json(),
        "application/jwk-set+json",
        &state.cache_control,
    )
}

async fn discovery_doc(State(state): State<DocsState>) -> Response {
    json(
        state.discovery.json.clone(),
        "application/json",
        &state.cache_control,
    )
}
