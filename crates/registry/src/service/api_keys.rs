//! API keys of `token` profiles: several per profile, each named, expirable, narrowable by IP,
//! revocable and refreshable. Only SHA-256 digests are stored; lookups go by digest.

use super::audit::page;
use super::{Actor, Registry, decode_cursor};
use crate::api::{ApiKey, ApiKeyIssued, KeyIpRulesDoc, ListParams, Page};
use crate::api_key_format;
use crate::command::{ApiKeyPatch, NewApiKey};
use crate::entity::{access_profile, api_key};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::types::{AuthType, IpRule, KeyIpRules, normalize_ip};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use std::net::IpAddr;
use std::sync::Arc;

/// What introspection needs about one API key, cached by digest.
#[derive(Debug, Clone)]
pub struct ApiKeySnapshot {
    /// `key_…`
    pub id: String,
    /// The profile's `oauth_client_id` (look the profile up with it).
    pub oauth_client_id: String,
    /// `prf_…`
    pub profile_id: String,
    /// The key's switch.
    pub active: bool,
    /// When the key stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when this value is the previous one of a refresh, valid until then.
    pub grace_until: Option<DateTime<Utc>>,
    /// When the key was created.
    pub created_at: DateTime<Utc>,
    allow: Vec<IpRule>,
    deny: Vec<IpRule>,
}

impl ApiKeySnapshot {
    /// Whether the key itself is usable at `now` (switch, expiry, grace period).
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.active
            && self.expires_at.is_none_or(|e| e > now)
            && self.grace_until.is_none_or(|g| g > now)
    }

    /// Whether the key has IP rules of its own.
    pub fn has_ip_rules(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }

    /// The key's own rules (the profile's are checked separately).
    pub fn allows_ip(&self, addr: IpAddr) -> bool {
        let addr = normalize_ip(addr);
        if self.deny.iter().any(|r| r.contains(addr)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|r| r.contains(addr))
    }

    /// The earliest moment the key stops working, if any.
    pub fn ends_at(&self) -> Option<DateTime<Utc>> {
        match (self.expires_at, self.grace_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn rules_of(text: &str) -> KeyIpRulesDoc {
    serde_json::from_str(text).unwrap_or_default()
}

/// A stored key's rules (validated on write; a row that no longer parses is a fault, not
/// "no rules").
fn stored_rules(text: &str) -> Result<KeyIpRules> {
    let doc: KeyIpRulesDoc =
        serde_json::from_str(text).map_err(|e| RegistryError::Internal(e.to_string()))?;
    KeyIpRules::parse(&doc, "ip_rules")
        .map_err(|_| RegistryError::Internal("stored API key IP rules do not parse".to_owned()))
}

fn rules_text(rules: &KeyIpRules) -> Result<String> {
    serde_json::to_string(&rules.to_doc()).map_err(|e| RegistryError::Internal(e.to_string()))
}

fn view(row: api_key::Model) -> ApiKey {
    ApiKey {
        ip_rules: rules_of(&row.ip_rules),
        id: row.id,
        profile_id: row.profile_id,
        name: row.name,
        active: row.active,
        expires_at: row.expires_at,
        prefix: row.prefix,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
    }
}

impl Registry {
    async fn token_profile<C: ConnectionTrait>(
        &self,
        conn: &C,
        profile_id: &str,
    ) -> Result<access_profile::Model> {
        let profile = self.profile_row(conn, profile_id).await?;
        if profile.auth_type != AuthType::Token.as_str() {
            return Err(RegistryError::invalid(
                "auth_type",
                "not_supported",
                "API keys belong to profiles with auth_type `token`",
            ));
        }
        Ok(profile)
    }

    /// Insert a key for a `token` profile (within the caller's transaction), enforcing the
    /// per-profile limit. Returns the row and the key's value.
    pub(crate) async fn insert_api_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        profile_id: &str,
        valid: &NewApiKey,
    ) -> Result<(api_key::Model, crate::secret::SecretString)> {
        let count = api_key::Entity::find()
            .filter(api_key::Column::ProfileId.eq(profile_id))
            .count(conn)
            .await?;
        let max = u64::from(self.inner.settings.max_api_keys_per_profile);
        if count >= max {
            return Err(RegistryError::invalid(
                "profile_id",
                "limit_reached",
                format!(
                    "a profile holds at most {max} API keys (GATEHOUSE_MAX_API_KEYS_PER_PROFILE)"
                ),
            ));
        }
        let value = api_key_format::generate();
        let now = self.now();
        let row = api_key::ActiveModel {
            id: Set(new_id(IdKind::ApiKey)),
            profile_id: Set(profile_id.to_owned()),
            name: Set(valid.name.as_str().to_owned()),
            active: Set(valid.active),
            expires_at: Set(valid.expires_at),
            ip_rules: Set(rules_text(&valid.ip_rules)?),
            prefix: Set(api_key_format::display_prefix(value.expose_secret())),
            digest: Set(api_key_format::digest(value.expose_secret())),
            previous_digest: Set(None),
            previous_expires_at: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            last_used_at: Set(None),
        }
        .insert(conn)
        .await?;
        Ok((row, value))
    }

    /// Create an API key; the answer carries its value, once.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        profile_id: &str,
        input: NewApiKey,
    ) -> Result<ApiKeyIssued> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        let (_, project) = self.visible_profile(&txn, actor, profile_id).await?;
        self.token_profile(&txn, profile_id).await?;
        let (row, value) = self.insert_api_key(&txn, profile_id, &input).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "api_key.create",
            "api_key",
            &row.id,
            serde_json::json!({"profile_id": profile_id, "name": row.name, "prefix": row.prefix}),
        )
        .await?;
        txn.commit().await?;
        Ok(ApiKeyIssued {
            key: view(row),
            auth_token: value.expose_secret().to_owned(),
            previous_token_expires_at: None,
        })
    }

    async fn api_key_row<C: ConnectionTrait>(&self, conn: &C, id: &str) -> Result<api_key::Model> {
        api_key::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .ok_or(RegistryError::NotFound("API key"))
    }

    /// A key this actor may see (its profile's client is in the actor's projects), with
    /// that project; otherwise "not found".
    async fn visible_api_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        id: &str,
    ) -> Result<(api_key::Model, Option<String>)> {
        let row = self.api_key_row(conn, id).await?;
        match self.visible_profile(conn, actor, &row.profile_id).await {
            Ok((_, project)) => Ok((row, project)),
            Err(RegistryError::NotFound(_)) => Err(RegistryError::NotFound("API key")),
            Err(other) => Err(other),
        }
    }

    /// One API key.
    pub async fn get_api_key(&self, actor: &Actor, id: &str) -> Result<ApiKey> {
        self.visible_api_key(&self.inner.db, actor, id)
            .await
            .map(|(row, _)| self.with_pending_use(view(row)))
    }

    /// A key as the admin API shows it: a use this instance has not written yet counts.
    fn with_pending_use(&self, mut key: ApiKey) -> ApiKey {
        let pending = match self.inner.key_use_pending.lock() {
            Ok(p) => p.get(&key.id).copied(),
            Err(p) => p.into_inner().get(&key.id).copied(),
        };
        if let Some(at) = pending.and_then(|at| DateTime::<Utc>::from_timestamp(at, 0))
            && key.last_used_at.is_none_or(|stored| stored < at)
        {
            key.last_used_at = Some(at);
        }
        key
    }

    /// A page of a profile's API keys.
    pub async fn list_api_keys(
        &self,
        actor: &Actor,
        profile_id: &str,
        params: &ListParams,
    ) -> Result<Page<ApiKey>> {
        self.visible_profile(&self.inner.db, actor, profile_id)
            .await?;
        let limit = params.limit();
        let mut q = api_key::Entity::find()
            .filter(api_key::Column::ProfileId.eq(profile_id))
            .order_by_asc(api_key::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            q = q.filter(api_key::Column::Id.gt(after));
        }
        let rows = q.limit(limit + 1).all(&self.inner.db).await?;
        Ok(page(
            rows,
            limit,
            |r| r.id.clone(),
            |r| self.with_pending_use(view(r)),
        ))
    }

    /// Change an API key (name, active, expires_at, ip_rules).
    pub async fn update_api_key(
        &self,
        actor: &Actor,
        id: &str,
        patch: ApiKeyPatch,
    ) -> Result<ApiKey> {
        actor.require_write()?;
        let changed = patch.fields();
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_api_key(&txn, actor, id).await?;
        let mut rules = stored_rules(&row.ip_rules)?;
        if let Some(allow) = patch.allow {
            rules.allow = allow;
        }
        if let Some(deny) = patch.deny {
            rules.deny = deny;
        }
        let mut active: api_key::ActiveModel = row.into();
        if let Some(name) = patch.name {
            active.name = Set(name.as_str().to_owned());
        }
        if let Some(on) = patch.active {
            active.active = Set(on);
        }
        if let Some(expires_at) = patch.expires_at {
            active.expires_at = Set(expires_at);
        }
        active.ip_rules = Set(rules_text(&rules)?);
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "api_key.update",
            "api_key",
            id,
            serde_json::json!({"fields": changed, "active": row.active}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(view(row))
    }

    /// Delete an API key.
    pub async fn delete_api_key(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_api_key(&txn, actor, id).await?;
        api_key::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "api_key.delete",
            "api_key",
            id,
            serde_json::json!({"profile_id": row.profile_id, "prefix": row.prefix}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }

    /// Give a key a new value (same id); the old value lives on for `grace_seconds`.
    pub async fn refresh_api_key(
        &self,
        actor: &Actor,
        id: &str,
        grace_seconds: Option<i64>,
    ) -> Result<ApiKeyIssued> {
        actor.require_write()?;
        let grace = super::auth::grace_seconds(grace_seconds)?;
        let txn = self.inner.db.begin().await?;
        let (row, project) = self.visible_api_key(&txn, actor, id).await?;
        let value = api_key_format::generate();
        let now = self.now();
        let previous_until = (grace > 0).then(|| now + Duration::seconds(grace));
        let mut active: api_key::ActiveModel = row.clone().into();
        active.previous_digest = Set(previous_until.map(|_| row.digest.clone()));
        active.previous_expires_at = Set(previous_until);
        active.digest = Set(api_key_format::digest(value.expose_secret()));
        active.prefix = Set(api_key_format::display_prefix(value.expose_secret()));
        active.updated_at = Set(now);
        let row = active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "api_key.refresh",
            "api_key",
            id,
            serde_json::json!({"grace_seconds": grace, "prefix": row.prefix}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(ApiKeyIssued {
            key: view(row),
            auth_token: value.expose_secret().to_owned(),
            previous_token_expires_at: previous_until,
        })
    }

    /// Deactivate a key (RFC 7009 revocation of an API key).
    pub async fn revoke_api_key(&self, actor: &str, id: &str) -> Result<()> {
        let txn = self.inner.db.begin().await?;
        let row = self.api_key_row(&txn, id).await?;
        if row.active {
            let mut active: api_key::ActiveModel = row.into();
            active.active = Set(false);
            active.updated_at = Set(self.now());
            active.update(&txn).await?;
            self.audit(
                &txn,
                &Actor::service(actor),
                "api_key.revoke",
                "api_key",
                id,
                serde_json::json!({}),
            )
            .await?;
        }
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }

    /// The key a presented value belongs to. A malformed value is refused before any lookup;
    /// a known one is served from the cache (by digest).
    pub async fn api_key_by_value(&self, value: &str) -> Result<Option<Arc<ApiKeySnapshot>>> {
        if !api_key_format::is_well_formed(value) {
            return Ok(None);
        }
        let digest = api_key_format::digest(value);
        self.inner
            .api_keys
            .get_or_load(digest.as_str(), || self.load_api_key(&digest))
            .await
    }

    async fn load_api_key(&self, digest: &str) -> Result<Option<Arc<ApiKeySnapshot>>> {
        let db = &self.inner.db;
        let row = api_key::Entity::find()
            .filter(
                Condition::any()
                    .add(api_key::Column::Digest.eq(digest))
                    .add(api_key::Column::PreviousDigest.eq(digest)),
            )
            .one(db)
            .await?;
        let snapshot = match row {
            None => None,
            Some(row) => {
                let Some(profile) = access_profile::Entity::find_by_id(row.profile_id.clone())
                    .one(db)
                    .await?
                else {
                    return Ok(None);
                };
                let rules = rules_of(&row.ip_rules);
                let parse =
                    |list: &[String]| list.iter().filter_map(|r| IpRule::parse(r).ok()).collect();
                Some(Arc::new(ApiKeySnapshot {
                    grace_until: if row.digest == digest {
                        None
                    } else {
                        Some(row.previous_expires_at.unwrap_or(row.updated_at))
                    },
                    id: row.id,
                    oauth_client_id: profile.oauth_client_id,
                    profile_id: profile.id,
                    active: row.active,
                    expires_at: row.expires_at,
                    created_at: row.created_at,
                    allow: parse(&rules.allow),
                    deny: parse(&rules.deny),
                }))
            }
        };
        Ok(snapshot)
    }

    /// Record a successful use, lazily: at most once per key per minute, and only in memory;
    /// [`Registry::flush_key_use`] writes the batch with the other counters. (One `UPDATE`
    /// per key, each with its WAL flush, held pool connections and capped a run over a
    /// million keys at a few hundred requests a second.)
    pub fn touch_api_key(&self, id: &str) {
        let now = self.now().timestamp();
        if self
            .inner
            .key_last_used
            .get(id)
            .is_some_and(|last| now - last < 60)
        {
            return;
        }
        self.inner.key_last_used.insert(id.to_owned(), now);
        let mut pending = match self.inner.key_use_pending.lock() {
            Ok(p) => p,
            Err(p) => p.into_inner(),
        };
        // Bounded: past the cap a use is dropped (the next one, a minute on, records it).
        if pending.len() < MAX_PENDING_KEY_USES {
            pending.insert(id.to_owned(), now);
        }
    }

    /// Write the `last_used_at` of keys used since the last flush: one `UPDATE … WHERE id IN
    /// (…)` per second of use and per 500 keys. On failure the batch is kept for the next try.
    pub async fn flush_key_use(&self) -> std::result::Result<(), sea_orm::DbErr> {
        let batch: std::collections::HashMap<String, i64> = {
            let mut pending = match self.inner.key_use_pending.lock() {
                Ok(p) => p,
                Err(p) => p.into_inner(),
            };
            std::mem::take(&mut *pending)
        };
        if batch.is_empty() {
            return Ok(());
        }
        let mut by_second: std::collections::BTreeMap<i64, Vec<&str>> = Default::default();
        for (id, at) in &batch {
            by_second.entry(*at).or_default().push(id);
        }
        for (at, ids) in &by_second {
            let Some(when) = DateTime::<Utc>::from_timestamp(*at, 0) else {
                continue;
            };
            for chunk in ids.chunks(500) {
                let result = api_key::Entity::update_many()
                    .col_expr(
                        api_key::Column::LastUsedAt,
                        sea_orm::sea_query::Expr::value(when),
                    )
                    .filter(api_key::Column::Id.is_in(chunk.iter().copied()))
                    .exec(&self.inner.db)
                    .await;
                if let Err(e) = result {
                    let mut pending = match self.inner.key_use_pending.lock() {
                        Ok(p) => p,
                        Err(p) => p.into_inner(),
                    };
                    for (id, at) in batch {
                        if pending.len() < MAX_PENDING_KEY_USES {
                            pending.entry(id).or_insert(at);
                        }
                    }
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// Most key uses waiting for the next flush.
const MAX_PENDING_KEY_USES: usize = 200_000;
