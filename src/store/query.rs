//! Reading events back: the filters of `GET /api/events`, newest first,
//! through the endpoint and state indexes where a filter allows, within a
//! scan budget and a body budget for text search (`q`) and JSON fields
//! (`field`), with a cursor to go on from.

use rocksdb::{ColumnFamily, Direction, IteratorMode};

use super::{Db, Store, from_json, keys};
use crate::error::{Error, Result};
use crate::event::{Event, EventState};

/// Records examined per query before it stops and hands back a cursor.
pub const MAX_SCAN: usize = 100_000;
/// Body bytes a text search (`q`) may read per query.
pub const Q_BODY_BUDGET: usize = 64 * 1024 * 1024;

/// The fields of a stored event record that non-indexed filters read;
/// everything else in the record is skipped without allocating.
#[derive(serde::Deserialize)]
struct EventHead {
    method: String,
    #[serde(default)]
    last_status: Option<u16>,
    #[serde(default)]
    topic: Option<String>,
    #[serde(default)]
    signature: Option<VerdictHead>,
    #[serde(default)]
    duplicate_of: Option<String>,
    #[serde(default)]
    mirror_status: Option<u16>,
    #[serde(default)]
    tries: u32,
    #[serde(default)]
    target_tried: bool,
    state: EventState,
}

#[derive(serde::Deserialize)]
struct VerdictHead {
    verdict: String,
}

impl EventHead {
    fn matches(&self, f: &EventFilter) -> bool {
        f.method
            .as_ref()
            .is_none_or(|m| self.method.eq_ignore_ascii_case(m))
            && f.status.is_none_or(|s| self.last_status == Some(s))
            && f.topic
                .as_ref()
                .is_none_or(|t| self.topic.as_ref() == Some(t))
            && f.signature.as_ref().is_none_or(|v| match &self.signature {
                Some(s) => &s.verdict == v,
                None => v == "unchecked",
            })
            && f.duplicate.is_none_or(|d| self.duplicate_of.is_some() == d)
            && f.mirror_diff.is_none_or(|d| {
                let tried = crate::event::target_was_tried(
                    self.state,
                    self.tries,
                    self.last_status,
                    self.target_tried,
                );
                crate::event::mirror_differs(self.mirror_status, self.last_status, tried) == d
            })
    }
}

/// What a text search (`q`) found in one event.
enum Text {
    Match,
    NoMatch,
    /// Its body does not fit in what is left of the query's budget.
    OverBudget,
}

#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub endpoint: Option<String>,
    pub state: Option<EventState>,
    pub topic: Option<String>,
    pub method: Option<String>,
    pub status: Option<u16>,
    pub signature: Option<String>,
    pub duplicate: Option<bool>,
    /// Events whose mirror answered differently from the target.
    pub mirror_diff: Option<bool>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub q: Option<String>,
    /// A field of a JSON body (read within `q`'s body budget).
    pub field: Option<super::field::FieldFilter>,
    pub limit: usize,
    pub cursor: Option<String>,
}

/// Whether `q` (lowercase) is in `hay`, case-insensitively.
fn contains(hay: &[u8], q: &str) -> bool {
    String::from_utf8_lossy(hay).to_lowercase().contains(q)
}

/// Whether `q` is in the event's path, query, topic, id or headers: the
/// parts of a text search (`q`) that need no body.
fn text_in_record(ev: &Event, q: &str) -> bool {
    let has = |hay: &[u8]| contains(hay, q);
    has(ev.path.as_bytes())
        || ev.query.as_ref().is_some_and(|s| has(s.as_bytes()))
        || ev.topic.as_ref().is_some_and(|s| has(s.as_bytes()))
        || ev.external_id.as_ref().is_some_and(|s| has(s.as_bytes()))
        || ev.headers.iter().any(|(n, v)| has(n.as_bytes()) || has(v))
}

#[derive(Debug, Default)]
pub struct EventPage {
    pub events: Vec<Event>,
    pub next_cursor: Option<String>,
    /// True when the scan stopped at its budget before filling the page.
    pub scan_capped: bool,
    pub scanned: usize,
}

/// The smallest id strictly greater than `id`, so "below" bounds can include it.
fn next_after(id: [u8; 16]) -> [u8; 16] {
    let v = u128::from_be_bytes(id);
    v.saturating_add(1).to_be_bytes()
}

/// Ids under `prefix`, newest first, strictly below `below`, not below `floor`.
pub(super) struct RevScan<'a> {
    iter: rocksdb::DBIteratorWithThreadMode<'a, Db>,
    prefix: Vec<u8>,
    below: Option<[u8; 16]>,
    floor: Option<[u8; 16]>,
    done: bool,
}

impl<'a> RevScan<'a> {
    pub(super) fn new(
        db: &'a Db,
        cf: &'a ColumnFamily,
        prefix: Vec<u8>,
        below: Option<[u8; 16]>,
        floor: Option<[u8; 16]>,
    ) -> Self {
        let mut start = prefix.clone();
        start.extend_from_slice(&below.unwrap_or([0xff; 16]));
        let iter = if prefix.is_empty() && below.is_none() {
            db.iterator_cf(cf, IteratorMode::End)
        } else {
            db.iterator_cf(cf, IteratorMode::From(&start, Direction::Reverse))
        };
        RevScan {
            iter,
            prefix,
            below,
            floor,
            done: false,
        }
    }
}

impl Iterator for RevScan<'_> {
    type Item = Result<[u8; 16], rocksdb::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let (k, _) = match self.iter.next()? {
                Ok(kv) => kv,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            if !k.starts_with(&self.prefix) {
                self.done = true;
                return None;
            }
            let Some(id) = keys::tail_id(&k) else {
                continue;
            };
            if k.len() != self.prefix.len() + 16 || self.below.is_some_and(|b| id >= b) {
                continue;
            }
            if self.floor.is_some_and(|f| id < f) {
                self.done = true;
                return None;
            }
            return Some(Ok(id));
        }
        None
    }
}

impl Store {
    /// Newest first, filtered. Endpoint and state filters use indexes; the
    /// others are checked on each record, within [`MAX_SCAN`] records.
    pub fn query(&self, f: &EventFilter) -> Result<EventPage> {
        self.query_within(f, Q_BODY_BUDGET, MAX_SCAN)
    }

    /// [`Store::query`] examining at most `records` records (and never more
    /// than [`MAX_SCAN`]): what is left of a longer read's budget.
    pub fn query_reading(&self, f: &EventFilter, records: usize) -> Result<EventPage> {
        self.query_within(f, Q_BODY_BUDGET, records.min(MAX_SCAN))
    }

    /// [`Store::query`] with `body_budget` bytes of bodies for `q` and
    /// `scan_max` records.
    pub(super) fn query_within(
        &self,
        f: &EventFilter,
        body_budget: usize,
        scan_max: usize,
    ) -> Result<EventPage> {
        let limit = f.limit.clamp(1, 1000);
        let below =
            match &f.cursor {
                Some(c) => Some(keys::parse_id(c).ok_or_else(|| {
                    Error::BadRequest(format!("cursor: {c:?} is not an event id"))
                })?),
                None => None,
            };
        let start = match (below, f.until) {
            (Some(b), Some(u)) => Some(b.min(next_after(keys::id_ceil(u)))),
            (Some(b), None) => Some(b),
            (None, Some(u)) => Some(next_after(keys::id_ceil(u))),
            (None, None) => None,
        };
        let floor = f.since.map(keys::id_floor);

        let (cf_name, prefixes): (&str, Vec<Vec<u8>>) = match (&f.endpoint, f.state) {
            (Some(slug), Some(st)) => (
                keys::BY_EP_STATE,
                vec![keys::ep_state_prefix(slug, st.tag())],
            ),
            (Some(slug), None) => (keys::BY_ENDPOINT, vec![keys::slug_prefix(slug)]),
            (None, Some(st)) => (
                keys::BY_EP_STATE,
                self.endpoint_slugs_with_events()?
                    .iter()
                    .map(|s| keys::ep_state_prefix(s, st.tag()))
                    .collect(),
            ),
            (None, None) => (keys::EVENTS, vec![Vec::new()]),
        };
        let cf = self.cf(cf_name);
        let mut sources: Vec<_> = prefixes
            .iter()
            .map(|p| RevScan::new(&self.db, cf, p.clone(), start, floor).peekable())
            .collect();

        let q =
            f.q.as_ref()
                .map(|q| q.to_lowercase())
                .filter(|q| !q.is_empty());
        let events_cf = self.cf(keys::EVENTS);
        let needs_head = f.method.is_some()
            || f.status.is_some()
            || f.topic.is_some()
            || f.signature.is_some()
            || f.duplicate.is_some()
            || f.mirror_diff.is_some();
        let reads_bodies = q.is_some() || f.field.is_some();
        let full_budget = body_budget;
        let mut body_budget = body_budget;
        let mut page = EventPage::default();
        let mut last_seen: Option<[u8; 16]> = None;
        loop {
            // k-way merge: take the largest (newest) id among the sources.
            let mut best: Option<(usize, [u8; 16])> = None;
            for (i, s) in sources.iter_mut().enumerate() {
                match s.peek() {
                    Some(Ok(id)) if best.is_none_or(|(_, b)| *id > b) => {
                        best = Some((i, *id));
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) => {
                        if let Some(Err(e)) = s.next() {
                            return Err(e.into());
                        }
                    }
                    None => {}
                }
            }
            let Some((i, id)) = best else { break };
            sources[i].next();
            if page.scanned >= scan_max || (reads_bodies && body_budget == 0) {
                page.scan_capped = true;
                page.next_cursor = last_seen.and_then(|l| keys::id_string(&l));
                return Ok(page);
            }
            page.scanned += 1;
            let before = last_seen.replace(id);
            let Some(raw) = self.db.get_pinned_cf(&events_cf, id)? else {
                continue;
            };
            // Non-indexed filters look at a few fields: decode only those
            // first, and the whole record (headers and all) only on a match.
            if needs_head && !from_json::<EventHead>(&raw)?.matches(f) {
                continue;
            }
            let ev: Event = from_json(&raw)?;
            if !self.matches(f, &ev) {
                continue;
            }
            // The body is read once for both (twice, a body over half the
            // budget never fit): `q` first where the record answers it.
            let q_in_record = q.as_ref().is_none_or(|q| text_in_record(&ev, q));
            let text = if q_in_record && f.field.is_none() {
                Text::Match
            } else {
                self.matches_body(&id, &mut body_budget, full_budget, |body| {
                    (q_in_record || q.as_ref().is_some_and(|q| contains(body, q)))
                        && f.field.as_ref().is_none_or(|field| field.matches(body))
                })?
            };
            match text {
                Text::Match => {}
                Text::NoMatch => continue,
                // Stop before it: the cursor leads back to this event, to
                // be searched whole on the next page.
                Text::OverBudget => {
                    page.scan_capped = true;
                    page.next_cursor = before.and_then(|l| keys::id_string(&l));
                    return Ok(page);
                }
            }
            page.events.push(ev);
            if page.events.len() == limit {
                // Only offer a cursor when something may follow.
                let more = sources.iter_mut().any(|s| s.peek().is_some());
                page.next_cursor = if more { keys::id_string(&id) } else { None };
                return Ok(page);
            }
        }
        Ok(page)
    }

    /// Endpoint and state (the indexed filters, checked again because a
    /// state scan merges several endpoints); the rest is [`EventHead`]'s.
    fn matches(&self, f: &EventFilter, ev: &Event) -> bool {
        f.endpoint.as_ref().is_none_or(|e| &ev.endpoint == e)
            && f.state.is_none_or(|s| ev.state == s)
    }

    /// Whether the event's body passes `test`. A body is searched whole or
    /// not at all: one that does not fit in what is left of the budget is
    /// left for the next page, unless no body was read yet (so every page
    /// makes progress).
    fn matches_body(
        &self,
        id: &[u8; 16],
        budget: &mut usize,
        full_budget: usize,
        test: impl Fn(&[u8]) -> bool,
    ) -> Result<Text> {
        let Some(body) = self.db.get_pinned_cf(self.cf(keys::BODIES), id)? else {
            return Ok(Text::NoMatch);
        };
        if body.len() > *budget && *budget < full_budget {
            return Ok(Text::OverBudget);
        }
        *budget = budget.saturating_sub(body.len());
        Ok(if test(&body) {
            Text::Match
        } else {
            Text::NoMatch
        })
    }

    pub(super) fn endpoint_slugs_with_events(&self) -> Result<Vec<String>> {
        // Counters exist for every slug that ever received an event, even
        // after its endpoint was deleted. Each slug has many counter keys
        // (per-minute ones too): seek past them instead of reading them.
        let mut slugs = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(keys::COUNTS));
        it.seek_to_first();
        while let Some(k) = it.key() {
            let Some(pos) = k.iter().position(|b| *b == 0) else {
                it.next();
                continue;
            };
            let slug = k[..pos].to_vec();
            slugs.push(String::from_utf8_lossy(&slug).into_owned());
            // slug 0x01 sorts after every slug 0x00 … key and before the next slug.
            let mut next = slug;
            next.push(1);
            it.seek(&next);
        }
        it.status()?;
        Ok(slugs)
    }
}
