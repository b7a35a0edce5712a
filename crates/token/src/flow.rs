//! The client-credentials grant run through oxide-auth-async's `ClientCredentialsFlow`, with
//! our own Registrar (the registry), Issuer (josekit JWTs with per-profile TTL) and a small
//! request/response adapter. What oxide-auth cannot express (`invalid_scope` from
//! negotiation, `invalid_target`, `temporarily_unavailable`) is carried beside the flow in
//! [`Ctx`] and wins over the flow's generic answer.

use crate::error::TokenError;
use crate::request::{ClientAuth, TokenRequest};
use crate::service::{Negotiated, claims, negotiate};
use crate::state::TokenState;
use async_trait::async_trait;
use base64::Engine;
use gatehouse_registry::types::AuthType;
use gatehouse_registry::{AuthFailure, ProfileSnapshot};
use oxide_auth::endpoint::{
    NormalizedParameter, OAuthError, OwnerConsent, QueryParameter, ResponseStatus, Scope, Scopes,
    Solicitation, Template, WebRequest, WebResponse,
};
use oxide_auth::primitives::grant::Grant;
use oxide_auth::primitives::issuer::{IssuedToken, RefreshedToken, TokenType};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, PreGrant, RegisteredUrl, RegistrarError,
};
use oxide_auth_async::endpoint::client_credentials::ClientCredentialsFlow;
use oxide_auth_async::endpoint::{Endpoint, OwnerSolicitor};
use oxide_auth_async::primitives::{Authorizer, Issuer, Registrar};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// What we learn while the flow runs.
#[derive(Default)]
struct Ctx {
    snapshot: Option<Arc<ProfileSnapshot>>,
    negotiated: Option<Negotiated>,
    failure: Option<TokenError>,
    /// The policy's figures for the `RateLimit` header fields.
    rate: Option<gatehouse_registry::limits::RateInfo>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<TokenState>,
    ctx: Arc<Mutex<Ctx>>,
    peer: IpAddr,
    basic: bool,
    requested: Option<Arc<[String]>>,
    resources: Arc<[String]>,
}

impl Shared {
    fn ctx(&self) -> MutexGuard<'_, Ctx> {
        match self.ctx.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn fail(&self, e: TokenError) {
        self.ctx().failure = Some(e);
    }
}

struct GhRegistrar(Shared);

#[async_trait]
impl Registrar for GhRegistrar {
    async fn bound_redirect<'a>(
        &self,
        bound: ClientUrl<'a>,
    ) -> Result<BoundClient<'a>, RegistrarError> {
        // Client credentials has no redirect; oxide-auth's grant still wants a URL.
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Semantic(
                self.0.state.placeholder_redirect.clone(),
            )),
        })
    }

    async fn negotiate<'a>(
        &self,
        client: BoundClient<'a>,
        _scope: Option<Scope>,
    ) -> Result<PreGrant, RegistrarError> {
        let Some(snapshot) = self.0.ctx().snapshot.clone() else {
            return Err(RegistrarError::PrimitiveError);
        };
        match negotiate(&snapshot, self.0.requested.as_deref(), &self.0.resources) {
            Ok(n) => {
                let scope = n.scopes.join(" ").parse::<Scope>().map_err(|_| {
                    self.0.fail(TokenError::InvalidScope);
                    RegistrarError::Unspecified
                })?;
                self.0.ctx().negotiated = Some(n);
                Ok(PreGrant {
                    client_id: client.client_id.into_owned(),
                    redirect_uri: client.redirect_uri.into_owned(),
                    scope,
                })
            }
            Err(e) => {
                self.0.fail(e);
                Err(RegistrarError::Unspecified)
            }
        }
    }

    async fn check(
        &self,
        client_id: &str,
        passphrase: Option<&[u8]>,
    ) -> Result<(), RegistrarError> {
        let invalid = TokenError::InvalidClient {
            basic: self.0.basic,
        };
        let Some(secret) = passphrase.and_then(|p| std::str::from_utf8(p).ok()) else {
            self.0.fail(invalid);
            return Err(RegistrarError::Unspecified);
        };
        match self
            .0
            .state
            .registry
            .authenticate_secret(client_id, secret, Some(self.0.peer))
            .await
        {
            Ok(snapshot) => {
                // Contract: inactive and IP-denied look exactly like a wrong secret.
                if !snapshot.is_active() || !snapshot.allows_ip(self.0.peer) {
                    self.0.fail(invalid);
                    return Err(RegistrarError::Unspecified);
                }
                if snapshot.auth_type != AuthType::OAuth2 {
                    self.0.fail(TokenError::UnauthorizedClient);
                    return Err(RegistrarError::Unspecified);
                }
                self.0.ctx().snapshot = Some(snapshot);
                Ok(())
            }
            Err(AuthFailure::Unavailable) => {
                self.0.fail(TokenError::TemporarilyUnavailable);
                Err(RegistrarError::PrimitiveError)
            }
            Err(e) => {
                self.0.fail(crate::caller::auth_error(e, self.0.basic));
                Err(RegistrarError::Unspecified)
            }
        }
    }
}

struct GhIssuer(Shared);

#[async_trait]
impl Issuer for GhIssuer {
    async fn issue(&mut self, _grant: Grant) -> Result<IssuedToken, ()> {
        let (snapshot, negotiated) = {
            let ctx = self.0.ctx();
            (ctx.snapshot.clone(), ctx.negotiated.clone())
        };
        let (Some(snapshot), Some(negotiated)) = (snapshot, negotiated) else {
            return Err(());
        };
        let state = &self.0.state;
        match crate::service::admit(state, &snapshot).await {
            Ok(info) => self.0.ctx().rate = info,
            Err(e) => {
                self.0.fail(e);
                return Err(());
            }
        }
        let now = state.registry.clock().now();
        let claims = claims(
            &state.issuer,
            &snapshot,
            &negotiated,
            now.timestamp(),
            state.max_token_ttl,
        );
        let exp = claims.exp;
        let token = state
            .keys
            .current()
            .sign_access_token(&claims)
            .map_err(|e| {
                tracing::error!(error = %e, "signing failed");
            })?;
        crate::service::issued(state, &snapshot);
        Ok(IssuedToken {
            token,
            refresh: None,
            // oxide-auth derives `expires_in` from `until - now`, truncating; half a second of
            // slack makes it report the profile's TTL exactly.
            until: now
                + chrono::Duration::seconds(exp - now.timestamp())
                + chrono::Duration::milliseconds(500),
            token_type: TokenType::Bearer,
        })
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

/// No resource owner in client credentials: the client acts for itself.
struct SelfConsent;

#[async_trait]
impl OwnerSolicitor<OAuthRequest> for SelfConsent {
    async fn check_consent(
        &mut self,
        _: &mut OAuthRequest,
        solicitation: Solicitation<'_>,
    ) -> OwnerConsent<OAuthResponse> {
        OwnerConsent::Authorized(solicitation.pre_grant().client_id.clone())
    }
}

/// The request as oxide-auth sees it: the already-validated form and a canonical Basic
/// header carrying the form-decoded credentials.
struct OAuthRequest {
    body: NormalizedParameter,
    auth: Option<String>,
}

/// The flow never fails at the web layer.
#[derive(Debug)]
struct Infallible;

impl WebRequest for OAuthRequest {
    type Error = Infallible;
    type Response = OAuthResponse;

    fn query(&mut self) -> Result<Cow<'_, dyn QueryParameter + 'static>, Infallible> {
        Ok(Cow::Owned(NormalizedParameter::new()))
    }

    fn urlbody(&mut self) -> Result<Cow<'_, dyn QueryParameter + 'static>, Infallible> {
        Ok(Cow::Borrowed(&self.body))
    }

    fn authheader(&mut self) -> Result<Option<Cow<'_, str>>, Infallible> {
        Ok(self.auth.as_deref().map(Cow::Borrowed))
    }
}

/// What the flow answered.
#[derive(Default)]
struct OAuthResponse {
    status: u16,
    body: Option<String>,
}

impl WebResponse for OAuthResponse {
    type Error = Infallible;

    fn ok(&mut self) -> Result<(), Infallible> {
        self.status = 200;
        Ok(())
    }

    fn redirect(&mut self, _: url::Url) -> Result<(), Infallible> {
        self.status = 400;
        Ok(())
    }

    fn client_error(&mut self) -> Result<(), Infallible> {
        self.status = 400;
        Ok(())
    }

    fn unauthorized(&mut self, _: &str) -> Result<(), Infallible> {
        self.status = 401;
        Ok(())
    }

    fn body_text(&mut self, text: &str) -> Result<(), Infallible> {
        self.body = Some(text.to_owned());
        Ok(())
    }

    fn body_json(&mut self, data: &str) -> Result<(), Infallible> {
        self.body = Some(data.to_owned());
        Ok(())
    }
}

struct GhEndpoint {
    shared: Shared,
    registrar: GhRegistrar,
    issuer: GhIssuer,
    solicitor: SelfConsent,
}

impl Endpoint<OAuthRequest> for GhEndpoint {
    type Error = TokenError;

    fn registrar(&self) -> Option<&(dyn Registrar + Sync)> {
        Some(&self.registrar)
    }

    fn authorizer_mut(&mut self) -> Option<&mut (dyn Authorizer + Send)> {
        None
    }

    fn issuer_mut(&mut self) -> Option<&mut (dyn Issuer + Send)> {
        Some(&mut self.issuer)
    }

    fn owner_solicitor(&mut self) -> Option<&mut (dyn OwnerSolicitor<OAuthRequest> + Send)> {
        Some(&mut self.solicitor)
    }

    fn scopes(&mut self) -> Option<&mut dyn Scopes<OAuthRequest>> {
        None
    }

    fn response(
        &mut self,
        _: &mut OAuthRequest,
        kind: Template,
    ) -> Result<OAuthResponse, TokenError> {
        let status = match kind.status() {
            ResponseStatus::Ok => 200,
            ResponseStatus::Unauthorized => 401,
            ResponseStatus::BadRequest | ResponseStatus::Redirect => 400,
        };
        Ok(OAuthResponse { status, body: None })
    }

    fn error(&mut self, err: OAuthError) -> TokenError {
        self.shared.ctx().failure.take().unwrap_or(match err {
            OAuthError::PrimitiveError => TokenError::ServerError,
            _ => TokenError::InvalidRequest("the request was refused"),
        })
    }

    fn web_error(&mut self, _: Infallible) -> TokenError {
        TokenError::ServerError
    }
}

/// A successful token answer: the JSON body, and the policy's figures for the `RateLimit`
/// header fields when a policy applies.
#[derive(Debug)]
pub struct IssuedBody(pub String, pub Option<gatehouse_registry::limits::RateInfo>);

/// Run the client-credentials grant for a parsed request from `peer`.
pub async fn client_credentials(
    state: Arc<TokenState>,
    request: TokenRequest,
    peer: IpAddr,
) -> Result<IssuedBody, TokenError> {
    if matches!(request.auth, ClientAuth::Assertion { .. }) {
        return crate::assertion::client_credentials(state, request, peer).await;
    }
    let basic = request.auth.is_basic();
    let shared = Shared {
        state,
        ctx: Arc::new(Mutex::new(Ctx::default())),
        peer,
        basic,
        requested: request.scope.map(Arc::from),
        resources: Arc::from(request.resources),
    };
    let mut body: NormalizedParameter = NormalizedParameter::new();
    body.insert_or_poison(
        Cow::Borrowed("grant_type"),
        Cow::Borrowed("client_credentials"),
    );
    let auth = match &request.auth {
        ClientAuth::Basic { client_id, secret } => {
            let raw = format!("{client_id}:{}", secret.expose_secret());
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
        }
        ClientAuth::Post { client_id, secret } => {
            body.insert_or_poison(Cow::Borrowed("client_id"), Cow::Owned(client_id.clone()));
            body.insert_or_poison(
                Cow::Borrowed("client_secret"),
                Cow::Owned(secret.expose_secret().to_owned()),
            );
            None
        }
        ClientAuth::Assertion { .. } => return Err(TokenError::ServerError),
        ClientAuth::None => return Err(TokenError::InvalidClient { basic: false }),
    };
    let endpoint = GhEndpoint {
        registrar: GhRegistrar(shared.clone()),
        issuer: GhIssuer(shared.clone()),
        solicitor: SelfConsent,
        shared: shared.clone(),
    };
    let mut flow = ClientCredentialsFlow::prepare(endpoint)?;
    flow.allow_credentials_in_body(!basic);
    let response = flow.execute(OAuthRequest { body, auth }).await?;
    if let Some(failure) = shared.ctx().failure.take() {
        return Err(failure);
    }
    match (response.status, response.body) {
        (200, Some(body)) => Ok(IssuedBody(body, shared.ctx().rate.take())),
        (401, _) => Err(TokenError::InvalidClient { basic }),
        (400, Some(body)) if body.contains("unsupported_grant_type") => {
            Err(TokenError::UnsupportedGrantType)
        }
        (400, _) => Err(TokenError::InvalidRequest("the request was refused")),
        _ => Err(TokenError::ServerError),
    }
}
