//! Delivery: one outbound try of a request to a URL, and what came back.
//!
//! The client never follows redirects (a 3xx is the answer, judged by the
//! endpoint's `success_codes`), speaks HTTP/1.1 and HTTP/2 (by ALPN over
//! TLS), trusts the webpki roots plus an optional private CA, and turns every
//! failure into an [`ErrorKind`] the attempt records. Which addresses it
//! may connect to is [`guard`]'s.

pub mod guard;
pub mod slots;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::event::{ErrorKind, Headers};
use guard::{Connector, TargetGuard};

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// `host` and `content-length`, which the client sets for the new hop.
pub const HOP_BY_HOP: [&str; 10] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

/// A header that describes one hop or frames one message: [`HOP_BY_HOP`]
/// and `content-length`. Never sent on, nor set on a bin's answer.
pub fn per_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || name.eq_ignore_ascii_case("content-length")
}

/// Drops hop-by-hop headers, those named by `Connection`, `content-length`,
/// and `Expect`: hookrelay met a `100-continue` itself, and sends on a body
/// it already has (a replay, maybe days later).
pub fn strip_hop_by_hop(headers: &Headers) -> Headers {
    let named: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("connection"))
        .flat_map(|(_, v)| {
            String::from_utf8_lossy(v)
                .split(',')
                .map(|s| s.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    // Compared without lower-casing copies: this runs for every forward.
    headers
        .iter()
        .filter(|(n, _)| {
            !per_hop(n)
                && !n.eq_ignore_ascii_case("expect")
                && !named.iter().any(|c| n.eq_ignore_ascii_case(c))
        })
        .cloned()
        .collect()
}

/// How long an idle pooled connection to a receiver is kept. Shorter than
/// the idle timeouts of common receivers' servers (Node, Apache, uvicorn:
/// 5 s): a connection they close just as a request goes out on it fails
/// that request (`502`, counted by the policy), so hookrelay closes first.
const POOL_IDLE: Duration = Duration::from_secs(4);
/// Header fields a receiver's answer may carry (hyper's default, 100, is
/// below what ingest takes from senders).
const MAX_ANSWER_HEADERS: usize = 256;

/// One request to send.
pub struct Outbound {
    pub method: Method,
    pub url: Uri,
    pub headers: Headers,
    pub body: Bytes,
    pub timeout: Duration,
    pub answer: Answer,
}

/// How much of an answer's body is kept.
#[derive(Clone, Copy, Debug)]
pub enum Answer {
    /// All of it (the CLI's own requests to the API): an answer longer
    /// than this fails rather than exhausting memory.
    Whole(usize),
    /// Its start, for an attempt record: the rest is read and counted, not
    /// kept, so a long answer is neither a failure nor held in memory.
    Prefix(usize),
    /// At least this much of its start (all of a shorter answer); the rest
    /// of a longer one is left at the target for the caller to pass on as
    /// it arrives ([`Reply::rest`]), so a forward's sender gets a long
    /// answer without hookrelay holding it.
    Stream(usize),
}

/// Bytes of a long answer held between the target and a slow sender (one
/// read larger than this is let through alone): hyper reads up to 400 KiB
/// at once from a fast target, so a count of pieces would not bound it.
const PASSING_BYTES: usize = 256 * 1024;

/// A piece of a long answer on its way to a forward's sender, holding its
/// share of [`PASSING_BYTES`] until the sender's connection takes it.
type Piece = Result<(Bytes, tokio::sync::OwnedSemaphorePermit), std::io::Error>;

/// The way from [`Rest::pass_on`] to a [`Passed`] body.
pub struct Passing {
    tx: tokio::sync::mpsc::Sender<Piece>,
    room: Arc<tokio::sync::Semaphore>,
    /// Shutdown: a sender that holds the answer back is let go (its answer
    /// ends broken), so the rest is read and the attempt recorded in time.
    stop: tokio_util::sync::CancellationToken,
}

/// A long answer's way to its sender: `first` (read with the head), then
/// what [`Rest::pass_on`] sends through the [`Passing`]; `length` is the
/// whole length when the target said it (`Content-Length`, framing the
/// body); `stop` is the shutdown signal.
pub fn passing(
    first: Bytes,
    length: Option<u64>,
    stop: tokio_util::sync::CancellationToken,
) -> (Passing, Passed) {
    // The bytes bound what waits; the count only needs to exceed what
    // fits in them.
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let room = Arc::new(tokio::sync::Semaphore::new(PASSING_BYTES));
    (
        Passing { tx, room, stop },
        Passed {
            first: Some(first),
            rest: rx,
            length,
        },
    )
}

impl Passing {
    /// False once the sender is gone.
    async fn send(&self, data: Bytes) -> bool {
        let share = data.len().clamp(1, PASSING_BYTES) as u32;
        // A sender gone drops what waited, and with it the room it held.
        let room = tokio::select! {
            biased;
            room = Arc::clone(&self.room).acquire_many_owned(share) => room,
            _ = self.tx.closed() => return false,
            _ = self.stop.cancelled() => {
                let why = "hookrelay is shutting down; the sender was not reading the answer";
                let _ = self.tx.try_send(Err(std::io::Error::other(why)));
                return false;
            }
        };
        let Ok(room) = room else { return false };
        self.tx.send(Ok((data, room))).await.is_ok()
    }
}

/// The rest of an answer's body after its start ([`Answer::Stream`]),
/// still to be read from the target.
#[derive(Debug)]
pub struct Rest {
    body: hyper::body::Incoming,
    /// What is left of the try's time. Spent only while waiting for the
    /// target: a slow sender that holds the next piece back is not the
    /// target's failure.
    left: Duration,
    timeout: Duration,
    status: http::StatusCode,
}

impl Rest {
    /// Passes the rest on to `to` as it arrives; once `to` is gone (the
    /// sender hung up), reads on to the end all the same, so the attempt
    /// records the answer, not the sender. Returns how many bytes came and
    /// the try's whole time spent waiting for the target (its latency, not
    /// the sender's pace); a failure is also sent on, so the sender's
    /// answer ends broken rather than looking complete.
    pub async fn pass_on(mut self, to: Passing) -> Result<(u64, Duration), Failure> {
        let mut to = Some(to);
        let mut total = 0u64;
        loop {
            let waited = Instant::now();
            let next = tokio::time::timeout(self.left, self.body.frame()).await;
            self.left = self.left.saturating_sub(waited.elapsed());
            let failure = match next {
                Ok(None) => return Ok((total, self.timeout.saturating_sub(self.left))),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        total += data.len() as u64;
                        if let Some(passing) = &to
                            && !passing.send(data).await
                        {
                            to = None;
                        }
                    }
                    continue;
                }
                Ok(Some(Err(e))) => reading_failure(&e),
                Err(_) => late(&body_unfinished(self.status), self.timeout),
            };
            if let Some(passing) = to {
                let _ = passing
                    .tx
                    .send(Err(std::io::Error::other(failure.detail.clone())))
                    .await;
            }
            return Err(failure);
        }
    }
}

/// A long answer's body as its sender gets it (see [`passing`]).
pub struct Passed {
    first: Option<Bytes>,
    rest: tokio::sync::mpsc::Receiver<Piece>,
    length: Option<u64>,
}

impl http_body::Body for Passed {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if let Some(first) = self.first.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(first))));
        }
        // The room goes back as hyper takes the piece: its own write
        // buffer is bounded apart.
        self.rest
            .poll_recv(cx)
            .map(|piece| piece.map(|p| p.map(|(data, _room)| http_body::Frame::data(data))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.length.map_or_else(
            http_body::SizeHint::default,
            http_body::SizeHint::with_exact,
        )
    }
}

/// A receiver's answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The target's own reason phrase (HTTP/1), when not the usual one.
    pub reason: Option<hyper::ext::ReasonPhrase>,
    pub headers: Headers,
    /// All of it, or its start (see [`Answer`]).
    pub body: Bytes,
    /// The length of the whole body (of `body` while `rest` is unread).
    pub body_size: u64,
    /// With [`Answer::Stream`], the rest of a long answer, unread.
    pub rest: Option<Rest>,
}

#[derive(Debug)]
pub struct Failure {
    pub kind: ErrorKind,
    pub detail: String,
    /// The outbound guard refused the connection (see [`guard`]).
    pub refused: bool,
    /// hookrelay itself could not open a connection (out of file
    /// descriptors): nothing reached the target, and it is not the
    /// target's failure.
    pub local: bool,
}

impl Failure {
    /// A failure of the target's (neither refused by the guard nor local).
    fn of(kind: ErrorKind, detail: String) -> Failure {
        Failure {
            kind,
            detail,
            refused: false,
            local: false,
        }
    }
}

type Pool = HyperClient<HttpsConnector<slots::Counted<Connector>>, Full<Bytes>>;

/// The outbound client. It keeps one connection pool per ingest thread (see
/// `server`), so that a forward runs on one thread from the sender's request
/// to the target's answer: a pooled connection's task lives on the runtime
/// that opened it, and sharing pools across threads made every forward wake
/// the other thread twice. Everything else (queue worker, replays, admin)
/// shares the last pool.
#[derive(Clone)]
pub struct Client {
    pools: Arc<[Pool]>,
    guard: Arc<TargetGuard>,
}

thread_local! {
    /// The ingest thread this is, if it is one.
    static SHARD: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Marks the calling thread as ingest thread `index`: its sends use pool
/// `index`.
pub fn set_shard(index: usize) {
    SHARD.with(|s| s.set(Some(index)));
}

impl Client {
    /// A client with a pool for each of `shards` ingest threads, plus one,
    /// connecting only where `guard` allows.
    pub fn new(
        ca_file: Option<&Path>,
        shards: usize,
        guard: TargetGuard,
    ) -> Result<Client, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = ca_file {
            use rustls_pki_types::pem::PemObject;
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
            let mut added = 0;
            for cert in certs {
                let cert = cert.map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
                added += 1;
            }
            // A file with no certificate in it trusts nothing more: every
            // forward to the private CA would fail with a TLS error.
            if added == 0 {
                return Err(format!(
                    "--ca-file {}: no PEM CERTIFICATE block found",
                    path.display()
                ));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(
            rustls::crypto::ring::default_provider().into(),
        )
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let guard = Arc::new(guard);
        let mut http = Connector::new(Arc::clone(&guard));
        let tcp = http.tcp();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        // The per-attempt timeout covers connecting too; this only stops a
        // black-holed SYN from outliving it.
        tcp.set_connect_timeout(Some(Duration::from_secs(30)));
        let http = slots::Counted::new(http, crate::fds::Budget::current().outbound_connections);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let pools = (0..=shards)
            .map(|_| {
                HyperClient::builder(TokioExecutor::new())
                    .pool_idle_timeout(POOL_IDLE)
                    .pool_max_idle_per_host(64)
                    .http1_max_headers(MAX_ANSWER_HEADERS)
                    .build(connector.clone())
            })
            .collect();
        Ok(Client { pools, guard })
    }

    /// Where this client may connect.
    pub fn guard(&self) -> &TargetGuard {
        &self.guard
    }

    /// This thread's pool.
    fn pool(&self) -> &Pool {
        let last = self.pools.len() - 1;
        let i = SHARD.with(|s| s.get()).map_or(last, |i| i.min(last));
        &self.pools[i]
    }

    /// Sends one request; the timeout covers connect, headers and body.
    pub async fn send(&self, out: Outbound) -> (Result<Reply, Failure>, Duration) {
        let started = Instant::now();
        let result = self.send_inner(out, started).await;
        (result, started.elapsed())
    }

    /// A GET whose response body is read by the caller as it arrives
    /// (server-sent events); no timeout.
    pub async fn stream(
        &self,
        url: &str,
        headers: &Headers,
    ) -> Result<http::Response<hyper::body::Incoming>, Failure> {
        let mut req = Request::builder().method(Method::GET).uri(url);
        for (n, v) in headers {
            req = req.header(n.as_str(), v.as_slice());
        }
        let req = req
            .body(Full::new(Bytes::new()))
            .map_err(|e| Failure::of(ErrorKind::Protocol, format!("cannot build request: {e}")))?;
        self.pool().request(req).await.map_err(classify)
    }

    /// `started`: the timeout counts from it (connect, head and body).
    async fn send_inner(&self, out: Outbound, started: Instant) -> Result<Reply, Failure> {
        let answer = out.answer;
        let timeout = out.timeout;
        let deadline = tokio::time::Instant::from_std(started + timeout);
        let too_late = |what: &str| late(what, timeout);
        let mut req = Request::builder().method(out.method).uri(out.url);
        let hdrs = req.headers_mut().expect("fresh builder");
        for (name, value) in &out.headers {
            // Names and values were valid when hyper parsed them inbound;
            // anything that is not (a hand-edited replay) is skipped, not sent broken.
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(value),
            ) {
                hdrs.append(n, v);
            }
        }
        // hyper sends no length for an empty body, and receivers that
        // require one on a POST (Google's front ends among them) answer 411.
        if out.body.is_empty()
            && matches!(
                *req.method_ref().expect("fresh builder"),
                Method::POST | Method::PUT | Method::PATCH
            )
        {
            req.headers_mut()
                .expect("fresh builder")
                .insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        }
        let req = req
            .body(Full::new(out.body))
            .map_err(|e| Failure::of(ErrorKind::Protocol, format!("cannot build request: {e}")))?;
        let request = tokio::time::timeout_at(deadline, self.pool().request(req));
        let resp = slots::WAIT
            .scope(slots::wait_within(timeout), request)
            .await
            .map_err(|_| too_late("no answer"))?
            .map_err(classify)?;
        // The status came: a body that stalls is still a timeout, but the
        // attempt's detail says how far the answer got.
        let status = resp.status();
        let mut reply = tokio::time::timeout_at(deadline, read_reply(resp, answer))
            .await
            .map_err(|_| too_late(&body_unfinished(status)))??;
        if let Some(rest) = &mut reply.rest {
            rest.left = deadline.saturating_duration_since(tokio::time::Instant::now());
            rest.timeout = timeout;
        }
        Ok(reply)
    }
}

/// Reads a whole answer, its body as `answer` says.
async fn read_reply(
    resp: http::Response<hyper::body::Incoming>,
    answer: Answer,
) -> Result<Reply, Failure> {
    let (parts, body) = resp.into_parts();
    // hyper hands interim answers (100, 103) over only as a final status
    // when it is 101; nothing sent here asks for an upgrade (`Upgrade` is
    // hop-by-hop and dropped), and passing a 101 on would leave the
    // sender's connection switched to nothing.
    if parts.status.is_informational() {
        return Err(Failure::of(
            ErrorKind::Protocol,
            format!(
                "the target answered {} to a request that asked for no protocol switch",
                parts.status
            ),
        ));
    }
    let mut rest = None;
    let (body, body_size) = match answer {
        Answer::Whole(limit) => {
            let all = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| reading_failure(&e))?
                .to_bytes();
            let n = all.len() as u64;
            (all, n)
        }
        Answer::Prefix(cap) => {
            let mut body = body;
            let mut kept = bytes::BytesMut::new();
            let mut total = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| reading_failure(&e))?;
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&data[..room.min(data.len())]);
                }
            }
            (kept.freeze(), total)
        }
        Answer::Stream(start) => {
            let mut body = body;
            let mut read = bytes::BytesMut::new();
            while read.len() < start {
                match body.frame().await {
                    None => break,
                    Some(frame) => {
                        if let Ok(data) = frame.map_err(|e| reading_failure(&e))?.into_data() {
                            read.extend_from_slice(&data);
                        }
                    }
                }
            }
            // Not at its end yet (or ending just here: the next read says).
            if read.len() >= start && !http_body::Body::is_end_stream(&body) {
                rest = Some(Rest {
                    body,
                    left: Duration::ZERO,
                    timeout: Duration::ZERO,
                    status: parts.status,
                });
            }
            let n = read.len() as u64;
            (read.freeze(), n)
        }
    };
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    Ok(Reply {
        status: parts.status.as_u16(),
        reason: parts.extensions.get().cloned(),
        headers,
        body,
        body_size,
        rest,
    })
}

/// A try that ran out of time: `what` happened within `timeout`.
fn late(what: &str, timeout: Duration) -> Failure {
    Failure::of(
        ErrorKind::Timeout,
        format!("{what} within {} ms", timeout.as_millis()),
    )
}

/// What [`late`] says of an answer whose body stalled after its head.
fn body_unfinished(status: http::StatusCode) -> String {
    format!("HTTP {status} came, but its body did not end")
}

fn reading_failure(e: &dyn std::fmt::Display) -> Failure {
    Failure::of(
        ErrorKind::Protocol,
        format!("reading the response body: {e}"),
    )
}

/// Whether `e` is a `T`, or an `io::Error` wrapping one.
fn is<T: std::error::Error + 'static>(e: &(dyn std::error::Error + 'static)) -> bool {
    e.downcast_ref::<T>().is_some()
        || e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.downcast_ref::<T>().is_some())
}

/// Sorts a client error into connect, TLS or protocol by walking its causes.
fn classify(e: hyper_util::client::legacy::Error) -> Failure {
    let mut tls = false;
    let mut refused: Option<String> = None;
    let mut local = false;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    let mut chain = vec![e.to_string()];
    while let Some(s) = source {
        // The guard's refusal comes straight from the connector (an IP
        // literal) or inside the resolver's `io::Error` (a name).
        if refused.is_none() && is::<guard::Refused>(s) {
            refused = Some(s.to_string());
        }
        tls |= is::<rustls::Error>(s);
        local |= is::<slots::NoSlot>(s);
        // EMFILE, ENFILE: this process or the whole system is out of them.
        local |= s
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|code| code == 24 || code == 23);
        chain.push(s.to_string());
        source = s.source();
    }
    chain.dedup();
    // The guard's words alone: the causes around it ("client error
    // (Connect): dns error: …") told of a DNS failure that was none.
    let detail = refused.clone().unwrap_or_else(|| chain.join(": "));
    // Connectors box their errors more than once, which hides the rustls
    // type from downcasting; rustls' messages are distinctive enough.
    let lower = detail.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("tls") || lower.contains("handshake") {
        tls = true;
    }
    // The guard's message names the host, which may well contain "tls".
    let kind = if refused.is_some() {
        ErrorKind::Blocked
    } else if tls {
        ErrorKind::Tls
    } else if e.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Protocol
    };
    Failure {
        kind,
        detail,
        refused: refused.is_some(),
        local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What waits for a slow sender is bounded in bytes, whatever the
    /// pieces' sizes; taking a piece makes room, and a sender gone frees
    /// the pass-on at once.
    #[tokio::test]
    async fn a_long_answer_waits_for_its_sender_within_a_bound() {
        use http_body_util::BodyExt;
        let (passing, mut body) = passing(Bytes::from_static(b"start"), None, Default::default());
        let piece = || Bytes::from(vec![7u8; PASSING_BYTES / 4]);
        for _ in 0..4 {
            assert!(passing.send(piece()).await);
        }
        let stuck = tokio::time::timeout(Duration::from_millis(50), passing.send(piece())).await;
        assert!(stuck.is_err(), "more than PASSING_BYTES waited");
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"start");
        let next = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(next.len(), PASSING_BYTES / 4);
        assert!(passing.send(piece()).await, "taking a piece made room");
        for _ in 0..4 {
            body.frame().await.unwrap().unwrap();
        }
        // One read larger than the bound goes through alone.
        let large = Bytes::from(vec![1u8; 2 * PASSING_BYTES]);
        assert!(passing.send(large).await);
        let stuck = tokio::time::timeout(Duration::from_millis(50), passing.send(piece())).await;
        assert!(stuck.is_err(), "the large one holds all the room");
        drop(body);
        assert!(!passing.send(piece()).await, "the sender is gone");
    }

    /// At shutdown a sender that holds the answer back is let go: the
    /// pass-on stops waiting for it (so the rest can be read and recorded),
    /// and the sender's answer ends with an error after what it was sent.
    #[tokio::test]
    async fn a_shutdown_lets_a_stalled_sender_go() {
        use http_body_util::BodyExt;
        let stop = tokio_util::sync::CancellationToken::new();
        let (passing, mut body) = passing(Bytes::new(), None, stop.clone());
        assert!(passing.send(Bytes::from(vec![1u8; PASSING_BYTES])).await);
        let blocked = tokio::spawn(async move { passing.send(Bytes::from_static(b"more")).await });
        tokio::task::yield_now().await;
        stop.cancel();
        let let_go = tokio::time::timeout(Duration::from_secs(5), blocked).await;
        assert!(!let_go.expect("let go at shutdown").unwrap());
        let mut frames = Vec::new();
        while let Some(frame) = body.frame().await {
            frames.push(frame.map(|f| f.into_data().map(|d| d.len()).unwrap_or(0)));
        }
        let ends_broken = frames.last().is_some_and(|f| f.is_err());
        assert!(ends_broken, "{frames:?}");
        assert_eq!(frames[1].as_ref().ok(), Some(&PASSING_BYTES), "{frames:?}");
    }

    /// A refusal naming a host with "tls" in it is `blocked`, not a TLS
    /// failure — from the connector itself or wrapped by a resolver — and
    /// its detail is the guard's own.
    #[tokio::test]
    async fn a_guard_refusal_is_a_connect_failure_whatever_the_host_is_called() {
        use hyper_util::rt::TokioIo;
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        let refusal =
            "mtls-gateway.corp: 10.9.9.9 is a private address, refused by --deny-private-targets";
        fn direct(refusal: &str) -> BoxError {
            Box::new(guard::Refused(refusal.into()))
        }
        fn wrapped(refusal: &str) -> BoxError {
            Box::new(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                guard::Refused(refusal.into()),
            ))
        }
        for make in [direct as fn(&str) -> BoxError, wrapped] {
            let connector = tower::service_fn(move |_: Uri| {
                std::future::ready(Err::<TokioIo<tokio::net::TcpStream>, BoxError>(make(
                    refusal,
                )))
            });
            let client =
                HyperClient::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
            let req = Request::get("http://mtls-gateway.corp/")
                .body(Full::default())
                .unwrap();
            let failure = classify(client.request(req).await.unwrap_err());
            assert_eq!(failure.kind, ErrorKind::Blocked, "{}", failure.detail);
            assert!(failure.refused, "{}", failure.detail);
            assert_eq!(failure.detail, refusal);
        }
    }

    /// Out of file descriptors (this process's or the system's) or of
    /// outbound slots is hookrelay's failure; a refused connection is the
    /// target's.
    #[tokio::test]
    async fn running_out_of_descriptors_is_a_local_failure() {
        use hyper_util::rt::TokioIo;
        type BoxError = Box<dyn std::error::Error + Send + Sync>;
        // 0: every outbound slot taken (see `slots`).
        for (code, local) in [(24, true), (23, true), (0, true), (111, false)] {
            let connector = tower::service_fn(move |_: Uri| {
                let e: BoxError = match code {
                    0 => Box::new(slots::NoSlot(76)),
                    _ => Box::new(std::io::Error::from_raw_os_error(code)),
                };
                std::future::ready(Err::<TokioIo<tokio::net::TcpStream>, BoxError>(e))
            });
            let client =
                HyperClient::builder(TokioExecutor::new()).build::<_, Full<Bytes>>(connector);
            let req = Request::get("http://receiver.example/")
                .body(Full::default())
                .unwrap();
            let failure = classify(client.request(req).await.unwrap_err());
            assert_eq!(failure.local, local, "errno {code}: {}", failure.detail);
            assert_eq!(failure.kind, ErrorKind::Connect, "{}", failure.detail);
        }
    }

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let h: Headers = vec![
            ("Connection".into(), b"keep-alive, X-Secret-Hop".to_vec()),
            ("X-Secret-Hop".into(), b"1".to_vec()),
            ("Host".into(), b"a".to_vec()),
            ("Transfer-Encoding".into(), b"chunked".to_vec()),
            ("Content-Length".into(), b"3".to_vec()),
            ("X-Keep".into(), b"yes".to_vec()),
            ("TE".into(), b"trailers".to_vec()),
            ("Expect".into(), b"100-continue".to_vec()),
        ];
        let kept = strip_hop_by_hop(&h);
        assert_eq!(kept, vec![("X-Keep".to_string(), b"yes".to_vec())]);
    }
}
