//! Open-file limits: idle senders cannot take the descriptors a forward
//! (or the store) needs, and hookrelay's own shortage is not the target's
//! failure.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::receiver::{Receiver, Reply};
use crate::support::{send, temp_data};

/// The child's limit, soft and hard, as `ulimit -n` sets them.
const CHILD_NOFILE: u32 = 256;
/// Idle senders: more than the child has descriptors.
const HOGS: usize = 400;

/// Connections the kernel holds for `listener` that nobody has accepted
/// yet: a listening socket's receive queue.
fn accept_queue(listener: SocketAddr) -> u64 {
    let anywhere: SocketAddr = "0.0.0.0:0".parse().unwrap();
    crate::support::tcp_queues(listener, anywhere)
        .expect("the listening socket")
        .1
}

#[tokio::test]
async fn idle_senders_beyond_the_open_file_limit_do_not_starve_a_forward() {
    let ours = hookrelay::fds::raise();
    assert!(
        ours >= 2 * HOGS as u64,
        "this test needs {} open files, the hard limit allows {ours}",
        2 * HOGS
    );
    let first = Receiver::start(vec![Reply::status(200)]).await;
    let second = Receiver::start(vec![Reply::status(200).body("fresh")]).await;
    let (_dir, data) = temp_data();
    let child = crate::support::child::spawn_binary_limited(&data, CHILD_NOFILE);
    for (slug, up) in [("a", &first), ("b", &second)] {
        let (st, _, body) = send(
            "POST",
            &format!("{}/api/endpoints", child.admin),
            &[("content-type", "application/json")],
            json!({ "slug": slug, "target": up.url("/") })
                .to_string()
                .into(),
        )
        .await;
        assert_eq!(st, 201, "{body:?}");
    }
    let ingest: SocketAddr = child.ingest.trim_start_matches("http://").parse().unwrap();
    let admin: SocketAddr = child.admin.trim_start_matches("http://").parse().unwrap();

    // Connections opened before the crowd: one sender's, one operator's.
    let open = |addr| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender
    };
    let mut warm = open(ingest).await;
    let mut operator = open(admin).await;
    let call = async |conn: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
                      method: &str,
                      path: &str| {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "127.0.0.1")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(30), conn.send_request(req))
            .await
            .expect("an answer within 30 s")
            .expect("an answer");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, body)
    };
    assert_eq!(call(&mut warm, "POST", "/in/a").await.0, 200);

    // Each idle sender asks for /healthz once and then stays: every one
    // is either answered (accepted) or still in the kernel's queue.
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut hogs = Vec::new();
    for _ in 0..HOGS {
        let mut s = tokio::net::TcpStream::connect(ingest).await.unwrap();
        let tx = answered_tx.clone();
        hogs.push(tokio::spawn(async move {
            s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .unwrap();
            let mut buf = [0u8; 512];
            if matches!(s.read(&mut buf).await, Ok(n) if n > 0) {
                let _ = tx.send(());
            }
            // Held open until the test ends.
            std::future::pending::<()>().await;
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = 0u64;
    loop {
        while answered_rx.try_recv().is_ok() {
            answered += 1;
        }
        // hookrelay has taken all it will take: by its own limit, or
        // because it has no descriptor left.
        if answered + accept_queue(ingest) >= HOGS as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{answered} answered, {} queued",
            accept_queue(ingest)
        );
        tokio::select! {
            _ = answered_rx.recv() => answered += 1,
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
    assert!(
        answered < u64::from(CHILD_NOFILE) / 2,
        "hookrelay accepted {answered} connections under a limit of {CHILD_NOFILE} open files"
    );

    // A target it has no connection to yet: a new outbound connection.
    let (status, body) = call(&mut warm, "POST", "/in/b").await;
    assert_eq!(
        (status, &body[..]),
        (200, &b"fresh"[..]),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, body) = call(&mut operator, "GET", "/api/endpoints/b").await;
    assert_eq!(status, 200);
    let ep: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (ep["status"].as_str(), ep["consecutive_failures"].as_u64()),
        (Some("active"), Some(0)),
        "{ep}"
    );
    for h in hogs {
        h.abort();
    }
}

/// More forwards at once than hookrelay may open outbound connections
/// (one HTTP/2 sender, a hundred streams, a slow target): those left
/// without a connection are answered `503`, stored, and not counted
/// against the target.
#[tokio::test]
async fn forwards_beyond_the_outbound_share_are_hookrelays_503_not_the_targets_failure() {
    beyond_the_outbound_share(Duration::from_secs(4), None).await;
}

/// The same with an attempt timeout shorter than the wait for a slot: the
/// wait stays within the timeout, so a shortage is still hookrelay's `503`
/// (it was the target's timeout, counted, once a slot came too late).
#[tokio::test]
async fn a_short_timeout_does_not_turn_a_wait_for_a_connection_into_the_targets_timeout() {
    // The wait is 950 ms; slots come free after 1.4 s, too late for it.
    beyond_the_outbound_share(Duration::from_millis(1400), Some(1900)).await;
}

/// One HTTP/2 sender, a hundred streams at once, to a target answering
/// after `delay`.
async fn beyond_the_outbound_share(delay: Duration, timeout_ms: Option<u64>) {
    let streams = 100;
    let up = Receiver::start(vec![Reply::status(200).delay(delay)]).await;
    let (_dir, data) = temp_data();
    let child = crate::support::child::spawn_binary_limited(&data, CHILD_NOFILE);
    let mut endpoint = json!({ "slug": "many", "target": up.url("/") });
    if let Some(ms) = timeout_ms {
        endpoint["timeout_ms"] = ms.into();
    }
    let (st, _, body) = send(
        "POST",
        &format!("{}/api/endpoints", child.admin),
        &[("content-type", "application/json")],
        endpoint.to_string().into(),
    )
    .await;
    assert_eq!(st, 201, "{body:?}");
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let url = format!("{}/in/many", child.ingest);
    let sends: Vec<_> = (0..streams)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let req = http::Request::post(url)
                    .body(Full::new(Bytes::from(format!("{i}"))))
                    .unwrap();
                let resp = client.request(req).await.expect("an answer");
                let status = resp.status().as_u16();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                (status, body)
            })
        })
        .collect();
    let (mut ok, mut local) = (0, 0);
    for s in sends {
        let (status, body) = tokio::time::timeout(Duration::from_secs(30), s)
            .await
            .expect("every stream answered")
            .unwrap();
        match status {
            200 => ok += 1,
            503 => {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert!(v["stored"] == true && v["event"].is_string(), "{v}");
                local += 1;
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&body)),
        }
    }
    assert!(ok > 0 && local > 0, "{ok} forwarded, {local} refused");
    let (st, _, body) = send(
        "GET",
        &format!("{}/api/endpoints/many", child.admin),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    let ep: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (ep["status"].as_str(), ep["consecutive_failures"].as_u64()),
        (Some("active"), Some(0)),
        "{ep}"
    );
}
