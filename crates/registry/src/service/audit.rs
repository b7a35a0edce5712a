//! The audit log: every admin change writes one event, inside the change's transaction.

use super::{Actor, Registry, decode_cursor, encode_cursor};
use crate::api::{AuditEvent, ListParams, Page};
use crate::entity::audit_event;
use crate::error::Result;
use crate::ids::{IdKind, new_sorted_id};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

/// Which audit events to list; every field that is set must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exactly this actor (an admin's `oauth_client_id`, or `system`).
    pub actor: Option<String>,
    /// Exactly this action, e.g. `client.create`.
    pub action: Option<String>,
    /// Exactly this target id.
    pub target_id: Option<String>,
    /// At or after this time.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this time.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

impl Registry {
    /// Append an audit event through `conn` (normally the change's transaction).
    /// `details` must never contain a secret.
    pub(crate) async fn audit<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        self.audit_in(conn, actor, None, action, target_type, target_id, details)
            .await
    }

    /// [`Registry::audit`] for a change under a client of `project`: admins limited to that
    /// project see the event.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn audit_in<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        project: Option<&str>,
        action: &str,
        target_type: &str,
        target_id: &str,
        details: serde_json::Value,
    ) -> Result<()> {
        let at = self.now();
        audit_event::ActiveModel {
            id: Set(new_sorted_id(IdKind::Audit, at.timestamp_millis())),
            at: Set(at),
            actor: Set(actor.id().to_owned()),
            action: Set(action.to_owned()),
            target_type: Set(target_type.to_owned()),
            target_id: Set(target_id.to_owned()),
            details: Set(details.to_string()),
            project_id: Set(project.map(str::to_owned)),
        }
        .insert(conn)
        .await?;
        tracing::info!(actor = %actor.id(), action, target_type, target_id, "audit");
        Ok(())
    }

    /// List audit events, oldest first.
    pub async fn list_audit_events(&self, params: &ListParams) -> Result<Page<AuditEvent>> {
        self.list_audit_events_filtered(params, &AuditFilter::default())
            .await
    }

    /// List the audit events that match `filter`, oldest first.
    pub async fn list_audit_events_filtered(
        &self,
        params: &ListParams,
        filter: &AuditFilter,
    ) -> Result<Page<AuditEvent>> {
        let limit = params.limit();
        let mut query = audit_event::Entity::find().order_by_asc(audit_event::Column::Id);
        if let Some(actor) = filter.actor.as_deref().filter(|s| !s.is_empty()) {
            query = query.filter(audit_event::Column::Actor.eq(actor));
        }
        if let Some(action) = filter.action.as_deref().filter(|s| !s.is_empty()) {
            query = query.filter(audit_event::Column::Action.eq(action));
        }
        if let Some(target) = filter.target_id.as_deref().filter(|s| !s.is_empty()) {
            query = query.filter(audit_event::Column::TargetId.eq(target));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_event::Column::At.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_event::Column::At.lt(to));
        }
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            query = query.filter(audit_event::Column::Id.gt(after));
        }
        let rows = query.limit(limit + 1).all(&self.inner.db).await?;
        Ok(page(
            rows,
            limit,
            |r| r.id.clone(),
            |r| AuditEvent {
                id: r.id,
                at: r.at,
                actor: r.actor,
                action: r.action,
                target_type: r.target_type,
                target_id: r.target_id,
                details: serde_json::from_str(&r.details).unwrap_or(serde_json::Value::Null),
            },
        ))
    }
}

/// Cut `limit + 1` rows into a page and its cursor.
pub(crate) fn page<R, T>(
    mut rows: Vec<R>,
    limit: u64,
    id: impl Fn(&R) -> String,
    map: impl FnMut(R) -> T,
) -> Page<T> {
    let more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode_cursor(&id(r)))
    } else {
        None
    };
    Page {
        items: rows.into_iter().map(map).collect(),
        next_cursor,
    }
}
