//! What a console request can end in besides a page, and the one mapping to HTTP.

use crate::views::{ErrorPage, Layout};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_registry::RegistryError;
use gatehouse_registry::types::FieldError;

/// A refused or failed console request.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    /// No such resource (or not visible to this admin).
    NotFound,
    /// The admin may not do this (read-only, or limited to projects).
    Forbidden,
    /// A POST without the session's CSRF token, or from another site.
    Csrf,
    /// Too many failed sign-ins from this address: wait this many seconds.
    Throttled(u64),
    /// The store (or the hashing pool) cannot answer now.
    Unavailable,
    /// Input the registry refused, shown as a list (forms show them beside their fields).
    Invalid(Vec<FieldError>),
    /// A request the console cannot read.
    BadRequest(&'static str),
    /// Anything else; details are logged, never shown.
    Internal,
}

impl From<RegistryError> for ConsoleError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::NotFound(_) => ConsoleError::NotFound,
            RegistryError::Forbidden(_) => ConsoleError::Forbidden,
            RegistryError::Validation(fields) => ConsoleError::Invalid(fields),
            RegistryError::Conflict { field, message } => {
                ConsoleError::Invalid(vec![FieldError::new(field, "conflict", message)])
            }
            RegistryError::Unavailable(why) => {
                tracing::warn!(error = %why, "console: store unavailable");
                ConsoleError::Unavailable
            }
            other => {
                tracing::error!(error = %other, "console: registry error");
                ConsoleError::Internal
            }
        }
    }
}

impl From<gatehouse_jwks::JwksError> for ConsoleError {
    fn from(e: gatehouse_jwks::JwksError) -> Self {
        tracing::error!(error = %e, "console: key store error");
        ConsoleError::Internal
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            ConsoleError::Throttled(s) => Some((*s).max(1)),
            _ => None,
        };
        let (status, title, message, fields) = match self {
            ConsoleError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing here, or you may not see it.",
                Vec::new(),
            ),
            ConsoleError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Not allowed",
                "Your admin rights do not allow this change.",
                Vec::new(),
            ),
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was not sent from a console page of this session. Reload the page and try again.",
                Vec::new(),
            ),
            ConsoleError::Throttled(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many failed sign-ins from your address. Wait a little and try again.",
                Vec::new(),
            ),
            ConsoleError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "The server cannot answer right now. Try again shortly.",
                Vec::new(),
            ),
            ConsoleError::Invalid(fields) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "Not accepted",
                "The server did not accept this input.",
                fields,
            ),
            ConsoleError::BadRequest(why) => {
                (StatusCode::BAD_REQUEST, "Bad request", why, Vec::new())
            }
            ConsoleError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The server could not complete this request.",
                Vec::new(),
            ),
        };
        let page = ErrorPage {
            layout: Layout::bare(title),
            title,
            message,
            fields,
        };
        let mut response = (status, page).into_response();
        if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        response
    }
}

/// The result of a console handler.
pub(crate) type ConsoleResult<T = Response> = Result<T, ConsoleError>;
