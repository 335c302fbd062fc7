//! Who sent a request: the peer, or — when the peer is a proxy the operator
//! trusts (`--trusted-proxy`) — the client that proxy names in
//! `X-Forwarded-For` (or, without one, `X-Real-IP`). Ingest records that
//! address on the event; the admin listener charges wrong token guesses to
//! it. Without trusted proxies the headers are never believed: any sender
//! can write them.

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    pub fn nets(&self) -> &[IpNet] {
        &self.0
    }

    /// Whether the nets, taken together, cover every IPv4 or every IPv6
    /// address (`0.0.0.0/0`, or `0.0.0.0/1,128.0.0.0/1` alike).
    pub fn trusts_everyone(&self) -> bool {
        IpNet::aggregate(&self.0)
            .iter()
            .any(|n| n.prefix_len() == 0)
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: walking `X-Forwarded-For` from the right
    /// (each proxy appends the address it saw), the first address that is
    /// not a trusted proxy. An entry that is not an address ends the walk
    /// at the last trusted hop: what lies left of it cannot be vouched for.
    pub fn client(&self, peer: IpAddr, headers: &http::HeaderMap) -> IpAddr {
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        // Split as bytes: a proxy appends to the client's own line, so a
        // stray byte there must spoil only the client's entry (left of the
        // proxy's, which the walk reaches first), not the whole line.
        let entries: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .collect();
        // A proxy that names the client in `X-Real-IP` alone (nginx's
        // `proxy_set_header X-Real-IP $remote_addr`).
        if entries.is_empty() {
            let mut real = headers.get_all("x-real-ip").iter();
            return match (real.next(), real.next()) {
                (Some(v), None) => std::str::from_utf8(v.as_bytes().trim_ascii())
                    .ok()
                    .and_then(parse_entry)
                    .unwrap_or(peer),
                _ => peer,
            };
        }
        let mut client = peer;
        for entry in entries.iter().rev() {
            match std::str::from_utf8(entry.trim_ascii())
                .ok()
                .and_then(parse_entry)
            {
                Some(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        return ip;
                    }
                }
                None => return client,
            }
        }
        client
    }
}

/// Whether a trusted proxy says its own hop was TLS: the last value of
/// `X-Forwarded-Proto` (the proxy must set it, not pass the client's on).
pub fn proxy_hop_was_tls(headers: &http::HeaderMap) -> bool {
    headers
        .get_all("x-forwarded-proto")
        .iter()
        .next_back()
        .and_then(|v| v.as_bytes().rsplit(|b| *b == b',').next())
        .is_some_and(|p| p.trim_ascii().eq_ignore_ascii_case(b"https"))
}

/// `203.0.113.7`, `203.0.113.7:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_entry(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// A `--trusted-proxy` value: a network (`10.0.0.0/8`) or one address.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not an address or a network such as 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_is_seen_however_it_is_spelled() {
        let nets =
            |list: &[&str]| TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect());
        assert!(nets(&["0.0.0.0/0"]).trusts_everyone());
        assert!(nets(&["0.0.0.0/1", "128.0.0.0/1"]).trusts_everyone());
        assert!(nets(&["10.0.0.0/8", "::/1", "8000::/1"]).trusts_everyone());
        assert!(!nets(&["0.0.0.0/1", "10.0.0.0/8"]).trusts_everyone());
        assert!(!nets(&["10.0.0.0/8", "fd00::/8"]).trusts_everyone());
        assert!(!nets(&[]).trusts_everyone());
    }

    fn headers(xff: &[&str]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    /// nginx and Caddy append to the client's own line: bytes the client
    /// put there spoil only its own entries.
    #[test]
    fn a_bad_byte_left_of_the_proxy_entry_spoils_only_that_entry() {
        let t = TrustedProxies::new(vec![parse_net("127.0.0.1").unwrap()]);
        let mut h = http::HeaderMap::new();
        h.append(
            "x-forwarded-for",
            http::HeaderValue::from_bytes(b"\xff, 198.51.100.5").unwrap(),
        );
        let peer = "127.0.0.1".parse().unwrap();
        assert_eq!(
            t.client(peer, &h),
            "198.51.100.5".parse::<IpAddr>().unwrap()
        );
    }

    /// nginx's `proxy_set_header X-Real-IP $remote_addr` without an
    /// `X-Forwarded-For`: the client is in `X-Real-IP` — from a trusted
    /// peer, and only one value of it.
    #[test]
    fn without_forwarded_for_a_trusted_real_ip_names_the_client() {
        let t = TrustedProxies::new(vec![parse_net("127.0.0.1").unwrap()]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let real = |values: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in values {
                h.append("x-real-ip", v.parse().unwrap());
            }
            h
        };
        let proxy = ip("127.0.0.1");
        assert_eq!(
            t.client(proxy, &real(&["198.51.100.5"])),
            ip("198.51.100.5")
        );
        assert_eq!(
            t.client(proxy, &real(&[" 2001:db8::1 "])),
            ip("2001:db8::1")
        );
        assert_eq!(t.client(proxy, &real(&["nonsense"])), proxy);
        assert_eq!(
            t.client(proxy, &real(&["198.51.100.5", "198.51.100.6"])),
            proxy
        );
        let untrusted = ip("192.0.2.1");
        assert_eq!(t.client(untrusted, &real(&["198.51.100.5"])), untrusted);
        // `X-Forwarded-For` wins where both are sent.
        let mut both = real(&["198.51.100.5"]);
        both.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        assert_eq!(t.client(proxy, &both), ip("203.0.113.9"));
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_as_far_as_the_trust_goes() {
        let t = TrustedProxies::new(vec![
            parse_net("10.0.0.0/8").unwrap(),
            parse_net("::1").unwrap(),
        ]);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // An untrusted peer writes what it likes: ignored.
        assert_eq!(
            t.client(ip("198.51.100.9"), &headers(&["1.2.3.4"])),
            ip("198.51.100.9")
        );
        // A trusted proxy names its client.
        assert_eq!(
            t.client(ip("10.0.0.2"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // The client's own claims left of it are not believed.
        assert_eq!(
            t.client(
                ip("10.0.0.2"),
                &headers(&["6.6.6.6, 203.0.113.7", "10.1.1.1"])
            ),
            ip("203.0.113.7")
        );
        // Ports, brackets, IPv4-mapped peers.
        assert_eq!(
            t.client(ip("::ffff:10.0.0.2"), &headers(&["[2001:db8::1]:4711"])),
            ip("2001:db8::1")
        );
        assert_eq!(
            t.client(ip("::1"), &headers(&["203.0.113.7:80"])),
            ip("203.0.113.7")
        );
        // Garbage ends the walk at the last trusted hop.
        assert_eq!(
            t.client(ip("10.0.0.2"), &headers(&["unknown, 10.0.0.3"])),
            ip("10.0.0.3")
        );
        // No header, or all trusted: the leftmost address seen.
        assert_eq!(t.client(ip("10.0.0.2"), &headers(&[])), ip("10.0.0.2"));
        assert_eq!(
            t.client(ip("10.0.0.2"), &headers(&["10.9.9.9"])),
            ip("10.9.9.9")
        );
        // Nothing trusted: the peer, always.
        let none = TrustedProxies::default();
        assert_eq!(
            none.client(ip("10.0.0.2"), &headers(&["203.0.113.7"])),
            ip("10.0.0.2")
        );
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("proxy").is_err());
    }
}
