//! `gatehouse export` and `gatehouse import`: the registry as one YAML document — projects,
//! collections, policies, clients with their access profiles and API keys (metadata only) —
//! like decK for Kong or a Keycloak realm export.
//!
//! Everything refers to everything else by **name** (ids belong to one database): a client's
//! project, a profile's collections, policy and `admin_projects`. The file never holds a
//! secret. An import makes the registry match the file: it creates what is missing, changes
//! what differs (a JSON Merge Patch of the members the file sets), and with `--prune` deletes
//! what the file does not name. A second import changes nothing and says so. `--dry-run`
//! prints the plan and changes nothing. Secrets the import creates (collection introspection
//! secrets, profile client secrets, HMAC secrets, API keys) are written once to a new 0600
//! file.

use crate::{Failure, Outcome, Session, decode, encode, write_private};
use gatehouse_registry::api::{
    ApiKey, Client, Collection, Contact, JwtMethod, Page, Policy, Profile, Project, Quota,
    RateLimit, RequiredClaim, ScopeDoc,
};
use gatehouse_registry::types::{AuthType, DefaultAccess};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

/// The name of the built-in admin collection as a file names it.
const BUILTIN: &str = "builtin:admin";

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The file format's version (1).
    pub version: u32,
    /// Projects, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<ProjectDoc>,
    /// User collections (never the built-in admin one).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<CollectionDoc>,
    /// Policies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyDoc>,
    /// Clients with their profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<ClientDoc>,
}

/// A project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectDoc {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectionDoc {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its audience (RFC 8707 resource).
    pub audience: String,
    /// Its scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<ScopeDoc>,
    /// Base URL consumers call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_url: Option<String>,
    /// API documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

/// A policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    /// Unique name.
    pub name: String,
    /// Rate limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A client and what hangs under it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientDoc {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Its project's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Who manages it.
    #[serde(default, skip_serializing_if = "is_empty_contact")]
    pub contact: Contact,
    /// Switched on.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
    /// Its access profiles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<ProfileDoc>,
}

fn is_empty_contact(c: &Contact) -> bool {
    c.first_name.is_none() && c.last_name.is_none() && c.email.is_none()
}

/// IP rules: `default_access` only when it is not the one derived from the allow list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpRulesFile {
    /// The default, when not derived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_access: Option<DefaultAccess>,
    /// Allowed addresses and ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Denied addresses and ranges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

impl IpRulesFile {
    fn is_empty(&self) -> bool {
        self.default_access.is_none() && self.allow.is_empty() && self.deny.is_empty()
    }
}

/// An access profile (never its secrets).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDoc {
    /// Unique within the client.
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `oauth2`, `token`, `jwt` or `oidc`.
    pub auth_type: AuthType,
    /// Granted collections, by name (`builtin:admin` for the admin API).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// Every user collection.
    #[serde(default, skip_serializing_if = "is_false")]
    pub all_collections: bool,
    /// Scope subset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// IP rules.
    #[serde(default, skip_serializing_if = "IpRulesFile::is_empty")]
    pub ip_rules: IpRulesFile,
    /// Policy, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Admin profiles: the projects (names) they are limited to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_projects: Option<Vec<String>>,
    /// Switched on.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
    /// Access token lifetime.
    pub token_ttl_seconds: i64,
    /// Extra claims.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub custom_claims: serde_json::Map<String, Value>,
    /// `jwt`: hmac or rsa.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_method: Option<JwtMethod>,
    /// `jwt`/`oidc`: pinned algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_algorithms: Option<Vec<String>>,
    /// `jwt`/rsa: the PEM public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_public_key: Option<String>,
    /// `oidc`: the identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// A JWKS URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_jwks_uri: Option<String>,
    /// Identifying claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_claim: Option<String>,
    /// Its value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_claim_value: Option<String>,
    /// Required claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_claims: Vec<RequiredClaim>,
    /// Accepted issuers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_issuers: Vec<String>,
    /// Accepted audiences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_audiences: Vec<String>,
    /// `token` profiles: their API keys (never their values).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<ApiKeyDoc>,
}

/// An API key's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyDoc {
    /// Name (unique within the profile, for matching).
    pub name: String,
    /// Switched on.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub active: bool,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Allowed addresses (must also match).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Denied addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
}

/// A profile and its API keys, as the admin API shows them.
type LiveProfile = (Profile, Vec<ApiKey>);

/// The registry as the admin API shows it, with the ids the file does not carry.
struct Live {
    projects: Vec<Project>,
    collections: Vec<Collection>,
    policies: Vec<Policy>,
    clients: Vec<(Client, Vec<LiveProfile>)>,
}

impl Live {
    fn project_name(&self, id: &str) -> Option<String> {
        self.projects
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
    }

    fn collection_name(&self, id: &str) -> Option<String> {
        self.collections.iter().find(|c| c.id == id).map(|c| {
            if c.builtin {
                BUILTIN.to_owned()
            } else {
                c.name.clone()
            }
        })
    }

    fn policy_name(&self, id: &str) -> Option<String> {
        self.policies
            .iter()
            .find(|p| p.id == id)
            .map(|p| p.name.clone())
    }
}

async fn all<T: serde::de::DeserializeOwned>(s: &Session, path: &str) -> Outcome<Vec<T>> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let full = match &cursor {
            Some(c) => format!("{path}{sep}limit=1000&cursor={}", encode(c)),
            None => format!("{path}{sep}limit=1000"),
        };
        let page: Page<T> = decode(s.admin(Method::GET, &full, None).await?)?;
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

async fn live(s: &Session) -> Outcome<Live> {
    let projects: Vec<Project> = all(s, "/projects").await?;
    let collections: Vec<Collection> = all(s, "/collections").await?;
    let policies: Vec<Policy> = all(s, "/policies").await?;
    let mut clients = Vec::new();
    for client in all::<Client>(s, "/clients").await? {
        let mut profiles = Vec::new();
        for profile in all::<Profile>(s, &format!("/clients/{}/access-profiles", client.id)).await?
        {
            let keys = if profile.auth_type == AuthType::Token {
                all::<ApiKey>(s, &format!("/access-profiles/{}/api-keys", profile.id)).await?
            } else {
                Vec::new()
            };
            profiles.push((profile, keys));
        }
        clients.push((client, profiles));
    }
    Ok(Live {
        projects,
        collections,
        policies,
        clients,
    })
}

fn ip_rules_file(v: &gatehouse_registry::types::IpRulesView) -> IpRulesFile {
    let derived = DefaultAccess::derived(!v.allow.is_empty());
    IpRulesFile {
        default_access: (v.default_access != derived).then_some(v.default_access),
        allow: v.allow.clone(),
        deny: v.deny.clone(),
    }
}

fn profile_doc(l: &Live, p: &Profile, keys: &[ApiKey]) -> ProfileDoc {
    let jwt = p.jwt.as_ref();
    let mut collections: Vec<String> = p
        .collections
        .iter()
        .map(|id| l.collection_name(id).unwrap_or_else(|| id.clone()))
        .collect();
    collections.sort();
    let mut api_keys: Vec<ApiKeyDoc> = keys
        .iter()
        .map(|k| ApiKeyDoc {
            name: k.name.clone(),
            active: k.active,
            expires_at: k.expires_at,
            allow: k.ip_rules.allow.clone(),
            deny: k.ip_rules.deny.clone(),
        })
        .collect();
    api_keys.sort_by(|a, b| a.name.cmp(&b.name));
    ProfileDoc {
        name: p.name.clone(),
        description: p.description.clone(),
        auth_type: p.auth_type,
        collections,
        all_collections: p.all_collections,
        scopes: p.scopes.clone(),
        ip_rules: ip_rules_file(&p.ip_rules),
        policy: p.policy_id.as_deref().and_then(|id| l.policy_name(id)),
        admin_projects: p.admin_projects.as_ref().map(|ids| {
            let mut names: Vec<String> = ids
                .iter()
                .map(|id| l.project_name(id).unwrap_or_else(|| id.clone()))
                .collect();
            names.sort();
            names
        }),
        active: p.active,
        token_ttl_seconds: p.token_ttl_seconds,
        custom_claims: p.custom_claims.as_object().cloned().unwrap_or_default(),
        jwt_method: jwt.and_then(|j| j.jwt_method),
        jwt_algorithms: jwt.map(|j| j.jwt_algorithms.clone()),
        jwt_public_key: jwt.and_then(|j| j.jwt_public_key.clone()),
        oidc_issuer: jwt.and_then(|j| j.oidc_issuer.clone()),
        oidc_jwks_uri: jwt.and_then(|j| j.oidc_jwks_uri.clone()),
        jwt_claim: jwt.map(|j| j.jwt_claim.clone()),
        jwt_claim_value: jwt.map(|j| j.jwt_claim_value.clone()),
        required_claims: jwt.map(|j| j.required_claims.clone()).unwrap_or_default(),
        allowed_issuers: jwt.map(|j| j.allowed_issuers.clone()).unwrap_or_default(),
        allowed_audiences: jwt.map(|j| j.allowed_audiences.clone()).unwrap_or_default(),
        api_keys,
    }
}

fn document(l: &Live) -> Document {
    let mut projects: Vec<ProjectDoc> = l
        .projects
        .iter()
        .map(|p| ProjectDoc {
            name: p.name.clone(),
            description: p.description.clone(),
        })
        .collect();
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    let mut collections: Vec<CollectionDoc> = l
        .collections
        .iter()
        .filter(|c| !c.builtin)
        .map(|c| CollectionDoc {
            name: c.name.clone(),
            description: c.description.clone(),
            audience: c.audience.clone(),
            scopes: c.scopes.clone(),
            integration_url: c.integration_url.clone(),
            documentation_url: c.documentation_url.clone(),
        })
        .collect();
    collections.sort_by(|a, b| a.name.cmp(&b.name));
    let mut policies: Vec<PolicyDoc> = l
        .policies
        .iter()
        .map(|p| PolicyDoc {
            name: p.name.clone(),
            rate_limit: p.rate_limit,
            quota: p.quota,
        })
        .collect();
    policies.sort_by(|a, b| a.name.cmp(&b.name));
    let mut clients: Vec<ClientDoc> = l
        .clients
        .iter()
        .map(|(c, profiles)| {
            let mut profiles: Vec<ProfileDoc> = profiles
                .iter()
                .map(|(p, keys)| profile_doc(l, p, keys))
                .collect();
            profiles.sort_by(|a, b| a.name.cmp(&b.name));
            ClientDoc {
                name: c.name.clone(),
                description: c.description.clone(),
                project: c.project.as_deref().and_then(|id| l.project_name(id)),
                contact: c.contact.clone(),
                active: c.active,
                profiles,
            }
        })
        .collect();
    clients.sort_by(|a, b| a.name.cmp(&b.name));
    Document {
        version: 1,
        projects,
        collections,
        policies,
        clients,
    }
}

/// `gatehouse export`: the registry as YAML on standard output.
pub(crate) async fn export(s: &Session) -> Outcome<()> {
    let doc = document(&live(s).await?);
    let text = serde_yaml::to_string(&doc)
        .map_err(|e| Failure::Usage(format!("cannot write YAML: {e}")))?;
    print!("{text}");
    Ok(())
}

/// One step of an import.
enum Step {
    Create {
        what: String,
        path: String,
        body: Value,
        secret_of: Option<String>,
    },
    Update {
        what: String,
        path: String,
        body: Value,
        changes: Vec<String>,
    },
    Delete {
        what: String,
        path: String,
    },
}

impl Step {
    fn line(&self) -> String {
        match self {
            Step::Create { what, .. } => format!("+ {what}"),
            Step::Update { what, changes, .. } => format!("~ {what}: {}", changes.join("; ")),
            Step::Delete { what, .. } => format!("- {what}"),
        }
    }
}

/// The members of two JSON objects that differ, as `member: old → new`.
fn differences(old: &Value, new: &Value) -> Vec<String> {
    let empty = serde_json::Map::new();
    let (a, b) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("(none)".to_owned(), Value::to_string);
            format!("{k}: {} → {}", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

/// A merge patch that turns `old` into `new` (members `new` lacks become null).
fn merge_patch(old: &Value, new: &Value) -> Value {
    let mut patch = new.as_object().cloned().unwrap_or_default();
    if let Some(old) = old.as_object() {
        for k in old.keys() {
            patch.entry(k.clone()).or_insert(Value::Null);
        }
    }
    Value::Object(patch)
}

fn to_value<T: Serialize>(v: &T) -> Outcome<Value> {
    serde_json::to_value(v).map_err(|e| Failure::Usage(e.to_string()))
}

/// The admin API body of a file's profile, with names resolved to ids.
fn profile_body(p: &ProfileDoc, ids: &Ids, with_auth_type: bool) -> Outcome<Value> {
    let mut v = to_value(p)?;
    let Some(map) = v.as_object_mut() else {
        return Err(Failure::Usage("a profile must be a mapping".to_owned()));
    };
    map.remove("api_keys");
    map.remove("policy");
    if !with_auth_type {
        map.remove("auth_type");
        map.remove("jwt_method");
    }
    let collections: Vec<Value> = p
        .collections
        .iter()
        .map(|n| ids.collection(n).map(Value::from))
        .collect::<Outcome<_>>()?;
    map.insert("collections".to_owned(), Value::from(collections));
    map.insert(
        "policy_id".to_owned(),
        match &p.policy {
            Some(n) => Value::from(ids.policy(n)?),
            None => Value::Null,
        },
    );
    if let Some(names) = &p.admin_projects {
        let projects: Vec<Value> = names
            .iter()
            .map(|n| ids.project(n).map(Value::from))
            .collect::<Outcome<_>>()?;
        map.insert("admin_projects".to_owned(), Value::from(projects));
    }
    // Complete, so that a merge patch of it replaces rather than merges.
    map.insert(
        "ip_rules".to_owned(),
        json!({"default_access": p.ip_rules.default_access, "allow": p.ip_rules.allow,
               "deny": p.ip_rules.deny}),
    );
    map.insert(
        "custom_claims".to_owned(),
        Value::Object(p.custom_claims.clone()),
    );
    Ok(v)
}

/// Names → ids, of what exists and of what the import created so far.
#[derive(Default)]
struct Ids {
    projects: BTreeMap<String, String>,
    collections: BTreeMap<String, String>,
    policies: BTreeMap<String, String>,
}

impl Ids {
    fn lookup(map: &BTreeMap<String, String>, kind: &str, name: &str) -> Outcome<String> {
        map.get(name)
            .cloned()
            .ok_or_else(|| Failure::Usage(format!("the file names an unknown {kind} `{name}`")))
    }

    fn project(&self, name: &str) -> Outcome<String> {
        Self::lookup(&self.projects, "project", name)
    }

    fn collection(&self, name: &str) -> Outcome<String> {
        Self::lookup(&self.collections, "collection", name)
    }

    fn policy(&self, name: &str) -> Outcome<String> {
        Self::lookup(&self.policies, "policy", name)
    }
}

/// Every name the file refers to exists in the file or in the registry: checked before the
/// first change, so a typo never leaves half an import behind.
fn check_references(want: &Document, have: &Document) -> Outcome<()> {
    let names = |a: &[String], b: &[String], name: &str| a.iter().chain(b).any(|n| n == name);
    let projects = (
        want.projects
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>(),
        have.projects
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>(),
    );
    let collections = (
        want.collections
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>(),
        have.collections
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>(),
    );
    let policies = (
        want.policies
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>(),
        have.policies
            .iter()
            .map(|x| x.name.clone())
            .collect::<Vec<_>>(),
    );
    let known = |set: &(Vec<String>, Vec<String>), name: &str| names(&set.0, &set.1, name);
    let mut missing = Vec::new();
    for c in &want.clients {
        if let Some(p) = &c.project
            && !known(&projects, p)
        {
            missing.push(format!("client {}: project `{p}`", c.name));
        }
        for p in &c.profiles {
            for col in &p.collections {
                if col != BUILTIN && !known(&collections, col) {
                    missing.push(format!(
                        "client {} / profile {}: collection `{col}`",
                        c.name, p.name
                    ));
                }
            }
            if let Some(pol) = &p.policy
                && !known(&policies, pol)
            {
                missing.push(format!(
                    "client {} / profile {}: policy `{pol}`",
                    c.name, p.name
                ));
            }
            for prj in p.admin_projects.iter().flatten() {
                if !known(&projects, prj) {
                    missing.push(format!(
                        "client {} / profile {}: admin project `{prj}`",
                        c.name, p.name
                    ));
                }
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Failure::Usage(format!(
            "the file names what neither it nor the registry has: {}",
            missing.join(", ")
        )))
    }
}

// Apply (or, dry, print) one step; created ids are returned for references.
async fn apply(
    s: &Session,
    step: Step,
    dry_run: bool,
    log: &mut Vec<String>,
    secrets: &mut serde_json::Map<String, Value>,
) -> Outcome<Option<Value>> {
    log.push(step.line());
    if dry_run {
        return Ok(None);
    }
    match step {
        Step::Create {
            path,
            body,
            secret_of,
            ..
        } => {
            let mut answer = s.admin(Method::POST, &path, Some(&body)).await?;
            if let Some(label) = secret_of {
                let mut found = serde_json::Map::new();
                if let Some(map) = answer.as_object_mut() {
                    for f in crate::SECRET_FIELDS {
                        if let Some(v) = map.get(f).filter(|v| v.is_string()).cloned() {
                            found.insert(f.to_owned(), v);
                            map.remove(f);
                        }
                    }
                    for f in ["oauth_client_id", "introspection_client_id", "api_key_id"] {
                        if let Some(v) = map.get(f).cloned() {
                            found.insert(f.to_owned(), v);
                        }
                    }
                }
                if found
                    .keys()
                    .any(|k| crate::SECRET_FIELDS.contains(&k.as_str()))
                {
                    secrets.insert(label, Value::Object(found));
                }
            }
            Ok(Some(answer))
        }
        Step::Update { path, body, .. } => {
            s.admin(Method::PATCH, &path, Some(&body)).await?;
            Ok(None)
        }
        Step::Delete { path, .. } => {
            s.admin(Method::DELETE, &path, None).await?;
            Ok(None)
        }
    }
}

/// A project, collection or policy as the file wants it and as the registry has it.
struct Named<'a> {
    kind: &'static str,
    base: &'static str,
    name: &'a str,
    live_id: Option<&'a str>,
    old: Option<Value>,
    new: Value,
    secret: bool,
}

/// Create `n` when the registry lacks it, patch it when it differs; answers its id (a
/// placeholder in a dry run).
async fn sync_named(
    s: &Session,
    n: Named<'_>,
    dry_run: bool,
    log: &mut Vec<String>,
    secrets: &mut serde_json::Map<String, Value>,
) -> Outcome<String> {
    let what = format!("{} {}", n.kind, n.name);
    match n.live_id {
        None => {
            let made = apply(
                s,
                Step::Create {
                    what: what.clone(),
                    path: n.base.to_owned(),
                    body: n.new,
                    secret_of: n.secret.then(|| what.clone()),
                },
                dry_run,
                log,
                secrets,
            )
            .await?;
            Ok(made
                .and_then(|m| m["id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("(new {what})")))
        }
        Some(id) => {
            let old = n.old.unwrap_or(Value::Null);
            if old != n.new {
                apply(
                    s,
                    Step::Update {
                        what,
                        path: format!("{}/{id}", n.base),
                        body: merge_patch(&old, &n.new),
                        changes: differences(&old, &n.new),
                    },
                    dry_run,
                    log,
                    secrets,
                )
                .await?;
            }
            Ok(id.to_owned())
        }
    }
}

/// `gatehouse import FILE [--dry-run] [--prune] [--secrets-file F]`.
pub(crate) async fn import(
    s: &Session,
    file: &Path,
    dry_run: bool,
    prune: bool,
    secrets_file: Option<&Path>,
) -> Outcome<()> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
    let want: Document = serde_yaml::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{}: {e}", file.display())))?;
    if want.version != 1 {
        return Err(Failure::Usage(format!(
            "{}: version {} (this gatehouse reads version 1)",
            file.display(),
            want.version
        )));
    }
    let l = live(s).await?;
    let have = document(&l);
    check_references(&want, &have)?;
    let mut ids = Ids::default();
    for p in &l.projects {
        ids.projects.insert(p.name.clone(), p.id.clone());
    }
    for c in &l.collections {
        let name = if c.builtin {
            BUILTIN.to_owned()
        } else {
            c.name.clone()
        };
        ids.collections.insert(name, c.id.clone());
    }
    for p in &l.policies {
        ids.policies.insert(p.name.clone(), p.id.clone());
    }
    let own = s.client_id.clone();
    let mut log: Vec<String> = Vec::new();
    let mut secrets = serde_json::Map::new();

    // Projects, collections and policies: created when missing, patched when different.
    // Collections are created before the clients that name them, and so on.
    for p in &want.projects {
        let id = sync_named(
            s,
            Named {
                kind: "project",
                base: "/projects",
                name: &p.name,
                live_id: l
                    .projects
                    .iter()
                    .find(|x| x.name == p.name)
                    .map(|x| x.id.as_str()),
                old: have
                    .projects
                    .iter()
                    .find(|h| h.name == p.name)
                    .map(to_value)
                    .transpose()?,
                new: to_value(p)?,
                secret: false,
            },
            dry_run,
            &mut log,
            &mut secrets,
        )
        .await?;
        ids.projects.insert(p.name.clone(), id);
    }
    for c in &want.collections {
        let live = l
            .collections
            .iter()
            .find(|x| x.name == c.name && !x.builtin);
        let id = sync_named(
            s,
            Named {
                kind: "collection",
                base: "/collections",
                name: &c.name,
                live_id: live.map(|x| x.id.as_str()),
                old: have
                    .collections
                    .iter()
                    .find(|h| h.name == c.name)
                    .map(to_value)
                    .transpose()?,
                new: to_value(c)?,
                secret: true,
            },
            dry_run,
            &mut log,
            &mut secrets,
        )
        .await?;
        ids.collections.insert(c.name.clone(), id);
    }
    for p in &want.policies {
        let id = sync_named(
            s,
            Named {
                kind: "policy",
                base: "/policies",
                name: &p.name,
                live_id: l
                    .policies
                    .iter()
                    .find(|x| x.name == p.name)
                    .map(|x| x.id.as_str()),
                old: have
                    .policies
                    .iter()
                    .find(|h| h.name == p.name)
                    .map(to_value)
                    .transpose()?,
                new: to_value(p)?,
                secret: false,
            },
            dry_run,
            &mut log,
            &mut secrets,
        )
        .await?;
        ids.policies.insert(p.name.clone(), id);
    }
    // Clients, their profiles and keys.
    for c in &want.clients {
        let body = {
            let mut v = to_value(c)?;
            if let Some(map) = v.as_object_mut() {
                map.remove("profiles");
                map.insert(
                    "project".to_owned(),
                    match &c.project {
                        Some(n) => Value::from(ids.project(n)?),
                        None => Value::Null,
                    },
                );
                map.entry("active").or_insert(Value::Bool(c.active));
            }
            v
        };
        let existing = l.clients.iter().find(|(x, _)| x.name == c.name);
        let client_id = match existing {
            None => {
                let made = apply(
                    s,
                    Step::Create {
                        what: format!("client {}", c.name),
                        path: "/clients".to_owned(),
                        body,
                        secret_of: None,
                    },
                    dry_run,
                    &mut log,
                    &mut secrets,
                )
                .await?;
                made.and_then(|m| m["id"].as_str().map(str::to_owned))
            }
            Some((x, _)) => {
                let old_doc = have.clients.iter().find(|h| h.name == c.name);
                let strip = |d: &ClientDoc| {
                    let mut d = d.clone();
                    d.profiles.clear();
                    d
                };
                let old = old_doc
                    .map(|d| to_value(&strip(d)))
                    .transpose()?
                    .unwrap_or(Value::Null);
                let new = to_value(&strip(c))?;
                if old != new {
                    let mut patch = body.clone();
                    if let Some(map) = patch.as_object_mut() {
                        map.insert(
                            "contact".to_owned(),
                            merge_patch(&to_value(&x.contact)?, &to_value(&c.contact)?),
                        );
                        map.insert("description".to_owned(), Value::from(c.description.clone()));
                    }
                    apply(
                        s,
                        Step::Update {
                            what: format!("client {}", c.name),
                            path: format!("/clients/{}", x.id),
                            body: patch,
                            changes: differences(&old, &new),
                        },
                        dry_run,
                        &mut log,
                        &mut secrets,
                    )
                    .await?;
                }
                Some(x.id.clone())
            }
        };
        let live_profiles: &[LiveProfile] = existing.map(|(_, p)| p.as_slice()).unwrap_or(&[]);
        for p in &c.profiles {
            let label = format!("client {} / profile {}", c.name, p.name);
            let (profile_id, live_keys): (Option<String>, &[ApiKey]) = match live_profiles
                .iter()
                .find(|(x, _)| x.name == p.name)
            {
                None => {
                    let made = apply(
                        s,
                        Step::Create {
                            what: format!("profile {label}"),
                            path: format!(
                                "/clients/{}/access-profiles",
                                client_id.clone().unwrap_or_default()
                            ),
                            body: profile_body(p, &ids, true)?,
                            secret_of: Some(label.clone()),
                        },
                        dry_run,
                        &mut log,
                        &mut secrets,
                    )
                    .await?;
                    (made.and_then(|m| m["id"].as_str().map(str::to_owned)), &[])
                }
                Some((x, keys)) => {
                    if x.auth_type != p.auth_type {
                        return Err(Failure::Usage(format!(
                            "{label}: auth_type cannot change ({} → {}); delete it and import again",
                            x.auth_type.as_str(),
                            p.auth_type.as_str()
                        )));
                    }
                    let mut old_doc = profile_doc(&l, x, &[]);
                    let mut new_doc = p.clone();
                    old_doc.api_keys.clear();
                    new_doc.api_keys.clear();
                    if old_doc != new_doc {
                        if x.oauth_client_id == own && !dry_run {
                            log.push(format!(
                                "! {label}: skipped (the importing admin's own profile)"
                            ));
                        } else {
                            let old = profile_body(&old_doc, &ids, false)?;
                            let new = profile_body(&new_doc, &ids, false)?;
                            let mut body = merge_patch(&old, &new);
                            if let Some(map) = body.as_object_mut() {
                                map.insert(
                                    "custom_claims".to_owned(),
                                    merge_patch(&old["custom_claims"], &new["custom_claims"]),
                                );
                            }
                            apply(
                                s,
                                Step::Update {
                                    what: format!("profile {label}"),
                                    path: format!("/access-profiles/{}", x.id),
                                    body,
                                    changes: differences(
                                        &to_value(&old_doc)?,
                                        &to_value(&new_doc)?,
                                    ),
                                },
                                dry_run,
                                &mut log,
                                &mut secrets,
                            )
                            .await?;
                        }
                    }
                    (Some(x.id.clone()), keys.as_slice())
                }
            };
            // A new token profile gets a `default` key from the server.
            let mut live_key_names: Vec<String> =
                live_keys.iter().map(|k| k.name.clone()).collect();
            if live_profiles.iter().all(|(x, _)| x.name != p.name) && p.auth_type == AuthType::Token
            {
                live_key_names.push("default".to_owned());
            }
            for k in &p.api_keys {
                let body = json!({"name": k.name, "active": k.active, "expires_at": k.expires_at,
                                  "ip_rules": {"allow": k.allow, "deny": k.deny}});
                match live_keys.iter().find(|x| x.name == k.name) {
                    None if live_key_names.contains(&k.name) => {
                        // The server's `default` key of a profile created just now.
                        let is_default = k.active
                            && k.expires_at.is_none()
                            && k.allow.is_empty()
                            && k.deny.is_empty();
                        if !(dry_run || is_default) {
                            let keys: Vec<ApiKey> = all(
                                s,
                                &format!(
                                    "/access-profiles/{}/api-keys",
                                    profile_id.clone().unwrap_or_default()
                                ),
                            )
                            .await?;
                            if let Some(made) = keys.iter().find(|x| x.name == k.name) {
                                apply(
                                    s,
                                    Step::Update {
                                        what: format!("API key {label} / {}", k.name),
                                        path: format!("/api-keys/{}", made.id),
                                        body: body.clone(),
                                        changes: vec!["as in the file".to_owned()],
                                    },
                                    dry_run,
                                    &mut log,
                                    &mut secrets,
                                )
                                .await?;
                            }
                        }
                    }
                    None => {
                        apply(
                            s,
                            Step::Create {
                                what: format!("API key {label} / {}", k.name),
                                path: format!(
                                    "/access-profiles/{}/api-keys",
                                    profile_id.clone().unwrap_or_default()
                                ),
                                body,
                                secret_of: Some(format!("{label} / key {}", k.name)),
                            },
                            dry_run,
                            &mut log,
                            &mut secrets,
                        )
                        .await?;
                    }
                    Some(x) => {
                        let old = ApiKeyDoc {
                            name: x.name.clone(),
                            active: x.active,
                            expires_at: x.expires_at,
                            allow: x.ip_rules.allow.clone(),
                            deny: x.ip_rules.deny.clone(),
                        };
                        if &old != k {
                            apply(
                                s,
                                Step::Update {
                                    what: format!("API key {label} / {}", k.name),
                                    path: format!("/api-keys/{}", x.id),
                                    body,
                                    changes: differences(&to_value(&old)?, &to_value(k)?),
                                },
                                dry_run,
                                &mut log,
                                &mut secrets,
                            )
                            .await?;
                        }
                    }
                }
            }
            if prune {
                for x in live_keys
                    .iter()
                    .filter(|x| p.api_keys.iter().all(|k| k.name != x.name))
                {
                    apply(
                        s,
                        Step::Delete {
                            what: format!("API key {label} / {}", x.name),
                            path: format!("/api-keys/{}", x.id),
                        },
                        dry_run,
                        &mut log,
                        &mut secrets,
                    )
                    .await?;
                }
            }
        }
        if prune {
            for (x, _) in live_profiles
                .iter()
                .filter(|(x, _)| c.profiles.iter().all(|p| p.name != x.name))
            {
                if x.oauth_client_id == own {
                    log.push(format!(
                        "! client {} / profile {}: kept (the importing admin's own profile)",
                        c.name, x.name
                    ));
                    continue;
                }
                apply(
                    s,
                    Step::Delete {
                        what: format!("profile client {} / profile {}", c.name, x.name),
                        path: format!("/access-profiles/{}", x.id),
                    },
                    dry_run,
                    &mut log,
                    &mut secrets,
                )
                .await?;
            }
        }
    }
    if prune {
        for (x, profiles) in l
            .clients
            .iter()
            .filter(|(x, _)| want.clients.iter().all(|c| c.name != x.name))
        {
            if profiles.iter().any(|(p, _)| p.oauth_client_id == own) {
                log.push(format!(
                    "! client {}: kept (it holds the importing admin's own profile)",
                    x.name
                ));
                continue;
            }
            apply(
                s,
                Step::Delete {
                    what: format!("client {}", x.name),
                    path: format!("/clients/{}", x.id),
                },
                dry_run,
                &mut log,
                &mut secrets,
            )
            .await?;
        }
        for x in l
            .policies
            .iter()
            .filter(|x| want.policies.iter().all(|p| p.name != x.name))
        {
            apply(
                s,
                Step::Delete {
                    what: format!("policy {}", x.name),
                    path: format!("/policies/{}", x.id),
                },
                dry_run,
                &mut log,
                &mut secrets,
            )
            .await?;
        }
        for x in l
            .collections
            .iter()
            .filter(|x| !x.builtin && want.collections.iter().all(|c| c.name != x.name))
        {
            apply(
                s,
                Step::Delete {
                    what: format!("collection {}", x.name),
                    path: format!("/collections/{}", x.id),
                },
                dry_run,
                &mut log,
                &mut secrets,
            )
            .await?;
        }
        for x in l
            .projects
            .iter()
            .filter(|x| want.projects.iter().all(|p| p.name != x.name))
        {
            apply(
                s,
                Step::Delete {
                    what: format!("project {}", x.name),
                    path: format!("/projects/{}", x.id),
                },
                dry_run,
                &mut log,
                &mut secrets,
            )
            .await?;
        }
    }
    for line in &log {
        println!("{line}");
    }
    let changes = log.iter().filter(|l| !l.starts_with('!')).count();
    if changes == 0 {
        println!(
            "no changes: the registry already matches {}",
            file.display()
        );
    } else if dry_run {
        println!("{changes} change(s) planned; nothing was changed (--dry-run)");
    } else {
        println!("{changes} change(s) applied");
    }
    if !secrets.is_empty() {
        let path = secrets_file.map(Path::to_path_buf).unwrap_or_else(|| {
            let stamp = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now())
                .format("%Y%m%dT%H%M%SZ");
            std::path::PathBuf::from(format!("gatehouse-import-secrets-{stamp}.json"))
        });
        // Written once, mode 0600, never over an existing file.
        let text = serde_json::to_string_pretty(&Value::Object(secrets))
            .map_err(|e| Failure::Usage(e.to_string()))?;
        write_private(&path, &text)?;
        println!(
            "the credentials this import created are in {} (mode 0600): store them, then delete it",
            path.display()
        );
    }
    Ok(())
}
