//! THE compact-JWS verifier of Gatehouse (RFC 7515 §7.1 compact serialization, RFC 7519
//! claims, RFC 8725 best current practice).
//!
//! Every JWT that reaches Gatehouse goes through here and nowhere else: our own access tokens
//! (introspection, revocation, the admin API, the guard's local mode), client assertions and
//! JWT-bearer grant assertions (RFC 7523), and consumers' JWTs presented to resource servers.
//! The steps are typed so none can be skipped:
//!
//! 1. [`decode`] splits and parses the token (bounded length; `alg` known and never `none`;
//!    `crit` refused, RFC 8725 §3.1 and RFC 7515 §4.1.11). Its claims are *unverified*: they
//!    may only be used to find which keys to try (e.g. which profile a consumer JWT names).
//! 2. [`Jws::check_signature`] tries the candidate [`VerifyKey`]s. A key is pinned to exactly
//!    one algorithm (RFC 8725 §3.1: no algorithm confusion), HMAC tags are compared in
//!    constant time, and `jku`/`x5u`/`jwk` headers are never followed: keys come only from
//!    the caller's configuration.
//! 3. [`Signed::validate`] applies [`Rules`] built for the token's purpose, so no purpose can
//!    borrow another's audience rule (the hole that let a JWT sent to a resource server be
//!    traded at the token endpoint).
//!
//! One leeway constant ([`LEEWAY_SECS`]) serves every purpose that accepts others' clocks;
//! our own tokens get none (they are inactive the second they expire).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::Jwk;
use josekit::jws::{
    ES256, ES384, ES512, EdDSA, JwsVerifier, PS256, PS384, PS512, RS256, RS384, RS512,
};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Clock skew tolerated on `exp`, `nbf` and `iat` of JWTs made by other parties' clocks
/// (client assertions, consumers' JWTs). Never applied to our own access tokens.
pub const LEEWAY_SECS: i64 = 60;
/// Longest compact JWS looked at (RFC 8725 §3.x spirit: bound the work per request).
pub const MAX_TOKEN_LEN: usize = 16 * 1024;
/// How far ahead an assertion addressed to Gatehouse may expire (client assertions and the
/// JWT-bearer grant; authlib signs `exp = iat + 3600`).
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3600;
/// Longest `kid` accepted.
const MAX_KID_LEN: usize = 256;
/// Longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

/// A JWS algorithm (RFC 7518 §3.1, RFC 8037 §3.1). `none` is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    /// HMAC with SHA-256.
    Hs256,
    /// HMAC with SHA-384.
    Hs384,
    /// HMAC with SHA-512.
    Hs512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// ECDSA P-521 with SHA-512.
    Es512,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// Every algorithm, in a stable order.
    pub const ALL: [Alg; 13] = [
        Alg::Hs256,
        Alg::Hs384,
        Alg::Hs512,
        Alg::Rs256,
        Alg::Rs384,
        Alg::Rs512,
        Alg::Ps256,
        Alg::Ps384,
        Alg::Ps512,
        Alg::Es256,
        Alg::Es384,
        Alg::Es512,
        Alg::EdDsa,
    ];

    /// Parse a JWA name, exactly and case-sensitively as RFC 7518 spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }

    /// The JWA name.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Hs256 => "HS256",
            Alg::Hs384 => "HS384",
            Alg::Hs512 => "HS512",
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// The asymmetric algorithms a JWK of this key type (`kty`) can verify; none for `oct`
    /// (an HMAC key from a published document would be RFC 8725 §2.1's confusion) or anything
    /// else.
    pub fn for_key_type(kty: &str) -> &'static [Alg] {
        match kty {
            "RSA" => &[
                Alg::Rs256,
                Alg::Rs384,
                Alg::Rs512,
                Alg::Ps256,
                Alg::Ps384,
                Alg::Ps512,
            ],
            "EC" => &[Alg::Es256, Alg::Es384, Alg::Es512],
            "OKP" => &[Alg::EdDsa],
            _ => &[],
        }
    }

    /// A symmetric (HMAC) algorithm.
    pub fn is_hmac(self) -> bool {
        matches!(self, Alg::Hs256 | Alg::Hs384 | Alg::Hs512)
    }

    /// The shortest HMAC secret this algorithm may use: the hash's output size (RFC 7518
    /// §3.2: "a key of the same size as the hash output or larger MUST be used"). 0 for
    /// asymmetric algorithms.
    pub fn min_secret_len(self) -> usize {
        match self {
            Alg::Hs256 => 32,
            Alg::Hs384 => 48,
            Alg::Hs512 => 64,
            _ => 0,
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Alg::Hs384 => MessageDigest::sha384(),
            Alg::Hs512 => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        }
    }
}

impl std::fmt::Display for Alg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a JWT was refused. For logs, metrics and the mapping to each endpoint's answer; never
/// shown in detail to the presenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long")]
    TooLong,
    /// Not three base64url parts with JSON objects for header and payload.
    #[error("not a well-formed compact JWS")]
    Malformed,
    /// `alg` missing or `none` (RFC 8725 §3.1).
    #[error("unsigned token (alg none or missing)")]
    Unsigned,
    /// An `alg` this verifier does not know.
    #[error("unsupported alg")]
    UnsupportedAlg,
    /// A `crit` header: no extension is understood (RFC 7515 §4.1.11).
    #[error("crit header not understood")]
    Crit,
    /// `typ` is not what the purpose demands (RFC 9068 §4, RFC 8725 §3.11).
    #[error("wrong typ")]
    Typ,
    /// No configured key matches the `kid` (or no key at all).
    #[error("unknown key")]
    UnknownKey,
    /// The key named is pinned to another algorithm (RFC 8725 §3.1).
    #[error("alg does not match the key")]
    AlgMismatch,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `iss` missing or not accepted.
    #[error("issuer not accepted")]
    Issuer,
    /// `aud` missing or not accepted for this purpose.
    #[error("audience not accepted")]
    Audience,
    /// No `exp` (every purpose requires one), or a time claim that is not a NumericDate.
    #[error("exp missing or time claim malformed")]
    NoExp,
    /// Past `exp`.
    #[error("expired")]
    Expired,
    /// Before `nbf` or `iat`.
    #[error("not yet valid")]
    NotYetValid,
    /// `exp` further ahead than the purpose allows.
    #[error("lifetime too long")]
    LifetimeTooLong,
    /// No usable `jti` where the purpose requires one.
    #[error("jti missing")]
    NoJti,
    /// A required claim is missing or has another value.
    #[error("required claim missing")]
    RequiredClaim,
    /// The keys could not be obtained (remote key set never fetched and unreachable).
    #[error("keys unavailable")]
    Unavailable,
}

/// The protected header members the verifier reads. Unknown members are ignored; `jku`,
/// `x5u`, `jwk` are never followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The algorithm.
    pub alg: Alg,
    /// The key id hint.
    pub kid: Option<String>,
    /// The media type.
    pub typ: Option<String>,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    kid: Option<String>,
    typ: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// A decoded but not yet verified token.
#[derive(Debug)]
pub struct Jws<'t> {
    signing_input: &'t str,
    header: Header,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

/// A token whose signature verified with a configured key; its claims are not validated yet.
#[derive(Debug)]
pub struct Signed {
    header: Header,
    claims: Map<String, Value>,
}

/// A token that passed every check of its [`Rules`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The protected header.
    pub header: Header,
    /// The claims.
    pub claims: Map<String, Value>,
    /// `exp`, as an integer NumericDate (floored).
    pub exp: i64,
}

impl Verified {
    /// A string claim.
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// Whether `aud` (a string or an array of strings) contains `audience`.
    pub fn has_audience(&self, audience: &str) -> bool {
        audiences(&self.claims).any(|a| a == audience)
    }
}

/// The strings of an `aud` claim (RFC 7519 §4.1.3: a string or an array of strings).
pub fn audiences(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let (one, many) = match claims.get("aud") {
        Some(Value::String(a)) => (Some(a.as_str()), None),
        Some(Value::Array(list)) => (None, Some(list.iter().filter_map(Value::as_str))),
        _ => (None, None),
    };
    one.into_iter().chain(many.into_iter().flatten())
}

/// Split and parse a compact JWS. The only place in Gatehouse that does.
pub fn decode(token: &str) -> Result<Jws<'_>, Rejection> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::TooLong);
    }
    let mut parts = token.splitn(4, '.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::Malformed);
    };
    let header_bytes = URL_SAFE_NO_PAD
        .decode(h)
        .map_err(|_| Rejection::Malformed)?;
    let raw: RawHeader = serde_json::from_slice(&header_bytes).map_err(|_| Rejection::Malformed)?;
    if raw.crit.is_some() {
        return Err(Rejection::Crit);
    }
    let alg = match raw.alg.as_deref() {
        None => return Err(Rejection::Unsigned),
        Some(a) if a.eq_ignore_ascii_case("none") => return Err(Rejection::Unsigned),
        Some(a) => Alg::parse(a).ok_or(Rejection::UnsupportedAlg)?,
    };
    if raw.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err(Rejection::Malformed);
    }
    if s.is_empty() {
        return Err(Rejection::Unsigned);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| Rejection::Malformed)?;
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| Rejection::Malformed)?;
    let claims: Map<String, Value> =
        serde_json::from_slice(&payload).map_err(|_| Rejection::Malformed)?;
    let signing_input = token
        .get(..h.len() + 1 + p.len())
        .ok_or(Rejection::Malformed)?;
    Ok(Jws {
        signing_input,
        header: Header {
            alg,
            kid: raw.kid,
            typ: raw.typ,
        },
        claims,
        signature,
    })
}

impl Jws<'_> {
    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims, NOT verified: only for choosing which keys to try (which profile a
    /// consumer's JWT names). Never decide anything else from them.
    pub fn unverified_claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Verify the signature with the first matching key of `keys`: a key matches when its
    /// `kid` equals the header's (or either has none) and it is pinned to the header's `alg`.
    pub fn check_signature<'k>(
        self,
        keys: impl IntoIterator<Item = &'k VerifyKey>,
    ) -> Result<Signed, Rejection> {
        self.signature_matches(keys)?;
        Ok(self.into_signed())
    }

    pub(crate) fn into_signed(self) -> Signed {
        Signed {
            header: self.header,
            claims: self.claims,
        }
    }

    pub(crate) fn signature_matches<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k VerifyKey>,
    ) -> Result<(), Rejection> {
        let kid = self.header.kid.as_deref();
        let mut named = false;
        let mut pinned = false;
        for key in keys {
            if let (Some(want), Some(have)) = (kid, key.kid.as_deref())
                && want != have
            {
                continue;
            }
            named = true;
            if key.alg != self.header.alg {
                continue;
            }
            pinned = true;
            if key.verifies(self.signing_input.as_bytes(), &self.signature) {
                return Ok(());
            }
        }
        Err(if !named {
            Rejection::UnknownKey
        } else if !pinned {
            Rejection::AlgMismatch
        } else {
            Rejection::BadSignature
        })
    }
}

/// Decode, check the signature against `keys`, and validate with `rules`.
pub fn verify(
    token: &str,
    keys: &[VerifyKey],
    rules: &Rules<'_>,
    now: i64,
) -> Result<Verified, Rejection> {
    decode(token)?.check_signature(keys)?.validate(rules, now)
}

/// A NumericDate (RFC 7519 §2): integer or not, floored; anything else is malformed.
fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    // Within ±2^53: exact in f64 and far beyond any real date.
    (f.is_finite() && f.abs() < 9.007_199_254_740_992e15).then(|| f.floor() as i64)
}

/// What the `typ` header must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypRule {
    /// Anything, or absent.
    Any,
    /// `at+jwt` or `application/at+jwt`, case-insensitively (RFC 9068 §4, RFC 7515 §4.1.9).
    AccessToken,
}

/// Which `iss` is accepted.
#[derive(Debug, Clone, Copy)]
pub enum IssuerRule<'a> {
    /// Any, or absent.
    Any,
    /// Exactly this string.
    Exact(&'a str),
    /// One of these; an empty list accepts any (and an absent `iss`).
    OneOf(&'a [String]),
}

/// Which `aud` is accepted.
#[derive(Debug, Clone, Copy)]
pub enum AudienceRule<'a> {
    /// Not checked here (the caller decides, e.g. per calling collection).
    Any,
    /// `aud` contains this audience.
    Contains(&'a str),
    /// `aud` contains at least one of these (a consumer's allowed audiences).
    OneOf(&'a [String]),
    /// RFC 7523 §3 item 3: `aud` is ONE string identifying Gatehouse, the issuer or the token
    /// endpoint URL; arrays are refused (no audience injection).
    Gatehouse {
        /// Our issuer.
        issuer: &'a str,
        /// Our token endpoint URL.
        token_endpoint: &'a str,
    },
}

/// A claim a consumer's profile requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequirement {
    /// Claim name.
    pub name: String,
    /// Required string value; `None`: present with any value.
    pub value: Option<String>,
}

/// The claim checks of one purpose. Build them with the purpose constructors.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    typ: TypRule,
    issuer: IssuerRule<'a>,
    audience: AudienceRule<'a>,
    leeway: i64,
    max_lifetime: Option<i64>,
    require_jti: bool,
    require_kid: bool,
    required_claims: &'a [ClaimRequirement],
}

impl<'a> Rules<'a> {
    /// Our own access tokens (RFC 9068): `typ` `at+jwt`, `iss` ours, a `kid` (from our key
    /// set), and no leeway on our own clock. The audience is the caller's to check (or set it
    /// with [`Rules::with_audience`]).
    pub fn access_token(issuer: &'a str) -> Self {
        Self {
            typ: TypRule::AccessToken,
            issuer: IssuerRule::Exact(issuer),
            audience: AudienceRule::Any,
            leeway: 0,
            max_lifetime: None,
            require_jti: false,
            require_kid: true,
            required_claims: &[],
        }
    }

    /// Our access tokens as a resource server that verifies locally sees them: like
    /// [`Rules::access_token`], but its clock is not ours, so [`LEEWAY_SECS`] applies.
    pub fn access_token_elsewhere(issuer: &'a str, audience: &'a str) -> Self {
        Self {
            leeway: LEEWAY_SECS,
            ..Self::access_token(issuer).with_audience(audience)
        }
    }

    /// Assertions addressed to Gatehouse: client assertions (`private_key_jwt`,
    /// `client_secret_jwt`) and JWT-bearer grant assertions (RFC 7523 §3): `aud` one string
    /// equal to the issuer or the token endpoint, `exp` required and at most
    /// [`MAX_ASSERTION_LIFETIME_SECS`] ahead, a `jti` (the caller remembers it until `exp`).
    pub fn assertion(issuer: &'a str, token_endpoint: &'a str) -> Self {
        Self {
            typ: TypRule::Any,
            issuer: IssuerRule::Any,
            audience: AudienceRule::Gatehouse {
                issuer,
                token_endpoint,
            },
            leeway: LEEWAY_SECS,
            max_lifetime: Some(MAX_ASSERTION_LIFETIME_SECS),
            require_jti: true,
            require_kid: false,
            required_claims: &[],
        }
    }

    /// Consumers' JWTs presented to resource servers: `aud` meets the profile's
    /// `allowed_audiences`, `iss` its `allowed_issuers` (empty: any), its required claims.
    pub fn consumer(
        allowed_audiences: &'a [String],
        allowed_issuers: &'a [String],
        required_claims: &'a [ClaimRequirement],
    ) -> Self {
        Self {
            typ: TypRule::Any,
            issuer: IssuerRule::OneOf(allowed_issuers),
            audience: AudienceRule::OneOf(allowed_audiences),
            leeway: LEEWAY_SECS,
            max_lifetime: None,
            require_jti: false,
            require_kid: false,
            required_claims,
        }
    }

    /// Also require `aud` to contain `audience`.
    pub fn with_audience(self, audience: &'a str) -> Self {
        Self {
            audience: AudienceRule::Contains(audience),
            ..self
        }
    }

    /// Also require an issuer rule (assertions of a consumer's profile: its issuers).
    pub fn with_issuers(self, issuers: &'a [String]) -> Self {
        Self {
            issuer: IssuerRule::OneOf(issuers),
            ..self
        }
    }

    /// Also require claims (assertions of a consumer's profile: its required claims).
    pub fn with_required_claims(self, required_claims: &'a [ClaimRequirement]) -> Self {
        Self {
            required_claims,
            ..self
        }
    }
}

impl Signed {
    /// The protected header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The claims (signed, but not yet validated against any rules).
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// Apply `rules` at `now` (unix seconds).
    pub fn validate(self, rules: &Rules<'_>, now: i64) -> Result<Verified, Rejection> {
        let claims = &self.claims;
        if rules.typ == TypRule::AccessToken {
            let typ = self.header.typ.as_deref().unwrap_or("");
            let typ = if typ.len() > 12 && typ[..12].eq_ignore_ascii_case("application/") {
                &typ[12..]
            } else {
                typ
            };
            if !typ.eq_ignore_ascii_case("at+jwt") {
                return Err(Rejection::Typ);
            }
        }
        if rules.require_kid && self.header.kid.is_none() {
            return Err(Rejection::UnknownKey);
        }
        let iss = claims.get("iss").and_then(Value::as_str);
        let issuer_ok = match rules.issuer {
            IssuerRule::Any => true,
            IssuerRule::Exact(want) => iss == Some(want),
            IssuerRule::OneOf(list) => {
                list.is_empty() || iss.is_some_and(|i| list.iter().any(|a| a == i))
            }
        };
        if !issuer_ok {
            return Err(Rejection::Issuer);
        }
        let audience_ok = match rules.audience {
            AudienceRule::Any => true,
            AudienceRule::Contains(want) => audiences(claims).any(|a| a == want),
            AudienceRule::OneOf(list) => audiences(claims).any(|a| list.iter().any(|x| x == a)),
            AudienceRule::Gatehouse {
                issuer,
                token_endpoint,
            } => {
                matches!(claims.get("aud"), Some(Value::String(a)) if a == issuer || a == token_endpoint)
            }
        };
        if !audience_ok {
            return Err(Rejection::Audience);
        }
        let exp = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(Rejection::NoExp)?;
        // RFC 7519 §4.1.4: the current time MUST be before `exp`.
        if now >= exp.saturating_add(rules.leeway) {
            return Err(Rejection::Expired);
        }
        for name in ["nbf", "iat"] {
            if let Some(v) = claims.get(name) {
                let t = numeric_date(v).ok_or(Rejection::NoExp)?;
                if t.saturating_sub(rules.leeway) > now {
                    return Err(Rejection::NotYetValid);
                }
            }
        }
        if let Some(max) = rules.max_lifetime
            && exp.saturating_sub(now) > max.saturating_add(rules.leeway)
        {
            return Err(Rejection::LifetimeTooLong);
        }
        if rules.require_jti
            && !claims
                .get("jti")
                .and_then(Value::as_str)
                .is_some_and(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        {
            return Err(Rejection::NoJti);
        }
        for required in rules.required_claims {
            let ok = match (claims.get(&required.name), &required.value) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(v), Some(want)) => v.as_str() == Some(want.as_str()),
            };
            if !ok {
                return Err(Rejection::RequiredClaim);
            }
        }
        Ok(Verified {
            header: self.header,
            claims: self.claims,
            exp,
        })
    }
}

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm does not fit the key material (HMAC with a public key, or the reverse).
    #[error("{0} does not fit this kind of key")]
    AlgMismatch(Alg),
    /// An HMAC secret shorter than the algorithm's hash output (RFC 7518 §3.2).
    #[error("{alg} needs a secret of at least {min} bytes")]
    ShortSecret {
        /// The algorithm.
        alg: Alg,
        /// Its minimum.
        min: usize,
    },
    /// The key material does not parse.
    #[error("unusable key: {0}")]
    Unusable(String),
}

enum Material {
    /// The HMAC key, parsed once.
    Hmac(PKey<Private>),
    /// A public-key verifier, parsed once.
    Public(Box<dyn JwsVerifier>),
}

/// One verification key, pinned to exactly one algorithm (RFC 8725 §3.1), with an optional
/// `kid`. Built once (at load), used by every request: no per-request key parsing.
pub struct VerifyKey {
    kid: Option<String>,
    alg: Alg,
    /// The algorithm was declared with the key (a JWK's `alg`), not inferred from its type.
    declared: bool,
    material: Material,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn unusable(e: impl std::fmt::Display) -> KeyError {
    KeyError::Unusable(e.to_string())
}

impl VerifyKey {
    /// An HMAC key: `alg` must be HS256/384/512 and `secret` at least as long as its hash.
    pub fn hmac(alg: Alg, secret: &[u8]) -> Result<Self, KeyError> {
        if !alg.is_hmac() {
            return Err(KeyError::AlgMismatch(alg));
        }
        if secret.len() < alg.min_secret_len() {
            return Err(KeyError::ShortSecret {
                alg,
                min: alg.min_secret_len(),
            });
        }
        Ok(Self {
            kid: None,
            alg,
            declared: true,
            material: Material::Hmac(PKey::hmac(secret).map_err(unusable)?),
        })
    }

    /// A public key from SPKI PEM (`-----BEGIN PUBLIC KEY-----`), for one asymmetric `alg`.
    pub fn public_pem(alg: Alg, pem: &[u8]) -> Result<Self, KeyError> {
        // Through DER: josekit's PSS verifiers would want an RSASSA-PSS key from PEM, while
        // the SPKI DER of an ordinary RSA key serves RS* and PS* alike.
        let der = PKey::public_key_from_pem(pem)
            .and_then(|k| k.public_key_to_der())
            .map_err(unusable)?;
        let verifier: Box<dyn JwsVerifier> = match alg {
            Alg::Rs256 => Box::new(RS256.verifier_from_der(&der).map_err(unusable)?),
            Alg::Rs384 => Box::new(RS384.verifier_from_der(&der).map_err(unusable)?),
            Alg::Rs512 => Box::new(RS512.verifier_from_der(&der).map_err(unusable)?),
            Alg::Ps256 => Box::new(PS256.verifier_from_der(&der).map_err(unusable)?),
            Alg::Ps384 => Box::new(PS384.verifier_from_der(&der).map_err(unusable)?),
            Alg::Ps512 => Box::new(PS512.verifier_from_der(&der).map_err(unusable)?),
            Alg::Es256 => Box::new(ES256.verifier_from_der(&der).map_err(unusable)?),
            Alg::Es384 => Box::new(ES384.verifier_from_der(&der).map_err(unusable)?),
            Alg::Es512 => Box::new(ES512.verifier_from_der(&der).map_err(unusable)?),
            Alg::EdDsa => Box::new(EdDSA.verifier_from_der(&der).map_err(unusable)?),
            hmac => return Err(KeyError::AlgMismatch(hmac)),
        };
        Ok(Self {
            kid: None,
            alg,
            declared: true,
            material: Material::Public(verifier),
        })
    }

    /// A public JWK for one asymmetric `alg`; `declared` says whether the JWK itself named
    /// that algorithm. `oct` keys are refused (an HMAC key from a published document would be
    /// the HS-with-public-key confusion of RFC 8725 §2.1).
    pub fn public_jwk(alg: Alg, jwk: &Jwk, declared: bool) -> Result<Self, KeyError> {
        if !Alg::for_key_type(jwk.key_type()).contains(&alg) {
            return Err(KeyError::AlgMismatch(alg));
        }
        let verifier: Box<dyn JwsVerifier> = match alg {
            Alg::Rs256 => Box::new(RS256.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Rs384 => Box::new(RS384.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Rs512 => Box::new(RS512.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Ps256 => Box::new(PS256.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Ps384 => Box::new(PS384.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Ps512 => Box::new(PS512.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Es256 => Box::new(ES256.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Es384 => Box::new(ES384.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::Es512 => Box::new(ES512.verifier_from_jwk(jwk).map_err(unusable)?),
            Alg::EdDsa => Box::new(EdDSA.verifier_from_jwk(jwk).map_err(unusable)?),
            hmac => return Err(KeyError::AlgMismatch(hmac)),
        };
        Ok(Self {
            kid: jwk.key_id().map(str::to_owned),
            alg,
            declared,
            material: Material::Public(verifier),
        })
    }

    /// The same key under a `kid`.
    pub fn with_kid(self, kid: impl Into<String>) -> Self {
        Self {
            kid: Some(kid.into()),
            ..self
        }
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> Alg {
        self.alg
    }

    /// The key id, if any.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the algorithm was declared with the key (a JWK's `alg`, or chosen by
    /// configuration) rather than inferred from the key type.
    pub fn declared(&self) -> bool {
        self.declared
    }

    fn verifies(&self, input: &[u8], signature: &[u8]) -> bool {
        match &self.material {
            Material::Public(v) => v.verify(input, signature).is_ok(),
            Material::Hmac(key) => {
                // Compute the tag and compare in constant time (never a `!=` on the tag).
                let tag = openssl::sign::Signer::new(self.alg.digest(), key)
                    .and_then(|mut s| {
                        s.update(input)?;
                        s.sign_to_vec()
                    })
                    .unwrap_or_default();
                !tag.is_empty()
                    && tag.len() == signature.len()
                    && openssl::memcmp::eq(&tag, signature)
            }
        }
    }
}

/// Check a consumer's PEM public key: an RSA key of at least 2048 bits (SPKI PEM).
pub fn check_rsa_public_pem(pem: &str) -> Result<(), String> {
    let key = PKey::public_key_from_pem(pem.trim().as_bytes())
        .map_err(|_| "not a PEM public key (-----BEGIN PUBLIC KEY-----)".to_owned())?;
    let rsa = key.rsa().map_err(|_| "not an RSA key".to_owned())?;
    let bits = rsa.size() * 8;
    if bits < 2048 {
        return Err(format!(
            "RSA keys need at least 2048 bits; this one has {bits}"
        ));
    }
    Ok(())
}

/// Sign `claims` with an HMAC secret, as a consumer would (unit tests).
#[cfg(test)]
pub(crate) fn sign_hmac(
    alg: Alg,
    secret: &[u8],
    header: &Value,
    claims: &Value,
) -> Result<String, KeyError> {
    if !alg.is_hmac() {
        return Err(KeyError::AlgMismatch(alg));
    }
    let key = PKey::hmac(secret).map_err(unusable)?;
    let mut out = URL_SAFE_NO_PAD.encode(header.to_string());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut out);
    let tag = openssl::sign::Signer::new(alg.digest(), &key)
        .and_then(|mut s| {
            s.update(out.as_bytes())?;
            s.sign_to_vec()
        })
        .map_err(unusable)?;
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
    use proptest::prelude::*;
    use serde_json::json;

    const ISS: &str = "https://gatehouse.example";
    const TOKEN_ENDPOINT: &str = "https://gatehouse.example/oauth/token";
    const NOW: i64 = 1_700_000_000;
    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn hs(alg: Alg, header: Value, claims: Value) -> String {
        sign_hmac(alg, SECRET, &header, &claims).unwrap()
    }

    fn hs256(claims: Value) -> String {
        hs(Alg::Hs256, json!({"alg": "HS256", "typ": "JWT"}), claims)
    }

    fn hmac_keys() -> Vec<VerifyKey> {
        vec![VerifyKey::hmac(Alg::Hs256, SECRET).unwrap()]
    }

    fn assertion_claims() -> Value {
        json!({"iss": "gco_a", "sub": "gco_a", "aud": TOKEN_ENDPOINT, "iat": NOW,
            "exp": NOW + 3600, "jti": "0d5f8f0a-8b8e-4c8e-9d53-4f3f3b0c2f11"})
    }

    fn assertion_rules() -> Rules<'static> {
        Rules::assertion(ISS, TOKEN_ENDPOINT)
    }

    fn check(token: &str, keys: &[VerifyKey], rules: &Rules<'_>) -> Result<Verified, Rejection> {
        verify(token, keys, rules, NOW)
    }

    /// One row per `Rejection` the assertion, consumer and access-token rules can give.
    #[test]
    fn every_rejection_has_its_case() {
        let keys = hmac_keys();
        let with = |patch: Value| {
            let mut c = assertion_claims();
            for (k, v) in patch.as_object().cloned().unwrap_or_default() {
                if v.is_null() {
                    c.as_object_mut().unwrap().remove(&k);
                } else {
                    c[k] = v;
                }
            }
            hs256(c)
        };
        let good = with(json!({}));
        let parts: Vec<&str> = good.split('.').collect();
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let other_secret = sign_hmac(
            Alg::Hs256,
            &[7u8; 32],
            &json!({"alg": "HS256"}),
            &assertion_claims(),
        )
        .unwrap();
        let required = [ClaimRequirement {
            name: "tenant".into(),
            value: Some("acme".into()),
        }];
        let audiences = ["https://api.example".to_owned()];
        let issuers = ["https://idp.example".to_owned()];
        let consumer = Rules::consumer(&audiences, &issuers, &required);
        let consumer_claims = json!({"iss": "https://idp.example", "aud": "https://api.example",
            "exp": NOW + 60, "tenant": "acme"});
        let cases: Vec<(&str, String, Rules<'_>, Result<(), Rejection>)> = vec![
            ("valid assertion", good.clone(), assertion_rules(), Ok(())),
            (
                "too long",
                "a".repeat(MAX_TOKEN_LEN + 1),
                assertion_rules(),
                Err(Rejection::TooLong),
            ),
            (
                "two parts",
                "a.b".into(),
                assertion_rules(),
                Err(Rejection::Malformed),
            ),
            (
                "four parts",
                format!("{good}.x"),
                assertion_rules(),
                Err(Rejection::Malformed),
            ),
            (
                "header not JSON",
                format!("e30x.{}.{}", parts[1], parts[2]),
                assertion_rules(),
                Err(Rejection::Malformed),
            ),
            (
                "alg none",
                format!("{}.{}.", b64(&json!({"alg": "none"})), parts[1]),
                assertion_rules(),
                Err(Rejection::Unsigned),
            ),
            (
                "alg NONE",
                format!("{}.{}.{}", b64(&json!({"alg": "NONE"})), parts[1], parts[2]),
                assertion_rules(),
                Err(Rejection::Unsigned),
            ),
            (
                "no alg",
                format!("{}.{}.{}", b64(&json!({})), parts[1], parts[2]),
                assertion_rules(),
                Err(Rejection::Unsigned),
            ),
            (
                "empty signature",
                format!("{}.{}.", parts[0], parts[1]),
                assertion_rules(),
                Err(Rejection::Unsigned),
            ),
            (
                "unknown alg",
                format!("{}.{}.{}", b64(&json!({"alg": "HS1"})), parts[1], parts[2]),
                assertion_rules(),
                Err(Rejection::UnsupportedAlg),
            ),
            (
                "crit",
                hs(
                    Alg::Hs256,
                    json!({"alg": "HS256", "crit": ["exp"]}),
                    assertion_claims(),
                ),
                assertion_rules(),
                Err(Rejection::Crit),
            ),
            (
                "alg confusion: HS384 for an HS256 key",
                hs(Alg::Hs384, json!({"alg": "HS384"}), assertion_claims()),
                assertion_rules(),
                Err(Rejection::AlgMismatch),
            ),
            (
                "other secret",
                other_secret,
                assertion_rules(),
                Err(Rejection::BadSignature),
            ),
            (
                "aud is a resource server",
                with(json!({"aud": "https://api.example"})),
                assertion_rules(),
                Err(Rejection::Audience),
            ),
            (
                "aud array",
                with(json!({"aud": [TOKEN_ENDPOINT]})),
                assertion_rules(),
                Err(Rejection::Audience),
            ),
            (
                "aud = issuer",
                with(json!({"aud": ISS})),
                assertion_rules(),
                Ok(()),
            ),
            (
                "no exp",
                with(json!({"exp": null})),
                assertion_rules(),
                Err(Rejection::NoExp),
            ),
            (
                "exp a string",
                with(json!({"exp": "soon"})),
                assertion_rules(),
                Err(Rejection::NoExp),
            ),
            (
                "fractional exp",
                with(json!({"exp": (NOW + 30) as f64 + 0.5})),
                assertion_rules(),
                Ok(()),
            ),
            (
                "expired beyond leeway",
                with(json!({"exp": NOW - LEEWAY_SECS})),
                assertion_rules(),
                Err(Rejection::Expired),
            ),
            (
                "expired within leeway",
                with(json!({"exp": NOW - LEEWAY_SECS + 1, "iat": NOW - 120})),
                assertion_rules(),
                Ok(()),
            ),
            (
                "iat in the future",
                with(json!({"iat": NOW + LEEWAY_SECS + 1})),
                assertion_rules(),
                Err(Rejection::NotYetValid),
            ),
            (
                "nbf in the future",
                with(json!({"nbf": NOW + LEEWAY_SECS + 1})),
                assertion_rules(),
                Err(Rejection::NotYetValid),
            ),
            (
                "exp too far",
                with(json!({"exp": NOW + MAX_ASSERTION_LIFETIME_SECS + LEEWAY_SECS + 1})),
                assertion_rules(),
                Err(Rejection::LifetimeTooLong),
            ),
            (
                "no jti",
                with(json!({"jti": null})),
                assertion_rules(),
                Err(Rejection::NoJti),
            ),
            (
                "empty jti",
                with(json!({"jti": ""})),
                assertion_rules(),
                Err(Rejection::NoJti),
            ),
            (
                "consumer ok",
                hs256(consumer_claims.clone()),
                consumer,
                Ok(()),
            ),
            (
                "consumer wrong issuer",
                hs256(
                    json!({"iss": "https://evil.example", "aud": "https://api.example", "exp": NOW + 60, "tenant": "acme"}),
                ),
                consumer,
                Err(Rejection::Issuer),
            ),
            (
                "consumer wrong audience",
                hs256(
                    json!({"iss": "https://idp.example", "aud": TOKEN_ENDPOINT, "exp": NOW + 60, "tenant": "acme"}),
                ),
                consumer,
                Err(Rejection::Audience),
            ),
            (
                "consumer required claim",
                hs256(
                    json!({"iss": "https://idp.example", "aud": "https://api.example", "exp": NOW + 60, "tenant": "other"}),
                ),
                consumer,
                Err(Rejection::RequiredClaim),
            ),
            (
                "access-token typ",
                hs256(json!({"iss": ISS, "exp": NOW + 60})),
                Rules::access_token(ISS),
                Err(Rejection::Typ),
            ),
            (
                "access-token kid",
                hs(
                    Alg::Hs256,
                    json!({"alg": "HS256", "typ": "at+jwt"}),
                    json!({"iss": ISS, "exp": NOW + 60}),
                ),
                Rules::access_token(ISS),
                Err(Rejection::UnknownKey),
            ),
        ];
        for (name, token, rules, want) in cases {
            let got = check(&token, &keys, &rules).map(|_| ());
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn our_tokens_have_no_leeway_and_accept_both_typ_spellings() {
        let kp = EcKeyPair::generate(EcCurve::P256).unwrap();
        let signer = josekit::jws::ES256
            .signer_from_pem(kp.to_pem_private_key())
            .unwrap();
        let mut jwk = kp.to_jwk_public_key();
        jwk.set_key_id("k1");
        let keys = vec![
            VerifyKey::public_jwk(Alg::Es256, &jwk, true)
                .unwrap()
                .with_kid("k1"),
        ];
        let sign = |typ: &str, kid: &str| {
            let header =
                URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": typ, "kid": kid}).to_string());
            let payload = URL_SAFE_NO_PAD.encode(
                json!({"iss": ISS, "aud": "https://api.example", "exp": NOW + 10}).to_string(),
            );
            let input = format!("{header}.{payload}");
            let sig = josekit::jws::JwsSigner::sign(&signer, input.as_bytes()).unwrap();
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        };
        let rules = Rules::access_token(ISS);
        for typ in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/AT+JWT",
        ] {
            assert!(
                verify(&sign(typ, "k1"), &keys, &rules, NOW).is_ok(),
                "{typ}"
            );
        }
        assert_eq!(
            verify(&sign("jwt", "k1"), &keys, &rules, NOW).err(),
            Some(Rejection::Typ)
        );
        assert_eq!(
            verify(&sign("at+jwt", "k2"), &keys, &rules, NOW).err(),
            Some(Rejection::UnknownKey)
        );
        let token = sign("at+jwt", "k1");
        assert_eq!(
            verify(&token, &keys, &rules, NOW + 10).err(),
            Some(Rejection::Expired)
        );
        assert!(verify(&token, &keys, &rules, NOW + 9).is_ok());
        let elsewhere = Rules::access_token_elsewhere(ISS, "https://api.example");
        assert!(
            verify(&token, &keys, &elsewhere, NOW + 10).is_ok(),
            "a resource server's clock"
        );
        let other = Rules::access_token_elsewhere(ISS, "https://other.example");
        assert_eq!(
            verify(&token, &keys, &other, NOW).err(),
            Some(Rejection::Audience)
        );
    }

    #[test]
    fn keys_are_pinned_and_hmac_secrets_long_enough() {
        assert_eq!(
            VerifyKey::hmac(Alg::Hs512, &[1u8; 63]).err(),
            Some(KeyError::ShortSecret {
                alg: Alg::Hs512,
                min: 64
            })
        );
        assert_eq!(
            VerifyKey::hmac(Alg::Hs384, &[1u8; 47]).err(),
            Some(KeyError::ShortSecret {
                alg: Alg::Hs384,
                min: 48
            })
        );
        assert!(VerifyKey::hmac(Alg::Hs512, &[1u8; 64]).is_ok());
        assert_eq!(
            VerifyKey::hmac(Alg::Rs256, SECRET).err(),
            Some(KeyError::AlgMismatch(Alg::Rs256))
        );
        let pem = josekit::jwk::alg::rsa::RsaKeyPair::generate(2048)
            .unwrap()
            .to_pem_public_key();
        assert_eq!(
            VerifyKey::public_pem(Alg::Hs256, &pem).err(),
            Some(KeyError::AlgMismatch(Alg::Hs256)),
            "an RSA public key never becomes an HMAC secret"
        );
        assert!(VerifyKey::public_pem(Alg::Ps256, &pem).is_ok());
        for alg in Alg::ALL {
            assert_eq!(Alg::parse(alg.as_str()), Some(alg));
        }
        assert_eq!(Alg::parse("hs256"), None, "names are case-sensitive");
        assert!(check_rsa_public_pem(std::str::from_utf8(&pem).unwrap()).is_ok());
        let small = josekit::jwk::alg::rsa::RsaKeyPair::generate(1024)
            .unwrap()
            .to_pem_public_key();
        assert!(check_rsa_public_pem(std::str::from_utf8(&small).unwrap()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No change to any byte of a valid token's header, payload or signature verifies.
        #[test]
        fn no_mutation_verifies(pos in 0usize..10_000, byte in any::<u8>()) {
            let token = hs256(assertion_claims());
            let mut bytes = token.clone().into_bytes();
            let i = pos % bytes.len();
            prop_assume!(bytes[i] != byte);
            bytes[i] = byte;
            let mutated = String::from_utf8_lossy(&bytes).into_owned();
            // Base64url allows two encodings of the last character's spare bits; a change
            // there leaves the decoded bytes equal, which is not a forgery.
            let decoded = |t: &str| -> Vec<Vec<u8>> {
                t.split('.').map(|p| URL_SAFE_NO_PAD.decode(p).unwrap_or_default()).collect()
            };
            prop_assume!(decoded(&mutated) != decoded(&token) || mutated.matches('.').count() != 2);
            prop_assert!(check(&mutated, &hmac_keys(), &assertion_rules()).is_err());
        }

        /// Truncating or extending a valid token never verifies.
        #[test]
        fn no_truncation_verifies(cut in 1usize..400, tail in "[A-Za-z0-9_.-]{1,8}") {
            let token = hs256(assertion_claims());
            let cut = cut.min(token.len() - 1);
            prop_assert!(check(&token[..token.len() - cut], &hmac_keys(), &assertion_rules()).is_err());
            let extended = format!("{token}{tail}");
            prop_assert!(check(&extended, &hmac_keys(), &assertion_rules()).is_err());
        }
    }
}
