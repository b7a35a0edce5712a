//! RFC 7662 token introspection and RFC 7009 revocation for Gatehouse access tokens, API
//! keys and consumers' JWTs.
//!
//! Introspection is the decision point for resource servers: active only when the token
//! verifies, is within its lifetime (60 s leeway), is not revoked, its profile and client are
//! active, its audience includes the calling collection, and the consumer's address (the
//! `client_ip` extension parameter) satisfies the profile's IP rules.

use crate::caller::{Caller, authenticate};
use crate::error::{TokenError, no_store};
use crate::request::parse_form;
use crate::state::TokenState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_jwks::VerifiedToken;
use gatehouse_registry::limits::Verdict;
use gatehouse_registry::metrics::METRICS;
use gatehouse_registry::secret::sha256;
use gatehouse_registry::types::AuthType;
use gatehouse_registry::usage::UsageMetric;
use gatehouse_registry::{GrantedCollection, ProfileSnapshot};
use serde_json::{Map, Value, json};
use std::net::IpAddr;
use std::sync::Arc;

/// Clock skew tolerated on `exp`, `nbf` and `iat` (issue 3: at most 60 s).
pub const LEEWAY_SECS: i64 = 60;
/// Longest time a resource server may reuse an active answer (`gatehouse_cache_ttl`).
pub const MAX_CACHE_TTL_SECS: i64 = 60;
/// Largest body accepted.
const MAX_BODY: usize = 64 * 1024;

/// Why a token is inactive (logged, counted in usage and metrics; never sent): the
/// contract's reason codes.
pub use gatehouse_registry::metrics::Reason as Denial;

fn audience_contains(claims: &Map<String, Value>, audience: &str) -> bool {
    match claims.get("aud") {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// Verify one of our tokens, from the bounded cache when this exact token was verified
/// before. A cached entry is never used past `exp` (+ leeway).
fn verify(state: &TokenState, token: &str, now: i64) -> Option<Arc<VerifiedToken>> {
    if token.len() > 16 * 1024 {
        return None;
    }
    let key = sha256(&[b"access-token", token.as_bytes()]);
    let hit = state.verified_tokens.get(&key);
    METRICS.cache_verified_tokens.record(hit.is_some());
    if let Some(hit) = hit {
        let exp = hit.claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
        if exp + LEEWAY_SECS > now {
            return Some(hit);
        }
        state.verified_tokens.remove(&key);
        return None;
    }
    let verified = Arc::new(
        state
            .keys
            .current()
            .verify_access_token(token, now, LEEWAY_SECS)
            .ok()?,
    );
    state.verified_tokens.insert(key, verified.clone());
    Some(verified)
}

/// Decide about one token for one caller.
async fn decide(
    state: &TokenState,
    caller: &Caller,
    token: &str,
    client_ip: Option<&str>,
    seen: &mut Option<Arc<ProfileSnapshot>>,
) -> Result<Result<Value, Denial>, TokenError> {
    if token.starts_with(gatehouse_registry::api_key_format::PREFIX) {
        return decide_api_key(state, caller, token, client_ip, seen).await;
    }
    let now = state.registry.clock().now().timestamp();
    let Some(verified) = verify(state, token, now) else {
        return decide_foreign(state, caller, token, client_ip, now, seen).await;
    };
    let claims = &verified.claims;
    let str_claim = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    let unavailable = |_| TokenError::TemporarilyUnavailable;
    if state
        .registry
        .is_revoked(str_claim("jti"))
        .await
        .map_err(unavailable)?
    {
        return Ok(Err(Denial::Revoked));
    }
    let Some(profile) = state
        .registry
        .profile_by_client_id(str_claim("client_id"))
        .await
        .map_err(unavailable)?
    else {
        return Ok(Err(Denial::Inactive));
    };
    if profile.profile_id != str_claim("profile_id") {
        return Ok(Err(Denial::Inactive));
    }
    *seen = Some(profile.clone());
    if !profile.is_active() {
        return Ok(Err(Denial::Inactive));
    }
    let allowed = match caller {
        Caller::Collection(c) => audience_contains(claims, &c.audience),
        Caller::Client(p) => p.oauth_client_id == str_claim("client_id"),
        Caller::Admin { .. } => true,
    };
    if !allowed {
        return Ok(Err(Denial::Audience));
    }
    if let Err(denial) = check_ip(client_ip, profile.has_ip_rules(), |ip| {
        profile.allows_ip(ip)
    }) {
        return Ok(Err(denial));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    let cache_ttl = if profile.has_ip_rules() {
        0
    } else {
        (exp - now).clamp(0, MAX_CACHE_TTL_SECS)
    };
    let collections: Vec<&str> = profile
        .grants
        .iter()
        .filter(|g| audience_contains(claims, &g.audience))
        .map(|g| g.id.as_str())
        .collect();
    let mut answer = Map::new();
    answer.insert("active".into(), Value::Bool(true));
    for k in [
        "scope",
        "client_id",
        "exp",
        "iat",
        "nbf",
        "sub",
        "aud",
        "iss",
        "jti",
    ] {
        if let Some(v) = claims.get(k) {
            answer.insert(k.into(), v.clone());
        }
    }
    answer.insert("token_type".into(), Value::from("Bearer"));
    Ok(Ok(with_extensions(
        answer,
        &profile,
        &collections,
        cache_ttl,
    )))
}

/// Decide about a JWT a `jwt` profile's consumer signed (see [`crate::foreign`]).
async fn decide_foreign(
    state: &TokenState,
    caller: &Caller,
    token: &str,
    client_ip: Option<&str>,
    now: i64,
    seen: &mut Option<Arc<ProfileSnapshot>>,
) -> Result<Result<Value, Denial>, TokenError> {
    let verified = match crate::foreign::verify(state, token, now).await? {
        Ok(v) => v,
        Err(denial) => return Ok(Err(denial)),
    };
    let profile = verified.profile;
    let claims = verified.claims;
    *seen = Some(profile.clone());
    if !profile.is_active() {
        return Ok(Err(Denial::Inactive));
    }
    let grants = caller_grants(caller, &profile);
    if grants.is_empty() {
        return Ok(Err(Denial::Audience));
    }
    if let Err(denial) = check_ip(client_ip, profile.has_ip_rules(), |ip| {
        profile.allows_ip(ip)
    }) {
        return Ok(Err(denial));
    }
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(now);
    let cache_ttl = if profile.has_ip_rules() {
        0
    } else {
        (exp - now).clamp(0, MAX_CACHE_TTL_SECS)
    };
    let scopes: Vec<&str> = grants
        .iter()
        .flat_map(|g| g.scopes.iter().map(String::as_str))
        .collect();
    let collections: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    let mut answer = Map::new();
    answer.insert("active".into(), Value::Bool(true));
    answer.insert("scope".into(), Value::from(scopes.join(" ")));
    answer.insert(
        "client_id".into(),
        Value::from(profile.oauth_client_id.as_str()),
    );
    for k in ["sub", "iss", "aud", "exp", "iat", "nbf", "jti"] {
        if let Some(v) = claims.get(k) {
            answer.insert(k.into(), v.clone());
        }
    }
    answer.insert("token_type".into(), Value::from("jwt"));
    Ok(Ok(with_extensions(
        answer,
        &profile,
        &collections,
        cache_ttl,
    )))
}

/// The collections of a profile the caller may see: its own (a collection), all (an admin),
/// none (a client: it cannot introspect credentials other than its own tokens).
fn caller_grants<'a>(caller: &Caller, profile: &'a ProfileSnapshot) -> Vec<&'a GrantedCollection> {
    match caller {
        Caller::Collection(c) => profile.grants.iter().filter(|g| g.id == c.id).collect(),
        Caller::Admin { .. } => profile.grants.iter().collect(),
        Caller::Client(_) => Vec::new(),
    }
}

/// IP rules apply: the consumer's address must be given (`client_ip`) and allowed.
fn check_ip(
    client_ip: Option<&str>,
    applies: bool,
    allows: impl Fn(IpAddr) -> bool,
) -> Result<(), Denial> {
    if !applies {
        return Ok(());
    }
    let Some(ip) = client_ip else {
        return Err(Denial::IpUnknown);
    };
    match ip.trim().parse::<IpAddr>() {
        Ok(ip) if allows(ip) => Ok(()),
        _ => Err(Denial::Ip),
    }
}

/// The documented extension members of an active answer.
fn with_extensions(
    mut answer: Map<String, Value>,
    profile: &ProfileSnapshot,
    collections: &[&str],
    cache_ttl: i64,
) -> Value {
    answer.insert(
        "profile_id".into(),
        Value::from(profile.profile_id.as_str()),
    );
    answer.insert(
        "client".into(),
        json!({"id": profile.client_id, "name": profile.client_name}),
    );
    answer.insert("auth_type".into(), Value::from(profile.auth_type.as_str()));
    answer.insert("collections".into(), json!(collections));
    answer.insert("gatehouse_cache_ttl".into(), Value::from(cache_ttl));
    Value::Object(answer)
}

/// Decide about an API key (`auth_type: token`): the key must be well formed, known, live
/// (switch, expiry, refresh grace), its profile and client active, the calling collection
/// granted to the profile, and the address allowed by both the profile's and the key's rules.
async fn decide_api_key(
    state: &TokenState,
    caller: &Caller,
    value: &str,
    client_ip: Option<&str>,
    seen: &mut Option<Arc<ProfileSnapshot>>,
) -> Result<Result<Value, Denial>, TokenError> {
    let unavailable = |_| TokenError::TemporarilyUnavailable;
    let Some(key) = state
        .registry
        .api_key_by_value(value)
        .await
        .map_err(unavailable)?
    else {
        return Ok(Err(Denial::BadSignature));
    };
    let now = state.registry.clock().now();
    if !key.is_live(now) {
        return Ok(Err(Denial::Inactive));
    }
    let Some(profile) = state
        .registry
        .profile_by_client_id(&key.oauth_client_id)
        .await
        .map_err(unavailable)?
    else {
        return Ok(Err(Denial::Inactive));
    };
    if profile.auth_type != AuthType::Token {
        return Ok(Err(Denial::Inactive));
    }
    *seen = Some(profile.clone());
    if !profile.is_active() {
        return Ok(Err(Denial::Inactive));
    }
    let grants = caller_grants(caller, &profile);
    if grants.is_empty() {
        return Ok(Err(Denial::Audience));
    }
    let ip_rules = profile.has_ip_rules() || key.has_ip_rules();
    if let Err(denial) = check_ip(client_ip, ip_rules, |ip| {
        profile.allows_ip(ip) && key.allows_ip(ip)
    }) {
        return Ok(Err(denial));
    }
    state.registry.touch_api_key(&key.id);
    let ends = key.ends_at().map(|e| e.timestamp());
    let now_s = now.timestamp();
    let cache_ttl = if ip_rules {
        0
    } else {
        ends.map_or(MAX_CACHE_TTL_SECS, |e| e - now_s)
            .clamp(0, MAX_CACHE_TTL_SECS)
    };
    let scopes: Vec<&str> = grants
        .iter()
        .flat_map(|g| g.scopes.iter().map(String::as_str))
        .collect();
    let audiences: Vec<&str> = grants.iter().map(|g| g.audience.as_str()).collect();
    let collections: Vec<&str> = grants.iter().map(|g| g.id.as_str()).collect();
    let mut answer = Map::new();
    answer.insert("active".into(), Value::Bool(true));
    answer.insert("scope".into(), Value::from(scopes.join(" ")));
    answer.insert(
        "client_id".into(),
        Value::from(profile.oauth_client_id.as_str()),
    );
    answer.insert("sub".into(), Value::from(profile.oauth_client_id.as_str()));
    answer.insert("token_type".into(), Value::from("api_key"));
    answer.insert(
        "aud".into(),
        match audiences.as_slice() {
            [one] => Value::from(*one),
            many => json!(many),
        },
    );
    answer.insert("iss".into(), Value::from(state.issuer.as_str()));
    answer.insert("iat".into(), Value::from(key.created_at.timestamp()));
    if let Some(exp) = ends {
        answer.insert("exp".into(), Value::from(exp));
    }
    Ok(Ok(with_extensions(
        answer,
        &profile,
        &collections,
        cache_ttl,
    )))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    // `to_vec` writes straight into one buffer; `to_string` went through `fmt::Display`.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"active\":false}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(&mut response);
    response
}

async fn read(
    state: &TokenState,
    request: Request,
) -> Result<(Caller, Vec<(String, String)>), TokenError> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| TokenError::InvalidRequest("the body is too large or unreadable"))?;
    let params = parse_form(parts.headers.get(header::CONTENT_TYPE), &bytes, &[])?;
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| crate::client_ip::resolve(c.0.ip(), &parts.headers, &state.trusted_proxies));
    let caller = authenticate(state, &parts.headers, &params, peer).await?;
    Ok((caller, params))
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `POST /oauth/introspect` (RFC 7662 §2).
pub async fn introspect(State(state): State<Arc<TokenState>>, request: Request) -> Response {
    let (caller, params) = match read(&state, request).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(token) = param(&params, "token") else {
        return TokenError::InvalidRequest("token is missing").into_response();
    };
    // `token_type_hint` is only a hint (RFC 7662 §2.1): every kind we know is tried anyway.
    let mut seen = None;
    let decided = decide(
        &state,
        &caller,
        token,
        param(&params, "client_ip"),
        &mut seen,
    )
    .await;
    // A resource server's introspection stands for one API call by the consumer: it is what
    // policies limit and usage counts. An admin's or the client's own look is neither.
    let counted = matches!(caller, Caller::Collection(_));
    let registry = &state.registry;
    match decided {
        Ok(Ok(mut answer)) => {
            if counted && let Some(profile) = &seen {
                match registry.check_policy(profile).await {
                    Verdict::Denied {
                        reason,
                        retry_after,
                        ..
                    } => {
                        METRICS.inactive(reason);
                        registry.record_usage(profile, UsageMetric::Denied(reason));
                        return json_response(
                            StatusCode::OK,
                            &json!({"active": false, "gatehouse_denial": {
                                "reason": reason.code(), "retry_after": retry_after}}),
                        );
                    }
                    Verdict::Allowed(Some(info)) => {
                        answer["rate_limit"] = json!({"limit": info.limit,
                            "remaining": info.remaining, "reset": info.reset});
                        // No cache may skip the count.
                        answer["gatehouse_cache_ttl"] = json!(0);
                    }
                    Verdict::Allowed(None) => {}
                }
                registry.record_usage(profile, UsageMetric::IntrospectionActive);
            }
            METRICS.introspections_active.inc();
            json_response(StatusCode::OK, &answer)
        }
        Ok(Err(denial)) => {
            tracing::debug!(reason = denial.code(), "introspection: inactive");
            METRICS.inactive(denial);
            if counted && let Some(profile) = &seen {
                registry.record_usage(profile, UsageMetric::Denied(denial));
            }
            json_response(StatusCode::OK, &json!({"active": false}))
        }
        Err(e) => e.into_response(),
    }
}

/// `POST /oauth/revoke` (RFC 7009 §2). Unknown or invalid tokens get 200 (§2.2); a caller
/// that may not revoke this token gets 400 `unauthorized_client` and the token stays active.
pub async fn revoke(State(state): State<Arc<TokenState>>, request: Request) -> Response {
    let (caller, params) = match read(&state, request).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(token) = param(&params, "token") else {
        return TokenError::InvalidRequest("token is missing").into_response();
    };
    let ok = || {
        let mut r = StatusCode::OK.into_response();
        no_store(&mut r);
        r
    };
    if token.starts_with(gatehouse_registry::api_key_format::PREFIX) {
        return revoke_api_key(&state, &caller, token).await;
    }
    let now = state.registry.clock().now().timestamp();
    let Some(verified) = verify(&state, token, now) else {
        return revoke_foreign(&state, &caller, token, now).await;
    };
    let claims = &verified.claims;
    let allowed = match &caller {
        Caller::Collection(c) => audience_contains(claims, &c.audience),
        Caller::Client(p) => {
            claims.get("client_id").and_then(Value::as_str) == Some(p.oauth_client_id.as_str())
        }
        Caller::Admin { write, .. } => *write,
    };
    if !allowed {
        return TokenError::UnauthorizedClient.into_response();
    }
    let (Some(jti), Some(exp)) = (
        claims.get("jti").and_then(Value::as_str),
        claims.get("exp").and_then(Value::as_i64),
    ) else {
        return ok();
    };
    let profile_id = claims
        .get("profile_id")
        .and_then(Value::as_str)
        .unwrap_or("");
    let expires_at = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
    match state
        .registry
        .revoke_token(&caller.actor(), jti, profile_id, expires_at)
        .await
    {
        Ok(()) => ok(),
        Err(e) => {
            tracing::warn!(error = %e, "revocation failed");
            TokenError::TemporarilyUnavailable.into_response()
        }
    }
}

/// Revoke a consumer's JWT (`jwt`/`oidc` profiles): it must verify (else it is unknown:
/// 200), and the caller must be a collection granted to its profile, an admin with write
/// rights, or the profile's own client. Its id is kept until `exp`.
async fn revoke_foreign(state: &TokenState, caller: &Caller, token: &str, now: i64) -> Response {
    let ok = || {
        let mut r = StatusCode::OK.into_response();
        no_store(&mut r);
        r
    };
    let verified = match crate::foreign::verify(state, token, now).await {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => return ok(),
        Err(e) => return e.into_response(),
    };
    let profile = &verified.profile;
    let allowed = match caller {
        Caller::Collection(c) => profile.grants.iter().any(|g| g.id == c.id),
        Caller::Admin { write, .. } => *write,
        Caller::Client(p) => p.profile_id == profile.profile_id,
    };
    if !allowed {
        return TokenError::UnauthorizedClient.into_response();
    }
    let exp = verified
        .claims
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or(now);
    let expires_at = chrono::DateTime::from_timestamp(exp + LEEWAY_SECS, 0).unwrap_or_default();
    let id = crate::foreign::revocation_id(&profile.profile_id, &verified.claims, token);
    match state
        .registry
        .revoke_token(&caller.actor(), &id, &profile.profile_id, expires_at)
        .await
    {
        Ok(()) => ok(),
        Err(e) => {
            tracing::warn!(error = %e, "revocation failed");
            TokenError::TemporarilyUnavailable.into_response()
        }
    }
}

/// Revoke an API key: a collection granted to its profile or an admin may; the key is
/// switched off (it stays listed, `active: false`).
async fn revoke_api_key(state: &TokenState, caller: &Caller, value: &str) -> Response {
    let ok = || {
        let mut r = StatusCode::OK.into_response();
        no_store(&mut r);
        r
    };
    let key = match state.registry.api_key_by_value(value).await {
        Ok(Some(k)) => k,
        Ok(None) => return ok(),
        Err(_) => return TokenError::TemporarilyUnavailable.into_response(),
    };
    let profile = match state
        .registry
        .profile_by_client_id(&key.oauth_client_id)
        .await
    {
        Ok(Some(p)) => p,
        Ok(None) => return ok(),
        Err(_) => return TokenError::TemporarilyUnavailable.into_response(),
    };
    let allowed = match caller {
        Caller::Collection(c) => profile.grants.iter().any(|g| g.id == c.id),
        Caller::Admin { write, .. } => *write,
        Caller::Client(_) => false,
    };
    if !allowed {
        return TokenError::UnauthorizedClient.into_response();
    }
    match state
        .registry
        .revoke_api_key(&caller.actor(), &key.id)
        .await
    {
        Ok(()) => ok(),
        Err(e) => {
            tracing::warn!(error = %e, "API key revocation failed");
            TokenError::TemporarilyUnavailable.into_response()
        }
    }
}
