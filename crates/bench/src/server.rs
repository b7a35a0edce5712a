//! Start and stop a `gatehouse` binary, time its readiness, read its memory.

use anyhow::{Context, Result, bail};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    /// The `gatehouse` binary.
    pub bin: PathBuf,
    /// `GATEHOUSE_DATABASE_URL`.
    pub database_url: String,
    /// `GATEHOUSE_PUBLIC_ADDR`.
    pub public: SocketAddr,
    /// `GATEHOUSE_ADMIN_ADDR`.
    pub admin: SocketAddr,
    /// `GATEHOUSE_SECRET_KEY` (required on PostgreSQL; on SQLite the server generates a key
    /// file beside the database).
    pub secret_key: Option<String>,
    /// Where the server's output goes.
    pub log: PathBuf,
}

/// A running server started by this tool; stopped (SIGTERM) by [`Server::stop`], killed if
/// dropped while still running.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// The process id.
    pub pid: u32,
    /// From spawning the process to the first `GET /readyz` answering 200.
    pub ready_after: Duration,
    log: PathBuf,
}

/// Memory figures of a process, from `/proc/PID/status` (kB).
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Memory {
    /// `VmHWM`: the peak resident set size over the process's life.
    pub peak_rss_kb: u64,
    /// `VmRSS`: the resident set size now.
    pub rss_kb: u64,
}

/// Read `VmHWM` and `VmRSS` of a process (Linux only).
pub fn memory(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(Memory {
        peak_rss_kb: field("VmHWM:")?,
        rss_kb: field("VmRSS:")?,
    })
}

/// Whether `GET /readyz` on this address answers 200 now.
pub async fn is_ready(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await?;
        s.write_all(b"GET /readyz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head).await?;
        std::io::Result::Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), attempt).await,
        Ok(Ok(true))
    )
}

impl Server {
    /// Spawn the server and wait (at most `timeout`) until `/readyz` answers 200.
    pub async fn start(spec: &ServerSpec, timeout: Duration) -> Result<Server> {
        if !spec.bin.is_file() {
            bail!(
                "no server binary at {} (cargo build --release -p gatehouse-server)",
                spec.bin.display()
            );
        }
        if is_ready(spec.public).await {
            bail!(
                "something already answers on {}; stop it or choose another address",
                spec.public
            );
        }
        let log = std::fs::File::create(&spec.log)
            .with_context(|| format!("creating {}", spec.log.display()))?;
        let mut cmd = Command::new(&spec.bin);
        cmd.env("GATEHOUSE_DATABASE_URL", &spec.database_url)
            .env("GATEHOUSE_PUBLIC_ADDR", spec.public.to_string())
            .env("GATEHOUSE_ADMIN_ADDR", spec.admin.to_string())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if std::env::var_os("GATEHOUSE_LOG").is_none() {
            cmd.env("GATEHOUSE_LOG", "warn");
        }
        if let Some(key) = &spec.secret_key {
            cmd.env("GATEHOUSE_SECRET_KEY", key);
        }
        let started = Instant::now();
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", spec.bin.display()))?;
        let mut server = Server {
            pid: child.id(),
            child: Some(child),
            ready_after: Duration::ZERO,
            log: spec.log.clone(),
        };
        loop {
            if is_ready(spec.public).await {
                server.ready_after = started.elapsed();
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                server.child = None;
                bail!(
                    "the server exited ({status}) before it was ready; its log ({}):\n{}",
                    spec.log.display(),
                    tail(&spec.log)
                );
            }
            if started.elapsed() > timeout {
                bail!(
                    "the server was not ready after {timeout:?}; its log ({}):\n{}",
                    spec.log.display(),
                    tail(&spec.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The server's memory now.
    pub fn memory(&self) -> Option<Memory> {
        memory(self.pid)
    }

    /// The server's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// SIGTERM (graceful: in-flight requests finish, counters are flushed), then wait at most
    /// 35 s before killing it.
    pub async fn stop(mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(35);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not stop within 35 s of SIGTERM; killed");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last 4 KiB of a log file.
fn tail(path: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(4096)));
    let mut out = String::new();
    let _ = f.read_to_string(&mut out);
    out
}

/// Two free loopback ports (bound then released: another process could take them in
/// between, which is fine on a test machine).
pub fn free_addrs() -> Result<(SocketAddr, SocketAddr)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?, b.local_addr()?))
}
