//! `gatehouse-bench`: seed a database with many credentials, drive the public endpoints,
//! smoke-check a server binary. See the README's "Scale runs (bench tool)".

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use gatehouse_bench::credentials::Credentials;
use gatehouse_bench::load::{self, LoadOptions, Scenario, Target};
use gatehouse_bench::seed::{self, SeedOptions};
use gatehouse_bench::server::{self, Server, ServerSpec};
use gatehouse_bench::smoke::{self, SmokeOptions};
use gatehouse_bench::{attach_server, print_report};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(name = "gatehouse-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the migrations, then insert collections, clients, oauth2 profiles and API keys
    /// with multi-row inserts, and write their credentials (JSON lines, mode 0600).
    Seed(SeedArgs),
    /// Drive one scenario (or `all`, or a comma-separated list) against a running server,
    /// or against one this tool starts (--server-bin).
    Run(RunArgs),
    /// Small end-to-end check for CI: temp SQLite, seed, start the server, every scenario
    /// briefly, fail on any error.
    Smoke(SmokeArgs),
}

#[derive(clap::Args, Debug)]
struct SeedArgs {
    /// `sqlite://path?mode=rwc` or `postgres://user:pass@host/db`.
    #[arg(long, env = "GATEHOUSE_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// API collections.
    #[arg(long, default_value_t = 10)]
    collections: usize,
    /// Clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// oauth2 profiles (client credentials).
    #[arg(long, default_value_t = 100)]
    profiles: usize,
    /// API keys (held by `token` profiles, --keys-per-profile each).
    #[arg(long, default_value_t = 1000)]
    api_keys: usize,
    /// API keys per token profile (the server allows at most 20).
    #[arg(long, default_value_t = seed::MAX_KEYS_PER_PROFILE)]
    keys_per_profile: usize,
    /// Rows per multi-row INSERT.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Rows per transaction.
    #[arg(long, default_value_t = 10_000)]
    txn_rows: usize,
    /// Concurrent inserting connections (default: 3 on PostgreSQL, 1 on SQLite).
    #[arg(long)]
    jobs: Option<usize>,
    /// The credentials file to create (must not exist).
    #[arg(long, default_value = "bench-credentials.jsonl")]
    credentials: PathBuf,
    /// GATEHOUSE_SECRET_KEY for the server started by --server-bin (required on PostgreSQL).
    #[arg(long, env = "GATEHOUSE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// After seeding, start this server binary once (it creates its signing keys), stop it,
    /// start it again and report both times to /readyz = 200.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// tokens, introspect-jwt, introspect-key, jwks, discovery; `all`; or a comma list.
    /// `hostile` (64 KiB hostile bodies, every answer a 4xx) runs only when named.
    scenario: String,
    /// The server's public base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    public: String,
    /// The credentials file written by `seed` (not needed for jwks and discovery).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Measured window (20s, 500ms, 2m).
    #[arg(long, default_value = "20s", value_parser = load::parse_duration)]
    duration: Duration,
    /// Closed-loop warm-up after priming, not counted.
    #[arg(long, default_value = "2s", value_parser = load::parse_duration)]
    warmup: Duration,
    /// Spread requests uniformly over the first N seeded credentials (profiles, tokens or
    /// API keys). Each is primed once first: an oauth2 profile's first use costs one argon2id
    /// run (~30 ms of one core).
    #[arg(long, default_value_t = 1000)]
    spread: usize,
    /// Do not send each credential once before the warm-up.
    #[arg(long)]
    no_prime: bool,
    /// Hold this many requests per second in all (open loop, paced per connection)
    /// instead of sending as fast as the server answers; for soak runs.
    #[arg(long)]
    rate: Option<f64>,
    /// Report this server process's peak RSS (VmHWM).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Start this server binary on --public (and --admin-addr) first, report its time to
    /// /readyz = 200 and its peak RSS, stop it at the end.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// GATEHOUSE_DATABASE_URL for --server-bin.
    #[arg(long, env = "GATEHOUSE_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// GATEHOUSE_SECRET_KEY for --server-bin (required on PostgreSQL).
    #[arg(long, env = "GATEHOUSE_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// GATEHOUSE_ADMIN_ADDR for --server-bin (default: the public port + 1).
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// Where --server-bin's output goes.
    #[arg(long)]
    server_log: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct SmokeArgs {
    /// The `gatehouse` binary to test (target/debug/gatehouse or target/release/gatehouse).
    #[arg(long)]
    server_bin: PathBuf,
    /// Connections per scenario.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Measured window per scenario.
    #[arg(long, default_value = "2s", value_parser = load::parse_duration)]
    duration: Duration,
    /// Warm-up per scenario.
    #[arg(long, default_value = "500ms", value_parser = load::parse_duration)]
    warmup: Duration,
    /// Keep the temporary directory (kept anyway on failure).
    #[arg(long)]
    keep: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Seed(a) => seed_cmd(a).await,
        Cmd::Run(a) => run_cmd(a).await,
        Cmd::Smoke(a) => {
            let report = smoke::smoke(&SmokeOptions {
                server_bin: a.server_bin,
                connections: a.connections,
                duration: a.duration,
                warmup: a.warmup,
                keep: a.keep,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            eprintln!(
                "smoke ok: every scenario without error; seeded in {:.2} s; server ready {:.0} ms after its first start, {:.0} ms after a restart",
                report.seed_seconds, report.first_start_ready_ms, report.restart_ready_ms
            );
            Ok(())
        }
    }
}

fn log_path(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("gatehouse-bench-server-{}.log", std::process::id()))
    })
}

async fn seed_cmd(a: SeedArgs) -> Result<()> {
    let is_pg = a.database_url.starts_with("postgres");
    if a.server_bin.is_some() && is_pg && a.secret_key.is_none() {
        bail!(
            "--secret-key (or GATEHOUSE_SECRET_KEY) is required to start the server on PostgreSQL"
        );
    }
    eprintln!(
        "seeding {} collections, {} clients, {} oauth2 profiles, {} API keys",
        a.collections, a.clients, a.profiles, a.api_keys
    );
    let report = seed::seed(&SeedOptions {
        database_url: a.database_url.clone(),
        collections: a.collections,
        clients: a.clients,
        profiles: a.profiles,
        api_keys: a.api_keys,
        keys_per_profile: a.keys_per_profile,
        batch: a.batch,
        txn_rows: a.txn_rows,
        jobs: a.jobs,
        credentials: a.credentials.clone(),
    })
    .await?;
    let mut json = serde_json::to_value(&report)?;
    eprintln!(
        "seeded {} rows ({} API keys, {} oauth2 + {} token profiles) into {} in {:.1} s with {} connection(s); credentials in {}",
        report.rows,
        report.api_keys,
        report.profiles,
        report.token_profiles,
        report.backend,
        report.total_seconds,
        report.jobs,
        report.credentials
    );
    if let Some(bin) = a.server_bin {
        let (public, admin) = server::free_addrs()?;
        let spec = ServerSpec {
            bin,
            database_url: a.database_url,
            public,
            admin,
            secret_key: a.secret_key,
            log: log_path(None),
        };
        let first = Server::start(&spec, Duration::from_secs(300)).await?;
        let first_ms = first.ready_after.as_secs_f64() * 1000.0;
        first.stop().await?;
        let again = Server::start(&spec, Duration::from_secs(300)).await?;
        let again_ms = again.ready_after.as_secs_f64() * 1000.0;
        let mem = again.memory();
        again.stop().await?;
        eprintln!(
            "server ready {first_ms:.0} ms after its first start on the seeded database, {again_ms:.0} ms after a restart"
        );
        if let Some(obj) = json.as_object_mut() {
            obj.insert("first_start_ready_ms".into(), first_ms.into());
            obj.insert("restart_ready_ms".into(), again_ms.into());
            if let Some(m) = mem {
                obj.insert("restart_rss_kb".into(), m.rss_kb.into());
            }
        }
    }
    println!("{json}");
    Ok(())
}

fn scenarios(text: &str) -> Result<Vec<Scenario>> {
    if text == "all" {
        return Ok(Scenario::ALL.to_vec());
    }
    text.split(',')
        .map(|s| {
            let s = s.trim();
            Scenario::ALL
                .into_iter()
                .chain(Scenario::EXTRA)
                .find(|x| x.name() == s)
                .with_context(|| {
                    format!("unknown scenario {s:?} (tokens, introspect-jwt, introspect-key, jwks, discovery, hostile, all)")
                })
        })
        .collect()
}

async fn run_cmd(a: RunArgs) -> Result<()> {
    let list = scenarios(&a.scenario)?;
    let target = Target::parse(&a.public).await?;
    let creds = if list.iter().any(|s| s.needs_credentials()) {
        let path = a
            .credentials
            .as_deref()
            .context("--credentials is needed for tokens and introspection scenarios")?;
        Some(Credentials::load(path, a.spread, a.spread)?)
    } else {
        None
    };
    let started = match &a.server_bin {
        None => None,
        Some(bin) => {
            let database_url = a
                .database_url
                .clone()
                .context("--server-bin needs --database-url (or GATEHOUSE_DATABASE_URL)")?;
            let admin = match a.admin_addr {
                Some(x) => x,
                None => SocketAddr::new(
                    target.addr.ip(),
                    target.addr.port().checked_add(1).context("no admin port")?,
                ),
            };
            let spec = ServerSpec {
                bin: bin.clone(),
                database_url,
                public: target.addr,
                admin,
                secret_key: a.secret_key.clone(),
                log: log_path(a.server_log.clone()),
            };
            let s = Server::start(&spec, Duration::from_secs(300)).await?;
            eprintln!(
                "server pid {} ready {:.0} ms after start (log: {})",
                s.pid,
                s.ready_after.as_secs_f64() * 1000.0,
                s.log().display()
            );
            Some(s)
        }
    };
    let opts = LoadOptions {
        connections: a.connections,
        duration: a.duration,
        warmup: a.warmup,
        spread: a.spread,
        prime: !a.no_prime,
        rate: a.rate,
        server_pid: started.as_ref().map(|s| s.pid).or(a.server_pid),
    };
    let mut failed = None;
    let mut with_errors = Vec::new();
    for scenario in list {
        match load::run(&target, scenario, creds.as_ref(), &opts).await {
            Ok(mut report) => {
                match (&started, a.server_pid) {
                    (Some(s), _) => attach_server(&mut report, s.pid, Some(s.ready_after)),
                    (None, Some(pid)) => attach_server(&mut report, pid, None),
                    (None, None) => {}
                }
                print_report(&report)?;
                if report.all_errors() > 0 {
                    with_errors.push(scenario.name());
                }
            }
            Err(e) => {
                eprintln!("{}: {e:#}", scenario.name());
                failed = Some(e);
            }
        }
    }
    if let Some(s) = started {
        s.stop().await?;
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if !with_errors.is_empty() {
        bail!("requests failed in: {}", with_errors.join(", "));
    }
    Ok(())
}
