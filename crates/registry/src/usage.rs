//! Usage counters: per profile and UTC hour, tokens issued, introspections answered active,
//! and refusals by the contract's reason codes. Counted in memory on the request path (one
//! short lock), flushed to `usage_counters` in batches with an additive upsert, so several
//! instances add up. Reports merge what is stored with what this instance has not flushed
//! yet, so a report is exact on one instance at any moment.

use crate::api::{UsageItem, UsageReport};
use crate::metrics::Reason;
use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What one count is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsageMetric {
    /// An access token signed.
    TokenIssued,
    /// An introspection answered active.
    IntrospectionActive,
    /// A refusal (introspection or token endpoint) for a known profile.
    Denied(Reason),
}

impl UsageMetric {
    fn name(self) -> String {
        match self {
            UsageMetric::TokenIssued => "tokens_issued".to_owned(),
            UsageMetric::IntrospectionActive => "introspections_active".to_owned(),
            UsageMetric::Denied(r) => format!("denied:{}", r.code()),
        }
    }
}

type Key = (String, String, i64, UsageMetric);

/// The in-memory side of usage counting.
#[derive(Debug, Default)]
pub struct Usage {
    pending: Mutex<HashMap<Key, i64>>,
}

fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600) * 3600
}

fn lock(m: &Mutex<HashMap<Key, i64>>) -> std::sync::MutexGuard<'_, HashMap<Key, i64>> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Bucket width of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// UTC hours.
    Hour,
    /// UTC days.
    Day,
}

/// Which profiles a report covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// One profile.
    Profile(&'a str),
    /// Every profile of one client.
    Client(&'a str),
}

impl Usage {
    /// Count one event.
    pub fn record(
        &self,
        profile_id: &str,
        client_id: &str,
        metric: UsageMetric,
        at: DateTime<Utc>,
    ) {
        let key = (
            profile_id.to_owned(),
            client_id.to_owned(),
            hour_of(at),
            metric,
        );
        *lock(&self.pending).entry(key).or_insert(0) += 1;
    }

    /// Write what was counted since the last flush. On failure the counts are kept for the
    /// next attempt.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        use crate::entity::usage_counter::{ActiveModel, Column, Entity};
        use sea_orm::Set;
        use sea_orm::sea_query::{Expr, ExprTrait};
        let batch = std::mem::take(&mut *lock(&self.pending));
        let mut failed: Option<sea_orm::DbErr> = None;
        let mut left = HashMap::new();
        for ((profile, client, hour, metric), n) in batch {
            if failed.is_some() {
                left.insert((profile, client, hour, metric), n);
                continue;
            }
            let bucket = Utc.timestamp_opt(hour, 0).single().unwrap_or_default();
            let row = ActiveModel {
                profile_id: Set(profile.clone()),
                bucket: Set(bucket),
                metric: Set(metric.name()),
                client_id: Set(client.clone()),
                count: Set(n),
            };
            let result = Entity::insert(row)
                .on_conflict(
                    OnConflict::columns([Column::ProfileId, Column::Bucket, Column::Metric])
                        .value(
                            Column::Count,
                            Expr::col((Entity, Column::Count)).add(Expr::cust("excluded.count")),
                        )
                        .to_owned(),
                )
                .exec(db)
                .await;
            if let Err(e) = result {
                failed = Some(e);
                left.insert((profile, client, hour, metric), n);
            }
        }
        if let Some(e) = failed {
            let mut pending = lock(&self.pending);
            for (k, n) in left {
                *pending.entry(k).or_insert(0) += n;
            }
            return Err(e);
        }
        Ok(())
    }

    /// A report over `[from, to)`: stored counts plus this instance's unflushed ones, in
    /// buckets of `granularity`, only buckets with any use, oldest first.
    pub async fn report(
        &self,
        db: &DatabaseConnection,
        scope: Scope<'_>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        granularity: Granularity,
    ) -> Result<UsageReport, sea_orm::DbErr> {
        use crate::entity::usage_counter::{Column, Entity};
        let from_hour = Utc.timestamp_opt(hour_of(from), 0).single().unwrap_or(from);
        let mut q = Entity::find()
            .filter(Column::Bucket.gte(from_hour))
            .filter(Column::Bucket.lt(to));
        q = match scope {
            Scope::Profile(id) => q.filter(Column::ProfileId.eq(id)),
            Scope::Client(id) => q.filter(Column::ClientId.eq(id)),
        };
        let rows = q.all(db).await?;
        let mut counts: Vec<(i64, String, i64)> = rows
            .into_iter()
            .map(|r| (r.bucket.timestamp(), r.metric, r.count))
            .collect();
        {
            let pending = lock(&self.pending);
            for ((profile, client, hour, metric), n) in pending.iter() {
                let wanted = match scope {
                    Scope::Profile(id) => profile == id,
                    Scope::Client(id) => client == id,
                };
                if wanted && *hour >= from_hour.timestamp() && *hour < to.timestamp() {
                    counts.push((*hour, metric.name(), *n));
                }
            }
        }
        let mut buckets: BTreeMap<i64, UsageItem> = BTreeMap::new();
        for (hour, metric, n) in counts {
            let start = match granularity {
                Granularity::Hour => hour,
                Granularity::Day => hour.div_euclid(86_400) * 86_400,
            };
            let item = buckets.entry(start).or_insert_with(|| UsageItem {
                start: Utc.timestamp_opt(start, 0).single().unwrap_or_default(),
                tokens_issued: 0,
                introspections_active: 0,
                denied: BTreeMap::new(),
            });
            let n = u64::try_from(n).unwrap_or(0);
            match metric.as_str() {
                "tokens_issued" => item.tokens_issued += n,
                "introspections_active" => item.introspections_active += n,
                other => {
                    if let Some(reason) = other.strip_prefix("denied:") {
                        *item.denied.entry(reason.to_owned()).or_insert(0) += n;
                    }
                }
            }
        }
        Ok(UsageReport {
            items: buckets.into_values().collect(),
        })
    }
}

/// Parse and bound a report's query: default the last 24 hours; at most 31 days of hours or
/// 366 days of days.
pub fn report_window(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    granularity: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>, Granularity), crate::types::FieldError> {
    use crate::types::FieldError;
    let granularity = match granularity {
        None | Some("hour") => Granularity::Hour,
        Some("day") => Granularity::Day,
        Some(_) => {
            return Err(FieldError::new("granularity", "invalid", "hour or day"));
        }
    };
    let to = to.unwrap_or(now);
    let from = from.unwrap_or(to - Duration::hours(24));
    if from >= to {
        return Err(FieldError::new("from", "invalid", "from must be before to"));
    }
    let max = match granularity {
        Granularity::Hour => Duration::days(31),
        Granularity::Day => Duration::days(366),
    };
    if to - from > max {
        return Err(FieldError::new(
            "from",
            "too_wide",
            "at most 31 days of hours or 366 days of days",
        ));
    }
    Ok((from, to, granularity))
}
