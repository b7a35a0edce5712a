//! Discovery metadata (OpenID Connect Discovery 1.0 §3 and RFC 8414 §2), built with
//! openidconnect's types and serialized once.
//!
//! Gatehouse only issues tokens by the client-credentials grant, yet OIDC Discovery makes
//! some authorization-endpoint fields mandatory. What is published, honestly:
//! - `authorization_endpoint`: served, and answers every request `unsupported_response_type`.
//! - `response_types_supported`: `[]` — no response type is supported.
//! - `subject_types_supported`: `["public"]` — `sub` is the profile's client id for everyone.
//! - `id_token_signing_alg_values_supported`: `["RS256"]` — required by OIDC Discovery §3 even
//!   though no ID token is ever issued.

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGrantType,
    CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm,
    CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata,
    ResponseTypes, TokenUrl,
};
use serde::{Deserialize, Serialize};

use crate::error::JwksError;

/// RFC 8414 and extension members that `CoreProviderMetadata` does not model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatehouseMetadata {
    /// RFC 7662 introspection endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint: Option<String>,
    /// Client authentication at the introspection endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// RFC 7009 revocation endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Client authentication at the revocation endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint_auth_methods_supported: Option<Vec<String>>,
}

impl AdditionalProviderMetadata for GatehouseMetadata {}

/// `CoreProviderMetadata` with Gatehouse's additional members.
pub type GatehouseProviderMetadata = ProviderMetadata<
    GatehouseMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// The public endpoints, all absolute URLs under the issuer.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The issuer, exactly as configured.
    pub issuer: String,
    /// `/oauth/token`
    pub token: String,
    /// `/oauth/jwks`
    pub jwks: String,
    /// `/oauth/authorize`
    pub authorization: String,
    /// `/oauth/introspect`, once served.
    pub introspection: Option<String>,
    /// `/oauth/revoke`, once served.
    pub revocation: Option<String>,
    /// Human documentation.
    pub service_documentation: Option<String>,
}

impl Endpoints {
    /// The standard layout under an issuer.
    pub fn under(issuer: &str) -> Self {
        let base = issuer.trim_end_matches('/');
        Self {
            issuer: issuer.to_owned(),
            token: format!("{base}/oauth/token"),
            jwks: format!("{base}/oauth/jwks"),
            authorization: format!("{base}/oauth/authorize"),
            introspection: None,
            revocation: None,
            service_documentation: None,
        }
    }
}

/// The serialized discovery documents.
#[derive(Debug, Clone)]
pub struct DiscoveryDocuments {
    /// `/.well-known/openid-configuration` and `/.well-known/oauth-authorization-server`
    /// (RFC 8414 §3 allows one document for both).
    pub json: bytes::Bytes,
    /// The issuer's path (`/tenants/acme`), when it has one: RFC 8414 §3.1 inserts it after
    /// the well-known segment, so the documents are also served there.
    pub issuer_path: Option<String>,
}

/// How clients authenticate at the token, introspection and revocation endpoints.
const CLIENT_AUTH_METHODS: [&str; 4] = [
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "client_secret_jwt",
];

fn url_err(e: impl std::fmt::Display) -> JwksError {
    JwksError::Config(format!("bad endpoint URL: {e}"))
}

impl DiscoveryDocuments {
    /// Build the documents once.
    pub fn build(
        endpoints: &Endpoints,
        signing_algs: &[crate::SigningAlg],
    ) -> Result<Self, JwksError> {
        let extra = GatehouseMetadata {
            introspection_endpoint: endpoints.introspection.clone(),
            introspection_endpoint_auth_methods_supported: endpoints
                .introspection
                .as_ref()
                .map(|_| CLIENT_AUTH_METHODS.map(str::to_owned).to_vec()),
            revocation_endpoint: endpoints.revocation.clone(),
            revocation_endpoint_auth_methods_supported: endpoints
                .revocation
                .as_ref()
                .map(|_| CLIENT_AUTH_METHODS.map(str::to_owned).to_vec()),
        };
        let _ = signing_algs;
        let metadata = GatehouseProviderMetadata::new(
            IssuerUrl::new(endpoints.issuer.clone()).map_err(url_err)?,
            AuthUrl::new(endpoints.authorization.clone()).map_err(url_err)?,
            JsonWebKeySetUrl::new(endpoints.jwks.clone()).map_err(url_err)?,
            Vec::<ResponseTypes<CoreResponseType>>::new(),
            vec![CoreSubjectIdentifierType::Public],
            vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256],
            extra,
        )
        .set_token_endpoint(Some(
            TokenUrl::new(endpoints.token.clone()).map_err(url_err)?,
        ))
        .set_grant_types_supported(Some(vec![
            CoreGrantType::ClientCredentials,
            CoreGrantType::JwtBearer,
        ]))
        .set_token_endpoint_auth_methods_supported(Some(vec![
            CoreClientAuthMethod::ClientSecretBasic,
            CoreClientAuthMethod::ClientSecretPost,
            CoreClientAuthMethod::PrivateKeyJwt,
            CoreClientAuthMethod::ClientSecretJwt,
        ]))
        // RFC 7523 client assertions of `jwt` profiles (each profile pins its own subset).
        .set_token_endpoint_auth_signing_alg_values_supported(Some(vec![
            CoreJwsSigningAlgorithm::HmacSha256,
            CoreJwsSigningAlgorithm::HmacSha384,
            CoreJwsSigningAlgorithm::HmacSha512,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha384,
            CoreJwsSigningAlgorithm::RsaSsaPssSha512,
        ]))
        .set_service_documentation(
            endpoints
                .service_documentation
                .clone()
                .map(openidconnect::ServiceDocUrl::new)
                .transpose()
                .map_err(url_err)?,
        );
        let json = serde_json::to_vec(&metadata).map_err(|e| JwksError::Config(e.to_string()))?;
        let issuer_path = url::Url::parse(&endpoints.issuer)
            .ok()
            .map(|u| u.path().trim_end_matches('/').to_owned())
            // Only plain path characters become a route (axum treats `{`, `:`, `*` specially).
            .filter(|p| {
                !p.is_empty()
                    && p.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"/-._~%".contains(&b))
            });
        Ok(Self {
            json: bytes::Bytes::from(json),
            issuer_path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuer_is_byte_exact_and_required_members_present() {
        let docs =
            DiscoveryDocuments::build(&Endpoints::under("http://127.0.0.1:8080"), &[]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&docs.json).unwrap();
        assert_eq!(v["issuer"], "http://127.0.0.1:8080");
        assert_eq!(v["token_endpoint"], "http://127.0.0.1:8080/oauth/token");
        assert_eq!(v["jwks_uri"], "http://127.0.0.1:8080/oauth/jwks");
        assert_eq!(
            v["authorization_endpoint"],
            "http://127.0.0.1:8080/oauth/authorize"
        );
        assert_eq!(v["response_types_supported"], serde_json::json!([]));
        assert_eq!(v["subject_types_supported"], serde_json::json!(["public"]));
        assert_eq!(
            v["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256"])
        );
        assert_eq!(
            v["grant_types_supported"],
            serde_json::json!([
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:jwt-bearer"
            ])
        );
    }
}
