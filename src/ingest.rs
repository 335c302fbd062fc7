//! Ingest: `ANY /in/{slug}[/{rest}]`, `GET /healthz` and `GET /readyz` on the public
//! listener. Enforces the body limit, looks the endpoint up, stores the event
//! (before any byte goes upstream) and answers the sender: as a bin, with the
//! target's answer (forward), or `202` when the endpoint is paused or disabled.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::ext::ReasonPhrase;

use crate::capture;
use crate::endpoint::{Mode, Status};
use crate::error::Error;
use crate::event::EventState;
use crate::event::{Event, SignatureRecord};
use crate::provider;
use crate::relay::Relay;
use crate::signature::{self, SignatureConfig};
use crate::store::Store;

/// What a sender gets: a whole answer, or a long one from a target passed
/// on as it arrives.
pub type Body = http_body_util::Either<Full<Bytes>, crate::deliver::Passed>;

fn whole(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Either::Left(Full::new(bytes.into()))
}

/// How long a sender may take to send its whole body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// The header that tells a sender (and a test) which event it created.
pub const EVENT_HEADER: &str = "x-hookrelay-event";

pub async fn handle(
    relay: Arc<Relay>,
    req: Request<Incoming>,
    remote: SocketAddr,
    tls: bool,
) -> Result<Response<Body>, Infallible> {
    let head = req.method() == http::Method::HEAD;
    let mut resp = answer(relay, req, remote, tls).await?;
    // HTTP/1 writes `<none>` as the reason of a status it has no name for
    // (a target's 599 without its own phrase, a bin's 299): none is better.
    if resp.status().canonical_reason().is_none()
        && resp.extensions().get::<ReasonPhrase>().is_none()
    {
        resp.extensions_mut().insert(ReasonPhrase::from_static(b""));
    }
    Ok(without_content(head, resp))
}

/// An answer to HEAD, or a 204, 205 or 304, carries no content (RFC 9110
/// §6.4.1). HTTP/1.1 drops it on the wire, but an HTTP/2 DATA frame after
/// such an answer is a protocol error the sender's client resets the stream
/// for — the sender would never see its answer. A HEAD answer keeps the
/// length a GET would have had, a 304 the target's.
fn without_content(head: bool, mut resp: Response<Body>) -> Response<Body> {
    let status = resp.status().as_u16();
    let none = matches!(status, 204 | 205 | 304);
    if !(head || none) {
        return resp;
    }
    if let http_body_util::Either::Left(full) = resp.body() {
        let len = http_body::Body::size_hint(full).exact().unwrap_or(0);
        if len > 0 {
            if head && !resp.headers().contains_key(header::CONTENT_LENGTH) {
                resp.headers_mut()
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
            }
            *resp.body_mut() = whole(Bytes::new());
        }
    }
    // A 304's length is that of what it stands for (RFC 9110 §8.6); 204
    // and 205 have none.
    if matches!(status, 204 | 205) {
        resp.headers_mut().remove(header::CONTENT_LENGTH);
    }
    resp
}

async fn answer(
    relay: Arc<Relay>,
    req: Request<Incoming>,
    remote: SocketAddr,
    tls: bool,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/healthz" || path == "/readyz" {
        if !matches!(*req.method(), http::Method::GET | http::Method::HEAD) {
            let mut resp = json(
                StatusCode::METHOD_NOT_ALLOWED,
                serde_json::json!({ "error": format!("{path} takes GET") }).to_string(),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Ok(resp);
        }
        let (status, body) = if path == "/readyz" {
            relay.readiness()
        } else {
            relay.health()
        };
        return Ok(json(status, body));
    }
    // A tunnel request, not a delivery: hyper's client would send it as a
    // bare `CONNECT host:port` (no path, no body) and a proxy's `200` would
    // pass for a delivery.
    if req.method() == http::Method::CONNECT {
        let mut resp = json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "CONNECT opens a tunnel; hookrelay takes webhooks (any other method); nothing was stored" })
                .to_string(),
        );
        let h = resp.headers_mut();
        // Any other method is taken; these are the standard ones.
        h.insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE"),
        );
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    }
    if let Some(why) = capture::bad_host(req.version(), req.uri(), req.headers()) {
        return Ok(refused_closing(why));
    }
    let Some((slug, rest)) = capture::split_ingest_path(&path) else {
        let e = Error::NotFound("not an ingest path; senders post to /in/{slug}".into());
        return Ok(refused_unread(req, e).await);
    };
    let (slug, rest) = (slug.into_owned(), rest.to_string());
    match ingest(relay, req, &slug, &rest, remote, tls).await {
        Ok(resp) => Ok(resp),
        Err(e) => Ok(error(e)),
    }
}

async fn ingest(
    relay: Arc<Relay>,
    req: Request<Incoming>,
    slug: &str,
    rest: &str,
    remote: SocketAddr,
    tls: bool,
) -> Result<Response<Body>, Error> {
    let Some(cell) = relay.endpoint(slug) else {
        let e = Error::NotFound(format!("no endpoint {slug:?}"));
        return Ok(refused_unread(req, e).await);
    };
    if let Err(e) = relay.relayed_here(req.headers(), Some(slug)) {
        tracing::warn!(
            endpoint = slug,
            "a request this hookrelay sent came back to it; refused"
        );
        return Ok(refused_unread(req, e).await);
    }
    // Refused before anything is stored: it could never be sent on (see
    // `relay::join_url`). A bin keeps it, as received.
    if capture::has_dot_segment(rest) && cell.lock().target.is_some() {
        let e = Error::BadRequest(format!(
            "the path after /in/{slug} has a '.' or '..' segment, which would reach other paths on the target; nothing was stored"
        ));
        return Ok(refused_unread(req, e).await);
    }
    if let Some(why) = ambiguous_framing(req.headers()) {
        return Ok(refused_closing(why));
    }
    let max = relay.max_body;
    let declared = declared_length(req.headers());
    // Refuse a declared oversize body before reading any of it.
    if declared.is_some_and(|l| l > max as u64) {
        return Ok(too_large(max));
    }
    // Bodies are held whole in memory until stored and sent: together they
    // stay within the budget, or many large ones at once (slow senders, a
    // slow mirror) would exhaust the host's memory. Counted as they
    // arrive: a length declared and never sent holds nothing.
    let mut in_memory = crate::memory::BodyShare::new(&relay.bodies);
    let (parts, body) = req.into_parts();
    // A sender trickling its body is cut off: the header timeout does not
    // cover the body, and each slow body would hold up to --max-body bytes.
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        read_body(Limited::new(body, max), &mut in_memory),
    )
    .await;
    let Ok(collected) = collected else {
        let mut resp = json(
            StatusCode::REQUEST_TIMEOUT,
            serde_json::json!({ "error": format!("the body was not received within {} s; nothing was stored", BODY_TIMEOUT.as_secs()) }).to_string(),
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Ok(resp);
    };
    let (body, in_memory) = match collected {
        Ok(Some(b)) => (b, Arc::new(in_memory)),
        Ok(None) => return Ok(busy(&relay)),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Ok(too_large(max));
        }
        Err(e) => return Err(Error::BadRequest(format!("reading the request body: {e}"))),
    };
    // Content on HEAD has no meaning a receiver agrees on (one that ignores
    // it would read it as the next request on a pooled connection), and
    // TRACE must carry none (RFC 9110 §9.3.2, §9.3.8).
    if matches!(parts.method, http::Method::HEAD | http::Method::TRACE) && !body.is_empty() {
        return Err(Error::BadRequest(format!(
            "a {} request carries no content; nothing was stored",
            parts.method
        )));
    }

    let mut ep = cell.snapshot();
    // An event about to be held keeps the gate until it is stored: a
    // release that starts meanwhile waits for it (see `hold_gate`).
    let hold_gate = if ep.status == Status::Active {
        None
    } else {
        let gate = cell.hold_gate.read().await;
        ep = cell.snapshot();
        Some(gate)
    };
    // The id's time is the event's (`since`/`until` bound ids); signature
    // windows and due times go by the wall clock, which the id generator
    // may lag after the clock stepped back.
    let (id, received) = Store::new_id_ms();
    let now = crate::time::now_ms();
    let mut ev = capture::capture(id, &parts, slug, rest, body.len(), remote, received);
    ev.tls = tls;
    if let Some(trusted) = relay.trusted_proxies.get() {
        behind_proxy(&mut ev, trusted, remote, &parts.headers);
    }
    let prov = provider::identify(&ev.headers, &body);
    ev.topic = prov.topic;
    ev.external_id = prov.external_id;
    // WooCommerce's activation ping is unsigned by design. It counts as one
    // only in its form (a POST of `webhook_id=N`, to the delivery URL,
    // whatever its path and query) and where WooCommerce may be the sender:
    // anything else that carries that body is checked like any request.
    let ping = prov.is_ping
        && parts.method == http::Method::POST
        && ep
            .signature
            .as_ref()
            .is_none_or(|c| matches!(c.scheme.as_str(), "woocommerce" | "auto"));
    let enforce = ep.signature.as_ref().is_some_and(|cfg| cfg.enforce);
    // An enforcing endpoint's target only ever gets signed requests: the
    // ping is answered here (and kept), never sent on.
    let answer_ping = ping && enforce && !ep.is_bin();
    ev.signature = ep
        .signature
        .as_ref()
        .map(|cfg| check_signature(cfg, &ev, &body, ping, answer_ping, &parts.uri, now));
    let rejected = enforce
        && ev
            .signature
            .as_ref()
            .is_some_and(|s| REJECTED.contains(&s.verdict.as_str()));
    let state = match (rejected, ep.status, ep.is_bin()) {
        (true, _, _) => EventState::Rejected,
        _ if answer_ping => EventState::Captured,
        (false, Status::Paused | Status::Disabled, _) => EventState::Held,
        (false, Status::Active, true) => EventState::Captured,
        (false, Status::Active, false) => EventState::Received,
    };
    ev.state = state;
    ev.owed = matches!(state, EventState::Received | EventState::Held) && !ep.is_bin();
    let queued = ep.mode == Mode::Queue && state == EventState::Received;
    // Backpressure: refuse what cannot be kept up with, before storing it,
    // so the sender retries later instead of growing an endless backlog.
    if let Some(why) = relay.disk.get().and_then(|d| d.refusal()) {
        relay.metrics.refused_disk.fetch_add(1, Ordering::Relaxed);
        let mut resp = json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": format!("{why}; nothing was stored, retry later") })
                .to_string(),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        return Ok(resp);
    }
    // Last of the checks: a place it takes is given back only by the store's
    // answer below.
    let admitted = if queued {
        relay.queue.admit(slug, ep.max_queue_depth)
    } else {
        Ok(())
    };
    if let Err(full) = admitted {
        relay
            .metrics
            .refused_queue_depth
            .fetch_add(1, Ordering::Relaxed);
        let why = match full {
            crate::queue::Full::Endpoint => format!(
                "endpoint {slug:?} has {} events waiting (max_queue_depth); retry later",
                ep.max_queue_depth
            ),
            crate::queue::Full::All => format!(
                "{} events are waiting for delivery across all endpoints, as many as hookrelay keeps queued; retry later",
                crate::queue::TOTAL_MAX
            ),
        };
        let mut resp = json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "error": why }).to_string(),
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("30"));
        return Ok(resp);
    }
    // A bin's answer is chosen before the event is stored, and stored with
    // it: its status is the event's answer, for the list and `status=`.
    let bin_answer = (state == EventState::Captured && !answer_ping).then(|| {
        let n = cell.served.fetch_add(1, Ordering::Relaxed);
        let status = ep.response.status_for(n);
        ev.last_status = Some(status);
        status
    });
    let stored_body = body.clone();
    let due = queued.then_some(now);
    // Written to the WAL first (before any byte goes upstream), then the
    // sender waits for the group sync, so concurrent senders share it.
    let forwarding = state == EventState::Received && !queued;
    let arrival = (queued && ep.ordered).then(|| {
        let guard = cell.arrival.lock().unwrap_or_else(|p| p.into_inner());
        // Taken again under the lock: the id taken earlier on this thread
        // could be older than one another thread pushed meanwhile.
        let (id, received) = Store::new_id_ms();
        ev.id = id;
        ev.received_at = received;
        guard
    });
    let stored = relay.store.insert_event_queued(ev, &stored_body, due);
    if let (Ok(_), Some(disk)) = (&stored, relay.disk.get()) {
        disk.accepted(stored_body.len() as u64);
    }
    // In queue mode the worker learns of the event before the sync wait: in
    // arrival order, counted by the depth limit, and not stranded until a
    // restart by a sender that hangs up meanwhile. Nothing sends it before
    // this sender has its verdict (`Queue::settled`).
    let mark = match (&stored, queued) {
        (Ok(ev), true) => Some(relay.queue.push_unsynced(slug, &ev.id, now)),
        (Err(_), true) => {
            relay.queue.unreserve(slug);
            None
        }
        _ => None,
    };
    drop(arrival);
    // A forwarded event waits for its sync together with the target (below):
    // the sync overlaps the upstream round trip, and nobody is answered
    // before both are done. Everything else is acknowledged once synced;
    // a held one keeps the release waiting meanwhile (the hold gate), so
    // nothing releases an event that may yet be withdrawn.
    let stored = match stored {
        Ok(ev) if !forwarding => match relay.store.durable().await {
            Ok(()) => {
                if let Some(mark) = mark {
                    mark.settle();
                }
                Ok(ev)
            }
            Err(e) => Err(withdraw(&relay, &ev, due, mark, e)),
        },
        other => other,
    };
    drop(hold_gate);
    let ev = match stored {
        Ok(ev) => ev,
        Err(e) => {
            relay.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
            if bin_answer.is_some() {
                // The sender gets 503, not that step: its retry gets it.
                cell.served.fetch_sub(1, Ordering::Relaxed);
            }
            return Err(e);
        }
    };
    relay
        .metrics
        .events_received
        .fetch_add(1, Ordering::Relaxed);
    relay.publish_event(&ev);
    tracing::debug!(endpoint = slug, id = %ev.id, state = ev.state.as_str(), "event stored");
    // The mirror sees all traffic, whatever the target's status: an event
    // held for a paused target is copied now, once (a release does not copy
    // it again). Rejected ones are not: a forgery reaches no receiver.
    if let Some(mirror) = &ep.mirror
        && matches!(
            state,
            EventState::Received | EventState::Captured | EventState::Held
        )
        && !answer_ping
    {
        relay.mirror(&ev, &body, mirror.clone());
    }
    // WooCommerce activates a webhook only on a 200 to its ping.
    let accepted = if ping {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    if queued {
        let body = serde_json::json!({ "queued": true, "event": ev.id });
        return Ok(with_event(json(accepted, body.to_string()), &ev.id));
    }

    match state {
        EventState::Rejected => {
            relay
                .metrics
                .events_rejected
                .fetch_add(1, Ordering::Relaxed);
            let sig = ev
                .signature
                .as_ref()
                .expect("rejected events carry a verdict");
            // The detail stays with the stored event (admin side): it holds
            // a prefix of the expected MAC, and any bits of it would let a
            // sender test guesses of a weak secret offline.
            let why = match sig.verdict.as_str() {
                "missing" => "no signature header for this endpoint's scheme",
                "stale" => "the signed timestamp is outside the tolerance",
                _ => "no configured secret matches",
            };
            let body = serde_json::json!({
                "error": format!("signature {}: {why}", sig.verdict),
                "event": ev.id,
                "stored": true,
            });
            Ok(with_event(
                json(StatusCode::UNAUTHORIZED, body.to_string()),
                &ev.id,
            ))
        }
        EventState::Held => {
            relay.metrics.events_held.fetch_add(1, Ordering::Relaxed);
            let why = format!("endpoint {slug:?} is {}", ep.status.as_str());
            Ok(held(accepted, &ev.id, why))
        }
        EventState::Captured if answer_ping => {
            let body = serde_json::json!({
                "ok": true,
                "ping": "answered by hookrelay: this endpoint enforces signatures, so its target gets only signed requests",
            });
            Ok(with_event(json(StatusCode::OK, body.to_string()), &ev.id))
        }
        EventState::Captured => {
            let spec = &ep.response;
            // Stored: nothing needs the body while the answer waits.
            drop((body, stored_body, in_memory));
            if spec.delay_ms > 0 {
                tokio::time::sleep(Duration::from_millis(spec.delay_ms)).await;
            }
            let mut resp = Response::new(whole(spec.body.clone()));
            *resp.status_mut() =
                StatusCode::from_u16(bin_answer.unwrap_or(spec.status)).unwrap_or(StatusCode::OK);
            // Refused when the endpoint is saved; skipped here for one an
            // earlier version stored (a `content-length` would break framing).
            for (n, v) in spec
                .headers
                .iter()
                .filter(|(n, _)| !crate::deliver::per_hop(n))
            {
                if let (Ok(n), Ok(v)) = (
                    HeaderName::from_bytes(n.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    resp.headers_mut().append(n, v);
                }
            }
            Ok(with_event(resp, &ev.id))
        }
        _ => {
            let target = ep.target.clone().expect("forward mode has a target");
            let id = ev.id.clone();
            let head = ev.method == "HEAD";
            // Its own task: a sender that hangs up (or a shutdown drain that
            // ends) drops this request future, but the attempt must still be
            // sent, recorded and counted.
            let r = Arc::clone(&relay);
            let share = Arc::clone(&in_memory);
            let delivery = relay.deliveries.spawn(async move {
                let _share = share;
                r.forward(&ev, body, &target).await
            });
            let (synced, delivered) = tokio::join!(relay.store.durable(), delivery);
            if let Err(e) = synced {
                relay.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, endpoint = slug, id = %id, "a forwarded event could not be made durable");
                // Not acknowledged, but the target may well have it: the
                // sender learns both, and which event it was.
                let target = match &delivered {
                    Ok(Ok(crate::relay::Forwarded::Done(done))) => match done.1.status {
                        Some(status) => format!("the target answered {status}"),
                        None => "the target did not answer".to_string(),
                    },
                    Ok(Ok(crate::relay::Forwarded::Passing { status, .. })) => {
                        format!("the target answered {status}")
                    }
                    Ok(Err(Error::Unavailable(_))) => "it was not sent to the target".to_string(),
                    _ => "whether the target got it is not known".to_string(),
                };
                // Not "not stored": it stays listed, and is kept once the
                // store can write again.
                let body = serde_json::json!({
                    "error": format!("storage unavailable: the event could not be made durable, so it is not acknowledged ({target})"),
                    "event": id,
                });
                return Ok(with_event(
                    retry_later(json(StatusCode::SERVICE_UNAVAILABLE, body.to_string())),
                    &id,
                ));
            }
            let (ev, attempt, reply) = match delivered? {
                Ok(crate::relay::Forwarded::Done(done)) => *done,
                Ok(crate::relay::Forwarded::Passing {
                    status,
                    reason,
                    headers,
                    body,
                }) => {
                    let mut resp = Response::new(http_body_util::Either::Right(body));
                    *resp.status_mut() =
                        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                    if let Some(reason) = reason {
                        resp.extensions_mut().insert(reason);
                    }
                    copy_answer_headers(&mut resp, &headers);
                    return Ok(with_event(resp, &id));
                }
                // Stored, not sent: the sender learns which event it is.
                Err(Error::Unavailable(why)) => {
                    let body = serde_json::json!({ "error": why, "event": id, "stored": true });
                    let resp = json(StatusCode::SERVICE_UNAVAILABLE, body.to_string());
                    return Ok(with_event(resp, &id));
                }
                // Synced above: stored, whatever became of the delivery.
                Err(e) => {
                    tracing::error!(error = %e, endpoint = slug, id = %id, "a forward's outcome could not be recorded");
                    let body = serde_json::json!({
                        "error": "the event is stored, but what became of its delivery could not be recorded (storage failing); replay it once the store can write",
                        "event": id,
                        "stored": true,
                    });
                    return Ok(with_event(json(e.status(), body.to_string()), &id));
                }
            };
            if ev.state == EventState::Held {
                relay.metrics.events_held.fetch_add(1, Ordering::Relaxed);
                let why = format!(
                    "endpoint {slug:?} stopped being active while this delivery was on its way (disabled by another failure, or paused); held, to be released in arrival order"
                );
                return Ok(held(accepted, &id, why));
            }
            let Some(reply) = reply else {
                let (status, what) = match attempt.error {
                    Some(crate::event::ErrorKind::Timeout) => {
                        (StatusCode::GATEWAY_TIMEOUT, "timed out")
                    }
                    _ => (StatusCode::BAD_GATEWAY, "failed"),
                };
                let body = serde_json::json!({
                    "error": format!("delivery to the target {what}: {}", attempt.error_detail.as_deref().unwrap_or("")),
                    "event": id,
                    "stored": true,
                });
                return Ok(with_event(json(status, body.to_string()), &id));
            };
            let mut resp = Response::new(whole(reply.body));
            *resp.status_mut() =
                StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Some(reason) = reply.reason {
                resp.extensions_mut().insert(reason);
            }
            copy_answer_headers(&mut resp, &reply.headers);
            // No body to measure in an answer to HEAD or a 304: the length
            // it states is the target's.
            if head || reply.status == 304 {
                let length = reply
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| HeaderValue::from_bytes(v).ok());
                if let Some(v) = length {
                    resp.headers_mut().insert(header::CONTENT_LENGTH, v);
                }
            }
            Ok(with_event(resp, &id))
        }
    }
}

/// A target's answer headers, as the sender gets them: without the ones of
/// its hop (the length is the sender's hop's: hyper sets it).
fn copy_answer_headers(resp: &mut Response<Body>, headers: &crate::event::Headers) {
    for (n, v) in crate::deliver::strip_hop_by_hop(headers) {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.as_bytes()),
            HeaderValue::from_bytes(&v),
        ) {
            resp.headers_mut().append(n, v);
        }
    }
}

/// A body read and dropped after a refusal made before reading it (a small
/// one the sender has sent already), so that the connection can carry the
/// sender's next request: hyper closes a connection whose request body
/// was left unread, and a sender that pools connections had its next
/// request fail on it.
const DRAIN_MAX: usize = 64 * 1024;
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// The body length a request declares (`Content-Length`), if it does.
fn declared_length(h: &http::HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok()?.parse::<u64>().ok())
}

/// `e`'s answer after draining the request's body (see [`DRAIN_MAX`]).
/// Not drained, and the connection closed: a body declared larger, one
/// the sender waits to be asked for (`Expect`: reading it would invite the
/// upload only to drop it), and one framed so that a proxy in front could
/// read it otherwise (what follows it on the connection cannot be trusted).
async fn refused_unread(req: Request<Incoming>, e: Error) -> Response<Body> {
    let h = req.headers();
    let declared = declared_length(h);
    let drain = ambiguous_framing(h).is_none()
        && !h.contains_key(header::EXPECT)
        && declared.is_none_or(|n| n <= DRAIN_MAX as u64);
    let drained = drain
        && matches!(
            tokio::time::timeout(
                DRAIN_WAIT,
                http_body_util::BodyExt::collect(Limited::new(req.into_body(), DRAIN_MAX)),
            )
            .await,
            Ok(Ok(_))
        );
    let mut resp = error(e);
    if !drained {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// `400` for a request read one way where a proxy could read it another
/// (framing, host): nothing stored, and the connection closed, as what
/// follows on it cannot be trusted either.
fn refused_closing(why: &str) -> Response<Body> {
    let mut resp = error(Error::BadRequest(format!("{why}; nothing was stored")));
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A transfer coding other than one plain `chunked`, refused rather than
/// passed on: `gzip, chunked` would reach the target as gzip bytes without
/// a header saying so, and proxies disagree on such framing (the stuff of
/// request smuggling). Chunked with a `Content-Length` never gets here:
/// hyper reads the chunks, drops the length and closes the connection.
fn ambiguous_framing(h: &http::HeaderMap) -> Option<&'static str> {
    let mut te = h.get_all(header::TRANSFER_ENCODING).iter().peekable();
    te.peek()?;
    // Exactly one coding, `chunked`, over all the lines: chunked twice
    // would leave the body chunk-encoded once hyper took one layer off.
    // Empty list elements do not count (RFC 9110 §5.6.1; hyper itself
    // refuses a trailing comma before this runs).
    let mut codings = te
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter(|c| !c.trim_ascii().is_empty());
    let plain = codings
        .next()
        .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        && codings.next().is_none();
    (!plain).then_some("a Transfer-Encoding other than chunked")
}

/// Names the client behind a trusted proxy: `remote_addr` becomes the
/// address the proxy vouches for (the peer is kept as `proxy_addr`), and a
/// request the proxy received over TLS counts as such.
fn behind_proxy(
    ev: &mut Event,
    trusted: &crate::forwarded::TrustedProxies,
    peer: SocketAddr,
    headers: &http::HeaderMap,
) {
    if !trusted.trusts(peer.ip()) {
        return;
    }
    let client = trusted.client(peer.ip(), headers);
    if client != peer.ip() {
        ev.proxy_addr = Some(std::mem::replace(&mut ev.remote_addr, client.to_string()));
    }
    ev.tls |= crate::forwarded::proxy_hop_was_tls(headers);
}

/// An event whose sync failed is answered `503`: take it back so that it is
/// neither listed nor delivered (see [`Store::withdraw`]), then settle its
/// queue entry (a delivery waiting on it finds it gone). One that cannot be
/// taken back stays stored, and queued: delivered once a sync succeeds (a
/// duplicate, if its sender sends it again).
fn withdraw(
    relay: &Relay,
    ev: &Event,
    due: Option<u64>,
    mark: Option<crate::queue::Unsettled<'_>>,
    e: Error,
) -> Error {
    match relay.store.withdraw(ev, due) {
        Ok(()) => {
            if due.is_some() {
                relay.queue.forget(&ev.endpoint, &ev.id);
            }
            if let Some(mark) = mark {
                mark.settle();
            }
        }
        // The mark is dropped unsettled: whoever sends it syncs first.
        Err(w) => {
            tracing::error!(id = %ev.id, error = %w, "an event refused with 503 could not be taken back; it stays stored")
        }
    }
    e
}

/// Verdicts that an enforcing endpoint answers with `401`.
const REJECTED: [&str; 3] = ["invalid", "stale", "missing"];

/// The verdict recorded with an event. WooCommerce's activation ping is
/// unsigned by design: recorded as a ping, not as a bad signature.
fn check_signature(
    cfg: &SignatureConfig,
    ev: &Event,
    body: &[u8],
    is_ping: bool,
    answered: bool,
    uri: &http::Uri,
    now_ms: u64,
) -> SignatureRecord {
    if is_ping {
        let detail = if answered {
            "WooCommerce activation ping (webhook_id=…): unsigned by design; answered by hookrelay, not sent on"
        } else {
            "WooCommerce activation ping (webhook_id=…): unsigned by design"
        };
        return SignatureRecord {
            scheme: cfg.scheme.clone(),
            verdict: "unchecked".into(),
            detail: detail.into(),
            secret_index: None,
        };
    }
    let url = uri.to_string();
    let check = signature::verify(cfg, &ev.headers, body, Some(&url), (now_ms / 1000) as i64);
    record_of(check)
}

pub fn record_of(check: signature::Check) -> SignatureRecord {
    SignatureRecord {
        scheme: check.scheme,
        verdict: check.verdict.as_str().into(),
        detail: check.detail,
        secret_index: check.secret_index,
    }
}

/// The answer for an event stored as `held` (its endpoint paused or
/// disabled): accepted, so the sender's own failure count is not tripped.
fn held(accepted: StatusCode, id: &str, reason: String) -> Response<Body> {
    let body = serde_json::json!({
        "held": true,
        "event": id,
        "reason": reason,
    });
    with_event(json(accepted, body.to_string()), id)
}

fn with_event(mut resp: Response<Body>, id: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(id) {
        resp.headers_mut().insert(EVENT_HEADER, v);
    }
    resp
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    let mut resp = Response::new(whole(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn error(e: Error) -> Response<Body> {
    if matches!(e, Error::Store(_) | Error::Internal(_)) {
        tracing::error!(error = %e, "ingest failed");
    }
    let resp = json(e.status(), e.body());
    match e.status() {
        StatusCode::SERVICE_UNAVAILABLE => retry_later(resp),
        _ => resp,
    }
}

/// Seconds a sender is asked to wait after a store that could not keep its
/// event (disk full or failing): long enough for an operator's fix or the
/// store's own recovery, short enough not to fill the sender's backlog.
const STORE_RETRY_AFTER_S: u32 = 10;

/// A `503` for a store failure, with `Retry-After`.
fn retry_later(mut resp: Response<Body>) -> Response<Body> {
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(STORE_RETRY_AFTER_S));
    resp
}

/// Reads a whole body, growing `held` as it comes; `None` when the budget
/// has no room for the rest.
async fn read_body(
    mut body: Limited<Incoming>,
    held: &mut crate::memory::BodyShare,
) -> Result<Option<Bytes>, Box<dyn std::error::Error + Send + Sync>> {
    let mut chunks = Vec::new();
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        // Trailers are neither stored nor sent.
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        len += data.len();
        if len > held.bytes() && !held.grow(len - held.bytes()) {
            return Ok(None);
        }
        chunks.push(data);
    }
    Ok(Some(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().expect("one chunk"),
        _ => {
            let mut all = Vec::with_capacity(len);
            for c in &chunks {
                all.extend_from_slice(c);
            }
            Bytes::from(all)
        }
    }))
}

/// The answer while the bodies in memory fill the budget.
fn busy(relay: &Relay) -> Response<Body> {
    relay.metrics.refused_memory.fetch_add(1, Ordering::Relaxed);
    let budget = &relay.bodies;
    let mut resp = json(
        StatusCode::SERVICE_UNAVAILABLE,
        serde_json::json!({
            "error": format!(
                "hookrelay holds {} MiB of request bodies (being received, stored or forwarded), its limit; nothing was stored, retry later",
                budget.limit() >> 20
            ),
        })
        .to_string(),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    // The rest of the body is not read.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

fn too_large(max: usize) -> Response<Body> {
    let mut resp = json(
        StatusCode::PAYLOAD_TOO_LARGE,
        serde_json::json!({ "error": format!("body larger than the limit of {max} bytes; nothing was stored") })
            .to_string(),
    );
    // The rest of an oversize body is not read, so the connection must not
    // be reused for another request.
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}
