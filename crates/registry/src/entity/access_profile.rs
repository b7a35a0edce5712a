//! The `access_profiles` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "access_profiles")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub client_id: String,
    pub name: String,
    pub description: String,
    pub all_collections: bool,
    /// JSON array of scope names, or NULL for "all scopes of the collections".
    pub scopes: Option<String>,
    pub auth_type: String,
    pub oauth_client_id: String,
    /// JSON `{default_access?, allow, deny}` (`IpRulesDoc`; `default_access` only when given).
    pub ip_rules: String,
    pub policy_id: Option<String>,
    pub active: bool,
    pub token_ttl_seconds: i64,
    /// JSON object.
    pub custom_claims: String,
    /// JSON object of auth-method settings (jwt/oidc); never a secret in clear.
    pub settings: String,
    /// `jwt`/`oidc`: the `jwt_claim_value` that identifies the profile in a presented token.
    pub match_value: Option<String>,
    /// `jwt`/`oidc`: the `jwt_claim` whose value is `match_value`.
    pub match_claim: Option<String>,
    /// Admin profiles: JSON array of the `prj_…` ids the admin is limited to; NULL for all.
    pub admin_projects: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
