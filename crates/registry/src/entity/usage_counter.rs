//! The `usage_counters` table: hourly counts per profile and metric.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "usage_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub profile_id: String,
    /// Start of the UTC hour.
    #[sea_orm(primary_key, auto_increment = false)]
    pub bucket: DateTimeUtc,
    /// `tokens_issued`, `introspections_active` or `denied:<reason>`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub metric: String,
    pub client_id: String,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
