//! Queue mode's delivery queue: the in-memory view of the `queue` column
//! family (which stays the source of truth across restarts), the limits on
//! what is in flight, and the worker that delivers due events in the
//! background with retries.
//!
//! An entry leaves the queue only in the same write batch that records its
//! attempt's outcome, so a crash repeats at most the attempts in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::endpoint::Status;
use crate::relay::Relay;
use crate::time::now_ms;

/// Pending events the queue takes across all endpoints: its index costs
/// ~180 bytes per pending event in memory (with RocksDB's share, measured
/// with a receiver hanging and millions waiting), so this holds it near
/// 360 MB; past it ingest answers `503` with `Retry-After`, as at an
/// endpoint's own `max_queue_depth`.
pub const TOTAL_MAX: usize = 2_000_000;

/// Why [`Queue::admit`] gave no place.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Full {
    /// The endpoint's `max_queue_depth`.
    Endpoint,
    /// [`TOTAL_MAX`] across all endpoints.
    All,
}

/// Deliveries in flight at once across all endpoints.
pub const GLOBAL_IN_FLIGHT: usize = 64;
/// The longest the worker sleeps without looking at the queue.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// How long shutdown waits for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(10);
/// After a store error an entry is tried again this much later.
const STORE_ERROR_BACKOFF_MS: u64 = 5_000;

/// An event id as the queue holds it: inline, no allocation. Held twice per
/// pending event (by id, by due time), as `String`s a backlog of 1.9
/// million events took ~620 MB. Ids are ULIDs (26 characters); the order
/// is the text's (the padding sorts first).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
struct Id {
    bytes: [u8; ID_LEN],
    len: u8,
}

const ID_LEN: usize = 26;

impl Id {
    fn new(id: &str) -> Id {
        let mut bytes = [0u8; ID_LEN];
        // Only ULIDs are queued; a longer id would be cut (and could meet
        // another), so it is caught in tests.
        debug_assert!(id.len() <= ID_LEN, "queue id {id:?}");
        let len = id.len().min(ID_LEN);
        bytes[..len].copy_from_slice(&id.as_bytes()[..len]);
        Id {
            bytes,
            len: len as u8,
        }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len as usize]).unwrap_or_default()
    }
}

/// One endpoint's pending deliveries.
#[derive(Default)]
struct Pending {
    /// Every pending event (in flight included): id -> due. Ids are ULIDs,
    /// so the first key is the oldest event.
    by_id: BTreeMap<Id, u64>,
    /// The entries not in flight, by due time: taking due work reads the
    /// front instead of scanning the backlog.
    ready: BTreeSet<(u64, Id)>,
    in_flight: usize,
    /// The in-flight limit the worker last applied (0: not yet taken).
    cap: usize,
    /// Whether the worker last took it as ordered (only the oldest goes).
    ordered: bool,
    /// Whether the worker last found it held back (`Limits::hold`).
    held: bool,
    /// Entries pushed again while their attempt was in flight (a release
    /// racing the worker): back at this due time when the attempt ends,
    /// whatever it decided.
    again: HashMap<Id, u64>,
    /// Places taken by senders between the depth check and their push
    /// ([`Queue::admit`]): with two ingest threads both could pass the
    /// check for the last place.
    reserved: usize,
}

#[derive(Default)]
struct State {
    endpoints: HashMap<String, Pending>,
    /// Pending events across all endpoints (their `by_id` entries).
    pending: usize,
    in_flight: usize,
    /// Entries pushed before their sender's sync ended: a delivery of one
    /// waits for the sender's verdict first ([`Queue::settled`]), so
    /// nothing goes out that its sender may yet be told was not stored.
    unsynced: HashMap<String, Mark>,
    /// Where the next pass over the endpoints starts: each gets its turn
    /// to be first at the slots that freed up.
    rotation: usize,
}

/// The most deliveries one endpoint may have in flight at once, out of
/// [`GLOBAL_IN_FLIGHT`]: a slow receiver with a deep backlog leaves a
/// quarter of the slots to the others.
const ENDPOINT_SHARE: usize = GLOBAL_IN_FLIGHT - GLOBAL_IN_FLIGHT / 4;

/// The longest a delivery waits for a sender's verdict: the sender's own
/// sync wait, and its taking the event back.
const SETTLE_WAIT: Duration = crate::store::SYNC_WAIT.saturating_add(Duration::from_secs(2));

/// What [`Queue::settled`] found.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Settled {
    /// No sender is syncing it (any more): the event is as stored, or gone
    /// if its sender took it back — read it after this.
    Yes,
    /// Its sender left it unsettled (hung up, or could not take a refused
    /// event back): sync the store, then [`Queue::synced`], before
    /// sending it.
    Left,
    /// Its sender is still deciding after [`SETTLE_WAIT`] (a store in
    /// trouble): send nothing now, try again later.
    Undecided,
}

/// Where the sender of an entry pushed before its sync stands.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Mark {
    /// Waiting for the sync: it will answer, then settle the entry.
    Syncing,
    /// Gone without settling (it hung up, or could not take a refused
    /// event back): whoever sends the event syncs first.
    Abandoned,
}

/// The limits the worker reads from an endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub ordered: bool,
    pub max_in_flight: usize,
    /// Take every entry now, due or not (the endpoint is paused, disabled
    /// or gone: its events are held or failed at once, not at their due
    /// time).
    pub drain: bool,
    /// Take nothing now: a release is putting an ordered endpoint's held
    /// events back, and nothing may overtake them meanwhile.
    pub hold: bool,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    wake: Notify,
    /// An attempt ended: a replay waiting for the worker's attempt of the
    /// same event looks again.
    ended: Notify,
    /// A sender settled (or abandoned) an entry pushed before its sync.
    verdicts: Notify,
}

/// The sender's hold on an entry pushed before its sync: settled once it
/// knows the sync's outcome ([`Unsettled::settle`]); dropped unsettled (the
/// sender hung up mid-wait) it leaves the entry to a sender that syncs.
pub struct Unsettled<'a> {
    queue: &'a Queue,
    id: Option<String>,
}

impl Unsettled<'_> {
    /// Synced (the entry may go), or withdrawn (it is gone).
    pub fn settle(mut self) {
        if let Some(id) = self.id.take() {
            self.queue.set_mark(&id, None);
        }
    }
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            self.queue.set_mark(&id, Some(Mark::Abandoned));
        }
    }
}

/// What [`Queue::claim`] found.
pub enum Claimed<'a> {
    /// Taken out of the worker's reach until the claim ends.
    Yes(Claim<'a>),
    /// Its attempt is under way (the worker's, or another replay's).
    InFlight,
    /// Not in the queue.
    NotQueued,
}

impl Queue {
    /// Rebuilds the view from the stored entries `(due, id, slug)`.
    pub fn load(entries: Vec<(u64, String, String)>) -> Queue {
        let q = Queue::default();
        {
            let mut st = q.lock();
            for (due, id, slug) in entries {
                let p = st.endpoints.entry(slug).or_default();
                let id = Id::new(&id);
                p.by_id.insert(id, due);
                p.ready.insert((due, id));
            }
            st.pending = st.endpoints.values().map(|p| p.by_id.len()).sum();
        }
        q
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new entry (already stored) and wakes the worker.
    pub fn push(&self, slug: &str, id: &str, due: u64) {
        let busy = {
            let mut st = self.lock();
            let global_full = st.in_flight >= GLOBAL_IN_FLIGHT;
            let p = st.endpoints.entry(slug.to_string()).or_default();
            let id = Id::new(id);
            let before = p.by_id.len();
            match p.by_id.get(&id).copied() {
                Some(old) if !p.ready.contains(&(old, id)) => {
                    p.again.insert(id, due);
                }
                old => {
                    if let Some(old) = old {
                        p.ready.remove(&(old, id));
                    }
                    p.by_id.insert(id, due);
                    p.ready.insert((due, id));
                }
            }
            let added = p.by_id.len() - before;
            let busy = global_full || (p.cap > 0 && p.in_flight >= p.cap);
            st.pending += added;
            busy
        };
        // At its limit the worker could not take it anyway, and a delivery
        // in flight wakes it when it finishes: under load this spares a
        // wake-up of the worker's thread per event.
        if !busy {
            self.wake.notify_one();
        }
    }

    /// Takes a place in `slug`'s queue if it holds fewer than `max`
    /// (pending and reserved): the sender then stores its event and pushes
    /// it ([`Queue::push_unsynced`]) or gives the place back ([`Queue::unreserve`]).
    pub fn admit(&self, slug: &str, max: u64) -> Result<(), Full> {
        let mut st = self.lock();
        let all_full = st.pending >= TOTAL_MAX;
        let p = st.endpoints.entry(slug.to_string()).or_default();
        let room = if ((p.by_id.len() + p.reserved) as u64) >= max {
            Err(Full::Endpoint)
        } else if all_full {
            Err(Full::All)
        } else {
            Ok(())
        };
        if room.is_ok() {
            p.reserved += 1;
        } else if p.by_id.is_empty() && p.in_flight == 0 && p.reserved == 0 {
            st.endpoints.remove(slug);
        }
        room
    }

    /// Gives back a place [`Queue::admit`] took (the event was not stored).
    pub fn unreserve(&self, slug: &str) {
        let mut st = self.lock();
        if let Some(p) = st.endpoints.get_mut(slug) {
            p.reserved = p.reserved.saturating_sub(1);
            // As `done` does: no empty entry left for every pass to visit.
            if p.by_id.is_empty() && p.in_flight == 0 && p.reserved == 0 {
                st.endpoints.remove(slug);
            }
        }
    }

    /// A new event's entry, in the place [`Queue::admit`] took, pushed
    /// before its sync so that the worker keeps arrival order. Nothing
    /// sends it before the sender settles it with the returned mark.
    pub fn push_unsynced(&self, slug: &str, id: &str, due: u64) -> Unsettled<'_> {
        {
            let mut st = self.lock();
            st.unsynced.insert(id.to_string(), Mark::Syncing);
            if let Some(p) = st.endpoints.get_mut(slug) {
                p.reserved = p.reserved.saturating_sub(1);
            }
        }
        self.push(slug, id, due);
        Unsettled {
            queue: self,
            id: Some(id.to_string()),
        }
    }

    fn set_mark(&self, id: &str, mark: Option<Mark>) {
        {
            let mut st = self.lock();
            match mark {
                None => st.unsynced.remove(id),
                // Only over a mark still there: an entry that left the
                // queue meanwhile took its mark along (`done`).
                Some(m) => st.unsynced.get_mut(id).map(|old| std::mem::replace(old, m)),
            };
        }
        self.verdicts.notify_waiters();
    }

    /// Waits until `id` may be sent as far as its sender goes (see
    /// [`Settled`]); at most [`SETTLE_WAIT`].
    pub async fn settled(&self, id: &str) -> Settled {
        let mark = || match self.lock().unsynced.get(id) {
            None => Some(Settled::Yes),
            Some(Mark::Abandoned) => Some(Settled::Left),
            Some(Mark::Syncing) => None,
        };
        // Most deliveries meet no mark: answered without registering.
        if let Some(found) = mark() {
            return found;
        }
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let verdict = self.verdicts.notified();
            tokio::pin!(verdict);
            // Registered before looking: a verdict in between still wakes.
            verdict.as_mut().enable();
            if let Some(found) = mark() {
                return found;
            }
            if tokio::time::timeout_at(deadline, verdict).await.is_err() {
                return Settled::Undecided;
            }
        }
    }

    /// The store is synced past `id`'s write (see [`Queue::settled`]).
    pub fn synced(&self, id: &str) {
        self.set_mark(id, None);
    }

    /// Takes an entry out for good if no attempt holds it (a withdrawn
    /// event); one in flight finds its event gone and leaves by itself.
    pub fn forget(&self, slug: &str, id: &str) {
        if let Claimed::Yes(c) = self.claim(slug, id) {
            c.finish(true);
        }
    }

    /// Wakes the worker (an endpoint changed status).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Pending events of one endpoint (in flight included).
    pub fn depth(&self, slug: &str) -> usize {
        self.lock().endpoints.get(slug).map_or(0, |p| p.by_id.len())
    }

    /// One endpoint's queue at a glance, without copying it: depth, the
    /// oldest pending id, and the soonest due time among entries waiting.
    pub fn summary(&self, slug: &str) -> (usize, Option<String>, Option<u64>) {
        let st = self.lock();
        match st.endpoints.get(slug) {
            Some(p) => (
                p.by_id.len(),
                p.by_id.keys().next().map(|id| id.as_str().to_string()),
                p.ready.first().map(|(due, _)| *due),
            ),
            None => (0, None, None),
        }
    }

    /// When `id` of `slug` is next due (ms since the epoch), while it is
    /// in the queue (a due time past is an attempt about to go or going).
    pub fn due_of(&self, slug: &str, id: &str) -> Option<u64> {
        self.lock()
            .endpoints
            .get(slug)?
            .by_id
            .get(&Id::new(id))
            .copied()
    }

    /// Entries of one endpoint, oldest first: `(id, due)`.
    pub fn entries(&self, slug: &str) -> Vec<(String, u64)> {
        self.lock()
            .endpoints
            .get(slug)
            .map(|p| {
                p.by_id
                    .iter()
                    .map(|(id, due)| (id.as_str().to_string(), *due))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Total depth and the oldest pending event id, for `/metrics`.
    pub fn stats(&self) -> (usize, Option<String>) {
        let st = self.lock();
        let depth = st.endpoints.values().map(|p| p.by_id.len()).sum();
        let oldest = st
            .endpoints
            .values()
            .filter_map(|p| p.by_id.keys().next())
            .min()
            .map(|id| id.as_str().to_string());
        (depth, oldest)
    }

    /// Picks due entries within the limits and marks them in flight. Costs
    /// the number of endpoints plus the entries taken, whatever the backlog.
    /// Each comes with whether it was drained (`Limits::drain`).
    fn take_due(
        &self,
        now: u64,
        limits: impl Fn(&str) -> Limits,
    ) -> Vec<(String, String, u64, bool)> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut out = Vec::new();
        // A different endpoint first each pass: in a fixed order the first
        // ones would take every slot that frees up, and the others wait for
        // their whole backlog.
        let mut order: Vec<String> = st.endpoints.keys().cloned().collect();
        if !order.is_empty() {
            let first = st.rotation % order.len();
            order.rotate_left(first);
        }
        st.rotation = st.rotation.wrapping_add(1);
        for slug in order {
            if st.in_flight >= GLOBAL_IN_FLIGHT {
                break;
            }
            let Some(p) = st.endpoints.get_mut(&slug) else {
                continue;
            };
            let lim = limits(&slug);
            p.held = lim.hold;
            if lim.hold {
                continue;
            }
            let cap = if lim.ordered {
                1
            } else if lim.drain {
                lim.max_in_flight.max(1)
            } else {
                lim.max_in_flight.clamp(1, ENDPOINT_SHARE)
            };
            p.cap = cap;
            p.ordered = lim.ordered;
            let mut room = cap
                .saturating_sub(p.in_flight)
                .min(GLOBAL_IN_FLIGHT - st.in_flight);
            if room == 0 {
                continue;
            }
            let mut taken = Vec::new();
            if lim.ordered {
                // Nothing overtakes the oldest pending event, even while it
                // waits for a retry.
                if let Some((id, due)) = p.by_id.first_key_value()
                    && *due <= now
                    && p.ready.contains(&(*due, *id))
                {
                    taken.push((*due, *id));
                }
            } else {
                for (due, id) in p.ready.iter() {
                    if (*due > now && !lim.drain) || room == 0 {
                        break;
                    }
                    taken.push((*due, *id));
                    room -= 1;
                }
            }
            for (due, id) in taken {
                p.ready.remove(&(due, id));
                p.in_flight += 1;
                st.in_flight += 1;
                out.push((slug.clone(), id.as_str().to_string(), due, lim.drain));
            }
        }
        out
    }

    /// Takes a waiting entry out of the worker's reach for an attempt made
    /// elsewhere (a replay), as `take_due` would.
    pub fn claim(&self, slug: &str, id: &str) -> Claimed<'_> {
        let mut guard = self.lock();
        let st = &mut *guard;
        let Some(p) = st.endpoints.get_mut(slug) else {
            return Claimed::NotQueued;
        };
        let Some(due) = p.by_id.get(&Id::new(id)).copied() else {
            return Claimed::NotQueued;
        };
        if !p.ready.remove(&(due, Id::new(id))) {
            return Claimed::InFlight;
        }
        p.in_flight += 1;
        st.in_flight += 1;
        Claimed::Yes(Claim {
            queue: self,
            slug: slug.to_string(),
            id: id.to_string(),
            due,
            left: false,
        })
    }

    /// [`Queue::claim`], first waiting (up to `wait`) for an attempt of the
    /// event that is under way to end: two attempts of one event at once
    /// would each settle it without knowing of the other (a replay's
    /// success undone by the worker's failure, or a delivered event sent
    /// again). `None` when the event is not (or no longer) queued.
    pub async fn claim_when_idle(
        &self,
        slug: &str,
        id: &str,
        wait: Duration,
    ) -> Result<Option<Claim<'_>>, Duration> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            // Registered before looking, so an end between the look and the
            // wait is not missed.
            ended.as_mut().enable();
            match self.claim(slug, id) {
                Claimed::Yes(c) => return Ok(Some(c)),
                Claimed::NotQueued => return Ok(None),
                Claimed::InFlight => {
                    if tokio::time::timeout_at(deadline, ended).await.is_err() {
                        return Err(wait);
                    }
                }
            }
        }
    }

    /// An attempt finished: the entry moves to `next_due` or leaves.
    fn done(&self, slug: &str, id: &str, next_due: Option<u64>) {
        {
            let mut st = self.lock();
            st.in_flight = st.in_flight.saturating_sub(1);
            let mut left: isize = 0;
            let empty = match st.endpoints.get_mut(slug) {
                Some(p) => {
                    p.in_flight = p.in_flight.saturating_sub(1);
                    let key = Id::new(id);
                    let before = p.by_id.len();
                    let next_due = match (p.again.remove(&key), next_due) {
                        (Some(again), Some(next)) => Some(again.min(next)),
                        (again, next) => again.or(next),
                    };
                    match next_due {
                        Some(due) => {
                            p.by_id.insert(key, due);
                            p.ready.insert((due, key));
                        }
                        None => {
                            p.by_id.remove(&key);
                        }
                    }
                    // An entry in flight stays in `by_id`: a move is no change.
                    left = before as isize - p.by_id.len() as isize;
                    p.by_id.is_empty() && p.in_flight == 0 && p.reserved == 0
                }
                None => false,
            };
            st.pending = st.pending.saturating_add_signed(-left);
            if empty {
                st.endpoints.remove(slug);
            }
            // Left the queue: a mark its sender never cleared (it hung up
            // during the sync) goes with it.
            if !st
                .endpoints
                .get(slug)
                .is_some_and(|p| p.by_id.contains_key(&Id::new(id)))
            {
                st.unsynced.remove(id);
            }
        }
        self.wake.notify_one();
        self.ended.notify_waiters();
    }

    /// The soonest due time among entries the limits would let the worker
    /// take. Entries held back by a limit do not count: the attempt that
    /// frees the slot wakes the worker (see `done`), which would otherwise
    /// poll every millisecond until then.
    fn next_due(&self) -> Option<u64> {
        let st = self.lock();
        if st.in_flight >= GLOBAL_IN_FLIGHT {
            return None;
        }
        st.endpoints
            .values()
            .filter(|p| !p.held && (p.cap == 0 || p.in_flight < p.cap))
            .filter_map(|p| {
                if p.ordered {
                    // Only the oldest may go, and only once it waits again.
                    let (id, due) = p.by_id.first_key_value()?;
                    p.ready.contains(&(*due, *id)).then_some(*due)
                } else {
                    p.ready.first().map(|(due, _)| *due)
                }
            })
            .min()
    }
}

/// A queue entry claimed for an attempt outside the worker (see
/// [`Queue::claim`]). It returns to the queue at its due time when dropped,
/// unless [`Claim::finish`] says the event left the queue.
pub struct Claim<'a> {
    queue: &'a Queue,
    slug: String,
    id: String,
    due: u64,
    left: bool,
}

impl Claim<'_> {
    /// The entry's due time, which names its stored key.
    pub fn due(&self) -> u64 {
        self.due
    }

    /// The attempt is recorded; `left`: its batch removed the stored entry.
    pub fn finish(mut self, left: bool) {
        self.left = left;
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.queue
            .done(&self.slug, &self.id, (!self.left).then_some(self.due));
    }
}

/// Delivers due events until `stop`, then waits (bounded) for those in flight.
/// It only schedules: each delivery runs on an ingest thread (round robin,
/// `Relay::shards`) with that thread's connection pool, or here when there
/// are none (a relay without a server).
pub async fn run_worker(relay: Arc<Relay>, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    let mut next_shard = 0;
    loop {
        let now = now_ms();
        let due = relay
            .queue
            .take_due(now, |slug| match relay.endpoint(slug) {
                Some(cell) => {
                    let ep = cell.lock();
                    // A paused or disabled endpoint's entries, retrying ones
                    // included, are taken at once so that they become held
                    // instead of waiting; so are those of one left without
                    // a target.
                    let drain = ep.status != Status::Active || ep.target.is_none();
                    Limits {
                        ordered: ep.ordered && !drain,
                        max_in_flight: if drain {
                            GLOBAL_IN_FLIGHT
                        } else {
                            ep.max_in_flight as usize
                        },
                        drain,
                        hold: ep.ordered && !drain && cell.releasing(),
                    }
                }
                None => Limits {
                    ordered: false,
                    max_in_flight: GLOBAL_IN_FLIGHT,
                    drain: true,
                    hold: false,
                },
            });
        for (slug, id, due, drained) in due {
            let shard = relay.shards.get().filter(|h| !h.is_empty()).map(|h| {
                next_shard = (next_shard + 1) % h.len();
                h[next_shard].clone()
            });
            let relay = Arc::clone(&relay);
            let delivery = async move {
                let next = match relay.deliver_queued(&slug, &id, due, drained).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(endpoint = slug, id, error = %e, "queued delivery failed; will try again");
                        // The stored key still says `due`: keep it, and stay
                        // in flight for a while instead of a hot retry loop.
                        tokio::time::sleep(Duration::from_millis(STORE_ERROR_BACKOFF_MS)).await;
                        Some(due)
                    }
                };
                relay.queue.done(&slug, &id, next);
            };
            // On an ingest thread when there are some: one thread per
            // delivery, with that thread's connection pool.
            match shard {
                Some(handle) => tasks.spawn_on(delivery, &handle),
                None => tasks.spawn(delivery),
            };
        }
        while tasks.try_join_next().is_some() {}
        let wait = relay
            .queue
            .next_due()
            .map(|d| Duration::from_millis(d.saturating_sub(now_ms())))
            .unwrap_or(MAX_IDLE)
            .min(MAX_IDLE);
        tokio::select! {
            _ = relay.queue.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    if tokio::time::timeout(DRAIN, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            "queued deliveries still in flight at shutdown will be repeated after restart"
        );
    }
}

/// The delay before retry number `index` (0-based) of `schedule`, with
/// ±10% jitter so that a burst of failures does not retry in lockstep, or
/// the receiver's `Retry-After` when that is later. `None` when the
/// schedule is spent.
pub fn retry_delay(
    schedule: &[String],
    index: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    // Capped again here: a schedule stored before the cap existed must not
    // overflow the jittered `Duration` (a panic in the worker).
    let base = humantime::parse_duration(schedule.get(index)?)
        .ok()?
        .min(crate::endpoint::MAX_RETRY_DELAY);
    let jitter = 0.9 + 0.2 * fastrand::f64();
    let scheduled = base.mul_f64(jitter);
    // Never sooner than the receiver asked, nor than the schedule says: a
    // receiver answering `Retry-After: 1` would otherwise run an event
    // through its whole schedule in seconds and have it end `failed`.
    match retry_after {
        Some(ra) => Some(ra.min(Duration::from_secs(24 * 3600)).max(scheduled)),
        None => Some(scheduled),
    }
}

/// `Retry-After` as seconds (digits only, as RFC 9110 has them; too many
/// to count is as long as can be) or an HTTP date.
pub fn parse_retry_after(value: &[u8], now: std::time::SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(ordered: bool, n: usize) -> impl Fn(&str) -> Limits {
        move |_| Limits {
            ordered,
            max_in_flight: n,
            drain: false,
            hold: false,
        }
    }

    /// A busy endpoint with a deep backlog leaves slots to the others, and
    /// each endpoint gets its turn to be first.
    #[test]
    fn a_deep_backlog_does_not_starve_other_endpoints() {
        let mut entries: Vec<(u64, String, String)> = (0..200)
            .map(|i| (10, format!("01H{i:05}"), "hog".to_string()))
            .collect();
        for v in ["a", "b", "c"] {
            entries.push((10, format!("01V{v}"), v.to_string()));
        }
        let q = Queue::load(entries);
        let taken = q.take_due(50, lim(false, 256));
        let hog = taken.iter().filter(|(s, ..)| s == "hog").count();
        assert_eq!(hog, ENDPOINT_SHARE, "the hog takes its share, no more");
        assert_eq!(
            taken.len(),
            ENDPOINT_SHARE + 3,
            "every other endpoint got a slot"
        );
    }

    /// Entries the limits hold back do not make the worker poll.
    #[test]
    fn entries_held_back_by_a_limit_are_not_due() {
        let q = Queue::load(vec![
            (10, "01A".into(), "a".into()),
            (10, "01B".into(), "a".into()),
        ]);
        assert_eq!(q.take_due(50, lim(false, 1)).len(), 1);
        assert_eq!(
            q.next_due(),
            None,
            "at its limit: the attempt's end wakes the worker"
        );
        q.done("a", "01A", Some(5_000));
        assert_eq!(q.next_due(), Some(10), "room again");
        assert_eq!(
            q.take_due(50, lim(true, 1)).len(),
            0,
            "ordered: 01A waits first"
        );
        assert_eq!(
            q.next_due(),
            Some(5_000),
            "ordered: only the oldest's time counts"
        );
    }

    #[test]
    fn takes_due_entries_within_limits() {
        let q = Queue::load(vec![
            (10, "01A".into(), "a".into()),
            (20, "01B".into(), "a".into()),
            (99, "01C".into(), "a".into()),
        ]);
        let got = q.take_due(50, lim(false, 1));
        assert_eq!(got, vec![("a".to_string(), "01A".to_string(), 10, false)]);
        assert!(q.take_due(50, lim(false, 1)).is_empty(), "one in flight");
        q.done("a", "01A", None);
        assert_eq!(q.take_due(50, lim(false, 5)).len(), 1, "01B due, 01C not");
        assert_eq!(q.depth("a"), 2);
        let drain = |_: &str| Limits {
            ordered: false,
            max_in_flight: 5,
            drain: true,
            hold: false,
        };
        assert_eq!(
            q.take_due(50, drain),
            vec![("a".to_string(), "01C".to_string(), 99, true)],
            "a paused endpoint's entries are taken before they are due"
        );
    }

    #[test]
    fn ordered_endpoints_wait_for_the_oldest() {
        let q = Queue::load(vec![
            (100, "01A".into(), "a".into()),
            (10, "01B".into(), "a".into()),
        ]);
        // 01A (older) is retrying until 100: 01B must not overtake it.
        assert!(q.take_due(50, lim(true, 4)).is_empty());
        assert_eq!(q.take_due(100, lim(true, 4)).len(), 1);
        assert!(q.take_due(100, lim(true, 4)).is_empty(), "one at a time");
    }

    #[test]
    fn pending_events_are_counted_and_bounded_across_endpoints() {
        let q = Queue::load(vec![(10, "01A".into(), "a".into())]);
        q.push("b", "01B", 10);
        q.push("b", "01B", 20);
        assert_eq!(q.lock().pending, 2, "a push again is no new entry");
        let taken = q.take_due(10, lim(false, 4));
        assert_eq!(taken.len(), 1);
        q.done("a", "01A", None);
        assert_eq!(q.lock().pending, 1);
        // A claim that ends with the entry back in the queue, and one that
        // takes it out.
        let Claimed::Yes(c) = q.claim("b", "01B") else {
            panic!("not claimed")
        };
        c.finish(false);
        assert_eq!(q.lock().pending, 1);
        q.forget("b", "01B");
        assert_eq!(q.lock().pending, 0);
        q.push("b", "01B", 10);
        q.lock().pending = TOTAL_MAX;
        assert_eq!(q.admit("c", 10), Err(Full::All));
        assert_eq!(q.admit("b", 1), Err(Full::Endpoint), "its own limit first");
        q.lock().pending = TOTAL_MAX - 1;
        assert_eq!(q.admit("c", 10), Ok(()));
    }

    /// A place taken and given back (the event was not stored) leaves no
    /// empty entry behind for every pass of the worker to visit.
    #[test]
    fn a_place_given_back_leaves_nothing_behind() {
        let q = Queue::default();
        assert!(q.admit("a", 5).is_ok());
        q.unreserve("a");
        assert_eq!(q.admit("b", 0), Err(Full::Endpoint));
        assert!(q.lock().endpoints.is_empty());
    }

    /// While a release puts an ordered endpoint's held events back, the
    /// worker takes nothing there, and does not poll for it either.
    #[test]
    fn a_held_back_endpoint_gives_nothing_and_is_not_due() {
        let q = Queue::load(vec![(10, "01N".into(), "a".into())]);
        let hold = |_: &str| Limits {
            ordered: true,
            max_in_flight: 1,
            drain: false,
            hold: true,
        };
        assert!(q.take_due(50, hold).is_empty());
        assert_eq!(q.next_due(), None);
        q.push("a", "01H", 50);
        assert_eq!(
            q.take_due(50, lim(true, 1)),
            vec![("a".to_string(), "01H".to_string(), 50, false)],
            "released, the oldest goes first"
        );
    }

    #[test]
    fn an_entry_pushed_again_while_in_flight_survives_its_attempt() {
        let q = Queue::load(vec![(10, "01A".into(), "a".into())]);
        assert_eq!(q.take_due(50, lim(false, 5)).len(), 1);
        // The attempt held it and left the queue; a release pushed it back
        // before the worker reported.
        q.push("a", "01A", 60);
        q.done("a", "01A", None);
        assert_eq!(q.depth("a"), 1);
        assert_eq!(
            q.take_due(60, lim(true, 1)),
            vec![("a".to_string(), "01A".to_string(), 60, false)]
        );
    }

    impl<'a> Claimed<'a> {
        fn taken(self) -> Claim<'a> {
            match self {
                Claimed::Yes(c) => c,
                Claimed::InFlight => panic!("in flight"),
                Claimed::NotQueued => panic!("not queued"),
            }
        }
    }

    #[test]
    fn a_claimed_entry_is_out_of_the_workers_reach_until_finished() {
        let q = Queue::load(vec![(10, "01A".into(), "a".into())]);
        let c = q.claim("a", "01A").taken();
        assert_eq!(c.due(), 10);
        assert!(q.take_due(50, lim(false, 5)).is_empty(), "claimed");
        assert!(
            matches!(q.claim("a", "01A"), Claimed::InFlight),
            "claimed once"
        );
        drop(c);
        assert_eq!(q.take_due(50, lim(false, 5)).len(), 1, "back when dropped");
        assert!(
            matches!(q.claim("a", "01A"), Claimed::InFlight),
            "the worker's"
        );
        q.done("a", "01A", Some(10));
        q.claim("a", "01A").taken().finish(true);
        assert_eq!(q.depth("a"), 0, "a finished claim that left removes it");
        assert!(matches!(q.claim("b", "01B"), Claimed::NotQueued));
    }

    /// A replay of an event whose attempt is under way waits for it to end,
    /// then finds the entry where that attempt left it.
    #[tokio::test]
    async fn a_claim_waits_for_the_attempt_under_way() {
        let q = std::sync::Arc::new(Queue::load(vec![(10, "01A".into(), "a".into())]));
        assert_eq!(q.take_due(50, lim(false, 5)).len(), 1);
        let short = q
            .claim_when_idle("a", "01A", Duration::from_millis(20))
            .await;
        assert!(short.is_err(), "still in flight");
        let waiter = {
            let q = std::sync::Arc::clone(&q);
            tokio::spawn(async move {
                q.claim_when_idle("a", "01A", Duration::from_secs(10))
                    .await
                    .map(|c| c.map(|c| c.due()))
            })
        };
        tokio::task::yield_now().await;
        q.done("a", "01A", Some(70));
        assert_eq!(waiter.await.unwrap(), Ok(Some(70)), "the retry's entry");
        q.take_due(100, lim(false, 5));
        let q2 = std::sync::Arc::clone(&q);
        let waiter = tokio::spawn(async move {
            q2.claim_when_idle("a", "01A", Duration::from_secs(10))
                .await
                .map(|c| c.is_some())
        });
        tokio::task::yield_now().await;
        q.done("a", "01A", None);
        assert_eq!(
            waiter.await.unwrap(),
            Ok(false),
            "delivered: left the queue"
        );
    }

    #[test]
    fn retry_delays_follow_the_schedule_with_jitter() {
        let s: Vec<String> = ["5s", "5m"].iter().map(|s| s.to_string()).collect();
        let d = retry_delay(&s, 0, None).unwrap();
        assert!(
            d >= Duration::from_millis(4500) && d <= Duration::from_millis(5500),
            "{d:?}"
        );
        assert!(retry_delay(&s, 2, None).is_none());
        let huge = vec!["18400000000000000000s".to_string()];
        let d = retry_delay(&huge, 0, None).unwrap();
        assert!(d <= crate::endpoint::MAX_RETRY_DELAY.mul_f64(1.1), "{d:?}");
        let later = retry_delay(&s, 0, Some(Duration::from_secs(7))).unwrap();
        assert_eq!(later, Duration::from_secs(7), "a later Retry-After wins");
        let sooner = retry_delay(&s, 1, Some(Duration::from_secs(1))).unwrap();
        assert!(
            sooner >= Duration::from_secs(270),
            "a sooner one does not skip the schedule: {sooner:?}"
        );
        assert_eq!(
            parse_retry_after(b"120", std::time::SystemTime::now()),
            Some(Duration::from_secs(120))
        );
        assert!(parse_retry_after(b"soon", std::time::SystemTime::now()).is_none());
        // Hunt #24: past u64 the value was dropped, not capped at 24 h.
        let huge = parse_retry_after(b"18446744073709551616", std::time::SystemTime::now());
        assert_eq!(huge, Some(Duration::from_secs(u64::MAX)));
        let capped = retry_delay(&s, 1, huge).unwrap();
        assert_eq!(capped, Duration::from_secs(24 * 3600));
        for bad in [&b"+30"[..], b"-5", b"1.5", b""] {
            assert!(
                parse_retry_after(bad, std::time::SystemTime::now()).is_none(),
                "{bad:?}"
            );
        }
    }
}
