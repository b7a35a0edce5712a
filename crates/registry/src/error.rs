//! The registry's error type. No HTTP here: the admin and token crates map these at their edge.

use crate::types::FieldError;

/// What can go wrong in a registry operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The named kind of resource does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A uniqueness rule was broken (name, audience, scope).
    #[error("conflict on {field}: {message}")]
    Conflict {
        /// The field that collides.
        field: String,
        /// A human-readable explanation.
        message: String,
    },
    /// The input is well-formed JSON but breaks validation rules.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The actor may not do this (read-only rights, or limited to projects).
    #[error("forbidden: {0:?}")]
    Forbidden(Forbidden),
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the text is for logs only.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why an actor may not make a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forbidden {
    /// The actor holds only `gatehouse:admin:read`.
    ReadOnly,
    /// The actor is limited to projects: shared resources (collections, policies, projects,
    /// keys) are read-only for it, and it may not place a client outside its projects.
    ProjectLimited,
}

impl RegistryError {
    /// A single-field validation error.
    pub fn invalid(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        RegistryError::Validation(vec![FieldError::new(field, code, message)])
    }
}

impl From<sea_orm::DbErr> for RegistryError {
    fn from(err: sea_orm::DbErr) -> Self {
        use sea_orm::{DbErr, SqlErr};
        if let Some(SqlErr::UniqueConstraintViolation(detail)) = err.sql_err() {
            return RegistryError::Conflict {
                field: unique_field(&detail).to_owned(),
                message: "a resource with this value already exists".to_owned(),
            };
        }
        if is_unstorable_text(&err) {
            // Text PostgreSQL cannot hold (NUL in `text`, `\u0000` in `jsonb`) names nothing
            // stored and cannot be stored: the caller's input is at fault, not the database.
            return RegistryError::invalid(
                "body",
                "invalid_characters",
                "text must not contain NUL characters",
            );
        }
        match err {
            DbErr::Conn(e) => RegistryError::Unavailable(e.to_string()),
            DbErr::ConnectionAcquire(e) => RegistryError::Unavailable(e.to_string()),
            other => RegistryError::Internal(other.to_string()),
        }
    }
}

/// PostgreSQL's SQLSTATE 22021 (`character_not_in_repertoire`: a NUL byte in text) or 22P05
/// (`untranslatable_character`: `\u0000` in jsonb).
fn is_unstorable_text(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    let (DbErr::Query(RuntimeErr::SqlxError(e)) | DbErr::Exec(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "22021" || code == "22P05")
}

/// Whether `key` could be stored at all. PostgreSQL text cannot hold NUL, so a lookup by a
/// key containing one has a known answer (nothing) and must not reach the database, where it
/// would be an error rather than a miss.
pub(crate) fn storable(key: &str) -> bool {
    !key.contains('\0')
}

fn unique_field(detail: &str) -> &'static str {
    if detail.contains("match_") {
        return "jwt_claim_value";
    }
    for field in [
        "audience",
        "introspection_client_id",
        "oauth_client_id",
        "name",
    ] {
        if detail.contains(field) {
            return field;
        }
    }
    if detail.contains("collection_scopes") || detail.contains("pkey") {
        return "scopes";
    }
    "id"
}

impl From<crate::secret::HashError> for RegistryError {
    fn from(err: crate::secret::HashError) -> Self {
        match err {
            // A flood, not a fault: retry shortly (503).
            crate::secret::HashError::Busy => RegistryError::Unavailable(err.to_string()),
            _ => RegistryError::Internal(err.to_string()),
        }
    }
}

/// Result alias for registry operations.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
