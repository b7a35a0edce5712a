//! Request bodies of the admin API and their parsing into the registry's typed commands.
//!
//! Creates deserialize into `*Input` (unknown members refused); a `PATCH` is a JSON Merge
//! Patch (RFC 7396) and deserializes into `*PatchInput`, where each member is
//! `Option<Option<T>>`: absent (keep), `null` (remove: clear or reset to the default), or a
//! value (replace). Nested objects merge member by member, as §2 of the RFC says. The
//! command each produces holds only validated values; every bad field is reported at once,
//! in the contract's `{error, message, fields}` shape with the wire field names.

use chrono::{DateTime, Utc};
use gatehouse_registry::RegistryError;
use gatehouse_registry::api::{KeyIpRulesDoc, Quota, QuotaPer, RateLimit, RatePer};
use gatehouse_registry::command::{
    ApiKeyPatch, ClientPatch, CollectionPatch, ContactInfo, LimitPatch, NewApiKey, NewClient,
    NewCollection, NewPolicy, PolicyPatch, ScopeDef,
};
use gatehouse_registry::types::{
    Audience, Description, Email, FieldError, Fields, HttpUrl, IpRule, KeyIpRules, Name, ProjectId,
    ScopeName,
};
use serde::Deserialize;
use utoipa::ToSchema;

/// Tell a member given as `null` (`Some(None)`) from one left out (`None`).
pub(crate) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Parse a JSON value into a wire type, with the registry's safe error messages.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<T, RegistryError> {
    gatehouse_registry::parse_input(value)
}

fn yes() -> bool {
    true
}

/// The person managing a client.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// First name.
    #[serde(default)]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default)]
    pub last_name: Option<String>,
    /// Email address.
    #[serde(default)]
    pub email: Option<String>,
}

/// Create a client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientInput {
    /// Display name, unique.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The project (`prj_…`) the client belongs to, or null.
    #[serde(default)]
    pub project: Option<String>,
    /// Who manages the client.
    #[serde(default)]
    pub contact: ContactInput,
    /// An inactive client cannot obtain or use any credential.
    #[serde(default = "yes")]
    pub active: bool,
}

impl ClientInput {
    /// The typed command.
    pub fn command(self) -> Result<NewClient, RegistryError> {
        let mut f = Fields::new();
        let name = f.check("name", Name::parse(&self.name));
        let description = f.check("description", Description::parse(&self.description));
        let project = f.check_optional("project", self.project.as_deref(), ProjectId::parse);
        let contact = contact(&mut f, &self.contact);
        f.finish(|| {
            Some(NewClient {
                name: name?,
                description: description?,
                project,
                contact,
                active: self.active,
            })
        })
    }
}

fn contact(f: &mut Fields, c: &ContactInput) -> ContactInfo {
    ContactInfo {
        first_name: f.check_optional("contact.first_name", c.first_name.as_deref(), Name::parse),
        last_name: f.check_optional("contact.last_name", c.last_name.as_deref(), Name::parse),
        email: f.check_optional("contact.email", c.email.as_deref(), Email::parse),
    }
}

/// A merge patch of a client's contact.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchInput {
    /// New first name (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    /// New last name (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    /// New email (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
}

/// A JSON Merge Patch of a client.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatchInput {
    /// New name (null is refused: a client always has one).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New description (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New project id (null: no project).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub project: Option<Option<String>>,
    /// Contact members to change (null clears them all).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<ContactPatchInput>)]
    pub contact: Option<Option<ContactPatchInput>>,
    /// Switch the client on or off (null: back to the default, on).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub active: Option<Option<bool>>,
}

/// Replace-or-clear an optional text member of a patch.
fn patch_optional<T>(
    f: &mut Fields,
    field: &str,
    member: Option<Option<String>>,
    parse: impl FnOnce(&str) -> Result<T, gatehouse_registry::types::Invalid>,
) -> Option<Option<T>> {
    match member {
        None => None,
        Some(None) => Some(None),
        Some(Some(text)) if text.trim().is_empty() => Some(None),
        Some(Some(text)) => f.check(field, parse(&text)).map(Some),
    }
}

/// A member that a merge patch may change but not remove.
fn patch_required<T>(
    f: &mut Fields,
    field: &str,
    member: Option<Option<String>>,
    parse: impl FnOnce(&str) -> Result<T, gatehouse_registry::types::Invalid>,
) -> Option<T> {
    match member {
        None => None,
        Some(None) => {
            f.push(FieldError::new(field, "required", "cannot be removed"));
            None
        }
        Some(Some(text)) => f.check(field, parse(&text)),
    }
}

impl ClientPatchInput {
    /// The typed command.
    pub fn command(self) -> Result<ClientPatch, RegistryError> {
        let mut f = Fields::new();
        let name = patch_required(&mut f, "name", self.name, Name::parse);
        let description = self.description.map(|d| {
            f.check(
                "description",
                Description::parse(d.as_deref().unwrap_or_default()),
            )
        });
        let project = patch_optional(&mut f, "project", self.project, ProjectId::parse);
        let contact = match self.contact {
            None => ContactPatchInput::default(),
            Some(None) => ContactPatchInput {
                first_name: Some(None),
                last_name: Some(None),
                email: Some(None),
            },
            Some(Some(c)) => c,
        };
        let first_name = patch_optional(
            &mut f,
            "contact.first_name",
            contact.first_name,
            Name::parse,
        );
        let last_name = patch_optional(&mut f, "contact.last_name", contact.last_name, Name::parse);
        let email = patch_optional(&mut f, "contact.email", contact.email, Email::parse);
        f.finish(|| {
            Some(ClientPatch {
                name,
                description: match description {
                    None => None,
                    Some(d) => Some(d?),
                },
                project,
                first_name,
                last_name,
                email,
                active: self.active.map(|a| a.unwrap_or(true)),
            })
        })
    }
}

/// Create a policy.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    /// Display name, unique.
    pub name: String,
    /// Optional rate limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Optional quota.
    #[serde(default)]
    pub quota: Option<Quota>,
}

impl PolicyInput {
    /// The typed command (ranges and "at least one limit" are the registry's rules).
    pub fn command(self) -> Result<NewPolicy, RegistryError> {
        let mut f = Fields::new();
        let name = f.check("name", Name::parse(&self.name));
        f.finish(|| {
            Some(NewPolicy {
                name: name?,
                rate_limit: self.rate_limit,
                quota: self.quota,
            })
        })
    }
}

/// A merge patch of a rate limit or quota.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, bound = "P: Deserialize<'de>")]
pub struct LimitPatchInput<P> {
    /// New request count.
    #[serde(default)]
    pub requests: Option<i64>,
    /// New window (`second|minute|hour`) or period (`day|month`).
    #[serde(default)]
    pub per: Option<P>,
}

/// A JSON Merge Patch of a policy.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyPatchInput {
    /// New name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Rate limit members to change; null removes the rate limit.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<LimitPatchInput<RatePer>>)]
    pub rate_limit: Option<Option<LimitPatchInput<RatePer>>>,
    /// Quota members to change; null removes the quota.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<LimitPatchInput<QuotaPer>>)]
    pub quota: Option<Option<LimitPatchInput<QuotaPer>>>,
}

impl PolicyPatchInput {
    /// The typed command.
    pub fn command(self) -> Result<PolicyPatch, RegistryError> {
        let mut f = Fields::new();
        let name = patch_required(&mut f, "name", self.name, Name::parse);
        f.finish(|| {
            Some(PolicyPatch {
                name,
                rate_limit: self.rate_limit.map(|o| {
                    o.map(|p| LimitPatch {
                        requests: p.requests,
                        per: p.per,
                    })
                }),
                quota: self.quota.map(|o| {
                    o.map(|p| LimitPatch {
                        requests: p.requests,
                        per: p.per,
                    })
                }),
            })
        })
    }
}

/// Create an API key.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    /// Display name.
    pub name: String,
    /// Whether the key may be used.
    #[serde(default = "yes")]
    pub active: bool,
    /// When the key stops working; null for never.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Extra IP restrictions for this key.
    #[serde(default)]
    pub ip_rules: KeyIpRulesDoc,
}

impl ApiKeyInput {
    /// The typed command.
    pub fn command(self) -> Result<NewApiKey, RegistryError> {
        let mut f = Fields::new();
        let name = f.check("name", Name::parse(&self.name));
        let ip_rules = KeyIpRules::parse(&self.ip_rules, "ip_rules")
            .map_err(|e| f.extend(e))
            .ok();
        f.finish(|| {
            Some(NewApiKey {
                name: name?,
                active: self.active,
                expires_at: self.expires_at,
                ip_rules: ip_rules?,
            })
        })
    }
}

/// A list of IP entries: an array of strings or one comma-separated string.
#[derive(Debug, Clone, Deserialize)]
struct IpList(
    #[serde(deserialize_with = "gatehouse_registry::types::deserialize_ip_list")] Vec<String>,
);

fn present_ip_list<'de, D>(d: D) -> Result<Option<Option<Vec<String>>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<IpList>::deserialize(d).map(|o| Some(o.map(|l| l.0)))
}

/// A merge patch of an API key's IP rules: a list given replaces the stored one; null
/// empties it.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIpRulesPatchInput {
    /// New allow list.
    #[serde(default, deserialize_with = "present_ip_list")]
    #[schema(schema_with = gatehouse_registry::types::ip_list_schema)]
    pub allow: Option<Option<Vec<String>>>,
    /// New deny list.
    #[serde(default, deserialize_with = "present_ip_list")]
    #[schema(schema_with = gatehouse_registry::types::ip_list_schema)]
    pub deny: Option<Option<Vec<String>>>,
}

/// A JSON Merge Patch of an API key.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPatchInput {
    /// New name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Switch the key on or off (null: back to the default, on).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub active: Option<Option<bool>>,
    /// New expiry (null: never).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DateTime<Utc>>)]
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// IP rule lists to change (null empties both).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<KeyIpRulesPatchInput>)]
    pub ip_rules: Option<Option<KeyIpRulesPatchInput>>,
}

impl ApiKeyPatchInput {
    /// The typed command.
    pub fn command(self) -> Result<ApiKeyPatch, RegistryError> {
        let mut f = Fields::new();
        let name = patch_required(&mut f, "name", self.name, Name::parse);
        let rules = match self.ip_rules {
            None => KeyIpRulesPatchInput::default(),
            Some(None) => KeyIpRulesPatchInput {
                allow: Some(None),
                deny: Some(None),
            },
            Some(Some(r)) => r,
        };
        let mut list = |member: Option<Option<Vec<String>>>, field: &str| {
            member.map(|l| {
                let mut errors = Vec::new();
                let rules = IpRule::parse_list(&l.unwrap_or_default(), field, &mut errors);
                f.extend(errors);
                rules
            })
        };
        let allow = list(rules.allow, "ip_rules.allow");
        let deny = list(rules.deny, "ip_rules.deny");
        f.finish(|| {
            Some(ApiKeyPatch {
                name,
                active: self.active.map(|a| a.unwrap_or(true)),
                expires_at: self.expires_at,
                allow,
                deny,
            })
        })
    }
}

/// A scope a collection defines.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeInput {
    /// Scope name, unique server-wide (e.g. `orders:read`); `gatehouse:*` is reserved.
    pub name: String,
    /// What the scope allows.
    #[serde(default)]
    pub description: String,
}

fn scope_defs(f: &mut Fields, scopes: &[ScopeInput]) -> Option<Vec<ScopeDef>> {
    let parsed: Vec<Option<ScopeDef>> = scopes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let name = f.check(format!("scopes[{i}].name"), ScopeName::parse_user(&s.name));
            let description = f.check(
                format!("scopes[{i}].description"),
                Description::parse(&s.description),
            );
            Some(ScopeDef {
                name: name?,
                description: description?,
            })
        })
        .collect();
    parsed.into_iter().collect()
}

/// Create an API collection.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionInput {
    /// Display name, unique.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The resource indicator (RFC 8707): an absolute URI, unique.
    pub audience: String,
    /// The scopes this collection defines.
    #[serde(default)]
    pub scopes: Vec<ScopeInput>,
    /// Base URL consumers call.
    #[serde(default)]
    pub integration_url: Option<String>,
    /// Link to the API's documentation.
    #[serde(default)]
    pub documentation_url: Option<String>,
}

impl CollectionInput {
    /// The typed command.
    pub fn command(self) -> Result<NewCollection, RegistryError> {
        let mut f = Fields::new();
        let name = f.check("name", Name::parse(&self.name));
        let description = f.check("description", Description::parse(&self.description));
        let audience = f.check("audience", Audience::parse(&self.audience));
        let scopes = scope_defs(&mut f, &self.scopes);
        let integration_url = f.check_optional(
            "integration_url",
            self.integration_url.as_deref(),
            HttpUrl::parse,
        );
        let documentation_url = f.check_optional(
            "documentation_url",
            self.documentation_url.as_deref(),
            HttpUrl::parse,
        );
        f.finish(|| {
            Some(NewCollection {
                name: name?,
                description: description?,
                audience: audience?,
                scopes: scopes?,
                integration_url,
                documentation_url,
            })
        })
    }
}

/// A JSON Merge Patch of a collection (`scopes` replaces the whole list).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionPatchInput {
    /// New name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New description (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New audience.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub audience: Option<Option<String>>,
    /// The new scope list (null: none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<ScopeInput>>)]
    pub scopes: Option<Option<Vec<ScopeInput>>>,
    /// New integration URL (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub integration_url: Option<Option<String>>,
    /// New documentation URL (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub documentation_url: Option<Option<String>>,
}

impl CollectionPatchInput {
    /// The typed command.
    pub fn command(self) -> Result<CollectionPatch, RegistryError> {
        let mut f = Fields::new();
        let name = patch_required(&mut f, "name", self.name, Name::parse);
        let description = self.description.map(|d| {
            f.check(
                "description",
                Description::parse(d.as_deref().unwrap_or_default()),
            )
        });
        let audience = patch_required(&mut f, "audience", self.audience, Audience::parse);
        let scopes = self
            .scopes
            .map(|s| scope_defs(&mut f, &s.unwrap_or_default()));
        let integration_url = patch_optional(
            &mut f,
            "integration_url",
            self.integration_url,
            HttpUrl::parse,
        );
        let documentation_url = patch_optional(
            &mut f,
            "documentation_url",
            self.documentation_url,
            HttpUrl::parse,
        );
        f.finish(|| {
            Some(CollectionPatch {
                name,
                description: match description {
                    None => None,
                    Some(d) => Some(d?),
                },
                audience,
                scopes: match scopes {
                    None => None,
                    Some(s) => Some(s?),
                },
                integration_url,
                documentation_url,
            })
        })
    }
}
