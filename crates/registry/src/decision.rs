//! THE decision: is this credential good, for this caller, from this address, now — always
//! against the registry's **current** state (a token carries what was true when it was
//! issued; the profile, its client, its grants and its IP rules are read again here).
//!
//! Introspection, revocation, the admin API's authentication and the token endpoint's caller
//! checks all come here. The credential has already passed the one JWS verifier (the jwks
//! crate) or the API-key lookup; this module knows nothing of HTTP or of signatures.

use crate::service::AdminScope;
use crate::service::{ApiKeySnapshot, CollectionSnapshot, GrantedCollection, ProfileSnapshot};
use crate::types::{ADMIN_READ_SCOPE, ADMIN_SCOPE};
use crate::{Actor, Registry, RegistryError};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// Longest time a resource server may reuse an active answer (`gatehouse_cache_ttl`).
pub const MAX_CACHE_TTL_SECS: i64 = 60;

/// Why a credential is inactive, as the contract names the reasons (usage and metrics; never
/// sent to callers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Past `exp`.
    Expired,
    /// Before `nbf`/`iat`.
    NotYetValid,
    /// Revoked.
    Revoked,
    /// Profile, client or key switched off, expired or gone.
    Inactive,
    /// The address breaks the IP rules.
    Ip,
    /// IP rules apply and no address was given.
    IpUnknown,
    /// Not for the caller: another audience, or a collection the profile no longer holds.
    Audience,
    /// Signature, format or issuer did not verify.
    BadSignature,
    /// Not a credential Gatehouse knows.
    Unknown,
    /// Over the policy's rate limit.
    RateLimited,
    /// Over the policy's quota.
    QuotaExceeded,
}

impl Reason {
    /// Every reason, in a fixed order (index = position).
    pub const ALL: [Reason; 11] = [
        Reason::Expired,
        Reason::NotYetValid,
        Reason::Revoked,
        Reason::Inactive,
        Reason::Ip,
        Reason::IpUnknown,
        Reason::Audience,
        Reason::BadSignature,
        Reason::Unknown,
        Reason::RateLimited,
        Reason::QuotaExceeded,
    ];

    /// The contract's code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::Expired => "expired",
            Reason::NotYetValid => "not_yet_valid",
            Reason::Revoked => "revoked",
            Reason::Inactive => "inactive",
            Reason::Ip => "ip",
            Reason::IpUnknown => "ip_unknown",
            Reason::Audience => "audience",
            Reason::BadSignature => "bad_signature",
            Reason::Unknown => "unknown",
            Reason::RateLimited => "rate_limited",
            Reason::QuotaExceeded => "quota_exceeded",
        }
    }

    /// Parse a code.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A credential that passed its cryptographic or lookup check, awaiting the decision.
#[derive(Debug, Clone)]
pub enum Credential {
    /// One of our access tokens (RFC 9068), verified with our keys.
    AccessToken(Arc<Map<String, Value>>),
    /// An API key, found by its digest.
    ApiKey(Arc<ApiKeySnapshot>),
    /// A consumer's JWT, verified with the keys of the profile it names.
    ConsumerJwt {
        /// That profile.
        profile: Arc<ProfileSnapshot>,
        /// Its verified claims.
        claims: Arc<Map<String, Value>>,
    },
}

/// Who asks about a credential.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A resource server (its collection's introspection credentials): sees a credential only
    /// while the credential's profile holds this collection, and only this collection's part.
    Collection(Arc<CollectionSnapshot>),
    /// An admin (a bearer token whose rights were decided by [`Registry::admin_rights`]),
    /// as the [`Actor`] it acts as: its rights and, when limited to projects, only the
    /// credentials of those projects' clients exist for it.
    Admin(Actor),
    /// An oauth2 or jwt client: sees only its own access tokens.
    Client(Arc<ProfileSnapshot>),
}

impl Caller {
    /// An identifier for the audit log.
    pub fn actor(&self) -> String {
        self.id().to_owned()
    }

    /// The caller's public id (collection `col_…`, admin or client `gco_…`), for logs.
    pub fn id(&self) -> &str {
        match self {
            Caller::Collection(c) => &c.id,
            Caller::Admin(actor) => actor.id(),
            Caller::Client(p) => &p.oauth_client_id,
        }
    }
}

/// The consumer's address, as the caller knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIp {
    /// Not part of this decision (revocation: the consumer is not calling).
    NotApplicable,
    /// The resource server did not say (`client_ip` absent).
    Unknown,
    /// Given, but not an address.
    Malformed,
    /// The consumer's address.
    Known(IpAddr),
}

impl ClientIp {
    /// From introspection's `client_ip` parameter.
    pub fn from_param(value: Option<&str>) -> Self {
        match value {
            None => ClientIp::Unknown,
            Some(v) => v
                .trim()
                .parse()
                .map_or(ClientIp::Malformed, ClientIp::Known),
        }
    }

    fn check(self, applies: bool, allows: impl Fn(IpAddr) -> bool) -> Result<(), Reason> {
        match self {
            _ if !applies => Ok(()),
            ClientIp::NotApplicable => Ok(()),
            ClientIp::Unknown => Err(Reason::IpUnknown),
            ClientIp::Malformed => Err(Reason::Ip),
            ClientIp::Known(ip) if allows(ip) => Ok(()),
            ClientIp::Known(_) => Err(Reason::Ip),
        }
    }
}

/// What an active credential grants, as the caller may see it.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The credential's profile (current state).
    pub profile: Arc<ProfileSnapshot>,
    /// The kind of credential, for `token_type`.
    pub kind: CredentialKind,
    /// The profile's collections the caller may see (a collection: only itself).
    pub collections: Vec<String>,
    /// The scopes the caller may see: the credential's, within those collections' current
    /// scopes.
    pub scopes: Vec<String>,
    /// The audiences the caller may see.
    pub audiences: Vec<String>,
    /// The credential's own claims to echo (`iat`, `exp`, `nbf`, `jti`, `iss`, `sub`), if any.
    pub claims: Option<Arc<Map<String, Value>>>,
    /// When the credential stops working, if it ever does.
    pub expires_at: Option<i64>,
    /// When it was issued (API keys: created).
    pub issued_at: Option<i64>,
    /// Seconds a resource server may reuse this answer (0 whenever IP rules apply).
    pub cache_ttl: i64,
}

/// The kind of credential decided about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// One of our access tokens.
    AccessToken,
    /// An API key.
    ApiKey,
    /// A consumer's JWT.
    ConsumerJwt,
}

/// The outcome of [`Registry::decide`].
#[derive(Debug, Clone)]
pub enum Decision {
    /// Good, with what it grants the caller.
    Active(Box<Grant>),
    /// Not good, and why.
    Inactive {
        /// Why.
        reason: Reason,
        /// The profile it belonged to, when known (usage is counted there).
        profile: Option<Arc<ProfileSnapshot>>,
    },
}

/// An admin's rights from its **current** grant of the built-in admin collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRights {
    /// `gatehouse:admin`: read and write.
    Write,
    /// `gatehouse:admin:read`: read only.
    Read,
}

fn scope_list(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    claims
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("")
        .split(' ')
        .filter(|s| !s.is_empty())
}

/// The one audience matcher (`aud` a string or an array of strings, RFC 7519 §4.1.3).
fn has_audience(claims: &Map<String, Value>, audience: &str) -> bool {
    gatehouse_jwks::jws::audiences(claims).any(|a| a == audience)
}

fn str_claim<'a>(claims: &'a Map<String, Value>, name: &str) -> &'a str {
    claims.get(name).and_then(Value::as_str).unwrap_or("")
}

impl Registry {
    /// Decide about `credential` for `caller` at `now`, from the registry's current state.
    /// `Err` only when the store cannot answer.
    pub async fn decide(
        &self,
        credential: &Credential,
        caller: &Caller,
        client_ip: ClientIp,
        now: DateTime<Utc>,
    ) -> Result<Decision, RegistryError> {
        let inactive = |reason, profile: Option<&Arc<ProfileSnapshot>>| {
            Ok(Decision::Inactive {
                reason,
                profile: profile.cloned(),
            })
        };
        let (profile, kind, claims, key) = match credential {
            Credential::AccessToken(claims) => {
                if self.is_revoked(str_claim(claims, "jti")).await? {
                    return inactive(Reason::Revoked, None);
                }
                let profile = self
                    .profile_by_client_id(str_claim(claims, "client_id"))
                    .await?
                    .filter(|p| p.profile_id == str_claim(claims, "profile_id"));
                let Some(profile) = profile else {
                    return inactive(Reason::Inactive, None);
                };
                (profile, CredentialKind::AccessToken, Some(claims), None)
            }
            Credential::ApiKey(key) => {
                if !key.is_live(now) {
                    return inactive(Reason::Inactive, None);
                }
                let profile = self
                    .profile_by_client_id(&key.oauth_client_id)
                    .await?
                    .filter(|p| p.auth_type == crate::types::AuthType::Token);
                let Some(profile) = profile else {
                    return inactive(Reason::Inactive, None);
                };
                (profile, CredentialKind::ApiKey, None, Some(key))
            }
            Credential::ConsumerJwt { profile, claims } => (
                profile.clone(),
                CredentialKind::ConsumerJwt,
                Some(claims),
                None,
            ),
        };
        // Which of the profile's current collections the caller may see.
        let visible: Vec<&GrantedCollection> = match (caller, kind) {
            (Caller::Collection(c), _) => profile.grants.iter().filter(|g| g.id == c.id).collect(),
            (Caller::Client(p), CredentialKind::AccessToken) => {
                if p.profile_id != profile.profile_id {
                    Vec::new()
                } else {
                    Self::token_collections(&profile, claims)
                }
            }
            (Caller::Client(_), _) => Vec::new(),
            (Caller::Admin(_), CredentialKind::AccessToken) => {
                Self::token_collections(&profile, claims)
            }
            (Caller::Admin(_), _) => profile.grants.iter().collect(),
        };
        let mine = match caller {
            Caller::Client(p) => p.profile_id == profile.profile_id,
            Caller::Collection(c) => {
                // A token is for a collection only while its `aud` names it AND the profile
                // still holds it; API keys and consumer JWTs have no audience of ours.
                !visible.is_empty()
                    && (kind != CredentialKind::AccessToken
                        || claims.is_some_and(|c2| has_audience(c2, &c.audience)))
            }
            // An admin limited to projects: another project's credential is none of its
            // business (inactive, as if unknown).
            Caller::Admin(actor) => actor.sees_project(profile.client_project.as_deref()),
        };
        if !mine {
            return inactive(Reason::Audience, Some(&profile));
        }
        if !profile.is_active() {
            return inactive(Reason::Inactive, Some(&profile));
        }
        let key_rules = key.is_some_and(|k| k.has_ip_rules());
        let ip_rules = profile.has_ip_rules() || key_rules;
        if let Err(reason) = client_ip.check(ip_rules, |ip| {
            profile.allows_ip(ip) && key.is_none_or(|k| k.allows_ip(ip))
        }) {
            return inactive(reason, Some(&profile));
        }
        let scopes: Vec<String> = match (kind, claims) {
            (CredentialKind::AccessToken, Some(claims)) => scope_list(claims)
                .filter(|s| visible.iter().any(|g| g.scopes.iter().any(|x| x == s)))
                .map(str::to_owned)
                .collect(),
            _ => visible
                .iter()
                .flat_map(|g| g.scopes.iter().cloned())
                .collect(),
        };
        // A collection sees only its own audience in our tokens; a consumer's JWT keeps the
        // audience its issuer gave it (the consumer's, checked against allowed_audiences).
        let audiences = match (caller, kind, claims) {
            (Caller::Collection(c), CredentialKind::AccessToken | CredentialKind::ApiKey, _) => {
                vec![c.audience.clone()]
            }
            (_, CredentialKind::AccessToken | CredentialKind::ConsumerJwt, Some(claims)) => {
                gatehouse_jwks::jws::audiences(claims)
                    .map(str::to_owned)
                    .collect()
            }
            _ => visible.iter().map(|g| g.audience.clone()).collect(),
        };
        let numeric = |name: &str| {
            claims
                .and_then(|c| c.get(name))
                .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f.floor() as i64)))
        };
        let (expires_at, issued_at) = match key {
            Some(k) => (
                k.ends_at().map(|e| e.timestamp()),
                Some(k.created_at.timestamp()),
            ),
            None => (numeric("exp"), numeric("iat")),
        };
        let now_s = now.timestamp();
        let cache_ttl = if ip_rules {
            0
        } else {
            expires_at
                .map_or(MAX_CACHE_TTL_SECS, |e| e - now_s)
                .clamp(0, MAX_CACHE_TTL_SECS)
        };
        Ok(Decision::Active(Box::new(Grant {
            collections: visible.iter().map(|g| g.id.clone()).collect(),
            profile,
            kind,
            scopes,
            audiences,
            claims: claims.cloned(),
            expires_at,
            issued_at,
            cache_ttl,
        })))
    }

    /// The profile's current collections that an access token's `aud` names.
    fn token_collections<'p>(
        profile: &'p ProfileSnapshot,
        claims: Option<&Arc<Map<String, Value>>>,
    ) -> Vec<&'p GrantedCollection> {
        profile
            .grants
            .iter()
            .filter(|g| claims.is_some_and(|c| has_audience(c, &g.audience)))
            .collect()
    }

    /// Authenticate an admin by a bearer access token: verified with our keys through the one
    /// verifier, then [`Registry::admin_rights`]. `Ok(None)`: not an admin token (bad,
    /// expired, another audience, rights removed) — the caller answers `invalid_token`.
    pub async fn admin_by_bearer(
        &self,
        keys: &gatehouse_jwks::KeySet,
        token: &str,
        admin_audience: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<(Arc<ProfileSnapshot>, AdminRights)>, RegistryError> {
        match keys.verify_access_token(token, now.timestamp()) {
            Ok(verified) => self.admin_rights(&verified.claims, admin_audience).await,
            Err(why) => {
                tracing::debug!(reason = %why, "admin bearer token rejected");
                Ok(None)
            }
        }
    }

    /// An admin's rights for an access token of ours (already verified) addressed to
    /// `admin_audience`: the token's scopes, as far as the profile's **current** grant of the
    /// built-in admin collection still allows them. `Ok(None)`: no rights (not an admin
    /// token, rights removed, profile or client switched off, or the token revoked).
    pub async fn admin_rights(
        &self,
        claims: &Map<String, Value>,
        admin_audience: &str,
    ) -> Result<Option<(Arc<ProfileSnapshot>, AdminRights)>, RegistryError> {
        if !has_audience(claims, admin_audience) {
            return Ok(None);
        }
        if self.is_revoked(str_claim(claims, "jti")).await? {
            return Ok(None);
        }
        let Some(profile) = self
            .profile_by_client_id(str_claim(claims, "client_id"))
            .await?
            .filter(|p| p.profile_id == str_claim(claims, "profile_id") && p.is_active())
        else {
            return Ok(None);
        };
        let asked = |s: &str| scope_list(claims).any(|x| x == s);
        let rights = held_rights(&profile, admin_audience, asked);
        Ok(rights.map(|r| (profile, r)))
    }

    /// A console session's admin: the rights the profile with this `oauth_client_id`
    /// **currently** holds on the built-in admin collection (all of them: a session asks for
    /// no narrower scope), as an [`Actor`] carrying its project scope. `Ok(None)`: the
    /// profile is gone, switched off (or its client), or no longer holds the admin
    /// collection. Called on every console request, so a removed grant ends the session's
    /// rights at once, exactly like [`Registry::admin_rights`] does for tokens.
    pub async fn admin_session(
        &self,
        oauth_client_id: &str,
        admin_audience: &str,
    ) -> Result<Option<(Arc<ProfileSnapshot>, Actor)>, RegistryError> {
        let Some(profile) = self
            .profile_by_client_id(oauth_client_id)
            .await?
            .filter(|p| p.is_active())
        else {
            return Ok(None);
        };
        let Some(rights) = held_rights(&profile, admin_audience, |_| true) else {
            return Ok(None);
        };
        let actor = admin_actor(&profile, rights);
        Ok(Some((profile, actor)))
    }
}

/// The admin rights a profile's current grant of the admin collection gives to a request
/// that asked for the scopes `asked` accepts.
fn held_rights(
    profile: &ProfileSnapshot,
    admin_audience: &str,
    asked: impl Fn(&str) -> bool,
) -> Option<AdminRights> {
    let grant = profile
        .grants
        .iter()
        .find(|g| g.audience == admin_audience)?;
    let held = |s: &str| grant.scopes.iter().any(|x| x == s);
    if asked(ADMIN_SCOPE) && held(ADMIN_SCOPE) {
        Some(AdminRights::Write)
    } else if (asked(ADMIN_SCOPE) || asked(ADMIN_READ_SCOPE))
        && (held(ADMIN_SCOPE) || held(ADMIN_READ_SCOPE))
    {
        Some(AdminRights::Read)
    } else {
        None
    }
}

/// The [`Actor`] an admin profile acts as with these rights: its `oauth_client_id`, and its
/// `admin_projects` limit, if any.
pub fn admin_actor(profile: &ProfileSnapshot, rights: AdminRights) -> Actor {
    let scope = match &profile.admin_projects {
        Some(ids) => AdminScope::Projects(ids.clone()),
        None => AdminScope::All,
    };
    Actor::admin(
        profile.oauth_client_id.clone(),
        rights == AdminRights::Write,
        scope,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Actor;
    use crate::clock::{Clock, ManualClock};
    use serde_json::json;

    const ISSUER: &str = "http://127.0.0.1:8080";
    const ADMIN: &str = "http://127.0.0.1:8081";

    struct World {
        registry: Registry,
        clock: Arc<ManualClock>,
        orders: Arc<CollectionSnapshot>,
        billing: Arc<CollectionSnapshot>,
        orders_id: String,
        billing_id: String,
        profile: Arc<ProfileSnapshot>,
    }

    async fn world() -> World {
        let clock = Arc::new(ManualClock::new());
        let registry = crate::service::test_registry(clock.clone()).await;
        let actor = Actor::system();
        let mut made = Vec::new();
        for (name, aud, scope) in [
            ("orders", "https://orders.example/api", "orders:read"),
            ("billing", "https://billing.example/api", "billing:read"),
        ] {
            let c = registry
                .create_collection(
                    &actor,
                    crate::command::NewCollection::plain(name, aud, &[scope]).unwrap(),
                )
                .await
                .unwrap();
            let snapshot = registry
                .authenticate_collection(
                    &c.collection.introspection_client_id,
                    &c.introspection_client_secret,
                    None,
                )
                .await
                .unwrap();
            made.push((c.collection.id, snapshot));
        }
        let client = registry
            .create_client(
                &actor,
                crate::command::NewClient::system(crate::types::Name::parse("ACME").unwrap()),
            )
            .await
            .unwrap();
        let ids: Vec<&str> = made.iter().map(|(id, _)| id.as_str()).collect();
        let created = registry
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile::new(
                    crate::types::Name::parse("batch").unwrap(),
                    crate::types::AuthType::OAuth2,
                    ids.iter().map(|s| s.to_string()).collect(),
                ),
            )
            .await
            .unwrap();
        let profile = registry
            .profile_by_client_id(&created.profile.oauth_client_id)
            .await
            .unwrap()
            .unwrap();
        let (billing_id, billing) = made.pop().unwrap();
        let (orders_id, orders) = made.pop().unwrap();
        World {
            registry,
            clock,
            orders,
            billing,
            orders_id,
            billing_id,
            profile,
        }
    }

    fn token(w: &World, aud: Value, scope: &str, jti: &str) -> Credential {
        let now = w.clock.now().timestamp();
        let claims = json!({"iss": ISSUER, "sub": w.profile.oauth_client_id,
            "client_id": w.profile.oauth_client_id, "profile_id": w.profile.profile_id,
            "aud": aud, "scope": scope, "iat": now, "exp": now + 600, "jti": jti});
        Credential::AccessToken(Arc::new(claims.as_object().cloned().unwrap()))
    }

    fn reason(d: &Decision) -> Option<Reason> {
        match d {
            Decision::Active(_) => None,
            Decision::Inactive { reason, .. } => Some(*reason),
        }
    }

    /// Every reason the decision itself gives (the others come from verification and
    /// policies), each from the registry's CURRENT state, table-driven.
    #[tokio::test]
    async fn every_reason_of_the_decision() {
        let w = world().await;
        let r = &w.registry;
        let both = json!(["https://orders.example/api", "https://billing.example/api"]);
        let orders = Caller::Collection(w.orders.clone());
        let billing = Caller::Collection(w.billing.clone());
        let client = Caller::Client(w.profile.clone());
        let admin = Caller::Admin(Actor::admin("gco_admin", false, AdminScope::All));
        let ip = |s: &str| ClientIp::Known(s.parse().unwrap());
        let now = w.clock.now();
        let cases: Vec<(&str, Credential, &Caller, ClientIp, Option<Reason>)> = vec![
            (
                "collection in aud",
                token(&w, both.clone(), "orders:read billing:read", "a"),
                &orders,
                ClientIp::Unknown,
                None,
            ),
            (
                "collection not in aud",
                token(
                    &w,
                    json!("https://billing.example/api"),
                    "billing:read",
                    "b",
                ),
                &orders,
                ClientIp::Unknown,
                Some(Reason::Audience),
            ),
            (
                "owning client",
                token(&w, both.clone(), "", "c"),
                &client,
                ClientIp::Unknown,
                None,
            ),
            (
                "admin",
                token(&w, both.clone(), "", "d"),
                &admin,
                ClientIp::Unknown,
                None,
            ),
            (
                "no IP rules: address irrelevant",
                token(&w, both.clone(), "", "e"),
                &billing,
                ip("203.0.113.9"),
                None,
            ),
        ];
        for (name, credential, caller, client_ip, want) in cases {
            let got = r.decide(&credential, caller, client_ip, now).await.unwrap();
            assert_eq!(reason(&got), want, "{name}");
        }

        // Narrowed answer for a collection: its own collection, audience and scopes only.
        let d = r
            .decide(
                &token(&w, both.clone(), "orders:read billing:read", "f"),
                &orders,
                ClientIp::Unknown,
                now,
            )
            .await
            .unwrap();
        let Decision::Active(grant) = d else {
            panic!("active expected")
        };
        assert_eq!(grant.collections, vec![w.orders_id.clone()]);
        assert_eq!(
            grant.audiences,
            vec!["https://orders.example/api".to_owned()]
        );
        assert_eq!(grant.scopes, vec!["orders:read".to_owned()]);
        assert_eq!(grant.cache_ttl, MAX_CACHE_TTL_SECS);

        // Revoked.
        let revoked = token(&w, both.clone(), "", "g");
        r.revoke_token(
            "test",
            "g",
            &w.profile.profile_id,
            now + chrono::Duration::hours(1),
        )
        .await
        .unwrap();
        let d = r
            .decide(&revoked, &orders, ClientIp::Unknown, now)
            .await
            .unwrap();
        assert_eq!(reason(&d), Some(Reason::Revoked));

        // IP rules: unknown address, denied address, allowed address.
        let actor = Actor::system();
        r.update_profile(
            &actor,
            &w.profile.profile_id,
            crate::command::ProfilePatch {
                ip_rules: Some(Some(crate::command::IpRulesPatch {
                    default_access: Some(Some(crate::types::DefaultAccess::Deny)),
                    allow: Some(vec![
                        crate::types::IpRule::parse("198.51.100.0/24").unwrap(),
                    ]),
                    deny: None,
                })),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let fresh = token(&w, both.clone(), "", "h");
        for (client_ip, want) in [
            (ClientIp::Unknown, Some(Reason::IpUnknown)),
            (ClientIp::Malformed, Some(Reason::Ip)),
            (ip("203.0.113.9"), Some(Reason::Ip)),
            (ip("198.51.100.7"), None),
            (ClientIp::NotApplicable, None),
        ] {
            let d = r.decide(&fresh, &orders, client_ip, now).await.unwrap();
            assert_eq!(reason(&d), want, "{client_ip:?}");
            if let Decision::Active(g) = d {
                assert_eq!(g.cache_ttl, 0, "no reuse where IP rules apply");
            }
        }

        // The profile loses billing: billing's view ends at once, orders' stays.
        r.update_profile(
            &actor,
            &w.profile.profile_id,
            crate::command::ProfilePatch {
                collections: Some(vec![w.orders_id.clone()]),
                ip_rules: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let t = token(&w, both.clone(), "", "i");
        let d = r
            .decide(&t, &billing, ClientIp::Unknown, now)
            .await
            .unwrap();
        assert_eq!(
            reason(&d),
            Some(Reason::Audience),
            "collection removed from the profile"
        );
        let d = r.decide(&t, &orders, ClientIp::Unknown, now).await.unwrap();
        assert_eq!(reason(&d), None);

        // Switched off: inactive for everyone.
        r.update_profile(
            &actor,
            &w.profile.profile_id,
            crate::command::ProfilePatch {
                active: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let d = r.decide(&t, &admin, ClientIp::Unknown, now).await.unwrap();
        assert_eq!(reason(&d), Some(Reason::Inactive));

        // A token naming a profile id that is not its client's: inactive.
        let mut forged =
            json!({"client_id": w.profile.oauth_client_id, "profile_id": "prf_other", "jti": "j"});
        forged["aud"] = both;
        let d = r
            .decide(
                &Credential::AccessToken(Arc::new(forged.as_object().cloned().unwrap())),
                &admin,
                ClientIp::Unknown,
                now,
            )
            .await
            .unwrap();
        assert_eq!(reason(&d), Some(Reason::Inactive));
        let _ = w.billing_id;
    }

    /// Admin rights are the profile's current grant of the admin collection, capped by the
    /// token's scope.
    #[tokio::test]
    async fn admin_rights_follow_the_current_grant() {
        let w = world().await;
        let r = &w.registry;
        let actor = Actor::system();
        let admin_collection = r.ensure_admin_collection().await.unwrap();
        let client = r
            .create_client(
                &actor,
                crate::command::NewClient::system(crate::types::Name::parse("Ops").unwrap()),
            )
            .await
            .unwrap();
        let created = r
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile::new(
                    crate::types::Name::parse("ops").unwrap(),
                    crate::types::AuthType::OAuth2,
                    vec![admin_collection.to_string()],
                ),
            )
            .await
            .unwrap();
        let p = r
            .profile_by_client_id(&created.profile.oauth_client_id)
            .await
            .unwrap()
            .unwrap();
        let claims = |scope: &str, aud: &str| {
            json!({"client_id": p.oauth_client_id, "profile_id": p.profile_id, "aud": aud,
                "scope": scope, "jti": format!("j-{scope}")})
            .as_object()
            .cloned()
            .unwrap()
        };
        let rights = |c: Map<String, Value>| async move {
            r.admin_rights(&c, ADMIN)
                .await
                .unwrap()
                .map(|(_, rights)| rights)
        };
        assert_eq!(
            rights(claims("gatehouse:admin", ADMIN)).await,
            Some(AdminRights::Write)
        );
        assert_eq!(
            rights(claims("gatehouse:admin:read", ADMIN)).await,
            Some(AdminRights::Read)
        );
        assert_eq!(
            rights(claims("gatehouse:admin", "https://other")).await,
            None
        );
        assert_eq!(rights(claims("orders:read", ADMIN)).await, None);
        // Narrowed to read: a token that says `gatehouse:admin` reads only.
        r.update_profile(
            &actor,
            &p.profile_id,
            crate::command::ProfilePatch {
                scopes: Some(Some(vec!["gatehouse:admin:read".to_owned()])),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            rights(claims("gatehouse:admin", ADMIN)).await,
            Some(AdminRights::Read)
        );
        // The admin collection removed: no rights at all.
        r.update_profile(
            &actor,
            &p.profile_id,
            crate::command::ProfilePatch {
                collections: Some(vec![w.orders_id.clone()]),
                scopes: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(rights(claims("gatehouse:admin", ADMIN)).await, None);
    }
}
