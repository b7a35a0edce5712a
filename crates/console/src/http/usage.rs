//! Usage of a profile or a client as server-drawn charts: hourly for the last 24 hours or
//! daily for the last 30 days (a query link chooses), with the numbers also as a table.

use crate::chart::{Point, bar_chart};
use crate::error::ConsoleResult;
use chrono::{DateTime, Duration, DurationRound, Utc};
use gatehouse_registry::Registry;
use gatehouse_registry::api::UsageQuery;
use gatehouse_registry::usage::Scope;
use std::collections::BTreeMap;

/// `?range=` of pages with usage.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct RangeQuery {
    /// `24h` (default) or `30d`.
    pub range: Option<String>,
}

/// One chart, ready for the page.
pub(crate) struct ChartView {
    pub title: String,
    /// The SVG markup (built and escaped by [`bar_chart`]).
    pub svg: String,
}

/// One row of the numbers table.
pub(crate) struct UsageRow {
    pub start: String,
    pub tokens: u64,
    pub introspections: u64,
    pub denied: u64,
}

/// Everything a usage section shows.
pub(crate) struct UsageView {
    /// `24h` or `30d`.
    pub range: &'static str,
    pub charts: Vec<ChartView>,
    pub rows: Vec<UsageRow>,
    /// Denials in the period by reason.
    pub reasons: Vec<(String, u64)>,
}

/// Load and draw the usage of `scope`.
pub(crate) async fn usage(
    registry: &Registry,
    actor: &gatehouse_registry::Actor,
    scope: Scope<'_>,
    range: Option<&str>,
) -> ConsoleResult<UsageView> {
    let daily = range == Some("30d");
    let now = registry.clock().now();
    let (step, count, label) = if daily {
        (Duration::days(1), 30, "%m-%d")
    } else {
        (Duration::hours(1), 24, "%H:00")
    };
    let end = now.duration_trunc(step).unwrap_or(now) + step;
    let start = end - step * count;
    let report = registry
        .usage_report(
            actor,
            scope,
            &UsageQuery {
                from: Some(start),
                to: Some(end),
                granularity: Some(if daily { "day" } else { "hour" }.to_owned()),
            },
        )
        .await?;
    let by_start: BTreeMap<DateTime<Utc>, _> =
        report.items.into_iter().map(|i| (i.start, i)).collect();
    let mut tokens = Vec::new();
    let mut introspections = Vec::new();
    let mut denials = Vec::new();
    let mut rows = Vec::new();
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..count {
        let at = start + step * i;
        let label = at.format(label).to_string();
        let (t, a, d) = match by_start.get(&at) {
            Some(item) => {
                for (reason, n) in &item.denied {
                    *reasons.entry(reason.clone()).or_insert(0) += n;
                }
                (
                    item.tokens_issued,
                    item.introspections_active,
                    item.denied.values().sum(),
                )
            }
            None => (0, 0, 0),
        };
        tokens.push(Point {
            label: label.clone(),
            value: t,
        });
        introspections.push(Point {
            label: label.clone(),
            value: a,
        });
        denials.push(Point {
            label: label.clone(),
            value: d,
        });
        rows.push(UsageRow {
            start: crate::views::when(&at),
            tokens: t,
            introspections: a,
            denied: d,
        });
    }
    let chart = |title: &str, class: &str, points: &[Point]| ChartView {
        title: title.to_owned(),
        svg: bar_chart(title, class, points),
    };
    Ok(UsageView {
        range: if daily { "30d" } else { "24h" },
        charts: vec![
            chart("Tokens issued", "tokens", &tokens),
            chart("Active introspections", "introspections", &introspections),
            chart("Denials", "denied", &denials),
        ],
        rows,
        reasons: reasons.into_iter().collect(),
    })
}
