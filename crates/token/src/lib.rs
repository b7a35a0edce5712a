//! The OAuth 2.0 token endpoint of Gatehouse: request parsing, client authentication, the
//! client-credentials grant (through oxide-auth-async's flow), RFC 9068 access tokens, and the
//! mapping of every refusal to its RFC 6749 §5.2 answer.
//!
//! It decides nothing about the registry (that is the registry crate's job) and holds no key
//! material (that is the jwks crate's).

mod assertion;
mod client;
pub mod client_ip;
mod consumer;
mod credential;
pub mod error;
pub mod flow;
mod http;
pub mod introspect;
pub mod request;
pub mod service;
mod state;

pub use error::TokenError;

pub use http::{client_routes, resource_server_routes, router};
pub use state::TokenState;
