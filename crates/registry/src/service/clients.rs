//! Clients: the organisations that consume APIs, with contact details and a logo.

use super::audit::page;
use super::{Actor, AdminScope, Registry, decode_cursor};
use crate::api::{Client, Contact, ListParams, Logo, Page};
use crate::command::{ClientPatch, NewClient};
use crate::entity::{access_profile, client};
use crate::error::Forbidden;
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::types::{Name, ProjectId};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

fn text(name: &Option<Name>) -> Option<String> {
    name.as_ref().map(|n| n.as_str().to_owned())
}

fn view(row: client::Model) -> Client {
    Client {
        has_logo: row.logo.is_some(),
        id: row.id,
        name: row.name,
        description: row.description,
        project: row.project,
        contact: Contact {
            first_name: row.contact_first_name,
            last_name: row.contact_last_name,
            email: row.contact_email,
        },
        active: row.active,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

impl Registry {
    /// The project a new or moved client may be placed in: it must exist (422) and, for an
    /// admin limited to projects, be one of its own (403; a limited admin cannot leave a
    /// client outside every project either).
    async fn check_client_project<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        project: Option<&ProjectId>,
    ) -> Result<()> {
        let project = project.map(ProjectId::as_str);
        if !actor.sees_project(project) {
            return Err(RegistryError::Forbidden(Forbidden::ProjectLimited));
        }
        if let Some(id) = project
            && !self.project_exists(conn, id).await?
        {
            return Err(RegistryError::invalid(
                "project",
                "not_found",
                "no project has this id",
            ));
        }
        Ok(())
    }

    /// A client this actor may see; one of another project is "not found", exactly as a
    /// client that does not exist (a limited admin learns nothing about other projects).
    pub(crate) async fn visible_client<C: ConnectionTrait>(
        &self,
        conn: &C,
        actor: &Actor,
        id: &str,
    ) -> Result<client::Model> {
        let row = self.client_row(conn, id).await?;
        if actor.sees_project(row.project.as_deref()) {
            Ok(row)
        } else {
            Err(RegistryError::NotFound("client"))
        }
    }

    async fn check_client_name<C: ConnectionTrait>(
        &self,
        conn: &C,
        name: &Name,
        except: Option<&str>,
    ) -> Result<()> {
        let mut q = client::Entity::find().filter(client::Column::Name.eq(name.as_str()));
        if let Some(id) = except {
            q = q.filter(client::Column::Id.ne(id));
        }
        if q.one(conn).await?.is_some() {
            return Err(RegistryError::Conflict {
                field: "name".to_owned(),
                message: "another client already has this name".to_owned(),
            });
        }
        Ok(())
    }

    pub(crate) async fn insert_client<C: ConnectionTrait>(
        &self,
        conn: &C,
        new: &NewClient,
    ) -> Result<client::Model> {
        let now = self.now();
        Ok(client::ActiveModel {
            id: Set(new_id(IdKind::Client)),
            name: Set(new.name.as_str().to_owned()),
            description: Set(new.description.as_str().to_owned()),
            project: Set(new.project.as_ref().map(|p| p.as_str().to_owned())),
            contact_first_name: Set(text(&new.contact.first_name)),
            contact_last_name: Set(text(&new.contact.last_name)),
            contact_email: Set(new.contact.email.as_ref().map(|e| e.as_str().to_owned())),
            active: Set(new.active),
            logo: Set(None),
            logo_type: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(conn)
        .await?)
    }

    /// Create a client.
    pub async fn create_client(&self, actor: &Actor, new: NewClient) -> Result<Client> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        self.check_client_project(&txn, actor, new.project.as_ref())
            .await?;
        self.check_client_name(&txn, &new.name, None).await?;
        let row = self.insert_client(&txn, &new).await?;
        self.audit_in(
            &txn,
            actor,
            row.project.as_deref(),
            "client.create",
            "client",
            &row.id,
            serde_json::json!({"name": row.name}),
        )
        .await?;
        txn.commit().await?;
        Ok(view(row))
    }

    pub(crate) async fn client_row<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
    ) -> Result<client::Model> {
        client::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .ok_or(RegistryError::NotFound("client"))
    }

    /// One client the actor may see.
    pub async fn get_client(&self, actor: &Actor, id: &str) -> Result<Client> {
        self.visible_client(&self.inner.db, actor, id)
            .await
            .map(view)
    }

    /// A page of the clients the actor may see, optionally only those of one project and
    /// only those whose name contains `search` (case-insensitive).
    pub async fn list_clients(
        &self,
        actor: &Actor,
        params: &ListParams,
        project: Option<&str>,
        search: Option<&str>,
    ) -> Result<Page<Client>> {
        let limit = params.limit();
        let mut q = client::Entity::find().order_by_asc(client::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            q = q.filter(client::Column::Id.gt(after));
        }
        if let Some(p) = project {
            q = q.filter(client::Column::Project.eq(p));
        }
        if let AdminScope::Projects(ids) = actor.scope() {
            q = q.filter(client::Column::Project.is_in(ids.iter().cloned()));
        }
        if let Some(text) = search.map(str::trim).filter(|t| !t.is_empty()) {
            use sea_orm::sea_query::{Expr, ExprTrait, Func};
            let pattern = format!(
                "%{}%",
                text.to_lowercase()
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            );
            q = q.filter(
                Expr::expr(Func::lower(Expr::col(client::Column::Name)))
                    .like(sea_orm::sea_query::LikeExpr::new(pattern).escape('\\')),
            );
        }
        let rows = q.limit(limit + 1).all(&self.inner.db).await?;
        Ok(page(rows, limit, |r| r.id.clone(), view))
    }

    /// Change a client.
    pub async fn update_client(
        &self,
        actor: &Actor,
        id: &str,
        patch: ClientPatch,
    ) -> Result<Client> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        let row = self.visible_client(&txn, actor, id).await?;
        if let Some(project) = &patch.project
            && project.as_ref().map(ProjectId::as_str) != row.project.as_deref()
        {
            self.check_client_project(&txn, actor, project.as_ref())
                .await?;
        }
        if let Some(name) = &patch.name {
            self.check_client_name(&txn, name, Some(id)).await?;
        }
        let changed = patch.fields();
        let mut active: client::ActiveModel = row.into();
        if let Some(name) = patch.name {
            active.name = Set(name.as_str().to_owned());
        }
        if let Some(description) = patch.description {
            active.description = Set(description.as_str().to_owned());
        }
        if let Some(project) = patch.project {
            active.project = Set(project.map(|p| p.as_str().to_owned()));
        }
        if let Some(first) = patch.first_name {
            active.contact_first_name = Set(text(&first));
        }
        if let Some(last) = patch.last_name {
            active.contact_last_name = Set(text(&last));
        }
        if let Some(email) = patch.email {
            active.contact_email = Set(email.map(|e| e.as_str().to_owned()));
        }
        if let Some(on) = patch.active {
            active.active = Set(on);
        }
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            row.project.as_deref(),
            "client.update",
            "client",
            id,
            serde_json::json!({"fields": changed, "active": row.active}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(view(row))
    }

    /// Delete a client with all its profiles and their secrets.
    pub async fn delete_client(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        let row = self.visible_client(&txn, actor, id).await?;
        let profiles = access_profile::Entity::find()
            .filter(access_profile::Column::ClientId.eq(id))
            .all(&txn)
            .await?;
        for p in &profiles {
            self.delete_secrets(&txn, &p.id).await?;
        }
        client::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        self.audit_in(
            &txn,
            actor,
            row.project.as_deref(),
            "client.delete",
            "client",
            id,
            serde_json::json!({"name": row.name, "profiles": profiles.len()}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }

    /// Store a client's logo (PNG or JPEG, ≤ 256 KiB, judged by content).
    pub async fn put_logo(&self, actor: &Actor, id: &str, bytes: Vec<u8>) -> Result<Client> {
        actor.require_write()?;
        let logo = Logo::parse(bytes).map_err(|e| RegistryError::Validation(vec![e]))?;
        let txn = self.inner.db.begin().await?;
        let row = self.visible_client(&txn, actor, id).await?;
        let project = row.project.clone();
        let mut active: client::ActiveModel = row.into();
        let size = logo.bytes.len();
        active.logo = Set(Some(logo.bytes));
        active.logo_type = Set(Some(logo.content_type.to_owned()));
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "client.logo.put",
            "client",
            id,
            serde_json::json!({"content_type": logo.content_type, "bytes": size}),
        )
        .await?;
        txn.commit().await?;
        Ok(view(row))
    }

    /// A client's logo.
    pub async fn get_logo(&self, actor: &Actor, id: &str) -> Result<Logo> {
        let row = self.visible_client(&self.inner.db, actor, id).await?;
        match (row.logo, row.logo_type.as_deref()) {
            (Some(bytes), Some("image/png")) => Ok(Logo {
                content_type: "image/png",
                bytes,
            }),
            (Some(bytes), Some(_)) => Ok(Logo {
                content_type: "image/jpeg",
                bytes,
            }),
            _ => Err(RegistryError::NotFound("logo")),
        }
    }

    /// Remove a client's logo.
    pub async fn delete_logo(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_write()?;
        let txn = self.inner.db.begin().await?;
        let row = self.visible_client(&txn, actor, id).await?;
        let project = row.project.clone();
        if row.logo.is_none() {
            return Err(RegistryError::NotFound("logo"));
        }
        let mut active: client::ActiveModel = row.into();
        active.logo = Set(None);
        active.logo_type = Set(None);
        active.updated_at = Set(self.now());
        active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            project.as_deref(),
            "client.logo.delete",
            "client",
            id,
            serde_json::json!({}),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
