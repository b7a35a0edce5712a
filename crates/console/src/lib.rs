//! The Gatehouse admin console: server-rendered HTML pages under `/console` on the admin
//! listener, for people rather than scripts. It signs an admin profile in with its
//! `oauth_client_id` and secret (the token endpoint's own check), keeps a server-side
//! session, and calls the registry with that admin's current rights on every request.
//!
//! It owns the pages, their forms (form → registry input), the session cookie, CSRF and the
//! security headers of `/console`. It must not hold domain rules: validation, scoping and
//! audit stay in the registry. Every page works without JavaScript; htmx only enhances.

mod assets;
mod chart;
mod error;
mod forms;
mod http;
mod security;
mod session;
mod views;

pub use http::router;

use gatehouse_jwks::KeyManager;
use gatehouse_registry::Registry;
use std::sync::Arc;

/// What the console's handlers share.
#[derive(Debug)]
pub struct ConsoleState {
    /// The registry.
    pub registry: Registry,
    /// Signing keys (the keys page lists and rotates them).
    pub keys: Arc<KeyManager>,
    /// The built-in admin collection's audience (`GATEHOUSE_ADMIN_URL`).
    pub admin_audience: String,
    /// How long a next key must have been published before a rotation may make it sign.
    pub key_publish_ahead: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` is believed (`GATEHOUSE_TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl ConsoleState {
    /// Whether the console is served over https (the admin URL's scheme): then the session
    /// cookie is `__Host-gatehouse_console` with `Secure`.
    pub fn secure(&self) -> bool {
        self.admin_audience
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }
}
