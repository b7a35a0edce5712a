//! Storage of the server's signing keys. The crypto lives in the jwks crate; this module
//! only moves encrypted rows in and out.

use super::Registry;
use crate::entity::signing_key;
use crate::error::Result;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};

pub use gatehouse_jwks::StoredKey;

impl From<signing_key::Model> for StoredKey {
    fn from(m: signing_key::Model) -> Self {
        Self {
            kid: m.kid,
            alg: m.alg,
            state: m.state,
            private_jwe: m.private_jwe,
            public_jwk: m.public_jwk,
            created_at: m.created_at,
            activated_at: m.activated_at,
            retired_at: m.retired_at,
        }
    }
}

impl Registry {
    /// Every stored signing key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        Ok(signing_key::Entity::find()
            .order_by_asc(signing_key::Column::CreatedAt)
            .all(&self.inner.db)
            .await?
            .into_iter()
            .map(StoredKey::from)
            .collect())
    }

    /// Store a new signing key.
    pub async fn insert_signing_key(&self, key: &StoredKey) -> Result<()> {
        signing_key::ActiveModel {
            kid: Set(key.kid.clone()),
            alg: Set(key.alg.clone()),
            state: Set(key.state.clone()),
            private_jwe: Set(key.private_jwe.clone()),
            public_jwk: Set(key.public_jwk.clone()),
            created_at: Set(key.created_at),
            activated_at: Set(key.activated_at),
            retired_at: Set(key.retired_at),
        }
        .insert(&self.inner.db)
        .await?;
        Ok(())
    }

    /// Rotate: the `next` key `next_kid` starts signing, the active key retires (it stays
    /// published until its tokens have expired), and `new_next` is published to sign after
    /// the next rotation. One transaction; `Conflict` when `next_kid` is no longer the next
    /// key (another instance rotated first).
    pub async fn rotate_signing_keys(
        &self,
        actor: &str,
        next_kid: &str,
        new_next: &StoredKey,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let txn = self.inner.db.begin().await?;
        let promoted = signing_key::Entity::update_many()
            .col_expr(signing_key::Column::State, "active".into())
            .col_expr(signing_key::Column::ActivatedAt, Some(now).into())
            .filter(signing_key::Column::Kid.eq(next_kid))
            .filter(signing_key::Column::State.eq("next"))
            .exec(&txn)
            .await?;
        if promoted.rows_affected != 1 {
            return Err(crate::error::RegistryError::Conflict {
                field: "kid".to_owned(),
                message: "the keys were rotated meanwhile".to_owned(),
            });
        }
        signing_key::Entity::update_many()
            .col_expr(signing_key::Column::State, "retired".into())
            .col_expr(signing_key::Column::RetiredAt, Some(now).into())
            .filter(signing_key::Column::State.eq("active"))
            .filter(signing_key::Column::Kid.ne(next_kid))
            .exec(&txn)
            .await?;
        signing_key::ActiveModel {
            kid: Set(new_next.kid.clone()),
            alg: Set(new_next.alg.clone()),
            state: Set("next".to_owned()),
            private_jwe: Set(new_next.private_jwe.clone()),
            public_jwk: Set(new_next.public_jwk.clone()),
            created_at: Set(new_next.created_at),
            activated_at: Set(None),
            retired_at: Set(None),
        }
        .insert(&txn)
        .await?;
        self.audit(
            &txn,
            &super::Actor::service(actor),
            "keys.rotate",
            "signing_key",
            next_kid,
            serde_json::json!({"next": new_next.kid}),
        )
        .await?;
        txn.commit().await?;
        self.publish_change(super::Change::Keys);
        Ok(())
    }

    /// Mark retired keys whose last token has expired (`retired_at` before `before`) as
    /// `expired`: they leave the JWKS. Answers how many changed.
    pub async fn expire_signing_keys(&self, before: DateTime<Utc>) -> Result<u64> {
        let done = signing_key::Entity::update_many()
            .col_expr(signing_key::Column::State, "expired".into())
            .filter(signing_key::Column::State.eq("retired"))
            .filter(signing_key::Column::RetiredAt.lt(before))
            .exec(&self.inner.db)
            .await?;
        if done.rows_affected > 0 {
            self.publish_change(super::Change::Keys);
        }
        Ok(done.rows_affected)
    }
}

fn store_error(e: crate::error::RegistryError) -> gatehouse_jwks::StoreError {
    use crate::error::RegistryError;
    match e {
        RegistryError::Conflict { .. } => gatehouse_jwks::StoreError::Conflict,
        RegistryError::Unavailable(why) => gatehouse_jwks::StoreError::Unavailable(why),
        other => gatehouse_jwks::StoreError::Failed(other.to_string()),
    }
}

/// The registry keeps the signing keys of the jwks crate.
#[async_trait::async_trait]
impl gatehouse_jwks::KeyStore for Registry {
    async fn signing_keys(
        &self,
    ) -> std::result::Result<Vec<StoredKey>, gatehouse_jwks::StoreError> {
        Registry::signing_keys(self).await.map_err(store_error)
    }

    async fn insert_signing_key(
        &self,
        key: &StoredKey,
    ) -> std::result::Result<(), gatehouse_jwks::StoreError> {
        Registry::insert_signing_key(self, key)
            .await
            .map_err(store_error)
    }

    async fn rotate_signing_keys(
        &self,
        actor: &str,
        next_kid: &str,
        new_next: &StoredKey,
        now: DateTime<Utc>,
    ) -> std::result::Result<(), gatehouse_jwks::StoreError> {
        Registry::rotate_signing_keys(self, actor, next_kid, new_next, now)
            .await
            .map_err(store_error)
    }

    async fn expire_signing_keys(
        &self,
        before: DateTime<Utc>,
    ) -> std::result::Result<u64, gatehouse_jwks::StoreError> {
        Registry::expire_signing_keys(self, before)
            .await
            .map_err(store_error)
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock().now()
    }

    fn max_token_ttl(&self) -> i64 {
        self.settings().max_token_ttl
    }
}

/// What a master-key change re-encrypted.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ResealReport {
    /// Signing keys now sealed under the current master key.
    pub signing_keys: u64,
    /// `jwt`/hmac secrets (current and grace-period ones) now sealed under it.
    pub hmac_secrets: u64,
    /// Values that already were.
    pub already_current: u64,
}

impl Registry {
    /// `gatehouse secret-key rotate`: seal every signing key and every `jwt`/hmac secret
    /// again under the current master key (GATEHOUSE_SECRET_KEY), opening what the previous
    /// one (GATEHOUSE_SECRET_KEY_PREVIOUS) sealed. One transaction; running again changes
    /// nothing. No cache is cleared: no secret changed, only its envelope, so instances keep
    /// serving from memory.
    pub async fn reseal_secrets(&self, actor: &super::Actor) -> Result<ResealReport> {
        use crate::entity::access_profile;
        use crate::error::RegistryError;
        actor.require_unlimited_write()?;
        let vault = &self.inner.vault;
        let txn = self.inner.db.begin().await?;
        let mut report = ResealReport::default();
        for row in signing_key::Entity::find().all(&txn).await? {
            match vault
                .reseal(&row.kid, &row.private_jwe)
                .map_err(RegistryError::Internal)?
            {
                Some(jwe) => {
                    let mut active: signing_key::ActiveModel = row.into();
                    active.private_jwe = Set(jwe);
                    active.update(&txn).await?;
                    report.signing_keys += 1;
                }
                None => report.already_current += 1,
            }
        }
        let profiles = access_profile::Entity::find()
            .filter(access_profile::Column::AuthType.eq(crate::types::AuthType::Jwt.as_str()))
            .all(&txn)
            .await?;
        for row in profiles {
            let Ok(mut stored) = serde_json::from_str::<super::jwt::JwtStored>(&row.settings)
            else {
                continue;
            };
            let mut changed = false;
            for sealed in [
                &mut stored.sealed_secret,
                &mut stored.previous_sealed_secret,
            ]
            .into_iter()
            .flatten()
            {
                match vault
                    .reseal(&row.id, sealed)
                    .map_err(RegistryError::Internal)?
                {
                    Some(again) => {
                        *sealed = again;
                        changed = true;
                        report.hmac_secrets += 1;
                    }
                    None => report.already_current += 1,
                }
            }
            if changed {
                let settings = serde_json::to_string(&stored)
                    .map_err(|e| RegistryError::Internal(e.to_string()))?;
                let mut active: access_profile::ActiveModel = row.into();
                active.settings = Set(settings);
                active.update(&txn).await?;
            }
        }
        self.audit(
            &txn,
            actor,
            "secret_key.rotate",
            "secret_key",
            "GATEHOUSE_SECRET_KEY",
            serde_json::json!({"signing_keys": report.signing_keys, "hmac_secrets": report.hmac_secrets,
                               "already_current": report.already_current}),
        )
        .await?;
        txn.commit().await?;
        Ok(report)
    }
}
