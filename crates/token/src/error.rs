//! The token endpoint's errors (RFC 6749 §5.2) and their one mapping to HTTP.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_registry::limits::RateInfo;

/// A refusal at the token endpoint, in RFC 6749 §5.2 terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Missing, repeated or malformed parameter; more than one client authentication method.
    #[error("invalid_request: {0}")]
    InvalidRequest(&'static str),
    /// Client authentication failed, for whatever reason (never said which). Always 401
    /// with `WWW-Authenticate: Basic realm="gatehouse"` (RFC 9110 §15.5.2: every 401 carries a
    /// challenge; RFC 6749 §5.2).
    #[error("invalid_client")]
    InvalidClient,
    /// A Bearer token presented as the caller's credential (introspection, revocation) is not
    /// an admin token of ours: RFC 6750 §3.1 `invalid_token` with its Bearer challenge.
    #[error("invalid_token")]
    InvalidToken,
    /// The authorization grant (an RFC 7523 assertion) is invalid, expired or replayed.
    #[error("invalid_grant")]
    InvalidGrant,
    /// The profile may not use this grant or authentication method.
    #[error("unauthorized_client")]
    UnauthorizedClient,
    /// The requested scope is outside the profile's grants or malformed.
    #[error("invalid_scope")]
    InvalidScope,
    /// A `resource` (RFC 8707) is unknown or not granted.
    #[error("invalid_target")]
    InvalidTarget,
    /// The grant type is not supported.
    #[error("unsupported_grant_type")]
    UnsupportedGrantType,
    /// Over a policy's rate limit or quota, or too many failed attempts (429).
    #[error("{}", if *quota { "quota_exceeded" } else { "rate_limited" })]
    Limited {
        /// A quota (not a rate limit) refused.
        quota: bool,
        /// Seconds until a request can succeed (`Retry-After`).
        retry_after: u64,
        /// The limit's figures for the `RateLimit` header fields (none for failed attempts).
        info: Option<RateInfo>,
    },
    /// Storage is unavailable; try again.
    #[error("temporarily_unavailable")]
    TemporarilyUnavailable,
    /// A bug or unexpected failure; details are logged, not sent.
    #[error("server_error")]
    ServerError,
}

impl TokenError {
    /// 429 for a caller past its failed-attempt budget: retry after this many seconds.
    pub fn throttled(retry_after: u64) -> Self {
        TokenError::Limited {
            quota: false,
            retry_after,
            info: None,
        }
    }

    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidClient => "invalid_client",
            TokenError::InvalidToken => "invalid_token",
            TokenError::InvalidGrant => "invalid_grant",
            TokenError::UnauthorizedClient => "unauthorized_client",
            TokenError::InvalidScope => "invalid_scope",
            TokenError::InvalidTarget => "invalid_target",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::Limited { quota: true, .. } => "quota_exceeded",
            TokenError::Limited { quota: false, .. } => "rate_limited",
            TokenError::TemporarilyUnavailable => "temporarily_unavailable",
            TokenError::ServerError => "server_error",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            TokenError::InvalidClient | TokenError::InvalidToken => StatusCode::UNAUTHORIZED,
            TokenError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            TokenError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            TokenError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn description(&self) -> &'static str {
        match self {
            TokenError::InvalidRequest(why) => why,
            TokenError::InvalidClient => "client authentication failed",
            TokenError::InvalidToken => {
                "the bearer token is not an admin token of this server, or no longer valid"
            }
            TokenError::InvalidGrant => {
                "the assertion is invalid, expired, replayed or not for this server"
            }
            TokenError::UnauthorizedClient => {
                "this client may not use this grant type or authentication method"
            }
            TokenError::InvalidScope => {
                "the requested scope is invalid or exceeds what the profile grants"
            }
            TokenError::InvalidTarget => {
                "a requested resource is unknown or not granted to this client"
            }
            TokenError::UnsupportedGrantType => {
                "the grant type is not supported; use client_credentials or the RFC 7523 jwt-bearer grant"
            }
            TokenError::TemporarilyUnavailable => {
                "the server is temporarily unable to handle the request"
            }
            TokenError::Limited { quota: true, .. } => {
                "the quota of this client's policy is used up for the current period"
            }
            TokenError::Limited {
                quota: false,
                info: Some(_),
                ..
            } => "the rate limit of this client's policy is exceeded; retry later",
            TokenError::Limited {
                quota: false,
                info: None,
                ..
            } => "too many failed authentication attempts; retry later",
            TokenError::ServerError => "the server encountered an unexpected condition",
        }
    }
}

/// The IETF `RateLimit-Policy` and `RateLimit` header fields
/// (draft-ietf-httpapi-ratelimit-headers): the limit and its window, what is left and when
/// the allowance is whole again.
pub(crate) fn rate_limit_headers(response: &mut Response, info: &RateInfo) {
    let h = response.headers_mut();
    if let Ok(v) =
        HeaderValue::from_str(&format!("\"gatehouse\";q={};w={}", info.limit, info.window))
    {
        h.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "\"gatehouse\";r={};t={}",
        info.remaining, info.reset
    )) {
        h.insert("ratelimit", v);
    }
}

/// Headers every token endpoint answer carries (RFC 6749 §5.1).
pub(crate) fn no_store(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

impl IntoResponse for TokenError {
    fn into_response(self) -> Response {
        gatehouse_registry::metrics::METRICS.oauth_error(self.code());
        if matches!(
            self,
            TokenError::ServerError | TokenError::TemporarilyUnavailable
        ) {
            tracing::warn!(error = %self, "request failed on the server side");
        }
        let body =
            serde_json::json!({"error": self.code(), "error_description": self.description()});
        let mut response = (self.status(), axum::Json(body)).into_response();
        no_store(&mut response);
        match self {
            TokenError::InvalidClient => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"gatehouse\", charset=\"UTF-8\""),
                );
            }
            TokenError::InvalidToken => {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"gatehouse\", error=\"invalid_token\""),
                );
            }
            _ => {}
        }
        if matches!(self, TokenError::TemporarilyUnavailable) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let TokenError::Limited {
            retry_after, info, ..
        } = self
        {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after.max(1)));
            if let Some(info) = info {
                rate_limit_headers(&mut response, &info);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_headers() {
        let challenge = |r: &Response| {
            r.headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let r = TokenError::InvalidToken.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&r).starts_with("Bearer "));
        assert!(challenge(&r).contains("error=\"invalid_token\""));
        let r = TokenError::InvalidClient.into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(challenge(&r).starts_with("Basic realm=\"gatehouse\""));
        assert_eq!(
            r.headers().get(header::CACHE_CONTROL).map(|v| v.as_bytes()),
            Some(&b"no-store"[..])
        );
        for (e, s) in [
            (TokenError::InvalidRequest("x"), 400),
            (TokenError::UnauthorizedClient, 400),
            (TokenError::InvalidScope, 400),
            (TokenError::InvalidTarget, 400),
            (TokenError::UnsupportedGrantType, 400),
            (TokenError::TemporarilyUnavailable, 503),
            (TokenError::ServerError, 500),
        ] {
            assert_eq!(e.into_response().status().as_u16(), s);
        }
    }
}

#[cfg(test)]
mod metric_tests {
    use super::*;
    use gatehouse_registry::metrics::OAUTH_ERRORS;

    #[test]
    fn every_error_code_has_its_own_metric_label() {
        for e in [
            TokenError::InvalidRequest("x"),
            TokenError::InvalidClient,
            TokenError::InvalidToken,
            TokenError::InvalidGrant,
            TokenError::UnauthorizedClient,
            TokenError::InvalidScope,
            TokenError::InvalidTarget,
            TokenError::UnsupportedGrantType,
            TokenError::throttled(1),
            TokenError::Limited {
                quota: true,
                retry_after: 1,
                info: None,
            },
            TokenError::TemporarilyUnavailable,
            TokenError::ServerError,
        ] {
            assert!(
                OAUTH_ERRORS[..OAUTH_ERRORS.len() - 1].contains(&e.code()),
                "{} would be counted as other",
                e.code()
            );
        }
    }
}
