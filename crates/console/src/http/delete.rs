//! Deleting clients, access profiles, collections and policies: a confirmation page (a
//! plain form, so it works without JavaScript), then the POST.

use super::see_other;
use crate::ConsoleState;
use crate::error::ConsoleResult;
use crate::session::{Admin, Posted};
use crate::views::Layout;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use std::sync::Arc;

/// "Delete this?"
#[derive(Template, WebTemplate)]
#[template(path = "confirm_delete.html")]
pub(crate) struct ConfirmPage {
    layout: Layout,
    /// What it is ("client").
    kind: &'static str,
    /// Its name.
    name: String,
    /// What else goes with it.
    consequence: &'static str,
    /// Where the form posts.
    action: String,
    /// Where "Cancel" leads.
    cancel: String,
}

fn confirm(
    admin: &Admin,
    kind: &'static str,
    name: String,
    consequence: &'static str,
    path: String,
) -> ConfirmPage {
    ConfirmPage {
        layout: Layout::new(admin, format!("Delete {kind}"), ""),
        kind,
        name,
        consequence,
        action: format!("{path}/delete"),
        cancel: path,
    }
}

/// `GET /console/clients/{id}/delete`.
pub(crate) async fn client_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<ConfirmPage> {
    let c = state.registry.get_client(&admin.actor, &id).await?;
    Ok(confirm(
        &admin,
        "client",
        c.name,
        "Its access profiles and their API keys are deleted with it; their credentials stop working at once.",
        format!("/console/clients/{id}"),
    ))
}

/// `POST /console/clients/{id}/delete`.
pub(crate) async fn client(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    state
        .registry
        .delete_client(&posted.admin.actor, &id)
        .await?;
    Ok(see_other("/console/clients"))
}

/// `GET /console/profiles/{id}/delete`.
pub(crate) async fn profile_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<ConfirmPage> {
    let p = state.registry.get_profile(&admin.actor, &id).await?;
    Ok(confirm(
        &admin,
        "access profile",
        p.name,
        "Its secrets and API keys stop working at once.",
        format!("/console/profiles/{id}"),
    ))
}

/// `POST /console/profiles/{id}/delete`.
pub(crate) async fn profile(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let p = state.registry.get_profile(&posted.admin.actor, &id).await?;
    state
        .registry
        .delete_profile(&posted.admin.actor, &id)
        .await?;
    Ok(see_other(&format!("/console/clients/{}", p.client_id)))
}

/// `GET /console/collections/{id}/delete`.
pub(crate) async fn collection_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<ConfirmPage> {
    let c = state.registry.get_collection(&id).await?;
    Ok(confirm(
        &admin,
        "collection",
        c.name,
        "Profiles lose access to it at once.",
        format!("/console/collections/{id}"),
    ))
}

/// `POST /console/collections/{id}/delete`.
pub(crate) async fn collection(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    state
        .registry
        .delete_collection(&posted.admin.actor, &id)
        .await?;
    Ok(see_other("/console/collections"))
}

/// `GET /console/policies/{id}/delete`.
pub(crate) async fn policy_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<ConfirmPage> {
    let p = state.registry.get_policy(&id).await?;
    Ok(confirm(
        &admin,
        "policy",
        p.name,
        "A policy that profiles still use cannot be deleted.",
        format!("/console/policies/{id}"),
    ))
}

/// `POST /console/policies/{id}/delete`.
pub(crate) async fn policy(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    state
        .registry
        .delete_policy(&posted.admin.actor, &id)
        .await?;
    Ok(see_other("/console/policies"))
}
