//! Store write benchmark: what do a forward's two store writes cost?
//!
//! A forward writes twice: the event before it is sent on
//! (`Store::insert_event`: record, body, indexes, counters) and its outcome
//! after (`Store::record_outcome`: the attempt, the event's new state, index
//! and counter moves). This drives exactly those two calls from one thread
//! against a fresh `buffered` store in a temporary directory, with the event
//! the load benchmark sends (1.8 KB JSON body, WooCommerce headers) and a
//! 200 answer, and prints the time per call in rounds of
//! `HOOKRELAY_BENCH_EVENTS` (default 50,000; `HOOKRELAY_BENCH_ROUNDS`
//! rounds, default 6), so a change to the write path can be measured without
//! the noise of a whole HTTP load run. Events are built before the clock
//! starts; RocksDB's own flush and compaction threads run as they would in
//! the server, and the last column charges their CPU too: the process's CPU
//! time per forward, which is what the write path costs the machine once
//! memtables are flushed and files compacted (work of one round may spill
//! into the next, so read the later rounds).
//!
//! Run: `cargo bench --bench store`

use std::time::{Duration, Instant};

use hookrelay::event::{Attempt, Event, Trigger};
use hookrelay::store::{Durability, Store};

#[path = "common/payload.rs"]
mod payload;

#[path = "common/cpu.rs"]
mod cpu;

/// The allocator of the server binary (`src/main.rs`), so allocations cost
/// here what they cost there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The load benchmark's webhook, or with `HOOKRELAY_BENCH_BODY_KB` set, that
/// many KiB of it repeated (large payloads: exports, batched events).
fn body() -> Vec<u8> {
    let one = payload::order_json().into_bytes();
    match env_usize("HOOKRELAY_BENCH_BODY_KB", 0) {
        0 => one,
        kb => one.iter().copied().cycle().take(kb * 1024).collect(),
    }
}

/// The event ingest stores for the load benchmark's request, built from JSON
/// so that fields added later with serde defaults need no change here.
fn event(id: String, at: u64, size: usize) -> Event {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "endpoint": "fwd",
        "received_at": at,
        "method": "POST",
        "path": "",
        "query": null,
        "headers": [
            ["host", "127.0.0.1:8080"],
            ["content-type", "application/json"],
            ["x-wc-webhook-topic", "order.updated"],
            ["x-wc-webhook-signature", "mJ0zJ0dQb3y6h2Jq5c8X3Gg0cS7bF2n1aV9kL4pR8tE="],
            ["content-length", size.to_string()],
        ],
        "size": size,
        "remote_addr": "127.0.0.1:50412",
        "state": "received",
    }))
    .expect("event JSON")
}

fn attempt(at: u64) -> Attempt {
    Attempt {
        n: 0,
        at,
        trigger: Trigger::Forward,
        url: "http://127.0.0.1:18999/hook".into(),
        status: Some(200),
        headers: vec![
            ("content-length".into(), b"11".to_vec()),
            ("date".into(), b"Tue, 01 Dec 2026 17:00:00 GMT".to_vec()),
        ],
        body: br#"{"ok":true}"#.to_vec(),
        body_size: 11,
        body_truncated: false,
        latency_ms: 1,
        error: None,
        error_detail: None,
        replay_of: None,
        success: true,
        to_target: true,
    }
}

/// CPU time of the whole process (every thread).
fn process_cpu() -> Duration {
    cpu::stat_cpu("/proc/self/stat")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let per_round = env_usize("HOOKRELAY_BENCH_EVENTS", 50_000);
    let rounds = env_usize("HOOKRELAY_BENCH_ROUNDS", 6);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&dir.path().join("store"), Durability::Buffered).expect("open");
    let body = body();
    println!(
        "store: {per_round} forwards per round, {} byte body, one thread, buffered",
        body.len()
    );
    println!(
        "{:<7} {:>14} {:>15} {:>12} {:>20}",
        "round", "insert µs/op", "outcome µs/op", "forwards/s", "CPU µs/fwd, all thr"
    );
    for round in 1..=rounds {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let events: Vec<Event> = (0..per_round)
            .map(|_| event(Store::new_id(), now, body.len()))
            .collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let (mut insert, mut outcome) = (Duration::ZERO, Duration::ZERO);
        let cpu = process_cpu();
        // Interleaved as in a forward: each outcome right after its insert.
        for (ev, id) in events.into_iter().zip(&ids) {
            let t = Instant::now();
            store.insert_event(ev, &body).expect("insert");
            let t2 = Instant::now();
            store
                .record_outcome(id, None, |e| {
                    e.state = hookrelay::event::EventState::Delivered;
                    (Some(attempt(now)), Default::default())
                })
                .expect("outcome");
            outcome += t2.elapsed();
            insert += t2 - t;
        }
        let cpu = process_cpu() - cpu;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / per_round as f64;
        println!(
            "{round:<7} {:>14.2} {:>15.2} {:>12.0} {:>20.1}",
            per(insert),
            per(outcome),
            per_round as f64 / (insert + outcome).as_secs_f64(),
            per(cpu)
        );
    }
}
