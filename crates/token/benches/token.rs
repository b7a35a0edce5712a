//! Hot-path benchmarks of the token endpoint, in process: request parsing, the warm
//! verified-secret check, and the whole client-credentials grant (oxide-auth flow, scope
//! negotiation, ES256 signing), plus verification of the result. The `hostile:` cases time
//! what an unauthenticated 64 KiB body costs before any credential is looked at (run them
//! alone with `cargo bench -p gatehouse-token --bench token -- hostile`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use axum::http::HeaderValue;
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_jwks::{KeyManager, MasterKey, SigningAlg};
use gatehouse_registry::clock::SystemClock;
use gatehouse_registry::secret::PasswordHasher;
use gatehouse_registry::{Actor, Registry, RegistrySettings};
use gatehouse_token::TokenState;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

const ISSUER: &str = "http://127.0.0.1:8080";

struct Fixture {
    state: Arc<TokenState>,
    client_id: String,
    secret: String,
}

async fn fixture(alg: SigningAlg) -> Fixture {
    let db = gatehouse_registry::connect("sqlite::memory:")
        .await
        .unwrap();
    gatehouse_registry::migrate(&db).await.unwrap();
    let (master, _) = MasterKey::generate();
    let master = Arc::new(master);
    let registry = Registry::new(
        db,
        Arc::new(SystemClock),
        PasswordHasher::new(2).unwrap(),
        RegistrySettings::new(ISSUER, "http://127.0.0.1:8081"),
        master.clone(),
    );
    let keys = Arc::new(
        KeyManager::load_or_create(Arc::new(registry.clone()), master, alg, ISSUER)
            .await
            .unwrap(),
    );
    let actor = Actor::system();
    let col = registry
        .create_collection(
            &actor,
            gatehouse_registry::command::NewCollection::plain(
                "Orders",
                "https://api.example.com/orders",
                &["orders:read", "orders:write"],
            )
            .expect("collection"),
        )
        .await
        .unwrap();
    let client = registry
        .create_client(
            &actor,
            gatehouse_registry::command::NewClient::system(
                gatehouse_registry::types::Name::parse("ACME").expect("name"),
            ),
        )
        .await
        .unwrap();
    let profile = registry
        .create_profile(
            &actor,
            &client.id,
            gatehouse_registry::command::NewProfile::new(
                gatehouse_registry::types::Name::parse("batch").expect("name"),
                gatehouse_registry::types::AuthType::OAuth2,
                vec![col.collection.id.clone()],
            ),
        )
        .await
        .unwrap();
    let state = Arc::new(
        TokenState::new(
            registry,
            keys,
            ISSUER.to_owned(),
            86_400,
            Vec::new(),
            "http://127.0.0.1:8081".to_owned(),
            gatehouse_jwks::remote::RemoteKeys::new(
                std::time::Duration::from_secs(600),
                std::time::Duration::from_secs(30),
                gatehouse_jwks::outbound::OutboundAllow::default(),
            )
            .unwrap(),
        )
        .unwrap(),
    );
    Fixture {
        state,
        client_id: profile.profile.oauth_client_id,
        secret: profile.oauth_client_secret.unwrap(),
    }
}

fn grant(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let form = HeaderValue::from_static("application/x-www-form-urlencoded");
    for alg in [SigningAlg::Es256, SigningAlg::EdDsa, SigningAlg::Rs256] {
        let f = rt.block_on(fixture(alg));
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope=orders%3Aread",
            f.client_id, f.secret
        );
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        // Warm the verified-secret cache (one argon2id run).
        rt.block_on(async {
            let req = gatehouse_token::request::parse(Some(&form), None, body.as_bytes()).unwrap();
            gatehouse_token::flow::grant(f.state.clone(), req, peer)
                .await
                .unwrap();
        });
        if alg == SigningAlg::Es256 {
            c.bench_function("parse token request", |b| {
                b.iter(|| {
                    gatehouse_token::request::parse(Some(&form), None, black_box(body.as_bytes()))
                        .unwrap()
                })
            });
            c.bench_function("verified-secret check (warm)", |b| {
                b.to_async(&rt).iter(|| async {
                    f.state
                        .registry
                        .authenticate_secret(&f.client_id, &f.secret, None)
                        .await
                        .unwrap()
                })
            });
        }
        c.bench_function(&format!("client_credentials grant {alg} (warm)"), |b| {
            b.to_async(&rt).iter(|| async {
                let req =
                    gatehouse_token::request::parse(Some(&form), None, body.as_bytes()).unwrap();
                gatehouse_token::flow::grant(f.state.clone(), req, peer)
                    .await
                    .unwrap()
            })
        });
        let token = rt.block_on(async {
            let req = gatehouse_token::request::parse(Some(&form), None, body.as_bytes()).unwrap();
            let issued = gatehouse_token::flow::grant(f.state.clone(), req, peer)
                .await
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&issued.0).unwrap();
            v["access_token"].as_str().unwrap().to_owned()
        });
        if alg == SigningAlg::Es256 {
            // The same grant with a policy attached (limits far above what the bench reaches),
            // and the policy step on its own: what a policy adds to every request.
            let registry = &f.state.registry;
            rt.block_on(async {
                let actor = Actor::system();
                let policy = registry
                    .create_policy(
                        &actor,
                        gatehouse_registry::command::NewPolicy {
                            name: gatehouse_registry::types::Name::parse("bench").expect("name"),
                            rate_limit: Some(gatehouse_registry::api::RateLimit {
                                requests: 1_000_000,
                                per: gatehouse_registry::api::RatePer::Second,
                            }),
                            quota: Some(gatehouse_registry::api::Quota {
                                requests: 1_000_000_000_000,
                                per: gatehouse_registry::api::QuotaPer::Month,
                            }),
                        },
                    )
                    .await
                    .unwrap();
                let snapshot = registry
                    .profile_by_client_id(&f.client_id)
                    .await
                    .unwrap()
                    .unwrap();
                registry
                    .update_profile(
                        &actor,
                        &snapshot.profile_id,
                        gatehouse_registry::command::ProfilePatch {
                            policy_id: Some(Some(policy.id.clone())),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
            });
            c.bench_function("client_credentials grant ES256 with a policy (warm)", |b| {
                b.to_async(&rt).iter(|| async {
                    let req = gatehouse_token::request::parse(Some(&form), None, body.as_bytes())
                        .unwrap();
                    gatehouse_token::flow::grant(f.state.clone(), req, peer)
                        .await
                        .unwrap()
                })
            });
            let snapshot = rt
                .block_on(registry.profile_by_client_id(&f.client_id))
                .unwrap()
                .unwrap();
            assert!(snapshot.policy.is_some());
            c.bench_function("policy check + usage count (one use)", |b| {
                b.to_async(&rt).iter(|| async {
                    let verdict = registry.check_policy(black_box(&snapshot)).await;
                    registry.record_usage(
                        &snapshot,
                        gatehouse_registry::usage::UsageMetric::TokenIssued,
                    );
                    verdict
                })
            });
        }
        let now = f.state.registry.clock().now().timestamp();
        c.bench_function(&format!("verify access token {alg}"), |b| {
            b.iter(|| {
                f.state
                    .keys
                    .current()
                    .verify_access_token(black_box(&token), now)
                    .unwrap()
            })
        });
    }
}

/// Just under the public listener's 64 KiB body cap.
const HOSTILE_BODY: usize = 64 * 1024 - 16;

/// `head` followed by `item(0)`, `item(1)`, … while the body stays under [`HOSTILE_BODY`].
fn fill(head: &str, item: impl Fn(usize) -> String) -> String {
    let mut body = head.to_owned();
    for i in 0.. {
        let next = item(i);
        if body.len() + next.len() > HOSTILE_BODY {
            break;
        }
        body.push_str(&next);
    }
    body
}

/// Three lower-case letters: 17,576 distinct scope tokens.
fn three_letters(i: usize) -> String {
    let l = |n: usize| char::from(b'a' + u8::try_from(n % 26).unwrap_or(0));
    [l(i / 676), l(i / 26), l(i)].iter().collect()
}

/// Hostile 64 KiB bodies of every shape, with a client id that does not exist: what parsing
/// costs before authentication (the server's answer to each is a 400 or a 401).
fn hostile_bodies() -> Vec<(&'static str, String)> {
    const WRONG: &str = "grant_type=client_credentials&client_id=gco_nobody&client_secret=wrong";
    vec![
        (
            "distinct scopes",
            fill(&format!("{WRONG}&scope=aaa"), |i| {
                format!("+{}", three_letters(i + 1))
            }),
        ),
        (
            "resources",
            fill(WRONG, |i| format!("&resource=https%3A%2F%2Fapi{i}.example")),
        ),
        (
            "repeated resource",
            fill(WRONG, |_| "&resource=https%3A%2F%2Fapi.example".to_owned()),
        ),
        (
            "distinct unknown parameters",
            fill(WRONG, |i| format!("&p{i}=1")),
        ),
        ("valueless parameters", fill(WRONG, |_| "&p".to_owned())),
        ("empty parameters", fill(WRONG, |_| "&".to_owned())),
        (
            "percent-encoded client_secret",
            fill(
                "grant_type=client_credentials&client_id=gco_nobody&client_secret=",
                |_| "%41".to_owned(),
            ),
        ),
        (
            "percent-encoded scope",
            fill(&format!("{WRONG}&scope="), |_| "%61".to_owned()),
        ),
    ]
}

/// Introspection and revocation read their form with [`gatehouse_token::request::parse_form`]
/// and [`gatehouse_token::request::client_auth`] before authenticating the caller.
fn hostile_introspection_bodies() -> Vec<(&'static str, String)> {
    const WRONG: &str = "client_id=grs_nobody&client_secret=wrong&token=x";
    vec![
        (
            "introspection: distinct unknown parameters",
            fill(WRONG, |i| format!("&p{i}=1")),
        ),
        (
            "introspection: percent-encoded token",
            fill("client_id=grs_nobody&client_secret=wrong&token=", |_| {
                "%41".to_owned()
            }),
        ),
    ]
}

fn hostile(c: &mut Criterion) {
    let form = HeaderValue::from_static("application/x-www-form-urlencoded");
    for (name, body) in hostile_bodies() {
        assert!(body.len() <= HOSTILE_BODY && body.len() > HOSTILE_BODY - 64);
        c.bench_function(&format!("hostile: token, {name}"), |b| {
            b.iter(|| {
                gatehouse_token::request::parse(Some(&form), None, black_box(body.as_bytes()))
                    .map(|r| r.scope.map(|s| s.len()))
            })
        });
    }
    for (name, body) in hostile_introspection_bodies() {
        assert!(body.len() <= HOSTILE_BODY && body.len() > HOSTILE_BODY - 64);
        c.bench_function(&format!("hostile: {name}"), |b| {
            b.iter(|| {
                let params = gatehouse_token::request::parse_form(
                    Some(&form),
                    black_box(body.as_bytes()),
                    &[],
                )?;
                gatehouse_token::request::client_auth(None, &params).map(|a| a.is_basic())
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).measurement_time(std::time::Duration::from_secs(3));
    targets = hostile, grant
}
criterion_main!(benches);
