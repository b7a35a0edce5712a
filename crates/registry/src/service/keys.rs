//! Storage of the server's signing keys. The crypto lives in the jwks crate; this module
//! only moves encrypted rows in and out.

use super::Registry;
use crate::entity::signing_key;
use crate::error::Result;
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set};

/// A signing key as stored: the private part is a JWE, never clear text.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// Key id (`kid`).
    pub kid: String,
    /// JWS algorithm (`ES256`, `RS256`, `EdDSA`).
    pub alg: String,
    /// `next`, `active` or `retired`.
    pub state: String,
    /// The private key encrypted under GATEHOUSE_SECRET_KEY (compact JWE).
    pub private_jwe: String,
    /// The public JWK (JSON).
    pub public_jwk: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it started signing.
    pub activated_at: Option<DateTime<Utc>>,
    /// When it stopped signing.
    pub retired_at: Option<DateTime<Utc>>,
}

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
}
