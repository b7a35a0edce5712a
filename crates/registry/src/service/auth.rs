//! Credential checks on the hot path: profile snapshots cached in memory, argon2id only on a
//! cache miss, and a verified-secret cache so repeat authentications cost microseconds.

use super::Registry;
use crate::entity::{access_profile, client, client_secret, collection, revoked_token};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::secret::{HashError, sha256};
use crate::types::{AuthType, IpRules};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TransactionTrait,
};
use std::net::IpAddr;
use std::sync::Arc;

/// Longest grace period a rotated secret may keep (30 days).
pub const MAX_GRACE_SECONDS: i64 = 30 * 86_400;

/// Check a rotation's `grace_seconds` (default 0) against 0..=30 days.
pub(crate) fn grace_seconds(value: Option<i64>) -> Result<i64> {
    let grace = value.unwrap_or(0);
    if !(0..=MAX_GRACE_SECONDS).contains(&grace) {
        return Err(RegistryError::invalid(
            "grace_seconds",
            "out_of_range",
            format!("must be between 0 and {MAX_GRACE_SECONDS}"),
        ));
    }
    Ok(grace)
}

/// A collection as granted to one profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantedCollection {
    /// `col_…`
    pub id: String,
    /// The collection's audience.
    pub audience: String,
    /// Where consumers call it.
    pub integration_url: Option<String>,
    /// Its documentation.
    pub documentation_url: Option<String>,
    /// The scopes of this collection the profile may obtain.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone)]
struct SecretRecord {
    id: String,
    hash: String,
    expires_at: Option<DateTime<Utc>>,
}

/// Everything the token endpoint needs about one profile, loaded once and cached.
#[derive(Debug, Clone)]
pub struct ProfileSnapshot {
    /// `prf_…`
    pub profile_id: String,
    /// `cli_…`
    pub client_id: String,
    /// The client's display name.
    pub client_name: String,
    /// The client's project (`prj_…`), if any.
    pub client_project: Option<String>,
    /// `gco_…`
    pub oauth_client_id: String,
    /// Authentication method.
    pub auth_type: AuthType,
    /// The profile's own switch.
    pub profile_active: bool,
    /// The client's switch.
    pub client_active: bool,
    /// Where the profile may be used from.
    pub ip_rules: IpRules,
    /// Access token lifetime.
    pub token_ttl_seconds: i64,
    /// Extra claims for access tokens.
    pub custom_claims: serde_json::Map<String, serde_json::Value>,
    /// Granted collections and scopes.
    pub grants: Vec<GrantedCollection>,
    /// `jwt` profiles: verification material and claim rules.
    pub jwt: Option<Arc<super::JwtRules>>,
    /// The attached policy's limits.
    pub policy: Option<super::PolicySnapshot>,
    /// Admin profiles limited to projects: their `prj_…` ids (`None`: every project).
    pub admin_projects: Option<Arc<[String]>>,
    secrets: Vec<SecretRecord>,
}

impl ProfileSnapshot {
    /// Both the profile and its client are switched on.
    pub fn is_active(&self) -> bool {
        self.profile_active && self.client_active
    }

    /// The profile's IP rules accept this address.
    pub fn allows_ip(&self, addr: IpAddr) -> bool {
        self.ip_rules.allows(addr)
    }

    /// Whether the profile restricts addresses at all (then introspection needs `client_ip`).
    pub fn has_ip_rules(&self) -> bool {
        !self.ip_rules.is_unrestricted()
    }
}

/// A collection as a resource server sees itself: its audience and introspection secrets.
#[derive(Debug, Clone)]
pub struct CollectionSnapshot {
    /// `col_…`
    pub id: String,
    /// The collection's audience.
    pub audience: String,
    /// The built-in admin collection (never authenticates as a resource server).
    pub builtin: bool,
    secrets: Vec<SecretRecord>,
}

fn unavailable(e: RegistryError) -> AuthFailure {
    if !matches!(e, RegistryError::Unavailable(_)) {
        tracing::error!(error = %e, "loading credentials failed");
    }
    AuthFailure::Unavailable
}

/// Why a credential check failed. Callers answer every variant but `Unavailable` the same way
/// (`invalid_client`), so an attacker learns nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthFailure {
    /// Unknown client, wrong secret or expired secret.
    #[error("invalid client credentials")]
    InvalidCredentials,
    /// Too many failed attempts from this address (for this client id): retry after this
    /// many seconds. No argon2 ran.
    #[error("too many failed attempts")]
    Throttled {
        /// Seconds to wait.
        retry_after: u64,
    },
    /// The database or the hashing pool is unavailable.
    #[error("credential store unavailable")]
    Unavailable,
    /// Every argon2 worker is busy and the waiting room is full: refused at once, without
    /// hashing; retry shortly (503 `temporarily_unavailable` with `Retry-After`).
    #[error("too many credential checks waiting")]
    Busy,
}

impl Registry {
    /// The snapshot of the profile with this public client id, from cache or database.
    pub async fn profile_by_client_id(
        &self,
        oauth_client_id: &str,
    ) -> Result<Option<Arc<ProfileSnapshot>>> {
        if !crate::error::storable(oauth_client_id) {
            return Ok(None);
        }
        self.inner
            .snapshots
            .get_or_load(oauth_client_id, || async {
                Ok(self.load_snapshot(oauth_client_id).await?.map(Arc::new))
            })
            .await
    }

    async fn load_snapshot(&self, oauth_client_id: &str) -> Result<Option<ProfileSnapshot>> {
        let db = &self.inner.db;
        let Some(profile) = access_profile::Entity::find()
            .filter(access_profile::Column::OauthClientId.eq(oauth_client_id))
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let Some(owner) = client::Entity::find_by_id(profile.client_id.clone())
            .one(db)
            .await?
        else {
            return Ok(None);
        };
        let links = self
            .links_of(db, std::slice::from_ref(&profile.id))
            .await?
            .remove(&profile.id)
            .unwrap_or_default();
        let subset: Option<Vec<String>> = profile
            .scopes
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok());
        let grants = self
            .grants(db, &links, profile.all_collections, subset.as_deref())
            .await?;
        let secrets = self.secret_records(&profile.id).await?;
        // Stored rules were validated on write; a row that no longer parses denies everything.
        let ip_rules = IpRules::from_stored(&profile.ip_rules)
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let auth_type =
            AuthType::parse(&profile.auth_type).map_err(|e| RegistryError::Internal(e.message))?;
        let custom_claims = serde_json::from_str(&profile.custom_claims).unwrap_or_default();
        let jwt = if matches!(auth_type, AuthType::Jwt | AuthType::Oidc) {
            self.jwt_rules(&profile.id, &profile.settings, self.now())?
                .map(Arc::new)
        } else {
            None
        };
        let policy = match &profile.policy_id {
            Some(id) => self.policy_snapshot(db, id).await?,
            None => None,
        };
        Ok(Some(ProfileSnapshot {
            policy,
            profile_id: profile.id,
            client_id: owner.id,
            client_name: owner.name,
            client_project: owner.project,
            oauth_client_id: profile.oauth_client_id,
            auth_type,
            profile_active: profile.active,
            client_active: owner.active,
            ip_rules,
            token_ttl_seconds: profile.token_ttl_seconds,
            custom_claims,
            grants,
            jwt,
            secrets,
            admin_projects: profile
                .admin_projects
                .as_deref()
                .and_then(|text| serde_json::from_str::<Vec<String>>(text).ok())
                .map(Arc::from),
        }))
    }

    /// Check a profile's client secret. argon2id runs only when this (client, secret) pair has
    /// not been verified before; an unknown client is checked against a dummy hash so timing
    /// reveals nothing. Whether the profile is active or IP-limited is for the caller to decide
    /// after this succeeds, so those refusals cannot be told apart from a wrong secret.
    pub async fn authenticate_secret(
        &self,
        oauth_client_id: &str,
        secret: &str,
        peer: Option<IpAddr>,
    ) -> std::result::Result<Arc<ProfileSnapshot>, AuthFailure> {
        if oauth_client_id.len() > 128 || secret.len() > 512 || secret.is_empty() {
            return Err(AuthFailure::InvalidCredentials);
        }
        self.check_secret(
            b"profile-secret",
            oauth_client_id,
            secret,
            peer,
            || self.profile_by_client_id(oauth_client_id),
            |p| Some(p.secrets.as_slice()),
        )
        .await
    }

    /// Authenticate a profile's client by id and secret, the one sequence the token endpoint
    /// and the admin console share: the failure budgets first (throttled → no work), then the
    /// secret, then the profile (and its client) must be switched on and its IP rules must
    /// admit `peer`. Every refusal but [`AuthFailure::Throttled`], [`AuthFailure::Busy`] and
    /// [`AuthFailure::Unavailable`] is [`AuthFailure::InvalidCredentials`], so a caller cannot
    /// tell an inactive or address-limited profile from a wrong secret.
    pub async fn authenticate_client_secret(
        &self,
        oauth_client_id: &str,
        secret: &str,
        peer: Option<IpAddr>,
    ) -> std::result::Result<Arc<ProfileSnapshot>, AuthFailure> {
        let profile = self
            .authenticate_secret(oauth_client_id, secret, peer)
            .await?;
        if !profile.is_active() || peer.is_some_and(|ip| !profile.allows_ip(ip)) {
            return Err(AuthFailure::InvalidCredentials);
        }
        Ok(profile)
    }

    /// Check a collection's introspection credentials, with the same caching and timing
    /// rules as [`Registry::authenticate_secret`].
    pub async fn authenticate_collection(
        &self,
        introspection_client_id: &str,
        secret: &str,
        peer: Option<IpAddr>,
    ) -> std::result::Result<Arc<CollectionSnapshot>, AuthFailure> {
        if introspection_client_id.len() > 128 || secret.len() > 512 || secret.is_empty() {
            return Err(AuthFailure::InvalidCredentials);
        }
        self.check_secret(
            b"collection-secret",
            introspection_client_id,
            secret,
            peer,
            || self.collection_by_client_id(introspection_client_id),
            // The built-in admin collection never authenticates as a resource server.
            |c| (!c.builtin).then_some(c.secrets.as_slice()),
        )
        .await
    }

    /// The shared core, cheapest first:
    /// 1. a verified-cache hit (memory), confirmed live against the owner's snapshot: never
    ///    throttled;
    /// 2. else, before anything is looked up, the failure budgets of this address (for this
    ///    id, and at all): past them 429, so a caller that spent its budget costs no query and
    ///    no cache entry;
    /// 3. else the owner is looked up and argon2id runs against its live hashes, or (unknown
    ///    owner) against the dummy hash.
    async fn check_secret<T, Fut>(
        &self,
        kind: &[u8],
        id: &str,
        secret: &str,
        peer: Option<IpAddr>,
        lookup: impl Fn() -> Fut,
        records: impl Fn(&T) -> Option<&[SecretRecord]>,
    ) -> std::result::Result<Arc<T>, AuthFailure>
    where
        Fut: std::future::Future<Output = Result<Option<Arc<T>>>>,
    {
        use crate::metrics::METRICS;
        let hasher = &self.inner.hasher;
        let now = self.now();
        let live = |r: &&SecretRecord| r.expires_at.is_none_or(|e| e > now);
        let key = sha256(&[kind, id.as_bytes(), secret.as_bytes()]);
        let mut found = None;
        if let Some(secret_id) = self.inner.verified.get(&key) {
            let owner = lookup().await.map_err(unavailable)?;
            if let Some(owner) = &owner
                && records(owner).is_some_and(|r| r.iter().filter(live).any(|r| r.id == secret_id))
            {
                METRICS.cache_verified_secrets.record(true);
                return Ok(owner.clone());
            }
            self.inner.verified.remove(&key);
            found = Some(owner);
        }
        METRICS.cache_verified_secrets.record(false);
        let throttle = self.inner.limiter.throttle();
        let now_us = self.inner.limiter.monotonic_micros();
        if let Some(ip) = peer
            && let Some(retry_after) = throttle.check(id, ip, now_us)
        {
            METRICS.auth_throttled.inc();
            return Err(AuthFailure::Throttled { retry_after });
        }
        let owner = match found {
            Some(owner) => owner,
            None => lookup().await.map_err(unavailable)?,
        };
        let failed = || {
            METRICS.auth_failures.inc();
            if let Some(ip) = peer {
                throttle.failed(id, ip, self.inner.limiter.monotonic_micros());
            }
            AuthFailure::InvalidCredentials
        };
        METRICS.argon2_verifications.inc();
        let busy = |e: HashError| match e {
            HashError::Busy => AuthFailure::Busy,
            _ => AuthFailure::Unavailable,
        };
        let Some((owner, records)) = owner.as_ref().and_then(|o| Some((o, records(o)?))) else {
            if let Err(HashError::Busy) = hasher.verify_any(secret, Vec::new()).await {
                return Err(AuthFailure::Busy);
            }
            return Err(failed());
        };
        let candidates: Vec<&SecretRecord> = records.iter().filter(live).collect();
        let hashes = candidates.iter().map(|s| s.hash.clone()).collect();
        match hasher.verify_any(secret, hashes).await {
            Ok(Some(i)) => {
                if let Some(record) = candidates.get(i) {
                    self.inner.verified.insert(key, record.id.clone());
                }
                Ok(owner.clone())
            }
            Ok(None) => Err(failed()),
            Err(e) => Err(busy(e)),
        }
    }

    /// Seconds this address must wait before another credential check for `id` (or for
    /// anything), when it has spent its failure budget; checked before any work.
    pub fn auth_throttled(&self, id: &str, peer: IpAddr) -> Option<u64> {
        let now_us = self.inner.limiter.monotonic_micros();
        let retry = self.inner.limiter.throttle().check(id, peer, now_us);
        if retry.is_some() {
            crate::metrics::METRICS.auth_throttled.inc();
        }
        retry
    }

    /// Seconds this address must wait before any credential check, when it has spent its
    /// failure budget across all client ids: for attempts whose client id is not known yet
    /// (a JWT-bearer grant is matched to a profile by its claims), checked before the lookup.
    pub fn auth_throttled_address(&self, peer: IpAddr) -> Option<u64> {
        let now_us = self.inner.limiter.monotonic_micros();
        let retry = self.inner.limiter.throttle().check_address(peer, now_us);
        if retry.is_some() {
            crate::metrics::METRICS.auth_throttled.inc();
        }
        retry
    }

    /// Spend one failure of the (`id`, address) and the per-address budgets: a refused
    /// assertion, like a wrong secret.
    pub fn auth_failed(&self, id: &str, peer: IpAddr) {
        crate::metrics::METRICS.auth_failures.inc();
        let now_us = self.inner.limiter.monotonic_micros();
        self.inner.limiter.throttle().failed(id, peer, now_us);
    }

    /// The snapshot of the collection with this introspection client id.
    pub async fn collection_by_client_id(
        &self,
        introspection_client_id: &str,
    ) -> Result<Option<Arc<CollectionSnapshot>>> {
        if !crate::error::storable(introspection_client_id) {
            return Ok(None);
        }
        self.inner
            .collections
            .get_or_load(introspection_client_id, || {
                self.load_collection(introspection_client_id)
            })
            .await
    }

    async fn load_collection(
        &self,
        introspection_client_id: &str,
    ) -> Result<Option<Arc<CollectionSnapshot>>> {
        let db = &self.inner.db;
        let loaded = match collection::Entity::find()
            .filter(collection::Column::IntrospectionClientId.eq(introspection_client_id))
            .one(db)
            .await?
        {
            None => None,
            Some(row) => {
                let secrets = self.secret_records(&row.id).await?;
                Some(Arc::new(CollectionSnapshot {
                    id: row.id,
                    audience: row.audience,
                    builtin: row.builtin,
                    secrets,
                }))
            }
        };
        Ok(loaded)
    }

    async fn secret_records(&self, owner_id: &str) -> Result<Vec<SecretRecord>> {
        Ok(client_secret::Entity::find()
            .filter(client_secret::Column::OwnerId.eq(owner_id))
            .all(&self.inner.db)
            .await?
            .into_iter()
            .map(|s| SecretRecord {
                id: s.id,
                hash: s.secret_hash,
                expires_at: s.expires_at,
            })
            .collect())
    }

    /// Whether an access token's `jti` was revoked (cached; one lookup per new `jti`).
    pub async fn is_revoked(&self, jti: &str) -> Result<bool> {
        if !crate::error::storable(jti) {
            return Ok(false);
        }
        self.inner
            .revocations
            .get_or_load(jti, || async {
                Ok(revoked_token::Entity::find_by_id(jti.to_owned())
                    .one(&self.inner.db)
                    .await?
                    .is_some())
            })
            .await
    }

    /// Revoke an access token until its expiry (RFC 7009). Idempotent.
    pub async fn revoke_token(
        &self,
        actor: &str,
        jti: &str,
        profile_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let txn = self.inner.db.begin().await?;
        if revoked_token::Entity::find_by_id(jti.to_owned())
            .one(&txn)
            .await?
            .is_none()
        {
            revoked_token::ActiveModel {
                jti: Set(jti.to_owned()),
                profile_id: Set(profile_id.to_owned()),
                expires_at: Set(expires_at),
                revoked_at: Set(self.now()),
                revoked_by: Set(actor.to_owned()),
            }
            .insert(&txn)
            .await?;
            self.audit(
                &txn,
                &super::Actor::service(actor),
                "token.revoke",
                "access_token",
                jti,
                serde_json::json!({"profile_id": profile_id}),
            )
            .await?;
        }
        txn.commit().await?;
        self.inner.revocations.insert(jti.to_owned(), true);
        self.publish_change(super::Change::Registry);
        Ok(())
    }

    pub(crate) async fn insert_secret<C: ConnectionTrait>(
        &self,
        conn: &C,
        owner_id: &str,
        hash: String,
    ) -> Result<()> {
        client_secret::ActiveModel {
            id: Set(new_id(IdKind::Secret)),
            owner_id: Set(owner_id.to_owned()),
            secret_hash: Set(hash),
            created_at: Set(self.now()),
            expires_at: Set(None),
        }
        .insert(conn)
        .await?;
        Ok(())
    }

    /// Replace an owner's secret: the old ones expire after `grace_seconds` (or at once).
    /// Returns when the old ones stop working, if they live on.
    pub(crate) async fn rotate_secret<C: ConnectionTrait>(
        &self,
        conn: &C,
        owner_id: &str,
        hash: String,
        grace_seconds: Option<i64>,
    ) -> Result<Option<DateTime<Utc>>> {
        let grace = self::grace_seconds(grace_seconds)?;
        let now = self.now();
        let previous = if grace == 0 {
            self.delete_secrets(conn, owner_id).await?;
            None
        } else {
            let until = now + Duration::seconds(grace);
            let existing = client_secret::Entity::find()
                .filter(client_secret::Column::OwnerId.eq(owner_id))
                .all(conn)
                .await?;
            for row in existing {
                let keep_until = row.expires_at.map_or(until, |e| e.min(until));
                if keep_until <= now {
                    client_secret::Entity::delete_by_id(row.id)
                        .exec(conn)
                        .await?;
                    continue;
                }
                let mut active: client_secret::ActiveModel = row.into();
                active.expires_at = Set(Some(keep_until));
                active.update(conn).await?;
            }
            Some(until)
        };
        self.insert_secret(conn, owner_id, hash).await?;
        Ok(previous)
    }

    pub(crate) async fn delete_secrets<C: ConnectionTrait>(
        &self,
        conn: &C,
        owner_id: &str,
    ) -> Result<()> {
        client_secret::Entity::delete_many()
            .filter(client_secret::Column::OwnerId.eq(owner_id))
            .exec(conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::PasswordHasher;
    use crate::{Actor, RegistrySettings};
    use sea_orm::ConnectionTrait;

    async fn registry(profile_cache: usize) -> Registry {
        let db = crate::connect("sqlite::memory:").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let (master, _) = gatehouse_jwks::MasterKey::generate();
        let mut settings = RegistrySettings::new("http://127.0.0.1:8080", "http://127.0.0.1:8081");
        settings.profile_cache_capacity = profile_cache;
        let cheap = argon2::Params::new(256, 1, 1, None).unwrap();
        Registry::new(
            db,
            Arc::new(crate::clock::SystemClock),
            PasswordHasher::with_params(cheap, 1).unwrap(),
            settings,
            Arc::new(master),
        )
    }

    /// Once an address has spent its failure budget, a random client id from it is refused
    /// (429) before any lookup: with the profile table gone, it is still a 429 and not a
    /// database error. A caller whose secret is verified is still served from the cache.
    #[tokio::test]
    async fn a_spent_budget_is_checked_before_any_lookup() {
        let registry = registry(100).await;
        let actor = Actor::system();
        let client = registry
            .create_client(
                &actor,
                crate::command::NewClient::system(crate::types::Name::parse("ACME").unwrap()),
            )
            .await
            .unwrap();
        let created = registry
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile {
                    all_collections: true,
                    ..crate::command::NewProfile::new(
                        crate::types::Name::parse("batch").unwrap(),
                        crate::types::AuthType::OAuth2,
                        Vec::new(),
                    )
                },
            )
            .await
            .unwrap();
        let (id, secret) = (
            created.profile.oauth_client_id.clone(),
            created.oauth_client_secret.clone().unwrap(),
        );
        let attacker: IpAddr = "203.0.113.5".parse().unwrap();
        registry
            .authenticate_secret(&id, &secret, Some(attacker))
            .await
            .unwrap();
        for i in 0..crate::limits::FAILURES_PER_IP {
            let got = registry
                .authenticate_secret(&format!("gco_random{i}"), "wrong", Some(attacker))
                .await;
            assert_eq!(got.err(), Some(AuthFailure::InvalidCredentials), "{i}");
        }
        registry
            .db()
            .execute_unprepared("ALTER TABLE access_profiles RENAME TO away")
            .await
            .unwrap();
        registry.clear_caches();
        let got = registry
            .authenticate_secret("gco_random_more", "wrong", Some(attacker))
            .await;
        assert!(
            matches!(got, Err(AuthFailure::Throttled { .. })),
            "refused before the lookup: {got:?}"
        );
        // Another address does look up (and finds the database broken).
        let other: IpAddr = "203.0.113.6".parse().unwrap();
        let got = registry
            .authenticate_secret("gco_random_more", "wrong", Some(other))
            .await;
        assert_eq!(got.err(), Some(AuthFailure::Unavailable));
        registry
            .db()
            .execute_unprepared("ALTER TABLE away RENAME TO access_profiles")
            .await
            .unwrap();
        // The verified caller is not throttled at the spent address.
        let p = registry
            .authenticate_secret(&id, &secret, Some(attacker))
            .await
            .unwrap();
        assert_eq!(p.oauth_client_id, id);
    }

    /// Unknown client ids are remembered apart: a thousand of them leave the cached
    /// snapshot of a real client in the (here tiny) profile cache.
    #[tokio::test]
    async fn unknown_ids_do_not_evict_real_profiles() {
        let registry = registry(16).await;
        let actor = Actor::system();
        let client = registry
            .create_client(
                &actor,
                crate::command::NewClient::system(crate::types::Name::parse("ACME").unwrap()),
            )
            .await
            .unwrap();
        let created = registry
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile {
                    all_collections: true,
                    ..crate::command::NewProfile::new(
                        crate::types::Name::parse("batch").unwrap(),
                        crate::types::AuthType::OAuth2,
                        Vec::new(),
                    )
                },
            )
            .await
            .unwrap();
        let id = created.profile.oauth_client_id.clone();
        assert!(registry.profile_by_client_id(&id).await.unwrap().is_some());
        for i in 0..1000 {
            let got = registry
                .profile_by_client_id(&format!("gco_random{i}"))
                .await
                .unwrap();
            assert!(got.is_none());
        }
        assert_eq!(registry.inner.snapshots.main_len(), 1);
        assert!(
            registry.inner.snapshots.get(id.as_str()).is_some(),
            "the real profile is still cached"
        );
    }
}
