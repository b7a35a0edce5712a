//! One `jwt`/`oidc` profile per (`jwt_claim`, `jwt_claim_value`), enforced by the database:
//! the admin API's check-then-insert alone let two concurrent creates on PostgreSQL leave two
//! profiles that were both always refused (a presented JWT must match exactly one).
//!
//! Duplicates left by that race are resolved first: the oldest profile keeps the pair and the
//! others lose their match (they could never authenticate anyway); they stay unmatched until
//! an admin gives them another `jwt_claim_value`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_jwt_match_unique"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

const INDEX: &str = "idx_access_profiles_match_pair";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let select = Query::select()
            .columns([id("id"), id("match_claim"), id("match_value")])
            .from(id("access_profiles"))
            .and_where(Expr::col(id("match_value")).is_not_null())
            .order_by(id("created_at"), Order::Asc)
            .order_by(id("id"), Order::Asc)
            .to_owned();
        let mut seen = std::collections::HashSet::new();
        for row in db.query_all(&select).await? {
            let profile: String = row.try_get("", "id")?;
            let claim: Option<String> = row.try_get("", "match_claim")?;
            let value: String = row.try_get("", "match_value")?;
            if seen.insert((claim, value)) {
                continue;
            }
            let update = Query::update()
                .table(id("access_profiles"))
                .value(id("match_value"), Option::<String>::None)
                .and_where(Expr::col(id("id")).eq(profile))
                .to_owned();
            db.execute(&update).await?;
        }
        // Partial: only jwt/oidc profiles carry a match (identical SQL on SQLite and
        // PostgreSQL).
        db.execute_unprepared(&format!(
            "CREATE UNIQUE INDEX {INDEX} ON access_profiles (match_claim, match_value) \
             WHERE match_value IS NOT NULL"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(id("access_profiles"))
                    .to_owned(),
            )
            .await
    }
}
