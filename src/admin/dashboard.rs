//! The dashboard: server-rendered HTML pages on the admin listener, built
//! with askama from `templates/` (one file per page, partials under
//! `templates/partials/`), plus one stylesheet and one small script served
//! from the binary (`/static/app.css`, `/static/app.js`).
//!
//! It owns the pages, their forms (each a POST that redirects back, so
//! everything works without JavaScript), the login page and the request
//! checks in [`security`]. It reads and changes state only through
//! [`crate::relay::Relay`] and [`crate::store::Store`], like the JSON API.
//!
//! Payloads are hostile input. Invariants:
//! - **No request or response data is ever marked `|safe`**: askama escapes
//!   every value; bodies become data ([`body::BodyView`]), not HTML.
//! - **No inline script, handler or style**: the CSP forbids them, so the
//!   script reads its configuration from `data-` attributes.
//! - **Every state-changing form carries the CSRF token** and is refused
//!   from another origin ([`CsrfForm`]).
//! - **No link is built from payload data** except to our own paths with
//!   ids we generated, so no `javascript:` URL can reach an `href`.

pub mod body;
pub mod chart;
pub mod curl;
mod endpoints;
mod events;
mod jobs;
pub mod security;

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Form, FromRequest, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use subtle::ConstantTimeEq;

pub use curl::curl_command;
use security::Flash;

use super::AdminState;
use crate::error::Error;

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route("/", get(endpoints::list))
        .route(
            "/endpoints/new",
            get(endpoints::new_form).post(endpoints::create),
        )
        .route(
            "/endpoints/{slug}",
            get(endpoints::edit_form).post(endpoints::update),
        )
        .route("/endpoints/{slug}/pause", post(endpoints::pause))
        .route("/endpoints/{slug}/resume", post(endpoints::resume))
        .route("/endpoints/{slug}/release", post(endpoints::release))
        .route("/endpoints/{slug}/ping", post(endpoints::ping))
        .route(
            "/endpoints/{slug}/delete",
            get(endpoints::delete_confirm).post(endpoints::delete),
        )
        .route("/events", get(events::list))
        .route("/events/replay", post(events::bulk_replay))
        .route("/events/{id}", get(events::show))
        .route("/events/{id}/replay", post(events::replay))
        .route("/events/{id}/verify", post(events::verify))
        .route("/replay", get(jobs::list))
        .route("/replay/{job}", get(jobs::show))
        .route("/replay/{job}/cancel", post(jobs::cancel))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route(
            "/static/app.css",
            get(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
        )
        // A form's address in the address bar (after "Check against a
        // secret", say), reloaded or typed: the page it belongs to.
        .method_not_allowed_fallback(|req: axum::extract::Request| async move {
            let path = req.uri().path();
            if is_page(req.method(), path) {
                let parent = path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
                let parent = if parent.is_empty() { "/" } else { parent };
                Redirect::to(&location(parent)).into_response()
            } else {
                PageError {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    message: format!("{} is not allowed on {path}", req.method()),
                }
                .into_response()
            }
        })
}

/// A path parameter whose refusal (a segment that is not UTF-8, say) is an
/// error page like any other, where axum's is a line of plain text.
pub struct PagePath<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for PagePath<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, PageError> {
        crate::admin::api::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| PagePath(p.0))
            .map_err(PageError::from)
    }
}

/// The dashboard's 404 for a page address that names nothing.
pub fn not_found(path: &str) -> Response {
    PageError {
        status: StatusCode::NOT_FOUND,
        message: format!("There is no page at {path}."),
    }
    .into_response()
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // Revalidate each time: the binary may have been upgraded.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        text,
    )
        .into_response()
}

/// Paths that stay reachable without logging in: the login page itself and
/// the assets it needs.
pub fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/static/")
}

/// True for a request a browser makes to show a page (so an unauthenticated
/// one is sent to `/login` rather than answered with JSON).
pub fn is_page(method: &axum::http::Method, path: &str) -> bool {
    (method == axum::http::Method::GET || method == axum::http::Method::HEAD)
        && !path.starts_with("/api/")
        && path != "/metrics"
        && path != "/healthz"
}

/// A dashboard form submission (not an API call).
pub fn is_form_post(
    method: &axum::http::Method,
    headers: &axum::http::HeaderMap,
    path: &str,
) -> bool {
    method == axum::http::Method::POST
        && !path.starts_with("/api/")
        && headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

/// Where an unauthenticated page request goes.
pub fn login_redirect(path_and_query: &str) -> Response {
    let next = format!("/login?next={}", encode_component(path_and_query));
    Redirect::to(&next).into_response()
}

/// What every page's frame needs.
pub struct Layout {
    pub title: String,
    /// The nav entry to mark current: `endpoints`, `events` or empty.
    pub nav: &'static str,
    pub csrf: String,
    pub flash: Option<Flash>,
    /// Show "Log out" (an admin token is set).
    pub logout: bool,
    /// Why ingest refuses events now (the store cannot write, the disk is
    /// past its limit): shown on every page.
    pub storage: Option<String>,
}

/// Per-request page context: the flash message to show (read once) and
/// whether login is in use.
pub struct Ctx {
    pub flash: Option<Flash>,
    pub logout: bool,
    /// See [`Layout::storage`].
    pub storage: Option<String>,
    /// The host name the browser used to reach the admin listener (no
    /// port), when it is a plain host name or address.
    pub host: Option<String>,
    /// The CSRF token of this browser's forms.
    pub csrf: String,
}

impl FromRequestParts<AdminState> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        st: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Ctx {
            flash: security::read_flash(&parts.headers),
            csrf: security::csrf_token(st.sessions.id(&parts.headers)),
            logout: st.token.is_some(),
            storage: storage_problem(&st.relay),
            host: parts
                .headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .and_then(host_name)
                .map(str::to_string),
        })
    }
}

impl Ctx {
    pub fn layout(&self, title: impl Into<String>, nav: &'static str) -> Layout {
        Layout {
            title: title.into(),
            nav,
            csrf: self.csrf.clone(),
            flash: self.flash.clone(),
            logout: self.logout,
            storage: self.storage.clone(),
        }
    }

    /// Renders a page; a flash message shown on it is cleared.
    pub fn page<T: Template>(&self, status: StatusCode, t: &T) -> Response {
        let mut resp = html(status, t);
        if self.flash.is_some() {
            resp.headers_mut().append(
                header::SET_COOKIE,
                security::clear_cookie(security::FLASH_COOKIE),
            );
        }
        resp
    }
}

/// What keeps ingest from storing events now, as `/readyz` says it.
fn storage_problem(relay: &crate::relay::Relay) -> Option<String> {
    use crate::relay::StorageRefusal::*;
    Some(match relay.storage_refusal()? {
        Broken(why) => {
            format!("the store cannot write ({why}): new events are refused with 503 until it can")
        }
        NoRoom(why) | Limit(why) => format!("{why}; new events are refused with 503 meanwhile"),
    })
}

fn html<T: Template>(status: StatusCode, t: &T) -> Response {
    match t.render() {
        Ok(body) => (
            status,
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                // Pages show payloads: keep them out of shared caches and history.
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(e) => PageError::from(Error::Internal(format!("template: {e}"))).into_response(),
    }
}

/// A redirect after a form, with a message for the next page.
pub fn redirect_with(to: &str, kind: &'static str, text: &str) -> Response {
    redirect_with_link(to, kind, text, None)
}

/// [`redirect_with`], the message linking to one of our event pages.
pub fn redirect_with_link(
    to: &str,
    kind: &'static str,
    text: &str,
    link: Option<&str>,
) -> Response {
    let mut resp = Redirect::to(&location(to)).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        security::flash_cookie_link(kind, text, link),
    );
    resp
}

/// "HTTP 200 in 12 ms" or "no answer (connect): connection refused".
pub fn outcome(a: &crate::event::Attempt) -> String {
    match (a.status, a.error) {
        (Some(s), _) => format!("HTTP {s} in {} ms", a.latency_ms),
        (None, kind) => {
            let kind = kind
                .and_then(|k| serde_json::to_value(k).ok())
                .and_then(|v| v.as_str().map(str::to_string))
                .map(|k| format!(" ({k})"))
                .unwrap_or_default();
            format!(
                "no answer{kind}: {}",
                a.error_detail.as_deref().unwrap_or("no detail")
            )
        }
    }
}

/// The host part of a `Host` header (`localhost:8081` → `localhost`,
/// `[::1]:8081` → `[::1]`), if it contains only host-name characters.
fn host_name(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.split(':').next().unwrap_or("")
    };
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-[]:".contains(&b));
    ok.then_some(name)
}

/// The ingest listener's base URL for links and commands (see
/// [`crate::relay::Relay::ingest_base_for`]): the host the browser used for
/// the dashboard stands in for a wildcard address.
pub fn ingest_base(st: &AdminState, ctx: &Ctx) -> Option<String> {
    st.relay.ingest_base_for(ctx.host.as_deref())
}

/// An error shown as a page (the API's errors are JSON).
#[derive(Debug)]
pub struct PageError {
    pub status: StatusCode,
    pub message: String,
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        if matches!(e, Error::Store(_) | Error::Internal(_)) {
            tracing::error!(error = %e, "dashboard request failed");
        }
        PageError {
            status: e.status(),
            message: e.public_message(),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let page = ErrorPage {
            layout: Layout {
                title: format!(
                    "{} {}",
                    self.status.as_u16(),
                    self.status.canonical_reason().unwrap_or("")
                ),
                nav: "",
                csrf: security::csrf_token(None),
                flash: None,
                logout: false,
                storage: None,
            },
            status: self.status.as_u16(),
            reason: self.status.canonical_reason().unwrap_or("").to_string(),
            message: self.message,
        };
        match page.render() {
            Ok(body) => (
                self.status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                body,
            )
                .into_response(),
            Err(_) => (self.status, "error").into_response(),
        }
    }
}

/// A submitted dashboard form whose CSRF token and origin were checked.
/// Fields keep their order; repeated names are allowed.
pub struct CsrfForm(pub Vec<(String, String)>);

impl CsrfForm {
    /// The first value of `name`, trimmed; empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// The first value of `name` exactly as typed (textareas, secrets).
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }
}

/// A form's bytes, at most [`FORM_LIMIT`]. One over it gets its `413` only
/// once the rest is read (up to [`FORM_DRAIN`] more, each piece within
/// [`FORM_DRAIN_WAIT`]): answering with a body left unread closes the
/// connection under the browser's upload, which then shows a reset, not
/// the page that says why.
async fn read_form_body(mut body: axum::body::Body) -> Result<bytes::Bytes, PageError> {
    use http_body_util::BodyExt;
    let failed = |e: axum::Error| PageError {
        status: StatusCode::BAD_REQUEST,
        message: format!("reading the form: {e}"),
    };
    let mut form = bytes::BytesMut::new();
    let mut over = 0usize;
    loop {
        let frame = if over == 0 {
            body.frame().await
        } else {
            match tokio::time::timeout(FORM_DRAIN_WAIT, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => break,
            }
        };
        let Some(frame) = frame else { break };
        let Ok(data) = frame.map_err(failed)?.into_data() else {
            continue;
        };
        if over == 0 && form.len() + data.len() <= FORM_LIMIT {
            form.extend_from_slice(&data);
        } else {
            over += data.len();
            if over > FORM_DRAIN {
                break;
            }
        }
    }
    if over > 0 {
        return Err(PageError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            message: format!("reading the form: it is over {} MiB", FORM_LIMIT >> 20),
        });
    }
    Ok(form.freeze())
}

/// The largest form the dashboard takes (axum's default body limit).
const FORM_LIMIT: usize = 2 << 20;
/// How much of a form over the limit is read and dropped before the `413`.
const FORM_DRAIN: usize = 16 << 20;
const FORM_DRAIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl FromRequest<AdminState> for CsrfForm {
    type Rejection = PageError;

    async fn from_request(req: Request, st: &AdminState) -> Result<Self, PageError> {
        let forbidden = |m: &str| PageError {
            status: StatusCode::FORBIDDEN,
            message: m.to_string(),
        };
        if !security::same_origin(req.headers(), req.uri()) {
            return Err(forbidden("cross-origin form submission refused"));
        }
        let session = st.sessions.id(req.headers()).map(str::to_string);
        let (parts, body) = req.into_parts();
        let body = read_form_body(body).await?;
        let req = Request::from_parts(parts, axum::body::Body::from(body));
        let Form(pairs) = Form::<Vec<(String, String)>>::from_request(req, st)
            .await
            .map_err(|e| PageError {
                // Keeps the status axum chose (413 for a form over its
                // 2 MiB limit, 415 for another content type).
                status: e.status(),
                message: format!("reading the form: {}", e.body_text()),
            })?;
        let form = CsrfForm(pairs);
        if !security::csrf_ok(form.get(security::CSRF_FIELD), session.as_deref()) {
            return Err(forbidden(
                "the form's security token is missing or out of date (the server may have restarted): \
                 go back, reload the page and submit again",
            ));
        }
        Ok(form)
    }
}

// ---- login ----

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    error: Option<String>,
}

async fn login_form(
    State(st): State<AdminState>,
    ctx: Ctx,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if st.token.is_none() {
        return Redirect::to("/").into_response();
    }
    let next = security::safe_next(q.get("next").map(String::as_str).unwrap_or("/")).to_string();
    let mut layout = ctx.layout("Log in", "");
    layout.logout = false;
    ctx.page(
        StatusCode::OK,
        &LoginPage {
            layout,
            next,
            error: None,
        },
    )
}

async fn login(
    State(st): State<AdminState>,
    ctx: Ctx,
    super::ClientAddr(ip): super::ClientAddr,
    form: CsrfForm,
) -> Response {
    let Some(token) = &st.token else {
        return Redirect::to("/").into_response();
    };
    let next = security::safe_next(form.get("next")).to_string();
    let (status, error) = if !st.throttle.allows(ip) {
        (
            StatusCode::TOO_MANY_REQUESTS,
            "Too many wrong tokens from your address: wait a few seconds and try again.",
        )
    } else if bool::from(form.raw("token").as_bytes().ct_eq(token.as_bytes())) {
        let mut resp = Redirect::to(&next).into_response();
        resp.headers_mut()
            .append(header::SET_COOKIE, st.sessions.start());
        return resp;
    } else {
        tracing::warn!(client = %ip, "dashboard login with a wrong admin token");
        st.throttle.wrong(ip);
        (StatusCode::UNAUTHORIZED, "That is not the admin token.")
    };
    let mut layout = ctx.layout("Log in", "");
    layout.logout = false;
    ctx.page(
        status,
        &LoginPage {
            layout,
            next,
            error: Some(error.into()),
        },
    )
}

async fn logout(State(st): State<AdminState>, headers: HeaderMap, _form: CsrfForm) -> Response {
    st.sessions.end(&headers);
    let to = if st.token.is_some() { "/login" } else { "/" };
    let mut resp = Redirect::to(to).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        security::clear_cookie(st.sessions.cookie_name()),
    );
    resp
}

// ---- small shared helpers ----

/// Percent-encodes a query component (RFC 3986 unreserved characters kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path for a `Location` header: bytes a header cannot carry (control
/// characters, from an id or slug taken from the URL) and non-ASCII ones
/// percent-encoded, the rest as given (it may hold a query already).
fn location(to: &str) -> String {
    let mut out = String::with_capacity(to.len());
    for b in to.bytes() {
        if b <= b' ' || b >= 0x7f {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// `a=1&b=2` from pairs, empty values left out.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// "3 s ago", "5 min ago", "2 h ago", "4 d ago".
pub fn ago(then_ms: u64, now_ms: u64) -> String {
    let s = now_ms.saturating_sub(then_ms) / 1000;
    match s {
        0..=59 => format!("{s} s ago"),
        60..=3599 => format!("{} min ago", s / 60),
        3600..=86_399 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

/// Header pairs as text for display; bytes that are not UTF-8 are shown as
/// U+FFFD, bidirectional controls as `⟨U+202E⟩` (the stored bytes are
/// unchanged).
pub fn header_text(h: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            let v = String::from_utf8_lossy(v);
            (n.clone(), crate::text::visible(&v).into_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding() {
        assert_eq!(encode_component("a b&c=/é"), "a%20b%26c%3D%2F%C3%A9");
        assert_eq!(
            query_string(&[("endpoint", "shop"), ("q", ""), ("state", "failed")]),
            "endpoint=shop&state=failed"
        );
    }

    #[test]
    fn host_names() {
        assert_eq!(host_name("localhost:8081"), Some("localhost"));
        assert_eq!(host_name("[::1]:8081"), Some("[::1]"));
        assert_eq!(host_name("10.0.0.5"), Some("10.0.0.5"));
        assert_eq!(host_name("a\"b:1"), None);
        assert_eq!(host_name(""), None);
    }

    #[test]
    fn ages() {
        assert_eq!(ago(0, 5_000), "5 s ago");
        assert_eq!(ago(0, 120_000), "2 min ago");
        assert_eq!(ago(0, 7_200_000), "2 h ago");
        assert_eq!(ago(10, 0), "0 s ago");
    }
}
