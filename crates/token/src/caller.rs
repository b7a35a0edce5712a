//! Who is calling introspection or revocation: a collection (resource server) with its
//! introspection credentials, an admin with a bearer token, or the oauth2 client a token was
//! issued to. Anyone else is `invalid_client`.

use crate::error::TokenError;
use crate::request::parse_basic;
use crate::state::TokenState;
use axum::http::{HeaderMap, header};
use gatehouse_registry::types::admin_rights;
use gatehouse_registry::{AuthFailure, CollectionSnapshot, ProfileSnapshot};
use std::net::IpAddr;
use std::sync::Arc;

/// An authenticated caller of introspection or revocation.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A resource server: sees only tokens whose audience includes its own.
    Collection(Arc<CollectionSnapshot>),
    /// An admin bearer token (`write` with `gatehouse:admin`).
    Admin {
        /// The admin's client id, for the audit log.
        sub: String,
        /// Whether it holds `gatehouse:admin` (not only `:read`).
        write: bool,
    },
    /// An oauth2 client: sees only its own tokens.
    Client(Arc<ProfileSnapshot>),
}

impl Caller {
    /// An identifier for the audit log.
    pub fn actor(&self) -> String {
        match self {
            Caller::Collection(c) => c.id.clone(),
            Caller::Admin { sub, .. } => sub.clone(),
            Caller::Client(p) => p.oauth_client_id.clone(),
        }
    }
}

/// Authenticate the caller from the `Authorization` header or `client_id`/`client_secret`
/// form parameters (never both: RFC 6749 §2.3).
pub async fn authenticate(
    state: &TokenState,
    headers: &HeaderMap,
    params: &[(String, String)],
    peer: Option<IpAddr>,
) -> Result<Caller, TokenError> {
    let form = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let form_secret = form("client_secret");
    let (id, secret, basic) = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            if form_secret.is_some() {
                return Err(TokenError::InvalidRequest(
                    "more than one client authentication method",
                ));
            }
            let text = value
                .to_str()
                .map_err(|_| TokenError::InvalidClient { basic: true })?;
            if text.len() > 7
                && text
                    .get(..7)
                    .is_some_and(|s| s.eq_ignore_ascii_case("bearer "))
            {
                return admin(state, text.get(7..).unwrap_or("").trim()).await;
            }
            let (id, secret) = parse_basic(value)?;
            (id, secret.expose_secret().to_owned(), true)
        }
        None => match (form("client_id"), form_secret) {
            (Some(id), Some(secret)) => (id.to_owned(), secret.to_owned(), false),
            _ => return Err(TokenError::InvalidClient { basic: false }),
        },
    };
    let failure = |e: AuthFailure| auth_error(e, basic);
    if id.starts_with(gatehouse_registry::ids::IdKind::ResourceServer.prefix()) {
        let collection = state
            .registry
            .authenticate_collection(&id, &secret, peer)
            .await
            .map_err(failure)?;
        return Ok(Caller::Collection(collection));
    }
    let profile = state
        .registry
        .authenticate_secret(&id, &secret, peer)
        .await
        .map_err(failure)?;
    if !profile.is_active() {
        return Err(TokenError::InvalidClient { basic });
    }
    Ok(Caller::Client(profile))
}

/// The answer to a failed client authentication: `invalid_client` whatever the reason, 429
/// past the failure budget (RFC 6749 §2.3.1), 503 when the store is down.
pub(crate) fn auth_error(e: AuthFailure, basic: bool) -> TokenError {
    match e {
        AuthFailure::Unavailable => TokenError::TemporarilyUnavailable,
        AuthFailure::Throttled { retry_after } => TokenError::Limited {
            quota: false,
            retry_after,
            info: None,
        },
        _ => TokenError::InvalidClient { basic },
    }
}

async fn admin(state: &TokenState, token: &str) -> Result<Caller, TokenError> {
    let refused = TokenError::InvalidClient { basic: false };
    let now = state.registry.clock().now().timestamp();
    let verified = state
        .keys
        .current()
        .verify_access_token(token, now, 60)
        .map_err(|_| refused.clone())?;
    let rights = admin_rights(&verified.claims, &state.admin_audience).ok_or(refused.clone())?;
    let sub = verified
        .claims
        .get("sub")
        .and_then(|v| v.as_str())
        .ok_or(refused.clone())?;
    let jti = verified
        .claims
        .get("jti")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if state
        .registry
        .is_revoked(jti)
        .await
        .map_err(|_| TokenError::TemporarilyUnavailable)?
    {
        return Err(refused);
    }
    match state.registry.profile_by_client_id(sub).await {
        Ok(Some(p)) if p.is_active() => Ok(Caller::Admin {
            sub: sub.to_owned(),
            write: rights.write,
        }),
        Ok(_) => Err(refused),
        Err(_) => Err(TokenError::TemporarilyUnavailable),
    }
}
