//! End-to-end test harness for Gatehouse.
//!
//! [`spawn_app`] starts the real server (both listeners on random loopback ports) on a fresh
//! database: a SQLite file in a temporary directory, or, when `GATEHOUSE_TEST_DATABASE_URL`
//! is set, a freshly created PostgreSQL database on that server. Tests then talk to it over
//! real HTTP with `reqwest`, exactly as an operator, a client or a resource server would.
//!
//! The harness owns no server logic: it only drives the public contract
//! (`shared/CONTRACT.md`) and offers helpers that keep the tests short.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once, OnceLock, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_server::{Config, Server};
use rand::Rng;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

pub mod fuzzing;
pub mod process;

pub use reqwest::StatusCode;
pub use serde_json::{Value, json};

/// The environment variable that switches the suite to PostgreSQL.
pub const PG_ENV: &str = "GATEHOUSE_TEST_DATABASE_URL";

/// `1`: a test that needs PostgreSQL fails without it instead of skipping. `.ci/run` sets it
/// for the PostgreSQL pass only (the SQLite pass of the same tests still skips).
pub const REQUIRE_PG_ENV: &str = "GATEHOUSE_TEST_REQUIRE_PG";

/// The Redis server of the tests that share limits through Redis.
pub const REDIS_ENV: &str = "GATEHOUSE_TEST_REDIS_URL";

/// `1`: a test that needs Redis fails without it instead of skipping (`.ci/run` sets it).
pub const REQUIRE_REDIS_ENV: &str = "GATEHOUSE_TEST_REQUIRE_REDIS";

/// `base` with `extra`'s members set; a `null` member removes the key (JSON Merge Patch,
/// RFC 7396, one level deep).
pub fn merged(mut base: Value, extra: Value) -> Value {
    if let (Some(obj), Value::Object(extra)) = (base.as_object_mut(), extra) {
        for (k, v) in extra {
            if v.is_null() {
                obj.remove(&k);
            } else {
                obj.insert(k, v);
            }
        }
    }
    base
}

/// The form content type of every OAuth endpoint.
const FORM: &str = "application/x-www-form-urlencoded";

/// A valid 1×1 RGBA PNG, for logo tests.
pub const TINY_PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

// ---------------------------------------------------------------------------------------------
// Log capture
// ---------------------------------------------------------------------------------------------

static LOG_INIT: Once = Once::new();
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static LOG_ECHO: OnceLock<bool> = OnceLock::new();

/// Set this environment variable to also see every captured log line on stderr.
pub const LOG_ECHO_ENV: &str = "GATEHOUSE_TEST_LOG_STDERR";

/// A `tracing` writer that appends to the process-wide log buffer.
struct CaptureWriter;

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        if *LOG_ECHO.get_or_init(|| std::env::var_os(LOG_ECHO_ENV).is_some()) {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once per process) a TRACE-level subscriber that writes every log line into a
/// buffer that [`captured_logs`] returns. Works under `cargo test` (one process, many tests)
/// and `cargo nextest` (one process per test).
pub fn init_logging() {
    LOG_INIT.call_once(|| {
        // If something else installed a global subscriber first, capture is impossible; the
        // secret-hygiene test notices because the buffer stays empty.
        let _ = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| CaptureWriter)
            .try_init();
    });
}

/// Everything logged in this process so far (every test's server, at TRACE level).
pub fn captured_logs() -> String {
    let logs = LOGS.lock().unwrap_or_else(PoisonError::into_inner);
    String::from_utf8_lossy(&logs).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------------

/// `n` random base62 characters.
pub fn random_base62(n: usize) -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

/// A name unique within the test: `prefix` plus a random suffix.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", random_base62(8).to_lowercase())
}

/// Decodes a JWT's header and claims without verifying anything.
pub fn decode_jwt_unverified(token: &str) -> anyhow::Result<(Value, Value)> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(_s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("not a compact JWS: {token}");
    };
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h)?)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(c)?)?;
    Ok((header, claims))
}

/// The signature part of a compact JWS.
pub fn jwt_signature(token: &str) -> String {
    token.rsplit('.').next().unwrap_or_default().to_owned()
}

/// The space-separated scope string as a set.
pub fn scope_set(scope: &str) -> BTreeSet<String> {
    scope.split_whitespace().map(str::to_owned).collect()
}

/// Lower-case hex of `s`'s bytes (how PostgreSQL prints `bytea`).
pub fn hex_lower(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// HTTP replies
// ---------------------------------------------------------------------------------------------

/// A fully read HTTP response, printable in assertion messages.
pub struct Reply {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Raw body.
    pub bytes: Vec<u8>,
}

impl Reply {
    /// Reads a `reqwest` response to the end.
    pub async fn read(resp: reqwest::Response) -> anyhow::Result<Self> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await?.to_vec();
        Ok(Self {
            status,
            headers,
            bytes,
        })
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The body as JSON; panics with the whole reply when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:?}"))
    }

    /// A header's value as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// Panics (printing the reply) unless the status is `status`; returns `self`.
    #[track_caller]
    pub fn expect_status(self, status: u16) -> Self {
        assert_eq!(self.status.as_u16(), status, "unexpected status: {self:?}");
        self
    }

    /// Panics (printing the reply) unless the status is 2xx; returns `self`.
    #[track_caller]
    pub fn expect_success(self) -> Self {
        assert!(self.status.is_success(), "expected 2xx: {self:?}");
        self
    }

    /// The `error` member of a JSON error body (panics when absent).
    #[track_caller]
    pub fn error_code(&self) -> String {
        let body = self.json();
        body.get("error")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("error body without a string `error`: {self:?}"))
            .to_owned()
    }

    /// Asserts an OAuth/admin error: this status, a JSON body, and this `error` code.
    #[track_caller]
    pub fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "unexpected status: {self:?}");
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "error body must be JSON (content-type {ct:?}): {self:?}"
        );
        assert_eq!(self.error_code(), code, "unexpected error code: {self:?}");
    }
}

impl fmt::Debug for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        for (k, v) in &self.headers {
            write!(f, "\n  {k}: {}", String::from_utf8_lossy(v.as_bytes()))?;
        }
        let text = self.text();
        let shown: String = text.chars().take(4000).collect();
        write!(f, "\n  body: {shown}")
    }
}

// ---------------------------------------------------------------------------------------------
// Test database
// ---------------------------------------------------------------------------------------------

/// A PostgreSQL database created for one test, dropped (best effort) with the app.
struct PgDatabase {
    server_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime: do the async work on a thread of its own.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(db) = Database::connect(server_url.as_str()).await {
                    let _ = db.execute_unprepared(&sql).await;
                    let _ = db.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

async fn create_pg_database(server_url: &str) -> anyhow::Result<(String, PgDatabase)> {
    let name = format!("gh_{}", random_base62(16).to_lowercase());
    let db = Database::connect(server_url)
        .await
        .with_context(|| format!("connecting to {PG_ENV}"))?;
    db.execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .context("CREATE DATABASE")?;
    db.close().await?;
    let mut url = url::Url::parse(server_url).context("parsing the PostgreSQL URL")?;
    url.set_path(&format!("/{name}"));
    Ok((
        url.to_string(),
        PgDatabase {
            server_url: server_url.to_owned(),
            name,
        },
    ))
}

// ---------------------------------------------------------------------------------------------
// The app under test
// ---------------------------------------------------------------------------------------------

type Tweak = Arc<dyn Fn(&mut Config) + Send + Sync>;

/// A running Gatehouse server on a fresh database, plus helpers to drive it.
pub struct TestApp {
    /// Public listener base URL, e.g. `http://127.0.0.1:41234`.
    pub public: String,
    /// Admin listener base URL.
    pub admin: String,
    /// The issuer the server reports.
    pub issuer: String,
    /// The HTTP client (no proxy, 60 s timeout, follows redirects).
    pub http: reqwest::Client,
    /// The bootstrap admin's `oauth_client_id`.
    pub bootstrap_id: String,
    /// The bootstrap admin's secret.
    pub bootstrap_secret: String,
    /// The database URL the server uses.
    pub database_url: String,
    /// The server's clock: move it (`advance`, `set`) instead of sleeping through an expiry
    /// or a window. It survives restarts.
    pub clock: Arc<gatehouse_registry::clock::ManualClock>,
    server: Option<Server>,
    data_dir: tempfile::TempDir,
    secret_key: Option<String>,
    tweak: Tweak,
    admin_token: tokio::sync::Mutex<Option<String>>,
    secrets: Mutex<Vec<String>>,
    // Declared last: dropped after everything else.
    _pg: Option<PgDatabase>,
}

/// `GATEHOUSE_OUTBOUND_ALLOW` as the harness sets it: loopback (`127.0.0.0/8`, `::1`), where
/// the suite's identity providers listen. A test that needs the production default (nothing
/// internal) sets `OutboundAllow::default()` in its tweak.
pub fn loopback_outbound_allow() -> gatehouse_jwks::outbound::OutboundAllow {
    gatehouse_jwks::outbound::OutboundAllow::parse(&["127.0.0.0/8", "::1"])
        .expect("loopback CIDRs parse")
}

/// Starts a server on a fresh database with the test defaults.
pub async fn spawn_app() -> anyhow::Result<TestApp> {
    spawn_app_with(|_| {}).await
}

/// Starts a server on a fresh database, letting `tweak` adjust the config first.
/// The tweak is applied again by [`TestApp::restart`].
pub async fn spawn_app_with(
    tweak: impl Fn(&mut Config) + Send + Sync + 'static,
) -> anyhow::Result<TestApp> {
    init_logging();
    let data_dir = tempfile::tempdir()?;
    let (database_url, pg, secret_key) = match std::env::var(PG_ENV) {
        Ok(server_url) if !server_url.trim().is_empty() => {
            let (url, pg) = create_pg_database(server_url.trim()).await?;
            let key = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
            (url, Some(pg), Some(key))
        }
        _ => {
            let path = data_dir.path().join("gh.db");
            (format!("sqlite://{}?mode=rwc", path.display()), None, None)
        }
    };
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;
    let mut app = TestApp {
        public: String::new(),
        admin: String::new(),
        issuer: String::new(),
        http,
        bootstrap_id: format!("gco_admin{}", random_base62(20)),
        bootstrap_secret: random_base62(48),
        database_url,
        clock: Arc::new(gatehouse_registry::clock::ManualClock::new()),
        server: None,
        data_dir,
        secret_key,
        tweak: Arc::new(tweak),
        admin_token: tokio::sync::Mutex::new(None),
        secrets: Mutex::new(Vec::new()),
        _pg: pg,
    };
    let bootstrap_secret = app.bootstrap_secret.clone();
    app.record_secret(&bootstrap_secret);
    // The master key (PostgreSQL runs give it as a setting) must never show either: the
    // secret searches cover it, the start-up log included.
    if let Some(key) = app.secret_key.clone() {
        app.record_secret(&key);
    }
    app.start().await?;
    Ok(app)
}

impl TestApp {
    /// The config this app starts with (the same every time, so a restart reopens the same
    /// database, data directory and secret key).
    pub fn config(&self) -> Config {
        let mut cfg = Config::for_tests(
            self.database_url.clone(),
            PathBuf::from(self.data_dir.path()),
        );
        cfg.clock = self.clock.clone();
        cfg.bootstrap_client_id = Some(self.bootstrap_id.clone());
        cfg.bootstrap_client_secret = Some(self.bootstrap_secret.clone());
        if let Some(key) = &self.secret_key {
            cfg.secret_key = Some(key.clone());
        }
        // The suite's identity providers (stubs, a second Gatehouse) listen on loopback.
        cfg.outbound_allow = loopback_outbound_allow();
        (self.tweak)(&mut cfg);
        cfg
    }

    async fn start(&mut self) -> anyhow::Result<()> {
        ensure!(self.server.is_none(), "server already running");
        let server = gatehouse_server::start(self.config())
            .await
            .context("gatehouse_server::start")?;
        self.public = format!("http://{}", server.public_addr);
        self.admin = format!("http://{}", server.admin_addr);
        self.issuer = server.issuer.clone();
        self.server = Some(server);
        *self.admin_token.lock().await = None;
        Ok(())
    }

    /// Shuts the server down gracefully (the database and data dir stay).
    pub async fn shutdown(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        Ok(())
    }

    /// Shuts down and starts again with the same config, database and data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.shutdown().await?;
        self.start().await
    }

    /// `public + path`.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }

    /// `admin + path` (path is absolute, e.g. `/admin/v1/clients`).
    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.admin)
    }

    /// `admin + /admin/v1 + path`.
    pub fn api_url(&self, path: &str) -> String {
        format!("{}/admin/v1{path}", self.admin)
    }

    // -- secrets bookkeeping ------------------------------------------------------------------

    /// Remembers a secret the test has seen, for the hygiene checks.
    pub fn record_secret(&self, secret: &str) {
        if !secret.is_empty() {
            self.secrets
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(secret.to_owned());
        }
    }

    /// Every secret recorded so far (bootstrap secret, generated secrets, token signatures).
    pub fn seen_secrets(&self) -> Vec<String> {
        self.secrets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    // -- plain HTTP -----------------------------------------------------------------------------

    /// GET on the public listener.
    pub async fn get_public(&self, path: &str) -> anyhow::Result<Reply> {
        Reply::read(self.http.get(self.public_url(path)).send().await?).await
    }

    /// GET on an absolute URL.
    pub async fn get_url(&self, url: &str) -> anyhow::Result<Reply> {
        Reply::read(self.http.get(url).send().await?).await
    }

    // -- OAuth token endpoint ---------------------------------------------------------------

    /// `POST /oauth/token` with exactly this form (nothing added), optional Basic
    /// credentials and extra headers.
    pub async fn token_form(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.token_raw(basic, body, headers).await
    }

    /// `POST /oauth/token` with this exact form-encoded body.
    pub async fn token_raw(
        &self,
        basic: Option<(&str, &str)>,
        body: String,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut req = self
            .http
            .post(self.public_url("/oauth/token"))
            .header(CONTENT_TYPE, FORM)
            .body(body);
        if let Some((id, secret)) = basic {
            req = req.basic_auth(id, Some(secret));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Reply::read(req.send().await?).await
    }

    /// Client credentials with `client_secret_basic`; `extra` is appended to
    /// `grant_type=client_credentials`.
    pub async fn token_basic(
        &self,
        id: &str,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend_from_slice(extra);
        self.token_form(Some((id, secret)), &form, &[]).await
    }

    /// Client credentials with `client_secret_post`; `extra` is appended.
    pub async fn token_post(
        &self,
        id: &str,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ];
        form.extend_from_slice(extra);
        self.token_form(None, &form, &[]).await
    }

    /// A client-credentials access token via Basic (asserts 200), recorded as a secret.
    pub async fn access_token(
        &self,
        id: &str,
        secret: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<String> {
        let reply = self.token_basic(id, secret, extra).await?;
        ensure!(
            reply.status == StatusCode::OK,
            "token request failed: {reply:?}"
        );
        let token = reply.json()["access_token"]
            .as_str()
            .with_context(|| format!("no access_token: {reply:?}"))?
            .to_owned();
        self.record_secret(&jwt_signature(&token));
        Ok(token)
    }

    /// An admin token for the bootstrap admin (cached per server start).
    pub async fn admin_token(&self) -> anyhow::Result<String> {
        let mut cached = self.admin_token.lock().await;
        if let Some(token) = cached.as_ref() {
            return Ok(token.clone());
        }
        let token = self
            .access_token(&self.bootstrap_id, &self.bootstrap_secret, &[])
            .await
            .context("bootstrap admin token")?;
        *cached = Some(token.clone());
        Ok(token)
    }

    // -- introspection (RFC 7662) and revocation (RFC 7009) -------------------------------------

    /// `POST {path}` on the public listener with this exact form-encoded body, authenticated
    /// as `auth` (HTTP Basic, form parameters prepended to the body, or a bearer token).
    pub async fn oauth_raw(&self, path: &str, auth: Auth<'_>, body: &str) -> anyhow::Result<Reply> {
        let mut req = self
            .http
            .post(self.public_url(path))
            .header(CONTENT_TYPE, FORM);
        let body = match auth {
            Auth::None => body.to_owned(),
            Auth::Basic(id, secret) => {
                req = req.basic_auth(id, Some(secret));
                body.to_owned()
            }
            Auth::Bearer(token) => {
                req = req.bearer_auth(token);
                body.to_owned()
            }
            Auth::Post(id, secret) => {
                let creds = url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("client_id", id)
                    .append_pair("client_secret", secret)
                    .finish();
                if body.is_empty() {
                    creds
                } else {
                    format!("{creds}&{body}")
                }
            }
        };
        Reply::read(req.body(body).send().await?).await
    }

    /// `POST {path}` with this form (credentials added as `auth` says).
    pub async fn oauth_form(
        &self,
        path: &str,
        auth: Auth<'_>,
        form: &[(&str, &str)],
    ) -> anyhow::Result<Reply> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.oauth_raw(path, auth, &body).await
    }

    /// `POST /oauth/introspect` with this form, authenticated as `auth`.
    pub async fn introspect(&self, auth: Auth<'_>, form: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.oauth_form("/oauth/introspect", auth, form).await
    }

    /// `POST /oauth/introspect` with only `token`, authenticated as `auth`.
    pub async fn introspect_token(&self, auth: Auth<'_>, token: &str) -> anyhow::Result<Reply> {
        self.introspect(auth, &[("token", token)]).await
    }

    /// `POST /oauth/revoke` with this form, authenticated as `auth`.
    pub async fn revoke(&self, auth: Auth<'_>, form: &[(&str, &str)]) -> anyhow::Result<Reply> {
        self.oauth_form("/oauth/revoke", auth, form).await
    }

    /// `POST /oauth/revoke` with only `token`, authenticated as `auth`.
    pub async fn revoke_token(&self, auth: Auth<'_>, token: &str) -> anyhow::Result<Reply> {
        self.revoke(auth, &[("token", token)]).await
    }

    /// An admin token of the bootstrap admin narrowed to `gatehouse:admin:read`.
    pub async fn read_only_admin_token(&self) -> anyhow::Result<String> {
        self.access_token(
            &self.bootstrap_id,
            &self.bootstrap_secret,
            &[("scope", "gatehouse:admin:read")],
        )
        .await
    }

    // -- admin API ------------------------------------------------------------------------------

    /// An admin API request with an explicit bearer token (or none) and optional JSON body.
    /// `path` is relative to `/admin/v1`.
    pub async fn admin_request_as(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let mut req = self.http.request(method.clone(), self.api_url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            let content_type = if method == Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            req = req
                .header(CONTENT_TYPE, content_type)
                .body(serde_json::to_vec(body)?);
        }
        Reply::read(req.send().await?).await
    }

    /// An admin API request as the bootstrap admin.
    pub async fn admin_request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Reply> {
        let token = self.admin_token().await?;
        self.admin_request_as(method, path, Some(&token), body)
            .await
    }

    /// `GET /admin/v1{path}` as the bootstrap admin.
    pub async fn admin_get(&self, path: &str) -> anyhow::Result<Reply> {
        self.admin_request(Method::GET, path, None).await
    }

    /// `POST /admin/v1{path}` with a JSON body as the bootstrap admin.
    pub async fn admin_post(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.admin_request(Method::POST, path, Some(body)).await
    }

    /// `PATCH /admin/v1{path}` with a JSON Merge Patch as the bootstrap admin.
    pub async fn admin_patch(&self, path: &str, body: &Value) -> anyhow::Result<Reply> {
        self.admin_request(Method::PATCH, path, Some(body)).await
    }

    /// `DELETE /admin/v1{path}` as the bootstrap admin.
    pub async fn admin_delete(&self, path: &str) -> anyhow::Result<Reply> {
        self.admin_request(Method::DELETE, path, None).await
    }

    /// A raw-body admin request (e.g. a logo upload) as the bootstrap admin.
    pub async fn admin_bytes(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        bytes: Vec<u8>,
    ) -> anyhow::Result<Reply> {
        let token = self.admin_token().await?;
        let req = self
            .http
            .request(method, self.api_url(path))
            .bearer_auth(token)
            .header(CONTENT_TYPE, content_type)
            .body(bytes);
        Reply::read(req.send().await?).await
    }

    /// Follows `next_cursor` from `path` (which may carry a query) with this page size,
    /// returning every page's items and the number of pages.
    pub async fn admin_list_all(
        &self,
        path: &str,
        limit: usize,
    ) -> anyhow::Result<(Vec<Value>, usize)> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut url = format!("{path}{sep}limit={limit}");
            if let Some(c) = &cursor {
                let enc: String = url::form_urlencoded::byte_serialize(c.as_bytes()).collect();
                url.push_str(&format!("&cursor={enc}"));
            }
            let reply = self.admin_get(&url).await?;
            ensure!(reply.status == StatusCode::OK, "list {url}: {reply:?}");
            let body = reply.json();
            let page = body["items"]
                .as_array()
                .with_context(|| format!("no items array: {reply:?}"))?;
            ensure!(page.len() <= limit, "page larger than limit: {reply:?}");
            items.extend(page.iter().cloned());
            pages += 1;
            ensure!(pages < 1000, "pagination does not end");
            match &body["next_cursor"] {
                Value::String(c) => cursor = Some(c.clone()),
                Value::Null => break,
                other => bail!("next_cursor must be a string or null, got {other}"),
            }
        }
        Ok((items, pages))
    }

    /// Creates a collection (asserts 2xx) and records its introspection secret.
    pub async fn create_collection(
        &self,
        name: &str,
        audience: &str,
        scopes: &[&str],
    ) -> anyhow::Result<Value> {
        let scopes: Vec<Value> = scopes
            .iter()
            .map(|s| json!({"name": s, "description": format!("Scope {s}")}))
            .collect();
        self.create_collection_json(&json!({
            "name": name,
            "description": format!("The {name} API"),
            "audience": audience,
            "scopes": scopes,
            "integration_url": "https://integration.example.com/",
            "documentation_url": "https://docs.example.com/",
        }))
        .await
    }

    /// Creates a collection from a full JSON body (asserts 2xx).
    pub async fn create_collection_json(&self, body: &Value) -> anyhow::Result<Value> {
        let reply = self.admin_post("/collections", body).await?;
        ensure!(reply.status.is_success(), "create collection: {reply:?}");
        let created = reply.json();
        if let Some(s) = created["introspection_client_secret"].as_str() {
            self.record_secret(s);
        }
        Ok(created)
    }

    /// Creates a client outside any project (asserts 2xx).
    pub async fn create_client(&self, name: &str) -> anyhow::Result<Value> {
        self.create_client_json(&json!({
            "name": name,
            "description": format!("Client {name}"),
            "contact": {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"},
        }))
        .await
    }

    /// Creates a project (asserts 201) and returns its id.
    pub async fn create_project(&self, name: &str) -> anyhow::Result<String> {
        let reply = self
            .admin_post(
                "/projects",
                &json!({"name": name, "description": "test project"}),
            )
            .await?;
        ensure!(reply.status.as_u16() == 201, "create project: {reply:?}");
        reply.json()["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("project without id: {reply:?}"))
    }

    /// Creates a client from a full JSON body (asserts 2xx).
    pub async fn create_client_json(&self, body: &Value) -> anyhow::Result<Value> {
        let reply = self.admin_post("/clients", body).await?;
        ensure!(reply.status.is_success(), "create client: {reply:?}");
        Ok(reply.json())
    }

    /// Creates an access profile on a client (asserts 2xx) and records its secret.
    pub async fn create_profile(&self, client_id: &str, body: &Value) -> anyhow::Result<Value> {
        let reply = self
            .admin_post(&format!("/clients/{client_id}/access-profiles"), body)
            .await?;
        ensure!(reply.status.is_success(), "create profile: {reply:?}");
        let created = reply.json();
        if let Some(s) = created["oauth_client_secret"].as_str() {
            self.record_secret(s);
        }
        Ok(created)
    }

    /// A collection with `scopes`, a client, and an oauth2 profile on them; `profile_extra`
    /// is merged into the profile's create body.
    pub async fn oauth_fixture(
        &self,
        scopes: &[&str],
        profile_extra: Value,
    ) -> anyhow::Result<Fixture> {
        let name = unique("orders");
        let audience = format!("https://{name}.example.com/api");
        let collection = self.create_collection(&name, &audience, scopes).await?;
        let client = self.create_client(&unique("acme")).await?;
        let mut body = json!({
            "name": unique("backend"),
            "description": "Backend job",
            "auth_type": "oauth2",
            "collections": [collection["id"]],
        });
        if let (Some(obj), Value::Object(extra)) = (body.as_object_mut(), profile_extra) {
            obj.extend(extra);
        }
        let profile = self
            .create_profile(str_field(&client, "id")?, &body)
            .await?;
        Ok(Fixture {
            oauth_client_id: str_field(&profile, "oauth_client_id")?.to_owned(),
            oauth_client_secret: str_field(&profile, "oauth_client_secret")?.to_owned(),
            audience,
            collection,
            client,
            profile,
        })
    }

    // -- keys and verification ----------------------------------------------------------------

    /// `GET /oauth/jwks` (asserts 200).
    pub async fn jwks(&self) -> anyhow::Result<Value> {
        let reply = self.get_public("/oauth/jwks").await?;
        ensure!(reply.status == StatusCode::OK, "jwks: {reply:?}");
        Ok(reply.json())
    }

    /// Verifies `token` with `jsonwebtoken` against the published JWKS: signature (key chosen
    /// by `kid`), `exp`, and the audience when given. Returns the claims.
    pub async fn verify_token(&self, token: &str, audience: Option<&str>) -> anyhow::Result<Value> {
        let jwks = self.jwks().await?;
        verify_with_jwks(&jwks, token, audience, None)
    }

    // -- database -----------------------------------------------------------------------------

    /// Every row of every table of the server's database, as text: see [`dump_database`].
    pub async fn db_dump(&self) -> anyhow::Result<String> {
        dump_database(&self.database_url).await
    }
}

/// Every row of every table of the database at `database_url`, as text (one line per value,
/// `table.column=value` on SQLite; `table: (row literal)` on PostgreSQL, where `bytea`
/// shows as hex).
pub async fn dump_database(database_url: &str) -> anyhow::Result<String> {
    let db = Database::connect(database_url).await?;
    let backend = db.get_database_backend();
    let mut out = String::new();
    match backend {
        DbBackend::Sqlite => {
            let tables = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT name FROM sqlite_master WHERE type = 'table'",
                ))
                .await?;
            for t in tables {
                let table: String = t.try_get("", "name")?;
                let cols = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await?;
                let cols: Vec<String> = cols
                    .iter()
                    .map(|c| c.try_get::<String>("", "name"))
                    .collect::<Result<_, _>>()?;
                if cols.is_empty() {
                    continue;
                }
                let select = cols
                    .iter()
                    .map(|c| format!("hex(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                let rows = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT {select} AS v FROM \"{table}\""),
                    ))
                    .await?;
                for row in rows {
                    let v: String = row.try_get("", "v")?;
                    for (col, hex) in cols.iter().zip(v.split('|')) {
                        let value = String::from_utf8_lossy(&hex_decode(hex)).into_owned();
                        out.push_str(&format!("{table}.{col}={value}\n"));
                    }
                }
            }
        }
        DbBackend::Postgres => {
            let tables = db
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT table_name::text AS name FROM information_schema.tables \
                     WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
                ))
                .await?;
            for t in tables {
                let table: String = t.try_get("", "name")?;
                let rows = db
                    .query_all_raw(Statement::from_string(
                        backend,
                        format!("SELECT CAST(t AS TEXT) AS v FROM \"{table}\" AS t"),
                    ))
                    .await?;
                for row in rows {
                    let v: String = row.try_get("", "v")?;
                    out.push_str(&format!("{table}: {v}\n"));
                }
            }
        }
        other => bail!("unsupported backend {other:?}"),
    }
    db.close().await?;
    Ok(out)
}

/// Panics unless `reply` carries `Cache-Control: no-store`.
#[track_caller]
pub fn assert_no_store(reply: &Reply) {
    let cc = reply.header("cache-control").unwrap_or_default();
    assert!(
        cc.to_ascii_lowercase().contains("no-store"),
        "Cache-Control: no-store expected: {reply:?}"
    );
}

/// Asserts an RFC 7662 inactive answer: 200, JSON, no-store, and exactly `{"active": false}`.
#[track_caller]
pub fn assert_inactive(reply: &Reply) {
    assert_eq!(reply.status.as_u16(), 200, "inactive is a 200: {reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{reply:?}"
    );
    assert_no_store(reply);
    assert_eq!(
        reply.json(),
        json!({"active": false}),
        "an inactive answer is exactly {{\"active\": false}}: {reply:?}"
    );
}

/// Asserts an RFC 7662 active answer (200, JSON, no-store, `active: true`); returns the body.
#[track_caller]
pub fn assert_active(reply: &Reply) -> Value {
    assert_eq!(reply.status.as_u16(), 200, "{reply:?}");
    assert!(
        reply
            .header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{reply:?}"
    );
    assert_no_store(reply);
    let body = reply.json();
    assert_eq!(body["active"], json!(true), "expected active: {reply:?}");
    body
}

/// How a caller authenticates at the introspection and revocation endpoints.
#[derive(Debug, Clone, Copy)]
pub enum Auth<'a> {
    /// No credentials at all.
    None,
    /// HTTP Basic (`client_secret_basic`).
    Basic(&'a str, &'a str),
    /// `client_id` and `client_secret` in the form (`client_secret_post`).
    Post(&'a str, &'a str),
    /// `Authorization: Bearer` (an admin token).
    Bearer(&'a str),
}

/// A collection's introspection credentials (`introspection_client_id`, and the
/// `introspection_client_secret` its create response carried).
pub fn collection_credentials(collection: &Value) -> anyhow::Result<(&str, &str)> {
    Ok((
        str_field(collection, "introspection_client_id")?,
        str_field(collection, "introspection_client_secret")?,
    ))
}

/// A collection, a client and an oauth2 profile, with the profile's credentials.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The collection as created.
    pub collection: Value,
    /// Its audience.
    pub audience: String,
    /// The client as created.
    pub client: Value,
    /// The profile as created (includes the secret).
    pub profile: Value,
    /// The profile's `oauth_client_id`.
    pub oauth_client_id: String,
    /// The profile's `oauth_client_secret`.
    pub oauth_client_secret: String,
}

impl Fixture {
    /// The profile id.
    pub fn profile_id(&self) -> &str {
        self.profile["id"].as_str().unwrap_or_default()
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        self.client["id"].as_str().unwrap_or_default()
    }

    /// The collection id.
    pub fn collection_id(&self) -> &str {
        self.collection["id"].as_str().unwrap_or_default()
    }

    /// The collection's introspection credentials, as Basic.
    pub fn collection_basic(&self) -> Auth<'_> {
        Auth::Basic(
            self.collection["introspection_client_id"]
                .as_str()
                .unwrap_or_default(),
            self.collection["introspection_client_secret"]
                .as_str()
                .unwrap_or_default(),
        )
    }

    /// The collection's introspection credentials, as form parameters.
    pub fn collection_post(&self) -> Auth<'_> {
        match self.collection_basic() {
            Auth::Basic(id, secret) => Auth::Post(id, secret),
            other => other,
        }
    }

    /// The profile's oauth2 credentials, as Basic.
    pub fn client_basic(&self) -> Auth<'_> {
        Auth::Basic(&self.oauth_client_id, &self.oauth_client_secret)
    }

    /// The profile's oauth2 credentials, as form parameters.
    pub fn client_post(&self) -> Auth<'_> {
        Auth::Post(&self.oauth_client_id, &self.oauth_client_secret)
    }
}

/// A string member of a JSON object, or an error naming it.
pub fn str_field<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .with_context(|| format!("missing string `{key}` in {v}"))
}

/// Verifies `token` against `jwks` with `jsonwebtoken` (a JOSE library other than the
/// server's): the key is chosen by `kid`, the algorithm is the key's `alg`; `exp` is always
/// checked, the audience and issuer when given. Returns the claims.
pub fn verify_with_jwks(
    jwks: &Value,
    token: &str,
    audience: Option<&str>,
    issuer: Option<&str>,
) -> anyhow::Result<Value> {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};

    let set: JwkSet = serde_json::from_value(jwks.clone()).context("parsing the JWKS")?;
    let header = decode_header(token).context("decoding the JWT header")?;
    let kid = header.kid.context("token header has no kid")?;
    let jwk = set
        .find(&kid)
        .with_context(|| format!("kid {kid} not in the JWKS"))?;
    let alg = match jwk.common.key_algorithm {
        Some(jsonwebtoken::jwk::KeyAlgorithm::RS256) => Algorithm::RS256,
        Some(jsonwebtoken::jwk::KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
        _ => Algorithm::ES256,
    };
    ensure!(
        header.alg == alg,
        "header alg {:?} != key alg {alg:?}",
        header.alg
    );
    let key = DecodingKey::from_jwk(jwk).context("JWK to decoding key")?;
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    validation.leeway = 5;
    match audience {
        Some(aud) => validation.set_audience(&[aud]),
        None => validation.validate_aud = false,
    }
    if let Some(iss) = issuer {
        validation.set_issuer(&[iss]);
    }
    let data = decode::<Value>(token, &key, &validation).context("verifying the JWT")?;
    Ok(data.claims)
}

/// The `gatehouse` server binary beside this test binary's target directory (built by
/// `cargo build -p gatehouse-server`; `.ci/run` builds every binary before the tests), for
/// tests that run the real process. Absent: `None` after a printed reason, or an error under
/// `GATEHOUSE_TEST_REQUIRE_PG_FAULTS=1`, which CI sets.
pub fn server_binary() -> anyhow::Result<Option<PathBuf>> {
    // <target>/debug/deps/e2e-… → <target>/debug/gatehouse (whatever CARGO_TARGET_DIR is).
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent()?.parent().map(|d| d.join("gatehouse")));
    let bin = beside.filter(|b| b.is_file()).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/gatehouse")
    });
    if bin.is_file() {
        return Ok(Some(bin));
    }
    skip_unless_required(
        "GATEHOUSE_TEST_REQUIRE_PG_FAULTS",
        &format!(
            "no server binary at {} (cargo build -p gatehouse-server)",
            bin.display()
        ),
    )?;
    Ok(None)
}

/// A fresh, empty PostgreSQL database on the server named by `GATEHOUSE_TEST_DATABASE_URL`
/// (dropped when the guard is dropped), or `None` when the suite runs on SQLite.
pub async fn fresh_pg_database() -> anyhow::Result<Option<(String, impl Drop)>> {
    match std::env::var(PG_ENV) {
        Ok(server_url) if !server_url.trim().is_empty() => {
            Ok(Some(create_pg_database(server_url.trim()).await?))
        }
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------------------------------------
// Tests that need something the machine may lack
// ---------------------------------------------------------------------------------------------

/// What a test needs is missing. With `switch=1` (CI sets it where the need is met) that is
/// an error, so the test fails; otherwise the reason is printed and the caller skips by
/// returning `Ok(())` — never a silent pass.
pub fn skip_unless_required(switch: &str, missing: &str) -> anyhow::Result<()> {
    let current = std::thread::current();
    // The test harness names each test's thread after the test.
    let test = current.name().unwrap_or("this test");
    if std::env::var(switch).is_ok_and(|v| v.trim() == "1") {
        bail!("{test}: {switch}=1 but {missing}");
    }
    eprintln!("SKIPPED {test}: {missing} ({switch}=1 makes this a failure)");
    Ok(())
}

/// A fresh PostgreSQL database for a test that only makes sense on PostgreSQL (several
/// instances on one database, advisory locks, LISTEN/NOTIFY), or `None` — the test skips —
/// when the suite runs on SQLite; an error under `GATEHOUSE_TEST_REQUIRE_PG=1`.
pub async fn pg_database_or_skip() -> anyhow::Result<Option<(String, impl Drop)>> {
    let db = fresh_pg_database().await?;
    if db.is_none() {
        skip_unless_required(
            REQUIRE_PG_ENV,
            &format!("needs PostgreSQL ({PG_ENV}=postgres://…)"),
        )?;
    }
    Ok(db)
}

/// The Redis URL for a test that needs a real Redis, or `None` — the test skips — when
/// `GATEHOUSE_TEST_REDIS_URL` is unset; an error under `GATEHOUSE_TEST_REQUIRE_REDIS=1`.
pub fn redis_url_or_skip() -> anyhow::Result<Option<String>> {
    match std::env::var(REDIS_ENV) {
        Ok(url) if !url.trim().is_empty() => Ok(Some(url.trim().to_owned())),
        _ => {
            skip_unless_required(
                REQUIRE_REDIS_ENV,
                &format!("needs Redis ({REDIS_ENV}=redis://127.0.0.1:6379)"),
            )?;
            Ok(None)
        }
    }
}
