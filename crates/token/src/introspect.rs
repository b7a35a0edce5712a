//! RFC 7662 token introspection and RFC 7009 revocation, for our access tokens, API keys and
//! consumers' JWTs. The handlers extract, call the domain and respond: the credential is
//! identified and verified by [`crate::credential`] (the one JWS verifier), judged by
//! [`Registry::decide`](gatehouse_registry::Registry::decide) against the registry's current
//! state, and answered as an [`IntrospectionResponse`].

use crate::credential;
use crate::error::{TokenError, no_store};
use crate::request::{client_auth, parse_form};
use crate::state::TokenState;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_jwks::jws;
use gatehouse_registry::decision::{
    Caller, ClientIp, Credential, CredentialKind, Decision, Grant, Reason,
};
use gatehouse_registry::limits::{RateInfo, Verdict};
use gatehouse_registry::metrics::METRICS;
use gatehouse_registry::usage::UsageMetric;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// Largest body accepted.
const MAX_BODY: usize = 64 * 1024;

/// The answer to an introspection request (RFC 7662 §2.2), with the contract's extensions.
#[derive(Debug)]
pub enum IntrospectionResponse<'s> {
    /// Active: what the credential grants, as the caller may see it.
    Active {
        /// The grant.
        grant: Box<Grant>,
        /// Our issuer (the `iss` of API keys).
        issuer: &'s str,
        /// The policy's figures, when a policy counted this call.
        rate: Option<RateInfo>,
    },
    /// Inactive: exactly `{"active": false}`.
    Inactive,
    /// Inactive because a policy refused it: the documented `gatehouse_denial` member (a
    /// deliberate departure from RFC 7662 §2.2's SHOULD NOT, so that resource servers can
    /// answer 429 instead of 401).
    Denied {
        /// `rate_limited` or `quota_exceeded`.
        reason: Reason,
        /// Seconds until a call can succeed.
        retry_after: u64,
    },
}

#[derive(Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(&'a [String]),
}

#[derive(Serialize)]
struct ClientRef<'a> {
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct RateBody {
    limit: i64,
    remaining: i64,
    reset: u64,
}

#[derive(Serialize)]
struct ActiveBody<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    client_id: &'a str,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<&'a Value>,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Audience<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    jti: Option<&'a str>,
    profile_id: &'a str,
    client: ClientRef<'a>,
    auth_type: &'a str,
    collections: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateBody>,
    gatehouse_cache_ttl: i64,
}

impl IntrospectionResponse<'_> {
    fn body(&self) -> Vec<u8> {
        let (grant, issuer, rate) = match self {
            IntrospectionResponse::Inactive => return b"{\"active\":false}".to_vec(),
            IntrospectionResponse::Denied {
                reason,
                retry_after,
            } => {
                return serde_json::to_vec(&serde_json::json!({"active": false,
                    "gatehouse_denial": {"reason": reason.code(), "retry_after": retry_after}}))
                .unwrap_or_else(|_| b"{\"active\":false}".to_vec());
            }
            IntrospectionResponse::Active {
                grant,
                issuer,
                rate,
            } => (grant, issuer, rate),
        };
        let claim = |name: &str| grant.claims.as_ref().and_then(|c| c.get(name));
        let profile = &grant.profile;
        let body = ActiveBody {
            active: true,
            scope: (!grant.scopes.is_empty()).then(|| grant.scopes.join(" ")),
            client_id: &profile.oauth_client_id,
            token_type: match grant.kind {
                CredentialKind::AccessToken => "Bearer",
                CredentialKind::ApiKey => "api_key",
                CredentialKind::ConsumerJwt => "jwt",
            },
            exp: grant.expires_at,
            iat: grant.issued_at,
            nbf: claim("nbf"),
            sub: match grant.kind {
                CredentialKind::ApiKey => &profile.oauth_client_id,
                _ => claim("sub").and_then(Value::as_str).unwrap_or(""),
            },
            aud: match grant.audiences.as_slice() {
                [] => None,
                [one] => Some(Audience::One(one)),
                many => Some(Audience::Many(many)),
            },
            iss: match grant.kind {
                CredentialKind::ApiKey => Some(issuer),
                _ => claim("iss").and_then(Value::as_str),
            },
            jti: claim("jti").and_then(Value::as_str),
            profile_id: &profile.profile_id,
            client: ClientRef {
                id: &profile.client_id,
                name: &profile.client_name,
            },
            auth_type: profile.auth_type.as_str(),
            collections: &grant.collections,
            rate_limit: rate.as_ref().map(|r| RateBody {
                limit: r.limit,
                remaining: r.remaining,
                reset: r.reset,
            }),
            // No cache may skip a policy's count.
            gatehouse_cache_ttl: if rate.is_some() { 0 } else { grant.cache_ttl },
        };
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"active\":false}".to_vec())
    }
}

impl IntoResponse for IntrospectionResponse<'_> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, self.body())
    }
}

fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(&mut response);
    response
}

fn unavailable<E>(_: E) -> TokenError {
    TokenError::TemporarilyUnavailable
}

/// Read the form and authenticate the caller: the same client authentication as the token
/// endpoint, plus admin Bearer tokens.
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
    let auth = client_auth(parts.headers.get(header::AUTHORIZATION), &params)?;
    let caller = crate::client::caller(state, &auth, peer).await?;
    // The access log names who asked (a public id, never a credential).
    tracing::Span::current().record("client_id", tracing::field::display(caller.id()));
    Ok((caller, params))
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `POST /oauth/introspect` (RFC 7662 §2). `token_type_hint` is only a hint (§2.1): every
/// kind we know is tried anyway.
pub async fn introspect(State(state): State<Arc<TokenState>>, request: Request) -> Response {
    let (caller, params) = match read(&state, request).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let Some(token) = param(&params, "token") else {
        return TokenError::InvalidRequest("token is missing").into_response();
    };
    let client_ip = ClientIp::from_param(param(&params, "client_ip"));
    match introspection(&state, &caller, token, client_ip).await {
        Ok(answer) => answer.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Identify, decide, and — for a resource server's call, which stands for one API call by the
/// consumer — count it under the profile's policy and in usage. An admin's or the client's
/// own look is neither limited nor counted.
async fn introspection<'s>(
    state: &'s TokenState,
    caller: &Caller,
    token: &str,
    client_ip: ClientIp,
) -> Result<IntrospectionResponse<'s>, TokenError> {
    let now = state.registry.clock().now();
    let counted = matches!(caller, Caller::Collection(_));
    let registry = &state.registry;
    let credential = credential::identify(state, token, now.timestamp()).await?;
    let decision = match &credential {
        Ok(credential) => registry
            .decide(credential, caller, client_ip, now)
            .await
            .map_err(unavailable)?,
        Err(reason) => Decision::Inactive {
            reason: *reason,
            profile: None,
        },
    };
    let grant = match decision {
        Decision::Active(grant) => grant,
        Decision::Inactive { reason, profile } => {
            tracing::debug!(reason = reason.code(), "introspection: inactive");
            METRICS.inactive(reason);
            if counted && let Some(profile) = &profile {
                registry.record_usage(profile, UsageMetric::Denied(reason));
            }
            return Ok(IntrospectionResponse::Inactive);
        }
    };
    let mut rate = None;
    if counted {
        match registry.check_policy(&grant.profile).await {
            Verdict::Denied {
                reason,
                retry_after,
                ..
            } => {
                METRICS.inactive(reason);
                registry.record_usage(&grant.profile, UsageMetric::Denied(reason));
                return Ok(IntrospectionResponse::Denied {
                    reason,
                    retry_after,
                });
            }
            Verdict::Allowed(info) => rate = info,
        }
        registry.record_usage(&grant.profile, UsageMetric::IntrospectionActive);
    }
    if let Ok(Credential::ApiKey(key)) = &credential {
        registry.touch_api_key(&key.id);
    }
    METRICS.introspections_active.inc();
    Ok(IntrospectionResponse::Active {
        grant,
        issuer: &state.issuer,
        rate,
    })
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
    match revocation(&state, &caller, token).await {
        Ok(()) => {
            let mut r = StatusCode::OK.into_response();
            no_store(&mut r);
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Who may revoke: the owning client, a collection the token is for (and its profile still
/// holds), an admin with `gatehouse:admin`. Our tokens and consumers' JWTs are remembered as
/// revoked until they expire; an API key is switched off (it stays listed, `active: false`).
async fn revocation(state: &TokenState, caller: &Caller, token: &str) -> Result<(), TokenError> {
    let now = state.registry.clock().now();
    let Ok(credential) = credential::identify(state, token, now.timestamp()).await? else {
        return Ok(());
    };
    match state
        .registry
        .decide(&credential, caller, ClientIp::NotApplicable, now)
        .await
        .map_err(unavailable)?
    {
        Decision::Inactive {
            reason: Reason::Audience,
            ..
        } => return Err(TokenError::UnauthorizedClient),
        Decision::Inactive {
            reason: Reason::Revoked,
            ..
        } => return Ok(()),
        _ => {}
    }
    if matches!(caller, Caller::Admin(actor) if !actor.can_write()) {
        return Err(TokenError::UnauthorizedClient);
    }
    let actor = caller.actor();
    let revoked = match &credential {
        Credential::ApiKey(key) => state.registry.revoke_api_key(&actor, &key.id).await,
        Credential::AccessToken(claims) => {
            let text = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
            let expires_at = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
            state
                .registry
                .revoke_token(&actor, text("jti"), text("profile_id"), expires_at)
                .await
        }
        Credential::ConsumerJwt { profile, claims } => {
            let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
            let expires_at =
                chrono::DateTime::from_timestamp(exp + jws::LEEWAY_SECS, 0).unwrap_or_default();
            let id = crate::consumer::revocation_id(&profile.profile_id, claims, token);
            state
                .registry
                .revoke_token(&actor, &id, &profile.profile_id, expires_at)
                .await
        }
    };
    revoked.map_err(|e| {
        tracing::warn!(error = %e, "revocation failed");
        TokenError::TemporarilyUnavailable
    })
}
