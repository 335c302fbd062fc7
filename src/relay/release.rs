//! Releasing an endpoint's held events: one release at a time per
//! endpoint, sent in arrival order (or put back in the delivery queue in
//! queue mode), stopped by a new disable, and gone on with after a restart
//! that cut it (the endpoint's `release_pending`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::{EndpointCell, Relay, Release, unsendable};
use crate::endpoint::{Endpoint, Status};
use crate::error::{Error, Result};
use crate::event::{EventState, Trigger};
use crate::queue::Queue;
use crate::store::QueueMove;
use crate::time::now_ms;

/// A release running on an endpoint: one at a time, and cleared (with the
/// queue worker and waiting replay jobs woken to look at the endpoint
/// again) however it ends.
struct ReleaseRun<'a> {
    cell: &'a EndpointCell,
    queue: &'a Queue,
    changed: &'a tokio::sync::Notify,
}

impl<'a> ReleaseRun<'a> {
    fn start(relay: &'a Relay, cell: &'a EndpointCell, slug: &str) -> Result<ReleaseRun<'a>> {
        if cell.releasing.swap(true, Ordering::SeqCst) {
            return Err(Error::Conflict(format!(
                "a release of {slug:?} is already running"
            )));
        }
        Ok(ReleaseRun::resumed(relay, cell))
    }

    /// A release whose flag is set already (by [`Relay::resume_releases`]).
    fn resumed(relay: &'a Relay, cell: &'a EndpointCell) -> ReleaseRun<'a> {
        ReleaseRun {
            cell,
            queue: &relay.queue,
            changed: &relay.endpoint_changed,
        }
    }
}

impl Drop for ReleaseRun<'_> {
    fn drop(&mut self) {
        self.cell.releasing.store(false, Ordering::SeqCst);
        self.queue.poke();
        self.changed.notify_waiters();
    }
}

impl Relay {
    /// Sends an endpoint's held events in arrival order. Stops (leaving the
    /// rest held) if the policy disables the endpoint again meanwhile. In
    /// queue mode they go back to the queue instead, oldest first, so the
    /// worker delivers them with their retry schedule and `ordered`.
    pub async fn release(self: &Arc<Self>, slug: &str) -> Result<Release> {
        let (relay, slug) = (Arc::clone(self), slug.to_string());
        // Its own task: a caller that hangs up must not stop the release
        // half-way, between sending an event and recording the attempt.
        tokio::spawn(async move {
            let cell = relay.require(&slug)?;
            let status = cell.lock().status;
            if status != Status::Active {
                return Err(Error::Conflict(format!(
                    "endpoint {slug:?} is {}; resume it before releasing held events",
                    status.as_str()
                )));
            }
            let _run = ReleaseRun::start(&relay, &cell, &slug)?;
            relay.mark_release(&cell, true).await?;
            relay.release_marked(&cell, &slug).await
        })
        .await
        .map_err(|e| Error::Internal(format!("the release task failed: {e}")))?
    }

    /// Resume and release in one step: the release is marked running before
    /// the endpoint is active, so on an ordered queue-mode endpoint an event
    /// arriving meanwhile never goes before the held ones.
    pub async fn resume_and_release(self: &Arc<Self>, slug: &str) -> Result<(Endpoint, Release)> {
        let (relay, slug) = (Arc::clone(self), slug.to_string());
        // Its own task: a caller that hangs up must not leave the endpoint
        // resumed with its held events half released.
        tokio::spawn(async move {
            let cell = relay.require(&slug)?;
            let _run = ReleaseRun::start(&relay, &cell, &slug)?;
            // Marked before the resume: a crash between the two leaves a
            // release to go on with, never an active endpoint whose held
            // events nothing releases.
            relay.mark_release(&cell, true).await?;
            if let Err(e) = relay.set_status(&slug, Status::Active).await {
                if let Err(clear) = relay.mark_release(&cell, false).await {
                    tracing::warn!(endpoint = %slug, error = %clear, "a release mark left after a failed resume; the next start drops it");
                }
                return Err(e);
            }
            let report = relay.release_marked(&cell, &slug).await?;
            // As it is now: the release's own failures may have disabled it.
            Ok((cell.snapshot(), report))
        })
        .await
        .map_err(|e| Error::Internal(format!("the release task failed: {e}")))?
    }

    /// Goes on with the releases a crash or a shutdown cut (see
    /// `Endpoint::release_pending`). Called before the queue worker starts,
    /// so an ordered endpoint holds new events back until the held ones are
    /// in line. A mark left on an endpoint that is not active is a resume
    /// that never happened: dropped.
    pub async fn resume_releases(self: &Arc<Self>) {
        let cells: Vec<Arc<EndpointCell>> = self
            .endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for cell in cells {
            let (pending, status, slug) = {
                let ep = cell.lock();
                (ep.release_pending, ep.status, ep.slug.as_str().to_string())
            };
            if !pending {
                continue;
            }
            if status != Status::Active {
                // Not worth refusing a start over (a disk past its headroom
                // refuses the write): the next start tries again.
                if let Err(e) = self.mark_release(&cell, false).await {
                    tracing::warn!(endpoint = %slug, error = %e, "a stale release mark not cleared");
                }
                continue;
            }
            cell.releasing.store(true, Ordering::SeqCst);
            tracing::info!(endpoint = %slug, "going on with a release the last run did not finish");
            let relay = Arc::clone(self);
            tokio::spawn(async move {
                let _run = ReleaseRun::resumed(&relay, &cell);
                if let Err(e) = relay.release_marked(&cell, &slug).await {
                    tracing::warn!(endpoint = %slug, error = %e, "resumed release failed");
                }
            });
        }
    }

    /// Sets or clears the endpoint's `release_pending`.
    async fn mark_release(&self, cell: &Arc<EndpointCell>, on: bool) -> Result<()> {
        self.save(
            cell,
            move |ep| {
                ep.release_pending = on;
                Ok(())
            },
            false,
        )
        .await
        .map(drop)
    }

    /// [`Relay::release_held`], then the mark cleared, unless a shutdown
    /// cut the release (the next start goes on with it). Clearing it is
    /// best effort: a release repeated finds nothing held twice.
    async fn release_marked(&self, cell: &Arc<EndpointCell>, slug: &str) -> Result<Release> {
        let report = self.release_held(cell, slug).await?;
        if !self.closing.is_cancelled()
            && let Err(e) = self.mark_release(cell, false).await
        {
            tracing::debug!(endpoint = slug, error = %e, "release end not recorded");
        }
        Ok(report)
    }

    /// The endpoint is read again before each event: a change of target or
    /// mode applies to the events not yet sent, and a delete stops it (an
    /// endpoint created again under the slug has releases of its own).
    async fn release_held(&self, cell: &Arc<EndpointCell>, slug: &str) -> Result<Release> {
        // Every ingest that decided "held" before the resume has stored its
        // event once this passes; later ones see the endpoint active.
        drop(cell.hold_gate.write().await);
        // Job replays under way end first (new ones wait for the release):
        // an event one of them delivers is then no longer held.
        loop {
            let sent = cell.job_sent.notified();
            if cell.job_sends.load(Ordering::SeqCst) == 0 {
                break;
            }
            sent.await;
        }
        let owned = slug.to_string();
        let ids = self
            .store
            .run(move |s| s.ids_in_state(&owned, EventState::Held, usize::MAX))
            .await?;
        let mut report = Release::default();
        for (i, id) in ids.iter().enumerate() {
            // Shutting down: the rest stay held for the next run rather
            // than be started one by one through the whole drain.
            let (target, queue_mode) = {
                let ep = cell.lock();
                if ep.status != Status::Active
                    || cell.deleted.load(Ordering::SeqCst)
                    || self.closing.is_cancelled()
                {
                    report.still_held += ids.len() - i;
                    break;
                }
                (ep.target.clone(), ep.mode == crate::endpoint::Mode::Queue)
            };
            if queue_mode && target.is_some() {
                if self.requeue(slug, id).await? {
                    report.released += 1;
                    report.queued += 1;
                }
                continue;
            }
            let owned = id.clone();
            let (ev, body) = self
                .store
                .run(move |s| Ok((s.get_event(&owned)?, s.get_body(&owned)?)))
                .await?;
            let Some(ev) = ev.filter(|e| e.state == EventState::Held) else {
                continue;
            };
            report.released += 1;
            match &target {
                Some(_) if unsendable(&ev) => {
                    // Fails instead of stopping every later release here.
                    self.store
                        .run(move |s| {
                            s.update_event(&ev.id, None, |e| {
                                e.state = EventState::Failed;
                                None
                            })
                        })
                        .await?;
                    report.failed += 1;
                }
                Some(url) => {
                    let body = Bytes::from(body.unwrap_or_default());
                    let (ev, a, _) = self.deliver(&ev, body, url, Trigger::Release, true).await?;
                    if a.success {
                        report.delivered += 1;
                    } else if ev.state == EventState::Held {
                        // Its failure disabled the endpoint: held with the rest.
                        report.released -= 1;
                        report.still_held += 1;
                    } else {
                        report.failed += 1;
                    }
                }
                // Received for a target that has since been removed (tried
                // or not): still owed, held until the endpoint has a
                // target again. (`tries` and `target_tried` for events
                // stored before `owed` was.)
                None if ev.owed || ev.tries > 0 || ev.target_tried => {
                    report.released -= 1;
                    report.still_held += 1;
                }
                None => {
                    // A bin has nowhere to send to: releasing just captures.
                    self.store
                        .run(move |s| {
                            s.update_event(&ev.id, None, |e| {
                                e.state = EventState::Captured;
                                None
                            })
                        })
                        .await?;
                }
            }
        }
        tracing::info!(endpoint = slug, ?report, "released held events");
        Ok(report)
    }

    /// Queue mode's release of one held event: back in the queue, due now,
    /// in the same batch as its state change (`retrying` when it was tried
    /// before, so the schedule goes on where it stopped). False when it was
    /// no longer held.
    async fn requeue(&self, slug: &str, id: &str) -> Result<bool> {
        let now = now_ms();
        let owned = id.to_string();
        let (_, _, moved) = self
            .store
            .run(move |s| {
                s.record_outcome(&owned, None, |e| {
                    if e.state != EventState::Held {
                        return (None, QueueMove::default());
                    }
                    e.state = if e.tries > 0 {
                        EventState::Retrying
                    } else {
                        EventState::Received
                    };
                    let add = QueueMove {
                        remove: None,
                        add: Some(now),
                    };
                    (None, add)
                })
            })
            .await?;
        if moved.add.is_some() {
            self.queue.push(slug, id, now);
        }
        Ok(moved.add.is_some())
    }
}
