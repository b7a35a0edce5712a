//! The audit log, filtered by actor, action, target and time.

use crate::ConsoleState;
use crate::error::ConsoleResult;
use crate::forms::parse_time;
use crate::session::Admin;
use crate::views::Layout;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use gatehouse_registry::api::{AuditEvent, AuditFilter, ListParams};
use std::sync::Arc;

/// The filter form's fields (all optional).
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target_id: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    cursor: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "audit.html")]
pub(crate) struct AuditPage {
    layout: Layout,
    q: AuditQuery,
    events: Vec<AuditEvent>,
    next: Option<String>,
}

impl AuditPage {
    fn next_link(&self) -> String {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("actor", &self.q.actor),
            ("action", &self.q.action),
            ("target_id", &self.q.target_id),
            ("from", &self.q.from),
            ("to", &self.q.to),
        ] {
            if !v.is_empty() {
                url.append_pair(k, v);
            }
        }
        if let Some(c) = &self.next {
            url.append_pair("cursor", c);
        }
        format!("/console/audit?{}", url.finish())
    }
}

fn some(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `GET /console/audit`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Query(q): Query<AuditQuery>,
) -> ConsoleResult<AuditPage> {
    let filter = AuditFilter {
        actor: some(&q.actor),
        action: some(&q.action),
        target_id: some(&q.target_id),
        from: parse_time(q.from.trim()),
        to: parse_time(q.to.trim()),
    };
    let page = state
        .registry
        .list_audit_events(
            &admin.actor,
            &ListParams {
                limit: Some(100),
                cursor: q.cursor.clone().filter(|c| !c.is_empty()),
            },
            &filter,
        )
        .await?;
    Ok(AuditPage {
        layout: Layout::new(&admin, "Audit log", "audit"),
        q,
        events: page.items,
        next: page.next_cursor,
    })
}
