//! Projects: groups of clients. An admin profile limited by `admin_projects` sees and changes
//! only the clients of its projects; projects themselves are readable by every admin and
//! writable only by unlimited ones.

use super::audit::page;
use super::{Actor, AdminScope, Registry, decode_cursor};
use crate::api::{ListParams, Page, Project};
use crate::command::{NewProject, ProjectPatch};
use crate::entity::{client, project};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

fn view(row: project::Model) -> Project {
    Project {
        id: row.id,
        name: row.name,
        description: row.description,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

impl Registry {
    async fn check_project_name<C: ConnectionTrait>(
        &self,
        conn: &C,
        name: &str,
        except: Option<&str>,
    ) -> Result<()> {
        let mut q = project::Entity::find().filter(project::Column::Name.eq(name));
        if let Some(id) = except {
            q = q.filter(project::Column::Id.ne(id));
        }
        if q.one(conn).await?.is_some() {
            return Err(RegistryError::Conflict {
                field: "name".to_owned(),
                message: "another project already has this name".to_owned(),
            });
        }
        Ok(())
    }

    /// Whether a project with this id exists.
    pub(crate) async fn project_exists<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
    ) -> Result<bool> {
        Ok(crate::error::storable(id)
            && project::Entity::find_by_id(id.to_owned())
                .one(conn)
                .await?
                .is_some())
    }

    /// Create a project (unlimited admins only).
    pub async fn create_project(&self, actor: &Actor, command: NewProject) -> Result<Project> {
        actor.require_unlimited_write()?;
        let txn = self.inner.db.begin().await?;
        self.check_project_name(&txn, command.name.as_str(), None)
            .await?;
        let now = self.now();
        let row = project::ActiveModel {
            id: Set(new_id(IdKind::Project)),
            name: Set(command.name.as_str().to_owned()),
            description: Set(command.description.as_str().to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        self.audit_in(
            &txn,
            actor,
            Some(&row.id),
            "project.create",
            "project",
            &row.id,
            serde_json::json!({"name": row.name}),
        )
        .await?;
        txn.commit().await?;
        Ok(view(row))
    }

    /// One project (every admin may read every project).
    pub async fn get_project(&self, id: &str) -> Result<Project> {
        if !crate::error::storable(id) {
            return Err(RegistryError::NotFound("project"));
        }
        project::Entity::find_by_id(id.to_owned())
            .one(&self.inner.db)
            .await?
            .map(view)
            .ok_or(RegistryError::NotFound("project"))
    }

    /// A page of projects, by id.
    pub async fn list_projects(&self, params: &ListParams) -> Result<Page<Project>> {
        let limit = params.limit();
        let mut q = project::Entity::find().order_by_asc(project::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            q = q.filter(project::Column::Id.gt(after));
        }
        let rows = q.limit(limit + 1).all(&self.inner.db).await?;
        Ok(page(rows, limit, |r| r.id.clone(), view))
    }

    /// The projects an actor may place clients in: all of them, or its own.
    pub async fn projects_of(&self, actor: &Actor) -> Result<Vec<Project>> {
        let mut q = project::Entity::find().order_by_asc(project::Column::Name);
        if let AdminScope::Projects(ids) = actor.scope() {
            q = q.filter(project::Column::Id.is_in(ids.iter().cloned()));
        }
        Ok(q.all(&self.inner.db).await?.into_iter().map(view).collect())
    }

    /// Change a project (unlimited admins only).
    pub async fn update_project(
        &self,
        actor: &Actor,
        id: &str,
        patch: ProjectPatch,
    ) -> Result<Project> {
        actor.require_unlimited_write()?;
        let txn = self.inner.db.begin().await?;
        let row = project::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or(RegistryError::NotFound("project"))?;
        let fields = patch.fields();
        let mut active: project::ActiveModel = row.into();
        if let Some(name) = &patch.name {
            self.check_project_name(&txn, name.as_str(), Some(id))
                .await?;
            active.name = Set(name.as_str().to_owned());
        }
        if let Some(description) = &patch.description {
            active.description = Set(description.as_str().to_owned());
        }
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        self.audit_in(
            &txn,
            actor,
            Some(id),
            "project.update",
            "project",
            id,
            serde_json::json!({"fields": fields}),
        )
        .await?;
        txn.commit().await?;
        Ok(view(row))
    }

    /// Delete a project that no client belongs to (unlimited admins only; 409 otherwise).
    pub async fn delete_project(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_unlimited_write()?;
        let txn = self.inner.db.begin().await?;
        let row = project::Entity::find_by_id(id.to_owned())
            .one(&txn)
            .await?
            .ok_or(RegistryError::NotFound("project"))?;
        let clients = client::Entity::find()
            .filter(client::Column::Project.eq(id))
            .count(&txn)
            .await?;
        if clients > 0 {
            return Err(RegistryError::Conflict {
                field: "clients".to_owned(),
                message: format!(
                    "{clients} client(s) still belong to this project; move or delete them first"
                ),
            });
        }
        project::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        self.audit_in(
            &txn,
            actor,
            Some(id),
            "project.delete",
            "project",
            id,
            serde_json::json!({"name": row.name}),
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
