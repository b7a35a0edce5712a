//! The load generator: M keep-alive HTTP/1.1 connections (hyper's client connection over a
//! tokio `TcpStream`, one task each), closed loop, each request drawn uniformly from the
//! prepared set.
//!
//! A run has three phases. **Prime**: one request per distinct credential, then (when there
//! are more requests than credentials, as in introspection) every prepared request once,
//! spread over the connections; so each credential's first — argon2id — verification, each
//! token's first signature verification and each cache fill happen here. **Warm-up**: the
//! closed loop runs for `warmup`, not counted. **Measure**: the closed loop runs for
//! `duration`; a request counts if it starts and ends inside the window. Only the measured
//! phase enters the latency figures; errors of every phase are reported.
//!
//! The `hostile` scenario sends 64 KiB bodies of hostile shapes with client ids that do not
//! exist; a 4xx answer is its success. With the server's process id known, every report also
//! gives the server's CPU time over the measured window and per request.

use crate::credentials::Credentials;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `POST /oauth/token`, client credentials with Basic auth, over the first N `oauth2`
    /// profiles.
    Tokens,
    /// `POST /oauth/introspect` of our JWTs (one per profile for the first N profiles) with
    /// the profile's collection's Basic credentials.
    IntrospectJwt,
    /// `POST /oauth/introspect` of the first N API keys, with their collection's credentials.
    IntrospectKey,
    /// `GET /oauth/jwks`.
    Jwks,
    /// `GET /.well-known/openid-configuration`.
    Discovery,
    /// `POST` 64 KiB hostile bodies (thousands of scopes, resources, unknown or valueless
    /// parameters, long percent-encoded values) to the token, introspection and revocation
    /// endpoints, with client ids that do not exist: every answer must be a 4xx. Not part of
    /// `all`.
    Hostile,
}

impl Scenario {
    /// Every scenario, in the order `all` runs them.
    pub const ALL: [Scenario; 5] = [
        Scenario::Tokens,
        Scenario::IntrospectJwt,
        Scenario::IntrospectKey,
        Scenario::Jwks,
        Scenario::Discovery,
    ];

    /// Scenarios run only when named.
    pub const EXTRA: [Scenario; 1] = [Scenario::Hostile];

    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Tokens => "tokens",
            Scenario::IntrospectJwt => "introspect-jwt",
            Scenario::IntrospectKey => "introspect-key",
            Scenario::Jwks => "jwks",
            Scenario::Discovery => "discovery",
            Scenario::Hostile => "hostile",
        }
    }

    /// Whether the scenario reads the credentials file.
    pub fn needs_credentials(self) -> bool {
        matches!(
            self,
            Scenario::Tokens | Scenario::IntrospectJwt | Scenario::IntrospectKey
        )
    }
}

/// Where the server's public listener is.
#[derive(Debug, Clone)]
pub struct Target {
    /// Its socket address.
    pub addr: SocketAddr,
    host: HeaderValue,
}

impl Target {
    /// From `http://host:port` (a trailing path is ignored; https is not supported).
    pub async fn parse(url: &str) -> Result<Self> {
        let uri: hyper::Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
        if uri.scheme_str().is_some_and(|s| s != "http") {
            bail!("only http:// targets are supported ({url})");
        }
        let authority = uri
            .authority()
            .with_context(|| format!("no host:port in {url}"))?
            .as_str()
            .to_owned();
        let with_port = if uri.port_u16().is_some() {
            authority.clone()
        } else {
            format!("{authority}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await?
            .next()
            .with_context(|| format!("{authority} does not resolve"))?;
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&authority)?,
        })
    }

    /// A target at a socket address.
    pub fn from_addr(addr: SocketAddr) -> Result<Self> {
        Ok(Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }
}

/// How to drive.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent connections.
    pub connections: usize,
    /// Measured window.
    pub duration: Duration,
    /// Closed-loop warm-up after priming, not counted.
    pub warmup: Duration,
    /// Use the first N credentials.
    pub spread: usize,
    /// Skip the priming pass (then first verifications land in the warm-up or the window).
    pub prime: bool,
    /// Requests per second in all, paced (open loop); `None`: as fast as answered.
    pub rate: Option<f64>,
    /// The server's process id, to read its CPU time over the measured window (Linux).
    pub server_pid: Option<u32>,
}

/// What answer counts as a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 2xx.
    Success,
    /// 200 with `"active":true` (introspection).
    Active,
    /// A 4xx (hostile input); a 5xx is an error.
    ClientError,
}

/// One prepared request.
#[derive(Debug, Clone)]
struct Prepared {
    method: Method,
    path: &'static str,
    auth: Option<HeaderValue>,
    body: Bytes,
    expect: Expect,
}

impl Prepared {
    fn request(&self, host: &HeaderValue) -> Result<Request<Full<Bytes>>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.path)
            .header(HOST, host.clone());
        if let Some(auth) = &self.auth {
            b = b.header(AUTHORIZATION, auth.clone());
        }
        if self.method == Method::POST {
            b = b.header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
        }
        Ok(b.body(Full::new(self.body.clone()))?)
    }
}

fn basic(id: &str, secret: &str) -> Result<HeaderValue> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
    Ok(HeaderValue::from_str(&format!("Basic {encoded}"))?)
}

/// The figures of one run, printed as one JSON line.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: &'static str,
    /// Concurrent connections.
    pub connections: usize,
    /// Distinct credentials (or tokens) the requests were spread over.
    pub spread: usize,
    /// Requests sent before the warm-up: one per distinct credential, then (if there are
    /// more requests than credentials) every request once.
    pub primed: usize,
    /// Seconds the priming took (for `introspect-jwt`, getting the tokens included).
    pub prime_seconds: f64,
    /// Errors while priming (and getting tokens).
    pub prime_errors: u64,
    /// Warm-up seconds (not counted).
    pub warmup_seconds: f64,
    /// Requests during the warm-up.
    pub warmup_requests: u64,
    /// Errors during the warm-up.
    pub warmup_errors: u64,
    /// Measured window in seconds.
    pub duration_seconds: f64,
    /// Successful requests completed inside the window.
    pub requests: u64,
    /// `requests / duration_seconds`.
    pub rps: f64,
    /// Median latency (ms) of those requests.
    pub p50_ms: f64,
    /// 90th percentile (ms).
    pub p90_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
    /// Slowest (ms).
    pub max_ms: f64,
    /// Failed requests started inside the window: `non_2xx + transport + inactive`.
    pub errors: u64,
    /// Answers outside 2xx.
    pub non_2xx: u64,
    /// Connection or protocol failures (the connection is then reopened).
    pub transport: u64,
    /// Introspection answers of 200 without `"active":true`.
    pub inactive: u64,
    /// The first error seen, if any (status and up to 200 bytes of body, or the transport
    /// error).
    pub first_error: Option<String>,
    /// The server's process id, when known.
    pub server_pid: Option<u32>,
    /// The server's peak RSS (VmHWM) in MB after the run, when known.
    pub server_peak_rss_mb: Option<f64>,
    /// The server's RSS in MB after the run, when known.
    pub server_rss_mb: Option<f64>,
    /// Milliseconds from starting the server to `/readyz` = 200, when this tool started it.
    pub server_ready_ms: Option<f64>,
    /// Seconds of CPU (user + system, all threads) the server used during the measured
    /// window, when its process id is known.
    pub server_cpu_seconds: Option<f64>,
    /// `server_cpu_seconds` per request answered in the window, in µs.
    pub server_cpu_us_per_request: Option<f64>,
}

impl Report {
    /// The one-line human summary.
    pub fn human(&self) -> String {
        let mut s = format!(
            "{}: {:.0} req/s, p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors \
             ({} requests in {:.1} s, {} connections, spread {}; primed {} requests in {:.1} s \
             and warmed up {:.1} s before measuring, not counted)",
            self.scenario,
            self.rps,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms,
            self.errors,
            self.requests,
            self.duration_seconds,
            self.connections,
            self.spread,
            self.primed,
            self.prime_seconds,
            self.warmup_seconds,
        );
        if self.prime_errors + self.warmup_errors > 0 {
            s.push_str(&format!(
                "; {} errors while priming, {} during warm-up",
                self.prime_errors, self.warmup_errors
            ));
        }
        if let Some(e) = &self.first_error {
            s.push_str(&format!("; first error: {e}"));
        }
        if let Some(us) = self.server_cpu_us_per_request {
            s.push_str(&format!(
                "; server CPU {:.2} s in the window, {us:.1} µs per request",
                self.server_cpu_seconds.unwrap_or(0.0)
            ));
        }
        if let Some(rss) = self.server_peak_rss_mb {
            s.push_str(&format!("; server peak RSS {rss:.1} MB"));
        }
        if let Some(ms) = self.server_ready_ms {
            s.push_str(&format!("; server ready {ms:.0} ms after start"));
        }
        s
    }

    /// Every error of every phase.
    pub fn all_errors(&self) -> u64 {
        self.errors + self.prime_errors + self.warmup_errors
    }
}

/// Build the requests of a scenario, prime, warm up and measure.
pub async fn run(
    target: &Target,
    scenario: Scenario,
    creds: Option<&Credentials>,
    opts: &LoadOptions,
) -> Result<Report> {
    let connections = opts.connections.max(1);
    let need =
        || creds.with_context(|| format!("scenario {} needs --credentials", scenario.name()));
    let prime_started = Instant::now();
    let mut prime_errors = 0;
    let mut first_error = None;
    let prepared: Vec<Prepared> = match scenario {
        Scenario::Tokens => token_requests(need()?, opts.spread)?,
        Scenario::IntrospectJwt => {
            let c = need()?;
            let fetch = Arc::new(token_requests(c, opts.spread)?);
            let got = once(target, fetch, connections).await;
            prime_errors += got.errors;
            first_error = got.first_error.clone();
            let mut reqs = Vec::with_capacity(got.bodies.len());
            for (i, body) in got.bodies.iter().enumerate() {
                let Some(body) = body else { continue };
                let token = serde_json::from_slice::<serde_json::Value>(body)
                    .ok()
                    .and_then(|v| v.get("access_token")?.as_str().map(str::to_owned))
                    .context("a token answer without access_token")?;
                let profile = c.oauth2.get(i).context("token for an unknown profile")?;
                let col = c.collection(profile.collection)?;
                reqs.push(Prepared {
                    method: Method::POST,
                    path: "/oauth/introspect",
                    auth: Some(basic(&col.client_id, &col.secret)?),
                    body: Bytes::from(format!("token={token}")),
                    expect: Expect::Active,
                });
            }
            reqs
        }
        Scenario::IntrospectKey => {
            let c = need()?;
            c.api_keys
                .iter()
                .take(opts.spread)
                .map(|k| {
                    let col = c.collection(k.collection)?;
                    Ok(Prepared {
                        method: Method::POST,
                        path: "/oauth/introspect",
                        auth: Some(basic(&col.client_id, &col.secret)?),
                        body: Bytes::from(format!("token={}", k.key)),
                        expect: Expect::Active,
                    })
                })
                .collect::<Result<_>>()?
        }
        Scenario::Jwks => vec![get("/oauth/jwks")],
        Scenario::Discovery => vec![get("/.well-known/openid-configuration")],
        Scenario::Hostile => hostile_requests(),
    };
    if prepared.is_empty() {
        bail!(
            "scenario {}: no credentials to use (seeded none, --spread 0, or every token request failed{})",
            scenario.name(),
            first_error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let prepared = Arc::new(prepared);
    let mut primed = 0;
    if opts.prime {
        // First one request per distinct credential, so that each costs one argon2id run:
        // the server does not merge concurrent first verifications of the same secret, so
        // 32 connections introspecting with one collection's credentials at once would pay
        // up to 32 runs. Then every request once (token verifications, key lookups).
        let mut seen = HashSet::new();
        let distinct: Vec<Prepared> = prepared
            .iter()
            .filter(|p| seen.insert(p.auth.clone()))
            .cloned()
            .collect();
        let mut passes = vec![Arc::new(distinct)];
        if passes.first().is_some_and(|d| d.len() < prepared.len()) {
            passes.push(prepared.clone());
        }
        for pass in passes {
            primed += pass.len();
            let got = once(target, pass, connections).await;
            prime_errors += got.errors;
            if first_error.is_none() {
                first_error = got.first_error;
            }
        }
    }
    let prime_seconds = prime_started.elapsed().as_secs_f64();

    let start = Instant::now();
    let warm_end = start + opts.warmup;
    let end = warm_end + opts.duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let seed: u64 = rand::rng().random();
        // Each connection sends one request every `connections / rate` seconds.
        let interval = opts
            .rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(connections as f64 / r));
        tasks.push(tokio::spawn(timed(
            target.clone(),
            prepared.clone(),
            (warm_end, end),
            interval,
            seed,
        )));
    }
    let cpu = match opts.server_pid {
        Some(pid) => {
            tokio::time::sleep_until(warm_end.into()).await;
            let at_start = cpu_seconds(pid);
            tokio::time::sleep_until(end.into()).await;
            at_start.zip(cpu_seconds(pid)).map(|(a, b)| b - a)
        }
        None => None,
    };
    let mut all = Stats::default();
    for t in tasks {
        all.merge(t.await.context("a connection task panicked")?);
    }
    if first_error.is_none() {
        first_error = all.first_error.take();
    }
    let mut lat = std::mem::take(&mut all.latencies_ns);
    lat.sort_unstable();
    let ms = |ns: u64| ns as f64 / 1e6;
    let secs = opts.duration.as_secs_f64();
    let errors = all.non_2xx + all.transport + all.inactive;
    Ok(Report {
        scenario: scenario.name(),
        connections,
        spread: prepared.len(),
        primed,
        prime_seconds,
        prime_errors,
        warmup_seconds: opts.warmup.as_secs_f64(),
        warmup_requests: all.warmup_requests,
        warmup_errors: all.warmup_errors,
        duration_seconds: secs,
        requests: lat.len() as u64,
        rps: lat.len() as f64 / secs.max(1e-9),
        p50_ms: ms(percentile(&lat, 0.50)),
        p90_ms: ms(percentile(&lat, 0.90)),
        p99_ms: ms(percentile(&lat, 0.99)),
        max_ms: ms(lat.last().copied().unwrap_or(0)),
        errors,
        non_2xx: all.non_2xx,
        transport: all.transport,
        inactive: all.inactive,
        first_error,
        server_pid: None,
        server_peak_rss_mb: None,
        server_rss_mb: None,
        server_ready_ms: None,
        server_cpu_seconds: cpu,
        server_cpu_us_per_request: cpu
            .filter(|_| !lat.is_empty())
            .map(|c| c * 1e6 / lat.len() as f64),
    })
}

/// User + system CPU seconds a process (all its threads) has used, from `/proc/PID/stat`
/// (Linux; clock ticks of 1/100 s, USER_HZ on every mainstream architecture).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace();
    // After `)`: state (3), ppid … ; utime is field 14 and stime 15 of the whole line.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Just under the public listener's 64 KiB body cap.
const HOSTILE_BODY: usize = 64 * 1024 - 16;

/// `head` followed by `item(0)`, `item(1)`, … while the body stays under [`HOSTILE_BODY`].
fn fill(head: &str, item: impl Fn(usize) -> String) -> Bytes {
    let mut body = head.to_owned();
    for i in 0.. {
        let next = item(i);
        if body.len() + next.len() > HOSTILE_BODY {
            break;
        }
        body.push_str(&next);
    }
    Bytes::from(body)
}

/// The `hostile` scenario's requests: 64 KiB of each shape, all from clients that do not
/// exist. The percent-encoded secrets decode to more than any secret may be, so no shape
/// reaches argon2 (what argon2 costs a flood is the failure budgets' business).
fn hostile_requests() -> Vec<Prepared> {
    let scope = |i: usize| {
        let l = |n: usize| char::from(b'a' + u8::try_from(n % 26).unwrap_or(0));
        [l(i / 676), l(i / 26), l(i)].iter().collect::<String>()
    };
    const WRONG: &str = "grant_type=client_credentials&client_id=gco_nobody&client_secret=wrong";
    const RS: &str = "client_id=grs_nobody&client_secret=wrong&token=x";
    let post = |path: &'static str, body: Bytes| Prepared {
        method: Method::POST,
        path,
        auth: None,
        body,
        expect: Expect::ClientError,
    };
    vec![
        post(
            "/oauth/token",
            fill(&format!("{WRONG}&scope=aaa"), |i| {
                format!("+{}", scope(i + 1))
            }),
        ),
        post(
            "/oauth/token",
            fill(WRONG, |i| format!("&resource=https%3A%2F%2Fapi{i}.example")),
        ),
        post("/oauth/token", fill(WRONG, |i| format!("&p{i}=1"))),
        post("/oauth/token", fill(WRONG, |_| "&p".to_owned())),
        post("/oauth/token", fill(WRONG, |_| "&x=1".to_owned())),
        post(
            "/oauth/token",
            fill(&format!("{WRONG}&scope="), |_| "%61".to_owned()),
        ),
        post(
            "/oauth/token",
            fill(
                "grant_type=client_credentials&client_id=gco_nobody&client_secret=",
                |_| "%41".to_owned(),
            ),
        ),
        post("/oauth/introspect", fill(RS, |i| format!("&p{i}=1"))),
        post(
            "/oauth/introspect",
            fill("client_id=grs_nobody&token=x&client_secret=", |_| {
                "%41".to_owned()
            }),
        ),
        post("/oauth/revoke", fill(RS, |i| format!("&p{i}=1"))),
    ]
}

fn get(path: &'static str) -> Prepared {
    Prepared {
        method: Method::GET,
        path,
        auth: None,
        body: Bytes::new(),
        expect: Expect::Success,
    }
}

fn token_requests(c: &Credentials, spread: usize) -> Result<Vec<Prepared>> {
    c.oauth2
        .iter()
        .take(spread)
        .map(|p| {
            Ok(Prepared {
                method: Method::POST,
                path: "/oauth/token",
                auth: Some(basic(&p.client_id, &p.secret)?),
                body: Bytes::from_static(b"grant_type=client_credentials"),
                expect: Expect::Success,
            })
        })
        .collect()
}

/// The value at quantile `q` of sorted values (nearest rank).
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.clamp(1, sorted.len()) - 1)
        .copied()
        .unwrap_or(0)
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(target: &Target) -> Result<Sender> {
    let stream = TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// How one exchange ended.
enum Outcome {
    Ok(Bytes),
    Failed { transport: bool, detail: String },
}

async fn exchange(sender: &mut Option<Sender>, target: &Target, req: &Prepared) -> Outcome {
    let result = async {
        if sender.is_none() {
            *sender = Some(connect(target).await?);
        }
        let s = sender.as_mut().context("no connection")?;
        s.ready().await?;
        let resp = s.send_request(req.request(&target.host)?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    match tokio::time::timeout(Duration::from_secs(30), result).await {
        Ok(Ok((status, body))) => judge(status, body, req.expect),
        Ok(Err(e)) => {
            *sender = None;
            Outcome::Failed {
                transport: true,
                detail: format!("transport: {e:#}"),
            }
        }
        Err(_) => {
            *sender = None;
            Outcome::Failed {
                transport: true,
                detail: "transport: no answer within 30 s".to_owned(),
            }
        }
    }
}

fn judge(status: StatusCode, body: Bytes, expect: Expect) -> Outcome {
    let snippet = || String::from_utf8_lossy(body.get(..200).unwrap_or(&body)).into_owned();
    if expect == Expect::ClientError {
        if status.is_client_error() {
            return Outcome::Ok(body);
        }
        return Outcome::Failed {
            transport: false,
            detail: format!("{status} (a 4xx expected): {}", snippet()),
        };
    }
    if !status.is_success() {
        return Outcome::Failed {
            transport: false,
            detail: format!("{status}: {}", snippet()),
        };
    }
    if expect == Expect::Active && !contains(&body, b"\"active\":true") {
        return Outcome::Failed {
            transport: false,
            detail: format!("inactive: {}", snippet()),
        };
    }
    Outcome::Ok(body)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What `once` got back: each request's body (`None` if it failed).
struct Once {
    bodies: Vec<Option<Bytes>>,
    errors: u64,
    first_error: Option<String>,
}

/// Send each prepared request exactly once, over `connections` connections.
async fn once(target: &Target, reqs: Arc<Vec<Prepared>>, connections: usize) -> Once {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..connections.min(reqs.len()) {
        let (target, reqs, next) = (target.clone(), reqs.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = None;
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(req) = reqs.get(i) else { break };
                got.push((i, exchange(&mut sender, &target, req).await));
            }
            got
        }));
    }
    let mut out = Once {
        bodies: vec![None; reqs.len()],
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        let Ok(got) = t.await else {
            out.errors += 1;
            continue;
        };
        for (i, outcome) in got {
            match outcome {
                Outcome::Ok(body) => {
                    if let Some(slot) = out.bodies.get_mut(i) {
                        *slot = Some(body);
                    }
                }
                Outcome::Failed { detail, .. } => {
                    out.errors += 1;
                    out.first_error.get_or_insert(detail);
                }
            }
        }
    }
    out
}

/// Per-connection counts, merged at the end.
#[derive(Debug, Default)]
struct Stats {
    latencies_ns: Vec<u64>,
    non_2xx: u64,
    transport: u64,
    inactive: u64,
    warmup_requests: u64,
    warmup_errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latencies_ns.extend(other.latencies_ns);
        self.non_2xx += other.non_2xx;
        self.transport += other.transport;
        self.inactive += other.inactive;
        self.warmup_requests += other.warmup_requests;
        self.warmup_errors += other.warmup_errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The closed loop of one connection until `end`.
async fn timed(
    target: Target,
    reqs: Arc<Vec<Prepared>>,
    (warm_end, end): (Instant, Instant),
    interval: Option<Duration>,
    seed: u64,
) -> Stats {
    let mut next_send = Instant::now();
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut sender = None;
    let mut st = Stats {
        latencies_ns: Vec::with_capacity(1 << 16),
        ..Stats::default()
    };
    let n = reqs.len();
    loop {
        if let Some(every) = interval {
            tokio::time::sleep_until(next_send.into()).await;
            next_send += every;
        }
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        let i = if n > 1 { rng.random_range(0..n) } else { 0 };
        let Some(req) = reqs.get(i) else { break };
        let outcome = exchange(&mut sender, &target, req).await;
        let t1 = Instant::now();
        let measured = t0 >= warm_end;
        match outcome {
            Outcome::Ok(_) => {
                if !measured {
                    st.warmup_requests += 1;
                } else if t1 <= end {
                    let ns = u64::try_from((t1 - t0).as_nanos()).unwrap_or(u64::MAX);
                    st.latencies_ns.push(ns);
                }
            }
            Outcome::Failed { transport, detail } => {
                if measured {
                    if transport {
                        st.transport += 1;
                    } else if detail.starts_with("inactive") {
                        st.inactive += 1;
                    } else {
                        st.non_2xx += 1;
                    }
                } else {
                    st.warmup_requests += 1;
                    st.warmup_errors += 1;
                }
                st.first_error.get_or_insert(detail);
                if transport {
                    // Do not spin if the server is gone.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    st
}

/// Parse `20s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let value: f64 = num
        .parse()
        .with_context(|| format!("bad duration {text:?} (use 20s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => bail!("bad duration unit in {text:?} (use ms, s or m)"),
    };
    if !secs.is_finite() || secs < 0.0 {
        bail!("bad duration {text:?}");
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50);
        assert_eq!(percentile(&v, 0.9), 90);
        assert_eq!(percentile(&v, 0.99), 99);
        assert_eq!(percentile(&v, 1.0), 100);
        assert_eq!(percentile(&[7], 0.99), 7);
        assert_eq!(percentile(&[], 0.5), 0);
    }

    #[test]
    fn hostile_answers_must_be_4xx() {
        let bad = Bytes::from_static(b"{\"error\":\"invalid_scope\"}");
        assert!(matches!(
            judge(StatusCode::BAD_REQUEST, bad.clone(), Expect::ClientError),
            Outcome::Ok(_)
        ));
        for status in [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE] {
            assert!(matches!(
                judge(status, bad.clone(), Expect::ClientError),
                Outcome::Failed { .. }
            ));
        }
        let bodies = hostile_requests();
        assert!(bodies.iter().all(|r| r.body.len() > HOSTILE_BODY - 64));
        assert!(bodies.iter().all(|r| r.body.len() <= HOSTILE_BODY));
    }

    #[test]
    fn cpu_of_this_process_is_read() {
        assert!(cpu_seconds(std::process::id()).is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("5h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn inactive_introspection_is_an_error() {
        let ok = judge(
            StatusCode::OK,
            Bytes::from_static(b"{\"active\":true}"),
            Expect::Active,
        );
        assert!(matches!(ok, Outcome::Ok(_)));
        let no = judge(
            StatusCode::OK,
            Bytes::from_static(b"{\"active\":false}"),
            Expect::Active,
        );
        assert!(
            matches!(no, Outcome::Failed { transport: false, ref detail } if detail.starts_with("inactive"))
        );
        let e = judge(
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(b"{}"),
            Expect::Success,
        );
        assert!(matches!(
            e,
            Outcome::Failed {
                transport: false,
                ..
            }
        ));
    }
}
