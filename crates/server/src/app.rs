//! Start-up and serving: open the database, migrate, load keys, bootstrap, build both routers
//! with their layers, and serve them with header-read timeouts, a connection cap and
//! graceful shutdown.

use crate::body_guard::{Admission, BodyGuard};
use crate::config::{Config, CorsOrigins, is_loopback_host, validate_issuer};
use anyhow::{Context, Result, bail};
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::future::Either;
use gatehouse_jwks::{DiscoveryDocuments, Endpoints, KeyManager, MasterKey};
use gatehouse_registry::secret::{PasswordHasher, SecretString};
use gatehouse_registry::{BootstrapCredentials, BootstrapOutcome, Registry, RegistrySettings};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

/// The largest request body on the public listener (token, introspection, revocation).
const PUBLIC_BODY_LIMIT: usize = 64 * 1024;
/// The largest request body on the admin listener (logos are the largest legitimate bodies).
const ADMIN_BODY_LIMIT: usize = 1024 * 1024;

/// Advisory lock key for start-up work shared by instances ("gatehous" in ASCII).
const STARTUP_LOCK: i64 = 0x6761_7465_686f_7573;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// Where the public listener is bound.
    pub public_addr: SocketAddr,
    /// Where the admin listener is bound.
    pub admin_addr: SocketAddr,
    /// The issuer in effect.
    pub issuer: String,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Writes usage and quota counters periodically, and once more at shutdown.
    flusher: JoinHandle<()>,
    /// Key lifecycle and change notifications.
    background: Vec<JoinHandle<()>>,
    registry: Registry,
    db: DatabaseConnection,
}

impl Server {
    /// Stop accepting, let in-flight requests finish (30 s at most), close the database.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        // After the listeners: every counted request is in memory now.
        let _ = self.flusher.await;
        for task in self.background {
            let _ = task.await;
        }
        if let Err(e) = self.registry.flush_counters().await {
            tracing::error!(error = %e, "writing usage and quota counters at shutdown failed");
        }
        self.db.close().await.context("closing the database")?;
        Ok(())
    }

    /// Wait until a shutdown was requested elsewhere (never returns otherwise).
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// The master key (GATEHOUSE_SECRET_KEY), and during a key change the previous one
/// (GATEHOUSE_SECRET_KEY_PREVIOUS) for reading.
fn master_key(config: &Config) -> Result<MasterKey> {
    let current = current_master_key(config)?;
    match &config.secret_key_previous {
        None => Ok(current),
        Some(text) => {
            let previous = MasterKey::parse(text)
                .map_err(|e| anyhow::anyhow!("GATEHOUSE_SECRET_KEY_PREVIOUS: {e}"))?;
            Ok(current.with_previous(previous))
        }
    }
}

fn current_master_key(config: &Config) -> Result<MasterKey> {
    if let Some(text) = &config.secret_key {
        return MasterKey::parse(text).map_err(|e| anyhow::anyhow!("{e}"));
    }
    if config.is_postgres() {
        bail!(
            "GATEHOUSE_SECRET_KEY (or GATEHOUSE_SECRET_KEY_FILE) is required on PostgreSQL: generate one with `openssl rand -base64 32 | tr '+/' '-_' | tr -d '='`"
        );
    }
    let path = config.data_dir.join("gatehouse.secret-key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return MasterKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    let (key, text) = MasterKey::generate();
    write_private_file(&path, text.as_bytes())?;
    tracing::warn!(
        file = %path.display(),
        "generated GATEHOUSE_SECRET_KEY into a file beside the database; back it up — without it the signing keys cannot be read"
    );
    Ok(key)
}

/// Create `path` (mode 0600) with `contents`, atomically and never over an existing file:
/// the bytes go to a temporary file beside it, are synced, then hard-linked into place (a link
/// fails if `path` exists; a rename would silently replace it).
fn write_private_file(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    if path.exists() {
        bail!(
            "{} already exists; read it, keep what it holds somewhere safe, remove it, and start again",
            path.display()
        );
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("gatehouse"),
        gatehouse_registry::ids::base62(12)
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| -> Result<()> {
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(contents)
            .with_context(|| format!("writing {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::hard_link(&tmp, path).with_context(|| format!("creating {}", path.display()))
    })();
    let _ = std::fs::remove_file(&tmp);
    result
}

/// The admin credentials file a generated secret is written to (bootstrap and recovery).
fn admin_credentials_doc(client_id: &str, secret: &SecretString, issuer: &str) -> String {
    serde_json::json!({
        "client_id": client_id,
        "client_secret": secret.expose_secret(),
        "token_endpoint": format!("{}/oauth/token", issuer.trim_end_matches('/')),
        "scope": "gatehouse:admin",
    })
    .to_string()
}

/// Hold a PostgreSQL advisory lock for start-up work, on its own connection.
async fn startup_lock(config: &Config) -> Result<Option<DatabaseConnection>> {
    if !config.is_postgres() {
        return Ok(None);
    }
    let mut opts = sea_orm::ConnectOptions::new(config.database_url.clone());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let conn = sea_orm::Database::connect(opts)
        .await
        .context("connecting for the start-up lock")?;
    conn.execute_unprepared(&format!("SELECT pg_advisory_lock({STARTUP_LOCK})"))
        .await
        .context("taking the start-up lock")?;
    Ok(Some(conn))
}

async fn release_lock(lock: Option<DatabaseConnection>) {
    if let Some(conn) = lock {
        let _ = conn
            .execute_unprepared(&format!("SELECT pg_advisory_unlock({STARTUP_LOCK})"))
            .await;
        let _ = conn.close().await;
    }
}

/// The registry of a command that works on the database directly (`keys`, `admin recover`):
/// connect, migrate under the start-up lock unless told not to, open the master key.
async fn open_registry(config: &Config) -> Result<(DatabaseConnection, Registry, Arc<MasterKey>)> {
    let db = gatehouse_registry::connect_with(
        &config.database_url,
        config.database_max_connections,
        config.database_timeout,
    )
    .await
    .context("connecting to the database")?;
    if config.run_migrations {
        let lock = startup_lock(config).await?;
        let result = gatehouse_registry::migrate(&db).await;
        release_lock(lock).await;
        result.context("running migrations")?;
    }
    let master = Arc::new(master_key(config)?);
    let hasher = PasswordHasher::new(1).map_err(|e| anyhow::anyhow!("{e}"))?;
    let issuer = config.issuer.clone().unwrap_or_default();
    let mut settings = RegistrySettings::new(&issuer, config.admin_url.clone().unwrap_or_default());
    settings.max_token_ttl = config.max_token_ttl;
    let registry = Registry::new(
        db.clone(),
        config.clock.clone(),
        hasher,
        settings,
        master.clone(),
    );
    Ok((db, registry, master))
}

/// `gatehouse keys list|rotate`: operate on the stored keys directly; running instances
/// reload (at once through NOTIFY on PostgreSQL, else at their next key check).
pub async fn keys_command(
    config: &Config,
    command: &crate::config::KeysCommand,
) -> Result<serde_json::Value> {
    use crate::config::KeysCommand;
    let (db, registry, master) = open_registry(config).await?;
    let issuer = config.issuer.clone().unwrap_or_default();
    let keys = KeyManager::load_or_create(
        Arc::new(registry.clone()),
        master,
        config.signing_alg,
        &issuer,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = match command {
        KeysCommand::List => {
            let list = keys.list().await.map_err(|e| anyhow::anyhow!("{e}"))?;
            serde_json::json!({ "items": list })
        }
        KeysCommand::Rotate { force } => {
            let rotation = keys
                .rotate("cli", config.key_publish_ahead, *force)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            serde_json::json!(rotation)
        }
    };
    // Let the NOTIFY task finish before the pool closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.close().await.ok();
    Ok(out)
}

/// `gatehouse secret-key rotate`: seal every signing key and `jwt`/hmac secret again under
/// GATEHOUSE_SECRET_KEY, reading what GATEHOUSE_SECRET_KEY_PREVIOUS sealed; online, audited,
/// idempotent.
pub async fn secret_key_rotate(config: &Config) -> Result<gatehouse_registry::ResealReport> {
    if config.secret_key_previous.is_none() {
        bail!(
            "set GATEHOUSE_SECRET_KEY_PREVIOUS to the key in use and GATEHOUSE_SECRET_KEY to the new one \
             (`gatehouse secret-key generate` makes one); give every instance both first, rotate, \
             then drop the previous key everywhere"
        );
    }
    let (db, registry, _) = open_registry(config).await?;
    let report = registry
        .reseal_secrets(&gatehouse_registry::Actor::service("cli:secret-key-rotate"))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    db.close().await.ok();
    Ok(report)
}

/// `gatehouse admin recover`: a fresh admin directly in the database, its credentials in a
/// new 0600 file; answers the file's path.
pub async fn admin_recover(config: &Config, output: Option<&Path>) -> Result<PathBuf> {
    let (db, registry, _) = open_registry(config).await?;
    let issuer = config.issuer.clone().unwrap_or_default();
    let path = match output {
        Some(p) => p.to_path_buf(),
        None => config.data_dir.join(format!(
            "gatehouse.recovery-{}.json",
            registry.clock().now().format("%Y%m%dT%H%M%SZ")
        )),
    };
    let written = std::cell::Cell::new(false);
    let result = registry
        .recover_admin(
            &gatehouse_registry::Actor::service("cli:admin-recover"),
            |id, secret| {
                write_private_file(&path, admin_credentials_doc(id, secret, &issuer).as_bytes())
                    .map_err(|e| format!("{e:#}"))?;
                written.set(true);
                Ok(())
            },
        )
        .await;
    // Running instances drop their caches (NOTIFY on PostgreSQL) before the pool closes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    db.close().await.ok();
    match result {
        Ok(client_id) => {
            tracing::warn!(file = %path.display(), %client_id, "created a recovery admin; its credentials are in this file (mode 0600)");
            Ok(path)
        }
        Err(e) => {
            if written.get() {
                let _ = std::fs::remove_file(&path);
            }
            bail!("admin recover: {e}")
        }
    }
}

/// Apply migrations (the `migrate` command).
pub async fn migrate_only(config: &Config) -> Result<()> {
    let db = gatehouse_registry::connect_with(
        &config.database_url,
        config.database_max_connections,
        config.database_timeout,
    )
    .await
    .context("connecting to the database")?;
    let lock = startup_lock(config).await?;
    let result = gatehouse_registry::migrate(&db).await;
    release_lock(lock).await;
    result.context("running migrations")?;
    db.close().await.ok();
    Ok(())
}

fn base_url(addr: SocketAddr, tls: bool) -> String {
    format!("{}://{addr}", if tls { "https" } else { "http" })
}

/// Start the server: both listeners are bound and serving when this returns.
pub async fn start(config: Config) -> Result<Server> {
    let public = TcpListener::bind(config.public_addr)
        .await
        .with_context(|| format!("binding the public listener on {}", config.public_addr))?;
    let admin = TcpListener::bind(config.admin_addr)
        .await
        .with_context(|| format!("binding the admin listener on {}", config.admin_addr))?;
    let public_addr = public.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let tls = match &config.tls {
        Some((cert, key)) => Some(crate::tls::Tls::new(cert, key)?),
        None => None,
    };
    let issuer = match &config.issuer {
        Some(i) => i.clone(),
        None => {
            let derived = base_url(public_addr, tls.is_some());
            let url = url::Url::parse(&derived)?;
            if !url.host().is_some_and(|h| is_loopback_host(&h)) {
                bail!("GATEHOUSE_ISSUER is required when the public listener is not on loopback");
            }
            derived
        }
    };
    validate_issuer(&issuer)?;
    let admin_audience = config
        .admin_url
        .clone()
        .unwrap_or_else(|| base_url(admin_addr, tls.is_some()));

    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).ok();
    }
    let db = gatehouse_registry::connect_with(
        &config.database_url,
        config.database_max_connections,
        config.database_timeout,
    )
    .await
    .context("connecting to the database")?;
    let lock = startup_lock(&config).await?;
    let prepared = prepare(&config, &db, &issuer, &admin_audience).await;
    release_lock(lock).await;
    let (registry, keys) = prepared?;

    let mut endpoints = Endpoints::under(&issuer);
    let base = issuer.trim_end_matches('/');
    endpoints.introspection = Some(format!("{base}/oauth/introspect"));
    endpoints.revocation = Some(format!("{base}/oauth/revoke"));
    let discovery = DiscoveryDocuments::build(&endpoints, &keys.current().published_algs())
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let token_state = Arc::new(
        gatehouse_token::TokenState::new(
            registry.clone(),
            keys.clone(),
            issuer.clone(),
            config.max_token_ttl,
            config.trusted_proxies.clone(),
            admin_audience.clone(),
            gatehouse_jwks::remote::RemoteKeys::new(
                config.remote_keys_ttl,
                config.remote_keys_min_refresh,
                config.outbound_allow.clone(),
            )
            .context("building the outbound HTTP client")?,
        )
        .context("issuer URL")?,
    );
    let readiness = Readiness {
        registry: registry.clone(),
        last: Arc::new(tokio::sync::Mutex::new(None)),
    };
    let public_router = gatehouse_token::client_routes(token_state.clone())
        .layer(cors_layer(&config.cors_token_origins, Method::POST))
        .merge(gatehouse_token::resource_server_routes(token_state))
        .merge(
            gatehouse_jwks::http::router(keys.clone(), discovery)
                .layer(cors_layer(&config.cors_discovery_origins, Method::GET)),
        )
        .merge(health_router(readiness.clone()));
    let console_state = Arc::new(gatehouse_console::ConsoleState {
        registry: registry.clone(),
        keys: keys.clone(),
        admin_audience: admin_audience.clone(),
        key_publish_ahead: config.key_publish_ahead,
        trusted_proxies: config.trusted_proxies.clone(),
    });
    let admin_state = Arc::new(gatehouse_admin::AdminState {
        registry: registry.clone(),
        keys: keys.clone(),
        admin_audience,
        key_publish_ahead: config.key_publish_ahead,
    });
    let http_metrics = Arc::new(crate::metrics::HttpMetrics::new());
    let admin_router = gatehouse_admin::router(admin_state)
        .merge(gatehouse_console::router(console_state))
        .merge(health_router(readiness))
        .merge(crate::metrics::router(
            http_metrics.clone(),
            db.clone(),
            keys.clone(),
            registry.clock().clone(),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        ));

    let (shutdown, _) = watch::channel(false);
    let tasks = vec![
        tokio::spawn(serve(
            public,
            with_common_layers(
                http_metrics.track("public", public_router),
                &config,
                PUBLIC_BODY_LIMIT,
                ErrorShape::OAuth,
            ),
            shutdown.subscribe(),
            config.clone(),
            BodyGuard::new(PUBLIC_BODY_LIMIT),
            "public",
            tls.clone(),
        )),
        tokio::spawn(serve(
            admin,
            with_common_layers(
                http_metrics.track("admin", admin_router),
                &config,
                ADMIN_BODY_LIMIT,
                ErrorShape::Admin,
            ),
            shutdown.subscribe(),
            config.clone(),
            BodyGuard::new(ADMIN_BODY_LIMIT),
            "admin",
            tls.clone(),
        )),
    ];
    if let Some(tls) = tls {
        tokio::spawn(reload_on_sighup(tls, shutdown.subscribe()));
    }
    let flusher = tokio::spawn(flush_counters(
        registry.clone(),
        config.counter_flush_interval,
        shutdown.subscribe(),
    ));
    let mut background = vec![
        tokio::spawn(maintain_keys(
            keys.clone(),
            config.clone(),
            shutdown.subscribe(),
        )),
        tokio::spawn(sweep_expired(
            registry.clone(),
            config.sweep_interval,
            shutdown.subscribe(),
        )),
    ];
    if config.is_postgres() {
        background.push(tokio::spawn(follow_changes(
            registry.clone(),
            keys.clone(),
            shutdown.subscribe(),
        )));
    }
    tracing::info!(%public_addr, %admin_addr, %issuer, "gatehouse is listening");
    Ok(Server {
        public_addr,
        admin_addr,
        issuer,
        shutdown,
        tasks,
        flusher,
        background,
        registry,
        db,
    })
}

/// The key lifecycle: scheduled rotation, retired keys leaving the JWKS, and a reload that
/// picks up a rotation made elsewhere (the fallback where NOTIFY is not available).
async fn maintain_keys(keys: Arc<KeyManager>, config: Config, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(config.key_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        match keys
            .maintain(config.key_rotation_interval, config.key_publish_ahead)
            .await
        {
            Ok(Some(r)) => tracing::info!(active = %r.active_kid, "scheduled key rotation"),
            Ok(None) => {
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "reloading signing keys failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "key maintenance failed"),
        }
    }
}

/// PostgreSQL LISTEN on the change channel: another instance's write clears this one's
/// caches (or reloads the keys) at once. After a reconnect, notifications may have been
/// missed, so everything is cleared and reloaded.
///
/// Fallback (polling): while no LISTEN connection can be had but the database answers
/// queries (a pooler in transaction mode, say), the caches are cleared and the keys reloaded
/// every second, so changes still reach this instance within 1 s. While the database does not
/// answer at all, nobody can change anything, and cached entries keep serving.
async fn follow_changes(
    registry: Registry,
    keys: Arc<KeyManager>,
    mut stop: watch::Receiver<bool>,
) {
    use sea_orm::sqlx::postgres::PgListener;
    let Some(pool) = registry
        .db()
        .get_database_backend()
        .eq(&sea_orm::DbBackend::Postgres)
        .then(|| registry.db().get_postgres_connection_pool().clone())
    else {
        return;
    };
    let catch_up = |registry: &Registry, keys: &Arc<KeyManager>| {
        registry.clear_caches();
        let keys = keys.clone();
        async move {
            if let Err(e) = keys.reload().await {
                tracing::warn!(error = %e, "reloading signing keys failed");
            }
        }
    };
    let mut failures = 0u64;
    loop {
        let listening = match PgListener::connect_with(&pool).await {
            Ok(mut l) => match l.listen(gatehouse_registry::CHANGE_CHANNEL).await {
                Ok(()) => Ok(l),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let mut listener = match listening {
            Ok(l) => {
                gatehouse_registry::metrics::METRICS.listen_connected.set(1);
                if failures > 0 {
                    tracing::info!("LISTEN connection back; following changes again");
                }
                failures = 0;
                l
            }
            Err(e) => {
                gatehouse_registry::metrics::METRICS.listen_connected.set(0);
                if failures == 0 {
                    tracing::warn!(error = %e, "LISTEN failed; polling every second until it is back");
                }
                failures += 1;
                if registry.ping().await {
                    catch_up(&registry, &keys).await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        catch_up(&registry, &keys).await;
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(n)) => match gatehouse_registry::Change::parse(n.payload()) {
                        gatehouse_registry::Change::Keys => {
                            if let Err(e) = keys.reload().await {
                                tracing::warn!(error = %e, "reloading signing keys failed");
                            }
                        }
                        gatehouse_registry::Change::Registry => registry.clear_caches(),
                    },
                    // The connection dropped and came back: changes may have been missed.
                    Ok(None) => catch_up(&registry, &keys).await,
                    Err(e) => {
                        gatehouse_registry::metrics::METRICS.listen_connected.set(0);
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                        break;
                    }
                },
            }
        }
    }
}

/// Write usage and quota counters every `every` until `stop` fires ([`Server::shutdown`]
/// writes the last ones once the listeners have drained).
async fn flush_counters(registry: Registry, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        if let Err(e) = registry.flush_counters().await {
            tracing::warn!(error = %e, "writing usage and quota counters failed; kept for the next try");
        }
    }
}

/// Delete expired rows every `every` (on PostgreSQL one instance at a time), so no table
/// grows forever.
async fn sweep_expired(registry: Registry, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let now = registry.clock().now();
        match registry.sweep_expired(now).await {
            Ok(report) if report.total() > 0 => tracing::info!(
                used_assertions = report.used_assertions,
                revoked_tokens = report.revoked_tokens,
                api_key_graces = report.api_key_graces,
                client_secrets = report.client_secrets,
                "swept expired rows"
            ),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "sweeping expired rows failed; next interval retries")
            }
        }
    }
}

/// Migrations, keys and bootstrap: the work done under the start-up lock.
async fn prepare(
    config: &Config,
    db: &DatabaseConnection,
    issuer: &str,
    admin_audience: &str,
) -> Result<(Registry, Arc<KeyManager>)> {
    if config.run_migrations {
        gatehouse_registry::migrate(db)
            .await
            .context("running migrations")?;
    }
    let master = Arc::new(master_key(config)?);
    let hasher = PasswordHasher::new(
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut settings = RegistrySettings::new(issuer, admin_audience);
    settings.max_token_ttl = config.max_token_ttl;
    settings.max_api_keys_per_profile = config.max_api_keys_per_profile;
    // Several instances may share a PostgreSQL database: changes arrive at once through
    // LISTEN/NOTIFY (see `follow_changes`); this bound only covers a lost notification.
    settings.cache_ttl = config.is_postgres().then_some(config.cache_ttl);
    settings.profile_cache_capacity = config.cache_entries;
    settings.verified_cache_capacity = config.cache_entries;
    settings.redis_url = config.redis_url.clone();
    settings.ratelimit_failure = config.ratelimit_failure;
    settings.outbound_allow = config.outbound_allow.clone();
    settings.throttle_ipv6_prefix = config.throttle_ipv6_prefix;
    let registry = Registry::new(
        db.clone(),
        config.clock.clone(),
        hasher,
        settings,
        master.clone(),
    );
    let keys = KeyManager::load_or_create(
        Arc::new(registry.clone()),
        master,
        config.signing_alg,
        issuer,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let supplied = match (&config.bootstrap_client_id, &config.bootstrap_client_secret) {
        (Some(id), Some(secret)) => Some(BootstrapCredentials {
            client_id: id.clone(),
            secret: SecretString::new(secret.clone()),
        }),
        (None, None) => None,
        _ => bail!(
            "set both GATEHOUSE_BOOTSTRAP_CLIENT_ID and GATEHOUSE_BOOTSTRAP_CLIENT_SECRET, or neither"
        ),
    };
    // A generated secret is written down before the admin is committed, so it cannot be
    // lost; if the commit then fails, the file is removed again.
    let path = config.data_dir.join("gatehouse.bootstrap.json");
    let written = std::cell::Cell::new(false);
    let outcome = registry
        .bootstrap_admin(supplied, |client_id, secret| {
            write_private_file(
                &path,
                admin_credentials_doc(client_id, secret, issuer).as_bytes(),
            )
            .map_err(|e| format!("{e:#}"))?;
            written.set(true);
            Ok(())
        })
        .await;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            if written.get() {
                let _ = std::fs::remove_file(&path);
            }
            bail!("bootstrap: {e}");
        }
    };
    match outcome {
        BootstrapOutcome::Created {
            client_id,
            generated_secret: Some(_),
        } => {
            tracing::warn!(
                file = %path.display(),
                %client_id,
                "created the bootstrap admin; its credentials are in this file (mode 0600). Read them, store them safely, delete the file"
            );
        }
        BootstrapOutcome::Created { client_id, .. } => {
            tracing::info!(%client_id, "created the bootstrap admin with the configured credentials");
        }
        _ => {}
    }
    Ok((registry, Arc::new(keys)))
}

/// How long a readiness answer is reused: a flood of `/readyz` costs at most one database
/// ping per second, whatever the request rate (and SQLite's single pooled connection stays
/// free for real work).
const READINESS_TTL: Duration = Duration::from_secs(1);

/// The database ping behind `/readyz`, cached for [`READINESS_TTL`] behind a single flight:
/// concurrent callers wait for the one ping in progress instead of starting their own.
#[derive(Clone)]
struct Readiness {
    registry: Registry,
    last: Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>>,
}

impl Readiness {
    async fn ready(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last
            && at.elapsed() < READINESS_TTL
        {
            return ok;
        }
        let ok = self.registry.ping().await;
        *last = Some((std::time::Instant::now(), ok));
        ok
    }
}

/// `/healthz` (touches nothing) and `/readyz` (the shared, cached database ping).
fn health_router(readiness: Readiness) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    if readiness.ready().await {
        axum::Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "unavailable"})),
        )
            .into_response()
    }
}

/// Longest `X-Request-Id` taken from a client.
const MAX_REQUEST_ID_LEN: usize = 64;

/// An incoming `X-Request-Id` is kept only when short and plain (letters, digits, `-`, `_`,
/// `.`, at most 64); anything else is dropped so the server generates one (a UUID). The id
/// is echoed in the answer and is in every log line of the request.
fn keep_plain_request_id<B>(mut request: axum::http::Request<B>) -> axum::http::Request<B> {
    let mut ids = request.headers().get_all("x-request-id").iter();
    let plain = match (ids.next(), ids.next()) {
        (Some(v), None) => {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= MAX_REQUEST_ID_LEN
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        }
        // None to keep, or several: generate one.
        _ => false,
    };
    if !plain {
        request.headers_mut().remove("x-request-id");
    }
    request
}

/// Generated request ids: random (version 4) UUIDs from the thread's CSPRNG, which is seeded
/// from the OS and reseeds itself, rather than one `getrandom` system call per request as
/// `tower_http`'s `MakeRequestUuid` does (the syscall showed once per request in `strace -c`).
#[derive(Debug, Clone, Copy, Default)]
struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
            .ok()
            .map(tower_http::request_id::RequestId::new)
    }
}

/// The tracing span of one request: method, path and the request id, so every log line
/// written while serving it names the request; the route template and the client's public
/// id are recorded into it once known.
fn request_span<B>(request: &axum::http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !crate::telemetry::exporting() {
        return tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.uri().path(),
            request_id = %id,
            route = tracing::field::Empty,
            client_id = tracing::field::Empty,
        );
    }
    // Exported over OTLP: also a server span named `{method} {route}` once the route is
    // known (HTTP semantic conventions), its status code, and `error` for 5xx answers.
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %id,
        route = tracing::field::Empty,
        client_id = tracing::field::Empty,
        "otel.name" = %request.method(),
        "otel.kind" = "server",
        "http.response.status_code" = tracing::field::Empty,
        "otel.status_code" = tracing::field::Empty,
    );
    crate::telemetry::continue_trace(&span, request.headers());
    span
}

/// The access log: one INFO line per request (target `gatehouse::access`), inside the
/// request's span (method, path, route template, request id, client id when known) with the
/// status and the latency. Never a credential: no headers, no query, no body.
fn access_log<B>(
    response: &axum::http::Response<B>,
    latency: std::time::Duration,
    span: &tracing::Span,
) {
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    tracing::info!(
        target: "gatehouse::access",
        status = response.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "served"
    );
}

/// The error shape of a listener: the public one speaks RFC 6749 §5.2 (`error`,
/// `error_description`, `Cache-Control: no-store`), the admin one the admin API's
/// `{error, message}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ErrorShape {
    OAuth,
    Admin,
}

/// Errors produced below the handlers (unknown route, body too large, timeout) come back as
/// JSON in the listener's own error shape, like every other error there.
async fn json_errors(response: Response, shape: ErrorShape) -> Response {
    let status = response.status();
    // JSON errors are the handlers' own; so are the console's HTML error pages.
    let is_own = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_own {
        return response;
    }
    let (error, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this method is not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("invalid_request", "the request body is too large"),
        StatusCode::REQUEST_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => (
            "temporarily_unavailable",
            "the request took too long; retry",
        ),
        s if s.is_client_error() => ("invalid_request", "the request is malformed"),
        _ => ("server_error", "an unexpected error occurred"),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = match shape {
        ErrorShape::OAuth => {
            parts
                .headers
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            parts
                .headers
                .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            serde_json::json!({"error": error, "error_description": message})
        }
        ErrorShape::Admin => serde_json::json!({"error": error, "message": message}),
    };
    Response::from_parts(parts, axum::body::Body::from(body.to_string()))
}

/// The CORS policy for one group of public routes. With no origins it adds nothing, so
/// browsers on other origins cannot read the answers. Credentials (cookies) are never
/// allowed: every endpoint here authenticates by header or body.
fn cors_layer(origins: &CorsOrigins, method: Method) -> CorsLayer {
    let allow_origin = match origins {
        CorsOrigins::None => return CorsLayer::new(),
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => {
            AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
        }
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([method])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            header::RETRY_AFTER,
            HeaderName::from_static("ratelimit"),
            HeaderName::from_static("ratelimit-policy"),
            header::WWW_AUTHENTICATE,
        ])
        .max_age(std::time::Duration::from_secs(600))
}

/// The layers every request on a listener passes through, wrapped once around the whole
/// router rather than added with `Router::layer`: axum boxes each router layer around every
/// route and clones that chain on each request, which the profile showed at ~49 boxed clones
/// (11 % of a token request's instructions). Layers that need the matched route (metrics)
/// or apply to some routes only (CORS) stay on the router.
fn with_common_layers(
    router: Router,
    config: &Config,
    body_limit: usize,
    shape: ErrorShape,
) -> Router {
    let stack = tower::ServiceBuilder::new()
        .layer(axum::middleware::map_response(move |r: Response| {
            json_errors(r, shape)
        }))
        .map_response(|r: axum::http::Response<_>| r.map(axum::body::Body::new))
        .map_request(keep_plain_request_id)
        .layer(SetRequestIdLayer::x_request_id(MakeRequestId))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(access_log),
        )
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(body_limit))
        .service(router);
    Router::new().fallback_service(stack)
}

/// Accept connections until shutdown; then stop accepting and wait (30 s at most) for
/// connections to finish their in-flight requests.
/// The answer to a request whose body did not arrive within the request deadline: 408, JSON,
/// and the connection closes (RFC 9110 §15.5.9).
fn request_timeout_response() -> Response {
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": "the request body did not arrive in time",
    });
    let mut response = (StatusCode::REQUEST_TIMEOUT, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Open connections per client address (IPv6 by /64: one host has a whole /64), capped.
#[derive(Clone)]
struct PerAddress {
    cap: usize,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

/// One counted connection; uncounted when dropped.
struct AddressSlot {
    key: std::net::IpAddr,
    open: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
}

impl PerAddress {
    fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            open: Arc::new(std::sync::Mutex::new(std::collections::HashMap::new())),
        }
    }

    fn key(ip: std::net::IpAddr) -> std::net::IpAddr {
        match ip {
            std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => std::net::IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    std::net::IpAddr::V6(std::net::Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    ))
                }
            },
            v4 => v4,
        }
    }

    /// A slot for one more connection from `ip`, or `None` when it already has `cap`.
    fn claim(&self, ip: std::net::IpAddr) -> Option<AddressSlot> {
        let key = Self::key(ip);
        let mut open = match self.open.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key,
            open: self.open.clone(),
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = match self.open.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// On SIGHUP, read the TLS certificate and key again (open connections keep theirs).
async fn reload_on_sighup(tls: crate::tls::Tls, mut shutdown: watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: the TLS certificate will not reload");
            return;
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match tls.reload() {
                        Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                        Err(e) => tracing::error!(error = %format!("{e:#}"), "SIGHUP: TLS certificate not reloaded; the previous one stays"),
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (tls, shutdown.changed().await);
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    config: Config,
    body_guard: BodyGuard,
    name: &'static str,
    tls: Option<crate::tls::Tls>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(config.max_connections));
    let per_address = PerAddress::new(config.max_connections_per_address);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        // One address may not hold more than its share: past it, the connection is closed
        // at once (before any byte is read).
        let Some(per_address) = per_address.claim(peer.ip()) else {
            tracing::debug!(
                listener = name,
                "connection refused: per-address cap reached"
            );
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let deadline = config.request_timeout;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let router = router.clone();
            match body_guard.check(request) {
                Admission::Pass(request) => Either::Left(router.oneshot(request)),
                // Rare (chunked or oversized bodies): boxed, to keep the common future small.
                // Reading the body here comes before the router's timeout layer, so it gets
                // the same deadline of its own: a stalled chunked body is cut off with 408.
                Admission::Hold(request) => Either::Right(Box::pin(async move {
                    match tokio::time::timeout(deadline, body_guard.admit(request)).await {
                        Ok(request) => router.oneshot(request).await,
                        Err(_) => Ok(request_timeout_response()),
                    }
                })),
            }
        });
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(64 * 1024);
        let Some(tls) = &tls else {
            let conn = graceful.watch(http1.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                let _permit = permit;
                let _per_address = per_address;
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
            continue;
        };
        // TLS: the handshake has the header deadline; then HTTP/2 or HTTP/1.1 as negotiated.
        let acceptor = tls.acceptor();
        let watcher = graceful.watcher();
        let handshake_deadline = config.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _per_address = per_address;
            let stream =
                match tokio::time::timeout(handshake_deadline, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!("TLS handshake timed out");
                        return;
                    }
                };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
            let result = if h2 {
                let mut http2 =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
                http2.timer(TokioTimer::new()).max_concurrent_streams(100);
                watcher
                    .watch(http2.serve_connection(TokioIo::new(stream), service))
                    .await
            } else {
                watcher
                    .watch(http1.serve_connection(TokioIo::new(stream), service))
                    .await
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!(listener = name, "connections still open after 30 s; closing them");
        }
    }
}
