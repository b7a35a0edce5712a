//! RFC 7523 §2.2 client authentication with a JWT (`private_key_jwt` for rsa profiles,
//! `client_secret_jwt` for hmac ones), followed by the client-credentials grant.
//!
//! The assertion must name the profile's `oauth_client_id` as both `iss` and `sub`, carry a
//! single-string `aud` equal to the issuer or the token endpoint (arrays are refused: audience
//! injection), an `exp` at most 5 minutes ahead, and a `jti` never seen before (kept until
//! `exp`, in the database, so a replay fails on every instance). It is verified only with the
//! profile's pinned algorithms and keys. This runs beside oxide-auth's flow, whose client
//! check is password-shaped (ADR 0003).

use crate::error::TokenError;
use crate::flow::IssuedBody;
use crate::introspect::LEEWAY_SECS;
use crate::request::{ClientAuth, TokenRequest};
use crate::service::{claims, negotiate};
use crate::state::TokenState;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_registry::types::AuthType;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;

/// How far ahead an assertion's `exp` may be.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Authenticate with the assertion and issue a token.
pub(crate) async fn client_credentials(
    state: Arc<TokenState>,
    request: TokenRequest,
    peer: IpAddr,
) -> Result<IssuedBody, TokenError> {
    let invalid = TokenError::InvalidClient { basic: false };
    let ClientAuth::Assertion {
        client_id,
        assertion,
    } = &request.auth
    else {
        return Err(TokenError::ServerError);
    };
    let token = assertion.expose_secret();
    if token.len() > 16 * 1024 {
        return Err(invalid);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid);
    };
    let (Some(header), Some(claims_in)) = (
        crate::foreign::decode_part(h),
        crate::foreign::decode_part(p),
    ) else {
        return Err(invalid);
    };
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("none");
    if alg.eq_ignore_ascii_case("none") || header.contains_key("crit") {
        return Err(invalid);
    }
    let str_claim = |k: &str| claims_in.get(k).and_then(Value::as_str);
    let (Some(iss), Some(sub)) = (str_claim("iss"), str_claim("sub")) else {
        return Err(invalid);
    };
    if iss != sub || client_id.as_deref().is_some_and(|c| c != iss) {
        return Err(invalid);
    }
    let profile = match state.registry.profile_by_client_id(iss).await {
        Ok(Some(p)) => p,
        Ok(None) => return Err(invalid),
        Err(_) => return Err(TokenError::TemporarilyUnavailable),
    };
    if profile.auth_type != AuthType::Jwt {
        return Err(TokenError::UnauthorizedClient);
    }
    let Some(rules) = profile.jwt.clone() else {
        return Err(invalid);
    };
    if !rules.algorithms.iter().any(|a| a == alg) {
        return Err(invalid);
    }
    let now = state.registry.clock().now().timestamp();
    let (Ok(signature), Some(signed)) = (
        URL_SAFE_NO_PAD.decode(s),
        token.as_bytes().get(..h.len() + 1 + p.len()),
    ) else {
        return Err(invalid);
    };
    if !crate::foreign::signature_ok(
        &state,
        &profile.profile_id,
        &rules,
        &header,
        signed,
        &signature,
        now,
    )
    .await?
    .accepts(Some(iss))
    {
        return Err(invalid);
    }
    // RFC 7523 §3: aud identifies this server; one string only (no audience injection).
    let token_endpoint = format!("{}/oauth/token", state.issuer.trim_end_matches('/'));
    match claims_in.get("aud") {
        Some(Value::String(a)) if *a == state.issuer || *a == token_endpoint => {}
        _ => return Err(invalid),
    }
    let Some(exp) = claims_in.get("exp").and_then(Value::as_i64) else {
        return Err(invalid);
    };
    if exp + LEEWAY_SECS <= now || exp - now > MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS {
        return Err(invalid);
    }
    for t in ["nbf", "iat"] {
        if let Some(v) = claims_in.get(t)
            && v.as_i64().is_none_or(|t| t - LEEWAY_SECS > now)
        {
            return Err(invalid);
        }
    }
    let Some(jti) = str_claim("jti").filter(|j| !j.is_empty() && j.len() <= 256) else {
        return Err(invalid);
    };
    let expires_at = chrono::DateTime::from_timestamp(exp + LEEWAY_SECS, 0).unwrap_or_default();
    match state
        .registry
        .remember_assertion(&profile.profile_id, jti, expires_at)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(invalid),
        Err(_) => return Err(TokenError::TemporarilyUnavailable),
    }
    // Inactive and IP-denied look like any other authentication failure (contract).
    if !profile.is_active() || !profile.allows_ip(peer) {
        return Err(invalid);
    }
    issue_for(&state, &profile, &request, now).await
}

/// RFC 7523 §2.1: trade a `jwt` profile's JWT (verified exactly as introspection verifies it:
/// the profile's pinned keys, `allowed_audiences`, issuers, required claims, `exp`) for an
/// access token. A `jti`, when present, is remembered until `exp`, so the same JWT cannot be
/// traded twice. Every refusal is `invalid_grant` (RFC 7523 §3.1).
pub(crate) async fn jwt_bearer(
    state: Arc<TokenState>,
    request: TokenRequest,
    peer: IpAddr,
) -> Result<IssuedBody, TokenError> {
    if !matches!(request.auth, ClientAuth::None) {
        return Err(TokenError::InvalidRequest(
            "send the JWT-bearer grant without client authentication: the assertion identifies the profile",
        ));
    }
    let Some(assertion) = &request.assertion else {
        return Err(TokenError::InvalidRequest("assertion is missing"));
    };
    let now = state.registry.clock().now().timestamp();
    let verified = match crate::foreign::verify(&state, assertion.expose_secret(), now).await? {
        Ok(v) => v,
        Err(_) => return Err(TokenError::InvalidGrant),
    };
    let profile = verified.profile;
    if let Some(jti) = verified.claims.get("jti").and_then(Value::as_str) {
        let exp = verified
            .claims
            .get("exp")
            .and_then(Value::as_i64)
            .unwrap_or(now);
        let expires_at = chrono::DateTime::from_timestamp(exp + LEEWAY_SECS, 0).unwrap_or_default();
        match state
            .registry
            .remember_assertion(&profile.profile_id, &format!("grant:{jti}"), expires_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => return Err(TokenError::InvalidGrant),
            Err(_) => return Err(TokenError::TemporarilyUnavailable),
        }
    }
    if !profile.is_active() || !profile.allows_ip(peer) {
        return Err(TokenError::InvalidGrant);
    }
    issue_for(&state, &profile, &request, now).await
}

/// Negotiate scopes and audiences for an authenticated profile and sign its access token.
async fn issue_for(
    state: &TokenState,
    profile: &gatehouse_registry::ProfileSnapshot,
    request: &TokenRequest,
    now: i64,
) -> Result<IssuedBody, TokenError> {
    let negotiated = negotiate(profile, request.scope.as_deref(), &request.resources)?;
    let rate = crate::service::admit(state, profile).await?;
    let token_claims = claims(
        &state.issuer,
        profile,
        &negotiated,
        now,
        state.max_token_ttl,
    );
    let expires_in = token_claims.exp - now;
    let access_token = state
        .keys
        .current()
        .sign_access_token(&token_claims)
        .map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            TokenError::ServerError
        })?;
    let mut body = serde_json::json!({
        "access_token": access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
    });
    if !negotiated.scopes.is_empty() {
        body["scope"] = Value::from(negotiated.scopes.join(" "));
    }
    crate::service::issued(state, profile);
    Ok(IssuedBody(body.to_string(), rate))
}
