//! The shape of a request hookrelay sends on: the target URL joined with
//! the event's path and query, hop-by-hop headers dropped, the sender named
//! in `X-Forwarded-*`/`Forwarded`, this hop in `Via`.

use http::Uri;

use crate::deliver;
use crate::error::{Error, Result};
use crate::event::{Event, Headers};

/// Headers for an outbound copy, in the order received: hop-by-hop dropped,
/// and who sent it in `X-Forwarded-*` — the peer appended to the last
/// `X-Forwarded-For` line (the list goes on), `X-Forwarded-Host`/`-Proto`
/// set where they stand. Replays get the same as the first delivery did: a
/// receiver behind a proxy-aware framework (`force_ssl` and the like) must
/// see a replay of an HTTPS event as HTTPS (a documented deviation).
pub fn forward_headers(ev: &Event) -> Headers {
    let mut h = deliver::strip_hop_by_hop(&ev.headers);
    join_cookies(&mut h);
    // The hop's other facts that frameworks build URLs from (Spring,
    // ASP.NET, Rails read a port or prefix): a sender's own are its
    // choice, so only a trusted proxy's go on (Traefik drops them alike).
    if ev.proxy_addr.is_none() {
        h.retain(|(n, _)| !UNVOUCHED.iter().any(|u| n.eq_ignore_ascii_case(u)));
    }
    // A test ping has no sender to name: no `X-Forwarded-*` (a receiver
    // that parses `X-Forwarded-For` would choke on anything but an address).
    // The hop hookrelay saw: a trusted proxy's address when the event
    // names the client behind it.
    let seen = ev.proxy_addr.as_deref().unwrap_or(&ev.remote_addr);
    let peer = (seen.parse::<std::net::SocketAddr>().map(|a| a.ip()))
        .or_else(|_| seen.parse::<std::net::IpAddr>());
    let Ok(peer) = peer else {
        return h;
    };
    append_list(&mut h, "x-forwarded-for", peer.to_string().as_bytes());
    // HTTP/2 carries the host in `:authority`; with neither, a sender's
    // own value must not pass as hookrelay's.
    let host = ev
        .header("host")
        .map(<[u8]>::to_vec)
        .or_else(|| ev.authority.clone().map(String::into_bytes));
    match &host {
        Some(host) => set_in_place(&mut h, "x-forwarded-host", host.clone()),
        None => h.retain(|(n, _)| !n.eq_ignore_ascii_case("x-forwarded-host")),
    }
    let proto: &[u8] = if ev.tls { b"https" } else { b"http" };
    set_in_place(&mut h, "x-forwarded-proto", proto.to_vec());
    // The other names of the same facts, only where the sender used them
    // (receivers read one or the other): its `Forwarded` gets this hop's
    // element after its own, as `X-Forwarded-For` does, and an
    // `X-Real-IP` from the sender itself, not from a trusted proxy, is
    // replaced by the address it came from, so neither tells the receiver
    // what the sender chose.
    if h.iter().any(|(n, _)| n.eq_ignore_ascii_case("forwarded")) {
        let element = forwarded_element(peer, host.as_deref(), proto);
        append_list(&mut h, "forwarded", element.as_bytes());
    }
    if ev.proxy_addr.is_none() && h.iter().any(|(n, _)| n.eq_ignore_ascii_case("x-real-ip")) {
        set_in_place(&mut h, "x-real-ip", peer.to_string().into_bytes());
    }
    h
}

/// `X-Forwarded-*` headers hookrelay does not set and sends on only from a
/// trusted proxy.
const UNVOUCHED: [&str; 10] = [
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-server",
    "x-forwarded-uri",
    "x-forwarded-method",
    "x-forwarded-ssl",
    "x-forwarded-scheme",
    "x-forwarded-protocol",
    "x-url-scheme",
    "front-end-https",
];

/// One `Cookie` line, where the first stood: HTTP/2 senders split cookies
/// into a field each (RFC 9113 §8.2.3), and an HTTP/1.1 receiver may read
/// only the first line (RFC 6265 allows one), losing the rest.
fn join_cookies(h: &mut Headers) {
    let lines: Vec<&[u8]> = h
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .map(|(_, v)| v.trim_ascii())
        .collect();
    if lines.len() > 1 {
        // An empty line adds no pair (and no stray `; `).
        let pairs: Vec<&[u8]> = lines.into_iter().filter(|v| !v.is_empty()).collect();
        set_in_place(h, "cookie", pairs.join(&b"; "[..]));
    }
}

/// This hop's element of an RFC 7239 `Forwarded` list.
fn forwarded_element(peer: std::net::IpAddr, host: Option<&[u8]>, proto: &[u8]) -> String {
    let quoted = |v: &str| format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    let mut element = match peer {
        std::net::IpAddr::V4(v4) => format!("for={v4}"),
        std::net::IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    };
    if let Some(host) = host {
        element.push_str(";host=");
        element.push_str(&quoted(&String::from_utf8_lossy(host)));
    }
    element.push_str(";proto=");
    element.push_str(&String::from_utf8_lossy(proto));
    element
}

/// Names this hop in `Via` (RFC 9110 §7.6.3), after the hops before it,
/// with the endpoint it was sent for as the comment.
pub(super) fn add_via(h: &mut Headers, name: &str, slug: Option<&str>) {
    let hop = match slug {
        Some(slug) => format!("1.1 {name} ({slug})"),
        None => format!("1.1 {name}"),
    };
    append_list(h, "via", hop.as_bytes());
}

/// Adds `item` to the comma list in the last `name` header (where the
/// sender had it, so the order stays), or a new header at the end. An empty
/// line is replaced: an empty first entry would be read by parsers that
/// take the first one (the client, for `X-Forwarded-For`).
fn append_list(h: &mut Headers, name: &str, item: &[u8]) {
    match h
        .iter_mut()
        .rev()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some((_, v)) if v.trim_ascii().is_empty() => *v = item.to_vec(),
        Some((_, v)) => {
            v.extend_from_slice(b", ");
            v.extend_from_slice(item);
        }
        None => h.push((name.into(), item.to_vec())),
    }
}

/// Gives the first `name` header `value` (later ones go), or appends it.
pub(super) fn set_in_place(h: &mut Headers, name: &str, value: Vec<u8>) {
    let mut value = Some(value);
    h.retain_mut(|(n, v)| {
        if !n.eq_ignore_ascii_case(name) {
            return true;
        }
        match value.take() {
            Some(new) => {
                *v = new;
                true
            }
            None => false,
        }
    });
    if let Some(v) = value {
        h.push((name.into(), v));
    }
}

/// `target` + the event's path suffix + query (the target's own query first).
pub fn join_url(target: &str, rest: &str, query: Option<&str>) -> Result<Uri> {
    if crate::capture::has_dot_segment(rest) {
        return Err(Error::BadRequest(format!(
            "the event's path {rest:?} has a '.' or '..' segment; it is not sent on, as it would reach other paths on the target"
        )));
    }
    join_url_text(target, rest, query)
        .parse()
        .map_err(|_| Error::BadRequest(format!("cannot build a URL from {target:?} and {rest:?}")))
}

/// [`join_url`]'s text, unchecked (for "Copy as curl", which says what the
/// check would refuse).
pub fn join_url_text(target: &str, rest: &str, query: Option<&str>) -> String {
    let (base, target_query) = match target.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (target, None),
    };
    let mut url = base.to_string();
    if !rest.is_empty() {
        if url.ends_with('/') && rest.starts_with('/') {
            url.pop();
        }
        url.push_str(rest);
    }
    // An empty query (`/in/x?`) is sent as one: the URL is what some
    // senders sign (Twilio), byte for byte.
    let parts = [target_query, query];
    if parts.iter().any(Option::is_some) {
        url.push('?');
        let q: Vec<&str> = parts
            .into_iter()
            .flatten()
            .filter(|q| !q.is_empty())
            .collect();
        url.push_str(&q.join("&"));
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_join() {
        let check = |t: &str, rest: &str, q: Option<&str>, want: &str| {
            assert_eq!(join_url(t, rest, q).unwrap().to_string(), want);
        };
        check("http://h:1", "", None, "http://h:1/");
        check("http://h:1/hook", "", Some("a=1"), "http://h:1/hook?a=1");
        check("http://h:1/hook/", "/x/y", None, "http://h:1/hook/x/y");
        check(
            "http://h:1/hook?k=v",
            "/x",
            Some("a=1"),
            "http://h:1/hook/x?k=v&a=1",
        );
        check("http://h:1/hook", "", Some(""), "http://h:1/hook?");
        check(
            "http://h:1/hook?k=v",
            "/x",
            Some(""),
            "http://h:1/hook/x?k=v",
        );
    }

    #[test]
    fn cookie_fields_go_on_as_one_line_where_the_first_stood() {
        let mut h: Headers = [
            ("Cookie", ""),
            ("Cookie", "a=1"),
            ("x-a", "1"),
            ("cookie", "b=2"),
            ("x-b", "2"),
        ]
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
        join_cookies(&mut h);
        let got: Vec<(&str, &[u8])> = h.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
        assert_eq!(
            got,
            [("Cookie", &b"a=1; b=2"[..]), ("x-a", b"1"), ("x-b", b"2")]
        );
    }

    #[test]
    fn a_forwarded_element_quotes_what_rfc_7239_needs_quoted() {
        let v6: std::net::IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            forwarded_element(v6, Some(b"a.example:8080"), b"https"),
            r#"for="[2001:db8::1]";host="a.example:8080";proto=https"#
        );
        let v4: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(
            forwarded_element(v4, Some(br#"a"\b"#), b"http"),
            r#"for=192.0.2.7;host="a\"\\b";proto=http"#
        );
        assert_eq!(
            forwarded_element(v4, None, b"http"),
            "for=192.0.2.7;proto=http"
        );
    }
}
