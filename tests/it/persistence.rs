//! Durability: a restart finds everything, retention prunes what it should,
//! and every request acknowledged before a SIGKILL is there afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Mutex;

use crate::support::child::spawn_binary;
use crate::support::{Receiver, Reply, TestServer, config_at, send, temp_data};
use hookrelay::store::{Durability, EventFilter, Store};

#[tokio::test]
async fn a_restart_finds_endpoints_events_attempts_and_policy_state() {
    let up = Receiver::start(vec![Reply::status(500)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o700,
        "captured credentials and secrets: the data directory is the user's only"
    );
    let (nest, _) = temp_data();
    let deep = nest.path().join("a/b/data");
    drop(hookrelay::store::Store::open(&deep, hookrelay::store::Durability::Buffered).unwrap());
    let parent = std::fs::metadata(nest.path().join("a"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(
        parent & 0o777,
        0o700,
        "parents it creates keep the usual mode"
    );
    let data_mode = std::fs::metadata(&deep).unwrap().permissions().mode();
    assert_eq!(data_mode & 0o777, 0o700);
    s.create_endpoint(json!({ "slug": "keep", "target": up.url("/") }))
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(s.post_in("keep", &[], format!("body {i}")).await.event_id());
    }
    s.stop().await;

    let s = TestServer::start_with(config_at(&data)).await;
    let ep = s.get("/api/endpoints/keep").await;
    assert_eq!(ep["consecutive_failures"], 3);
    assert_eq!(ep["counts"]["received"], 3);
    assert_eq!(ep["counts"]["failed"], 3);
    for (i, id) in ids.iter().enumerate() {
        let ev = s.get(&format!("/api/events/{id}")).await;
        assert_eq!(ev["body"], format!("body {i}"));
        assert_eq!(ev["state"], "failed");
        assert_eq!(ev["attempts"][0]["status"], 500);
    }
}

#[tokio::test]
async fn retention_keeps_the_newest_per_endpoint_and_prunes_by_age() {
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "r" })).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.post_in("r", &[], format!("{i}")).await.event_id());
    }
    s.stop().await;

    let mut cfg = config_at(&data);
    cfg.retain_per_endpoint = Some(3);
    let s = TestServer::start_with(cfg).await;
    // Retention runs at start, beside the listeners (the log is the only
    // other sign of it).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let got = loop {
        let list = s.get("/api/events?endpoint=r").await;
        let got: Vec<String> = list["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        if got.len() <= 3 || std::time::Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        got,
        [ids[4].clone(), ids[3].clone(), ids[2].clone()],
        "the newest three stay"
    );
    assert_eq!(s.get("/api/endpoints/r").await["counts"]["received"], 3);
    let (st, _) = s.api("GET", &format!("/api/events/{}", ids[0]), None).await;
    assert_eq!(st, 404);
    s.stop().await;

    // By age, straight on the store: two days on, a one-day limit empties it.
    let store = Store::open(&data, Durability::Sync).unwrap();
    let now = hookrelay::time::now_ms();
    assert_eq!(
        store
            .prune(now, Some(86_400_000), None, &Default::default())
            .unwrap()
            .deleted(),
        0
    );
    assert_eq!(
        store
            .prune(
                now + 2 * 86_400_000,
                Some(86_400_000),
                None,
                &Default::default()
            )
            .unwrap()
            .deleted(),
        3
    );
    let page = store
        .query(&EventFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert!(page.events.is_empty());
    assert!(store.attempts(&ids[4]).unwrap().is_empty());
}

/// Held events are owed a delivery and outlive retention, but only while
/// their endpoint exists: a deleted endpoint's held events age out too.
#[tokio::test]
async fn retention_keeps_held_events_only_while_their_endpoint_exists() {
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    for slug in ["kept", "gone"] {
        s.create_endpoint(json!({ "slug": slug, "target": "http://127.0.0.1:9/" }))
            .await;
        let (st, _) = s
            .api("POST", &format!("/api/endpoints/{slug}/pause"), None)
            .await;
        assert_eq!(st, 200);
        for i in 0..2 {
            let ev = s.post_in(slug, &[], format!("{slug} {i}")).await;
            assert_eq!(ev.status, 202, "held while paused");
        }
    }
    let (st, _) = s.api("DELETE", "/api/endpoints/gone", None).await;
    assert_eq!(st, 204);
    s.stop().await;

    let store = Store::open(&data, Durability::Sync).unwrap();
    let later = hookrelay::time::now_ms() + 2 * 86_400_000;
    assert_eq!(
        store
            .prune(later, Some(86_400_000), Some(1), &Default::default())
            .unwrap()
            .deleted(),
        2,
        "both held events of the deleted endpoint go, none of the paused one"
    );
    let left = store
        .query(&EventFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let mut slugs: Vec<&str> = left.events.iter().map(|e| e.endpoint.as_str()).collect();
    slugs.sort();
    assert_eq!(slugs, ["kept", "kept"]);
}

/// How a SIGKILL test loads hookrelay before the kill.
#[derive(Clone, Copy)]
struct Load {
    durability: &'static str,
    forward: bool,
    /// Bytes of padding per body, to push the WAL through its size cap.
    pad: usize,
    /// Kill only once RocksDB writes into a recycled WAL file, and a few
    /// hundred acknowledgements later.
    recycled: bool,
}

async fn kill_during_load(load: Load) {
    let Load {
        durability,
        forward,
        pad,
        recycled,
    } = load;
    let up = Receiver::start(vec![Reply::status(200)]).await;
    let (_dir, data) = temp_data();
    let mut child = spawn_binary(&data, durability);
    let mut ep = json!({ "slug": "k" });
    if forward {
        ep["target"] = up.url("/").into();
    }
    let (st, _, body) = send(
        "POST",
        &format!("{}/api/endpoints", child.admin),
        &[("content-type", "application/json")],
        ep.to_string().into(),
    )
    .await;
    assert_eq!(st, 201, "{}", String::from_utf8_lossy(&body));

    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let enough = Arc::new(tokio::sync::Notify::new());
    let mut senders = Vec::new();
    for t in 0..8 {
        let acked = Arc::clone(&acked);
        let count = Arc::clone(&count);
        let enough = Arc::clone(&enough);
        let url = format!("{}/in/k", child.ingest);
        senders.push(tokio::spawn(async move {
            let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http();
            for i in 0..2000 {
                let head = format!("task {t} seq {i} ");
                let body = format!("{head}{}", "x".repeat(pad));
                let req = http::Request::post(&url)
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap();
                let Ok(Ok(resp)) =
                    tokio::time::timeout(Duration::from_secs(5), client.request(req)).await
                else {
                    return;
                };
                // Any answer from hookrelay means it acknowledged the event.
                if let Some(id) = resp.headers().get("x-hookrelay-event") {
                    acked
                        .lock()
                        .await
                        .push((id.to_str().unwrap().to_string(), head));
                    if count.fetch_add(1, Ordering::SeqCst) + 1 == 300 {
                        enough.notify_one();
                    }
                }
            }
        }));
    }
    // Kill once a few hundred requests were acknowledged (bounded wait).
    let _ = tokio::time::timeout(Duration::from_secs(30), enough.notified()).await;
    if recycled {
        // RocksDB logs the reuse of a WAL file; no other signal exists.
        let log = data.join("LOG");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("from recycle list")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no WAL file was recycled after {} acknowledged events",
                count.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reused_at = count.load(Ordering::SeqCst);
        while count.load(Ordering::SeqCst) < reused_at + 200 {
            assert!(std::time::Instant::now() < deadline, "senders stalled");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    child.proc.kill().expect("SIGKILL");
    child.proc.wait().unwrap();
    for s in senders {
        tokio::time::timeout(Duration::from_secs(20), s)
            .await
            .expect("senders stop")
            .unwrap();
    }
    let acked = acked.lock().await.clone();
    assert!(
        acked.len() >= 300,
        "only {} acknowledged before the deadline",
        acked.len()
    );

    let s = TestServer::start_with(config_at(&data)).await;
    let mut missing = Vec::new();
    for (id, head) in &acked {
        let (st, v) = s.api("GET", &format!("/api/events/{id}"), None).await;
        let intact = v["body"]
            .as_str()
            .is_some_and(|b| b.len() == head.len() + pad && b.starts_with(head.as_str()));
        if st != 200 || !intact {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged events missing after SIGKILL: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}

const SMALL: Load = Load {
    durability: "sync",
    forward: false,
    pad: 0,
    recycled: false,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_bin_event_survives_sigkill() {
    kill_during_load(SMALL).await;
}

/// Forward mode syncs while the target is called: an answer still comes
/// only after both, so every answered sender's event is on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_forwarded_event_survives_sigkill() {
    kill_during_load(Load {
        forward: true,
        ..SMALL
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_forwarded_event_survives_sigkill_buffered() {
    kill_during_load(Load {
        durability: "buffered",
        forward: true,
        ..SMALL
    })
    .await;
}

/// `buffered` flushes the WAL on the ingest worker itself, once per group of
/// senders: every sender it answered must still be covered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_bin_event_survives_sigkill_buffered() {
    kill_during_load(Load {
        durability: "buffered",
        ..SMALL
    })
    .await;
}

/// WAL files are recycled (overwritten in place, `Store::open`): recovery
/// must stop at the end of the new records and keep every one of them, not
/// read the old file's tail as data or lose what the reused file holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_survives_sigkill_in_a_recycled_wal() {
    kill_during_load(Load {
        pad: 256 * 1024,
        recycled: true,
        ..SMALL
    })
    .await;
}

/// While the WAL thread is stuck in a sync (a disk stalled behind other
/// writes, seconds at times), writes nobody waits for still reach the OS:
/// a crash of the process then repeated every delivery and job step of
/// the stall, their records lost with RocksDB's buffer. The second write
/// comes at the very start of the stall and nothing follows it: no later
/// write carries it out.
#[tokio::test]
async fn writes_reach_the_os_while_a_sync_is_stalled() {
    let (_dir, data) = temp_data();
    let store = Store::open(&data, Durability::Sync).unwrap();
    store.inject_sync_stall(Duration::from_secs(3));
    store
        .put_job("before", &json!({ "id": "before" }), None)
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !store.in_injected_stall() {
        assert!(std::time::Instant::now() < deadline, "no sync started");
        std::thread::sleep(Duration::from_millis(1));
    }
    store
        .put_job("during", &json!({ "id": "during" }), None)
        .unwrap();
    let written = store.wal_written();
    let deadline = std::time::Instant::now() + Duration::from_millis(2500);
    while store.wal_written_out() < written {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing wrote the WAL out during the stall ({} of {written})",
            store.wal_written_out()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(store.in_injected_stall(), "the stall ended early");
    let (_copy_dir, copy) = temp_data();
    copy_dir(&data, &copy);
    let crashed = Store::open(&copy, Durability::Buffered).unwrap();
    let jobs = crashed.jobs().unwrap();
    for id in ["before", "during"] {
        assert!(
            jobs.iter().any(|j| j["id"] == id),
            "{id}: missing from the crash image taken during the stall: {jobs:?}"
        );
    }
    store.inject_sync_stall(Duration::ZERO);
}

/// A write nobody waits for (a replay job's progress here; attempts and state
/// moves go the same way) is written out by the WAL thread within
/// `LAZY_FLUSH`: a copy of the data directory taken once the store says so —
/// what a crash at that moment would leave — holds it.
#[tokio::test]
async fn a_write_nobody_waits_for_reaches_the_os_without_a_request() {
    let (_dir, data) = temp_data();
    let store = Store::open(&data, Durability::Buffered).unwrap();
    store
        .put_job("j1", &json!({ "id": "j1", "state": "running" }), None)
        .unwrap();
    let written = store.wal_written();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while store.wal_flushed() < written {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL thread did not flush a lazy write ({} of {written} flushed; LAZY_FLUSH is {:?})",
            store.wal_flushed(),
            hookrelay::store::LAZY_FLUSH,
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let (_copy_dir, copy) = temp_data();
    copy_dir(&data, &copy);
    let crashed = Store::open(&copy, Durability::Buffered).unwrap();
    let jobs = crashed.jobs().unwrap();
    assert!(
        jobs.iter().any(|j| j["id"] == "j1"),
        "the flushed job record is missing from the crash image: {jobs:?}"
    );
    drop(store);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// A forward cut short by a crash leaves its event `received`; nothing will
/// send it again (forward mode has no queue), so it ages out. A queue-mode
/// event in `received` is still owed a delivery and stays.
#[tokio::test]
async fn retention_ages_out_forwards_a_crash_left_received() {
    use hookrelay::endpoint::{Endpoint, Mode, Slug};
    let (_dir, data) = temp_data();
    let store = Store::open(&data, Durability::Buffered).unwrap();
    let day = 86_400_000;
    let then = hookrelay::time::now_ms() - 3 * day;
    let mut ids = Vec::new();
    for (n, slug, mode) in [(1, "fwd", Mode::Forward), (2, "q", Mode::Queue)] {
        let mut ep = Endpoint::new(Slug::parse(slug).unwrap(), then);
        ep.target = Some("http://127.0.0.1:9/".into());
        ep.mode = mode;
        store.put_endpoint(&ep).unwrap();
        let parts = http::Request::post("/").body(()).unwrap().into_parts().0;
        let id = ulid::Ulid::from_parts(then, n).to_string();
        let ev = hookrelay::capture::capture(
            id.clone(),
            &parts,
            slug,
            "",
            1,
            "127.0.0.1:1".parse().unwrap(),
            then,
        );
        assert_eq!(ev.state, hookrelay::event::EventState::Received);
        store.insert_event(ev, b"x").unwrap();
        ids.push(id);
    }
    let now = hookrelay::time::now_ms();
    assert_eq!(
        store
            .prune(now, Some(day), None, &Default::default())
            .unwrap()
            .deleted(),
        1
    );
    assert!(
        store.get_event(&ids[0]).unwrap().is_none(),
        "the stuck forward went"
    );
    assert!(
        store.get_event(&ids[1]).unwrap().is_some(),
        "the queued one stays"
    );
}

/// A second hookrelay on the same data directory is told why it cannot
/// open it.
#[tokio::test]
async fn a_data_directory_in_use_is_named_as_such() {
    let (_dir, data) = temp_data();
    let first = Store::open(&data, Durability::Buffered).unwrap();
    let Err(err) = Store::open(&data, Durability::Buffered) else {
        panic!("opened twice");
    };
    assert!(
        err.to_string().contains("in use by another hookrelay"),
        "{err}"
    );
    drop(first);
}

/// `--data` naming a file says so (RocksDB's own error was "File exists").
#[tokio::test]
async fn a_data_path_that_is_a_file_is_named_as_such() {
    let (_dir, data) = temp_data();
    std::fs::write(&data, b"not a directory").unwrap();
    let Err(err) = Store::open(&data, Durability::Buffered) else {
        panic!("opened a file as a data directory");
    };
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert_eq!(std::fs::read(&data).unwrap(), b"not a directory");
}

/// Hunt #24: a crash during `resume?release=true` left the endpoint active
/// with the rest of its events held and nothing to release them (and an
/// ordered queue endpoint delivered newer events first). The release is
/// marked before the resume and gone on with at the next start.
#[tokio::test]
async fn a_release_cut_by_a_crash_goes_on_after_the_restart() {
    // The second delivery hangs: the kill comes while it is under way.
    let mut up = Receiver::start(vec![
        Reply::status(200),
        Reply::status(200).delay(Duration::from_secs(60)),
        Reply::status(200),
    ])
    .await;
    let (_dir, data) = temp_data();
    let child = spawn_binary(&data, "sync");
    let api = |method: &'static str, path: &'static str, body: serde_json::Value| {
        let child = &child;
        async move {
            let (st, v) = child.api(method, path, body).await;
            assert!(st < 300, "{method} {path}: {st} {v}");
        }
    };
    api(
        "POST",
        "/api/endpoints",
        json!({ "slug": "rl", "target": up.url("/h"), "failure_threshold": 1000 }),
    )
    .await;
    api("POST", "/api/endpoints/rl/pause", json!({})).await;
    for i in 0..5 {
        let (st, _, _) = send(
            "POST",
            &format!("{}/in/rl", child.ingest),
            &[],
            format!("rl-{i}").into(),
        )
        .await;
        assert_eq!(st, 202, "held");
    }
    let url = format!("{}/api/endpoints/rl/resume?release=true", child.admin);
    let resume = tokio::spawn(async move { send("POST", &url, &[], bytes::Bytes::new()).await });
    assert_eq!(&up.next().await.body[..], b"rl-0");
    assert_eq!(&up.next().await.body[..], b"rl-1", "under way at the kill");
    let mut child = child;
    child.proc.kill().expect("SIGKILL");
    child.proc.wait().unwrap();
    resume.abort();

    let s = TestServer::start_with(config_at(&data)).await;
    // Gone on with by itself, in arrival order: rl-1 again (its attempt was
    // never recorded), rl-0 perhaps (an outcome is written out within
    // milliseconds, not synced: the kill may come first).
    let mut sent = Vec::new();
    while sent.last().map(String::as_str) != Some("rl-4") {
        let got = tokio::time::timeout(Duration::from_secs(20), up.next())
            .await
            .unwrap_or_else(|_| panic!("not all released after the restart: {sent:?}"));
        sent.push(String::from_utf8_lossy(&got.body).into_owned());
    }
    let from = usize::from(sent[0] == "rl-0");
    assert_eq!(sent[from..], ["rl-1", "rl-2", "rl-3", "rl-4"], "{sent:?}");
    // The last attempt is recorded just after the receiver has the body.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let ep = loop {
        let ep = s.get("/api/endpoints/rl").await;
        if ep["counts"]["held"] == 0 && ep["counts"]["delivered"] == 5 {
            break ep;
        }
        assert!(std::time::Instant::now() < deadline, "{ep}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ep["status"], "active", "{ep}");
    // Ended: a second restart sends nothing again.
    s.stop().await;
    let _s = TestServer::start_with(config_at(&data)).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), up.next())
            .await
            .is_err(),
        "nothing released twice"
    );
}
