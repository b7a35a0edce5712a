//! Typed registry commands: what a front end (the admin JSON API, the console) hands the
//! registry after parsing its own input. Every field is an already-validated value; the
//! registry checks only what needs the stored state (uniqueness, existence, rights).

use crate::api::{JwtMethod, Quota, QuotaPer, RateLimit, RatePer, RequiredClaim};
use crate::secret::SecretString;
use crate::types::{
    Audience, AuthType, DefaultAccess, Description, Email, HttpUrl, IpRule, IpRules, KeyIpRules,
    Name, ProjectId, ScopeName,
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

/// Create an access profile: everything it is, as a front end asks for it. Context-free
/// values arrive parsed (names, IP rules, project ids); the rules that tie members together
/// (per auth method), need the server's settings (token lifetime bound, outbound rules) or
/// the stored state (collections, policy, uniqueness) are the registry's.
#[derive(Debug)]
pub struct NewProfile {
    /// Unique within the client.
    pub name: Name,
    /// Free text.
    pub description: Description,
    /// Granted collection ids.
    pub collections: Vec<String>,
    /// Grant every user collection, present and future.
    pub all_collections: bool,
    /// Optional subset of the collections' scopes.
    pub scopes: Option<Vec<String>>,
    /// How the consumer proves itself.
    pub auth_type: AuthType,
    /// Where the profile may be used from.
    pub ip_rules: IpRules,
    /// Attached policy.
    pub policy_id: Option<String>,
    /// Admin profiles: the projects the admin is limited to (`None`: all).
    pub admin_projects: Option<Vec<ProjectId>>,
    /// Whether it may be used.
    pub active: bool,
    /// Access token lifetime (default: the server's).
    pub token_ttl_seconds: Option<i64>,
    /// Extra claims for access tokens (the registry refuses registered claim names).
    pub custom_claims: serde_json::Map<String, serde_json::Value>,
    /// `jwt`: how the consumer signs.
    pub jwt_method: Option<JwtMethod>,
    /// `jwt`/`oidc`: the pinned algorithms.
    pub jwt_algorithms: Option<Vec<String>>,
    /// `jwt`/rsa: the consumer's PEM public key.
    pub jwt_public_key: Option<String>,
    /// `jwt`/hmac: a secret the owner chose (else generated).
    pub jwt_secret: Option<SecretString>,
    /// `jwt`/rsa or `oidc`: a JWKS URL.
    pub oidc_jwks_uri: Option<String>,
    /// `oidc`: the identity provider's issuer.
    pub oidc_issuer: Option<String>,
    /// The identifying claim (default `sub`).
    pub jwt_claim: Option<String>,
    /// Its value (default for `jwt`: the profile's `oauth_client_id`).
    pub jwt_claim_value: Option<String>,
    /// Claims that must be present.
    pub required_claims: Vec<RequiredClaim>,
    /// Accepted issuers (empty: any).
    pub allowed_issuers: Vec<String>,
    /// Accepted audiences.
    pub allowed_audiences: Vec<String>,
}

/// Custom claims to set (`Some`, merged into an object value per RFC 7396) or remove
/// (`None`), by name.
pub type ClaimsPatch = Vec<(String, Option<serde_json::Value>)>;

/// Change IP rules member by member (a merge patch of `{default_access, allow, deny}`).
#[derive(Debug, Clone, Default)]
pub struct IpRulesPatch {
    /// New default (`Some(None)`: derive it from the allow list).
    pub default_access: Option<Option<DefaultAccess>>,
    /// New allow list.
    pub allow: Option<Vec<IpRule>>,
    /// New deny list.
    pub deny: Option<Vec<IpRule>>,
}

/// Change an access profile: each `Some` replaces the stored member (`Some(None)` removes an
/// optional one, which then takes its default); `ip_rules` and `custom_claims` merge member
/// by member. `auth_type` and `jwt_method` may be given only with their current values.
#[derive(Debug, Default)]
pub struct ProfilePatch {
    /// New name.
    pub name: Option<Name>,
    /// New description.
    pub description: Option<Description>,
    /// New collection grants.
    pub collections: Option<Vec<String>>,
    /// Grant every user collection.
    pub all_collections: Option<bool>,
    /// New scope subset, or all scopes.
    pub scopes: Option<Option<Vec<String>>>,
    /// Must equal the stored one.
    pub auth_type: Option<AuthType>,
    /// IP rule members to change (`Some(None)`: no rules).
    pub ip_rules: Option<Option<IpRulesPatch>>,
    /// New policy, or none.
    pub policy_id: Option<Option<String>>,
    /// New project limit, or none (all projects).
    pub admin_projects: Option<Option<Vec<ProjectId>>>,
    /// Switch the profile on or off.
    pub active: Option<bool>,
    /// New token lifetime, or the default.
    pub token_ttl_seconds: Option<Option<i64>>,
    /// Custom claims to set (`Some`) or remove (`None`); `Some(None)` here removes all.
    pub custom_claims: Option<Option<ClaimsPatch>>,
    /// Must equal the stored one.
    pub jwt_method: Option<Option<JwtMethod>>,
    /// New pinned algorithms, or the default.
    pub jwt_algorithms: Option<Option<Vec<String>>>,
    /// New PEM public key, or none.
    pub jwt_public_key: Option<Option<String>>,
    /// Refused: secrets change through a refresh.
    pub jwt_secret: Option<Option<SecretString>>,
    /// New JWKS URL, or none.
    pub oidc_jwks_uri: Option<Option<String>>,
    /// New issuer, or none.
    pub oidc_issuer: Option<Option<String>>,
    /// New identifying claim, or `sub`.
    pub jwt_claim: Option<Option<String>>,
    /// New identifying value, or the default.
    pub jwt_claim_value: Option<Option<String>>,
    /// New required claims.
    pub required_claims: Option<Vec<RequiredClaim>>,
    /// New accepted issuers.
    pub allowed_issuers: Option<Vec<String>>,
    /// New accepted audiences.
    pub allowed_audiences: Option<Vec<String>>,
}

impl ProfilePatch {
    /// The wire names of the members this patch changes, for the audit log.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("description", self.description.is_some()),
            ("collections", self.collections.is_some()),
            ("all_collections", self.all_collections.is_some()),
            ("scopes", self.scopes.is_some()),
            ("auth_type", self.auth_type.is_some()),
            ("ip_rules", self.ip_rules.is_some()),
            ("policy_id", self.policy_id.is_some()),
            ("admin_projects", self.admin_projects.is_some()),
            ("active", self.active.is_some()),
            ("token_ttl_seconds", self.token_ttl_seconds.is_some()),
            ("custom_claims", self.custom_claims.is_some()),
            ("jwt_method", self.jwt_method.is_some()),
            ("jwt_algorithms", self.jwt_algorithms.is_some()),
            ("jwt_public_key", self.jwt_public_key.is_some()),
            ("jwt_secret", self.jwt_secret.is_some()),
            ("oidc_jwks_uri", self.oidc_jwks_uri.is_some()),
            ("oidc_issuer", self.oidc_issuer.is_some()),
            ("jwt_claim", self.jwt_claim.is_some()),
            ("jwt_claim_value", self.jwt_claim_value.is_some()),
            ("required_claims", self.required_claims.is_some()),
            ("allowed_issuers", self.allowed_issuers.is_some()),
            ("allowed_audiences", self.allowed_audiences.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect()
    }
}

impl NewProfile {
    /// A profile with every optional member at its default (no IP rules, no policy, active,
    /// the server's token lifetime); set the others with struct update syntax.
    pub fn new(name: Name, auth_type: AuthType, collections: Vec<String>) -> Self {
        Self {
            name,
            description: Description::default(),
            collections,
            all_collections: false,
            scopes: None,
            auth_type,
            ip_rules: IpRules::default(),
            policy_id: None,
            admin_projects: None,
            active: true,
            token_ttl_seconds: None,
            custom_claims: serde_json::Map::new(),
            jwt_method: None,
            jwt_algorithms: None,
            jwt_public_key: None,
            jwt_secret: None,
            oidc_jwks_uri: None,
            oidc_issuer: None,
            jwt_claim: None,
            jwt_claim_value: None,
            required_claims: Vec::new(),
            allowed_issuers: Vec::new(),
            allowed_audiences: Vec::new(),
        }
    }
}
