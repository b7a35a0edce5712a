//! Admin console sessions: one row per signed-in browser. Only the SHA-256 of the session
//! token is stored (the token itself lives in the browser's cookie), with the admin's
//! `oauth_client_id`, the session's CSRF token and the times that decide its idle (30 min)
//! and absolute (12 h) expiry.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_console_sessions"
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
                    .table(id("console_sessions"))
                    // Hex SHA-256 of the session token.
                    .col(string(id("token_hash")).primary_key())
                    .col(string(id("oauth_client_id")))
                    .col(string(id("csrf_token")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("last_seen_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_console_sessions_last_seen")
                    .table(id("console_sessions"))
                    .col(id("last_seen_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_console_sessions_created")
                    .table(id("console_sessions"))
                    .col(id("created_at"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(id("console_sessions"))
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
