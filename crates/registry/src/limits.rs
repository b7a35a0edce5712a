//! Policy enforcement: rate limits (GCRA), quotas (UTC calendar periods) and the budget of
//! failed client authentications.
//!
//! - **Rate limits** use the generic cell rate algorithm: a policy of `n` requests per window
//!   `w` allows a burst of `n`, then one request every `w / n`. One atomic state per profile
//!   (its "theoretical arrival time"); in memory by default, in Redis (one Lua script, the
//!   Redis server's clock) when `GATEHOUSE_REDIS_URL` is set, so every instance shares it.
//! - **Quotas** count uses per profile and UTC day or month. The count lives in memory and is
//!   persisted in batches (`quota_counters`, an additive upsert, then a read-back that also
//!   picks up other instances' use); with Redis the live count is shared there, seeded from
//!   the database. A restart loses nothing that was flushed, and the server flushes on
//!   graceful shutdown.
//! - **Redis down**: calls time out after 100 ms and the breaker stays open for 1 s. One call
//!   at a time tries to connect; the others do not wait for it. With
//!   `GATEHOUSE_RATELIMIT_FAILURE=open` (the default) the in-memory limiter takes over (each
//!   instance then enforces the full limit on its own); with `closed` every limited request is
//!   refused until Redis answers again. A quota count that cannot be read from the database
//!   is read again by the next request (never taken as zero use); meanwhile the request is
//!   judged by the failure mode, as with Redis down.
//! - **Failed authentication** has a budget per (client id, source address) and per source
//!   address (RFC 6749 §2.3.1, RFC 7662 §4); past it the answer is 429 without running argon2.
//!   A caller whose secret is in the verified cache is never throttled. An IPv6 source counts
//!   by its network (`GATEHOUSE_THROTTLE_IPV6_PREFIX`, /64 by default: what one subscriber
//!   gets), an IPv4-mapped IPv6 address as the IPv4 address.
//! - **Time**: the in-memory rate limits and failure budgets run on the injected clock's
//!   monotonic reading ([`Clock::monotonic`]), so stepping the wall clock back does not keep
//!   anyone denied; quota periods are UTC calendar periods of [`Clock::now`].

use crate::api::{Quota, QuotaPer, RateLimit};
use crate::clock::Clock;
use crate::metrics::{METRICS, Reason};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{DatabaseConnection, EntityTrait};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What happens to limited requests while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureMode {
    /// Fall back to the in-memory limiter (default).
    Open,
    /// Refuse every limited request.
    Closed,
}

/// The figures a caller may show: `limit`, `remaining` and `reset` (seconds until the full
/// allowance is back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateInfo {
    /// Requests per window (or per quota period).
    pub limit: i64,
    /// Requests left now.
    pub remaining: i64,
    /// Seconds until the allowance is full again (rate) or the period ends (quota).
    pub reset: u64,
    /// The window or period in seconds (for `RateLimit-Policy`).
    pub window: u64,
}

/// The outcome of counting one use of a profile's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Under the limits; the figures of the tighter limit, if a policy applies.
    Allowed(Option<RateInfo>),
    /// Over a limit.
    Denied {
        /// `RateLimited` or `QuotaExceeded`.
        reason: Reason,
        /// Seconds until a request can succeed.
        retry_after: u64,
        /// The limit that refused.
        info: RateInfo,
    },
}

/// GCRA state of one profile.
#[derive(Debug, Clone, Copy)]
struct Gcra {
    /// Theoretical arrival time, µs.
    tat: i64,
    emission: i64,
    period: i64,
}

/// The answer of one GCRA step: allowed, and the µs figures.
struct Step {
    allowed: bool,
    /// Allowed: µs of capacity left; refused: µs to wait.
    us: i64,
    /// µs until the state is empty again.
    reset: i64,
}

fn gcra_step(tat: i64, now: i64, emission: i64, period: i64) -> (Step, i64) {
    let tat = tat.max(now);
    let new = tat + emission;
    if new - now > period {
        return (
            Step {
                allowed: false,
                us: new - now - period,
                reset: tat - now,
            },
            tat,
        );
    }
    (
        Step {
            allowed: true,
            us: period - (new - now),
            reset: new - now,
        },
        new,
    )
}

/// Microseconds, rounded up to whole seconds.
fn ceil_secs(us: i64) -> u64 {
    u64::try_from((us.max(0) + 999_999) / 1_000_000).unwrap_or(0)
}

/// The UTC period key and its end for a quota.
fn period_of(per: QuotaPer, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let (y, m, d) = (now.year(), now.month(), now.day());
    match per {
        QuotaPer::Day => {
            let start = Utc
                .with_ymd_and_hms(y, m, d, 0, 0, 0)
                .single()
                .unwrap_or(now);
            (
                format!("d:{y:04}-{m:02}-{d:02}"),
                start + chrono::Duration::days(1),
            )
        }
        QuotaPer::Month => {
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = Utc
                .with_ymd_and_hms(ny, nm, 1, 0, 0, 0)
                .single()
                .unwrap_or(now + chrono::Duration::days(31));
            (format!("m:{y:04}-{m:02}"), end)
        }
    }
}

/// Quota use of one profile in one period, as this instance knows it.
#[derive(Debug, Default)]
struct QuotaState {
    period: String,
    /// The kind of period and its end, for the fast path.
    per: Option<QuotaPer>,
    end: DateTime<Utc>,
    /// The persisted count when last read.
    stored: i64,
    /// Uses counted here and not yet persisted.
    unflushed: i64,
    /// Whether `stored` was read for this period.
    loaded: bool,
}

const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new = tat + emission
if new - now > period then
  return {0, new - now - period, tat - now}
end
redis.call('SET', KEYS[1], new, 'PX', math.max(1, math.ceil((new - now) / 1000)))
return {1, period - (new - now), new - now}
";

const QUOTA_SCRIPT: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  v = ARGV[1]
end
v = tonumber(v)
if v >= tonumber(ARGV[2]) then
  return {0, v}
end
v = redis.call('INCR', KEYS[1])
return {1, v}
";

/// A profile's quota state for one period, as [`Limiter::quota_load`] found it.
struct QuotaCell {
    cell: Arc<Mutex<QuotaState>>,
    period: String,
    end: DateTime<Utc>,
    /// The stored count was read (else the next call reads it again).
    loaded: bool,
}

/// Redis, with a breaker.
struct Shared {
    client: redis::Client,
    /// The open connection (a `ConnectionManager` multiplexes: each call clones it).
    conn: RwLock<Option<redis::aio::ConnectionManager>>,
    /// Held by the one call that is connecting; the others fall back instead of waiting.
    connecting: tokio::sync::Mutex<()>,
    down_until: Mutex<Option<Instant>>,
    gcra: redis::Script,
    quota: redis::Script,
}

/// What [`Shared::connection`] found.
enum Connection {
    Ready(redis::aio::ConnectionManager),
    /// Another call is connecting right now.
    Pending,
    /// The connect failed or timed out.
    Failed,
}

const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
const REDIS_BREAK: Duration = Duration::from_secs(1);

impl Shared {
    fn is_down(&self) -> bool {
        let guard = match self.down_until.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        guard.is_some_and(|t| Instant::now() < t)
    }

    fn trip(&self) {
        METRICS.redis_errors.inc();
        let mut guard = match self.down_until.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *guard = Some(Instant::now() + REDIS_BREAK);
    }

    fn current(&self) -> Option<redis::aio::ConnectionManager> {
        match self.conn.read() {
            Ok(slot) => slot.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The connection, opening it if needed. One call at a time connects (up to 300 ms);
    /// calls that arrive meanwhile get [`Connection::Pending`] at once and fall back, so an
    /// unreachable Redis costs each of them nothing (they used to queue on one lock and each
    /// try its own connect in turn).
    async fn connection(&self) -> Connection {
        if let Some(c) = self.current() {
            return Connection::Ready(c);
        }
        let Ok(_connecting) = self.connecting.try_lock() else {
            return Connection::Pending;
        };
        // Another call may have connected between the look and the lock.
        if let Some(c) = self.current() {
            return Connection::Ready(c);
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            REDIS_TIMEOUT * 3,
            self.client.get_connection_manager_with_config(config),
        )
        .await
        {
            Ok(Ok(c)) => {
                match self.conn.write() {
                    Ok(mut slot) => *slot = Some(c.clone()),
                    Err(p) => *p.into_inner() = Some(c.clone()),
                }
                Connection::Ready(c)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis unreachable; limits fall back");
                Connection::Failed
            }
            Err(_) => {
                tracing::warn!("Redis connection timed out; limits fall back");
                Connection::Failed
            }
        }
    }

    /// Run a script; `None` when Redis failed (the breaker is then open).
    async fn run(&self, script: &redis::Script, key: &str, args: &[i64]) -> Option<Vec<i64>> {
        if self.is_down() {
            return None;
        }
        let mut conn = match self.connection().await {
            Connection::Ready(c) => c,
            // Another call is connecting: fall back now; it trips the breaker if it fails.
            Connection::Pending => return None,
            Connection::Failed => {
                self.trip();
                return None;
            }
        };
        let mut invocation = script.key(key);
        for a in args {
            invocation.arg(*a);
        }
        let started = std::time::Instant::now();
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async(&mut conn)).await {
            Ok(Ok(v)) => {
                METRICS.redis_seconds.observe(started.elapsed());
                Some(v)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "Redis limiter call failed");
                self.trip();
                None
            }
            Err(_) => {
                self.trip();
                None
            }
        }
    }
}

/// Enforces policies. Cheap to share (`Arc`).
pub struct Limiter {
    db: DatabaseConnection,
    clock: Arc<dyn Clock>,
    /// The clock's monotonic reading when the limiter started: in-memory rate states count
    /// µs from here.
    epoch: Instant,
    failure: FailureMode,
    shared: Option<Shared>,
    rates: RwLock<HashMap<String, Arc<Mutex<Gcra>>>>,
    quotas: RwLock<HashMap<String, Arc<Mutex<QuotaState>>>>,
    /// Unflushed use of finished periods (or of a failed flush).
    parked: Mutex<HashMap<(String, String), i64>>,
    throttle: AuthThrottle,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("failure", &self.failure)
            .field("redis", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

/// Most profiles whose rate state is kept in memory; past it the table is cleared (each
/// profile then starts with a fresh allowance).
const MAX_LOCAL_STATES: usize = 200_000;

impl Limiter {
    /// A limiter on `db`; `redis_url` shares the limits between instances.
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        redis_url: Option<&str>,
        failure: FailureMode,
    ) -> Result<Self, String> {
        let shared = match redis_url {
            None => None,
            Some(url) => Some(Shared {
                client: redis::Client::open(url)
                    .map_err(|e| format!("GATEHOUSE_REDIS_URL: {e}"))?,
                conn: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                down_until: Mutex::new(None),
                gcra: redis::Script::new(GCRA_SCRIPT),
                quota: redis::Script::new(QUOTA_SCRIPT),
            }),
        };
        let mut limiter = Self::local(db, clock);
        limiter.failure = failure;
        limiter.shared = shared;
        Ok(limiter)
    }

    /// A limiter without Redis.
    pub fn local(db: DatabaseConnection, clock: Arc<dyn Clock>) -> Self {
        Self {
            db,
            epoch: clock.monotonic(),
            clock,
            failure: FailureMode::Open,
            shared: None,
            rates: RwLock::new(HashMap::new()),
            quotas: RwLock::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
            throttle: AuthThrottle::new(DEFAULT_IPV6_PREFIX),
        }
    }

    /// Count failed authentications from IPv6 sources per network of `prefix` bits
    /// (default [`DEFAULT_IPV6_PREFIX`]).
    pub fn with_ipv6_prefix(mut self, prefix: u8) -> Self {
        self.throttle = AuthThrottle::new(prefix);
        self
    }

    /// Microseconds of monotonic time since the limiter started (see [`Clock::monotonic`]):
    /// the time of the in-memory rate limits and failure budgets.
    pub fn monotonic_micros(&self) -> i64 {
        let elapsed = self.clock.monotonic().saturating_duration_since(self.epoch);
        i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX)
    }

    /// Check a Redis URL's syntax (at configuration time).
    pub fn validate_redis_url(url: &str) -> Result<(), String> {
        redis::Client::open(url)
            .map(|_| ())
            .map_err(|e| format!("GATEHOUSE_REDIS_URL: {e}"))
    }

    /// The failed-authentication budget.
    pub fn throttle(&self) -> &AuthThrottle {
        &self.throttle
    }

    /// Count one use of `profile_id`'s credential under its policy limits. A refusal by one
    /// limit does not spend the other.
    pub async fn check(
        &self,
        profile_id: &str,
        rate: Option<RateLimit>,
        quota: Option<Quota>,
    ) -> Verdict {
        let now = self.clock.now();
        // Quota first (a look, no spend), then the rate (spends), then the quota (spends).
        if let Some(q) = quota
            && let Some(denied) = self.quota_peek(profile_id, q, now).await
        {
            return denied;
        }
        let rate_info = match rate {
            None => None,
            Some(r) => match self.rate(profile_id, r).await {
                Ok(info) => Some(info),
                Err(denied) => return denied,
            },
        };
        let quota_info = match quota {
            None => None,
            Some(q) => match self.quota_spend(profile_id, q, now).await {
                Ok(info) => Some(info),
                Err(denied) => return denied,
            },
        };
        let tighter = match (rate_info, quota_info) {
            (Some(r), Some(q)) if q.remaining < r.remaining => Some(q),
            (Some(r), _) => Some(r),
            (None, q) => q,
        };
        Verdict::Allowed(tighter)
    }

    async fn rate(&self, profile_id: &str, rate: RateLimit) -> Result<RateInfo, Verdict> {
        // Microseconds, so even 1,000,000 per second keeps a whole emission interval.
        let period = rate.per.seconds() * 1_000_000;
        let emission = (period / rate.requests.max(1)).max(1);
        let window = u64::try_from(rate.per.seconds()).unwrap_or(1);
        let info = |remaining_us: i64, reset_us: i64| RateInfo {
            limit: rate.requests,
            remaining: (remaining_us / emission).max(0),
            reset: ceil_secs(reset_us),
            window,
        };
        let step = match &self.shared {
            Some(shared) => {
                let key = format!(
                    "gatehouse:rl:{profile_id}:{}:{}",
                    rate.requests,
                    rate.per.as_str()
                );
                match shared.run(&shared.gcra, &key, &[emission, period]).await {
                    Some(v) if v.len() == 3 => Some(Step {
                        allowed: v[0] == 1,
                        us: v[1],
                        reset: v[2],
                    }),
                    _ => None,
                }
            }
            None => None,
        };
        let step = match step {
            Some(s) => s,
            None if self.shared.is_some() && self.failure == FailureMode::Closed => {
                let i = info(0, 1_000_000);
                return Err(Verdict::Denied {
                    reason: Reason::RateLimited,
                    retry_after: 1,
                    info: i,
                });
            }
            None => self.local_rate(profile_id, emission, period, self.monotonic_micros()),
        };
        if step.allowed {
            Ok(info(step.us, step.reset))
        } else {
            Err(Verdict::Denied {
                reason: Reason::RateLimited,
                retry_after: ceil_secs(step.us).max(1),
                info: info(0, step.reset),
            })
        }
    }

    fn local_rate(&self, profile_id: &str, emission: i64, period: i64, now: i64) -> Step {
        let existing = match self.rates.read() {
            Ok(map) => map.get(profile_id).cloned(),
            Err(p) => p.into_inner().get(profile_id).cloned(),
        };
        let cell = match existing {
            Some(c) => c,
            None => {
                let mut map = match self.rates.write() {
                    Ok(m) => m,
                    Err(p) => p.into_inner(),
                };
                if map.len() >= MAX_LOCAL_STATES {
                    map.clear();
                }
                map.entry(profile_id.to_owned())
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(Gcra {
                            tat: now,
                            emission,
                            period,
                        }))
                    })
                    .clone()
            }
        };
        let mut state = match cell.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if state.emission != emission || state.period != period {
            // The policy changed: start afresh.
            *state = Gcra {
                tat: now,
                emission,
                period,
            };
        }
        let (step, tat) = gcra_step(state.tat, now, emission, period);
        state.tat = tat;
        step
    }

    fn quota_cell(&self, profile_id: &str) -> Arc<Mutex<QuotaState>> {
        let existing = match self.quotas.read() {
            Ok(map) => map.get(profile_id).cloned(),
            Err(p) => p.into_inner().get(profile_id).cloned(),
        };
        if let Some(c) = existing {
            return c;
        }
        let mut map = match self.quotas.write() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        map.entry(profile_id.to_owned()).or_default().clone()
    }

    /// The state of `profile_id`'s quota for the period containing `now`, with its stored
    /// count read if it can be; the period's end. The common case — same period as last time
    /// — is one map lookup and one lock, with no date arithmetic.
    async fn quota_load(&self, profile_id: &str, q: Quota, now: DateTime<Utc>) -> QuotaCell {
        let cell = self.quota_cell(profile_id);
        {
            let s = lock(&cell);
            if s.loaded && s.per == Some(q.per) && now < s.end {
                return QuotaCell {
                    period: s.period.clone(),
                    end: s.end,
                    loaded: true,
                    cell: cell.clone(),
                };
            }
        }
        let (period, end) = period_of(q.per, now);
        let needs_load = {
            let mut s = lock(&cell);
            if s.period != period {
                // A new period. Unflushed use of the old one is kept for the flusher by
                // moving it aside first.
                if s.unflushed > 0 && !s.period.is_empty() {
                    self.park(profile_id, &s.period, s.unflushed);
                }
                *s = QuotaState {
                    period: period.clone(),
                    ..QuotaState::default()
                };
            }
            s.per = Some(q.per);
            s.end = end;
            !s.loaded
        };
        if needs_load {
            match self.read_quota(profile_id, &period).await {
                Ok(stored) => {
                    let mut s = lock(&cell);
                    if s.period == period && !s.loaded {
                        s.stored = stored;
                        s.loaded = true;
                    }
                }
                // Not zero use: the cell stays unread, and the next call reads again.
                Err(e) => tracing::warn!(error = %e, "reading a quota count failed"),
            }
        }
        let loaded = {
            let s = lock(&cell);
            s.loaded && s.period == period
        };
        QuotaCell {
            cell,
            period,
            end,
            loaded,
        }
    }

    /// Unflushed use of a finished period, persisted by the next flush.
    fn park(&self, profile_id: &str, period: &str, n: i64) {
        let mut parked = lock(&self.parked);
        *parked
            .entry((profile_id.to_owned(), period.to_owned()))
            .or_insert(0) += n;
    }

    /// The stored count (0 without a row); an error when the database did not answer.
    async fn read_quota(&self, profile_id: &str, period: &str) -> Result<i64, sea_orm::DbErr> {
        Ok(crate::entity::quota_counter::Entity::find_by_id((
            profile_id.to_owned(),
            period.to_owned(),
        ))
        .one(&self.db)
        .await?
        .map_or(0, |r| r.count))
    }

    /// The answer while the shared count cannot be known (Redis down, or the stored quota
    /// count unreadable) and the failure mode is `closed`: a short, retryable `rate_limited`,
    /// not a `quota_exceeded` that would say "come back in days".
    fn store_unavailable(limit: i64, window: u64) -> Verdict {
        Verdict::Denied {
            reason: Reason::RateLimited,
            retry_after: 1,
            info: RateInfo {
                limit,
                remaining: 0,
                reset: 1,
                window,
            },
        }
    }

    async fn quota_peek(&self, profile_id: &str, q: Quota, now: DateTime<Utc>) -> Option<Verdict> {
        if self.shared.is_some() {
            // With Redis the shared count decides, at spend time.
            return None;
        }
        let quota = self.quota_load(profile_id, q, now).await;
        if !quota.loaded && self.failure == FailureMode::Closed {
            let window = u64::try_from((quota.end - now).num_seconds().max(1)).unwrap_or(1);
            return Some(Self::store_unavailable(q.requests, window));
        }
        let used = {
            let s = lock(&quota.cell);
            s.stored + s.unflushed
        };
        if used >= q.requests {
            return Some(quota_denied(q, quota.end, now));
        }
        None
    }

    async fn quota_spend(
        &self,
        profile_id: &str,
        q: Quota,
        now: DateTime<Utc>,
    ) -> Result<RateInfo, Verdict> {
        let QuotaCell {
            cell,
            period,
            end,
            loaded,
        } = self.quota_load(profile_id, q, now).await;
        let window = u64::try_from((end - now).num_seconds().max(1)).unwrap_or(1);
        let info = |used: i64| RateInfo {
            limit: q.requests,
            remaining: (q.requests - used).max(0),
            reset: window,
            window,
        };
        // Redis is seeded from the stored count: never from one that could not be read.
        if let Some(shared) = self.shared.as_ref().filter(|_| loaded) {
            let seed = {
                let s = lock(&cell);
                s.stored + s.unflushed
            };
            let key = format!("gatehouse:q:{profile_id}:{period}");
            let ttl = i64::try_from(window).unwrap_or(86_400) + 86_400;
            if let Some(v) = shared
                .run(&shared.quota, &key, &[seed, q.requests, ttl])
                .await
                .filter(|v| v.len() == 2)
            {
                if v[0] != 1 {
                    return Err(quota_denied(q, end, now));
                }
                lock(&cell).unflushed += 1;
                return Ok(info(v[1]));
            }
        }
        let shared_count_unknown = self.shared.is_some() || !loaded;
        if shared_count_unknown && self.failure == FailureMode::Closed {
            return Err(Self::store_unavailable(q.requests, window));
        }
        let mut s = lock(&cell);
        let used = s.stored + s.unflushed;
        if used >= q.requests {
            return Err(quota_denied(q, end, now));
        }
        s.unflushed += 1;
        Ok(info(used + 1))
    }

    /// Persist quota use counted since the last flush (additive, so every instance's share
    /// adds up), then read the totals back so this instance sees the others' use.
    pub async fn flush(&self) -> Result<(), sea_orm::DbErr> {
        let cells: Vec<(String, Arc<Mutex<QuotaState>>)> = match self.quotas.read() {
            Ok(map) => map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(p) => p
                .into_inner()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        let mut writes: Vec<(String, String, i64)> = std::mem::take(&mut *lock(&self.parked))
            .into_iter()
            .map(|((p, period), n)| (p, period, n))
            .collect();
        for (profile_id, cell) in &cells {
            let mut s = lock(cell);
            if s.unflushed > 0 && s.loaded {
                writes.push((profile_id.clone(), s.period.clone(), s.unflushed));
                s.stored += s.unflushed;
                s.unflushed = 0;
            }
        }
        // One row per (profile, period): a multi-row upsert may not name the same key twice,
        // and a count parked by an earlier failed flush can meet the live one here.
        let mut summed: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for (profile_id, period, n) in writes {
            *summed.entry((profile_id, period)).or_insert(0) += n;
        }
        if let Err(e) = self.add_quotas(&summed).await {
            // Nothing was written (one transaction): keep every count for the next flush.
            for ((profile_id, period), n) in &summed {
                self.park(profile_id, period, *n);
            }
            return Err(e);
        }
        // Read back what everybody has used, 500 profiles a query (was one query per profile
        // per flush: 10,000 quota'd profiles made 1,000 queries a second at a 10 s interval).
        let wanted: Vec<(String, String)> = cells
            .iter()
            .map(|(profile_id, cell)| (profile_id.clone(), lock(cell).period.clone()))
            .filter(|(_, period)| !period.is_empty())
            .collect();
        let totals = self.read_quotas(&wanted).await;
        for (profile_id, cell) in &cells {
            let mut s = lock(cell);
            if let Some(total) = totals.get(&(profile_id.clone(), s.period.clone())) {
                s.stored = s.stored.max(*total);
            }
        }
        Ok(())
    }

    /// Add these counts in one transaction, 500 rows a statement.
    async fn add_quotas(
        &self,
        counts: &std::collections::BTreeMap<(String, String), i64>,
    ) -> Result<(), sea_orm::DbErr> {
        use crate::entity::quota_counter::{ActiveModel, Column, Entity};
        use sea_orm::sea_query::ExprTrait;
        use sea_orm::{Set, TransactionTrait};
        if counts.is_empty() {
            return Ok(());
        }
        let txn = self.db.begin().await?;
        let mut rows = counts.iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<ActiveModel> = rows
                .by_ref()
                .take(500)
                .map(|((profile_id, period), n)| ActiveModel {
                    profile_id: Set(profile_id.clone()),
                    period: Set(period.clone()),
                    count: Set(*n),
                })
                .collect();
            Entity::insert_many(chunk)
                .on_conflict(
                    OnConflict::columns([Column::ProfileId, Column::Period])
                        .value(
                            Column::Count,
                            Expr::col((Entity, Column::Count)).add(Expr::cust("excluded.count")),
                        )
                        .to_owned(),
                )
                .exec(&txn)
                .await?;
        }
        txn.commit().await
    }

    /// The stored totals of these (profile, period) pairs, 500 profiles a query. Pairs whose
    /// query fails are left out (the next flush reads them again).
    async fn read_quotas(&self, wanted: &[(String, String)]) -> HashMap<(String, String), i64> {
        use crate::entity::quota_counter::{Column, Entity};
        use sea_orm::{ColumnTrait, QueryFilter};
        let mut out = HashMap::new();
        for chunk in wanted.chunks(500) {
            let profiles: Vec<&str> = chunk.iter().map(|(p, _)| p.as_str()).collect();
            let mut periods: Vec<&str> = chunk.iter().map(|(_, p)| p.as_str()).collect();
            periods.sort_unstable();
            periods.dedup();
            let Ok(rows) = Entity::find()
                .filter(Column::ProfileId.is_in(profiles))
                .filter(Column::Period.is_in(periods))
                .all(&self.db)
                .await
            else {
                continue;
            };
            for row in rows {
                out.insert((row.profile_id, row.period), row.count);
            }
        }
        out
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

fn quota_denied(q: Quota, end: DateTime<Utc>, now: DateTime<Utc>) -> Verdict {
    let left = u64::try_from((end - now).num_seconds().max(1)).unwrap_or(1);
    Verdict::Denied {
        reason: Reason::QuotaExceeded,
        retry_after: left,
        info: RateInfo {
            limit: q.requests,
            remaining: 0,
            reset: left,
            window: left,
        },
    }
}

/// Failed-authentication budgets (in memory, per instance), keyed by [`budget_key`]. Times
/// are µs of monotonic time ([`Limiter::monotonic_micros`]).
pub struct AuthThrottle {
    per_client_ip: Mutex<HashMap<(String, IpAddr), Gcra>>,
    per_ip: Mutex<HashMap<IpAddr, Gcra>>,
    ipv6_prefix: u8,
}

/// The default IPv6 network a failure budget covers (`GATEHOUSE_THROTTLE_IPV6_PREFIX`): one
/// /64, what a single subscriber or host usually has.
pub const DEFAULT_IPV6_PREFIX: u8 = 64;

/// The source a failure budget belongs to: an IPv4 address as it is (an IPv4-mapped IPv6
/// address, `::ffff:a.b.c.d`, counts as that IPv4 address), an IPv6 address by its network
/// of `ipv6_prefix` bits — whoever holds a /64 holds 2^64 addresses, and they share one
/// budget.
pub fn budget_key(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

impl std::fmt::Debug for AuthThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthThrottle").finish_non_exhaustive()
    }
}

/// Failures allowed per (client id, address) per minute, as a burst.
pub const FAILURES_PER_CLIENT_IP: i64 = 10;
/// Failures allowed per address per minute, as a burst (any client ids).
pub const FAILURES_PER_IP: i64 = 100;
const FAILURE_WINDOW_US: i64 = 60_000_000;
const MAX_THROTTLE_ENTRIES: usize = 100_000;

impl AuthThrottle {
    fn new(ipv6_prefix: u8) -> Self {
        Self {
            per_client_ip: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            ipv6_prefix: ipv6_prefix.min(128),
        }
    }

    fn blocked(state: Option<&Gcra>, now: i64) -> Option<i64> {
        let s = state?;
        // Would one more failure be refused? Then the budget is spent.
        let (step, _) = gcra_step(s.tat, now, s.emission, s.period);
        (!step.allowed).then_some(step.us)
    }

    /// Seconds to wait when this (client id, address) is out of budget; `None` when it may
    /// try (argon2 may run).
    pub fn check(&self, client_id: &str, ip: IpAddr, now_us: i64) -> Option<u64> {
        let ip = budget_key(ip, self.ipv6_prefix);
        let by_pair = lock(&self.per_client_ip);
        let a = Self::blocked(by_pair.get(&(client_id.to_owned(), ip)), now_us);
        drop(by_pair);
        let by_ip = lock(&self.per_ip);
        let b = Self::blocked(by_ip.get(&ip), now_us);
        a.max(b).map(|us| ceil_secs(us).max(1))
    }

    /// Seconds to wait when this address has spent its budget across all client ids; `None`
    /// when it may try. For attempts not yet tied to a client id.
    pub fn check_address(&self, ip: IpAddr, now_us: i64) -> Option<u64> {
        let ip = budget_key(ip, self.ipv6_prefix);
        Self::blocked(lock(&self.per_ip).get(&ip), now_us).map(|us| ceil_secs(us).max(1))
    }

    /// Spend one failure of both budgets.
    pub fn failed(&self, client_id: &str, ip: IpAddr, now_us: i64) {
        let ip = budget_key(ip, self.ipv6_prefix);
        fn spend<K: std::hash::Hash + Eq>(map: &mut HashMap<K, Gcra>, key: K, n: i64, now: i64) {
            if map.len() >= MAX_THROTTLE_ENTRIES {
                map.retain(|_, s| s.tat > now);
            }
            let emission = FAILURE_WINDOW_US / n;
            let s = map.entry(key).or_insert(Gcra {
                tat: now,
                emission,
                period: FAILURE_WINDOW_US,
            });
            let (_, tat) = gcra_step(s.tat, now, s.emission, s.period);
            s.tat = tat;
        }
        spend(
            &mut lock(&self.per_client_ip),
            (client_id.to_owned(), ip),
            FAILURES_PER_CLIENT_IP,
            now_us,
        );
        spend(&mut lock(&self.per_ip), ip, FAILURES_PER_IP, now_us);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two instances on one database, 1,200 quota'd profiles (more than two 500-row chunks in
    /// both the batched write and the batched read-back): each instance's flush adds its own
    /// use, and reads back the other's, so the quota holds across instances.
    #[tokio::test]
    async fn quota_flushes_add_up_across_instances_in_batches() {
        let db = crate::connect("sqlite::memory:").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let a = Limiter::local(db.clone(), clock.clone());
        let b = Limiter::local(db.clone(), clock);
        let q = Some(Quota {
            requests: 3,
            per: QuotaPer::Day,
        });
        let ids: Vec<String> = (0..1200).map(|i| format!("prf_{i:05}")).collect();
        let allowed = |v: &Verdict| matches!(v, Verdict::Allowed(_));
        for id in &ids {
            assert!(allowed(&a.check(id, None, q).await));
            assert!(allowed(&a.check(id, None, q).await));
        }
        a.flush().await.unwrap();
        // B loads A's 2 on first use: one more is allowed, then none.
        for id in &ids {
            assert!(allowed(&b.check(id, None, q).await), "{id}: third call");
            assert!(!allowed(&b.check(id, None, q).await), "{id}: fourth call");
        }
        b.flush().await.unwrap();
        // A learns of B's use at its next flush.
        a.flush().await.unwrap();
        for id in &ids {
            assert!(
                !allowed(&a.check(id, None, q).await),
                "{id}: A after read-back"
            );
        }
        // Every row holds exactly 3.
        use crate::entity::quota_counter::Entity;
        let rows = Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), ids.len());
        assert!(
            rows.iter().all(|r| r.count == 3),
            "counts: {:?}",
            rows.first()
        );
    }

    #[test]
    fn gcra_allows_a_burst_then_one_per_emission_interval() {
        // 5 per minute: 12 s apart after a burst of 5.
        let (emission, period) = (12_000_000, 60_000_000);
        let mut tat = 0;
        for i in 0..5 {
            let (step, t) = gcra_step(tat, 0, emission, period);
            assert!(step.allowed, "call {i}");
            assert_eq!(step.us / emission, 4 - i, "remaining after call {i}");
            tat = t;
        }
        let (step, t) = gcra_step(tat, 0, emission, period);
        assert!(!step.allowed);
        assert_eq!(step.us, 12_000_000, "retry after 12 s");
        assert_eq!(t, tat, "a refusal spends nothing");
        let (step, _) = gcra_step(tat, 11_999_999, emission, period);
        assert!(!step.allowed);
        let (step, _) = gcra_step(tat, 12_000_000, emission, period);
        assert!(step.allowed);
    }

    #[test]
    fn quota_periods_are_utc_calendar_days_and_months() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 59)
            .single()
            .unwrap();
        let (key, end) = period_of(QuotaPer::Day, at);
        assert_eq!(key, "d:2026-12-31");
        assert_eq!(end - at, chrono::Duration::seconds(1));
        let (key, end) = period_of(QuotaPer::Month, at);
        assert_eq!(key, "m:2026-12");
        assert_eq!(
            end,
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).single().unwrap()
        );
    }

    #[test]
    fn the_failure_budget_is_per_client_and_address() {
        let t = AuthThrottle::new(DEFAULT_IPV6_PREFIX);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..FAILURES_PER_CLIENT_IP {
            assert_eq!(t.check("gco_x", a, 0), None);
            t.failed("gco_x", a, 0);
        }
        assert!(t.check("gco_x", a, 0).is_some(), "spent");
        assert_eq!(
            t.check("gco_x", b, 0),
            None,
            "another address may still try"
        );
        assert_eq!(
            t.check("gco_y", a, 0),
            None,
            "another client id may still try"
        );
        assert_eq!(
            t.check("gco_x", a, 6_000_000),
            None,
            "one failure back after 6 s"
        );
    }

    /// Every address of one IPv6 /64 spends the same budget (an attacker with a /64 has
    /// 2^64 addresses); the next /64 has its own. An IPv4-mapped IPv6 address is its IPv4
    /// address. The prefix is configurable.
    #[test]
    fn ipv6_sources_share_the_budget_of_their_network() {
        let t = AuthThrottle::new(DEFAULT_IPV6_PREFIX);
        for i in 0..FAILURES_PER_IP {
            let ip: IpAddr = format!("2001:db8:0:1:{:x}::{i:x}", i * 7).parse().unwrap();
            assert_eq!(t.check(&format!("gco_{i}"), ip, 0), None, "failure {i}");
            t.failed(&format!("gco_{i}"), ip, 0);
        }
        let same_64: IpAddr = "2001:db8:0:1:ffff:ffff:ffff:ffff".parse().unwrap();
        assert!(t.check("gco_new", same_64, 0).is_some(), "the /64 is spent");
        assert!(t.check_address(same_64, 0).is_some());
        let next_64: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert_eq!(t.check("gco_new", next_64, 0), None);

        let t = AuthThrottle::new(DEFAULT_IPV6_PREFIX);
        let v4: IpAddr = "198.51.100.7".parse().unwrap();
        let mapped: IpAddr = "::ffff:198.51.100.7".parse().unwrap();
        for _ in 0..FAILURES_PER_CLIENT_IP {
            t.failed("gco_x", mapped, 0);
        }
        assert!(t.check("gco_x", v4, 0).is_some(), "mapped counts as IPv4");
        assert_eq!(budget_key(mapped, 64), v4);

        assert_eq!(
            budget_key("2001:db8:1:2:3:4:5:6".parse().unwrap(), 48),
            "2001:db8:1::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            budget_key("2001:db8:1:2:3:4:5:6".parse().unwrap(), 128),
            "2001:db8:1:2:3:4:5:6".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            budget_key("2001:db8::1".parse().unwrap(), 0),
            "::".parse::<IpAddr>().unwrap()
        );
    }

    fn five_a_minute() -> Option<RateLimit> {
        Some(RateLimit {
            requests: 5,
            per: crate::api::RatePer::Minute,
        })
    }

    /// The wall clock stepped back an hour after a profile spent its rate limit: the limit
    /// refills on time (12 s for one call), not an hour later.
    #[tokio::test]
    async fn a_wall_clock_step_back_does_not_keep_a_profile_denied() {
        let db = crate::connect("sqlite::memory:").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let clock = Arc::new(crate::clock::ManualClock::new());
        let limiter = Limiter::local(db, clock.clone());
        let allowed = |v: &Verdict| matches!(v, Verdict::Allowed(_));
        for _ in 0..5 {
            assert!(allowed(
                &limiter.check("prf_a", five_a_minute(), None).await
            ));
        }
        assert!(!allowed(
            &limiter.check("prf_a", five_a_minute(), None).await
        ));
        clock.advance(-3600.0);
        clock.advance(12.5);
        assert!(
            allowed(&limiter.check("prf_a", five_a_minute(), None).await),
            "one call back 12 s later, whatever the wall clock did"
        );

        // The failure budget likewise.
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let t = limiter.throttle();
        for _ in 0..FAILURES_PER_CLIENT_IP {
            t.failed("gco_x", ip, limiter.monotonic_micros());
        }
        assert!(t.check("gco_x", ip, limiter.monotonic_micros()).is_some());
        clock.advance(-3600.0);
        clock.advance(6.5);
        assert_eq!(t.check("gco_x", ip, limiter.monotonic_micros()), None);
    }

    /// A quota count that cannot be read is read again by the next call, not taken as zero:
    /// another instance has used the whole quota; this one's first read fails; once the
    /// database answers, the next call sees the use and refuses.
    #[tokio::test]
    async fn an_unreadable_quota_count_is_read_again() {
        use sea_orm::ConnectionTrait;
        let db = crate::connect("sqlite::memory:").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let other = Limiter::local(db.clone(), clock.clone());
        let q = Some(Quota {
            requests: 3,
            per: QuotaPer::Day,
        });
        let allowed = |v: &Verdict| matches!(v, Verdict::Allowed(_));
        for _ in 0..3 {
            assert!(allowed(&other.check("prf_q", None, q).await));
        }
        other.flush().await.unwrap();

        let exec = |sql: &'static str| {
            let db = db.clone();
            async move { db.execute_unprepared(sql).await.unwrap() }
        };
        let open = Limiter::local(db.clone(), clock.clone());
        exec("ALTER TABLE quota_counters RENAME TO quota_counters_away").await;
        // Open (default): judged on what this instance knows; not remembered as zero.
        assert!(allowed(&open.check("prf_q", None, q).await));
        exec("ALTER TABLE quota_counters_away RENAME TO quota_counters").await;
        assert!(
            !allowed(&open.check("prf_q", None, q).await),
            "the stored count is read again and the quota is spent"
        );

        // Closed: while the count cannot be read, refused as a short `rate_limited`.
        let mut closed = Limiter::local(db.clone(), clock);
        closed.failure = FailureMode::Closed;
        exec("ALTER TABLE quota_counters RENAME TO quota_counters_away").await;
        match closed.check("prf_q", None, q).await {
            Verdict::Denied {
                reason,
                retry_after,
                ..
            } => {
                assert_eq!(reason, Reason::RateLimited);
                assert_eq!(retry_after, 1);
            }
            v => panic!("refused while unknown: {v:?}"),
        }
        exec("ALTER TABLE quota_counters_away RENAME TO quota_counters").await;
        match closed.check("prf_q", None, q).await {
            Verdict::Denied { reason, .. } => assert_eq!(reason, Reason::QuotaExceeded),
            v => panic!("{v:?}"),
        }
    }

    /// A "Redis" that accepts connections and never answers: the connect of the first call
    /// takes its full timeout. Calls that arrive meanwhile fall back at once, per the failure
    /// mode (they used to queue on one lock and each wait for a connect of its own).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn while_redis_hangs_only_one_call_waits_for_a_connect() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", silent.local_addr().unwrap());
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let db = crate::connect("sqlite::memory:").await.unwrap();
        crate::migrate(&db).await.unwrap();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        for failure in [FailureMode::Open, FailureMode::Closed] {
            let limiter =
                Arc::new(Limiter::new(db.clone(), clock.clone(), Some(&url), failure).unwrap());
            let mut calls = Vec::new();
            for i in 0..8 {
                let limiter = limiter.clone();
                calls.push(tokio::spawn(async move {
                    let started = Instant::now();
                    let verdict = limiter
                        .check(&format!("prf_{i}"), five_a_minute(), None)
                        .await;
                    (started.elapsed(), verdict)
                }));
            }
            let mut quick = 0;
            for call in calls {
                let (took, verdict) = call.await.unwrap();
                match failure {
                    FailureMode::Open => assert!(matches!(verdict, Verdict::Allowed(Some(_)))),
                    FailureMode::Closed => assert!(matches!(
                        verdict,
                        Verdict::Denied {
                            reason: Reason::RateLimited,
                            ..
                        }
                    )),
                }
                if took < REDIS_TIMEOUT * 9 / 10 {
                    quick += 1;
                }
            }
            assert!(
                quick >= 7,
                "{failure:?}: at most one call waits for the connect; {quick} of 8 were quick"
            );
        }
    }
}
