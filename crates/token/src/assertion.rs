//! RFC 7523 assertions addressed to Gatehouse, both verified through the one verifier with
//! [`Rules::assertion`] (`aud` one string naming Gatehouse, `exp` at most an hour ahead, a
//! `jti` used once):
//!
//! - **client assertions** (§2.2: `private_key_jwt` for rsa profiles, `client_secret_jwt` for
//!   hmac ones): `iss` = `sub` = the profile's `oauth_client_id`; verified with that profile's
//!   keys. Any failure is `invalid_client`, whether or not the client exists.
//! - **the JWT-bearer grant** (§2.1): a `jwt`/`oidc` profile's consumer trades its own JWT,
//!   found and verified like introspection finds and verifies it (the profile's keys, issuers
//!   and required claims) but addressed to Gatehouse — never a resource server's audience, so
//!   a JWT a consumer sends to its API cannot be replayed here. Every refusal is
//!   `invalid_grant` (§3.1) and spends the failed-attempt budgets.

use crate::consumer;
use crate::error::TokenError;
use crate::request::ClientAuth;
use crate::state::TokenState;
use gatehouse_jwks::jws::{self, Rejection, Rules, Verified};
use gatehouse_registry::ProfileSnapshot;
use gatehouse_registry::types::AuthType;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// Remember an assertion's `jti` until its `exp` (+ leeway): `false` when it was used before.
async fn first_use(
    state: &TokenState,
    profile: &ProfileSnapshot,
    namespace: &str,
    verified: &Verified,
) -> Result<bool, TokenError> {
    let jti = verified.str_claim("jti").unwrap_or("");
    let expires_at =
        chrono::DateTime::from_timestamp(verified.exp + jws::LEEWAY_SECS, 0).unwrap_or_default();
    state
        .registry
        .remember_assertion(
            &profile.profile_id,
            &format!("{namespace}{jti}"),
            expires_at,
        )
        .await
        .map_err(|_| TokenError::TemporarilyUnavailable)
}

fn assertion_rules(state: &TokenState) -> Rules<'_> {
    Rules::assertion(&state.issuer, &state.token_endpoint)
}

/// Authenticate a client by its assertion (RFC 7523 §2.2, §3): the `jwt` profile it names.
pub(crate) async fn authenticate_client(
    state: &TokenState,
    client_id: Option<&str>,
    assertion: &str,
    peer: Option<IpAddr>,
) -> Result<Arc<ProfileSnapshot>, TokenError> {
    let invalid = TokenError::InvalidClient;
    let decoded = jws::decode(assertion).map_err(|_| invalid.clone())?;
    let claims = decoded.unverified_claims();
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str);
    let (Some(iss), Some(sub)) = (str_claim("iss"), str_claim("sub")) else {
        return Err(invalid);
    };
    if iss != sub || client_id.is_some_and(|c| c != iss) {
        return Err(invalid);
    }
    let iss = iss.to_owned();
    if let Some(ip) = peer
        && let Some(retry_after) = state.registry.auth_throttled(&iss, ip)
    {
        return Err(TokenError::throttled(retry_after));
    }
    let failed = || {
        if let Some(ip) = peer {
            state.registry.auth_failed(&iss, ip);
        }
        TokenError::InvalidClient
    };
    let profile = match state.registry.profile_by_client_id(&iss).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(failed()),
        Err(_) => return Err(TokenError::TemporarilyUnavailable),
    };
    // Only `jwt` profiles authenticate by assertion; any other answers exactly like an
    // unknown client (no answer tells whether a client id exists).
    let Some(rules) = profile
        .jwt
        .clone()
        .filter(|_| profile.auth_type == AuthType::Jwt)
    else {
        return Err(failed());
    };
    let now = state.registry.clock().now().timestamp();
    let verified = match consumer::check_signature(state, decoded, &rules)
        .await
        .and_then(|signed| signed.validate(&assertion_rules(state), now))
    {
        Ok(v) => v,
        Err(Rejection::Unavailable) => return Err(TokenError::TemporarilyUnavailable),
        Err(why) => {
            tracing::debug!(reason = %why, "client assertion refused");
            return Err(failed());
        }
    };
    if !first_use(state, &profile, "", &verified).await? {
        return Err(failed());
    }
    // Inactive and IP-denied look like any other authentication failure (contract).
    if !profile.is_active() || peer.is_some_and(|ip| !profile.allows_ip(ip)) {
        return Err(TokenError::InvalidClient);
    }
    Ok(profile)
}

/// RFC 7523 §2.1: the profile whose consumer JWT `assertion` is, when it is a valid grant
/// from `peer`. Client authentication, when the request has one, must be that same profile
/// (RFC 6749 §3.2.1).
pub(crate) async fn jwt_bearer_grant(
    state: &TokenState,
    auth: &ClientAuth,
    assertion: &str,
    peer: IpAddr,
) -> Result<Arc<ProfileSnapshot>, TokenError> {
    let client = match auth {
        ClientAuth::None => None,
        other => Some(crate::client::authenticate(state, other, Some(peer), false).await?),
    };
    let decoded = jws::decode(assertion).map_err(|_| TokenError::InvalidGrant)?;
    // The profile is found by the assertion's claims: an address that spent its budget gets
    // no lookup.
    if let Some(retry_after) = state.registry.auth_throttled_address(peer) {
        return Err(TokenError::throttled(retry_after));
    }
    let found = consumer::profile_and_signature(state, decoded).await?;
    let (profile, signed) = match found {
        Ok(found) => found,
        Err(Rejection::Unavailable) => return Err(TokenError::TemporarilyUnavailable),
        Err(why) => {
            tracing::debug!(reason = %why, "jwt-bearer grant refused");
            // Not attributable to a profile (the address budget was checked above): the
            // per-address budget pays.
            state.registry.auth_failed("", peer);
            return Err(TokenError::InvalidGrant);
        }
    };
    let id = profile.oauth_client_id.clone();
    if let Some(retry_after) = state.registry.auth_throttled(&id, peer) {
        return Err(TokenError::throttled(retry_after));
    }
    let failed = || {
        state.registry.auth_failed(&id, peer);
        TokenError::InvalidGrant
    };
    let Some(rules) = profile.jwt.as_ref() else {
        return Err(failed());
    };
    let now = state.registry.clock().now().timestamp();
    let grant_rules = assertion_rules(state)
        .with_issuers(&rules.allowed_issuers)
        .with_required_claims(&rules.required_claims);
    let verified = match signed.validate(&grant_rules, now) {
        Ok(v) => v,
        Err(why) => {
            tracing::debug!(reason = %why, "jwt-bearer grant refused");
            return Err(failed());
        }
    };
    if client.is_some_and(|c| c.profile_id != profile.profile_id) {
        return Err(failed());
    }
    if !first_use(state, &profile, "grant:", &verified).await? {
        return Err(failed());
    }
    if !profile.is_active() || !profile.allows_ip(peer) {
        return Err(TokenError::InvalidGrant);
    }
    Ok(profile)
}
