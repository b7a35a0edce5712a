//! The real `gatehouse` binary as a child process, for tests of what an operator runs:
//! start it with an exact environment and wait until it is ready, or run a command to its end.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port (bound, then released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A server binary running as a child process; killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// Its public base URL.
    pub public: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `bin` with exactly `env` (plus PATH) and wait until `/readyz` answers 200; `Err`
/// with its output when it exits first.
pub async fn start(
    bin: &Path,
    env: &BTreeMap<String, String>,
    args: &[&str],
) -> anyhow::Result<Server> {
    let public = format!(
        "http://{}",
        env.get("GATEHOUSE_PUBLIC_ADDR")
            .cloned()
            .unwrap_or_default()
    );
    let log = tempfile::NamedTempFile::new()?;
    let mut child = Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .stdout(Stdio::null())
        .stderr(log.reopen()?)
        .spawn()?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Some(status) = child.try_wait()? {
            let output = std::fs::read_to_string(log.path()).unwrap_or_default();
            anyhow::bail!("the server exited ({status}): {output}");
        }
        if http
            .get(format!("{public}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(Server { child, public });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("not ready within 30 s")
}

/// Run `bin` to completion with `env`: (success, stdout + stderr).
pub fn run(
    bin: &Path,
    env: &BTreeMap<String, String>,
    args: &[&str],
) -> anyhow::Result<(bool, String)> {
    let out = Command::new(bin)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}
