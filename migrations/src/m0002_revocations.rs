//! Revoked access tokens: the `jti` is kept until the token's own expiry (RFC 7009 §2).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_revocations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Alias::new("revoked_tokens"))
                    .col(string(Alias::new("jti")).primary_key())
                    .col(string(Alias::new("profile_id")))
                    .col(timestamp_with_time_zone(Alias::new("expires_at")))
                    .col(timestamp_with_time_zone(Alias::new("revoked_at")))
                    .col(string(Alias::new("revoked_by")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_revoked_tokens_expires")
                    .table(Alias::new("revoked_tokens"))
                    .col(Alias::new("expires_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(Alias::new("revoked_tokens"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
