//! Events page benchmark (issue 4's speed goal): how long does the dashboard
//! take to answer `GET /events` with 1,000,000 stored events?
//!
//! It seeds a RocksDB store directly — `Store::open` with
//! `Durability::Buffered`, then `insert_event` and `record_outcome` /
//! `update_event`, as ingest and delivery do — with events spread over the
//! last seven days across five endpoints (four forwarding, one bin), ~1–2 KB
//! JSON bodies, a dozen headers each, and the states a busy instance has
//! (delivered with an attempt, failed with a 500 attempt, retrying, held,
//! captured, rejected). Two threads seed in parallel; the seeding time is
//! printed. The store is then closed and reopened, so reads go through
//! flushed SST files as after a restart.
//!
//! It then runs the real admin router in process (`tower::ServiceExt::oneshot`,
//! the same middleware, handler and askama templates a browser gets) and
//! measures the first page of `/events` unfiltered, with each indexed filter
//! (endpoint, state, endpoint + state), and with non-indexed filters (method,
//! topic) — 50 requests each after 3 warm-up requests — and prints p50, p99,
//! max and the first (colder) request against the goals: first page < 50 ms,
//! indexed filter < 200 ms. Non-indexed filters have no goal; they scan at
//! most `store::MAX_SCAN` records and say so on the page. The endpoints page
//! (`/`, counters and last-hour charts) is measured too, for information.
//!
//! Run: `cargo bench --bench events_page`
//!
//! Environment:
//! - `HOOKRELAY_BENCH_EVENTS` — events to seed (default 1000000);
//! - `HOOKRELAY_BENCH_DIR` — keep the seeded store in this directory and
//!   reuse it on the next run (seeding is skipped when it is complete);
//!   default: a temporary directory removed at the end;
//! - `HOOKRELAY_BENCH_ITERS` — measured requests per case (default 50);
//! - `HOOKRELAY_BENCH_ONLY` — run only the cases whose path contains this
//!   text (for profiling one case, e.g. under `perf record -g`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use http_body_util::BodyExt;
use tower::ServiceExt;

use hookrelay::deliver::Client;
use hookrelay::endpoint::{Endpoint, Slug};
use hookrelay::event::{Attempt, Event, EventState, Trigger};
use hookrelay::relay::Relay;
use hookrelay::store::{Durability, Store};

/// Five endpoints; the last is a bin (no target): its events are captured.
const ENDPOINTS: [&str; 5] = ["shop", "billing", "github", "crm", "inbox"];
const TOPICS: [&str; 6] = [
    "order.created",
    "order.updated",
    "order.deleted",
    "customer.created",
    "product.updated",
    "invoice.paid",
];
const SPAN_MS: u64 = 7 * 24 * 3600 * 1000;
const FIRST_PAGE_GOAL: Duration = Duration::from_millis(50);
const INDEXED_GOAL: Duration = Duration::from_millis(200);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A WooCommerce-like order, 1–2 KB, different for every event.
fn body(rng: &mut fastrand::Rng, n: usize) -> String {
    let items = rng.usize(3..10);
    let mut line_items = String::new();
    for i in 0..items {
        if i > 0 {
            line_items.push(',');
        }
        line_items.push_str(&format!(
            r#"{{"id":{},"name":"Premium Quality T-Shirt {}","product_id":{},"quantity":{},"subtotal":"{}.{:02}","sku":"TS-{:05}"}}"#,
            rng.u32(1..1_000_000),
            rng.alphanumeric(),
            rng.u32(100..9999),
            rng.u8(1..5),
            rng.u16(1..300),
            rng.u8(0..100),
            rng.u32(0..99_999),
        ));
    }
    format!(
        r#"{{"id":{n},"status":"processing","currency":"EUR","total":"{}.{:02}","customer_id":{},"date_created":"2025-05-{:02}T{:02}:{:02}:00","billing":{{"first_name":"Ada","last_name":"Lovelace {}","email":"ada{}@example.com","city":"London","postcode":"N{} {}AB"}},"payment_method":"stripe","transaction_id":"ch_{}","line_items":[{line_items}]}}"#,
        rng.u32(10..3000),
        rng.u8(0..100),
        rng.u32(1..100_000),
        rng.u8(1..29),
        rng.u8(0..24),
        rng.u8(0..60),
        rng.u32(..),
        rng.u32(..),
        rng.u8(1..30),
        rng.u8(1..10),
        rng.u64(..),
    )
}

/// An event as stored, built from JSON so that fields added later with
/// serde defaults need no change here.
fn event(id: String, slug: &str, at: u64, rng: &mut fastrand::Rng, size: usize) -> Event {
    let topic = TOPICS[rng.usize(..TOPICS.len())];
    // 1 % PUT, so the method filter has to look far.
    let method = if rng.u8(..100) == 0 { "PUT" } else { "POST" };
    serde_json::from_value(serde_json::json!({
        "id": id,
        "endpoint": slug,
        "received_at": at,
        "method": method,
        "path": format!("/hooks/{}", rng.u16(..10)),
        "query": if rng.bool() { Some(format!("source=woo&n={}", rng.u32(..))) } else { None },
        "headers": [
            ["Host", "hooks.example.com"],
            ["User-Agent", "WooCommerce/9.0 Hookshot (WordPress/6.5)"],
            ["Content-Type", "application/json"],
            ["Content-Length", size.to_string()],
            ["X-WC-Webhook-Source", "https://shop.example.com/"],
            ["X-WC-Webhook-Topic", topic],
            ["X-WC-Webhook-Resource", "order"],
            ["X-WC-Webhook-Event", "updated"],
            ["X-WC-Webhook-Signature", format!("{:016x}{:016x}=", rng.u64(..), rng.u64(..))],
            ["X-WC-Webhook-ID", rng.u16(..).to_string()],
            ["X-WC-Webhook-Delivery-ID", rng.u32(..).to_string()],
            ["Accept-Encoding", "gzip, deflate"],
        ],
        "size": size,
        "remote_addr": format!("203.0.113.{}:{}", rng.u8(1..255), rng.u16(1024..)),
        "state": "received",
        "topic": topic,
        "external_id": null,
        "duplicate_of": null,
        "signature": { "scheme": "woocommerce", "verdict": if rng.u8(..50) == 0 { "invalid" } else { "valid" }, "detail": "" },
        "attempts": 0,
        "last_status": null,
    }))
    .expect("event JSON")
}

fn attempt(at: u64, url: &str, status: u16) -> Attempt {
    Attempt {
        n: 0,
        at,
        trigger: Trigger::Forward,
        url: url.to_string(),
        status: Some(status),
        headers: vec![
            ("content-type".into(), b"application/json".to_vec()),
            ("server".into(), b"nginx".to_vec()),
        ],
        body: if status < 300 {
            br#"{"ok":true}"#.to_vec()
        } else {
            b"upstream exploded".to_vec()
        },
        body_size: 17,
        body_truncated: false,
        latency_ms: 40,
        error: None,
        error_detail: None,
        replay_of: None,
        success: status < 300,
        to_target: true,
    }
}

/// One seeding thread: events `from..to` of `total`, spread evenly over the
/// last [`SPAN_MS`] so ids (ULIDs) sort by time.
fn seed_range(store: &Store, start_ms: u64, total: usize, from: usize, to: usize) {
    let mut rng = fastrand::Rng::with_seed(from as u64 + 7);
    for n in from..to {
        let at = start_ms + (n as u64 * SPAN_MS) / total as u64;
        let id = ulid::Ulid::from_parts(at, rng.u128(..)).to_string();
        let ep = n % ENDPOINTS.len();
        let slug = ENDPOINTS[ep];
        let body = body(&mut rng, n);
        let mut ev = event(id.clone(), slug, at, &mut rng, body.len());
        let roll = rng.u8(..100);
        // Where no outcome follows, the event is stored in its final state
        // as ingest does (bin: captured; paused endpoint: held; enforced
        // signature: rejected).
        ev.state = match (slug, roll) {
            ("inbox", _) => EventState::Captured,
            (_, 0..=2) => EventState::Held,
            (_, 3) => EventState::Rejected,
            _ => EventState::Received,
        };
        let state = ev.state;
        store.insert_event(ev, body.as_bytes()).expect("insert");
        if state != EventState::Received {
            continue;
        }
        let url = format!("https://{slug}.example.com/webhooks");
        let (next, status) = match roll {
            4..=9 => (EventState::Failed, 500),
            10..=11 => (EventState::Retrying, 503),
            _ => (EventState::Delivered, 200),
        };
        store
            .record_outcome(&id, None, |e| {
                e.state = next;
                (Some(attempt(at + 40, &url, status)), Default::default())
            })
            .expect("outcome");
    }
}

fn seed(dir: &Path, total: usize) -> Duration {
    let started = Instant::now();
    let store = Store::open(dir, Durability::Buffered).expect("open store");
    let now = now_ms();
    for (i, slug) in ENDPOINTS.iter().enumerate() {
        let mut ep = Endpoint::new(Slug::parse(slug).unwrap(), now);
        ep.name = format!("{slug} webhooks");
        if i < 4 {
            ep.target = Some(format!("https://{slug}.example.com/webhooks"));
        }
        store.put_endpoint(&ep).expect("endpoint");
    }
    // Leave a minute free at the end so nothing is "in the future".
    let start_ms = now - SPAN_MS - 60_000;
    let threads = 2;
    let chunk = total.div_ceil(threads);
    let progress = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let store = &store;
            let (from, to) = (t * chunk, ((t + 1) * chunk).min(total));
            s.spawn(move || {
                // Smaller slices keep both threads' ids interleaved in time.
                let step = 50_000;
                let mut a = from;
                while a < to {
                    let b = (a + step).min(to);
                    seed_range(store, start_ms, total, a, b);
                    a = b;
                    if t == 0 {
                        eprintln!(
                            "  seeded ~{} of {total} events ({:.0?})",
                            (a - from) * threads,
                            progress.elapsed()
                        );
                    }
                }
            });
        }
    });
    store.flush().expect("flush");
    drop(store);
    started.elapsed()
}

struct Case {
    name: &'static str,
    path: String,
    goal: Option<Duration>,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing
    // useful either: both run the benchmark, bounded by the settings above.
    let total = env_usize("HOOKRELAY_BENCH_EVENTS", 1_000_000);
    let iters = env_usize("HOOKRELAY_BENCH_ITERS", 50).max(1);
    let (_tmp, dir): (Option<tempfile::TempDir>, PathBuf) =
        match std::env::var_os("HOOKRELAY_BENCH_DIR") {
            Some(d) => (None, PathBuf::from(d)),
            None => {
                let t = tempfile::tempdir().expect("tempdir");
                let p = t.path().join("store");
                (Some(t), p)
            }
        };
    let marker = dir.join(format!("SEEDED-{total}"));
    if marker.exists() {
        println!("reusing the seeded store in {}", dir.display());
    } else {
        if dir.exists() {
            std::fs::remove_dir_all(&dir).expect("clear the old store");
        }
        std::fs::create_dir_all(&dir).expect("store dir");
        println!(
            "seeding {total} events into {} (2 threads) …",
            dir.display()
        );
        let took = seed(&dir, total);
        println!(
            "seeded {total} events in {:.1} s ({:.0} events/s)",
            took.as_secs_f64(),
            total as f64 / took.as_secs_f64()
        );
        std::fs::write(&marker, b"").expect("marker");
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let opened = Instant::now();
    let store = Arc::new(Store::open(&dir, Durability::Buffered).expect("reopen store"));
    let relay = Arc::new(
        Relay::new(
            store,
            Client::new(None, 0, Default::default()).expect("client"),
            1024 * 1024,
        )
        .expect("relay"),
    );
    println!("reopened the store in {:.0?}", opened.elapsed());
    let _ = relay.ingest_base.set("http://127.0.0.1:8080".into());
    let router = hookrelay::admin::router(relay, None, std::time::Duration::from_secs(30), 0);

    let cases = [
        Case {
            name: "first page, unfiltered",
            path: "/events".into(),
            goal: Some(FIRST_PAGE_GOAL),
        },
        Case {
            name: "endpoint=shop",
            path: "/events?endpoint=shop".into(),
            goal: Some(INDEXED_GOAL),
        },
        Case {
            name: "state=failed",
            path: "/events?state=failed".into(),
            goal: Some(INDEXED_GOAL),
        },
        Case {
            name: "state=held (3 %)",
            path: "/events?state=held".into(),
            goal: Some(INDEXED_GOAL),
        },
        Case {
            name: "endpoint=shop&state=failed",
            path: "/events?endpoint=shop&state=failed".into(),
            goal: Some(INDEXED_GOAL),
        },
        Case {
            name: "topic=order.deleted (not indexed)",
            path: "/events?topic=order.deleted".into(),
            goal: None,
        },
        Case {
            name: "method=PUT (not indexed, 1 %)",
            path: "/events?method=PUT".into(),
            goal: None,
        },
        Case {
            name: "method=PATCH (no match: full scan)",
            path: "/events?method=PATCH".into(),
            goal: None,
        },
        Case {
            name: "q=ada123 (text search, no match)",
            path: "/events?q=ada123xyz".into(),
            goal: None,
        },
        Case {
            name: "endpoints page (/)",
            path: "/".into(),
            goal: None,
        },
    ];

    println!(
        "\n{:<36} {:>9} {:>9} {:>9} {:>9} {:>6} {:>8}  goal",
        "GET (first page)", "first", "p50", "p99", "max", "rows", "KB"
    );
    let mut missed = Vec::new();
    let only = std::env::var("HOOKRELAY_BENCH_ONLY").unwrap_or_default();
    for case in cases.iter().filter(|c| c.path.contains(only.as_str())) {
        let mut times = Vec::with_capacity(iters);
        let mut rows = 0;
        let mut bytes = 0;
        let mut first = Duration::ZERO;
        // Scans that read up to `MAX_SCAN` records get fewer rounds.
        let rounds = if case.goal.is_none() && case.path.contains("q=") {
            iters.min(10)
        } else {
            iters
        };
        for i in 0..rounds + 3 {
            let req = http::Request::get(&case.path)
                .header("host", "127.0.0.1:8081")
                .body(Body::empty())
                .unwrap();
            let t = Instant::now();
            let (status, html) = rt.block_on(async {
                let resp = router.clone().oneshot(req).await.unwrap();
                let status = resp.status();
                let html = resp.into_body().collect().await.unwrap().to_bytes();
                (status, html)
            });
            let took = t.elapsed();
            assert_eq!(
                status,
                200,
                "{}: {}",
                case.path,
                String::from_utf8_lossy(&html)
            );
            if i == 0 {
                first = took;
            }
            if i >= 3 {
                times.push(took);
            }
            let text = String::from_utf8_lossy(&html);
            rows = text.matches("<tr id=\"ev-").count();
            bytes = html.len();
        }
        times.sort();
        let (p50, p99, max) = (
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            *times.last().unwrap(),
        );
        let verdict = match case.goal {
            Some(g) if p99 < g => format!("< {g:?} ok"),
            Some(g) if p50 < g => format!("< {g:?} p50 ok, p99 MISSED"),
            Some(g) => {
                missed.push(case.name);
                format!("< {g:?} MISSED")
            }
            None => "—".into(),
        };
        println!(
            "{:<36} {:>9.2?} {:>9.2?} {:>9.2?} {:>9.2?} {:>6} {:>8.1}  {verdict}",
            case.name,
            first,
            p50,
            p99,
            max,
            rows,
            bytes as f64 / 1024.0
        );
    }
    println!(
        "\n{iters} requests per case (10 for text search) after 3 warm-up requests; \
         {total} events stored.\n\
         first: the case's first request (its index and record blocks not yet in \
         RocksDB's block cache; the OS page cache is not dropped)."
    );
    if !missed.is_empty() {
        println!("goals missed: {}", missed.join(", "));
    }
}
