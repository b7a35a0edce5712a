//! The `api_keys` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub profile_id: String,
    pub name: String,
    pub active: bool,
    pub expires_at: Option<DateTimeUtc>,
    /// JSON `{allow, deny}`.
    pub ip_rules: String,
    /// The key's first 12 characters, for display.
    pub prefix: String,
    /// Hex SHA-256 of the key.
    pub digest: String,
    /// Digest of the value replaced by the last refresh, valid until `previous_expires_at`.
    pub previous_digest: Option<String>,
    pub previous_expires_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
