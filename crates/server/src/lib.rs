//! The Gatehouse server: configuration, listeners, tower-http layers, bootstrap and shutdown.
//!
//! This crate wires the other crates together. It owns no domain logic: the registry decides,
//! the token crate speaks OAuth, the admin crate speaks the admin API.

mod app;
pub mod backup;
mod body_guard;
pub mod config;
pub mod metrics;
pub mod telemetry;
pub mod tls;

pub use app::{
    Server, admin_recover, keys_command, migrate_only as migrate, secret_key_rotate, start,
};
pub use config::Config;
