//! Parsing a token request (RFC 6749 §4.4.2, §2.3.1, §3.2; RFC 8707 §2) into typed values,
//! before any credential is looked at.
//!
//! This runs for anyone who can reach the listener, so its work is bounded by the body size
//! alone and linear in it: at most [`MAX_PARAMETERS`] parameters are decoded (more is
//! `invalid_request`), repeats are found with a hash set, at most [`MAX_SCOPES`] scope tokens
//! (`invalid_scope`) and [`MAX_RESOURCES`] `resource`s (`invalid_request`) are read. A
//! 64 KiB body of any shape costs tens of microseconds (README, "Security and reliability").

use crate::error::TokenError;
use axum::http::HeaderValue;
use base64::Engine;
use gatehouse_registry::secret::SecretString;
use gatehouse_registry::types::ScopeName;
use std::collections::HashSet;

/// The grant types the endpoint knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantType {
    /// RFC 6749 §4.4.
    ClientCredentials,
    /// RFC 7523 §2.1: a consumer's JWT traded for an access token.
    JwtBearer,
}

/// RFC 7523 §2.1's `grant_type`.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

impl GrantType {
    /// Parse `grant_type`; anything else is `unsupported_grant_type`.
    pub fn parse(value: &str) -> Result<Self, TokenError> {
        match value {
            "client_credentials" => Ok(GrantType::ClientCredentials),
            JWT_BEARER_GRANT => Ok(GrantType::JwtBearer),
            _ => Err(TokenError::UnsupportedGrantType),
        }
    }
}

/// How the client authenticated.
#[derive(Debug)]
pub enum ClientAuth {
    /// `client_secret_basic` (RFC 6749 §2.3.1), id and secret form-decoded.
    Basic {
        /// Client id.
        client_id: String,
        /// Client secret.
        secret: SecretString,
    },
    /// `client_secret_post`.
    Post {
        /// Client id.
        client_id: String,
        /// Client secret.
        secret: SecretString,
    },
    /// No client authentication (allowed only with the JWT-bearer grant, RFC 7523 §3.1).
    None,
    /// `Authorization: Bearer` (an admin token, at introspection and revocation only).
    Bearer(SecretString),
    /// `private_key_jwt` / `client_secret_jwt` (RFC 7523 §2.2).
    Assertion {
        /// The `client_id` parameter, if sent (must equal the assertion's `iss`).
        client_id: Option<String>,
        /// The signed JWT.
        assertion: SecretString,
    },
}

/// RFC 7523 §2.2's `client_assertion_type`.
pub const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

impl ClientAuth {
    /// The presented client id.
    pub fn client_id(&self) -> &str {
        match self {
            ClientAuth::Basic { client_id, .. } | ClientAuth::Post { client_id, .. } => client_id,
            ClientAuth::Assertion { client_id, .. } => client_id.as_deref().unwrap_or(""),
            ClientAuth::None | ClientAuth::Bearer(_) => "",
        }
    }

    /// The presented secret (the assertion, for RFC 7523).
    pub fn secret(&self) -> Option<&SecretString> {
        match self {
            ClientAuth::Basic { secret, .. } | ClientAuth::Post { secret, .. } => Some(secret),
            ClientAuth::Assertion { assertion, .. } | ClientAuth::Bearer(assertion) => {
                Some(assertion)
            }
            ClientAuth::None => None,
        }
    }

    /// Whether HTTP Basic was used (errors then carry `WWW-Authenticate: Basic`).
    pub fn is_basic(&self) -> bool {
        matches!(self, ClientAuth::Basic { .. })
    }
}

/// A syntactically valid token request.
#[derive(Debug)]
pub struct TokenRequest {
    /// The grant.
    pub grant_type: GrantType,
    /// Requested scopes (`None` when absent: the profile's default).
    pub scope: Option<Vec<String>>,
    /// Requested resources (RFC 8707), possibly several.
    pub resources: Vec<String>,
    /// Client authentication.
    pub auth: ClientAuth,
    /// The JWT-bearer grant's `assertion` (RFC 7523 §2.1).
    pub assertion: Option<SecretString>,
}

/// Most parameters one request may carry, with a value or without, known or not. The largest
/// legitimate token request has about seven plus its `resource`s.
pub const MAX_PARAMETERS: usize = 64;
/// Most scope tokens in one `scope` (RFC 6749 §3.3); more is `invalid_scope`.
pub const MAX_SCOPES: usize = 64;
/// Most `resource` parameters in one token request (RFC 8707 §2); more is `invalid_request`.
pub const MAX_RESOURCES: usize = 16;

/// Parse an `application/x-www-form-urlencoded` body strictly: parameters without a value
/// are omitted (RFC 6749 §3.1), none may repeat (§3.2) except those in `repeatable`, and
/// there are at most [`MAX_PARAMETERS`] (decoding stops at the first one too many).
pub fn parse_form(
    content_type: Option<&HeaderValue>,
    body: &[u8],
    repeatable: &[&str],
) -> Result<Vec<(String, String)>, TokenError> {
    let form = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if !form {
        return Err(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, (key, value)) in form_urlencoded::parse(body).enumerate() {
        if i >= MAX_PARAMETERS {
            return Err(TokenError::InvalidRequest("too many parameters"));
        }
        if value.is_empty() {
            continue;
        }
        if !repeatable.contains(&key.as_ref()) && !seen.insert(key.clone()) {
            return Err(TokenError::InvalidRequest("a parameter is repeated"));
        }
        out.push((key.into_owned(), value.into_owned()));
    }
    Ok(out)
}

/// Parse a token request from its content type, `Authorization` header and body.
pub fn parse(
    content_type: Option<&HeaderValue>,
    authorization: Option<&HeaderValue>,
    body: &[u8],
) -> Result<TokenRequest, TokenError> {
    // RFC 8707 §2 allows several `resource`s.
    let params = parse_form(content_type, body, &["resource"])?;
    let mut grant_type = None;
    let mut scope = None;
    let mut resources = Vec::new();
    let mut grant_assertion = None;
    for (key, value) in &params {
        match key.as_str() {
            "grant_type" => grant_type = Some(value.as_str()),
            "scope" => scope = Some(value.as_str()),
            "resource" => resources.push(value.clone()),
            "assertion" => grant_assertion = Some(SecretString::new(value.clone())),
            _ => {}
        }
    }
    let grant_type =
        GrantType::parse(grant_type.ok_or(TokenError::InvalidRequest("grant_type is missing"))?)?;
    let auth = client_auth(authorization, &params)?;

    let scope = scope.map(parse_scope).transpose()?;
    if resources.len() > MAX_RESOURCES {
        return Err(TokenError::InvalidRequest("at most 16 resource parameters"));
    }
    for r in &resources {
        // RFC 8707 §2: an absolute URI without a fragment.
        if gatehouse_registry::types::Audience::parse(r).is_err() {
            return Err(TokenError::InvalidTarget);
        }
    }

    let auth = match auth {
        ClientAuth::Bearer(_) => return Err(TokenError::InvalidClient),
        ClientAuth::None if grant_type != GrantType::JwtBearer => {
            return Err(TokenError::InvalidClient);
        }
        auth => auth,
    };
    if grant_type == GrantType::JwtBearer && grant_assertion.is_none() {
        return Err(TokenError::InvalidRequest("assertion is missing"));
    }
    Ok(TokenRequest {
        grant_type,
        scope,
        resources,
        auth,
        assertion: grant_assertion,
    })
}

/// RFC 6749 §3.3's space-delimited scope-tokens, each valid, in order, repeats dropped: at
/// most [`MAX_SCOPES`] tokens are read (more is `invalid_scope`), in linear time.
fn parse_scope(scope: &str) -> Result<Vec<String>, TokenError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (i, token) in scope.split(' ').enumerate() {
        if i >= MAX_SCOPES {
            return Err(TokenError::InvalidScope);
        }
        let parsed = ScopeName::parse_any(token).map_err(|_| TokenError::InvalidScope)?;
        if seen.insert(token) {
            out.push(parsed.as_str().to_owned());
        }
    }
    Ok(out)
}

/// The client authentication of a request to the token, introspection or revocation
/// endpoint, from its `Authorization` header and form parameters: exactly one method
/// (RFC 6749 §2.3), or none.
pub fn client_auth(
    authorization: Option<&HeaderValue>,
    params: &[(String, String)],
) -> Result<ClientAuth, TokenError> {
    let form = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let body_id = form("client_id");
    let body_secret = form("client_secret");
    let assertion_type = form("client_assertion_type");
    let assertion_value = form("client_assertion");
    let assertion = assertion_type.is_some() || assertion_value.is_some();
    if let Some(header) = authorization {
        if body_secret.is_some() || assertion {
            return Err(TokenError::InvalidRequest(
                "more than one client authentication method",
            ));
        }
        let text = header.to_str().map_err(|_| TokenError::InvalidClient)?;
        if let Some(token) = text
            .get(..7)
            .filter(|s| s.eq_ignore_ascii_case("bearer "))
            .and_then(|_| text.get(7..))
        {
            return Ok(ClientAuth::Bearer(SecretString::new(
                token.trim().to_owned(),
            )));
        }
        let (client_id, secret) = parse_basic(header)?;
        if body_id.is_some_and(|id| id != client_id) {
            return Err(TokenError::InvalidRequest(
                "client_id does not match the Authorization header",
            ));
        }
        return Ok(ClientAuth::Basic { client_id, secret });
    }
    Ok(match (body_id, body_secret) {
        (_, Some(_)) if assertion => {
            return Err(TokenError::InvalidRequest(
                "more than one client authentication method",
            ));
        }
        (Some(client_id), Some(secret)) => ClientAuth::Post {
            client_id: client_id.to_owned(),
            secret: SecretString::new(secret.to_owned()),
        },
        (None, Some(_)) => return Err(TokenError::InvalidClient),
        (client_id, None) if assertion => match (assertion_type, assertion_value) {
            (Some(JWT_BEARER_ASSERTION), Some(assertion)) => ClientAuth::Assertion {
                client_id: client_id.map(str::to_owned),
                assertion: SecretString::new(assertion.to_owned()),
            },
            (Some(JWT_BEARER_ASSERTION), None) => {
                return Err(TokenError::InvalidRequest("client_assertion is missing"));
            }
            (None, _) => {
                return Err(TokenError::InvalidRequest(
                    "client_assertion_type is missing",
                ));
            }
            (Some(_), _) => {
                return Err(TokenError::InvalidRequest(
                    "unsupported client_assertion_type",
                ));
            }
        },
        _ => ClientAuth::None,
    })
}

/// `Authorization: Basic` with RFC 6749 §2.3.1's form-encoding of id and secret.
pub(crate) fn parse_basic(header: &HeaderValue) -> Result<(String, SecretString), TokenError> {
    let bad = TokenError::InvalidClient;
    let text = header.to_str().map_err(|_| bad.clone())?;
    let (scheme, rest) = text.split_once(' ').ok_or_else(|| bad.clone())?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .map_err(|_| bad.clone())?;
    let decoded = String::from_utf8(decoded).map_err(|_| bad.clone())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(|| bad.clone())?;
    let decode = |s: &str| -> String {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let id = decode(id);
    let secret = SecretString::new(decode(secret));
    if id.is_empty() {
        return Err(bad);
    }
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> HeaderValue {
        HeaderValue::from_static("application/x-www-form-urlencoded")
    }

    fn basic(id: &str, secret: &str) -> HeaderValue {
        let raw = format!("{id}:{secret}");
        HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
        .unwrap()
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let r = parse(
            Some(&form()),
            Some(&basic("gco_a%2Bb", "s%3Ae+t")),
            b"grant_type=client_credentials",
        )
        .unwrap();
        assert_eq!(r.auth.client_id(), "gco_a+b");
        assert_eq!(r.auth.secret().map(|s| s.expose_secret()), Some("s:e t"));
        assert!(r.auth.is_basic());
    }

    #[test]
    fn rfc_errors() {
        let e = |body: &[u8], auth: Option<HeaderValue>| {
            parse(Some(&form()), auth.as_ref(), body).err()
        };
        assert_eq!(
            e(
                b"grant_type=client_credentials&grant_type=client_credentials",
                Some(basic("a", "b"))
            )
            .map(|e| e.code()),
            Some("invalid_request")
        );
        assert_eq!(
            e(b"scope=x", Some(basic("a", "b"))).map(|e| e.code()),
            Some("invalid_request")
        );
        assert_eq!(
            e(b"grant_type=password", Some(basic("a", "b"))).map(|e| e.code()),
            Some("unsupported_grant_type")
        );
        assert_eq!(
            e(
                b"grant_type=client_credentials&client_secret=x",
                Some(basic("a", "b"))
            )
            .map(|e| e.code()),
            Some("invalid_request")
        );
        assert_eq!(
            e(b"grant_type=client_credentials", None),
            Some(TokenError::InvalidClient)
        );
        assert_eq!(
            e(
                b"grant_type=client_credentials&scope=a%22b",
                Some(basic("a", "b"))
            ),
            Some(TokenError::InvalidScope)
        );
        assert_eq!(
            e(
                b"grant_type=client_credentials&resource=relative",
                Some(basic("a", "b"))
            ),
            Some(TokenError::InvalidTarget)
        );
        assert!(parse(None, None, b"grant_type=client_credentials").is_err());
    }

    #[test]
    fn post_and_resources() {
        let r = parse(
            Some(&form()),
            None,
            b"grant_type=client_credentials&client_id=gco_x&client_secret=s&resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb&scope=a+b+a&empty=",
        )
        .unwrap();
        assert!(!r.auth.is_basic());
        assert_eq!(r.resources, vec!["https://a", "https://b"]);
        assert_eq!(r.scope, Some(vec!["a".to_owned(), "b".to_owned()]));
    }

    fn with(extra: &str) -> Result<TokenRequest, TokenError> {
        let body = format!("grant_type=client_credentials&client_id=gco_x&client_secret=s{extra}");
        parse(Some(&form()), None, body.as_bytes())
    }

    /// 64 scope tokens are read (repeats dropped), 65 are `invalid_scope`; 16 resources are
    /// read, 17 are `invalid_request`; 64 parameters are read, 65 are `invalid_request`,
    /// valueless ones included.
    #[test]
    fn scopes_resources_and_parameters_are_bounded() {
        let scopes = |n: usize| (0..n).map(|i| format!("s{i}")).collect::<Vec<_>>();
        let r = with(&format!("&scope={}+s0", scopes(63).join("+"))).unwrap();
        assert_eq!(r.scope.map(|s| s.len()), Some(63));
        assert_eq!(
            with(&format!("&scope={}", scopes(65).join("+"))).err(),
            Some(TokenError::InvalidScope)
        );
        let resources = |n: usize| {
            (0..n)
                .map(|i| format!("&resource=https%3A%2F%2Fapi{i}.example"))
                .collect::<String>()
        };
        assert_eq!(with(&resources(16)).map(|r| r.resources.len()), Ok(16));
        assert_eq!(
            with(&resources(17)).err().map(|e| e.code()),
            Some("invalid_request")
        );
        let params = |n: usize| (0..n).map(|i| format!("&p{i}=1")).collect::<String>();
        assert!(with(&params(MAX_PARAMETERS - 3)).is_ok());
        assert_eq!(
            with(&params(MAX_PARAMETERS - 2)).err(),
            Some(TokenError::InvalidRequest("too many parameters"))
        );
        assert_eq!(
            with(&"&p".repeat(MAX_PARAMETERS)).err(),
            Some(TokenError::InvalidRequest("too many parameters"))
        );
    }

    /// The hostile body of issue 12 (16,000 distinct three-letter scopes in 64 KiB, a client
    /// id that does not exist) was refused after 0.45 s of quadratic de-duplication; every
    /// 64 KiB shape is now refused (or parsed) in well under a millisecond. (Debug builds are
    /// slower: the bound here is loose; the release figures are in the criterion bench.)
    #[test]
    fn hostile_bodies_are_cheap() {
        let letters = |i: usize| {
            let l = |n: usize| char::from(b'a' + u8::try_from(n % 26).unwrap());
            [l(i / 676), l(i / 26), l(i)].iter().collect::<String>()
        };
        let fill = |head: &str, item: &dyn Fn(usize) -> String| {
            let mut body = head.to_owned();
            let mut i = 0;
            while body.len() < 64 * 1024 - 16 {
                body.push_str(&item(i));
                i += 1;
            }
            body
        };
        let head = "grant_type=client_credentials&client_id=gco_nobody&client_secret=wrong";
        let bodies = [
            fill(&format!("{head}&scope=aaa"), &|i| {
                format!("+{}", letters(i + 1))
            }),
            fill(head, &|i| format!("&resource=https%3A%2F%2Fapi{i}.example")),
            fill(head, &|i| format!("&p{i}=1")),
            fill(head, &|_| "&p".to_owned()),
            fill(head, &|_| "&".to_owned()),
            fill(&format!("{head}&scope="), &|_| "%61".to_owned()),
        ];
        for body in &bodies {
            let started = std::time::Instant::now();
            let _ = std::hint::black_box(parse(Some(&form()), None, body.as_bytes()));
            let took = started.elapsed();
            assert!(
                took < std::time::Duration::from_millis(20),
                "{took:?} for {}…",
                &body[..120]
            );
        }
    }
}
