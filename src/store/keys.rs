//! Column families and key encodings: the one place that knows the bytes.
//!
//! Event ids are ULIDs stored as 16 big-endian bytes, so byte order is time
//! order and every "newest first" read is a reverse prefix scan. Slugs never
//! contain 0x00 (see `endpoint::Slug`), so it separates a slug from the rest.

use ulid::Ulid;

pub const ENDPOINTS: &str = "endpoints";
/// id -> event record (JSON, without the body).
pub const EVENTS: &str = "events";
/// id -> raw body bytes, compressed by RocksDB.
pub const BODIES: &str = "bodies";
/// slug 0x00 id -> ().
pub const BY_ENDPOINT: &str = "by_endpoint";
/// slug 0x00 state-tag id -> ().
pub const BY_EP_STATE: &str = "by_ep_state";
/// id attempt-no(u32 BE) -> attempt record.
pub const ATTEMPTS: &str = "attempts";
/// slug 0x00 external-id -> first event id.
pub const DEDUP: &str = "dedup";
/// slug 0x00 counter-tag -> i64 LE, summed by a merge operator.
pub const COUNTS: &str = "counts";
/// due-ms(u64 BE) id -> slug: the delivery queue of queue mode.
pub const QUEUE: &str = "queue";
/// Bulk replay jobs: job id -> job record.
pub const JOBS: &str = "jobs";

pub const ALL: [&str; 10] = [
    ENDPOINTS,
    EVENTS,
    BODIES,
    BY_ENDPOINT,
    BY_EP_STATE,
    ATTEMPTS,
    DEDUP,
    COUNTS,
    QUEUE,
    JOBS,
];

pub fn id(id: &Ulid) -> [u8; 16] {
    id.to_bytes()
}

pub fn parse_id(s: &str) -> Option<[u8; 16]> {
    // 26 base-32 digits hold 130 bits: the ulid crate drops the top two, so
    // "ZZZ…" would read as some other id instead of none.
    if !matches!(s.as_bytes().first(), Some(b'0'..=b'7')) {
        return None;
    }
    Ulid::from_string(s).ok().map(|u| u.to_bytes())
}

pub fn id_string(bytes: &[u8]) -> Option<String> {
    let arr: [u8; 16] = bytes.try_into().ok()?;
    Some(Ulid::from_bytes(arr).to_string())
}

/// The smallest id at `ms` (for `since`) and the largest (for `until`).
pub fn id_floor(ms: u64) -> [u8; 16] {
    Ulid::from_parts(ms, 0).to_bytes()
}

pub fn id_ceil(ms: u64) -> [u8; 16] {
    Ulid::from_parts(ms, u128::MAX).to_bytes()
}

pub fn slug_prefix(slug: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(slug.len() + 1);
    k.extend_from_slice(slug.as_bytes());
    k.push(0);
    k
}

pub fn by_endpoint(slug: &str, id: &[u8; 16]) -> Vec<u8> {
    let mut k = slug_prefix(slug);
    k.extend_from_slice(id);
    k
}

pub fn ep_state_prefix(slug: &str, tag: u8) -> Vec<u8> {
    let mut k = slug_prefix(slug);
    k.push(tag);
    k
}

pub fn by_ep_state(slug: &str, tag: u8, id: &[u8; 16]) -> Vec<u8> {
    let mut k = ep_state_prefix(slug, tag);
    k.extend_from_slice(id);
    k
}

pub fn attempt(id: &[u8; 16], n: u32) -> Vec<u8> {
    let mut k = id.to_vec();
    k.extend_from_slice(&n.to_be_bytes());
    k
}

pub fn dedup(slug: &str, external_id: &str) -> Vec<u8> {
    let mut k = slug_prefix(slug);
    k.extend_from_slice(external_id.as_bytes());
    k
}

pub fn count(slug: &str, tag: u8) -> Vec<u8> {
    let mut k = slug_prefix(slug);
    k.push(tag);
    k
}

pub fn queue(due_ms: u64, id: &[u8; 16]) -> Vec<u8> {
    let mut k = due_ms.to_be_bytes().to_vec();
    k.extend_from_slice(id);
    k
}

/// Per-minute counters (in `COUNTS`): events received in that minute.
pub const MINUTE_EVENTS: u8 = b'M';
/// Per-minute counters (in `COUNTS`): failed attempts in that minute.
pub const MINUTE_FAILURES: u8 = b'X';

/// slug 0x00 kind minute(u64 BE): a per-minute counter.
pub fn minute(slug: &str, kind: u8, minute: u64) -> Vec<u8> {
    let mut k = count(slug, kind);
    k.extend_from_slice(&minute.to_be_bytes());
    k
}

/// Suffix of the key holding a replay job's id list.
pub const JOB_IDS_SUFFIX: &[u8] = b"\x00ids";

pub fn job(id: &str) -> Vec<u8> {
    id.as_bytes().to_vec()
}

pub fn job_ids(id: &str) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.extend_from_slice(JOB_IDS_SUFFIX);
    k
}

/// `(due, id)` of a queue key.
pub fn parse_queue(key: &[u8]) -> Option<(u64, [u8; 16])> {
    if key.len() != 24 {
        return None;
    }
    let due = u64::from_be_bytes(key[..8].try_into().ok()?);
    Some((due, key[8..].try_into().ok()?))
}

/// The id at the end of an index key (its last 16 bytes).
pub fn tail_id(key: &[u8]) -> Option<[u8; 16]> {
    key.len()
        .checked_sub(16)
        .and_then(|at| key[at..].try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let a = Ulid::from_parts(1000, 5);
        let b = Ulid::from_parts(1001, 0);
        assert!(id(&a) < id(&b));
        assert!(id_floor(1001) <= id(&b) && id(&b) <= id_ceil(1001));
        assert_eq!(id_string(&id(&a)), Some(a.to_string()));
        assert_eq!(parse_id(&a.to_string()), Some(id(&a)));
        assert_eq!(parse_id("not-an-id"), None);
        assert_eq!(parse_id("7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), Some([0xff; 16]));
        assert_eq!(parse_id("8ZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
        assert_eq!(parse_id("ZZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
    }

    #[test]
    fn index_keys_end_with_the_id() {
        let u = Ulid::from_parts(7, 9);
        let i = id(&u);
        assert_eq!(tail_id(&by_endpoint("shop", &i)), Some(i));
        assert_eq!(tail_id(&by_ep_state("shop", b'h', &i)), Some(i));
        assert!(by_endpoint("shop", &i).starts_with(b"shop\0"));
        // "shop" must not be a prefix match for "shop2".
        assert!(!by_endpoint("shop2", &i).starts_with(&slug_prefix("shop")));
    }
}
