//! The server's signing keys in memory: one signer, a verifier per published key, and the
//! JWKS bytes, all built once at load. Requests only read this.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gatehouse_registry::{Registry, StoredKey};
use josekit::jwk::Jwk;
use josekit::jws::{JwsSigner, JwsVerifier};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::alg::SigningAlg;
use crate::error::JwksError;
use crate::master_key::MasterKey;

/// Longest compact JWT we will even look at (RFC 8725 §3.x: bound the work).
const MAX_TOKEN_LEN: usize = 16 * 1024;

struct ActiveSigner {
    kid: String,
    alg: SigningAlg,
    /// base64url of the protected header `{"alg","kid","typ":"at+jwt"}`, computed once.
    header_b64: String,
    signer: Box<dyn JwsSigner>,
}

struct PublishedKey {
    alg: SigningAlg,
    verifier: Box<dyn JwsVerifier>,
}

/// One generation of keys: the signer, the verifiers and the JWKS document.
pub struct KeySet {
    active: ActiveSigner,
    verifiers: HashMap<String, PublishedKey>,
    jwks_json: bytes::Bytes,
    issuer: String,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("active_kid", &self.active.kid)
            .field("alg", &self.active.alg)
            .field("published", &self.verifiers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A verified access token of ours: its header kid and its claims.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The key that signed it.
    pub kid: String,
    /// The claims.
    pub claims: Map<String, Value>,
}

/// RFC 7638 JWK thumbprint, base64url: a stable, content-derived key id.
fn thumbprint(jwk: &Jwk) -> Result<String, JwksError> {
    let members: &[&str] = match jwk.key_type() {
        "EC" => &["crv", "kty", "x", "y"],
        "RSA" => &["e", "kty", "n"],
        "OKP" => &["crv", "kty", "x"],
        other => return Err(JwksError::Crypto(format!("unsupported key type {other}"))),
    };
    let mut canonical = Map::new();
    for m in members {
        let v = jwk
            .parameter(m)
            .cloned()
            .ok_or_else(|| JwksError::Crypto(format!("JWK lacks `{m}`")))?;
        canonical.insert((*m).to_owned(), v);
    }
    // serde_json's Map is ordered by key (BTreeMap), which is what RFC 7638 §3.3 requires.
    let json = serde_json::to_vec(&canonical).map_err(|e| JwksError::Crypto(e.to_string()))?;
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(json)))
}

impl KeySet {
    /// Build from stored keys: `next`, `active` and `retired` keys are published (a retired
    /// one only while it retired after `retired_after`, i.e. its tokens may still be alive);
    /// the `active` one signs.
    fn build(
        keys: &[StoredKey],
        master: &MasterKey,
        issuer: &str,
        retired_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Self, JwksError> {
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        let mut active = None;
        let live = |k: &&StoredKey| match k.state.as_str() {
            "active" | "next" => true,
            "retired" => match (k.retired_at, retired_after) {
                (Some(at), Some(after)) => at > after,
                _ => true,
            },
            _ => false,
        };
        for key in keys.iter().filter(live) {
            let alg = SigningAlg::parse(&key.alg).ok_or_else(|| JwksError::StoredKey {
                kid: key.kid.clone(),
                reason: format!("unknown alg {}", key.alg),
            })?;
            let jwk =
                Jwk::from_bytes(key.public_jwk.as_bytes()).map_err(|e| JwksError::StoredKey {
                    kid: key.kid.clone(),
                    reason: e.to_string(),
                })?;
            verifiers.insert(
                key.kid.clone(),
                PublishedKey {
                    alg,
                    verifier: alg.verifier(&jwk)?,
                },
            );
            published.push(Value::Object(jwk.as_ref().clone()));
            if key.state == "active" {
                let pem = master.open(&key.kid, &key.private_jwe)?;
                let signer = alg.signer(&pem)?;
                let header =
                    serde_json::json!({"alg": alg.as_str(), "kid": key.kid, "typ": "at+jwt"});
                active = Some(ActiveSigner {
                    kid: key.kid.clone(),
                    alg,
                    header_b64: URL_SAFE_NO_PAD.encode(header.to_string()),
                    signer,
                });
            }
        }
        let active = active.ok_or_else(|| JwksError::Config("no active signing key".to_owned()))?;
        let jwks = serde_json::json!({ "keys": published });
        Ok(Self {
            active,
            verifiers,
            jwks_json: bytes::Bytes::from(jwks.to_string()),
            issuer: issuer.to_owned(),
        })
    }

    /// The JWKS document (RFC 7517 §5), serialized once.
    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }

    /// The key id currently signing.
    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    /// The algorithm currently signing.
    pub fn active_alg(&self) -> SigningAlg {
        self.active.alg
    }

    /// Every algorithm among the published keys.
    pub fn published_algs(&self) -> Vec<SigningAlg> {
        let mut algs: Vec<SigningAlg> = self.verifiers.values().map(|k| k.alg).collect();
        algs.sort_by_key(|a| a.as_str());
        algs.dedup();
        algs
    }

    /// Sign an access token (RFC 9068: `typ: at+jwt`, `kid`). `claims` must already hold
    /// integer `iat`/`exp` (RFC 7519 NumericDate).
    pub fn sign_access_token<T: serde::Serialize>(&self, claims: &T) -> Result<String, JwksError> {
        let payload = serde_json::to_vec(claims).map_err(|e| JwksError::Crypto(e.to_string()))?;
        let b64_len = self.active.header_b64.len() + 1 + payload.len().div_ceil(3) * 4;
        let mut out =
            String::with_capacity(b64_len + 1 + 4 * self.active.signer.signature_len().div_ceil(3));
        out.push_str(&self.active.header_b64);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let signature = self.active.signer.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(out)
    }

    /// Verify one of our own access tokens: a compact JWS whose `alg` is exactly the alg of
    /// the key named by `kid` (no `none`, no algorithm confusion: RFC 8725 §3.1), `typ`
    /// `at+jwt` (RFC 9068 §4), no `crit`, `iss` equal to ours, and `exp`/`nbf`/`iat` within
    /// `leeway_secs` of `now`. `jku`, `x5u` and `jwk` headers are ignored: keys come only from
    /// our own set.
    pub fn verify_access_token(
        &self,
        token: &str,
        now: i64,
        leeway_secs: i64,
    ) -> Result<VerifiedToken, JwksError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwksError::Rejected("too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwksError::Rejected("not a compact JWS"));
        };
        let header_bytes = URL_SAFE_NO_PAD
            .decode(h)
            .map_err(|_| JwksError::Rejected("bad header encoding"))?;
        let header: Map<String, Value> =
            serde_json::from_slice(&header_bytes).map_err(|_| JwksError::Rejected("bad header"))?;
        if header.contains_key("crit") {
            return Err(JwksError::Rejected("crit header not understood"));
        }
        let typ = header.get("typ").and_then(Value::as_str).unwrap_or("");
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return Err(JwksError::Rejected("typ is not at+jwt"));
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(JwksError::Rejected("no kid"))?;
        let key = self
            .verifiers
            .get(kid)
            .ok_or(JwksError::Rejected("unknown kid"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwksError::Rejected("no alg"))?;
        if alg != key.alg.as_str() {
            return Err(JwksError::Rejected("alg does not match the key"));
        }
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| JwksError::Rejected("bad signature encoding"))?;
        let signed_len = h.len() + 1 + p.len();
        let signed = token
            .get(..signed_len)
            .ok_or(JwksError::Rejected("malformed"))?;
        key.verifier
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| JwksError::Rejected("bad signature"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(p)
            .map_err(|_| JwksError::Rejected("bad payload encoding"))?;
        let claims: Map<String, Value> =
            serde_json::from_slice(&payload).map_err(|_| JwksError::Rejected("bad payload"))?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(JwksError::Rejected("wrong issuer"));
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_i64)
            .ok_or(JwksError::Rejected("no exp"))?;
        if exp + leeway_secs <= now {
            return Err(JwksError::Rejected("expired"));
        }
        for claim in ["nbf", "iat"] {
            if let Some(t) = claims.get(claim) {
                let t = t.as_i64().ok_or(JwksError::Rejected("bad time claim"))?;
                if t - leeway_secs > now {
                    return Err(JwksError::Rejected("not yet valid"));
                }
            }
        }
        Ok(VerifiedToken {
            kid: kid.to_owned(),
            claims,
        })
    }
}

/// Loads, creates and holds the current [`KeySet`].
pub struct KeyManager {
    registry: Registry,
    master: Arc<MasterKey>,
    alg: SigningAlg,
    issuer: String,
    current: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Load the stored keys, generating the first signing key on an empty database.
    /// Call under the startup lock when several instances share a database.
    pub async fn load_or_create(
        registry: Registry,
        master: Arc<MasterKey>,
        alg: SigningAlg,
        issuer: &str,
    ) -> Result<Self, JwksError> {
        let mut keys = registry.signing_keys().await?;
        let now = registry.clock().now();
        if !keys.iter().any(|k| k.state == "active") {
            let key = Self::generate(&master, alg, now, "active")?;
            registry.insert_signing_key(&key).await?;
            tracing::info!(kid = %key.kid, alg = %alg, "generated the first signing key");
            keys.push(key);
        }
        if !keys.iter().any(|k| k.state == "next") {
            // Published from now on, so it is known to every verifier before it signs.
            let key = Self::generate(&master, alg, now, "next")?;
            registry.insert_signing_key(&key).await?;
            tracing::info!(kid = %key.kid, alg = %alg, "published the next signing key");
            keys.push(key);
        }
        if let Some(active) = keys
            .iter()
            .find(|k| k.state == "active" && k.alg != alg.as_str())
        {
            tracing::warn!(
                active_alg = %active.alg,
                configured = %alg,
                "the active signing key uses another algorithm than GATEHOUSE_SIGNING_ALG; it keeps signing until rotated"
            );
        }
        let set = KeySet::build(&keys, &master, issuer, Some(retired_cutoff(&registry)))?;
        Ok(Self {
            registry,
            master,
            alg,
            issuer: issuer.to_owned(),
            current: RwLock::new(Arc::new(set)),
        })
    }

    fn generate(
        master: &MasterKey,
        alg: SigningAlg,
        now: chrono::DateTime<chrono::Utc>,
        state: &str,
    ) -> Result<StoredKey, JwksError> {
        let (private_pem, mut jwk) = alg.generate()?;
        let kid = thumbprint(&jwk)?;
        jwk.set_key_id(kid.clone());
        jwk.set_algorithm(alg.as_str());
        jwk.set_key_use("sig");
        let private_jwe = master.seal(&kid, &private_pem)?;
        Ok(StoredKey {
            kid,
            alg: alg.as_str().to_owned(),
            state: state.to_owned(),
            private_jwe,
            public_jwk: jwk.to_string(),
            created_at: now,
            activated_at: (state == "active").then_some(now),
            retired_at: None,
        })
    }

    /// The current key set (cheap: one `Arc` clone under a read lock).
    pub fn current(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reload from storage (after a rotation elsewhere).
    pub async fn reload(&self) -> Result<(), JwksError> {
        let keys = self.registry.signing_keys().await?;
        let set = Arc::new(KeySet::build(
            &keys,
            &self.master,
            &self.issuer,
            Some(retired_cutoff(&self.registry)),
        )?);
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }
}

/// Retired keys that retired before this instant have no live token left: the longest token
/// lifetime plus the verification leeway.
fn retired_cutoff(registry: &Registry) -> chrono::DateTime<chrono::Utc> {
    registry.clock().now() - chrono::Duration::seconds(registry.settings().max_token_ttl + 60)
}

/// A signing key as the admin API and the CLI show it (never private material).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct KeyView {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// JWS algorithm.
    pub alg: String,
    /// `next` (published, signs after the next rotation), `active` (signs), `retired`
    /// (published until its last token expires), `expired`.
    pub state: String,
    /// When it was made (and published).
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// When it started signing.
    pub activated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it stopped signing.
    pub retired_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Until when a retired key stays in the JWKS.
    pub published_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The outcome of a rotation.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Rotation {
    /// The key that signs from now on.
    pub active_kid: String,
    /// The key published now, to sign after the next rotation.
    pub next_kid: String,
    /// The key that stopped signing.
    pub retired_kid: Option<String>,
}

impl KeyManager {
    /// Every stored key, newest first.
    pub async fn list(&self) -> Result<Vec<KeyView>, JwksError> {
        let ttl = chrono::Duration::seconds(self.registry.settings().max_token_ttl + 60);
        let mut keys: Vec<KeyView> = self
            .registry
            .signing_keys()
            .await?
            .into_iter()
            .map(|k| KeyView {
                published_until: k.retired_at.map(|r| r + ttl),
                kid: k.kid,
                alg: k.alg,
                state: k.state,
                created_at: k.created_at,
                activated_at: k.activated_at,
                retired_at: k.retired_at,
            })
            .collect();
        keys.reverse();
        Ok(keys)
    }

    /// Rotate: the `next` key (in the JWKS for at least `publish_ahead`, unless `force`)
    /// starts signing, the active key retires and stays published until its tokens expire,
    /// and a new `next` key is published. Every instance reloads (NOTIFY on PostgreSQL).
    pub async fn rotate(
        &self,
        actor: &gatehouse_registry::Actor,
        publish_ahead: std::time::Duration,
        force: bool,
    ) -> Result<Rotation, JwksError> {
        let now = self.registry.clock().now();
        let keys = self.registry.signing_keys().await?;
        let retired_kid = keys
            .iter()
            .find(|k| k.state == "active")
            .map(|k| k.kid.clone());
        let next = match keys.iter().find(|k| k.state == "next") {
            Some(k) => k.clone(),
            None => {
                let key = Self::generate(&self.master, self.alg, now, "next")?;
                self.registry.insert_signing_key(&key).await?;
                key
            }
        };
        let ahead = chrono::Duration::from_std(publish_ahead).unwrap_or_default();
        if !force && next.created_at + ahead > now {
            self.reload().await?;
            return Err(JwksError::TooSoon {
                published: next.created_at,
                ready_at: next.created_at + ahead,
            });
        }
        let new_next = Self::generate(&self.master, self.alg, now, "next")?;
        self.registry
            .rotate_signing_keys(actor, &next.kid, &new_next, now)
            .await?;
        self.reload().await?;
        tracing::info!(active = %next.kid, next = %new_next.kid, "signing keys rotated");
        Ok(Rotation {
            active_kid: next.kid,
            next_kid: new_next.kid,
            retired_kid,
        })
    }

    /// The scheduled part of the lifecycle: rotate when the active key has signed for
    /// `interval` (and the next key is ready), and take keys whose last token has expired
    /// out of the JWKS. Several instances may run it: a rotation another instance made first
    /// is a no-op here.
    pub async fn maintain(
        &self,
        interval: Option<std::time::Duration>,
        publish_ahead: std::time::Duration,
    ) -> Result<Option<Rotation>, JwksError> {
        let expired = self
            .registry
            .expire_signing_keys(retired_cutoff(&self.registry))
            .await?;
        let mut rotated = None;
        if let Some(interval) = interval {
            let now = self.registry.clock().now();
            let keys = self.registry.signing_keys().await?;
            let due = keys
                .iter()
                .find(|k| k.state == "active")
                .and_then(|k| k.activated_at)
                .is_none_or(|at| {
                    at + chrono::Duration::from_std(interval).unwrap_or_default() <= now
                });
            if due {
                match self
                    .rotate(&gatehouse_registry::Actor::system(), publish_ahead, false)
                    .await
                {
                    Ok(r) => rotated = Some(r),
                    Err(JwksError::TooSoon { .. }) => {}
                    Err(JwksError::Registry(gatehouse_registry::RegistryError::Conflict {
                        ..
                    })) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if expired > 0 && rotated.is_none() {
            self.reload().await?;
        }
        Ok(rotated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_for(alg: SigningAlg) -> KeySet {
        let (master, _) = MasterKey::generate();
        let key =
            KeyManager::generate(&master, alg, chrono::DateTime::UNIX_EPOCH, "active").unwrap();
        KeySet::build(&[key], &master, "http://127.0.0.1:8080", None).unwrap()
    }

    fn claims(now: i64) -> Value {
        serde_json::json!({"iss": "http://127.0.0.1:8080", "sub": "gco_x", "iat": now, "exp": now + 60})
    }

    #[test]
    fn retired_keys_leave_the_jwks_when_their_tokens_are_dead() {
        let (master, _) = MasterKey::generate();
        let t = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap();
        let active = KeyManager::generate(&master, SigningAlg::Es256, t(0), "active").unwrap();
        let next = KeyManager::generate(&master, SigningAlg::Es256, t(0), "next").unwrap();
        let mut retired =
            KeyManager::generate(&master, SigningAlg::Es256, t(0), "retired").unwrap();
        retired.retired_at = Some(t(100));
        let mut expired =
            KeyManager::generate(&master, SigningAlg::Es256, t(0), "expired").unwrap();
        expired.retired_at = Some(t(50));
        let keys = [active.clone(), next.clone(), retired.clone(), expired];
        let kids = |cutoff| {
            let set =
                KeySet::build(&keys, &master, "http://127.0.0.1:8080", Some(t(cutoff))).unwrap();
            let jwks: Value = serde_json::from_slice(&set.jwks_json()).unwrap();
            let mut k: Vec<String> = jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect();
            k.sort();
            assert_eq!(set.active_kid(), active.kid, "only the active key signs");
            k
        };
        let mut live = vec![active.kid.clone(), next.kid.clone(), retired.kid.clone()];
        live.sort();
        assert_eq!(kids(99), live, "retired after the cutoff: still published");
        let mut later = vec![active.kid.clone(), next.kid.clone()];
        later.sort();
        assert_eq!(kids(101), later, "retired before the cutoff: gone");
    }

    #[test]
    fn sign_and_verify_each_alg() {
        for alg in [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa] {
            let set = set_for(alg);
            let token = set.sign_access_token(&claims(1000)).unwrap();
            let v = set.verify_access_token(&token, 1000, 0).unwrap();
            assert_eq!(v.claims.get("sub").and_then(Value::as_str), Some("gco_x"));
            assert_eq!(v.kid, set.active_kid());
            let jwks: Value = serde_json::from_slice(&set.jwks_json()).unwrap();
            let k = &jwks["keys"][0];
            assert_eq!(k["kid"], set.active_kid());
            assert_eq!(k["alg"], alg.as_str());
            assert_eq!(k["use"], "sig");
            assert!(k.get("d").is_none(), "no private member in the JWKS");
        }
    }

    #[test]
    fn rejects_tampering_none_and_time() {
        let set = set_for(SigningAlg::Es256);
        let token = set.sign_access_token(&claims(1000)).unwrap();
        assert!(
            set.verify_access_token(&token, 1000 + 61, 0).is_err(),
            "expired"
        );
        assert!(
            set.verify_access_token(&token, 1000 + 61, 60).is_ok(),
            "within leeway"
        );
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload =
            URL_SAFE_NO_PAD.encode(br#"{"iss":"http://127.0.0.1:8080","sub":"admin","exp":99999}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(set.verify_access_token(&forged, 1000, 0).is_err());
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            set.active_kid()
        ));
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(set.verify_access_token(&unsigned, 1000, 0).is_err());
        let hs_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            set.active_kid()
        ));
        assert!(
            set.verify_access_token(&format!("{hs_header}.{}.{}", parts[1], parts[2]), 1000, 0)
                .is_err()
        );
        let jwt_typ = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#,
            set.active_kid()
        ));
        assert!(
            set.verify_access_token(&format!("{jwt_typ}.{}.{}", parts[1], parts[2]), 1000, 0)
                .is_err()
        );
        assert!(set.verify_access_token("a.b", 1000, 0).is_err());
        assert!(
            set.verify_access_token(&"a".repeat(20_000), 1000, 0)
                .is_err()
        );
    }
}
