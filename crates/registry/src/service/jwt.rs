//! `jwt` and `oidc` profiles: the consumer signs its own JWTs with an HMAC secret (stored
//! sealed, since verification needs it back) or an RSA key (its PEM public key, or a JWKS
//! URL), or its identity provider signs them (`oidc`: keys by discovery or a JWKS URL,
//! fetched and cached by the token crate). The profile is found by
//! `jwt_claim_value` (indexed as `match_value`), then verified only with its pinned
//! algorithms and keys (RFC 8725 §3.1).

use super::Registry;
use crate::api::{JwtMethod, JwtSettingsView};
use crate::command::NewProfile;
use crate::entity::access_profile;
use crate::error::{RegistryError, Result};
use crate::types::FieldError;
use chrono::{DateTime, Utc};
use gatehouse_jwks::jws::{Alg, ClaimRequirement, VerifyKey};
use gatehouse_jwks::outbound::{self, OutboundAllow};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Algorithms an `hmac` profile may pin (one of).
pub const HMAC_ALGS: [&str; 3] = ["HS256", "HS384", "HS512"];
/// Algorithms an `rsa` profile may pin.
pub const RSA_ALGS: [&str; 6] = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
/// Algorithms an `oidc` profile may pin: asymmetric only, never HS (RFC 8725 §3.1).
pub const REMOTE_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// An admin-supplied URL Gatehouse will fetch: the outbound rules as far as the URL shows them
/// (https; http only to a host `GATEHOUSE_OUTBOUND_ALLOW` covers; no credentials; no IP
/// literal in an internal range, no `localhost` / `*.localhost`, unless the allow list covers
/// it), no fragment, and for an issuer no query (OpenID Connect Discovery 1.0 §3). Host names
/// are not looked up here — an admin request must not wait on DNS — but at every fetch, where
/// the address connected to is the one checked.
fn outbound_url(
    value: &str,
    issuer: bool,
    allow: &OutboundAllow,
) -> std::result::Result<(), crate::types::Invalid> {
    use crate::types::Invalid;
    if value.len() > 2048 {
        return Err(Invalid::new("too_long", "must be at most 2048 characters"));
    }
    let url = url::Url::parse(value)
        .map_err(|_| Invalid::new("invalid_url", "must be an absolute https URL"))?;
    outbound::check_url(&url, allow).map_err(|why| Invalid::new(why.code(), why.to_string()))?;
    if url.fragment().is_some() {
        return Err(Invalid::new("invalid_url", "must carry no fragment"));
    }
    if issuer && url.query().is_some() {
        return Err(Invalid::new("invalid_url", "an issuer has no query"));
    }
    Ok(())
}

/// A validated `jwt` configuration (the secret in clear only until it is sealed).
pub(crate) struct ValidJwt {
    pub(crate) view: JwtSettingsView,
    /// A secret the owner supplied; `None` means generate (on create) or keep (on update).
    pub(crate) supplied_secret: Option<String>,
    /// Whether `jwt_claim_value` was given (else it defaults to the oauth client id).
    pub(crate) claim_value_given: bool,
}

/// What `access_profiles.settings` holds for a `jwt` profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JwtStored {
    #[serde(flatten)]
    pub(crate) view: JwtSettingsView,
    /// The HMAC secret, sealed under GATEHOUSE_SECRET_KEY.
    #[serde(default)]
    pub(crate) sealed_secret: Option<String>,
    /// The previous HMAC secret during a rotation's grace period.
    #[serde(default)]
    pub(crate) previous_sealed_secret: Option<String>,
    #[serde(default)]
    pub(crate) previous_until: Option<DateTime<Utc>>,
}

/// Where a `jwt`/`oidc` profile's verification keys come from.
pub enum JwtKeys {
    /// An HMAC secret or a PEM public key, parsed once when the profile is loaded and pinned
    /// to the profile's one algorithm (RFC 8725 §3.1); an HMAC secret in its refresh grace
    /// carries the end of its grace.
    Local(Vec<(VerifyKey, Option<DateTime<Utc>>)>),
    /// An identity provider found by OpenID Connect Discovery; `iss` must equal it.
    Issuer(String),
    /// A JWKS URL.
    JwksUri(String),
}

/// Verification material and claim rules of a `jwt`/`oidc` profile, in memory.
pub struct JwtRules {
    /// The keys.
    pub keys: JwtKeys,
    /// Pinned algorithms (one for an HMAC secret or a PEM key).
    pub algorithms: Vec<Alg>,
    /// Identifying claim.
    pub claim: String,
    /// The value `claim` must have.
    pub claim_value: String,
    /// Required claims.
    pub required_claims: Vec<ClaimRequirement>,
    /// Accepted issuers (empty: any).
    pub allowed_issuers: Vec<String>,
    /// Accepted audiences.
    pub allowed_audiences: Vec<String>,
}

impl JwtRules {
    /// The local keys live at `now` (none for remote key sets).
    pub fn live_keys(&self, now: DateTime<Utc>) -> impl Iterator<Item = &VerifyKey> {
        let keys = match &self.keys {
            JwtKeys::Local(keys) => keys.as_slice(),
            _ => &[],
        };
        keys.iter()
            .filter(move |(_, until)| until.is_none_or(|u| u > now))
            .map(|(k, _)| k)
    }
}

impl std::fmt::Debug for JwtRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtRules")
            .field("algorithms", &self.algorithms)
            .field("claim", &self.claim)
            .finish_non_exhaustive()
    }
}

/// The HMAC secret the server generates for a profile pinned to `alg`: base62, at least as
/// many bytes as the hash output (RFC 7518 §3.2), about as many bits of entropy.
pub(crate) fn generated_hmac_secret(alg: Option<&str>) -> String {
    let len = match alg.and_then(Alg::parse) {
        Some(Alg::Hs512) => 86,
        Some(Alg::Hs384) => 64,
        _ => 43,
    };
    crate::ids::base62(len)
}

const JWT_FIELDS: [&str; 11] = [
    "jwt_method",
    "jwt_algorithms",
    "jwt_public_key",
    "jwt_secret",
    "oidc_issuer",
    "oidc_jwks_uri",
    "jwt_claim",
    "jwt_claim_value",
    "required_claims",
    "allowed_issuers",
    "allowed_audiences",
];

fn text_ok(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && !s.chars().any(char::is_control)
}

impl Registry {
    /// Validate the `jwt`/`oidc` members of a profile input; for other auth types they must
    /// be absent.
    pub(crate) fn validate_jwt(
        &self,
        input: &NewProfile,
        errors: &mut Vec<FieldError>,
    ) -> Option<ValidJwt> {
        use crate::types::AuthType;
        if !matches!(input.auth_type, AuthType::Jwt | AuthType::Oidc) {
            let given = input.jwt_method.is_some()
                || input.jwt_algorithms.is_some()
                || input.jwt_public_key.is_some()
                || input.jwt_secret.is_some()
                || input.oidc_issuer.is_some()
                || input.oidc_jwks_uri.is_some()
                || input.jwt_claim.is_some()
                || input.jwt_claim_value.is_some()
                || !input.required_claims.is_empty()
                || !input.allowed_issuers.is_empty()
                || !input.allowed_audiences.is_empty();
            if given {
                errors.push(FieldError::new(
                    "auth_type",
                    "jwt_only",
                    format!(
                        "{} apply only to auth_type jwt or oidc",
                        JWT_FIELDS.join(", ")
                    ),
                ));
            }
            return None;
        }
        let oidc = input.auth_type == AuthType::Oidc;
        let method = if oidc {
            for (field, given) in [
                ("jwt_method", input.jwt_method.is_some()),
                ("jwt_public_key", input.jwt_public_key.is_some()),
                ("jwt_secret", input.jwt_secret.is_some()),
            ] {
                if given {
                    errors.push(FieldError::new(
                        field,
                        "not_allowed",
                        "oidc profiles take their keys from oidc_issuer or oidc_jwks_uri",
                    ));
                }
            }
            match (&input.oidc_issuer, &input.oidc_jwks_uri) {
                (Some(_), Some(_)) => errors.push(FieldError::new(
                    "oidc_jwks_uri",
                    "conflict",
                    "give oidc_issuer or oidc_jwks_uri, not both",
                )),
                (None, None) => errors.push(FieldError::new(
                    "oidc_issuer",
                    "required",
                    "give oidc_issuer (discovery) or oidc_jwks_uri",
                )),
                _ => {}
            }
            None
        } else {
            let Some(method) = input.jwt_method else {
                errors.push(FieldError::new("jwt_method", "required", "hmac or rsa"));
                return None;
            };
            Some(method)
        };
        let (allowed, default): (&[&str], &[&str]) = match method {
            Some(JwtMethod::Hmac) => (&HMAC_ALGS, &["HS256"]),
            Some(JwtMethod::Rsa) => (&RSA_ALGS, &["RS256"]),
            None => (&REMOTE_ALGS, &["RS256", "ES256"]),
        };
        let algorithms = input
            .jwt_algorithms
            .clone()
            .unwrap_or_else(|| default.iter().map(|a| (*a).to_owned()).collect());
        if algorithms.is_empty() {
            errors.push(FieldError::new(
                "jwt_algorithms",
                "required",
                "pin at least one algorithm",
            ));
        }
        let kind = match method {
            Some(JwtMethod::Hmac) => "an hmac",
            Some(JwtMethod::Rsa) => "an rsa",
            None => "an oidc",
        };
        for (i, a) in algorithms.iter().enumerate() {
            if !allowed.contains(&a.as_str()) {
                errors.push(FieldError::new(
                    format!("jwt_algorithms[{i}]"),
                    "not_allowed",
                    format!("{kind} profile accepts only {}", allowed.join(", ")),
                ));
            }
        }
        // RFC 8725 §3.1: an HMAC secret or a PEM key verifies with exactly one algorithm
        // (a JWKS's keys carry their own `alg`, so a JWKS source may pin several).
        let local_key = matches!(method, Some(JwtMethod::Hmac))
            || (matches!(method, Some(JwtMethod::Rsa)) && input.oidc_jwks_uri.is_none());
        if local_key && algorithms.len() > 1 {
            errors.push(FieldError::new(
                "jwt_algorithms",
                "one_algorithm",
                "an HMAC secret or a PEM key verifies with exactly one algorithm (RFC 8725 §3.1)",
            ));
        }
        let mut public_key = None;
        match method {
            Some(JwtMethod::Hmac) => {
                for (field, given) in [
                    ("jwt_public_key", input.jwt_public_key.is_some()),
                    ("oidc_jwks_uri", input.oidc_jwks_uri.is_some()),
                    ("oidc_issuer", input.oidc_issuer.is_some()),
                ] {
                    if given {
                        errors.push(FieldError::new(
                            field,
                            "not_allowed",
                            "hmac profiles use jwt_secret",
                        ));
                    }
                }
                if let Some(secret) = input.jwt_secret.as_ref().map(|s| s.expose_secret()) {
                    let min = algorithms
                        .iter()
                        .filter_map(|a| Alg::parse(a))
                        .map(Alg::min_secret_len)
                        .max()
                        .unwrap_or(32)
                        .max(32);
                    if secret.len() < min {
                        errors.push(FieldError::new(
                            "jwt_secret",
                            "too_short",
                            format!(
                                "an HMAC secret for {} needs at least {min} bytes (RFC 7518 §3.2)",
                                algorithms.join(", ")
                            ),
                        ));
                    } else if secret.len() > 512 {
                        errors.push(FieldError::new(
                            "jwt_secret",
                            "too_long",
                            "at most 512 bytes",
                        ));
                    }
                }
            }
            Some(JwtMethod::Rsa) => {
                if input.jwt_secret.is_some() {
                    errors.push(FieldError::new(
                        "jwt_secret",
                        "not_allowed",
                        "rsa profiles use jwt_public_key or oidc_jwks_uri",
                    ));
                }
                if input.oidc_issuer.is_some() {
                    errors.push(FieldError::new(
                        "oidc_issuer",
                        "not_allowed",
                        "discovery is for auth_type oidc; a jwt profile may give oidc_jwks_uri",
                    ));
                }
                match (&input.jwt_public_key, &input.oidc_jwks_uri) {
                    (None, None) => errors.push(FieldError::new(
                        "jwt_public_key",
                        "required",
                        "the consumer's PEM public key, or oidc_jwks_uri",
                    )),
                    (Some(_), Some(_)) => errors.push(FieldError::new(
                        "oidc_jwks_uri",
                        "conflict",
                        "give jwt_public_key or oidc_jwks_uri, not both",
                    )),
                    (Some(pem), None) => match self.inner.vault.check_rsa_public_key(pem) {
                        Ok(()) => public_key = Some(pem.trim().to_owned()),
                        Err(why) => {
                            errors.push(FieldError::new("jwt_public_key", "invalid_key", why))
                        }
                    },
                    (None, Some(_)) => {}
                }
            }
            None => {}
        }
        for (field, value) in [
            ("oidc_issuer", &input.oidc_issuer),
            ("oidc_jwks_uri", &input.oidc_jwks_uri),
        ] {
            if let Some(v) = value
                && let Err(e) = outbound_url(
                    v,
                    field == "oidc_issuer",
                    &self.inner.settings.outbound_allow,
                )
            {
                errors.push(e.at(field));
            }
        }
        let claim = input.jwt_claim.clone().unwrap_or_else(|| "sub".to_owned());
        if !text_ok(&claim, 64) {
            errors.push(FieldError::new(
                "jwt_claim",
                "invalid",
                "a claim name of 1 to 64 characters",
            ));
        }
        match &input.jwt_claim_value {
            Some(v) if !text_ok(v, 255) => errors.push(FieldError::new(
                "jwt_claim_value",
                "invalid",
                "1 to 255 characters",
            )),
            None if oidc => errors.push(FieldError::new(
                "jwt_claim_value",
                "required",
                "the value of jwt_claim (default `sub`) that identifies this consumer in its identity provider's tokens",
            )),
            _ => {}
        }
        for (i, c) in input.required_claims.iter().enumerate() {
            if !text_ok(&c.name, 64) {
                errors.push(FieldError::new(
                    format!("required_claims[{i}].name"),
                    "invalid",
                    "a claim name of 1 to 64 characters",
                ));
            }
        }
        if input.allowed_audiences.is_empty() {
            errors.push(FieldError::new(
                "allowed_audiences",
                "required",
                "list the audiences this consumer's JWTs are for (RFC 8725 §3.9)",
            ));
        }
        for (field, list) in [
            ("allowed_audiences", &input.allowed_audiences),
            ("allowed_issuers", &input.allowed_issuers),
        ] {
            for (i, v) in list.iter().enumerate() {
                if !text_ok(v, 512) {
                    errors.push(FieldError::new(
                        format!("{field}[{i}]"),
                        "invalid",
                        "1 to 512 characters",
                    ));
                }
            }
        }
        Some(ValidJwt {
            view: JwtSettingsView {
                jwt_method: method,
                jwt_algorithms: algorithms,
                jwt_public_key: public_key,
                oidc_issuer: input.oidc_issuer.clone(),
                oidc_jwks_uri: input.oidc_jwks_uri.clone(),
                jwt_claim: claim,
                jwt_claim_value: input.jwt_claim_value.clone().unwrap_or_default(),
                required_claims: input.required_claims.clone(),
                allowed_issuers: input.allowed_issuers.clone(),
                allowed_audiences: input.allowed_audiences.clone(),
            },
            supplied_secret: input
                .jwt_secret
                .as_ref()
                .map(|s| s.expose_secret().to_owned()),
            claim_value_given: input.jwt_claim_value.is_some(),
        })
    }

    pub(crate) fn seal(&self, label: &str, secret: &str) -> Result<String> {
        self.inner
            .vault
            .seal(label, secret.as_bytes())
            .map_err(RegistryError::Internal)
    }

    /// Build the in-memory rules from stored settings: sealed secrets are opened and every
    /// local key is parsed here, once, and pinned to the profile's algorithm. A profile stored
    /// before algorithms were limited to one per key verifies with its first one only.
    pub(crate) fn jwt_rules(
        &self,
        profile_id: &str,
        settings: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<JwtRules>> {
        let Ok(stored) = serde_json::from_str::<JwtStored>(settings) else {
            return Ok(None);
        };
        let v = stored.view;
        let algorithms: Vec<Alg> = v
            .jwt_algorithms
            .iter()
            .filter_map(|a| Alg::parse(a))
            .collect();
        let pinned = algorithms.first().copied();
        let mut local = Vec::new();
        let mut add = |key: std::result::Result<VerifyKey, gatehouse_jwks::jws::KeyError>,
                       until: Option<DateTime<Utc>>| match key {
            Ok(k) => local.push((k, until)),
            // Unusable material verifies nothing; the profile refuses every token.
            Err(e) => tracing::warn!(profile_id, error = %e, "a jwt profile's key is unusable"),
        };
        let keys = match (
            v.jwt_method,
            v.jwt_public_key,
            v.oidc_issuer,
            v.oidc_jwks_uri,
        ) {
            (Some(JwtMethod::Hmac), ..) => {
                let open = |sealed: &str| {
                    self.inner
                        .vault
                        .open(profile_id, sealed)
                        .map_err(RegistryError::Internal)
                };
                if let (Some(sealed), Some(alg)) = (&stored.sealed_secret, pinned) {
                    add(VerifyKey::hmac(alg, &open(sealed)?), None);
                }
                if let (Some(sealed), Some(until), Some(alg)) = (
                    &stored.previous_sealed_secret,
                    stored.previous_until,
                    pinned,
                ) && until > now
                {
                    add(VerifyKey::hmac(alg, &open(sealed)?), Some(until));
                }
                JwtKeys::Local(local)
            }
            (_, Some(pem), ..) => {
                if let Some(alg) = pinned {
                    add(VerifyKey::public_pem(alg, pem.as_bytes()), None);
                }
                JwtKeys::Local(local)
            }
            (_, None, Some(issuer), _) => JwtKeys::Issuer(issuer),
            (_, None, None, Some(uri)) => JwtKeys::JwksUri(uri),
            // Nothing to verify with: a row that no longer parses denies everything.
            _ => JwtKeys::Local(Vec::new()),
        };
        Ok(Some(JwtRules {
            keys,
            algorithms,
            claim: v.jwt_claim,
            claim_value: v.jwt_claim_value,
            required_claims: v
                .required_claims
                .into_iter()
                .map(|c| ClaimRequirement {
                    name: c.name,
                    value: c.value,
                })
                .collect(),
            allowed_issuers: v.allowed_issuers,
            allowed_audiences: v.allowed_audiences,
        }))
    }

    /// The one `jwt`/`oidc` profile a presented JWT names, found from its UNVERIFIED claims
    /// as the contract says: for each claim name some profile is configured with (an admin's
    /// choice, so the work is bounded by configuration, never by the token), the string value
    /// of that claim is looked up (cached per value); a profile matches when its `jwt_claim`
    /// is that name and its issuer rules admit `iss`. `None` unless exactly one matches.
    pub async fn jwt_profile_for(
        &self,
        claims: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<Arc<super::ProfileSnapshot>>> {
        let names = self
            .inner
            .match_claims
            .get_or_load(&(), || async {
                let rows: Vec<Option<String>> = access_profile::Entity::find()
                    .select_only()
                    .column(access_profile::Column::MatchClaim)
                    .distinct()
                    .filter(access_profile::Column::MatchClaim.is_not_null())
                    .into_tuple()
                    .all(&self.inner.db)
                    .await?;
                Ok::<Arc<[String]>, RegistryError>(rows.into_iter().flatten().collect())
            })
            .await?;
        let iss = claims.get("iss").and_then(serde_json::Value::as_str);
        let mut found: Option<Arc<super::ProfileSnapshot>> = None;
        for name in names.iter() {
            let Some(value) = claims
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|v| crate::error::storable(v) && v.len() <= 255)
            else {
                continue;
            };
            let ids = self
                .inner
                .match_values
                .get_or_load(value, || async {
                    let rows = access_profile::Entity::find()
                        .filter(access_profile::Column::MatchValue.eq(value))
                        .filter(access_profile::Column::AuthType.is_in(["jwt", "oidc"]))
                        .all(&self.inner.db)
                        .await?;
                    Ok::<Arc<[String]>, RegistryError>(
                        rows.into_iter().map(|r| r.oauth_client_id).collect(),
                    )
                })
                .await?;
            for id in ids.iter() {
                let Some(p) = self.profile_by_client_id(id).await? else {
                    continue;
                };
                let matches = p.jwt.as_ref().is_some_and(|r| {
                    r.claim == *name
                        && r.claim_value == value
                        && (r.allowed_issuers.is_empty()
                            || iss.is_some_and(|i| r.allowed_issuers.iter().any(|a| a == i)))
                });
                if !matches || found.as_ref().is_some_and(|f| f.profile_id == p.profile_id) {
                    continue;
                }
                if found.is_some() {
                    return Ok(None);
                }
                found = Some(p);
            }
        }
        Ok(found)
    }
}

impl Registry {
    /// Remember a client assertion's `jti` until `expires_at`; `false` if it was seen before
    /// (RFC 7523 §3 item 7: a replay). A `jti` that PostgreSQL text cannot hold (it has a NUL)
    /// is remembered by its SHA-256 instead.
    pub async fn remember_assertion(
        &self,
        profile_id: &str,
        jti: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool> {
        use sea_orm::{ActiveModelTrait, Set};
        let id = if crate::error::storable(jti) {
            format!("{profile_id}:{jti}")
        } else {
            use base64::Engine;
            use sha2::Digest;
            let digest = sha2::Sha256::digest(jti.as_bytes());
            format!(
                "{profile_id}:#sha256:{}",
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
            )
        };
        let row = crate::entity::used_assertion::ActiveModel {
            id: Set(id),
            expires_at: Set(expires_at),
        };
        match row.insert(&self.inner.db).await {
            Ok(_) => Ok(true),
            Err(e) => match RegistryError::from(e) {
                RegistryError::Conflict { .. } => Ok(false),
                other => Err(other),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::clock::SystemClock;
    use crate::{Actor, Registry};
    use serde_json::json;
    use std::sync::Arc;

    async fn registry() -> Registry {
        crate::service::test_registry(Arc::new(SystemClock)).await
    }

    /// A presented JWT costs lookups only for the claim names profiles are configured with,
    /// however many other strings it carries; a value under another claim name matches
    /// nothing.
    #[tokio::test]
    async fn profile_lookup_reads_only_configured_claims() {
        let r = registry().await;
        let actor = Actor::system();
        let col = r
            .create_collection(
                &actor,
                crate::command::NewCollection::plain("c", "https://c.example/api", &["c:r"])
                    .unwrap(),
            )
            .await
            .unwrap();
        let client = r
            .create_client(
                &actor,
                crate::command::NewClient::system(crate::types::Name::parse("x").unwrap()),
            )
            .await
            .unwrap();
        let profile = r
            .create_profile(
                &actor,
                &client.id,
                crate::command::NewProfile {
                    jwt_method: Some(crate::api::JwtMethod::Hmac),
                    jwt_claim: Some("tenant".to_owned()),
                    jwt_claim_value: Some("acme".to_owned()),
                    allowed_audiences: vec!["https://c.example/api".to_owned()],
                    ..crate::command::NewProfile::new(
                        crate::types::Name::parse("j").unwrap(),
                        crate::types::AuthType::Jwt,
                        vec![col.collection.id.clone()],
                    )
                },
            )
            .await
            .unwrap();
        let mut claims = serde_json::Map::new();
        for i in 0..64 {
            claims.insert(format!("c{i}"), json!(format!("value-{i}")));
        }
        // "acme" under `sub` (not the configured claim) matches nothing.
        claims.insert("sub".into(), json!("acme"));
        assert!(r.jwt_profile_for(&claims).await.unwrap().is_none());
        assert!(
            r.inner.match_values.get("value-7").is_none()
                && r.inner.match_values.get("acme").is_none(),
            "no lookup for claims no profile is configured with"
        );
        claims.insert("tenant".into(), json!("acme"));
        let found = r.jwt_profile_for(&claims).await.unwrap().unwrap();
        assert_eq!(found.profile_id, profile.profile.id);
        assert!(
            r.inner.match_values.get("acme").is_some(),
            "the configured claim was looked up"
        );
        assert!(r.inner.match_values.get("value-7").is_none());
    }
}
