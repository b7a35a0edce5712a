//! The credentials file written by `seed` and read by `run`: JSON lines, one credential per
//! line, tagged by `kind`. It holds live secrets, so it is created with mode 0600.

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

/// One line of the credentials file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    /// The first line: what was seeded, and where.
    Meta {
        /// Random tag shared by every seeded name (several seeds may share a database).
        tag: String,
        /// Collections seeded.
        collections: usize,
        /// Clients seeded.
        clients: usize,
        /// `oauth2` profiles seeded.
        profiles: usize,
        /// API keys seeded.
        api_keys: usize,
        /// `token` profiles holding those keys.
        token_profiles: usize,
        /// The database backend (`sqlite` or `postgres`), never the URL (it may hold a
        /// password).
        backend: String,
    },
    /// A collection's introspection credentials (`n`: its index in this seed).
    Collection {
        /// Index in this seed.
        n: usize,
        /// `col_…`
        id: String,
        /// Its audience.
        audience: String,
        /// `grs_…`
        introspection_client_id: String,
        /// Its secret (the same for every seeded collection).
        introspection_client_secret: String,
    },
    /// An `oauth2` profile's client credentials.
    Oauth2 {
        /// Index in this seed.
        n: usize,
        /// `prf_…`
        profile_id: String,
        /// `gco_…`
        oauth_client_id: String,
        /// Its secret (the same for every seeded profile).
        oauth_client_secret: String,
        /// Index of the one collection the profile is granted.
        collection: usize,
    },
    /// An API key.
    ApiKey {
        /// Index in this seed.
        n: usize,
        /// The `token` profile holding it.
        profile_id: String,
        /// `ghk_…`
        api_key: String,
        /// Index of the one collection the key's profile is granted.
        collection: usize,
    },
}

/// Streams lines into a new file (mode 0600, refusing to overwrite).
pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    /// Create `path`; fails if it exists (a stale file would not match the database).
    pub fn create(path: &Path) -> Result<Self> {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let file = opts
            .open(path)
            .with_context(|| format!("creating the credentials file {}", path.display()))?;
        Ok(Self {
            out: BufWriter::with_capacity(1 << 20, file),
        })
    }

    /// Append one line.
    pub fn write(&mut self, line: &Line) -> Result<()> {
        serde_json::to_writer(&mut self.out, line)?;
        self.out.write_all(b"\n")?;
        Ok(())
    }

    /// Flush everything to disk.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        Ok(())
    }
}

/// What `run` needs from a credentials file.
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    /// Collections, by index.
    pub collections: Vec<CollectionCred>,
    /// `oauth2` profiles, in seed order (only as many as were asked for).
    pub oauth2: Vec<Oauth2Cred>,
    /// API keys, in seed order (only as many as were asked for).
    pub api_keys: Vec<ApiKeyCred>,
}

/// A collection's introspection credentials.
#[derive(Debug, Clone)]
pub struct CollectionCred {
    /// `grs_…`
    pub client_id: String,
    /// Its secret.
    pub secret: String,
}

/// An `oauth2` profile's credentials.
#[derive(Debug, Clone)]
pub struct Oauth2Cred {
    /// `gco_…`
    pub client_id: String,
    /// Its secret.
    pub secret: String,
    /// Index of its collection.
    pub collection: usize,
}

/// An API key.
#[derive(Debug, Clone)]
pub struct ApiKeyCred {
    /// `ghk_…`
    pub key: String,
    /// Index of its profile's collection.
    pub collection: usize,
}

impl Credentials {
    /// Read a credentials file, keeping at most `max_oauth2` profiles and `max_keys` keys
    /// (the first ones: `--spread` takes a prefix), and every collection.
    pub fn load(path: &Path, max_oauth2: usize, max_keys: usize) -> Result<Self> {
        let file = File::open(path)
            .with_context(|| format!("opening the credentials file {}", path.display()))?;
        let mut out = Credentials::default();
        let mut indexed: Vec<(usize, CollectionCred)> = Vec::new();
        for (i, line) in BufReader::with_capacity(1 << 20, file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(&line)
                .with_context(|| format!("{}:{}: not a credentials line", path.display(), i + 1))?;
            match parsed {
                Line::Meta { .. } => {}
                Line::Collection {
                    n,
                    introspection_client_id,
                    introspection_client_secret,
                    ..
                } => indexed.push((
                    n,
                    CollectionCred {
                        client_id: introspection_client_id,
                        secret: introspection_client_secret,
                    },
                )),
                Line::Oauth2 {
                    oauth_client_id,
                    oauth_client_secret,
                    collection,
                    ..
                } if out.oauth2.len() < max_oauth2 => out.oauth2.push(Oauth2Cred {
                    client_id: oauth_client_id,
                    secret: oauth_client_secret,
                    collection,
                }),
                Line::ApiKey {
                    api_key,
                    collection,
                    ..
                } => {
                    if out.api_keys.len() < max_keys {
                        out.api_keys.push(ApiKeyCred {
                            key: api_key,
                            collection,
                        });
                    } else {
                        // Keys are the last lines of the file.
                        break;
                    }
                }
                Line::Oauth2 { .. } => {}
            }
        }
        indexed.sort_by_key(|(n, _)| *n);
        for (expected, (n, c)) in indexed.into_iter().enumerate() {
            if n != expected {
                bail!("{}: collection {expected} is missing", path.display());
            }
            out.collections.push(c);
        }
        Ok(out)
    }

    /// The collection with this index.
    pub fn collection(&self, n: usize) -> Result<&CollectionCred> {
        self.collections
            .get(n)
            .with_context(|| format!("the credentials file has no collection {n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_prefix() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("c.jsonl");
        let mut w = Writer::create(&path)?;
        w.write(&Line::Meta {
            tag: "t".into(),
            collections: 1,
            clients: 1,
            profiles: 2,
            api_keys: 3,
            token_profiles: 1,
            backend: "sqlite".into(),
        })?;
        w.write(&Line::Collection {
            n: 0,
            id: "col_1".into(),
            audience: "https://a".into(),
            introspection_client_id: "grs_1".into(),
            introspection_client_secret: "s".into(),
        })?;
        for n in 0..2 {
            w.write(&Line::Oauth2 {
                n,
                profile_id: format!("prf_{n}"),
                oauth_client_id: format!("gco_{n}"),
                oauth_client_secret: "x".into(),
                collection: 0,
            })?;
        }
        for n in 0..3 {
            w.write(&Line::ApiKey {
                n,
                profile_id: "prf_k".into(),
                api_key: format!("ghk_{n}"),
                collection: 0,
            })?;
        }
        w.finish()?;
        assert!(Writer::create(&path).is_err(), "never overwrites");
        let c = Credentials::load(&path, 1, 2)?;
        assert_eq!(c.collections.len(), 1);
        assert_eq!(c.oauth2.len(), 1);
        assert_eq!(c.oauth2[0].client_id, "gco_0");
        assert_eq!(c.api_keys.len(), 2);
        assert_eq!(c.api_keys[1].key, "ghk_1");
        Ok(())
    }
}
