//! The claim NAME that identifies a `jwt`/`oidc` profile in a presented token, beside its
//! value (`match_value`), so that finding the profile of a foreign JWT reads only the claim
//! names that profiles are configured with (never every string in an attacker's token).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_jwt_match_claim"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(id("access_profiles"))
                    .add_column(ColumnDef::new(id("match_claim")).string().null())
                    .to_owned(),
            )
            .await?;
        // Existing jwt/oidc profiles: their `jwt_claim` lives in the settings JSON.
        let db = manager.get_connection();
        let select = Query::select()
            .columns([id("id"), id("settings")])
            .from(id("access_profiles"))
            .and_where(Expr::col(id("match_value")).is_not_null())
            .to_owned();
        let rows = db.query_all(&select).await?;
        for row in rows {
            let profile: String = row.try_get("", "id")?;
            let settings: String = row.try_get("", "settings")?;
            let claim = serde_json::from_str::<serde_json::Value>(&settings)
                .ok()
                .and_then(|v| {
                    v.get("jwt_claim")
                        .and_then(|c| c.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| "sub".to_owned());
            let update = Query::update()
                .table(id("access_profiles"))
                .value(id("match_claim"), claim)
                .and_where(Expr::col(id("id")).eq(profile))
                .to_owned();
            db.execute(&update).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(id("access_profiles"))
                    .drop_column(id("match_claim"))
                    .to_owned(),
            )
            .await
    }
}
