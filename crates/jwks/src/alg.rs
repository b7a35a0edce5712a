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

    pub(crate) fn signer(self, private_pem: &[u8]) -> Result<Box<dyn JwsSigner>, JwksError> {
        Ok(match self {
            SigningAlg::Es256 => Box::new(ES256.signer_from_pem(private_pem)?),
            SigningAlg::Rs256 => Box::new(RS256.signer_from_pem(private_pem)?),
            SigningAlg::EdDsa => Box::new(EdDSA.signer_from_pem(private_pem)?),
        })
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
