//! First-start setup: the built-in admin collection and the bootstrap admin client.

use super::{Actor, Registry};
use crate::command::{NewCollection, ScopeDef};
use crate::entity::{client, collection};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::secret::{SecretString, generate_client_secret};
use crate::types::{
    ADMIN_READ_SCOPE, ADMIN_SCOPE, Audience, AuthType, Description, IpRules, Name, ScopeName,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set, TransactionTrait,
};

/// Operator-chosen credentials for the bootstrap admin.
#[derive(Debug)]
pub struct BootstrapCredentials {
    /// The admin profile's `oauth_client_id`.
    pub client_id: String,
    /// Its secret.
    pub secret: SecretString,
}

/// What bootstrap did.
#[derive(Debug)]
#[non_exhaustive]
pub enum BootstrapOutcome {
    /// The database already had clients; nothing was created.
    AlreadyInitialised,
    /// An admin client was created.
    Created {
        /// The admin profile's `oauth_client_id`.
        client_id: String,
        /// The generated secret, when the operator did not supply one.
        generated_secret: Option<SecretString>,
    },
}

const ADMIN_COLLECTION_NAME: &str = "Gatehouse admin API";

impl Registry {
    /// Make sure the built-in admin collection exists with the configured audience; returns
    /// its id.
    pub async fn ensure_admin_collection(&self) -> Result<String> {
        let audience = &self.inner.settings.admin_audience;
        let db = &self.inner.db;
        if let Some(row) = collection::Entity::find()
            .filter(collection::Column::Builtin.eq(true))
            .one(db)
            .await?
        {
            if &row.audience != audience {
                let id = row.id.clone();
                let mut active: collection::ActiveModel = row.into();
                active.audience = Set(audience.clone());
                active.updated_at = Set(self.now());
                active.update(db).await?;
                self.invalidate();
                return Ok(id);
            }
            return Ok(row.id);
        }
        let invalid = |e: crate::types::Invalid| RegistryError::Internal(e.message);
        let valid = NewCollection {
            name: Name::parse(ADMIN_COLLECTION_NAME).map_err(invalid)?,
            description: Description::parse(
                "The Gatehouse admin JSON API. Granted only explicitly.",
            )
            .map_err(invalid)?,
            audience: Audience::parse(audience).map_err(invalid)?,
            scopes: vec![
                ScopeDef {
                    name: ScopeName::parse_any(ADMIN_SCOPE).map_err(invalid)?,
                    description: Description::parse("Read and change the registry")
                        .map_err(invalid)?,
                },
                ScopeDef {
                    name: ScopeName::parse_any(ADMIN_READ_SCOPE).map_err(invalid)?,
                    description: Description::parse("Read the registry").map_err(invalid)?,
                },
            ],
            integration_url: None,
            documentation_url: None,
        };
        // Nobody introspects with the admin collection's credentials; its secret is random and
        // never shown.
        let hash = self.inner.hasher.hash(&generate_client_secret()).await?;
        let txn = db.begin().await?;
        let row = self.insert_collection(&txn, &valid, true, hash).await?;
        self.audit(
            &txn,
            &Actor::system(),
            "collection.create",
            "collection",
            &row.id,
            serde_json::json!({"builtin": true}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(row.id)
    }

    /// On an empty database, create the bootstrap admin: a client with one `oauth2` profile
    /// granted the admin collection. Credentials come from the operator or are generated; a
    /// generated secret is handed to `persist` INSIDE the transaction, before the commit, so
    /// it is never lost: if `persist` fails (say the file already exists), nothing is created.
    pub async fn bootstrap_admin(
        &self,
        supplied: Option<BootstrapCredentials>,
        persist: impl FnOnce(&str, &SecretString) -> std::result::Result<(), String>,
    ) -> Result<BootstrapOutcome> {
        let admin_collection = self.ensure_admin_collection().await?;
        if client::Entity::find().count(&self.inner.db).await? > 0 {
            return Ok(BootstrapOutcome::AlreadyInitialised);
        }
        let (client_id, secret, generated) = match supplied {
            Some(c) => {
                let ok_id = !c.client_id.is_empty()
                    && c.client_id.len() <= 128
                    && c.client_id
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || "-_.".contains(ch));
                if !ok_id {
                    return Err(RegistryError::invalid(
                        "bootstrap_client_id",
                        "invalid",
                        "use 1-128 of A-Z a-z 0-9 - _ .",
                    ));
                }
                if c.secret.expose_secret().len() < 32 {
                    return Err(RegistryError::invalid(
                        "bootstrap_client_secret",
                        "too_short",
                        "use at least 32 characters",
                    ));
                }
                (c.client_id, c.secret, false)
            }
            None => (new_id(IdKind::OAuthClient), generate_client_secret(), true),
        };
        let persist = |id: &str, secret: &SecretString| {
            if generated {
                persist(id, secret)
            } else {
                Ok(())
            }
        };
        self.create_admin(
            &admin_collection,
            "Gatehouse administrators",
            "bootstrap admin",
            "bootstrap.admin",
            &Actor::system(),
            &client_id,
            &secret,
            persist,
        )
        .await?;
        Ok(BootstrapOutcome::Created {
            client_id,
            generated_secret: generated.then_some(secret),
        })
    }

    /// A way back in (`gatehouse admin recover`, like Keycloak's `bootstrap-admin`): a fresh
    /// admin client and `oauth2` profile granted `gatehouse:admin`, whatever the database
    /// holds. The generated credentials go to `persist` before the commit; audited as
    /// `admin.recover` by `actor`. Answers the new `oauth_client_id`.
    pub async fn recover_admin(
        &self,
        actor: &Actor,
        persist: impl FnOnce(&str, &SecretString) -> std::result::Result<(), String>,
    ) -> Result<String> {
        let admin_collection = self.ensure_admin_collection().await?;
        let client_id = new_id(IdKind::OAuthClient);
        let secret = generate_client_secret();
        let stamp = self.now().format("%Y-%m-%d %H:%M:%S UTC").to_string();
        self.create_admin(
            &admin_collection,
            &format!("Recovered administrators ({stamp})"),
            "recovered admin",
            "admin.recover",
            actor,
            &client_id,
            &secret,
            persist,
        )
        .await?;
        Ok(client_id)
    }

    /// The one way an admin is made outside the admin API: a client and an `oauth2` profile
    /// granted the admin collection, audited, with `persist` run before the commit.
    #[allow(clippy::too_many_arguments)]
    async fn create_admin(
        &self,
        admin_collection: &str,
        client_name: &str,
        profile_name: &str,
        action: &str,
        actor: &Actor,
        client_id: &str,
        secret: &SecretString,
        persist: impl FnOnce(&str, &SecretString) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let hash = self.inner.hasher.hash(secret).await?;
        let invalid = |e: crate::types::Invalid| RegistryError::Internal(e.message);
        let txn = self.inner.db.begin().await?;
        let client_row = self
            .insert_client(
                &txn,
                &crate::command::NewClient::system(Name::parse(client_name).map_err(invalid)?),
            )
            .await?;
        let profile = super::profiles::ValidProfile {
            name: Name::parse(profile_name).map_err(invalid)?,
            description: Description::parse("Created by the server, not the admin API")
                .map_err(invalid)?,
            collections: vec![admin_collection.to_owned()],
            all_collections: false,
            scopes: None,
            auth_type: AuthType::OAuth2,
            ip_rules: IpRules::default(),
            active: true,
            token_ttl_seconds: self
                .inner
                .settings
                .default_token_ttl
                .min(self.inner.settings.max_token_ttl),
            custom_claims: serde_json::Map::new(),
            jwt: None,
            policy_id: None,
            admin_projects: None,
        };
        let (row, _) = self
            .insert_profile(&txn, &client_row.id, &profile, client_id, Some(hash))
            .await?;
        self.audit(
            &txn,
            actor,
            action,
            "access_profile",
            &row.id,
            serde_json::json!({"oauth_client_id": client_id}),
        )
        .await?;
        // Written down before it exists: a failure here rolls everything back.
        persist(client_id, secret).map_err(RegistryError::Internal)?;
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }
}
