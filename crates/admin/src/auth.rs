//! Admin API authorization: a bearer access token issued by this server for the built-in
//! admin collection, with `gatehouse:admin` to write or `gatehouse:admin:read` to read.

use crate::error::ApiError;
use crate::state::AdminState;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use gatehouse_registry::Actor;
use gatehouse_registry::types::{ADMIN_SCOPE, admin_rights};
use serde_json::Value;
use std::sync::Arc;

/// Clock skew tolerated on token times.
const LEEWAY_SECS: i64 = 60;

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
    let invalid = ApiError::Unauthenticated {
        invalid_token: true,
    };
    let text = header.to_str().map_err(|_| ApiError::Unauthenticated {
        invalid_token: true,
    })?;
    let (scheme, token) = text.split_once(' ').ok_or(ApiError::Unauthenticated {
        invalid_token: true,
    })?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthenticated {
            invalid_token: false,
        });
    }
    let now = state.registry.clock().now().timestamp();
    let verified = state
        .keys
        .current()
        .verify_access_token(token.trim(), now, LEEWAY_SECS)
        .map_err(|e| {
            tracing::debug!(reason = %e, "admin token rejected");
            ApiError::Unauthenticated {
                invalid_token: true,
            }
        })?;
    let claims = verified.claims;
    let rights = admin_rights(&claims, &state.admin_audience).ok_or(ApiError::Forbidden {
        needed: ADMIN_SCOPE,
    })?;
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or(ApiError::Unauthenticated {
            invalid_token: true,
        })?;
    // A revoked token, or one whose admin profile was deactivated or deleted, stops at once.
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    if state.registry.is_revoked(jti).await? {
        return Err(invalid);
    }
    match state.registry.profile_by_client_id(sub).await {
        Ok(Some(p)) if p.is_active() => {}
        Ok(_) => return Err(invalid),
        Err(e) => return Err(e.into()),
    }
    let read_only = matches!(*method, Method::GET | Method::HEAD);
    if !rights.write && !read_only {
        return Err(ApiError::Forbidden {
            needed: ADMIN_SCOPE,
        });
    }
    Ok(Actor(sub.to_owned()))
}
