//! Typed domain values, each built through a `parse` constructor that is the only way in.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use utoipa::ToSchema;

/// One validation failure, tied to the input field it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field path, e.g. `scopes[1].name`.
    pub field: String,
    /// A stable machine-readable code, e.g. `too_long`.
    pub code: String,
    /// A human-readable explanation.
    pub message: String,
}

impl FieldError {
    /// A field error from its parts.
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// A failure to parse a value, before the field name is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// A stable machine-readable code.
    pub code: &'static str,
    /// A human-readable explanation.
    pub message: String,
}

impl Invalid {
    pub(crate) fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Attach the field name.
    pub fn at(self, field: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            code: self.code.to_owned(),
            message: self.message,
        }
    }
}

fn check_text(value: &str, max: usize, allow_empty: bool) -> Result<String, Invalid> {
    let trimmed = value.trim();
    if trimmed.is_empty() && !allow_empty {
        return Err(Invalid::new("required", "must not be empty"));
    }
    if trimmed.chars().count() > max {
        return Err(Invalid::new(
            "too_long",
            format!("must be at most {max} characters"),
        ));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid::new(
            "invalid_characters",
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

/// A display name: 1 to 100 characters, trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Maximum length in characters.
    pub const MAX: usize = 100;

    /// Parse a name.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let text = check_text(value, Self::MAX, false)?;
        if text.contains('\n') || text.contains('\t') {
            return Err(Invalid::new("invalid_characters", "must be a single line"));
        }
        Ok(Self(text))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A free-text description of at most 2000 characters (may be empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Description(String);

impl Description {
    /// Maximum length in characters.
    pub const MAX: usize = 2000;

    /// Parse a description.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        check_text(value, Self::MAX, true).map(Self)
    }

    /// The description as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The reserved prefix of the built-in admin collection's scopes.
pub const RESERVED_SCOPE_PREFIX: &str = "gatehouse:";
/// Scope for full admin API access.
pub const ADMIN_SCOPE: &str = "gatehouse:admin";
/// Scope for read-only admin API access.
pub const ADMIN_READ_SCOPE: &str = "gatehouse:admin:read";

/// A scope name (RFC 6749 §3.3 `scope-token`): printable ASCII except space, `"` and `\`,
/// at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeName(String);

impl ScopeName {
    /// Maximum length in characters.
    pub const MAX: usize = 128;

    /// Parse any scope token, reserved or not.
    pub fn parse_any(value: &str) -> Result<Self, Invalid> {
        if value.is_empty() {
            return Err(Invalid::new("required", "must not be empty"));
        }
        if value.len() > Self::MAX {
            return Err(Invalid::new(
                "too_long",
                format!("must be at most {} characters", Self::MAX),
            ));
        }
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let ok = value
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
        if !ok {
            return Err(Invalid::new(
                "invalid_characters",
                "must be printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// Parse a scope a user collection may define: `gatehouse:*` is reserved.
    pub fn parse_user(value: &str) -> Result<Self, Invalid> {
        let scope = Self::parse_any(value)?;
        if scope.is_reserved() {
            return Err(Invalid::new(
                "reserved",
                "scopes starting with `gatehouse:` are reserved for the built-in admin collection",
            ));
        }
        Ok(scope)
    }

    /// Whether this scope belongs to the reserved `gatehouse:` namespace.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with(RESERVED_SCOPE_PREFIX)
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScopeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An audience: an absolute URI without a fragment (RFC 8707 §2), at most 512 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Audience(String);

impl Audience {
    /// Parse an audience URI.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.len() > 512 {
            return Err(Invalid::new("too_long", "must be at most 512 characters"));
        }
        let url = url::Url::parse(value)
            .map_err(|_| Invalid::new("invalid_uri", "must be an absolute URI (RFC 8707 §2)"))?;
        if url.fragment().is_some() {
            return Err(Invalid::new(
                "invalid_uri",
                "must not contain a fragment (RFC 8707 §2)",
            ));
        }
        if url.cannot_be_a_base() && !matches!(url.scheme(), "urn") {
            return Err(Invalid::new(
                "invalid_uri",
                "must be an absolute URI (RFC 8707 §2)",
            ));
        }
        // Keep the text as given: audiences are compared as strings (RFC 7519 §4.1.3).
        Ok(Self(value.to_owned()))
    }

    /// The audience as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An http(s) URL, for integration and documentation links.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(String);

impl HttpUrl {
    /// Parse an http or https URL of at most 2048 characters.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        if value.len() > 2048 {
            return Err(Invalid::new("too_long", "must be at most 2048 characters"));
        }
        let url = url::Url::parse(value)
            .map_err(|_| Invalid::new("invalid_url", "must be an absolute http(s) URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Invalid::new(
                "invalid_url",
                "must be an absolute http(s) URL",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address: `local@domain` with a dotted domain, at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parse an email address (a pragmatic subset of RFC 5322 addr-spec).
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        let bad = || {
            Invalid::new(
                "invalid_email",
                "must be an email address like name@example.com",
            )
        };
        if value.len() > 254 {
            return Err(Invalid::new("too_long", "must be at most 254 characters"));
        }
        let (local, domain) = value.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > 64 || domain.len() < 3 {
            return Err(bad());
        }
        let local_ok = local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(bad());
        }
        Ok(Self(value.to_owned()))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// How a profile proves itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthType {
    /// API keys (`ghk_…`).
    Token,
    /// OAuth 2.0 client credentials.
    #[serde(rename = "oauth2")]
    OAuth2,
    /// JWTs signed by the consumer (HMAC or RSA).
    Jwt,
    /// Tokens from the consumer's own OpenID Connect provider.
    Oidc,
}

impl AuthType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Token => "token",
            AuthType::OAuth2 => "oauth2",
            AuthType::Jwt => "jwt",
            AuthType::Oidc => "oidc",
        }
    }

    /// Parse the wire name.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        match value {
            "token" => Ok(AuthType::Token),
            "oauth2" => Ok(AuthType::OAuth2),
            "jwt" => Ok(AuthType::Jwt),
            "oidc" => Ok(AuthType::Oidc),
            _ => Err(Invalid::new(
                "invalid_value",
                "must be one of token, oauth2, jwt, oidc",
            )),
        }
    }
}

/// What happens to an address that matches neither list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAccess {
    /// Addresses that match no rule are allowed.
    #[default]
    Allow,
    /// Addresses that match no rule are denied.
    Deny,
}

/// One IP rule: a single address or a CIDR range, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRule(IpNet);

impl IpRule {
    /// Parse `203.0.113.7`, `203.0.113.0/24`, `2001:db8::1` or `2001:db8::/32`.
    /// A range with host bits set (`10.0.0.1/8`) is refused as ambiguous.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        if value.contains('/') {
            let net = IpNet::from_str(value)
                .map_err(|_| Invalid::new("invalid_ip", "must be an IP address or CIDR range"))?;
            if net.trunc() != net {
                return Err(Invalid::new(
                    "invalid_ip",
                    format!("host bits are set; did you mean {}?", net.trunc()),
                ));
            }
            Ok(Self(normalize_net(net)))
        } else {
            let addr = IpAddr::from_str(value)
                .map_err(|_| Invalid::new("invalid_ip", "must be an IP address or CIDR range"))?;
            Ok(Self(IpNet::from(normalize_ip(addr))))
        }
    }

    /// Whether the address falls inside this rule.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&normalize_ip(addr))
    }
}

impl fmt::Display for IpRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.prefix_len() == self.0.max_prefix_len() {
            write!(f, "{}", self.0.addr())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:192.0.2.1`) are treated as the IPv4 address.
pub fn normalize_ip(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).unwrap_or(net),
            None => net,
        },
        other => other,
    }
}

/// Where a profile may be used from: a deny match denies; else an allow match allows; else
/// `default_access` decides.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpRules {
    /// The decision for addresses on neither list.
    pub default_access: DefaultAccess,
    /// Addresses and ranges allowed.
    pub allow: Vec<IpRule>,
    /// Addresses and ranges denied; wins over `allow`.
    pub deny: Vec<IpRule>,
}

/// The wire form of IP rules.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRulesDoc {
    /// The decision for addresses on neither list (default `allow`).
    #[serde(default)]
    pub default_access: DefaultAccess,
    /// Allowed addresses and CIDR ranges.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Denied addresses and CIDR ranges.
    #[serde(default)]
    pub deny: Vec<String>,
}

impl IpRules {
    /// Maximum number of entries per list.
    pub const MAX_ENTRIES: usize = 500;

    /// Parse the wire form, reporting each bad entry under `field`.
    pub fn parse(doc: &IpRulesDoc, field: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut parse_list = |list: &[String], name: &str| -> Vec<IpRule> {
            if list.len() > Self::MAX_ENTRIES {
                errors.push(FieldError::new(
                    format!("{field}.{name}"),
                    "too_many",
                    format!("at most {} entries", Self::MAX_ENTRIES),
                ));
                return Vec::new();
            }
            list.iter()
                .enumerate()
                .filter_map(|(i, s)| match IpRule::parse(s) {
                    Ok(rule) => Some(rule),
                    Err(e) => {
                        errors.push(e.at(format!("{field}.{name}[{i}]")));
                        None
                    }
                })
                .collect()
        };
        let allow = parse_list(&doc.allow, "allow");
        let deny = parse_list(&doc.deny, "deny");
        if errors.is_empty() {
            Ok(Self {
                default_access: doc.default_access,
                allow,
                deny,
            })
        } else {
            Err(errors)
        }
    }

    /// The wire form.
    pub fn to_doc(&self) -> IpRulesDoc {
        IpRulesDoc {
            default_access: self.default_access,
            allow: self.allow.iter().map(ToString::to_string).collect(),
            deny: self.deny.iter().map(ToString::to_string).collect(),
        }
    }

    /// Whether these rules restrict anything at all.
    pub fn is_unrestricted(&self) -> bool {
        self.default_access == DefaultAccess::Allow && self.deny.is_empty()
    }

    /// The decision for one address.
    pub fn allows(&self, addr: IpAddr) -> bool {
        let addr = normalize_ip(addr);
        if self.deny.iter().any(|r| r.contains(addr)) {
            return false;
        }
        if self.allow.iter().any(|r| r.contains(addr)) {
            return true;
        }
        self.default_access == DefaultAccess::Allow
    }
}

/// JWT claims that Gatehouse sets itself or that carry protocol meaning; custom claims may not
/// use them (RFC 7519 §4.1, RFC 9068 §2.2, RFC 8693 §4).
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "profile_id",
    "typ",
    "cnf",
    "act",
    "may_act",
    "auth_time",
    "acr",
    "amr",
    "azp",
    "nonce",
];

/// Validate a custom-claims object: an object of at most 32 members and 4 KiB, with no
/// registered claim names.
pub fn parse_custom_claims(
    value: &serde_json::Value,
    field: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, Vec<FieldError>> {
    let Some(map) = value.as_object() else {
        return Err(vec![FieldError::new(
            field,
            "invalid_type",
            "must be a JSON object",
        )]);
    };
    let mut errors = Vec::new();
    if map.len() > 32 {
        errors.push(FieldError::new(
            field,
            "too_many",
            "at most 32 custom claims",
        ));
    }
    if serde_json::to_vec(map)
        .map(|v| v.len())
        .unwrap_or(usize::MAX)
        > 4096
    {
        errors.push(FieldError::new(
            field,
            "too_long",
            "at most 4 KiB of custom claims",
        ));
    }
    for key in map.keys() {
        if RESERVED_CLAIMS.contains(&key.as_str()) {
            errors.push(FieldError::new(
                format!("{field}.{key}"),
                "reserved_claim",
                format!("`{key}` is a registered claim that Gatehouse sets itself"),
            ));
        } else if key.is_empty() || key.len() > 64 {
            errors.push(FieldError::new(
                format!("{field}.{key}"),
                "invalid_name",
                "claim names are 1 to 64 characters",
            ));
        }
    }
    if errors.is_empty() {
        Ok(map.clone())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            Name::parse("  ACME  ").map(|n| n.as_str().to_owned()),
            Ok("ACME".into())
        );
        assert!(Name::parse("").is_err());
        assert!(Name::parse(&"x".repeat(101)).is_err());
        assert!(Name::parse("a\u{0}b").is_err());
        assert!(Name::parse("a\nb").is_err());
    }

    #[test]
    fn scopes() {
        assert!(ScopeName::parse_user("orders:read").is_ok());
        assert_eq!(
            ScopeName::parse_user("gatehouse:admin").map_err(|e| e.code),
            Err("reserved")
        );
        assert!(ScopeName::parse_any("gatehouse:admin").is_ok());
        assert!(ScopeName::parse_user("has space").is_err());
        assert!(ScopeName::parse_user("quote\"").is_err());
        assert!(ScopeName::parse_user("back\\slash").is_err());
        assert!(ScopeName::parse_user("").is_err());
    }

    #[test]
    fn audiences() {
        assert!(Audience::parse("https://api.example.com/orders").is_ok());
        assert!(Audience::parse("urn:example:orders").is_ok());
        assert!(Audience::parse("orders").is_err());
        assert!(Audience::parse("/relative").is_err());
        assert!(Audience::parse("https://api.example.com/#frag").is_err());
    }

    #[test]
    fn emails() {
        assert!(Email::parse("jane.doe@example.com").is_ok());
        assert!(Email::parse("jane@localhost").is_err());
        assert!(Email::parse("@example.com").is_err());
        assert!(Email::parse("jane@@example.com").is_err());
        assert!(Email::parse("ja ne@example.com").is_err());
    }

    #[test]
    fn ip_rules_precedence_and_cidr_edges() {
        let doc = IpRulesDoc {
            default_access: DefaultAccess::Deny,
            allow: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
            deny: vec!["10.1.0.0/16".into()],
        };
        let rules = IpRules::parse(&doc, "ip_rules").map_err(|e| format!("{e:?}"));
        let Ok(rules) = rules else {
            panic!("parse failed")
        };
        let ip = |s: &str| s.parse::<IpAddr>().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        assert!(rules.allows(ip("10.0.0.0")));
        assert!(rules.allows(ip("10.255.255.255")));
        assert!(!rules.allows(ip("11.0.0.0")));
        assert!(!rules.allows(ip("9.255.255.255")));
        assert!(!rules.allows(ip("10.1.2.3")), "deny wins over allow");
        assert!(rules.allows(ip("10.2.0.1")));
        assert!(rules.allows(ip("::ffff:10.0.0.1")), "mapped IPv4 is IPv4");
        assert!(rules.allows(ip("2001:db8:ffff::1")));
        assert!(!rules.allows(ip("2001:db9::1")));
    }

    #[test]
    fn ip_rule_parsing() {
        assert!(IpRule::parse("10.0.0.1/8").is_err(), "host bits set");
        assert!(IpRule::parse("10.0.0.0/33").is_err());
        assert!(IpRule::parse("not-an-ip").is_err());
        assert_eq!(
            IpRule::parse("192.0.2.1").map(|r| r.to_string()),
            Ok("192.0.2.1".into())
        );
        assert_eq!(
            IpRule::parse("2001:db8::/32").map(|r| r.to_string()),
            Ok("2001:db8::/32".into())
        );
    }

    #[test]
    fn custom_claims() {
        assert!(parse_custom_claims(&serde_json::json!({"tenant": "acme"}), "c").is_ok());
        assert!(parse_custom_claims(&serde_json::json!({"iss": "x"}), "c").is_err());
        assert!(parse_custom_claims(&serde_json::json!([1]), "c").is_err());
    }
}
