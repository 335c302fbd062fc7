//! Closing connections that carry no request.
//!
//! hyper's header timer covers an HTTP/1 connection only once HTTP/1 is
//! chosen: hyper-util's auto builder first waits, without a timer, for the
//! bytes that tell HTTP/1 from HTTP/2, and an HTTP/2 connection has no idle
//! limit at all. A client could hold every connection slot with sockets
//! that send nothing. Here a connection counts its requests in flight (a
//! request is in flight from its head until its response body is done, so
//! a long download or an event stream is never cut) and is closed once it
//! has had none for the idle limit, unless it is still writing. Writes count
//! because hyper lets go of a body once its last chunk is queued, which for
//! a large one-chunk body (an export) is long before it is on the wire: a
//! connection waiting for its socket to take more bytes is busy, until it
//! has waited [`SEND_STALL`] without any progress (a reader that stopped).
//! Only a write that moves such a backlog counts, not one the socket took
//! at once, and over HTTP/2 only while response bytes are owed: there a
//! client can make the server write (PING ACKs) without any request.
//! Reads do not count, or a client trickling bytes could keep a connection
//! that never sends a request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How long a connection may wait for its socket to take more bytes.
pub const SEND_STALL: Duration = Duration::from_secs(60);

/// One connection's requests in flight and when the last one ended.
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` when the connection last went idle.
    idle_since: AtomicU64,
    /// 1 + milliseconds after `start` since a write has been waiting for
    /// the socket without progress; 0 when none is.
    blocked_since: AtomicU64,
    /// An HTTP/1 request came: its response is the only thing the server
    /// writes, so moving a backlog is draining a response.
    http1: std::sync::atomic::AtomicBool,
    /// Bytes of response bodies (of known size) handed out and not yet
    /// written to the socket, as far as writes tell: over HTTP/2 a body is
    /// done once its frames are queued, which for a large one-chunk body
    /// (an export) is long before a slow reader has them.
    owed: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            blocked_since: AtomicU64::new(0),
            http1: Default::default(),
            owed: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A write put `Some(n)` bytes out, or found the socket full (`None`).
    fn wrote(&self, written: Option<u64>) {
        if let Some(n) = written {
            // Writing what is owed of a response counts, whether the socket
            // or HTTP/2 flow control paced it; so does moving any backlog on
            // HTTP/1, where responses are all the server writes. Over HTTP/2
            // a client can make the server write at will (PING and SETTINGS
            // ACKs): with nothing owed, that keeps no connection open.
            let owed = self
                .owed
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |o| {
                    (o > 0).then(|| o.saturating_sub(n))
                })
                .unwrap_or(0);
            let was_blocked = self.blocked_since.swap(0, Ordering::AcqRel) != 0;
            if owed > 0 || (was_blocked && self.http1.load(Ordering::Acquire)) {
                self.idle_since.fetch_max(self.now(), Ordering::AcqRel);
            }
        } else {
            let _ = self.blocked_since.compare_exchange(
                0,
                self.now() + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
    }

    /// How long the connection has had nothing in flight and nothing left
    /// to write; `None` while it has.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let now = self.now();
        let blocked = self.blocked_since.load(Ordering::Acquire);
        if blocked > 0 {
            let stalled = Duration::from_millis(now.saturating_sub(blocked - 1));
            return (stalled >= SEND_STALL).then_some(Duration::MAX);
        }
        let since = self.idle_since.load(Ordering::Acquire);
        Some(Duration::from_millis(now.saturating_sub(since)))
    }

    /// Completes once the connection has been idle for `limit`.
    pub async fn idle(&self, limit: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(d) if d >= limit => return,
                Some(d) => limit - d,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight; dropped when its response body is done (or the
/// request is abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.start.elapsed().as_millis() as u64;
        self.0.idle_since.fetch_max(now, Ordering::AcqRel);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection's socket whose writes count as activity (see the module).
pub struct Metered<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Metered<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Metered { inner, activity }
    }

    fn note(&self, r: &Poll<io::Result<usize>>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => self.activity.wrote(Some(*n as u64)),
            Poll::Pending => self.activity.wrote(None),
            _ => {}
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&r);
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&r);
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A service whose requests count as activity on their connection.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Tracked { inner, activity }
    }
}

impl<S, Req, B> hyper::service::Service<Request<Req>> for Tracked<S>
where
    S: hyper::service::Service<Request<Req>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    B: Body + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn call(&self, req: Request<Req>) -> Self::Future {
        if req.version() < http::Version::HTTP_2 {
            self.activity.http1.store(true, Ordering::Release);
        }
        // A HEAD answer has no body on the wire, whatever its size says.
        let has_body = req.method() != http::Method::HEAD;
        let guard = self.activity.begin();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|inner| {
                if let Some(n) = inner.size_hint().exact().filter(|_| has_body) {
                    guard.0.owed.fetch_add(n, Ordering::AcqRel);
                }
                TrackedBody {
                    inner,
                    _guard: guard,
                }
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub struct TrackedBody<B> {
    inner: B,
    _guard: InFlight,
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once `limit` has passed since it was
/// wrapped: its request is in flight (never idle) while the body is read,
/// so a client trickling a body, or never sending the one it announced,
/// would otherwise hold the connection for good.
pub struct Deadline<B> {
    inner: B,
    limit: Duration,
    expired: Pin<Box<tokio::time::Sleep>>,
}

impl<B> Deadline<B> {
    pub fn new(inner: B, limit: Duration) -> Self {
        Deadline {
            inner,
            limit,
            expired: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<B> Body for Deadline<B>
where
    B: Body + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = B::Data;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.expired.as_mut().poll(cx).is_ready() {
            let msg = format!(
                "the body was not received within {} s",
                self.limit.as_secs_f64()
            );
            return Poll::Ready(Some(Err(msg.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_after_the_limit_with_nothing_in_flight() {
        let limit = Duration::from_millis(100);
        let a = Activity::new();
        let g = a.begin();
        let idle = a.idle(limit);
        tokio::pin!(idle);
        // In flight: not idle however long it lasts.
        tokio::select! {
            _ = &mut idle => panic!("idle while a request is in flight"),
            _ = tokio::time::sleep(limit * 3) => {}
        }
        drop(g);
        let before = Instant::now();
        idle.await;
        assert!(before.elapsed() >= limit);
    }

    /// A client that sends HTTP/2 PINGs and reads the ACKs slowly keeps a
    /// backlog moving without any request: that must not count.
    #[test]
    fn a_moving_backlog_counts_only_for_an_http1_response() {
        let a = Activity::new();
        std::thread::sleep(Duration::from_millis(30));
        a.wrote(None);
        a.wrote(Some(1));
        assert!(
            a.idle_for().unwrap() >= Duration::from_millis(30),
            "no HTTP/1 request: not a response draining"
        );
        a.owed.store(1 << 20, Ordering::Release);
        a.wrote(None);
        a.wrote(Some(1));
        assert!(
            a.idle_for().unwrap() < Duration::from_millis(30),
            "an HTTP/2 response body still owed"
        );
        a.owed.store(0, Ordering::Release);
        std::thread::sleep(Duration::from_millis(30));
        a.wrote(None);
        a.wrote(Some(1));
        assert!(
            a.idle_for().unwrap() >= Duration::from_millis(30),
            "nothing owed: PING ACKs"
        );
        a.http1.store(true, Ordering::Release);
        a.wrote(None);
        a.wrote(Some(1));
        assert!(
            a.idle_for().unwrap() < Duration::from_millis(30),
            "an HTTP/1 response draining"
        );
    }

    #[test]
    fn a_connection_waiting_to_write_is_busy() {
        let a = Activity::new();
        assert!(a.idle_for().is_some());
        a.wrote(None);
        assert_eq!(a.idle_for(), None, "the socket is full: still sending");
        a.wrote(Some(1));
        assert!(a.idle_for().is_some_and(|d| d < SEND_STALL));
    }
}
