//! What every page shares: the layout (title, navigation, CSRF token, asset URLs), field
//! errors beside their inputs, and the error page.

use crate::session::Admin;
use askama::Template;
use askama_web::WebTemplate;
use gatehouse_registry::types::FieldError;

/// The frame of every page.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub title: String,
    /// The session's CSRF token (empty when signed out).
    pub csrf: String,
    /// The signed-in admin's `oauth_client_id` (empty when signed out).
    pub admin: String,
    /// The admin may change things.
    pub write: bool,
    /// The admin may change what every admin shares (collections, policies, projects,
    /// signing keys): a writer not limited to projects.
    pub shared_write: bool,
    /// Which navigation entry is current.
    pub section: &'static str,
    /// The page shows a one-time secret: htmx must not keep it in its history.
    pub no_history: bool,
    pub pico: String,
    pub htmx: String,
    pub css: String,
    pub js: String,
}

impl Layout {
    /// A page for nobody in particular (sign-in, errors).
    pub(crate) fn bare(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            csrf: String::new(),
            admin: String::new(),
            write: false,
            shared_write: false,
            section: "",
            no_history: false,
            pico: crate::assets::url("pico.min.css"),
            htmx: crate::assets::url("htmx.min.js"),
            css: crate::assets::url("console.css"),
            js: crate::assets::url("console.js"),
        }
    }

    /// A page for the signed-in admin.
    pub(crate) fn new(admin: &Admin, title: impl Into<String>, section: &'static str) -> Self {
        let mut layout = Self::bare("");
        layout.title = title.into();
        layout.csrf = admin.csrf.clone();
        layout.admin = admin.id.clone();
        layout.write = admin.actor.can_write();
        layout.shared_write =
            layout.write && *admin.actor.scope() == gatehouse_registry::AdminScope::All;
        layout.section = section;
        layout
    }

    /// Whether `name` is the current section (for `aria-current`).
    pub(crate) fn is(&self, name: &str) -> bool {
        self.section == name
    }
}

/// Field errors from the registry, looked up by field name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Errors(pub Vec<FieldError>);

impl Errors {
    /// The messages for `field` and its sub-fields (`ip_rules.allow[2]` belongs to
    /// `ip_rules.allow` and to `ip_rules`), joined.
    pub(crate) fn get(&self, field: &str) -> Option<String> {
        let messages: Vec<String> = self
            .0
            .iter()
            .filter(|e| belongs(&e.field, field))
            .map(|e| {
                if e.field == field {
                    e.message.clone()
                } else {
                    format!("{}: {}", e.field, e.message)
                }
            })
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    /// Whether `field` has an error.
    pub(crate) fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| belongs(&e.field, field))
    }

    /// Whether there are errors at all.
    pub(crate) fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Every error, for the summary at the top of a form.
    pub(crate) fn all(&self) -> &[FieldError] {
        &self.0
    }
}

fn belongs(error_field: &str, field: &str) -> bool {
    error_field == field
        || error_field
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
}

/// A refusal or failure, as a page.
#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub layout: Layout,
    pub title: &'static str,
    pub message: &'static str,
    pub fields: Vec<FieldError>,
}

/// Times as the console shows them.
pub(crate) fn when(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// Optional times as the console shows them.
pub(crate) fn when_opt(t: &Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "—".to_owned())
}

/// A value as the API spells it (`"oauth2"`, `"minute"`, …).
pub(crate) fn wire<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_belong_to_their_fields_and_parents() {
        let e = Errors(vec![
            FieldError::new("ip_rules.allow[2]", "invalid", "not an address"),
            FieldError::new("name", "required", "required"),
        ]);
        assert_eq!(e.get("name").as_deref(), Some("required"));
        assert!(e.has("ip_rules.allow"));
        assert!(e.has("ip_rules"));
        assert!(!e.has("ip_rules.deny"));
        assert!(!e.has("nam"));
        assert_eq!(
            e.get("ip_rules.allow").as_deref(),
            Some("ip_rules.allow[2]: not an address")
        );
    }
}
