//! The Gatehouse admin JSON API under `/admin/v1`: collections, clients, access profiles,
//! secrets and the audit log; its OpenAPI 3.1 document and an offline Swagger UI.
//!
//! Handlers only parse, call the registry and map errors. Authorization is a bearer token
//! from our own token endpoint: the admin API is a built-in collection.

mod auth;
pub mod error;
mod http;
mod openapi;
pub mod projects;
mod state;
pub mod wire;

pub use http::{ApiDoc, document, router};
pub use state::AdminState;
