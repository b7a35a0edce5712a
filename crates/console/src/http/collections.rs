//! API collections: list, create (the introspection secret shown once), edit with scope
//! rows, and the introspection secret's refresh.

use super::{SecretPage, form_errors, refused, see_other};
use crate::ConsoleState;
use crate::error::{ConsoleError, ConsoleResult};
use crate::forms::{FormData, collection_patch, grace_seconds, new_collection};
use crate::session::{Admin, Posted};
use crate::views::{Errors, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use gatehouse_registry::api::{Collection, ListParams};
use std::sync::Arc;

/// `?cursor=` of lists.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct CursorQuery {
    pub cursor: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "collections.html")]
pub(crate) struct ListPage {
    layout: Layout,
    collections: Vec<Collection>,
    next: Option<String>,
}

/// `GET /console/collections`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Query(q): Query<CursorQuery>,
) -> ConsoleResult<ListPage> {
    let page = state
        .registry
        .list_collections(&ListParams {
            limit: Some(50),
            cursor: q.cursor.filter(|c| !c.is_empty()),
        })
        .await?;
    Ok(ListPage {
        layout: Layout::new(&admin, "Collections", "collections"),
        collections: page.items,
        next: page.next_cursor,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "collection_form.html")]
pub(crate) struct FormPage {
    layout: Layout,
    collection: Option<Collection>,
    f: FormData,
    errors: Errors,
}

impl FormPage {
    /// The scope rows to show: those given, plus three blank ones.
    fn scope_rows(&self) -> Vec<(String, String)> {
        let names = self.f.all("scope_name");
        let descriptions = self.f.all("scope_description");
        let mut rows: Vec<(String, String)> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.trim().is_empty())
            .map(|(i, n)| {
                (
                    (*n).to_owned(),
                    descriptions.get(i).copied().unwrap_or("").to_owned(),
                )
            })
            .collect();
        rows.extend(std::iter::repeat_n((String::new(), String::new()), 3));
        rows
    }
}

/// `GET /console/collections/new`.
pub(crate) async fn new_page(admin: Admin) -> FormPage {
    FormPage {
        layout: Layout::new(&admin, "New collection", "collections"),
        collection: None,
        f: FormData::default(),
        errors: Errors::default(),
    }
}

fn collection_form(c: &Collection) -> FormData {
    let mut f = FormData::default();
    f.set("name", &c.name);
    f.set("description", &c.description);
    f.set("audience", &c.audience);
    f.set(
        "integration_url",
        c.integration_url.clone().unwrap_or_default(),
    );
    f.set(
        "documentation_url",
        c.documentation_url.clone().unwrap_or_default(),
    );
    for s in &c.scopes {
        f.push("scope_name", &s.name);
        f.push("scope_description", &s.description);
    }
    f
}

/// `POST /console/collections`: create; the answer is the one-time introspection secret.
pub(crate) async fn create(
    State(state): State<Arc<ConsoleState>>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let again = |errors: Errors, f: FormData| {
        refused(FormPage {
            layout: Layout::new(&admin, "New collection", "collections"),
            collection: None,
            f,
            errors,
        })
    };
    let result = match new_collection(&form) {
        Ok(command) => {
            state
                .registry
                .create_collection(&admin.actor, command)
                .await
        }
        Err(e) => Err(e),
    };
    let created = match result {
        Ok(c) => c,
        Err(e) => return Ok(again(form_errors(e, |f| f)?, form)),
    };
    let c = created.collection;
    Ok(SecretPage::new(
        &admin,
        "Introspection client secret",
        created.introspection_client_secret,
        format!("/console/collections/{}", c.id),
    )
    .id("Introspection client ID", &c.introspection_client_id)
    .respond())
}

/// `GET /console/collections/{id}`: the collection, editable.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<FormPage> {
    let c = state.registry.get_collection(&id).await?;
    Ok(FormPage {
        layout: Layout::new(&admin, c.name.clone(), "collections"),
        f: collection_form(&c),
        collection: Some(c),
        errors: Errors::default(),
    })
}

/// `POST /console/collections/{id}`: save the edit form.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let c = state.registry.get_collection(&id).await?;
    let again = |errors: Errors, f: FormData| {
        refused(FormPage {
            layout: Layout::new(&admin, c.name.clone(), "collections"),
            collection: Some(c.clone()),
            f,
            errors,
        })
    };
    let updated = match collection_patch(&form) {
        Ok(patch) => {
            state
                .registry
                .update_collection(&admin.actor, &id, patch)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = updated {
        return Ok(again(form_errors(e, |f| f)?, form));
    }
    Ok(see_other(&format!("/console/collections/{id}")))
}

/// `POST /console/collections/{id}/secret`: a new introspection secret, shown once.
pub(crate) async fn refresh_secret(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let grace = grace_seconds(&form).map_err(ConsoleError::Invalid)?;
    let issued = state
        .registry
        .refresh_collection_secret(&admin.actor, &id, grace)
        .await?;
    Ok(SecretPage::new(
        &admin,
        "Introspection client secret",
        issued.introspection_client_secret,
        format!("/console/collections/{id}"),
    )
    .id("Introspection client ID", &issued.introspection_client_id)
    .previous(issued.previous_secret_expires_at)
    .respond())
}
