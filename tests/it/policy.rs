//! The failure-disable policy end to end: the exact ordinal, the reset, the
//! notification, holding while disabled, and release in arrival order.

use std::time::Duration;

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer};

#[tokio::test]
async fn the_sixth_consecutive_failure_disables_and_notifies() {
    let mut up = Receiver::start(vec![Reply::status(500).body("boom")]).await;
    let mut hook = Receiver::start(vec![Reply::status(204)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "p", "target": up.url("/"), "notify_url": hook.url("/disabled") }),
    )
    .await;

    for i in 1..=5 {
        let r = s.post_in("p", &[], format!("{i}")).await;
        assert_eq!(r.status, 500, "the sender sees the receiver's answer");
        let ep = s.get("/api/endpoints/p").await;
        assert_eq!(ep["status"], "active", "still active after {i} failures");
        assert_eq!(ep["consecutive_failures"], i);
        assert_eq!(ep["failures_left"], 6 - i);
    }
    let r = s.post_in("p", &[], "6").await;
    assert_eq!(r.status, 500);
    let ep = s.get("/api/endpoints/p").await;
    assert_eq!(
        ep["status"], "disabled",
        "disabled on the 6th failure in a row"
    );
    assert!(
        ep["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("6 consecutive")
    );
    assert!(ep["disabled_at"].is_string());
    assert_eq!(up.drain().len(), 6);

    let note = hook.next().await;
    assert_eq!(note.uri, "/disabled");
    let v: serde_json::Value = serde_json::from_slice(&note.body).unwrap();
    assert_eq!(v["type"], "endpoint.disabled");
    assert_eq!(v["endpoint"], "p");

    // Disabling it again by hand keeps the policy's reason and time.
    let (st, again) = s
        .api(
            "PATCH",
            "/api/endpoints/p",
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["disabled_reason"], ep["disabled_reason"]);
    assert_eq!(again["disabled_at"], ep["disabled_at"]);

    // Disabled: stored as held, sender gets 202, nothing goes upstream.
    let r = s.post_in("p", &[], "7").await;
    assert_eq!(r.status, 202);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "held");
    assert!(up.drain().is_empty());

    let metrics = crate::support::send("GET", &s.admin_url("/metrics"), &[], Default::default())
        .await
        .2;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("hookrelay_endpoints_disabled_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("hookrelay_endpoint_status{endpoint=\"p\",status=\"disabled\"} 1"));
    for line in [
        "hookrelay_endpoint_consecutive_failures{endpoint=\"p\"} 6",
        "hookrelay_endpoint_events_stored{endpoint=\"p\"} 7",
        "hookrelay_endpoint_events{endpoint=\"p\",state=\"failed\"} 6",
        "hookrelay_endpoint_events{endpoint=\"p\",state=\"held\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
    assert!(
        !metrics.contains("state=\"received\""),
        "received is a state of its own, not the total"
    );
    assert!(metrics.contains("hookrelay_attempts_total{outcome=\"failure_status\"} 6"));
    let counter = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    // 7 events and 6 outcomes at least; every acknowledgement needed a flush.
    let (writes, flushes) = (
        counter("hookrelay_store_writes_total"),
        counter("hookrelay_wal_flushes_total"),
    );
    assert!(writes >= 13, "{writes} writes");
    assert!(
        (1..=writes).contains(&flushes),
        "{flushes} flushes for {writes} writes"
    );
}

#[tokio::test]
async fn a_success_resets_the_count_and_thresholds_are_configurable() {
    let up = Receiver::start(vec![
        Reply::status(503),
        Reply::status(503),
        Reply::status(503),
        Reply::status(200),
        Reply::status(503),
    ])
    .await;
    let s = TestServer::start().await;
    // WooCommerce's own code disables on the 7th and counts 300 as success.
    s.create_endpoint(json!({ "slug": "w", "target": up.url("/"), "failure_threshold": 6, "success_codes": ["200-302"] })).await;
    for _ in 0..3 {
        s.post_in("w", &[], "x").await;
    }
    assert_eq!(s.get("/api/endpoints/w").await["consecutive_failures"], 3);
    assert_eq!(s.post_in("w", &[], "x").await.status, 200);
    assert_eq!(s.get("/api/endpoints/w").await["consecutive_failures"], 0);
    for i in 1..=6 {
        s.post_in("w", &[], "x").await;
        assert_eq!(
            s.get("/api/endpoints/w").await["status"],
            "active",
            "after {i}"
        );
    }
    s.post_in("w", &[], "x").await;
    assert_eq!(
        s.get("/api/endpoints/w").await["status"],
        "disabled",
        "on the 7th"
    );
}

#[tokio::test]
async fn held_events_are_released_in_arrival_order() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "h", "target": up.url("/") }))
        .await;
    let (status, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/h",
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ep["status"], "paused");

    for i in 0..20 {
        let r = s.post_in("h", &[], format!("event-{i:02}")).await;
        assert_eq!(r.status, 202);
    }
    assert!(up.drain().is_empty());
    assert_eq!(s.get("/api/endpoints/h").await["counts"]["held"], 20);

    // Releasing while paused is refused.
    let (status, _) = s.api("POST", "/api/endpoints/h/release", None).await;
    assert_eq!(status, 409);

    let (status, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/h",
            Some(json!({ "status": "active" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ep["consecutive_failures"], 0);
    let (status, report) = s.api("POST", "/api/endpoints/h/release", None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["released"], 20);
    assert_eq!(report["delivered"], 20);
    let bodies: Vec<String> = up
        .drain()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    let want: Vec<String> = (0..20).map(|i| format!("event-{i:02}")).collect();
    assert_eq!(bodies, want);

    let ep = s.get("/api/endpoints/h").await;
    assert_eq!(ep["counts"]["held"], 0);
    assert_eq!(ep["counts"]["delivered"], 20);
    let held = s.get("/api/events?endpoint=h&state=held").await;
    assert_eq!(held["events"].as_array().unwrap().len(), 0);
    let list = s
        .get("/api/events?endpoint=h&state=delivered&limit=1")
        .await;
    let ev = s
        .get(&format!(
            "/api/events/{}",
            list["events"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ev["attempts"][0]["trigger"], "release");
}

#[tokio::test]
async fn resuming_a_disabled_endpoint_resets_its_count() {
    let up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "d", "target": up.url("/"), "failure_threshold": 0 }))
        .await;
    s.post_in("d", &[], "x").await;
    assert_eq!(s.get("/api/endpoints/d").await["status"], "disabled");
    let (_, ep) = s.api("POST", "/api/endpoints/d/resume", None).await;
    assert_eq!(ep["status"], "active");
    assert_eq!(ep["consecutive_failures"], 0);
    assert!(ep["disabled_reason"].is_null());
}

/// Only moving out of paused or disabled resets the count: a script that
/// sends `"status":"active"` with every change, or a resume of an active
/// endpoint, must not keep a failing endpoint from ever being disabled.
/// Pausing a disabled endpoint ends the disable (its reason goes).
#[tokio::test]
async fn setting_an_active_endpoint_active_keeps_its_count() {
    let up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "a", "target": up.url("/"), "failure_threshold": 2 }))
        .await;
    s.post_in("a", &[], "1").await;
    s.post_in("a", &[], "2").await;
    let (status, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/a",
            Some(json!({ "status": "active", "name": "renamed" })),
        )
        .await;
    assert_eq!(status, 200, "{ep}");
    assert_eq!(ep["name"], "renamed");
    assert_eq!(ep["consecutive_failures"], 2, "{ep}");
    let (_, ep) = s.api("POST", "/api/endpoints/a/resume", None).await;
    assert_eq!(ep["consecutive_failures"], 2, "{ep}");
    assert_eq!(s.post_in("a", &[], "3").await.status, 500);
    let ep = s.get("/api/endpoints/a").await;
    assert_eq!(ep["status"], "disabled", "the third failure disables: {ep}");

    let (_, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/a",
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_eq!(ep["status"], "paused");
    assert!(ep["disabled_reason"].is_null(), "{ep}");
    assert!(ep["disabled_at"].is_null(), "{ep}");
    let (_, ep) = s.api("POST", "/api/endpoints/a/resume", None).await;
    assert_eq!(ep["consecutive_failures"], 0, "resumed from paused: {ep}");
}

#[tokio::test]
async fn replay_to_another_url_does_not_count_toward_the_policy() {
    let mut a = Receiver::start(vec![Reply::status(500)]).await;
    let mut b = Receiver::start(vec![Reply::status(200).body("dev ok")]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "rp", "target": a.url("/prod") }))
        .await;
    let r = s
        .post_in("rp/orders?x=1", &[("x-sig", "abc")], "payload")
        .await;
    assert_eq!(r.status, 500);
    a.next().await;
    let id = r.event_id();

    let (status, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": b.url("/dev") })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    // The contract: the replay returns the attempt (fields at the top).
    assert_eq!(v["trigger"], "replay");
    assert_eq!(v["replay_of"], id.as_str());
    assert_eq!(v["status"], 200);
    assert_eq!(v["attempt"]["status"], 200, "kept for earlier clients");
    let got = b.next().await;
    assert_eq!(got.uri, "/dev/orders?x=1");
    assert_eq!(&got.body[..], b"payload");
    assert_eq!(got.header("x-sig").as_deref(), Some("abc"));

    let ep = s.get("/api/endpoints/rp").await;
    assert_eq!(
        ep["consecutive_failures"], 1,
        "a replay elsewhere does not count"
    );
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(ev["state"], "failed");
    assert_eq!(ev["attempts"].as_array().unwrap().len(), 2);
    // Nor is its answer the event's: the target's 500 stays the event's
    // status (filters, the dashboard's "Answer"), the 200 sits beside it.
    assert_eq!(ev["last_status"], 500);
    assert_eq!(ev["attempts"][1]["to_target"], false);
    assert_eq!(ev["attempts"][0]["to_target"], true);
    let hits = s.get("/api/events?endpoint=rp&status=200").await;
    assert!(hits["events"].as_array().unwrap().is_empty(), "{hits}");

    // To its own target it counts: a success resets and delivers.
    a.set_script(vec![Reply::status(200)]);
    let (status, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), Some(json!({})))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["event"]["state"], "delivered");
    assert_eq!(s.get("/api/endpoints/rp").await["consecutive_failures"], 0);
}

/// `notify_url` is told of every disable, by hand as well as by the policy;
/// pausing is not a disable and sends nothing.
#[tokio::test]
async fn disabling_by_hand_notifies_too() {
    let mut hook = Receiver::start(vec![Reply::status(204)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "h",
        "target": "http://127.0.0.1:9/",
        "notify_url": hook.url("/disabled"),
    }))
    .await;
    let (st, v) = s.api("POST", "/api/endpoints/h/pause", None).await;
    assert_eq!(st, 200, "{v}");
    let (st, v) = s
        .api(
            "PATCH",
            "/api/endpoints/h",
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let note = hook.next().await;
    assert_eq!(note.uri, "/disabled");
    let v: serde_json::Value = serde_json::from_slice(&note.body).unwrap();
    assert_eq!(v["type"], "endpoint.disabled");
    assert_eq!(v["endpoint"], "h");
    assert_eq!(v["reason"], "disabled by hand");
    // Disabling what is already disabled is no new event.
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/h",
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(st, 200);
    // A renamed, resumed and again disabled endpoint: the next notification
    // must carry the new name, so the repeat above sent none.
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/h",
            Some(json!({ "name": "again", "status": "active" })),
        )
        .await;
    assert_eq!(st, 200);
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/h",
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_slice(&hook.next().await.body).unwrap();
    assert_eq!(v["name"], "again", "one notification per disable: {v}");
}

/// An ingest that found the endpoint paused and a release that starts while
/// it is still storing the event: the release waits for it, so the event is
/// released with the rest instead of staying held on an active endpoint.
/// The window is made wide on purpose: a 20 MiB body checked against 50
/// secrets keeps the ingest between its look at the status and its insert
/// for a good part of a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_held_as_a_release_starts_is_released_with_the_rest() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    let secrets: Vec<String> = (0..50).map(|i| format!("secret-{i}")).collect();
    s.create_endpoint(json!({
        "slug": "g",
        "target": up.url("/"),
        "signature": { "scheme": "github", "secrets": secrets },
    }))
    .await;
    let (st, _) = s.api("POST", "/api/endpoints/g/pause", None).await;
    assert_eq!(st, 200);

    let body = vec![b'x'; 20 << 20];
    let head = format!(
        "POST /in/g HTTP/1.1\r\nhost: t\r\ncontent-length: {}\r\nx-hub-signature-256: sha256={}\r\nconnection: close\r\n\r\n",
        body.len(),
        "0".repeat(64)
    );
    let (written, sent) = tokio::sync::oneshot::channel();
    let addr = s.ingest;
    let sender = tokio::spawn(async move {
        let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
        conn.write_all(head.as_bytes()).await.unwrap();
        conn.write_all(&body).await.unwrap();
        let _ = written.send(conn.local_addr().unwrap());
        let mut out = Vec::new();
        conn.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out).into_owned()
    });
    let client = sent.await.unwrap();
    // The ingest looks at the status once it has the whole body: first
    // wait until the kernel holds none of its bytes, neither unacknowledged
    // on the sender's side nor unread on hookrelay's; then give the handler
    // the moment it takes to finish collecting the 20 MiB and look. Nothing
    // outside the process says "looked" (a CI run resumed first without
    // this pause), so this one pause stays.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (ours, theirs) = (
            crate::support::tcp_queues(client, addr),
            crate::support::tcp_queues(addr, client),
        );
        if matches!((ours, theirs), (Some((0, _)), Some((_, 0)))) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the body was never read: sender {ours:?}, hookrelay {theirs:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (st, v) = s.api("POST", "/api/endpoints/g/resume", None).await;
    assert_eq!(st, 200, "{v}");
    let (st, report) = s.api("POST", "/api/endpoints/g/release", None).await;
    assert_eq!(st, 200, "{report}");
    let answer = tokio::time::timeout(Duration::from_secs(30), sender)
        .await
        .expect("the sender is answered")
        .unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "{}",
        &answer[..answer.len().min(200)]
    );
    let list = s.get("/api/events?endpoint=g").await;
    assert_eq!(
        list["events"][0]["state"], "delivered",
        "held behind the release: {report}"
    );
    assert_eq!(report["released"], 1);
    assert_eq!(up.next().await.body.len(), 20 << 20);
}

/// The disable notification is tried again when its receiver fails, and
/// carries a `text` line that chat incoming webhooks post as it is.
#[tokio::test]
async fn the_disable_notification_is_retried_and_readable_in_chat() {
    let up = Receiver::start(vec![Reply::status(500)]).await;
    let mut hook = Receiver::start(vec![Reply::status(503), Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "n",
        "target": up.url("/"),
        "failure_threshold": 0,
        "notify_url": hook.url("/T000/B000/secret"),
    }))
    .await;
    assert_eq!(s.post_in("n", &[], "x").await.status, 500);
    let first = hook.next().await;
    let second = hook.next().await;
    assert_eq!(first.body, second.body, "the same notice, tried again");
    assert!(
        second.at - first.at >= Duration::from_secs(1),
        "retried at once"
    );
    let v: serde_json::Value = serde_json::from_slice(&second.body).unwrap();
    assert_eq!(v["type"], "endpoint.disabled");
    let text = v["text"].as_str().unwrap();
    assert!(
        text.starts_with(
            "hookrelay: endpoint \"n\" is disabled after 1 failed delivery in a row to 127.0.0.1."
        ),
        "{text}"
    );
}

#[tokio::test]
async fn concurrent_failures_past_the_disabling_one_are_held_not_passed_on() {
    concurrent_failures(bytes::Bytes::new()).await;
}

/// The same with answers long enough to be passed on as they arrive: a
/// failing one is judged before its sender gets anything.
#[tokio::test]
async fn concurrent_failures_with_long_answers_are_held_not_passed_on() {
    concurrent_failures(vec![b'e'; 5_000_000].into()).await;
}

async fn concurrent_failures(answer: bytes::Bytes) {
    // Twelve deliveries in flight at once, all failing: the sixth outcome
    // disables the endpoint; the six after it are held and their senders
    // get 202, as a sender sending one at a time would have seen.
    const N: usize = 12;
    let mut up = Receiver::start(vec![Reply::status(500).body(answer.clone()).together(N)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "cc", "target": up.url("/") }))
        .await;
    let sends: Vec<_> = (0..N)
        .map(|i| {
            let url = s.ingest_url("/in/cc");
            tokio::spawn(async move {
                crate::support::send("POST", &url, &[], format!("{i}").into()).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in sends {
        let (status, _, body) = t.await.unwrap();
        if status == 202 {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert!(
                v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("stopped being active")),
                "{v}"
            );
        } else {
            assert_eq!(body.len(), answer.len(), "a failure's answer comes whole");
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [[202; 6], [500; 6]].concat(), "{statuses:?}");
    assert_eq!(up.drain().len(), N);
    let ep = s.get("/api/endpoints/cc").await;
    assert_eq!(ep["status"], "disabled", "{ep}");
    assert_eq!(
        (&ep["counts"]["failed"], &ep["counts"]["held"]),
        (&json!(6), &json!(6)),
        "{ep}"
    );
    // The held ones go again on release.
    up.set_script(vec![Reply::status(200)]);
    let (st, both) = s
        .api("POST", "/api/endpoints/cc/resume?release=true", None)
        .await;
    assert_eq!(st, 200, "{both}");
    assert_eq!(both["release"]["delivered"], 6, "{both}");
}

/// A forward on its way when the endpoint is paused, failing after the
/// pause: held like every event that arrives now, its sender gets 202, and
/// the endpoint stays paused (not disabled).
#[tokio::test]
async fn a_forward_failing_after_a_pause_is_held() {
    let mut up = Receiver::start(vec![Reply::status(500).together(2)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "pz", "target": up.url("/") }))
        .await;
    let url = s.ingest_url("/in/pz");
    let sent =
        tokio::spawn(
            async move { crate::support::send("POST", &url, &[], "on its way".into()).await },
        );
    // In flight at the receiver; the pause comes before its answer.
    up.next().await;
    let (st, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/pz",
            Some(json!({ "status": "paused" })),
        )
        .await;
    assert_eq!((st, &ep["status"]), (200, &json!("paused")), "{ep}");
    // A second request straight to the receiver lets both answers go.
    crate::support::send("POST", &up.url("/"), &[], "direct".into()).await;
    let (status, _, body) = sent.await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((status, &v["held"]), (202, &json!(true)), "{v}");
    let ev = s
        .get(&format!("/api/events/{}", v["event"].as_str().unwrap()))
        .await;
    assert_eq!(ev["state"], "held", "{ev}");
    let ep = s.get("/api/endpoints/pz").await;
    assert_eq!(ep["status"], "paused", "{ep}");
}

/// Pauses `slug`, sends `n` events (held), resumes it, and starts a
/// release in the background.
async fn held_then_releasing(
    s: &TestServer,
    slug: &str,
    n: usize,
) -> tokio::task::JoinHandle<(u16, serde_json::Value)> {
    s.set_status(slug, "paused").await;
    for i in 0..n {
        assert_eq!(s.post_in(slug, &[], format!("{i}")).await.status, 202);
    }
    s.set_status(slug, "active").await;
    let url = s.admin_url(&format!("/api/endpoints/{slug}/release"));
    tokio::spawn(async move {
        let (st, _, body) = crate::support::send("POST", &url, &[], Default::default()).await;
        (st, serde_json::from_slice(&body).unwrap_or_default())
    })
}

/// A release reads its endpoint before each event: a new target takes
/// the events not yet sent, and a delete stops it, so the endpoint created
/// again releases each of them once.
#[tokio::test]
async fn a_release_follows_a_new_target_and_stops_at_a_delete() {
    let slow = Reply::status(200).delay(Duration::from_millis(300));
    let mut old = Receiver::start(vec![slow.clone()]).await;
    let mut new = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "mv", "target": old.url("/") }))
        .await;
    let release = held_then_releasing(&s, "mv", 4).await;
    old.next().await;
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/mv",
            Some(json!({ "target": new.url("/") })),
        )
        .await;
    assert_eq!(st, 200);
    let (st, report) = release.await.unwrap();
    assert_eq!(
        (st, report["delivered"].as_u64()),
        (200, Some(4)),
        "{report}"
    );
    let bodies: Vec<_> = new.drain().into_iter().map(|r| r.body).collect();
    assert_eq!(bodies, ["1", "2", "3"], "the events after the change");
    assert!(old.drain().is_empty());

    let mut gone = Receiver::start(vec![slow]).await;
    s.create_endpoint(json!({ "slug": "rm", "target": gone.url("/") }))
        .await;
    let release = held_then_releasing(&s, "rm", 4).await;
    gone.next().await;
    let (st, _) = s.api("DELETE", "/api/endpoints/rm", None).await;
    assert_eq!(st, 204);
    let (st, report) = release.await.unwrap();
    assert_eq!(
        (
            st,
            report["delivered"].as_u64(),
            report["still_held"].as_u64()
        ),
        (200, Some(1), Some(3)),
        "{report}"
    );
    s.create_endpoint(json!({ "slug": "rm", "target": gone.url("/") }))
        .await;
    let (st, report) = s.api("POST", "/api/endpoints/rm/release", None).await;
    assert_eq!(
        (st, report["delivered"].as_u64()),
        (200, Some(3)),
        "{report}"
    );
    let mut bodies: Vec<_> = gone.drain().into_iter().map(|r| r.body).collect();
    bodies.sort();
    assert_eq!(bodies, ["1", "2", "3"], "each once after the first");
}

/// A client that hangs up does not stop the release: every event is sent
/// and its attempt recorded.
#[tokio::test]
async fn a_release_outlives_its_caller() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(Duration::from_millis(200))]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "hu", "target": up.url("/") }))
        .await;
    let release = held_then_releasing(&s, "hu", 3).await;
    up.next().await;
    release.abort();
    up.next().await;
    up.next().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = s.get("/api/events?endpoint=hu&state=delivered").await;
        let done = list["events"].as_array().unwrap();
        if done.len() == 3 {
            assert!(done.iter().all(|e| e["attempt_count"] == 1), "{list}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A queued event whose endpoint loses its target is held at once; released
/// while there is no target, an event already tried is still owed: it
/// stays held until the endpoint has a target again.
#[tokio::test]
async fn a_release_without_a_target_keeps_what_is_owed() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "ow", "mode": "queue", "target": up.url("/"),
        "retry": ["1h"], "failure_threshold": 100
    }))
    .await;
    let id = s.post_in("ow", &[], "x").await.event_id();
    up.next().await;
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/ow",
            Some(json!({ "target": null })),
        )
        .await;
    assert_eq!(st, 200);
    // Held at once, not at its next try an hour from now.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ev = s.get(&format!("/api/events/{id}")).await;
        if ev["state"] == "held" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ev}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (st, report) = s.api("POST", "/api/endpoints/ow/release", None).await;
    assert_eq!(
        (st, report["still_held"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    assert_eq!(s.get(&format!("/api/events/{id}")).await["state"], "held");
    up.set_script(vec![Reply::status(200)]);
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/ow",
            Some(json!({ "target": up.url("/") })),
        )
        .await;
    assert_eq!(st, 200);
    let (st, report) = s.api("POST", "/api/endpoints/ow/release", None).await;
    assert_eq!((st, report["queued"].as_u64()), (200, Some(1)), "{report}");
    up.next().await;
}

/// An event held for a target and never tried is owed all the same: a
/// release after the target was removed keeps it held (a bin's would be
/// captured), and the next release with a target delivers it.
#[tokio::test]
async fn a_release_without_a_target_keeps_an_untried_event_held_for_a_target() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "pw", "target": up.url("/") }))
        .await;
    let patch = |body: serde_json::Value| {
        let s = &s;
        async move {
            let (st, v) = s.api("PATCH", "/api/endpoints/pw", Some(body)).await;
            assert_eq!(st, 200, "{v}");
        }
    };
    patch(json!({ "status": "paused" })).await;
    let r = s.post_in("pw", &[], "owed").await;
    assert_eq!(r.status, 202);
    let id = r.event_id();
    patch(json!({ "target": null, "status": "active" })).await;
    let (st, report) = s.api("POST", "/api/endpoints/pw/release", None).await;
    assert_eq!(
        (st, report["still_held"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(
        (&ev["state"], &ev["owed"]),
        (&json!("held"), &json!(true)),
        "{ev}"
    );
    patch(json!({ "target": up.url("/") })).await;
    let (st, report) = s.api("POST", "/api/endpoints/pw/release", None).await;
    assert_eq!(
        (st, report["delivered"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    assert_eq!(&up.next().await.body[..], b"owed");
    assert_eq!(
        s.get(&format!("/api/events/{id}")).await["state"],
        "delivered"
    );
}
