//! Gatehouse's keys and THE one JWT verifier: signing keys (generation, encryption at rest,
//! loading, rotation), JWT signing, [`jws`] — the compact-JWS verifier every caller in the
//! workspace goes through, with rules built per purpose — the JWKS and the discovery metadata
//! (OpenID Connect Discovery and RFC 8414), [`remote`], the cache of key sets other
//! parties publish (a consumer's identity provider, or Gatehouse's own JWKS seen from a
//! resource server), and [`outbound`], the rules of where such fetches may go.
//!
//! It owns the cryptography and depends on no other Gatehouse crate: key rows are kept
//! through the injected [`KeyStore`] (the registry implements it). Everything served to the
//! public (JWKS, discovery) is serialized once, at load time. The default `server` feature
//! adds the axum handlers and OpenAPI schemas; without it (the guard's local mode) there is no
//! web framework beyond what [`remote`] needs.

mod alg;
#[cfg(feature = "server")]
mod discovery;
mod error;
#[cfg(feature = "server")]
pub mod http;
pub mod jws;
mod keyset;
mod master_key;
pub mod outbound;
pub mod remote;
mod store;

pub use alg::SigningAlg;
#[cfg(feature = "server")]
pub use discovery::{DiscoveryDocuments, Endpoints};
pub use error::JwksError;
pub use jws::{Alg, Rejection, Rules, Verified, VerifyKey};
pub use keyset::{KeyManager, KeySet, KeyView, Rotation, SYSTEM_ACTOR};
pub use master_key::MasterKey;
pub use store::{KeyStore, StoreError, StoredKey};
