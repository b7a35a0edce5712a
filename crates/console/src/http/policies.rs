//! Policies: rate limits and quotas that profiles share.

use super::collections::CursorQuery;
use super::{form_errors, refused, see_other};
use crate::ConsoleState;
use crate::error::ConsoleResult;
use crate::forms::{FormData, new_policy, policy_error_field, policy_patch};
use crate::session::{Admin, Posted};
use crate::views::{Errors, Layout, wire};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use gatehouse_registry::api::{ListParams, Policy};
use std::sync::Arc;

#[derive(Template, WebTemplate)]
#[template(path = "policies.html")]
pub(crate) struct ListPage {
    layout: Layout,
    policies: Vec<Policy>,
    next: Option<String>,
}

impl ListPage {
    fn rate(p: &Policy) -> String {
        p.rate_limit
            .as_ref()
            .map(|r| format!("{} per {}", r.requests, wire(&r.per)))
            .unwrap_or_else(|| "—".to_owned())
    }

    fn quota(p: &Policy) -> String {
        p.quota
            .as_ref()
            .map(|q| format!("{} per {}", q.requests, wire(&q.per)))
            .unwrap_or_else(|| "—".to_owned())
    }
}

/// `GET /console/policies`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Query(q): Query<CursorQuery>,
) -> ConsoleResult<ListPage> {
    let page = state
        .registry
        .list_policies(&ListParams {
            limit: Some(50),
            cursor: q.cursor.filter(|c| !c.is_empty()),
        })
        .await?;
    Ok(ListPage {
        layout: Layout::new(&admin, "Policies", "policies"),
        policies: page.items,
        next: page.next_cursor,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "policy_form.html")]
pub(crate) struct FormPage {
    layout: Layout,
    policy: Option<Policy>,
    f: FormData,
    errors: Errors,
}

/// `GET /console/policies/new`.
pub(crate) async fn new_page(admin: Admin) -> FormPage {
    let mut f = FormData::default();
    f.set("rate_per", "minute");
    f.set("quota_per", "day");
    FormPage {
        layout: Layout::new(&admin, "New policy", "policies"),
        policy: None,
        f,
        errors: Errors::default(),
    }
}

fn policy_form(p: &Policy) -> FormData {
    let mut f = FormData::default();
    f.set("name", &p.name);
    f.set("rate_per", "minute");
    f.set("quota_per", "day");
    if let Some(r) = &p.rate_limit {
        f.set("rate_requests", r.requests.to_string());
        f.set("rate_per", wire(&r.per));
    }
    if let Some(q) = &p.quota {
        f.set("quota_requests", q.requests.to_string());
        f.set("quota_per", wire(&q.per));
    }
    f
}

/// `POST /console/policies`.
pub(crate) async fn create(
    State(state): State<Arc<ConsoleState>>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let again = |errors: Errors, f: FormData| {
        refused(FormPage {
            layout: Layout::new(&admin, "New policy", "policies"),
            policy: None,
            f,
            errors,
        })
    };
    let created = match new_policy(&form) {
        Ok(command) => state.registry.create_policy(&admin.actor, command).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(p) => Ok(see_other(&format!("/console/policies/{}", p.id))),
        Err(e) => Ok(again(form_errors(e, policy_error_field)?, form)),
    }
}

/// `GET /console/policies/{id}`: the policy, editable.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<FormPage> {
    let p = state.registry.get_policy(&id).await?;
    Ok(FormPage {
        layout: Layout::new(&admin, p.name.clone(), "policies"),
        f: policy_form(&p),
        policy: Some(p),
        errors: Errors::default(),
    })
}

/// `POST /console/policies/{id}`.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let p = state.registry.get_policy(&id).await?;
    let again = |errors: Errors, f: FormData| {
        refused(FormPage {
            layout: Layout::new(&admin, p.name.clone(), "policies"),
            policy: Some(p.clone()),
            f,
            errors,
        })
    };
    let updated = match policy_patch(&form) {
        Ok(patch) => state.registry.update_policy(&admin.actor, &id, patch).await,
        Err(e) => Err(e),
    };
    match updated {
        Ok(_) => Ok(see_other(&format!("/console/policies/{id}"))),
        Err(e) => Ok(again(form_errors(e, policy_error_field)?, form)),
    }
}
