//! `gatehouse backup FILE` and `gatehouse restore FILE`.
//!
//! SQLite: `VACUUM INTO` writes a consistent copy while the server keeps serving (it reads one
//! snapshot; WAL mode lets writers go on). Restore replaces the database file with the copy
//! (the server must be stopped) and removes the old write-ahead log.
//!
//! PostgreSQL: the documented `pg_dump --format=custom` / `pg_restore --clean` path, run for
//! you; the connection settings go to them through the `PG*` environment, so the password is
//! never on a command line.
//!
//! A backup holds the signing keys and HMAC secrets encrypted under `GATEHOUSE_SECRET_KEY`,
//! and every other secret as a hash: restoring it needs the same master key (keep the two
//! apart, and both safe). The file is written with mode 0600.

use crate::config::Config;
use anyhow::{Context, Result, bail, ensure};
use sea_orm::{ConnectionTrait, Statement};
use std::path::{Path, PathBuf};

/// What a backup or restore did, for the command's output.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// `sqlite` or `postgres`.
    pub database: &'static str,
    /// The backup file.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The file path of an `sqlite:` URL (`sqlite://path?mode=rwc` or `sqlite:path`).
fn sqlite_path(url: &str) -> Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("not an sqlite URL")?;
    let path = rest.split('?').next().unwrap_or_default();
    ensure!(
        !path.is_empty() && !path.contains(":memory:"),
        "an in-memory database cannot be backed up or restored"
    );
    Ok(PathBuf::from(path))
}

/// The `PG*` environment of a `postgres://` URL, for pg_dump and pg_restore.
fn pg_environment(url: &str) -> Result<Vec<(&'static str, String)>> {
    let parsed = url::Url::parse(url).context("the database URL does not parse")?;
    let mut env = vec![
        (
            "PGHOST",
            parsed.host_str().unwrap_or("localhost").to_owned(),
        ),
        ("PGPORT", parsed.port().unwrap_or(5432).to_string()),
        (
            "PGDATABASE",
            parsed.path().trim_start_matches('/').to_owned(),
        ),
    ];
    if !parsed.username().is_empty() {
        env.push((
            "PGUSER",
            url::form_urlencoded::parse(parsed.username().as_bytes())
                .map(|(k, v)| format!("{k}{v}"))
                .collect(),
        ));
    }
    if let Some(password) = parsed.password() {
        let decoded: String = percent_decode(password);
        env.push(("PGPASSWORD", decoded));
    }
    for (key, value) in parsed.query_pairs() {
        if key == "sslmode" {
            env.push(("PGSSLMODE", value.into_owned()));
        }
    }
    Ok(env)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes.get(i), bytes.get(i + 1), bytes.get(i + 2)) {
            (Some(b'%'), Some(h), Some(l)) => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(*h), hex(*l)) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            (Some(b), _, _) => {
                out.push(*b);
                i += 1;
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("chmod 600 {}", path.display()))?;
    }
    Ok(())
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn run_tool(tool: &str, args: &[&str], env: &[(&'static str, String)]) -> Result<()> {
    let mut cmd = std::process::Command::new(tool);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().with_context(|| {
        format!("running {tool} (install the PostgreSQL client tools, e.g. apt-get install postgresql-client)")
    })?;
    if !out.status.success() {
        bail!(
            "{tool} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Back the database up into `file`, which must not exist yet.
pub async fn backup(config: &Config, file: &Path) -> Result<Report> {
    ensure!(
        !file.exists(),
        "{} exists: a backup never overwrites a file",
        file.display()
    );
    let url = &config.database_url;
    if url.starts_with("sqlite:") {
        let db = gatehouse_registry::connect(url)
            .await
            .context("connecting to the database")?;
        let target = file.to_str().context("the backup path is not UTF-8")?;
        // VACUUM INTO takes an expression: the path as an SQL string literal.
        let literal = format!("'{}'", target.replace('\'', "''"));
        db.execute_raw(Statement::from_string(
            db.get_database_backend(),
            format!("VACUUM INTO {literal}"),
        ))
        .await
        .context("VACUUM INTO (online SQLite backup)")?;
        db.close().await.ok();
        private(file)?;
        Ok(Report {
            database: "sqlite",
            file: file.to_owned(),
            bytes: size(file),
        })
    } else {
        let target = file.to_str().context("the backup path is not UTF-8")?;
        run_tool(
            "pg_dump",
            &[
                "--format=custom",
                "--no-owner",
                "--no-privileges",
                "--file",
                target,
            ],
            &pg_environment(url)?,
        )?;
        private(file)?;
        Ok(Report {
            database: "postgres",
            file: file.to_owned(),
            bytes: size(file),
        })
    }
}

/// Restore the database from `file`. The server must be stopped. An existing SQLite database
/// is replaced only with `force`.
pub async fn restore(config: &Config, file: &Path, force: bool) -> Result<Report> {
    ensure!(file.is_file(), "{} is not a file", file.display());
    let url = &config.database_url;
    if url.starts_with("sqlite:") {
        let mut head = [0u8; 16];
        {
            use std::io::Read;
            std::fs::File::open(file)
                .and_then(|mut f| f.read_exact(&mut head))
                .with_context(|| format!("reading {}", file.display()))?;
        }
        ensure!(
            &head == b"SQLite format 3\0",
            "{} is not an SQLite database",
            file.display()
        );
        let path = sqlite_path(url)?;
        ensure!(
            force || !path.exists(),
            "{} exists: stop the server and pass --force to replace it",
            path.display()
        );
        let staging = path.with_extension("restoring");
        std::fs::copy(file, &staging)
            .with_context(|| format!("copying into {}", staging.display()))?;
        private(&staging)?;
        for suffix in ["-wal", "-shm"] {
            let mut old = path.clone().into_os_string();
            old.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(old));
        }
        std::fs::rename(&staging, &path)
            .with_context(|| format!("moving the copy to {}", path.display()))?;
        Ok(Report {
            database: "sqlite",
            file: file.to_owned(),
            bytes: size(&path),
        })
    } else {
        let source = file.to_str().context("the backup path is not UTF-8")?;
        run_tool(
            "pg_restore",
            &[
                "--clean",
                "--if-exists",
                "--no-owner",
                "--no-privileges",
                "--single-transaction",
                "--exit-on-error",
                "--dbname",
                &url::Url::parse(url)
                    .map(|u| u.path().trim_start_matches('/').to_owned())
                    .unwrap_or_default(),
                source,
            ],
            &pg_environment(url)?,
        )?;
        Ok(Report {
            database: "postgres",
            file: file.to_owned(),
            bytes: size(file),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_path("sqlite://data/g.db?mode=rwc").ok(),
            Some(PathBuf::from("data/g.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:/tmp/g.db").ok(),
            Some(PathBuf::from("/tmp/g.db"))
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
    }

    #[test]
    fn the_postgres_password_goes_to_the_environment() {
        let env = pg_environment("postgres://gh:p%40ss@db.internal:5433/gatehouse?sslmode=require")
            .unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PGHOST"), Some("db.internal"));
        assert_eq!(get("PGPORT"), Some("5433"));
        assert_eq!(get("PGDATABASE"), Some("gatehouse"));
        assert_eq!(get("PGUSER"), Some("gh"));
        assert_eq!(get("PGPASSWORD"), Some("p@ss"));
        assert_eq!(get("PGSSLMODE"), Some("require"));
    }
}
