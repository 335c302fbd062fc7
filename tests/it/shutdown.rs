//! Graceful shutdown: what is in flight when the server is told to stop is
//! finished, recorded and flushed before it returns.

use std::time::Duration;

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer, config_at, send, temp_data};

/// The receiver holds each answer this long, so that the stop below lands
/// while the request is still upstream (the test learns that it is there
/// from the receiver itself, not from the delay).
const HOLD: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_forward_in_flight_at_shutdown_is_answered_and_recorded() {
    let mut up = Receiver::start(vec![Reply::status(201).body("late").delay(HOLD)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/") }))
        .await;
    let url = s.ingest_url("/in/f");
    let sender = tokio::spawn(async move { send("POST", &url, &[], "in flight".into()).await });
    up.next().await;
    let stopped = tokio::spawn(s.stop());

    let (status, headers, body) = sender.await.unwrap();
    assert_eq!(status, 201, "the sender gets the target's answer");
    assert_eq!(&body[..], b"late");
    let id = headers
        .iter()
        .find(|(n, _)| n == "x-hookrelay-event")
        .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        .expect("event header");
    let _dir = stopped.await.unwrap();

    let s = TestServer::start_with(config_at(&data)).await;
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(ev["state"], "delivered");
    assert_eq!(ev["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(ev["attempts"][0]["status"], 201);
}

/// Queued deliveries run on the ingest threads: those threads must outlive
/// the queue worker's drain, or the attempt would be cancelled unrecorded.
#[tokio::test]
async fn a_queued_delivery_in_flight_at_shutdown_is_recorded() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(HOLD)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": up.url("/") }))
        .await;
    let id = s.post_in("q", &[], "queued".to_string()).await.event_id();
    up.next().await;
    let _dir = s.stop().await;

    let s = TestServer::start_with(config_at(&data)).await;
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(ev["state"], "delivered", "{ev}");
    assert_eq!(ev["attempts"].as_array().unwrap().len(), 1);
}

/// A forward is its own task: a sender that hung up does not cancel it, and
/// neither does a shutdown that finds no connection left to drain.
#[tokio::test]
async fn a_forward_whose_sender_hung_up_is_recorded_at_shutdown() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(HOLD)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/") }))
        .await;
    let req = "POST /in/f HTTP/1.1\r\nhost: x\r\ncontent-length: 7\r\n\r\nhang up";
    {
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::net::TcpStream::connect(s.ingest).await.unwrap();
        c.write_all(req.as_bytes()).await.unwrap();
        up.next().await;
    } // hung up while the target holds its answer
    let _dir = s.stop().await;

    let s = TestServer::start_with(config_at(&data)).await;
    let events = s.get("/api/events?endpoint=f").await;
    let ev = &events["events"][0];
    assert_eq!(ev["state"], "delivered", "{events}");
    assert_eq!(ev["last_status"], 200, "{events}");
}

/// A live stream (`hookrelay tail`, the dashboard's live view) ends cleanly
/// when shutdown begins: it used to hold the graceful drain for its whole
/// 30 s timeout.
#[tokio::test]
async fn a_live_stream_ends_at_shutdown_without_holding_it_up() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let s = TestServer::start().await;
    let mut conn = tokio::net::TcpStream::connect(s.admin).await.unwrap();
    conn.write_all(
        b"GET /api/stream HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 1024];
    let n = conn.read(&mut head).await.unwrap();
    assert!(
        head[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );
    let stopped = tokio::time::timeout(Duration::from_secs(10), s.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited for the open stream");
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(
        matches!(read, Ok(Ok(_))) && rest.ends_with("0\r\n\r\n"),
        "the stream ends with the chunked terminator: {read:?} {rest:?}"
    );
}

/// A second SIGTERM ends a drain that is waiting on a target that never
/// answers, at once (exit 130), instead of after the 30 s drain timeout.
#[tokio::test]
async fn a_second_signal_stops_the_drain() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(Duration::from_secs(120))]).await;
    let (_dir, data) = temp_data();
    let mut child = crate::support::child::spawn_binary(&data, "sync");
    let (st, _, _) = send(
        "POST",
        &format!("{}/api/endpoints", child.admin),
        &[("content-type", "application/json")],
        json!({ "slug": "h", "target": up.url("/") })
            .to_string()
            .into(),
    )
    .await;
    assert_eq!(st, 201);
    let url = format!("{}/in/h", child.ingest);
    let _sender = tokio::spawn(async move { send("POST", &url, &[], "x".into()).await });
    up.next().await;

    let pid = child.proc.id().to_string();
    let term = || {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    };
    term();
    // The listeners close once the first signal is handled.
    let admin = child.admin.trim_start_matches("http://").to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(&admin).await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first signal was not handled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    term();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.proc.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still draining after a second signal"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(130));
}

/// A release under way at shutdown finishes the delivery it is making and
/// leaves the rest held for the next run (it went on starting one after
/// another through the whole drain).
#[tokio::test]
async fn a_release_under_way_at_shutdown_leaves_the_rest_held() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(HOLD)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "r", "target": up.url("/"), "status": "paused" }))
        .await;
    for i in 0..5 {
        assert_eq!(s.post_in("r", &[], format!("held {i}")).await.status, 202);
    }
    let url = s.admin_url("/api/endpoints/r/resume?release=true");
    let release = tokio::spawn(async move { send("POST", &url, &[], "".into()).await });
    assert_eq!(up.next().await.body, "held 0");
    let stopped = tokio::spawn(s.stop());
    let (status, _, body) = release.await.unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let report = &answer["release"];
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(report["still_held"], 4, "{report}");
    let _dir = stopped.await.unwrap();

    let s = TestServer::start_with(config_at(&data)).await;
    let held = s.get("/api/events?endpoint=r&state=held").await;
    assert_eq!(held["events"].as_array().unwrap().len(), 4, "{held}");
}
