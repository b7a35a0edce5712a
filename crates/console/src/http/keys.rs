//! Signing keys: the list and the rotate button.

use super::see_other;
use crate::ConsoleState;
use crate::error::{ConsoleError, ConsoleResult};
use crate::session::{Admin, Posted};
use crate::views::Layout;
use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use gatehouse_jwks::KeyView;
use gatehouse_registry::AdminScope;
use std::sync::Arc;

#[derive(Template, WebTemplate)]
#[template(path = "keys.html")]
pub(crate) struct KeysPage {
    layout: Layout,
    keys: Vec<KeyView>,
    /// Why the last rotation was refused.
    refused: Option<String>,
}

/// `GET /console/keys`.
pub(crate) async fn list(
    State(state): State<Arc<ConsoleState>>,
    admin: Admin,
) -> ConsoleResult<KeysPage> {
    Ok(KeysPage {
        layout: Layout::new(&admin, "Signing keys", "keys"),
        keys: state.keys.list().await?,
        refused: None,
    })
}

/// `POST /console/keys/rotate`: only unlimited writers; a next key not yet published long
/// enough is refused (409 on this page), never forced from here.
pub(crate) async fn rotate(
    State(state): State<Arc<ConsoleState>>,
    posted: Posted,
) -> ConsoleResult {
    let admin = posted.admin;
    if !admin.actor.can_write() || *admin.actor.scope() != AdminScope::All {
        return Err(ConsoleError::Forbidden);
    }
    match state
        .keys
        .rotate(admin.actor.id(), state.key_publish_ahead, false)
        .await
    {
        Ok(_) => Ok(see_other("/console/keys")),
        Err(gatehouse_jwks::JwksError::TooSoon { ready_at, .. }) => {
            use axum::response::IntoResponse;
            Ok((
                axum::http::StatusCode::CONFLICT,
                KeysPage {
                    layout: Layout::new(&admin, "Signing keys", "keys"),
                    keys: state.keys.list().await?,
                    refused: Some(crate::views::when(&ready_at)),
                },
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}
