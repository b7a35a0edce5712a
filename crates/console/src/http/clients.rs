//! Clients: list (name search, project filter, active toggle, paging), new, edit (with
//! logo), and a client's page with its access profiles and usage.

use super::usage::{RangeQuery, UsageView, usage};
use super::{form_errors, refused, see_other};
use crate::ConsoleState;
use crate::error::{ConsoleError, ConsoleResult};
use crate::forms::{FormData, client_patch, new_client};
use crate::session::{Admin, Posted};
use crate::views::{Errors, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gatehouse_registry::api::{Client, ListParams, Logo, Profile, Project};
use gatehouse_registry::usage::Scope;
use std::sync::Arc;

/// `?q=&project=&cursor=` of the client list.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ListQuery {
    q: Option<String>,
    project: Option<String>,
    cursor: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "clients.html")]
pub(crate) struct ListPage {
    layout: Layout,
    clients: Vec<Client>,
    q: String,
    project: String,
    projects: Vec<Project>,
    next: Option<String>,
}

impl ListPage {
    /// The link to the next page, keeping the filters.
    fn next_link(&self) -> String {
        let mut url = form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            url.append_pair("q", &self.q);
        }
        if !self.project.is_empty() {
            url.append_pair("project", &self.project);
        }
        if let Some(c) = &self.next {
            url.append_pair("cursor", c);
        }
        format!("/console/clients?{}", url.finish())
    }
}

/// Clients per page.
const PAGE: u64 = 50;

/// The projects this admin may place clients in.
async fn known_projects(state: &ConsoleState, admin: &Admin) -> ConsoleResult<Vec<Project>> {
    Ok(state.registry.projects_of(&admin.actor).await?)
}

/// A project's name from its id (the id itself when unknown).
pub(crate) fn project_name(projects: &[Project], id: &Option<String>) -> String {
    match id {
        None => "—".to_owned(),
        Some(id) => projects
            .iter()
            .find(|p| &p.id == id)
            .map(|p| p.name.clone())
            .unwrap_or_else(|| id.clone()),
    }
}

/// `GET /console/clients`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Query(q): Query<ListQuery>,
) -> ConsoleResult<ListPage> {
    let needle = q.q.clone().unwrap_or_default().trim().to_owned();
    let project = q.project.clone().unwrap_or_default();
    let page = state
        .registry
        .list_clients(
            &admin.actor,
            &ListParams {
                limit: Some(PAGE),
                cursor: q.cursor.clone().filter(|c| !c.is_empty()),
            },
            (!project.is_empty()).then_some(project.as_str()),
            (!needle.is_empty()).then_some(needle.as_str()),
        )
        .await?;
    Ok(ListPage {
        layout: Layout::new(&admin, "Clients", "clients"),
        clients: page.items,
        q: needle,
        project,
        projects: known_projects(&state, &admin).await?,
        next: page.next_cursor,
    })
}

#[derive(Template, WebTemplate)]
#[template(path = "client_form.html")]
pub(crate) struct FormPage {
    layout: Layout,
    /// `None` for a new client.
    client: Option<Client>,
    f: FormData,
    errors: Errors,
    projects: Vec<Project>,
}

/// `GET /console/clients/new`.
pub(crate) async fn new_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
) -> ConsoleResult<FormPage> {
    let mut f = FormData::default();
    f.set("active", "on");
    Ok(FormPage {
        layout: Layout::new(&admin, "New client", "clients"),
        client: None,
        f,
        errors: Errors::default(),
        projects: known_projects(&state, &admin).await?,
    })
}

fn client_form(c: &Client) -> FormData {
    let mut f = FormData::default();
    f.set("name", &c.name);
    f.set("description", &c.description);
    f.set("project", c.project.clone().unwrap_or_default());
    f.set(
        "contact_first_name",
        c.contact.first_name.clone().unwrap_or_default(),
    );
    f.set(
        "contact_last_name",
        c.contact.last_name.clone().unwrap_or_default(),
    );
    f.set("contact_email", c.contact.email.clone().unwrap_or_default());
    if c.active {
        f.set("active", "on");
    }
    f
}

/// `GET /console/clients/{id}/edit`.
pub(crate) async fn edit_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<FormPage> {
    let client = state.registry.get_client(&admin.actor, &id).await?;
    Ok(FormPage {
        layout: Layout::new(&admin, format!("Edit {}", client.name), "clients"),
        f: client_form(&client),
        client: Some(client),
        errors: Errors::default(),
        projects: known_projects(&state, &admin).await?,
    })
}

/// A chosen logo, checked before anything is written (so a bad file changes nothing).
fn chosen_logo(file: Option<Vec<u8>>) -> Result<Option<Vec<u8>>, Errors> {
    match file {
        None => Ok(None),
        Some(bytes) => Logo::parse(bytes)
            .map(|l| Some(l.bytes))
            .map_err(|e| Errors(vec![e])),
    }
}

/// `POST /console/clients`: create, then store the logo if one was chosen.
pub(crate) async fn create(
    State(state): State<Arc<ConsoleState>>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, file } = posted;
    let again = |errors: Errors, f: FormData, projects| {
        refused(FormPage {
            layout: Layout::new(&admin, "New client", "clients"),
            client: None,
            f,
            errors,
            projects,
        })
    };
    let logo = match chosen_logo(file) {
        Ok(l) => l,
        Err(errors) => return Ok(again(errors, form, known_projects(&state, &admin).await?)),
    };
    let created = match new_client(&form) {
        Ok(command) => state.registry.create_client(&admin.actor, command).await,
        Err(e) => Err(e),
    };
    let client = match created {
        Ok(c) => c,
        Err(e) => {
            let errors = form_errors(e, contact_field)?;
            return Ok(again(errors, form, known_projects(&state, &admin).await?));
        }
    };
    if let Some(bytes) = logo {
        state
            .registry
            .put_logo(&admin.actor, &client.id, bytes)
            .await?;
    }
    Ok(see_other(&format!("/console/clients/{}", client.id)))
}

fn contact_field(f: String) -> String {
    f.replacen("contact.", "contact_", 1)
}

/// `POST /console/clients/{id}`: save the edit form.
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, file } = posted;
    let client = state.registry.get_client(&admin.actor, &id).await?;
    let title = format!("Edit {}", client.name);
    let again = |errors: Errors, f: FormData, projects| {
        refused(FormPage {
            layout: Layout::new(&admin, title.clone(), "clients"),
            client: Some(client.clone()),
            f,
            errors,
            projects,
        })
    };
    let logo = match chosen_logo(file) {
        Ok(l) => l,
        Err(errors) => return Ok(again(errors, form, known_projects(&state, &admin).await?)),
    };
    let updated = match client_patch(&form) {
        Ok(patch) => state.registry.update_client(&admin.actor, &id, patch).await,
        Err(e) => Err(e),
    };
    if let Err(e) = updated {
        let errors = form_errors(e, contact_field)?;
        return Ok(again(errors, form, known_projects(&state, &admin).await?));
    }
    if let Some(bytes) = logo {
        state.registry.put_logo(&admin.actor, &id, bytes).await?;
    }
    Ok(see_other(&format!("/console/clients/{id}")))
}

/// `POST /console/clients/{id}/active`: switch a client on or off (`active` = the new
/// state), then back to where the form was (`back`).
pub(crate) async fn toggle(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let active = posted.form.val("active") == "true";
    state
        .registry
        .update_client(
            &posted.admin.actor,
            &id,
            gatehouse_registry::command::ClientPatch {
                active: Some(active),
                ..Default::default()
            },
        )
        .await?;
    Ok(see_other(&back(
        &posted.form,
        &format!("/console/clients/{id}"),
    )))
}

/// A same-console return path from a form's `back` field, or `default`.
pub(crate) fn back(form: &FormData, default: &str) -> String {
    let b = form.val("back");
    if b.starts_with("/console/") && !b.starts_with("//") && !b.contains('\\') {
        b.to_owned()
    } else {
        default.to_owned()
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "client.html")]
pub(crate) struct ShowPage {
    layout: Layout,
    client: Client,
    /// The client's project's name.
    project: String,
    profiles: Vec<Profile>,
    usage: UsageView,
}

/// `GET /console/clients/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
    Query(range): Query<RangeQuery>,
) -> ConsoleResult<ShowPage> {
    let client = state.registry.get_client(&admin.actor, &id).await?;
    let profiles = state
        .registry
        .list_profiles(
            &admin.actor,
            &id,
            &ListParams {
                limit: Some(1000),
                cursor: None,
            },
        )
        .await?
        .items;
    let usage = usage(
        &state.registry,
        &admin.actor,
        Scope::Client(&id),
        range.range.as_deref(),
    )
    .await?;
    let projects = known_projects(&state, &admin).await?;
    Ok(ShowPage {
        layout: Layout::new(&admin, client.name.clone(), "clients"),
        project: project_name(&projects, &client.project),
        client,
        profiles,
        usage,
    })
}

/// `GET /console/clients/{id}/logo`.
pub(crate) async fn logo(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<Response> {
    let logo = state
        .registry
        .get_logo(&admin.actor, &id)
        .await
        .map_err(ConsoleError::from)?;
    let mut response = logo.bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(logo.content_type),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}
