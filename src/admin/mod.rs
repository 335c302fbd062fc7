//! The admin listener: the dashboard, JSON API under `/api`, `/metrics`,
//! `/healthz`.
//!
//! Owns access control (the optional bearer token or the dashboard's
//! session cookie), the cross-origin check on state-changing requests, and
//! the security headers every admin response carries; the handlers live in
//! [`api`] and [`dashboard`].

pub mod api;
pub mod dashboard;
pub mod export;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::relay::Relay;

#[derive(Clone)]
pub struct AdminState {
    pub relay: Arc<Relay>,
    pub token: Option<Arc<str>>,
    pub sessions: Arc<dashboard::security::Sessions>,
    pub throttle: Arc<dashboard::security::Throttle>,
    /// Turns for exports (see [`export::AT_ONCE`]).
    pub exports: Arc<tokio::sync::Semaphore>,
    /// One backup at a time (each holds a checkpoint's files on disk).
    pub backups: Arc<tokio::sync::Semaphore>,
}

/// `body_time`: how long a client may take to send a request body (admin
/// bodies are small documents; see `idle::Deadline`). `port`: the admin
/// listener's, which names the session cookie.
pub fn router(relay: Arc<Relay>, token: Option<String>, body_time: Duration, port: u16) -> Router {
    let state = AdminState {
        relay,
        token: token.map(Arc::from),
        sessions: Arc::new(dashboard::security::Sessions::for_port(port)),
        throttle: Default::default(),
        exports: Arc::new(tokio::sync::Semaphore::new(export::AT_ONCE)),
        backups: Arc::new(tokio::sync::Semaphore::new(1)),
    };
    let deadline = move |req: Request| async move {
        req.map(|b| axum::body::Body::new(crate::idle::Deadline::new(b, body_time)))
    };
    api::routes()
        .merge(dashboard::routes())
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::map_request(deadline))
        .layer(middleware::from_fn(refuse_cross_origin))
        .layer(middleware::from_fn(refuse_bad_host))
        .layer(middleware::from_fn(refuse_undecodable_query))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// With `--admin-token`, everything but `/healthz` and the login page needs
/// `Authorization: Bearer <token>` or the dashboard's session cookie (set
/// by `/login`). A browser asking for a page without either is sent to
/// `/login`; API clients get `401`.
async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    // Health probes name the host as they like (a service name) and learn
    // nothing a rebinding page could use.
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    if let Err(e) = state.relay.relayed_here(req.headers(), None) {
        tracing::warn!(
            path = req.uri().path(),
            "a request this hookrelay sent reached its admin listener; refused"
        );
        return e.into_response();
    }
    let Some(token) = &state.token else {
        // Without a token the listener is loopback-only; a page on another
        // site could still reach it through DNS rebinding, which needs a
        // domain name in `Host`. So only loopback names and IP literals.
        // HTTP/2 carries the host in `:authority`, not in a Host header.
        // A Host header that is not text names no loopback host either.
        let local = match req.headers().get(header::HOST) {
            Some(v) => v.to_str().is_ok_and(|h| host_is_local(Some(h))),
            None => host_is_local(req.uri().authority().map(|a| a.as_str())),
        };
        if !local {
            return Error::Unauthorized(
                "Host is not a loopback name or an IP address; use 127.0.0.1/localhost, or set --admin-token".into(),
            )
            .into_response();
        }
        return next.run(req).await;
    };
    let path = req.uri().path();
    if dashboard::is_public(path) {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme's name is case-insensitive (RFC 9110).
        .and_then(|v| {
            v.get(..7)
                .filter(|scheme| scheme.eq_ignore_ascii_case("bearer "))
                .map(|_| &v[7..])
        })
        .unwrap_or("");
    if state.sessions.valid(req.headers()) {
        return next.run(req).await;
    }
    if !given.is_empty() {
        let ip = client_ip(&req);
        if !state.throttle.allows(ip) {
            return too_many_guesses();
        }
        if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return next.run(req).await;
        }
        tracing::warn!(client = %ip, path, "request with a wrong admin token");
        state.throttle.wrong(ip);
    }
    if dashboard::is_page(req.method(), path) {
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        dashboard::login_redirect(target)
    } else if dashboard::is_form_post(req.method(), req.headers(), path) {
        // A form sent after the session ended (expired, or logged out in
        // another tab): to the login, then back to the page it came from.
        let back = req
            .headers()
            .get(header::REFERER)
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.parse::<axum::http::Uri>().ok())
            .and_then(|u| u.path_and_query().map(|p| p.as_str().to_string()))
            .unwrap_or_else(|| "/".into());
        dashboard::login_redirect(&back)
    } else {
        unauthorized()
    }
}

/// The address of the client that sent `req` (set by the server for each
/// connection; unspecified when the router runs without one, as in a bench).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

impl ClientAddr {
    fn of(ext: &axum::http::Extensions) -> ClientAddr {
        ext.get::<ClientAddr>()
            .copied()
            .unwrap_or(ClientAddr(std::net::Ipv4Addr::UNSPECIFIED.into()))
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr::of(&parts.extensions))
    }
}

pub fn client_ip<B>(req: &axum::http::Request<B>) -> std::net::IpAddr {
    ClientAddr::of(req.extensions()).0
}

/// `429` for an address that has used up its wrong guesses (see
/// `dashboard::security::Throttle`).
pub fn too_many_guesses() -> Response {
    let mut resp = Error::TooManyGuesses(
        "too many wrong admin tokens from this address; wait a few seconds".into(),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    resp
}

fn unauthorized() -> Response {
    let mut resp =
        Error::Unauthorized("missing or wrong admin token (Authorization: Bearer …)".into())
            .into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// See [`crate::capture::bad_host`]: the loopback and same-origin checks
/// read the host.
async fn refuse_bad_host(req: Request, next: Next) -> Response {
    match crate::capture::bad_host(req.version(), req.uri(), req.headers()) {
        None => next.run(req).await,
        Some(why) => Error::BadRequest(why.into()).into_response(),
    }
}

/// A query parameter whose percent-escapes are not UTF-8 (`q=%FF`) is
/// refused: the query extractors decode lossily, so `%FF` would become
/// U+FFFD and a search for it would quietly find nothing.
async fn refuse_undecodable_query(req: Request, next: Next) -> Response {
    match req.uri().query().and_then(undecodable_param) {
        None => next.run(req).await,
        Some(param) => Error::BadRequest(format!(
            "query parameter {param:?}: its percent-escapes do not decode to UTF-8 text"
        ))
        .into_response(),
    }
}

/// The name, as written, of the first parameter of `query` whose name or
/// value does not decode to UTF-8.
fn undecodable_param(query: &str) -> Option<&str> {
    query
        .split('&')
        .find(|pair| {
            pair.split('=').any(|part| {
                percent_encoding::percent_decode_str(part)
                    .decode_utf8()
                    .is_err()
            })
        })
        .map(|pair| pair.split('=').next().unwrap_or(pair))
}

/// A state-changing request (anything but GET/HEAD/OPTIONS) whose `Origin`
/// is another site is refused before it reaches a handler: the admin
/// listener usually sits on loopback, where any page the developer has open
/// could otherwise POST to it (replay, delete) without reading the answer.
async fn refuse_cross_origin(req: Request, next: Next) -> Response {
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if safe || dashboard::security::same_origin(req.headers(), req.uri()) {
        return next.run(req).await;
    }
    tracing::warn!(path = req.uri().path(), "cross-origin request refused");
    (
        axum::http::StatusCode::FORBIDDEN,
        axum::Json(serde_json::json!({ "error": "cross-origin request refused" })),
    )
        .into_response()
}

/// `localhost`, `*.localhost`, or an IP literal (with or without port);
/// absent (HTTP/1.0, HTTP/2 `:authority` is mapped to Host by hyper) counts
/// as local.
fn host_is_local(host: Option<&str>) -> bool {
    let Some(host) = host else { return true };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:8081
        return rest
            .split(']')
            .next()
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    let name = name.to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost") || name.parse::<std::net::IpAddr>().is_ok()
}

/// Payloads are hostile input: nothing the admin side serves may be sniffed
/// into HTML, framed, or run inline script.
/// Sent with every admin answer (refusals too), so that the CLI can tell
/// hookrelay from another server on the port it was given (one answering
/// `200` with some JSON read as an empty record before).
pub const API_MARKER: &str = "x-hookrelay-api";

async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(API_MARKER, HeaderValue::from_static("1"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Payload URLs never leave for another site; a form posted after the
    // session ended still names its page, to return there after login.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ));
    resp
}

#[cfg(test)]
mod tests {
    use super::{host_is_local, undecodable_param};

    #[test]
    fn a_query_is_refused_only_where_an_escape_is_not_utf8() {
        for ok in [
            "q=caf%C3%A9",
            "q=%25FF",
            "q=%",
            "q=a%2",
            "q=%ZZ&x",
            "field=a.b:1+2",
            "=&&=",
        ] {
            assert_eq!(undecodable_param(ok), None, "{ok}");
        }
        assert_eq!(undecodable_param("limit=5&q=%FF"), Some("q"));
        assert_eq!(undecodable_param("a%C3=1"), Some("a%C3"));
        assert_eq!(undecodable_param("q=x&field=%ED%A0%80"), Some("field"));
    }

    #[test]
    fn only_loopback_names_and_ip_literals_are_local() {
        for ok in [
            None,
            Some("localhost"),
            Some("localhost:8081"),
            Some("127.0.0.1:8081"),
            Some("[::1]:8081"),
            Some("10.0.0.5"),
            Some("app.localhost:1"),
        ] {
            assert!(host_is_local(ok), "{ok:?}");
        }
        for bad in [
            Some("evil.example"),
            Some("evil.example:8081"),
            Some("127.0.0.1.nip.io:8081"),
            Some("[evil]:1"),
        ] {
            assert!(!host_is_local(bad), "{bad:?}");
        }
    }
}
