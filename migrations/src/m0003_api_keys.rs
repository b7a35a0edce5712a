//! API keys of `token` profiles: only the SHA-256 digest of each key is stored.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_api_keys"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(id("api_keys"))
                    .col(string(id("id")).primary_key())
                    .col(string(id("profile_id")))
                    .col(string(id("name")))
                    .col(boolean(id("active")))
                    .col(timestamp_with_time_zone_null(id("expires_at")))
                    .col(text(id("ip_rules")))
                    .col(string(id("prefix")))
                    .col(string_uniq(id("digest")))
                    .col(string_null(id("previous_digest")))
                    .col(timestamp_with_time_zone_null(id("previous_expires_at")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("updated_at")))
                    .col(timestamp_with_time_zone_null(id("last_used_at")))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_profile_id")
                            .from(id("api_keys"), id("profile_id"))
                            .to(id("access_profiles"), id("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_profile")
                    .table(id("api_keys"))
                    .col(id("profile_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_previous_digest")
                    .table(id("api_keys"))
                    .col(id("previous_digest"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(id("api_keys")).if_exists().to_owned())
            .await
    }
}
