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
    fn build(keys: &[StoredKey], master: &MasterKey, issuer: &str) -> Result<Self, JwksError> {
        let mut verifiers = HashMap::new();
        let mut published = Vec::new();
        let mut active = None;
        for key in keys.iter().filter(|k| k.state != "expired") {
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
        if !keys.iter().any(|k| k.state == "active") {
            let key = Self::generate(&master, alg, registry.clock().now())?;
            registry.insert_signing_key(&key).await?;
            tracing::info!(kid = %key.kid, alg = %alg, "generated the first signing key");
            keys.push(key);
        } else if let Some(active) = keys
            .iter()
            .find(|k| k.state == "active" && k.alg != alg.as_str())
        {
            tracing::warn!(
                active_alg = %active.alg,
                configured = %alg,
                "the active signing key uses another algorithm than GATEHOUSE_SIGNING_ALG; it keeps signing until rotated"
            );
        }
        let set = KeySet::build(&keys, &master, issuer)?;
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
            state: "active".to_owned(),
            private_jwe,
            public_jwk: jwk.to_string(),
            created_at: now,
            activated_at: Some(now),
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
        let set = Arc::new(KeySet::build(&keys, &self.master, &self.issuer)?);
        match self.current.write() {
            Ok(mut guard) => *guard = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_for(alg: SigningAlg) -> KeySet {
        let (master, _) = MasterKey::generate();
        let key = KeyManager::generate(&master, alg, chrono::DateTime::UNIX_EPOCH).unwrap();
        KeySet::build(&[key], &master, "http://127.0.0.1:8080").unwrap()
    }

    fn claims(now: i64) -> Value {
        serde_json::json!({"iss": "http://127.0.0.1:8080", "sub": "gco_x", "iat": now, "exp": now + 60})
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
