//! Projects as a resource (`prj_…`): a client's `project` becomes a project id, an admin
//! profile may be limited to projects (`admin_projects`), and audit events remember the
//! project of the client they concern so that a limited admin sees only its own.
//!
//! Today's free-text `clients.project` values become projects of the same name.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_projects"
    }
}

fn id(name: &str) -> Alias {
    Alias::new(name)
}

/// A fresh project id: `prj_` and 22 base62 characters from the OS CSPRNG (as the registry's
/// own ids).
fn project_id() -> String {
    use rand::Rng;
    const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::rng();
    let tail: String = (0..22)
        .map(|_| {
            char::from(
                BASE62
                    .get(rng.random_range(0..BASE62.len()))
                    .copied()
                    .unwrap_or(b'0'),
            )
        })
        .collect();
    format!("prj_{tail}")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(id("projects"))
                    .col(string(id("id")).primary_key())
                    .col(string_uniq(id("name")))
                    .col(string(id("description")))
                    .col(timestamp_with_time_zone(id("created_at")))
                    .col(timestamp_with_time_zone(id("updated_at")))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(id("access_profiles"))
                    .add_column(ColumnDef::new(id("admin_projects")).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(id("audit_events"))
                    .add_column(ColumnDef::new(id("project_id")).string().null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_project")
                    .table(id("audit_events"))
                    .col(id("project_id"))
                    .col(id("id"))
                    .to_owned(),
            )
            .await?;

        // Free-text projects → projects of the same name; clients then name the project id.
        let db = manager.get_connection();
        let select = Query::select()
            .distinct()
            .column(id("project"))
            .from(id("clients"))
            .and_where(Expr::col(id("project")).is_not_null())
            .to_owned();
        // Migrations run before the server's injected clock exists: the wall clock it is.
        let now = chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
        for row in db.query_all(&select).await? {
            let name: String = row.try_get("", "project")?;
            let project = project_id();
            let insert = Query::insert()
                .into_table(id("projects"))
                .columns([
                    id("id"),
                    id("name"),
                    id("description"),
                    id("created_at"),
                    id("updated_at"),
                ])
                .values_panic([
                    project.clone().into(),
                    name.clone().into(),
                    String::new().into(),
                    now.into(),
                    now.into(),
                ])
                .to_owned();
            db.execute(&insert).await?;
            let update = Query::update()
                .table(id("clients"))
                .value(id("project"), project)
                .and_where(Expr::col(id("project")).eq(name))
                .to_owned();
            db.execute(&update).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Back to free text: each client's project id becomes the project's name.
        let db = manager.get_connection();
        let select = Query::select()
            .columns([id("id"), id("name")])
            .from(id("projects"))
            .to_owned();
        for row in db.query_all(&select).await? {
            let project: String = row.try_get("", "id")?;
            let name: String = row.try_get("", "name")?;
            let update = Query::update()
                .table(id("clients"))
                .value(id("project"), name)
                .and_where(Expr::col(id("project")).eq(project))
                .to_owned();
            db.execute(&update).await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("idx_audit_events_project")
                    .table(id("audit_events"))
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            ("audit_events", "project_id"),
            ("access_profiles", "admin_projects"),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(id(table))
                        .drop_column(id(column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table(id("projects")).to_owned())
            .await
    }
}
