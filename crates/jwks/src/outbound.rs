//! Where Gatehouse may send a request because someone else named the place: the rules of
//! every outbound fetch (an `oidc_issuer`'s discovery document, an `oidc_jwks_uri`, the
//! `jwks_uri` a discovery document names), which the admin API also applies before it stores
//! such a URL.
//!
//! - https only; http only to a host the allow list covers; no credentials in the URL.
//! - The addresses must be public. [`classify`] names the ranges that are not (loopback,
//!   private, link-local, shared/CGNAT, multicast, unspecified, broadcast, documentation,
//!   benchmarking and other reserved ranges, v4 and v6; an IPv4 address embedded in an IPv6
//!   one — mapped, NAT64, 6to4 — is judged as the IPv4 address), and an address in one of
//!   them is refused unless [`OutboundAllow`] (`GATEHOUSE_OUTBOUND_ALLOW`) covers it.
//! - [`check_url`] judges what the URL itself shows (an IP literal, `localhost`) without any
//!   lookup, so it is also the create-time check. [`VettingResolver`] resolves host names
//!   when the HTTP client connects and hands it only vetted addresses: the address checked is
//!   the address connected to, with no second lookup a rebinding DNS server could answer
//!   differently.
//!
//! Sizes, timeouts and redirects are [`crate::remote`]'s business, not this module's.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use url::{Host, Url};

/// A range of addresses outbound fetches do not reach unless the allow list covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InternalRange {
    /// `0.0.0.0/8` ("this network"; Linux connects `0.0.0.0` to the local host) and `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`, and the names `localhost` and `*.localhost` (RFC 6761).
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), unique local `fc00::/7` and the
    /// deprecated site-local `fec0::/10`.
    Private,
    /// `169.254.0.0/16` (cloud metadata services live here) and `fe80::/10`.
    LinkLocal,
    /// Carrier-grade NAT, `100.64.0.0/10` (RFC 6598).
    Shared,
    /// `224.0.0.0/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18.0.0/15` and `2001:2::/48` (also where fake-IP DNS proxies map names).
    Benchmarking,
    /// Anything else that is not global unicast: `192.0.0.0/24`, `240.0.0.0/4`, IPv6 outside
    /// `2000::/3`, Teredo `2001::/32`, local-use NAT64 `64:ff9b:1::/48`, discard `100::/64`.
    Reserved,
}

impl InternalRange {
    /// A short name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            InternalRange::Unspecified => "unspecified",
            InternalRange::Loopback => "loopback",
            InternalRange::Private => "private",
            InternalRange::LinkLocal => "link-local",
            InternalRange::Shared => "shared (CGNAT)",
            InternalRange::Multicast => "multicast",
            InternalRange::Broadcast => "broadcast",
            InternalRange::Documentation => "documentation",
            InternalRange::Benchmarking => "benchmarking",
            InternalRange::Reserved => "reserved",
        }
    }
}

impl std::fmt::Display for InternalRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The internal range `ip` lies in, or `None` for a public address.
pub fn classify(ip: IpAddr) -> Option<InternalRange> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<InternalRange> {
    use InternalRange::*;
    if ip == Ipv4Addr::BROADCAST {
        return Some(Broadcast);
    }
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, _, _) => Unspecified,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Private,
        (100, 64..=127, _) => Shared,
        (127, _, _) => Loopback,
        (169, 254, _) => LinkLocal,
        (192, 0, 0) => Reserved,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Documentation,
        (198, 18..=19, _) => Benchmarking,
        (224..=239, _, _) => Multicast,
        (240..=255, _, _) => Reserved,
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address stands for: IPv4-mapped `::ffff:0:0/96`, NAT64
/// `64:ff9b::/96` (RFC 6052), 6to4 `2002::/16` (RFC 3056).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<InternalRange> {
    use InternalRange::*;
    if ip.is_unspecified() {
        return Some(Unspecified);
    }
    if ip.is_loopback() {
        return Some(Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    Some(match s {
        [0xfc00..=0xfdff, ..] | [0xfec0..=0xfeff, ..] => Private,
        [0xfe80..=0xfebf, ..] => LinkLocal,
        [0xff00..=0xffff, ..] => Multicast,
        [0x2001, 0x0db8, ..] | [0x3fff, 0..=0x0fff, ..] => Documentation,
        [0x2001, 0x0002, 0, ..] => Benchmarking,
        [0x2001, 0, ..] => Reserved,
        [first, ..] if first & 0xe000 != 0x2000 => Reserved,
        _ => return None,
    })
}

/// Whether a host name is loopback by definition (RFC 6761 §6.3): `localhost`, `*.localhost`.
fn loopback_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .get(name.len().saturating_sub(".localhost".len())..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"))
}

/// A host name as the allow list compares it: lower case, without a trailing dot.
fn normalized_name(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// `GATEHOUSE_OUTBOUND_ALLOW`: CIDRs and host names outbound fetches may reach although they
/// are internal (and over http). Empty by default: only public addresses, only https.
///
/// - A CIDR (or a bare address) covers the addresses in it, an IPv4 one also in its
///   IPv4-mapped IPv6 form.
/// - A host name covers exactly that name (no subdomains; ASCII, IDNs in punycode), whatever
///   it resolves to.
/// - `localhost` and `*.localhost` are also covered when `127.0.0.1` or `::1` is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundAllow {
    nets: Vec<IpNet>,
    names: Vec<String>,
}

impl OutboundAllow {
    /// Parse the list; blank items are skipped, so an empty value allows nothing. The error
    /// names the first item that is neither a CIDR, an address nor a host name.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut out = Self::default();
        for item in items {
            let item = item.as_ref().trim();
            if item.is_empty() {
                continue;
            }
            if let Ok(net) = item.parse::<IpNet>() {
                out.nets.push(net.trunc());
            } else if let Ok(ip) = item.parse::<IpAddr>() {
                out.nets.push(IpNet::from(ip));
            } else if valid_name(item) {
                out.names.push(normalized_name(item));
            } else {
                return Err(format!(
                    "`{item}` is neither a CIDR, an IP address nor a host name"
                ));
            }
        }
        Ok(out)
    }

    /// A list covering only the host of `url` (nothing if it is not a URL with a host): for
    /// a URL the operator configured, not one an admin or a third party supplied — a resource
    /// server's guard fetching its own Gatehouse's JWKS, which is often internal.
    pub fn host_of(url: &str) -> Self {
        let mut out = Self::default();
        match Url::parse(url).ok().as_ref().and_then(Url::host) {
            Some(Host::Ipv4(ip)) => out.nets.push(IpNet::from(IpAddr::V4(ip))),
            Some(Host::Ipv6(ip)) => out.nets.push(IpNet::from(IpAddr::V6(ip))),
            Some(Host::Domain(name)) => out.names.push(normalized_name(name)),
            None => {}
        }
        out
    }

    /// Whether the list is empty (only public addresses are reached).
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty() && self.names.is_empty()
    }

    /// Whether a CIDR of the list contains `ip` (or its IPv4 form, for an IPv4-mapped one).
    pub fn covers_ip(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.nets
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }

    /// Whether the list names this host name itself.
    pub fn names(&self, name: &str) -> bool {
        let name = normalized_name(name);
        self.names.contains(&name)
    }

    /// Whether the list covers a URL's host: an address in one of its CIDRs, a name it lists,
    /// or a loopback name while it covers `127.0.0.1` or `::1`.
    pub fn covers_host(&self, host: &Host<&str>) -> bool {
        match host {
            Host::Ipv4(ip) => self.covers_ip(IpAddr::V4(*ip)),
            Host::Ipv6(ip) => self.covers_ip(IpAddr::V6(*ip)),
            Host::Domain(name) => {
                self.names(name)
                    || (loopback_name(name)
                        && (self.covers_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
                            || self.covers_ip(IpAddr::V6(Ipv6Addr::LOCALHOST))))
            }
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits, `-` and `_`, at most 253 characters,
/// the last not all digits (a URL would read that as an IPv4 address).
fn valid_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && !name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
        && name.split('.').all(|label| {
            (1..=63).contains(&label.len())
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Why a URL may not be fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Not an absolute URL with a host.
    #[error("not an absolute URL with a host")]
    NotAUrl,
    /// Neither https nor http.
    #[error("only https URLs are fetched")]
    Scheme,
    /// http to a host the allow list does not cover.
    #[error("http is allowed only to a host GATEHOUSE_OUTBOUND_ALLOW covers; use https")]
    Insecure,
    /// A user name or password in the URL.
    #[error("credentials in the URL are not allowed")]
    Credentials,
    /// The host is, or resolves only to, an internal address the allow list does not cover.
    #[error(
        "the host is {0} (an internal address); outbound fetches reach internal addresses only when GATEHOUSE_OUTBOUND_ALLOW covers them"
    )]
    Internal(InternalRange),
    /// A discovery document's `jwks_uri` with another scheme or host than the issuer's, not
    /// covered by the allow list.
    #[error("the jwks_uri of the discovery document has another scheme or host than the issuer")]
    ForeignJwksUri,
}

impl Refusal {
    /// The admin API's error code for this refusal.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NotAUrl | Refusal::Credentials => "invalid_url",
            Refusal::Scheme | Refusal::Insecure => "insecure_url",
            Refusal::Internal(_) => "internal_address",
            Refusal::ForeignJwksUri => "foreign_jwks_uri",
        }
    }
}

/// The outbound rules as far as the URL itself shows them, with no lookup: the scheme (https;
/// http only to a covered host), no credentials, and no internal address written into it (an
/// IP literal, `localhost`, `*.localhost`) unless the allow list covers it. Host names are
/// judged by [`VettingResolver`] when the fetch connects.
pub fn check_url(url: &Url, allow: &OutboundAllow) -> Result<(), Refusal> {
    if !matches!(url.scheme(), "https" | "http") {
        return Err(Refusal::Scheme);
    }
    let host = url.host().ok_or(Refusal::NotAUrl)?;
    if url.scheme() == "http" && !allow.covers_host(&host) {
        return Err(Refusal::Insecure);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refusal::Credentials);
    }
    let range = match host {
        Host::Ipv4(ip) => classify_v4(ip),
        Host::Ipv6(ip) => classify_v6(ip),
        Host::Domain(name) => loopback_name(name).then_some(InternalRange::Loopback),
    };
    match range {
        Some(range) if !allow.covers_host(&host) => Err(Refusal::Internal(range)),
        _ => Ok(()),
    }
}

/// Whether `target` (a discovery document's `jwks_uri`) may be fetched for `issuer`: same
/// scheme and host (any port), or a host the allow list covers.
pub fn check_jwks_uri(issuer: &Url, target: &Url, allow: &OutboundAllow) -> Result<(), Refusal> {
    let host = target.host().ok_or(Refusal::NotAUrl)?;
    let same = issuer.scheme() == target.scheme() && issuer.host() == Some(host.clone());
    if same || allow.covers_host(&host) {
        Ok(())
    } else {
        Err(Refusal::ForeignJwksUri)
    }
}

/// The addresses of `name` an outbound fetch may connect to: all of them when the allow list
/// names `name`, else those that are public or in an allowed CIDR. None left: the refusal
/// names the range of the first address dropped.
pub fn vet(
    name: &str,
    found: impl IntoIterator<Item = SocketAddr>,
    allow: &OutboundAllow,
) -> Result<Vec<SocketAddr>, Refusal> {
    if allow.names(name) {
        return Ok(found.into_iter().collect());
    }
    let mut dropped = None;
    let mut kept = Vec::new();
    for addr in found {
        match classify(addr.ip()) {
            Some(range) if !allow.covers_ip(addr.ip()) => {
                dropped.get_or_insert(range);
            }
            _ => kept.push(addr),
        }
    }
    match dropped {
        Some(range) if kept.is_empty() => Err(Refusal::Internal(range)),
        _ => Ok(kept),
    }
}

/// The HTTP client's resolver for outbound fetches: resolves with the system resolver (on
/// tokio's blocking pool) and returns only the addresses [`vet`] lets through, so the client
/// connects to exactly the addresses checked. IP-literal hosts never reach a resolver (the
/// client connects to them directly): [`check_url`] must judge them first.
#[derive(Debug, Clone)]
pub struct VettingResolver {
    allow: Arc<OutboundAllow>,
    lookup: Lookup,
}

/// Where names are looked up.
#[derive(Debug, Clone)]
enum Lookup {
    /// The system resolver (`getaddrinfo`).
    System,
    /// Fixed answers, so tests can aim a name at loopback without DNS.
    #[cfg(test)]
    Fixed(std::collections::HashMap<String, Vec<IpAddr>>),
}

impl Lookup {
    async fn addresses(&self, host: &str) -> std::io::Result<Vec<SocketAddr>> {
        match self {
            Lookup::System => Ok(tokio::net::lookup_host((host, 0)).await?.collect()),
            #[cfg(test)]
            Lookup::Fixed(map) => Ok(map
                .get(host)
                .map(|ips| ips.iter().map(|ip| SocketAddr::new(*ip, 0)).collect())
                .unwrap_or_default()),
        }
    }
}

impl VettingResolver {
    /// A resolver that lets through what `allow` covers besides public addresses.
    pub fn new(allow: Arc<OutboundAllow>) -> Self {
        Self {
            allow,
            lookup: Lookup::System,
        }
    }

    /// A resolver answering from `table` instead of DNS.
    #[cfg(test)]
    pub(crate) fn fixed(allow: Arc<OutboundAllow>, table: &[(&str, &str)]) -> Self {
        let mut map: std::collections::HashMap<String, Vec<IpAddr>> = Default::default();
        for (name, ip) in table {
            if let Ok(ip) = ip.parse() {
                map.entry((*name).to_owned()).or_default().push(ip);
            }
        }
        Self {
            allow,
            lookup: Lookup::Fixed(map),
        }
    }
}

impl reqwest::dns::Resolve for VettingResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (allow, lookup) = (self.allow.clone(), self.lookup.clone());
        Box::pin(async move {
            let host = name.as_str();
            let found = lookup.addresses(host).await?;
            if found.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{host} has no address"),
                )
                .into());
            }
            let vetted = vet(host, found, &allow)?;
            Ok(Box::new(vetted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::dns::Resolve;

    fn allow(items: &[&str]) -> OutboundAllow {
        OutboundAllow::parse(items).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn address_classes() {
        use InternalRange::*;
        let table: &[(&str, Option<InternalRange>)] = &[
            // IPv4
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("172.15.255.255", None),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.168.1.1", Some(Private)),
            ("100.63.255.255", None),
            ("100.64.0.1", Some(Shared)),
            ("100.127.255.255", Some(Shared)),
            ("100.128.0.1", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("169.254.169.254", Some(LinkLocal)),
            ("169.253.1.1", None),
            ("192.0.0.8", Some(Reserved)),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.9", Some(Documentation)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.20.0.1", None),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("240.0.0.1", Some(Reserved)),
            ("255.255.255.255", Some(Broadcast)),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("93.184.215.14", None),
            // IPv6
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fec0::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001::1", Some(Reserved)),
            ("64:ff9b:1::1", Some(Reserved)),
            ("100::1", Some(Reserved)),
            ("::2", Some(Reserved)),
            ("4000::1", Some(Reserved)),
            ("2606:4700:4700::1111", None),
            ("2a00:1450:4001::200e", None),
            // IPv4 inside IPv6: judged as the IPv4 address
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.0.0.1", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:100.64.0.1", Some(Shared)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:255.255.255.255", Some(Broadcast)),
            ("::ffff:8.8.8.8", None),
            ("64:ff9b::a9fe:a9fe", Some(LinkLocal)),
            ("64:ff9b::7f00:1", Some(Loopback)),
            ("64:ff9b::808:808", None),
            ("2002:a9fe:a9fe::1", Some(LinkLocal)),
            ("2002:c0a8:0101::1", Some(Private)),
            ("2002:808:808::1", None),
            // The deprecated IPv4-compatible form is not global unicast.
            ("::127.0.0.1", Some(Reserved)),
            ("::8.8.8.8", Some(Reserved)),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *expected, "{text}");
        }
    }

    #[test]
    fn allow_list_parsing() {
        let list = allow(&[
            " 10.1.2.3/8 ",
            "",
            "192.168.7.7",
            "::1",
            "IdP.Corp.",
            "fd00::/8",
        ]);
        assert!(
            list.covers_ip("10.200.0.1".parse().unwrap()),
            "host bits cleared"
        );
        assert!(list.covers_ip("192.168.7.7".parse().unwrap()));
        assert!(!list.covers_ip("192.168.7.8".parse().unwrap()));
        assert!(list.covers_ip("::1".parse().unwrap()));
        assert!(list.covers_ip("fd00::5".parse().unwrap()));
        assert!(
            list.covers_ip("::ffff:10.0.0.1".parse().unwrap()),
            "an IPv4 CIDR covers the mapped form"
        );
        assert!(list.names("idp.corp") && list.names("IDP.CORP."));
        assert!(!list.names("other.idp.corp"), "no subdomains");
        assert!(OutboundAllow::parse(&["", "  "]).unwrap().is_empty());
        assert_eq!(
            OutboundAllow::host_of("http://Gatehouse.Internal:8080/oauth/jwks"),
            allow(&["gatehouse.internal"])
        );
        assert_eq!(
            OutboundAllow::host_of("http://[::1]:8080/oauth/jwks"),
            allow(&["::1"])
        );
        assert!(OutboundAllow::host_of("not a url").is_empty());
        for bad in [
            "https://idp.corp",
            "idp.corp:443",
            "*.corp",
            "10.0.0.0/33",
            "a b",
            ".",
            "999.1.1.1",
        ] {
            let err = OutboundAllow::parse(&[bad]).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn urls_without_an_allow_list() {
        let none = OutboundAllow::default();
        let ok = [
            "https://idp.example.com/x",
            "https://8.8.8.8/jwks",
            "https://[2606:4700:4700::1111]/jwks",
            "https://idp.example.com:8443/realms/a",
        ];
        for u in ok {
            assert_eq!(check_url(&url(u), &none), Ok(()), "{u}");
        }
        let refused = [
            ("http://idp.example.com/x", Refusal::Insecure),
            ("http://127.0.0.1:8080/x", Refusal::Insecure),
            ("http://localhost/x", Refusal::Insecure),
            ("ftp://idp.example.com/x", Refusal::Scheme),
            ("file:///etc/passwd", Refusal::Scheme),
            ("https://u:p@idp.example.com/x", Refusal::Credentials),
            (
                "https://10.0.0.1/jwks",
                Refusal::Internal(InternalRange::Private),
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                Refusal::Internal(InternalRange::LinkLocal),
            ),
            (
                "https://[::1]:8443/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            (
                "https://[::ffff:127.0.0.1]/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            (
                "https://[fd00::1]/jwks",
                Refusal::Internal(InternalRange::Private),
            ),
            (
                "https://100.64.0.1/jwks",
                Refusal::Internal(InternalRange::Shared),
            ),
            (
                "https://localhost/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            (
                "https://LOCALHOST./jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            (
                "https://idp.localhost/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            // WHATWG host parsing turns these into 127.0.0.1 and 0.0.0.0.
            (
                "https://2130706433/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            (
                "https://0x7f.1/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            (
                "https://0/jwks",
                Refusal::Internal(InternalRange::Unspecified),
            ),
        ];
        for (u, expected) in refused {
            assert_eq!(check_url(&url(u), &none), Err(expected), "{u}");
        }
        assert_eq!(Refusal::Insecure.code(), "insecure_url");
        assert_eq!(
            Refusal::Internal(InternalRange::Private).code(),
            "internal_address"
        );
    }

    #[test]
    fn urls_with_an_allow_list() {
        let list = allow(&["127.0.0.0/8", "10.1.0.0/16", "idp.corp"]);
        for u in [
            "http://127.0.0.1:8080/x",
            "https://127.0.0.1:8080/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://localhost:9/x",
            "https://10.1.2.3/jwks",
            "http://10.1.2.3/jwks",
            "http://idp.corp/jwks",
            "https://IDP.CORP/jwks",
        ] {
            assert_eq!(check_url(&url(u), &list), Ok(()), "{u}");
        }
        for (u, expected) in [
            (
                "https://10.2.0.1/jwks",
                Refusal::Internal(InternalRange::Private),
            ),
            (
                "https://[::1]/jwks",
                Refusal::Internal(InternalRange::Loopback),
            ),
            ("http://[::1]/jwks", Refusal::Insecure),
            ("http://other.corp/jwks", Refusal::Insecure),
            ("http://sub.idp.corp/jwks", Refusal::Insecure),
            ("http://8.8.8.8/jwks", Refusal::Insecure),
        ] {
            assert_eq!(check_url(&url(u), &list), Err(expected), "{u}");
        }
    }

    #[test]
    fn a_discovered_jwks_uri_stays_with_its_issuer() {
        let none = OutboundAllow::default();
        let issuer = url("https://idp.example.com/realms/a");
        assert_eq!(
            check_jwks_uri(&issuer, &url("https://idp.example.com:8443/certs"), &none),
            Ok(())
        );
        for other in [
            "https://keys.example.com/certs",
            "http://idp.example.com/certs",
            "https://169.254.169.254/latest",
        ] {
            assert_eq!(
                check_jwks_uri(&issuer, &url(other), &none),
                Err(Refusal::ForeignJwksUri),
                "{other}"
            );
        }
        let list = allow(&["keys.example.com"]);
        assert_eq!(
            check_jwks_uri(&issuer, &url("https://keys.example.com/certs"), &list),
            Ok(())
        );
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter()
            .map(|ip| SocketAddr::new(ip.parse().unwrap(), 443))
            .collect()
    }

    #[test]
    fn resolved_addresses_are_vetted() {
        let none = OutboundAllow::default();
        assert_eq!(
            vet(
                "idp.example.com",
                addrs(&["8.8.8.8", "2606:4700::1"]),
                &none
            ),
            Ok(addrs(&["8.8.8.8", "2606:4700::1"]))
        );
        assert_eq!(
            vet("rebound.example.com", addrs(&["169.254.169.254"]), &none),
            Err(Refusal::Internal(InternalRange::LinkLocal))
        );
        assert_eq!(
            vet(
                "mixed.example.com",
                addrs(&["10.0.0.1", "8.8.8.8", "::1"]),
                &none
            ),
            Ok(addrs(&["8.8.8.8"])),
            "only the public address is handed to the client"
        );
        assert_eq!(
            vet("mapped.example.com", addrs(&["::ffff:127.0.0.1"]), &none),
            Err(Refusal::Internal(InternalRange::Loopback))
        );
        let list = allow(&["10.0.0.0/8", "idp.corp"]);
        assert_eq!(
            vet("x.example.com", addrs(&["10.0.0.1", "192.168.0.1"]), &list),
            Ok(addrs(&["10.0.0.1"]))
        );
        assert_eq!(
            vet("IDP.corp.", addrs(&["192.168.0.1", "127.0.0.1"]), &list),
            Ok(addrs(&["192.168.0.1", "127.0.0.1"])),
            "a listed name reaches whatever it resolves to"
        );
    }

    /// The resolver itself, on names that resolve without any DNS traffic (`/etc/hosts`, or
    /// an address written as a name).
    #[tokio::test]
    async fn the_resolver_returns_only_vetted_addresses() {
        let strict = VettingResolver::new(Arc::new(OutboundAllow::default()));
        for name in ["localhost", "127.0.0.1", "10.0.0.1", "169.254.169.254"] {
            let err = match strict.resolve(name.parse().unwrap()).await {
                Ok(found) => panic!("{name} resolved to {:?}", found.collect::<Vec<_>>()),
                Err(e) => e,
            };
            assert!(
                matches!(err.downcast_ref::<Refusal>(), Some(Refusal::Internal(_))),
                "{name}: {err}"
            );
        }
        let loopback = VettingResolver::new(Arc::new(allow(&["127.0.0.0/8"])));
        let found: Vec<IpAddr> = loopback
            .resolve("127.0.0.1".parse().unwrap())
            .await
            .unwrap()
            .map(|a| a.ip())
            .collect();
        assert_eq!(found, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let found: Vec<SocketAddr> = loopback
            .resolve("localhost".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert!(
            !found.is_empty() && found.iter().all(|a| a.ip().to_canonical().is_loopback()),
            "{found:?}"
        );
    }
}
