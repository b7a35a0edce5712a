//! Introspection of JWTs that consumers sign themselves (`jwt` profiles) or that their
//! identity providers sign (`oidc` profiles).
//!
//! The profile is found as the contract says: read `iss` and the candidate claim values
//! without trusting them, pick the one profile whose `jwt_claim`/`jwt_claim_value` and issuer
//! rules match, then verify only with that profile's pinned algorithms and keys
//! (RFC 8725 §3.1: `none` and HS-with-an-RSA-key confusion are impossible because an hmac
//! profile pins only HS* and an rsa profile only RS*/PS*). `exp` is required (§3.10 advice),
//! `aud` must meet `allowed_audiences` (§3.9), `crit` is refused, `jku`/`x5u`/`jwk` headers
//! are ignored: keys come only from the profile.

use crate::error::TokenError;
use crate::introspect::{Denial, LEEWAY_SECS};
use crate::state::TokenState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_jwks::remote::{KeySource, RemoteVerdict};
use gatehouse_registry::secret::sha256;
use gatehouse_registry::{JwtKeys, JwtRules, ProfileSnapshot};
use josekit::jws::{HS256, HS384, HS512, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512};
use serde_json::{Map, Value};
use std::sync::Arc;

/// A verified foreign JWT: its claims and the profile it belongs to.
pub(crate) struct Verified {
    pub(crate) claims: Map<String, Value>,
    pub(crate) profile: Arc<ProfileSnapshot>,
}

pub(crate) fn decode_part(part: &str) -> Option<Map<String, Value>> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn hmac_verifier(alg: &str, key: &[u8]) -> Option<Box<dyn JwsVerifier>> {
    Some(match alg {
        "HS256" => Box::new(HS256.verifier_from_bytes(key).ok()?),
        "HS384" => Box::new(HS384.verifier_from_bytes(key).ok()?),
        "HS512" => Box::new(HS512.verifier_from_bytes(key).ok()?),
        _ => return None,
    })
}

fn rsa_verifier(alg: &str, pem: &str) -> Option<Arc<dyn JwsVerifier>> {
    // The SPKI DER of an ordinary RSA key: josekit's PSS verifiers accept it from DER (they
    // would want an RSASSA-PSS key from PEM).
    let der = openssl::pkey::PKey::public_key_from_pem(pem.as_bytes())
        .ok()?
        .public_key_to_der()
        .ok()?;
    Some(match alg {
        "RS256" => Arc::new(RS256.verifier_from_der(&der).ok()?),
        "RS384" => Arc::new(RS384.verifier_from_der(&der).ok()?),
        "RS512" => Arc::new(RS512.verifier_from_der(&der).ok()?),
        "PS256" => Arc::new(PS256.verifier_from_der(&der).ok()?),
        "PS384" => Arc::new(PS384.verifier_from_der(&der).ok()?),
        "PS512" => Arc::new(PS512.verifier_from_der(&der).ok()?),
        _ => return None,
    })
}

/// Whether `signature` over `signed` verifies with one of the profile's keys for `alg` (the
/// caller has checked `alg` is pinned). Remote keys answer `Err` when they were never fetched
/// and the source is unreachable now.
pub(crate) async fn signature_ok(
    state: &TokenState,
    profile_id: &str,
    rules: &JwtRules,
    header: &Map<String, Value>,
    signed: &[u8],
    signature: &[u8],
    now: i64,
) -> Result<RemoteOutcome, TokenError> {
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let source = match &rules.keys {
        JwtKeys::Hmac(keys) => {
            let ok = keys.iter().any(|(key, until)| {
                until.is_none_or(|u| u.timestamp() > now)
                    && hmac_verifier(alg, key).is_some_and(|v| v.verify(signed, signature).is_ok())
            });
            return Ok(RemoteOutcome::from_bool(ok));
        }
        JwtKeys::Pem(pem) => {
            let key = sha256(&[profile_id.as_bytes(), alg.as_bytes(), pem.as_bytes()]);
            let verifier = match state.foreign_verifiers.get(&key) {
                Some(v) => v,
                None => {
                    let Some(v) = rsa_verifier(alg, pem) else {
                        return Ok(RemoteOutcome::Rejected);
                    };
                    state.foreign_verifiers.insert(key, v.clone());
                    v
                }
            };
            return Ok(RemoteOutcome::from_bool(
                verifier.verify(signed, signature).is_ok(),
            ));
        }
        JwtKeys::Issuer(issuer) => KeySource::Issuer(issuer.clone()),
        JwtKeys::JwksUri(uri) => KeySource::JwksUri(uri.clone()),
    };
    // `kid` is only a lookup hint into the profile's own key set; `jku`, `x5u` and `jwk`
    // headers are never followed (RFC 8725 §3.10 spirit: keys come from configuration).
    let kid = header.get("kid").and_then(Value::as_str);
    if kid.is_some_and(|k| k.len() > 256) {
        return Ok(RemoteOutcome::Rejected);
    }
    match state
        .remote_keys
        .verify(&source, kid, alg, signed, signature)
        .await
    {
        RemoteVerdict::Verified { issuer } => Ok(RemoteOutcome::Verified { issuer }),
        RemoteVerdict::Rejected => Ok(RemoteOutcome::Rejected),
        RemoteVerdict::Unavailable => Err(TokenError::TemporarilyUnavailable),
    }
}

/// What a signature check found.
pub(crate) enum RemoteOutcome {
    /// A key verified it; for a discovery source, the issuer `iss` must equal.
    Verified { issuer: Option<String> },
    /// No key verifies it.
    Rejected,
}

impl RemoteOutcome {
    fn from_bool(ok: bool) -> Self {
        if ok {
            RemoteOutcome::Verified { issuer: None }
        } else {
            RemoteOutcome::Rejected
        }
    }

    /// Verified, and `iss` equals the discovered issuer where there is one (OpenID Connect
    /// Discovery §4.3 / the contract).
    pub(crate) fn accepts(&self, iss: Option<&str>) -> bool {
        match self {
            RemoteOutcome::Verified { issuer: None } => true,
            RemoteOutcome::Verified {
                issuer: Some(issuer),
            } => iss == Some(issuer.as_str()),
            RemoteOutcome::Rejected => false,
        }
    }
}

fn audience_ok(claims: &Map<String, Value>, allowed: &[String]) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => allowed.iter().any(|x| x == a),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|a| allowed.iter().any(|x| x == a)),
        _ => false,
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

/// Verify a foreign JWT against the one `jwt`/`oidc` profile it claims to belong to.
pub(crate) async fn verify(
    state: &TokenState,
    token: &str,
    now: i64,
) -> Result<Result<Verified, Denial>, TokenError> {
    if token.len() > 16 * 1024 {
        return Ok(Err(Denial::BadSignature));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(Err(Denial::BadSignature));
    };
    let (Some(header), Some(claims)) = (decode_part(h), decode_part(p)) else {
        return Ok(Err(Denial::BadSignature));
    };
    let Some(alg) = header.get("alg").and_then(Value::as_str) else {
        return Ok(Err(Denial::BadSignature));
    };
    if alg.eq_ignore_ascii_case("none") || header.contains_key("crit") || s.is_empty() {
        return Ok(Err(Denial::BadSignature));
    }
    let values: Vec<&str> = claims.values().filter_map(Value::as_str).take(16).collect();
    let candidates = state
        .registry
        .jwt_profiles_matching(&values)
        .await
        .map_err(|_| TokenError::TemporarilyUnavailable)?;
    let iss = claims.get("iss").and_then(Value::as_str);
    let mut matching = candidates.into_iter().filter(|p| {
        p.jwt.as_ref().is_some_and(|r| {
            claims.get(&r.claim).and_then(Value::as_str) == Some(r.claim_value.as_str())
                && (r.allowed_issuers.is_empty()
                    || iss.is_some_and(|i| r.allowed_issuers.iter().any(|a| a == i)))
        })
    });
    let (Some(profile), None) = (matching.next(), matching.next()) else {
        return Ok(Err(Denial::BadSignature));
    };
    let Some(rules) = profile.jwt.clone() else {
        return Ok(Err(Denial::BadSignature));
    };
    if !rules.algorithms.iter().any(|a| a == alg) {
        return Ok(Err(Denial::BadSignature));
    }
    let Ok(signature) = URL_SAFE_NO_PAD.decode(s) else {
        return Ok(Err(Denial::BadSignature));
    };
    let Some(signed) = token.as_bytes().get(..h.len() + 1 + p.len()) else {
        return Ok(Err(Denial::BadSignature));
    };
    let outcome = signature_ok(
        state,
        &profile.profile_id,
        &rules,
        &header,
        signed,
        &signature,
        now,
    )
    .await?;
    if !outcome.accepts(iss) {
        return Ok(Err(Denial::BadSignature));
    }
    let Some(exp) = claims.get("exp").and_then(Value::as_i64) else {
        return Ok(Err(Denial::BadSignature));
    };
    if exp + LEEWAY_SECS <= now {
        return Ok(Err(Denial::Expired));
    }
    for t in ["nbf", "iat"] {
        if let Some(v) = claims.get(t) {
            match v.as_i64() {
                Some(t) if t - LEEWAY_SECS <= now => {}
                _ => return Ok(Err(Denial::NotYetValid)),
            }
        }
    }
    if !audience_ok(&claims, &rules.allowed_audiences) {
        return Ok(Err(Denial::Audience));
    }
    for required in &rules.required_claims {
        let ok = match (claims.get(&required.name), &required.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(v), Some(want)) => v.as_str() == Some(want.as_str()),
        };
        if !ok {
            return Ok(Err(Denial::BadSignature));
        }
    }
    // Revoked (RFC 7009) by a collection, an admin or the profile's client.
    if state
        .registry
        .is_revoked(&revocation_id(&profile.profile_id, &claims, token))
        .await
        .map_err(|_| TokenError::TemporarilyUnavailable)?
    {
        return Ok(Err(Denial::Revoked));
    }
    Ok(Ok(Verified { claims, profile }))
}
