//! Typed registry commands: what a front end (the admin JSON API, the console) hands the
//! registry after parsing its own input. Every field is an already-validated value; the
//! registry checks only what needs the stored state (uniqueness, existence, rights).

use crate::api::{Quota, QuotaPer, RateLimit, RatePer};
use crate::types::{
    Audience, Description, Email, HttpUrl, IpRule, KeyIpRules, Name, ProjectId, ScopeName,
};
use chrono::{DateTime, Utc};

/// Create a project.
#[derive(Debug, Clone)]
pub struct NewProject {
    /// Unique name.
    pub name: Name,
    /// Free text.
    pub description: Description,
}

/// Change a project: each field given replaces the stored one (JSON Merge Patch semantics
/// at the edge).
#[derive(Debug, Clone, Default)]
pub struct ProjectPatch {
    /// New name.
    pub name: Option<Name>,
    /// New description.
    pub description: Option<Description>,
}

impl ProjectPatch {
    /// The field names this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.name.is_some() {
            out.push("name");
        }
        if self.description.is_some() {
            out.push("description");
        }
        out
    }
}

/// How to reach the person managing a client.
#[derive(Debug, Clone, Default)]
pub struct ContactInfo {
    /// First name.
    pub first_name: Option<Name>,
    /// Last name.
    pub last_name: Option<Name>,
    /// Email address.
    pub email: Option<Email>,
}

/// Create a client.
#[derive(Debug, Clone)]
pub struct NewClient {
    /// Unique name.
    pub name: Name,
    /// Free text.
    pub description: Description,
    /// The project it belongs to (must exist, and be the actor's when the actor is limited).
    pub project: Option<ProjectId>,
    /// Who manages it.
    pub contact: ContactInfo,
    /// Whether it may use its credentials.
    pub active: bool,
}

impl NewClient {
    /// A client the server creates for itself (the bootstrap admin's).
    pub fn system(name: Name) -> Self {
        Self {
            name,
            description: Description::default(),
            project: None,
            contact: ContactInfo::default(),
            active: true,
        }
    }
}

/// Change a client: each `Some` replaces the stored value (`Some(None)` clears an optional
/// one).
#[derive(Debug, Clone, Default)]
pub struct ClientPatch {
    /// New name.
    pub name: Option<Name>,
    /// New description.
    pub description: Option<Description>,
    /// New project, or none.
    pub project: Option<Option<ProjectId>>,
    /// New contact first name.
    pub first_name: Option<Option<Name>>,
    /// New contact last name.
    pub last_name: Option<Option<Name>>,
    /// New contact email.
    pub email: Option<Option<Email>>,
    /// Switch the client on or off.
    pub active: Option<bool>,
}

impl ClientPatch {
    /// The wire names of the fields this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("project", self.project.is_some()),
            ("contact.first_name", self.first_name.is_some()),
            ("contact.last_name", self.last_name.is_some()),
            ("contact.email", self.email.is_some()),
            ("active", self.active.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }
}

/// Create a policy. The registry checks the ranges and that it limits something.
#[derive(Debug, Clone)]
pub struct NewPolicy {
    /// Unique name.
    pub name: Name,
    /// Optional rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Optional quota.
    pub quota: Option<Quota>,
}

/// Change one member of a limit (`{requests, per}`), keeping the other.
#[derive(Debug, Clone, Copy, Default)]
pub struct LimitPatch<P> {
    /// New request count.
    pub requests: Option<i64>,
    /// New window or period.
    pub per: Option<P>,
}

/// Change a policy: `Some(None)` removes a limit; a [`LimitPatch`] merges into the stored
/// limit (or, where there is none, must give both members).
#[derive(Debug, Clone, Default)]
pub struct PolicyPatch {
    /// New name.
    pub name: Option<Name>,
    /// New, changed or removed rate limit.
    pub rate_limit: Option<Option<LimitPatch<RatePer>>>,
    /// New, changed or removed quota.
    pub quota: Option<Option<LimitPatch<QuotaPer>>>,
}

impl PolicyPatch {
    /// The wire names of the fields this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("rate_limit", self.rate_limit.is_some()),
            ("quota", self.quota.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }
}

/// Create an API key for a `token` profile.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Display name.
    pub name: Name,
    /// Whether the key may be used.
    pub active: bool,
    /// When the key stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Its own IP rules (narrowing the profile's).
    pub ip_rules: KeyIpRules,
}

impl NewApiKey {
    /// The first key a new `token` profile gets.
    pub fn first() -> Self {
        Self {
            name: Name::default_key(),
            active: true,
            expires_at: None,
            ip_rules: KeyIpRules::default(),
        }
    }
}

/// Change an API key; `ip_rules` lists given replace the stored ones.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyPatch {
    /// New name.
    pub name: Option<Name>,
    /// Switch the key on or off.
    pub active: Option<bool>,
    /// New expiry, or none.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// New allow list.
    pub allow: Option<Vec<IpRule>>,
    /// New deny list.
    pub deny: Option<Vec<IpRule>>,
}

impl ApiKeyPatch {
    /// The wire names of the fields this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("active", self.active.is_some()),
            ("expires_at", self.expires_at.is_some()),
            ("ip_rules.allow", self.allow.is_some()),
            ("ip_rules.deny", self.deny.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }
}

/// A scope a collection defines.
#[derive(Debug, Clone)]
pub struct ScopeDef {
    /// Its name (unique server-wide; `gatehouse:*` only for the built-in collection).
    pub name: ScopeName,
    /// What it allows.
    pub description: Description,
}

/// Create an API collection. The registry checks uniqueness (name, audience, scopes) and
/// the scope list (at most 200, no repeats).
#[derive(Debug, Clone)]
pub struct NewCollection {
    /// Unique name.
    pub name: Name,
    /// Free text.
    pub description: Description,
    /// The resource indicator (RFC 8707), unique.
    pub audience: Audience,
    /// The scopes it defines.
    pub scopes: Vec<ScopeDef>,
    /// Base URL consumers call.
    pub integration_url: Option<HttpUrl>,
    /// Link to the API's documentation.
    pub documentation_url: Option<HttpUrl>,
}

/// Change a collection: each `Some` replaces the stored value; `scopes` replaces the list.
#[derive(Debug, Clone, Default)]
pub struct CollectionPatch {
    /// New name.
    pub name: Option<Name>,
    /// New description.
    pub description: Option<Description>,
    /// New audience.
    pub audience: Option<Audience>,
    /// New scope list.
    pub scopes: Option<Vec<ScopeDef>>,
    /// New integration URL, or none.
    pub integration_url: Option<Option<HttpUrl>>,
    /// New documentation URL, or none.
    pub documentation_url: Option<Option<HttpUrl>>,
}

impl CollectionPatch {
    /// The wire names of the fields this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("audience", self.audience.is_some()),
            ("scopes", self.scopes.is_some()),
            ("integration_url", self.integration_url.is_some()),
            ("documentation_url", self.documentation_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }
}

impl NewCollection {
    /// A collection from plain text, without links or descriptions (tools, benches, tests).
    pub fn plain(
        name: &str,
        audience: &str,
        scopes: &[&str],
    ) -> Result<Self, crate::error::RegistryError> {
        let mut f = crate::types::Fields::new();
        let n = f.check("name", Name::parse(name));
        let a = f.check("audience", Audience::parse(audience));
        let s: Vec<Option<ScopeName>> = scopes
            .iter()
            .enumerate()
            .map(|(i, s)| f.check(format!("scopes[{i}].name"), ScopeName::parse_user(s)))
            .collect();
        f.finish(|| {
            Some(Self {
                name: n?,
                description: Description::default(),
                audience: a?,
                scopes: s
                    .into_iter()
                    .map(|name| {
                        Some(ScopeDef {
                            name: name?,
                            description: Description::default(),
                        })
                    })
                    .collect::<Option<Vec<_>>>()?,
                integration_url: None,
                documentation_url: None,
            })
        })
    }
}
