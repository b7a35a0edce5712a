//! Policies (rate limits and quotas), the persisted quota counters, and hourly usage
//! counters.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_policies"
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
                    .table(id("policies"))
                    .col(string(id("id")).primary_key())
                    .col(string_uniq(id("name")))
                    .col(big_integer_null(id("rate_requests")))
                    .col(string_null(id("rate_per")))
                    .col(big_integer_null(id("quota_requests")))
                    .col(string_null(id("quota_per")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("updated_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("quota_counters"))
                    .col(string(id("profile_id")))
                    .col(string(id("period")))
                    .col(big_integer(id("count")))
                    .primary_key(Index::create().col(id("profile_id")).col(id("period")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("usage_counters"))
                    .col(string(id("profile_id")))
                    .col(timestamp_with_time_zone(id("bucket")))
                    .col(string(id("metric")))
                    .col(string(id("client_id")))
                    .col(big_integer(id("count")))
                    .primary_key(
                        Index::create()
                            .col(id("profile_id"))
                            .col(id("bucket"))
                            .col(id("metric")),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("usage_counters_client_bucket")
                    .table(id("usage_counters"))
                    .col(id("client_id"))
                    .col(id("bucket"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("access_profiles_policy")
                    .table(id("access_profiles"))
                    .col(id("policy_id"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("access_profiles_policy")
                    .table(id("access_profiles"))
                    .to_owned(),
            )
            .await?;
        for table in ["usage_counters", "quota_counters", "policies"] {
            manager
                .drop_table(Table::drop().table(id(table)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
