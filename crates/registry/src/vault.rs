//! The registry's access to cryptography it must not own: sealing secrets that have to be
//! read back (HMAC secrets of `jwt` profiles) and checking consumers' public keys. The master
//! key of the jwks crate (GATEHOUSE_SECRET_KEY) implements it.

/// Seal and open secrets; check public keys.
pub trait Vault: Send + Sync + std::fmt::Debug + 'static {
    /// Encrypt `plaintext`, bound to `label` (e.g. the profile id).
    fn seal(&self, label: &str, plaintext: &[u8]) -> Result<String, String>;
    /// Decrypt what [`Vault::seal`] produced for the same `label`.
    fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>, String>;
    /// Check a PEM public key: RSA of at least 2048 bits.
    fn check_rsa_public_key(&self, pem: &str) -> Result<(), String>;
    /// During a master-key change: the value sealed again under the current key, or `None`
    /// when it already is.
    fn reseal(&self, label: &str, sealed: &str) -> Result<Option<String>, String>;
}

/// The master key (GATEHOUSE_SECRET_KEY) seals what must be read back.
impl Vault for gatehouse_jwks::MasterKey {
    fn seal(&self, label: &str, plaintext: &[u8]) -> Result<String, String> {
        gatehouse_jwks::MasterKey::seal(self, label, plaintext).map_err(|e| e.to_string())
    }

    fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>, String> {
        gatehouse_jwks::MasterKey::open(self, label, sealed).map_err(|e| e.to_string())
    }

    fn check_rsa_public_key(&self, pem: &str) -> Result<(), String> {
        gatehouse_jwks::jws::check_rsa_public_pem(pem)
    }

    fn reseal(&self, label: &str, sealed: &str) -> Result<Option<String>, String> {
        gatehouse_jwks::MasterKey::reseal(self, label, sealed).map_err(|e| e.to_string())
    }
}
