//! Consumers' own JWTs (`jwt` profiles sign them, `oidc` profiles' identity providers do):
//! which profile one names, and its signature against that profile's keys — through the one
//! verifier of the jwks crate.
//!
//! The profile is found as the contract says: read `iss` and the claims that profiles are
//! configured with, without trusting them, pick the one profile whose `jwt_claim` value and
//! issuer rules match, then verify only with that profile's pinned algorithms and keys
//! (RFC 8725 §3.1). `jku`/`x5u`/`jwk` headers are never followed: keys come only from the
//! profile. Which claim rules then apply depends on the purpose: [`Rules::consumer`] when a
//! resource server introspects the JWT, [`Rules::assertion`] when it is traded at the token
//! endpoint (RFC 7523 §2.1).

use crate::error::TokenError;
use crate::state::TokenState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_jwks::jws::{Jws, Rejection, Signed};
use gatehouse_jwks::remote::KeySource;
use gatehouse_registry::decision::Reason;
use gatehouse_registry::secret::sha256;
use gatehouse_registry::{JwtKeys, JwtRules, ProfileSnapshot};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The signature of `jws` checked with `profile`'s keys: its local HMAC secret or PEM key, or
/// its remote key set (discovery or JWKS URL, cached).
pub(crate) async fn check_signature(
    state: &TokenState,
    jws: Jws<'_>,
    rules: &JwtRules,
) -> Result<Signed, Rejection> {
    let source = match &rules.keys {
        JwtKeys::Local(_) => {
            let now = state.registry.clock().now();
            return jws.check_signature(rules.live_keys(now));
        }
        JwtKeys::Issuer(issuer) => KeySource::Issuer(issuer.clone()),
        JwtKeys::JwksUri(uri) => KeySource::JwksUri(uri.clone()),
    };
    state
        .remote_keys
        .verify(&source, jws, &rules.algorithms)
        .await
}

/// The profile a consumer's JWT names, and its signature checked with that profile's keys.
pub(crate) async fn profile_and_signature<'t>(
    state: &TokenState,
    jws: Jws<'t>,
) -> Result<Result<(Arc<ProfileSnapshot>, Signed), Rejection>, TokenError> {
    let profile = state
        .registry
        .jwt_profile_for(jws.unverified_claims())
        .await
        .map_err(|_| TokenError::TemporarilyUnavailable)?;
    let Some((profile, rules)) = profile.and_then(|p| p.jwt.clone().map(|r| (p, r))) else {
        return Ok(Err(Rejection::UnknownKey));
    };
    Ok(check_signature(state, jws, &rules)
        .await
        .map(|signed| (profile, signed)))
}

/// The usage reason of a verifier refusal.
pub(crate) fn reason(rejection: Rejection) -> Reason {
    match rejection {
        Rejection::Expired => Reason::Expired,
        Rejection::NotYetValid => Reason::NotYetValid,
        _ => Reason::BadSignature,
    }
}

/// The revocation-store id of a consumer's JWT: per profile and `jti` (a `jti` names one
/// token, RFC 7519 §4.1.7), or per token digest when it has no `jti`. Hashed, so nothing the
/// consumer chose is stored or compared as is.
pub(crate) fn revocation_id(profile_id: &str, claims: &Map<String, Value>, token: &str) -> String {
    let digest = match claims.get("jti").and_then(Value::as_str) {
        Some(jti) => sha256(&[b"foreign-jti", profile_id.as_bytes(), b"\0", jti.as_bytes()]),
        None => sha256(&[b"foreign-token", token.as_bytes()]),
    };
    format!("fj_{}", URL_SAFE_NO_PAD.encode(digest))
}
