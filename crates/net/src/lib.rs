//! `gatehouse-net`: the consumer's address — the socket peer, or, only when the peer is a
//! trusted proxy, the nearest untrusted hop of `X-Forwarded-For`, read right to left. One
//! rule for the server (token, introspection, revocation) and the resource-server guard, so
//! IP rules mean the same on both sides of a proxy. It knows nothing else.

use http::HeaderMap;
use ipnet::IpNet;
use std::net::IpAddr;

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports) as
/// the IPv4 address it is, so IPv4 CIDRs match it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Resolve the client address of a request: the peer unless it is a trusted proxy; then
/// `X-Forwarded-For` from the right, skipping trusted hops. A header that is not text or a
/// malformed hop makes the whole chain untrustworthy: the peer.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else {
            return peer;
        };
        for part in text.split(',') {
            match part.trim().parse::<IpAddr>() {
                Ok(ip) => hops.push(canonical(ip)),
                // A malformed hop makes the whole chain untrustworthy.
                Err(_) => return peer,
            }
        }
    }
    let mut candidate = peer;
    for hop in hops.into_iter().rev() {
        candidate = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(xff: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(xff).unwrap());
        h
    }

    #[test]
    fn only_trusted_peers_are_believed() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let outsider: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(resolve(outsider, &headers("1.2.3.4"), &trusted), outsider);
        assert_eq!(
            resolve(peer, &headers("1.2.3.4"), &trusted).to_string(),
            "1.2.3.4"
        );
        // Right to left: a spoofed left-most entry is ignored.
        assert_eq!(
            resolve(peer, &headers("6.6.6.6, 1.2.3.4, 10.0.0.7"), &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(resolve(peer, &headers("garbage"), &trusted), peer);
        assert_eq!(resolve(peer, &HeaderMap::new(), &trusted), peer);
        // A dual-stack listener's mapped form of a trusted proxy is still that proxy.
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            resolve(mapped, &headers("1.2.3.4"), &trusted).to_string(),
            "1.2.3.4"
        );
    }
}
