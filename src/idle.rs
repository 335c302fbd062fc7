//! Closing connections that carry no request.
//!
//! hyper's header timer covers an HTTP/1 connection only once HTTP/1 is
//! chosen: hyper-util's auto builder first waits, without a timer, for the
//! bytes that tell HTTP/1 from HTTP/2, and an HTTP/2 connection has no idle
//! limit at all. A client could hold every connection slot with sockets
//! that send nothing. Here a connection counts its requests in flight (a
//! request is in flight from its head until its response body has yielded
//! its last frame, so a long download or an event stream is never cut) and
//! is closed once it has had none, and written no response bytes, for the
//! idle limit.
//!
//! Only response bytes count as progress: any byte of an HTTP/1 connection
//! (the server writes nothing else there) and the payload of HTTP/2 DATA
//! frames, found by following the frame headers the server writes. A body
//! is done long before it is on the wire — hyper hands a one-chunk body
//! (an export) to h2 at once, which sends it as the reader's flow-control
//! window allows — so writing it keeps the connection. Everything else an
//! HTTP/2 client can make the server write at will (PING and SETTINGS ACKs)
//! keeps nothing: neither does a response that is never let through (a
//! window of 0, or a stream reset with its data still queued).
//!
//! A connection whose socket takes no more bytes is busy, but only for
//! [`SEND_STALL`] after its last progress: then the reader has stopped, and
//! the connection is closed even with a request in flight (an event stream
//! nobody reads). So is one whose every response in flight has yielded a
//! frame the connection has not come back for: over HTTP/2 that frame
//! waits for a window the client holds shut, and a streaming body never
//! reaches its last frame. Reads do not count, or a client trickling bytes could
//! keep a connection that never sends a request.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// How long a connection may wait for its socket to take more bytes
/// without any response progress.
pub const SEND_STALL: Duration = Duration::from_secs(60);

/// One connection's requests in flight and its last sign of life.
pub struct Activity {
    start: Instant,
    send_stall: Duration,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` of the last request begun or ended, or
    /// response bytes written.
    idle_since: AtomicU64,
    /// The latest write (or flush) found the socket full.
    blocked: AtomicBool,
    /// Response bodies in flight that yielded a frame the connection has
    /// not come back for: it waits to send it (an HTTP/2 window held shut).
    unsent: AtomicUsize,
}

impl Activity {
    pub fn new(send_stall: Duration) -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            send_stall,
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            blocked: AtomicBool::new(false),
            unsent: AtomicUsize::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.alive();
        InFlight(Arc::clone(self))
    }

    fn alive(&self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.idle_since.fetch_max(now, Ordering::AcqRel);
    }

    /// A write put `Some(n)` response bytes out (`Some(0)`: bytes that are
    /// no response, see the module), or found the socket full (`None`).
    fn wrote(&self, progress: Option<u64>) {
        self.blocked.store(progress.is_none(), Ordering::Release);
        if progress.is_some_and(|n| n > 0) {
            self.alive();
        }
    }

    /// How long to wait before looking again, or `None` once the
    /// connection is to be closed: idle for `limit`, or stalled.
    fn wait(&self, limit: Duration) -> Option<Duration> {
        let now = self.start.elapsed().as_millis() as u64;
        let since =
            Duration::from_millis(now.saturating_sub(self.idle_since.load(Ordering::Acquire)));
        let in_flight = self.in_flight.load(Ordering::Acquire);
        // Waiting on the client: its socket takes nothing, or every
        // response in flight has a frame it does not let through (a
        // streaming body, which never reaches its last frame).
        let waiting = in_flight > 0 && self.unsent.load(Ordering::Acquire) >= in_flight;
        if self.blocked.load(Ordering::Acquire) || waiting {
            return self
                .send_stall
                .checked_sub(since)
                .filter(|left| !left.is_zero())
                .map(|left| left.min(limit));
        }
        if in_flight > 0 {
            return Some(limit);
        }
        limit.checked_sub(since).filter(|left| !left.is_zero())
    }

    /// Completes once the connection has been idle for `limit`, or its
    /// socket has taken nothing for the send stall.
    pub async fn idle(&self, limit: Duration) {
        while let Some(wait) = self.wait(limit) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in flight; dropped when its response body is done (or the
/// request is abandoned).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.alive();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the server writes on a connection, as far as telling response
/// bytes from the rest goes.
enum Wire {
    /// Nothing written yet.
    Unknown,
    /// Every byte is a response (status lines start with `HTTP/`).
    Http1,
    /// Frames (the server's first is SETTINGS): `head` collects a frame
    /// header, `left` counts the payload bytes still to come of the
    /// current frame, a DATA frame's when `data`.
    Http2 {
        head: [u8; 9],
        have: usize,
        left: usize,
        data: bool,
    },
}

impl Wire {
    /// The response bytes among `bytes`, the next ones written.
    fn progress(&mut self, mut bytes: &[u8]) -> u64 {
        if let (Wire::Unknown, Some(&first)) = (&*self, bytes.first()) {
            *self = if first == b'H' {
                Wire::Http1
            } else {
                Wire::Http2 {
                    head: [0; 9],
                    have: 0,
                    left: 0,
                    data: false,
                }
            };
        }
        let Wire::Http2 {
            head,
            have,
            left,
            data,
        } = self
        else {
            return bytes.len() as u64;
        };
        let mut progress = 0;
        while !bytes.is_empty() {
            if *left > 0 {
                let take = (*left).min(bytes.len());
                if *data {
                    progress += take as u64;
                }
                *left -= take;
                bytes = &bytes[take..];
                continue;
            }
            let take = (9 - *have).min(bytes.len());
            head[*have..*have + take].copy_from_slice(&bytes[..take]);
            *have += take;
            bytes = &bytes[take..];
            if *have == 9 {
                *left = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                *data = head[3] == 0;
                *have = 0;
            }
        }
        progress
    }
}

/// A connection's socket whose writes count as activity (see the module).
pub struct Metered<T> {
    inner: T,
    activity: Arc<Activity>,
    wire: Wire,
}

impl<T> Metered<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Metered {
            inner,
            activity,
            wire: Wire::Unknown,
        }
    }

    /// Notes a write of `bufs` that returned `r`.
    fn note<'a>(&mut self, r: &Poll<io::Result<usize>>, bufs: impl Iterator<Item = &'a [u8]>) {
        match r {
            Poll::Ready(Ok(n)) if *n > 0 => {
                let (mut left, mut progress) = (*n, 0);
                for b in bufs {
                    let b = &b[..b.len().min(left)];
                    progress += self.wire.progress(b);
                    left -= b.len();
                    if left == 0 {
                        break;
                    }
                }
                self.activity.wrote(Some(progress));
            }
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
        self.note(&r, std::iter::once(buf));
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(&r, bufs.iter().map(|b| &**b));
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        // Behind TLS a write is taken into the session's buffer while the
        // socket is full: the wait shows here, and so does its end (no
        // write may follow to clear it).
        match &r {
            Poll::Pending => self.activity.wrote(None),
            Poll::Ready(Ok(())) => self.activity.wrote(Some(0)),
            Poll::Ready(Err(_)) => {}
        }
        r
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
        let guard = self.activity.begin();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|inner| TrackedBody {
                inner,
                guard: Some(guard),
                unsent: false,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it has yielded
/// its last frame (or is dropped): hyper's HTTP/2 side keeps a body whose
/// data waits for the reader's window, and a window that never opens must
/// not keep the connection.
pub struct TrackedBody<B> {
    inner: B,
    guard: Option<InFlight>,
    /// Counted in `Activity::unsent`: a frame was yielded and the body
    /// not polled since.
    unsent: bool,
}

impl<B> TrackedBody<B> {
    fn set_unsent(&mut self, unsent: bool) {
        if let Some(g) = &self.guard
            && unsent != self.unsent
        {
            match unsent {
                true => g.0.unsent.fetch_add(1, Ordering::AcqRel),
                false => g.0.unsent.fetch_sub(1, Ordering::AcqRel),
            };
            self.unsent = unsent;
        }
    }
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        self.set_unsent(false);
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.set_unsent(false);
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(frame) = &r {
            if !matches!(frame, Some(Ok(_))) || self.inner.is_end_stream() {
                self.guard = None;
            } else {
                self.set_unsent(true);
            }
        }
        r
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
        let a = Activity::new(SEND_STALL);
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

    /// What an HTTP/2 server writes: SETTINGS, a SETTINGS ACK, response
    /// HEADERS, DATA of 5 bytes, a PING ACK, an empty DATA with END_STREAM.
    fn h2_output() -> Vec<u8> {
        let frame = |ty: u8, flags: u8, stream: u32, payload: &[u8]| {
            let len = (payload.len() as u32).to_be_bytes();
            let mut f = vec![len[1], len[2], len[3], ty, flags];
            f.extend(stream.to_be_bytes());
            f.extend(payload);
            f
        };
        [
            frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]),
            frame(4, 1, 0, &[]),
            frame(1, 4, 1, &[0x88]),
            frame(0, 0, 1, b"hello"),
            frame(6, 1, 0, &[1, 2, 3, 4, 5, 6, 7, 8]),
            frame(0, 1, 1, &[]),
        ]
        .concat()
    }

    #[test]
    fn only_data_frames_are_http2_response_progress() {
        let out = h2_output();
        for cut in 0..=out.len() {
            let mut w = Wire::Unknown;
            let got = w.progress(&out[..cut]) + w.progress(&out[cut..]);
            assert_eq!(got, 5, "split at {cut}");
        }
        // Byte by byte, as a socket taking one byte at a time would.
        let mut w = Wire::Unknown;
        assert_eq!(out.chunks(1).map(|b| w.progress(b)).sum::<u64>(), 5);
        let mut w = Wire::Unknown;
        assert_eq!(w.progress(b"HTTP/1.1 200 OK\r\n"), 17);
        assert_eq!(w.progress(&out), out.len() as u64, "HTTP/1: all of it");
    }

    /// A client that makes the server write without reading (PINGs) keeps
    /// the socket full: that is busy only for the send stall after the
    /// last response bytes, with or without a request in flight.
    #[test]
    fn a_full_socket_is_busy_only_until_the_send_stall() {
        let stall = Duration::from_millis(60);
        let limit = Duration::from_secs(10);
        let a = Activity::new(stall);
        let g = a.begin();
        assert_eq!(a.wait(limit), Some(limit), "in flight");
        a.wrote(None);
        assert!(a.wait(limit).is_some_and(|w| w <= stall), "blocked, recent");
        std::thread::sleep(stall / 2);
        a.wrote(Some(0));
        a.wrote(None);
        std::thread::sleep(stall / 2 + Duration::from_millis(5));
        assert_eq!(a.wait(limit), None, "control frames are no progress");
        a.wrote(Some(1));
        assert_eq!(a.wait(limit), Some(limit), "response bytes moved");
        drop(g);
        a.wrote(None);
        std::thread::sleep(stall + Duration::from_millis(5));
        assert_eq!(a.wait(limit), None, "nothing in flight, stalled");
        a.wrote(Some(0));
        assert!(
            a.wait(limit).is_some_and(|w| w < limit),
            "drained: the idle limit runs from the last progress"
        );
    }

    /// Behind TLS the wait for a full socket shows in `poll_flush`, and so
    /// does its end: a flush that completes must clear it, or the next
    /// request in flight is cut as stalled.
    #[test]
    fn a_flush_that_completes_ends_the_wait() {
        struct Sink(bool);
        impl AsyncWrite for Sink {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Ready(Ok(buf.len()))
            }
            fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                if std::mem::take(&mut self.0) {
                    return Poll::Pending;
                }
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let stall = Duration::from_millis(50);
        let limit = Duration::from_secs(10);
        let a = Activity::new(stall);
        let mut m = Metered::new(Sink(true), Arc::clone(&a));
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut m).poll_flush(&mut cx).is_pending());
        assert!(Pin::new(&mut m).poll_flush(&mut cx).is_ready());
        let _g = a.begin();
        std::thread::sleep(stall + Duration::from_millis(10));
        assert_eq!(a.wait(limit), Some(limit), "in flight, nothing waiting");
    }

    /// A body that never ends (an event stream) whose frame the connection
    /// does not come back for: waiting on the client, like a full socket.
    #[test]
    fn a_streaming_frame_never_taken_is_a_stall() {
        struct Endless;
        impl Body for Endless {
            type Data = bytes::Bytes;
            type Error = std::convert::Infallible;
            fn poll_frame(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
                Poll::Ready(Some(Ok(Frame::data(bytes::Bytes::from_static(b"x")))))
            }
        }
        let stall = Duration::from_millis(50);
        let limit = Duration::from_secs(10);
        let a = Activity::new(stall);
        let mut body = TrackedBody {
            inner: Endless,
            guard: Some(a.begin()),
            unsent: false,
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        assert!(a.wait(limit).is_some_and(|w| w <= stall), "waiting, recent");
        std::thread::sleep(stall + Duration::from_millis(10));
        assert_eq!(a.wait(limit), None, "its frame never taken");
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_ready());
        a.wrote(Some(1));
        assert!(
            a.wait(limit).is_some_and(|w| w > Duration::ZERO),
            "taken and written: the next frame waits from this progress"
        );
        let other = a.begin();
        std::thread::sleep(stall + Duration::from_millis(10));
        assert_eq!(a.wait(limit), Some(limit), "another request still working");
        drop((other, body));
        assert_eq!(a.unsent.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_body_is_done_once_it_yields_its_last_frame() {
        use http_body_util::BodyExt;
        let a = Activity::new(SEND_STALL);
        let mut body = TrackedBody {
            inner: http_body_util::Full::new(bytes::Bytes::from_static(b"x")),
            guard: Some(a.begin()),
            unsent: false,
        };
        let waker = std::task::Waker::noop();
        let frame = std::pin::pin!(body.frame())
            .as_mut()
            .poll(&mut Context::from_waker(waker));
        assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
        // hyper may keep the body while h2 waits for the reader's window.
        assert_eq!(a.in_flight.load(Ordering::Acquire), 0);
        drop(body);
    }
}
