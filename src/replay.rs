//! Bulk replay jobs, and the selection of events by a filter that they,
//! dry runs and exports share (with its read budget). A job re-sends every
//! event matching a filter, oldest first, at an optional rate, to the
//! endpoint's target or another URL, optionally re-signed. It snapshots the
//! matching ids when it is created, keeps its progress in the store,
//! survives a restart (resuming where it stopped; at most the replay in
//! flight is repeated) and can be cancelled. Sending to an endpoint's own
//! target, it waits while that endpoint is paused or disabled, as the
//! endpoint's own deliveries do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::endpoint::Status;
use crate::error::{Error, Result};
use crate::relay::Relay;
use crate::store::{EventFilter, Store};
use crate::time::now_ms;

/// The most events one job may replay; a wider filter must be narrowed.
pub const MAX_JOB_EVENTS: usize = 100_000;
/// Ids shown by a dry run.
const DRY_RUN_SHOWN: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Done,
    Cancelled,
}

impl JobStatus {
    /// Done or cancelled: nothing left to send.
    pub fn finished(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Cancelled)
    }
}

/// A job's record as stored and returned (its id list is kept apart).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub created_at: u64,
    pub filter: HashMap<String, String>,
    pub target: Option<String>,
    pub resign: bool,
    /// Events per second; none means as fast as one at a time allows.
    pub rate: Option<f64>,
    pub status: JobStatus,
    pub total: usize,
    /// How many ids have been handled (the position in the id list).
    pub sent: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub finished_at: Option<u64>,
    /// Why the latest event that could not be replayed at all (no target,
    /// a deleted endpoint, a refused path) was not: a failed count alone
    /// says nothing.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Why it sends nothing now: the endpoint of its next event is paused
    /// or disabled (and the job sends to that endpoint's target).
    #[serde(default)]
    pub waiting: Option<String>,
    /// Of `succeeded`: events the URL had accepted after the job was made
    /// (a release, the queue, a replay by hand), not sent again.
    #[serde(default)]
    pub already_delivered: usize,
    /// When the latest event's turn came (ms since the epoch): a job
    /// resumed after a restart waits out the rest of its interval.
    #[serde(default)]
    pub last_turn_at: Option<u64>,
}

impl Job {
    pub fn to_api(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert(
                "created_at".into(),
                crate::time::rfc3339_ms(self.created_at).into(),
            );
            o.insert(
                "finished_at".into(),
                self.finished_at.map(crate::time::rfc3339_ms).into(),
            );
            o.insert("queued".into(), self.queued().into());
            o.insert("skipped".into(), self.skipped().into());
            // Bookkeeping for the rate across restarts, not progress.
            o.remove("last_turn_at");
        }
        v
    }

    /// Events it has yet to send: none once it is finished.
    pub fn queued(&self) -> usize {
        match self.status.finished() {
            true => 0,
            false => self.total.saturating_sub(self.sent),
        }
    }

    /// Events a cancel left unsent.
    pub fn skipped(&self) -> usize {
        match self.status {
            JobStatus::Cancelled => self.total.saturating_sub(self.sent),
            _ => 0,
        }
    }
}

struct Running {
    job: Mutex<Job>,
    /// Taken for each save of `job`: see [`Running::save`].
    saving: tokio::sync::Mutex<()>,
    cancel: tokio_util::sync::CancellationToken,
    /// Cancelled when the runner has stopped and saved its last count.
    ended: tokio_util::sync::CancellationToken,
}

impl Running {
    fn new(job: Job) -> Arc<Running> {
        Arc::new(Running {
            job: Mutex::new(job),
            saving: Default::default(),
            cancel: Default::default(),
            ended: Default::default(),
        })
    }

    /// Saves the job as it is when its turn to be saved comes, and waits
    /// until that would survive a crash when `durably`. One save at a time
    /// per job, each reading the record inside its turn: a runner's
    /// progress snapshot taken before a cancel can no longer land after
    /// the cancel's (a restart would have resumed the cancelled job).
    async fn save(&self, relay: &Arc<Relay>, durably: bool) -> Result<Job> {
        let job = {
            let _turn = self.saving.lock().await;
            let job = self.job.lock().unwrap_or_else(|p| p.into_inner()).clone();
            save(relay, &job).await?;
            job
        };
        if durably {
            relay.store.durable().await?;
        }
        Ok(job)
    }

    /// [`Running::save`] for progress, which is advisory: a failure is logged.
    async fn persist(&self, relay: &Arc<Relay>) {
        if let Err(e) = self.save(relay, false).await {
            tracing::warn!(job = %self.id(), error = %e, "replay job progress not saved");
        }
    }

    fn id(&self) -> String {
        self.job
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .id
            .clone()
    }
}

/// The jobs of this process.
#[derive(Default)]
pub struct Jobs {
    map: Mutex<HashMap<String, Arc<Running>>>,
    /// Shutdown: runners stop where they are, leaving their jobs `running`
    /// in the store so the next process resumes them.
    stop: tokio_util::sync::CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Stored events a selection (a job's, a dry run's, an export's) reads
/// through at most: a filter the indexes cannot narrow (topic, q, method,
/// status, signature, duplicate, mirror_diff) reads every event's record,
/// some seconds per million, and a job being made holds retention back
/// meanwhile.
pub const SELECT_SCAN_MAX: usize = 1_000_000;

/// The events a filter selects.
#[derive(Debug, Default)]
pub struct Selection {
    /// Their ids, oldest first.
    pub ids: Vec<String>,
    /// More than the cap matched: `ids` holds the newest of them.
    pub more: bool,
    /// The read stopped at [`SELECT_SCAN_MAX`] before the oldest event:
    /// the cursor it would go on from (nothing older was read).
    pub unread_from: Option<String>,
}

impl Selection {
    /// Why a job cannot take this selection whole, if it cannot.
    pub fn refusal(&self) -> Option<Error> {
        if self.more {
            return Some(Error::Unprocessable(format!(
                "more than {MAX_JOB_EVENTS} events match; narrow the filter (endpoint, state, since/until)"
            )));
        }
        self.unread_from.as_ref().map(|_| {
            Error::Unprocessable(format!(
                "the filter was checked against {SELECT_SCAN_MAX} stored events without reaching the oldest (filters other than endpoint and state are checked on each event): narrow it, with since/until for one"
            ))
        })
    }
}

/// Ids matching `filter` from its cursor on, oldest first: the newest
/// `take` of them when given (a filter's `limit`), else all up to `cap`;
/// reading at most [`SELECT_SCAN_MAX`] events.
pub fn matching_ids(
    store: &Store,
    filter: &EventFilter,
    cap: usize,
    take: Option<usize>,
) -> Result<Selection> {
    select(store, filter, cap, take, SELECT_SCAN_MAX)
}

/// [`matching_ids`] reading at most `budget` events.
fn select(
    store: &Store,
    filter: &EventFilter,
    cap: usize,
    take: Option<usize>,
    budget: usize,
) -> Result<Selection> {
    let mut f = filter.clone();
    f.limit = 1000;
    // The filter's cursor stays: a selection may start after a page seen.
    let take = take.unwrap_or(usize::MAX);
    let mut sel = Selection::default();
    let mut scanned = 0;
    loop {
        // Never 0 (a page asked to read nothing would give no cursor): the
        // loop ends once `scanned` reaches `budget` with more to read.
        let page = store.query_reading(&f, budget - scanned)?;
        sel.ids.extend(page.events.into_iter().map(|e| e.id));
        scanned += page.scanned;
        if sel.ids.len() >= take && take <= cap {
            sel.ids.truncate(take);
            break;
        }
        if sel.ids.len() > cap {
            sel.ids.truncate(cap);
            sel.more = true;
            break;
        }
        match page.next_cursor {
            Some(c) if scanned >= budget => {
                sel.unread_from = Some(c);
                break;
            }
            Some(c) => f.cursor = Some(c),
            None => break,
        }
    }
    sel.ids.reverse();
    Ok(sel)
}

impl Jobs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Running>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Result<Job> {
        let map = self.lock();
        let r = map
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("no replay job {id}")))?;
        Ok(r.job.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    pub fn list(&self) -> Vec<Job> {
        let mut v: Vec<Job> = self
            .lock()
            .values()
            .map(|r| r.job.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect();
        v.sort_by(|a, b| b.id.cmp(&a.id));
        v
    }

    /// Stops every runner (bounded wait) so the store can close.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }

    /// Marks a job cancelled; its runner stops before its next event and
    /// sets `finished_at` once the replay it may have in flight is counted.
    fn cancel(&self, id: &str) -> Result<Arc<Running>> {
        let r = self
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("no replay job {id}")))?;
        r.cancel.cancel();
        let mut job = r.job.lock().unwrap_or_else(|p| p.into_inner());
        if !job.status.finished() {
            job.status = JobStatus::Cancelled;
            job.waiting = None;
        }
        drop(job);
        Ok(r)
    }
}

/// How long a cancel waits for a replay in flight to be counted, so that
/// its answer is the job's final count in all but the slowest cases.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

/// Cancels a job and saves that durably at once, so a restart does not
/// resume it; answers once the runner has stopped (or after
/// [`CANCEL_WAIT`], with `finished_at` still empty while a replay is in
/// flight).
pub async fn cancel(relay: &Arc<Relay>, id: &str) -> Result<Job> {
    let running = relay.jobs.cancel(id)?;
    running.save(relay, true).await?;
    let _ = tokio::time::timeout(CANCEL_WAIT, running.ended.cancelled()).await;
    Ok(running
        .job
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone())
}

/// The shortest interval between a job's sends whose turn is saved durably
/// before each send (see `run`): about what a restart takes.
const TURN_SAVED_FROM: Duration = Duration::from_millis(250);

/// How far behind its schedule a job may be and still catch up: beyond it,
/// the schedule moves (see `run`). A burst it allows lasts at most this.
const RATE_SLACK: Duration = Duration::from_millis(5);

/// The slowest and fastest bulk replay rates, in events per second.
pub const MIN_RATE: f64 = 0.001;
pub const MAX_RATE: f64 = 10_000.0;

/// Refuses a job's `target`, `rate` or `resign` that it could not run with.
pub fn check_options(
    relay: &Relay,
    target: Option<&str>,
    rate: Option<f64>,
    resign: bool,
    filter: &EventFilter,
) -> Result<()> {
    if let Some(t) = target {
        relay.check_url("target", t)?;
    }
    // One endpoint asked for, re-signed: refused now, as a single replay
    // is, rather than every event failing in the job.
    if let Some(slug) = filter.endpoint.as_deref().filter(|_| resign)
        && relay.endpoint(slug).is_some()
    {
        relay.resign_config(slug)?;
    }
    if let Some(r) = rate
        && !(MIN_RATE..=MAX_RATE).contains(&r)
    {
        return Err(Error::BadRequest(format!(
            "rate: must be between {MIN_RATE} and {MAX_RATE} events per second"
        )));
    }
    Ok(())
}

/// Creates a job for `filter` and starts it.
pub async fn start(
    relay: &Arc<Relay>,
    filter_params: HashMap<String, String>,
    filter: EventFilter,
    take: Option<usize>,
    target: Option<String>,
    resign: bool,
    rate: Option<f64>,
) -> Result<Job> {
    check_options(relay, target.as_deref(), rate, resign, &filter)?;
    let f = filter.clone();
    let mut job = Job {
        id: Store::new_id(),
        created_at: now_ms(),
        filter: filter_params,
        target,
        resign,
        rate,
        status: JobStatus::Queued,
        total: 0,
        sent: 0,
        succeeded: 0,
        failed: 0,
        finished_at: None,
        last_error: None,
        waiting: None,
        already_delivered: 0,
        last_turn_at: None,
    };
    let (job, ids) = relay
        .store
        .run(move |s| {
            // Stored before a retention pass can read the jobs it keeps
            // events for: none of these is deleted before it is sent.
            let _kept = s.retention_pause();
            let sel = matching_ids(s, &f, MAX_JOB_EVENTS, take)?;
            if let Some(refused) = sel.refusal() {
                return Err(refused);
            }
            let ids = sel.ids;
            job.total = ids.len();
            let record = serde_json::to_value(&job).map_err(|e| Error::Internal(e.to_string()))?;
            s.put_job(&job.id, &record, Some(&ids))?;
            Ok((job, ids))
        })
        .await?;
    // The `202` promises a job that a crash does not lose.
    if let Err(e) = relay.store.durable().await {
        let id = job.id.clone();
        // A sync that timed out may still land: the removal must too, or a
        // restart would run the job the client was told failed.
        let _ = relay
            .store
            .run(move |s| s.forget_jobs(&[(id, false)]))
            .await;
        let _ = relay.store.durable().await;
        return Err(e);
    }
    spawn(relay, job.clone(), ids);
    Ok(job)
}

/// Dry run: how many events match and the first (oldest) ids.
pub async fn dry_run(
    relay: &Arc<Relay>,
    filter: EventFilter,
    take: Option<usize>,
) -> Result<serde_json::Value> {
    let sel = relay
        .store
        .run(move |s| matching_ids(s, &filter, MAX_JOB_EVENTS, take))
        .await?;
    Ok(serde_json::json!({
        "dry_run": true,
        "count": sel.ids.len(),
        "more_than_max": sel.more,
        // Only the newest events were read: `count` is a lower bound, and
        // a job with this filter is refused (`refusal`, the message).
        "scan_capped": sel.unread_from.is_some(),
        "refusal": sel.refusal().map(|e| e.public_message()),
        "first_ids": sel.ids.iter().take(DRY_RUN_SHOWN).collect::<Vec<_>>(),
        // With `cursor` set just above it, a job takes what was counted
        // and nothing that arrived after (the dashboard does so).
        "last_id": sel.ids.last(),
    }))
}

/// Resumes the jobs a previous process left queued or running, and
/// forgets finished ones beyond the newest [`KEEP_FINISHED`] (with their
/// id lists, up to 100,000 ids each, which only an unfinished job needs).
pub async fn resume(relay: &Arc<Relay>) -> Result<()> {
    let jobs = relay.store.run(stored_jobs).await?;
    // Stored in id order, and ids are ULIDs: the first finished ones are
    // the oldest.
    let mut gone = jobs
        .iter()
        .filter(|j| j.status.finished())
        .count()
        .saturating_sub(KEEP_FINISHED);
    let mut forget = Vec::new();
    let mut kept = Vec::new();
    for job in jobs {
        if job.status.finished() {
            forget.push((job.id.clone(), gone == 0));
            if gone > 0 {
                gone -= 1;
                continue;
            }
        }
        kept.push(job);
    }
    relay.store.run(move |s| s.forget_jobs(&forget)).await?;
    for job in kept {
        if !job.status.finished() {
            tracing::info!(job = %job.id, sent = job.sent, total = job.total, "resuming replay job");
            // Created before the guard's flags changed.
            if let Some(Err(why)) = job
                .target
                .as_deref()
                .map(|t| relay.client.guard().check_url("target", t))
            {
                tracing::warn!(job = %job.id, "{why}: each of its events fails; cancel the job or change the flags");
            }
            let jid = job.id.clone();
            let ids = relay.store.run(move |s| s.job_ids(&jid)).await?;
            spawn(relay, job, ids);
        } else {
            let mut job = job;
            // Cancelled just before a crash: the cancel is stored, the end
            // of the replay it waited for was not. That replay died with
            // the process; without an end a client would follow it forever.
            if job.finished_at.is_none() {
                job.finished_at = Some(now_ms());
                job.waiting = None;
                save(relay, &job).await?;
            }
            let r = Running::new(job.clone());
            r.cancel.cancel();
            r.ended.cancel();
            relay.jobs.lock().insert(job.id, r);
        }
    }
    Ok(())
}

/// The events that unfinished jobs have yet to send, as last stored (a
/// running job's stored position lags behind it, so this errs on keeping):
/// retention must not delete them from under the job.
pub fn pending_ids(store: &Store) -> Result<std::collections::HashSet<String>> {
    let mut pending = std::collections::HashSet::new();
    for job in stored_jobs(store)? {
        if !job.status.finished() {
            pending.extend(store.job_ids(&job.id)?.into_iter().skip(job.sent));
        }
    }
    Ok(pending)
}

/// The stored job records, oldest first; one that no longer reads as a
/// [`Job`] is skipped.
fn stored_jobs(store: &Store) -> Result<Vec<Job>> {
    Ok(store
        .jobs()?
        .into_iter()
        .filter_map(|record| serde_json::from_value::<Job>(record).ok())
        .collect())
}

/// Finished jobs kept in memory (for `GET /api/replay`); older ones stay in
/// the store until the next start, which forgets them.
const KEEP_FINISHED: usize = 100;

fn forget_old_finished(map: &mut HashMap<String, Arc<Running>>) {
    let mut finished: Vec<String> = map
        .iter()
        .filter(|(_, r)| {
            let job = r.job.lock().unwrap_or_else(|p| p.into_inner());
            job.status.finished()
        })
        .map(|(id, _)| id.clone())
        .collect();
    if finished.len() > KEEP_FINISHED {
        // Ids are ULIDs: the smallest are the oldest.
        finished.sort();
        for id in &finished[..finished.len() - KEEP_FINISHED] {
            map.remove(id);
        }
    }
}

fn spawn(relay: &Arc<Relay>, job: Job, ids: Vec<String>) {
    let running = Running::new(job.clone());
    {
        let mut map = relay.jobs.lock();
        map.insert(job.id.clone(), Arc::clone(&running));
        forget_old_finished(&mut map);
    }
    let r = Arc::clone(relay);
    let handle = tokio::spawn(async move {
        run(&r, &running, &ids).await;
        running.ended.cancel();
    });
    let mut tasks = relay.jobs.tasks.lock().unwrap_or_else(|p| p.into_inner());
    tasks.retain(|t| !t.is_finished());
    tasks.push(handle);
}

async fn run(relay: &Arc<Relay>, running: &Arc<Running>, ids: &[String]) {
    let (start_at, rate, target, resign, created_at, last_turn_at) = {
        let mut job = running.job.lock().unwrap_or_else(|p| p.into_inner());
        job.status = JobStatus::Running;
        (
            job.sent,
            job.rate,
            job.target.clone(),
            job.resign,
            job.created_at,
            job.last_turn_at,
        )
    };
    let interval = rate.map(|r| Duration::from_secs_f64(1.0 / r.clamp(MIN_RATE, MAX_RATE)));
    let mut next_at = tokio::time::Instant::now();
    if let (Some(interval), Some(last)) = (interval, last_turn_at) {
        // At most one interval: a clock set back must not stall the job.
        let since = Duration::from_millis(now_ms().saturating_sub(last));
        next_at += interval.saturating_sub(since);
    }
    'events: for (k, id) in ids.iter().enumerate().skip(start_at) {
        if running.cancel.is_cancelled() || relay.jobs.stop.is_cancelled() {
            break;
        }
        if let Some(interval) = interval {
            // A ceiling, not an average: after a slow replay the next one
            // goes when it ends and the rest keep their interval, instead of
            // catching up in a burst on a receiver that is slow already.
            // A little behind is not "after a slow replay": the timer's
            // millisecond and the send itself make every short interval
            // late: asked 1,000/s, a job ran at ~540/s without this slack.
            let now = tokio::time::Instant::now();
            next_at = next_at.max(now.checked_sub(RATE_SLACK).unwrap_or(now));
            if next_at > now {
                tokio::select! {
                    _ = tokio::time::sleep_until(next_at) => {}
                    _ = relay.jobs.stop.cancelled() => break,
                    _ = running.cancel.cancelled() => break,
                }
            }
            next_at += interval;
        }
        let mut turn_at = now_ms();
        // Looked at right before the send (not before the rate's pause,
        // which may last minutes).
        let _sending = loop {
            // Taken before the look, so a change right after it is not missed.
            let changed = relay.endpoint_changed.notified();
            let look = match look(relay, id, target.as_deref()).await {
                // Counted as under way before a release can start, or told
                // that one has: see `relay::JobSend`.
                Look::Send(Some(cell)) => match crate::relay::JobSend::start(&cell) {
                    Some(send) => Look::Sending(Some(send)),
                    None => Look::Wait(releasing(cell.lock().slug.as_str())),
                },
                Look::Send(None) => Look::Sending(None),
                other => other,
            };
            let why = match &look {
                Look::Wait(why) => Some(why.clone()),
                _ => None,
            };
            let changed_why = {
                let mut job = running.job.lock().unwrap_or_else(|p| p.into_inner());
                let changed = job.waiting != why;
                job.waiting = why.clone();
                changed
            };
            if changed_why {
                running.persist(relay).await;
            }
            if let Look::Sending(send) = look {
                break send;
            }
            tokio::select! {
                _ = changed => {}
                _ = running.cancel.cancelled() => break 'events,
                _ = relay.jobs.stop.cancelled() => break 'events,
            }
            // The turn is when the wait ends: the next event keeps its
            // interval after this one instead of following at once.
            if let Some(interval) = interval {
                turn_at = now_ms();
                next_at = tokio::time::Instant::now() + interval;
            }
        };
        if interval.is_some_and(|i| i >= TURN_SAVED_FROM) {
            // Stored before the send, not only with its outcome: a job
            // killed while this event is under way sends it again after the
            // restart, and waits out its interval first. Shorter intervals
            // end before a restart would: a synced save per event there
            // only capped the job (~400 events/s here, whatever it asked).
            running
                .job
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .last_turn_at = Some(turn_at);
            if let Err(e) = running.save(relay, true).await {
                tracing::warn!(job = %running.id(), error = %e, "replay job turn not saved");
            }
        }
        let (outcome, error) = replay_one(relay, id, target.clone(), resign, created_at).await;
        {
            let mut job = running.job.lock().unwrap_or_else(|p| p.into_inner());
            job.sent = k + 1;
            if error.is_some() {
                job.last_error = error;
            }
            match outcome {
                Outcome::Succeeded => job.succeeded += 1,
                Outcome::Failed => job.failed += 1,
                Outcome::AlreadyDelivered => {
                    job.succeeded += 1;
                    job.already_delivered += 1;
                }
            }
        }
        running.persist(relay).await;
    }
    {
        let mut job = running.job.lock().unwrap_or_else(|p| p.into_inner());
        let cancelled = running.cancel.is_cancelled();
        let interrupted = relay.jobs.stop.is_cancelled() && !cancelled;
        if !interrupted && (job.status == JobStatus::Running || cancelled) {
            job.status = match cancelled {
                true => JobStatus::Cancelled,
                false => JobStatus::Done,
            };
            job.finished_at = Some(now_ms());
            job.waiting = None;
        }
    }
    running.persist(relay).await;
    let snapshot = running
        .job
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    tracing::info!(job = %snapshot.id, status = ?snapshot.status, sent = snapshot.sent, "replay job ended");
}

/// How one event of a job went.
enum Outcome {
    Succeeded,
    Failed,
    /// The URL it would go to accepted it after the job was made (a
    /// release, the queue, a replay by hand, this job before a restart):
    /// counted as succeeded, not sent a second time.
    AlreadyDelivered,
}

/// One replay of a job, and what to say about it.
async fn replay_one(
    relay: &Arc<Relay>,
    id: &str,
    target: Option<String>,
    resign: bool,
    made_at: u64,
) -> (Outcome, Option<String>) {
    let ok = |success| match success {
        true => Outcome::Succeeded,
        false => Outcome::Failed,
    };
    match relay.replay_unless(id, target, resign, Some(made_at)).await {
        Ok(None) => (Outcome::AlreadyDelivered, None),
        // Sent without a fresh signature although asked for one (a
        // forgery, a body-only scheme): said where the job is read.
        Ok(Some((_, attempt, Some(note)))) if resign && !note.starts_with("re-signed") => {
            (ok(attempt.success), Some(format!("{id}: {note}")))
        }
        Ok(Some((_, attempt, _))) => (ok(attempt.success), None),
        Err(e) => {
            tracing::debug!(event = %id, error = %e, "replay in job failed");
            (
                Outcome::Failed,
                Some(format!("{id}: {}", e.public_message())),
            )
        }
    }
}

fn releasing(slug: &str) -> String {
    format!("a release of endpoint {slug:?} is running; the job goes on after it")
}

/// What a job does with its next event.
enum Look {
    /// To the endpoint's own target (its cell), or elsewhere (None).
    Send(Option<Arc<crate::relay::EndpointCell>>),
    /// Counted as a job send under way (see `relay::JobSend`).
    Sending(Option<crate::relay::JobSend>),
    /// The job sends to the endpoint's own target and it is paused or
    /// disabled, or a release of it is running: why.
    Wait(String),
}

/// See [`Look`]. An event or endpoint gone is the replay's to report.
async fn look(relay: &Arc<Relay>, id: &str, target: Option<&str>) -> Look {
    let owned = id.to_string();
    let Ok(Some(ev)) = relay.store.run(move |s| s.get_event(&owned)).await else {
        return Look::Send(None);
    };
    let Some(cell) = relay.endpoint(&ev.endpoint) else {
        return Look::Send(None);
    };
    {
        let ep = cell.lock();
        let own = ep.target.is_some() && (target.is_none() || ep.target.as_deref() == target);
        if !own {
            return Look::Send(None);
        }
        if ep.status != Status::Active {
            return Look::Wait(format!(
                "endpoint {:?} is {}; the job goes on when it is resumed",
                ep.slug.as_str(),
                ep.status.as_str()
            ));
        }
        if cell.releasing() {
            return Look::Wait(releasing(ep.slug.as_str()));
        }
    }
    Look::Send(Some(cell))
}

/// Left in the WAL buffer (see `Store::put_job`); [`Running::save`] orders
/// the saves of a running job.
async fn save(relay: &Arc<Relay>, job: &Job) -> Result<()> {
    let record = serde_json::to_value(job).map_err(|e| Error::Internal(e.to_string()))?;
    let id = job.id.clone();
    let ended = job.status.finished();
    relay
        .store
        .run(move |s| match ended {
            true => s.end_job(&id, &record),
            false => s.put_job(&id, &record, None),
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    /// Hunt #18: a filter the indexes cannot narrow read the whole store
    /// (16–21 s at 3M events) for a dry run or a job. The read stops at
    /// its budget and says where it would go on.
    #[test]
    fn a_selection_stops_at_its_read_budget_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let mut ids = Vec::new();
        for i in 0..300 {
            let method = if i % 100 == 0 { "PUT" } else { "POST" };
            let ev: crate::event::Event = serde_json::from_value(serde_json::json!({
                "id": Store::new_id(), "endpoint": "e", "received_at": 1, "method": method,
                "path": "", "query": null, "headers": [], "size": 0,
                "remote_addr": "127.0.0.1:1", "state": "captured",
            }))
            .unwrap();
            ids.push(store.insert_event(ev, b"").unwrap().id);
        }
        let puts = EventFilter {
            method: Some("PUT".into()),
            ..Default::default()
        };
        // The newest 150 read: one PUT found (the 200th), the rest unread.
        let sel = select(&store, &puts, MAX_JOB_EVENTS, None, 150).unwrap();
        assert_eq!(sel.ids, [ids[200].clone()]);
        assert_eq!(sel.unread_from.as_deref(), Some(ids[150].as_str()));
        assert!(
            sel.refusal()
                .unwrap()
                .public_message()
                .contains("narrow it")
        );
        // Going on from there finds the older ones.
        let rest = EventFilter {
            cursor: sel.unread_from.clone(),
            ..puts.clone()
        };
        let older = select(&store, &rest, MAX_JOB_EVENTS, None, 150).unwrap();
        assert_eq!(older.ids, [ids[0].clone(), ids[100].clone()]);
        assert_eq!(older.unread_from, None);
        // With room for all, all are read.
        let all = select(&store, &puts, MAX_JOB_EVENTS, None, 300).unwrap();
        assert_eq!(all.ids.len(), 3);
        assert!(all.unread_from.is_none() && all.refusal().is_none());
    }
}
