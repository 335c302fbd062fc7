//! Retention: the sweep that deletes events past their age or beyond an
//! endpoint's count (never one still owed a delivery or pinned by a replay
//! job) in batches, by range deletes where neighbouring old events allow
//! (see `Store::delete_events_into`), the compaction after a large sweep,
//! and the lock that keeps other work from falling between a sweep's read
//! and its deletions.

use std::collections::HashMap;

use rocksdb::{IteratorMode, WriteBatch};

use super::query::RevScan;
use super::{Store, keys};
use crate::error::Result;
use crate::event::{Event, EventState};

/// A retention sweep that deleted at least this many events compacts the
/// range it pruned (see [`Store::compact_swept`]).
const COMPACT_AFTER_PRUNED: usize = 4096;

/// Events a sweep deletes per batch, their stripe locks held together: a
/// batch per event made a sweep of millions compete with every sender's
/// write; a larger one keeps more stripes (and so more senders) waiting.
const SWEEP_BATCH: usize = 64;

/// Only events older than this (by their id) are deleted by range
/// tombstones: an id is stored within moments of being taken, so none can
/// arrive in a range this old while it is deleted.
const RANGE_HORIZON_MS: u64 = 10 * 60_000;

/// Whether retention must keep an undelivered event: the sender was told
/// it was accepted. `mode` is its endpoint's, `None` once deleted — then
/// nothing will deliver it and it ages out like the rest. A forward-mode
/// event left `received` (its forward cut by a crash or a shutdown) is
/// retried by nothing either: owed only while it may still be in flight.
fn owed(ev: &Event, mode: Option<crate::endpoint::Mode>, now_ms: u64) -> bool {
    const IN_FLIGHT: u64 = 3_600_000;
    match (ev.state, mode) {
        (_, None) => false,
        (EventState::Held | EventState::Retrying, Some(_)) => true,
        (EventState::Received, Some(crate::endpoint::Mode::Queue)) => true,
        (EventState::Received, Some(_)) => now_ms.saturating_sub(ev.received_at) < IN_FLIGHT,
        _ => false,
    }
}

/// What a retention sweep deleted: how many, their id range, and each
/// endpoint and state's (see [`Store::compact_swept`]).
#[derive(Default)]
pub struct Sweep {
    count: usize,
    ids: Option<([u8; 16], [u8; 16])>,
    by_ep_state: HashMap<(String, u8), ([u8; 16], [u8; 16])>,
}

impl Sweep {
    pub fn deleted(&self) -> usize {
        self.count
    }

    fn add(&mut self, slug: &str, tag: u8, id: [u8; 16]) {
        let widen = |r: &mut ([u8; 16], [u8; 16])| *r = (r.0.min(id), r.1.max(id));
        self.count += 1;
        widen(self.ids.get_or_insert((id, id)));
        match self.by_ep_state.get_mut(&(slug.to_string(), tag)) {
            Some(r) => widen(r),
            None => {
                self.by_ep_state.insert((slug.to_string(), tag), (id, id));
            }
        }
    }
}

impl Store {
    // ---- retention and maintenance ----

    /// Deletes events older than `max_age_ms` and, per endpoint, all but the
    /// newest `per_endpoint`, except those still owed a delivery and the
    /// `pinned` ones (a replay job has yet to send them). Returns what was
    /// deleted, for [`Store::compact_swept`].
    pub fn prune(
        &self,
        now_ms: u64,
        max_age_ms: Option<u64>,
        per_endpoint: Option<usize>,
        pinned: &std::collections::HashSet<String>,
    ) -> Result<Sweep> {
        let mut doomed: Vec<[u8; 16]> = Vec::new();
        if let Some(age) = max_age_ms {
            let cutoff = keys::id_floor(now_ms.saturating_sub(age));
            for item in self
                .db
                .iterator_cf(self.cf(keys::EVENTS), IteratorMode::Start)
            {
                let (k, _) = item?;
                if k.as_ref() >= cutoff.as_slice() {
                    break;
                }
                if let Ok(id) = k.as_ref().try_into() {
                    doomed.push(id);
                }
            }
        }
        if let Some(keep) = per_endpoint {
            let cf = self.cf(keys::BY_ENDPOINT);
            for slug in self.endpoint_slugs_with_events()? {
                // Refused forgeries go first, oldest first: a flood of
                // unsigned requests must not push out the events a user
                // still needs (the failed ones to replay, say).
                let over = usize::try_from(self.counts(&slug)?.received)
                    .unwrap_or(0)
                    .saturating_sub(keep);
                let rejected: std::collections::HashSet<[u8; 16]> = self
                    .oldest_in_state(&slug, EventState::Rejected, over)?
                    .into_iter()
                    .collect();
                doomed.extend(rejected.iter().copied());
                let mut kept = 0;
                for id in RevScan::new(&self.db, cf, keys::slug_prefix(&slug), None, None) {
                    let id = id?;
                    if rejected.contains(&id) {
                        continue;
                    }
                    if kept < keep {
                        kept += 1;
                    } else {
                        doomed.push(id);
                    }
                }
            }
        }
        doomed.sort();
        doomed.dedup();
        let modes: HashMap<String, crate::endpoint::Mode> = self
            .endpoints()?
            .into_iter()
            .map(|ep| (ep.slug.as_str().to_string(), ep.mode))
            .collect();
        // Ids only grow (see `Store::new_id_ms`), and an event is stored
        // within moments of taking its id: none can still arrive below the
        // horizon, so a range tombstone there deletes only what was read.
        let horizon = keys::id_floor(Store::new_id_ms().1.saturating_sub(RANGE_HORIZON_MS));
        let mut pruned = Sweep::default();
        for chunk in doomed.chunks(SWEEP_BATCH) {
            if self
                .sweep_stopped
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                tracing::info!(
                    deleted = pruned.count,
                    "retention sweep stopped at shutdown; the next start goes on"
                );
                break;
            }
            // Under their stripe locks, re-read: an outcome written
            // meanwhile must not leave an orphan index entry or be undone.
            let _stripes = self.stripes_for_delete(chunk);
            let mut gone = Vec::with_capacity(chunk.len());
            for id in chunk {
                let Some(ev) = self.event_by_key(id)? else {
                    continue;
                };
                if !owed(&ev, modes.get(&ev.endpoint).copied(), now_ms) && !pinned.contains(&ev.id)
                {
                    gone.push((*id, ev));
                }
            }
            if gone.is_empty() {
                continue;
            }
            let mut b = WriteBatch::default();
            self.delete_events_into(&mut b, &gone, &horizon)?;
            self.write_lazy(b)?;
            for (id, ev) in &gone {
                pruned.add(&ev.endpoint, ev.state.tag(), *id);
            }
        }
        // Per-minute counters only feed the last hour's chart: keep a day.
        let day_ago = (now_ms / 60_000).saturating_sub(24 * 60);
        let counts = self.cf(keys::COUNTS);
        let mut b = WriteBatch::default();
        for slug in self.endpoint_slugs_with_events()? {
            for kind in [keys::MINUTE_EVENTS, keys::MINUTE_FAILURES] {
                b.delete_range_cf(
                    &counts,
                    keys::minute(&slug, kind, 0),
                    keys::minute(&slug, kind, day_ago),
                );
            }
        }
        self.write(b)?;
        Ok(pruned)
    }

    /// RocksDB keeps a tombstone for each deleted key until a compaction
    /// reaches it, and every read that crosses the pruned range steps over
    /// each one: after a sweep of 100,000 events, a page of the ten left
    /// read like a page of 100,000. Compacting the range drops them (and
    /// frees the disk space now rather than whenever RocksDB gets there).
    /// The compactions run on RocksDB's background threads, at the lowest
    /// CPU priority; this thread only waits for them. Only after a sweep
    /// of [`COMPACT_AFTER_PRUNED`] events or more; call it outside the
    /// retention pass (it deletes nothing, and a job being created waits
    /// for the pass).
    pub fn compact_swept(&self, pruned: &Sweep) {
        let Some((first, last)) = pruned.ids.filter(|_| pruned.count >= COMPACT_AFTER_PRUNED)
        else {
            return;
        };
        // Forced down to the last level: a range whose tombstones sit in
        // one file is otherwise moved there whole, tombstones and all.
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::ForceOptimized);
        let mut ranges = vec![
            (keys::EVENTS, first.to_vec(), last.to_vec()),
            (keys::BODIES, first.to_vec(), last.to_vec()),
            (
                keys::ATTEMPTS,
                keys::attempt(&first, 0),
                keys::attempt(&last, u32::MAX),
            ),
        ];
        // The indexes lead with the endpoint (and state): only the part of
        // each that held pruned ids, not the whole index every sweep.
        let mut by_endpoint: HashMap<&str, ([u8; 16], [u8; 16])> = HashMap::new();
        for ((slug, tag), (lo, hi)) in &pruned.by_ep_state {
            ranges.push((
                keys::BY_EP_STATE,
                keys::by_ep_state(slug, *tag, lo),
                keys::by_ep_state(slug, *tag, hi),
            ));
            let r = by_endpoint.entry(slug).or_insert((*lo, *hi));
            *r = (r.0.min(*lo), r.1.max(*hi));
        }
        for (slug, (lo, hi)) in by_endpoint {
            ranges.push((
                keys::BY_ENDPOINT,
                keys::by_endpoint(slug, &lo),
                keys::by_endpoint(slug, &hi),
            ));
        }
        for (name, from, to) in ranges {
            if self
                .sweep_stopped
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                return;
            }
            // The compaction flushes the memtable, which writes the WAL
            // buffer out first: through the free-space check here, or not
            // at all (a failed WAL write would stop every write).
            if let Err(e) = self.sync_wal() {
                tracing::warn!(error = %e, "compaction after a retention sweep skipped");
                return;
            }
            self.db
                .compact_range_cf_opt(self.cf(name), Some(from), Some(to), &opts);
        }
    }

    /// Stops a retention sweep under way at its next event (shutdown: the
    /// process waits for the sweep's thread before it exits).
    pub fn stop_sweeps(&self) {
        self.sweep_stopped
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Held (write) by a retention pass from reading what it must keep to
    /// its last deletion; held (read) by whatever must not fall between.
    pub fn retention_pass(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.retention.write().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`Store::retention_pass`].
    pub fn retention_pause(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.retention.read().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::{Durability, EventFilter, Store};
    use crate::event::Event;

    /// An event of `slug` with an id `ms` milliseconds after the epoch.
    fn event(slug: &str, ms: u64, n: u128, external: Option<&str>) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": ulid::Ulid::from_parts(ms, n).to_string(), "endpoint": slug,
            "received_at": ms, "method": "POST", "path": "", "query": null, "headers": [],
            "size": 1, "remote_addr": "127.0.0.1:1", "state": "captured",
            "external_id": external,
        }))
        .unwrap()
    }

    fn listed(store: &Store, slug: &str) -> Vec<String> {
        let page = store
            .query(&EventFilter {
                endpoint: Some(slug.into()),
                limit: 1000,
                ..Default::default()
            })
            .unwrap();
        let mut ids: Vec<String> = page.events.into_iter().map(|e| e.id).collect();
        ids.sort();
        ids
    }

    /// Old events (below the range horizon) are deleted in runs by range
    /// tombstones: exactly the doomed ones, never a neighbour of another
    /// endpoint or a pinned one inside a run, with their indexes, counters
    /// and dedup claims.
    #[test]
    fn a_sweep_of_old_events_deletes_exactly_the_doomed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let base = 1_000_000_000_000; // 2001: far below the horizon.
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..60u64 {
            // Every 13th event is another endpoint's, inside a's runs.
            let slug = if i % 13 == 7 { "b" } else { "a" };
            let ext = (i == 2).then_some("claim-2");
            let ev = store
                .insert_event(event(slug, base + i, u128::from(i), ext), b"body")
                .unwrap();
            match slug {
                "a" => a.push(ev.id),
                _ => b.push(ev.id),
            }
        }
        let pinned: HashSet<String> = [a[20].clone()].into();
        let sweep = store
            .prune(base + 10_000_000, None, Some(5), &pinned)
            .unwrap();
        let mut kept_a: Vec<String> = a[a.len() - 5..].to_vec();
        kept_a.push(a[20].clone());
        kept_a.sort();
        assert_eq!(sweep.deleted(), a.len() - 6);
        assert_eq!(listed(&store, "a"), kept_a);
        assert_eq!(listed(&store, "b"), b, "another endpoint's neighbours stay");
        for id in &a {
            let kept = kept_a.contains(id);
            assert_eq!(store.get_event(id).unwrap().is_some(), kept, "{id}");
            assert_eq!(store.get_body(id).unwrap().is_some(), kept, "{id}");
        }
        for id in &b {
            assert_eq!(store.get_body(id).unwrap().as_deref(), Some(&b"body"[..]));
        }
        assert_eq!(store.counts("a").unwrap().received, 6);
        assert_eq!(store.counts("b").unwrap().received, b.len() as i64);
        let in_state = store
            .ids_in_state("a", crate::event::EventState::Captured, 100)
            .unwrap();
        assert_eq!(in_state, kept_a, "the state index lost exactly the same");
        // The deleted event's dedup claim went with it.
        let again = store
            .insert_event(event("a", base + 100, 1, Some("claim-2")), b"")
            .unwrap();
        assert_eq!(again.duplicate_of, None);
    }
}
