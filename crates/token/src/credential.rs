//! What a presented credential is, before the decision: one of our access tokens (verified
//! with our keys, cached), an API key (found by digest), or a consumer's JWT (verified with
//! the keys of the profile it names). Every JWT goes through the one verifier of the jwks
//! crate; nothing here decides whether the credential is good *for a caller* — that is
//! [`gatehouse_registry::Registry::decide`].

use crate::consumer;
use crate::error::TokenError;
use crate::state::TokenState;
use gatehouse_jwks::jws::{self, Rules};
use gatehouse_registry::decision::{Credential, Reason};
use gatehouse_registry::metrics::METRICS;
use gatehouse_registry::secret::sha256;
use serde_json::Value;
use std::sync::Arc;

/// Identify and verify `token` at `now`: the credential, or why it is no good at all.
/// `Err` only when a store or a key source cannot answer.
pub(crate) async fn identify(
    state: &TokenState,
    token: &str,
    now: i64,
) -> Result<Result<Credential, Reason>, TokenError> {
    if token.starts_with(gatehouse_registry::api_key_format::PREFIX) {
        return Ok(
            match state
                .registry
                .api_key_by_value(token)
                .await
                .map_err(|_| TokenError::TemporarilyUnavailable)?
            {
                Some(key) => Ok(Credential::ApiKey(key)),
                None => Err(Reason::Unknown),
            },
        );
    }
    if token.len() > jws::MAX_TOKEN_LEN {
        return Ok(Err(Reason::BadSignature));
    }
    // Ours, from the cache when this exact token was verified before (never past `exp`).
    let key = sha256(&[b"access-token", token.as_bytes()]);
    let hit = state.verified_tokens.get(&key);
    METRICS.cache_verified_tokens.record(hit.is_some());
    if let Some((claims, exp)) = hit {
        if now < exp {
            return Ok(Ok(Credential::AccessToken(claims)));
        }
        state.verified_tokens.remove(&key);
        return Ok(Err(Reason::Expired));
    }
    let Ok(decoded) = jws::decode(token) else {
        return Ok(Err(Reason::BadSignature));
    };
    let ours = decoded
        .unverified_claims()
        .get("iss")
        .and_then(Value::as_str)
        == Some(state.issuer.as_str());
    if ours {
        let keys = state.keys.current();
        let verified = decoded
            .check_signature(keys.verify_keys())
            .and_then(|signed| signed.validate(&Rules::access_token(&state.issuer), now));
        return Ok(match verified {
            Ok(v) => {
                let claims = Arc::new(v.claims);
                state.verified_tokens.insert(key, (claims.clone(), v.exp));
                Ok(Credential::AccessToken(claims))
            }
            Err(rejection) => Err(consumer::reason(rejection)),
        });
    }
    let (profile, signed) = match consumer::profile_and_signature(state, decoded).await? {
        Ok(found) => found,
        Err(jws::Rejection::Unavailable) => return Err(TokenError::TemporarilyUnavailable),
        Err(rejection) => return Ok(Err(consumer::reason(rejection))),
    };
    let Some(rules) = profile.jwt.as_ref() else {
        return Ok(Err(Reason::BadSignature));
    };
    let verified = match signed.validate(
        &Rules::consumer(
            &rules.allowed_audiences,
            &rules.allowed_issuers,
            &rules.required_claims,
        ),
        now,
    ) {
        Ok(v) => v,
        Err(rejection) => return Ok(Err(consumer::reason(rejection))),
    };
    // Revoked (RFC 7009) by a collection, an admin or the profile's client.
    let revocation = consumer::revocation_id(&profile.profile_id, &verified.claims, token);
    if state
        .registry
        .is_revoked(&revocation)
        .await
        .map_err(|_| TokenError::TemporarilyUnavailable)?
    {
        return Ok(Err(Reason::Revoked));
    }
    Ok(Ok(Credential::ConsumerJwt {
        profile,
        claims: Arc::new(verified.claims),
    }))
}
