//! The decisions of the client-credentials grant: which scopes and audiences a profile gets,
//! and the RFC 9068 claims of its access token.

use crate::error::TokenError;
use gatehouse_registry::ProfileSnapshot;
use serde::Serialize;
use serde_json::{Map, Value};

/// The outcome of scope and resource negotiation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Granted scopes, in request (or definition) order.
    pub scopes: Vec<String>,
    /// Token audiences.
    pub audiences: Vec<String>,
}

/// Decide scopes and audiences.
///
/// - With `resource`s (RFC 8707), each must be the audience of a granted collection
///   (else `invalid_target`); only those collections' scopes are available.
/// - A requested scope outside what is available is `invalid_scope` (RFC 6749 §5.2).
/// - Without `scope`, every available scope is granted (RFC 6749 §3.3 lets the server pick
///   a default).
/// - `aud` is the audiences of the collections that own a granted scope (contract), or the
///   requested resources.
pub fn negotiate(
    profile: &ProfileSnapshot,
    requested: Option<&[String]>,
    resources: &[String],
) -> Result<Negotiated, TokenError> {
    let mut selected = Vec::new();
    if resources.is_empty() {
        selected.extend(profile.grants.iter());
    } else {
        for r in resources {
            let grant = profile
                .grants
                .iter()
                .find(|g| &g.audience == r)
                .ok_or(TokenError::InvalidTarget)?;
            if !selected
                .iter()
                .any(|g: &&gatehouse_registry::GrantedCollection| g.id == grant.id)
            {
                selected.push(grant);
            }
        }
    }
    if selected.is_empty() {
        return Err(TokenError::InvalidScope);
    }
    let available = || selected.iter().flat_map(|g| g.scopes.iter());
    let scopes: Vec<String> = match requested {
        Some(req) => {
            for s in req {
                if !available().any(|a| a == s) {
                    return Err(TokenError::InvalidScope);
                }
            }
            req.to_vec()
        }
        None => available().cloned().collect(),
    };
    let audiences: Vec<String> = if !resources.is_empty() {
        selected.iter().map(|g| g.audience.clone()).collect()
    } else if scopes.is_empty() {
        selected.iter().map(|g| g.audience.clone()).collect()
    } else {
        selected
            .iter()
            .filter(|g| g.scopes.iter().any(|s| scopes.contains(s)))
            .map(|g| g.audience.clone())
            .collect()
    };
    Ok(Negotiated { scopes, audiences })
}

/// `aud` is a string when there is one audience, else an array (RFC 7519 §4.1.3).
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum AudienceClaim<'a> {
    /// One audience.
    One(&'a str),
    /// Several.
    Many(&'a [String]),
}

/// The claims of a Gatehouse access token (RFC 9068 §2.2 plus `profile_id` and custom claims).
#[derive(Debug, Serialize)]
pub struct AccessTokenClaims<'a> {
    /// Issuer.
    pub iss: &'a str,
    /// Subject: the profile's `oauth_client_id`.
    pub sub: &'a str,
    /// The client the token was issued to (same as `sub` for client credentials).
    pub client_id: &'a str,
    /// Audiences.
    pub aud: AudienceClaim<'a>,
    /// Space-separated scopes; omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Issued at (integer NumericDate).
    pub iat: i64,
    /// Expiry (integer NumericDate).
    pub exp: i64,
    /// Unique token id.
    pub jti: String,
    /// The access profile.
    pub profile_id: &'a str,
    /// The profile's custom claims (registered names are refused on write).
    #[serde(flatten)]
    pub custom: &'a Map<String, Value>,
}

/// Build the claims for a negotiated grant at `now`, with the profile's TTL capped by
/// `max_ttl`.
pub fn claims<'a>(
    issuer: &'a str,
    profile: &'a ProfileSnapshot,
    negotiated: &'a Negotiated,
    now: i64,
    max_ttl: i64,
) -> AccessTokenClaims<'a> {
    let ttl = profile.token_ttl_seconds.clamp(1, max_ttl.max(1));
    AccessTokenClaims {
        iss: issuer,
        sub: &profile.oauth_client_id,
        client_id: &profile.oauth_client_id,
        aud: match negotiated.audiences.as_slice() {
            [one] => AudienceClaim::One(one),
            many => AudienceClaim::Many(many),
        },
        scope: negotiated.scopes.join(" "),
        iat: now,
        exp: now + ttl,
        jti: gatehouse_registry::ids::base62(22),
        profile_id: &profile.profile_id,
        custom: &profile.custom_claims,
    }
}

/// Count one token about to be issued under the profile's policy: the figures for the
/// `RateLimit` header fields, or the 429 refusal (counted in usage and metrics).
pub(crate) async fn admit(
    state: &crate::state::TokenState,
    profile: &ProfileSnapshot,
) -> Result<Option<gatehouse_registry::limits::RateInfo>, crate::error::TokenError> {
    use gatehouse_registry::limits::Verdict;
    use gatehouse_registry::metrics::{METRICS, Reason};
    match state.registry.check_policy(profile).await {
        Verdict::Allowed(info) => Ok(info),
        Verdict::Denied {
            reason,
            retry_after,
            info,
        } => {
            METRICS.token_policy_refusals.inc();
            state.registry.record_usage(
                profile,
                gatehouse_registry::usage::UsageMetric::Denied(reason),
            );
            Err(crate::error::TokenError::Limited {
                quota: reason == Reason::QuotaExceeded,
                retry_after,
                info: Some(info),
            })
        }
    }
}

/// Count a token issued (usage and metrics).
pub(crate) fn issued(state: &crate::state::TokenState, profile: &ProfileSnapshot) {
    gatehouse_registry::metrics::METRICS.tokens_issued.inc();
    state
        .registry
        .record_usage(profile, gatehouse_registry::usage::UsageMetric::TokenIssued);
}
