//! The master key (GATEHOUSE_SECRET_KEY) that encrypts private keys at rest, as compact JWEs
//! with `dir` + `A256GCM`; the key id is bound into the protected header, so a ciphertext
//! cannot be swapped onto another row.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwe::{Dir, JweHeader};

use crate::error::JwksError;

/// 32 secret bytes, and during a key change the previous key, which is only ever used to
/// open (GATEHOUSE_SECRET_KEY_PREVIOUS). Not `Clone`; `Debug` prints nothing of it.
pub struct MasterKey {
    current: [u8; 32],
    previous: Option<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([secret elided])")
    }
}

impl MasterKey {
    /// Parse 32 bytes in base64url (padding optional; standard base64 also accepted).
    pub fn parse(text: &str) -> Result<Self, JwksError> {
        let text = text.trim();
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
            .map_err(|_| JwksError::MasterKey("not base64url".to_owned()))?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| JwksError::MasterKey("must decode to exactly 32 bytes".to_owned()))?;
        Ok(Self {
            current: arr,
            previous: None,
        })
    }

    /// A fresh random key, and its base64url text for storing.
    pub fn generate() -> (Self, String) {
        let bytes: [u8; 32] = rand::random();
        let text = URL_SAFE_NO_PAD.encode(bytes);
        (
            Self {
                current: bytes,
                previous: None,
            },
            text,
        )
    }

    /// Also open what `previous` sealed (during a key change; sealing always uses this key).
    pub fn with_previous(mut self, previous: MasterKey) -> Self {
        self.previous = Some(previous.current);
        self
    }

    /// Whether a previous key is configured.
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// A value sealed under the previous key, sealed again under the current one; `None`
    /// when it already opens with the current key.
    pub fn reseal(&self, kid: &str, jwe: &str) -> Result<Option<String>, JwksError> {
        if Self::open_with(&self.current, kid, jwe).is_ok() {
            return Ok(None);
        }
        let plain = self.open(kid, jwe)?;
        self.seal(kid, &plain).map(Some)
    }

    /// Encrypt `plaintext` bound to `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, JwksError> {
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_claim("gh_kid", Some(serde_json::Value::String(kid.to_owned())))?;
        let encrypter = Dir.encrypter_from_bytes(self.current)?;
        Ok(josekit::jwe::serialize_compact(
            plaintext, &header, &encrypter,
        )?)
    }

    /// Decrypt a value sealed for `kid`, with the current key or, during a key change, the
    /// previous one.
    pub fn open(&self, kid: &str, jwe: &str) -> Result<Vec<u8>, JwksError> {
        match (Self::open_with(&self.current, kid, jwe), &self.previous) {
            (Ok(plain), _) => Ok(plain),
            (Err(_), Some(previous)) => Self::open_with(previous, kid, jwe),
            (Err(e), None) => Err(e),
        }
    }

    fn open_with(key: &[u8; 32], kid: &str, jwe: &str) -> Result<Vec<u8>, JwksError> {
        let decrypter = Dir.decrypter_from_bytes(key)?;
        let (plain, header) = josekit::jwe::deserialize_compact(jwe, &decrypter).map_err(|_| {
            JwksError::StoredKey {
                kid: kid.to_owned(),
                reason: "cannot decrypt: is GATEHOUSE_SECRET_KEY the one the key was stored with? \
                         (after `gatehouse secret-key rotate`, every instance needs the new key)"
                    .to_owned(),
            }
        })?;
        if header.claim("gh_kid").and_then(|v| v.as_str()) != Some(kid) {
            return Err(JwksError::StoredKey {
                kid: kid.to_owned(),
                reason: "ciphertext belongs to another key".to_owned(),
            });
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_round_trip_and_bind_kid() {
        let (key, text) = MasterKey::generate();
        let again = MasterKey::parse(&text).unwrap();
        let sealed = key.seal("k1", b"private").unwrap();
        assert!(!sealed.contains("private"));
        assert_eq!(again.open("k1", &sealed).unwrap(), b"private");
        assert!(again.open("k2", &sealed).is_err());
        let (other, _) = MasterKey::generate();
        assert!(other.open("k1", &sealed).is_err());
        assert!(MasterKey::parse("c2hvcnQ").is_err());
        assert_eq!(format!("{key:?}"), "MasterKey([secret elided])");
    }

    #[test]
    fn a_key_change_opens_old_values_and_reseals_them_under_the_new_key() {
        let (old, old_text) = MasterKey::generate();
        let sealed_old = old.seal("k1", b"private").unwrap();
        let (new, new_text) = MasterKey::generate();
        let both = MasterKey::parse(&new_text)
            .unwrap()
            .with_previous(MasterKey::parse(&old_text).unwrap());
        assert!(both.has_previous() && !new.has_previous());
        // The new key alone cannot read the old value; with the previous key it can.
        assert!(new.open("k1", &sealed_old).is_err());
        assert_eq!(both.open("k1", &sealed_old).unwrap(), b"private");
        // Resealing moves it to the new key, once.
        let resealed = both.reseal("k1", &sealed_old).unwrap().unwrap();
        assert_eq!(new.open("k1", &resealed).unwrap(), b"private");
        assert!(old.open("k1", &resealed).is_err());
        assert!(both.reseal("k1", &resealed).unwrap().is_none());
        // The kid stays bound.
        assert!(both.reseal("k2", &sealed_old).is_err());
        // New values are sealed under the current key only.
        let fresh = both.seal("k3", b"x").unwrap();
        assert!(old.open("k3", &fresh).is_err());
    }
}
