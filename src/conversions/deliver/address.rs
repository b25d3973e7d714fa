//! Which addresses a postback may call: only public ones, unless private
//! addresses are allowed. Pure; the outbound client applies it to the
//! address it connects to.

use std::net::{IpAddr, Ipv4Addr};

/// True for an address a postback may not call unless private addresses
/// are allowed: loopback, private (RFC 1918, fc00::/7), shared (RFC 6598,
/// where some clouds keep metadata services), link-local, unspecified,
/// "this network", multicast, broadcast, and IPv6 forms that embed such an
/// IPv4 address (mapped, NAT64).
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden_v4(v4);
            }
            let s = v6.segments();
            // 64:ff9b::/96, the NAT64 well-known prefix.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return forbidden_v4(Ipv4Addr::new(a, b, c, d));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // fc00::/7 unique local
                || (s[0] & 0xffc0) == 0xfe80 // fe80::/10 link-local
                || (s[0] & 0xffc0) == 0xfec0 // fec0::/10 old site-local
        }
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_forbidden(ip: &str, expected: bool) {
        let parsed: IpAddr = ip.parse().unwrap();
        assert_eq!(is_forbidden(parsed), expected, "{ip}");
    }

    #[test]
    fn only_public_addresses_are_allowed() {
        for (ip, forbidden) in [
            ("127.0.0.1", true),
            ("127.255.0.9", true),
            ("10.1.2.3", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("172.32.0.1", false),
            ("192.168.1.1", true),
            ("169.254.169.254", true),
            ("0.0.0.0", true),
            ("0.1.2.3", true),
            ("100.64.0.1", true),
            ("100.100.100.200", true),
            ("100.128.0.1", false),
            ("224.0.0.1", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            ("93.184.216.34", false),
            ("::1", true),
            ("::", true),
            ("fc00::1", true),
            ("fd12:3456::1", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("ff02::1", true),
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:8.8.8.8", false),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::808:808", false),
            ("2001:4860:4860::8888", false),
            ("2606:4700::1111", false),
        ] {
            check_forbidden(ip, forbidden);
        }
    }
}
