//! Queue mode across a crash: a hookrelay child process is SIGKILLed while
//! eight senders push events at a queue-mode endpoint and deliveries are in
//! flight; after a restart on the same data directory every acknowledged
//! (`202`) event reaches the receiver at least once and at most twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::{Mutex, Notify};

use crate::support::child::spawn_binary;
use crate::support::{Receiver, Reply, TestServer, config_at, send, temp_data};

/// How many acknowledged events trigger the SIGKILL.
const KILL_AFTER: usize = 300;
const SENDERS: usize = 8;
/// Per sender; the kill normally comes long before.
const PER_SENDER: usize = 2000;

fn body_of(r: &crate::support::receiver::Received) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

async fn queue_depth(s: &TestServer) -> Option<u64> {
    let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    String::from_utf8_lossy(&m)
        .lines()
        .find_map(|l| l.strip_prefix("hookrelay_queue_depth "))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_queued_event_is_lost_or_delivered_more_than_twice_across_sigkill() {
    // Always 200, a little slowly, so deliveries are in flight at the kill.
    // The receiver records a request as soon as its body is read, before the
    // reply: a delivery hookrelay never saw answered still counts.
    let mut up = Receiver::start(vec![Reply::status(200).delay(Duration::from_millis(20))]).await;
    let (_dir, data) = temp_data();
    let mut child = spawn_binary(&data, "sync");
    let ep = json!({
        "slug": "qk",
        "mode": "queue",
        "target": up.url("/hook"),
        "retry": vec!["100ms"; 20],
        "failure_threshold": 1000,
        "max_in_flight": 16,
    });
    let (st, _, body) = send(
        "POST",
        &format!("{}/api/endpoints", child.admin),
        &[("content-type", "application/json")],
        ep.to_string().into(),
    )
    .await;
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));

    // ---- load, then SIGKILL once KILL_AFTER events are acknowledged ----
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(Notify::new());
    let mut senders = Vec::new();
    for t in 0..SENDERS {
        let acked = Arc::clone(&acked);
        let count = Arc::clone(&count);
        let enough = Arc::clone(&enough);
        let url = format!("{}/in/qk", child.ingest);
        senders.push(tokio::spawn(async move {
            let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            let mut other = 0usize;
            for i in 0..PER_SENDER {
                let body = format!("queued task {t} seq {i}");
                let req = http::Request::post(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::from(body.clone())))
                    .unwrap();
                let Ok(Ok(resp)) =
                    tokio::time::timeout(Duration::from_secs(5), client.request(req)).await
                else {
                    // Connection refused or reset: the child is gone.
                    return other;
                };
                if resp.status() != 202 {
                    other += 1;
                    continue;
                }
                let id = resp
                    .headers()
                    .get("x-hookrelay-event")
                    .expect("a 202 carries x-hookrelay-event")
                    .to_str()
                    .unwrap()
                    .to_string();
                acked.lock().await.push((id, body));
                if count.fetch_add(1, Ordering::SeqCst) + 1 == KILL_AFTER {
                    enough.notify_one();
                }
            }
            other
        }));
    }
    // Bounded wait for the signal; the assertion below reports a shortfall.
    let _ = tokio::time::timeout(Duration::from_secs(30), enough.notified()).await;
    child.proc.kill().expect("SIGKILL");
    child.proc.wait().unwrap();
    let killed_at = Instant::now();
    let mut not_202 = 0;
    for s in senders {
        not_202 += tokio::time::timeout(Duration::from_secs(20), s)
            .await
            .expect("senders stop")
            .unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= KILL_AFTER,
        "only {} acknowledged before the deadline",
        acked.len()
    );
    assert_eq!(not_202, 0, "every answer before the kill was a 202");

    // Deliveries of the first lifetime (the receiver outlives the kill).
    let mut deliveries: HashMap<String, usize> = HashMap::new();
    for r in up.drain() {
        *deliveries.entry(body_of(&r)).or_default() += 1;
    }
    let before_restart = acked
        .iter()
        .filter(|(_, b)| deliveries.contains_key(b))
        .count();

    // ---- restart on the same data dir, in process ----
    let s = TestServer::start_with(config_at(&data)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut outstanding: usize = acked
        .iter()
        .filter(|(_, b)| !deliveries.contains_key(b))
        .count();
    while outstanding > 0 {
        let got = tokio::time::timeout_at(deadline, up.rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{outstanding} of {} acknowledged events not delivered 60 s after the restart",
                    acked.len()
                )
            })
            .expect("receiver channel open");
        let n = deliveries.entry(body_of(&got)).or_default();
        *n += 1;
        if *n == 1 && acked.iter().any(|(_, b)| *b == body_of(&got)) {
            outstanding -= 1;
        }
    }
    let drained_in = killed_at.elapsed();

    // Let the queue settle (polling: /metrics has no push), then count any
    // late duplicates too.
    let settle = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if queue_depth(&s).await == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < settle,
            "queue not empty 30 s after every acknowledged event arrived: {:?}",
            queue_depth(&s).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in up.drain() {
        *deliveries.entry(body_of(&r)).or_default() += 1;
    }

    let missing: Vec<&str> = acked
        .iter()
        .filter(|(_, b)| !deliveries.contains_key(b))
        .map(|(id, _)| id.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
    let mut too_many: Vec<(&str, usize)> = deliveries
        .iter()
        .filter(|(_, n)| **n > 2)
        .map(|(b, n)| (b.as_str(), *n))
        .collect();
    too_many.sort();
    assert!(
        too_many.is_empty(),
        "delivered more than twice: {too_many:?}"
    );
    let max = deliveries.values().copied().max().unwrap_or(0);
    let twice = deliveries.values().filter(|n| **n == 2).count();

    // Every acknowledged event ends `delivered` according to the API.
    let mut not_delivered = Vec::new();
    for (id, body) in &acked {
        let (st, v) = s.api("GET", &format!("/api/events/{id}"), None).await;
        if st != 200 || v["body"] != body.as_str() || v["state"] != "delivered" {
            not_delivered.push((id.clone(), st, v["state"].clone()));
        }
    }
    assert!(
        not_delivered.is_empty(),
        "{} acknowledged events not `delivered` in the API: {:?}",
        not_delivered.len(),
        &not_delivered[..not_delivered.len().min(5)]
    );
    eprintln!(
        "queue_crash: {} acknowledged, {} delivered before the kill, {} delivered twice, \
         max {max} deliveries per event, {} distinct bodies received, all delivered {:.2?} after the kill",
        acked.len(),
        before_restart,
        twice,
        deliveries.len(),
        drained_in
    );
}
