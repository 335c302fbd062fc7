//! Outbound connections within the descriptor budget (see `fds`): each
//! connection to a receiver holds a slot from its connect to its close,
//! pooled idle ones included, so that forwards in flight (up to a hundred
//! per HTTP/2 sender) cannot take the descriptors the store needs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long a connect waits for a slot (pooled connections to other
/// receivers close after 4 s idle) before the attempt fails as
/// hookrelay's own shortage.
const SLOT_WAIT: Duration = Duration::from_secs(2);

tokio::task_local! {
    /// The slot wait of the request being sent on this task (see
    /// [`wait_within`]); [`SLOT_WAIT`] where none is set.
    pub static WAIT: Duration;
}

/// The slot wait for an attempt with `timeout`: half of it at most, so a
/// shortage is told as one before the attempt times out (which would be
/// counted as the target's timeout).
pub fn wait_within(timeout: Duration) -> Duration {
    SLOT_WAIT.min(timeout / 2)
}

/// Every slot was taken: the attempt never left hookrelay.
#[derive(Debug, thiserror::Error)]
#[error("all {0} outbound connections hookrelay's open-file limit allows are open")]
pub struct NoSlot(pub usize);

/// A connector whose connections each hold a slot.
#[derive(Clone)]
pub struct Counted<C> {
    inner: C,
    slots: Arc<Semaphore>,
    total: usize,
}

impl<C> Counted<C> {
    /// `inner`'s connections, at most `total` open at once.
    pub fn new(inner: C, total: usize) -> Counted<C> {
        Counted {
            inner,
            slots: Arc::new(Semaphore::new(total)),
            total,
        }
    }
}

impl<C> Service<Uri> for Counted<C>
where
    C: Service<Uri, Error = BoxError>,
    C::Future: Send + 'static,
    C::Response: Send,
{
    type Response = Slotted<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connect = self.inner.call(uri);
        let (slots, total) = (Arc::clone(&self.slots), self.total);
        // Called on the task of the request that needs the connection.
        let wait = WAIT.try_with(|w| *w).unwrap_or(SLOT_WAIT);
        Box::pin(async move {
            let slot = match tokio::time::timeout(wait, slots.acquire_owned()).await {
                Ok(Ok(slot)) => slot,
                _ => return Err(Box::new(NoSlot(total)) as BoxError),
            };
            Ok(Slotted {
                io: connect.await?,
                _slot: slot,
            })
        })
    }
}

/// A connection and its slot, given back when it closes.
pub struct Slotted<T> {
    io: T,
    _slot: OwnedSemaphorePermit,
}

impl<T: Connection> Connection for Slotted<T> {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

impl<T: hyper::rt::Read + Unpin> hyper::rt::Read for Slotted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: hyper::rt::Write + Unpin> hyper::rt::Write for Slotted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection holds its slot until it is dropped; with none free a
    /// connect fails as [`NoSlot`] rather than waiting out the attempt.
    #[tokio::test]
    async fn a_connection_holds_its_slot_until_it_closes() {
        let inner = tower::service_fn(|_: Uri| async { Ok::<_, BoxError>(()) });
        let mut c = Counted::new(inner, 1);
        let uri = || Uri::from_static("http://receiver.example/");
        let first = c.call(uri()).await.expect("a free slot");
        let err = c.call(uri()).await.err().expect("no slot left");
        assert!(err.downcast_ref::<NoSlot>().is_some(), "{err}");
        drop(first);
        c.call(uri()).await.expect("the slot came back");
    }
}
