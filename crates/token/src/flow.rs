//! The grants of the token endpoint and their ONE issuance path: authenticate (or verify the
//! grant's assertion) → negotiate → admit → claims → sign.
//!
//! The client-credentials grant runs through oxide-auth-async's client-credentials state
//! machine (`code_grant::client_credentials`), which checks the protocol (the grant type, that
//! the client authenticated, that it is bound and its scope negotiated) against a per-request
//! [`Engine`] holding what our own code already decided — the client authenticated by
//! [`crate::client`] and the scopes [`negotiate`]d — immutably: no side channel, no
//! re-encoded `Authorization` header, no matching on error strings. Issuance is ours (RFC 9068
//! JWTs), shared with the JWT-bearer grant (RFC 7523 §2.1), which oxide-auth does not know.

use crate::error::TokenError;
use crate::request::{ClientAuth, GrantType, TokenRequest};
use crate::service::{Negotiated, claims, negotiate};
use crate::state::TokenState;
use async_trait::async_trait;
use gatehouse_registry::ProfileSnapshot;
use gatehouse_registry::types::AuthType;
use oxide_auth::code_grant::client_credentials::{Error as FlowError, Request as FlowRequest};
use oxide_auth::endpoint::{PreGrant, Scope};
use oxide_auth::primitives::grant::Grant;
use oxide_auth::primitives::issuer::{IssuedToken, RefreshedToken};
use oxide_auth::primitives::registrar::{BoundClient, ClientUrl, RegisteredUrl, RegistrarError};
use oxide_auth_async::code_grant::client_credentials::{Endpoint, Extension, client_credentials};
use oxide_auth_async::primitives::{Authorizer, Issuer, Registrar};
use serde::Serialize;
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

/// A successful token answer: the JSON body, and the policy's figures for the `RateLimit`
/// header fields when a policy applies.
#[derive(Debug)]
pub struct IssuedBody(pub String, pub Option<gatehouse_registry::limits::RateInfo>);

impl axum::response::IntoResponse for IssuedBody {
    fn into_response(self) -> axum::response::Response {
        use axum::http::{HeaderValue, header};
        let mut response = axum::response::Response::new(axum::body::Body::from(self.0));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        crate::error::no_store(&mut response);
        if let Some(info) = &self.1 {
            crate::error::rate_limit_headers(&mut response, info);
        }
        response
    }
}

/// RFC 6749 §5.1's successful response.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    /// Omitted when the token has no scope.
    #[serde(skip_serializing_if = "str::is_empty")]
    scope: &'a str,
}

/// Run the grant of a parsed request from `peer`.
pub async fn grant(
    state: Arc<TokenState>,
    request: TokenRequest,
    peer: IpAddr,
) -> Result<IssuedBody, TokenError> {
    let profile = match request.grant_type {
        GrantType::ClientCredentials => client_credentials_client(&state, &request, peer).await?,
        GrantType::JwtBearer => {
            let Some(assertion) = &request.assertion else {
                return Err(TokenError::InvalidRequest("assertion is missing"));
            };
            crate::assertion::jwt_bearer_grant(
                &state,
                &request.auth,
                assertion.expose_secret(),
                peer,
            )
            .await?
        }
    };
    // The access log names the client (its public id, never a credential).
    tracing::Span::current().record(
        "client_id",
        tracing::field::display(&profile.oauth_client_id),
    );
    let negotiated = negotiate(&profile, request.scope.as_deref(), &request.resources)?;
    if request.grant_type == GrantType::ClientCredentials {
        run_engine(&profile, &negotiated, &request).await?;
    }
    issue(&state, &profile, &negotiated).await
}

/// The client of a client-credentials request: authenticated, and allowed this grant with
/// this authentication method (secrets for `oauth2` profiles, assertions for `jwt` ones).
async fn client_credentials_client(
    state: &TokenState,
    request: &TokenRequest,
    peer: IpAddr,
) -> Result<Arc<ProfileSnapshot>, TokenError> {
    let profile = crate::client::authenticate(state, &request.auth, Some(peer), false).await?;
    let fits = match request.auth {
        ClientAuth::Assertion { .. } => profile.auth_type == AuthType::Jwt,
        _ => profile.auth_type == AuthType::OAuth2,
    };
    if !fits {
        // Told only after the client proved who it is.
        return Err(TokenError::UnauthorizedClient);
    }
    Ok(profile)
}

/// The one issuance path: count the token under the profile's policy, build the RFC 9068
/// claims, sign, answer.
async fn issue(
    state: &TokenState,
    profile: &ProfileSnapshot,
    negotiated: &Negotiated,
) -> Result<IssuedBody, TokenError> {
    let rate = crate::service::admit(state, profile).await?;
    let now = state.registry.clock().now().timestamp();
    let token_claims = claims(&state.issuer, profile, negotiated, now, state.max_token_ttl);
    let expires_in = token_claims.exp - now;
    let access_token = state
        .keys
        .current()
        .sign_access_token(&token_claims)
        .map_err(|e| {
            tracing::error!(error = %e, "signing failed");
            TokenError::ServerError
        })?;
    let body = serde_json::to_string(&TokenResponse {
        access_token: &access_token,
        token_type: "Bearer",
        expires_in,
        scope: &token_claims.scope,
    })
    .map_err(|_| TokenError::ServerError)?;
    crate::service::issued(state, profile);
    Ok(IssuedBody(body, rate))
}

/// The request as oxide-auth's state machine reads it: the grant type, the requested scope
/// and the credentials our client authentication already checked.
struct EngineRequest<'a> {
    client_id: &'a str,
    scope: Option<String>,
}

impl FlowRequest for EngineRequest<'_> {
    fn valid(&self) -> bool {
        true
    }

    fn authorization(&self) -> Option<(Cow<'_, str>, Cow<'_, [u8]>)> {
        // The secret was verified by `crate::client` (argon2 once, then the cache); the engine
        // only sees which client it was.
        Some((Cow::Borrowed(self.client_id), Cow::Borrowed(&[])))
    }

    fn scope(&self) -> Option<Cow<'_, str>> {
        self.scope.as_deref().map(Cow::Borrowed)
    }

    fn grant_type(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed("client_credentials"))
    }

    fn extension(&self, _: &str) -> Option<Cow<'_, str>> {
        None
    }
}

/// oxide-auth's view of the registry for one request: exactly the authenticated client and
/// its negotiated grant.
struct Engine {
    client_id: String,
    scope: Scope,
    redirect: url::Url,
    authorizer: Unused,
    issuer: Unused,
    extension: (),
}

/// The authorizer and issuer the engine's trait demands; the client-credentials state machine
/// calls neither (issuance is [`issue`]).
struct Unused;

#[async_trait]
impl Authorizer for Unused {
    async fn authorize(&mut self, _: Grant) -> Result<String, ()> {
        Err(())
    }

    async fn extract(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
}

#[async_trait]
impl Issuer for Unused {
    async fn issue(&mut self, _: Grant) -> Result<IssuedToken, ()> {
        Err(())
    }

    async fn refresh(&mut self, _: &str, _: Grant) -> Result<RefreshedToken, ()> {
        Err(())
    }

    async fn recover_token(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }

    async fn recover_refresh(&mut self, _: &str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
}

#[async_trait]
impl Registrar for Engine {
    async fn bound_redirect<'a>(
        &self,
        bound: ClientUrl<'a>,
    ) -> Result<BoundClient<'a>, RegistrarError> {
        // Client credentials has no redirect; oxide-auth's grant still wants a URL.
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Semantic(self.redirect.clone())),
        })
    }

    async fn negotiate<'a>(
        &self,
        client: BoundClient<'a>,
        _: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        Ok(PreGrant {
            client_id: client.client_id.into_owned(),
            redirect_uri: client.redirect_uri.into_owned(),
            scope: self.scope.clone(),
        })
    }

    async fn check(&self, client_id: &str, _: Option<&[u8]>) -> Result<(), RegistrarError> {
        if client_id == self.client_id {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

impl Endpoint for Engine {
    fn registrar(&self) -> &(dyn Registrar + Sync) {
        self
    }

    fn authorizer(&mut self) -> &mut (dyn Authorizer + Send) {
        &mut self.authorizer
    }

    fn issuer(&mut self) -> &mut (dyn Issuer + Send) {
        &mut self.issuer
    }

    fn extension(&mut self) -> &mut (dyn Extension + Send) {
        &mut self.extension
    }
}

/// Run oxide-auth's client-credentials state machine over what was decided; it must reach a
/// pending grant for exactly the negotiated scope.
async fn run_engine(
    profile: &ProfileSnapshot,
    negotiated: &Negotiated,
    request: &TokenRequest,
) -> Result<(), TokenError> {
    let scope = negotiated
        .scopes
        .join(" ")
        .parse::<Scope>()
        .map_err(|_| TokenError::InvalidScope)?;
    let redirect = url::Url::parse("urn:ietf:params:oauth:client-credentials")
        .map_err(|_| TokenError::ServerError)?;
    let mut engine = Engine {
        client_id: profile.oauth_client_id.clone(),
        scope: scope.clone(),
        redirect,
        authorizer: Unused,
        issuer: Unused,
        extension: (),
    };
    let flow_request = EngineRequest {
        client_id: &profile.oauth_client_id,
        scope: request.scope.as_ref().map(|s| s.join(" ")),
    };
    let pending = client_credentials(&mut engine, &flow_request)
        .await
        .map_err(|e| match e {
            FlowError::Invalid(_) => TokenError::InvalidRequest("the request was refused"),
            FlowError::Unauthorized(..) => TokenError::InvalidClient,
            _ => TokenError::ServerError,
        })?;
    if pending.as_solicitation().pre_grant().scope != scope {
        return Err(TokenError::ServerError);
    }
    Ok(())
}
