//! The `quota_counters` table: persisted quota use per profile and calendar period.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "quota_counters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub profile_id: String,
    /// `d:YYYY-MM-DD` or `m:YYYY-MM` (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub period: String,
    pub count: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
