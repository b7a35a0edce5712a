//! Access profiles: the create form (fields per authentication method), a profile's page
//! (details, active switch, secret refresh, API keys, usage) and the one-time secrets.

use super::usage::{RangeQuery, UsageView, usage};
use super::{SecretPage, form_errors, refused, see_other};
use crate::ConsoleState;
use crate::error::{ConsoleError, ConsoleResult};
use crate::forms::{
    self, AUTH_TYPES, FormData, edit_profile, grace_seconds, ip_error_field, new_api_key,
    new_profile, profile_error_field, profile_form,
};
use crate::session::{Admin, Posted};
use crate::views::{Errors, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use gatehouse_registry::api::{ApiKey, Client, Collection, ListParams, Policy, Profile};
use gatehouse_registry::usage::Scope;
use std::sync::Arc;

fn all() -> ListParams {
    ListParams {
        limit: Some(1000),
        cursor: None,
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "profile_form.html")]
pub(crate) struct FormPage {
    layout: Layout,
    client: Client,
    /// The profile being edited (`None`: a new one).
    profile: Option<Profile>,
    f: FormData,
    errors: Errors,
    collections: Vec<Collection>,
    policies: Vec<Policy>,
    auth_types: &'static [(&'static str, &'static str)],
}

async fn form_page(
    state: &ConsoleState,
    admin: &Admin,
    client: Client,
    f: FormData,
    errors: Errors,
) -> ConsoleResult<FormPage> {
    edit_page(state, admin, client, None, f, errors).await
}

async fn edit_page(
    state: &ConsoleState,
    admin: &Admin,
    client: Client,
    profile: Option<Profile>,
    f: FormData,
    errors: Errors,
) -> ConsoleResult<FormPage> {
    let title = match &profile {
        Some(p) => format!("Edit {}", p.name),
        None => "Create access profile".to_owned(),
    };
    Ok(FormPage {
        layout: Layout::new(admin, title, "clients"),
        client,
        profile,
        f,
        errors,
        collections: state.registry.list_collections(&all()).await?.items,
        policies: state.registry.list_policies(&all()).await?.items,
        auth_types: AUTH_TYPES,
    })
}

/// `GET /console/clients/{id}/profiles/new`.
pub(crate) async fn new_page(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<FormPage> {
    let client = state.registry.get_client(&admin.actor, &id).await?;
    let mut f = FormData::default();
    f.set("auth_type", "oauth2");
    f.set("jwt_method", "hmac");
    f.set("active", "on");
    form_page(&state, &admin, client, f, Errors::default()).await
}

/// `POST /console/clients/{id}/profiles`: create; the answer is the one-time panel when the
/// profile has a secret to show, else its page.
pub(crate) async fn create(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let client = state.registry.get_client(&admin.actor, &id).await?;
    let auth_type = form.val("auth_type").to_owned();
    let result = match new_profile(&form) {
        Ok(command) => {
            state
                .registry
                .create_profile(&admin.actor, &id, command)
                .await
        }
        Err(e) => Err(e),
    };
    let created = match result {
        Ok(c) => c,
        Err(e) => {
            let errors = form_errors(e, |f| ip_error_field(profile_error_field(&auth_type, f)))?;
            return Ok(refused(
                form_page(&state, &admin, client, form, errors).await?,
            ));
        }
    };
    let p = &created.profile;
    let done = format!("/console/profiles/{}", p.id);
    let panel = if let Some(secret) = created.oauth_client_secret {
        SecretPage::new(&admin, "OAuth client secret", secret, done)
            .id("Client ID", &p.oauth_client_id)
    } else if let Some(token) = created.auth_token {
        let key = created.api_key_id.unwrap_or_default();
        SecretPage::new(&admin, "Auth token", token, done).id("API key", &key)
    } else if let Some(secret) = created.jwt_secret {
        SecretPage::new(&admin, "JWT HMAC secret", secret, done).id("Client ID", &p.oauth_client_id)
    } else {
        return Ok(see_other(&done));
    };
    Ok(panel.respond())
}

/// `GET /console/profiles/{id}/edit`.
pub(crate) async fn edit(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
) -> ConsoleResult<FormPage> {
    let profile = state.registry.get_profile(&admin.actor, &id).await?;
    let client = state
        .registry
        .get_client(&admin.actor, &profile.client_id)
        .await?;
    let f = profile_form(&profile);
    edit_page(&state, &admin, client, Some(profile), f, Errors::default()).await
}

/// `POST /console/profiles/{id}/edit`: save the edit form (a merge patch).
pub(crate) async fn update(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let profile = state.registry.get_profile(&admin.actor, &id).await?;
    let client = state
        .registry
        .get_client(&admin.actor, &profile.client_id)
        .await?;
    let auth_type = profile.auth_type.as_str();
    let updated = match edit_profile(&form) {
        Ok(patch) => {
            state
                .registry
                .update_profile(&admin.actor, &id, patch)
                .await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = updated {
        let errors = form_errors(e, |f| ip_error_field(profile_error_field(auth_type, f)))?;
        return Ok(refused(
            edit_page(&state, &admin, client, Some(profile), form, errors).await?,
        ));
    }
    Ok(see_other(&format!("/console/profiles/{id}")))
}

#[derive(Template, WebTemplate)]
#[template(path = "profile.html")]
pub(crate) struct ShowPage {
    layout: Layout,
    profile: Profile,
    client: Client,
    collections: Vec<(String, String)>,
    policy: Option<Policy>,
    keys: Vec<ApiKey>,
    /// Errors of the new-key form.
    errors: Errors,
    key_form: FormData,
    usage: UsageView,
}

impl ShowPage {
    fn auth(&self) -> &'static str {
        self.profile.auth_type.as_str()
    }

    /// Whether the profile has a secret to refresh (oauth2, or jwt with HMAC).
    fn refreshable(&self) -> bool {
        match self.auth() {
            "oauth2" => true,
            "jwt" => self
                .profile
                .jwt
                .as_ref()
                .and_then(|j| j.jwt_method)
                .is_some_and(|m| crate::views::wire(&m) == "hmac"),
            _ => false,
        }
    }
}

async fn show_page(
    state: &ConsoleState,
    admin: &Admin,
    id: &str,
    range: Option<&str>,
    key_form: FormData,
    key_errors: Errors,
) -> ConsoleResult<ShowPage> {
    let profile = state.registry.get_profile(&admin.actor, id).await?;
    let client = state
        .registry
        .get_client(&admin.actor, &profile.client_id)
        .await?;
    let names = state.registry.list_collections(&all()).await?.items;
    let collections = profile
        .collections
        .iter()
        .map(|c| {
            let name = names
                .iter()
                .find(|n| &n.id == c)
                .map(|n| n.name.clone())
                .unwrap_or_else(|| c.clone());
            (c.clone(), name)
        })
        .collect();
    let policy = match &profile.policy_id {
        Some(p) => Some(state.registry.get_policy(p).await?),
        None => None,
    };
    let keys = if profile.auth_type.as_str() == "token" {
        state
            .registry
            .list_api_keys(&admin.actor, id, &all())
            .await?
            .items
    } else {
        Vec::new()
    };
    let usage = usage(&state.registry, &admin.actor, Scope::Profile(id), range).await?;
    Ok(ShowPage {
        layout: Layout::new(admin, profile.name.clone(), "clients"),
        profile,
        client,
        collections,
        policy,
        keys,
        errors: key_errors,
        key_form,
        usage,
    })
}

/// `GET /console/profiles/{id}`.
pub(crate) async fn show(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
    Path(id): Path<String>,
    Query(range): Query<RangeQuery>,
) -> ConsoleResult<ShowPage> {
    show_page(
        &state,
        &admin,
        &id,
        range.range.as_deref(),
        FormData::default(),
        Errors::default(),
    )
    .await
}

/// `POST /console/profiles/{id}/active`.
pub(crate) async fn toggle(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let active = posted.form.val("active") == "true";
    state
        .registry
        .update_profile(
            &posted.admin.actor,
            &id,
            gatehouse_registry::command::ProfilePatch {
                active: Some(active),
                ..Default::default()
            },
        )
        .await?;
    Ok(see_other(&format!("/console/profiles/{id}")))
}

/// `POST /console/profiles/{id}/secret`: a new client secret (or HMAC secret), shown once.
pub(crate) async fn refresh_secret(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let grace = grace_seconds(&form).map_err(ConsoleError::Invalid)?;
    let issued = state
        .registry
        .refresh_profile_secret(&admin.actor, &id, grace)
        .await?;
    let done = format!("/console/profiles/{id}");
    let (what, secret) = match (issued.oauth_client_secret, issued.jwt_secret) {
        (Some(s), _) => ("OAuth client secret", s),
        (None, Some(s)) => ("JWT HMAC secret", s),
        (None, None) => return Ok(see_other(&done)),
    };
    Ok(SecretPage::new(&admin, what, secret, done)
        .id("Client ID", &issued.oauth_client_id)
        .previous(issued.previous_secret_expires_at)
        .respond())
}

/// `POST /console/profiles/{id}/api-keys`: a new API key, its token shown once.
pub(crate) async fn create_key(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    Query(range): Query<RangeQuery>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let again = |errors: Errors, form: FormData| {
        let state = state.clone();
        let admin = admin.clone();
        let id = id.clone();
        let range = range.range.clone();
        async move {
            Ok::<_, ConsoleError>(refused(
                show_page(&state, &admin, &id, range.as_deref(), form, errors).await?,
            ))
        }
    };
    let result = match new_api_key(&form) {
        Ok(command) => {
            state
                .registry
                .create_api_key(&admin.actor, &id, command)
                .await
        }
        Err(e) => Err(e),
    };
    let issued = match result {
        Ok(i) => i,
        Err(e) => {
            let errors = form_errors(e, forms::ip_error_field)?;
            return again(errors, form).await;
        }
    };
    Ok(SecretPage::new(
        &admin,
        "Auth token",
        issued.auth_token,
        format!("/console/profiles/{id}"),
    )
    .id("API key", &issued.key.id)
    .respond())
}

/// `POST /console/api-keys/{id}/refresh`: a new value for the key, shown once.
pub(crate) async fn refresh_key(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let Posted { admin, form, .. } = posted;
    let grace = grace_seconds(&form).map_err(ConsoleError::Invalid)?;
    let issued = state
        .registry
        .refresh_api_key(&admin.actor, &id, grace)
        .await?;
    Ok(SecretPage::new(
        &admin,
        "Auth token",
        issued.auth_token,
        format!("/console/profiles/{}", issued.key.profile_id),
    )
    .id("API key", &issued.key.id)
    .previous(issued.previous_token_expires_at)
    .respond())
}

/// `POST /console/api-keys/{id}/deactivate`: switch a key off.
pub(crate) async fn deactivate_key(
    State(state): State<Arc<ConsoleState>>,
    Path(id): Path<String>,
    posted: Posted,
) -> ConsoleResult {
    let key = state
        .registry
        .update_api_key(
            &posted.admin.actor,
            &id,
            gatehouse_registry::command::ApiKeyPatch {
                active: Some(false),
                ..Default::default()
            },
        )
        .await?;
    Ok(see_other(&format!("/console/profiles/{}", key.profile_id)))
}
