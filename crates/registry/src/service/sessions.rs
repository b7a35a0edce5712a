//! Admin console sessions, kept in the database so they survive restarts and are shared by
//! instances. The browser holds a random 256-bit token; only its SHA-256 is stored, so a
//! copy of the table signs no one in. A session ends after [`SESSION_IDLE`] without a
//! request, after [`SESSION_ABSOLUTE`] in all, or at sign-out; time is the registry's clock.
//!
//! A session only says who signed in: the console re-checks that admin's rights through
//! [`Registry::admin_session`] on every request.

use super::Registry;
use crate::entity::console_session;
use crate::error::Result;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, Set};

/// A session ends after this long without a request.
pub const SESSION_IDLE: Duration = Duration::minutes(30);
/// A session ends this long after sign-in, however busy.
pub const SESSION_ABSOLUTE: Duration = Duration::hours(12);
/// `last_seen_at` is written at most this often per session.
const TOUCH_EVERY: Duration = Duration::minutes(1);

/// A session just opened: the token for the cookie (shown nowhere else) and its CSRF token.
pub struct NewConsoleSession {
    token: String,
    /// The CSRF token forms of this session carry.
    pub csrf_token: String,
}

impl NewConsoleSession {
    /// The session token, base64url: for the `Set-Cookie` header only.
    pub fn token_secret(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for NewConsoleSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewConsoleSession([secret elided])")
    }
}

/// A live console session.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// The signed-in admin profile's `oauth_client_id`.
    pub oauth_client_id: String,
    /// The CSRF token every form of this session carries.
    pub csrf_token: String,
    /// Sign-in time.
    pub created_at: DateTime<Utc>,
    /// The last request (to the minute).
    pub last_seen_at: DateTime<Utc>,
}

/// 32 bytes from the operating system's CSPRNG, base64url without padding.
fn random_token() -> Result<String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| crate::RegistryError::Internal(format!("OS random source: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored form of a session token: hex SHA-256.
fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a session seen last at `last_seen` and opened at `created` has ended at `now`.
fn expired(created: DateTime<Utc>, last_seen: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now >= last_seen + SESSION_IDLE || now >= created + SESSION_ABSOLUTE
}

impl Registry {
    /// Open a console session for an admin who has just authenticated.
    pub async fn create_console_session(&self, oauth_client_id: &str) -> Result<NewConsoleSession> {
        let token = random_token()?;
        let csrf_token = random_token()?;
        let now = self.now();
        console_session::ActiveModel {
            token_hash: Set(token_hash(&token)),
            oauth_client_id: Set(oauth_client_id.to_owned()),
            csrf_token: Set(csrf_token.clone()),
            created_at: Set(now),
            last_seen_at: Set(now),
        }
        .insert(&self.inner.db)
        .await?;
        Ok(NewConsoleSession { token, csrf_token })
    }

    /// The live session this cookie token names, if any; records the visit (at most once a
    /// minute). An expired session is deleted and answers `None`.
    pub async fn console_session(&self, token: &str) -> Result<Option<ConsoleSession>> {
        if token.is_empty() || token.len() > 128 || !crate::error::storable(token) {
            return Ok(None);
        }
        let hash = token_hash(token);
        let Some(row) = console_session::Entity::find_by_id(hash.clone())
            .one(&self.inner.db)
            .await?
        else {
            return Ok(None);
        };
        let now = self.now();
        if expired(row.created_at, row.last_seen_at, now) {
            console_session::Entity::delete_by_id(hash)
                .exec(&self.inner.db)
                .await?;
            return Ok(None);
        }
        let mut last_seen_at = row.last_seen_at;
        if now - row.last_seen_at >= TOUCH_EVERY {
            console_session::Entity::update_many()
                .col_expr(console_session::Column::LastSeenAt, now.into())
                .filter(console_session::Column::TokenHash.eq(hash))
                .exec(&self.inner.db)
                .await?;
            last_seen_at = now;
        }
        Ok(Some(ConsoleSession {
            oauth_client_id: row.oauth_client_id,
            csrf_token: row.csrf_token,
            created_at: row.created_at,
            last_seen_at,
        }))
    }

    /// End the session this cookie token names (sign-out). Unknown tokens are ignored.
    pub async fn end_console_session(&self, token: &str) -> Result<()> {
        if token.is_empty() || token.len() > 128 || !crate::error::storable(token) {
            return Ok(());
        }
        console_session::Entity::delete_by_id(token_hash(token))
            .exec(&self.inner.db)
            .await?;
        Ok(())
    }

    /// Delete every session that has ended by `now`; the number removed.
    pub(crate) async fn sweep_console_sessions<C: sea_orm::ConnectionTrait>(
        &self,
        conn: &C,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        Ok(console_session::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(console_session::Column::LastSeenAt.lte(now - SESSION_IDLE))
                    .add(console_session::Column::CreatedAt.lte(now - SESSION_ABSOLUTE)),
            )
            .exec(conn)
            .await?
            .rows_affected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use std::sync::Arc;

    #[test]
    fn expiry_is_idle_or_absolute() {
        let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert!(!expired(t0, t0, t0 + Duration::minutes(29)));
        assert!(expired(t0, t0, t0 + Duration::minutes(30)));
        let busy = t0 + Duration::hours(11) + Duration::minutes(59);
        assert!(!expired(t0, busy, busy + Duration::seconds(30)));
        assert!(expired(t0, busy, t0 + Duration::hours(12)));
    }

    #[tokio::test]
    async fn sessions_store_only_a_hash_and_expire() {
        let clock = Arc::new(ManualClock::new());
        let r = crate::service::test_registry(clock.clone()).await;
        let s = r.create_console_session("gco_x").await.unwrap();
        let token = s.token_secret().to_owned();
        assert_eq!(
            URL_SAFE_NO_PAD.decode(&token).unwrap().len(),
            32,
            "256 random bits"
        );
        let rows = console_session::Entity::find()
            .all(&r.inner.db)
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_ne!(rows[0].token_hash, token);
        assert_eq!(rows[0].token_hash, token_hash(&token));
        let live = r.console_session(&token).await.unwrap().unwrap();
        assert_eq!(live.oauth_client_id, "gco_x");
        assert_eq!(live.csrf_token, s.csrf_token);
        clock.advance(29.0 * 60.0);
        assert!(r.console_session(&token).await.unwrap().is_some());
        clock.advance(29.0 * 60.0);
        assert!(
            r.console_session(&token).await.unwrap().is_some(),
            "touched"
        );
        clock.advance(31.0 * 60.0);
        assert!(r.console_session(&token).await.unwrap().is_none(), "idle");
        let other = r.create_console_session("gco_y").await.unwrap();
        clock.advance(31.0 * 60.0);
        assert_eq!(
            r.sweep_console_sessions(&r.inner.db, clock.now())
                .await
                .unwrap(),
            1
        );
        assert!(
            r.console_session(other.token_secret())
                .await
                .unwrap()
                .is_none()
        );
        let third = r.create_console_session("gco_z").await.unwrap();
        r.end_console_session(third.token_secret()).await.unwrap();
        assert!(
            r.console_session(third.token_secret())
                .await
                .unwrap()
                .is_none()
        );
    }
}
