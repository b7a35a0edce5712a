//! The console's routes. Handlers extract (the signed-in admin, a checked form), call the
//! registry and render a page or redirect (POST-redirect-GET); one-time secrets are the one
//! exception: they are the direct answer to the POST that made them.

mod audit;
mod auth;
pub(crate) mod clients;
mod collections;
mod delete;
mod keys;
mod policies;
mod profiles;
mod projects;
mod usage;

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::views::{Errors, Layout};
use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gatehouse_registry::types::FieldError;
use std::sync::Arc;

/// The console router: `/console/…` on the admin listener, with its security headers.
pub fn router(state: Arc<ConsoleState>) -> Router {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::to("/console/clients") }),
        )
        .route(
            "/console/",
            get(|| async { Redirect::to("/console/clients") }),
        )
        .route("/console/static/{tag}/{name}", get(crate::assets::serve))
        .route(
            "/console/sign-in",
            get(auth::sign_in_page).post(auth::sign_in),
        )
        .route("/console/sign-out", post(auth::sign_out))
        .route("/console/clients", get(clients::list).post(clients::create))
        .route("/console/clients/new", get(clients::new_page))
        .route(
            "/console/clients/{id}",
            get(clients::show).post(clients::update),
        )
        .route("/console/clients/{id}/edit", get(clients::edit_page))
        .route("/console/clients/{id}/active", post(clients::toggle))
        .route("/console/clients/{id}/logo", get(clients::logo))
        .route("/console/clients/{id}/profiles", post(profiles::create))
        .route(
            "/console/clients/{id}/profiles/new",
            get(profiles::new_page),
        )
        .route("/console/profiles/{id}", get(profiles::show))
        .route(
            "/console/profiles/{id}/edit",
            get(profiles::edit).post(profiles::update),
        )
        .route("/console/profiles/{id}/active", post(profiles::toggle))
        .route(
            "/console/profiles/{id}/secret",
            post(profiles::refresh_secret),
        )
        .route(
            "/console/profiles/{id}/api-keys",
            post(profiles::create_key),
        )
        .route(
            "/console/api-keys/{id}/refresh",
            post(profiles::refresh_key),
        )
        .route(
            "/console/api-keys/{id}/deactivate",
            post(profiles::deactivate_key),
        )
        .route(
            "/console/collections",
            get(collections::list).post(collections::create),
        )
        .route("/console/collections/new", get(collections::new_page))
        .route(
            "/console/collections/{id}",
            get(collections::show).post(collections::update),
        )
        .route(
            "/console/collections/{id}/secret",
            post(collections::refresh_secret),
        )
        .route(
            "/console/policies",
            get(policies::list).post(policies::create),
        )
        .route("/console/policies/new", get(policies::new_page))
        .route(
            "/console/policies/{id}",
            get(policies::show).post(policies::update),
        )
        .route(
            "/console/projects",
            get(projects::list).post(projects::create),
        )
        .route("/console/projects/new", get(projects::new_page))
        .route(
            "/console/projects/{id}",
            get(projects::show).post(projects::update),
        )
        .route("/console/projects/{id}/delete", post(projects::delete))
        .route(
            "/console/clients/{id}/delete",
            get(delete::client_page).post(delete::client),
        )
        .route(
            "/console/profiles/{id}/delete",
            get(delete::profile_page).post(delete::profile),
        )
        .route(
            "/console/collections/{id}/delete",
            get(delete::collection_page).post(delete::collection),
        )
        .route(
            "/console/policies/{id}/delete",
            get(delete::policy_page).post(delete::policy),
        )
        .route("/console/audit", get(audit::list))
        .route("/console/keys", get(keys::list))
        .route("/console/keys/rotate", post(keys::rotate))
        // Unknown console pages get the console's 404 page; the rest of the admin listener
        // keeps its own (JSON) fallback.
        .route("/console/{*rest}", get(|| async { ConsoleError::NotFound }))
        .layer(axum::middleware::from_fn(crate::security::headers))
        .with_state(state)
}

/// 303 to `to` (POST-redirect-GET).
pub(crate) fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// A form shown again with the registry's objections beside its fields (422).
pub(crate) fn refused<T: IntoResponse>(page: T) -> Response {
    (StatusCode::UNPROCESSABLE_ENTITY, page).into_response()
}

/// Split a registry refusal: field errors (and conflicts) go back to the form; anything
/// else is an error page. `rename` maps registry field names to form field names.
pub(crate) fn form_errors(
    e: gatehouse_registry::RegistryError,
    rename: impl Fn(String) -> String,
) -> Result<Errors, ConsoleError> {
    match ConsoleError::from(e) {
        ConsoleError::Invalid(fields) => Ok(Errors(
            fields
                .into_iter()
                .map(|f| FieldError::new(rename(f.field), &f.code, f.message))
                .collect(),
        )),
        other => Err(other),
    }
}

/// The one-time secret panel: the direct answer to the POST that made the secret, never
/// stored, never cached, kept out of htmx's history.
#[derive(Template, WebTemplate)]
#[template(path = "secret.html")]
pub(crate) struct SecretPage {
    pub layout: Layout,
    /// What the secret is, e.g. "OAuth client secret".
    pub what: String,
    /// Public identifiers that go with it (label, value).
    pub ids: Vec<(String, String)>,
    /// The secret itself.
    pub secret: String,
    /// Until when the previous secret keeps working, if it does.
    pub previous_until: Option<String>,
    /// Where "Done" leads.
    pub done: String,
}

impl IntoResponse for SecretPageResponse {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store, max-age=0"),
        );
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        response
    }
}

/// A [`SecretPage`] with its no-store headers.
pub(crate) struct SecretPageResponse(pub SecretPage);

impl SecretPage {
    /// A panel for `secret`.
    pub(crate) fn new(
        admin: &crate::session::Admin,
        what: &str,
        secret: String,
        done: String,
    ) -> Self {
        let mut layout = Layout::new(admin, what, "");
        layout.no_history = true;
        Self {
            layout,
            what: what.to_owned(),
            ids: Vec::new(),
            secret,
            previous_until: None,
            done,
        }
    }

    /// Add a public identifier shown with the secret.
    pub(crate) fn id(mut self, label: &str, value: &str) -> Self {
        self.ids.push((label.to_owned(), value.to_owned()));
        self
    }

    /// Say until when the previous secret works.
    pub(crate) fn previous(mut self, until: Option<chrono::DateTime<chrono::Utc>>) -> Self {
        self.previous_until = until.as_ref().map(crate::views::when);
        self
    }

    /// As a response.
    pub(crate) fn respond(self) -> Response {
        SecretPageResponse(self).into_response()
    }
}
