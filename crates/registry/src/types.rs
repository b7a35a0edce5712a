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

/// Collects field errors while a front end (the admin JSON API, the console) parses its input
/// into a typed command, so that every bad field is reported at once.
#[derive(Debug, Default)]
pub struct Fields(Vec<FieldError>);

impl Fields {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep a parsed value, or record its error under `field`.
    pub fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, Invalid>) -> Option<T> {
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e.at(field));
                None
            }
        }
    }

    /// Keep an optional text's parsed value: blank or absent is `None`.
    pub fn check_optional<T>(
        &mut self,
        field: impl Into<String>,
        text: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, Invalid>,
    ) -> Option<T> {
        match text.map(str::trim) {
            None | Some("") => None,
            Some(t) => self.check(field, parse(t)),
        }
    }

    /// Record an error.
    pub fn push(&mut self, error: FieldError) {
        self.0.push(error);
    }

    /// Record several errors.
    pub fn extend(&mut self, errors: impl IntoIterator<Item = FieldError>) {
        self.0.extend(errors);
    }

    /// Whether nothing failed so far.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The command built by `build` when no error was recorded (and `build` has every part),
    /// else the validation error naming every bad field.
    pub fn finish<T>(
        self,
        build: impl FnOnce() -> Option<T>,
    ) -> Result<T, crate::error::RegistryError> {
        if self.0.is_empty()
            && let Some(value) = build()
        {
            return Ok(value);
        }
        let mut errors = self.0;
        if errors.is_empty() {
            errors.push(FieldError::new(
                "body",
                "invalid",
                "the input is incomplete",
            ));
        }
        Err(crate::error::RegistryError::Validation(errors))
    }
}

/// A project id as given (`prj_…`); whether it exists is for the registry to check.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectId(String);

impl ProjectId {
    /// Parse a project id.
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        let tail = value.strip_prefix("prj_").unwrap_or_default();
        if !tail.is_empty() && tail.len() <= 60 && tail.chars().all(|c| c.is_ascii_alphanumeric()) {
            Ok(Self(value.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid_project",
                "must be a project id (`prj_…`) or null",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
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

    /// `default`: the name of a `token` profile's first API key.
    pub fn default_key() -> Self {
        Self("default".to_owned())
    }

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

impl DefaultAccess {
    /// The default when none is given: `deny` when there is an allow list (only those
    /// addresses get in), else `allow`.
    pub fn derived(has_allow_list: bool) -> Self {
        if has_allow_list {
            DefaultAccess::Deny
        } else {
            DefaultAccess::Allow
        }
    }
}

/// One IP rule: a single address or a CIDR range, IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRule(IpNet);

impl IpRule {
    /// Parse `203.0.113.7`, `203.0.113.0/24`, `2001:db8::1` or `2001:db8::/32`.
    /// A range with host bits set stands for its network: `10.0.0.1/8` is `10.0.0.0/8`.
    /// IPv4-mapped IPv6 (`::ffff:192.0.2.0/120`) is the IPv4 rule (`192.0.2.0/24`).
    pub fn parse(value: &str) -> Result<Self, Invalid> {
        let value = value.trim();
        if value.contains('/') {
            let net = IpNet::from_str(value)
                .map_err(|_| Invalid::new("invalid_ip", "must be an IP address or CIDR range"))?;
            Ok(Self(normalize_net(net.trunc()).trunc()))
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
    /// The decision for addresses on neither list (resolved: given, or derived from `allow`).
    pub default_access: DefaultAccess,
    /// Whether `default_access` was given rather than derived; it is kept in the stored form
    /// and has no effect on decisions.
    pub default_given: bool,
    /// Addresses and ranges allowed.
    pub allow: Vec<IpRule>,
    /// Addresses and ranges denied; wins over `allow`.
    pub deny: Vec<IpRule>,
}

/// The input and stored form of a profile's IP rules: a deny match denies; else an allow
/// match allows; else `default_access` decides.
///
/// `default_access` is optional: absent, it is `deny` when `allow` is non-empty (only the
/// listed addresses get in), else `allow`; it stays absent in storage, so later changes to
/// `allow` keep deriving it. An explicit `allow` beside a non-empty `allow` list is refused
/// (`no_effect`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IpRulesDoc {
    /// The decision for addresses on neither list; absent: `deny` when `allow` is non-empty,
    /// else `allow`. `allow` together with a non-empty `allow` list is refused (`no_effect`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_access: Option<DefaultAccess>,
    /// Allowed addresses and CIDR ranges (host bits are cleared): an array of strings or one
    /// comma-separated string.
    #[serde(default, deserialize_with = "deserialize_ip_list")]
    #[schema(schema_with = ip_list_schema)]
    pub allow: Vec<String>,
    /// Denied addresses and CIDR ranges (host bits are cleared); a deny match wins over
    /// `allow`: an array of strings or one comma-separated string.
    #[serde(default, deserialize_with = "deserialize_ip_list")]
    #[schema(schema_with = ip_list_schema)]
    pub deny: Vec<String>,
}

/// How a profile's IP rules are shown: `default_access` always explicit (the effective one).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(from = "IpRulesDoc")]
pub struct IpRulesView {
    /// The effective decision for addresses on neither list (given, or derived: `deny` when
    /// `allow` is non-empty, else `allow`).
    pub default_access: DefaultAccess,
    /// Allowed addresses and CIDR ranges, as networks (`106.226.96.0/20`).
    pub allow: Vec<String>,
    /// Denied addresses and CIDR ranges, as networks; a deny match wins over `allow`.
    pub deny: Vec<String>,
}

impl From<IpRulesDoc> for IpRulesView {
    fn from(doc: IpRulesDoc) -> Self {
        Self {
            default_access: doc
                .default_access
                .unwrap_or_else(|| DefaultAccess::derived(!doc.allow.is_empty())),
            allow: doc.allow,
            deny: doc.deny,
        }
    }
}

/// Deserialize a list of IP rules given either as an array of strings or as one
/// comma-separated string (`"10.0.0.1, 192.168.0.0/16"`): entries are trimmed and empty ones
/// ignored, so entry `i` of the result is the `i`-th non-empty entry of the string.
pub fn deserialize_ip_list<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct ListVisitor;

    impl<'de> serde::de::Visitor<'de> for ListVisitor {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of strings or one comma-separated string")
        }

        fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<Self::Value, E> {
            Ok(split_ip_list(value))
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut out =
                Vec::with_capacity(seq.size_hint().unwrap_or(0).min(IpRules::MAX_ENTRIES));
            while let Some(entry) = seq.next_element::<String>()? {
                out.push(entry);
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(ListVisitor)
}

/// Split one comma-separated list of IP rules: entries trimmed, empty ones dropped.
pub fn split_ip_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The OpenAPI schema of an IP list: an array of strings or one comma-separated string.
pub fn ip_list_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
    let one_of = OneOfBuilder::new()
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .description(Some("Addresses or CIDR ranges, IPv4 or IPv6")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "One comma-separated string of addresses or CIDR ranges \
                     (`10.0.0.1, 192.168.0.0/16`); whitespace around entries is trimmed and \
                     empty entries are ignored",
                )),
        )
        .description(Some(
            "An array of strings or one comma-separated string; answers always give an array. \
             Host bits are cleared: `106.226.100.3/20` is stored and shown as `106.226.96.0/20`",
        ))
        .build();
    Schema::OneOf(one_of)
}

impl IpRule {
    /// Parse a list of entries (at most [`IpRules::MAX_ENTRIES`]), reporting each bad one as
    /// `{field}[i]` and a list too long as `field`.
    pub fn parse_list(list: &[String], field: &str, errors: &mut Vec<FieldError>) -> Vec<IpRule> {
        if list.len() > IpRules::MAX_ENTRIES {
            errors.push(FieldError::new(
                field,
                "too_many",
                format!("at most {} entries", IpRules::MAX_ENTRIES),
            ));
            return Vec::new();
        }
        list.iter()
            .enumerate()
            .filter_map(|(i, s)| match IpRule::parse(s) {
                Ok(rule) => Some(rule),
                Err(e) => {
                    errors.push(e.at(format!("{field}[{i}]")));
                    None
                }
            })
            .collect()
    }
}

/// An API key's own IP rules: they can only narrow its profile's. A deny match refuses; a
/// non-empty allow list must also match.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyIpRules {
    /// If not empty, the address must match one of these.
    pub allow: Vec<IpRule>,
    /// Addresses refused.
    pub deny: Vec<IpRule>,
}

impl KeyIpRules {
    /// Parse the wire form, reporting bad entries under `{field}.allow[i]` / `.deny[i]`.
    pub fn parse(doc: &crate::api::KeyIpRulesDoc, field: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let allow = IpRule::parse_list(&doc.allow, &format!("{field}.allow"), &mut errors);
        let deny = IpRule::parse_list(&doc.deny, &format!("{field}.deny"), &mut errors);
        if errors.is_empty() {
            Ok(Self { allow, deny })
        } else {
            Err(errors)
        }
    }

    /// The stored and shown form (entries normalised).
    pub fn to_doc(&self) -> crate::api::KeyIpRulesDoc {
        crate::api::KeyIpRulesDoc {
            allow: self.allow.iter().map(ToString::to_string).collect(),
            deny: self.deny.iter().map(ToString::to_string).collect(),
        }
    }
}

impl IpRules {
    /// Maximum number of entries per list.
    pub const MAX_ENTRIES: usize = 500;

    /// Parse the input form, reporting each bad entry under `field` (`{field}.allow[i]`), and
    /// an explicit `default_access: allow` beside a non-empty allow list as `no_effect` on
    /// `{field}.allow`.
    pub fn parse(doc: &IpRulesDoc, field: &str) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let rules = Self::parse_lists(doc, field, &mut errors);
        if doc.default_access == Some(DefaultAccess::Allow) && !doc.allow.is_empty() {
            errors.push(FieldError::new(
                format!("{field}.allow"),
                "no_effect",
                "with default_access `allow` everyone gets in, so an allow list admits no one \
                 extra; leave default_access out (or set it to `deny`) to admit only the listed \
                 addresses, or empty the allow list",
            ));
        }
        if errors.is_empty() {
            Ok(rules)
        } else {
            Err(errors)
        }
    }

    /// The rules of a stored row (JSON text), which were validated on write. Decisions never
    /// depend on the write-time `no_effect` check; a row whose entries no longer parse denies
    /// everything.
    pub fn from_stored(text: &str) -> Result<Self, serde_json::Error> {
        let doc: IpRulesDoc = serde_json::from_str(text)?;
        let mut errors = Vec::new();
        let rules = Self::parse_lists(&doc, "ip_rules", &mut errors);
        Ok(if errors.is_empty() {
            rules
        } else {
            Self {
                default_access: DefaultAccess::Deny,
                default_given: true,
                allow: Vec::new(),
                deny: Vec::new(),
            }
        })
    }

    fn parse_lists(doc: &IpRulesDoc, field: &str, errors: &mut Vec<FieldError>) -> Self {
        let allow = IpRule::parse_list(&doc.allow, &format!("{field}.allow"), errors);
        let deny = IpRule::parse_list(&doc.deny, &format!("{field}.deny"), errors);
        Self {
            default_access: doc
                .default_access
                .unwrap_or_else(|| DefaultAccess::derived(!doc.allow.is_empty())),
            default_given: doc.default_access.is_some(),
            allow,
            deny,
        }
    }

    /// The stored form: entries normalised, `default_access` only when it was given.
    pub fn to_doc(&self) -> IpRulesDoc {
        IpRulesDoc {
            default_access: self.default_given.then_some(self.default_access),
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
            default_access: Some(DefaultAccess::Deny),
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

    fn ip(s: &str) -> IpAddr {
        s.parse::<IpAddr>()
            .unwrap_or_else(|e| panic!("{s:?} is not an address: {e}"))
    }

    /// A profile's IP rules from their JSON input form.
    fn rules_of(input: serde_json::Value) -> Result<IpRules, Vec<FieldError>> {
        let doc: IpRulesDoc =
            serde_json::from_value(input).unwrap_or_else(|e| panic!("wire form refused: {e}"));
        IpRules::parse(&doc, "ip_rules")
    }

    fn codes(errors: &[FieldError]) -> Vec<(&str, &str)> {
        errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect()
    }

    /// Old: an allow list alone did nothing (default_access defaulted to `allow`).
    /// New: it admits only the listed addresses.
    #[test]
    fn default_access_is_derived_from_the_allow_list() {
        let listed = rules_of(serde_json::json!({"allow": ["10.0.0.0/8"]})).unwrap();
        assert_eq!(listed.default_access, DefaultAccess::Deny);
        assert!(!listed.default_given);
        assert!(listed.allows(ip("10.1.2.3")));
        assert!(
            !listed.allows(ip("192.0.2.1")),
            "before: allowed; now refused"
        );
        assert!(!listed.is_unrestricted());

        let open = rules_of(serde_json::json!({"deny": ["192.0.2.0/24"]})).unwrap();
        assert_eq!(open.default_access, DefaultAccess::Allow);
        assert!(open.allows(ip("10.1.2.3")));
        assert!(!open.allows(ip("192.0.2.1")));
        assert!(rules_of(serde_json::json!({})).unwrap().is_unrestricted());

        // An explicit default is kept, and the stored form keeps it; a derived one stays out.
        let explicit = rules_of(serde_json::json!({"default_access": "deny"})).unwrap();
        assert_eq!(explicit.default_access, DefaultAccess::Deny);
        assert!(explicit.default_given);
        assert_eq!(explicit.to_doc().default_access, Some(DefaultAccess::Deny));
        assert_eq!(listed.to_doc().default_access, None);
        assert_eq!(
            serde_json::to_value(listed.to_doc()).unwrap(),
            serde_json::json!({"allow": ["10.0.0.0/8"], "deny": []}),
            "the stored form has no default_access when none was given"
        );
        // The read view always shows the effective default.
        let view: IpRulesView =
            serde_json::from_value(serde_json::json!({"allow": ["10.0.0.0/8"]})).unwrap();
        assert_eq!(view.default_access, DefaultAccess::Deny);
        let view: IpRulesView = serde_json::from_str("{\"allow\":[],\"deny\":[]}").unwrap();
        assert_eq!(
            serde_json::to_value(view).unwrap(),
            serde_json::json!({"default_access": "allow", "allow": [], "deny": []})
        );
    }

    /// Old: accepted, and the allow list silently did nothing. New: 422 `no_effect`.
    #[test]
    fn explicit_allow_with_an_allow_list_has_no_effect() {
        let errors = rules_of(serde_json::json!({
            "default_access": "allow",
            "allow": ["10.0.0.0/8"],
        }))
        .unwrap_err();
        assert_eq!(codes(&errors), [("ip_rules.allow", "no_effect")]);
        assert!(!errors[0].message.is_empty());
        // Explicit deny with the same list is fine, and so is explicit allow with no list.
        assert!(
            rules_of(serde_json::json!({"default_access": "deny", "allow": ["10.0.0.0/8"]}))
                .is_ok()
        );
        assert!(
            rules_of(serde_json::json!({"default_access": "allow", "deny": ["10.0.0.0/8"]}))
                .is_ok()
        );
        // Stored rows are read without the write-time check (decisions stay as stored).
        let stored =
            IpRules::from_stored(r#"{"default_access":"allow","allow":["10.0.0.0/8"],"deny":[]}"#)
                .unwrap();
        assert!(stored.allows(ip("192.0.2.1")));
        let broken = IpRules::from_stored(r#"{"allow":["nope"],"deny":[]}"#).unwrap();
        assert!(
            !broken.allows(ip("10.0.0.1")),
            "a broken row denies everything"
        );
        assert!(IpRules::from_stored("not json").is_err());
    }

    /// Old: `106.226.100.3/20` was refused ("host bits are set"). New: it is its network.
    #[test]
    fn host_bits_are_cleared() {
        let show = |s: &str| IpRule::parse(s).map(|r| r.to_string());
        assert_eq!(show("106.226.100.3/20"), Ok("106.226.96.0/20".into()));
        assert_eq!(show("10.0.0.1/8"), Ok("10.0.0.0/8".into()));
        assert_eq!(show("192.0.2.77/32"), Ok("192.0.2.77".into()));
        assert_eq!(show("255.255.255.255/0"), Ok("0.0.0.0/0".into()));
        assert_eq!(show("2001:db8:1234::1/32"), Ok("2001:db8::/32".into()));
        assert_eq!(show("2001:db8::1/128"), Ok("2001:db8::1".into()));
        assert_eq!(show("::1/0"), Ok("::/0".into()));
        let rule = IpRule::parse("106.226.100.3/20").unwrap();
        assert!(rule.contains(ip("106.226.101.7")));
        assert!(rule.contains(ip("106.226.96.0")));
        assert!(rule.contains(ip("106.226.111.255")));
        assert!(!rule.contains(ip("106.226.112.1")));
        assert!(!rule.contains(ip("106.226.95.255")));
        // The parsed rule is a fixed point of printing and parsing.
        for text in [
            "106.226.100.3/20",
            "2001:db8:1234::1/32",
            "::ffff:10.9.8.7/104",
        ] {
            let rule = IpRule::parse(text).unwrap();
            assert_eq!(IpRule::parse(&rule.to_string()), Ok(rule), "{text}");
        }
        // Still refused: prefixes out of range, garbage.
        assert!(IpRule::parse("10.0.0.0/33").is_err());
        assert!(IpRule::parse("2001:db8::/129").is_err());
        assert!(IpRule::parse("10.0.0.0/").is_err());
    }

    /// IPv4-mapped IPv6 addresses and ranges are the IPv4 ones, host bits cleared too.
    #[test]
    fn mapped_ipv6_is_ipv4() {
        let show = |s: &str| IpRule::parse(s).map(|r| r.to_string());
        assert_eq!(show("::ffff:192.0.2.1"), Ok("192.0.2.1".into()));
        assert_eq!(show("::ffff:192.0.2.0/120"), Ok("192.0.2.0/24".into()));
        assert_eq!(
            show("::ffff:106.226.100.3/116"),
            Ok("106.226.96.0/20".into())
        );
        assert_eq!(show("::ffff:0:0/96"), Ok("0.0.0.0/0".into()));
        let rule = IpRule::parse("::ffff:106.226.100.3/116").unwrap();
        assert!(rule.contains(ip("106.226.101.7")));
        assert!(rule.contains(ip("::ffff:106.226.101.7")));
        assert!(!rule.contains(ip("106.226.112.1")));
        let v4 = IpRule::parse("106.226.100.3/20").unwrap();
        assert!(v4.contains(ip("::ffff:106.226.101.7")));
        assert!(!v4.contains(ip("::ffff:106.226.112.1")));
    }

    /// New: a list may be one comma-separated string (trimmed, empty entries ignored).
    #[test]
    fn comma_separated_lists() {
        let rules = rules_of(serde_json::json!({
            "allow": " 10.0.0.1, 192.168.0.0/16 ,, 106.226.100.3/20,",
            "deny": "192.168.7.0/24",
        }))
        .unwrap();
        assert_eq!(
            serde_json::to_value(rules.to_doc()).unwrap(),
            serde_json::json!({
                "allow": ["10.0.0.1", "192.168.0.0/16", "106.226.96.0/20"],
                "deny": ["192.168.7.0/24"],
            })
        );
        assert_eq!(
            rules.default_access,
            DefaultAccess::Deny,
            "derived from the list"
        );
        assert!(rules.allows(ip("192.168.1.1")));
        assert!(!rules.allows(ip("192.168.7.1")));
        assert!(!rules.allows(ip("10.0.0.2")));
        // Empty and blank strings are empty lists.
        let empty = rules_of(serde_json::json!({"allow": "", "deny": " , "})).unwrap();
        assert!(empty.allow.is_empty() && empty.deny.is_empty());
        assert!(empty.is_unrestricted());
        // Arrays still work; other types do not.
        assert!(rules_of(serde_json::json!({"allow": ["10.0.0.1"]})).is_ok());
        for bad in [
            serde_json::json!({"allow": 7}),
            serde_json::json!({"allow": [7]}),
            serde_json::json!({"allow": {"a": "10.0.0.1"}}),
            serde_json::json!({"deny": true}),
        ] {
            assert!(
                serde_json::from_value::<IpRulesDoc>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    /// Each bad entry is reported at its index in the (split) list.
    #[test]
    fn per_entry_errors_name_their_index() {
        let errors = rules_of(serde_json::json!({
            "allow": "10.0.0.1, nope, , 10.0.0.0/33",
            "deny": ["192.0.2.1", "also-bad"],
        }))
        .unwrap_err();
        assert_eq!(
            codes(&errors),
            [
                ("ip_rules.allow[1]", "invalid_ip"),
                ("ip_rules.allow[2]", "invalid_ip"),
                ("ip_rules.deny[1]", "invalid_ip"),
            ]
        );
        let many = (0..=IpRules::MAX_ENTRIES)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect::<Vec<_>>()
            .join(",");
        let errors = rules_of(serde_json::json!({"deny": many})).unwrap_err();
        assert_eq!(codes(&errors), [("ip_rules.deny", "too_many")]);
    }

    #[test]
    fn custom_claims() {
        assert!(parse_custom_claims(&serde_json::json!({"tenant": "acme"}), "c").is_ok());
        assert!(parse_custom_claims(&serde_json::json!({"iss": "x"}), "c").is_err());
        assert!(parse_custom_claims(&serde_json::json!([1]), "c").is_err());
    }
}
