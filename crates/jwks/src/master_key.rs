//! The master key (GATEHOUSE_SECRET_KEY) that encrypts private keys at rest, as compact JWEs
//! with `dir` + `A256GCM`; the key id is bound into the protected header, so a ciphertext
//! cannot be swapped onto another row.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwe::{Dir, JweHeader};

use crate::error::JwksError;

/// 32 secret bytes. Not `Clone`; `Debug` prints nothing of it.
pub struct MasterKey([u8; 32]);

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
        Ok(Self(arr))
    }

    /// A fresh random key, and its base64url text for storing.
    pub fn generate() -> (Self, String) {
        let bytes: [u8; 32] = rand::random();
        let text = URL_SAFE_NO_PAD.encode(bytes);
        (Self(bytes), text)
    }

    /// Encrypt `plaintext` bound to `kid`.
    pub fn seal(&self, kid: &str, plaintext: &[u8]) -> Result<String, JwksError> {
        let mut header = JweHeader::new();
        header.set_content_encryption("A256GCM");
        header.set_claim("gh_kid", Some(serde_json::Value::String(kid.to_owned())))?;
        let encrypter = Dir.encrypter_from_bytes(self.0)?;
        Ok(josekit::jwe::serialize_compact(
            plaintext, &header, &encrypter,
        )?)
    }

    /// Decrypt a value sealed for `kid`.
    pub fn open(&self, kid: &str, jwe: &str) -> Result<Vec<u8>, JwksError> {
        let decrypter = Dir.decrypter_from_bytes(self.0)?;
        let (plain, header) = josekit::jwe::deserialize_compact(jwe, &decrypter).map_err(|_| {
            JwksError::StoredKey {
                kid: kid.to_owned(),
                reason: "cannot decrypt: is GATEHOUSE_SECRET_KEY the one the key was stored with?"
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
}
