//! The admin API's error answers: `{error, message, fields?}` with 400/401/403/404/409/422,
//! and the one mapping from registry errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_registry::types::ADMIN_SCOPE;
use gatehouse_registry::types::FieldError;
use gatehouse_registry::{Forbidden, RegistryError};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every admin API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable code: `malformed_body`, `validation_failed`, `not_found`, `conflict`,
    /// `invalid_token`, `insufficient_scope`, `forbidden` (an admin limited to projects),
    /// `temporarily_unavailable`, `internal_error`.
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Per-field problems, for 409 and 422.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// An admin API error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// 400: the body is not JSON, or not the expected media type.
    Malformed(String),
    /// 401: no or bad bearer token (RFC 6750 §3.1).
    Unauthenticated {
        /// `invalid_token` when a token was presented; none when it was missing.
        invalid_token: bool,
    },
    /// 403: the token lacks the scope (RFC 6750 §3.1 `insufficient_scope`).
    Forbidden {
        /// The scope that would have been needed.
        needed: &'static str,
    },
    /// Anything the registry said.
    Registry(RegistryError),
}

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        ApiError::Registry(e)
    }
}

impl From<gatehouse_jwks::JwksError> for ApiError {
    fn from(e: gatehouse_jwks::JwksError) -> Self {
        use gatehouse_jwks::JwksError;
        match e {
            JwksError::Store(gatehouse_jwks::StoreError::Conflict) => {
                ApiError::Registry(RegistryError::Conflict {
                    field: "kid".to_owned(),
                    message: "the keys were rotated meanwhile".to_owned(),
                })
            }
            JwksError::Store(gatehouse_jwks::StoreError::Unavailable(why)) => {
                ApiError::Registry(RegistryError::Unavailable(why))
            }
            JwksError::TooSoon { .. } => ApiError::Registry(RegistryError::Conflict {
                field: "force".to_owned(),
                message: format!(
                    "{e}; send {{\"force\": true}} to rotate anyway (verifiers that cached the JWKS may briefly reject new tokens)"
                ),
            }),
            other => {
                tracing::error!(error = %other, "key operation failed");
                ApiError::Registry(RegistryError::Internal(
                    "the key operation failed".to_owned(),
                ))
            }
        }
    }
}

const REALM: &str = "Bearer realm=\"gatehouse-admin\"";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error, message, fields, www) = match self {
            ApiError::Malformed(m) => (
                StatusCode::BAD_REQUEST,
                "malformed_body",
                m,
                Vec::new(),
                None,
            ),
            ApiError::Unauthenticated { invalid_token } => (
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                if invalid_token {
                    "the access token is invalid or expired"
                } else {
                    "a bearer access token is required"
                }
                .to_owned(),
                Vec::new(),
                Some(if invalid_token {
                    format!(
                        "{REALM}, error=\"invalid_token\", error_description=\"the access token is invalid or expired\""
                    )
                } else {
                    REALM.to_owned()
                }),
            ),
            ApiError::Forbidden { needed } => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this call needs the `{needed}` scope"),
                Vec::new(),
                Some(format!(
                    "{REALM}, error=\"insufficient_scope\", scope=\"{needed}\""
                )),
            ),
            ApiError::Registry(e) => match e {
                RegistryError::Forbidden(Forbidden::ReadOnly) => (
                    StatusCode::FORBIDDEN,
                    "insufficient_scope",
                    format!("this call needs the `{ADMIN_SCOPE}` scope"),
                    Vec::new(),
                    Some(format!(
                        "{REALM}, error=\"insufficient_scope\", scope=\"{ADMIN_SCOPE}\""
                    )),
                ),
                RegistryError::Forbidden(_) => (
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "this admin is limited to its projects: shared resources are read-only and \
                     clients must stay in its projects"
                        .to_owned(),
                    Vec::new(),
                    None,
                ),
                RegistryError::NotFound(what) => (
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("{what} not found"),
                    Vec::new(),
                    None,
                ),
                RegistryError::Conflict { field, message } => (
                    StatusCode::CONFLICT,
                    "conflict",
                    message.clone(),
                    vec![FieldError::new(field, "conflict", message)],
                    None,
                ),
                RegistryError::Validation(fields) => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "validation_failed",
                    "the request breaks validation rules; see fields".to_owned(),
                    fields,
                    None,
                ),
                RegistryError::Unavailable(detail) => {
                    tracing::warn!(error = %detail, "database unavailable");
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "temporarily_unavailable",
                        "the database is unavailable; retry shortly".to_owned(),
                        Vec::new(),
                        None,
                    )
                }
                other => {
                    tracing::error!(error = %other, "admin request failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal_error",
                        "an unexpected error occurred".to_owned(),
                        Vec::new(),
                        None,
                    )
                }
            },
        };
        let mut response = (
            status,
            axum::Json(ErrorBody {
                error,
                message,
                fields,
            }),
        )
            .into_response();
        if let Some(www) = www.and_then(|w| HeaderValue::from_str(&w).ok()) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, www);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping() {
        let s = |e: ApiError| e.into_response().status().as_u16();
        assert_eq!(s(ApiError::Malformed("x".into())), 400);
        assert_eq!(
            s(ApiError::Unauthenticated {
                invalid_token: false
            }),
            401
        );
        assert_eq!(
            s(ApiError::Forbidden {
                needed: "gatehouse:admin"
            }),
            403
        );
        assert_eq!(s(RegistryError::NotFound("client").into()), 404);
        assert_eq!(
            s(RegistryError::Conflict {
                field: "name".into(),
                message: "m".into()
            }
            .into()),
            409
        );
        assert_eq!(s(RegistryError::Validation(vec![]).into()), 422);
        assert_eq!(s(RegistryError::Unavailable("down".into()).into()), 503);
        assert_eq!(s(RegistryError::Internal("bug".into()).into()), 500);
        let r = ApiError::Forbidden {
            needed: "gatehouse:admin",
        }
        .into_response();
        let www = r
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(www.contains("insufficient_scope"));
    }
}
