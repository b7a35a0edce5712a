//! Access profiles: what one consumer of a client may do, and how it proves itself.

use super::auth::GrantedCollection;
use super::{Actor, Registry, decode_cursor};
use crate::api::{
    Connection, ConnectionCollection, ListParams, Page, Profile, ProfileCreated,
    ProfileSecretIssued, merge_patch,
};
use crate::command::{NewProfile, ProfilePatch};
use crate::entity::{access_profile, collection, profile_collection};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::secret::generate_client_secret;
use crate::types::{
    AuthType, Description, FieldError, IpRules, IpRulesView, Name, ProjectId, parse_custom_claims,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use std::collections::{BTreeMap, BTreeSet};

/// A profile input that passed validation (collection ids are checked against the database
/// separately).
pub(crate) struct ValidProfile {
    pub(crate) name: Name,
    pub(crate) description: Description,
    pub(crate) collections: Vec<String>,
    pub(crate) all_collections: bool,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) auth_type: AuthType,
    pub(crate) ip_rules: IpRules,
    pub(crate) active: bool,
    pub(crate) token_ttl_seconds: i64,
    pub(crate) custom_claims: serde_json::Map<String, serde_json::Value>,
    pub(crate) jwt: Option<super::jwt::ValidJwt>,
    pub(crate) policy_id: Option<String>,
    pub(crate) admin_projects: Option<Vec<String>>,
}

impl Registry {
    fn validate_profile(&self, input: &NewProfile) -> Result<ValidProfile> {
        let mut errors: Vec<FieldError> = Vec::new();
        let mut collections: Vec<String> = Vec::new();
        for id in &input.collections {
            if !collections.contains(id) {
                collections.push(id.clone());
            }
        }
        if collections.is_empty() && !input.all_collections {
            errors.push(FieldError::new(
                "collections",
                "required",
                "grant at least one collection, or set all_collections",
            ));
        }
        if collections.len() > 500 {
            errors.push(FieldError::new(
                "collections",
                "too_many",
                "at most 500 collections",
            ));
        }
        let max = self.inner.settings.max_token_ttl;
        let ttl = input
            .token_ttl_seconds
            .unwrap_or(self.inner.settings.default_token_ttl.min(max));
        if !(1..=max).contains(&ttl) {
            errors.push(FieldError::new(
                "token_ttl_seconds",
                "out_of_range",
                format!("must be between 1 and {max} (GATEHOUSE_MAX_TOKEN_TTL)"),
            ));
        }
        let custom_claims = parse_custom_claims(
            &serde_json::Value::Object(input.custom_claims.clone()),
            "custom_claims",
        )
        .map_err(|e| errors.extend(e))
        .ok();
        let scopes = input.scopes.as_ref().map(|s| {
            let mut seen = BTreeSet::new();
            s.iter()
                .filter(|x| seen.insert((*x).clone()))
                .cloned()
                .collect::<Vec<_>>()
        });
        let jwt = self.validate_jwt(input, &mut errors);
        match custom_claims {
            Some(custom_claims) if errors.is_empty() => Ok(ValidProfile {
                name: input.name.clone(),
                description: input.description.clone(),
                collections,
                all_collections: input.all_collections,
                scopes,
                auth_type: input.auth_type,
                ip_rules: input.ip_rules.clone(),
                active: input.active,
                token_ttl_seconds: ttl,
                custom_claims,
                jwt,
                policy_id: input.policy_id.clone(),
                admin_projects: input
                    .admin_projects
                    .as_ref()
                    .map(|ids| ids.iter().map(|p| p.as_str().to_owned()).collect()),
            }),
            _ => Err(RegistryError::Validation(errors)),
        }
    }

    /// The stored profile as the command that would create it (secrets aside): what a
    /// patch applies to.
    fn spec_of(&self, row: &access_profile::Model, links: Vec<String>) -> Result<NewProfile> {
        let internal = |what: &str| RegistryError::Internal(format!("stored profile: {what}"));
        let auth_type =
            AuthType::parse(&row.auth_type).map_err(|e| RegistryError::Internal(e.message))?;
        let jwt = matches!(auth_type, AuthType::Jwt | AuthType::Oidc)
            .then(|| serde_json::from_str::<super::jwt::JwtStored>(&row.settings).ok())
            .flatten()
            .map(|s| s.view);
        let admin_projects = match &row.admin_projects {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<Vec<String>>(text)
                    .map_err(|_| internal("admin_projects"))?
                    .iter()
                    .map(|p| ProjectId::parse(p).map_err(|_| internal("admin_projects")))
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        Ok(NewProfile {
            name: Name::parse(&row.name).map_err(|_| internal("name"))?,
            description: Description::parse(&row.description)
                .map_err(|_| internal("description"))?,
            collections: links,
            all_collections: row.all_collections,
            scopes: row
                .scopes
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            auth_type,
            ip_rules: IpRules::from_stored(&row.ip_rules).map_err(|_| internal("ip_rules"))?,
            policy_id: row.policy_id.clone(),
            admin_projects,
            active: row.active,
            token_ttl_seconds: Some(row.token_ttl_seconds),
            custom_claims: serde_json::from_str(&row.custom_claims).unwrap_or_default(),
            jwt_method: jwt.as_ref().and_then(|j| j.jwt_method),
            jwt_algorithms: jwt.as_ref().map(|j| j.jwt_algorithms.clone()),
            jwt_public_key: jwt.as_ref().and_then(|j| j.jwt_public_key.clone()),
            jwt_secret: None,
            oidc_jwks_uri: jwt.as_ref().and_then(|j| j.oidc_jwks_uri.clone()),
            oidc_issuer: jwt.as_ref().and_then(|j| j.oidc_issuer.clone()),
            jwt_claim: jwt.as_ref().map(|j| j.jwt_claim.clone()),
            jwt_claim_value: jwt.as_ref().map(|j| j.jwt_claim_value.clone()),
            required_claims: jwt
                .as_ref()
                .map(|j| j.required_claims.clone())
                .unwrap_or_default(),
            allowed_issuers: jwt
                .as_ref()
                .map(|j| j.allowed_issuers.clone())
                .unwrap_or_default(),
            allowed_audiences: jwt
                .as_ref()
                .map(|j| j.allowed_audiences.clone())
                .unwrap_or_default(),
        })
    }

    /// The collections a profile grants, with the scopes it may obtain from each.
    pub(crate) async fn grants<C: ConnectionTrait>(
        &self,
        conn: &C,
        explicit: &[String],
        all_collections: bool,
        subset: Option<&[String]>,
    ) -> Result<Vec<GrantedCollection>> {
        let mut q = collection::Entity::find().order_by_asc(collection::Column::Id);
        q = if all_collections {
            q.filter(
                Condition::any()
                    .add(collection::Column::Builtin.eq(false))
                    .add(collection::Column::Id.is_in(explicit.iter().cloned())),
            )
        } else {
            q.filter(collection::Column::Id.is_in(explicit.iter().cloned()))
        };
        let rows = q.all(conn).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut scopes = self.scopes_of(conn, &ids).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let all = scopes.remove(&r.id).unwrap_or_default();
                let scopes = all
                    .into_iter()
                    .map(|s| s.name)
                    .filter(|s| subset.is_none_or(|sub| sub.contains(s)))
                    .collect();
                GrantedCollection {
                    id: r.id,
                    audience: r.audience,
                    integration_url: r.integration_url,
                    documentation_url: r.documentation_url,
                    scopes,
                }
            })
            .collect())
    }

    /// Check that explicit collection ids exist and the scope subset is available.
    async fn check_profile_refs<C: ConnectionTrait>(
        &self,
        conn: &C,
        valid: &ValidProfile,
    ) -> Result<()> {
        let mut errors = Vec::new();
        if !valid.collections.is_empty() {
            let found: BTreeSet<String> = collection::Entity::find()
                .filter(collection::Column::Id.is_in(valid.collections.iter().cloned()))
                .all(conn)
                .await?
                .into_iter()
                .map(|c| c.id)
                .collect();
            for (i, id) in valid.collections.iter().enumerate() {
                if !found.contains(id) {
                    errors.push(FieldError::new(
                        format!("collections[{i}]"),
                        "unknown",
                        "no such collection",
                    ));
                }
            }
        }
        if let Some(policy) = &valid.policy_id
            && !self.policy_exists(conn, policy).await?
        {
            errors.push(FieldError::new("policy_id", "unknown", "no such policy"));
        }
        if let Some(subset) = &valid.scopes {
            let grants = self
                .grants(conn, &valid.collections, valid.all_collections, None)
                .await?;
            let available: BTreeSet<&str> = grants
                .iter()
                .flat_map(|g| g.scopes.iter().map(String::as_str))
                .collect();
            for (i, s) in subset.iter().enumerate() {
                if !available.contains(s.as_str()) {
                    errors.push(FieldError::new(
                        format!("scopes[{i}]"),
                        "not_granted",
                        "not a scope of the granted collections",
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Validation(errors))
        }
    }

    async fn check_profile_name<C: ConnectionTrait>(
        &self,
        conn: &C,
        client_id: &str,
        name: &Name,
        except: Option<&str>,
    ) -> Result<()> {
        let mut q = access_profile::Entity::find()
            .filter(access_profile::Column::ClientId.eq(client_id))
            .filter(access_profile::Column::Name.eq(name.as_str()));
        if let Some(id) = except {
            q = q.filter(access_profile::Column::Id.ne(id));
        }
        if q.one(conn).await?.is_some() {
            return Err(RegistryError::Conflict {
                field: "name".to_owned(),
                message: "this client already has a profile with this name".to_owned(),
            });
        }
        Ok(())
    }

    async fn write_links<C: ConnectionTrait>(
        &self,
        conn: &C,
        profile_id: &str,
        collections: &[String],
    ) -> Result<()> {
        profile_collection::Entity::delete_many()
            .filter(profile_collection::Column::ProfileId.eq(profile_id))
            .exec(conn)
            .await?;
        if !collections.is_empty() {
            let rows = collections.iter().map(|c| profile_collection::ActiveModel {
                profile_id: Set(profile_id.to_owned()),
                collection_id: Set(c.clone()),
            });
            profile_collection::Entity::insert_many(rows)
                .exec(conn)
                .await?;
        }
        Ok(())
    }

    /// Insert a validated profile with a given public client id and hashed secret.
    pub(crate) async fn insert_profile<C: ConnectionTrait>(
        &self,
        conn: &C,
        client_id: &str,
        valid: &ValidProfile,
        oauth_client_id: &str,
        secret_hash: Option<String>,
    ) -> Result<(access_profile::Model, Option<String>)> {
        let now = self.now();
        let id = new_id(IdKind::Profile);
        let (settings, match_value, generated) = match &valid.jwt {
            None => ("{}".to_owned(), None, None),
            Some(j) => {
                let mut view = j.view.clone();
                if !j.claim_value_given {
                    view.jwt_claim_value = oauth_client_id.to_owned();
                }
                self.check_match_value(conn, &view.jwt_claim, &view.jwt_claim_value, None)
                    .await?;
                let (sealed, generated) = match view.jwt_method {
                    Some(crate::api::JwtMethod::Hmac) => {
                        let secret = j.supplied_secret.clone().unwrap_or_else(|| {
                            super::jwt::generated_hmac_secret(
                                j.view.jwt_algorithms.first().map(String::as_str),
                            )
                        });
                        (
                            Some(self.seal(&id, &secret)?),
                            j.supplied_secret.is_none().then_some(secret),
                        )
                    }
                    _ => (None, None),
                };
                let match_value = Some((view.jwt_claim.clone(), view.jwt_claim_value.clone()));
                let stored = super::jwt::JwtStored {
                    view,
                    sealed_secret: sealed,
                    previous_sealed_secret: None,
                    previous_until: None,
                };
                (json_text(&stored)?, match_value, generated)
            }
        };
        let row = access_profile::ActiveModel {
            admin_projects: Set(match &valid.admin_projects {
                Some(ids) => Some(json_text(ids)?),
                None => None,
            }),
            id: Set(id.clone()),
            client_id: Set(client_id.to_owned()),
            name: Set(valid.name.as_str().to_owned()),
            description: Set(valid.description.as_str().to_owned()),
            all_collections: Set(valid.all_collections),
            scopes: Set(valid
                .scopes
                .as_ref()
                .map(|s| serde_json::Value::from(s.clone()).to_string())),
            auth_type: Set(valid.auth_type.as_str().to_owned()),
            oauth_client_id: Set(oauth_client_id.to_owned()),
            ip_rules: Set(json_text(&valid.ip_rules.to_doc())?),
            policy_id: Set(valid.policy_id.clone()),
            active: Set(valid.active),
            token_ttl_seconds: Set(valid.token_ttl_seconds),
            custom_claims: Set(serde_json::Value::Object(valid.custom_claims.clone()).to_string()),
            settings: Set(settings),
            match_claim: Set(match_value.as_ref().map(|(claim, _)| claim.clone())),
            match_value: Set(match_value.map(|(_, value)| value)),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(conn)
        .await?;
        self.write_links(conn, &id, &valid.collections).await?;
        if let Some(hash) = secret_hash {
            self.insert_secret(conn, &id, hash).await?;
        }
        Ok((row, generated))
    }

    /// A (`jwt_claim`, `jwt_claim_value`) pair identifies exactly one `jwt`/`oidc` profile.
    /// A friendly early answer; the unique index (migration m0008) is what holds under
    /// concurrent writes.
    async fn check_match_value<C: ConnectionTrait>(
        &self,
        conn: &C,
        claim: &str,
        value: &str,
        except: Option<&str>,
    ) -> Result<()> {
        let mut q = access_profile::Entity::find()
            .filter(access_profile::Column::MatchValue.eq(value))
            .filter(access_profile::Column::MatchClaim.eq(claim));
        if let Some(id) = except {
            q = q.filter(access_profile::Column::Id.ne(id));
        }
        if q.one(conn).await?.is_some() {
            return Err(RegistryError::Conflict {
                field: "jwt_claim_value".to_owned(),
                message: "another jwt or oidc profile is identified by this jwt_claim and jwt_claim_value"
                    .to_owned(),
            });
        }
        Ok(())
    }

    /// Create an access profile for a client; an `oauth2` profile's answer carries its
    /// client secret, once.
    pub async fn create_profile(
        &self,
        actor: &Actor,
        client_id: &str,
        new: NewProfile,
    ) -> Result<ProfileCreated> {
        actor.require_write()?;
        let valid = self.validate_profile(&new)?;
        // oauth2 profiles get a client secret; token profiles their first API key.
        let secret = (valid.auth_type == AuthType::OAuth2).then(generate_client_secret);
        let hash = match &secret {
            Some(s) => Some(self.inner.hasher.hash(s).await?),
            None => None,
        };
        let txn = self.inner.db.begin().await?;
        let project = self.visible_client(&txn, actor, client_id).await?.project;
        let is_admin = self.grants_admin(&txn, &valid.collections).await?;
        if is_admin {
            actor.require_unlimited_write()?;
        }
        self.check_admin_projects(&txn, &valid, is_admin).await?;
        self.check_profile_name(&txn, client_id, &valid.name, None)
            .await?;
        self.check_profile_refs(&txn, &valid).await?;
        let oauth_client_id = new_id(IdKind::OAuthClient);
        let (row, generated_jwt_secret) = self
            .insert_profile(&txn, client_id, &valid, &oauth_client_id, hash)
            .await?;
        let first_key = if valid.auth_type == AuthType::Token {
            let input = crate::command::NewApiKey::first();
            Some(self.insert_api_key(&txn, &row.id, &input).await?)
        } else {
            None
        };
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "profile.create",
            "access_profile",
            &row.id,
            serde_json::json!({"client_id": client_id, "name": row.name, "auth_type": row.auth_type, "oauth_client_id": row.oauth_client_id}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        let profile = self.profile_view(&self.inner.db, row).await?;
        Ok(ProfileCreated {
            profile,
            oauth_client_secret: secret.map(|s| s.expose_secret().to_owned()),
            auth_token: first_key
                .as_ref()
                .map(|(_, v)| v.expose_secret().to_owned()),
            api_key_id: first_key.map(|(k, _)| k.id),
            jwt_secret: generated_jwt_secret,
        })
    }

    /// A profile this actor may see (its client's project is the actor's), with that
    /// project; otherwise "not found", like a profile that does not exist.
    pub(crate) async fn visible_profile<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        id: &str,
    ) -> Result<(access_profile::Model, Option<String>)> {
        let row = self.profile_row(conn, id).await?;
        let project = self.client_row(conn, &row.client_id).await?.project;
        if actor.sees_project(project.as_deref()) {
            Ok((row, project))
        } else {
            Err(RegistryError::NotFound("access profile"))
        }
    }

    /// Whether these collection ids include the built-in admin collection: such a profile
    /// is an admin, and only an unlimited admin may create, change or refresh one (a
    /// limited admin could otherwise mint itself wider rights).
    async fn grants_admin<C: ConnectionTrait>(&self, conn: &C, ids: &[String]) -> Result<bool> {
        if ids.is_empty() {
            return Ok(false);
        }
        Ok(collection::Entity::find()
            .filter(collection::Column::Id.is_in(ids.iter().cloned()))
            .filter(collection::Column::Builtin.eq(true))
            .one(conn)
            .await?
            .is_some())
    }

    /// Refuse a change of an admin profile (one granting the built-in admin collection)
    /// unless the actor is an unlimited writer.
    pub(crate) async fn require_admin_rights_for<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        profile_id: &str,
    ) -> Result<()> {
        let links = self
            .links_of(conn, &[profile_id.to_owned()])
            .await?
            .remove(profile_id)
            .unwrap_or_default();
        if self.grants_admin(conn, &links).await? {
            actor.require_unlimited_write()?;
        }
        Ok(())
    }

    /// `admin_projects` is only for admin profiles and names existing projects.
    async fn check_admin_projects<C: ConnectionTrait>(
        &self,
        conn: &C,
        valid: &ValidProfile,
        is_admin: bool,
    ) -> Result<()> {
        let Some(ids) = &valid.admin_projects else {
            return Ok(());
        };
        if !is_admin {
            return Err(RegistryError::invalid(
                "admin_projects",
                "not_admin",
                "only a profile granting the built-in admin collection can be limited to projects",
            ));
        }
        let mut errors = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            if !self.project_exists(conn, id).await? {
                errors.push(FieldError::new(
                    format!("admin_projects[{i}]"),
                    "not_found",
                    "no project has this id",
                ));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RegistryError::Validation(errors))
        }
    }

    pub(crate) async fn profile_row<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
    ) -> Result<access_profile::Model> {
        access_profile::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .ok_or(RegistryError::NotFound("access profile"))
    }

    pub(crate) async fn links_of<C: ConnectionTrait>(
        &self,
        conn: &C,
        profile_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if profile_ids.is_empty() {
            return Ok(out);
        }
        let rows = profile_collection::Entity::find()
            .filter(profile_collection::Column::ProfileId.is_in(profile_ids.iter().cloned()))
            .order_by_asc(profile_collection::Column::CollectionId)
            .all(conn)
            .await?;
        for r in rows {
            out.entry(r.profile_id).or_default().push(r.collection_id);
        }
        Ok(out)
    }

    async fn profile_view<C: ConnectionTrait>(
        &self,
        conn: &C,
        row: access_profile::Model,
    ) -> Result<Profile> {
        let links = self
            .links_of(conn, std::slice::from_ref(&row.id))
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        self.profile_view_with(conn, row, links).await
    }

    async fn profile_view_with<C: ConnectionTrait>(
        &self,
        conn: &C,
        row: access_profile::Model,
        links: Vec<String>,
    ) -> Result<Profile> {
        let subset: Option<Vec<String>> = row
            .scopes
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        let grants = self
            .grants(conn, &links, row.all_collections, subset.as_deref())
            .await?;
        let settings = &self.inner.settings;
        let auth_type =
            AuthType::parse(&row.auth_type).map_err(|e| RegistryError::Internal(e.message))?;
        let ip_rules: IpRulesView = serde_json::from_str(&row.ip_rules)
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        Ok(Profile {
            effective_scopes: grants
                .iter()
                .flat_map(|g| g.scopes.iter().cloned())
                .collect(),
            connection: Connection {
                issuer: settings.issuer.clone(),
                token_endpoint: settings.endpoint("/oauth/token"),
                discovery_url: settings.endpoint("/.well-known/openid-configuration"),
                introspection_endpoint: settings.endpoint("/oauth/introspect"),
                collections: grants
                    .iter()
                    .map(|g| ConnectionCollection {
                        audience: g.audience.clone(),
                        integration_url: g.integration_url.clone(),
                        documentation_url: g.documentation_url.clone(),
                    })
                    .collect(),
            },
            id: row.id,
            client_id: row.client_id,
            name: row.name,
            description: row.description,
            collections: links,
            all_collections: row.all_collections,
            scopes: subset,
            auth_type,
            oauth_client_id: row.oauth_client_id,
            ip_rules,
            policy_id: row.policy_id,
            admin_projects: row
                .admin_projects
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok()),
            active: row.active,
            token_ttl_seconds: row.token_ttl_seconds,
            custom_claims: serde_json::from_str(&row.custom_claims)
                .unwrap_or_else(|_| serde_json::json!({})),
            jwt: matches!(auth_type, AuthType::Jwt | AuthType::Oidc)
                .then(|| serde_json::from_str::<super::jwt::JwtStored>(&row.settings).ok())
                .flatten()
                .map(|s| s.view),
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }

    /// One profile.
    pub async fn get_profile(&self, actor: &Actor, id: &str) -> Result<Profile> {
        let (row, _) = self.visible_profile(&self.inner.db, actor, id).await?;
        self.profile_view(&self.inner.db, row).await
    }

    /// A page of a client's profiles.
    pub async fn list_profiles(
        &self,
        actor: &Actor,
        client_id: &str,
        params: &ListParams,
    ) -> Result<Page<Profile>> {
        self.visible_client(&self.inner.db, actor, client_id)
            .await?;
        let limit = params.limit();
        let mut q = access_profile::Entity::find()
            .filter(access_profile::Column::ClientId.eq(client_id))
            .order_by_asc(access_profile::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            q = q.filter(access_profile::Column::Id.gt(after));
        }
        let rows = q.limit(limit + 1).all(&self.inner.db).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut links = self.links_of(&self.inner.db, &ids).await?;
        let more = rows.len() as u64 > limit;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows.into_iter().take(limit as usize) {
            let l = links.remove(&row.id).unwrap_or_default();
            items.push(self.profile_view_with(&self.inner.db, row, l).await?);
        }
        let next_cursor = if more {
            items.last().map(|p: &Profile| super::encode_cursor(&p.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    /// Change a profile. `auth_type` and `jwt_method` cannot change; a `jwt_secret` is set
    /// only by a refresh.
    pub async fn update_profile(
        &self,
        actor: &Actor,
        id: &str,
        patch: ProfilePatch,
    ) -> Result<Profile> {
        actor.require_write()?;
        let changed = patch.fields();
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_profile(&txn, actor, id).await?;
        let links = self
            .links_of(&txn, std::slice::from_ref(&row.id))
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        let was_admin = self.grants_admin(&txn, &links).await?;
        let mut spec = self.spec_of(&row, links)?;
        // Said first, so the answer names the real problem rather than what a different
        // auth_type would need.
        if patch.auth_type.is_some_and(|a| a != spec.auth_type) {
            return Err(RegistryError::invalid(
                "auth_type",
                "immutable",
                "auth_type cannot change after creation",
            ));
        }
        if patch.jwt_secret.as_ref().is_some_and(Option::is_some) {
            return Err(RegistryError::invalid(
                "jwt_secret",
                "write_only",
                "set a new secret with POST /admin/v1/access-profiles/{id}/secret",
            ));
        }
        let stored_method = spec.jwt_method;
        apply_patch(&mut spec, patch)?;
        if spec.jwt_method != stored_method {
            return Err(RegistryError::invalid(
                "jwt_method",
                "immutable",
                "jwt_method cannot change after creation",
            ));
        }
        let valid = self.validate_profile(&spec)?;
        let is_admin = self.grants_admin(&txn, &valid.collections).await?;
        if was_admin || is_admin {
            actor.require_unlimited_write()?;
        }
        self.check_admin_projects(&txn, &valid, is_admin).await?;
        self.check_profile_name(&txn, &row.client_id, &valid.name, Some(id))
            .await?;
        self.check_profile_refs(&txn, &valid).await?;
        let jwt_settings = match &valid.jwt {
            None => None,
            Some(j) => {
                let mut stored: super::jwt::JwtStored = serde_json::from_str(&row.settings)
                    .map_err(|e| RegistryError::Internal(e.to_string()))?;
                self.check_match_value(&txn, &j.view.jwt_claim, &j.view.jwt_claim_value, Some(id))
                    .await?;
                stored.view = j.view.clone();
                Some((
                    json_text(&stored)?,
                    stored.view.jwt_claim.clone(),
                    stored.view.jwt_claim_value.clone(),
                ))
            }
        };
        let mut active: access_profile::ActiveModel = row.into();
        if let Some((settings, match_claim, match_value)) = jwt_settings {
            active.settings = Set(settings);
            active.match_claim = Set(Some(match_claim));
            active.match_value = Set(Some(match_value));
        }
        active.name = Set(valid.name.as_str().to_owned());
        active.description = Set(valid.description.as_str().to_owned());
        active.all_collections = Set(valid.all_collections);
        active.scopes = Set(valid
            .scopes
            .as_ref()
            .map(|s| serde_json::Value::from(s.clone()).to_string()));
        active.ip_rules = Set(json_text(&valid.ip_rules.to_doc())?);
        active.active = Set(valid.active);
        active.policy_id = Set(valid.policy_id.clone());
        active.admin_projects = Set(match &valid.admin_projects {
            Some(ids) => Some(json_text(ids)?),
            None => None,
        });
        active.token_ttl_seconds = Set(valid.token_ttl_seconds);
        active.custom_claims =
            Set(serde_json::Value::Object(valid.custom_claims.clone()).to_string());
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        self.write_links(&txn, id, &valid.collections).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "profile.update",
            "access_profile",
            id,
            serde_json::json!({"fields": changed, "active": row.active}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        self.profile_view(&self.inner.db, row).await
    }

    /// Delete a profile and its secrets.
    pub async fn delete_profile(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_profile(&txn, actor, id).await?;
        self.require_admin_rights_for(&txn, actor, id).await?;
        self.delete_secrets(&txn, id).await?;
        access_profile::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "profile.delete",
            "access_profile",
            id,
            serde_json::json!({"name": row.name, "oauth_client_id": row.oauth_client_id}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }

    /// Issue a new client secret for an `oauth2` profile, once; the previous secrets stay
    /// valid for `grace_seconds` (default 0: revoked at once).
    pub async fn refresh_profile_secret(
        &self,
        actor: &Actor,
        id: &str,
        grace_seconds: Option<i64>,
    ) -> Result<ProfileSecretIssued> {
        actor.require_write()?;
        let (current, _) = self.visible_profile(&self.inner.db, actor, id).await?;
        self.require_admin_rights_for(&self.inner.db, actor, id)
            .await?;
        if current.auth_type == AuthType::Jwt.as_str() {
            return self.refresh_jwt_secret(actor, id, grace_seconds).await;
        }
        let secret = generate_client_secret();
        let hash = self.inner.hasher.hash(&secret).await?;
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_profile(&txn, actor, id).await?;
        if row.auth_type != AuthType::OAuth2.as_str() {
            return Err(RegistryError::invalid(
                "auth_type",
                "not_supported",
                "only oauth2 profiles have a client secret, and jwt/hmac profiles a jwt_secret; token profiles refresh their API keys, oidc profiles have none",
            ));
        }
        let previous = self.rotate_secret(&txn, id, hash, grace_seconds).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "profile.secret.refresh",
            "access_profile",
            id,
            serde_json::json!({"grace_seconds": grace_seconds.unwrap_or(0)}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(ProfileSecretIssued {
            oauth_client_id: row.oauth_client_id,
            oauth_client_secret: Some(secret.expose_secret().to_owned()),
            jwt_secret: None,
            previous_secret_expires_at: previous,
        })
    }

    /// A new HMAC secret for a `jwt`/hmac profile; the previous one lives on for
    /// `grace_seconds`.
    async fn refresh_jwt_secret(
        &self,
        actor: &Actor,
        id: &str,
        grace_seconds: Option<i64>,
    ) -> Result<ProfileSecretIssued> {
        let grace = super::auth::grace_seconds(grace_seconds)?;
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_profile(&txn, actor, id).await?;
        let mut stored: super::jwt::JwtStored = serde_json::from_str(&row.settings)
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        if stored.view.jwt_method != Some(crate::api::JwtMethod::Hmac) {
            return Err(RegistryError::invalid(
                "jwt_method",
                "not_supported",
                "rsa profiles have no secret: PATCH jwt_public_key",
            ));
        }
        let secret = super::jwt::generated_hmac_secret(
            stored.view.jwt_algorithms.first().map(String::as_str),
        );
        let now = self.now();
        let until = (grace > 0).then(|| now + chrono::Duration::seconds(grace));
        stored.previous_sealed_secret = until.and(stored.sealed_secret.take());
        stored.previous_until = until;
        stored.sealed_secret = Some(self.seal(id, &secret)?);
        let oauth_client_id = row.oauth_client_id.clone();
        let mut active: access_profile::ActiveModel = row.into();
        active.settings = Set(json_text(&stored)?);
        active.updated_at = Set(now);
        active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "profile.secret.refresh",
            "access_profile",
            id,
            serde_json::json!({"grace_seconds": grace, "kind": "jwt_secret"}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(ProfileSecretIssued {
            oauth_client_id,
            oauth_client_secret: None,
            jwt_secret: Some(secret),
            previous_secret_expires_at: until,
        })
    }
}

fn json_text<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| RegistryError::Internal(e.to_string()))
}

/// Apply a patch to a stored profile's spec: members replace, `ip_rules` and
/// `custom_claims` merge member by member (RFC 7396 §2), removed members take their defaults.
fn apply_patch(spec: &mut NewProfile, patch: ProfilePatch) -> Result<()> {
    if let Some(v) = patch.name {
        spec.name = v;
    }
    if let Some(v) = patch.description {
        spec.description = v;
    }
    if let Some(v) = patch.collections {
        spec.collections = v;
    }
    if let Some(v) = patch.all_collections {
        spec.all_collections = v;
    }
    if let Some(v) = patch.scopes {
        spec.scopes = v;
    }
    match patch.ip_rules {
        None => {}
        Some(None) => spec.ip_rules = IpRules::default(),
        Some(Some(p)) => {
            let mut doc = spec.ip_rules.to_doc();
            if let Some(d) = p.default_access {
                doc.default_access = d;
            }
            if let Some(list) = p.allow {
                doc.allow = list.iter().map(ToString::to_string).collect();
            }
            if let Some(list) = p.deny {
                doc.deny = list.iter().map(ToString::to_string).collect();
            }
            spec.ip_rules = IpRules::parse(&doc, "ip_rules").map_err(RegistryError::Validation)?;
        }
    }
    if let Some(v) = patch.policy_id {
        spec.policy_id = v;
    }
    if let Some(v) = patch.admin_projects {
        spec.admin_projects = v;
    }
    if let Some(v) = patch.active {
        spec.active = v;
    }
    if let Some(v) = patch.token_ttl_seconds {
        spec.token_ttl_seconds = v;
    }
    match patch.custom_claims {
        None => {}
        Some(None) => spec.custom_claims.clear(),
        Some(Some(members)) => {
            for (name, value) in members {
                match value {
                    None => {
                        spec.custom_claims.remove(&name);
                    }
                    Some(value) => {
                        let slot = spec
                            .custom_claims
                            .entry(name)
                            .or_insert(serde_json::Value::Null);
                        merge_patch(slot, &value);
                    }
                }
            }
        }
    }
    if let Some(v) = patch.jwt_method {
        spec.jwt_method = v;
    }
    if let Some(v) = patch.jwt_algorithms {
        spec.jwt_algorithms = v;
    }
    if let Some(v) = patch.jwt_public_key {
        spec.jwt_public_key = v;
    }
    if let Some(v) = patch.oidc_jwks_uri {
        spec.oidc_jwks_uri = v;
    }
    if let Some(v) = patch.oidc_issuer {
        spec.oidc_issuer = v;
    }
    if let Some(v) = patch.jwt_claim {
        spec.jwt_claim = v;
    }
    if let Some(v) = patch.jwt_claim_value {
        spec.jwt_claim_value = v;
    }
    if let Some(v) = patch.required_claims {
        spec.required_claims = v;
    }
    if let Some(v) = patch.allowed_issuers {
        spec.allowed_issuers = v;
    }
    if let Some(v) = patch.allowed_audiences {
        spec.allowed_audiences = v;
    }
    Ok(())
}
