//! The registry service: CRUD over collections, clients and profiles, credential checks, and
//! the caches that keep the hot path off the database.

mod api_keys;
mod audit;
mod auth;
mod bootstrap;
mod clients;
mod collections;
mod jwt;
mod keys;
mod policies;
mod profiles;
mod projects;
mod sessions;
mod sweep;
mod ttl_cache;

pub use api_keys::ApiKeySnapshot;
pub use auth::{AuthFailure, CollectionSnapshot, GrantedCollection, ProfileSnapshot};
pub use bootstrap::{BootstrapCredentials, BootstrapOutcome};
pub use jwt::{JwtKeys, JwtRules};
pub use keys::{ResealReport, StoredKey};
pub use policies::PolicySnapshot;
pub use sessions::{ConsoleSession, NewConsoleSession, SESSION_ABSOLUTE, SESSION_IDLE};
pub use sweep::SweepReport;

use crate::clock::Clock;
use crate::secret::PasswordHasher;
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use ttl_cache::TtlCache;

/// The PostgreSQL `NOTIFY` channel instances use to tell each other about changes.
pub const CHANGE_CHANNEL: &str = "gatehouse_changes";

/// What changed, as sent on [`CHANGE_CHANNEL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Profiles, clients, collections, keys of consumers, policies, revocations: clear the
    /// registry caches.
    Registry,
    /// Signing keys: reload the key set.
    Keys,
}

impl Change {
    /// The payload.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Registry => "registry",
            Change::Keys => "keys",
        }
    }

    /// Parse a payload (unknown payloads are treated as `Registry`).
    pub fn parse(payload: &str) -> Self {
        if payload == "keys" {
            Change::Keys
        } else {
            Change::Registry
        }
    }
}

/// Which clients an admin may see and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminScope {
    /// Every client; collections, policies and projects are writable too.
    All,
    /// Only the clients of these projects (`prj_…`) and what hangs under them; collections,
    /// policies and projects are read-only.
    Projects(Arc<[String]>),
}

/// Who performs a registry change, and what they may touch: the audit log's `actor`, the
/// admin's rights (read or write) and project scope. Every registry read and write that an
/// admin can reach takes one, and the registry, not the front end, enforces it.
#[derive(Debug, Clone)]
pub struct Actor {
    id: String,
    write: bool,
    scope: AdminScope,
}

impl Actor {
    /// The server itself (bootstrap, migrations, sweeps).
    pub fn system() -> Self {
        Self::service("system")
    }

    /// The server acting for someone who is not an admin but was allowed this one change by
    /// the protocol (a client revoking its own token, the operator's `admin recover`
    /// command): full rights, named `id` in the audit log.
    pub fn service(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            write: true,
            scope: AdminScope::All,
        }
    }

    /// An admin with these rights and this scope (see [`crate::Registry::admin_session`]).
    pub fn admin(id: impl Into<String>, write: bool, scope: AdminScope) -> Self {
        Self {
            id: id.into(),
            write,
            scope,
        }
    }

    /// The id the audit log records (an admin's `oauth_client_id`, or `system`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether this actor may change anything (`gatehouse:admin`, not only `:read`).
    pub fn can_write(&self) -> bool {
        self.write
    }

    /// The clients this actor may see.
    pub fn scope(&self) -> &AdminScope {
        &self.scope
    }

    /// Whether this actor may see (and, with write rights, change) a client of `project`.
    pub fn sees_project(&self, project: Option<&str>) -> bool {
        match &self.scope {
            AdminScope::All => true,
            AdminScope::Projects(ids) => project.is_some_and(|p| ids.iter().any(|i| i == p)),
        }
    }

    /// Refuse a change when the actor may only read.
    pub fn require_write(&self) -> crate::error::Result<()> {
        if self.write {
            Ok(())
        } else {
            Err(crate::error::RegistryError::Forbidden(
                crate::error::Forbidden::ReadOnly,
            ))
        }
    }

    /// Refuse a change of something every admin shares (collections, policies, projects,
    /// signing keys) unless the actor is an unlimited writer.
    pub fn require_unlimited_write(&self) -> crate::error::Result<()> {
        self.require_write()?;
        match self.scope {
            AdminScope::All => Ok(()),
            AdminScope::Projects(_) => Err(crate::error::RegistryError::Forbidden(
                crate::error::Forbidden::ProjectLimited,
            )),
        }
    }
}

/// Most unknown-key answers each registry cache remembers, apart from its real entries.
const NEGATIVE_ENTRIES: usize = 4096;

/// Static settings the registry needs to describe connections and bound token lifetimes.
#[derive(Debug, Clone)]
pub struct RegistrySettings {
    /// The issuer, exactly as configured.
    pub issuer: String,
    /// The audience of the built-in admin collection (the admin base URL).
    pub admin_audience: String,
    /// Upper bound of any token lifetime, seconds.
    pub max_token_ttl: i64,
    /// Default token lifetime of a profile, seconds.
    pub default_token_ttl: i64,
    /// Bound of the profile snapshot cache (entries).
    pub profile_cache_capacity: usize,
    /// Bound of the verified-secret cache (entries).
    pub verified_cache_capacity: usize,
    /// Most API keys one profile may hold.
    pub max_api_keys_per_profile: u32,
    /// How long a cached registry entry may be used before it is reloaded (`None`: until the
    /// next write here). Several instances on one database need a bound.
    pub cache_ttl: Option<std::time::Duration>,
    /// Redis URL that shares rate limits and quotas between instances.
    pub redis_url: Option<String>,
    /// What limited requests get while Redis is unreachable.
    pub ratelimit_failure: crate::limits::FailureMode,
    /// Internal CIDRs and host names an `oidc_issuer` / `oidc_jwks_uri` may name
    /// (`GATEHOUSE_OUTBOUND_ALLOW`; empty: public https hosts only).
    pub outbound_allow: gatehouse_jwks::outbound::OutboundAllow,
    /// Failed authentications from IPv6 sources count per network of this many bits
    /// (`GATEHOUSE_THROTTLE_IPV6_PREFIX`; default 64).
    pub throttle_ipv6_prefix: u8,
}

impl RegistrySettings {
    /// Settings for an issuer with the documented defaults.
    pub fn new(issuer: impl Into<String>, admin_audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            admin_audience: admin_audience.into(),
            max_token_ttl: 86_400,
            default_token_ttl: 3_600,
            profile_cache_capacity: 100_000,
            verified_cache_capacity: 100_000,
            max_api_keys_per_profile: 20,
            cache_ttl: None,
            redis_url: None,
            ratelimit_failure: crate::limits::FailureMode::Open,
            outbound_allow: gatehouse_jwks::outbound::OutboundAllow::default(),
            throttle_ipv6_prefix: crate::limits::DEFAULT_IPV6_PREFIX,
        }
    }

    /// The URL of one of this server's endpoints (`path` under the issuer).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer.trim_end_matches('/'), path)
    }
}

pub(crate) struct Inner {
    pub(crate) db: DatabaseConnection,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) settings: RegistrySettings,
    pub(crate) snapshots: TtlCache<String, Option<Arc<ProfileSnapshot>>>,
    pub(crate) verified: quick_cache::sync::Cache<[u8; 32], String>,
    pub(crate) collections: TtlCache<String, Option<Arc<CollectionSnapshot>>>,
    pub(crate) revocations: TtlCache<String, bool>,
    pub(crate) api_keys: TtlCache<String, Option<Arc<ApiKeySnapshot>>>,
    pub(crate) key_last_used: quick_cache::sync::Cache<String, i64>,
    pub(crate) key_use_pending: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    pub(crate) match_values: TtlCache<String, Arc<[String]>>,
    /// The distinct `jwt_claim` names of jwt/oidc profiles (one entry).
    pub(crate) match_claims: TtlCache<(), Arc<[String]>>,
    pub(crate) vault: Arc<dyn crate::vault::Vault>,
    pub(crate) limiter: crate::limits::Limiter,
    pub(crate) usage: crate::usage::Usage,
    /// The queue of this registry's change notifications (PostgreSQL), sent in order by one
    /// task started on first use.
    pub(crate) notifier: std::sync::OnceLock<tokio::sync::mpsc::UnboundedSender<Change>>,
}

/// The profile registry. Cheap to clone; all clones share the caches.
#[derive(Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry over an open (and migrated) database.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        hasher: PasswordHasher,
        settings: RegistrySettings,
        vault: Arc<dyn crate::vault::Vault>,
    ) -> Self {
        let ttl = settings.cache_ttl;
        // Unknown ids (anyone can send one) are remembered apart, in a few entries of their
        // own: they never evict what real clients use.
        let misses = settings.profile_cache_capacity.min(NEGATIVE_ENTRIES);
        let snapshots = TtlCache::new(settings.profile_cache_capacity, ttl)
            .negatives_apart(misses, Option::is_none)
            .counted(&crate::metrics::METRICS.cache_profiles);
        let verified = quick_cache::sync::Cache::new(settings.verified_cache_capacity.max(16));
        let collections = TtlCache::new(settings.profile_cache_capacity, ttl)
            .negatives_apart(misses, Option::is_none)
            .counted(&crate::metrics::METRICS.cache_collections);
        let revocations = TtlCache::new(settings.verified_cache_capacity, ttl)
            .counted(&crate::metrics::METRICS.cache_revocations);
        let api_keys = TtlCache::new(settings.verified_cache_capacity, ttl)
            .negatives_apart(misses, Option::is_none)
            .counted(&crate::metrics::METRICS.cache_api_keys);
        let key_last_used = quick_cache::sync::Cache::new(settings.verified_cache_capacity.max(16));
        let match_values = TtlCache::new(settings.profile_cache_capacity, ttl)
            .negatives_apart(misses, |ids: &Arc<[String]>| ids.is_empty());
        let match_claims = TtlCache::new(1, ttl);
        let limiter = crate::limits::Limiter::new(
            db.clone(),
            clock.clone(),
            settings.redis_url.as_deref(),
            settings.ratelimit_failure,
        )
        .unwrap_or_else(|why| {
            // The server validates the URL before this; a library caller gets local limits.
            tracing::error!(error = %why, "Redis unusable: limits are local to this instance");
            crate::limits::Limiter::local(db.clone(), clock.clone())
        })
        .with_ipv6_prefix(settings.throttle_ipv6_prefix);
        Self {
            inner: Arc::new(Inner {
                db,
                clock,
                hasher,
                settings,
                snapshots,
                verified,
                collections,
                revocations,
                api_keys,
                key_last_used,
                key_use_pending: Default::default(),
                match_values,
                match_claims,
                vault,
                limiter,
                usage: crate::usage::Usage::default(),
                notifier: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The database connection (for readiness checks and key storage).
    pub fn db(&self) -> &DatabaseConnection {
        &self.inner.db
    }

    /// The injected clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The settings the registry was built with.
    pub fn settings(&self) -> &RegistrySettings {
        &self.inner.settings
    }

    /// The policy limiter (rate limits, quotas, failed-authentication budgets).
    pub fn limiter(&self) -> &crate::limits::Limiter {
        &self.inner.limiter
    }

    /// Count a usage event for a profile, at the registry clock's now.
    pub fn record_usage(&self, profile: &ProfileSnapshot, metric: crate::usage::UsageMetric) {
        self.inner
            .usage
            .record(&profile.profile_id, &profile.client_id, metric, self.now());
    }

    /// Persist usage and quota counts gathered in memory (called periodically and at
    /// shutdown).
    pub async fn flush_counters(&self) -> std::result::Result<(), sea_orm::DbErr> {
        let usage = self.inner.usage.flush(&self.inner.db).await;
        let quotas = self.inner.limiter.flush().await;
        let key_use = self.flush_key_use().await;
        usage.and(quotas).and(key_use)
    }

    /// Count one use of a profile's credential under its policy.
    pub async fn check_policy(&self, profile: &ProfileSnapshot) -> crate::limits::Verdict {
        match &profile.policy {
            None => crate::limits::Verdict::Allowed(None),
            Some(p) => {
                self.inner
                    .limiter
                    .check(&profile.profile_id, p.rate_limit, p.quota)
                    .await
            }
        }
    }

    /// A usage report for one profile or one client.
    pub async fn usage_report(
        &self,
        actor: &Actor,
        scope: crate::usage::Scope<'_>,
        query: &crate::api::UsageQuery,
    ) -> crate::error::Result<crate::api::UsageReport> {
        match scope {
            crate::usage::Scope::Profile(id) => {
                self.get_profile(actor, id).await?;
            }
            crate::usage::Scope::Client(id) => {
                self.get_client(actor, id).await?;
            }
        }
        let (from, to, granularity) = crate::usage::report_window(
            query.from,
            query.to,
            query.granularity.as_deref(),
            self.now(),
        )
        .map_err(|e| crate::error::RegistryError::Validation(vec![e]))?;
        Ok(self
            .inner
            .usage
            .report(&self.inner.db, scope, from, to, granularity)
            .await?)
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.inner.db.ping().await.is_ok()
    }

    /// Drop every cached profile snapshot; called after any registry write so the next
    /// request sees the change. Verified-secret entries need no flush: each hit is checked
    /// against the fresh snapshot's secret ids.
    pub(crate) fn invalidate(&self) {
        self.inner.snapshots.clear();
        self.inner.collections.clear();
        self.inner.api_keys.clear();
        self.inner.match_values.clear();
        self.inner.match_claims.clear();
        self.publish_change(Change::Registry);
    }

    /// Another instance changed the registry (or this one may have missed notifications):
    /// drop every cached entry, negative revocation lookups included.
    pub fn clear_caches(&self) {
        self.inner.snapshots.clear();
        self.inner.collections.clear();
        self.inner.api_keys.clear();
        self.inner.match_values.clear();
        self.inner.match_claims.clear();
        self.inner.revocations.clear();
    }

    /// Tell the other instances on this PostgreSQL database that something changed
    /// (`NOTIFY`, after the commit); a no-op on SQLite, where one instance runs.
    ///
    /// Notifications leave **in the order of the writes**: one task per registry sends them
    /// from a queue. (Each used to go out from its own task, so under load a later write's
    /// notification could overtake an earlier one's: another instance could load a rotation's
    /// keys while still holding a profile an earlier write had re-enabled as disabled.)
    /// Whatever is queued when the task wakes goes out as one `NOTIFY` per kind: every write
    /// behind them has committed, so one reload covers them all.
    pub(crate) fn publish_change(&self, change: Change) {
        if self.inner.db.get_database_backend() != sea_orm::DbBackend::Postgres {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let queue = self.inner.notifier.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            handle.spawn(send_notifications(self.inner.db.clone(), rx));
            tx
        });
        if queue.send(change).is_err() {
            // The notifier's runtime is gone (a registry that outlived it): this one alone.
            let db = self.inner.db.clone();
            handle.spawn(async move { notify(&db, &[change]).await });
        }
    }

    pub(crate) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.inner.clock.now()
    }
}

/// Encode a page cursor (opaque to clients).
pub(crate) fn encode_cursor(last_id: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last_id.as_bytes())
}

/// Decode a page cursor; a bad cursor is a validation error.
pub(crate) fn decode_cursor(cursor: Option<&str>) -> crate::error::Result<Option<String>> {
    use base64::Engine;
    match cursor {
        None | Some("") => Ok(None),
        Some(c) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(c.as_bytes())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| {
                crate::error::RegistryError::invalid(
                    "cursor",
                    "invalid_cursor",
                    "not a cursor from this API",
                )
            }),
    }
}

/// Turn a JSON body into an input type, reporting serde's complaint without echoing values.
pub fn parse_input<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> crate::error::Result<T> {
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        // serde's messages for unknown/missing fields name only fields; others may quote
        // the offending value, which could be a secret, so they are replaced.
        let message = if text.starts_with("unknown field") || text.starts_with("missing field") {
            text.split(" at line")
                .next()
                .unwrap_or("invalid body")
                .to_owned()
        } else {
            "a field has the wrong type or an unknown value".to_owned()
        };
        let field = text
            .split('`')
            .nth(1)
            .filter(|_| text.starts_with("unknown field") || text.starts_with("missing field"))
            .unwrap_or("body")
            .to_owned();
        crate::error::RegistryError::invalid(field, "invalid", message)
    })
}

/// A registry on a fresh in-memory SQLite database, for unit tests.
/// A registry's notifier: wait for a change, take every change queued behind it, and send one
/// `NOTIFY` per kind in the order they were first queued.
async fn send_notifications(
    db: DatabaseConnection,
    mut queue: tokio::sync::mpsc::UnboundedReceiver<Change>,
) {
    while let Some(first) = queue.recv().await {
        let mut kinds = vec![first];
        while let Ok(next) = queue.try_recv() {
            if !kinds.contains(&next) {
                kinds.push(next);
            }
        }
        notify(&db, &kinds).await;
    }
}

/// `NOTIFY` each change on [`CHANGE_CHANNEL`], in order. A failed one is retried (a pool
/// hiccup); should every try fail, the other instances catch up within
/// `GATEHOUSE_CACHE_TTL`.
async fn notify(db: &DatabaseConnection, changes: &[Change]) {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    for change in changes {
        for (attempt, pause_ms) in [(1, 100u64), (2, 400), (3, 0)] {
            let sql = Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANGE_CHANNEL.into(), change.as_str().into()],
            );
            match db.execute_raw(sql).await {
                Ok(_) => break,
                Err(e) if pause_ms > 0 => {
                    tracing::debug!(error = %e, attempt, "NOTIFY failed; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(pause_ms)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "NOTIFY failed; other instances catch up within GATEHOUSE_CACHE_TTL");
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) async fn test_registry(clock: Arc<dyn Clock>) -> Registry {
    let db = crate::connect("sqlite::memory:").await.unwrap();
    crate::migrate(&db).await.unwrap();
    let (master, _) = gatehouse_jwks::MasterKey::generate();
    Registry::new(
        db,
        clock,
        crate::secret::PasswordHasher::new(1).unwrap(),
        RegistrySettings::new("http://127.0.0.1:8080", "http://127.0.0.1:8081"),
        Arc::new(master),
    )
}
