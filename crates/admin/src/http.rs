//! Admin API handlers: parse the body or query, call the registry, map the error.

use crate::auth::require_admin;
use crate::error::{ApiError, ErrorBody};
use crate::state::AdminState;
use crate::wire::{
    ApiKeyInput, ApiKeyPatchInput, ClientInput, ClientPatchInput, CollectionInput,
    CollectionPatchInput, PolicyInput, PolicyPatchInput, ProfileInput, ProfilePatchInput,
    RefreshSecretInput,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json};
use gatehouse_registry::Actor;
use gatehouse_registry::api::{
    ApiKey, ApiKeyIssued, AuditEvent, AuditFilter, Client, Collection, CollectionCreated,
    CollectionSecretIssued, ListParams, Page, Policy, Profile, ProfileCreated, ProfileSecretIssued,
    UsageQuery, UsageReport,
};
use gatehouse_registry::usage::Scope;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi};

type ApiResult<T> = Result<T, ApiError>;

/// Query parameters of list calls.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size (default 50, max 1000).
    pub limit: Option<u64>,
    /// Cursor from the previous page.
    pub cursor: Option<String>,
    /// Only clients of this project (client lists only).
    pub project: Option<String>,
    /// Only clients whose name contains this text, ignoring case (client lists only).
    pub q: Option<String>,
}

pub(crate) fn list_query(uri: &Uri) -> ApiResult<(ListParams, ListQuery)> {
    let Query(q) = Query::<ListQuery>::try_from_uri(uri).map_err(|_| {
        ApiError::Malformed("bad query string: limit must be a whole number".to_owned())
    })?;
    Ok((
        ListParams {
            limit: q.limit,
            cursor: q.cursor.clone(),
        },
        q,
    ))
}

/// Read a JSON body: the media type must be JSON and the text must parse. An empty body is
/// accepted where `optional` (then `{}`).
pub(crate) fn json_body(
    headers: &HeaderMap,
    body: &Bytes,
    optional: bool,
) -> ApiResult<serde_json::Value> {
    if body.is_empty() && optional {
        return Ok(serde_json::json!({}));
    }
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim().to_ascii_lowercase();
            m == "application/json" || m == "application/merge-patch+json" || m.ends_with("+json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::Malformed(
            "send a JSON body with Content-Type: application/json".to_owned(),
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Malformed(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// A merge patch body: JSON, and an object (RFC 7396 allows any value, but a resource is
/// an object and anything else would replace it whole).
pub(crate) fn merge_patch_body(headers: &HeaderMap, body: &Bytes) -> ApiResult<serde_json::Value> {
    let value = json_body(headers, body, false)?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(ApiError::Registry(
            gatehouse_registry::RegistryError::invalid(
                "body",
                "invalid_type",
                "a merge patch must be a JSON object",
            ),
        ))
    }
}

pub(crate) fn created<T: serde::Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

/// The admin API router (authorization applied to every `/admin/v1` call but the OpenAPI
/// document) plus Swagger UI at `/admin/docs`.
pub fn router(state: Arc<AdminState>) -> Router {
    let token_url = state.registry.settings().endpoint("/oauth/token");
    let api = Router::new()
        .route(
            "/admin/v1/collections",
            post(create_collection).get(list_collections),
        )
        .route(
            "/admin/v1/collections/{id}",
            get(get_collection)
                .patch(update_collection)
                .delete(delete_collection),
        )
        .route(
            "/admin/v1/collections/{id}/secret",
            post(refresh_collection_secret),
        )
        .route(
            "/admin/v1/projects",
            post(crate::projects::create_project).get(crate::projects::list_projects),
        )
        .route(
            "/admin/v1/projects/{id}",
            get(crate::projects::get_project)
                .patch(crate::projects::update_project)
                .delete(crate::projects::delete_project),
        )
        .route("/admin/v1/clients", post(create_client).get(list_clients))
        .route(
            "/admin/v1/clients/{id}",
            get(get_client).patch(update_client).delete(delete_client),
        )
        .route(
            "/admin/v1/clients/{id}/logo",
            get(get_logo).put(put_logo).delete(delete_logo),
        )
        .route(
            "/admin/v1/clients/{id}/access-profiles",
            post(create_profile).get(list_profiles),
        )
        .route(
            "/admin/v1/access-profiles/{id}",
            get(get_profile)
                .patch(update_profile)
                .delete(delete_profile),
        )
        .route(
            "/admin/v1/access-profiles/{id}/secret",
            post(refresh_profile_secret),
        )
        .route(
            "/admin/v1/access-profiles/{id}/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route(
            "/admin/v1/api-keys/{id}",
            get(get_api_key)
                .patch(update_api_key)
                .delete(delete_api_key),
        )
        .route("/admin/v1/api-keys/{id}/refresh", post(refresh_api_key))
        .route("/admin/v1/audit-events", get(list_audit_events))
        .route("/admin/v1/policies", post(create_policy).get(list_policies))
        .route(
            "/admin/v1/policies/{id}",
            get(get_policy).patch(update_policy).delete(delete_policy),
        )
        .route("/admin/v1/keys", get(list_keys))
        .route("/admin/v1/keys/rotate", post(rotate_keys))
        .route("/admin/v1/access-profiles/{id}/usage", get(profile_usage))
        .route("/admin/v1/clients/{id}/usage", get(client_usage))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ))
        .with_state(state);
    let openapi = document(&token_url);
    let swagger: Router = utoipa_swagger_ui::SwaggerUi::new("/admin/docs")
        .url("/admin/v1/openapi.json", openapi)
        .into();
    api.merge(swagger)
}

#[utoipa::path(post, path = "/admin/v1/collections", tag = "collections", request_body = CollectionInput,
    responses((status = 201, body = CollectionCreated), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_collection(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let command =
        crate::wire::parse::<CollectionInput>(json_body(&headers, &body, false)?)?.command()?;
    Ok(created(
        s.registry.create_collection(&actor, command).await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/collections", tag = "collections", params(ListQuery),
    responses((status = 200, body = Page<Collection>)), security(("bearer" = [])))]
async fn list_collections(
    State(s): State<Arc<AdminState>>,
    uri: Uri,
) -> ApiResult<Json<Page<Collection>>> {
    let (params, _) = list_query(&uri)?;
    Ok(Json(s.registry.list_collections(&params).await?))
}

#[utoipa::path(get, path = "/admin/v1/collections/{id}", tag = "collections", params(("id" = String, Path)),
    responses((status = 200, body = Collection), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_collection(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Collection>> {
    Ok(Json(s.registry.get_collection(&id).await?))
}

#[utoipa::path(patch, path = "/admin/v1/collections/{id}", tag = "collections", params(("id" = String, Path)),
    request_body(content = CollectionPatchInput, content_type = "application/merge-patch+json", description = "JSON Merge Patch (RFC 7396) of the collection; `scopes` replaces the list"),
    responses((status = 200, body = Collection), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_collection(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Collection>> {
    let command = crate::wire::parse::<CollectionPatchInput>(merge_patch_body(&headers, &body)?)?
        .command()?;
    Ok(Json(
        s.registry.update_collection(&actor, &id, command).await?,
    ))
}

#[utoipa::path(delete, path = "/admin/v1/collections/{id}", tag = "collections", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_collection(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.registry.delete_collection(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/collections/{id}/secret", tag = "collections", params(("id" = String, Path)), request_body = RefreshSecretInput,
    responses((status = 200, body = CollectionSecretIssued), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn refresh_collection_secret(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<CollectionSecretIssued>> {
    let input: RefreshSecretInput =
        gatehouse_registry::parse_input(json_body(&headers, &body, true)?)?;
    Ok(Json(
        s.registry
            .refresh_collection_secret(&actor, &id, input.grace_seconds)
            .await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/clients", tag = "clients", request_body = ClientInput,
    responses((status = 201, body = Client), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_client(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let command =
        crate::wire::parse::<ClientInput>(json_body(&headers, &body, false)?)?.command()?;
    Ok(created(s.registry.create_client(&actor, command).await?))
}

#[utoipa::path(get, path = "/admin/v1/clients", tag = "clients", params(ListQuery),
    responses((status = 200, body = Page<Client>)), security(("bearer" = [])))]
async fn list_clients(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> ApiResult<Json<Page<Client>>> {
    let (params, q) = list_query(&uri)?;
    Ok(Json(
        s.registry
            .list_clients(&actor, &params, q.project.as_deref(), q.q.as_deref())
            .await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/clients/{id}", tag = "clients", params(("id" = String, Path)),
    responses((status = 200, body = Client), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_client(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Json<Client>> {
    Ok(Json(s.registry.get_client(&actor, &id).await?))
}

#[utoipa::path(patch, path = "/admin/v1/clients/{id}", tag = "clients", params(("id" = String, Path)),
    request_body(content = ClientPatchInput, content_type = "application/merge-patch+json", description = "JSON Merge Patch (RFC 7396) of the client"),
    responses((status = 200, body = Client), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_client(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Client>> {
    let command =
        crate::wire::parse::<ClientPatchInput>(merge_patch_body(&headers, &body)?)?.command()?;
    Ok(Json(s.registry.update_client(&actor, &id, command).await?))
}

#[utoipa::path(delete, path = "/admin/v1/clients/{id}", tag = "clients", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_client(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.registry.delete_client(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/admin/v1/clients/{id}/logo", tag = "clients", params(("id" = String, Path)),
    request_body(content = Vec<u8>, content_type = "image/png", description = "PNG or JPEG, at most 256 KiB; the type is judged by content"),
    responses((status = 200, body = Client), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn put_logo(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Client>> {
    Ok(Json(s.registry.put_logo(&actor, &id, body.to_vec()).await?))
}

#[utoipa::path(get, path = "/admin/v1/clients/{id}/logo", tag = "clients", params(("id" = String, Path)),
    responses((status = 200, content_type = "image/png"), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_logo(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let logo = s.registry.get_logo(&actor, &id).await?;
    let mut response = logo.bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(logo.content_type),
    );
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

#[utoipa::path(delete, path = "/admin/v1/clients/{id}/logo", tag = "clients", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_logo(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.registry.delete_logo(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/clients/{id}/access-profiles", tag = "access profiles", params(("id" = String, Path, description = "client id")),
    request_body = ProfileInput,
    responses((status = 201, body = ProfileCreated), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_profile(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let command =
        crate::wire::parse::<ProfileInput>(json_body(&headers, &body, false)?)?.command()?;
    Ok(created(
        s.registry.create_profile(&actor, &id, command).await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/clients/{id}/access-profiles", tag = "access profiles", params(("id" = String, Path, description = "client id"), ListQuery),
    responses((status = 200, body = Page<Profile>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn list_profiles(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Page<Profile>>> {
    let (params, _) = list_query(&uri)?;
    Ok(Json(s.registry.list_profiles(&actor, &id, &params).await?))
}

#[utoipa::path(get, path = "/admin/v1/access-profiles/{id}", tag = "access profiles", params(("id" = String, Path)),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_profile(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Json<Profile>> {
    Ok(Json(s.registry.get_profile(&actor, &id).await?))
}

#[utoipa::path(patch, path = "/admin/v1/access-profiles/{id}", tag = "access profiles", params(("id" = String, Path)),
    request_body(content = ProfilePatchInput, content_type = "application/merge-patch+json", description = "JSON Merge Patch (RFC 7396) of the profile; auth_type and jwt_method cannot change"),
    responses((status = 200, body = Profile), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_profile(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Profile>> {
    let command =
        crate::wire::parse::<ProfilePatchInput>(merge_patch_body(&headers, &body)?)?.command()?;
    Ok(Json(s.registry.update_profile(&actor, &id, command).await?))
}

#[utoipa::path(delete, path = "/admin/v1/access-profiles/{id}", tag = "access profiles", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_profile(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.registry.delete_profile(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/access-profiles/{id}/secret", tag = "access profiles", params(("id" = String, Path)), request_body = RefreshSecretInput,
    responses((status = 200, body = ProfileSecretIssued), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn refresh_profile_secret(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ProfileSecretIssued>> {
    let input: RefreshSecretInput =
        gatehouse_registry::parse_input(json_body(&headers, &body, true)?)?;
    Ok(Json(
        s.registry
            .refresh_profile_secret(&actor, &id, input.grace_seconds)
            .await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/access-profiles/{id}/api-keys", tag = "api keys", params(("id" = String, Path, description = "profile id")),
    request_body = ApiKeyInput,
    responses((status = 201, body = ApiKeyIssued), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_api_key(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let command =
        crate::wire::parse::<ApiKeyInput>(json_body(&headers, &body, false)?)?.command()?;
    Ok(created(
        s.registry.create_api_key(&actor, &id, command).await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/access-profiles/{id}/api-keys", tag = "api keys", params(("id" = String, Path, description = "profile id"), ListQuery),
    responses((status = 200, body = Page<ApiKey>), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn list_api_keys(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<Page<ApiKey>>> {
    let (params, _) = list_query(&uri)?;
    Ok(Json(s.registry.list_api_keys(&actor, &id, &params).await?))
}

#[utoipa::path(get, path = "/admin/v1/api-keys/{id}", tag = "api keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_api_key(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(s.registry.get_api_key(&actor, &id).await?))
}

#[utoipa::path(patch, path = "/admin/v1/api-keys/{id}", tag = "api keys", params(("id" = String, Path)),
    request_body(content = ApiKeyPatchInput, content_type = "application/merge-patch+json", description = "JSON Merge Patch (RFC 7396) of name, active, expires_at, ip_rules"),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_api_key(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ApiKey>> {
    let command =
        crate::wire::parse::<ApiKeyPatchInput>(merge_patch_body(&headers, &body)?)?.command()?;
    Ok(Json(s.registry.update_api_key(&actor, &id, command).await?))
}

#[utoipa::path(delete, path = "/admin/v1/api-keys/{id}", tag = "api keys", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn delete_api_key(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.registry.delete_api_key(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/admin/v1/api-keys/{id}/refresh", tag = "api keys", params(("id" = String, Path)), request_body = RefreshSecretInput,
    responses((status = 200, body = ApiKeyIssued), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn refresh_api_key(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ApiKeyIssued>> {
    let input: RefreshSecretInput =
        gatehouse_registry::parse_input(json_body(&headers, &body, true)?)?;
    Ok(Json(
        s.registry
            .refresh_api_key(&actor, &id, input.grace_seconds)
            .await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/audit-events", tag = "audit", params(ListQuery, AuditFilter),
    responses((status = 200, body = Page<AuditEvent>), (status = 400, body = ErrorBody)), security(("bearer" = [])))]
async fn list_audit_events(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    uri: Uri,
) -> ApiResult<Json<Page<AuditEvent>>> {
    let (params, _) = list_query(&uri)?;
    let Query(filter) = Query::<AuditFilter>::try_from_uri(&uri).map_err(|_| {
        ApiError::Malformed("bad query string: from and to are RFC 3339 times".to_owned())
    })?;
    Ok(Json(
        s.registry
            .list_audit_events(&actor, &params, &filter)
            .await?,
    ))
}

#[utoipa::path(post, path = "/admin/v1/policies", tag = "policies", request_body = PolicyInput,
    responses((status = 201, body = Policy), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn create_policy(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let command =
        crate::wire::parse::<PolicyInput>(json_body(&headers, &body, false)?)?.command()?;
    Ok(created(s.registry.create_policy(&actor, command).await?))
}

#[utoipa::path(get, path = "/admin/v1/policies", tag = "policies", params(ListQuery),
    responses((status = 200, body = Page<Policy>)), security(("bearer" = [])))]
async fn list_policies(
    State(s): State<Arc<AdminState>>,
    uri: Uri,
) -> ApiResult<Json<Page<Policy>>> {
    let (params, _) = list_query(&uri)?;
    Ok(Json(s.registry.list_policies(&params).await?))
}

#[utoipa::path(get, path = "/admin/v1/policies/{id}", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = Policy), (status = 404, body = ErrorBody)), security(("bearer" = [])))]
async fn get_policy(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
) -> ApiResult<Json<Policy>> {
    Ok(Json(s.registry.get_policy(&id).await?))
}

#[utoipa::path(patch, path = "/admin/v1/policies/{id}", tag = "policies", params(("id" = String, Path)),
    request_body(content = PolicyPatchInput, content_type = "application/merge-patch+json", description = "JSON Merge Patch (RFC 7396) of the policy; `null` removes the rate_limit or quota"),
    responses((status = 200, body = Policy), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn update_policy(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<Policy>> {
    let command =
        crate::wire::parse::<PolicyPatchInput>(merge_patch_body(&headers, &body)?)?.command()?;
    Ok(Json(s.registry.update_policy(&actor, &id, command).await?))
}

#[utoipa::path(delete, path = "/admin/v1/policies/{id}", tag = "policies", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "profiles still use it")), security(("bearer" = [])))]
async fn delete_policy(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    s.registry.delete_policy(&actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn usage_query(uri: &Uri) -> ApiResult<UsageQuery> {
    Query::<UsageQuery>::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|_| {
            ApiError::Malformed(
                "bad query string: from and to are RFC 3339 times (e.g. 2026-11-22T00:00:00Z), granularity is hour or day"
                    .to_owned(),
            )
        })
}

#[utoipa::path(get, path = "/admin/v1/access-profiles/{id}/usage", tag = "usage", params(("id" = String, Path), UsageQuery),
    responses((status = 200, body = UsageReport), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn profile_usage(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<UsageReport>> {
    let q = usage_query(&uri)?;
    Ok(Json(
        s.registry
            .usage_report(&actor, Scope::Profile(&id), &q)
            .await?,
    ))
}

#[utoipa::path(get, path = "/admin/v1/clients/{id}/usage", tag = "usage", params(("id" = String, Path), UsageQuery),
    responses((status = 200, body = UsageReport), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
async fn client_usage(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    Path(id): Path<String>,
    uri: Uri,
) -> ApiResult<Json<UsageReport>> {
    let q = usage_query(&uri)?;
    Ok(Json(
        s.registry
            .usage_report(&actor, Scope::Client(&id), &q)
            .await?,
    ))
}

/// A page of signing keys.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct KeyList {
    /// Newest first.
    pub items: Vec<gatehouse_jwks::KeyView>,
}

/// Body of a rotation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    /// Rotate even though the next key has been published for less than
    /// `GATEHOUSE_KEY_PUBLISH_AHEAD` (verifiers caching the JWKS may briefly reject new tokens).
    #[serde(default)]
    pub force: bool,
}

#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList)), security(("bearer" = [])))]
async fn list_keys(State(s): State<Arc<AdminState>>) -> ApiResult<Json<KeyList>> {
    Ok(Json(KeyList {
        items: s.keys.list().await?,
    }))
}

#[utoipa::path(post, path = "/admin/v1/keys/rotate", tag = "keys", request_body = RotateInput,
    responses((status = 200, body = gatehouse_jwks::Rotation), (status = 409, body = ErrorBody, description = "the next key is not yet published long enough")), security(("bearer" = [])))]
async fn rotate_keys(
    State(s): State<Arc<AdminState>>,
    Extension(actor): Extension<Actor>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<gatehouse_jwks::Rotation>> {
    actor.require_unlimited_write()?;
    let input: RotateInput = gatehouse_registry::parse_input(json_body(&headers, &body, true)?)?;
    Ok(Json(
        s.keys
            .rotate(actor.id(), s.key_publish_ahead, input.force)
            .await?,
    ))
}

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The admin API's OpenAPI 3.1 document: generated from the handlers, then completed (every
/// answer, the OAuth 2.0 client-credentials scheme with this server's `token_url`).
pub fn document(token_url: &str) -> utoipa::openapi::OpenApi {
    let generated = ApiDoc::openapi();
    let mut doc = match serde_json::to_value(&generated) {
        Ok(doc) => doc,
        Err(_) => return generated,
    };
    crate::openapi::complete(&mut doc, token_url);
    serde_json::from_value(doc).unwrap_or(generated)
}

/// The OpenAPI 3.1 document of the admin API, generated from the handlers above.
#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse admin API", description = "Manage API collections, clients and access profiles. Every call needs a bearer token from this server's token endpoint with scope gatehouse:admin (gatehouse:admin:read for reads)."),
    paths(
        create_collection, list_collections, get_collection, update_collection, delete_collection, refresh_collection_secret,
        create_client, list_clients, get_client, update_client, delete_client, put_logo, get_logo, delete_logo,
        create_profile, list_profiles, get_profile, update_profile, delete_profile, refresh_profile_secret,
        create_api_key, list_api_keys, get_api_key, update_api_key, delete_api_key, refresh_api_key,
        list_audit_events,
        create_policy, list_policies, get_policy, update_policy, delete_policy,
        profile_usage, client_usage, list_keys, rotate_keys,
        crate::projects::create_project, crate::projects::list_projects, crate::projects::get_project,
        crate::projects::update_project, crate::projects::delete_project,
    ),
    modifiers(&BearerScheme)
)]
pub struct ApiDoc;
