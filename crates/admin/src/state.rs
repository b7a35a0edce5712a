//! What the admin handlers share.

use gatehouse_jwks::KeyManager;
use gatehouse_registry::Registry;
use std::sync::Arc;

/// State of the admin router.
#[derive(Debug)]
pub struct AdminState {
    /// The registry.
    pub registry: Registry,
    /// Keys, to verify admin bearer tokens.
    pub keys: Arc<KeyManager>,
    /// The audience admin tokens must carry (the built-in collection's).
    pub admin_audience: String,
    /// How long a next key must have been published before a rotation may make it sign.
    pub key_publish_ahead: std::time::Duration,
}
