//! The value that identifies a `jwt` profile in a presented token, indexed for lookup.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_jwt_match"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("access_profiles"))
                    .add_column(ColumnDef::new(Alias::new("match_value")).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_profiles_match_value")
                    .table(Alias::new("access_profiles"))
                    .col(Alias::new("match_value"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_access_profiles_match_value")
                    .table(Alias::new("access_profiles"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Alias::new("access_profiles"))
                    .drop_column(Alias::new("match_value"))
                    .to_owned(),
            )
            .await
    }
}
