//! Clients: the organisations that consume APIs, with contact details and a logo.

use super::audit::page;
use super::{Actor, AdminScope, Registry, decode_cursor, parse_input};
use crate::api::{Client, ClientInput, Contact, ListParams, Logo, Page, merge_patch};
use crate::entity::{access_profile, client};
use crate::error::Forbidden;
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::types::{Description, Email, FieldError, Name};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
};

pub(crate) struct ValidClient {
    name: Name,
    description: Description,
    project: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<Email>,
    active: bool,
}

fn optional_name(v: &Option<String>, field: &str, errors: &mut Vec<FieldError>) -> Option<String> {
    match v.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Name::parse(s)
            .map(|n| n.as_str().to_owned())
            .map_err(|e| errors.push(e.at(field)))
            .ok(),
    }
}

impl ValidClient {
    /// A client created by the server itself.
    pub(crate) fn system(name: Name) -> Self {
        Self {
            name,
            description: Description::default(),
            project: None,
            first_name: None,
            last_name: None,
            email: None,
            active: true,
        }
    }
}

pub(crate) fn validate_client(input: &ClientInput) -> Result<ValidClient> {
    let mut errors = Vec::new();
    let name = Name::parse(&input.name)
        .map_err(|e| errors.push(e.at("name")))
        .ok();
    let description = Description::parse(&input.description)
        .map_err(|e| errors.push(e.at("description")))
        .ok();
    // A project id; whether it exists (and is the actor's) needs the stored state.
    let project = match input.project.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) if id.starts_with("prj_") && id.len() <= 64 => Some(id.to_owned()),
        Some(_) => {
            errors.push(FieldError::new(
                "project",
                "invalid_project",
                "must be a project id (`prj_…`) or null",
            ));
            None
        }
    };
    let first_name = optional_name(&input.contact.first_name, "contact.first_name", &mut errors);
    let last_name = optional_name(&input.contact.last_name, "contact.last_name", &mut errors);
    let email = match input.contact.email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(s) => Email::parse(s)
            .map_err(|e| errors.push(e.at("contact.email")))
            .ok(),
    };
    match (name, description) {
        (Some(name), Some(description)) if errors.is_empty() => Ok(ValidClient {
            name,
            description,
            project,
            first_name,
            last_name,
            email,
            active: input.active,
        }),
        _ => Err(RegistryError::Validation(errors)),
    }
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

fn to_input(row: &client::Model) -> ClientInput {
    ClientInput {
        name: row.name.clone(),
        description: row.description.clone(),
        project: row.project.clone(),
        contact: Contact {
            first_name: row.contact_first_name.clone(),
            last_name: row.contact_last_name.clone(),
            email: row.contact_email.clone(),
        },
        active: row.active,
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
        project: Option<&str>,
    ) -> Result<()> {
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
        valid: &ValidClient,
    ) -> Result<client::Model> {
        let now = self.now();
        Ok(client::ActiveModel {
            id: Set(new_id(IdKind::Client)),
            name: Set(valid.name.as_str().to_owned()),
            description: Set(valid.description.as_str().to_owned()),
            project: Set(valid.project.clone()),
            contact_first_name: Set(valid.first_name.clone()),
            contact_last_name: Set(valid.last_name.clone()),
            contact_email: Set(valid.email.as_ref().map(|e| e.as_str().to_owned())),
            active: Set(valid.active),
            logo: Set(None),
            logo_type: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(conn)
        .await?)
    }

    /// Create a client.
    pub async fn create_client(&self, actor: &Actor, body: serde_json::Value) -> Result<Client> {
        actor.require_write()?;
        let input: ClientInput = parse_input(body)?;
        let valid = validate_client(&input)?;
        let txn = self.inner.db.begin().await?;
        self.check_client_project(&txn, actor, valid.project.as_deref())
            .await?;
        self.check_client_name(&txn, &valid.name, None).await?;
        let row = self.insert_client(&txn, &valid).await?;
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

    /// Apply a JSON Merge Patch to a client.
    pub async fn update_client(
        &self,
        actor: &Actor,
        id: &str,
        patch: serde_json::Value,
    ) -> Result<Client> {
        actor.require_write()?;
        if !patch.is_object() {
            return Err(RegistryError::invalid(
                "body",
                "invalid_type",
                "a merge patch must be a JSON object",
            ));
        }
        let txn = self.inner.db.begin().await?;
        let row = self.visible_client(&txn, actor, id).await?;
        let mut doc = serde_json::to_value(to_input(&row))
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        merge_patch(&mut doc, &patch);
        let valid = validate_client(&parse_input(doc)?)?;
        if valid.project != row.project {
            self.check_client_project(&txn, actor, valid.project.as_deref())
                .await?;
        }
        self.check_client_name(&txn, &valid.name, Some(id)).await?;
        let mut active: client::ActiveModel = row.into();
        active.name = Set(valid.name.as_str().to_owned());
        active.description = Set(valid.description.as_str().to_owned());
        active.project = Set(valid.project.clone());
        active.contact_first_name = Set(valid.first_name.clone());
        active.contact_last_name = Set(valid.last_name.clone());
        active.contact_email = Set(valid.email.as_ref().map(|e| e.as_str().to_owned()));
        active.active = Set(valid.active);
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        let changed: Vec<&String> = patch
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
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
