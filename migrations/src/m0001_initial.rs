//! The first schema: collections, clients, access profiles, secrets, signing keys, audit.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

fn fk(from_table: &str, from_col: &str, to_table: &str, to_col: &str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{from_col}"))
        .from(id(from_table), id(from_col))
        .to(id(to_table), id(to_col))
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

const TABLES: [&str; 8] = [
    "audit_events",
    "signing_keys",
    "client_secrets",
    "profile_collections",
    "access_profiles",
    "clients",
    "collection_scopes",
    "collections",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(id("collections"))
                    .col(string(id("id")).primary_key())
                    .col(string_uniq(id("name")))
                    .col(text(id("description")))
                    .col(string_uniq(id("audience")))
                    .col(text_null(id("integration_url")))
                    .col(text_null(id("documentation_url")))
                    .col(string_uniq(id("introspection_client_id")))
                    .col(boolean(id("builtin")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("updated_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("collection_scopes"))
                    .col(string(id("name")).primary_key())
                    .col(string(id("collection_id")))
                    .col(text(id("description")))
                    .col(integer(id("position")))
                    .foreign_key(&mut fk(
                        "collection_scopes",
                        "collection_id",
                        "collections",
                        "id",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_collection_scopes_collection")
                    .table(id("collection_scopes"))
                    .col(id("collection_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("clients"))
                    .col(string(id("id")).primary_key())
                    .col(string_uniq(id("name")))
                    .col(text(id("description")))
                    .col(string_null(id("project")))
                    .col(string_null(id("contact_first_name")))
                    .col(string_null(id("contact_last_name")))
                    .col(string_null(id("contact_email")))
                    .col(boolean(id("active")))
                    .col(blob_null(id("logo")))
                    .col(string_null(id("logo_type")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("updated_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_clients_project")
                    .table(id("clients"))
                    .col(id("project"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("access_profiles"))
                    .col(string(id("id")).primary_key())
                    .col(string(id("client_id")))
                    .col(string(id("name")))
                    .col(text(id("description")))
                    .col(boolean(id("all_collections")))
                    .col(text_null(id("scopes")))
                    .col(string(id("auth_type")))
                    .col(string_uniq(id("oauth_client_id")))
                    .col(text(id("ip_rules")))
                    .col(string_null(id("policy_id")))
                    .col(boolean(id("active")))
                    .col(big_integer(id("token_ttl_seconds")))
                    .col(text(id("custom_claims")))
                    .col(text(id("settings")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("updated_at")))
                    .foreign_key(&mut fk("access_profiles", "client_id", "clients", "id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_access_profiles_client_name")
                    .table(id("access_profiles"))
                    .col(id("client_id"))
                    .col(id("name"))
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("profile_collections"))
                    .col(string(id("profile_id")))
                    .col(string(id("collection_id")))
                    .primary_key(
                        Index::create()
                            .col(id("profile_id"))
                            .col(id("collection_id")),
                    )
                    .foreign_key(&mut fk(
                        "profile_collections",
                        "profile_id",
                        "access_profiles",
                        "id",
                    ))
                    .foreign_key(&mut fk(
                        "profile_collections",
                        "collection_id",
                        "collections",
                        "id",
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_profile_collections_collection")
                    .table(id("profile_collections"))
                    .col(id("collection_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("client_secrets"))
                    .col(string(id("id")).primary_key())
                    .col(string(id("owner_id")))
                    .col(text(id("secret_hash")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone_null(id("expires_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_client_secrets_owner")
                    .table(id("client_secrets"))
                    .col(id("owner_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("signing_keys"))
                    .col(string(id("kid")).primary_key())
                    .col(string(id("alg")))
                    .col(string(id("state")))
                    .col(text(id("private_jwe")))
                    .col(text(id("public_jwk")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone_null(id("activated_at")))
                    .col(timestamp_with_time_zone_null(id("retired_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(id("audit_events"))
                    .col(string(id("id")).primary_key())
                    .col(timestamp_with_time_zone(id("at")))
                    .col(string(id("actor")))
                    .col(string(id("action")))
                    .col(string(id("target_type")))
                    .col(string(id("target_id")))
                    .col(text(id("details")))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            manager
                .drop_table(Table::drop().table(id(table)).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
