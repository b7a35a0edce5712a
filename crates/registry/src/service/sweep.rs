//! Housekeeping: rows whose purpose has passed are deleted, so no table grows forever —
//! remembered assertion `jti`s and revoked-token ids past their expiry, API keys' previous
//! values past their refresh grace, client secrets past theirs. In batches (short
//! transactions, no long lock on a busy table); on PostgreSQL one instance at a time (a
//! transaction-scoped advisory lock that others skip rather than wait for).

use super::Registry;
use crate::entity::{api_key, client_secret, revoked_token, used_assertion};
use crate::error::Result;
use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect, Statement,
    TransactionTrait,
};

/// Rows deleted (or cleared) per statement.
pub const SWEEP_BATCH: u64 = 1000;
/// The advisory lock key that keeps two PostgreSQL instances from sweeping at once.
const SWEEP_LOCK: i64 = 0x6761_7465_7377_6570; // "gateswep"

/// What one sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Assertion `jti`s past their `exp`.
    pub used_assertions: u64,
    /// Revoked-token ids past the token's `exp`.
    pub revoked_tokens: u64,
    /// API keys' previous values past their grace.
    pub api_key_graces: u64,
    /// Client secrets past their grace.
    pub client_secrets: u64,
    /// Admin console sessions past their idle or absolute expiry.
    pub console_sessions: u64,
    /// Another instance held the sweep lock: nothing was done here.
    pub skipped: bool,
}

impl SweepReport {
    /// Rows touched in all.
    pub fn total(&self) -> u64 {
        self.used_assertions
            + self.revoked_tokens
            + self.api_key_graces
            + self.client_secrets
            + self.console_sessions
    }
}

impl Registry {
    /// Delete what expired before `now`, [`SWEEP_BATCH`] rows a transaction, until nothing
    /// is left.
    pub async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<SweepReport> {
        let mut report = SweepReport::default();
        loop {
            let txn = self.inner.db.begin().await?;
            if txn.get_database_backend() == DbBackend::Postgres {
                let row = txn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        format!("SELECT pg_try_advisory_xact_lock({SWEEP_LOCK}) AS locked"),
                    ))
                    .await?;
                let locked = row
                    .map(|r| r.try_get::<bool>("", "locked"))
                    .transpose()?
                    .unwrap_or(false);
                if !locked {
                    report.skipped = true;
                    return Ok(report);
                }
            }
            let ids: Vec<String> = used_assertion::Entity::find()
                .select_only()
                .column(used_assertion::Column::Id)
                .filter(used_assertion::Column::ExpiresAt.lt(now))
                .limit(SWEEP_BATCH)
                .into_tuple()
                .all(&txn)
                .await?;
            let assertions = if ids.is_empty() {
                0
            } else {
                used_assertion::Entity::delete_many()
                    .filter(used_assertion::Column::Id.is_in(ids))
                    .exec(&txn)
                    .await?
                    .rows_affected
            };
            let jtis: Vec<String> = revoked_token::Entity::find()
                .select_only()
                .column(revoked_token::Column::Jti)
                .filter(revoked_token::Column::ExpiresAt.lt(now))
                .limit(SWEEP_BATCH)
                .into_tuple()
                .all(&txn)
                .await?;
            let revoked = if jtis.is_empty() {
                0
            } else {
                revoked_token::Entity::delete_many()
                    .filter(revoked_token::Column::Jti.is_in(jtis))
                    .exec(&txn)
                    .await?
                    .rows_affected
            };
            let keys: Vec<String> = api_key::Entity::find()
                .select_only()
                .column(api_key::Column::Id)
                .filter(api_key::Column::PreviousExpiresAt.lt(now))
                .limit(SWEEP_BATCH)
                .into_tuple()
                .all(&txn)
                .await?;
            let graces = if keys.is_empty() {
                0
            } else {
                api_key::Entity::update_many()
                    .col_expr(
                        api_key::Column::PreviousDigest,
                        Option::<String>::None.into(),
                    )
                    .col_expr(
                        api_key::Column::PreviousExpiresAt,
                        Option::<DateTime<Utc>>::None.into(),
                    )
                    .filter(api_key::Column::Id.is_in(keys))
                    .exec(&txn)
                    .await?
                    .rows_affected
            };
            let secrets: Vec<String> = client_secret::Entity::find()
                .select_only()
                .column(client_secret::Column::Id)
                .filter(client_secret::Column::ExpiresAt.lt(now))
                .limit(SWEEP_BATCH)
                .into_tuple()
                .all(&txn)
                .await?;
            let old_secrets = if secrets.is_empty() {
                0
            } else {
                client_secret::Entity::delete_many()
                    .filter(client_secret::Column::Id.is_in(secrets))
                    .exec(&txn)
                    .await?
                    .rows_affected
            };
            // Sessions are few (one per signed-in browser): one statement, not batched.
            let sessions = self.sweep_console_sessions(&txn, now).await?;
            txn.commit().await?;
            report.console_sessions += sessions;
            report.used_assertions += assertions;
            report.revoked_tokens += revoked;
            report.api_key_graces += graces;
            report.client_secrets += old_secrets;
            if assertions.max(revoked).max(graces).max(old_secrets) < SWEEP_BATCH {
                return Ok(report);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::Actor;
    use crate::clock::{Clock, ManualClock};
    use std::sync::Arc;

    /// Nothing is swept before it expires; everything that expired is, once; with the clock
    /// moved, not slept.
    #[tokio::test]
    async fn expired_rows_are_swept_once() {
        let clock = Arc::new(ManualClock::new());
        let r = crate::service::test_registry(clock.clone()).await;
        let actor = Actor::system();
        let col = r
            .create_collection(
                &actor,
                crate::command::NewCollection::plain("c", "https://c.example/api", &["c:r"])
                    .unwrap(),
            )
            .await
            .unwrap();
        let client = r
            .create_client(
                &actor,
                crate::command::NewClient::system(crate::types::Name::parse("x").unwrap()),
            )
            .await
            .unwrap();
        let ids = [col.collection.id.clone()];
        let oauth = r
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile::new(
                    crate::types::Name::parse("o").unwrap(),
                    crate::types::AuthType::OAuth2,
                    ids.to_vec(),
                ),
            )
            .await
            .unwrap();
        let token = r
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile::new(
                    crate::types::Name::parse("t").unwrap(),
                    crate::types::AuthType::Token,
                    ids.to_vec(),
                ),
            )
            .await
            .unwrap();
        let now = clock.now();
        let soon = now + chrono::Duration::seconds(60);
        assert!(
            r.remember_assertion(&oauth.profile.id, "jti-1", soon)
                .await
                .unwrap()
        );
        r.revoke_token("test", "jti-2", &oauth.profile.id, soon)
            .await
            .unwrap();
        r.refresh_profile_secret(&actor, &oauth.profile.id, Some(30))
            .await
            .unwrap();
        let key = token.api_key_id.clone().unwrap();
        r.refresh_api_key(&actor, &key, Some(30)).await.unwrap();

        let nothing = r.sweep_expired(clock.now()).await.unwrap();
        assert_eq!(nothing.total(), 0, "nothing has expired yet: {nothing:?}");
        clock.advance(120.0);
        let swept = r.sweep_expired(clock.now()).await.unwrap();
        assert_eq!(
            (
                swept.used_assertions,
                swept.revoked_tokens,
                swept.api_key_graces,
                swept.client_secrets
            ),
            (1, 1, 1, 1),
            "{swept:?}"
        );
        assert!(!swept.skipped);
        assert_eq!(
            swept.console_sessions, 0,
            "a session two minutes old is live"
        );
        // Console sessions go after 30 idle minutes.
        let session = r.create_console_session("gco_admin").await.unwrap();
        clock.advance(29.0 * 60.0);
        assert_eq!(
            r.sweep_expired(clock.now()).await.unwrap().console_sessions,
            0
        );
        clock.advance(60.0);
        assert_eq!(
            r.sweep_expired(clock.now()).await.unwrap().console_sessions,
            1
        );
        assert!(
            r.console_session(session.token_secret())
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            r.sweep_expired(clock.now()).await.unwrap().total(),
            0,
            "swept once"
        );
        // The live secret and key survive.
        let profile = r
            .get_profile(&Actor::system(), &oauth.profile.id)
            .await
            .unwrap();
        assert_eq!(profile.id, oauth.profile.id);
        assert!(r.get_api_key(&Actor::system(), &key).await.unwrap().active);
    }
}
