//! The outbound guard: which addresses a delivery may connect to.
//!
//! Whoever can create an endpoint or replay to a URL can make hookrelay send
//! requests from its network and read the answers in the attempts (SSRF).
//! Link-local addresses and the clouds' metadata services are refused
//! unless a network inside them is allowed by name; with
//! `--deny-private-targets` so are loopback, private, shared and other
//! non-public ranges, unless `--allow-target-net` lets them through. An
//! IPv4 address inside an IPv6 one is judged as the IPv4 address.
//!
//! The check runs at connect time on the addresses a name resolved to, and
//! those same addresses are the ones connected to: a name that resolves to a
//! public address when checked and a private one a moment later (DNS
//! rebinding) gets no second lookup. Redirects are never followed (see the
//! parent module), so a public receiver cannot bounce a delivery inward.

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use ipnet::IpNet;
use tower::Service;

/// Which addresses deliveries may reach.
#[derive(Clone, Debug, Default)]
pub struct TargetGuard {
    /// Refuse loopback, private and other non-public addresses too.
    pub deny_private: bool,
    /// Networks let through whatever the rules above say; an always-refused
    /// range only for a network inside it (named on purpose: a broad
    /// `fd00::/8` for a LAN must not open the metadata service in it).
    pub allow: Vec<IpNet>,
    /// Let everything through: the CLI's client, which only talks to the
    /// admin listener its user named.
    pub off: bool,
}

/// Ranges refused even without `--deny-private-targets`: nobody's webhook
/// receiver lives there, a cloud's metadata or credential service does.
const ALWAYS: &[(&str, &str)] = &[
    (
        "169.254.0.0/16",
        "a link-local address (where cloud metadata services answer)",
    ),
    ("fe80::/10", "a link-local address"),
    (
        "fd00:ec2::/32",
        "an AWS instance service address (metadata, pod credentials)",
    ),
    (
        "fd20:ce::254/128",
        "the Google Cloud metadata service's address",
    ),
    (
        "100.100.100.200/32",
        "the Alibaba Cloud metadata service's address",
    ),
    ("168.63.129.16/32", "the Azure host agent's address"),
    (
        "64:ff9b:1::/48",
        "a local-use NAT64 address (the IPv4 address it leads to is not known)",
    ),
];

/// Ranges refused with `--deny-private-targets`: everything IANA's
/// special-purpose registries do not mark globally reachable.
const PRIVATE: &[(&str, &str)] = &[
    (
        "0.0.0.0/8",
        "an address of this host (0.0.0.0 reaches loopback)",
    ),
    ("10.0.0.0/8", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("127.0.0.0/8", "a loopback address"),
    ("172.16.0.0/12", "a private address"),
    ("192.0.0.0/24", "an IETF protocol address"),
    ("192.0.2.0/24", "a documentation address"),
    ("192.168.0.0/16", "a private address"),
    ("198.18.0.0/15", "a benchmarking address"),
    ("198.51.100.0/24", "a documentation address"),
    ("203.0.113.0/24", "a documentation address"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("::/128", "an unspecified address (it reaches loopback)"),
    ("::1/128", "a loopback address"),
    ("100::/64", "a discard-only address"),
    ("100:0:0:1::/64", "a dummy IPv6 prefix address"),
    (
        "2001::/23",
        "an IETF protocol address (Teredo, ORCHID and others)",
    ),
    ("2001:db8::/32", "a documentation address"),
    ("3fff::/20", "a documentation address"),
    ("5f00::/16", "a segment-routing address"),
    ("fc00::/7", "a unique local (private) address"),
    ("fec0::/10", "a site-local address"),
    ("ff00::/8", "a multicast address"),
];

/// Networks inside [`PRIVATE`]'s ranges that IANA marks globally
/// reachable (AMT, AS112, ORCHIDv2, drone DETs): never refused. Its
/// anycast addresses (PCP, TURN, DNS-SD SRP: `192.0.0.9`, `192.0.0.10`,
/// `2001:1::1`-`3`) stay refused: they reach the nearest responder, for
/// PCP by design the operator's own NAT, and no receiver lives there.
const GLOBAL_INSIDE_PRIVATE: &[(&str, &str)] = &[
    ("2001:3::/32", "an AMT address"),
    ("2001:4:112::/48", "an AS112 address"),
    ("2001:20::/28", "an ORCHIDv2 address"),
    ("2001:30::/28", "a drone DET address"),
];

impl TargetGuard {
    /// Everything allowed.
    pub fn off() -> TargetGuard {
        TargetGuard {
            off: true,
            ..TargetGuard::default()
        }
    }

    /// `Err` says what `ip` is and which setting refuses it.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        if self.off {
            return Ok(());
        }
        let ip = canonical(ip);
        let allowed = |range: Option<IpNet>| {
            self.allow
                .iter()
                .any(|n| n.contains(&ip) && range.is_none_or(|r| r.contains(n)))
        };
        if let Some((range, what)) = find(&ALWAYS_NETS, ip) {
            if allowed(Some(range)) {
                return Ok(());
            }
            return Err(format!(
                "{ip} is {what}; hookrelay does not connect there unless --allow-target-net names it ({range} or a part of it)"
            ));
        }
        if self.deny_private
            && let Some((_, what)) = find(&PRIVATE_NETS, ip)
            && find(&GLOBAL_INSIDE_PRIVATE_NETS, ip).is_none()
            && !allowed(None)
        {
            return Err(format!(
                "{ip} is {what}, refused by --deny-private-targets (--allow-target-net lets chosen networks through)"
            ));
        }
        Ok(())
    }

    /// Refuses a URL whose host is an address [`TargetGuard::check`]
    /// refuses, when it is given (an endpoint's URLs, a replay's target),
    /// rather than at every delivery. A name is checked when it is
    /// connected to: what it resolves to may change.
    pub fn check_url(&self, field: &str, url: &str) -> Result<(), String> {
        let Ok(uri) = url.parse::<Uri>() else {
            return Ok(());
        };
        let ip = literal(&uri).or_else(|| uri.host().and_then(inet_aton));
        match ip.map(|ip| self.check(ip)) {
            Some(Err(why)) => Err(format!("{field}: {why}")),
            _ => Ok(()),
        }
    }
}

/// The host of `uri` when it is an IP address (an IPv6 one in brackets) as
/// hyper's connector reads one: it hands every other host to the resolver.
fn literal(uri: &Uri) -> Option<IpAddr> {
    uri.host()?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// An IPv4 address in any spelling the C library's resolver takes as one
/// (`inet_aton`): one to four parts, each decimal, octal (`0…`) or hex
/// (`0x…`), the last filling the bytes left — `2130706433`, `0177.0.0.1`,
/// `127.1` and `0x7f.1` are all 127.0.0.1.
pub fn inet_aton(host: &str) -> Option<IpAddr> {
    let parts: Vec<u64> = host
        .split('.')
        .map(|p| {
            let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
                Some(hex) => (hex, 16),
                None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
                None => (p, 10),
            };
            // `from_str_radix` would take a sign, and the C library does not.
            if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u64::from_str_radix(digits, radix).ok()
        })
        .collect::<Option<_>>()?;
    let (last, lead) = parts.split_last()?;
    if lead.len() > 3 || lead.iter().any(|&p| p > 255) {
        return None;
    }
    let room = 8 * (4 - lead.len() as u32);
    if *last >= 1u64 << room {
        return None;
    }
    let high = lead
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, &p)| acc | (p << (24 - 8 * i)));
    Some(IpAddr::V4(Ipv4Addr::from((high | last) as u32)))
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, 6to4 or
/// well-known-prefix NAT64 address, which is where a connection to it may
/// end up; `::` and `::1` stay themselves.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let v4 = |hi: u16, lo: u16| {
                let [a, b] = hi.to_be_bytes();
                let [c, d] = lo.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(a, b, c, d))
            };
            let compatible = s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback();
            if compatible || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                return v4(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return v4(s[1], s[2]);
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// A table of ranges, parsed once: every new outbound connection is checked.
type Ranges = LazyLock<Vec<(IpNet, &'static str)>>;

static ALWAYS_NETS: Ranges = LazyLock::new(|| parse(ALWAYS));
static PRIVATE_NETS: Ranges = LazyLock::new(|| parse(PRIVATE));
static GLOBAL_INSIDE_PRIVATE_NETS: Ranges = LazyLock::new(|| parse(GLOBAL_INSIDE_PRIVATE));

fn parse(table: &[(&str, &'static str)]) -> Vec<(IpNet, &'static str)> {
    table
        .iter()
        .map(|(net, what)| (net.parse().expect("valid range in the table"), *what))
        .collect()
}

fn find(ranges: &[(IpNet, &'static str)], ip: IpAddr) -> Option<(IpNet, &'static str)> {
    ranges.iter().find(|(net, _)| net.contains(&ip)).copied()
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A connection the guard refused: the delivery's error chain carries it,
/// so the attempt says why (and is not taken for a TLS failure because a
/// host name has "tls" in it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// The system resolver, keeping only the addresses the guard allows.
#[derive(Clone)]
pub struct Resolver {
    gai: GaiResolver,
    guard: Arc<TargetGuard>,
}

impl Service<Name> for Resolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.gai.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_string();
        let lookup = self.gai.call(name);
        let guard = Arc::clone(&self.guard);
        Box::pin(async move {
            let mut refused = None;
            let kept: Vec<SocketAddr> = lookup
                .await?
                .filter(|a| match guard.check(a.ip()) {
                    Ok(()) => true,
                    Err(why) => {
                        refused.get_or_insert(why);
                        false
                    }
                })
                .collect();
            match refused {
                Some(why) if kept.is_empty() => Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    Refused(format!("{host}: {why}")),
                )),
                Some(why) => {
                    // Its other addresses are tried; should they fail, the
                    // attempt's error names only them.
                    tracing::debug!(%host, "{why}; trying its other addresses");
                    Ok(kept.into_iter())
                }
                None => Ok(kept.into_iter()),
            }
        })
    }
}

/// hyper's TCP connector behind the guard. Names go through [`Resolver`];
/// IP literals, which the connector never hands to a resolver, are checked
/// here.
#[derive(Clone)]
pub struct Connector {
    inner: HttpConnector<Resolver>,
    guard: Arc<TargetGuard>,
}

impl Connector {
    /// A TCP connector; configure it through [`Connector::tcp`].
    pub fn new(guard: Arc<TargetGuard>) -> Connector {
        let resolver = Resolver {
            gai: GaiResolver::new(),
            guard: Arc::clone(&guard),
        };
        Connector {
            inner: HttpConnector::new_with_resolver(resolver),
            guard,
        }
    }

    /// The wrapped connector, for its socket settings.
    pub fn tcp(&mut self) -> &mut HttpConnector<Resolver> {
        &mut self.inner
    }
}

impl Service<Uri> for Connector {
    type Response = <HttpConnector<Resolver> as Service<Uri>>::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        if let Some(Err(why)) = literal(&uri).map(|ip| self.guard.check(ip)) {
            return Box::pin(std::future::ready(Err(Box::new(Refused(why)) as BoxError)));
        }
        let connect = self.inner.call(uri);
        Box::pin(async move { connect.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn by_default_only_link_local_is_refused() {
        let g = TargetGuard::default();
        for bad in [
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "fd00:ec2::23",
            "fd20:ce::254",
            "100.100.100.200",
            "168.63.129.16",
        ] {
            let why = g.check(ip(bad)).expect_err(bad);
            assert!(why.contains("--allow-target-net"), "{why}");
        }
        for ok in [
            "127.0.0.1",
            "::1",
            "10.1.2.3",
            "192.168.0.1",
            "8.8.8.8",
            "2001:db8::1",
        ] {
            assert_eq!(g.check(ip(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn deny_private_refuses_every_non_public_range_and_its_ipv6_spellings() {
        let g = TargetGuard {
            deny_private: true,
            ..TargetGuard::default()
        };
        for bad in [
            "127.0.0.1",
            "127.1.2.3",
            "0.0.0.0",
            "10.0.0.1",
            "100.64.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "169.254.169.254",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "192.0.2.1",
            "203.0.113.5",
            "2001:db8::1",
            "2001::1",
            "2001:1::1",
            "2001:1::3",
            "192.0.0.9",
            "192.0.0.10",
            "192.0.0.11",
            "100:0:0:1::1",
            "100::1",
            "fec0::1",
            "2002:7f00:1::",
        ] {
            assert!(g.check(ip(bad)).is_err(), "{bad} let through");
        }
        for ok in [
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::",
            // Globally reachable inside the ranges around them.
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:30::1",
        ] {
            assert_eq!(g.check(ip(ok)), Ok(()), "{ok}");
        }
        let why = g.check(ip("::ffff:127.0.0.1")).unwrap_err();
        assert!(why.starts_with("127.0.0.1 is a loopback address"), "{why}");
    }

    #[test]
    fn allowed_networks_pass_both_rules() {
        let g = TargetGuard {
            deny_private: true,
            allow: vec![
                "127.0.0.1/32".parse().unwrap(),
                "169.254.0.0/16".parse().unwrap(),
            ],
            off: false,
        };
        assert_eq!(g.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(g.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(g.check(ip("169.254.169.254")), Ok(()));
        assert!(g.check(ip("127.0.0.2")).is_err());
        assert!(g.check(ip("::1")).is_err());
    }

    #[test]
    fn urls_are_checked_by_their_literal_host_only() {
        let g = TargetGuard {
            deny_private: true,
            ..TargetGuard::default()
        };
        let why = g.check_url("mirror", "http://[::1]:8080/x").unwrap_err();
        assert!(why.starts_with("mirror: ::1 is a"), "{why}");
        assert!(g.check_url("target", "http://10.1.2.3/").is_err());
        assert_eq!(
            g.check_url("target", "http://localhost:8080/"),
            Ok(()),
            "resolved at connect time"
        );
        assert_eq!(g.check_url("target", "https://93.184.215.14/"), Ok(()));
        for odd in [
            "http://2130706433/",
            "http://0x7f.1:8080/",
            "http://127.1/",
            "http://0/",
        ] {
            assert!(g.check_url("target", odd).is_err(), "{odd}");
        }
    }

    #[test]
    fn an_always_refused_range_opens_only_to_a_network_inside_it() {
        let broad = TargetGuard {
            allow: vec!["fd00::/8".parse().unwrap(), "0.0.0.0/0".parse().unwrap()],
            ..TargetGuard::default()
        };
        assert!(broad.check(ip("fd00:ec2::254")).is_err());
        assert!(broad.check(ip("169.254.169.254")).is_err());
        assert_eq!(broad.check(ip("fd12::1")), Ok(()));
        let named = TargetGuard {
            allow: vec!["169.254.169.254/32".parse().unwrap()],
            ..TargetGuard::default()
        };
        assert_eq!(named.check(ip("169.254.169.254")), Ok(()));
        assert!(named.check(ip("169.254.169.253")).is_err());
    }

    #[test]
    fn ipv4_spellings_the_resolver_accepts() {
        for s in [
            "2130706433",
            "0177.0.0.1",
            "127.1",
            "127.0.1",
            "0x7f.1",
            "0X7F000001",
            "017700000001",
            "127.000.000.001",
        ] {
            assert_eq!(inet_aton(s), Some(ip("127.0.0.1")), "{s}");
        }
        assert_eq!(inet_aton("0"), Some(ip("0.0.0.0")));
        assert_eq!(inet_aton("0xa9fea9fe"), Some(ip("169.254.169.254")));
        for s in [
            "example.com",
            "1.2.3.4.5",
            "256.1.1.1",
            "1.16777216",
            "08",
            "1..2",
            "",
            "4294967296",
        ] {
            assert_eq!(inet_aton(s), None, "{s}");
        }
    }

    #[test]
    fn off_lets_everything_through() {
        assert_eq!(TargetGuard::off().check(ip("169.254.169.254")), Ok(()));
    }
}
