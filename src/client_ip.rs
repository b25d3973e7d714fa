//! The client address of a request, given the trusted proxies.
//!
//! The peer address is the client, unless the peer is a trusted proxy: then
//! the client is the rightmost `X-Forwarded-For` address that is not itself a
//! trusted proxy. A forwarded header from any other peer is ignored, so a
//! client cannot choose its own address (and dodge the rate limit).

use std::net::IpAddr;

use ipnet::IpNet;

/// Trusted proxy networks.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Proxies in `nets`.
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies { nets }
    }

    /// True when `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client address, from the peer address and every
    /// `X-Forwarded-For` header value, in the order they came.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        // Walk right to left: each hop was added by the proxy after it.
        for header in forwarded.rev() {
            for part in header.rsplit(',') {
                match parse_hop(part) {
                    Some(ip) if self.contains(ip) => client = ip,
                    Some(ip) => return ip,
                    // An unparsable hop ends the chain of trust.
                    None => return client,
                }
            }
        }
        client
    }
}

/// Parses one `X-Forwarded-For` element: an address, maybe with a port or
/// in brackets.
fn parse_hop(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(canonical(sa.ip()));
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
        .map(canonical)
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, xff: &[&str], expected: &str) {
        let t = TrustedProxies::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]);
        let got = t.client_ip(peer.parse().unwrap(), xff.iter().copied());
        assert_eq!(got.to_string(), expected, "peer {peer} xff {xff:?}");
    }

    #[test]
    fn client_ip_cases() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("203.0.113.5", &[], "203.0.113.5"),
            ("203.0.113.5", &["1.2.3.4"], "203.0.113.5"),
            ("127.0.0.1", &[], "127.0.0.1"),
            ("127.0.0.1", &["1.2.3.4"], "1.2.3.4"),
            ("127.0.0.1", &["9.9.9.9, 1.2.3.4"], "1.2.3.4"),
            ("127.0.0.1", &["9.9.9.9, 1.2.3.4, 10.0.0.7"], "1.2.3.4"),
            ("127.0.0.1", &["9.9.9.9", "1.2.3.4, 10.1.1.1"], "1.2.3.4"),
            ("127.0.0.1", &["10.0.0.2, 10.0.0.3"], "10.0.0.2"),
            ("127.0.0.1", &["garbage, 10.0.0.3"], "10.0.0.3"),
            ("127.0.0.1", &["1.2.3.4:5678"], "1.2.3.4"),
            ("127.0.0.1", &["[2001:db8::1]:443"], "2001:db8::1"),
            ("127.0.0.1", &["2001:db8::2"], "2001:db8::2"),
            ("::ffff:127.0.0.1", &["1.2.3.4"], "1.2.3.4"),
            ("::ffff:203.0.113.9", &["1.2.3.4"], "203.0.113.9"),
            ("::1", &["5.6.7.8"], "5.6.7.8"),
        ];
        for (peer, xff, expected) in cases {
            check(peer, xff, expected);
        }
    }
}
