//! The README's walkthrough, run as written: every ```sh block of its "Walkthrough" section,
//! joined into one bash script under `set -euo pipefail`, against the real server binary
//! started as the README's first command starts it (embedded SQLite default, generated keys
//! and bootstrap admin) in a fresh directory, on free loopback ports that the script is
//! pointed at through `GATEHOUSE_URL` / `GATEHOUSE_ADMIN_URL`. The test fails when the
//! README's commands break.
//!
//! Needs the server binary (`cargo build -p gatehouse-server`; CI builds it first) and
//! `bash`, `curl` and `python3`; skipped with a printed reason when one is missing, unless
//! `GATEHOUSE_TEST_REQUIRE_WALKTHROUGH=1` (CI sets it) makes that a failure.

use gatehouse_tests::{server_binary, skip_unless_required};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REQUIRE: &str = "GATEHOUSE_TEST_REQUIRE_WALKTHROUGH";
const SECTION: &str = "## Walkthrough";

/// The ```sh blocks of the README's walkthrough section, in order.
fn walkthrough_blocks(readme: &str) -> anyhow::Result<Vec<String>> {
    let mut lines = readme.lines();
    anyhow::ensure!(
        lines.any(|l| l.trim_end() == SECTION),
        "the README has no `{SECTION}` section"
    );
    let (mut blocks, mut current): (Vec<String>, Option<String>) = (Vec::new(), None);
    for line in lines {
        match current.as_mut() {
            None if line.starts_with("## ") => break,
            None if line.trim_end() == "```sh" => current = Some(String::new()),
            None => {}
            Some(block) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    anyhow::ensure!(current.is_none(), "an unclosed ```sh block in `{SECTION}`");
    anyhow::ensure!(!blocks.is_empty(), "no ```sh block in `{SECTION}`");
    Ok(blocks)
}

fn have_tools() -> bool {
    Command::new("bash")
        .args(["-c", "command -v curl && command -v python3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Kills the child on drop, whatever the test's outcome.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_walkthrough_runs_as_written() -> anyhow::Result<()> {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let blocks = walkthrough_blocks(&std::fs::read_to_string(&readme_path)?)?;
    let script = format!("set -euo pipefail\n{}", blocks.concat());
    // The README promises curl and python3 only.
    anyhow::ensure!(
        !script
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| w == "jq"),
        "the walkthrough uses jq"
    );
    if !have_tools() {
        return skip_unless_required(REQUIRE, "needs bash, curl and python3");
    }
    let Some(bin) = server_binary()? else {
        return Ok(());
    };

    // The README's first command, in a fresh directory: the SQLite default, so the database,
    // the master key and the bootstrap file land in the working directory.
    let data = tempfile::tempdir()?;
    let (public_port, admin_port) = (free_port()?, free_port()?);
    let public = format!("http://127.0.0.1:{public_port}");
    let admin = format!("http://127.0.0.1:{admin_port}");
    let log = data.path().join("server.log");
    let server = Killed(
        Command::new(&bin)
            .current_dir(data.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("GATEHOUSE_PUBLIC_ADDR", format!("127.0.0.1:{public_port}"))
            .env("GATEHOUSE_ADMIN_ADDR", format!("127.0.0.1:{admin_port}"))
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    let server_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let http = reqwest::Client::builder().no_proxy().build()?;
    let started = Instant::now();
    loop {
        let ready = http
            .get(format!("{public}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the server was not ready within 30 s: {}",
            server_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let script_path = data.path().join("walkthrough.sh");
    std::fs::write(&script_path, &script)?;
    let (out, err) = (data.path().join("out.txt"), data.path().join("err.txt"));
    let mut run = Killed(
        Command::new("bash")
            .arg(&script_path)
            .current_dir(data.path())
            .env("GATEHOUSE_URL", &public)
            .env("GATEHOUSE_ADMIN_URL", &admin)
            .env_remove("GATEHOUSE_DATA_DIR")
            // A proxy in the environment must not carry the script's loopback requests.
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(&err)?)
            .spawn()?,
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = run.0.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(120) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(server);
    let stdout = std::fs::read_to_string(&out)?;
    let report = format!(
        "script:\n{script}\n--- stdout:\n{stdout}\n--- stderr:\n{}\n--- server log:\n{}",
        std::fs::read_to_string(&err)?,
        server_log()
    );
    let status = status.ok_or_else(|| anyhow::anyhow!("the walkthrough hung (120 s)\n{report}"))?;
    anyhow::ensure!(
        status.success(),
        "the walkthrough failed ({status})\n{report}"
    );

    // What the README says the reader will see.
    for expected in [
        format!("jwks_uri: {public}/oauth/jwks"),
        "\"typ\": \"at+jwt\"".to_owned(),
        "\"scope\": \"orders:read\"".to_owned(),
        "\"tenant\": \"acme\"".to_owned(),
        "\"aud\": \"https://api.example.com/orders\"".to_owned(),
    ] {
        anyhow::ensure!(stdout.contains(&expected), "no `{expected}` in\n{report}");
    }
    let active = stdout
        .find("\"active\": true")
        .ok_or_else(|| anyhow::anyhow!("no active introspection\n{report}"))?;
    let inactive = stdout
        .find("{\n  \"active\": false\n}")
        .ok_or_else(|| anyhow::anyhow!("no exact {{\"active\": false}} answer\n{report}"))?;
    anyhow::ensure!(
        active < inactive,
        "the token was inactive before it was revoked\n{report}"
    );
    Ok(())
}

#[test]
fn the_walkthrough_section_is_found_and_ends_at_the_next_section() {
    let readme = "# X\n```sh\nnot this\n```\n## Walkthrough\ntext\n```sh\na\n```\nmore\n```sh\nb\nc\n```\n```text\nno\n```\n## Next\n```sh\nnot this either\n```\n";
    assert_eq!(walkthrough_blocks(readme).unwrap(), ["a\n", "b\nc\n"]);
    assert!(walkthrough_blocks("# X\n## Walkthrough\nno code\n").is_err());
    assert!(walkthrough_blocks("# X\n```sh\na\n```\n").is_err());
}
