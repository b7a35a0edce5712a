//! sea-orm entities, one module per table. Domain types live apart from these rows.

pub mod access_profile;
pub mod api_key;
pub mod audit_event;
pub mod client;
pub mod client_secret;
pub mod collection;
pub mod collection_scope;
pub mod console_session;
pub mod policy;
pub mod profile_collection;
pub mod project;
pub mod quota_counter;
pub mod revoked_token;
pub mod signing_key;
pub mod usage_counter;
pub mod used_assertion;
