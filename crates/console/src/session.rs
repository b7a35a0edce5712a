//! Sign-in sessions: the cookie, the signed-in admin taken from it on every request (with
//! the admin's *current* rights, re-checked each time), and checked POST forms (same site,
//! the session's CSRF token).

use crate::ConsoleState;
use crate::error::ConsoleError;
use crate::forms::FormData;
use axum::extract::{ConnectInfo, FromRef, FromRequest, FromRequestParts, Multipart, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use gatehouse_registry::Actor;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The cookie on http.
pub(crate) const COOKIE: &str = "gatehouse_console";
/// The cookie on https: `__Host-` pins it to this host, path `/` and `Secure`.
pub(crate) const SECURE_COOKIE: &str = "__Host-gatehouse_console";
/// Where people sign in.
pub(crate) const SIGN_IN: &str = "/console/sign-in";

/// The session cookie's name for this server.
pub(crate) fn cookie_name(state: &ConsoleState) -> &'static str {
    if state.secure() {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// `Set-Cookie` for a new session.
pub(crate) fn set_cookie(state: &ConsoleState, token: &str) -> Option<HeaderValue> {
    let secure = if state.secure() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/{secure}",
        cookie_name(state)
    ))
    .ok()
}

/// `Set-Cookie` that removes the session cookie.
pub(crate) fn clear_cookie(state: &ConsoleState) -> Option<HeaderValue> {
    let secure = if state.secure() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}",
        cookie_name(state)
    ))
    .ok()
}

/// The session token from the `Cookie` header, if any.
pub(crate) fn session_token(state: &ConsoleState, headers: &HeaderMap) -> Option<String> {
    let name = cookie_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
}

/// The caller's address: the socket peer, or behind a trusted proxy its `X-Forwarded-For`
/// (the one rule in `gatehouse-net`).
pub(crate) fn peer(state: &ConsoleState, parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| gatehouse_net::resolve(c.0.ip(), &parts.headers, &state.trusted_proxies))
}

/// The signed-in admin of this request.
#[derive(Debug, Clone)]
pub(crate) struct Admin {
    /// The admin's `oauth_client_id`.
    pub id: String,
    /// Rights and project scope as the profile holds them now.
    pub actor: Actor,
    /// The session's CSRF token.
    pub csrf: String,
}

/// No (live) session: to the sign-in page (htmx requests: `HX-Redirect`).
pub(crate) struct SignInFirst {
    htmx: bool,
}

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        if self.htmx {
            let mut r = StatusCode::NO_CONTENT.into_response();
            r.headers_mut()
                .insert("hx-redirect", HeaderValue::from_static(SIGN_IN));
            r
        } else {
            Redirect::to(SIGN_IN).into_response()
        }
    }
}

/// Why no admin could be found for a request.
pub(crate) enum Rejection {
    SignIn(SignInFirst),
    Error(ConsoleError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::SignIn(s) => s.into_response(),
            Rejection::Error(e) => e.into_response(),
        }
    }
}

impl<S> FromRequestParts<S> for Admin
where
    Arc<ConsoleState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Rejection> {
        let state = Arc::<ConsoleState>::from_ref(state);
        let sign_in = || {
            Rejection::SignIn(SignInFirst {
                htmx: parts.headers.contains_key("hx-request"),
            })
        };
        let Some(token) = session_token(&state, &parts.headers) else {
            return Err(sign_in());
        };
        let session = state
            .registry
            .console_session(&token)
            .await
            .map_err(|e| Rejection::Error(e.into()))?;
        let Some(session) = session else {
            return Err(sign_in());
        };
        // The rights are the profile's current grant: a profile that lost the admin
        // collection, or was switched off, is signed out here.
        let admin = state
            .registry
            .admin_session(&session.oauth_client_id, &state.admin_audience)
            .await
            .map_err(|e| Rejection::Error(e.into()))?;
        // The profile's IP rules hold for the whole session, not only at sign-in: a cookie
        // taken elsewhere is no use from an address the profile does not admit.
        let admitted = |profile: &gatehouse_registry::ProfileSnapshot| {
            peer(&state, parts).is_none_or(|ip| profile.allows_ip(ip))
        };
        let Some((_, actor)) = admin.filter(|(profile, _)| admitted(profile)) else {
            if let Err(e) = state.registry.end_console_session(&token).await {
                tracing::warn!(error = %e, "console: ending a session failed");
            }
            return Err(sign_in());
        };
        Ok(Admin {
            id: session.oauth_client_id,
            actor,
            csrf: session.csrf_token,
        })
    }
}

/// A POSTed form of a signed-in admin: same-site and carrying the session's CSRF token
/// (checked in constant time). URL-encoded or multipart (then with an optional file).
pub(crate) struct Posted {
    pub admin: Admin,
    pub form: FormData,
    /// The `logo` file of a multipart form, when one was chosen.
    pub file: Option<Vec<u8>>,
}

impl<S> FromRequest<S> for Posted
where
    Arc<ConsoleState>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Rejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Rejection> {
        if crate::security::is_cross_site(request.method(), request.headers()) {
            return Err(Rejection::Error(ConsoleError::Csrf));
        }
        let (mut parts, body) = request.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let is_multipart = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("multipart/form-data"));
        let request = Request::from_parts(parts, body);
        let (form, file) = if is_multipart {
            read_multipart(request, state).await?
        } else {
            let bytes = axum::body::Bytes::from_request(request, state)
                .await
                .map_err(|_| Rejection::Error(ConsoleError::BadRequest("unreadable form")))?;
            (FormData::parse(&bytes), None)
        };
        let sent = form.get("_csrf").unwrap_or("");
        let good = !admin.csrf.is_empty()
            && bool::from(subtle::ConstantTimeEq::ct_eq(
                sent.as_bytes(),
                admin.csrf.as_bytes(),
            ));
        if !good {
            return Err(Rejection::Error(ConsoleError::Csrf));
        }
        Ok(Posted { admin, form, file })
    }
}

async fn read_multipart<S: Send + Sync>(
    request: Request,
    state: &S,
) -> Result<(FormData, Option<Vec<u8>>), Rejection> {
    let bad = |why| Rejection::Error(ConsoleError::BadRequest(why));
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|_| bad("unreadable form"))?;
    let mut pairs = Vec::new();
    let mut file = None;
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| bad("unreadable form"))?
    {
        let name = field.name().unwrap_or("").to_owned();
        if field.file_name().is_some() {
            let bytes = field.bytes().await.map_err(|_| bad("unreadable file"))?;
            if !bytes.is_empty() {
                file = Some(bytes.to_vec());
            }
        } else {
            let text = field.text().await.map_err(|_| bad("unreadable form"))?;
            pairs.push((name, text));
        }
    }
    Ok((FormData(pairs), file))
}
