//! Configuration: flags, then `GATEHOUSE_*` environment variables, then an optional TOML file
//! (`--config`), then defaults — validated once at start into [`Config`].

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use gatehouse_jwks::SigningAlg;
use ipnet::IpNet;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Default database: a SQLite file in the working directory, created if missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://gatehouse.db?mode=rwc";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: an OAuth 2.0 / OpenID Connect authorization server for machine-to-machine API access"
)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub settings: Settings,
}

impl Cli {
    /// Parse the command line and the `GATEHOUSE_*` environment. A variable set to an empty
    /// or blank value counts as unset, for every setting (`docker compose` passes `VAR=""`
    /// for optional settings left empty). Exits with clap's message on a usage error.
    pub fn parse_env_aware() -> Self {
        Self::try_parse_from_env(std::env::args_os(), |name| std::env::var_os(name))
            .unwrap_or_else(|e| e.exit())
    }

    /// [`Cli::parse_env_aware`] with the arguments and the environment lookup given: an
    /// argument whose variable `env` reports empty or blank forgets that variable.
    pub fn try_parse_from_env<I, T>(
        args: I,
        env: impl Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
    ) -> std::result::Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::FromArgMatches;
        let matches = Self::env_aware_command(&env).try_get_matches_from(args)?;
        Self::from_arg_matches(&matches)
    }

    /// The command definition, with every argument whose variable `env` reports blank
    /// forgetting that variable.
    fn env_aware_command(
        env: &impl Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
    ) -> clap::Command {
        use clap::CommandFactory;
        let blank = |name: &std::ffi::OsStr| {
            env(name).is_some_and(|v| v.to_string_lossy().trim().is_empty())
        };
        Self::command().mut_args(|arg| {
            if arg.get_env().is_some_and(blank) {
                arg.env(None::<&str>)
            } else {
                arg
            }
        })
    }

    /// `gatehouse config check`: every setting that was given, its value (secrets elided)
    /// and where it came from (flag, environment, TOML file); the rest take their defaults.
    pub fn explain_from_env<I, T>(
        args: I,
        env: impl Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
    ) -> Result<Vec<SettingLine>>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let command = Self::env_aware_command(&env);
        let matches = command.clone().try_get_matches_from(args)?;
        // The deepest subcommand's matches carry global arguments given after it too.
        let mut levels = vec![&matches];
        while let Some((_, sub)) = levels.last().and_then(|m| m.subcommand()) {
            levels.push(sub);
        }
        let file: Option<toml::Table> = match matches.get_one::<PathBuf>("config") {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Some(toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?)
            }
            None => None,
        };
        let mut lines = Vec::new();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if arg.get_long().is_none() || matches!(id, "help" | "version") {
                continue;
            }
            let secret = arg.is_hide_env_values_set();
            let show = |raw: String| {
                if id.ends_with("_url") && !id.ends_with("admin_url") {
                    redact_url(&raw)
                } else if secret {
                    "[secret elided]".to_owned()
                } else {
                    raw
                }
            };
            let given = levels.iter().rev().find_map(|m| {
                use clap::parser::ValueSource;
                let source = match m.value_source(id)? {
                    ValueSource::CommandLine => Source::Flag,
                    ValueSource::EnvVariable => Source::Env,
                    _ => return None,
                };
                let raw: Vec<String> = m
                    .get_raw(id)?
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                Some((source, raw.join(",")))
            });
            let (source, value) = match given {
                Some((source, raw)) => (source, Some(show(raw))),
                None => match file.as_ref().and_then(|t| t.get(id)) {
                    Some(v) => (
                        Source::File,
                        Some(show(match v {
                            toml::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })),
                    ),
                    None => (Source::Default, None),
                },
            };
            lines.push(SettingLine {
                setting: format!("--{}", arg.get_long().unwrap_or(id)),
                env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                value,
                source,
            });
        }
        Ok(lines)
    }
}

/// Where a setting's value came from (flags win over the environment, which wins over the
/// TOML file, which wins over the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A command-line flag.
    Flag,
    /// A `GATEHOUSE_*` variable.
    Env,
    /// The TOML file (`GATEHOUSE_CONFIG`).
    File,
    /// Not given: the default.
    Default,
}

/// One setting as `gatehouse config check` shows it.
#[derive(Debug, serde::Serialize)]
pub struct SettingLine {
    /// The flag.
    pub setting: String,
    /// The environment variable.
    pub env: Option<String>,
    /// The value given (secrets elided), or `None` for the default.
    pub value: Option<String>,
    /// Where it came from.
    pub source: Source,
}

/// `gatehouse config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Show every setting (secrets elided) and where it came from, then the effective
    /// configuration; exit 1 if it is not valid.
    Check,
}

/// `gatehouse secret-key …`.
#[derive(Debug, Subcommand)]
pub enum SecretKeyCommand {
    /// Print a fresh random key (base64url of 32 bytes) for GATEHOUSE_SECRET_KEY.
    Generate,
    /// Seal every signing key and `jwt`/hmac secret again under GATEHOUSE_SECRET_KEY, reading
    /// what GATEHOUSE_SECRET_KEY_PREVIOUS sealed. Online; run it after every instance has both.
    Rotate,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Signing keys: list them, or rotate.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Administrators: a way back in when every admin credential is lost.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// The configuration: `gatehouse config check`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The master key (GATEHOUSE_SECRET_KEY) that encrypts signing keys and HMAC secrets.
    #[command(subcommand)]
    SecretKey(SecretKeyCommand),
    /// Back the database up into a new file (SQLite: online, while the server serves;
    /// PostgreSQL: pg_dump). Restoring needs the same GATEHOUSE_SECRET_KEY.
    Backup {
        /// The backup file to create (never overwritten; written mode 0600).
        file: PathBuf,
    },
    /// Restore the database from a backup (stop the server first).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// Replace an existing SQLite database file.
        #[arg(long)]
        force: bool,
    },
    /// Commands that talk to a running server (admin API, token, introspection).
    #[command(flatten)]
    Remote(gatehouse_cli::RemoteCommand),
}

/// `gatehouse admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a fresh admin client (an `oauth2` profile with `gatehouse:admin`) directly in
    /// the database, write its credentials to a new mode-0600 file and print where; audited
    /// as `admin.recover`. Works on a running deployment (the database is shared).
    Recover {
        /// The file to create (must not exist; default: `gatehouse.recovery-<time>.json` in
        /// GATEHOUSE_DATA_DIR).
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// `gatehouse keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys (never private material).
    List,
    /// Make the next key sign now; running instances pick it up (at once on PostgreSQL,
    /// through NOTIFY; within a minute otherwise).
    Rotate {
        /// Rotate even if the next key was published less than GATEHOUSE_KEY_PUBLISH_AHEAD ago.
        #[arg(long)]
        force: bool,
    },
}

/// Every setting, as flag or environment variable. TOML keys are the flag names with `_`.
#[derive(Default, Clone, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// TOML configuration file (lowest precedence after defaults).
    #[arg(long, env = "GATEHOUSE_CONFIG", global = true)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Database URL: `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`.
    #[arg(
        long,
        env = "GATEHOUSE_DATABASE_URL",
        global = true,
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// File holding GATEHOUSE_DATABASE_URL (it may carry a password).
    #[arg(long, env = "GATEHOUSE_DATABASE_URL_FILE", global = true)]
    pub database_url_file: Option<PathBuf>,
    /// Public listener (token, JWKS, discovery).
    #[arg(long, env = "GATEHOUSE_PUBLIC_ADDR", global = true)]
    pub public_addr: Option<SocketAddr>,
    /// Admin listener (admin API, docs, metrics).
    #[arg(long, env = "GATEHOUSE_ADMIN_ADDR", global = true)]
    pub admin_addr: Option<SocketAddr>,
    /// Issuer URL, byte for byte as it appears in tokens; https unless the host is loopback.
    #[arg(long, env = "GATEHOUSE_ISSUER", global = true)]
    pub issuer: Option<String>,
    /// Public base URL of the admin listener; the audience of admin tokens.
    #[arg(long, env = "GATEHOUSE_ADMIN_URL", global = true)]
    pub admin_url: Option<String>,
    /// 32 bytes, base64url: encrypts private keys at rest. Required on PostgreSQL.
    #[arg(
        long,
        env = "GATEHOUSE_SECRET_KEY",
        global = true,
        hide_env_values = true
    )]
    pub secret_key: Option<String>,
    /// File holding GATEHOUSE_SECRET_KEY.
    #[arg(long, env = "GATEHOUSE_SECRET_KEY_FILE", global = true)]
    pub secret_key_file: Option<PathBuf>,
    /// During a master-key change: the key in use before, accepted for reading only (see
    /// `gatehouse secret-key rotate`).
    #[arg(
        long,
        env = "GATEHOUSE_SECRET_KEY_PREVIOUS",
        global = true,
        hide_env_values = true
    )]
    pub secret_key_previous: Option<String>,
    /// File holding GATEHOUSE_SECRET_KEY_PREVIOUS.
    #[arg(long, env = "GATEHOUSE_SECRET_KEY_PREVIOUS_FILE", global = true)]
    pub secret_key_previous_file: Option<PathBuf>,
    /// Signing algorithm of new keys: ES256 (default), RS256, EdDSA.
    #[arg(long, env = "GATEHOUSE_SIGNING_ALG", global = true)]
    pub signing_alg: Option<String>,
    /// Longest access token lifetime (default 24h). Durations take units: `90`, `90s`,
    /// `15m`, `1h`, `1d`, `1h30m`.
    #[arg(long, env = "GATEHOUSE_MAX_TOKEN_TTL", global = true)]
    pub max_token_ttl: Option<Seconds>,
    /// Comma-separated CIDRs of proxies whose X-Forwarded-For is believed.
    #[arg(
        long,
        env = "GATEHOUSE_TRUSTED_PROXIES",
        global = true,
        value_delimiter = ','
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// Log format: text (default) or json.
    #[arg(long, env = "GATEHOUSE_LOG_FORMAT", global = true)]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `gatehouse=debug` (RUST_LOG syntax).
    #[arg(long, env = "GATEHOUSE_LOG", global = true)]
    pub log: Option<String>,
    /// Most API keys one profile may hold (default 20).
    #[arg(long, env = "GATEHOUSE_MAX_API_KEYS_PER_PROFILE", global = true)]
    pub max_api_keys_per_profile: Option<u32>,
    /// Seconds a fetched remote key set (an identity provider's discovery document and JWKS,
    /// a JWKS URL) is reused before a background refresh (default 600).
    #[arg(long, env = "GATEHOUSE_REMOTE_KEYS_TTL", global = true)]
    pub remote_keys_ttl: Option<Seconds>,
    /// Least seconds between two fetches of one remote key set, also when an unknown `kid`
    /// asks for a refresh (default 30).
    #[arg(long, env = "GATEHOUSE_REMOTE_KEYS_MIN_REFRESH", global = true)]
    pub remote_keys_min_refresh: Option<Seconds>,
    /// CIDRs and host names outbound fetches (discovery, JWKS URLs) may reach although
    /// internal, and over http; comma separated. Default: none (public https hosts only).
    #[arg(
        long,
        env = "GATEHOUSE_OUTBOUND_ALLOW",
        global = true,
        value_delimiter = ','
    )]
    pub outbound_allow: Option<Vec<String>>,
    /// Browser origins allowed to call `/oauth/token` and `/oauth/revoke` (CORS), comma
    /// separated, e.g. `https://app.example.com`; `*` for any. Default: none.
    #[arg(
        long,
        env = "GATEHOUSE_CORS_TOKEN_ORIGINS",
        global = true,
        value_delimiter = ','
    )]
    pub cors_token_origins: Option<Vec<String>>,
    /// Browser origins allowed to read discovery and the JWKS (CORS), comma separated.
    /// Default: `*` (they are public documents); an empty value turns CORS off.
    #[arg(
        long,
        env = "GATEHOUSE_CORS_DISCOVERY_ORIGINS",
        global = true,
        value_delimiter = ','
    )]
    pub cors_discovery_origins: Option<Vec<String>>,
    /// Redis shared by every instance for rate limits and quotas.
    #[arg(
        long,
        env = "GATEHOUSE_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub redis_url: Option<String>,
    /// File holding GATEHOUSE_REDIS_URL (it may carry a password).
    #[arg(long, env = "GATEHOUSE_REDIS_URL_FILE", global = true)]
    pub redis_url_file: Option<PathBuf>,
    /// Most entries of each in-memory registry cache (profiles, verified secrets, API keys,
    /// revocation lookups; default 100000). Nothing is loaded at start; entries arrive on use.
    #[arg(long, env = "GATEHOUSE_CACHE_ENTRIES", global = true)]
    pub cache_entries: Option<usize>,
    /// Seconds a cached registry entry may be used on PostgreSQL before it is reloaded
    /// (default 300). Changes reach every instance at once through LISTEN/NOTIFY (or, while
    /// that connection is down, by clearing the caches every second); this bound only
    /// covers a notification lost in between. Ignored on SQLite.
    #[arg(long, env = "GATEHOUSE_CACHE_TTL", global = true)]
    pub cache_ttl: Option<Seconds>,
    /// Seconds a signing key signs before the scheduled rotation (default 2592000 = 30 days;
    /// 0 = rotate only on demand).
    #[arg(long, env = "GATEHOUSE_KEY_ROTATION_INTERVAL", global = true)]
    pub key_rotation_interval: Option<Seconds>,
    /// Seconds the next signing key is published in the JWKS before it may sign (default
    /// 3600; keep it above the JWKS max-age of 300).
    #[arg(long, env = "GATEHOUSE_KEY_PUBLISH_AHEAD", global = true)]
    pub key_publish_ahead: Option<Seconds>,
    /// Seconds between writes of usage and quota counters to the database (default 10;
    /// also written at shutdown).
    #[arg(long, env = "GATEHOUSE_COUNTER_FLUSH_INTERVAL", global = true)]
    pub counter_flush_interval: Option<Seconds>,
    /// Seconds between sweeps of expired rows (used assertion ids, revoked-token ids, API-key
    /// and secret grace periods; default 600).
    #[arg(long, env = "GATEHOUSE_SWEEP_INTERVAL", global = true)]
    pub sweep_interval: Option<Seconds>,
    /// Rate limits while Redis is unreachable: `open` (default: each instance limits on its
    /// own) or `closed` (refuse limited requests).
    #[arg(long, env = "GATEHOUSE_RATELIMIT_FAILURE", global = true)]
    pub ratelimit_failure: Option<String>,
    /// Failed authentications from IPv6 addresses count per network of this many bits
    /// (default 64: one /64 is one budget; 32..=128). IPv4-mapped addresses count as IPv4.
    #[arg(long, env = "GATEHOUSE_THROTTLE_IPV6_PREFIX", global = true)]
    pub throttle_ipv6_prefix: Option<u8>,
    /// `oauth_client_id` of the bootstrap admin created on an empty database.
    #[arg(long, env = "GATEHOUSE_BOOTSTRAP_CLIENT_ID", global = true)]
    pub bootstrap_client_id: Option<String>,
    /// Secret of the bootstrap admin.
    #[arg(
        long,
        env = "GATEHOUSE_BOOTSTRAP_CLIENT_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub bootstrap_client_secret: Option<String>,
    /// File holding GATEHOUSE_BOOTSTRAP_CLIENT_SECRET.
    #[arg(long, env = "GATEHOUSE_BOOTSTRAP_CLIENT_SECRET_FILE", global = true)]
    pub bootstrap_client_secret_file: Option<PathBuf>,
    /// Do not run migrations at start.
    #[arg(long, env = "GATEHOUSE_SKIP_MIGRATIONS", global = true)]
    pub skip_migrations: Option<bool>,
    /// Directory for generated files (secret key, bootstrap credentials); default: beside the
    /// SQLite database, or the working directory.
    #[arg(long, env = "GATEHOUSE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Longest time to serve one request, body included (default 30s).
    #[arg(long, env = "GATEHOUSE_REQUEST_TIMEOUT", global = true)]
    pub request_timeout: Option<Seconds>,
    /// Most open connections per listener (default 10000).
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS", global = true)]
    pub max_connections: Option<usize>,
    /// Most open connections from one client address (IPv6: one /64; default 256).
    #[arg(long, env = "GATEHOUSE_MAX_CONNECTIONS_PER_ADDRESS", global = true)]
    pub max_connections_per_address: Option<usize>,
    /// PostgreSQL connection pool size per instance (default 16; SQLite always uses one).
    #[arg(long, env = "GATEHOUSE_DATABASE_MAX_CONNECTIONS", global = true)]
    pub database_max_connections: Option<u32>,
    /// How long to wait to connect to the database or for a pooled connection (default 5s).
    #[arg(long, env = "GATEHOUSE_DATABASE_TIMEOUT", global = true)]
    pub database_timeout: Option<Seconds>,
    /// PEM certificate chain: both listeners speak TLS (HTTP/2 and HTTP/1.1 by ALPN). SIGHUP
    /// reloads it and the key without dropping connections.
    #[arg(long, env = "GATEHOUSE_TLS_CERT_FILE", global = true)]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "GATEHOUSE_TLS_KEY_FILE", global = true)]
    pub tls_key_file: Option<PathBuf>,
    /// OpenTelemetry collector (OTLP over HTTP, protobuf), e.g. `http://collector:4318`:
    /// request spans are exported to `<endpoint>/v1/traces`, continuing W3C `traceparent`.
    /// Off when unset.
    #[arg(long, env = "GATEHOUSE_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,
    /// Share of new traces exported, 0.0–1.0 (default 1.0); a request carrying a
    /// `traceparent` follows its caller's sampling decision.
    #[arg(long, env = "GATEHOUSE_OTLP_SAMPLE_RATIO", global = true)]
    pub otlp_sample_ratio: Option<f64>,
}

/// OpenTelemetry trace export: the collector's traces URL and the root sampling ratio.
#[derive(Debug, Clone, PartialEq)]
pub struct Otlp {
    /// Where spans are POSTed (OTLP/HTTP, protobuf): the endpoint given, with `/v1/traces`
    /// appended unless it already ends so.
    pub traces_url: url::Url,
    /// Share of new (root) traces sampled; a caller's `traceparent` decides for its own.
    pub sample_ratio: f64,
}

impl Otlp {
    /// Validate `GATEHOUSE_OTLP_ENDPOINT` and `GATEHOUSE_OTLP_SAMPLE_RATIO`; `None` when no
    /// endpoint is set.
    fn from_settings(endpoint: Option<&str>, ratio: Option<f64>) -> Result<Option<Self>> {
        let sample_ratio = ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sample_ratio) {
            bail!("GATEHOUSE_OTLP_SAMPLE_RATIO: {sample_ratio} (use a number from 0.0 to 1.0)");
        }
        let Some(endpoint) = endpoint.map(str::trim).filter(|e| !e.is_empty()) else {
            return Ok(None);
        };
        // The value is not repeated in errors: it may hold credentials by mistake.
        let mut url = url::Url::parse(endpoint)
            .context("GATEHOUSE_OTLP_ENDPOINT is not a URL (e.g. http://collector:4318)")?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            bail!("GATEHOUSE_OTLP_ENDPOINT: use an http:// or https:// URL with a host");
        }
        // Configuration is printed (`gatehouse config check`, the start-up log): credentials
        // belong in OTEL_EXPORTER_OTLP_HEADERS, not in the URL.
        if !url.username().is_empty() || url.password().is_some() {
            bail!(
                "GATEHOUSE_OTLP_ENDPOINT: no credentials in the URL; give them as headers in OTEL_EXPORTER_OTLP_HEADERS"
            );
        }
        if url.query().is_some() || url.fragment().is_some() {
            bail!("GATEHOUSE_OTLP_ENDPOINT: no query or fragment");
        }
        if !url.path().ends_with("/v1/traces") {
            let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
            url.set_path(&path);
        }
        Ok(Some(Otlp {
            traces_url: url,
            sample_ratio,
        }))
    }
}

/// A duration in whole seconds, written with units (`90`, `90s`, `15m`, `1h`, `1d`,
/// `1h30m`) in flags, the environment and the TOML file (where a bare integer also works).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl std::str::FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        let text = text.trim();
        let bad = || format!("`{text}` is not a duration (use e.g. 90, 90s, 15m, 1h, 1d, 1h30m)");
        if text.is_empty() {
            return Err(bad());
        }
        if let Ok(n) = text.parse::<u64>() {
            return Ok(Seconds(n));
        }
        let mut total: u64 = 0;
        let mut digits = String::new();
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let unit: u64 = match c {
                's' => 1,
                'm' => 60,
                'h' => 3_600,
                'd' => 86_400,
                _ => return Err(bad()),
            };
            let n: u64 = digits.parse().map_err(|_| bad())?;
            digits.clear();
            total = n
                .checked_mul(unit)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
        }
        if !digits.is_empty() {
            return Err(bad());
        }
        Ok(Seconds(total))
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Seconds(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

impl Seconds {
    fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.0)
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so a new field cannot be added without deciding how it is shown.
        let Settings {
            config,
            database_url,
            database_url_file,
            public_addr,
            admin_addr,
            issuer,
            admin_url,
            secret_key,
            secret_key_file,
            secret_key_previous,
            secret_key_previous_file,
            signing_alg,
            max_token_ttl,
            trusted_proxies,
            log_format,
            log,
            max_api_keys_per_profile,
            remote_keys_ttl,
            remote_keys_min_refresh,
            outbound_allow,
            cors_token_origins,
            cors_discovery_origins,
            redis_url,
            redis_url_file,
            cache_entries,
            cache_ttl,
            key_rotation_interval,
            key_publish_ahead,
            counter_flush_interval,
            sweep_interval,
            ratelimit_failure,
            bootstrap_client_id,
            bootstrap_client_secret,
            bootstrap_client_secret_file,
            skip_migrations,
            data_dir,
            throttle_ipv6_prefix,
            request_timeout,
            max_connections,
            max_connections_per_address,
            database_max_connections,
            database_timeout,
            tls_cert_file,
            tls_key_file,
            otlp_endpoint,
            otlp_sample_ratio,
        } = self;
        f.debug_struct("Settings")
            .field("config", config)
            .field("database_url", &database_url.as_deref().map(redact_url))
            .field("database_url_file", database_url_file)
            .field("public_addr", public_addr)
            .field("admin_addr", admin_addr)
            .field("issuer", issuer)
            .field("admin_url", admin_url)
            .field(
                "secret_key",
                &secret_key.as_ref().map(|_| "[secret elided]"),
            )
            .field("secret_key_file", secret_key_file)
            .field(
                "secret_key_previous",
                &secret_key_previous.as_ref().map(|_| "[secret elided]"),
            )
            .field("secret_key_previous_file", secret_key_previous_file)
            .field("signing_alg", signing_alg)
            .field("max_token_ttl", max_token_ttl)
            .field("trusted_proxies", trusted_proxies)
            .field("log_format", log_format)
            .field("log", log)
            .field("max_api_keys_per_profile", max_api_keys_per_profile)
            .field("remote_keys_ttl", remote_keys_ttl)
            .field("remote_keys_min_refresh", remote_keys_min_refresh)
            .field("outbound_allow", outbound_allow)
            .field("cors_token_origins", cors_token_origins)
            .field("cors_discovery_origins", cors_discovery_origins)
            .field("redis_url", &redis_url.as_deref().map(redact_url))
            .field("redis_url_file", redis_url_file)
            .field("cache_entries", cache_entries)
            .field("cache_ttl", cache_ttl)
            .field("key_rotation_interval", key_rotation_interval)
            .field("key_publish_ahead", key_publish_ahead)
            .field("counter_flush_interval", counter_flush_interval)
            .field("sweep_interval", sweep_interval)
            .field("ratelimit_failure", ratelimit_failure)
            .field("bootstrap_client_id", bootstrap_client_id)
            .field(
                "bootstrap_client_secret",
                &bootstrap_client_secret.as_ref().map(|_| "[secret elided]"),
            )
            .field("bootstrap_client_secret_file", bootstrap_client_secret_file)
            .field("skip_migrations", skip_migrations)
            .field("data_dir", data_dir)
            .field("throttle_ipv6_prefix", throttle_ipv6_prefix)
            .field("request_timeout", request_timeout)
            .field("max_connections", max_connections)
            .field("max_connections_per_address", max_connections_per_address)
            .field("database_max_connections", database_max_connections)
            .field("database_timeout", database_timeout)
            .field("tls_cert_file", tls_cert_file)
            .field("tls_key_file", tls_key_file)
            .field("otlp_endpoint", otlp_endpoint)
            .field("otlp_sample_ratio", otlp_sample_ratio)
            .finish()
    }
}

impl Settings {
    /// Fill unset values from `other` (lower precedence).
    fn or(self, other: Settings) -> Settings {
        Settings {
            config: self.config.or(other.config),
            database_url: self.database_url.or(other.database_url),
            database_url_file: self.database_url_file.or(other.database_url_file),
            public_addr: self.public_addr.or(other.public_addr),
            admin_addr: self.admin_addr.or(other.admin_addr),
            issuer: self.issuer.or(other.issuer),
            admin_url: self.admin_url.or(other.admin_url),
            secret_key: self.secret_key.or(other.secret_key),
            secret_key_file: self.secret_key_file.or(other.secret_key_file),
            secret_key_previous: self.secret_key_previous.or(other.secret_key_previous),
            secret_key_previous_file: self
                .secret_key_previous_file
                .or(other.secret_key_previous_file),
            signing_alg: self.signing_alg.or(other.signing_alg),
            max_token_ttl: self.max_token_ttl.or(other.max_token_ttl),
            trusted_proxies: self.trusted_proxies.or(other.trusted_proxies),
            cors_token_origins: self.cors_token_origins.or(other.cors_token_origins),
            cors_discovery_origins: self.cors_discovery_origins.or(other.cors_discovery_origins),
            log_format: self.log_format.or(other.log_format),
            log: self.log.or(other.log),
            max_api_keys_per_profile: self
                .max_api_keys_per_profile
                .or(other.max_api_keys_per_profile),
            remote_keys_ttl: self.remote_keys_ttl.or(other.remote_keys_ttl),
            remote_keys_min_refresh: self
                .remote_keys_min_refresh
                .or(other.remote_keys_min_refresh),
            // An empty value counts as unset: the TOML file's list applies.
            outbound_allow: self
                .outbound_allow
                .filter(|v| v.iter().any(|s| !s.trim().is_empty()))
                .or(other.outbound_allow),
            redis_url: self.redis_url.or(other.redis_url),
            redis_url_file: self.redis_url_file.or(other.redis_url_file),
            ratelimit_failure: self.ratelimit_failure.or(other.ratelimit_failure),
            throttle_ipv6_prefix: self.throttle_ipv6_prefix.or(other.throttle_ipv6_prefix),
            counter_flush_interval: self.counter_flush_interval.or(other.counter_flush_interval),
            sweep_interval: self.sweep_interval.or(other.sweep_interval),
            key_rotation_interval: self.key_rotation_interval.or(other.key_rotation_interval),
            cache_entries: self.cache_entries.or(other.cache_entries),
            cache_ttl: self.cache_ttl.or(other.cache_ttl),
            key_publish_ahead: self.key_publish_ahead.or(other.key_publish_ahead),
            bootstrap_client_id: self.bootstrap_client_id.or(other.bootstrap_client_id),
            bootstrap_client_secret: self
                .bootstrap_client_secret
                .or(other.bootstrap_client_secret),
            bootstrap_client_secret_file: self
                .bootstrap_client_secret_file
                .or(other.bootstrap_client_secret_file),
            skip_migrations: self.skip_migrations.or(other.skip_migrations),
            data_dir: self.data_dir.or(other.data_dir),
            request_timeout: self.request_timeout.or(other.request_timeout),
            max_connections: self.max_connections.or(other.max_connections),
            max_connections_per_address: self
                .max_connections_per_address
                .or(other.max_connections_per_address),
            database_max_connections: self
                .database_max_connections
                .or(other.database_max_connections),
            database_timeout: self.database_timeout.or(other.database_timeout),
            tls_cert_file: self.tls_cert_file.or(other.tls_cert_file),
            tls_key_file: self.tls_key_file.or(other.tls_key_file),
            otlp_endpoint: self.otlp_endpoint.or(other.otlp_endpoint),
            otlp_sample_ratio: self.otlp_sample_ratio.or(other.otlp_sample_ratio),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration. Its `Debug` elides every secret (the master key, the
/// bootstrap secret, passwords in the database and Redis URLs), so a `{:?}` cannot leak them.
#[derive(Clone)]
pub struct Config {
    /// The clock every expiry, window and lifetime is measured with (the system clock; tests
    /// inject a [`gatehouse_registry::clock::ManualClock`] and move time instead of sleeping).
    pub clock: Arc<dyn gatehouse_registry::clock::Clock>,
    /// Database URL.
    pub database_url: String,
    /// Public listener address (port 0 picks one).
    pub public_addr: SocketAddr,
    /// Admin listener address.
    pub admin_addr: SocketAddr,
    /// Issuer; `None` derives `http://<bound public address>` (loopback only).
    pub issuer: Option<String>,
    /// Admin base URL; `None` derives `http://<bound admin address>`.
    pub admin_url: Option<String>,
    /// Master key text (base64url of 32 bytes).
    pub secret_key: Option<String>,
    /// The previous master key, for reading only during a key change.
    pub secret_key_previous: Option<String>,
    /// Algorithm for new signing keys.
    pub signing_alg: SigningAlg,
    /// Longest token lifetime, seconds.
    pub max_token_ttl: i64,
    /// Trusted proxies.
    pub trusted_proxies: Vec<IpNet>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log: String,
    /// API keys per profile.
    pub max_api_keys_per_profile: u32,
    /// Bootstrap admin client id.
    pub bootstrap_client_id: Option<String>,
    /// Bootstrap admin secret.
    pub bootstrap_client_secret: Option<String>,
    /// Run migrations at start.
    pub run_migrations: bool,
    /// Where generated files go.
    pub data_dir: PathBuf,
    /// Per-request timeout.
    pub request_timeout: std::time::Duration,
    /// Time allowed to send the request head (slow-header protection).
    pub header_read_timeout: std::time::Duration,
    /// Most concurrent connections per listener.
    pub max_connections: usize,
    /// Most connections open at once from one address (an IPv6 /64 counts as one), so a
    /// single client cannot take the whole connection budget (default 256).
    pub max_connections_per_address: usize,
    /// PostgreSQL pool size.
    pub database_max_connections: u32,
    /// TLS certificate chain and key files (`None`: plain HTTP).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Where request spans go (`None`: no OpenTelemetry export).
    pub otlp: Option<Otlp>,
    /// Database connect and pool-acquire timeout.
    pub database_timeout: std::time::Duration,
    /// How long a remote key set is reused before a background refresh.
    pub remote_keys_ttl: std::time::Duration,
    /// Least time between two fetches of one remote key set.
    pub remote_keys_min_refresh: std::time::Duration,
    /// Internal CIDRs and host names outbound fetches may reach (`GATEHOUSE_OUTBOUND_ALLOW`).
    pub outbound_allow: gatehouse_jwks::outbound::OutboundAllow,
    /// Redis shared by every instance for rate limits and quotas.
    pub redis_url: Option<String>,
    /// What limited requests get while Redis is unreachable.
    pub ratelimit_failure: gatehouse_registry::limits::FailureMode,
    /// Prefix length of the IPv6 network one failed-authentication budget covers.
    pub throttle_ipv6_prefix: u8,
    /// How often usage and quota counters are written to the database.
    pub counter_flush_interval: std::time::Duration,
    /// How often expired rows are swept.
    pub sweep_interval: std::time::Duration,
    /// How long a key signs before the scheduled rotation (`None`: on demand only).
    pub key_rotation_interval: Option<std::time::Duration>,
    /// How long the next key is published before it may sign.
    pub key_publish_ahead: std::time::Duration,
    /// How often the key lifecycle is checked (scheduled rotation, expiry, reload).
    pub key_check_interval: std::time::Duration,
    /// Bound of each registry cache (entries).
    pub cache_entries: usize,
    /// Safety-net lifetime of a cached registry entry on PostgreSQL.
    pub cache_ttl: std::time::Duration,
    /// Browser origins allowed on the token and revocation endpoints.
    pub cors_token_origins: CorsOrigins,
    /// Browser origins allowed on discovery and the JWKS.
    pub cors_discovery_origins: CorsOrigins,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so a new field cannot be added without deciding how it is shown.
        let Config {
            clock,
            database_url,
            public_addr,
            admin_addr,
            issuer,
            admin_url,
            secret_key,
            secret_key_previous,
            signing_alg,
            max_token_ttl,
            trusted_proxies,
            log_format,
            log,
            max_api_keys_per_profile,
            bootstrap_client_id,
            bootstrap_client_secret,
            run_migrations,
            data_dir,
            throttle_ipv6_prefix,
            request_timeout,
            header_read_timeout,
            max_connections,
            max_connections_per_address,
            database_max_connections,
            database_timeout,
            tls,
            otlp,
            remote_keys_ttl,
            remote_keys_min_refresh,
            outbound_allow,
            redis_url,
            ratelimit_failure,
            counter_flush_interval,
            sweep_interval,
            key_rotation_interval,
            key_publish_ahead,
            key_check_interval,
            cache_entries,
            cache_ttl,
            cors_token_origins,
            cors_discovery_origins,
        } = self;
        f.debug_struct("Config")
            .field("clock", clock)
            .field("database_url", &redact_url(database_url))
            .field("public_addr", public_addr)
            .field("admin_addr", admin_addr)
            .field("issuer", issuer)
            .field("admin_url", admin_url)
            .field(
                "secret_key",
                &secret_key.as_ref().map(|_| "[secret elided]"),
            )
            .field(
                "secret_key_previous",
                &secret_key_previous.as_ref().map(|_| "[secret elided]"),
            )
            .field("signing_alg", signing_alg)
            .field("max_token_ttl", max_token_ttl)
            .field("trusted_proxies", trusted_proxies)
            .field("log_format", log_format)
            .field("log", log)
            .field("max_api_keys_per_profile", max_api_keys_per_profile)
            .field("bootstrap_client_id", bootstrap_client_id)
            .field(
                "bootstrap_client_secret",
                &bootstrap_client_secret.as_ref().map(|_| "[secret elided]"),
            )
            .field("run_migrations", run_migrations)
            .field("data_dir", data_dir)
            .field("throttle_ipv6_prefix", throttle_ipv6_prefix)
            .field("request_timeout", request_timeout)
            .field("header_read_timeout", header_read_timeout)
            .field("max_connections", max_connections)
            .field("max_connections_per_address", max_connections_per_address)
            .field("remote_keys_ttl", remote_keys_ttl)
            .field("remote_keys_min_refresh", remote_keys_min_refresh)
            .field("outbound_allow", outbound_allow)
            .field("redis_url", &redis_url.as_deref().map(redact_url))
            .field("ratelimit_failure", ratelimit_failure)
            .field("counter_flush_interval", counter_flush_interval)
            .field("sweep_interval", sweep_interval)
            .field("key_rotation_interval", key_rotation_interval)
            .field("key_publish_ahead", key_publish_ahead)
            .field("key_check_interval", key_check_interval)
            .field("cache_entries", cache_entries)
            .field("cache_ttl", cache_ttl)
            .field("cors_token_origins", cors_token_origins)
            .field("cors_discovery_origins", cors_discovery_origins)
            .field("database_max_connections", database_max_connections)
            .field("database_timeout", database_timeout)
            .field("tls", tls)
            .field("otlp", otlp)
            .finish()
    }
}

/// A URL with its password (if any) replaced, for logs and `Debug`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("[secret elided]"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "[unparsable URL elided]".to_owned(),
    }
}

/// Which browser origins a CORS policy admits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No CORS headers: browsers on other origins cannot read the answers.
    #[default]
    None,
    /// Any origin (`Access-Control-Allow-Origin: *`; credentials are never allowed).
    Any,
    /// Exactly these origins (`scheme://host[:port]`, compared byte for byte).
    List(Vec<String>),
}

impl CorsOrigins {
    /// Parse a list from configuration; `what` names the variable in errors.
    pub fn parse(items: &[String], what: &str) -> Result<Self> {
        let items: Vec<&str> = items
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if items.is_empty() {
            return Ok(CorsOrigins::None);
        }
        if items.contains(&"*") {
            if items.len() > 1 {
                bail!("{what}: `*` cannot be combined with other origins");
            }
            return Ok(CorsOrigins::Any);
        }
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let url = url::Url::parse(item)
                .with_context(|| format!("{what}: `{item}` is not an origin URL"))?;
            // An origin is scheme, host and port only (RFC 6454 §6.2), with no trailing slash.
            let origin = url.origin().ascii_serialization();
            if !matches!(url.scheme(), "http" | "https") || origin != item {
                bail!("{what}: `{item}` is not an origin (use scheme://host[:port], no path)");
            }
            out.push(origin);
        }
        Ok(CorsOrigins::List(out))
    }
}

fn read_secret_file(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text.trim().to_owned())
}

/// The directory of a SQLite database file, if the URL names one.
pub fn sqlite_dir(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.contains(":memory:") {
        return None;
    }
    let parent = Path::new(path)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    Some(if parent.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        parent
    })
}

impl Config {
    /// Build from command-line settings (already merged with the environment by clap) and the
    /// optional TOML file they name.
    pub fn from_settings(cli: Settings) -> Result<Self> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str::<Settings>(&text)
                    .with_context(|| format!("parsing {}", path.display()))?
            }
            None => Settings::default(),
        };
        let s = cli.or(file);
        let database_url = match (s.database_url, &s.database_url_file) {
            (Some(url), _) => url,
            (None, Some(f)) => read_secret_file(f)?,
            (None, None) => DEFAULT_DATABASE_URL.to_owned(),
        };
        let redis_url = match (s.redis_url, &s.redis_url_file) {
            (Some(url), _) => Some(url),
            (None, Some(f)) => Some(read_secret_file(f)?),
            (None, None) => None,
        };
        let secret_key = match (s.secret_key, s.secret_key_file) {
            (Some(k), _) => Some(k),
            (None, Some(f)) => Some(read_secret_file(&f)?),
            (None, None) => None,
        };
        let secret_key_previous = match (s.secret_key_previous, s.secret_key_previous_file) {
            (Some(k), _) => Some(k),
            (None, Some(f)) => Some(read_secret_file(&f)?),
            (None, None) => None,
        };
        let bootstrap_client_secret =
            match (s.bootstrap_client_secret, s.bootstrap_client_secret_file) {
                (Some(k), _) => Some(k),
                (None, Some(f)) => Some(read_secret_file(&f)?),
                (None, None) => None,
            };
        let signing_alg = match s.signing_alg.as_deref() {
            None => SigningAlg::default(),
            Some(a) => SigningAlg::parse(a).with_context(|| {
                format!(
                    "GATEHOUSE_SIGNING_ALG: unknown algorithm `{a}` (use ES256, RS256 or EdDSA)"
                )
            })?,
        };
        let trusted_proxies = s
            .trusted_proxies
            .unwrap_or_default()
            .iter()
            .filter(|p| !p.trim().is_empty())
            .map(|p| {
                let p = p.trim();
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
                    .with_context(|| format!("GATEHOUSE_TRUSTED_PROXIES: `{p}` is not a CIDR"))
            })
            .collect::<Result<Vec<_>>>()?;
        let log_format = match s.log_format.as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("GATEHOUSE_LOG_FORMAT: `{other}` (use text or json)"),
        };
        let ratelimit_failure = match s.ratelimit_failure.as_deref() {
            None | Some("open") => gatehouse_registry::limits::FailureMode::Open,
            Some("closed") => gatehouse_registry::limits::FailureMode::Closed,
            Some(other) => bail!("GATEHOUSE_RATELIMIT_FAILURE: `{other}` (use open or closed)"),
        };
        let throttle_ipv6_prefix = s
            .throttle_ipv6_prefix
            .unwrap_or(gatehouse_registry::limits::DEFAULT_IPV6_PREFIX);
        if !(32..=128).contains(&throttle_ipv6_prefix) {
            bail!("GATEHOUSE_THROTTLE_IPV6_PREFIX must be between 32 and 128 (default 64)");
        }
        if let Some(url) = redis_url.as_deref() {
            gatehouse_registry::limits::Limiter::validate_redis_url(url)
                .map_err(|e| anyhow::anyhow!(e))?;
        }
        let secs = |v: Option<Seconds>, default: u64| v.map_or(default, |s| s.0);
        let counter_flush_interval =
            std::time::Duration::from_secs(secs(s.counter_flush_interval, 10).clamp(1, 3600));
        let max_token_ttl = i64::try_from(secs(s.max_token_ttl, 86_400)).unwrap_or(i64::MAX);
        if max_token_ttl < 60 {
            bail!("GATEHOUSE_MAX_TOKEN_TTL must be at least 60 seconds");
        }
        let data_dir = s
            .data_dir
            .or_else(|| sqlite_dir(&database_url))
            .unwrap_or_else(|| PathBuf::from("."));
        let config = Config {
            clock: Arc::new(gatehouse_registry::clock::SystemClock),
            database_url,
            public_addr: s
                .public_addr
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            admin_addr: s
                .admin_addr
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8081))),
            issuer: s.issuer,
            admin_url: s.admin_url,
            secret_key,
            secret_key_previous,
            signing_alg,
            max_token_ttl,
            trusted_proxies,
            log_format,
            log: s.log.unwrap_or_else(|| "info".to_owned()),
            max_api_keys_per_profile: s.max_api_keys_per_profile.unwrap_or(20),
            remote_keys_ttl: std::time::Duration::from_secs(secs(s.remote_keys_ttl, 600).max(1)),
            remote_keys_min_refresh: std::time::Duration::from_secs(secs(
                s.remote_keys_min_refresh,
                30,
            )),
            outbound_allow: gatehouse_jwks::outbound::OutboundAllow::parse(
                &s.outbound_allow.unwrap_or_default(),
            )
            .map_err(|e| anyhow::anyhow!("GATEHOUSE_OUTBOUND_ALLOW: {e}"))?,
            redis_url,
            ratelimit_failure,
            throttle_ipv6_prefix,
            counter_flush_interval,
            sweep_interval: std::time::Duration::from_secs(
                secs(s.sweep_interval, 600).clamp(1, 86_400),
            ),
            key_rotation_interval: match secs(s.key_rotation_interval, 2_592_000) {
                0 => None,
                secs => Some(std::time::Duration::from_secs(secs)),
            },
            key_publish_ahead: std::time::Duration::from_secs(secs(s.key_publish_ahead, 3600)),
            key_check_interval: std::time::Duration::from_secs(30),
            cache_entries: s.cache_entries.unwrap_or(100_000).clamp(1_000, 10_000_000),
            cache_ttl: std::time::Duration::from_secs(secs(s.cache_ttl, 300).clamp(1, 86_400)),
            cors_token_origins: CorsOrigins::parse(
                &s.cors_token_origins.unwrap_or_default(),
                "GATEHOUSE_CORS_TOKEN_ORIGINS",
            )?,
            cors_discovery_origins: CorsOrigins::parse(
                &s.cors_discovery_origins
                    .unwrap_or_else(|| vec!["*".to_owned()]),
                "GATEHOUSE_CORS_DISCOVERY_ORIGINS",
            )?,
            bootstrap_client_id: s.bootstrap_client_id,
            bootstrap_client_secret,
            run_migrations: !s.skip_migrations.unwrap_or(false),
            data_dir,
            request_timeout: std::time::Duration::from_secs(
                secs(s.request_timeout, 30).clamp(1, 3_600),
            ),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: s.max_connections.unwrap_or(10_000).max(1),
            max_connections_per_address: s.max_connections_per_address.unwrap_or(256).max(1),
            database_max_connections: s.database_max_connections.unwrap_or(16).clamp(1, 1_000),
            database_timeout: s
                .database_timeout
                .map_or(std::time::Duration::from_secs(5), Seconds::duration)
                .max(std::time::Duration::from_secs(1)),
            tls: match (s.tls_cert_file, s.tls_key_file) {
                (Some(cert), Some(key)) => Some((cert, key)),
                (None, None) => None,
                _ => bail!("GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE go together"),
            },
            otlp: Otlp::from_settings(s.otlp_endpoint.as_deref(), s.otlp_sample_ratio)?,
        };
        if let Some(issuer) = &config.issuer {
            validate_issuer(issuer)?;
        }
        Ok(config)
    }

    /// A configuration for tests: random loopback ports, the given database and data dir.
    pub fn for_tests(database_url: String, data_dir: PathBuf) -> Self {
        Config {
            clock: Arc::new(gatehouse_registry::clock::SystemClock),
            database_url,
            public_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            issuer: None,
            admin_url: None,
            secret_key: None,
            secret_key_previous: None,
            signing_alg: SigningAlg::default(),
            max_token_ttl: 86_400,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            log: "info".to_owned(),
            max_api_keys_per_profile: 20,
            bootstrap_client_id: None,
            bootstrap_client_secret: None,
            run_migrations: true,
            data_dir,
            request_timeout: std::time::Duration::from_secs(30),
            header_read_timeout: std::time::Duration::from_secs(10),
            max_connections: 10_000,
            max_connections_per_address: 256,
            database_max_connections: 16,
            database_timeout: std::time::Duration::from_secs(5),
            tls: None,
            otlp: None,
            remote_keys_ttl: std::time::Duration::from_secs(600),
            remote_keys_min_refresh: std::time::Duration::from_secs(30),
            outbound_allow: gatehouse_jwks::outbound::OutboundAllow::default(),
            redis_url: None,
            ratelimit_failure: gatehouse_registry::limits::FailureMode::Open,
            throttle_ipv6_prefix: gatehouse_registry::limits::DEFAULT_IPV6_PREFIX,
            counter_flush_interval: std::time::Duration::from_secs(10),
            sweep_interval: std::time::Duration::from_secs(600),
            key_rotation_interval: None,
            key_publish_ahead: std::time::Duration::from_secs(3600),
            key_check_interval: std::time::Duration::from_secs(30),
            cache_entries: 100_000,
            cache_ttl: std::time::Duration::from_secs(300),
            cors_token_origins: CorsOrigins::None,
            cors_discovery_origins: CorsOrigins::Any,
        }
    }

    /// Whether the database is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://")
    }
}

/// Whether a host names the loopback interface.
pub fn is_loopback_host(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

/// The issuer must be an absolute https URL (http only on loopback), without query or
/// fragment (OIDC Discovery §3, RFC 8414 §2).
pub fn validate_issuer(issuer: &str) -> Result<()> {
    let url = url::Url::parse(issuer)
        .with_context(|| format!("GATEHOUSE_ISSUER `{issuer}` is not a URL"))?;
    if url.query().is_some() || url.fragment().is_some() {
        bail!("GATEHOUSE_ISSUER must not have a query or fragment");
    }
    let host = url.host().context("GATEHOUSE_ISSUER needs a host")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback_host(&host) => Ok(()),
        _ => bail!("GATEHOUSE_ISSUER must use https (http is allowed only on a loopback host)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_endpoint_gets_the_traces_path_and_refuses_what_would_leak_or_mislead() {
        let traces = |e: &str| {
            Otlp::from_settings(Some(e), None)
                .unwrap()
                .unwrap()
                .traces_url
                .to_string()
        };
        assert_eq!(
            traces("http://collector:4318"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(
            traces("https://otel.example/tenant-a/"),
            "https://otel.example/tenant-a/v1/traces"
        );
        assert_eq!(
            traces("http://collector:4318/v1/traces"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(Otlp::from_settings(None, None).unwrap(), None);
        assert_eq!(Otlp::from_settings(Some("  "), None).unwrap(), None);
        let ratio = Otlp::from_settings(Some("http://c:4318"), Some(0.25))
            .unwrap()
            .unwrap();
        assert_eq!(ratio.sample_ratio, 0.25);
        for (endpoint, ratio, says) in [
            ("collector:4318", None, "http:// or https://"),
            ("grpc://collector:4317", None, "http:// or https://"),
            ("not a url", None, "not a URL"),
            (
                "http://user:pw@collector:4318",
                None,
                "OTEL_EXPORTER_OTLP_HEADERS",
            ),
            ("http://collector:4318/?token=x", None, "no query"),
            ("http://collector:4318", Some(1.5), "0.0 to 1.0"),
            ("http://collector:4318", Some(-0.1), "0.0 to 1.0"),
            ("http://collector:4318", Some(f64::NAN), "0.0 to 1.0"),
        ] {
            let err = Otlp::from_settings(Some(endpoint), ratio).unwrap_err();
            assert!(format!("{err:#}").contains(says), "{endpoint}: {err:#}");
            assert!(!format!("{err:#}").contains("pw@"), "{err:#}");
        }
    }

    #[test]
    fn durations_take_units() {
        let p = |t: &str| t.parse::<Seconds>().map(|s| s.0);
        assert_eq!(p("90"), Ok(90));
        assert_eq!(p("90s"), Ok(90));
        assert_eq!(p("15m"), Ok(900));
        assert_eq!(p("1h30m"), Ok(5_400));
        assert_eq!(p("1d"), Ok(86_400));
        assert_eq!(p(" 2h "), Ok(7_200));
        for bad in ["", "5x", "m", "1h5", "-1s", "1.5h", "99999999999999999999d"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        let t: Settings = toml::from_str("cache_ttl = \"15m\"\nsweep_interval = 30").unwrap();
        assert_eq!(t.cache_ttl, Some(Seconds(900)));
        assert_eq!(t.sweep_interval, Some(Seconds(30)));
        assert!(toml::from_str::<Settings>("cache_ttl = \"soon\"").is_err());
    }

    /// No secret is one `{:?}` away from a log: the master key, the bootstrap secret and the
    /// passwords in the database and Redis URLs (given directly or through `*_FILE`).
    #[test]
    fn debug_output_elides_every_secret() {
        let dir = std::env::temp_dir().join(format!("gh-cfg-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db_file = dir.join("db-url");
        std::fs::write(
            &db_file,
            "postgres://gh:db-pass-FROM-FILE-1234@127.0.0.1/gh\n",
        )
        .unwrap();
        let settings = Settings {
            database_url_file: Some(db_file),
            redis_url: Some("redis://:redis-pass-5678@127.0.0.1:6379".to_owned()),
            secret_key: Some("bWFzdGVyLWtleS1tYXN0ZXIta2V5LW1hc3Rlci1rZXkhIQ".to_owned()),
            bootstrap_client_id: Some("gco_boot".to_owned()),
            bootstrap_client_secret: Some("bootstrap-secret-0123456789-abcdefghij".to_owned()),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        let config = Config::from_settings(settings).unwrap();
        assert_eq!(
            config.database_url,
            "postgres://gh:db-pass-FROM-FILE-1234@127.0.0.1/gh"
        );
        let shown = format!("{shown} {config:?} {config:#?}");
        for secret in [
            "db-pass-FROM-FILE-1234",
            "redis-pass-5678",
            "bWFzdGVyLWtleS1tYXN0ZXIta2V5LW1hc3Rlci1rZXkhIQ",
            "bootstrap-secret-0123456789-abcdefghij",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("[secret elided]"));
        assert!(shown.contains("gco_boot"), "non-secrets still show");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn issuer_rules() {
        assert!(validate_issuer("https://auth.example.com").is_ok());
        assert!(validate_issuer("http://127.0.0.1:8080").is_ok());
        assert!(validate_issuer("http://localhost:8080").is_ok());
        assert!(validate_issuer("http://[::1]:8080").is_ok());
        assert!(validate_issuer("http://auth.example.com").is_err());
        assert!(validate_issuer("https://auth.example.com/?x=1").is_err());
        assert!(validate_issuer("not a url").is_err());
    }

    #[test]
    fn outbound_allow_list() {
        let with = |list: &[&str]| {
            Config::from_settings(Settings {
                outbound_allow: Some(list.iter().map(|s| (*s).to_owned()).collect()),
                ..Settings::default()
            })
        };
        let c = with(&["10.0.0.0/8", " idp.corp ", "::1"]).unwrap();
        assert!(c.outbound_allow.covers_ip("10.1.2.3".parse().unwrap()));
        assert!(c.outbound_allow.names("idp.corp"));
        assert!(
            with(&[""]).unwrap().outbound_allow.is_empty(),
            "empty = unset"
        );
        let dir = std::env::temp_dir().join(format!("gh-cfg-outbound-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.toml");
        std::fs::write(&file, "outbound_allow = [\"10.0.0.0/8\"]\n").unwrap();
        let c = Config::from_settings(Settings {
            config: Some(file),
            outbound_allow: Some(vec![String::new()]),
            ..Settings::default()
        })
        .unwrap();
        assert!(
            c.outbound_allow.covers_ip("10.1.2.3".parse().unwrap()),
            "an empty flag or variable leaves the file's list in force"
        );
        assert!(
            Config::from_settings(Settings::default())
                .unwrap()
                .outbound_allow
                .is_empty()
        );
        let err = with(&["10.0.0.0/8", "https://idp.corp"]).unwrap_err();
        assert!(
            format!("{err:#}").contains("GATEHOUSE_OUTBOUND_ALLOW"),
            "{err:#}"
        );
    }

    #[test]
    fn sqlite_dirs() {
        assert_eq!(
            sqlite_dir("sqlite://gatehouse.db?mode=rwc"),
            Some(PathBuf::from("."))
        );
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/gh/g.db"),
            Some(PathBuf::from("/var/lib/gh"))
        );
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("postgres://x"), None);
    }

    #[test]
    fn flags_beat_file() {
        let dir = std::env::temp_dir().join(format!("gh-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("g.toml");
        std::fs::write(
            &file,
            "max_token_ttl = 600\nlog_format = \"json\"\nsigning_alg = \"EdDSA\"\n",
        )
        .unwrap();
        let cli = Settings {
            config: Some(file),
            max_token_ttl: Some(Seconds(900)),
            ..Settings::default()
        };
        let c = Config::from_settings(cli).unwrap();
        assert_eq!(c.max_token_ttl, 900);
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.signing_alg, SigningAlg::EdDsa);
    }

    #[test]
    fn the_ipv6_throttle_prefix_defaults_to_64_and_is_checked() {
        let c = Config::from_settings(Settings::default()).unwrap();
        assert_eq!(c.throttle_ipv6_prefix, 64);
        let with = |p| {
            Config::from_settings(Settings {
                throttle_ipv6_prefix: Some(p),
                ..Settings::default()
            })
        };
        assert_eq!(with(48).unwrap().throttle_ipv6_prefix, 48);
        assert_eq!(with(128).unwrap().throttle_ipv6_prefix, 128);
        assert!(with(16).is_err());
        assert!(with(129).is_err());
    }
}
