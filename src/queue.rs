//! Queue mode's delivery queue: the in-memory view of the `queue` column
//! family (which stays the source of truth across restarts), the limits on
//! what is in flight, and the worker that delivers due events in the
//! background with retries.
//!
//! An entry leaves the queue only in the same write batch that records its
//! attempt's outcome, so a crash repeats at most the attempts in flight.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::endpoint::Status;
use crate::relay::Relay;
use crate::time::now_ms;

/// Deliveries in flight at once across all endpoints.
pub const GLOBAL_IN_FLIGHT: usize = 64;
/// The longest the worker sleeps without looking at the queue.
const MAX_IDLE: Duration = Duration::from_secs(1);
/// How long shutdown waits for deliveries in flight.
const DRAIN: Duration = Duration::from_secs(10);
/// After a store error an entry is tried again this much later.
const STORE_ERROR_BACKOFF_MS: u64 = 5_000;

#[derive(Default)]
struct State {
    /// slug -> (event id -> due ms). Ids are ULIDs: the map's order is arrival order.
    pending: HashMap<String, BTreeMap<String, u64>>,
    in_flight: HashMap<String, usize>,
    in_flight_ids: HashSet<String>,
}

/// The limits the worker reads from an endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub ordered: bool,
    pub max_in_flight: usize,
}

#[derive(Default)]
pub struct Queue {
    state: Mutex<State>,
    wake: Notify,
}

impl Queue {
    /// Rebuilds the view from the stored entries `(due, id, slug)`.
    pub fn load(entries: Vec<(u64, String, String)>) -> Queue {
        let q = Queue::default();
        {
            let mut st = q.lock();
            for (due, id, slug) in entries {
                st.pending.entry(slug).or_default().insert(id, due);
            }
        }
        q
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a new entry (already stored) and wakes the worker.
    pub fn push(&self, slug: &str, id: &str, due: u64) {
        self.lock()
            .pending
            .entry(slug.to_string())
            .or_default()
            .insert(id.to_string(), due);
        self.wake.notify_one();
    }

    pub fn remove(&self, slug: &str, id: &str) {
        let mut st = self.lock();
        if let Some(m) = st.pending.get_mut(slug) {
            m.remove(id);
            if m.is_empty() {
                st.pending.remove(slug);
            }
        }
    }

    /// Wakes the worker (an endpoint changed status).
    pub fn poke(&self) {
        self.wake.notify_one();
    }

    /// Pending events of one endpoint (in flight included).
    pub fn depth(&self, slug: &str) -> usize {
        self.lock().pending.get(slug).map_or(0, BTreeMap::len)
    }

    /// Entries of one endpoint, oldest first: `(id, due)`.
    pub fn entries(&self, slug: &str) -> Vec<(String, u64)> {
        self.lock()
            .pending
            .get(slug)
            .map(|m| m.iter().map(|(id, due)| (id.clone(), *due)).collect())
            .unwrap_or_default()
    }

    /// Total depth and the oldest pending event id, for `/metrics`.
    pub fn stats(&self) -> (usize, Option<String>) {
        let st = self.lock();
        let depth = st.pending.values().map(BTreeMap::len).sum();
        let oldest = st
            .pending
            .values()
            .filter_map(|m| m.keys().next())
            .min()
            .cloned();
        (depth, oldest)
    }

    /// Picks due entries within the limits and marks them in flight.
    fn take_due(&self, now: u64, limits: impl Fn(&str) -> Limits) -> Vec<(String, String, u64)> {
        let mut st = self.lock();
        let mut total: usize = st.in_flight.values().sum();
        let mut out = Vec::new();
        let slugs: Vec<String> = st.pending.keys().cloned().collect();
        for slug in slugs {
            if total >= GLOBAL_IN_FLIGHT {
                break;
            }
            let lim = limits(&slug);
            let busy = st.in_flight.get(&slug).copied().unwrap_or(0);
            let cap = if lim.ordered {
                1
            } else {
                lim.max_in_flight.max(1)
            };
            if busy >= cap {
                continue;
            }
            let mut room = (cap - busy).min(GLOBAL_IN_FLIGHT - total);
            let entries: Vec<(String, u64)> = st.pending[&slug]
                .iter()
                .map(|(i, d)| (i.clone(), *d))
                .collect();
            for (id, due) in entries {
                if room == 0 {
                    break;
                }
                if st.in_flight_ids.contains(&id) {
                    continue;
                }
                if due > now {
                    // Ordered: nothing overtakes the oldest pending event.
                    if lim.ordered {
                        break;
                    }
                    continue;
                }
                st.in_flight_ids.insert(id.clone());
                *st.in_flight.entry(slug.clone()).or_default() += 1;
                out.push((slug.clone(), id, due));
                room -= 1;
                total += 1;
            }
        }
        out
    }

    /// An attempt finished: the entry moves to `next_due` or leaves.
    fn done(&self, slug: &str, id: &str, next_due: Option<u64>) {
        let mut st = self.lock();
        st.in_flight_ids.remove(id);
        if let Some(n) = st.in_flight.get_mut(slug) {
            *n = n.saturating_sub(1);
        }
        let empty = match st.pending.get_mut(slug) {
            Some(m) => {
                match next_due {
                    Some(due) => {
                        m.insert(id.to_string(), due);
                    }
                    None => {
                        m.remove(id);
                    }
                }
                m.is_empty()
            }
            None => false,
        };
        if empty {
            st.pending.remove(slug);
        }
        drop(st);
        self.wake.notify_one();
    }

    /// The soonest due time among entries not in flight.
    fn next_due(&self) -> Option<u64> {
        let st = self.lock();
        st.pending
            .values()
            .flat_map(|m| m.iter())
            .filter(|(id, _)| !st.in_flight_ids.contains(*id))
            .map(|(_, due)| *due)
            .min()
    }
}

/// Delivers due events until `stop`, then waits (bounded) for those in flight.
pub async fn run_worker(relay: Arc<Relay>, mut stop: watch::Receiver<bool>) {
    let mut tasks = JoinSet::new();
    loop {
        let now = now_ms();
        let due = relay
            .queue
            .take_due(now, |slug| match relay.endpoint(slug) {
                Some(cell) => {
                    let ep = cell.lock();
                    // A paused or disabled endpoint's entries are taken at once
                    // so that they become held instead of waiting.
                    let open = ep.status != Status::Active;
                    Limits {
                        ordered: ep.ordered && !open,
                        max_in_flight: if open {
                            GLOBAL_IN_FLIGHT
                        } else {
                            ep.max_in_flight as usize
                        },
                    }
                }
                None => Limits {
                    ordered: false,
                    max_in_flight: GLOBAL_IN_FLIGHT,
                },
            });
        for (slug, id, due) in due {
            let relay = Arc::clone(&relay);
            tasks.spawn(async move {
                let next = match relay.deliver_queued(&slug, &id, due).await {
                    Ok(next) => next,
                    Err(e) => {
                        tracing::warn!(endpoint = slug, id, error = %e, "queued delivery failed; will try again");
                        Some(now_ms() + STORE_ERROR_BACKOFF_MS)
                    }
                };
                relay.queue.done(&slug, &id, next);
            });
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
/// ±10% jitter so that a burst of failures does not retry in lockstep; a
/// `Retry-After` from the receiver wins. `None` when the schedule is spent.
pub fn retry_delay(
    schedule: &[String],
    index: usize,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    let base = humantime::parse_duration(schedule.get(index)?).ok()?;
    if let Some(ra) = retry_after {
        return Some(ra.min(Duration::from_secs(24 * 3600)));
    }
    let jitter = 0.9 + 0.2 * fastrand::f64();
    Some(base.mul_f64(jitter))
}

/// `Retry-After` as seconds or an HTTP date.
pub fn parse_retry_after(value: &[u8], now: std::time::SystemTime) -> Option<Duration> {
    let text = std::str::from_utf8(value).ok()?.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
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
        }
    }

    #[test]
    fn takes_due_entries_within_limits() {
        let q = Queue::load(vec![
            (10, "01A".into(), "a".into()),
            (20, "01B".into(), "a".into()),
            (99, "01C".into(), "a".into()),
        ]);
        let got = q.take_due(50, lim(false, 1));
        assert_eq!(got, vec![("a".to_string(), "01A".to_string(), 10)]);
        assert!(q.take_due(50, lim(false, 1)).is_empty(), "one in flight");
        q.done("a", "01A", None);
        assert_eq!(q.take_due(50, lim(false, 5)).len(), 1, "01B due, 01C not");
        assert_eq!(q.depth("a"), 2);
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
    fn retry_delays_follow_the_schedule_with_jitter() {
        let s: Vec<String> = ["5s", "5m"].iter().map(|s| s.to_string()).collect();
        let d = retry_delay(&s, 0, None).unwrap();
        assert!(
            d >= Duration::from_millis(4500) && d <= Duration::from_millis(5500),
            "{d:?}"
        );
        assert!(retry_delay(&s, 2, None).is_none());
        assert_eq!(
            retry_delay(&s, 1, Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(b"120", std::time::SystemTime::now()),
            Some(Duration::from_secs(120))
        );
        assert!(parse_retry_after(b"soon", std::time::SystemTime::now()).is_none());
    }
}
