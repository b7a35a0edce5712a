//! Posted forms, and one function per form that turns it into the registry's input. Those
//! functions are the only place that knows how a form maps to the registry: when the
//! registry takes typed commands, only they change.

use gatehouse_admin::wire;
use gatehouse_registry::RegistryError;
use gatehouse_registry::command;
use gatehouse_registry::types::FieldError;
use serde_json::{Map, Value, json};

/// The fields of a posted form (or the values a form is filled with), in order; a name may
/// repeat (checkboxes, scope rows).
#[derive(Debug, Clone, Default)]
pub(crate) struct FormData(pub Vec<(String, String)>);

impl FormData {
    /// Parse an `application/x-www-form-urlencoded` body.
    pub(crate) fn parse(bytes: &[u8]) -> Self {
        Self(form_urlencoded::parse(bytes).into_owned().collect())
    }

    /// The first value of `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; empty when absent.
    pub(crate) fn val(&self, name: &str) -> &str {
        self.get(name).map(str::trim).unwrap_or("")
    }

    /// Every value of `name`.
    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether a checkbox (or a select) `name` holds `value`.
    pub(crate) fn has(&self, name: &str, value: &str) -> bool {
        self.0.iter().any(|(k, v)| k == name && v == value)
    }

    /// Whether a checkbox `name` is ticked.
    pub(crate) fn on(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| !v.is_empty())
    }

    /// Set `name` to `value` (replacing earlier values).
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.retain(|(k, _)| k != name);
        self.0.push((name.to_owned(), value.into()));
    }

    /// Add a value to `name`.
    pub(crate) fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push((name.to_owned(), value.into()));
    }

    /// The value of `name` as text, or `null` when empty.
    fn opt(&self, name: &str) -> Value {
        match self.val(name) {
            "" => Value::Null,
            v => Value::String(v.to_owned()),
        }
    }

    /// A list field: one entry per line or comma-separated.
    fn list(&self, name: &str) -> Vec<String> {
        split_list(self.get(name).unwrap_or(""))
    }

    /// A whole number, or `None` when empty; a field error when it is not a number.
    fn int(&self, name: &str, errors: &mut Vec<FieldError>) -> Option<i64> {
        match self.val(name) {
            "" => None,
            v => match v.parse::<i64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    errors.push(FieldError::new(name, "invalid", "must be a whole number"));
                    None
                }
            },
        }
    }
}

/// Split a list typed into a textarea: entries separated by newlines or commas, trimmed,
/// empty ones dropped.
pub(crate) fn split_list(text: &str) -> Vec<String> {
    text.split(['\n', ',', '\r'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

type Built = Result<Value, Vec<FieldError>>;

fn done(body: Value, errors: Vec<FieldError>) -> Built {
    if errors.is_empty() {
        Ok(body)
    } else {
        Err(errors)
    }
}

/// New or edited client → the registry's client input (a full merge patch on edits).
pub(crate) fn client_body(f: &FormData) -> Built {
    Ok(json!({
        "name": f.val("name"),
        "description": f.val("description"),
        "project": f.opt("project"),
        "contact": {
            "first_name": f.opt("contact_first_name"),
            "last_name": f.opt("contact_last_name"),
            "email": f.opt("contact_email"),
        },
        "active": f.on("active"),
    }))
}

/// The profile form's `auth_type` choices.
pub(crate) const AUTH_TYPES: &[(&str, &str)] = &[
    ("oauth2", "OAuth 2.0 client credentials"),
    ("token", "Auth token (API key)"),
    ("jwt", "JWT signed by the consumer"),
    ("oidc", "OpenID Connect identity provider"),
];

/// New access profile → the registry's profile input, with only the fields of the chosen
/// authentication method (without JavaScript every fieldset is sent).
pub(crate) fn profile_body(f: &FormData) -> Built {
    let mut errors = Vec::new();
    let auth_type = f.val("auth_type");
    let mut body = Map::new();
    body.insert("name".into(), json!(f.val("name")));
    body.insert("description".into(), json!(f.val("description")));
    body.insert("auth_type".into(), json!(auth_type));
    body.insert("collections".into(), json!(f.all("collections")));
    body.insert("all_collections".into(), json!(f.on("all_collections")));
    let scopes = split_list(&f.val("scopes").replace(' ', "\n"));
    if !scopes.is_empty() {
        body.insert("scopes".into(), json!(scopes));
    }
    body.insert("policy_id".into(), f.opt("policy_id"));
    body.insert("active".into(), json!(f.on("active")));
    if let Some(ttl) = f.int("token_ttl_seconds", &mut errors) {
        body.insert("token_ttl_seconds".into(), json!(ttl));
    }
    body.insert("ip_rules".into(), ip_rules(f));
    match auth_type {
        "jwt" => {
            let method = f.val("jwt_method");
            body.insert("jwt_method".into(), json!(method));
            if method == "rsa" {
                if !f.val("rsa_algorithm").is_empty() {
                    body.insert("jwt_algorithms".into(), json!([f.val("rsa_algorithm")]));
                }
                body.insert("jwt_public_key".into(), f.opt("jwt_public_key"));
                body.insert("oidc_jwks_uri".into(), f.opt("jwt_jwks_uri"));
            } else {
                if !f.val("hmac_algorithm").is_empty() {
                    body.insert("jwt_algorithms".into(), json!([f.val("hmac_algorithm")]));
                }
                if !f.val("jwt_secret").is_empty() {
                    body.insert("jwt_secret".into(), json!(f.val("jwt_secret")));
                }
            }
            claim_rules(f, &mut body);
        }
        "oidc" => {
            body.insert("oidc_issuer".into(), f.opt("oidc_issuer"));
            body.insert("oidc_jwks_uri".into(), f.opt("oidc_jwks_uri"));
            claim_rules(f, &mut body);
        }
        _ => {}
    }
    done(Value::Object(body), errors)
}

/// The profile edit form → a merge patch of the profile. The authentication method and JWT
/// method are the stored ones (the form sends them back unchanged); an empty scope subset
/// clears the subset, an empty HMAC secret keeps the stored one.
pub(crate) fn profile_patch(f: &FormData) -> Built {
    let mut body = profile_body(f)?;
    if let Some(map) = body.as_object_mut() {
        if !map.contains_key("scopes") {
            map.insert("scopes".into(), Value::Null);
        }
        if let Some(rules) = map.get_mut("ip_rules").and_then(Value::as_object_mut)
            && !rules.contains_key("default_access")
        {
            rules.insert("default_access".into(), Value::Null);
        }
    }
    Ok(body)
}

/// A stored profile as the values of its edit form.
pub(crate) fn profile_form(p: &gatehouse_registry::api::Profile) -> FormData {
    let mut f = FormData::default();
    f.set("name", &p.name);
    f.set("description", &p.description);
    f.set("auth_type", p.auth_type.as_str());
    for c in &p.collections {
        f.push("collections", c);
    }
    if p.all_collections {
        f.set("all_collections", "on");
    }
    if let Some(scopes) = &p.scopes {
        f.set("scopes", scopes.join(" "));
    }
    f.set("policy_id", p.policy_id.clone().unwrap_or_default());
    // Shown as "derived" when it is what the allow list implies, so adding an allow entry
    // later does not meet a stale explicit `allow` (422 no_effect).
    let default = crate::views::wire(&p.ip_rules.default_access);
    let derived = if p.ip_rules.allow.is_empty() {
        "allow"
    } else {
        "deny"
    };
    if default != derived {
        f.set("ip_default_access", default);
    }
    f.set("ip_allow", p.ip_rules.allow.join("\n"));
    f.set("ip_deny", p.ip_rules.deny.join("\n"));
    f.set("token_ttl_seconds", p.token_ttl_seconds.to_string());
    if p.active {
        f.set("active", "on");
    }
    if let Some(j) = &p.jwt {
        let method = j
            .jwt_method
            .map(|m| crate::views::wire(&m))
            .unwrap_or_default();
        let alg = j.jwt_algorithms.first().cloned().unwrap_or_default();
        if method == "rsa" {
            f.set("rsa_algorithm", alg);
            f.set("jwt_jwks_uri", j.oidc_jwks_uri.clone().unwrap_or_default());
        } else {
            f.set("hmac_algorithm", alg);
            f.set("oidc_jwks_uri", j.oidc_jwks_uri.clone().unwrap_or_default());
        }
        f.set("jwt_method", method);
        f.set(
            "jwt_public_key",
            j.jwt_public_key.clone().unwrap_or_default(),
        );
        f.set("oidc_issuer", j.oidc_issuer.clone().unwrap_or_default());
        f.set("jwt_claim", &j.jwt_claim);
        f.set("jwt_claim_value", &j.jwt_claim_value);
        f.set("allowed_audiences", j.allowed_audiences.join("\n"));
        f.set("allowed_issuers", j.allowed_issuers.join("\n"));
        let required: Vec<String> = j
            .required_claims
            .iter()
            .map(|c| match &c.value {
                Some(v) => format!("{}={v}", c.name),
                None => c.name.clone(),
            })
            .collect();
        f.set("required_claims", required.join("\n"));
    }
    f
}

/// For a jwt profile the form's `jwt_jwks_uri` is the registry's `oidc_jwks_uri`: errors on
/// it are shown beside the field that was filled.
pub(crate) fn profile_error_field(auth_type: &str, field: String) -> String {
    if auth_type == "jwt" && field.starts_with("oidc_jwks_uri") {
        field.replacen("oidc_jwks_uri", "jwt_jwks_uri", 1)
    } else {
        field
    }
}

fn claim_rules(f: &FormData, body: &mut Map<String, Value>) {
    if !f.val("jwt_claim").is_empty() {
        body.insert("jwt_claim".into(), json!(f.val("jwt_claim")));
    }
    if !f.val("jwt_claim_value").is_empty() {
        body.insert("jwt_claim_value".into(), json!(f.val("jwt_claim_value")));
    }
    body.insert("allowed_issuers".into(), json!(f.list("allowed_issuers")));
    body.insert(
        "allowed_audiences".into(),
        json!(f.list("allowed_audiences")),
    );
    let required: Vec<Value> = split_list(f.get("required_claims").unwrap_or(""))
        .into_iter()
        .map(|line| match line.split_once('=') {
            Some((name, value)) => json!({"name": name.trim(), "value": value.trim()}),
            None => json!({"name": line}),
        })
        .collect();
    body.insert("required_claims".into(), json!(required));
}

/// The IP rules fieldset: a blank default access is left to the registry (derived).
fn ip_rules(f: &FormData) -> Value {
    let mut rules = Map::new();
    if !f.val("ip_default_access").is_empty() {
        rules.insert("default_access".into(), json!(f.val("ip_default_access")));
    }
    rules.insert("allow".into(), json!(f.list("ip_allow")));
    rules.insert("deny".into(), json!(f.list("ip_deny")));
    Value::Object(rules)
}

/// Registry field names of IP rules → the form's field names, so messages land beside the
/// right textarea.
pub(crate) fn ip_error_field(field: String) -> String {
    field
        .replacen("ip_rules.allow", "ip_allow", 1)
        .replacen("ip_rules.deny", "ip_deny", 1)
        .replacen("ip_rules.default_access", "ip_default_access", 1)
}

/// New API key → the registry's key input.
pub(crate) fn api_key_body(f: &FormData) -> Built {
    let mut errors = Vec::new();
    let expires_at = match f.val("expires_at") {
        "" => Value::Null,
        v => match parse_time(v) {
            Some(t) => json!(t),
            None => {
                errors.push(FieldError::new(
                    "expires_at",
                    "invalid",
                    "a date and time such as 2027-01-31T12:00",
                ));
                Value::Null
            }
        },
    };
    done(
        json!({
            "name": f.val("name"),
            "active": true,
            "expires_at": expires_at,
            "ip_rules": {"allow": f.list("ip_allow"), "deny": f.list("ip_deny")},
        }),
        errors,
    )
}

/// A time from a `datetime-local` input (read as UTC) or RFC 3339.
pub(crate) fn parse_time(v: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&chrono::Utc));
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(v, format) {
            return Some(t.and_utc());
        }
    }
    chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// A rotation's grace period in seconds (empty: none).
pub(crate) fn grace_seconds(f: &FormData) -> Result<Option<i64>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let grace = f.int("grace_seconds", &mut errors);
    if errors.is_empty() {
        Ok(grace)
    } else {
        Err(errors)
    }
}

/// New or edited collection → the registry's collection input. Scope rows are the
/// repeated `scope_name` / `scope_description` pairs; rows without a name are dropped.
pub(crate) fn collection_body(f: &FormData) -> Built {
    let names = f.all("scope_name");
    let descriptions = f.all("scope_description");
    let scopes: Vec<Value> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| !n.trim().is_empty())
        .map(|(i, n)| {
            json!({
                "name": n.trim(),
                "description": descriptions.get(i).map(|d| d.trim()).unwrap_or(""),
            })
        })
        .collect();
    Ok(json!({
        "name": f.val("name"),
        "description": f.val("description"),
        "audience": f.val("audience"),
        "scopes": scopes,
        "integration_url": f.opt("integration_url"),
        "documentation_url": f.opt("documentation_url"),
    }))
}

/// New or edited policy → the registry's policy input; an empty request count removes
/// that limit.
pub(crate) fn policy_body(f: &FormData) -> Built {
    let mut errors = Vec::new();
    let rate = f
        .int("rate_requests", &mut errors)
        .map(|n| json!({"requests": n, "per": f.val("rate_per")}))
        .unwrap_or(Value::Null);
    let quota = f
        .int("quota_requests", &mut errors)
        .map(|n| json!({"requests": n, "per": f.val("quota_per")}))
        .unwrap_or(Value::Null);
    done(
        json!({"name": f.val("name"), "rate_limit": rate, "quota": quota}),
        errors,
    )
}

/// Registry field names of a policy → the form's.
pub(crate) fn policy_error_field(field: String) -> String {
    field
        .replacen("rate_limit.requests", "rate_requests", 1)
        .replacen("rate_limit.per", "rate_per", 1)
        .replacen("quota.requests", "quota_requests", 1)
        .replacen("quota.per", "quota_per", 1)
}

/// The project form → the registry's typed commands (every field error at once).
pub(crate) fn project_command(f: &FormData) -> Result<command::NewProject, Vec<FieldError>> {
    use gatehouse_registry::types::{Description, Name};
    let mut errors = Vec::new();
    let name = Name::parse(f.val("name"))
        .map_err(|e| errors.push(e.at("name")))
        .ok();
    let description = Description::parse(f.val("description"))
        .map_err(|e| errors.push(e.at("description")))
        .ok();
    match (name, description) {
        (Some(name), Some(description)) if errors.is_empty() => {
            Ok(command::NewProject { name, description })
        }
        _ => Err(errors),
    }
}

/// The project edit form → a patch replacing both fields.
pub(crate) fn project_patch(f: &FormData) -> Result<command::ProjectPatch, Vec<FieldError>> {
    let new = project_command(f)?;
    Ok(command::ProjectPatch {
        name: Some(new.name),
        description: Some(new.description),
    })
}

/// A form's registry input, read into the registry's typed command by the same wire types
/// (and so the same field errors) as the admin JSON API.
fn command<I: serde::de::DeserializeOwned, C>(
    body: Built,
    to_command: impl FnOnce(I) -> Result<C, RegistryError>,
) -> Result<C, RegistryError> {
    let body = body.map_err(RegistryError::Validation)?;
    to_command(gatehouse_registry::parse_input(body)?)
}

/// The new-client form as a command.
pub(crate) fn new_client(f: &FormData) -> Result<command::NewClient, RegistryError> {
    command(client_body(f), wire::ClientInput::command)
}

/// The client edit form as a command (every field replaced).
pub(crate) fn client_patch(f: &FormData) -> Result<command::ClientPatch, RegistryError> {
    command(client_body(f), wire::ClientPatchInput::command)
}

/// The new-profile form as a command.
pub(crate) fn new_profile(f: &FormData) -> Result<command::NewProfile, RegistryError> {
    command(profile_body(f), wire::ProfileInput::command)
}

/// The profile edit form as a command.
pub(crate) fn edit_profile(f: &FormData) -> Result<command::ProfilePatch, RegistryError> {
    command(profile_patch(f), wire::ProfilePatchInput::command)
}

/// The new-API-key form as a command.
pub(crate) fn new_api_key(f: &FormData) -> Result<command::NewApiKey, RegistryError> {
    command(api_key_body(f), wire::ApiKeyInput::command)
}

/// The new-collection form as a command.
pub(crate) fn new_collection(f: &FormData) -> Result<command::NewCollection, RegistryError> {
    command(collection_body(f), wire::CollectionInput::command)
}

/// The collection edit form as a command (every field replaced).
pub(crate) fn collection_patch(f: &FormData) -> Result<command::CollectionPatch, RegistryError> {
    command(collection_body(f), wire::CollectionPatchInput::command)
}

/// The new-policy form as a command.
pub(crate) fn new_policy(f: &FormData) -> Result<command::NewPolicy, RegistryError> {
    command(policy_body(f), wire::PolicyInput::command)
}

/// The policy edit form as a command (an empty limit removes it).
pub(crate) fn policy_patch(f: &FormData) -> Result<command::PolicyPatch, RegistryError> {
    command(policy_body(f), wire::PolicyPatchInput::command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormData {
        FormData(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn lists_split_on_newlines_and_commas() {
        assert_eq!(
            split_list("10.0.0.0/8, 192.168.1.1\r\n\n  2001:db8::/32 ,,"),
            vec!["10.0.0.0/8", "192.168.1.1", "2001:db8::/32"]
        );
        assert!(split_list(" \n , ").is_empty());
    }

    #[test]
    fn urlencoded_forms_keep_repeated_fields() {
        let f = FormData::parse(b"collections=col_a&collections=col_b&name=A+b%26c&active=on");
        assert_eq!(f.all("collections"), vec!["col_a", "col_b"]);
        assert_eq!(f.val("name"), "A b&c");
        assert!(f.on("active"));
        assert!(!f.on("all_collections"));
    }

    #[test]
    fn a_profile_body_has_only_its_methods_fields() {
        let f = form(&[
            ("name", "p"),
            ("auth_type", "oauth2"),
            ("collections", "col_1"),
            ("ip_default_access", ""),
            ("ip_allow", "10.0.0.1\n10.0.0.2, 10.0.0.3"),
            ("ip_deny", ""),
            ("jwt_method", "hmac"),
            ("jwt_secret", "x"),
            ("oidc_issuer", "https://idp"),
            ("token_ttl_seconds", "600"),
            ("active", "on"),
        ]);
        let body = profile_body(&f).unwrap();
        assert_eq!(
            body["ip_rules"]["allow"],
            json!(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        );
        assert!(
            body["ip_rules"].get("default_access").is_none(),
            "blank is derived"
        );
        assert!(body.get("jwt_secret").is_none());
        assert!(body.get("oidc_issuer").is_none());
        assert_eq!(body["token_ttl_seconds"], 600);
        assert_eq!(body["active"], true);

        let jwt = form(&[
            ("auth_type", "jwt"),
            ("jwt_method", "rsa"),
            ("jwt_jwks_uri", "https://idp/jwks"),
            ("allowed_audiences", "a, b"),
            ("required_claims", "tenant=acme\nemail_verified"),
        ]);
        let body = profile_body(&jwt).unwrap();
        assert_eq!(body["oidc_jwks_uri"], "https://idp/jwks");
        assert_eq!(body["allowed_audiences"], json!(["a", "b"]));
        assert_eq!(
            body["required_claims"],
            json!([{"name": "tenant", "value": "acme"}, {"name": "email_verified"}])
        );
        assert_eq!(
            profile_error_field("jwt", "oidc_jwks_uri".into()),
            "jwt_jwks_uri"
        );
    }

    #[test]
    fn numbers_that_are_not_numbers_are_field_errors() {
        let errors = profile_body(&form(&[
            ("auth_type", "oauth2"),
            ("token_ttl_seconds", "1h"),
        ]))
        .unwrap_err();
        assert_eq!(errors[0].field, "token_ttl_seconds");
        let errors = policy_body(&form(&[("rate_requests", "x")])).unwrap_err();
        assert_eq!(errors[0].field, "rate_requests");
        let body = policy_body(&form(&[("rate_requests", "5"), ("rate_per", "second")])).unwrap();
        assert_eq!(body["rate_limit"], json!({"requests": 5, "per": "second"}));
        assert_eq!(body["quota"], Value::Null);
    }

    #[test]
    fn collection_scope_rows_pair_up() {
        let f = form(&[
            ("scope_name", "orders:read"),
            ("scope_description", "Read"),
            ("scope_name", ""),
            ("scope_description", "ignored"),
            ("scope_name", "orders:write"),
            ("scope_description", ""),
        ]);
        let body = collection_body(&f).unwrap();
        assert_eq!(
            body["scopes"],
            json!([
                {"name": "orders:read", "description": "Read"},
                {"name": "orders:write", "description": ""}
            ])
        );
    }

    #[test]
    fn forms_become_commands_with_the_api_field_errors() {
        let bad = form(&[("name", ""), ("contact_email", "not-an-email")]);
        let Err(RegistryError::Validation(errors)) = new_client(&bad) else {
            panic!("an empty name and a bad email are refused");
        };
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"name"), "{fields:?}");
        assert!(
            fields.iter().any(|f| f.starts_with("contact")),
            "{fields:?}"
        );
        let good = form(&[("name", "Acme"), ("active", "on")]);
        let command = new_client(&good).unwrap();
        assert_eq!(command.name.as_str(), "Acme");
        assert!(command.active);
        let toggled = client_patch(&good).unwrap();
        assert_eq!(toggled.active, Some(true));
    }

    proptest::proptest! {
        /// Splitting never yields an empty entry, a separator or surrounding blanks, and a
        /// list shown one per line splits back to itself.
        #[test]
        fn split_lists_are_clean_and_stable(text in "[a-z0-9./:, \n\r]{0,80}") {
            let items = split_list(&text);
            for item in &items {
                proptest::prop_assert!(!item.is_empty());
                proptest::prop_assert!(!item.contains([',', '\n', '\r']));
                proptest::prop_assert_eq!(item.trim(), item.as_str());
            }
            proptest::prop_assert_eq!(split_list(&items.join("\n")), items);
        }
    }

    #[test]
    fn times_from_datetime_local_are_utc() {
        assert_eq!(
            parse_time("2027-01-31T12:00").map(|t| t.to_rfc3339()),
            Some("2027-01-31T12:00:00+00:00".to_owned())
        );
        assert!(parse_time("soon").is_none());
    }
}
