//! API collections: the resource servers an owner protects, with their scopes and their own
//! introspection credentials.

use super::audit::page;
use super::{Actor, Registry, decode_cursor};
use crate::api::{
    Collection, CollectionCreated, CollectionSecretIssued, ListParams, Page, ScopeDoc,
};
use crate::command::{CollectionPatch, NewCollection, ScopeDef};
use crate::entity::{collection, collection_scope};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::secret::generate_client_secret;
use crate::types::{Audience, FieldError, HttpUrl, Name};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};
use std::collections::{BTreeMap, HashSet};

/// The scope list rules, on create and update: at most 200, no name twice.
fn check_scopes(scopes: &[ScopeDef]) -> Result<()> {
    let mut errors = Vec::new();
    if scopes.len() > 200 {
        errors.push(FieldError::new(
            "scopes",
            "too_many",
            "at most 200 scopes per collection",
        ));
    }
    let mut seen = HashSet::new();
    for (i, s) in scopes.iter().enumerate() {
        if !seen.insert(s.name.as_str()) {
            errors.push(FieldError::new(
                format!("scopes[{i}].name"),
                "duplicate",
                "scope listed twice",
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Validation(errors))
    }
}

fn scope_docs(scopes: &[ScopeDef]) -> Vec<ScopeDoc> {
    scopes
        .iter()
        .map(|s| ScopeDoc {
            name: s.name.as_str().to_owned(),
            description: s.description.as_str().to_owned(),
        })
        .collect()
}

fn url_text(url: &Option<HttpUrl>) -> Option<String> {
    url.as_ref().map(|u| u.as_str().to_owned())
}

impl Registry {
    pub(crate) async fn scopes_of<C: ConnectionTrait>(
        &self,
        conn: &C,
        collection_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<ScopeDoc>>> {
        let mut out: BTreeMap<String, Vec<ScopeDoc>> = BTreeMap::new();
        if collection_ids.is_empty() {
            return Ok(out);
        }
        let rows = collection_scope::Entity::find()
            .filter(collection_scope::Column::CollectionId.is_in(collection_ids.iter().cloned()))
            .order_by_asc(collection_scope::Column::Position)
            .all(conn)
            .await?;
        for r in rows {
            out.entry(r.collection_id).or_default().push(ScopeDoc {
                name: r.name,
                description: r.description,
            });
        }
        Ok(out)
    }

    fn collection_view(row: collection::Model, scopes: Vec<ScopeDoc>) -> Collection {
        Collection {
            id: row.id,
            name: row.name,
            description: row.description,
            audience: row.audience,
            scopes,
            integration_url: row.integration_url,
            documentation_url: row.documentation_url,
            introspection_client_id: row.introspection_client_id,
            builtin: row.builtin,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }

    async fn check_unique_collection<C: ConnectionTrait>(
        &self,
        conn: &C,
        name: &Name,
        audience: &Audience,
        scopes: &[ScopeDef],
        except_id: Option<&str>,
    ) -> Result<()> {
        let mut q = collection::Entity::find().filter(
            Condition::any()
                .add(collection::Column::Name.eq(name.as_str()))
                .add(collection::Column::Audience.eq(audience.as_str())),
        );
        if let Some(id) = except_id {
            q = q.filter(collection::Column::Id.ne(id));
        }
        if let Some(other) = q.one(conn).await? {
            let field = if other.name == name.as_str() {
                "name"
            } else {
                "audience"
            };
            return Err(RegistryError::Conflict {
                field: field.to_owned(),
                message: format!("another collection already has this {field}"),
            });
        }
        let names: Vec<String> = scopes.iter().map(|s| s.name.as_str().to_owned()).collect();
        if !names.is_empty() {
            let mut q = collection_scope::Entity::find()
                .filter(collection_scope::Column::Name.is_in(names));
            if let Some(id) = except_id {
                q = q.filter(collection_scope::Column::CollectionId.ne(id));
            }
            if let Some(taken) = q.one(conn).await? {
                return Err(RegistryError::Conflict {
                    field: "scopes".to_owned(),
                    message: format!(
                        "scope `{}` is already defined by another collection",
                        taken.name
                    ),
                });
            }
        }
        Ok(())
    }

    async fn write_scopes<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
        scopes: &[ScopeDef],
    ) -> Result<()> {
        collection_scope::Entity::delete_many()
            .filter(collection_scope::Column::CollectionId.eq(id))
            .exec(conn)
            .await?;
        if scopes.is_empty() {
            return Ok(());
        }
        let rows = scopes
            .iter()
            .enumerate()
            .map(|(i, scope)| collection_scope::ActiveModel {
                name: Set(scope.name.as_str().to_owned()),
                collection_id: Set(id.to_owned()),
                description: Set(scope.description.as_str().to_owned()),
                position: Set(i32::try_from(i).unwrap_or(i32::MAX)),
            });
        collection_scope::Entity::insert_many(rows)
            .exec(conn)
            .await?;
        Ok(())
    }

    /// Insert a collection row and its scopes, returning the new id. Shared by the admin API
    /// and the bootstrap of the built-in collection.
    pub(crate) async fn insert_collection<C: ConnectionTrait>(
        &self,
        conn: &C,
        valid: &NewCollection,
        builtin: bool,
        secret_hash: String,
    ) -> Result<collection::Model> {
        let now = self.now();
        let id = new_id(IdKind::Collection);
        let row = collection::ActiveModel {
            id: Set(id.clone()),
            name: Set(valid.name.as_str().to_owned()),
            description: Set(valid.description.as_str().to_owned()),
            audience: Set(valid.audience.as_str().to_owned()),
            integration_url: Set(valid
                .integration_url
                .as_ref()
                .map(|u| u.as_str().to_owned())),
            documentation_url: Set(valid
                .documentation_url
                .as_ref()
                .map(|u| u.as_str().to_owned())),
            introspection_client_id: Set(new_id(IdKind::ResourceServer)),
            builtin: Set(builtin),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(conn)
        .await?;
        self.write_scopes(conn, &id, &valid.scopes).await?;
        self.insert_secret(conn, &id, secret_hash).await?;
        Ok(row)
    }

    /// Create a collection; the answer carries its introspection secret, once.
    pub async fn create_collection(
        &self,
        actor: &Actor,
        valid: NewCollection,
    ) -> Result<CollectionCreated> {
        actor.require_unlimited_write()?;
        check_scopes(&valid.scopes)?;
        let secret = generate_client_secret();
        let hash = self.inner.hasher.hash(&secret).await?;
        let txn = self.inner.db.begin().await?;
        self.check_unique_collection(&txn, &valid.name, &valid.audience, &valid.scopes, None)
            .await?;
        let row = self.insert_collection(&txn, &valid, false, hash).await?;
        self.audit(
            &txn,
            actor,
            "collection.create",
            "collection",
            &row.id,
            serde_json::json!({"name": row.name, "audience": row.audience}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(CollectionCreated {
            collection: Self::collection_view(row, scope_docs(&valid.scopes)),
            introspection_client_secret: secret.expose_secret().to_owned(),
        })
    }

    async fn collection_row<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
    ) -> Result<collection::Model> {
        collection::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .ok_or(RegistryError::NotFound("collection"))
    }

    /// One collection.
    pub async fn get_collection(&self, id: &str) -> Result<Collection> {
        let row = self.collection_row(&self.inner.db, id).await?;
        let mut scopes = self
            .scopes_of(&self.inner.db, std::slice::from_ref(&row.id))
            .await?;
        let s = scopes.remove(&row.id).unwrap_or_default();
        Ok(Self::collection_view(row, s))
    }

    /// A page of collections, ordered by id.
    pub async fn list_collections(&self, params: &ListParams) -> Result<Page<Collection>> {
        let limit = params.limit();
        let mut q = collection::Entity::find().order_by_asc(collection::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            q = q.filter(collection::Column::Id.gt(after));
        }
        let rows = q.limit(limit + 1).all(&self.inner.db).await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut scopes = self.scopes_of(&self.inner.db, &ids).await?;
        Ok(page(
            rows,
            limit,
            |r| r.id.clone(),
            |r| {
                let s = scopes.remove(&r.id).unwrap_or_default();
                Self::collection_view(r, s)
            },
        ))
    }

    /// Change a collection (never the built-in admin collection).
    pub async fn update_collection(
        &self,
        actor: &Actor,
        id: &str,
        patch: CollectionPatch,
    ) -> Result<Collection> {
        actor.require_unlimited_write()?;
        if let Some(scopes) = &patch.scopes {
            check_scopes(scopes)?;
        }
        let changed = patch.fields();
        let txn = self.inner.db.begin().await?;
        let row = self.collection_row(&txn, id).await?;
        if row.builtin {
            return Err(RegistryError::invalid(
                "id",
                "builtin",
                "the built-in admin collection cannot be changed",
            ));
        }
        let name = match patch.name {
            Some(n) => n,
            None => Name::parse(&row.name).map_err(|e| RegistryError::Internal(e.message))?,
        };
        let audience = match patch.audience {
            Some(a) => a,
            None => {
                Audience::parse(&row.audience).map_err(|e| RegistryError::Internal(e.message))?
            }
        };
        let scopes = patch.scopes;
        self.check_unique_collection(
            &txn,
            &name,
            &audience,
            scopes.as_deref().unwrap_or(&[]),
            Some(id),
        )
        .await?;
        let mut active: collection::ActiveModel = row.into();
        active.name = Set(name.as_str().to_owned());
        active.audience = Set(audience.as_str().to_owned());
        if let Some(d) = &patch.description {
            active.description = Set(d.as_str().to_owned());
        }
        if let Some(u) = &patch.integration_url {
            active.integration_url = Set(url_text(u));
        }
        if let Some(u) = &patch.documentation_url {
            active.documentation_url = Set(url_text(u));
        }
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        if let Some(scopes) = &scopes {
            self.write_scopes(&txn, id, scopes).await?;
        }
        let shown = self
            .scopes_of(&txn, std::slice::from_ref(&row.id))
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        self.audit(
            &txn,
            actor,
            "collection.update",
            "collection",
            id,
            serde_json::json!({"fields": changed}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(Self::collection_view(row, shown))
    }

    /// Delete a collection; profiles lose their grant of it.
    pub async fn delete_collection(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_unlimited_write()?;
        let txn = self.inner.db.begin().await?;
        let row = self.collection_row(&txn, id).await?;
        if row.builtin {
            return Err(RegistryError::invalid(
                "id",
                "builtin",
                "the built-in admin collection cannot be deleted",
            ));
        }
        self.delete_secrets(&txn, id).await?;
        collection::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        self.audit(
            &txn,
            actor,
            "collection.delete",
            "collection",
            id,
            serde_json::json!({"name": row.name}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }

    /// Issue a new introspection secret for a collection, once; the old one lives on for
    /// `grace_seconds`.
    pub async fn refresh_collection_secret(
        &self,
        actor: &Actor,
        id: &str,
        grace_seconds: Option<i64>,
    ) -> Result<CollectionSecretIssued> {
        actor.require_unlimited_write()?;
        let secret = generate_client_secret();
        let hash = self.inner.hasher.hash(&secret).await?;
        let txn = self.inner.db.begin().await?;
        let row = self.collection_row(&txn, id).await?;
        let previous = self.rotate_secret(&txn, id, hash, grace_seconds).await?;
        self.audit(
            &txn,
            actor,
            "collection.secret.refresh",
            "collection",
            id,
            serde_json::json!({"grace_seconds": grace_seconds.unwrap_or(0)}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(CollectionSecretIssued {
            introspection_client_id: row.introspection_client_id,
            introspection_client_secret: secret.expose_secret().to_owned(),
            previous_secret_expires_at: previous,
        })
    }
}
