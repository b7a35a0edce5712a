//! `seed`: many collections, clients, profiles and API keys written straight into the
//! database with multi-row inserts, plus the credentials file the load generator reads.
//!
//! Rows are shaped exactly as the registry writes them (same id formats, JSON columns, API
//! key digests), with two shortcuts that keep a million credentials within minutes:
//!
//! - every seeded `oauth2` profile gets the **same** secret, and every seeded collection the
//!   same introspection secret, each hashed **once** with the server's own argon2id
//!   parameters. The server still runs argon2 on the first authentication of each profile
//!   (or collection), because its verified-secret cache is keyed by client id and secret;
//!   after that the cache answers. The load generator pays that first verification in its
//!   priming pass, outside the measured window.
//! - no audit events are written for seeded rows.
//!
//! The signing keys, the built-in admin collection and (on an empty database) the bootstrap
//! admin are left to the server's first start. Seeding into a database that has no client
//! yet means the server will not create a bootstrap admin (it only does so when there are
//! no clients); the benchmark does not need one.

use crate::credentials::{Line, Writer};
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use gatehouse_registry::api::KeyIpRulesDoc;
use gatehouse_registry::clock::{Clock, SystemClock};
use gatehouse_registry::entity::{
    access_profile, api_key, client, client_secret, collection, collection_scope,
    profile_collection,
};
use gatehouse_registry::ids::{IdKind, base62, new_id};
use gatehouse_registry::secret::{PasswordHasher, generate_client_secret};
use gatehouse_registry::types::IpRulesDoc;
use gatehouse_registry::{api_key_format, connect, migrate};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, Set,
    TransactionTrait,
};
use serde::Serialize;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, mpsc};

/// The most API keys a `token` profile may hold (`GATEHOUSE_MAX_API_KEYS_PER_PROFILE`'s
/// default).
pub const MAX_KEYS_PER_PROFILE: usize = 20;

/// What to seed, and how.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// `sqlite://…?mode=rwc` or `postgres://…`.
    pub database_url: String,
    /// API collections (each with one scope and introspection credentials).
    pub collections: usize,
    /// Clients (organisations); profiles are spread over them round-robin.
    pub clients: usize,
    /// `oauth2` profiles (client credentials), each granted one collection round-robin.
    pub profiles: usize,
    /// API keys, held by `token` profiles of `keys_per_profile` keys each.
    pub api_keys: usize,
    /// Keys per `token` profile (1–20).
    pub keys_per_profile: usize,
    /// Rows per multi-row `INSERT`.
    pub batch: usize,
    /// Rows per transaction (a multiple of `batch` is best).
    pub txn_rows: usize,
    /// Concurrent inserting connections (`None`: 1 on SQLite, 3 on PostgreSQL).
    pub jobs: Option<usize>,
    /// Where to write the credentials file (must not exist).
    pub credentials: PathBuf,
}

/// Time spent on one table.
#[derive(Debug, Clone, Serialize)]
pub struct TableTiming {
    /// Table name.
    pub table: &'static str,
    /// Rows inserted.
    pub rows: usize,
    /// Seconds, including generating the rows and writing credentials lines.
    pub seconds: f64,
}

/// What `seed` did.
#[derive(Debug, Clone, Serialize)]
pub struct SeedReport {
    /// The tag in every seeded name.
    pub tag: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Collections seeded.
    pub collections: usize,
    /// Clients seeded.
    pub clients: usize,
    /// `oauth2` profiles seeded.
    pub profiles: usize,
    /// `token` profiles seeded to hold the keys.
    pub token_profiles: usize,
    /// API keys seeded.
    pub api_keys: usize,
    /// Rows written, every table together.
    pub rows: usize,
    /// Concurrent inserting connections used.
    pub jobs: usize,
    /// Seconds for migrations.
    pub migrate_seconds: f64,
    /// Seconds for the two argon2id hashes.
    pub hash_seconds: f64,
    /// Per table.
    pub tables: Vec<TableTiming>,
    /// Seconds for `ANALYZE` (PostgreSQL only).
    pub analyze_seconds: f64,
    /// Wall-clock seconds from connecting to the last commit.
    pub total_seconds: f64,
    /// Where the credentials are.
    pub credentials: String,
}

/// Seed the database and write the credentials file.
pub async fn seed(opts: &SeedOptions) -> Result<SeedReport> {
    let started = Instant::now();
    if opts.profiles + opts.api_keys > 0 && (opts.collections == 0 || opts.clients == 0) {
        bail!("profiles and API keys need at least one collection and one client");
    }
    if !(1..=MAX_KEYS_PER_PROFILE).contains(&opts.keys_per_profile) {
        bail!(
            "--keys-per-profile must be between 1 and {MAX_KEYS_PER_PROFILE} (the server's limit)"
        );
    }
    if opts.batch == 0 || opts.batch > 2_000 {
        // 2,000 rows × 17 columns stays below SQLite's 32,766 and PostgreSQL's 65,535
        // bind parameters.
        bail!("--batch must be between 1 and 2000");
    }
    let db = connect(&opts.database_url)
        .await
        .context("connecting to the database")?;
    let backend = match db.get_database_backend() {
        DbBackend::Postgres => "postgres",
        DbBackend::Sqlite => "sqlite",
        _ => "other",
    };
    let jobs = opts
        .jobs
        .unwrap_or(if backend == "postgres" { 3 } else { 1 })
        .max(1);
    let jobs = if backend == "sqlite" { 1 } else { jobs };

    let t = Instant::now();
    migrate(&db).await.context("running migrations")?;
    let migrate_seconds = t.elapsed().as_secs_f64();

    // One argon2id hash per kind of secret, with the server's parameters.
    let t = Instant::now();
    let hasher = PasswordHasher::new(1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let profile_secret = generate_client_secret();
    let collection_secret = generate_client_secret();
    let profile_hash = hasher
        .hash(&profile_secret)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let collection_hash = hasher
        .hash(&collection_secret)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash_seconds = t.elapsed().as_secs_f64();

    let tag = base62(6);
    let now = SystemClock.now();
    let c = opts.collections;
    let k = opts.clients;
    let p = opts.profiles;
    let n = opts.api_keys;
    let token_profiles = n.div_ceil(opts.keys_per_profile);
    let mut out = Writer::create(&opts.credentials)?;
    out.write(&Line::Meta {
        tag: tag.clone(),
        collections: c,
        clients: k,
        profiles: p,
        api_keys: n,
        token_profiles,
        backend: backend.to_owned(),
    })?;

    let col_ids: Vec<String> = (0..c).map(|_| new_id(IdKind::Collection)).collect();
    let cli_ids: Vec<String> = (0..k).map(|_| new_id(IdKind::Client)).collect();
    let prf_ids: Vec<String> = (0..p + token_profiles)
        .map(|_| new_id(IdKind::Profile))
        .collect();
    // Profile i (oauth2: i < p; token: i - p) → its collection and client, round-robin.
    let nth = |i: usize| if i < p { i } else { i - p };
    let ins = Inserter {
        db: db.clone(),
        batch: opts.batch,
        txn_rows: opts.txn_rows.max(opts.batch),
        jobs,
    };
    let mut tables = Vec::new();

    let secret_text = collection_secret.expose_secret().to_owned();
    let w = &mut out;
    tables.push(
        ins.run("collections", c, |r| {
            r.map(|i| {
                let id = col_ids.get(i).cloned().unwrap_or_default();
                let audience = format!("https://bench.invalid/{tag}/{i}");
                let rs_id = new_id(IdKind::ResourceServer);
                w.write(&Line::Collection {
                    n: i,
                    id: id.clone(),
                    audience: audience.clone(),
                    introspection_client_id: rs_id.clone(),
                    introspection_client_secret: secret_text.clone(),
                })?;
                Ok(collection::ActiveModel {
                    id: Set(id),
                    name: Set(format!("bench {tag} {i}")),
                    description: Set(String::new()),
                    audience: Set(audience),
                    integration_url: Set(None),
                    documentation_url: Set(None),
                    introspection_client_id: Set(rs_id),
                    builtin: Set(false),
                    created_at: Set(now),
                    updated_at: Set(now),
                })
            })
            .collect()
        })
        .await?,
    );
    tables.push(
        ins.run("collection_scopes", c, |r| {
            Ok(r.map(|i| collection_scope::ActiveModel {
                name: Set(format!("bench.{tag}.{i}:read")),
                collection_id: Set(col_ids.get(i).cloned().unwrap_or_default()),
                description: Set(String::new()),
                position: Set(0),
            })
            .collect())
        })
        .await?,
    );
    tables.push(
        ins.run("client_secrets (collections)", c, |r| {
            Ok(r.map(|i| secret_row(col_ids.get(i), &collection_hash, now))
                .collect())
        })
        .await?,
    );
    tables.push(
        ins.run("clients", k, |r| {
            Ok(r.map(|i| client::ActiveModel {
                id: Set(cli_ids.get(i).cloned().unwrap_or_default()),
                name: Set(format!("bench {tag} client {i}")),
                description: Set(String::new()),
                project: Set(Some("bench".to_owned())),
                contact_first_name: Set(None),
                contact_last_name: Set(None),
                contact_email: Set(None),
                active: Set(true),
                logo: Set(None),
                logo_type: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            })
            .collect())
        })
        .await?,
    );
    let ip_rules = serde_json::to_string(&IpRulesDoc::default())?;
    let secret_text = profile_secret.expose_secret().to_owned();
    tables.push(
        ins.run("access_profiles", p + token_profiles, |r| {
            r.map(|i| {
                let oauth2 = i < p;
                let j = nth(i);
                let id = prf_ids.get(i).cloned().unwrap_or_default();
                let oauth_client_id = new_id(IdKind::OAuthClient);
                if oauth2 {
                    w.write(&Line::Oauth2 {
                        n: j,
                        profile_id: id.clone(),
                        oauth_client_id: oauth_client_id.clone(),
                        oauth_client_secret: secret_text.clone(),
                        collection: j % c,
                    })?;
                }
                Ok(access_profile::ActiveModel {
                    admin_projects: Set(None),
                    id: Set(id),
                    client_id: Set(cli_ids.get(j % k).cloned().unwrap_or_default()),
                    name: Set(if oauth2 {
                        format!("oauth2 {j}")
                    } else {
                        format!("token {j}")
                    }),
                    description: Set(String::new()),
                    all_collections: Set(false),
                    scopes: Set(None),
                    auth_type: Set(if oauth2 { "oauth2" } else { "token" }.to_owned()),
                    oauth_client_id: Set(oauth_client_id),
                    ip_rules: Set(ip_rules.clone()),
                    policy_id: Set(None),
                    active: Set(true),
                    token_ttl_seconds: Set(3_600),
                    custom_claims: Set("{}".to_owned()),
                    settings: Set("{}".to_owned()),
                    match_value: Set(None),
                    match_claim: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                })
            })
            .collect()
        })
        .await?,
    );
    tables.push(
        ins.run("profile_collections", p + token_profiles, |r| {
            Ok(r.map(|i| profile_collection::ActiveModel {
                profile_id: Set(prf_ids.get(i).cloned().unwrap_or_default()),
                collection_id: Set(col_ids.get(nth(i) % c).cloned().unwrap_or_default()),
            })
            .collect())
        })
        .await?,
    );
    tables.push(
        ins.run("client_secrets (profiles)", p, |r| {
            Ok(r.map(|i| secret_row(prf_ids.get(i), &profile_hash, now))
                .collect())
        })
        .await?,
    );
    let key_rules = serde_json::to_string(&KeyIpRulesDoc::default())?;
    let kpp = opts.keys_per_profile;
    tables.push(
        ins.run("api_keys", n, |r| {
            r.map(|i| {
                let j = i / kpp;
                let profile_id = prf_ids.get(p + j).cloned().unwrap_or_default();
                let value = api_key_format::generate();
                let value = value.expose_secret();
                w.write(&Line::ApiKey {
                    n: i,
                    profile_id: profile_id.clone(),
                    api_key: value.to_owned(),
                    collection: j % c,
                })?;
                Ok(api_key::ActiveModel {
                    id: Set(new_id(IdKind::ApiKey)),
                    profile_id: Set(profile_id),
                    name: Set(format!("key {i}")),
                    active: Set(true),
                    expires_at: Set(None),
                    ip_rules: Set(key_rules.clone()),
                    prefix: Set(api_key_format::display_prefix(value)),
                    digest: Set(api_key_format::digest(value)),
                    previous_digest: Set(None),
                    previous_expires_at: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    last_used_at: Set(None),
                })
            })
            .collect()
        })
        .await?,
    );
    out.finish()?;

    let t = Instant::now();
    if backend == "postgres" {
        db.execute_unprepared("ANALYZE").await?;
    }
    let analyze_seconds = t.elapsed().as_secs_f64();
    db.close().await.ok();
    Ok(SeedReport {
        tag,
        backend: backend.to_owned(),
        collections: c,
        clients: k,
        profiles: p,
        token_profiles,
        api_keys: n,
        rows: tables.iter().map(|t| t.rows).sum(),
        jobs,
        migrate_seconds,
        hash_seconds,
        tables,
        analyze_seconds,
        total_seconds: started.elapsed().as_secs_f64(),
        credentials: opts.credentials.display().to_string(),
    })
}

fn secret_row(
    owner: Option<&String>,
    hash: &str,
    now: DateTime<Utc>,
) -> client_secret::ActiveModel {
    client_secret::ActiveModel {
        id: Set(new_id(IdKind::Secret)),
        owner_id: Set(owner.cloned().unwrap_or_default()),
        secret_hash: Set(hash.to_owned()),
        created_at: Set(now),
        expires_at: Set(None),
    }
}

/// Multi-row inserts in chunks of `batch`, committed every `txn_rows` rows, on `jobs`
/// connections at once. Rows are generated (and credentials written) in order on the calling
/// task; the workers only insert.
struct Inserter {
    db: DatabaseConnection,
    batch: usize,
    txn_rows: usize,
    jobs: usize,
}

impl Inserter {
    async fn run<A, F>(&self, table: &'static str, total: usize, mut make: F) -> Result<TableTiming>
    where
        A: ActiveModelTrait + Send + 'static,
        F: FnMut(Range<usize>) -> Result<Vec<A>>,
    {
        let started = Instant::now();
        let (tx, rx) = mpsc::channel::<Vec<A>>(self.jobs * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(self.jobs);
        for _ in 0..self.jobs {
            let rx = rx.clone();
            let db = self.db.clone();
            let txn_rows = self.txn_rows;
            workers.push(tokio::spawn(async move {
                let mut txn = None;
                let mut in_txn = 0usize;
                loop {
                    let chunk = rx.lock().await.recv().await;
                    let Some(chunk) = chunk else { break };
                    let rows = chunk.len();
                    if txn.is_none() {
                        txn = Some(db.begin().await?);
                    }
                    if let Some(t) = &txn {
                        A::Entity::insert_many(chunk)
                            .exec_without_returning(t)
                            .await
                            .with_context(|| format!("inserting into {table}"))?;
                    }
                    in_txn += rows;
                    if in_txn >= txn_rows {
                        if let Some(t) = txn.take() {
                            t.commit().await?;
                        }
                        in_txn = 0;
                    }
                }
                if let Some(t) = txn.take() {
                    t.commit().await?;
                }
                anyhow::Ok(())
            }));
        }
        let mut start = 0;
        let mut send_failed = false;
        let mut last_progress = Instant::now();
        while start < total {
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                eprintln!(
                    "  {table}: {start}/{total} rows after {:.0} s",
                    started.elapsed().as_secs_f64()
                );
            }
            let end = (start + self.batch).min(total);
            let rows = make(start..end)?;
            if tx.send(rows).await.is_err() {
                // A worker failed and the channel closed; its error is reported below.
                send_failed = true;
                break;
            }
            start = end;
        }
        drop(tx);
        for w in workers {
            w.await.context("insert worker panicked")??;
        }
        if send_failed {
            bail!("inserting into {table} stopped early");
        }
        let seconds = started.elapsed().as_secs_f64();
        eprintln!(
            "  {table}: {total} rows in {seconds:.2} s ({:.0} rows/s)",
            total as f64 / seconds.max(1e-9)
        );
        Ok(TableTiming {
            table,
            rows: total,
            seconds,
        })
    }
}

/// A pause between progress lines, so long seeds show they are alive.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
