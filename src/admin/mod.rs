//! The admin listener: JSON API under `/api`, `/metrics`, `/healthz`.
//!
//! Owns access control (the optional bearer token) and the security headers
//! every admin response carries; the handlers live in [`api`].

pub mod api;

use std::sync::Arc;

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
}

pub fn router(relay: Arc<Relay>, token: Option<String>) -> Router {
    let state = AdminState { relay, token: token.map(Arc::from) };
    api::routes()
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// With `--admin-token`, everything but `/healthz` needs
/// `Authorization: Bearer <token>`.
async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(req).await;
    };
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        next.run(req).await
    } else {
        let mut resp = Error::Unauthorized("missing or wrong admin token (Authorization: Bearer …)".into())
            .into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        resp
    }
}

/// Payloads are hostile input: nothing the admin side serves may be sniffed
/// into HTML, framed, or run inline script.
async fn security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CONTENT_SECURITY_POLICY).or_insert(HeaderValue::from_static(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    ));
    resp
}
