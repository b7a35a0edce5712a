//! The registry's read models: what a client, profile, key, policy, project, collection,
//! usage report or audit event looks like to every front end (the admin JSON API serializes
//! them as the contract fixes; the console renders them). Inputs are not here: front ends
//! parse their own input into [`crate::command`]s.

use crate::types::{AuthType, FieldError, IpRulesView};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Pagination parameters.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
pub struct ListParams {
    /// Page size, default 50, at most 1000.
    pub limit: Option<u64>,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl ListParams {
    /// The effective page size.
    pub fn limit(&self) -> u64 {
        self.limit.unwrap_or(50).clamp(1, 1000)
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Cursor for the next page, or null at the end.
    pub next_cursor: Option<String>,
}

/// A scope a collection defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeDoc {
    /// Scope name, unique server-wide (e.g. `orders:read`).
    pub name: String,
    /// What the scope allows.
    #[serde(default)]
    pub description: String,
}

/// An API collection (resource server).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Collection {
    /// `col_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The audience tokens for this collection carry.
    pub audience: String,
    /// The scopes it defines.
    pub scopes: Vec<ScopeDoc>,
    /// Base URL consumers call.
    pub integration_url: Option<String>,
    /// Link to the API's documentation.
    pub documentation_url: Option<String>,
    /// The id this resource server uses to call introspection (`grs_…`).
    pub introspection_client_id: String,
    /// True for the built-in admin API collection, which cannot be changed.
    pub builtin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The answer to creating a collection: the only time its introspection secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionCreated {
    /// The collection.
    #[serde(flatten)]
    pub collection: Collection,
    /// The introspection secret; shown once.
    pub introspection_client_secret: String,
}

/// A project: a group of clients; admins may be limited to some projects.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Project {
    /// `prj_…`
    pub id: String,
    /// Display name, unique.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The person managing a client.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Contact {
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

/// A client: an organisation that consumes APIs.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Client {
    /// `cli_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Project.
    pub project: Option<String>,
    /// Who manages the client.
    pub contact: Contact,
    /// Whether the client may use its credentials.
    pub active: bool,
    /// Whether a logo was uploaded (`GET /clients/{id}/logo`).
    pub has_logo: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// How a `jwt` profile's consumer signs its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JwtMethod {
    /// HS256/384/512 with a shared secret (stored encrypted).
    Hmac,
    /// RS256/384/512 or PS256/384/512 with the consumer's public key.
    Rsa,
}

/// A claim a foreign JWT must carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequiredClaim {
    /// Claim name.
    pub name: String,
    /// Required string value; absent means "present with any value".
    #[serde(default)]
    pub value: Option<String>,
}

/// Where a consumer connects for one granted collection.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConnectionCollection {
    /// The collection's audience (RFC 8707 resource).
    pub audience: String,
    /// Base URL to call.
    pub integration_url: Option<String>,
    /// API documentation.
    pub documentation_url: Option<String>,
}

/// Everything a consumer needs to connect.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Connection {
    /// The issuer (`iss` of tokens).
    pub issuer: String,
    /// `POST` here for tokens.
    pub token_endpoint: String,
    /// OpenID Connect discovery document.
    pub discovery_url: String,
    /// RFC 7662 introspection endpoint.
    pub introspection_endpoint: String,
    /// Per granted collection.
    pub collections: Vec<ConnectionCollection>,
}

/// An access profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Profile {
    /// `prf_…`
    pub id: String,
    /// The owning client.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Granted collection ids (explicit grants).
    pub collections: Vec<String>,
    /// Whether every user collection is granted.
    pub all_collections: bool,
    /// The configured scope subset, or null for all scopes of the granted collections.
    pub scopes: Option<Vec<String>>,
    /// The scopes this profile can actually obtain now (extension).
    pub effective_scopes: Vec<String>,
    /// Authentication method.
    pub auth_type: AuthType,
    /// The profile's public OAuth identity (`gco_…`).
    pub oauth_client_id: String,
    /// Where the profile may be used from (`default_access` shown as it takes effect).
    pub ip_rules: IpRulesView,
    /// Attached policy.
    pub policy_id: Option<String>,
    /// Admin profiles: the project ids this admin is limited to (absent: all projects).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_projects: Option<Vec<String>>,
    /// Whether the profile may be used.
    pub active: bool,
    /// Lifetime of issued access tokens.
    pub token_ttl_seconds: i64,
    /// Extra claims in issued access tokens.
    #[schema(value_type = Object)]
    pub custom_claims: serde_json::Value,
    /// `jwt` settings (never the secret).
    #[serde(flatten)]
    pub jwt: Option<JwtSettingsView>,
    /// Connection details for the consumer.
    pub connection: Connection,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// The answer to creating a profile: the only time its secret is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileCreated {
    /// The profile.
    #[serde(flatten)]
    pub profile: Profile,
    /// For `oauth2` profiles: the client secret, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_client_secret: Option<String>,
    /// For `token` profiles: the first API key's value, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_token: Option<String>,
    /// For `token` profiles: the first API key's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<String>,
    /// For `jwt`/hmac profiles whose secret the server generated: the secret, shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
}

/// The readable `jwt`/`oidc` settings of a profile.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct JwtSettingsView {
    /// `jwt` profiles: `hmac` or `rsa` (absent on `oidc` profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_method: Option<JwtMethod>,
    /// Pinned algorithms.
    pub jwt_algorithms: Vec<String>,
    /// The consumer's PEM public key (rsa).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_public_key: Option<String>,
    /// `oidc`: the identity provider's issuer (keys found by OpenID Connect Discovery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_issuer: Option<String>,
    /// `jwt`/rsa or `oidc`: the JWKS URL the keys are fetched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_jwks_uri: Option<String>,
    /// Identifying claim.
    pub jwt_claim: String,
    /// Its required value.
    pub jwt_claim_value: String,
    /// Required claims.
    pub required_claims: Vec<RequiredClaim>,
    /// Accepted issuers (empty: any).
    pub allowed_issuers: Vec<String>,
    /// Accepted audiences.
    pub allowed_audiences: Vec<String>,
}

/// A freshly issued profile secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ProfileSecretIssued {
    /// The profile's client id.
    pub oauth_client_id: String,
    /// The new client secret (`oauth2`); shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth_client_secret: Option<String>,
    /// The new HMAC secret (`jwt`/hmac); shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt_secret: Option<String>,
    /// Until when the previous secret(s) remain valid; null when revoked at once.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// A freshly issued collection introspection secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CollectionSecretIssued {
    /// The collection's introspection client id.
    pub introspection_client_id: String,
    /// The new secret; shown once.
    pub introspection_client_secret: String,
    /// Until when the previous secret(s) remain valid; null when revoked at once.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// One audit event.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditEvent {
    /// `evt_…`, ordered by time.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Who did it (the admin's OAuth client id, or `system`).
    pub actor: String,
    /// What was done, e.g. `collection.create`.
    pub action: String,
    /// The kind of resource.
    pub target_type: String,
    /// The resource id.
    pub target_id: String,
    /// Non-secret details.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Which audit events to list (all given conditions hold).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    /// Only events by this actor (an admin's `oauth_client_id`, or `system`).
    pub actor: Option<String>,
    /// Only this action, e.g. `client.update`.
    pub action: Option<String>,
    /// Only events about this resource id.
    pub target_id: Option<String>,
    /// From this time (RFC 3339, inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Until this time (RFC 3339, exclusive).
    pub to: Option<DateTime<Utc>>,
}

/// A logo image, type checked by its magic bytes.
#[derive(Debug, Clone)]
pub struct Logo {
    /// `image/png` or `image/jpeg`.
    pub content_type: &'static str,
    /// The bytes.
    pub bytes: Vec<u8>,
}

impl Logo {
    /// Maximum logo size.
    pub const MAX_BYTES: usize = 256 * 1024;

    /// Accept PNG or JPEG up to 256 KiB, judged by content, not by any declared type.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, FieldError> {
        if bytes.is_empty() {
            return Err(FieldError::new("logo", "required", "the logo is empty"));
        }
        if bytes.len() > Self::MAX_BYTES {
            return Err(FieldError::new(
                "logo",
                "too_large",
                "the logo must be at most 256 KiB",
            ));
        }
        let content_type = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            "image/jpeg"
        } else {
            return Err(FieldError::new(
                "logo",
                "unsupported_type",
                "the logo must be a PNG or JPEG image",
            ));
        };
        Ok(Self {
            content_type,
            bytes,
        })
    }
}

/// Apply an RFC 7396 JSON Merge Patch to `target`.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    match patch {
        Value::Object(patch_map) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(target_map) = target {
                for (key, value) in patch_map {
                    if value.is_null() {
                        target_map.remove(key);
                    } else {
                        merge_patch(target_map.entry(key.clone()).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7396_examples() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"a": ["b"]});
        merge_patch(&mut doc, &json!({"a": "c"}));
        assert_eq!(doc, json!({"a": "c"}));
        let mut doc = json!({"e": null});
        merge_patch(&mut doc, &json!({"a": 1}));
        assert_eq!(doc, json!({"e": null, "a": 1}));
    }

    #[test]
    fn logos_are_judged_by_content() {
        assert_eq!(
            Logo::parse(b"\x89PNG\r\n\x1a\nrest".to_vec())
                .map(|l| l.content_type)
                .ok(),
            Some("image/png")
        );
        assert_eq!(
            Logo::parse(vec![0xFF, 0xD8, 0xFF, 0xE0])
                .map(|l| l.content_type)
                .ok(),
            Some("image/jpeg")
        );
        assert!(Logo::parse(b"GIF89a".to_vec()).is_err());
        assert!(Logo::parse(vec![0xFF; Logo::MAX_BYTES + 1]).is_err());
    }
}

/// An API key's own IP rules; they can only narrow the profile's (a deny match refuses; a
/// non-empty allow list must also match). Entries are addresses or CIDR ranges, IPv4 or IPv6;
/// host bits are cleared (`106.226.100.3/20` is stored and shown as `106.226.96.0/20`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyIpRulesDoc {
    /// If not empty, the address must also match one of these: an array of strings or one
    /// comma-separated string.
    #[serde(default, deserialize_with = "crate::types::deserialize_ip_list")]
    #[schema(schema_with = crate::types::ip_list_schema)]
    pub allow: Vec<String>,
    /// Addresses refused even if the profile allows them: an array of strings or one
    /// comma-separated string.
    #[serde(default, deserialize_with = "crate::types::deserialize_ip_list")]
    #[schema(schema_with = crate::types::ip_list_schema)]
    pub deny: Vec<String>,
}

/// An API key (never its value).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApiKey {
    /// `key_…`
    pub id: String,
    /// The `token` profile it belongs to.
    pub profile_id: String,
    /// Display name.
    pub name: String,
    /// Whether the key may be used.
    pub active: bool,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// Extra IP restrictions.
    pub ip_rules: KeyIpRulesDoc,
    /// The first 12 characters of the key, for recognising it.
    pub prefix: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last successful use (updated lazily, at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
}

/// An API key with its value: the answer to create and refresh, the only time it is shown.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApiKeyIssued {
    /// The key.
    #[serde(flatten)]
    pub key: ApiKey,
    /// The key's value (`ghk_…`); shown once.
    pub auth_token: String,
    /// On refresh with grace: until when the previous value keeps working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_token_expires_at: Option<DateTime<Utc>>,
}

/// The window of a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RatePer {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
}

impl RatePer {
    /// The window in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            RatePer::Second => 1,
            RatePer::Minute => 60,
            RatePer::Hour => 3600,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RatePer::Second => "second",
            RatePer::Minute => "minute",
            RatePer::Hour => "hour",
        }
    }

    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "second" => Some(RatePer::Second),
            "minute" => Some(RatePer::Minute),
            "hour" => Some(RatePer::Hour),
            _ => None,
        }
    }
}

/// The calendar period of a quota (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPer {
    /// A UTC calendar day.
    Day,
    /// A UTC calendar month.
    Month,
}

impl QuotaPer {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            QuotaPer::Day => "day",
            QuotaPer::Month => "month",
        }
    }

    /// Parse the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "day" => Some(QuotaPer::Day),
            "month" => Some(QuotaPer::Month),
            _ => None,
        }
    }
}

/// A rate limit: at most `requests` per window, smoothed (GCRA: a burst of `requests`, then
/// one every `window / requests`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Requests allowed per window (1 to 1,000,000).
    pub requests: i64,
    /// `second`, `minute` or `hour`.
    pub per: RatePer,
}

/// A quota: at most `requests` per UTC calendar day or month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Requests allowed per period (1 to 10^12).
    pub requests: i64,
    /// `day` or `month`.
    pub per: QuotaPer,
}

/// A policy: limits applied to every access profile that names it in `policy_id`. Each
/// profile is counted on its own.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Policy {
    /// `pol_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Quota, if any.
    pub quota: Option<Quota>,
    /// How many profiles use it (extension).
    pub profiles: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// Query of a usage report.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Start (RFC 3339, inclusive; default: `to` − 24 h).
    pub from: Option<DateTime<Utc>>,
    /// End (RFC 3339, exclusive; default: now).
    pub to: Option<DateTime<Utc>>,
    /// `hour` (default) or `day`.
    pub granularity: Option<String>,
}

/// One bucket of a usage report.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageItem {
    /// Start of the bucket (UTC hour or day).
    pub start: DateTime<Utc>,
    /// Access tokens issued.
    pub tokens_issued: u64,
    /// Introspections answered active.
    pub introspections_active: u64,
    /// Refusals by the contract's reason codes.
    #[schema(value_type = Object)]
    pub denied: std::collections::BTreeMap<String, u64>,
}

/// A usage report: buckets that saw any use, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UsageReport {
    /// The buckets.
    pub items: Vec<UsageItem>,
}
