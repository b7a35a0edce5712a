//! The Gatehouse profile registry: API collections, clients, access profiles and their
//! credentials; the storage behind them (sea-orm, SQLite or PostgreSQL); and the decision
//! "is this credential good, for whom, with what grants".
//!
//! It knows nothing of HTTP: the token and admin crates call it and map its errors at their
//! edges. It never logs or returns a stored secret; generated secrets leave it exactly once,
//! in the create or refresh result.

pub mod api;
pub mod api_key_format;
pub mod clock;
pub mod command;
pub mod decision;
pub mod entity;
pub mod error;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod secret;
mod service;
pub mod types;
pub mod usage;
pub mod vault;

pub use error::{Forbidden, RegistryError, Result};
pub use service::{
    Actor, AdminScope, ApiKeySnapshot, AuthFailure, BootstrapCredentials, BootstrapOutcome,
    CHANGE_CHANNEL, Change, CollectionSnapshot, ConsoleSession, GrantedCollection, JwtKeys,
    JwtRules, NewConsoleSession, PolicySnapshot, ProfileSnapshot, Registry, RegistrySettings,
    SESSION_ABSOLUTE, SESSION_IDLE, StoredKey, SweepReport, parse_input,
};

/// Connect to a database URL (SQLite or PostgreSQL) with pool settings suited to Gatehouse.
pub async fn connect(
    url: &str,
) -> std::result::Result<sea_orm::DatabaseConnection, sea_orm::DbErr> {
    let mut opts = sea_orm::ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(std::time::Duration::from_secs(5))
        .acquire_timeout(std::time::Duration::from_secs(5));
    if url.starts_with("sqlite:") {
        // One connection: in-memory SQLite is one database per connection, and for a file it
        // serializes writers. SQLite has a single writer anyway, and a deferred transaction
        // that reads and then writes gets SQLITE_BUSY at once (no busy wait) when another
        // connection writes meanwhile. The hot paths read memory, not the database.
        opts.max_connections(1).min_connections(1);
    } else {
        opts.max_connections(16).min_connections(1);
    }
    let db = sea_orm::Database::connect(opts).await?;
    if url.starts_with("sqlite:") && !url.contains("memory") {
        use sea_orm::ConnectionTrait;
        // WAL lets readers proceed during a write; busy_timeout waits out short write locks.
        db.execute_unprepared(
            "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON;",
        )
        .await?;
    }
    Ok(db)
}

/// Run every pending migration.
pub async fn migrate(db: &sea_orm::DatabaseConnection) -> std::result::Result<(), sea_orm::DbErr> {
    use gatehouse_migration::{Migrator, MigratorTrait};
    Migrator::up(db, None).await
}
