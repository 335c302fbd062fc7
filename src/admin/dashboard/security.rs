//! The dashboard's request checks: CSRF tokens, the `Origin` rule, the login
//! session cookie and the one-shot flash cookie.
//!
//! - **CSRF token**: HMAC-SHA256 of a fixed label under a random key made at
//!   process start. Every state-changing form carries it; a page on another
//!   site cannot read it (same-origin policy, no CORS headers here).
//! - **Origin**: a state-changing request whose `Origin` is present and is
//!   not this host is refused (it also covers the JSON API, which browsers
//!   can reach from any page on the same machine: the admin listener is on
//!   loopback by default, so "not reachable from the internet" is not a
//!   defence against a page the developer has open).
//! - **Session**: with `--admin-token`, `/login` sets `hookrelay_session_{port}`
//!   (the admin listener's port: browsers keep one cookie jar per host, so
//!   two instances on one machine would otherwise log each other out) to
//!   a random id that [`Sessions`] knows for a day, until logout, or until
//!   the process ends. A value derived from the token alone would never
//!   expire, outlive a logout, and grant access wherever it leaked — and
//!   browsers send it to the ingest port of the same host too (cookies
//!   ignore ports), which is why ingest drops it from captured requests.
//! - **Wrong guesses** at the token (login form or `Bearer`): five at once
//!   per client address, then one a second; beyond that `429` without
//!   looking at the token ([`Throttle`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use axum::http::{HeaderMap, HeaderValue, Uri, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The session cookie's name without its `_{port}` suffix.
pub const SESSION_COOKIE: &str = "hookrelay_session";
pub const FLASH_COOKIE: &str = "hookrelay_flash";
/// Name of the hidden form field carrying the CSRF token.
pub const CSRF_FIELD: &str = "_csrf";
/// Browser sessions last a working day (and a night of debugging).
pub const SESSION_MAX_AGE_S: u64 = 24 * 3600;

fn hmac_hex(key: &[u8], label: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(label.as_bytes());
    m.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The per-process CSRF key. `Ulid::generate()` draws its 80 random bits from
/// `rand`'s thread RNG (ChaCha, seeded by the OS), so three of them give a
/// 240-bit key without adding a dependency for it.
fn csrf_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        (0..3)
            .flat_map(|_| ulid::Ulid::generate().random().to_be_bytes())
            .collect()
    })
}

/// The token every state-changing dashboard form carries: bound to the
/// browser's login session when it has one (`session`: its cookie's value),
/// so a token one session saw is worth nothing to another; one per process
/// otherwise (no login in use, or the login form itself).
pub fn csrf_token(session: Option<&str>) -> String {
    match session {
        Some(id) => hmac_hex(csrf_key(), &format!("hookrelay-csrf-v2\n{id}")),
        None => hmac_hex(csrf_key(), "hookrelay-csrf-v1"),
    }
}

pub fn csrf_ok(given: &str, session: Option<&str>) -> bool {
    bool::from(given.as_bytes().ct_eq(csrf_token(session).as_bytes()))
}

/// True unless the request says it comes from another origin: a
/// `Sec-Fetch-Site: cross-site`, or an `Origin` other than this request's
/// host with `http://` or `https://` in front (or `null` from a
/// same-origin page). Requests without `Origin` (curl, the CLI) pass;
/// dashboard forms still need their CSRF token.
pub fn same_origin(headers: &HeaderMap, uri: &Uri) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    // With `Referrer-Policy: no-referrer` (which a browser's own settings
    // may force, and earlier versions sent) browsers send `Origin: null`
    // even on a same-origin form POST; `Sec-Fetch-Site`, which pages cannot forge,
    // then says where the request came from.
    if origin.as_bytes() == b"null" {
        return headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin"));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| uri.authority().map(|a| a.to_string()));
    let Some(host) = host else { return false };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    origin.eq_ignore_ascii_case(&format!("http://{host}"))
        || origin.eq_ignore_ascii_case(&format!("https://{host}"))
}

/// The value of cookie `name`, if the request has it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Logged-in browsers: a random id per login, kept in memory only. Ids are
/// looked up by their SHA-256, so lookup timing says nothing about them.
pub struct Sessions {
    /// The cookie's name: [`SESSION_COOKIE`] and the admin port.
    cookie: String,
    /// SHA-256 of the id (hex) -> when it ends (ms since the epoch).
    live: Mutex<HashMap<String, u64>>,
    /// Told of every logout, for answers that outlive their request's
    /// check (see [`SessionWatch`]).
    ended: tokio::sync::watch::Sender<()>,
}

/// Logins kept at once; the oldest goes first beyond it.
const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    /// Sessions of the dashboard served on `admin_port`.
    pub fn for_port(admin_port: u16) -> Sessions {
        Sessions {
            cookie: format!("{SESSION_COOKIE}_{admin_port}"),
            live: Mutex::default(),
            ended: tokio::sync::watch::Sender::new(()),
        }
    }

    /// The name of this dashboard's session cookie.
    pub fn cookie_name(&self) -> &str {
        &self.cookie
    }

    /// The request's session cookie value, valid or not: what its forms'
    /// CSRF token is bound to.
    pub fn id<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, &self.cookie)
    }

    fn key(id: &str) -> String {
        Sha256::digest(id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; returns its `Set-Cookie`. HttpOnly: no script
    /// reads it; SameSite=Strict: no other site's page sends it. Not
    /// `Secure`, because the admin listener serves plain HTTP (on loopback
    /// by default).
    pub fn start(&self) -> HeaderValue {
        let id: String = (0..3)
            .flat_map(|_| ulid::Ulid::generate().random().to_be_bytes())
            .map(|b| format!("{b:02x}"))
            .collect();
        let now = crate::time::now_ms();
        {
            let mut live = self.live();
            live.retain(|_, end| *end > now);
            if live.len() >= MAX_SESSIONS
                && let Some(oldest) = live
                    .iter()
                    .min_by_key(|(_, end)| **end)
                    .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
            live.insert(Self::key(&id), now + SESSION_MAX_AGE_S * 1000);
        }
        HeaderValue::from_str(&format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_MAX_AGE_S}",
            self.cookie
        ))
        .expect("hex is a valid header value")
    }

    /// True when the request carries a session that has not ended.
    pub fn valid(&self, headers: &HeaderMap) -> bool {
        self.ends_at(headers).is_some()
    }

    /// When the request's session ends (ms since the epoch), if it has not.
    fn ends_at(&self, headers: &HeaderMap) -> Option<u64> {
        let id = cookie(headers, &self.cookie)?;
        let now = crate::time::now_ms();
        self.live()
            .get(&Self::key(id))
            .copied()
            .filter(|end| *end > now)
    }

    /// Ends the request's session (logout), wherever its cookie went.
    pub fn end(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, &self.cookie) {
            self.live().remove(&Self::key(id));
            self.ended.send_replace(());
        }
    }

    /// Watches the request's session, if it is valid now.
    pub fn watch(self: &std::sync::Arc<Self>, headers: HeaderMap) -> Option<SessionWatch> {
        self.valid(&headers).then(|| SessionWatch {
            ended: self.ended.subscribe(),
            sessions: std::sync::Arc::clone(self),
            headers,
        })
    }
}

/// The session a long answer (the live stream) was let in by: the answer
/// must end with it, not at its next write.
pub struct SessionWatch {
    sessions: std::sync::Arc<Sessions>,
    headers: HeaderMap,
    ended: tokio::sync::watch::Receiver<()>,
}

impl SessionWatch {
    pub fn valid(&self) -> bool {
        self.sessions.valid(&self.headers)
    }

    /// Resolves once the session has ended: logged out or expired.
    pub async fn over(&mut self) {
        while let Some(end) = self.sessions.ends_at(&self.headers) {
            let left = end.saturating_sub(crate::time::now_ms());
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(left)) => {}
                // Some session ended: this one, or another.
                changed = self.ended.changed() => {
                    if changed.is_err() {
                        return std::future::pending().await;
                    }
                }
            }
        }
    }
}

/// Wrong guesses at the admin token, per client address: a burst of
/// [`GUESS_BURST`], then one a second. Asked *before* a token is compared,
/// and answered at once either way, so that neither the answer's timing
/// nor parked requests give an attacker anything: an address out of
/// guesses gets `429` without its token being looked at.
#[derive(Default)]
pub struct Throttle {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    guesses: f64,
    at: std::time::Instant,
}

/// Wrong guesses an address may make at once; one more comes back a second.
pub const GUESS_BURST: f64 = 5.0;
/// Addresses remembered at once: beyond it, budgets refilled go first, then
/// those quiet longest.
const MAX_ADDRESSES: usize = 10_000;

impl Throttle {
    /// The unit a budget belongs to: an IPv4 address, an IPv6 /64 (what one
    /// host can usually pick addresses from), and all of loopback as one
    /// (any local user can bind any 127/8 address).
    fn owner(ip: IpAddr) -> IpAddr {
        let ip = ip.to_canonical();
        match ip {
            _ if ip.is_loopback() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
            v4 => v4,
        }
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Guesses `b` has now (one more per second since it last guessed).
    fn left(b: &Bucket, now: std::time::Instant) -> f64 {
        (b.guesses + now.duration_since(b.at).as_secs_f64()).min(GUESS_BURST)
    }

    /// Whether `ip` may have a token checked now. An address never seen
    /// has its whole budget and is not remembered for asking.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let now = std::time::Instant::now();
        self.buckets()
            .get(&Self::owner(ip))
            .is_none_or(|b| Self::left(b, now) >= 1.0)
    }

    /// `ip` guessed wrong.
    pub fn wrong(&self, ip: IpAddr) {
        let now = std::time::Instant::now();
        let mut map = self.buckets();
        if map.len() >= MAX_ADDRESSES {
            // Down to three quarters, so that a flood of new addresses pays
            // for one sweep per quarter of the map, not one per guess:
            // refilled budgets first, then the longest quiet.
            map.retain(|_, b| Self::left(b, now) < GUESS_BURST);
            if map.len() >= MAX_ADDRESSES {
                let mut ats: Vec<std::time::Instant> = map.values().map(|b| b.at).collect();
                let cut = ats.len() - MAX_ADDRESSES * 3 / 4;
                let (_, nth, _) = ats.select_nth_unstable(cut);
                let nth = *nth;
                map.retain(|_, b| b.at > nth);
            }
        }
        let b = map.entry(Self::owner(ip)).or_insert(Bucket {
            guesses: GUESS_BURST,
            at: now,
        });
        b.guesses = (Self::left(b, now) - 1.0).max(0.0);
        b.at = now;
    }
}

pub fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
    .expect("static cookie text")
}

/// A message shown once on the next page, after a form's redirect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// `ok` or `error`: picks the banner's colour.
    pub kind: &'static str,
    pub text: String,
    /// One of our own event pages to follow up on (the ping's event, the
    /// replayed attempt); see [`own_link`].
    pub link: Option<String>,
}

/// Cookies carry about 4 KB; messages are cut well below that.
const FLASH_MAX: usize = 1500;

pub fn flash_cookie(kind: &'static str, text: &str) -> HeaderValue {
    flash_cookie_link(kind, text, None)
}

/// A flash message with a link to one of our own event pages.
pub fn flash_cookie_link(kind: &'static str, text: &str, link: Option<&str>) -> HeaderValue {
    let mut text = text.to_string();
    if text.len() > FLASH_MAX {
        let mut cut = FLASH_MAX;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    let link = link.filter(|l| own_link(l)).unwrap_or("");
    let payload = URL_SAFE_NO_PAD.encode(format!("{kind}\n{link}\n{text}"));
    let mac = flash_mac(&payload);
    HeaderValue::from_str(&format!(
        "{FLASH_COOKIE}={payload}.{mac}; Path=/; HttpOnly; SameSite=Strict; Max-Age=60"
    ))
    .expect("base64url is a valid header value")
}

/// Links a flash may carry: our own `/events/…` pages, built from ids we
/// generated, in characters that need no escaping anywhere.
pub fn own_link(link: &str) -> bool {
    link.starts_with("/events/")
        && link.len() <= 200
        && link
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/?=#-_&".contains(&b))
}

/// Signed with the process's key: browsers send a host's cookies to every
/// port, so any server on the same host (a bin's configured answer, a
/// forwarded target's) could otherwise set a banner on the dashboard.
fn flash_mac(payload: &str) -> String {
    hmac_hex(csrf_key(), &format!("flash\n{payload}"))
}

pub fn read_flash(headers: &HeaderMap) -> Option<Flash> {
    let (payload, mac) = cookie(headers, FLASH_COOKIE)?.rsplit_once('.')?;
    if !bool::from(flash_mac(payload).as_bytes().ct_eq(mac.as_bytes())) {
        return None;
    }
    let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (kind, rest) = text.split_once('\n')?;
    let (link, text) = rest.split_once('\n')?;
    let kind = if kind == "ok" { "ok" } else { "error" };
    Some(Flash {
        kind,
        text: text.to_string(),
        link: Some(link.to_string()).filter(|l| own_link(l)),
    })
}

/// A `next=` target after login: only a local path, never `//host` or a URL,
/// so the login page cannot be used to bounce a user elsewhere.
pub fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if local { next } else { "/" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn origins() {
        let uri: Uri = "/x".parse().unwrap();
        let check = |pairs: &[(&str, &str)], want: bool| {
            assert_eq!(same_origin(&headers(pairs), &uri), want, "{pairs:?}");
        };
        check(&[("host", "127.0.0.1:8081")], true);
        check(
            &[
                ("host", "127.0.0.1:8081"),
                ("origin", "http://127.0.0.1:8081"),
            ],
            true,
        );
        check(
            &[
                ("host", "127.0.0.1:8081"),
                ("origin", "http://127.0.0.1:3000"),
            ],
            false,
        );
        check(&[("host", "127.0.0.1:8081"), ("origin", "null")], false);
        check(
            &[
                ("host", "127.0.0.1:8081"),
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
            ],
            true,
        );
        check(
            &[
                ("host", "127.0.0.1:8081"),
                ("origin", "null"),
                ("sec-fetch-site", "same-site"),
            ],
            false,
        );
        check(
            &[("host", "127.0.0.1:8081"), ("sec-fetch-site", "cross-site")],
            false,
        );
        check(&[("origin", "http://a")], false);
    }

    #[test]
    fn wrong_guesses_are_budgeted_per_address_and_ipv6_64() {
        let t = Throttle::default();
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        for _ in 0..GUESS_BURST as usize {
            assert!(t.allows(a));
            t.wrong(a);
        }
        assert!(!t.allows(a));
        let same64: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert!(!t.allows(same64), "another address of the same /64");
        assert!(t.allows("2001:db8:0:1::1".parse().unwrap()), "another /64");
        assert!(t.allows("192.0.2.1".parse().unwrap()));
        for _ in 0..GUESS_BURST as usize {
            t.wrong("127.0.0.2".parse().unwrap());
        }
        assert!(!t.allows("127.0.0.9".parse().unwrap()), "loopback is one");
        assert!(!t.allows("::1".parse().unwrap()), "loopback is one");
        // A flood of new addresses: the map stays bounded.
        for i in 0..(MAX_ADDRESSES as u32 + 50) {
            t.wrong(IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        }
        assert!(t.buckets().len() <= MAX_ADDRESSES, "{}", t.buckets().len());
    }

    #[test]
    fn cookies_and_flash() {
        let h = headers(&[("cookie", "a=1; hookrelay_session_9001=abc; b=2")]);
        assert_eq!(cookie(&h, "hookrelay_session_9001"), Some("abc"));
        let sessions = Sessions::for_port(9001);
        assert!(!sessions.valid(&h));
        let set = sessions.start();
        let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
        assert!(pair.starts_with("hookrelay_session_9001="), "{pair}");
        let mine = headers(&[("cookie", &pair)]);
        assert!(sessions.valid(&mine));
        assert!(!Sessions::for_port(9001).valid(&mine), "another server's");
        // Another instance on the same host has its own cookie: logging in
        // there leaves this one's in the browser, and this one's session.
        let other = Sessions::for_port(9002);
        let theirs = other.start();
        let theirs = theirs.to_str().unwrap().split(';').next().unwrap();
        let both = headers(&[("cookie", &format!("{pair}; {theirs}"))]);
        assert!(sessions.valid(&both) && other.valid(&both));
        sessions.end(&mine);
        assert!(!sessions.valid(&mine), "ended by logout");
        let set = flash_cookie_link(
            "ok",
            "Replayed <b>\nwith a newline",
            Some("/events/01J?attempt=2#attempt-2"),
        );
        let value = set.to_str().unwrap().split(';').next().unwrap().to_string();
        let got = read_flash(&headers(&[("cookie", &value)])).unwrap();
        assert_eq!(
            got,
            Flash {
                kind: "ok",
                text: "Replayed <b>\nwith a newline".into(),
                link: Some("/events/01J?attempt=2#attempt-2".into()),
            }
        );
        for bad in [
            "javascript:alert(1)",
            "//evil/events/",
            "/events/\"><b>",
            "/x",
        ] {
            let set = flash_cookie_link("error", "t", Some(bad));
            let value = set.to_str().unwrap().split(';').next().unwrap().to_string();
            let got = read_flash(&headers(&[("cookie", &value)])).unwrap();
            assert_eq!(got.link, None, "{bad}");
        }
        // Set by another server on the same host: unsigned, or signed by
        // another process, it is no banner.
        let forged = URL_SAFE_NO_PAD.encode("error\n\nLog in again at https://evil");
        for value in [
            format!("{FLASH_COOKIE}={forged}"),
            format!(
                "{FLASH_COOKIE}={forged}.{}",
                hmac_hex(b"other key", &forged)
            ),
        ] {
            assert_eq!(read_flash(&headers(&[("cookie", &value)])), None, "{value}");
        }
    }

    #[test]
    fn next_targets() {
        for (input, want) in [
            ("/events?a=1", "/events?a=1"),
            ("//evil", "/"),
            ("https://evil", "/"),
            ("/\\evil", "/"),
            ("", "/"),
        ] {
            assert_eq!(safe_next(input), want, "{input}");
        }
    }
}
