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
use gatehouse_registry::api::{
    JwtMethod, KeyIpRulesDoc, Quota, QuotaPer, RateLimit, RatePer, RequiredClaim,
};
use gatehouse_registry::command::{
    ApiKeyPatch, ClientPatch, CollectionPatch, ContactInfo, IpRulesPatch, LimitPatch, NewApiKey,
    NewClient, NewCollection, NewPolicy, NewProfile, PolicyPatch, ProfilePatch, ScopeDef,
};
use gatehouse_registry::secret::SecretString;
use gatehouse_registry::types::{
    Audience, AuthType, DefaultAccess, Description, Email, FieldError, Fields, HttpUrl, IpRule,
    IpRules, IpRulesDoc, KeyIpRules, Name, ProjectId, ScopeName,
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

/// Create an access profile.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    /// Display name, unique within the client.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// Granted collection ids.
    #[serde(default)]
    pub collections: Vec<String>,
    /// Grant every user collection, present and future (never the built-in admin one).
    #[serde(default)]
    pub all_collections: bool,
    /// Optional subset of the collections' scopes (least privilege); null means all.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// How the consumer proves itself; cannot change after creation.
    pub auth_type: AuthType,
    /// Where the profile may be used from.
    #[serde(default)]
    pub ip_rules: IpRulesDoc,
    /// Policy (rate limit, quota); reserved for the policies API.
    #[serde(default)]
    pub policy_id: Option<String>,
    /// Admin profiles only (those granting the built-in admin collection): the project ids
    /// this admin is limited to; absent or null for all. Only unlimited admins may set it.
    #[serde(default)]
    pub admin_projects: Option<Vec<String>>,
    /// An inactive profile cannot obtain or use any credential.
    #[serde(default = "yes")]
    pub active: bool,
    /// Lifetime of issued access tokens, default 3600, at most GATEHOUSE_MAX_TOKEN_TTL.
    #[serde(default)]
    pub token_ttl_seconds: Option<i64>,
    /// Extra claims copied into issued access tokens.
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub custom_claims: serde_json::Value,
    /// `jwt`: how the consumer signs (`hmac` or `rsa`); cannot change after creation. Not
    /// for `oidc` profiles.
    #[serde(default)]
    pub jwt_method: Option<JwtMethod>,
    /// `jwt`/`oidc`: the pinned algorithms (default `["HS256"]` for hmac, `["RS256"]` for
    /// rsa, `["RS256", "ES256"]` for oidc).
    #[serde(default)]
    pub jwt_algorithms: Option<Vec<String>>,
    /// `jwt`/rsa: the consumer's PEM public key (RSA, at least 2048 bits).
    #[serde(default)]
    pub jwt_public_key: Option<String>,
    /// `jwt`/hmac: a secret of at least 32 bytes; omitted, the server generates one. Write-only.
    #[serde(default)]
    pub jwt_secret: Option<String>,
    /// `jwt`/rsa (instead of `jwt_public_key`) or `oidc` (instead of `oidc_issuer`): a JWKS
    /// URL, https (http, and internal addresses, only where `GATEHOUSE_OUTBOUND_ALLOW` covers
    /// the host).
    #[serde(default)]
    pub oidc_jwks_uri: Option<String>,
    /// `oidc`: the identity provider's issuer; its discovery document and JWKS are fetched
    /// and cached, and presented tokens' `iss` must equal it.
    #[serde(default)]
    pub oidc_issuer: Option<String>,
    /// The claim whose value identifies this profile (default `sub`).
    #[serde(default)]
    pub jwt_claim: Option<String>,
    /// The value `jwt_claim` must have (default for `jwt`: the profile's `oauth_client_id`;
    /// required for `oidc`).
    #[serde(default)]
    pub jwt_claim_value: Option<String>,
    /// Claims that must be present (with this value, when given).
    #[serde(default)]
    pub required_claims: Vec<RequiredClaim>,
    /// Accepted `iss` values; empty means any.
    #[serde(default)]
    pub allowed_issuers: Vec<String>,
    /// Accepted audiences; a JWT whose `aud` meets none is refused (RFC 8725 §3.9).
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

impl ProfileInput {
    /// The typed command.
    pub fn command(self) -> Result<NewProfile, RegistryError> {
        let mut f = Fields::new();
        let name = f.check("name", Name::parse(&self.name));
        let description = f.check("description", Description::parse(&self.description));
        let ip_rules = IpRules::parse(&self.ip_rules, "ip_rules")
            .map_err(|e| f.extend(e))
            .ok();
        let admin_projects = self.admin_projects.map(|ids| project_ids(&mut f, &ids));
        let custom_claims = claims_object(&mut f, self.custom_claims);
        f.finish(|| {
            Some(NewProfile {
                name: name?,
                description: description?,
                collections: self.collections,
                all_collections: self.all_collections,
                scopes: self.scopes,
                auth_type: self.auth_type,
                ip_rules: ip_rules?,
                policy_id: self.policy_id,
                admin_projects: match admin_projects {
                    None => None,
                    Some(ids) => Some(ids?),
                },
                active: self.active,
                token_ttl_seconds: self.token_ttl_seconds,
                custom_claims: custom_claims?,
                jwt_method: self.jwt_method,
                jwt_algorithms: self.jwt_algorithms,
                jwt_public_key: self.jwt_public_key,
                jwt_secret: self.jwt_secret.map(SecretString::new),
                oidc_jwks_uri: self.oidc_jwks_uri,
                oidc_issuer: self.oidc_issuer,
                jwt_claim: self.jwt_claim,
                jwt_claim_value: self.jwt_claim_value,
                required_claims: self.required_claims,
                allowed_issuers: self.allowed_issuers,
                allowed_audiences: self.allowed_audiences,
            })
        })
    }
}

fn project_ids(f: &mut Fields, ids: &[String]) -> Option<Vec<ProjectId>> {
    let parsed: Vec<Option<ProjectId>> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| f.check(format!("admin_projects[{i}]"), ProjectId::parse(id)))
        .collect();
    parsed.into_iter().collect()
}

fn claims_object(
    f: &mut Fields,
    value: serde_json::Value,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    match value {
        serde_json::Value::Object(map) => Some(map),
        _ => {
            f.push(FieldError::new(
                "custom_claims",
                "invalid_type",
                "must be a JSON object",
            ));
            None
        }
    }
}

/// A merge patch of a profile's IP rules.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRulesPatchInput {
    /// New default (`allow|deny`); null: derived from the allow list.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<DefaultAccess>)]
    pub default_access: Option<Option<DefaultAccess>>,
    /// New allow list (null empties it).
    #[serde(default, deserialize_with = "present_ip_list")]
    #[schema(schema_with = gatehouse_registry::types::ip_list_schema)]
    pub allow: Option<Option<Vec<String>>>,
    /// New deny list (null empties it).
    #[serde(default, deserialize_with = "present_ip_list")]
    #[schema(schema_with = gatehouse_registry::types::ip_list_schema)]
    pub deny: Option<Option<Vec<String>>>,
}

/// A JSON Merge Patch of an access profile. `auth_type` and `jwt_method` may appear only
/// with their current values; `jwt_secret` is refused (refresh it instead).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatchInput {
    /// New name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New description (null clears).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// New collection grants (null: none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub collections: Option<Option<Vec<String>>>,
    /// Grant every user collection (null: false).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub all_collections: Option<Option<bool>>,
    /// New scope subset (null: all scopes of the collections).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Option<Vec<String>>>,
    /// Must equal the current one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AuthType>)]
    pub auth_type: Option<Option<AuthType>>,
    /// IP rule members to change (null: no rules).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<IpRulesPatchInput>)]
    pub ip_rules: Option<Option<IpRulesPatchInput>>,
    /// New policy (null: none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub policy_id: Option<Option<String>>,
    /// Admin profiles: the project ids it is limited to (null: all projects).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub admin_projects: Option<Option<Vec<String>>>,
    /// Switch the profile on or off (null: on).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<bool>)]
    pub active: Option<Option<bool>>,
    /// New token lifetime (null: the server's default).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub token_ttl_seconds: Option<Option<i64>>,
    /// Claims to set, or to remove with null (null for the whole object removes all).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub custom_claims: Option<Option<serde_json::Value>>,
    /// Must equal the current one.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<JwtMethod>)]
    pub jwt_method: Option<Option<JwtMethod>>,
    /// New pinned algorithms (null: the default).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub jwt_algorithms: Option<Option<Vec<String>>>,
    /// New PEM public key.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub jwt_public_key: Option<Option<String>>,
    /// Refused: set a new secret with `POST /access-profiles/{id}/secret`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub jwt_secret: Option<Option<String>>,
    /// New JWKS URL.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub oidc_jwks_uri: Option<Option<String>>,
    /// New issuer.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub oidc_issuer: Option<Option<String>>,
    /// New identifying claim (null: `sub`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub jwt_claim: Option<Option<String>>,
    /// New identifying value.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub jwt_claim_value: Option<Option<String>>,
    /// New required claims (null: none).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<RequiredClaim>>)]
    pub required_claims: Option<Option<Vec<RequiredClaim>>>,
    /// New accepted issuers (null: any).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_issuers: Option<Option<Vec<String>>>,
    /// New accepted audiences.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub allowed_audiences: Option<Option<Vec<String>>>,
}

impl ProfilePatchInput {
    /// The typed command.
    pub fn command(self) -> Result<ProfilePatch, RegistryError> {
        let mut f = Fields::new();
        let name = patch_required(&mut f, "name", self.name, Name::parse);
        let description = self.description.map(|d| {
            f.check(
                "description",
                Description::parse(d.as_deref().unwrap_or_default()),
            )
        });
        let auth_type = match self.auth_type {
            Some(None) => {
                f.push(FieldError::new(
                    "auth_type",
                    "immutable",
                    "auth_type cannot change after creation",
                ));
                None
            }
            other => other.flatten(),
        };
        let ip_rules = self.ip_rules.map(|rules| {
            rules.map(|r| {
                let mut list = |member: Option<Option<Vec<String>>>, field: &str| {
                    member.map(|l| {
                        let mut errors = Vec::new();
                        let rules = IpRule::parse_list(&l.unwrap_or_default(), field, &mut errors);
                        f.extend(errors);
                        rules
                    })
                };
                IpRulesPatch {
                    default_access: r.default_access,
                    allow: list(r.allow, "ip_rules.allow"),
                    deny: list(r.deny, "ip_rules.deny"),
                }
            })
        });
        let admin_projects = self
            .admin_projects
            .map(|ids| ids.map(|ids| project_ids(&mut f, &ids)));
        let custom_claims = self.custom_claims.map(|claims| {
            claims.map(|value| {
                claims_object(&mut f, value).map(|map| {
                    map.into_iter()
                        .map(|(k, v)| (k, (!v.is_null()).then_some(v)))
                        .collect::<Vec<_>>()
                })
            })
        });
        f.finish(|| {
            Some(ProfilePatch {
                name,
                description: match description {
                    None => None,
                    Some(d) => Some(d?),
                },
                collections: self.collections.map(Option::unwrap_or_default),
                all_collections: self.all_collections.map(|a| a.unwrap_or(false)),
                scopes: self.scopes,
                auth_type,
                ip_rules,
                policy_id: self.policy_id,
                admin_projects: match admin_projects {
                    None => None,
                    Some(None) => Some(None),
                    Some(Some(ids)) => Some(Some(ids?)),
                },
                active: self.active.map(|a| a.unwrap_or(true)),
                token_ttl_seconds: self.token_ttl_seconds,
                custom_claims: match custom_claims {
                    None => None,
                    Some(None) => Some(None),
                    Some(Some(members)) => Some(Some(members?)),
                },
                jwt_method: self.jwt_method,
                jwt_algorithms: self.jwt_algorithms,
                jwt_public_key: self.jwt_public_key,
                jwt_secret: self.jwt_secret.map(|s| s.map(SecretString::new)),
                oidc_jwks_uri: self.oidc_jwks_uri,
                oidc_issuer: self.oidc_issuer,
                jwt_claim: self.jwt_claim,
                jwt_claim_value: self.jwt_claim_value,
                required_claims: self.required_claims.map(Option::unwrap_or_default),
                allowed_issuers: self.allowed_issuers.map(Option::unwrap_or_default),
                allowed_audiences: self.allowed_audiences.map(Option::unwrap_or_default),
            })
        })
    }
}

/// Body of a secret refresh.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshSecretInput {
    /// Keep the previous secret valid this many seconds (default 0: revoke at once).
    #[serde(default)]
    pub grace_seconds: Option<i64>,
}
