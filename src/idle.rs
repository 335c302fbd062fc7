//! Closing connections that carry no request.
//!
//! hyper's header timer covers an HTTP/1 connection only once HTTP/1 is
//! chosen: hyper-util's auto builder first waits, without a timer, for the
//! bytes that tell HTTP/1 from HTTP/2, and an HTTP/2 connection has no idle
//! limit at all. A client could hold every connection slot with sockets
//! that send nothing. Here a connection counts its requests in flight (a
//! request is in flight from its head until its response body is done, so
//! a long download or an event stream is never cut) and is closed once it
//! has had none for the idle limit.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's requests in flight and when the last one ended.
pub struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds after `start` when the connection last went idle.
    idle_since: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        })
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(Arc::clone(self))
    }

    /// How long the connection has had nothing in flight; `None` while it has.
    fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        Some(self.start.elapsed().saturating_sub(since))
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
    B: 'static,
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
                _guard: guard,
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
}
