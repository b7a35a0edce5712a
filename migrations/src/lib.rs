//! Database migrations for Gatehouse, shared by SQLite and PostgreSQL.
//!
//! Owns the schema and nothing else: every table is created forward and dropped backward here,
//! through sea-query so the same definitions produce each backend's dialect.

use sea_orm_migration::prelude::*;

pub use sea_orm_migration::MigratorTrait;

mod m0001_initial;
mod m0002_revocations;
mod m0003_api_keys;
mod m0004_jwt_match;
mod m0005_used_assertions;
mod m0006_policies;
mod m0007_jwt_match_claim;
mod m0008_jwt_match_unique;
mod m0009_ip_rules_defaults;
mod m0010_projects;
mod m0011_console_sessions;

/// The ordered list of Gatehouse migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_revocations::Migration),
            Box::new(m0003_api_keys::Migration),
            Box::new(m0004_jwt_match::Migration),
            Box::new(m0005_used_assertions::Migration),
            Box::new(m0006_policies::Migration),
            Box::new(m0007_jwt_match_claim::Migration),
            Box::new(m0008_jwt_match_unique::Migration),
            Box::new(m0009_ip_rules_defaults::Migration),
            Box::new(m0010_projects::Migration),
            Box::new(m0011_console_sessions::Migration),
        ]
    }
}
