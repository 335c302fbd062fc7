//! The relay: the operations ingest, the API and the CLI share — the live
//! endpoint registry, delivering an event to a URL and recording what came
//! of it (with the failure policy in the same write), queued deliveries,
//! mirror copies, replay and pings. Releasing held events is in `release`,
//! disable notifications in `notify`, the shape of an outbound request
//! (URL, forwarded headers, `Via`) in `outbound`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::sync::broadcast;

use crate::deliver::{self, Client, Outbound, Reply};
use crate::endpoint::{Endpoint, EndpointInput, Slug, Status};
use crate::error::{Error, Result};
use crate::event::{ATTEMPT_BODY_CAP, Attempt, Event, EventState, Headers, Trigger};
use crate::metrics::Metrics;
use crate::policy;
use crate::queue::Queue;
use crate::store::{QueueMove, Store};
use crate::time::now_ms;

mod notify;
mod outbound;
mod release;
mod turns;

use outbound::{add_via, set_in_place};
pub use outbound::{forward_headers, join_url, join_url_text};

/// One endpoint's live state. The mutex guards policy read-modify-write;
/// `served` counts bin answers so a response sequence cycles.
pub struct EndpointCell {
    ep: Mutex<Endpoint>,
    pub served: AtomicUsize,
    /// Set (under the lock) when the endpoint is deleted, so an attempt in
    /// flight never writes the old record back.
    deleted: std::sync::atomic::AtomicBool,
    /// A release is running: a second one would send everything twice.
    releasing: std::sync::atomic::AtomicBool,
    /// Replays of bulk jobs to this endpoint's target under way: a release
    /// starts only once they are done, and none starts during a release,
    /// so the two never send the same held event (see [`JobSend`]).
    job_sends: AtomicUsize,
    job_sent: tokio::sync::Notify,
    /// Held while an ingest that found the endpoint paused or disabled
    /// stores its event; a release takes it once before listing held
    /// events, so an event that was held just as the endpoint resumed is
    /// stored before the list is made, never left behind it.
    pub hold_gate: tokio::sync::RwLock<()>,
    /// Queue mode with `ordered`: an event's id is taken and its entry
    /// pushed under this lock, so that with several ingest threads the
    /// queue sees ids in the order they were taken (the order delivered).
    pub arrival: Mutex<()>,
}

impl EndpointCell {
    fn new(ep: Endpoint) -> Arc<Self> {
        Arc::new(EndpointCell {
            ep: Mutex::new(ep),
            served: AtomicUsize::new(0),
            deleted: Default::default(),
            releasing: Default::default(),
            job_sends: AtomicUsize::new(0),
            job_sent: Default::default(),
            hold_gate: Default::default(),
            arrival: Mutex::new(()),
        })
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Endpoint> {
        self.ep.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Endpoint {
        self.lock().clone()
    }

    /// A release is putting held events back (the queue worker holds an
    /// ordered endpoint back meanwhile).
    pub fn releasing(&self) -> bool {
        self.releasing.load(Ordering::SeqCst)
    }
}

/// A bulk job's replay to an endpoint's own target under way; refused
/// while a release of it runs. See `EndpointCell::job_sends`.
pub struct JobSend {
    cell: Arc<EndpointCell>,
}

impl JobSend {
    /// None while a release of the endpoint runs (the job waits for it).
    pub fn start(cell: &Arc<EndpointCell>) -> Option<JobSend> {
        cell.job_sends.fetch_add(1, Ordering::SeqCst);
        let send = JobSend {
            cell: Arc::clone(cell),
        };
        // Counted before looking: a release that sets its flag after this
        // look waits for the count to drop.
        (!cell.releasing()).then_some(send)
    }
}

impl Drop for JobSend {
    fn drop(&mut self) {
        if self.cell.job_sends.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.cell.job_sent.notify_waiters();
        }
    }
}

/// A line of the live stream (`/api/stream`): new events and attempts.
#[derive(Clone, Debug)]
pub struct StreamItem {
    pub endpoint: String,
    pub kind: &'static str,
    pub json: String,
}

/// A slug no new endpoint may take: the dashboard's `/endpoints/new` would
/// hide its page.
pub const RESERVED_SLUG: &str = "new";

/// An endpoint `create` updates (`upsert`): its cell, and the status the
/// input asked for, which does not apply to it.
type Existing = (Arc<EndpointCell>, Option<Status>);

/// See [`Relay::storage_refusal`].
pub enum StorageRefusal {
    /// The store cannot write (an I/O error): a restart mends it.
    Broken(String),
    /// No room on the data disk for the store's log: it clears by itself
    /// once there is.
    NoRoom(String),
    /// The data disk is past `--max-disk-usage`.
    Limit(String),
}

impl StorageRefusal {
    /// Why, in the words of the part that refuses.
    pub fn why(&self) -> &str {
        match self {
            StorageRefusal::Broken(why)
            | StorageRefusal::NoRoom(why)
            | StorageRefusal::Limit(why) => why,
        }
    }
}

pub struct Relay {
    pub store: Arc<Store>,
    pub client: Client,
    pub metrics: Metrics,
    pub max_body: usize,
    /// Request bodies held in memory by ingest.
    pub bodies: Arc<crate::memory::BodyBudget>,
    /// Bodies of mirror copies in flight: a quarter of `bodies`, apart.
    pub mirror_bodies: Arc<crate::memory::BodyBudget>,
    /// Bodies of queued deliveries in flight, read back from the store: a
    /// quarter of `bodies`, apart.
    pub queue_bodies: Arc<crate::memory::BodyBudget>,
    /// The ingest listener's base URL (`http://127.0.0.1:8080`), set by
    /// `server::serve` once bound; the dashboard shows full ingest URLs.
    pub ingest_base: std::sync::OnceLock<String>,
    /// Proxies whose `X-Forwarded-*` ingest believes; set by `server::serve`.
    pub trusted_proxies: std::sync::OnceLock<crate::forwarded::TrustedProxies>,
    /// Queue mode's pending deliveries (see `queue`).
    pub queue: Queue,
    /// Bulk replay jobs (see `replay`).
    pub jobs: crate::replay::Jobs,
    /// Serialises endpoint creation and deletion.
    registry_lock: tokio::sync::Mutex<()>,
    /// Bounds the mirror copies in flight (each holds a body).
    mirror_slots: Arc<tokio::sync::Semaphore>,
    /// Forward deliveries in flight, each its own task (its sender may have
    /// hung up): shutdown waits for them before the ingest threads go.
    pub deliveries: tokio_util::task::TaskTracker,
    /// Cancelled when shutdown begins: live streams end at once instead of
    /// holding the graceful drain until its timeout.
    pub closing: tokio_util::sync::CancellationToken,
    /// Notified when an endpoint changes (status, target), is deleted or
    /// ends a release: replay jobs waiting for it look again.
    pub endpoint_changed: tokio::sync::Notify,
    /// Replays of one event take turns (see `turns`).
    replays: turns::Turns,
    /// This process's name in the `Via` of every request it sends
    /// (`hookrelay-` and 8 random hex digits): a request that arrives
    /// carrying it went round a loop (see [`Relay::relayed_here`]).
    pub via_name: String,
    /// Disk-space backpressure; set by `server::serve`.
    pub disk: std::sync::OnceLock<crate::disk::DiskGuard>,
    /// The ingest threads' runtimes, set by `server::serve`: queued
    /// deliveries run there too, each on one thread with that thread's pool.
    pub shards: std::sync::OnceLock<Vec<tokio::runtime::Handle>>,
    endpoints: RwLock<HashMap<String, Arc<EndpointCell>>>,
    stream: broadcast::Sender<StreamItem>,
}

/// Mirror copies in flight at once; beyond it a copy is skipped (logged):
/// the mirror is best-effort and must not grow memory without bound.
const MIRROR_IN_FLIGHT: usize = 256;
/// The per-attempt timeout for an event whose endpoint is gone.
const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// What a try keeps of an answer no sender waits for: its attempt record's
/// share (see [`Relay::forward`] for the one that passes it on).
const KEPT: deliver::Answer = deliver::Answer::Prefix(ATTEMPT_BODY_CAP);
/// How much longer than an attempt's timeout a replay waits for the
/// queue's attempt of the same event to end (its record takes a moment).
const CLAIM_MARGIN: Duration = Duration::from_secs(5);

/// What a forward gives its sender.
pub enum Forwarded {
    /// The attempt is recorded; the answer, whole, if one came.
    Done(Box<(Event, Attempt, Option<Reply>)>),
    /// A long answer, passed on as it arrives; its attempt is recorded
    /// once it has all come (or failed).
    Passing {
        status: u16,
        reason: Option<hyper::ext::ReasonPhrase>,
        headers: Headers,
        body: deliver::Passed,
    },
}

/// How an attempt's outcome settles its event.
#[derive(Clone, Copy, Debug)]
pub enum Settle {
    /// Forward, replay, release, ping: `delivered`/`failed` when the attempt
    /// went to the endpoint's own target; otherwise the state stays. A
    /// failure leaves a `held` event held unless a release sent it to an
    /// endpoint still active: a failed replay by hand must not take it out
    /// of the next release (or into retention's reach).
    /// `queued`: the event waits in the delivery queue at that due time
    /// (claimed for this attempt): success takes it out; a failure leaves
    /// the event to its retry schedule, state and entry unchanged.
    Direct {
        own_target: bool,
        queued: Option<u64>,
    },
    /// Queue mode: the entry due at `due` leaves the queue, or comes back at
    /// the next retry time while the schedule lasts.
    Queued { due: u64 },
    /// A mirror attempt: recorded beside the target's, nothing else moves.
    Mirror,
}

impl Settle {
    /// Whether the attempt went to the endpoint's own target: only then is
    /// it the event's answer and does it count toward the policy.
    fn to_target(self) -> bool {
        match self {
            Settle::Direct { own_target, .. } => own_target,
            Settle::Queued { .. } => true,
            Settle::Mirror => false,
        }
    }

    fn decide(
        self,
        ev: &Event,
        trigger: Trigger,
        success: bool,
        Activity { was_active, active }: Activity,
        retry: &[String],
        retry_after: Option<Duration>,
    ) -> (Option<EventState>, QueueMove) {
        let done = |due| QueueMove {
            remove: Some(due),
            add: None,
        };
        match self {
            Settle::Direct {
                own_target: true,
                queued: Some(due),
            } => {
                if success {
                    (Some(EventState::Delivered), done(due))
                } else {
                    (None, QueueMove::default())
                }
            }
            Settle::Direct {
                own_target: true,
                queued: None,
            } => {
                let st = if ev.state == EventState::Rejected {
                    // The verdict on what the sender sent: a replay by hand
                    // does not make a forgery delivered (its attempt says
                    // what happened), and `state=rejected` keeps listing it.
                    None
                } else if success {
                    Some(EventState::Delivered)
                } else if ev.state == EventState::Held && !(trigger == Trigger::Release && active) {
                    None
                } else if trigger == Trigger::Forward && ev.state != EventState::Received {
                    // A replay or release settled it while this forward
                    // was on its way: that outcome stands.
                    None
                } else if trigger == Trigger::Forward && !was_active {
                    // Sent while the endpoint was active, failed after a
                    // concurrent failure disabled it (or a pause): held
                    // like every event that arrives now, and its sender
                    // gets 202, so concurrent senders see no more failures
                    // than one sending in turn would.
                    Some(EventState::Held)
                } else {
                    Some(EventState::Failed)
                };
                (st, QueueMove::default())
            }
            Settle::Direct {
                own_target: false, ..
            }
            | Settle::Mirror => (None, QueueMove::default()),
            Settle::Queued { due } if success => (Some(EventState::Delivered), done(due)),
            // Paused or disabled (perhaps by this very failure): stop
            // retrying and hold, to be released in arrival order.
            Settle::Queued { due } if !active => (Some(EventState::Held), done(due)),
            // `tries` counts the deliveries before this one, which is the
            // index of the next delay in the schedule.
            Settle::Queued { due } => {
                match crate::queue::retry_delay(retry, ev.tries as usize, retry_after) {
                    Some(d) => (
                        Some(EventState::Retrying),
                        QueueMove {
                            remove: Some(due),
                            add: Some(now_ms() + d.as_millis() as u64),
                        },
                    ),
                    None => (Some(EventState::Failed), done(due)),
                }
            }
        }
    }
}

/// The endpoint's status around one outcome: before it was observed by
/// the policy, and after (the failure that disables it is in between).
#[derive(Clone, Copy)]
struct Activity {
    was_active: bool,
    active: bool,
}

/// What releasing held events did.
#[derive(Debug, Default, serde::Serialize)]
pub struct Release {
    pub released: usize,
    pub delivered: usize,
    pub failed: usize,
    /// Queue mode: released events put back in the delivery queue, to be
    /// delivered in the background with their retry schedule.
    pub queued: usize,
    /// Left held because the endpoint was disabled again during the release.
    pub still_held: usize,
}

impl Relay {
    pub fn new(store: Arc<Store>, client: Client, max_body: usize) -> Result<Relay> {
        let endpoints = store
            .endpoints()?
            .into_iter()
            .map(|mut ep| {
                // Stored before the queue's total cap: the cap applies (an
                // edit would refuse the larger value).
                if ep.max_queue_depth > crate::queue::TOTAL_MAX as u64 {
                    tracing::warn!(endpoint = %ep.slug, max_queue_depth = ep.max_queue_depth, "max_queue_depth is above {}, the most hookrelay keeps queued: {} applies", crate::queue::TOTAL_MAX, crate::queue::TOTAL_MAX);
                    ep.max_queue_depth = crate::queue::TOTAL_MAX as u64;
                }
                ep
            })
            .inspect(|ep| {
                // Stored before `auto` + `enforce` was refused: still
                // enforced (switching it off would let everything in), but
                // a sender can pass an old signature again as a body-only one.
                if ep.signature.as_ref().is_some_and(|s| s.enforce && s.scheme == "auto") {
                    tracing::warn!(endpoint = %ep.slug, "enforces signatures with scheme auto, which lets a sender pick a scheme without a timestamp and pass an old request again: set a named scheme");
                }
                // Stored before the URL checks grew (a fragment, a port out
                // of range, non-ASCII): kept as it is, but said.
                for (field, url) in ep.urls() {
                    if let Some(Err(why)) = url.map(|u| crate::endpoint::validate_url(field, u)) {
                        tracing::warn!(endpoint = %ep.slug, "{why}; change it, or saving the endpoint's form will refuse it");
                    }
                    // Stored before the guard's flags changed.
                    if let Some(Err(why)) = url.map(|u| client.guard().check_url(field, u)) {
                        tracing::warn!(endpoint = %ep.slug, "{why}: every delivery there fails until it is changed");
                    }
                }
            })
            .map(|ep| (ep.slug.to_string(), EndpointCell::new(ep)))
            .collect();
        let (stream, _) = broadcast::channel(1024);
        let queue = Queue::load(store.queue_entries()?);
        let relay = Relay {
            store,
            client,
            metrics: Metrics::default(),
            max_body,
            bodies: Arc::new(crate::memory::BodyBudget::new(max_body)),
            mirror_bodies: Arc::new(crate::memory::BodyBudget::new(max_body)),
            queue_bodies: Arc::new(crate::memory::BodyBudget::new(max_body)),
            ingest_base: std::sync::OnceLock::new(),
            trusted_proxies: std::sync::OnceLock::new(),
            shards: std::sync::OnceLock::new(),
            queue,
            jobs: Default::default(),
            disk: std::sync::OnceLock::new(),
            registry_lock: tokio::sync::Mutex::new(()),
            mirror_slots: Arc::new(tokio::sync::Semaphore::new(MIRROR_IN_FLIGHT)),
            deliveries: tokio_util::task::TaskTracker::new(),
            closing: Default::default(),
            endpoint_changed: Default::default(),
            replays: Default::default(),
            via_name: format!("hookrelay-{:08x}", ulid::Ulid::generate().random() as u32),
            endpoints: RwLock::new(endpoints),
            stream,
        };
        relay.set_body_memory(crate::memory::BODY_MEMORY);
        Ok(relay)
    }

    // ---- the endpoint registry ----

    pub fn endpoint(&self, slug: &str) -> Option<Arc<EndpointCell>> {
        self.endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(slug)
            .cloned()
    }

    fn require(&self, slug: &str) -> Result<Arc<EndpointCell>> {
        self.endpoint(slug)
            .ok_or_else(|| Error::NotFound(format!("no endpoint {slug:?}")))
    }

    pub fn list(&self) -> Vec<Endpoint> {
        let map = self.endpoints.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Endpoint> = map.values().map(|c| c.snapshot()).collect();
        v.sort_by(|a, b| a.slug.as_str().cmp(b.slug.as_str()));
        v
    }

    pub fn get(&self, slug: &str) -> Result<Endpoint> {
        Ok(self.require(slug)?.snapshot())
    }

    /// A URL hookrelay is asked to send to: well formed, and not one the
    /// outbound guard would never connect to — said when it is given, not
    /// at every delivery.
    pub fn check_url(&self, field: &str, url: &str) -> Result<()> {
        crate::endpoint::validate_url(field, url).map_err(Error::BadRequest)?;
        self.guard_url(field, url)
    }

    /// The guard's half of [`Relay::check_url`].
    fn guard_url(&self, field: &str, url: &str) -> Result<()> {
        self.client
            .guard()
            .check_url(field, url)
            .map_err(Error::BadRequest)
    }

    /// The guard's half for each URL `input` sets (`EndpointInput::apply`
    /// checks their form).
    fn check_urls(&self, input: &EndpointInput) -> Result<()> {
        for (field, url) in input.urls() {
            if let Some(url) = url {
                self.guard_url(field, url)?;
            }
        }
        Ok(())
    }

    /// Checks what [`Relay::create`] would refuse, writing nothing: the
    /// config file's endpoints are all checked before any is written.
    pub fn check_create(&self, input: EndpointInput, upsert: bool) -> Result<()> {
        self.prepare(input, upsert).map(drop)
    }

    /// An endpoint as `create` would save it, checked; with an existing one
    /// (`upsert`) also its cell, and the status the input asked for, which
    /// does not apply to it (see `create`).
    fn prepare(
        &self,
        mut input: EndpointInput,
        upsert: bool,
    ) -> Result<(Endpoint, Option<Existing>)> {
        self.check_urls(&input)?;
        let slug_text = input
            .slug
            .take()
            .ok_or_else(|| Error::BadRequest("slug: required".into()))?;
        let slug = Slug::parse(&slug_text)?;
        let Some(cell) = self.endpoint(slug.as_str()) else {
            // Not in `Slug::parse`: one stored by an earlier version still
            // loads, and works everywhere but its dashboard page.
            if slug.as_str() == RESERVED_SLUG {
                return Err(Error::BadRequest(format!(
                    "slug {RESERVED_SLUG:?} is reserved: /endpoints/{RESERVED_SLUG} is the dashboard's form for a new endpoint"
                )));
            }
            let mut ep = Endpoint::new(slug, now_ms());
            input.apply(&mut ep)?;
            return Ok((ep, None));
        };
        if !upsert {
            return Err(Error::Conflict(format!(
                "endpoint {:?} already exists",
                slug.as_str()
            )));
        }
        let wanted = input.status.take();
        let mut ep = cell.snapshot();
        input.apply(&mut ep)?;
        Ok((ep, Some((cell, wanted))))
    }

    /// Creates an endpoint; `upsert` updates an existing one instead of 409
    /// (used for endpoints declared in the config file).
    pub async fn create(&self, input: EndpointInput, upsert: bool) -> Result<Endpoint> {
        self.upsert(input, upsert).await.map(|(ep, _)| ep)
    }

    /// [`Relay::create`], saying whether it created the endpoint.
    pub async fn upsert(&self, input: EndpointInput, upsert: bool) -> Result<(Endpoint, bool)> {
        // Creates and deletes one at a time: check-then-insert must not race.
        let _registry = self.registry_lock.lock().await;
        // Applied again to the live endpoint when saved (see `save`); the
        // file's status only where it creates one.
        let again = EndpointInput {
            status: None,
            ..input.clone()
        };
        let (ep, existing) = self.prepare(input, upsert)?;
        if let Some((cell, wanted)) = existing {
            // The file's status is where an endpoint starts: on later starts
            // the live one stands (a policy disable, a pause by hand), or
            // every restart would re-enable what the policy disabled.
            let live = ep.status;
            if let Some(wanted) = wanted.filter(|w| *w != live) {
                tracing::warn!(
                    endpoint = %ep.slug,
                    file = wanted.as_str(),
                    live = live.as_str(),
                    "the config file's status applies when the endpoint is created; it stays as it is (resume or pause it through the API or CLI)"
                );
            }
            return self
                .save(&cell, move |ep| again.apply(ep), false)
                .await
                .map(|ep| (ep, false));
        }
        let saved = ep.clone();
        self.store.run(move |s| s.put_endpoint(&saved)).await?;
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(ep.slug.to_string(), EndpointCell::new(ep.clone()));
        tracing::info!(endpoint = %ep.slug, target = ?ep.target, "endpoint created");
        Ok((ep, true))
    }

    pub async fn update(&self, slug: &str, mut input: EndpointInput) -> Result<Endpoint> {
        if input.slug.as_deref().is_some_and(|s| s != slug) {
            return Err(Error::BadRequest("slug: cannot be changed".into()));
        }
        input.slug = None;
        self.check_urls(&input)?;
        let cell = self.require(slug)?;
        let status_set = input.status.is_some();
        self.save(&cell, move |ep| input.apply(ep), status_set)
            .await
    }

    pub async fn set_status(&self, slug: &str, status: Status) -> Result<Endpoint> {
        self.update(
            slug,
            EndpointInput {
                status: Some(status),
                ..Default::default()
            },
        )
        .await
    }

    /// Makes `change` to the live endpoint, under its lock, and persists it:
    /// two edits at once both apply (each made to a copy taken before the
    /// other was saved, the later save undid the earlier — an `enforce` or
    /// a rotated secret lost with a 200 for both). Policy fields stay the
    /// live ones unless the change itself moved the status, so a concurrent
    /// failure count is not lost. A change that disables the endpoint
    /// notifies its `notify_url`, as the policy does.
    async fn save<F>(
        &self,
        cell: &Arc<EndpointCell>,
        change: F,
        status_set: bool,
    ) -> Result<Endpoint>
    where
        F: FnOnce(&mut Endpoint) -> Result<()> + Send + 'static,
    {
        let cell = Arc::clone(cell);
        let store = Arc::clone(&self.store);
        let (ep, before) = tokio::task::spawn_blocking(move || {
            let (ep, before) = {
                let mut live = cell.lock();
                if cell.deleted.load(Ordering::SeqCst) {
                    return Err(Error::NotFound(format!(
                        "no endpoint {:?}",
                        live.slug.as_str()
                    )));
                }
                let mut ep = live.clone();
                change(&mut ep)?;
                // Unless this change moved the status, the policy's state
                // stands: a disable already in place keeps its reason and
                // time, and `"status":"active"` sent with every change to
                // an active endpoint does not reset its failure count (only
                // a resume from paused or disabled, or a success, does).
                let before = live.status;
                if !status_set || ep.status == before {
                    ep.status = live.status;
                    ep.consecutive_failures = live.consecutive_failures;
                    ep.disabled_reason = live.disabled_reason.clone();
                    ep.disabled_at = live.disabled_at;
                } else if ep.status != Status::Active {
                    // A pause or a disable by hand keeps the count.
                    ep.consecutive_failures = live.consecutive_failures;
                }
                // Written under the lock (ordered with policy writes), but
                // the fsync waits after it is released.
                store.put_endpoint_unsynced(&ep)?;
                *live = ep.clone();
                (ep, before)
            };
            store.sync_wal()?;
            Ok((ep, before))
        })
        .await??;
        // Compared under the endpoint's lock: a disable by the policy in
        // the meantime has notified already.
        if ep.status != before {
            self.on_status_change();
        } else {
            // A target changed, say: a job waiting for this endpoint may
            // no longer be sending to it, and queued events left without
            // a target are held at once (the queue worker looks again).
            self.queue.poke();
            self.endpoint_changed.notify_waiters();
        }
        if ep.status == Status::Disabled && before != Status::Disabled {
            tracing::warn!(endpoint = %ep.slug, "endpoint disabled by hand");
            self.notify_disabled(&ep, true);
        }
        Ok(ep)
    }

    pub async fn delete(&self, slug: &str) -> Result<()> {
        let _registry = self.registry_lock.lock().await;
        let cell = self.require(slug)?;
        let owned = slug.to_string();
        self.store
            .run(move |s| {
                let _live = cell.lock();
                cell.deleted.store(true, Ordering::SeqCst);
                s.delete_endpoint(&owned)
            })
            .await?;
        self.endpoints
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(slug);
        self.on_status_change();
        tracing::info!(endpoint = slug, "endpoint deleted");
        Ok(())
    }

    /// The ingest listener's base URL for links, commands and exports, e.g.
    /// `http://127.0.0.1:8080`, once the server has bound it. When it
    /// listens on every address (`0.0.0.0`, `[::]`), `host` (the name a
    /// browser used for the dashboard) or else this machine's host name
    /// stands in, with the ingest port.
    pub fn ingest_base_for(&self, host: Option<&str>) -> Option<String> {
        let base = self.ingest_base.get()?;
        let (scheme, authority) = base.split_once("://")?;
        let (addr, port) = authority.rsplit_once(':')?;
        if !matches!(addr, "0.0.0.0" | "[::]") {
            return Some(base.clone());
        }
        match host
            .map(str::to_string)
            .or_else(crate::server::machine_host)
        {
            Some(h) => Some(format!("{scheme}://{h}:{port}")),
            None => Some(base.clone()),
        }
    }

    /// Sets the memory budget of request bodies, and the mirror copies'
    /// and queued deliveries' (a quarter of it each, apart).
    pub fn set_body_memory(&self, bytes: usize) {
        self.bodies.set_limit(bytes);
        self.mirror_bodies.set_limit(bytes / 4);
        self.queue_bodies.set_limit(bytes / 4);
    }

    /// Request-body bytes in memory now, over all three budgets.
    pub fn body_bytes(&self) -> usize {
        self.bodies.held() + self.mirror_bodies.held() + self.queue_bodies.held()
    }

    /// `/healthz` (liveness): whether the store can write; a restart is
    /// what mends a store RocksDB has stopped.
    pub fn health(&self) -> (http::StatusCode, String) {
        self.probe(false)
    }

    /// `/readyz` (readiness): [`Relay::health`], and whether ingest
    /// accepts events now (not past `--max-disk-usage`, nor out of room for
    /// the store's log: a restart mends neither).
    pub fn readiness(&self) -> (http::StatusCode, String) {
        self.probe(true)
    }

    /// Why ingest refuses events for storage now, if it does: the one
    /// answer `/healthz`, `/readyz`, the dashboard and `/metrics` give.
    pub fn storage_refusal(&self) -> Option<StorageRefusal> {
        if let Err(why) = self.store.health() {
            return Some(StorageRefusal::Broken(why));
        }
        if let Some(why) = self.store.space_refusal() {
            return Some(StorageRefusal::NoRoom(why));
        }
        self.disk
            .get()
            .and_then(|d| d.refusal())
            .map(StorageRefusal::Limit)
    }

    fn probe(&self, ready: bool) -> (http::StatusCode, String) {
        let why = match self.storage_refusal() {
            Some(StorageRefusal::Broken(why)) => format!("store: {why}"),
            Some(StorageRefusal::NoRoom(why) | StorageRefusal::Limit(why)) if ready => {
                format!("disk: {why}; ingest refuses events")
            }
            _ => return (http::StatusCode::OK, r#"{"ok":true}"#.into()),
        };
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ok": false, "error": why }).to_string(),
        )
    }

    /// Whether `url` (a target base, as replays take it) accepted `ev` in
    /// an attempt recorded after `since` (ms).
    pub fn accepted_since(&self, ev: &Event, url: &str, since: u64) -> Result<bool> {
        let sent_to = join_url(url, &ev.path, ev.query.as_deref())?.to_string();
        // Newest first, back to `since` only: an event may have thousands
        // of attempts.
        for a in self.store.attempts_back(&ev.id, None) {
            let a = a?;
            // Strictly after: one in the millisecond the job was made may
            // be the delivery the job was made to repeat.
            if a.at <= since {
                return Ok(false);
            }
            // Any attempt to that URL: a replay there by hand or by
            // another job (not the endpoint's target: `to_target` false)
            // delivered it as much as the target's own.
            if a.success && a.url == sent_to {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Refuses a request that went round a loop: one this process sent
    /// for endpoint `slug` coming back to `slug`'s ingest (one event would
    /// become thousands), or any it sent reaching the admin listener
    /// (`slug` None: a sender could drive the API through an endpoint, the
    /// Host check passing as the request comes from loopback). One
    /// endpoint forwarding to another of the same process is no loop.
    pub fn relayed_here(&self, headers: &http::HeaderMap, slug: Option<&str>) -> Result<()> {
        let ours = headers.get_all(http::header::VIA).iter().any(|v| {
            v.as_bytes().split(|b| *b == b',').any(|hop| {
                // `protocol received-by [comment]`: the name exactly, and
                // the endpoint in the comment (a proxy may strip comments:
                // then it counts as this endpoint's).
                let hop = hop.trim_ascii();
                let mut tokens = hop.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty());
                let by = tokens.nth(1);
                if !by.is_some_and(|by| by.eq_ignore_ascii_case(self.via_name.as_bytes())) {
                    return false;
                }
                let Some(slug) = slug else { return true };
                let comment = hop
                    .iter()
                    .position(|b| *b == b'(')
                    .map(|at| hop[at..].trim_ascii());
                match comment {
                    None => true,
                    Some(c) => c == format!("({slug})").as_bytes(),
                }
            })
        });
        match (ours, slug) {
            (false, _) => Ok(()),
            (true, Some(slug)) => Err(Error::Loop(format!(
                "this request was sent by this hookrelay for endpoint {slug:?} ({}, in Via): its target leads back to itself",
                self.via_name
            ))),
            (true, None) => Err(Error::Loop(format!(
                "this request was sent by this hookrelay ({}, in Via): an endpoint's target leads to hookrelay's admin listener",
                self.via_name
            ))),
        }
    }

    // ---- the live stream ----

    pub fn subscribe(&self) -> broadcast::Receiver<StreamItem> {
        self.stream.subscribe()
    }

    pub fn publish_event(&self, ev: &Event) {
        if self.stream.receiver_count() > 0 {
            let _ = self.stream.send(StreamItem {
                endpoint: ev.endpoint.clone(),
                kind: "event",
                json: ev.to_api(None, None).to_string(),
            });
        }
    }

    fn publish_attempt(&self, ev: &Event, a: &Attempt) {
        if self.stream.receiver_count() > 0 {
            let json = serde_json::json!({ "event": ev.to_api(None, None), "attempt": a.to_api() });
            let _ = self.stream.send(StreamItem {
                endpoint: ev.endpoint.clone(),
                kind: "attempt",
                json: json.to_string(),
            });
        }
    }

    // ---- delivery ----

    /// Sends `ev` to `url` and records the attempt. When `own_target` is set
    /// the outcome counts toward the endpoint's policy and moves the event to
    /// `delivered` or `failed`; replays to another URL change neither.
    pub async fn deliver(
        &self,
        ev: &Event,
        body: Bytes,
        url: &str,
        trigger: Trigger,
        own_target: bool,
    ) -> Result<(Event, Attempt, Option<Reply>)> {
        let settle = Settle::Direct {
            own_target,
            queued: None,
        };
        let (ev, attempt, reply, _) = self
            .deliver_settled(ev, body, url, trigger, settle, KEPT)
            .await?;
        Ok((ev, attempt, reply))
    }

    /// Forward mode: [`Relay::deliver`] to the endpoint's own target, with
    /// the answer for the sender, who waits for it. An answer longer than
    /// an attempt record keeps is passed on as it arrives
    /// ([`Forwarded::Passing`]) and recorded once it has all come, so no
    /// answer is held whole in memory. (Every other try keeps only what
    /// its attempt record holds.)
    pub async fn forward(
        self: &Arc<Self>,
        ev: &Event,
        body: Bytes,
        url: &str,
    ) -> Result<Forwarded> {
        let settle = Settle::Direct {
            own_target: true,
            queued: None,
        };
        let started = std::time::Instant::now();
        let answer = deliver::Answer::Stream(ATTEMPT_BODY_CAP);
        let (attempt, mut reply) = self.send(ev, body, url, Trigger::Forward, answer).await?;
        let Some(rest) = reply.as_mut().and_then(|r| r.rest.take()) else {
            let cell = self.endpoint(&ev.endpoint);
            let (ev, attempt, _) = self.record_attempt(&ev.id, cell, attempt, settle).await?;
            return Ok(Forwarded::Done(Box::new((ev, attempt, reply))));
        };
        let mut reply = reply.expect("a rest comes with its reply");
        // Beside `Transfer-Encoding`, a `Content-Length` does not frame the
        // body (RFC 9112 §6.3): the sender's hop then gets no length.
        let framed_by_length = !reply
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding"));
        let length = reply
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .filter(|_| framed_by_length)
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.trim().parse().ok());
        let (passing, body) = deliver::passing(
            std::mem::take(&mut reply.body),
            length,
            self.closing.clone(),
        );
        let relay = Arc::clone(self);
        let (id, endpoint) = (ev.id.clone(), ev.endpoint.clone());
        let mut attempt = attempt;
        // A failing answer counts at once, as a whole one does: the policy's
        // verdict (held, when the endpoint stopped being active meanwhile;
        // the disable it may cause) comes before the sender's answer. Its
        // length is the one stated, or what came so far.
        if !attempt.success {
            attempt.body_size = length.unwrap_or(attempt.body_size);
            attempt.body_truncated = true;
            self.metrics
                .attempt(false, attempt.error, started.elapsed());
            let cell = self.endpoint(&endpoint);
            let (ev, attempt, _) = self.record_attempt(&id, cell, attempt, settle).await?;
            if ev.state == EventState::Held {
                // The sender gets `202`; the rest of the answer is dropped
                // with its connection.
                return Ok(Forwarded::Done(Box::new((ev, attempt, None))));
            }
            self.deliveries.spawn(async move {
                if let Err(f) = rest.pass_on(passing).await {
                    tracing::debug!(event = %id, error = %f.detail, "a failing answer's rest did not come whole");
                }
            });
            return Ok(Forwarded::Passing {
                status: reply.status,
                reason: reply.reason,
                headers: reply.headers,
                body,
            });
        }
        // Its own task, on the deliveries a shutdown waits for: the sender
        // may hang up, and the attempt must be recorded all the same.
        self.deliveries.spawn(async move {
            let mut latency = started.elapsed();
            match rest.pass_on(passing).await {
                Ok((n, waited)) => {
                    attempt.body_size += n;
                    attempt.body_truncated = (attempt.body.len() as u64) < attempt.body_size;
                    latency = waited;
                }
                // As a whole answer's body that fails: no answer recorded.
                Err(f) => {
                    attempt.status = None;
                    attempt.headers = Vec::new();
                    attempt.body = Vec::new();
                    attempt.body_size = 0;
                    attempt.body_truncated = false;
                    attempt.success = false;
                    attempt.error = Some(f.kind);
                    attempt.error_detail = Some(f.detail);
                }
            }
            attempt.latency_ms = latency.as_millis() as u64;
            relay
                .metrics
                .attempt(attempt.success, attempt.error, latency);
            let cell = relay.endpoint(&endpoint);
            if let Err(e) = relay.record_attempt(&id, cell, attempt, settle).await {
                tracing::error!(event = %id, error = %e, "recording a passed-on answer's attempt failed");
            }
        });
        Ok(Forwarded::Passing {
            status: reply.status,
            reason: reply.reason,
            headers: reply.headers,
            body,
        })
    }

    /// [`Relay::deliver`] with the settlement spelled out; also returns how
    /// the event moved in the queue.
    async fn deliver_settled(
        &self,
        ev: &Event,
        body: Bytes,
        url: &str,
        trigger: Trigger,
        settle: Settle,
        answer: deliver::Answer,
    ) -> Result<(Event, Attempt, Option<Reply>, QueueMove)> {
        let (attempt, reply) = self.send(ev, body, url, trigger, answer).await?;
        let cell = if settle.to_target() {
            self.endpoint(&ev.endpoint)
        } else {
            None
        };
        let (ev, attempt, moved) = self.record_attempt(&ev.id, cell, attempt, settle).await?;
        Ok((ev, attempt, reply, moved))
    }

    /// One try of `ev` to `url`, not yet recorded.
    async fn send(
        &self,
        ev: &Event,
        body: Bytes,
        url: &str,
        trigger: Trigger,
        answer: deliver::Answer,
    ) -> Result<(Attempt, Option<Reply>)> {
        let cell = self.endpoint(&ev.endpoint);
        let (timeout, codes) = match &cell {
            Some(c) => {
                let ep = c.lock();
                (
                    Duration::from_millis(ep.timeout_ms),
                    ep.success_codes.clone(),
                )
            }
            None => (DEFAULT_ATTEMPT_TIMEOUT, Default::default()),
        };
        let uri = join_url(url, &ev.path, ev.query.as_deref())?;
        let mut headers = forward_headers(ev);
        add_via(&mut headers, &self.via_name, Some(&ev.endpoint));
        // The same id on every copy of the event (retries, replays, the
        // mirror): what a receiver dedupes on, as at-least-once delivery
        // (queue mode, a crash mid-attempt) may repeat one.
        set_in_place(
            &mut headers,
            crate::ingest::EVENT_HEADER,
            ev.id.clone().into_bytes(),
        );
        let out = Outbound {
            method: Method::from_bytes(ev.method.as_bytes())
                .map_err(|_| Error::Internal(format!("stored method {:?}", ev.method)))?,
            url: uri.clone(),
            headers,
            body,
            timeout,
            answer,
        };
        let (result, latency) = self.client.send(out).await;
        let (attempt, reply) = match result {
            Ok(reply) => {
                let success = policy::is_success(Some(reply.status), &codes);
                let cap = reply.body.len().min(ATTEMPT_BODY_CAP);
                let a = Attempt {
                    n: 0,
                    at: now_ms(),
                    trigger,
                    url: uri.to_string(),
                    status: Some(reply.status),
                    headers: reply.headers.clone(),
                    body: reply.body[..cap].to_vec(),
                    body_size: reply.body_size,
                    body_truncated: (cap as u64) < reply.body_size,
                    latency_ms: latency.as_millis() as u64,
                    error: None,
                    error_detail: None,
                    replay_of: matches!(trigger, Trigger::Replay).then(|| ev.id.clone()),
                    success,
                    // Settled by `record_attempt`, which knows where it went.
                    to_target: true,
                };
                (a, Some(reply))
            }
            // Not an attempt: nothing left hookrelay, and a target must
            // not be disabled for hookrelay's own shortage. The caller
            // answers 503 (a forward), or tries again later (the queue).
            Err(f) if f.local => {
                tracing::warn!(url = %uri, error = %f.detail, "no connection to the target could be opened: hookrelay's own limit");
                return Err(Error::Unavailable(format!(
                    "hookrelay cannot open another connection now ({}); nothing was sent, the event is stored",
                    f.detail
                )));
            }
            Err(f) => {
                if f.refused {
                    self.metrics
                        .outbound_refused
                        .fetch_add(1, Ordering::Relaxed);
                }
                let a = Attempt {
                    n: 0,
                    at: now_ms(),
                    trigger,
                    url: uri.to_string(),
                    status: None,
                    headers: Vec::new(),
                    body: Vec::new(),
                    body_size: 0,
                    body_truncated: false,
                    latency_ms: latency.as_millis() as u64,
                    error: Some(f.kind),
                    error_detail: Some(f.detail),
                    replay_of: matches!(trigger, Trigger::Replay).then(|| ev.id.clone()),
                    success: false,
                    to_target: true,
                };
                (a, None)
            }
        };
        // A long answer still arriving is counted once it has all come.
        if reply.as_ref().is_none_or(|r| r.rest.is_none()) {
            self.metrics
                .attempt(attempt.success, attempt.error, latency);
        }
        Ok((attempt, reply))
    }

    /// Appends `attempt` to the event in one batch with its state change,
    /// its queue move and, when `cell` is given, the endpoint's policy state.
    async fn record_attempt(
        &self,
        id: &str,
        cell: Option<Arc<EndpointCell>>,
        mut attempt: Attempt,
        settle: Settle,
    ) -> Result<(Event, Attempt, QueueMove)> {
        let id = id.to_string();
        attempt.to_target = settle.to_target();
        let retry_after = match attempt.status {
            Some(429 | 503) => attempt
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("retry-after"))
                .and_then(|(_, v)| {
                    crate::queue::parse_retry_after(v, std::time::SystemTime::now())
                }),
            _ => None,
        };
        // Outcome writes never wait for fsync (no RocksDB write is synced;
        // see `Store::durable`), so they run inline on the async worker.
        let store = &self.store;
        let (ev, attempt, moved, disabled) = (move || {
            let success = attempt.success;
            let what = match (attempt.status, &attempt.error_detail) {
                (Some(status), _) => format!("HTTP {status} from {}", attempt.url),
                (None, Some(detail)) => detail.clone(),
                (None, None) => "no answer".to_string(),
            };
            let mut guard = cell.as_ref().map(|c| c.lock());
            let was_active = guard
                .as_deref()
                .is_none_or(|ep| ep.status == Status::Active);
            // The policy moves a copy; the live endpoint changes only once
            // the batch carrying it is written.
            let mut next = guard.as_deref().cloned();
            let obs = next
                .as_mut()
                .map(|ep| policy::observe(ep, success, now_ms(), &what));
            let (active, retry) = match &next {
                Some(ep) => (ep.status == Status::Active, ep.retry.clone()),
                None => (true, Vec::new()),
            };
            let trigger = attempt.trigger;
            let change = move |ev: &mut Event| {
                let (state, queue) = settle.decide(
                    ev,
                    trigger,
                    success,
                    Activity { was_active, active },
                    &retry,
                    retry_after,
                );
                if let Some(st) = state {
                    ev.state = st;
                }
                (Some(attempt), queue)
            };
            // The endpoint is written in the same batch while its lock is
            // held, so concurrent attempts persist their counts in order;
            // never for a deleted endpoint, whose record must stay gone.
            let deleted = cell
                .as_ref()
                .is_some_and(|c| c.deleted.load(Ordering::SeqCst));
            let endpoint = match (&next, obs) {
                (Some(ep), Some(o)) if o.changed && !deleted => Some(ep.clone()),
                _ => None,
            };
            if endpoint.is_none() {
                guard = None;
            }
            let (ev, a, moved) = store.record_outcome(&id, endpoint.as_ref(), change)?;
            let disabled = match (&next, obs) {
                (Some(ep), Some(o)) if o.disabled_now => Some(ep.clone()),
                _ => None,
            };
            if let (Some(live), Some(ep)) = (guard.as_deref_mut(), next) {
                *live = ep;
            }
            drop(guard);
            Ok::<_, Error>((ev, a.expect("attempt recorded"), moved, disabled))
        })()?;
        self.publish_attempt(&ev, &attempt);
        if let Some(ep) = disabled {
            self.on_disabled(ep);
        }
        Ok((ev, attempt, moved))
    }

    /// Waits until an event may be sent as far as its sender goes: one
    /// pushed to the queue before its sync is sent only once its sender
    /// knows it is stored (or, left by its sender, once the store is
    /// synced). The event may be gone afterwards (taken back).
    async fn sendable(&self, id: &str) -> Result<()> {
        match self.queue.settled(id).await {
            crate::queue::Settled::Left => {
                self.store.durable().await?;
                self.queue.synced(id);
            }
            crate::queue::Settled::Undecided => {
                return Err(Error::Unavailable(format!(
                    "event {id}: its sender is still waiting to learn whether it is stored"
                )));
            }
            _ => {}
        }
        Ok(())
    }

    /// Queue mode: one background try of a queued event. Returns the entry's
    /// next due time, or `None` when it left the queue. `drained`: taken
    /// because its endpoint was paused or disabled, to be held.
    pub async fn deliver_queued(
        &self,
        slug: &str,
        id: &str,
        due: u64,
        drained: bool,
    ) -> Result<Option<u64>> {
        // Inline on the worker, like outcome writes: a queued event was
        // written moments ago (memtable or block cache), and no store call
        // here waits for fsync, so a hop to the blocking pool would cost
        // more than it saves.
        self.sendable(id).await?;
        let ev = self.store.get_event(id)?;
        let cell = self.endpoint(slug);
        let leave = |state: EventState| {
            self.store.record_outcome(id, None, |e| {
                e.state = state;
                (
                    None,
                    QueueMove {
                        remove: Some(due),
                        add: None,
                    },
                )
            })
        };
        let Some(ev) = ev else {
            // Taken back by its sender (refused with 503; its key went with
            // it), or pruned once its endpoint was deleted: nothing to
            // deliver. A key left behind is met again at the next start.
            if let Err(e) = self.store.remove_queued(due, id) {
                tracing::warn!(id, error = %e, "cannot remove the queue key of a deleted event");
            }
            return Ok(None);
        };
        // A replay, release or bulk job may have settled it meanwhile: its
        // state stands, whatever became of the endpoint.
        if !matches!(ev.state, EventState::Received | EventState::Retrying) {
            leave(ev.state)?;
            return Ok(None);
        }
        // Deleted, or (below) left without a target: the sender was told
        // it would be delivered, so it is held, not settled. Re-created (or
        // given a target again), a release sends it, as for a pause.
        let Some(cell) = cell else {
            leave(EventState::Held)?;
            return Ok(None);
        };
        // A release lists held events once every holder of this gate has
        // written its event: one found paused here is held before a
        // release that follows a resume looks, never missed by it.
        let _gate = cell.hold_gate.read().await;
        let (status, target) = {
            let ep = cell.lock();
            (ep.status, ep.target.clone())
        };
        // Held under the gate, as for a pause: a release that follows a new
        // target lists it.
        let Some(target) = target.filter(|_| status == Status::Active) else {
            leave(EventState::Held)?;
            return Ok(None);
        };
        drop(_gate);
        if drained {
            // Resumed since it was taken to be held: back in line, where an
            // ordered endpoint sends the oldest first (drained entries are
            // all taken at once).
            return Ok(Some(due));
        }
        // Stored by a bin (or an older version) and never sendable: it
        // fails now instead of blocking the queue behind it.
        if unsendable(&ev) {
            leave(EventState::Failed)?;
            return Ok(None);
        }
        let trigger = if ev.tries == 0 {
            Trigger::Forward
        } else {
            Trigger::Retry
        };
        if trigger == Trigger::Retry {
            self.metrics.retries.fetch_add(1, Ordering::Relaxed);
        }
        // Read back only with room for it: up to GLOBAL_IN_FLIGHT bodies of
        // up to --max-body each would otherwise sit in memory at once,
        // waiting on a slow receiver.
        let size = usize::try_from(ev.size).unwrap_or(usize::MAX);
        let _room = crate::memory::BodyShare::wait_for(&self.queue_bodies, size).await;
        let body = self.store.get_body(id)?;
        let (attempt, _) = self
            .send(
                &ev,
                Bytes::from(body.unwrap_or_default()),
                &target,
                trigger,
                KEPT,
            )
            .await?;
        // The receiver has its answer now: when the store cannot record it,
        // the write is tried again, not the delivery (the worker's retry
        // would send it again every few seconds for as long as the store
        // fails). A shutdown meanwhile leaves the entry to be sent again.
        let mut backoff = Duration::from_millis(50);
        loop {
            let settle = Settle::Queued { due };
            match self
                .record_attempt(id, Some(Arc::clone(&cell)), attempt.clone(), settle)
                .await
            {
                Ok((_, _, moved)) => return Ok(moved.add),
                Err(e @ (Error::Store(_) | Error::Unavailable(_))) => {
                    tracing::error!(endpoint = slug, id, error = %e, "cannot record a delivery; retrying the write");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends a copy of a new event to the endpoint's mirror in the
    /// background; the answer is recorded as a `mirror` attempt and never
    /// reaches the sender or the policy.
    /// Sends a copy of `ev` to `url` in the background. Its body counts
    /// against a memory budget of the mirror's own, so a mirror that reads
    /// slowly skips copies rather than take senders' room.
    pub fn mirror(self: &Arc<Self>, ev: &Event, body: &Bytes, url: String) {
        let mut share = crate::memory::BodyShare::new(&self.mirror_bodies);
        if !share.grow(body.len()) {
            tracing::warn!(id = %ev.id, "mirror copy skipped: the bodies of the copies in flight fill the mirror's memory budget");
            return;
        }
        let Ok(permit) = Arc::clone(&self.mirror_slots).try_acquire_owned() else {
            tracing::warn!(id = %ev.id, "mirror copy skipped: {MIRROR_IN_FLIGHT} already in flight");
            return;
        };
        let relay = Arc::clone(self);
        let ev = ev.clone();
        let body = body.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _share = share;
            let result = async {
                let (attempt, _) = relay.send(&ev, body, &url, Trigger::Mirror, KEPT).await?;
                relay
                    .record_attempt(&ev.id, None, attempt, Settle::Mirror)
                    .await
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(id = %ev.id, error = %e, "mirror attempt not recorded");
            }
        });
    }

    /// Paused or disabled: its queued events are held at once (the queue
    /// worker looks again); resumed: waiting jobs go on.
    fn on_status_change(&self) {
        self.queue.poke();
        self.endpoint_changed.notify_waiters();
    }

    /// Re-sends a stored event to its endpoint's target or to `target`.
    pub async fn replay(
        self: &Arc<Self>,
        id: &str,
        target: Option<String>,
    ) -> Result<(Event, Attempt)> {
        let (ev, attempt, _) = self.replay_with(id, target, false).await?;
        Ok((ev, attempt))
    }

    /// [`Relay::replay`], optionally re-signed. With `resign`, timestamped schemes get a fresh signature made with
    /// the endpoint's secret; the returned note says what was done.
    pub async fn replay_with(
        self: &Arc<Self>,
        id: &str,
        target: Option<String>,
        resign: bool,
    ) -> Result<(Event, Attempt, Option<String>)> {
        self.replay_unless(id, target, resign, None)
            .await?
            .ok_or_else(|| Error::Internal("a replay with no condition was skipped".into()))
    }

    /// [`Relay::replay_with`] for a bulk job made at `made_at`: None, and
    /// nothing sent, when the URL it would go to accepted the event after
    /// that — looked at once any queue attempt of it has ended, so the
    /// job never repeats a delivery made meanwhile.
    pub async fn replay_unless(
        self: &Arc<Self>,
        id: &str,
        target: Option<String>,
        resign: bool,
        made_at: Option<u64>,
    ) -> Result<Option<(Event, Attempt, Option<String>)>> {
        let owned = id.to_string();
        let (ev, body) = self
            .store
            .run(move |s| Ok((s.get_event(&owned)?, s.get_body(&owned)?)))
            .await?;
        let ev = ev.ok_or_else(|| Error::NotFound(format!("no event {id}")))?;
        let own = self
            .endpoint(&ev.endpoint)
            .and_then(|c| c.lock().target.clone());
        let (url, own_target) = match target {
            Some(t) => {
                self.check_url("target", &t)?;
                let own_target = own.as_deref() == Some(t.as_str());
                (t, own_target)
            }
            None => (
                own.ok_or_else(|| {
                    let why = if self.endpoint(&ev.endpoint).is_some() {
                        "has no target"
                    } else {
                        "was deleted"
                    };
                    Error::Unprocessable(format!(
                        "endpoint {:?} {why}; give a target URL to replay to",
                        ev.endpoint
                    ))
                })?,
                true,
            ),
        };
        let body = body.unwrap_or_default();
        let resign_with = match resign {
            true => Some(self.resign_config(&ev.endpoint)?),
            false => None,
        };
        // Its own task: an admin client that hangs up (or a cancelled job)
        // must not cut the attempt between its send and its record.
        let relay = Arc::clone(self);
        let attempt = async move {
            // Before the look at what was accepted: another job sending
            // this event now is seen by its outcome, not sent beside.
            let _turn = relay.replays.take(&ev.id).await;
            // Sent nowhere while its sender may yet be told it was not
            // stored (a queue-mode event moments old).
            // Read again after: taken back by a sender told 503 while this
            // replay was being set up.
            relay.sendable(&ev.id).await?;
            if relay.store.get_event(&ev.id)?.is_none() {
                return Err(Error::NotFound(format!("no event {}", ev.id)));
            }
            // An event waiting in the queue is taken out of the worker's
            // reach for the attempt, as the worker itself would: a success
            // ends its schedule, a failure leaves the schedule to go on.
            let claim = if own_target {
                let wait = relay.attempt_timeout(&ev.endpoint) + CLAIM_MARGIN;
                relay
                    .queue
                    .claim_when_idle(&ev.endpoint, &ev.id, wait)
                    .await
                    .map_err(|waited| {
                        Error::Conflict(format!(
                            "event {} is still being delivered by the queue after {} s; try again when that attempt ends",
                            ev.id,
                            waited.as_secs()
                        ))
                    })?
            } else {
                None
            };
            if let Some(since) = made_at
                && relay.accepted_since(&ev, &url, since)?
            {
                // The claim goes back untouched when dropped.
                return Ok(None);
            }
            // Signed only now, after any wait for the queue's attempt, so
            // the fresh timestamp is fresh when it is sent.
            let mut outgoing = ev.clone();
            let mut note = None;
            if let Some(cfg) = resign_with {
                let now = (now_ms() / 1000) as i64;
                let received = (ev.received_at / 1000) as i64;
                let arrived = ev
                    .signature
                    .as_ref()
                    .and_then(|s| crate::signature::Verdict::parse(&s.verdict));
                match crate::signature::resign(&cfg, &ev.headers, &body, arrived, received, now) {
                    crate::signature::Resign::Resigned(headers, scheme) => {
                        outgoing.headers = headers;
                        note = Some(format!("re-signed ({scheme}) with timestamp {now}"));
                    }
                    crate::signature::Resign::Unchanged(why) => note = Some(why),
                }
            }
            let settle = Settle::Direct {
                own_target,
                queued: claim.as_ref().map(|c| c.due()),
            };
            let (ev, attempt, _, moved) = relay
                .deliver_settled(
                    &outgoing,
                    Bytes::from(body),
                    &url,
                    Trigger::Replay,
                    settle,
                    KEPT,
                )
                .await?;
            if let Some(c) = claim {
                c.finish(moved.remove.is_some());
            }
            Ok::<_, Error>(Some((ev, attempt, note)))
        };
        self.deliveries.spawn(attempt).await?
    }

    /// An endpoint's per-attempt timeout (the default for a deleted one).
    fn attempt_timeout(&self, slug: &str) -> Duration {
        self.endpoint(slug)
            .map(|c| Duration::from_millis(c.lock().timeout_ms))
            .unwrap_or(DEFAULT_ATTEMPT_TIMEOUT)
    }

    /// Sends a small signed JSON ping to the endpoint's target, like
    /// WooCommerce's activation ping. The ping is stored as an event (topic
    /// `hookrelay.ping`) so its attempt shows in the timeline, and it counts
    /// toward the policy: it tests the real target.
    pub async fn ping(self: &Arc<Self>, slug: &str) -> Result<(Event, Attempt)> {
        let cell = self.require(slug)?;
        let ep = cell.snapshot();
        let target = ep.target.clone().ok_or_else(|| {
            Error::Unprocessable(format!(
                "endpoint {slug:?} is a bin: there is no target to ping"
            ))
        })?;
        let (id, now) = Store::new_id_ms();
        let body = serde_json::json!({
            "type": "hookrelay.ping",
            "endpoint": slug,
            "id": id,
            "sent_at": crate::time::rfc3339_ms(now),
        })
        .to_string();
        let mut headers: Headers = vec![
            ("content-type".into(), b"application/json".to_vec()),
            (
                "user-agent".into(),
                format!("hookrelay/{}", env!("CARGO_PKG_VERSION")).into_bytes(),
            ),
        ];
        if let Some(cfg) = &ep.signature {
            if cfg.scheme == "github" {
                // GitHub's own ping: receivers routing on the event name
                // (Octokit and the like) answer it instead of a 400.
                headers.push(("x-github-event".into(), b"ping".to_vec()));
                headers.push(("x-github-delivery".into(), id.clone().into_bytes()));
            }
            let signed = crate::signature::sign(cfg, body.as_bytes(), (now / 1000) as i64, &id);
            // Stored like a received event's headers: lower-case names.
            headers.extend(signed.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)));
        }
        // Checked like a received event, so the event page shows the
        // endpoint's verdict instead of "no check configured".
        let signature = ep.signature.as_ref().map(|cfg| {
            let check =
                crate::signature::verify(cfg, &headers, body.as_bytes(), None, (now / 1000) as i64);
            crate::ingest::record_of(check)
        });
        let ev = Event {
            id,
            endpoint: slug.to_string(),
            received_at: now,
            method: "POST".into(),
            path: String::new(),
            query: None,
            headers,
            size: body.len() as u64,
            remote_addr: PING_SENDER.into(),
            state: EventState::Received,
            topic: Some("hookrelay.ping".into()),
            external_id: None,
            duplicate_of: None,
            signature,
            attempts: 0,
            last_status: None,
            tries: 0,
            mirror_status: None,
            target_tried: false,
            owed: true,
            tls: false,
            proxy_addr: None,
            authority: None,
        };
        // Its own task, stored and sent: an admin client that hangs up
        // must not leave the ping unsent but stored as `received`, or sent
        // but not recorded.
        let relay = Arc::clone(self);
        let ping = async move {
            let ev = relay.store.insert_event(ev, body.as_bytes())?;
            relay.store.durable().await?;
            relay.publish_event(&ev);
            let (ev, attempt, _) = relay
                .deliver(&ev, Bytes::from(body), &target, Trigger::Ping, true)
                .await?;
            Ok::<_, Error>((ev, attempt))
        };
        self.deliveries.spawn(ping).await?
    }

    /// `ping_on_activate`: a test ping, in the background, when an endpoint
    /// with a target is created active or goes from paused/disabled to
    /// active. Returns whether a ping was sent. `before` is the status before
    /// the change (`None` for a new endpoint).
    /// The signature a re-signed replay of `slug`'s events is made with;
    /// refused (422) when it has none.
    pub fn resign_config(&self, slug: &str) -> Result<crate::signature::SignatureConfig> {
        self.endpoint(slug)
            .and_then(|c| c.lock().signature.clone())
            .ok_or_else(|| {
                Error::Unprocessable(format!(
                    "resign: endpoint {slug:?} has no signature secret to sign with"
                ))
            })
    }

    pub fn ping_if_activated(self: &Arc<Self>, before: Option<Status>, ep: &Endpoint) -> bool {
        let activated = ep.status == Status::Active && before != Some(Status::Active);
        if !(ep.ping_on_activate && activated && ep.target.is_some()) {
            return false;
        }
        let relay = Arc::clone(self);
        let slug = ep.slug.to_string();
        tokio::spawn(async move {
            if let Err(e) = relay.ping(&slug).await {
                tracing::warn!(endpoint = slug, error = %e, "ping on activate failed");
            }
        });
        true
    }
}

/// An event whose path `join_url` refuses (a `.` or `..` segment): logged,
/// and the caller fails it rather than trying again.
fn unsendable(ev: &Event) -> bool {
    let refused = crate::capture::has_dot_segment(&ev.path);
    if refused {
        tracing::warn!(endpoint = %ev.endpoint, id = %ev.id, path = %ev.path, "not sent: the path has a '.' or '..' segment; the event fails");
    }
    refused
}

/// The `remote_addr` of a test ping's event: it has no network sender.
pub const PING_SENDER: &str = "hookrelay (test ping)";
