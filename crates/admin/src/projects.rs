//! `/admin/v1/projects`: the wire shapes of projects and their parsing into the registry's
//! typed commands ([`NewProject`], [`ProjectPatch`]), here at the edge.

use crate::error::{ApiError, ErrorBody};
use crate::state::AdminState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::{Extension, Json};
use gatehouse_registry::api::{Page, Project};
use gatehouse_registry::command::{NewProject, ProjectPatch};
use gatehouse_registry::types::{Description, FieldError, Name};
use gatehouse_registry::{Actor, RegistryError};
use serde::Deserialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// Create a project.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectInput {
    /// Display name, unique.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
}

/// A JSON Merge Patch (RFC 7396) of a project: members given replace the stored ones.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectPatchInput {
    /// New name (null is refused: a project always has one).
    #[serde(default, deserialize_with = "crate::wire::present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// New description (null clears it).
    #[serde(default, deserialize_with = "crate::wire::present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

impl ProjectInput {
    /// The typed command, or every field error at once.
    pub fn command(self) -> Result<NewProject, RegistryError> {
        let mut errors = Vec::new();
        let name = Name::parse(&self.name)
            .map_err(|e| errors.push(e.at("name")))
            .ok();
        let description = Description::parse(&self.description)
            .map_err(|e| errors.push(e.at("description")))
            .ok();
        match (name, description) {
            (Some(name), Some(description)) if errors.is_empty() => {
                Ok(NewProject { name, description })
            }
            _ => Err(RegistryError::Validation(errors)),
        }
    }
}

impl ProjectPatchInput {
    /// The typed command, or every field error at once.
    pub fn command(self) -> Result<ProjectPatch, RegistryError> {
        let mut errors = Vec::new();
        let name = match self.name {
            None => None,
            Some(None) => {
                errors.push(FieldError::new(
                    "name",
                    "required",
                    "a project always has a name",
                ));
                None
            }
            Some(Some(n)) => Name::parse(&n).map_err(|e| errors.push(e.at("name"))).ok(),
        };
        let description = match self.description {
            None => None,
            Some(d) => Description::parse(d.as_deref().unwrap_or(""))
                .map_err(|e| errors.push(e.at("description")))
                .ok(),
        };
        if errors.is_empty() {
            Ok(ProjectPatch { name, description })
        } else {
            Err(RegistryError::Validation(errors))
        }
    }
}

fn body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> Result<T, ApiError> {
    Ok(gatehouse_registry::parse_input(crate::http::json_body(
        headers, body, false,
    )?)?)
}

#[utoipa::path(post, path = "/admin/v1/projects", tag = "projects", request_body = ProjectInput,
    responses((status = 201, description = "Created", body = Project), (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 403, description = "Limited to projects, or read-only", body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Validation failed", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn create_project(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let command = body::<ProjectInput>(&headers, &bytes)?.command()?;
    Ok(crate::http::created(
        s.registry.create_project(&actor, command).await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/projects", tag = "projects", params(crate::http::ListQuery),
    responses((status = 200, description = "A page of projects", body = Page<Project>)), security(("bearer" = [])))]
pub(crate) async fn list_projects(
    State(s): State<Arc<AdminState>>,
    uri: Uri,
) -> Result<Json<Page<Project>>, ApiError> {
    let (params, _) = crate::http::list_query(&uri)?;
    Ok(Json(s.registry.list_projects(&params).await?))
}

#[utoipa::path(get, path = "/admin/v1/projects/{id}", tag = "projects", params(("id" = String, Path)),
    responses((status = 200, description = "The project", body = Project), (status = 404, description = "No such project", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn get_project(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> Result<Json<Project>, ApiError> {
    Ok(Json(s.registry.get_project(&id).await?))
}

#[utoipa::path(patch, path = "/admin/v1/projects/{id}", tag = "projects", params(("id" = String, Path)),
    request_body(content = ProjectPatchInput, content_type = "application/merge-patch+json"),
    responses((status = 200, description = "The changed project", body = Project), (status = 403, description = "Limited to projects, or read-only", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody), (status = 409, description = "Name taken", body = ErrorBody),
        (status = 422, description = "Validation failed", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn update_project(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Project>, ApiError> {
    let command = body::<ProjectPatchInput>(&headers, &bytes)?.command()?;
    Ok(Json(s.registry.update_project(&actor, &id, command).await?))
}

#[utoipa::path(delete, path = "/admin/v1/projects/{id}", tag = "projects", params(("id" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 403, description = "Limited to projects, or read-only", body = ErrorBody),
        (status = 404, description = "No such project", body = ErrorBody), (status = 409, description = "Clients still belong to it", body = ErrorBody)), security(("bearer" = [])))]
pub(crate) async fn delete_project(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.registry.delete_project(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
