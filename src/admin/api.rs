//! The JSON API: endpoints, events, replay, release, the live stream, plus
//! `/metrics` and `/healthz`. Request and response shapes are the API's own
//! (see `Endpoint::to_api`, `Event::to_api`); errors go through
//! [`crate::error::Error`] so every failure is `{"error": …}` with its status.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::AdminState;
use crate::endpoint::{EndpointInput, Status};
use crate::error::{Error, Result};
use crate::event::EventState;
use crate::metrics::Snapshot;
use crate::store::EventFilter;

/// Admin request bodies are small JSON documents.
const MAX_API_BODY: usize = 1024 * 1024;

pub fn routes() -> Router<AdminState> {
    Router::new()
        .route(
            "/healthz",
            get(|State(st): State<AdminState>| async move {
                let (status, body) = st.relay.health();
                (status, [(header::CONTENT_TYPE, "application/json")], body)
            }),
        )
        .route("/metrics", get(metrics))
        .route("/api/endpoints", get(list_endpoints).post(create_endpoint))
        .route(
            "/api/endpoints/{slug}",
            get(get_endpoint)
                .patch(patch_endpoint)
                .delete(delete_endpoint),
        )
        .route("/api/endpoints/{slug}/release", post(release))
        .route("/api/endpoints/{slug}/pause", post(pause))
        .route("/api/endpoints/{slug}/ping", post(ping))
        .route("/api/endpoints/{slug}/resume", post(resume))
        .route("/api/events", get(list_events))
        .route("/api/events/{id}", get(get_event))
        .route("/api/events/{id}/body", get(get_body))
        .route("/api/events/{id}/attempts", get(get_attempts))
        .route("/api/events/{id}/replay", post(replay))
        .route("/api/events/{id}/verify", post(verify))
        .route("/api/stream", get(stream))
        .route("/api/export", get(export))
        .route("/api/backup", get(backup))
        .route("/api/replay", post(bulk_replay).get(list_jobs))
        .route("/api/replay/{job}", get(get_job).delete(cancel_job))
        .fallback(|req: Request| async move {
            if crate::admin::dashboard::is_page(req.method(), req.uri().path()) {
                crate::admin::dashboard::not_found(req.uri().path())
            } else {
                Error::NotFound("no such route".into()).into_response()
            }
        })
        .method_not_allowed_fallback(|req: Request| async move {
            MethodNotAllowed(format!(
                "{} is not allowed on {}",
                req.method(),
                req.uri().path()
            ))
        })
}

/// A 405 in the API's error shape (axum's own has an empty body).
struct MethodNotAllowed(String);

impl IntoResponse for MethodNotAllowed {
    fn into_response(self) -> Response {
        let body = json!({ "error": self.0 }).to_string();
        (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

/// A path parameter with our error shape: one that is not UTF-8 (`%FF`) is
/// a JSON `400` like every other API error, not axum's plain text.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Error> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Path(v))
            .map_err(|e| Error::BadRequest(e.body_text()))
    }
}

/// A JSON body parsed with our error shape: syntax errors are 400, a
/// well-formed body with wrong or unknown fields is 422.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Error> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !ct.is_empty() && !ct.starts_with("application/json") {
            return Err(Error::BadRequest(format!(
                "expected Content-Type: application/json, got {ct:?}"
            )));
        }
        let req = req.map(|b| axum::body::Body::new(http_body_util::Limited::new(b, MAX_API_BODY)));
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::TooLarge(format!(
                    "request body over {} KiB; admin requests are small JSON documents",
                    MAX_API_BODY / 1024
                ))
            } else {
                Error::BadRequest(format!("reading the body: {e}"))
            }
        })?;
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else {
            bytes
        };
        parse_json(&bytes).map(JsonBody)
    }
}

/// A body of the wrong shape: serde's message without the values it
/// quotes (a value of the wrong type may be a secret), after the path of
/// the field it is about (`signature.tolerance_s: …`: serde names only
/// the type it expected).
fn invalid_request(e: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let at = crate::config::field_prefix(&e.path().to_string());
    Error::Unprocessable(format!(
        "invalid request: {at}{}",
        crate::config::without_quoted(&e.into_inner().to_string())
    ))
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    use serde_json::error::Category;
    // Every body is an object; serde would take an array as its fields in
    // order (`["slug", "name"]` made an endpoint).
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[')
        && serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
    {
        return Err(Error::Unprocessable(
            "invalid request: expected a JSON object, found an array".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let e = match serde_path_to_error::deserialize(&mut de) {
        Ok(value) => match de.end() {
            Ok(()) => return Ok(value),
            Err(e) => return Err(Error::BadRequest(format!("invalid JSON: {e}"))),
        },
        Err(e) => e,
    };
    Err(match e.inner().classify() {
        Category::Data => invalid_request(e),
        // serde_json reports some wrong types as syntax ("expected value"
        // for a number where an enum's name goes): well-formed JSON is
        // never called invalid.
        _ if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() => {
            Error::Unprocessable(format!(
                "invalid request: {}a value of the wrong type at line {} column {}",
                crate::config::field_prefix(&e.path().to_string()),
                e.inner().line(),
                e.inner().column()
            ))
        }
        _ => Error::BadRequest(format!("invalid JSON: {}", e.into_inner())),
    })
}

async fn metrics(State(st): State<AdminState>) -> Response {
    let relay = st.relay.clone();
    let listed = relay.list();
    let slugs: Vec<String> = listed.iter().map(|e| e.slug.to_string()).collect();
    let counts = relay
        .store
        .run(move |s| s.counts_of(&slugs))
        .await
        .unwrap_or_default();
    let endpoints = listed
        .into_iter()
        .zip(counts)
        .map(|(e, counts)| crate::metrics::EndpointStats {
            counts,
            slug: e.slug.to_string(),
            status: e.status.as_str(),
            consecutive_failures: e.consecutive_failures,
        })
        .collect();
    let store_bytes = relay.store.run(|s| Ok(s.size_bytes())).await.unwrap_or(0);
    let (queue_depth, oldest) = relay.queue.stats();
    let queue_oldest_age_s = oldest
        .and_then(|id| ulid::Ulid::from_string(&id).ok())
        .map(|u| crate::time::now_ms().saturating_sub(u.timestamp_ms()) as f64 / 1000.0)
        .unwrap_or(0.0);
    let text = relay.metrics.render(&Snapshot {
        endpoints,
        store_bytes,
        queue_depth,
        queue_oldest_age_s,
        store_writes: relay.store.wal_written(),
        wal_flushes: relay.store.wal_flushes(),
        wal_flush: Some(relay.store.wal_flush_time()),
        disk_used_pct: relay.disk.get().map(|d| d.used_pct()),
        body_bytes: relay.body_bytes(),
        store_writable: !matches!(
            relay.storage_refusal(),
            Some(crate::relay::StorageRefusal::Broken(_) | crate::relay::StorageRefusal::NoRoom(_))
        ),
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn endpoint_json(st: &AdminState, ep: &crate::endpoint::Endpoint) -> Result<Value> {
    let mut listed = endpoints_json(st, std::slice::from_ref(ep)).await?;
    Ok(listed.pop().unwrap_or_default())
}

/// The endpoints as the API shows them, their counts read in one trip to
/// the blocking pool (one trip each took 1.8 s for 21,000 endpoints).
async fn endpoints_json(st: &AdminState, eps: &[crate::endpoint::Endpoint]) -> Result<Vec<Value>> {
    let slugs: Vec<String> = eps.iter().map(|e| e.slug.to_string()).collect();
    let counts = st.relay.store.run(move |s| s.counts_of(&slugs)).await?;
    let base = st.relay.ingest_base_for(None);
    Ok(eps
        .iter()
        .zip(counts)
        .map(|(ep, counts)| {
            let mut v = ep.to_api(&counts);
            if let Some(base) = &base {
                v["ingest_url"] = format!("{base}/in/{}", ep.slug).into();
            }
            v
        })
        .collect())
}

/// All endpoints by name, or with `limit` a page of them after `cursor` (a
/// slug) and the `next_cursor` while more follow: 21,000 endpoints made a
/// 16 MB answer.
async fn list_endpoints(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    if let Some(k) = unknown_param(&q, &[&["limit", "cursor"]]) {
        return Err(Error::BadRequest(format!(
            "unknown parameter {k:?}; the list takes limit and cursor"
        )));
    }
    let limit = q
        .get("limit")
        .filter(|v| !v.trim().is_empty())
        .map(|v| number_in("limit", v, 1000))
        .transpose()?;
    let mut eps = st.relay.list();
    if let Some(after) = q.get("cursor").filter(|c| !c.is_empty()) {
        eps.retain(|e| e.slug.as_str() > after.as_str());
    }
    let next = match limit {
        Some(n) if eps.len() as u64 > n => {
            eps.truncate(n as usize);
            eps.last().map(|e| e.slug.to_string())
        }
        _ => None,
    };
    let out = endpoints_json(&st, &eps).await?;
    Ok(Json(json!({ "endpoints": out, "next_cursor": next })))
}

async fn create_endpoint(
    State(st): State<AdminState>,
    JsonBody(input): JsonBody<EndpointInput>,
) -> Result<(StatusCode, Json<Value>)> {
    let ep = st.relay.create(input, false).await?;
    st.relay.ping_if_activated(None, &ep);
    Ok((StatusCode::CREATED, Json(endpoint_json(&st, &ep).await?)))
}

async fn get_endpoint(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
) -> Result<Json<Value>> {
    let ep = st.relay.get(&slug)?;
    Ok(Json(endpoint_json(&st, &ep).await?))
}

async fn patch_endpoint(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    JsonBody(input): JsonBody<EndpointInput>,
) -> Result<Json<Value>> {
    let before = st.relay.get(&slug)?.status;
    let ep = st.relay.update(&slug, input).await?;
    st.relay.ping_if_activated(Some(before), &ep);
    Ok(Json(endpoint_json(&st, &ep).await?))
}

async fn delete_endpoint(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
) -> Result<StatusCode> {
    st.relay.delete(&slug).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(State(st): State<AdminState>, Path(slug): Path<String>) -> Result<Json<Value>> {
    let ep = st.relay.set_status(&slug, Status::Paused).await?;
    Ok(Json(endpoint_json(&st, &ep).await?))
}

/// A yes/no query parameter: `true`/`1` or `false`/`0`.
fn query_flag(k: &str, v: &str) -> Result<bool> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(Error::BadRequest(format!(
            "{k}: {v:?} must be true or false (1 or 0)"
        ))),
    }
}

/// `?release=true`: resume and release held events in one step (see
/// `Relay::resume_and_release`), answering `{"endpoint", "release"}`.
async fn resume(
    State(st): State<AdminState>,
    Path(slug): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let release = match q.iter().next() {
        None => false,
        Some((k, v)) if k == "release" && q.len() == 1 => query_flag(k, v)?,
        Some(_) => {
            return Err(Error::BadRequest(
                "unknown query parameter: only release=true|false".into(),
            ));
        }
    };
    let before = st.relay.get(&slug)?.status;
    if release {
        let (ep, report) = st.relay.resume_and_release(&slug).await?;
        st.relay.ping_if_activated(Some(before), &ep);
        return Ok(Json(
            json!({ "endpoint": endpoint_json(&st, &ep).await?, "release": report }),
        ));
    }
    let ep = st.relay.set_status(&slug, Status::Active).await?;
    st.relay.ping_if_activated(Some(before), &ep);
    Ok(Json(endpoint_json(&st, &ep).await?))
}

async fn ping(State(st): State<AdminState>, Path(slug): Path<String>) -> Result<Json<Value>> {
    let (ev, attempt) = st.relay.ping(&slug).await?;
    Ok(Json(
        json!({ "event": ev.to_api(None, None), "attempt": attempt.to_api() }),
    ))
}

async fn release(State(st): State<AdminState>, Path(slug): Path<String>) -> Result<Json<Value>> {
    let report = st.relay.release(&slug).await?;
    Ok(Json(json!(report)))
}

/// The filter parameters of `GET /api/events` (also the dashboard's list
/// and bulk replay), in the order the dashboard's filter form shows them.
pub const FILTER_KEYS: [&str; 12] = [
    "endpoint",
    "state",
    "topic",
    "method",
    "status",
    "signature",
    "since",
    "until",
    "q",
    "field",
    "duplicate",
    "mirror_diff",
];

/// The page fields of a filter: with a selection (bulk replay, export)
/// `limit` takes the newest N from `cursor` on.
const PAGE_KEYS: [&str; 2] = ["limit", "cursor"];

/// A filter that selects rather than pages (bulk replay, export): `limit`,
/// when given, keeps the newest N matches (up to `max`), else all match.
fn parse_selection(
    q: &HashMap<String, String>,
    max: usize,
) -> Result<(EventFilter, Option<usize>)> {
    let take = q
        .get("limit")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| number_in("limit", s, max as u64).map(|n| n as usize))
        .transpose()?;
    let mut rest = q.clone();
    rest.remove("limit");
    Ok((parse_filter(&rest)?, take))
}

/// A filter parameter's value as it counts: trimmed, except a JSON
/// field's, whose value is compared as given; empty when only spaces.
pub fn filter_value<'a>(k: &str, v: &'a str) -> &'a str {
    match v.trim() {
        "" => "",
        _ if k == "field" => v,
        trimmed => trimmed,
    }
}

/// Parses the query of `GET /api/events` (and of the dashboard's list).
pub fn parse_filter(q: &HashMap<String, String>) -> Result<EventFilter> {
    let get = |k: &str| {
        q.get(k)
            .map(|s| filter_value(k, s))
            .filter(|s| !s.is_empty())
    };
    let now = crate::time::now_ms();
    let instant = |k: &str| -> Result<Option<u64>> {
        get(k)
            .map(|v| {
                crate::time::parse_instant_at(v, now).ok_or_else(|| {
                    Error::BadRequest(format!(
                        "{k}: {v:?} is not an RFC 3339 time, epoch milliseconds or a duration back from now such as 15m or 2h"
                    ))
                })
            })
            .transpose()
    };
    let state = get("state")
        .map(|s| {
            EventState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = EventState::ALL.iter().map(|s| s.as_str()).collect();
                Error::BadRequest(format!("state: {s:?} is not one of {}", all.join(", ")))
            })
        })
        .transpose()?;
    let status = get("status")
        .map(|s| {
            s.parse::<u16>()
                .map_err(|_| Error::BadRequest(format!("status: {s:?} is not an HTTP status")))
        })
        .transpose()?;
    let limit = get("limit")
        .map(|s| number_in("limit", s, 1000).map(|n| n as usize))
        .transpose()?
        .unwrap_or(50);
    let flag = |k: &str| -> Result<Option<bool>> { get(k).map(|s| query_flag(k, s)).transpose() };
    let (since, until) = (instant("since")?, instant("until")?);
    // Not an empty page: `since=1h&until=2h` reads as a window, but both
    // count back from now.
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err(Error::BadRequest(
            "since is after until, so nothing can match (a duration counts back from now: since=2h&until=1h is the hour before the last)".into(),
        ));
    }
    Ok(EventFilter {
        endpoint: get("endpoint").map(str::to_string),
        state,
        topic: get("topic").map(str::to_string),
        method: get("method").map(str::to_string),
        status,
        signature: get("signature")
            .map(|s| {
                const VERDICTS: [&str; 5] = ["valid", "invalid", "stale", "missing", "unchecked"];
                if VERDICTS.contains(&s) {
                    Ok(s.to_string())
                } else {
                    Err(Error::BadRequest(format!(
                        "signature: {s:?} is not one of {}",
                        VERDICTS.join(", ")
                    )))
                }
            })
            .transpose()?,
        duplicate: flag("duplicate")?,
        mirror_diff: flag("mirror_diff")?,
        since,
        until,
        q: get("q").map(str::to_string),
        field: get("field")
            .map(|v| {
                crate::store::FieldFilter::parse(v)
                    .map_err(|e| Error::BadRequest(format!("field: {e}")))
            })
            .transpose()?,
        limit,
        cursor: get("cursor").map(str::to_string),
    })
}

/// `v`, a whole number from 1 to `max`, as parameter `k`.
fn number_in(k: &str, v: &str, max: u64) -> Result<u64> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| Error::BadRequest(format!("{k}: {v:?} must be between 1 and {max}")))
}

/// The first (in name order) of `q`'s parameters that is none of `known`.
fn unknown_param<'a>(q: &'a HashMap<String, String>, known: &[&[&str]]) -> Option<&'a str> {
    q.keys()
        .map(String::as_str)
        .filter(|k| !known.iter().any(|list| list.contains(k)))
        .min()
}

/// A query parameter that is neither a filter nor one of `extra` is a
/// typo (`endpont=`) that would silently list everything: `400`.
pub(crate) fn known_params(q: &HashMap<String, String>, extra: &[&str]) -> Result<()> {
    match unknown_param(q, &[&FILTER_KEYS, &PAGE_KEYS, extra]) {
        None => Ok(()),
        Some(k) => Err(Error::BadRequest(format!(
            "unknown parameter {k:?}; filters are {}, {}{}",
            FILTER_KEYS.join(", "),
            PAGE_KEYS.join(", "),
            extra.iter().map(|e| format!(", {e}")).collect::<String>()
        ))),
    }
}

async fn list_events(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    known_params(&q, &[])?;
    let filter = parse_filter(&q)?;
    let page = st.relay.store.run(move |s| s.query(&filter)).await?;
    let events: Vec<Value> = page.events.iter().map(|e| e.to_api(None, None)).collect();
    Ok(Json(json!({
        "events": events,
        "next_cursor": page.next_cursor,
        "scan_capped": page.scan_capped,
        "scanned": page.scanned,
    })))
}

async fn get_event(State(st): State<AdminState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let owned = id.clone();
    let (ev, body, attempts) = st
        .relay
        .store
        .run(move |s| s.event_full(&owned))
        .await?
        .ok_or_else(|| Error::NotFound(format!("no event {id}")))?;
    let mut v = ev.to_api(Some(&body), Some(&attempts));
    // A retry may be hours away (a `Retry-After`, the schedule's tail).
    if let Some(due) = st.relay.queue.due_of(&ev.endpoint, &ev.id) {
        v["next_try_at"] = json!(crate::time::rfc3339_ms(due));
    }
    Ok(Json(v))
}

/// `GET /api/events/{id}/attempts?before=N&limit=M`: an event's attempts a
/// page at a time (its detail carries the newest
/// [`ATTEMPTS_SHOWN`](crate::store::ATTEMPTS_SHOWN)), oldest first, with
/// `next_before` for the page before (null at the first attempt).
async fn get_attempts(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    // Not the events list's filters: this page has two parameters of its own.
    if let Some(k) = unknown_param(&q, &[&["before", "limit"]]) {
        return Err(Error::BadRequest(format!(
            "unknown parameter {k:?}; the parameters are before, limit"
        )));
    }
    let number = |k: &str, max: u64| q.get(k).map(|v| number_in(k, v, max)).transpose();
    let before = number("before", u32::MAX.into())?.map(|n| n as u32);
    let shown = crate::store::ATTEMPTS_SHOWN;
    let limit = number("limit", shown as u64)?.map_or(shown, |n| n as usize);
    let owned = id.clone();
    let (found, attempts) = st
        .relay
        .store
        .run(move |s| {
            Ok((
                s.get_event(&owned)?.is_some(),
                s.attempts_page(&owned, before, limit)?,
            ))
        })
        .await?;
    if !found {
        return Err(Error::NotFound(format!("no event {id}")));
    }
    let next = attempts.first().map(|a| a.n).filter(|n| *n > 1);
    Ok(Json(json!({
        "attempts": attempts.iter().map(crate::event::Attempt::to_api).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn get_body(State(st): State<AdminState>, Path(id): Path<String>) -> Result<Response> {
    let owned = id.clone();
    let body = st.relay.store.run(move |s| s.get_body(&owned)).await?;
    let body = body.ok_or_else(|| Error::NotFound(format!("no event {id}")))?;
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    // The raw payload is hostile input: download it, never render it.
    let file = super::dashboard::curl::body_file(&id);
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    target: Option<String>,
    #[serde(default)]
    resign: bool,
}

async fn replay(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ReplayRequest>,
) -> Result<Json<Value>> {
    let (ev, attempt, note) = st.relay.replay_with(&id, req.target, req.resign).await?;
    // The contract returns the attempt: its fields at the top level; `event`
    // and `resign` are added, and `attempt` stays for earlier clients.
    let mut out = attempt.to_api();
    if let Some(obj) = out.as_object_mut() {
        obj.insert("attempt".into(), attempt.to_api());
        obj.insert("event".into(), ev.to_api(None, None));
        obj.insert("resign".into(), json!(note));
    }
    Ok(Json(out))
}

/// `POST /api/replay`: the filter fields of `GET /api/events` plus
/// `dry_run`, `rate`, `target`, `resign`.
async fn bulk_replay(
    State(st): State<AdminState>,
    JsonBody(req): JsonBody<serde_json::Map<String, Value>>,
) -> Result<(StatusCode, Json<Value>)> {
    const CONTROL: [&str; 5] = ["dry_run", "rate", "target", "resign", "all"];
    let mut params = HashMap::new();
    for (k, v) in &req {
        if CONTROL.contains(&k.as_str()) {
            continue;
        }
        if !FILTER_KEYS.contains(&k.as_str()) && !PAGE_KEYS.contains(&k.as_str()) {
            return Err(Error::Unprocessable(format!(
                "unknown field {k:?}; filters are {}, {}; options are {}",
                FILTER_KEYS.join(", "),
                PAGE_KEYS.join(", "),
                CONTROL.join(", ")
            )));
        }
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Null => continue,
            Value::Number(_) | Value::Bool(_) => v.to_string(),
            Value::Array(_) | Value::Object(_) => {
                return Err(Error::Unprocessable(format!(
                    "{k}: must be a string, number or boolean, as in the events list's query"
                )));
            }
        };
        params.insert(k.clone(), text);
    }
    // A job keeps its filter (shown, and read again after a restart): a
    // time relative to now is pinned to the instant it means now.
    let now = crate::time::now_ms();
    for k in ["since", "until"] {
        if let Some(v) = params.get_mut(k)
            && crate::time::parse_instant_ms(v.trim()).is_none()
            && let Some(ms) = crate::time::ago_ms(v, now)
        {
            *v = crate::time::rfc3339_ms(ms);
        }
    }
    let (filter, take) = parse_selection(&params, crate::replay::MAX_JOB_EVENTS)?;
    let flag = |k: &str| -> Result<bool> {
        match req.get(k) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::Unprocessable(format!("{k}: must be true or false"))),
        }
    };
    let rate = match req.get("rate") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .ok_or_else(|| Error::Unprocessable("rate: must be a number".into()))?,
        ),
    };
    let target = match req.get("target") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(_) => return Err(Error::Unprocessable("target: must be a URL string".into())),
    };
    // A dry run refuses what the run itself would: it is the rehearsal.
    let resign = flag("resign")?;
    crate::replay::check_options(&st.relay, target.as_deref(), rate, resign, &filter)?;
    // `{}` (a client that lost its filter on the way; a cursor or limit
    // alone reaches back through everything too) would send every stored
    // event again: that takes saying so. `--filter all=true` from the CLI
    // comes as text.
    let all = match req.get("all") {
        Some(Value::String(s)) => match s.trim() {
            "true" | "1" => true,
            "false" | "0" | "" => false,
            _ => return Err(Error::Unprocessable("all: must be true or false".into())),
        },
        _ => flag("all")?,
    };
    let unfiltered = !all
        && FILTER_KEYS
            .iter()
            .all(|k| params.get(*k).is_none_or(|v| v.trim().is_empty()));
    let no_filter = unfiltered.then(|| {
        Error::Unprocessable(
            "no filter: this would replay stored events of every endpoint and state (a cursor or limit only says how far back); give a filter (endpoint, state, since, …), or \"all\": true".into(),
        )
    });
    if flag("dry_run")? {
        let mut v = crate::replay::dry_run(&st.relay, filter, take).await?;
        if let Some(e) = no_filter {
            v["refusal"] = e.public_message().into();
        }
        return Ok((StatusCode::OK, Json(v)));
    }
    if let Some(e) = no_filter {
        return Err(e);
    }
    let job = crate::replay::start(&st.relay, params, filter, take, target, resign, rate).await?;
    Ok((StatusCode::ACCEPTED, Json(job.to_api())))
}

async fn list_jobs(State(st): State<AdminState>) -> Json<Value> {
    let jobs: Vec<Value> = st.relay.jobs.list().iter().map(|j| j.to_api()).collect();
    Json(json!({ "jobs": jobs }))
}

async fn get_job(State(st): State<AdminState>, Path(job): Path<String>) -> Result<Json<Value>> {
    Ok(Json(st.relay.jobs.get(&job)?.to_api()))
}

async fn cancel_job(State(st): State<AdminState>, Path(job): Path<String>) -> Result<Json<Value>> {
    Ok(Json(crate::replay::cancel(&st.relay, &job).await?.to_api()))
}

/// Checks a stored event against a secret typed in (or the endpoint's), as
/// of the time the event was received.
async fn verify(
    State(st): State<AdminState>,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<serde_json::Map<String, Value>>,
) -> Result<Json<Value>> {
    let owned = id.clone();
    let (ev, body) = st
        .relay
        .store
        .run(move |s| Ok((s.get_event(&owned)?, s.get_body(&owned)?)))
        .await?;
    let ev = ev.ok_or_else(|| Error::NotFound(format!("no event {id}")))?;
    let endpoint_cfg = st
        .relay
        .endpoint(&ev.endpoint)
        .and_then(|c| c.lock().signature.clone());
    let (cfg, given) = verify_config(req, endpoint_cfg.as_ref())?;
    let check = crate::signature::verify(
        &cfg,
        &ev.headers,
        &body.unwrap_or_default(),
        None,
        (ev.received_at / 1000) as i64,
    );
    let mut answer = json!(check);
    answer["secrets_from"] = if given { "request" } else { "endpoint" }.into();
    Ok(Json(answer))
}

/// The config for a verify request: as an edit of the endpoint's check
/// would make it (see [`SignaturePatch`](crate::signature::SignaturePatch)):
/// fields given win, the endpoint's secrets and its scheme's settings fill
/// in the rest; the scheme is `auto` where the endpoint has none. A secret
/// given empty or of the wrong type is refused, never taken for "the
/// endpoint's" (the answer would read as a verdict on it). The flag says
/// whether the request gave the secrets checked.
pub fn verify_config(
    req: serde_json::Map<String, Value>,
    endpoint: Option<&crate::signature::SignatureConfig>,
) -> Result<(crate::signature::SignatureConfig, bool)> {
    let mut patch: crate::signature::SignaturePatch =
        serde_path_to_error::deserialize(Value::Object(req)).map_err(invalid_request)?;
    // A check, not an enforcement (and `auto` refuses `enforce`).
    patch.enforce = Some(false);
    if endpoint.is_none() {
        patch.scheme.get_or_insert_with(|| "auto".into());
    }
    let given = patch.gives_secrets();
    if endpoint.is_none() && !given {
        return Err(Error::Unprocessable(
            "secret: required (the endpoint has none)".into(),
        ));
    }
    let config = patch.apply(endpoint).map_err(Error::BadRequest)?;
    Ok((config, given))
}

/// `GET /api/export?format=jsonl|har&…filters`: oldest first, at most
/// [`export::MAX_EXPORT`](crate::admin::export::MAX_EXPORT) events and
/// about [`export::MAX_EXPORT_BYTES`](crate::admin::export::MAX_EXPORT_BYTES).
async fn export(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    use crate::admin::export as ex;
    known_params(&q, &["format"])?;
    let format = q
        .get("format")
        .map(String::as_str)
        .unwrap_or("jsonl")
        .to_string();
    if format != "jsonl" && format != "har" {
        return Err(Error::BadRequest(format!(
            "format: {format:?} must be jsonl or har"
        )));
    }
    let (filter, take) = parse_selection(&q, ex::MAX_EXPORT)?;
    // Held until the client has taken the text (or gone): see `AT_ONCE`.
    let turn = tokio::time::timeout(ex::WAIT, Arc::clone(&st.exports).acquire_owned())
        .await
        .map_err(|_| {
            Error::Unavailable(format!(
                "{} exports are being built or sent; try again once one is done",
                ex::AT_ONCE
            ))
        })?
        .expect("never closed");
    let base = st
        .relay
        .ingest_base_for(None)
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let (text, next) = st
        .relay
        .store
        .run(move |s| {
            let sel = crate::replay::matching_ids(s, &filter, ex::MAX_EXPORT, take)?;
            let (text, cut) = ex::build(s, &sel.ids, format == "har", &base, ex::MAX_EXPORT_BYTES)?;
            // All caps keep the newest: the rest is older than the oldest
            // exported (or read), where `cursor` continues.
            let more = sel.ids.first().cloned().filter(|_| sel.more);
            Ok((text, cut.or(more).or(sel.unread_from)))
        })
        .await?;
    let (ct, ext) = if q.get("format").map(String::as_str) == Some("har") {
        ("application/json", "har")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    let length = text.len();
    // One chunk, then the end, which hyper asks for once it has written
    // most of the chunk out: the turn ends there, or with the response.
    let chunks =
        futures_util::stream::unfold((Some(Bytes::from(text)), turn), |(text, turn)| async move {
            Some((Ok::<_, Infallible>(text?), (None, turn)))
        });
    let mut resp = axum::body::Body::from_stream(chunks).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"hookrelay-events.{ext}\""))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(cursor) = next {
        h.insert("x-hookrelay-truncated", HeaderValue::from_static("true"));
        if let Ok(v) = HeaderValue::from_str(&cursor) {
            h.insert("x-hookrelay-next-cursor", v);
        }
    }
    Ok(resp)
}

/// `GET /api/backup`: the whole store as a tar archive of a consistent
/// checkpoint (see [`crate::store::backup`]), streamed as it is read; one
/// at a time. A failure midway ends the answer with an error, so no client
/// takes a part for the whole (and `hookrelay backup` checks the archive
/// against its manifest as it arrives).
async fn backup(
    State(st): State<AdminState>,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
) -> Result<Response> {
    // GETs pass the cross-origin check; a backup costs a flush of every
    // memtable and holds the only turn, so a page on another site may not
    // start one through the browser.
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v != "same-origin" && v != "none")
    {
        return Ok((
            StatusCode::FORBIDDEN,
            Json(json!({ "error": "a backup is not started from another site" })),
        )
            .into_response());
    }
    let mut resp = if method == axum::http::Method::HEAD {
        axum::body::Body::empty().into_response()
    } else {
        backup_body(&st).await?.into_response()
    };
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    let name = crate::store::backup::file_name(crate::time::now_ms());
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

async fn backup_body(st: &AdminState) -> Result<axum::body::Body> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let turn = Arc::clone(&st.backups)
        .try_acquire_owned()
        .map_err(|_| Error::Conflict("a backup is being made; try again once it is done".into()))?;
    if let Some(refusal) = st.relay.storage_refusal() {
        return Err(Error::Unavailable(format!(
            "no backup while the store refuses events for storage ({})",
            refusal.why()
        )));
    }
    let checkpoint = st.relay.store.run(|s| s.checkpoint()).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let done = Arc::new(AtomicBool::new(false));
    let (relay, finished) = (Arc::clone(&st.relay), Arc::clone(&done));
    tokio::task::spawn_blocking(move || {
        let _turn = turn;
        let mut out = Chunks {
            tx: tx.clone(),
            buf: Vec::with_capacity(Chunks::SIZE),
        };
        let keep_going = || match relay.storage_refusal() {
            None => Ok(()),
            Some(refusal) => Err(Error::Unavailable(format!(
                "the backup was stopped so that the store keeps its room ({}): the files it holds on to were taken from the disk",
                refusal.why()
            ))),
        };
        match crate::store::backup::write_archive(checkpoint.path(), &mut out, keep_going) {
            Ok(w) => {
                finished.store(true, Ordering::SeqCst);
                tracing::info!(files = w.files, bytes = w.bytes, "backup sent");
            }
            Err(e) => {
                tracing::warn!(error = %e, "backup not sent whole");
                let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
        drop(checkpoint);
    });
    // The end of the stream is an error unless the archive was written
    // whole: a task that panicked ends it too.
    let chunks = futures_util::stream::unfold(Some(rx), move |rx| {
        let done = Arc::clone(&done);
        async move {
            let mut rx = rx?;
            match rx.recv().await {
                Some(chunk) => Some((chunk, Some(rx))),
                None if done.load(Ordering::SeqCst) => None,
                None => Some((
                    Err(std::io::Error::other(
                        "the backup ended before it was whole",
                    )),
                    None,
                )),
            }
        }
    });
    Ok(axum::body::Body::from_stream(chunks))
}

/// The archive on its way to the client, in pieces of [`Chunks::SIZE`]; a
/// client gone makes the next write fail.
struct Chunks {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl Chunks {
    const SIZE: usize = 256 << 10;

    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(Self::SIZE),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::SIZE {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Server-sent events: one `event` per new event, one `attempt` per attempt.
async fn stream(
    State(st): State<AdminState>,
    Query(q): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let filter = q.get("endpoint").filter(|s| !s.is_empty()).cloned();
    let rx = st.relay.subscribe();
    let closing = st.relay.closing.clone();
    // Let in by a dashboard session: it ends with the session (logout,
    // expiry), not only when the page goes — captured headers carry
    // senders' credentials.
    let session = (st.token.is_some() && !headers.contains_key(header::AUTHORIZATION))
        .then(|| st.sessions.watch(headers))
        .flatten();
    let s = futures_util::stream::unfold(
        (rx, filter, closing, session),
        |(mut rx, filter, closing, mut session)| async move {
            loop {
                let session_over = async {
                    match session.as_mut() {
                        Some(s) => s.over().await,
                        None => std::future::pending().await,
                    }
                };
                let item = tokio::select! {
                    // Shutdown: the stream ends cleanly, so the drain need not
                    // wait for every `tail` to hang up.
                    _ = closing.cancelled() => return None,
                    _ = session_over => return None,
                    item = rx.recv() => item,
                };
                // Both may have been ready at once.
                if session.as_ref().is_some_and(|s| !s.valid()) {
                    return None;
                }
                match item {
                    Ok(item) => {
                        if filter.as_ref().is_some_and(|f| f != &item.endpoint) {
                            continue;
                        }
                        let ev = SseEvent::default().event(item.kind).data(item.json);
                        return Some((Ok(ev), (rx, filter, closing, session)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let ev = SseEvent::default().event("lagged").data(n.to_string());
                        return Some((Ok(ev), (rx, filter, closing, session)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(s).keep_alive(KeepAlive::default())
}
