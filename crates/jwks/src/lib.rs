//! Gatehouse's keys and the documents built from them: signing keys (generation, encryption
//! at rest, loading), JWT signing and verification for our own access tokens, the JWKS, and
//! the discovery metadata (OpenID Connect Discovery and RFC 8414).
//!
//! It owns the cryptography and nothing of HTTP; key rows are stored through the registry.
//! Everything served to the public (JWKS, discovery) is serialized once, at load time.

mod alg;
mod discovery;
mod error;
pub mod http;
mod keyset;
mod master_key;

pub use alg::SigningAlg;
pub use discovery::{DiscoveryDocuments, Endpoints};
pub use error::JwksError;
pub use keyset::{KeyManager, KeySet, VerifiedToken};
pub use master_key::MasterKey;
