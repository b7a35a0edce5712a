//! Random, kind-prefixed identifiers (`col_`, `cli_`, `prf_`, `gco_`, `grs_`, ...).

use rand::Rng;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` characters drawn uniformly from the base62 alphabet with the OS-seeded CSPRNG.
pub fn base62(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..BASE62.len());
            char::from(BASE62.get(i).copied().unwrap_or(b'0'))
        })
        .collect()
}

/// The kinds of identifier Gatehouse hands out; each has its own prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// An API collection.
    Collection,
    /// A client (organisation).
    Client,
    /// An access profile.
    Profile,
    /// An API key record.
    ApiKey,
    /// A policy.
    Policy,
    /// A project (a group of clients that admins may be limited to).
    Project,
    /// The public OAuth client id of a profile.
    OAuthClient,
    /// The introspection client id of a collection.
    ResourceServer,
    /// A stored secret (hash) record.
    Secret,
    /// An audit event.
    Audit,
}

impl IdKind {
    /// The prefix, including the underscore.
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Collection => "col_",
            IdKind::Client => "cli_",
            IdKind::Profile => "prf_",
            IdKind::ApiKey => "key_",
            IdKind::Policy => "pol_",
            IdKind::Project => "prj_",
            IdKind::OAuthClient => "gco_",
            IdKind::ResourceServer => "grs_",
            IdKind::Secret => "sec_",
            IdKind::Audit => "evt_",
        }
    }
}

/// A fresh random identifier of the given kind: prefix + 22 base62 characters (~131 bits).
pub fn new_id(kind: IdKind) -> String {
    format!("{}{}", kind.prefix(), base62(22))
}

/// A fresh time-ordered identifier: prefix + 12 hex digits of milliseconds + 10 random base62.
/// Lexicographic order follows creation time, which suits append-only logs.
pub fn new_sorted_id(kind: IdKind, unix_millis: i64) -> String {
    format!("{}{:012x}{}", kind.prefix(), unix_millis.max(0), base62(10))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        let id = new_id(IdKind::Collection);
        assert!(id.starts_with("col_"));
        assert_eq!(id.len(), 26);
        assert_ne!(new_id(IdKind::Client), new_id(IdKind::Client));
    }

    #[test]
    fn sorted_ids_sort_by_time() {
        let a = new_sorted_id(IdKind::Audit, 1_000);
        let b = new_sorted_id(IdKind::Audit, 2_000);
        assert!(a < b);
    }
}
