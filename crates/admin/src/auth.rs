//! Admin API authorization: a bearer access token issued by this server for the built-in
//! admin collection, with `gatehouse:admin` to write or `gatehouse:admin:read` to read.

use crate::error::ApiError;
use crate::state::AdminState;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_registry::Actor;
use gatehouse_registry::decision::AdminRights;
use gatehouse_registry::types::ADMIN_SCOPE;
use std::sync::Arc;

/// Check the bearer token and put the caller's [`Actor`] into the request.
pub async fn require_admin(
    State(state): State<Arc<AdminState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let verdict = authorize(&state, request.headers(), &method).await;
    match verdict {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn authorize(
    state: &AdminState,
    headers: &axum::http::HeaderMap,
    method: &Method,
) -> Result<Actor, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .ok_or(ApiError::Unauthenticated {
            invalid_token: false,
        })?;
    let invalid = || ApiError::Unauthenticated {
        invalid_token: true,
    };
    let text = header.to_str().map_err(|_| invalid())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthenticated {
            invalid_token: false,
        });
    }
    // The rights are the admin profile's CURRENT grant (the contract): a token whose profile
    // lost the admin collection, or was switched off, stops here at once; one for another
    // audience is `invalid_token` (RFC 6750 §3.1), not 403.
    let now = state.registry.clock().now();
    let (profile, rights) = state
        .registry
        .admin_by_bearer(
            &state.keys.current(),
            token.trim(),
            &state.admin_audience,
            now,
        )
        .await?
        .ok_or_else(invalid)?;
    let read_only = matches!(*method, Method::GET | Method::HEAD);
    if rights != AdminRights::Write && !read_only {
        return Err(ApiError::Forbidden {
            needed: ADMIN_SCOPE,
        });
    }
    Ok(gatehouse_registry::decision::admin_actor(&profile, rights))
}
