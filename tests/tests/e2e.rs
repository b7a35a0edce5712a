//! Gatehouse end-to-end tests: a real server on random loopback ports, real HTTP, a fresh
//! database per test (SQLite, or PostgreSQL when `GATEHOUSE_TEST_DATABASE_URL` is set).
//!
//! One test binary for the whole suite keeps build time low; each area is a module.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[path = "e2e/access_log.rs"]
mod access_log;
#[path = "e2e/admin_api.rs"]
mod admin_api;
#[path = "e2e/admin_auth.rs"]
mod admin_auth;
#[path = "e2e/api_keys.rs"]
mod api_keys;
#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/backup.rs"]
mod backup;
#[path = "e2e/bounded.rs"]
mod bounded;
#[path = "e2e/cli.rs"]
mod cli;
#[path = "e2e/config_check.rs"]
mod config_check;
#[path = "e2e/console.rs"]
mod console;
#[path = "e2e/discovery.rs"]
mod discovery;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/fuzz_corpora.rs"]
mod fuzz_corpora;
#[path = "e2e/guard.rs"]
mod guard;
#[path = "e2e/headers.rs"]
mod headers;
#[path = "e2e/health.rs"]
mod health;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/housekeeping.rs"]
mod housekeeping;
#[path = "e2e/import_export.rs"]
mod import_export;
#[path = "e2e/interop.rs"]
mod interop;
#[path = "e2e/introspection.rs"]
mod introspection;
#[path = "e2e/ip_rules.rs"]
mod ip_rules;
#[path = "e2e/jwt_profiles.rs"]
mod jwt_profiles;
#[path = "e2e/keys.rs"]
mod keys;
#[path = "e2e/limits.rs"]
mod limits;
#[path = "e2e/metrics.rs"]
mod metrics;
#[path = "e2e/oidc_profiles.rs"]
mod oidc_profiles;
#[path = "e2e/openapi.rs"]
mod openapi;
#[path = "e2e/operator.rs"]
mod operator;
#[path = "e2e/otlp.rs"]
mod otlp;
#[path = "e2e/outbound.rs"]
mod outbound;
#[path = "e2e/policies.rs"]
mod policies;
#[path = "e2e/profiles.rs"]
mod profiles;
#[path = "e2e/projects.rs"]
mod projects;
#[path = "e2e/refusals.rs"]
mod refusals;
#[path = "e2e/restart.rs"]
mod restart;
#[path = "e2e/revocation.rs"]
mod revocation;
#[path = "e2e/secret_key.rs"]
mod secret_key;
#[path = "e2e/secrets.rs"]
mod secrets;
#[path = "e2e/slow_clients.rs"]
mod slow_clients;
#[path = "e2e/startup.rs"]
mod startup;
#[path = "e2e/throttling.rs"]
mod throttling;
#[path = "e2e/tls.rs"]
mod tls;
#[path = "e2e/token.rs"]
mod token;
#[path = "e2e/token_errors.rs"]
mod token_errors;
#[path = "e2e/trust.rs"]
mod trust;
#[path = "e2e/usage.rs"]
mod usage;
#[path = "e2e/walkthrough.rs"]
mod walkthrough;
