//! The Gatehouse benchmark tool: `seed` writes many credentials straight into a database,
//! `run` drives the public endpoints with its own HTTP/1.1 load generator, `smoke` does both
//! at a small scale against a server binary and fails on any error (for CI).

pub mod credentials;
pub mod load;
pub mod seed;
pub mod server;
pub mod smoke;

use std::time::Duration;

/// Add the server's process id, memory and start-up time to a report.
pub fn attach_server(report: &mut load::Report, pid: u32, ready: Option<Duration>) {
    report.server_pid = Some(pid);
    if let Some(m) = server::memory(pid) {
        report.server_peak_rss_mb = Some(m.peak_rss_kb as f64 / 1024.0);
        report.server_rss_mb = Some(m.rss_kb as f64 / 1024.0);
    }
    report.server_ready_ms = ready.map(|d| d.as_secs_f64() * 1000.0);
}

/// Print a report: the JSON line on stdout, the human line on stderr.
pub fn print_report(report: &load::Report) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(report)?);
    eprintln!("{}", report.human());
    Ok(())
}
