//! Capture: an inbound request turned into an [`Event`], with no I/O.
//!
//! What the sender sent is kept as sent: method, path suffix, query, headers
//! in received order with raw value bytes, body bytes, peer address.
//! Header names arrive lower-cased from hyper (HTTP/1 case is not exposed by
//! hyper's public API; HTTP/2 is lower-case by definition).

use std::net::SocketAddr;

use http::request::Parts;

use crate::event::{Event, EventState, Headers};

/// The path suffix after `/in/{slug}`, or `None` when `path` is not an
/// ingest path. Returns `(slug, rest)`: the slug decoded (`/in/%62in` is
/// `/in/bin`, RFC 3986 §6.2.2.2; one that does not decode to text stays as
/// sent, and names no endpoint), the rest as sent, to be forwarded so.
pub fn split_ingest_path(path: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    let after = path.strip_prefix("/in/")?;
    let (slug, rest) = match after.find('/') {
        Some(i) => (&after[..i], &after[i..]),
        None => (after, ""),
    };
    let slug = percent_encoding::percent_decode_str(slug)
        .decode_utf8()
        .unwrap_or(std::borrow::Cow::Borrowed(slug));
    Some((slug, rest))
}

/// Whether a path suffix holds a `.` or `..` segment as some receiver may
/// read it: plain or percent-encoded (`%2e`, also encoded twice as
/// `%252e`), between separators a receiver may take for `/` (`%2f`, `\`,
/// `%5c`), with path parameters ignored (`..;x`, as Tomcat and Jetty read
/// it). Sent on, it would reach paths outside the target's own once the
/// receiver (or a proxy before it) resolves it.
pub fn has_dot_segment(rest: &str) -> bool {
    // Most paths hold none of these: no allocation on the hot path.
    if !rest.contains(['.', '%', '\\']) {
        return false;
    }
    let mut path = rest.to_ascii_lowercase();
    // `%25` is `%`: undo repeated encoding (bounded: each pass shortens).
    for _ in 0..4 {
        if !path.contains("%25") {
            break;
        }
        path = path.replace("%25", "%");
    }
    // Besides the standard escapes: overlong UTF-8 (`%c0%ae`) and IIS's
    // `%u002e`, which lenient decoders still turn into `.` and `/`.
    for (escape, plain) in [
        ("%c0%ae", "."),
        ("%e0%80%ae", "."),
        ("%u002e", "."),
        ("%2e", "."),
        ("%c0%af", "/"),
        ("%u002f", "/"),
        ("%2f", "/"),
        ("%c1%9c", "/"),
        ("%u005c", "/"),
        ("%5c", "/"),
        ("%3b", ";"),
        ("%20", " "),
        ("%09", " "),
        ("\\", "/"),
    ] {
        if path.contains(escape) {
            path = path.replace(escape, plain);
        }
    }
    path.split('/').any(|seg| {
        // Windows drops a name's trailing spaces: `..%20` is `..` there.
        let seg = seg.split(';').next().unwrap_or("").trim_end_matches(' ');
        seg == "." || seg == ".."
    })
}

/// Why a request's host is refused, if it is. An HTTP/1.1 request without
/// `Host`, or with one that is no host (`a b`, `x, evil.example`,
/// `user@x`, `x:99999`): RFC 9112 §3.2 says `400`, and its value would
/// pass on in `X-Forwarded-Host`. A request that names its host twice,
/// differently: two `Host` headers, a `Host` that names another authority than
/// HTTP/2's `:authority` (RFC 9113 §8.3.1) or than an HTTP/1 request in
/// absolute form (`POST http://a.example/in/x`, where RFC 9112 §3.2.2 has
/// the request line win). Which of them a check (the admin's loopback and
/// same-origin checks, `X-Forwarded-Host`) read would be the sender's to
/// choose; both listeners refuse it. A port left out is the scheme's
/// default, so `a.example` and `a.example:443` over https agree.
pub fn bad_host(
    version: http::Version,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> Option<&'static str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let Some(host) = hosts.next() else {
        // HTTP/2 carries it in `:authority`; HTTP/1.0 may leave it out.
        return (version == http::Version::HTTP_11)
            .then_some("an HTTP/1.1 request without a Host header");
    };
    if hosts.next().is_some() {
        return Some("more than one Host header");
    }
    if !is_host(host.as_bytes()) {
        return Some("a Host header that is not a host name or address (with an optional port)");
    }
    let authority = uri.authority()?;
    let default_port = match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => 443,
        _ => 80,
    };
    let named = |a: &http::uri::Authority| {
        let host = a.host().to_ascii_lowercase();
        (host, a.port_u16().unwrap_or(default_port))
    };
    let same = http::uri::Authority::try_from(host.as_bytes())
        .is_ok_and(|h| named(&h) == named(authority));
    match (same, version) {
        (true, _) => None,
        (false, http::Version::HTTP_2) => {
            Some("a Host header that names another host than :authority")
        }
        (false, _) => Some("a Host header that names another host than the request line"),
    }
}

/// `host[:port]` as senders name a host: a DNS name (letters, digits,
/// `-`, `.`, `_`), an IPv4 address or a bracketed IPv6 one, and a port of
/// 0 to 65535. Stricter than RFC 3986's reg-name, which lets in commas and
/// the like that no resolvable host has and that readers of
/// `X-Forwarded-Host` split on.
fn is_host(v: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    let (name, port) = match v.strip_prefix('[') {
        Some(rest) => {
            let Some((ip, after)) = rest.split_once(']') else {
                return false;
            };
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return false;
            }
            match after {
                "" => (None, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (None, Some(port)),
                    None => return false,
                },
            }
        }
        None => match v.split_once(':') {
            Some((name, port)) => (Some(name), Some(port)),
            None => (Some(v), None),
        },
    };
    let name_ok = name.is_none_or(|n| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    });
    // RFC 3986 lets the port be empty (`a.example:`): its default.
    let port_ok = port.is_none_or(|p| {
        p.is_empty() || (p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok())
    });
    name_ok && port_ok
}

pub fn headers_of(parts: &Parts) -> Headers {
    parts
        .headers
        .iter()
        .filter_map(|(n, v)| {
            let v = if n == http::header::COOKIE {
                without_session(v.as_bytes())?
            } else {
                v.as_bytes().to_vec()
            };
            Some((n.as_str().to_string(), v))
        })
        .collect()
}

/// A `Cookie` line without the dashboard's login (`None` when nothing else
/// is left): a browser logged in to the dashboard sends it to the ingest
/// port of the same host too, since cookies ignore ports, and it must not
/// be stored, shown and forwarded with the event. Any instance's is left
/// out (`hookrelay_session_{port}`, and the bare name of older versions).
/// The other cookies are kept, joined with `; ` again (a line without the
/// login is untouched).
fn without_session(line: &[u8]) -> Option<Vec<u8>> {
    let name = crate::admin::dashboard::security::SESSION_COOKIE.as_bytes();
    let is_session = |pair: &[u8]| {
        let Some(rest) = pair.trim_ascii_start().strip_prefix(name) else {
            return false;
        };
        let rest = match rest.strip_prefix(b"_") {
            Some(port) => {
                let digits = port.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 {
                    return false;
                }
                &port[digits..]
            }
            None => rest,
        };
        rest.trim_ascii_start().starts_with(b"=")
    };
    if !line.split(|b| *b == b';').any(is_session) {
        return Some(line.to_vec());
    }
    let kept: Vec<&[u8]> = line
        .split(|b| *b == b';')
        .filter(|p| !is_session(p) && !p.trim_ascii().is_empty())
        .map(|p| p.trim_ascii())
        .collect();
    (!kept.is_empty()).then(|| kept.join(&b"; "[..]))
}

pub fn capture(
    id: String,
    parts: &Parts,
    slug: &str,
    rest: &str,
    body_len: usize,
    remote: SocketAddr,
    now_ms: u64,
) -> Event {
    Event {
        id,
        endpoint: slug.to_string(),
        received_at: now_ms,
        method: parts.method.as_str().to_string(),
        path: rest.to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: headers_of(parts),
        size: body_len as u64,
        remote_addr: remote.to_string(),
        state: EventState::Received,
        topic: None,
        external_id: None,
        duplicate_of: None,
        signature: None,
        attempts: 0,
        last_status: None,
        tries: 0,
        mirror_status: None,
        target_tried: false,
        owed: false,
        tls: false,
        proxy_addr: None,
        // HTTP/2's `:authority` only (an HTTP/1 request in absolute form
        // names what it likes), and never its userinfo part.
        authority: match parts.version == http::Version::HTTP_2
            && !parts.headers.contains_key(http::header::HOST)
        {
            true => parts.uri.authority().map(|a| {
                let a = a.as_str();
                a.rsplit_once('@').map_or(a, |(_, host)| host).to_string()
            }),
            false => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_a_name_or_an_address_with_an_optional_port() {
        for good in [
            "a.example",
            "A-b_c.example:8080",
            "127.0.0.1",
            "127.0.0.1:65535",
            "[::1]",
            "[2001:db8::1]:443",
            "a.example:",
        ] {
            assert!(is_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "a b",
            "x, evil.example",
            "user@x",
            "x:notaport",
            "x:99999",
            "x:1:2",
            "[::1",
            "[nope]",
            "[::1]x",
            "x/y",
            ":80",
            "caf\u{e9}.example",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn a_host_named_twice_differently_is_ambiguous() {
        use http::{HeaderMap, HeaderValue, Uri, Version};
        let h = |hosts: &[&str]| {
            let mut m = HeaderMap::new();
            for v in hosts {
                m.append(http::header::HOST, HeaderValue::from_str(v).unwrap());
            }
            m
        };
        let origin: Uri = "/in/x".parse().unwrap();
        let h2: Uri = "http://a.example:8080/in/x".parse().unwrap();
        let tls: Uri = "https://a.example/in/x".parse().unwrap();
        let plain: Uri = "http://a.example/in/x".parse().unwrap();
        let cases: [(Version, &Uri, &[&str], bool); 17] = [
            (Version::HTTP_11, &origin, &["a.example"], false),
            (Version::HTTP_11, &origin, &[], true),
            (Version::HTTP_10, &origin, &[], false),
            (Version::HTTP_11, &origin, &["a.example", "b.example"], true),
            (Version::HTTP_11, &origin, &["a.example", "a.example"], true),
            (Version::HTTP_2, &h2, &[], false),
            (Version::HTTP_2, &h2, &["A.example:8080"], false),
            (Version::HTTP_2, &h2, &["b.example"], true),
            (Version::HTTP_2, &h2, &["a.example"], true),
            (Version::HTTP_2, &tls, &["a.example:443"], false),
            (Version::HTTP_2, &tls, &["a.example:80"], true),
            (Version::HTTP_2, &plain, &["a.example:80"], false),
            (Version::HTTP_2, &h2, &["a.example:8080 "], true),
            // Absolute form over HTTP/1: the request line names the host.
            (Version::HTTP_11, &plain, &["a.example"], false),
            (Version::HTTP_11, &plain, &["a.example:80"], false),
            (Version::HTTP_11, &h2, &["127.0.0.1:8081"], true),
            (Version::HTTP_10, &plain, &["b.example"], true),
        ];
        for (version, uri, hosts, want) in cases {
            assert_eq!(
                bad_host(version, uri, &h(hosts)).is_some(),
                want,
                "{version:?} {uri} {hosts:?}"
            );
        }
    }

    #[test]
    fn the_dashboard_login_is_not_captured() {
        let cases: [(&[u8], Option<&[u8]>); 7] = [
            (b"a=1; b=2", Some(b"a=1; b=2")),
            (b"hookrelay_session=abc", None),
            (b"hookrelay_session_9001=abc; a=1", Some(b"a=1")),
            (
                b"hookrelay_session_=1; hookrelay_session_1x=2",
                Some(b"hookrelay_session_=1; hookrelay_session_1x=2"),
            ),
            (b"a=1; hookrelay_session=abc; b=2", Some(b"a=1; b=2")),
            (
                b"hookrelay_session_x=1;hookrelay_session=abc",
                Some(b"hookrelay_session_x=1"),
            ),
            (b"  a=1 ;hookrelay_session =abc", Some(b"a=1")),
        ];
        for (line, want) in cases {
            assert_eq!(
                without_session(line).as_deref(),
                want,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn ingest_paths() {
        let split = |p| split_ingest_path(p).map(|(s, r)| (s.into_owned(), r));
        assert_eq!(split("/in/shop"), Some(("shop".into(), "")));
        assert_eq!(split("/in/shop/a/b"), Some(("shop".into(), "/a/b")));
        assert_eq!(split("/in/shop/"), Some(("shop".into(), "/")));
        assert_eq!(split("/in/"), Some(("".into(), "")));
        assert_eq!(split("/other"), None);
        // The slug is decoded; the rest is forwarded as sent.
        assert_eq!(split("/in/%73hop/%61"), Some(("shop".into(), "/%61")));
        assert_eq!(split("/in/sh%2"), Some(("sh%2".into(), "")));
        assert_eq!(split("/in/%ff"), Some(("%ff".into(), "")));
    }

    #[test]
    fn dot_segments() {
        for bad in [
            "/..",
            "/../admin",
            "/a/./b",
            "/%2e%2e/x",
            "/%2E%2e",
            "/.%2e/x",
            "/a/%2e",
            "/..%2fadmin",
            "/..%2Fadmin",
            "/..\\admin",
            "/a%5c..%5cb",
            "/..;/admin",
            "/..;jsessionid=1/admin",
            "/%252e%252e%252fadmin",
            "/%25252e%25252e/x",
            "/..%20/admin",
            "/..%09",
            "/%c0%ae%c0%ae/x",
            "/%C0%AE%c0%ae%c0%afadmin",
            "/%e0%80%ae%e0%80%ae/x",
            "/%u002e%u002e/x",
            "/..%u002fadmin",
            "/..%c1%9cadmin",
        ] {
            assert!(has_dot_segment(bad), "{bad}");
        }
        for ok in [
            "",
            "/",
            "/a/b",
            "/v1.2/x",
            "/...",
            "/a..b",
            "/.well-known/x",
            "/%2e%2e%2e",
            "/a;v=1/b",
            "/x%25y",
            "/a%20b/..c",
            "/%20../x",
            "/%c0%af",
        ] {
            assert!(!has_dot_segment(ok), "{ok}");
        }
    }
}
