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

/// Slots per profile and hour: tokens, introspections, and one per reason.
const SLOTS: usize = 2 + Reason::ALL.len();

impl UsageMetric {
    fn slot(self) -> usize {
        match self {
            UsageMetric::TokenIssued => 0,
            UsageMetric::IntrospectionActive => 1,
            UsageMetric::Denied(r) => 2 + r.index(),
        }
    }

    fn name_of(slot: usize) -> Option<String> {
        match slot {
            0 => Some("tokens_issued".to_owned()),
            1 => Some("introspections_active".to_owned()),
            n => Reason::ALL
                .get(n - 2)
                .map(|r| format!("denied:{}", r.code())),
        }
    }
}

/// One profile's counts for one hour.
#[derive(Debug, Clone)]
struct Hourly {
    client_id: String,
    hour: i64,
    counts: [i64; SLOTS],
}

/// The in-memory side of usage counting: the current hour of each profile counted in place
/// (no allocation per event once a profile is known), finished hours set aside until the
/// next flush.
#[derive(Debug, Default)]
pub struct Usage {
    live: Mutex<HashMap<String, Hourly>>,
    finished: Mutex<Vec<(String, Hourly)>>,
}

fn hour_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600) * 3600
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
        let hour = hour_of(at);
        let slot = metric.slot();
        let mut live = lock(&self.live);
        if let Some(h) = live.get_mut(profile_id) {
            if h.hour != hour {
                let done = std::mem::replace(
                    h,
                    Hourly {
                        client_id: h.client_id.clone(),
                        hour,
                        counts: [0; SLOTS],
                    },
                );
                lock(&self.finished).push((profile_id.to_owned(), done));
            }
            h.counts[slot] += 1;
            return;
        }
        let mut counts = [0; SLOTS];
        counts[slot] = 1;
        live.insert(
            profile_id.to_owned(),
            Hourly {
                client_id: client_id.to_owned(),
                hour,
                counts,
            },
        );
    }

    /// Everything counted and not yet written, taking it (`take`) or copying it.
    fn pending(&self, take: bool) -> Vec<(String, Hourly)> {
        let mut out: Vec<(String, Hourly)> = if take {
            std::mem::take(&mut *lock(&self.finished))
        } else {
            lock(&self.finished).clone()
        };
        let mut live = lock(&self.live);
        for (profile, h) in live.iter_mut() {
            if h.counts.iter().any(|n| *n > 0) {
                out.push((profile.clone(), h.clone()));
                if take {
                    h.counts = [0; SLOTS];
                }
            }
        }
        // Profiles idle since before the previous hour are dropped from memory (their counts
        // were just taken).
        if take && let Some(newest) = live.values().map(|h| h.hour).max() {
            live.retain(|_, h| h.hour >= newest - 3600);
        }
        out
    }

    /// Write what was counted since the last flush. On failure the counts are kept for the
    /// next attempt.
    pub async fn flush(&self, db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
        use crate::entity::usage_counter::{ActiveModel, Column, Entity};
        use sea_orm::sea_query::{Expr, ExprTrait};
        use sea_orm::{Set, TransactionTrait};
        let batch = self.pending(true);
        if batch.is_empty() {
            return Ok(());
        }
        // One row per (profile, hour, metric), summed: a multi-row upsert may not name the
        // same key twice, and an hour set aside by an earlier failed flush can meet the live
        // one here.
        let mut rows: std::collections::BTreeMap<(String, i64, usize), (String, i64)> =
            Default::default();
        for (profile, h) in &batch {
            for (slot, n) in h.counts.iter().enumerate() {
                if *n > 0 {
                    let e = rows
                        .entry((profile.clone(), h.hour, slot))
                        .or_insert_with(|| (h.client_id.clone(), 0));
                    e.1 += *n;
                }
            }
        }
        let models: Vec<ActiveModel> = rows
            .into_iter()
            .filter_map(|((profile, hour, slot), (client_id, n))| {
                Some(ActiveModel {
                    profile_id: Set(profile),
                    bucket: Set(Utc.timestamp_opt(hour, 0).single()?),
                    metric: Set(UsageMetric::name_of(slot)?),
                    client_id: Set(client_id),
                    count: Set(n),
                })
            })
            .collect();
        // One transaction, 500 rows a statement: at 10,000 active profiles the flush was
        // 10,000 single-row autocommits (each a WAL flush) every interval.
        let write = async {
            let txn = db.begin().await?;
            let mut models = models.into_iter().peekable();
            while models.peek().is_some() {
                let chunk: Vec<ActiveModel> = models.by_ref().take(500).collect();
                Entity::insert_many(chunk)
                    .on_conflict(
                        OnConflict::columns([Column::ProfileId, Column::Bucket, Column::Metric])
                            .value(
                                Column::Count,
                                Expr::col((Entity, Column::Count))
                                    .add(Expr::cust("excluded.count")),
                            )
                            .to_owned(),
                    )
                    .exec(&txn)
                    .await?;
            }
            txn.commit().await
        };
        if let Err(e) = write.await {
            // Nothing was written: keep every count for the next try.
            lock(&self.finished).extend(batch);
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
        for (profile, h) in self.pending(false) {
            let wanted = match scope {
                Scope::Profile(id) => profile == id,
                Scope::Client(id) => h.client_id == id,
            };
            if wanted && h.hour >= from_hour.timestamp() && h.hour < to.timestamp() {
                for (slot, n) in h.counts.iter().enumerate() {
                    if let (Some(metric), true) = (UsageMetric::name_of(slot), *n > 0) {
                        counts.push((h.hour, metric, *n));
                    }
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
