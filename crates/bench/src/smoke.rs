//! `smoke`: a small end-to-end check for CI. Seeds a temporary SQLite database (10
//! collections, 10 clients, 20 oauth2 profiles, 100 API keys), starts the given server
//! binary on free loopback ports, runs every scenario briefly and fails on any error; then
//! restarts the server on the seeded database and reports how fast it was ready again.

use crate::credentials::Credentials;
use crate::load::{self, LoadOptions, Scenario, Target};
use crate::seed::{self, SeedOptions};
use crate::server::{self, Server, ServerSpec};
use anyhow::{Result, bail};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// Smoke settings.
#[derive(Debug, Clone)]
pub struct SmokeOptions {
    /// The `gatehouse` binary (debug or release).
    pub server_bin: PathBuf,
    /// Connections per scenario.
    pub connections: usize,
    /// Measured seconds per scenario.
    pub duration: Duration,
    /// Warm-up per scenario.
    pub warmup: Duration,
    /// Keep the temporary directory (database, credentials, server log).
    pub keep: bool,
}

/// The smoke run's summary.
#[derive(Debug, Clone, Serialize)]
pub struct SmokeReport {
    /// `ok` (a failure is an error instead).
    pub smoke: &'static str,
    /// Seconds the seeding took.
    pub seed_seconds: f64,
    /// Milliseconds from the first start to `/readyz` = 200 (creates the signing keys).
    pub first_start_ready_ms: f64,
    /// Milliseconds from a restart on the seeded database to `/readyz` = 200.
    pub restart_ready_ms: f64,
    /// Requests per scenario in the measured windows.
    pub requests: Vec<(String, u64)>,
    /// The temporary directory, if kept.
    pub kept: Option<String>,
}

/// Run the smoke check; every scenario's report is printed as it finishes.
pub async fn smoke(opts: &SmokeOptions) -> Result<SmokeReport> {
    if !opts.server_bin.is_file() {
        bail!(
            "no server binary at {} (cargo build -p gatehouse-server)",
            opts.server_bin.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}?mode=rwc", dir.path().join("gh.db").display());
    let credentials = dir.path().join("credentials.jsonl");
    let seeded = seed::seed(&SeedOptions {
        database_url: database_url.clone(),
        collections: 10,
        clients: 10,
        profiles: 20,
        api_keys: 100,
        keys_per_profile: seed::MAX_KEYS_PER_PROFILE,
        batch: 1000,
        txn_rows: 10_000,
        jobs: None,
        credentials: credentials.clone(),
    })
    .await?;
    let (public, admin) = server::free_addrs()?;
    let spec = ServerSpec {
        bin: opts.server_bin.clone(),
        database_url,
        public,
        admin,
        secret_key: None,
        log: dir.path().join("server.log"),
    };
    let running = Server::start(&spec, Duration::from_secs(120)).await?;
    let first_ready = running.ready_after;
    let creds = Credentials::load(&credentials, usize::MAX, usize::MAX)?;
    let target = Target::from_addr(public)?;
    let mut failures = Vec::new();
    let mut requests = Vec::new();
    for scenario in Scenario::ALL.into_iter().chain(Scenario::EXTRA) {
        let lo = LoadOptions {
            connections: opts.connections,
            duration: opts.duration,
            warmup: opts.warmup,
            spread: usize::MAX,
            prime: true,
            rate: None,
            server_pid: Some(running.pid),
        };
        let mut report = match load::run(&target, scenario, Some(&creds), &lo).await {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("{}: {e:#}", scenario.name()));
                continue;
            }
        };
        crate::attach_server(&mut report, running.pid, Some(first_ready));
        crate::print_report(&report)?;
        if report.all_errors() > 0 || report.requests == 0 {
            failures.push(format!(
                "{}: {} errors, {} requests{}",
                scenario.name(),
                report.all_errors(),
                report.requests,
                report
                    .first_error
                    .as_deref()
                    .map(|e| format!(" (first: {e})"))
                    .unwrap_or_default()
            ));
        }
        requests.push((scenario.name().to_owned(), report.requests));
    }
    running.stop().await?;
    let again = Server::start(&spec, Duration::from_secs(120)).await?;
    let restart_ready = again.ready_after;
    again.stop().await?;
    let kept = if opts.keep || !failures.is_empty() {
        let path = dir.keep();
        eprintln!("smoke: kept {}", path.display());
        Some(path.display().to_string())
    } else {
        None
    };
    if !failures.is_empty() {
        bail!("smoke failed:\n  {}", failures.join("\n  "));
    }
    Ok(SmokeReport {
        smoke: "ok",
        seed_seconds: seeded.total_seconds,
        first_start_ready_ms: first_ready.as_secs_f64() * 1000.0,
        restart_ready_ms: restart_ready.as_secs_f64() * 1000.0,
        requests,
        kept,
    })
}
