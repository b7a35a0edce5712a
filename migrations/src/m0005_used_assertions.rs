//! RFC 7523 client assertions already used: `jti` kept until the assertion's `exp`, so a
//! replay is refused on every instance.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_used_assertions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("used_assertions"))
                    .col(string(Alias::new("id")).primary_key())
                    .col(timestamp_with_time_zone(Alias::new("expires_at")))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("used_assertions"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
