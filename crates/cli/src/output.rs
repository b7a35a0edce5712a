//! Printing answers: JSON as the server gave it, or aligned columns for people.

use crate::OutputFormat;
use gatehouse_registry::api::{
    ApiKey, AuditEvent, Client, Collection, Policy, Profile, Project, UsageReport,
};
use serde_json::Value;

/// A resource as one table row.
pub(crate) trait Row {
    /// Column titles.
    const HEADERS: &'static [&'static str];
    /// The cells, in the order of [`Row::HEADERS`].
    fn cells(&self) -> Vec<String>;
}

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".to_owned())
}

fn on(active: bool) -> String {
    if active { "active" } else { "inactive" }.to_owned()
}

impl Row for Collection {
    const HEADERS: &'static [&'static str] =
        &["ID", "NAME", "AUDIENCE", "SCOPES", "INTROSPECTION ID"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.audience.clone(),
            self.scopes
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            self.introspection_client_id.clone(),
        ]
    }
}

impl Row for Project {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "DESCRIPTION"];
    fn cells(&self) -> Vec<String> {
        vec![self.id.clone(), self.name.clone(), self.description.clone()]
    }
}

impl Row for Client {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "PROJECT", "STATE", "CONTACT"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            opt(&self.project),
            on(self.active),
            opt(&self.contact.email),
        ]
    }
}

impl Row for Profile {
    const HEADERS: &'static [&'static str] =
        &["ID", "NAME", "AUTH", "CLIENT ID", "STATE", "SCOPES"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.auth_type.as_str().to_owned(),
            self.oauth_client_id.clone(),
            on(self.active),
            self.effective_scopes.join(" "),
        ]
    }
}

impl Row for ApiKey {
    const HEADERS: &'static [&'static str] =
        &["ID", "NAME", "PREFIX", "STATE", "EXPIRES", "LAST USED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.prefix.clone(),
            on(self.active),
            self.expires_at.map_or("-".to_owned(), |t| t.to_rfc3339()),
            self.last_used_at.map_or("-".to_owned(), |t| t.to_rfc3339()),
        ]
    }
}

impl Row for Policy {
    const HEADERS: &'static [&'static str] = &["ID", "NAME", "RATE LIMIT", "QUOTA", "PROFILES"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.rate_limit.map_or("-".to_owned(), |r| {
                format!("{}/{}", r.requests, r.per.as_str())
            }),
            self.quota.map_or("-".to_owned(), |q| {
                format!("{}/{}", q.requests, q.per.as_str())
            }),
            self.profiles.to_string(),
        ]
    }
}

impl Row for AuditEvent {
    const HEADERS: &'static [&'static str] = &["AT", "ACTOR", "ACTION", "TARGET"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.at.to_rfc3339(),
            self.actor.clone(),
            self.action.clone(),
            format!("{} {}", self.target_type, self.target_id),
        ]
    }
}

impl Row for gatehouse_jwks::KeyView {
    const HEADERS: &'static [&'static str] = &["KID", "ALG", "STATE", "CREATED"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.kid.clone(),
            self.alg.clone(),
            self.state.clone(),
            self.created_at.to_rfc3339(),
        ]
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(headers.iter().map(|h| (*h).to_owned()).collect());
    for row in rows {
        line(row.clone());
    }
}

/// Print a list: JSON (`{"items": [...]}` as the server gave the items) or a table.
pub(crate) fn print_items<T: Row>(format: OutputFormat, typed: &[T], raw: &[Value]) {
    match format {
        OutputFormat::Json => print_json(&serde_json::json!({"items": raw})),
        OutputFormat::Table => table(
            T::HEADERS,
            &typed.iter().map(Row::cells).collect::<Vec<_>>(),
        ),
    }
}

fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Print one object: JSON, or one `member: value` line per member.
pub(crate) fn print_object(format: OutputFormat, v: &Value) {
    match format {
        OutputFormat::Json => print_json(v),
        OutputFormat::Table => match v.as_object() {
            Some(map) => {
                let width = map.keys().map(|k| k.chars().count()).max().unwrap_or(0);
                for (k, val) in map {
                    let text = match val {
                        Value::String(s) => s.clone(),
                        Value::Null => "-".to_owned(),
                        other => other.to_string(),
                    };
                    println!("{k:<width$}  {text}");
                }
            }
            None => print_json(v),
        },
    }
}

/// A usage report as a table: one row per bucket.
pub(crate) fn print_usage(report: &UsageReport) {
    let rows: Vec<Vec<String>> = report
        .items
        .iter()
        .map(|i| {
            vec![
                i.start.to_rfc3339(),
                i.tokens_issued.to_string(),
                i.introspections_active.to_string(),
                i.denied
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    table(
        &["START", "TOKENS", "ACTIVE INTROSPECTIONS", "DENIED"],
        &rows,
    );
}
