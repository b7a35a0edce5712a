//! The registry's access to cryptography it must not own: sealing secrets that have to be
//! read back (HMAC secrets of `jwt` profiles) and checking consumers' public keys. The jwks
//! crate implements it with the master key (GATEHOUSE_SECRET_KEY).

/// Seal and open secrets; check public keys.
pub trait Vault: Send + Sync + std::fmt::Debug + 'static {
    /// Encrypt `plaintext`, bound to `label` (e.g. the profile id).
    fn seal(&self, label: &str, plaintext: &[u8]) -> Result<String, String>;
    /// Decrypt what [`Vault::seal`] produced for the same `label`.
    fn open(&self, label: &str, sealed: &str) -> Result<Vec<u8>, String>;
    /// Check a PEM public key: RSA of at least 2048 bits.
    fn check_rsa_public_key(&self, pem: &str) -> Result<(), String>;
}
