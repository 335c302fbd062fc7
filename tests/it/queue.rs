//! Queue mode: 202 at once, background delivery with retries, Retry-After,
//! hold on disable, release in order, mirror, backpressure, restarts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, TestServer, config_at, temp_data};

/// Waits (bounded) until `f` holds, checking the API every 20 ms.
async fn wait_until<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Endpoint `q` in queue mode on `retry`, and an event whose first try
/// failed (the receiver's script answers it) and now waits to be retried.
async fn a_retrying_event(s: &TestServer, up: &mut Receiver, retry: Value) -> String {
    s.create_endpoint(
        json!({ "slug": "q", "mode": "queue", "target": up.url("/"), "retry": retry }),
    )
    .await;
    let id = s.post_in("q", &[], "once").await.event_id();
    up.next().await;
    wait_until("retrying", || async {
        state(s, &id).await["state"] == "retrying"
    })
    .await;
    id
}

async fn state(s: &TestServer, id: &str) -> Value {
    s.get(&format!("/api/events/{id}")).await
}

async fn free_port() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test]
async fn events_wait_for_a_receiver_that_is_down_and_arrive_exactly_once() {
    let addr = free_port().await;
    let s = TestServer::start().await;
    // Quick retries while the receiver is down, then slower ones (at most
    // 50 in all) that make the whole schedule long.
    let mut retry = vec!["100ms"; 40];
    retry.extend(["2s"; 10]);
    s.create_endpoint(json!({
        "slug": "q", "mode": "queue", "target": format!("http://{addr}/hook"),
        "retry": retry,
        "failure_threshold": 1000
    }))
    .await;
    // Nothing is delivered until the receiver starts below: a 202 that
    // waited for the delivery would never come (the request times out),
    // and one that waited for the schedule to run out would take at least
    // 21.6 s (its delays less 10% jitter); a loaded machine answers in far
    // less than half of that.
    let schedule = Duration::from_millis((40 * 100 + 10 * 2000) * 9 / 10);
    let mut ids = Vec::new();
    for i in 0..10 {
        let started = std::time::Instant::now();
        let r = s.post_in("q", &[], format!("event {i}")).await;
        assert_eq!(r.status, 202);
        assert!(started.elapsed() < schedule / 2, "202 at once");
        assert_eq!(r.json()["queued"], true);
        ids.push(r.event_id());
    }
    // Failed tries happen meanwhile; then the receiver comes back.
    wait_until("a retry", || async {
        state(&s, &ids[0]).await["state"] == "retrying"
    })
    .await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut up = Receiver::on(listener, vec![Reply::status(200)]);
    let mut bodies = Vec::new();
    for _ in 0..10 {
        bodies.push(String::from_utf8_lossy(&up.next().await.body).into_owned());
    }
    for id in &ids {
        wait_until("delivered", || async {
            state(&s, id).await["state"] == "delivered"
        })
        .await;
    }
    bodies.extend(
        up.drain()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned()),
    );
    bodies.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("event {i}")).collect();
    want.sort();
    assert_eq!(bodies, want, "each delivered exactly once");
    let ev = state(&s, &ids[0]).await;
    let triggers: Vec<&str> = ev["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trigger"].as_str().unwrap())
        .collect();
    assert_eq!(triggers[0], "forward");
    assert!(triggers[1..].iter().all(|t| *t == "retry"));
    assert_eq!(
        ev["attempts"].as_array().unwrap().last().unwrap()["error"],
        Value::Null
    );
    wait_until("an empty queue in /metrics", || async {
        let m = crate::support::send("GET", &s.admin_url("/metrics"), &[], Default::default())
            .await
            .2;
        let m = String::from_utf8_lossy(&m).into_owned();
        if !m.contains("hookrelay_queue_depth 0") {
            eprintln!(
                "{}",
                m.lines()
                    .filter(|l| l.contains("queue"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        m.contains("hookrelay_queue_depth 0")
    })
    .await;
}

#[tokio::test]
async fn a_receiver_answering_500_500_200_gets_it_on_the_third_try() {
    let mut up = Receiver::start(vec![
        Reply::status(500),
        Reply::status(500),
        Reply::status(200),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": up.url("/"), "retry": ["50ms", "50ms", "50ms"] })).await;
    let id = s.post_in("q", &[], "x").await.event_id();
    for _ in 0..3 {
        up.next().await;
    }
    wait_until("delivered", || async {
        state(&s, &id).await["state"] == "delivered"
    })
    .await;
    let ev = state(&s, &id).await;
    let statuses: Vec<u64> = ev["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(s.get("/api/endpoints/q").await["consecutive_failures"], 0);
}

#[tokio::test]
async fn the_last_failed_try_leaves_the_event_failed() {
    let _up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "q", "mode": "queue", "target": _up.url("/"), "retry": ["20ms", "20ms"] }),
    )
    .await;
    let id = s.post_in("q", &[], "x").await.event_id();
    wait_until("failed", || async {
        state(&s, &id).await["state"] == "failed"
    })
    .await;
    assert_eq!(
        state(&s, &id).await["attempts"].as_array().unwrap().len(),
        3,
        "first try + 2 retries"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let mut up = Receiver::start(vec![
        Reply::status(503).header("retry-after", "1"),
        Reply::status(200),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "q", "mode": "queue", "target": up.url("/"), "retry": ["10ms"] }),
    )
    .await;
    let id = s.post_in("q", &[], "x").await.event_id();
    up.next().await;
    up.next().await;
    wait_until("delivered", || async {
        state(&s, &id).await["state"] == "delivered"
    })
    .await;
    let ev = state(&s, &id).await;
    let at = |i: usize| {
        hookrelay::time::parse_instant_ms(ev["attempts"][i]["at"].as_str().unwrap()).unwrap()
    };
    let gap = at(1) - at(0);
    assert!(
        (900..3000).contains(&gap),
        "second try {gap} ms after the first"
    );
}

/// A retry hours away is visible on the event (it was only on the
/// endpoint's page, as the queue's next), and gone once nothing is owed.
#[tokio::test]
async fn a_retrying_event_says_when_it_is_tried_next() {
    let mut up = Receiver::start(vec![
        Reply::status(429).header("retry-after", "3600"),
        Reply::status(200),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": up.url("/") }))
        .await;
    let id = s.post_in("q", &[], "x").await.event_id();
    up.next().await;
    let ms = |v: &Value| hookrelay::time::parse_instant_ms(v.as_str()?);
    wait_until("a next try an hour away", || async {
        let ev = state(&s, &id).await;
        ev["state"] == "retrying"
            && ms(&ev["next_try_at"]).is_some_and(|next| {
                ms(&ev["attempts"][0]["at"]).is_some_and(|first| next > first + 3_000_000)
            })
    })
    .await;
    let ev = state(&s, &id).await;
    let wait = ms(&ev["next_try_at"]).unwrap() - ms(&ev["attempts"][0]["at"]).unwrap();
    assert!((3_590_000..3_700_000).contains(&wait), "{wait} ms");
    let (st, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), None)
        .await;
    assert_eq!(st, 200, "{v}");
    wait_until("nothing owed", || async {
        let ev = state(&s, &id).await;
        ev["state"] == "delivered" && ev["next_try_at"].is_null()
    })
    .await;
}

#[tokio::test]
async fn disabling_during_retries_holds_and_release_keeps_order() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": up.url("/"), "retry": ["20ms", "20ms", "20ms", "20ms", "20ms", "20ms"], "failure_threshold": 2, "ordered": true })).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(s.post_in("q", &[], format!("e{i}")).await.event_id());
    }
    wait_until("disabled", || async {
        s.get("/api/endpoints/q").await["status"] == "disabled"
    })
    .await;
    for id in &ids {
        wait_until("held", || async { state(&s, id).await["state"] == "held" }).await;
    }
    // Ordered: only the oldest was ever tried.
    let tried: Vec<String> = up
        .drain()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(tried.iter().all(|b| b == "e0"), "{tried:?}");

    // Released events go back to the queue: the oldest fails once more and
    // is retried on its schedule, and nothing overtakes it (ordered).
    up.set_script(vec![Reply::status(500), Reply::status(200)]);
    let (st, _) = s.api("POST", "/api/endpoints/q/resume", None).await;
    assert_eq!(st, 200);
    let (st, report) = s.api("POST", "/api/endpoints/q/release", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["released"], 4, "{report}");
    assert_eq!(report["queued"], 4, "{report}");
    for id in &ids {
        wait_until("delivered", || async {
            state(&s, id).await["state"] == "delivered"
        })
        .await;
    }
    let got: Vec<String> = up
        .drain()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(got, ["e0", "e0", "e1", "e2", "e3"]);
    let triggers: Vec<Value> = state(&s, &ids[0]).await["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trigger"].clone())
        .collect();
    assert_eq!(triggers.last(), Some(&json!("retry")), "{triggers:?}");
}

/// `resume?release=true` on an ordered queue endpoint: events that arrive
/// while it resumes and releases never go before the held ones — every
/// event reaches the receiver in arrival order.
#[tokio::test]
async fn resume_with_release_keeps_arrival_order_against_new_events() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = std::sync::Arc::new(TestServer::start().await);
    s.create_endpoint(
        json!({ "slug": "q", "mode": "queue", "target": up.url("/"), "ordered": true }),
    )
    .await;
    let (st, _) = s.api("POST", "/api/endpoints/q/pause", None).await;
    assert_eq!(st, 200);
    let held = 30;
    for i in 0..held {
        s.post_in("q", &[], format!("{i:03}")).await;
    }
    // A sender keeps sending while the endpoint resumes and releases.
    let (go, mut started) = tokio::sync::watch::channel(false);
    let sender = tokio::spawn({
        let s = std::sync::Arc::clone(&s);
        async move {
            for i in held..held + 40 {
                assert_eq!(s.post_in("q", &[], format!("{i:03}")).await.status, 202);
                let _ = go.send(true);
            }
        }
    });
    started.wait_for(|v| *v).await.unwrap();
    let (st, both) = s
        .api("POST", "/api/endpoints/q/resume?release=true", None)
        .await;
    assert_eq!(st, 200, "{both}");
    assert_eq!(both["endpoint"]["status"], "active", "{both}");
    assert!(
        both["release"]["queued"].as_u64().unwrap() >= held as u64,
        "{both}"
    );
    sender.await.unwrap();
    let mut got = Vec::new();
    while got.len() < held + 40 {
        got.push(String::from_utf8_lossy(&up.next().await.body).into_owned());
    }
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(got, sorted, "not in arrival order");
    let (st, v) = s
        .api("POST", "/api/endpoints/q/resume?release=maybe", None)
        .await;
    assert_eq!(st, 400, "{v}");
}

#[tokio::test]
async fn pausing_holds_a_retrying_event_at_once() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    let id = a_retrying_event(&s, &mut up, json!(["1h"])).await;
    let (st, _) = s.api("POST", "/api/endpoints/q/pause", None).await;
    assert_eq!(st, 200);
    // Not at its due time an hour from now.
    wait_until("held", || async { state(&s, &id).await["state"] == "held" }).await;
}

#[tokio::test]
async fn a_failed_replay_leaves_the_retry_schedule_running() {
    let mut up = Receiver::start(vec![
        Reply::status(500),
        Reply::status(500),
        Reply::status(200),
    ])
    .await;
    let s = TestServer::start().await;
    let id = a_retrying_event(&s, &mut up, json!(["1s", "1s"])).await;
    let (st, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), Some(json!({})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["attempt"]["status"], 500, "{v}");
    assert_eq!(v["event"]["state"], "retrying", "{v}");
    up.next().await;
    wait_until("delivered by the schedule", || async {
        state(&s, &id).await["state"] == "delivered"
    })
    .await;
    up.next().await;
    let triggers: Vec<Value> = state(&s, &id).await["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["trigger"].clone())
        .collect();
    assert_eq!(
        triggers,
        [json!("forward"), json!("replay"), json!("retry")]
    );
}

#[tokio::test]
async fn the_mirror_gets_a_copy_and_differences_are_findable() {
    let mut target = Receiver::start(vec![Reply::status(200).body("prod")]).await;
    let mut mirror = Receiver::start(vec![Reply::status(500).body("staging broke")]).await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "m", "target": target.url("/"), "mirror": mirror.url("/shadow") }),
    )
    .await;
    let r = s.post_in("m", &[("x-id", "1")], "payload").await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"prod", "the mirror never reaches the sender");
    target.next().await;
    let got = mirror.next().await;
    assert_eq!(got.uri, "/shadow");
    assert_eq!(&got.body[..], b"payload");
    let id = r.event_id();
    wait_until("mirror attempt", || async {
        state(&s, &id).await["mirror_status"] == 500
    })
    .await;
    let ev = state(&s, &id).await;
    assert!(
        ev["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["trigger"] == "mirror" && a["status"] == 500)
    );
    assert_eq!(ev["state"], "delivered");
    assert_eq!(
        s.get("/api/endpoints/m").await["consecutive_failures"],
        0,
        "mirror never counts"
    );
    let diff = s.get("/api/events?mirror_diff=true").await;
    assert_eq!(diff["events"].as_array().unwrap().len(), 1);

    // Both unreachable is no difference; a bin has no target to differ from.
    let down = free_port().await;
    s.create_endpoint(json!({
        "slug": "both-down", "target": format!("http://{down}/"), "mirror": format!("http://{down}/m"),
    }))
    .await;
    let id = s.post_in("both-down", &[], "x").await.event_id();
    s.create_endpoint(json!({ "slug": "bin", "mirror": mirror.url("/shadow") }))
        .await;
    let bin_id = s.post_in("bin", &[], "x").await.event_id();
    mirror.next().await;
    for id in [&id, &bin_id] {
        wait_until("mirror attempt", || async {
            !state(&s, id).await["mirror_status"].is_null()
        })
        .await;
    }
    let diff = s.get("/api/events?mirror_diff=true").await;
    let ids: Vec<&str> = diff["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![r.event_id().as_str()], "{diff}");
}

/// "A copy of every event": one held for a paused target too, at once and
/// once (its release sends it to the target only).
#[tokio::test]
async fn the_mirror_gets_events_a_paused_endpoint_holds() {
    let mut target = Receiver::start(vec![Reply::status(200)]).await;
    let mut mirror = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "p", "target": target.url("/t"), "mirror": mirror.url("/m") }),
    )
    .await;
    s.api("POST", "/api/endpoints/p/pause", None).await;
    let r = s.post_in("p", &[], "held").await;
    assert_eq!(r.status, 202);
    assert_eq!(&mirror.next().await.body[..], b"held");
    s.api("POST", "/api/endpoints/p/resume", None).await;
    let (st, v) = s.api("POST", "/api/endpoints/p/release", None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(&target.next().await.body[..], b"held");
    s.post_in("p", &[], "after").await;
    assert_eq!(&target.next().await.body[..], b"after");
    assert_eq!(&mirror.next().await.body[..], b"after", "no second copy");
}

#[tokio::test]
async fn a_full_queue_answers_503_with_retry_after_and_stores_nothing() {
    let addr = free_port().await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": format!("http://{addr}/"), "retry": ["1h"], "max_queue_depth": 2, "failure_threshold": 100 })).await;
    assert_eq!(s.post_in("q", &[], "1").await.status, 202);
    assert_eq!(s.post_in("q", &[], "2").await.status, 202);
    let r = s.post_in("q", &[], "3").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("30"));
    let (_, _, metrics) =
        crate::support::send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    assert!(
        String::from_utf8_lossy(&metrics)
            .contains("hookrelay_ingest_refused_total{reason=\"queue_depth\"} 1")
    );
    assert_eq!(s.get("/api/endpoints/q").await["counts"]["received"], 2);
}

#[tokio::test]
async fn a_restart_resumes_the_queue() {
    let addr = free_port().await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": format!("http://{addr}/"), "retry": vec!["200ms"; 50], "failure_threshold": 1000 })).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(s.post_in("q", &[], format!("r{i}")).await.event_id());
    }
    s.stop().await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut up = Receiver::on(listener, vec![Reply::status(200)]);
    let s = TestServer::start_with(config_at(&data)).await;
    let mut got: Vec<String> = Vec::new();
    for _ in 0..3 {
        got.push(String::from_utf8_lossy(&up.next().await.body).into_owned());
    }
    got.sort();
    assert_eq!(got, ["r0", "r1", "r2"]);
    for id in &ids {
        wait_until("delivered", || async {
            state(&s, id).await["state"] == "delivered"
        })
        .await;
    }
}

#[tokio::test]
async fn ping_on_activate_pings_when_created() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "p", "target": up.url("/"), "ping_on_activate": true }))
        .await;
    let got = up.next().await;
    let v: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(v["type"], "hookrelay.ping");
}

#[tokio::test]
async fn a_replay_that_delivers_takes_the_event_out_of_the_queue() {
    let mut up = Receiver::start(vec![Reply::status(500), Reply::status(200)]).await;
    let s = TestServer::start().await;
    // The retry is an hour away: only the replay can take the entry out.
    let id = a_retrying_event(&s, &mut up, json!(["1h"])).await;
    let (st, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), Some(json!({})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["event"]["state"], "delivered");
    up.next().await;
    wait_until("an empty queue", || async {
        let m = crate::support::send("GET", &s.admin_url("/metrics"), &[], Default::default())
            .await
            .2;
        String::from_utf8_lossy(&m).contains("hookrelay_queue_depth 0")
    })
    .await;
    assert!(
        up.drain().is_empty(),
        "the queue must not send a delivered event again"
    );
    assert_eq!(state(&s, &id).await["state"], "delivered");
}

/// The receiver answered but the store cannot record it: the write is tried
/// again until the store recovers, and the receiver is not sent the event
/// a second time (the worker's retry used to re-send it every 5 s for as
/// long as the store failed).
#[tokio::test]
async fn an_outcome_the_store_cannot_record_is_written_again_not_sent_again() {
    use hookrelay::store::Durability;
    use std::sync::Arc;

    // A queued event waiting an hour for its retry, left by a real server.
    let down = free_port().await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({
        "slug": "q", "mode": "queue", "target": format!("http://{down}/"), "retry": ["1h"]
    }))
    .await;
    let id = s.post_in("q", &[], "once").await.event_id();
    wait_until("retrying", || async {
        state(&s, &id).await["state"] == "retrying"
    })
    .await;
    s.stop().await;

    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let (store, relay) = crate::support::library_relay(&data, Durability::Buffered);
    relay
        .update(
            "q",
            hookrelay::endpoint::EndpointInput {
                target: Some(Some(up.url("/"))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let (due, queued, _) = store.queue_entries().unwrap().remove(0);
    assert_eq!(queued, id);

    store.inject_write_fault(true);
    let delivery = tokio::spawn({
        let relay = Arc::clone(&relay);
        let id = id.clone();
        async move { relay.deliver_queued("q", &id, due, false).await }
    });
    let got = up.next().await;
    assert_eq!(&got.body[..], b"once");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.refused_writes() < 3 {
        assert!(
            std::time::Instant::now() < deadline && !delivery.is_finished(),
            "the outcome write was not tried again ({} refused): {:?}",
            store.refused_writes(),
            if delivery.is_finished() {
                Some(delivery.await)
            } else {
                None
            }
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.inject_write_fault(false);
    let next = tokio::time::timeout(Duration::from_secs(10), delivery)
        .await
        .expect("the write succeeds once the store does")
        .unwrap()
        .unwrap();
    assert_eq!(next, None, "delivered: out of the queue");
    assert!(up.drain().is_empty(), "sent once");
    let ev = store.get_event(&id).unwrap().unwrap();
    assert_eq!(ev.state, hookrelay::event::EventState::Delivered);
    assert!(store.queue_entries().unwrap().is_empty());
}

async fn queue_depth(s: &TestServer) -> String {
    let m = crate::support::send("GET", &s.admin_url("/metrics"), &[], Default::default())
        .await
        .2;
    String::from_utf8_lossy(&m)
        .lines()
        .find(|l| l.starts_with("hookrelay_queue_depth "))
        .unwrap_or_default()
        .to_string()
}

/// A replay of an event whose queued attempt is under way waits for that
/// attempt to end: run side by side, each would settle the event without
/// the other (the worker's late failure undid the replay's success, and the
/// delivered event was sent again on the retry).
#[tokio::test]
async fn a_replay_waits_for_the_queued_attempt_under_way() {
    let mut up = Receiver::start(vec![
        Reply::status(500).delay(Duration::from_millis(700)),
        Reply::status(200),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "q", "mode": "queue", "target": up.url("/"), "retry": ["1s", "1s"] }),
    )
    .await;
    let id = s.post_in("q", &[], "once").await.event_id();
    up.next().await;
    let (status, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), None)
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], 200);
    let ev = state(&s, &id).await;
    let statuses: Vec<(&str, &Value)> = ev["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["trigger"].as_str().unwrap(), &a["status"]))
        .collect();
    assert_eq!(
        statuses,
        vec![("forward", &json!(500)), ("replay", &json!(200))],
        "the queue's attempt first, then the replay"
    );
    assert_eq!(ev["state"], "delivered");
    assert_eq!(
        queue_depth(&s).await,
        "hookrelay_queue_depth 0",
        "no retry left"
    );
}

/// An admin client that hangs up while its replay or ping is being sent
/// does not cut the attempt off between send and record.
#[tokio::test]
async fn a_replay_or_ping_outlives_the_admin_client_that_asked_for_it() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(Duration::from_millis(400))]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/") }))
        .await;
    let id = s.post_in("f", &[], "x").await.event_id();
    up.next().await;
    let hang_up = |path: String| async move {
        let req = format!("POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\r\n");
        crate::support::raw(s.admin, req.as_bytes(), Duration::from_millis(100)).await
    };
    let out = hang_up(format!("/api/events/{id}/replay")).await;
    assert!(out.is_empty(), "no answer yet");
    up.next().await;
    wait_until("the replay recorded", || async {
        state(&s, &id).await["attempts"].as_array().map(Vec::len) == Some(2)
    })
    .await;

    let out = hang_up("/api/endpoints/f/ping".into()).await;
    assert!(out.is_empty(), "no answer yet");
    up.next().await;
    wait_until("the ping delivered", || async {
        let list = s.get("/api/events?endpoint=f&state=delivered").await;
        list["events"].as_array().unwrap().len() == 2
    })
    .await;
}

/// Concurrent senders to an ordered endpoint: delivered in arrival (id)
/// order, and the depth limit counts events whose sync is still under way.
#[tokio::test]
async fn concurrent_senders_keep_order_and_the_depth_limit() {
    use std::sync::Arc;
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = Arc::new(TestServer::start().await);
    s.create_endpoint(
        json!({ "slug": "ord", "mode": "queue", "ordered": true, "target": up.url("/") }),
    )
    .await;
    let mut sent = Vec::new();
    for burst in 0..6 {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..8 {
            let s = Arc::clone(&s);
            let body = format!("{burst}-{i}");
            set.spawn(async move {
                let r = s.post_in("ord", &[], body.clone()).await;
                assert_eq!(r.status, 202);
                (r.event_id(), body)
            });
        }
        while let Some(r) = set.join_next().await {
            sent.push(r.unwrap());
        }
    }
    sent.sort();
    for (id, body) in &sent {
        let got = up.next().await;
        assert_eq!(
            String::from_utf8_lossy(&got.body),
            *body,
            "{id} out of order"
        );
    }

    // A target that never answers keeps everything queued: exactly the
    // limit is accepted, however many arrive within one sync.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    s.create_endpoint(json!({ "slug": "qd", "mode": "queue", "max_queue_depth": 2, "timeout_ms": 60000, "target": format!("http://{addr}/") }))
        .await;
    let mut set = tokio::task::JoinSet::new();
    for i in 0..12 {
        let s = Arc::clone(&s);
        set.spawn(async move { s.post_in("qd", &[], format!("{i}")).await.status });
    }
    let mut accepted = 0;
    while let Some(st) = set.join_next().await {
        accepted += usize::from(st.unwrap() == 202);
    }
    assert_eq!(accepted, 2);
    drop(silent);
}

/// A queued event is pushed to the queue before its sender's sync ends (to
/// keep arrival order); nothing may send it before that sender knows
/// whether it is stored — not when the store would sync for the worker,
/// and not at all once the sender took it back. Driven through the
/// library, the only way to hold a sender between its push and its verdict.
#[tokio::test]
async fn nothing_sends_a_queued_event_before_its_sender_has_its_verdict() {
    use hookrelay::store::{Durability, Store};

    let (_dir, data) = temp_data();
    let (store, relay) = crate::support::library_relay(&data, Durability::Sync);
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let ep = json!({ "slug": "q", "mode": "queue", "target": up.url("/hook") });
    relay
        .create(serde_json::from_value(ep).unwrap(), false)
        .await
        .unwrap();
    let stored = |body: &'static str| {
        let (id, at) = Store::new_id_ms();
        let ev: hookrelay::event::Event = serde_json::from_value(json!({
            "id": id, "endpoint": "q", "received_at": at, "method": "POST",
            "path": "", "query": null, "headers": [], "size": body.len(),
            "remote_addr": "127.0.0.1", "state": "received",
        }))
        .unwrap();
        assert!(relay.queue.admit("q", 100).is_ok());
        (
            store
                .insert_event_queued(ev, body.as_bytes(), Some(at))
                .unwrap(),
            at,
        )
    };
    // Polled once by hand: when that poll returns, the delivery has done
    // everything it does before its first wait, which must be the wait for
    // the sender's verdict (a delivery that did not wait would have read
    // the event by then and goes on to send it).
    async fn started<F: std::future::Future>(f: &mut std::pin::Pin<&mut F>) {
        tokio::select! {
            biased;
            _ = f.as_mut() => panic!("sent before its sender's verdict"),
            _ = std::future::ready(()) => {}
        }
    }

    // The sender is still waiting for its sync: the delivery waits too,
    // though the store itself would sync fine.
    let (ev, due) = stored("kept");
    let mark = relay.queue.push_unsynced("q", &ev.id, due);
    let delivery = relay.deliver_queued("q", &ev.id, due, false);
    tokio::pin!(delivery);
    started(&mut delivery).await;
    // Nothing signals a send that does not happen: the delivery is driven
    // for a while, far longer than a send to a local receiver takes.
    let quiet = Duration::from_millis(300);
    assert!(
        tokio::time::timeout(quiet, &mut delivery).await.is_err(),
        "sent before its sender's verdict"
    );
    assert!(up.drain().is_empty());
    mark.settle();
    assert_eq!(delivery.await.unwrap(), None, "delivered");
    assert_eq!(&up.next().await.body[..], b"kept");

    // Its sync failed: the sender takes it back, and nothing is sent.
    let (ev, due) = stored("refused");
    let mark = relay.queue.push_unsynced("q", &ev.id, due);
    let delivery = relay.deliver_queued("q", &ev.id, due, false);
    tokio::pin!(delivery);
    started(&mut delivery).await;
    store.withdraw(&ev, Some(due)).unwrap();
    mark.settle();
    assert_eq!(delivery.await.unwrap(), None);
    assert!(store.get_event(&ev.id).unwrap().is_none());

    // Taken to be held while its endpoint was paused, delivered after it
    // resumed: back in line, not sent out of turn (drained entries of an
    // ordered endpoint are taken all at once).
    let (ev, due) = stored("drained");
    relay.queue.push_unsynced("q", &ev.id, due).settle();
    relay
        .set_status("q", hookrelay::endpoint::Status::Paused)
        .await
        .unwrap();
    relay
        .set_status("q", hookrelay::endpoint::Status::Active)
        .await
        .unwrap();
    assert_eq!(
        relay.deliver_queued("q", &ev.id, due, true).await.unwrap(),
        Some(due)
    );
    assert!(up.drain().is_empty(), "a drained entry was sent");
    assert_eq!(
        relay.deliver_queued("q", &ev.id, due, false).await.unwrap(),
        None
    );
    assert_eq!(&up.next().await.body[..], b"drained");

    // A sender that hung up mid-sync leaves it to the delivery, which
    // syncs for itself: stored events are delivered.
    let (ev, due) = stored("left");
    drop(relay.queue.push_unsynced("q", &ev.id, due));
    assert_eq!(
        relay.deliver_queued("q", &ev.id, due, false).await.unwrap(),
        None
    );
    assert_eq!(&up.next().await.body[..], b"left");
    assert!(up.drain().is_empty(), "the refused event was sent");
}

/// The events a queue endpoint still owes are held, not settled, when its
/// target is taken away or it is deleted: their senders were told `202`.
/// Given a target again (or re-created), a release sends them, in order.
#[tokio::test]
async fn owed_events_are_held_when_the_target_goes_or_the_endpoint_is_deleted() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    for (slug, delete) in [("qt", false), ("qd", true)] {
        let ep =
            json!({ "slug": slug, "mode": "queue", "max_in_flight": 1, "target": up.url("/x") });
        s.create_endpoint(ep.clone()).await;
        // The first is under way while the endpoint changes; the other
        // three wait behind it (one in flight at a time).
        up.set_script(vec![
            // Long enough for the change below on a loaded machine.
            Reply::status(200).delay(Duration::from_millis(2000)),
            Reply::status(200),
        ]);
        for i in 0..4 {
            assert_eq!(
                s.post_in(slug, &[], format!("{slug}-{i}")).await.status,
                202
            );
        }
        assert_eq!(up.next().await.body, format!("{slug}-0"));
        let (st, v) = match delete {
            false => {
                s.api(
                    "PATCH",
                    &format!("/api/endpoints/{slug}"),
                    Some(json!({ "target": null })),
                )
                .await
            }
            true => {
                s.api("DELETE", &format!("/api/endpoints/{slug}"), None)
                    .await
            }
        };
        assert!(st == 200 || st == 204, "{st} {v}");
        let list = format!("/api/events?endpoint={slug}");
        let settled = |v: &Value| {
            let states = v["events"].as_array().unwrap().iter().map(|e| &e["state"]);
            states
                .filter(|st| *st == "held" || *st == "delivered")
                .count()
                == 4
        };
        wait_until("three held events and one delivered", || async {
            settled(&s.get(&list).await)
        })
        .await;
        let all = s.get(&list).await;
        let states: Vec<_> = all["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["state"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(states, ["held", "held", "held", "delivered"], "{all}");
        assert!(up.drain().is_empty(), "nothing else was sent");

        match delete {
            false => {
                let (st, v) = s
                    .api(
                        "PATCH",
                        &format!("/api/endpoints/{slug}"),
                        Some(json!({ "target": up.url("/x") })),
                    )
                    .await;
                assert_eq!(st, 200, "{v}");
            }
            true => {
                s.create_endpoint(ep).await;
            }
        }
        let (st, v) = s
            .api("POST", &format!("/api/endpoints/{slug}/release"), None)
            .await;
        assert_eq!(st, 200, "{v}");
        assert_eq!(v["released"], 3, "{v}");
        for i in 1..4 {
            assert_eq!(up.next().await.body, format!("{slug}-{i}"));
        }
    }
}
