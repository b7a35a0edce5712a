//! Sign-in and sign-out.

use crate::ConsoleState;
use crate::error::{ConsoleError, ConsoleResult};
use crate::forms::FormData;
use crate::session::{self, Posted};
use crate::views::Layout;
use askama::Template;
use askama_web::WebTemplate;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use gatehouse_registry::AuthFailure;
use std::sync::Arc;

/// The sign-in page.
#[derive(Template, WebTemplate)]
#[template(path = "sign_in.html")]
pub(crate) struct SignInPage {
    layout: Layout,
    client_id: String,
    failed: bool,
}

/// `GET /console/sign-in`.
pub(crate) async fn sign_in_page() -> SignInPage {
    SignInPage {
        layout: Layout::bare("Sign in"),
        client_id: String::new(),
        failed: false,
    }
}

/// `POST /console/sign-in`: the admin profile's `oauth_client_id` and secret, checked and
/// throttled as the token endpoint checks them; then the profile must hold the admin
/// collection now. Every refusal reads the same.
pub(crate) async fn sign_in(
    State(state): State<Arc<ConsoleState>>,
    parts: Parts,
    body: Bytes,
) -> ConsoleResult {
    if crate::security::is_cross_site(&parts.method, &parts.headers) {
        return Err(ConsoleError::Csrf);
    }
    let form = FormData::parse(&body);
    let id = form.val("client_id").to_owned();
    let secret = form.get("client_secret").unwrap_or("");
    let peer = session::peer(&state, &parts);
    let refused = |id: String| {
        (
            StatusCode::UNAUTHORIZED,
            SignInPage {
                layout: Layout::bare("Sign in"),
                client_id: id,
                failed: true,
            },
        )
            .into_response()
    };
    match state
        .registry
        .authenticate_client_secret(&id, secret, peer)
        .await
    {
        Ok(_) => {}
        Err(AuthFailure::Throttled { retry_after }) => {
            return Err(ConsoleError::Throttled(retry_after));
        }
        Err(AuthFailure::Busy | AuthFailure::Unavailable) => {
            return Err(ConsoleError::Unavailable);
        }
        Err(_) => return Ok(refused(id)),
    }
    let admin = state
        .registry
        .admin_session(&id, &state.admin_audience)
        .await?;
    if admin.is_none() {
        // A good secret of a profile that is no admin is a failed sign-in all the same.
        if let Some(ip) = peer {
            state.registry.auth_failed(&id, ip);
        }
        return Ok(refused(id));
    }
    // A new session every sign-in (no fixation); the browser's previous one ends.
    if let Some(old) = session::session_token(&state, &parts.headers) {
        state.registry.end_console_session(&old).await?;
    }
    let new = state.registry.create_console_session(&id).await?;
    let mut response = super::see_other("/console/clients");
    if let Some(cookie) = session::set_cookie(&state, new.token_secret()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// `POST /console/sign-out`: ends the session (the row is deleted) and clears the cookie.
pub(crate) async fn sign_out(
    State(state): State<Arc<ConsoleState>>,
    parts: Parts,
    // A signed-in admin's same-site form with the session's CSRF token, like every POST.
    _checked: Posted,
) -> ConsoleResult {
    if let Some(token) = session::session_token(&state, &parts.headers) {
        state.registry.end_console_session(&token).await?;
    }
    let mut response = super::see_other(session::SIGN_IN);
    if let Some(cookie) = session::clear_cookie(&state) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}
