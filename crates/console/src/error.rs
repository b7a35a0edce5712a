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

#[cfg(test)]
mod tests {
    use super::*;
    use gatehouse_registry::Forbidden;

    fn status(e: ConsoleError) -> u16 {
        e.into_response().status().as_u16()
    }

    #[test]
    fn registry_errors_map_to_one_status_each() {
        assert_eq!(status(RegistryError::NotFound("client").into()), 404);
        assert_eq!(
            status(RegistryError::Forbidden(Forbidden::ReadOnly).into()),
            403
        );
        assert_eq!(
            status(RegistryError::invalid("name", "required", "required").into()),
            422
        );
        assert_eq!(
            status(
                RegistryError::Conflict {
                    field: "name".into(),
                    message: "taken".into()
                }
                .into()
            ),
            422
        );
        assert_eq!(status(RegistryError::Unavailable("db".into()).into()), 503);
        assert_eq!(status(RegistryError::Internal("boom".into()).into()), 500);
        assert_eq!(status(ConsoleError::Csrf), 403);
    }

    #[test]
    fn throttling_says_when_to_retry_and_pages_are_html() {
        let r = ConsoleError::Throttled(7).into_response();
        assert_eq!(r.status().as_u16(), 429);
        assert_eq!(
            r.headers().get(header::RETRY_AFTER).map(|v| v.as_bytes()),
            Some(&b"7"[..])
        );
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(ct.starts_with("text/html"), "{ct}");
        let zero = ConsoleError::Throttled(0).into_response();
        assert_eq!(
            zero.headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
    }

    #[test]
    fn internal_details_are_not_shown() {
        let page = ErrorPage {
            layout: Layout::bare("x"),
            title: "Something went wrong",
            message: "The server could not complete this request.",
            fields: Vec::new(),
        };
        let html = askama::Template::render(&page).unwrap();
        assert!(html.contains("Something went wrong"));
        let e: ConsoleError = RegistryError::Internal("secret detail".into()).into();
        assert!(matches!(e, ConsoleError::Internal));
    }
}
