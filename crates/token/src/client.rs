//! Client authentication, the same at the token, introspection and revocation endpoints:
//! `client_secret_basic` / `client_secret_post` (argon2id once, then the verified-secret
//! cache) and `private_key_jwt` / `client_secret_jwt` (RFC 7523 §2.2). Any failure is
//! `invalid_client` (401 with a Basic challenge), whatever the reason; past the failure
//! budget 429; 503 when the store is down.

use crate::error::TokenError;
use crate::request::ClientAuth;
use crate::state::TokenState;
use gatehouse_registry::decision::Caller;
use gatehouse_registry::ids::IdKind;
use gatehouse_registry::{AuthFailure, ProfileSnapshot};
use std::net::IpAddr;
use std::sync::Arc;

/// The answer to a failed secret check: `invalid_client` whatever the reason, 429 past the
/// failure budget (RFC 6749 §2.3.1), 503 with `Retry-After` when the store is down or the
/// argon2 waiting room is full.
pub(crate) fn auth_error(e: AuthFailure) -> TokenError {
    match e {
        AuthFailure::Unavailable | AuthFailure::Busy => TokenError::TemporarilyUnavailable,
        AuthFailure::Throttled { retry_after } => TokenError::throttled(retry_after),
        _ => TokenError::InvalidClient,
    }
}

/// Authenticate a profile's client (a collection's credentials are refused here unless
/// `collections`, see [`caller`]). The profile must be active and its IP rules must admit
/// `peer`: otherwise the answer is the same `invalid_client` as a wrong secret (contract).
pub(crate) async fn authenticate(
    state: &TokenState,
    auth: &ClientAuth,
    peer: Option<IpAddr>,
    collections: bool,
) -> Result<Arc<ProfileSnapshot>, TokenError> {
    match authenticate_any(state, auth, peer, collections).await? {
        Caller::Client(profile) => Ok(profile),
        _ => Err(TokenError::InvalidClient),
    }
}

async fn authenticate_any(
    state: &TokenState,
    auth: &ClientAuth,
    peer: Option<IpAddr>,
    collections: bool,
) -> Result<Caller, TokenError> {
    let (id, secret) = match auth {
        ClientAuth::Basic { client_id, secret } | ClientAuth::Post { client_id, secret } => {
            (client_id.as_str(), secret.expose_secret())
        }
        ClientAuth::Assertion {
            client_id,
            assertion,
        } => {
            let profile = crate::assertion::authenticate_client(
                state,
                client_id.as_deref(),
                assertion.expose_secret(),
                peer,
            )
            .await?;
            return Ok(Caller::Client(profile));
        }
        ClientAuth::None | ClientAuth::Bearer(_) => return Err(TokenError::InvalidClient),
    };
    if collections && id.starts_with(IdKind::ResourceServer.prefix()) {
        let collection = state
            .registry
            .authenticate_collection(id, secret, peer)
            .await
            .map_err(auth_error)?;
        return Ok(Caller::Collection(collection));
    }
    let profile = state
        .registry
        .authenticate_client_secret(id, secret, peer)
        .await
        .map_err(auth_error)?;
    Ok(Caller::Client(profile))
}

/// Who calls introspection or revocation: a collection (its introspection credentials), an
/// admin (a Bearer access token whose rights come from the admin's current grant), or a
/// client (for its own tokens). A Bearer token that is not an admin token gets RFC 6750's
/// `invalid_token`; anyone else `invalid_client`.
pub(crate) async fn caller(
    state: &TokenState,
    auth: &ClientAuth,
    peer: Option<IpAddr>,
) -> Result<Caller, TokenError> {
    if let ClientAuth::Bearer(token) = auth {
        let now = state.registry.clock().now();
        let admin = state
            .registry
            .admin_by_bearer(
                &state.keys.current(),
                token.expose_secret(),
                &state.admin_audience,
                now,
            )
            .await
            .map_err(|_| TokenError::TemporarilyUnavailable)?;
        return match admin {
            Some((profile, rights)) => Ok(Caller::Admin(
                gatehouse_registry::decision::admin_actor(&profile, rights),
            )),
            None => Err(TokenError::InvalidToken),
        };
    }
    authenticate_any(state, auth, peer, true).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    /// A full argon2 waiting room is the documented 503 with `Retry-After`, never a 401 (it
    /// says nothing about the credentials) nor a 500.
    #[test]
    fn a_busy_hashing_pool_is_503_with_retry_after() {
        let r = auth_error(AuthFailure::Busy).into_response();
        assert_eq!(r.status().as_u16(), 503);
        assert!(r.headers().get("retry-after").is_some());
        assert_eq!(
            auth_error(AuthFailure::Busy).code(),
            "temporarily_unavailable"
        );
        assert_eq!(
            auth_error(AuthFailure::Throttled { retry_after: 7 })
                .into_response()
                .headers()
                .get("retry-after")
                .map(|v| v.as_bytes().to_vec()),
            Some(b"7".to_vec())
        );
        assert_eq!(
            auth_error(AuthFailure::InvalidCredentials),
            TokenError::InvalidClient
        );
    }
}
