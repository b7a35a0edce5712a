//! Policies: a rate limit and/or a quota, attached to access profiles by `policy_id`. The
//! limits themselves are enforced by [`crate::limits`]; this module is their admin side.

use super::audit::page;
use super::{Actor, Registry, decode_cursor};
use crate::api::{ListParams, Page, Policy, Quota, QuotaPer, RateLimit, RatePer};
use crate::command::{LimitPatch, NewPolicy, PolicyPatch};
use crate::entity::{access_profile, policy};
use crate::error::{RegistryError, Result};
use crate::ids::{IdKind, new_id};
use crate::types::{FieldError, Name};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait,
};

/// Most requests a rate limit may allow per window.
const MAX_RATE: i64 = 1_000_000;
/// Most requests a quota may allow per period.
const MAX_QUOTA: i64 = 1_000_000_000_000;

/// The limits of one policy, as the hot path reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySnapshot {
    /// `pol_…`
    pub id: String,
    /// Rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// Quota, if any.
    pub quota: Option<Quota>,
}

/// The rules a policy's limits obey, on create and after a patch: each limit in range, and
/// at least one of them.
fn check_limits(rate_limit: Option<RateLimit>, quota: Option<Quota>) -> Result<()> {
    let mut errors = Vec::new();
    if rate_limit.is_none() && quota.is_none() {
        errors.push(FieldError::new(
            "rate_limit",
            "required",
            "a policy sets a rate_limit, a quota, or both",
        ));
    }
    if let Some(r) = &rate_limit
        && !(1..=MAX_RATE).contains(&r.requests)
    {
        errors.push(FieldError::new(
            "rate_limit.requests",
            "out_of_range",
            format!("1 to {MAX_RATE}"),
        ));
    }
    if let Some(q) = &quota
        && !(1..=MAX_QUOTA).contains(&q.requests)
    {
        errors.push(FieldError::new(
            "quota.requests",
            "out_of_range",
            format!("1 to {MAX_QUOTA}"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Validation(errors))
    }
}

/// Merge a limit patch into the stored limit; a new limit needs both members.
fn merge_limit<P: Copy>(
    field: &str,
    stored: Option<(i64, P)>,
    patch: Option<Option<LimitPatch<P>>>,
    errors: &mut Vec<FieldError>,
) -> Option<(i64, P)> {
    match patch {
        None => stored,
        Some(None) => None,
        Some(Some(p)) => {
            let requests = p.requests.or(stored.map(|s| s.0));
            let per = p.per.or(stored.map(|s| s.1));
            match (requests, per) {
                (Some(r), Some(per)) => Some((r, per)),
                (None, _) => {
                    errors.push(FieldError::new(
                        format!("{field}.requests"),
                        "required",
                        "a new limit needs requests and per",
                    ));
                    None
                }
                (_, None) => {
                    errors.push(FieldError::new(
                        format!("{field}.per"),
                        "required",
                        "a new limit needs requests and per",
                    ));
                    None
                }
            }
        }
    }
}

fn limits_of(row: &policy::Model) -> (Option<RateLimit>, Option<Quota>) {
    let rate = match (
        row.rate_requests,
        row.rate_per.as_deref().and_then(RatePer::parse),
    ) {
        (Some(requests), Some(per)) => Some(RateLimit { requests, per }),
        _ => None,
    };
    let quota = match (
        row.quota_requests,
        row.quota_per.as_deref().and_then(QuotaPer::parse),
    ) {
        (Some(requests), Some(per)) => Some(Quota { requests, per }),
        _ => None,
    };
    (rate, quota)
}

fn view(row: policy::Model, profiles: u64) -> Policy {
    let (rate_limit, quota) = limits_of(&row);
    Policy {
        id: row.id,
        name: row.name,
        rate_limit,
        quota,
        profiles,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

impl Registry {
    async fn policy_row<C: ConnectionTrait>(&self, conn: &C, id: &str) -> Result<policy::Model> {
        policy::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .ok_or(RegistryError::NotFound("policy"))
    }

    async fn check_policy_name<C: ConnectionTrait>(
        &self,
        conn: &C,
        name: &Name,
        except: Option<&str>,
    ) -> Result<()> {
        let mut q = policy::Entity::find().filter(policy::Column::Name.eq(name.as_str()));
        if let Some(id) = except {
            q = q.filter(policy::Column::Id.ne(id));
        }
        if q.one(conn).await?.is_some() {
            return Err(RegistryError::Conflict {
                field: "name".to_owned(),
                message: "another policy has this name".to_owned(),
            });
        }
        Ok(())
    }

    async fn policy_use_count<C: ConnectionTrait>(&self, conn: &C, id: &str) -> Result<u64> {
        Ok(access_profile::Entity::find()
            .filter(access_profile::Column::PolicyId.eq(id))
            .count(conn)
            .await?)
    }

    /// The limits of a policy, for a profile snapshot; `None` if it is gone.
    pub(crate) async fn policy_snapshot<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
    ) -> Result<Option<PolicySnapshot>> {
        Ok(policy::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .map(|row| {
                let (rate_limit, quota) = limits_of(&row);
                PolicySnapshot {
                    id: row.id,
                    rate_limit,
                    quota,
                }
            }))
    }

    /// Whether a policy exists (validation of `policy_id`).
    pub(crate) async fn policy_exists<C: ConnectionTrait>(
        &self,
        conn: &C,
        id: &str,
    ) -> Result<bool> {
        Ok(policy::Entity::find_by_id(id.to_owned())
            .one(conn)
            .await?
            .is_some())
    }

    /// Create a policy.
    pub async fn create_policy(&self, actor: &Actor, valid: NewPolicy) -> Result<Policy> {
        actor.require_unlimited_write()?;
        check_limits(valid.rate_limit, valid.quota)?;
        let txn = self.inner.db.begin().await?;
        self.check_policy_name(&txn, &valid.name, None).await?;
        let now = self.now();
        let row = policy::ActiveModel {
            id: Set(new_id(IdKind::Policy)),
            name: Set(valid.name.as_str().to_owned()),
            rate_requests: Set(valid.rate_limit.map(|r| r.requests)),
            rate_per: Set(valid.rate_limit.map(|r| r.per.as_str().to_owned())),
            quota_requests: Set(valid.quota.map(|q| q.requests)),
            quota_per: Set(valid.quota.map(|q| q.per.as_str().to_owned())),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&txn)
        .await?;
        self.audit(
            &txn,
            actor,
            "policy.create",
            "policy",
            &row.id,
            serde_json::json!({"name": row.name}),
        )
        .await?;
        txn.commit().await?;
        Ok(view(row, 0))
    }

    /// One policy.
    pub async fn get_policy(&self, id: &str) -> Result<Policy> {
        let row = self.policy_row(&self.inner.db, id).await?;
        let n = self.policy_use_count(&self.inner.db, id).await?;
        Ok(view(row, n))
    }

    /// A page of policies.
    pub async fn list_policies(&self, params: &ListParams) -> Result<Page<Policy>> {
        let limit = params.limit();
        let mut q = policy::Entity::find().order_by_asc(policy::Column::Id);
        if let Some(after) = decode_cursor(params.cursor.as_deref())? {
            q = q.filter(policy::Column::Id.gt(after));
        }
        let rows = q.limit(limit + 1).all(&self.inner.db).await?;
        let mut counts = Vec::with_capacity(rows.len());
        for r in &rows {
            counts.push(self.policy_use_count(&self.inner.db, &r.id).await?);
        }
        let mut counts = counts.into_iter();
        Ok(page(
            rows,
            limit,
            |r| r.id.clone(),
            |r| view(r, counts.next().unwrap_or(0)),
        ))
    }

    /// Change a policy; every profile using it sees the change at once (the limiter state
    /// of a changed limit starts afresh).
    pub async fn update_policy(
        &self,
        actor: &Actor,
        id: &str,
        patch: PolicyPatch,
    ) -> Result<Policy> {
        actor.require_unlimited_write()?;
        let changed = patch.fields();
        let txn = self.inner.db.begin().await?;
        let row = self.policy_row(&txn, id).await?;
        let (rate, quota) = limits_of(&row);
        let mut errors = Vec::new();
        let rate_limit = merge_limit(
            "rate_limit",
            rate.map(|r| (r.requests, r.per)),
            patch.rate_limit,
            &mut errors,
        )
        .map(|(requests, per)| RateLimit { requests, per });
        let quota = merge_limit(
            "quota",
            quota.map(|q| (q.requests, q.per)),
            patch.quota,
            &mut errors,
        )
        .map(|(requests, per)| Quota { requests, per });
        if !errors.is_empty() {
            return Err(RegistryError::Validation(errors));
        }
        check_limits(rate_limit, quota)?;
        if let Some(name) = &patch.name {
            self.check_policy_name(&txn, name, Some(id)).await?;
        }
        let mut active: policy::ActiveModel = row.into();
        if let Some(name) = &patch.name {
            active.name = Set(name.as_str().to_owned());
        }
        active.rate_requests = Set(rate_limit.map(|r| r.requests));
        active.rate_per = Set(rate_limit.map(|r| r.per.as_str().to_owned()));
        active.quota_requests = Set(quota.map(|q| q.requests));
        active.quota_per = Set(quota.map(|q| q.per.as_str().to_owned()));
        active.updated_at = Set(self.now());
        let row = active.update(&txn).await?;
        self.audit(
            &txn,
            actor,
            "policy.update",
            "policy",
            id,
            serde_json::json!({"fields": changed}),
        )
        .await?;
        let n = self.policy_use_count(&txn, id).await?;
        txn.commit().await?;
        self.invalidate();
        Ok(view(row, n))
    }

    /// Delete a policy no profile uses (409 `policy_in_use` otherwise: detach it first).
    pub async fn delete_policy(&self, actor: &Actor, id: &str) -> Result<()> {
        actor.require_unlimited_write()?;
        let txn = self.inner.db.begin().await?;
        let row = self.policy_row(&txn, id).await?;
        let n = self.policy_use_count(&txn, id).await?;
        if n > 0 {
            return Err(RegistryError::Conflict {
                field: "id".to_owned(),
                message: format!(
                    "{n} access profile(s) use this policy; set their policy_id to null first"
                ),
            });
        }
        policy::Entity::delete_by_id(id.to_owned())
            .exec(&txn)
            .await?;
        self.audit(
            &txn,
            actor,
            "policy.delete",
            "policy",
            id,
            serde_json::json!({"name": row.name}),
        )
        .await?;
        txn.commit().await?;
        self.invalidate();
        Ok(())
    }
}
