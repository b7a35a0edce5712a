//! The audit log: every admin change writes one event, inside the change's transaction.

use super::{Actor, AdminScope, Registry, decode_cursor, encode_cursor};
use crate::api::{AuditEvent, AuditFilter, ListParams, Page};
use crate::entity::audit_event;
use crate::error::Result;
use crate::ids::{IdKind, new_sorted_id};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

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

    /// List the audit events this actor may see (an admin limited to projects: only
    /// those concerning its projects), oldest first, narrowed by `filter`.
    pub async fn list_audit_events(
        &self,
        actor: &Actor,
        params: &ListParams,
        filter: &AuditFilter,
    ) -> Result<Page<AuditEvent>> {
        let limit = params.limit();
        let mut query = audit_event::Entity::find().order_by_asc(audit_event::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            query = query.filter(audit_event::Column::Id.gt(after));
        }
        if let AdminScope::Projects(ids) = actor.scope() {
            query = query.filter(audit_event::Column::ProjectId.is_in(ids.iter().cloned()));
        }
        let text = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty() && crate::error::storable(t))
                .map(str::to_owned)
        };
        if let Some(a) = text(&filter.actor) {
            query = query.filter(audit_event::Column::Actor.eq(a));
        }
        if let Some(a) = text(&filter.action) {
            query = query.filter(audit_event::Column::Action.eq(a));
        }
        if let Some(t) = text(&filter.target_id) {
            query = query.filter(audit_event::Column::TargetId.eq(t));
        }
        if let Some(from) = filter.from {
            query = query.filter(audit_event::Column::At.gte(from));
        }
        if let Some(to) = filter.to {
            query = query.filter(audit_event::Column::At.lt(to));
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
