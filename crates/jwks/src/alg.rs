//! The algorithms Gatehouse signs with.

use josekit::jwk::KeyPair;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{ES256, EdDSA, JwsSigner, RS256};

use crate::error::JwksError;

/// A JWS algorithm Gatehouse can sign its tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SigningAlg {
    /// ECDSA P-256 with SHA-256 (default: small, fast).
    #[default]
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys (widest support, slowest).
    Rs256,
    /// Ed25519.
    EdDsa,
}

impl SigningAlg {
    /// The JWA name.
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Es256 => "ES256",
            SigningAlg::Rs256 => "RS256",
            SigningAlg::EdDsa => "EdDSA",
        }
    }

    /// Parse a JWA name (exact, case-sensitive, as RFC 7518 defines them).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ES256" => Some(SigningAlg::Es256),
            "RS256" => Some(SigningAlg::Rs256),
            "EdDSA" => Some(SigningAlg::EdDsa),
            _ => None,
        }
    }

    /// Generate a fresh key pair: (PKCS#8 private PEM, public JWK).
    pub(crate) fn generate(self) -> Result<(Vec<u8>, josekit::jwk::Jwk), JwksError> {
        Ok(match self {
            SigningAlg::Es256 => {
                let kp = ES256.generate_key_pair()?;
                (kp.to_pem_private_key(), kp.to_jwk_public_key())
            }
            SigningAlg::Rs256 => {
                let kp = RS256.generate_key_pair(2048)?;
                (kp.to_pem_private_key(), kp.to_jwk_public_key())
            }
            SigningAlg::EdDsa => {
                let kp = EdDSA.generate_key_pair(EdCurve::Ed25519)?;
                (kp.to_pem_private_key(), kp.to_jwk_public_key())
            }
        })
    }

    /// The signer of a stored private key (PKCS#8 PEM), parsed once.
    pub(crate) fn signer(self, private_pem: &[u8]) -> Result<TokenSigner, JwksError> {
        Ok(match self {
            SigningAlg::Es256 => TokenSigner::es256(private_pem)?,
            SigningAlg::Rs256 => TokenSigner::Jose(Box::new(RS256.signer_from_pem(private_pem)?)),
            SigningAlg::EdDsa => TokenSigner::Jose(Box::new(EdDSA.signer_from_pem(private_pem)?)),
        })
    }
}

/// A parsed signing key. ES256 — the default, on every token request — signs through
/// OpenSSL's ECDSA directly: SHA-256 of the signing input, `ECDSA_do_sign` on the P-256 key,
/// then `r || s` as two 32-byte big-endian integers (RFC 7518 §3.4). josekit's signer takes
/// the EVP path instead, which sets up a new signing context for every signature (a provider
/// fetch: ~26,000 instructions, 7 % of a token request under callgrind) and then encodes the
/// signature as DER only to decode it again. RS256 and EdDSA keep josekit's signers.
pub(crate) enum TokenSigner {
    /// ES256 on a P-256 key.
    Es256(openssl::ec::EcKey<openssl::pkey::Private>),
    /// Any other algorithm, through josekit.
    Jose(Box<dyn JwsSigner>),
}

impl TokenSigner {
    /// Length of P-256 `r` or `s` in a JWS signature.
    const P256_SCALAR: i32 = 32;

    fn es256(private_pem: &[u8]) -> Result<Self, JwksError> {
        let crypto = |e: openssl::error::ErrorStack| JwksError::Crypto(e.to_string());
        let key = openssl::pkey::PKey::private_key_from_pem(private_pem)
            .and_then(|k| k.ec_key())
            .map_err(crypto)?;
        if key.group().curve_name() != Some(openssl::nid::Nid::X9_62_PRIME256V1) {
            return Err(JwksError::Crypto(
                "an ES256 key must be on P-256".to_owned(),
            ));
        }
        key.check_key().map_err(crypto)?;
        Ok(TokenSigner::Es256(key))
    }

    /// Bytes in one signature.
    pub(crate) fn signature_len(&self) -> usize {
        match self {
            TokenSigner::Es256(_) => 64,
            TokenSigner::Jose(signer) => signer.signature_len(),
        }
    }

    /// The JWS signature of `message` (the signing input `header.payload`).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, JwksError> {
        match self {
            TokenSigner::Es256(key) => {
                let crypto = |e: openssl::error::ErrorStack| JwksError::Crypto(e.to_string());
                let digest = openssl::sha::sha256(message);
                let signature = openssl::ecdsa::EcdsaSig::sign(&digest, key).map_err(crypto)?;
                let mut out = signature
                    .r()
                    .to_vec_padded(Self::P256_SCALAR)
                    .map_err(crypto)?;
                out.extend(
                    signature
                        .s()
                        .to_vec_padded(Self::P256_SCALAR)
                        .map_err(crypto)?,
                );
                Ok(out)
            }
            TokenSigner::Jose(signer) => Ok(signer.sign(message)?),
        }
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
