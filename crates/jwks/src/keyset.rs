//! The server's signing keys in memory: one signer, a verifier per published key, and the
//! JWKS bytes, all built once at load. Requests only read this.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::sync::{Arc, RwLock};

use crate::alg::SigningAlg;
use crate::error::JwksError;
use crate::jws::{Alg, Rejection, Rules, Verified, VerifyKey};
use crate::master_key::MasterKey;
use crate::store::{KeyStore, StoreError, StoredKey};

struct ActiveSigner {
    kid: String,
    alg: SigningAlg,
    /// base64url of the protected header `{"alg","kid","typ":"at+jwt"}`, computed once.
    header_b64: String,
    signer: crate::alg::TokenSigner,
    /// When it began to sign.
    activated_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// One generation of keys: the signer, the verification keys and the JWKS document.
pub struct KeySet {
    active: ActiveSigner,
    /// Every published key, each pinned to its algorithm and named by its `kid`.
    verifiers: Vec<VerifyKey>,
    jwks_json: bytes::Bytes,
    issuer: String,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySet")
            .field("active_kid", &self.active.kid)
            .field("alg", &self.active.alg)
            .field(
                "published",
                &self
                    .verifiers
                    .iter()
                    .map(VerifyKey::kid)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
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
    /// When the signing key in use began to sign (from memory: no storage read).
    pub fn active_since(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.active.activated_at
    }

    /// Build from stored keys: `next`, `active` and `retired` keys are published (a retired
    /// one only while it retired after `retired_after`, i.e. its tokens may still be alive);
    /// the `active` one signs.
    fn build(
        keys: &[StoredKey],
        master: &MasterKey,
        issuer: &str,
        retired_after: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Self, JwksError> {
        let mut verifiers = Vec::new();
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
            let verify_alg = Alg::parse(alg.as_str()).ok_or_else(|| JwksError::StoredKey {
                kid: key.kid.clone(),
                reason: format!("unknown alg {}", key.alg),
            })?;
            verifiers.push(
                VerifyKey::public_jwk(verify_alg, &jwk, true)
                    .map_err(|e| JwksError::StoredKey {
                        kid: key.kid.clone(),
                        reason: e.to_string(),
                    })?
                    .with_kid(key.kid.clone()),
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
                    activated_at: key.activated_at,
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
        let mut algs: Vec<SigningAlg> = self
            .verifiers
            .iter()
            .filter_map(|k| SigningAlg::parse(k.alg().as_str()))
            .collect();
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
        URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
        Ok(out)
    }

    /// The published keys, for [`crate::jws::verify`].
    pub fn verify_keys(&self) -> &[VerifyKey] {
        &self.verifiers
    }

    /// The issuer our tokens carry.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verify one of our own access tokens through the one verifier, with the access-token
    /// rules ([`Rules::access_token`]: `typ` `at+jwt`, our issuer, a `kid` of ours, the key's
    /// own algorithm, no leeway on our own clock).
    pub fn verify_access_token(&self, token: &str, now: i64) -> Result<Verified, Rejection> {
        crate::jws::verify(
            token,
            &self.verifiers,
            &Rules::access_token(&self.issuer),
            now,
        )
    }
}

/// The actor recorded for scheduled rotations.
pub const SYSTEM_ACTOR: &str = "system";

/// Loads, creates and holds the current [`KeySet`].
pub struct KeyManager {
    store: Arc<dyn KeyStore>,
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
        store: Arc<dyn KeyStore>,
        master: Arc<MasterKey>,
        alg: SigningAlg,
        issuer: &str,
    ) -> Result<Self, JwksError> {
        let mut keys = store.signing_keys().await?;
        let now = store.now();
        if !keys.iter().any(|k| k.state == "active") {
            let key = Self::generate(&master, alg, now, "active")?;
            store.insert_signing_key(&key).await?;
            tracing::info!(kid = %key.kid, alg = %alg, "generated the first signing key");
            keys.push(key);
        }
        if !keys.iter().any(|k| k.state == "next") {
            // Published from now on, so it is known to every verifier before it signs.
            let key = Self::generate(&master, alg, now, "next")?;
            store.insert_signing_key(&key).await?;
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
        let set = KeySet::build(&keys, &master, issuer, Some(retired_cutoff(store.as_ref())))?;
        Ok(Self {
            store,
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
        let keys = self.store.signing_keys().await?;
        let set = Arc::new(KeySet::build(
            &keys,
            &self.master,
            &self.issuer,
            Some(retired_cutoff(self.store.as_ref())),
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
fn retired_cutoff(store: &dyn KeyStore) -> chrono::DateTime<chrono::Utc> {
    store.now() - chrono::Duration::seconds(store.max_token_ttl() + crate::jws::LEEWAY_SECS)
}

/// A signing key as the admin API and the CLI show it (never private material).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
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
        let ttl = chrono::Duration::seconds(self.store.max_token_ttl() + crate::jws::LEEWAY_SECS);
        let mut keys: Vec<KeyView> = self
            .store
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
        actor: &str,
        publish_ahead: std::time::Duration,
        force: bool,
    ) -> Result<Rotation, JwksError> {
        let now = self.store.now();
        let keys = self.store.signing_keys().await?;
        let retired_kid = keys
            .iter()
            .find(|k| k.state == "active")
            .map(|k| k.kid.clone());
        let next = match keys.iter().find(|k| k.state == "next") {
            Some(k) => k.clone(),
            None => {
                let key = Self::generate(&self.master, self.alg, now, "next")?;
                self.store.insert_signing_key(&key).await?;
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
        self.store
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
            .store
            .expire_signing_keys(retired_cutoff(self.store.as_ref()))
            .await?;
        let mut rotated = None;
        if let Some(interval) = interval {
            let now = self.store.now();
            let keys = self.store.signing_keys().await?;
            let due = keys
                .iter()
                .find(|k| k.state == "active")
                .and_then(|k| k.activated_at)
                .is_none_or(|at| {
                    at + chrono::Duration::from_std(interval).unwrap_or_default() <= now
                });
            if due {
                match self.rotate(SYSTEM_ACTOR, publish_ahead, false).await {
                    Ok(r) => rotated = Some(r),
                    Err(JwksError::TooSoon { .. }) => {}
                    Err(JwksError::Store(StoreError::Conflict)) => {}
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
    fn es256_signatures_verify_with_josekit_and_are_raw_r_s() {
        let set = set_for(SigningAlg::Es256);
        let jwks: Value = serde_json::from_slice(&set.jwks_json()).unwrap();
        let jwk =
            josekit::jwk::Jwk::from_map(jwks["keys"][0].as_object().unwrap().clone()).unwrap();
        let verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap();
        let mut signatures = std::collections::HashSet::new();
        for i in 0..50 {
            let token = set.sign_access_token(&claims(1000 + i)).unwrap();
            let (input, signature) = token.rsplit_once('.').unwrap();
            let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
            assert_eq!(signature.len(), 64, "r || s, 32 bytes each (RFC 7518 §3.4)");
            josekit::jws::JwsVerifier::verify(&verifier, input.as_bytes(), &signature).unwrap();
            assert!(
                signatures.insert(signature.clone()),
                "a fresh nonce per signature"
            );
            // Any changed byte of the signing input fails.
            let mut tampered = input.as_bytes().to_vec();
            tampered[(i as usize * 7) % input.len()] ^= 1;
            assert!(josekit::jws::JwsVerifier::verify(&verifier, &tampered, &signature).is_err());
        }
    }

    #[test]
    fn sign_and_verify_each_alg() {
        for alg in [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa] {
            let set = set_for(alg);
            let token = set.sign_access_token(&claims(1000)).unwrap();
            let v = set.verify_access_token(&token, 1000).unwrap();
            assert_eq!(v.claims.get("sub").and_then(Value::as_str), Some("gco_x"));
            assert_eq!(v.header.kid.as_deref(), Some(set.active_kid()));
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
        assert_eq!(
            set.verify_access_token(&token, 1000 + 60).err(),
            Some(Rejection::Expired),
            "inactive the second it expires: no leeway on our own clock"
        );
        assert!(set.verify_access_token(&token, 1000 + 59).is_ok());
        let parts: Vec<&str> = token.split('.').collect();
        let forged_payload =
            URL_SAFE_NO_PAD.encode(br#"{"iss":"http://127.0.0.1:8080","sub":"admin","exp":99999}"#);
        let forged = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        assert!(set.verify_access_token(&forged, 1000).is_err());
        let none_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"none","typ":"at+jwt","kid":"{}"}}"#,
            set.active_kid()
        ));
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(set.verify_access_token(&unsigned, 1000).is_err());
        let hs_header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
            set.active_kid()
        ));
        assert!(
            set.verify_access_token(&format!("{hs_header}.{}.{}", parts[1], parts[2]), 1000)
                .is_err()
        );
        let jwt_typ = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"alg":"ES256","typ":"JWT","kid":"{}"}}"#,
            set.active_kid()
        ));
        assert!(
            set.verify_access_token(&format!("{jwt_typ}.{}.{}", parts[1], parts[2]), 1000)
                .is_err()
        );
        assert!(set.verify_access_token("a.b", 1000).is_err());
        assert!(set.verify_access_token(&"a".repeat(20_000), 1000).is_err());
    }
}
