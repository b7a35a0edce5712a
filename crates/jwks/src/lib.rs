//! Gatehouse's keys and the documents built from them: signing keys (generation, encryption
//! at rest, loading), JWT signing and verification for our own access tokens, the JWKS, and
//! the discovery metadata (OpenID Connect Discovery and RFC 8414) — and the other side of
//! that: [`remote`], the cache of key sets other parties publish (a consumer's identity
//! provider, or Gatehouse's own JWKS seen from a resource server).
//!
//! It owns the cryptography and nothing of HTTP routing beyond its own handlers; key rows are
//! stored through the registry. Everything served to the public (JWKS, discovery) is
//! serialized once, at load time. Without the default `server` feature only [`remote`] and
//! [`SigningAlg`] are built, so a resource server does not pull in the registry.

mod alg;
#[cfg(feature = "server")]
mod discovery;
mod error;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
mod keyset;
#[cfg(feature = "server")]
mod master_key;
pub mod remote;

pub use alg::SigningAlg;
#[cfg(feature = "server")]
pub use discovery::{DiscoveryDocuments, Endpoints};
pub use error::JwksError;
#[cfg(feature = "server")]
pub use keyset::{KeyManager, KeySet, KeyView, Rotation, VerifiedToken};
#[cfg(feature = "server")]
pub use master_key::MasterKey;
