//! Projects: list, create, edit, delete. A client's project decides which limited admins
//! see it.

use super::collections::CursorQuery;
use super::{form_errors, refused, see_other};
use crate::ConsoleState;
use crate::error::ConsoleResult;
use crate::forms::{FormData, project_command, project_patch};
use crate::session::{Admin, Posted};
use crate::views::{Errors, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use gatehouse_registry::api::{ListParams, Project};
use std::sync::Arc;

#[derive(Template, WebTemplate)]
#[template(path = "projects.html")]
pub(crate) struct ListPage {
    layout: Layout,
    projects: Vec<Project>,
    next: Option<String>,
}

/// `GET /console/projects`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Query(q): Query<CursorQuery>,
) -> ConsoleResult<ListPage> {
    let page = state
        .registry
        .list_projects(&ListParams {
            limit: Some(50),
            cursor: q.cursor.filter(|c| !c.is_empty()),
        })
        .await?;
    Ok(ListPage {
        layout: Layout::new(&admin, "Projects", "projects"),
        projects: page.items,
        next: page.next_cursor,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "project_form.html")]
pub(crate) struct FormPage {
    layout: Layout,
    project: Option<Project>,
    f: FormData,
    errors: Errors,
}

/// `GET /console/projects/new`.
pub(crate) async fn new_page(admin: Admin) -> FormPage {
    FormPage {
        layout: Layout::new(&admin, "New project", "projects"),
        project: None,
        f: FormData::default(),
        errors: Errors::default(),
    }
}

/// `POST /console/projects`.
pub(crate) async fn create(
    State(state): State<Arc<ConsoleState>>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let again = |errors: Errors, f: FormData| {
        refused(FormPage {
            layout: Layout::new(&admin, "New project", "projects"),
            project: None,
            f,
            errors,
        })
    };
    let command = match project_command(&form) {
        Ok(c) => c,
        Err(e) => return Ok(again(Errors(e), form)),
    };
    match state.registry.create_project(&admin.actor, command).await {
        Ok(p) => Ok(see_other(&format!("/console/projects/{}", p.id))),
        Err(e) => Ok(again(form_errors(e, |f| f)?, form)),
    }
}

/// `GET /console/projects/{id}`: the project, editable.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<FormPage> {
    let p = state.registry.get_project(&id).await?;
    let mut f = FormData::default();
    f.set("name", &p.name);
    f.set("description", &p.description);
    Ok(FormPage {
        layout: Layout::new(&admin, p.name.clone(), "projects"),
        project: Some(p),
        f,
        errors: Errors::default(),
    })
}

/// `POST /console/projects/{id}`.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let p = state.registry.get_project(&id).await?;
    let again = |errors: Errors, f: FormData| {
        refused(FormPage {
            layout: Layout::new(&admin, p.name.clone(), "projects"),
            project: Some(p.clone()),
            f,
            errors,
        })
    };
    let patch = match project_patch(&form) {
        Ok(c) => c,
        Err(e) => return Ok(again(Errors(e), form)),
    };
    match state
        .registry
        .update_project(&admin.actor, &id, patch)
        .await
    {
        Ok(_) => Ok(see_other(&format!("/console/projects/{id}"))),
        Err(e) => Ok(again(form_errors(e, |f| f)?, form)),
    }
}

/// `POST /console/projects/{id}/delete`.
pub(crate) async fn delete(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let admin = posted.admin;
    if let Err(e) = state.registry.delete_project(&admin.actor, &id).await {
        // A project that clients still use is a conflict: say so on its page.
        let p = state.registry.get_project(&id).await?;
        let mut f = FormData::default();
        f.set("name", &p.name);
        f.set("description", &p.description);
        return Ok(refused(FormPage {
            layout: Layout::new(&admin, p.name.clone(), "projects"),
            project: Some(p),
            f,
            errors: form_errors(e, |f| f)?,
        }));
    }
    Ok(see_other("/console/projects"))
}
