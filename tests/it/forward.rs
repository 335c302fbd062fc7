//! Forward mode: store first, forward faithfully both ways, record the attempt.

use std::time::Duration;

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer};

#[tokio::test]
async fn forwarding_is_faithful_both_ways() {
    let mut up = Receiver::start(vec![
        Reply::status(201)
            .header("x-upstream", "yes")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body("created"),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "fwd", "target": up.url("/hooks") }))
        .await;

    let body: Vec<u8> = vec![0, 1, 2, 0xff, b'{', b'}'];
    let r = s
        .post_in(
            "fwd/extra/path?x=1&y=2",
            &[
                ("X-Custom", "v1"),
                ("x-custom", "v2"),
                ("Connection", "keep-alive, x-hop"),
                ("x-hop", "drop me"),
                ("content-type", "application/octet-stream"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
            body.clone(),
        )
        .await;

    let got = up.next().await;
    assert_eq!(got.method, "POST");
    assert_eq!(got.uri, "/hooks/extra/path?x=1&y=2");
    assert_eq!(&got.body[..], &body[..]);
    assert_eq!(got.header_all("x-custom"), ["v1", "v2"]);
    assert_eq!(
        got.header("x-hop"),
        None,
        "headers named by Connection are hop-by-hop"
    );
    assert_eq!(
        got.header("x-forwarded-for").as_deref(),
        Some("10.0.0.1, 127.0.0.1")
    );
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(got.header("x-forwarded-host"), Some(s.ingest.to_string()));
    assert_eq!(
        got.header("host"),
        Some(up.addr.to_string()),
        "Host is the target's"
    );
    assert_eq!(
        got.header("content-type").as_deref(),
        Some("application/octet-stream")
    );

    assert_eq!(r.status, 201);
    assert_eq!(&r.body[..], b"created");
    assert_eq!(r.header("x-upstream").as_deref(), Some("yes"));
    let cookies: Vec<_> = r
        .headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .collect();
    assert_eq!(cookies.len(), 2);

    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "delivered");
    assert_eq!(ev["last_status"], 201);
    let a = &ev["attempts"][0];
    assert_eq!(a["n"], 1);
    assert_eq!(a["trigger"], "forward");
    assert_eq!(a["status"], 201);
    assert_eq!(a["success"], true);
    assert_eq!(a["body"], "created");
    assert_eq!(a["url"], up.url("/hooks/extra/path?x=1&y=2"));
    assert!(a["error"].is_null());
    assert!(a["latency_ms"].is_u64());
}

#[tokio::test]
async fn an_unreachable_target_is_502_and_a_failed_attempt() {
    // Bind then drop: a port nobody listens on.
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "down", "target": format!("http://127.0.0.1:{port}/") }))
        .await;
    let r = s.post_in("down", &[], "x").await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["stored"], true);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "failed");
    assert_eq!(ev["attempts"][0]["error"], "connect");
    assert!(ev["attempts"][0]["status"].is_null());
}

/// The sender reads the target's own status line: its reason phrase, and
/// none (not hyper's `<none>`) for a status without a name, whole or
/// passed on as it arrives (over the attempt record's 64 KiB).
#[tokio::test]
async fn the_targets_reason_phrase_reaches_the_sender() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let long = "x".repeat(100_000);
    let answers = [
        "HTTP/1.1 201 Made It\r\ncontent-length: 2\r\n\r\nok".to_string(),
        "HTTP/1.1 599\r\ncontent-length: 2\r\n\r\nok".to_string(),
        format!(
            "HTTP/1.1 200 Fine Thanks\r\ncontent-length: {}\r\n\r\n{long}",
            long.len()
        ),
    ];
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = format!("http://{}/", l.local_addr().unwrap());
    tokio::spawn(async move {
        for answer in answers {
            let (mut c, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // The request is small: its head and 1-byte body.
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            c.write_all(answer.as_bytes()).await.unwrap();
            c.shutdown().await.unwrap();
        }
    });
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "r", "target": target }))
        .await;
    for want in [
        "HTTP/1.1 201 Made It\r\n",
        "HTTP/1.1 599 \r\n",
        "HTTP/1.1 200 Fine Thanks\r\n",
    ] {
        let req =
            "POST /in/r HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx";
        let out = crate::support::raw(s.ingest, req.as_bytes(), Duration::from_secs(10)).await;
        assert!(
            out.starts_with(want.as_bytes()),
            "{want:?}: {:?}",
            String::from_utf8_lossy(&out[..out.len().min(80)])
        );
    }
}

#[tokio::test]
async fn a_slow_target_is_504_at_the_timeout() {
    let up = Receiver::start(vec![Reply::status(200).delay(Duration::from_secs(5))]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "slow", "target": up.url("/"), "timeout_ms": 300 }))
        .await;
    let started = std::time::Instant::now();
    let r = s.post_in("slow", &[], "x").await;
    assert_eq!(r.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "gave up at the timeout"
    );
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["attempts"][0]["error"], "timeout");
    let latency = ev["attempts"][0]["latency_ms"].as_u64().unwrap();
    assert!((300..2000).contains(&latency), "latency {latency}");
}

/// `?` with nothing after it is part of the URL some senders sign.
#[tokio::test]
async fn an_empty_query_is_sent_on_as_sent() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "q", "target": up.url("/hooks") }))
        .await;
    assert_eq!(s.post_in("q/p?", &[], "x").await.status, 200);
    assert_eq!(up.next().await.uri, "/hooks/p?");
    assert_eq!(s.post_in("q/p", &[], "x").await.status, 200);
    assert_eq!(up.next().await.uri, "/hooks/p");
}

/// A target that sends its status and then stalls its body: still a
/// timeout, and the attempt says the status came.
#[tokio::test]
async fn a_body_that_stalls_after_the_status_is_a_timeout_that_names_the_status() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = target.local_addr().unwrap();
    let stall = tokio::spawn(async move {
        let (mut c, _) = target.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = c.read(&mut buf).await.unwrap();
        c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc")
            .await
            .unwrap();
        // Held open, silent, until the test ends.
        std::future::pending::<()>().await;
        drop(c);
    });
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "stall", "target": format!("http://{addr}/"), "timeout_ms": 300 }),
    )
    .await;
    let r = s.post_in("stall", &[], "x").await;
    assert_eq!(r.status, 504);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    let attempt = &ev["attempts"][0];
    assert_eq!(attempt["error"], "timeout");
    assert_eq!(
        attempt["error_detail"],
        "HTTP 200 OK came, but its body did not end within 300 ms"
    );
    stall.abort();
}

#[tokio::test]
async fn redirects_are_answers_not_followed() {
    let mut up = Receiver::start(vec![
        Reply::status(302).header("location", "/elsewhere"),
        Reply::status(307).header("location", "/x"),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "r", "target": up.url("/") }))
        .await;
    let r = s.post_in("r", &[], "x").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location").as_deref(), Some("/elsewhere"));
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "delivered", "302 is a success by default");
    let r = s.post_in("r", &[], "y").await;
    assert_eq!(r.status, 307);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "failed", "307 is not a success by default");
    assert_eq!(up.drain().len(), 2, "nothing followed the Location");
}

#[tokio::test]
async fn a_large_response_body_is_returned_whole_and_recorded_capped() {
    let big = vec![b'a'; 100 * 1024];
    let up = Receiver::start(vec![Reply::status(200).body(big.clone())]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "big", "target": up.url("/") }))
        .await;
    let r = s.post_in("big", &[], "x").await;
    assert_eq!(r.body.len(), big.len());
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    let a = &ev["attempts"][0];
    assert_eq!(a["body_truncated"], true);
    assert_eq!(a["body_size"], big.len());
    assert_eq!(a["body"].as_str().unwrap().len(), 64 * 1024);
}

#[tokio::test]
async fn a_test_ping_is_signed_sent_and_recorded() {
    let mut up = Receiver::start(vec![Reply::status(204)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "pg", "target": up.url("/hook"), "signature": { "scheme": "github", "secret": "pingsecret" } })).await;
    let (status, v) = s.api("POST", "/api/endpoints/pg/ping", None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["attempt"]["trigger"], "ping");
    assert_eq!(v["attempt"]["status"], 204);
    let got = up.next().await;
    let body: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["type"], "hookrelay.ping");
    assert_eq!(
        got.header("x-github-event").as_deref(),
        Some("ping"),
        "GitHub's own ping event name"
    );
    let cfg = hookrelay::signature::SignatureConfig::new("github", "pingsecret");
    let check = hookrelay::signature::verify(&cfg, &got.headers, &got.body, None, 0);
    assert_eq!(
        check.verdict,
        hookrelay::signature::Verdict::Valid,
        "{}",
        check.detail
    );
    let ev = s
        .get(&format!(
            "/api/events/{}",
            v["event"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ev["topic"], "hookrelay.ping");
    assert_eq!(ev["state"], "delivered");
    assert_eq!(
        ev["signature"]["verdict"], "valid",
        "checked like any event of a signed endpoint: {}",
        ev["signature"]
    );
    let names: Vec<&str> = ev["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    assert!(names.contains(&"x-hub-signature-256"), "{names:?}");
    assert!(
        !got.headers
            .iter()
            .any(|(n, _)| n.starts_with("x-forwarded-")),
        "a ping has no sender to forward for: {:?}",
        got.headers
    );

    s.create_endpoint(json!({ "slug": "bin" })).await;
    let (status, v) = s.api("POST", "/api/endpoints/bin/ping", None).await;
    assert_eq!(status, 422, "{v}");
}

#[tokio::test]
async fn a_sender_that_hangs_up_does_not_stop_the_attempt() {
    let mut up = Receiver::start(vec![Reply::status(200).delay(Duration::from_millis(500))]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "hang", "target": up.url("/") }))
        .await;
    // Send, then close before the target answers.
    let req = b"POST /in/hang HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi";
    let out = crate::support::raw(s.ingest, req, Duration::from_millis(100)).await;
    assert!(out.is_empty(), "no answer yet");
    up.next().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = s.get("/api/events?endpoint=hang").await;
        if list["events"][0]["state"] == "delivered" {
            assert_eq!(list["events"][0]["attempt_count"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "attempt never recorded: {list}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_sender_cannot_spoof_the_forwarded_proto() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "sp", "target": up.url("/") }))
        .await;
    s.post_in(
        "sp",
        &[
            ("x-forwarded-proto", "https"),
            ("x-hookrelay-proto", "https"),
        ],
        "x",
    )
    .await;
    let got = up.next().await;
    assert_eq!(got.header_all("x-forwarded-proto"), ["http"]);
}

/// A forward keeps the sender's header order, extending `X-Forwarded-For`
/// where it stands (it used to move to the end); a replay sends what the
/// first delivery sent, in the same order.
#[tokio::test]
async fn x_forwarded_headers_are_extended_in_place_and_replayed_alike() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let mut other = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "xo", "target": up.url("/") }))
        .await;
    let r = s
        .post_in(
            "xo",
            &[
                ("x-a", "1"),
                ("x-forwarded-for", "9.9.9.9"),
                ("x-forwarded-proto", "https"),
                ("x-b", "2"),
            ],
            "x",
        )
        .await;
    let seen = |got: &crate::support::receiver::Received| -> Vec<(String, String)> {
        got.headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-"))
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    };
    let ingest = s.ingest.to_string();
    let id = r.event_id();
    let want: Vec<(String, String)> = [
        ("x-a", "1"),
        ("x-forwarded-for", "9.9.9.9, 127.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("x-b", "2"),
        ("x-forwarded-host", ingest.as_str()),
        // What the receiver dedupes on: the same on the replay.
        ("x-hookrelay-event", id.as_str()),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(seen(&up.next().await), want);

    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{}/replay", r.event_id()),
            Some(json!({ "target": other.url("/") })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        seen(&other.next().await),
        want,
        "the replay is the same request"
    );
}

/// A sender's `Forwarded` (RFC 7239) gets this hop after its own elements
/// and its `X-Real-IP` becomes the address it came from: a receiver that
/// reads either learns what hookrelay saw, not only what the sender said.
/// Neither is added where the sender sent none.
#[tokio::test]
async fn forwarded_and_x_real_ip_from_a_sender_name_this_hop() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "fw", "target": up.url("/") }))
        .await;
    let r = s
        .post_in(
            "fw",
            &[
                ("forwarded", "for=6.6.6.6;proto=https"),
                ("x-real-ip", "6.6.6.6"),
                ("X-Forwarded-Port", "443"),
                ("x-forwarded-prefix", "/evil"),
            ],
            "x",
        )
        .await;
    assert_eq!(r.status, 200);
    let got = up.next().await;
    // Hop facts hookrelay does not vouch for: only from a trusted proxy.
    assert!(
        got.header("x-forwarded-port").is_none() && got.header("x-forwarded-prefix").is_none(),
        "{:?}",
        got.headers
    );
    assert_eq!(
        got.header_all("forwarded"),
        [format!(
            "for=6.6.6.6;proto=https, for=127.0.0.1;host=\"{}\";proto=http",
            s.ingest
        )]
    );
    assert_eq!(got.header_all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(s.post_in("fw", &[], "y").await.status, 200);
    let got = up.next().await;
    assert!(got.header("forwarded").is_none() && got.header("x-real-ip").is_none());
}

/// Over HTTP/2 the host travels as `:authority`, with no `Host` header: a
/// sender's own `X-Forwarded-Host` must still not reach the target as if
/// hookrelay had set it. An empty `X-Forwarded-For` line is replaced, not
/// extended into an empty first entry.
#[tokio::test]
async fn a_sender_cannot_spoof_the_forwarded_host_over_http2() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "h2", "target": up.url("/") }))
        .await;
    let client: hyper_util::client::legacy::Client<_, http_body_util::Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build_http();
    let req = http::Request::post(s.ingest_url("/in/h2"))
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-for", "")
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"x")))
        .unwrap();
    let resp = client.request(req).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let got = up.next().await;
    // HTTP/2 cookie fields, one per pair, reach an HTTP/1.1 receiver as
    // one line (RFC 9113 §8.2.3): many read only the first.
    assert_eq!(got.header_all("cookie"), ["a=1; b=2"]);
    // The host the sender addressed, as HTTP/2 carries it.
    assert_eq!(got.header_all("x-forwarded-host"), [s.ingest.to_string()]);
    assert_eq!(got.header_all("x-forwarded-for"), ["127.0.0.1"]);
    // An HTTP/1.0 request in absolute form without Host names what it
    // likes (credentials included): no X-Forwarded-Host from it. (HTTP/1.1
    // without Host is refused: see bad_input.)
    let req = "POST http://user:pw@evil.example:8443/in/h2/x HTTP/1.0\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx";
    let out = crate::support::raw(s.ingest, req.as_bytes(), Duration::from_secs(10)).await;
    assert!(
        out.starts_with(b"HTTP/1.0 200") || out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let got = up.next().await;
    assert!(
        got.header_all("x-forwarded-host").is_empty(),
        "{:?}",
        got.header_all("x-forwarded-host")
    );
}

/// An empty POST still says how long it is (hyper sends no length for an
/// empty body, and some receivers answer 411 without one); an answer to
/// HEAD keeps the length the target stated.
#[tokio::test]
async fn empty_bodies_and_head_answers_keep_their_length() {
    let mut up = Receiver::start(vec![
        Reply::status(200),
        Reply::status(200).body(vec![b'x'; 12345]),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/") }))
        .await;
    assert_eq!(s.post_in("f", &[], "").await.status, 200);
    let got = up.next().await;
    assert_eq!(got.header_all("content-length"), ["0"], "{:?}", got.headers);
    let req = "HEAD /in/f HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let out = crate::support::raw(s.ingest, req.as_bytes(), Duration::from_secs(10)).await;
    let out = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(out.starts_with("http/1.1 200"), "{out}");
    assert!(out.contains("content-length: 12345\r\n"), "{out}");
    assert_eq!(up.next().await.method, "HEAD");
}

/// Behind a proxy the operator trusts (`--trusted-proxy`), the event names
/// the client that proxy vouches for, a TLS hop before it counts, and the
/// copy sent on carries the chain with the proxy appended. Without trust the
/// same headers change nothing; and wrong token guesses are charged to the
/// client, so one guesser behind the proxy does not lock out the others.
#[tokio::test]
async fn a_trusted_proxy_names_the_client() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let (_dir, data) = crate::support::temp_data();
    let mut cfg = crate::support::config_at(&data);
    cfg.trusted_proxies = hookrelay::forwarded::TrustedProxies::new(vec![
        hookrelay::forwarded::parse_net("127.0.0.1").unwrap(),
    ]);
    cfg.admin_token = Some("s3cret-token".into());
    let s = TestServer::start_with(cfg).await;
    let auth = [("authorization", "Bearer s3cret-token")];
    let (st, _, _) = crate::support::send(
        "POST",
        &s.admin_url("/api/endpoints"),
        &[auth[0], ("content-type", "application/json")],
        serde_json::to_vec(&json!({ "slug": "f", "target": up.url("/hook") }))
            .unwrap()
            .into(),
    )
    .await;
    assert_eq!(st, 201);
    let sent = [
        ("x-forwarded-for", "6.6.6.6, 203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-port", "8443"),
    ];
    let r = s.post_in("f", &sent, "x").await;
    assert_eq!(r.status, 200);
    let got = up.next().await;
    assert_eq!(got.header_all("x-forwarded-port"), ["8443"]);
    assert_eq!(
        got.header("x-forwarded-for").as_deref(),
        Some("6.6.6.6, 203.0.113.7, 127.0.0.1")
    );
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("https"));
    let event = |id: String| {
        let url = s.admin_url(&format!("/api/events/{id}"));
        async move {
            let (_, _, ev) = crate::support::send("GET", &url, &auth, Default::default()).await;
            serde_json::from_slice::<serde_json::Value>(&ev).unwrap()
        }
    };
    let ev = event(r.event_id()).await;
    assert_eq!(ev["remote_addr"], "203.0.113.7", "{ev}");
    assert!(ev["proxy_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    let (_, _, page) = crate::support::send(
        "GET",
        &s.admin_url(&format!("/events/{}", r.event_id())),
        &auth,
        Default::default(),
    )
    .await;
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("<code>203.0.113.7</code>"), "{page}");
    assert!(
        page.contains("via trusted proxy <code>127.0.0.1:"),
        "{page}"
    );
    // A TLS terminator that names no client still says its hop was TLS.
    s.post_in("f", &[("x-forwarded-proto", "https")], "y").await;
    let got = up.next().await;
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("https"));
    assert_eq!(got.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    // nginx's `X-Real-IP $remote_addr` without `X-Forwarded-For`: the
    // client is named, and its header goes on as the proxy set it.
    let r = s.post_in("f", &[("x-real-ip", "198.51.100.9")], "z").await;
    let got = up.next().await;
    assert_eq!(got.header_all("x-real-ip"), ["198.51.100.9"]);
    let ev = event(r.event_id()).await;
    assert_eq!(ev["remote_addr"], "198.51.100.9", "{ev}");

    // One client's wrong guesses do not spend another's budget.
    let guess = |client: &'static str| {
        let url = s.admin_url("/api/endpoints");
        async move {
            crate::support::send(
                "GET",
                &url,
                &[
                    ("authorization", "Bearer wrong-guess"),
                    ("x-forwarded-for", client),
                ],
                Default::default(),
            )
            .await
            .0
        }
    };
    for _ in 0..5 {
        assert_eq!(guess("198.51.100.1").await, 401);
    }
    assert_eq!(guess("198.51.100.1").await, 429);
    assert_eq!(
        guess("198.51.100.2").await,
        401,
        "another client behind the proxy"
    );
}

/// Without `--trusted-proxy` a sender's `X-Forwarded-For` is just a header.
#[tokio::test]
async fn without_trust_forwarded_headers_name_nobody() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/hook") }))
        .await;
    let r = s
        .post_in(
            "f",
            &[
                ("x-forwarded-for", "203.0.113.7"),
                ("x-forwarded-proto", "https"),
            ],
            "x",
        )
        .await;
    let got = up.next().await;
    assert_eq!(
        got.header("x-forwarded-for").as_deref(),
        Some("203.0.113.7, 127.0.0.1")
    );
    assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("http"));
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert!(
        ev["remote_addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(ev["proxy_addr"].is_null());
}

/// The sender learns the event from hookrelay's `X-Hookrelay-Event`, never
/// from one the target set: the target's goes, one header stays.
#[tokio::test]
async fn the_targets_own_event_header_is_replaced() {
    let mut up = Receiver::start(vec![
        Reply::status(200)
            .header("x-hookrelay-event", "forged-by-target")
            .header("X-Hookrelay-Event", "again")
            .body("ok"),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "eh", "target": up.url("/") }))
        .await;
    let r = s.post_in("eh", &[], "x").await;
    up.next().await;
    assert_eq!(r.status, 200);
    let values: Vec<String> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-hookrelay-event"))
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(values.len(), 1, "one header: {values:?}");
    let listed = s.get("/api/events?endpoint=eh").await;
    assert_eq!(
        values[0],
        listed["events"][0]["id"].as_str().unwrap(),
        "hookrelay's value"
    );
    assert_eq!(&r.body[..], b"ok", "the rest of the answer as it came");
}

/// A target that answers a chunked body in steps, each sent when the test
/// says: what it sends and when is the test's, not hyper's.
struct Stepped {
    addr: std::net::SocketAddr,
    steps: tokio::sync::mpsc::UnboundedSender<Step>,
}

enum Step {
    /// A chunk of the body.
    Chunk(Vec<u8>),
    /// The end of the body.
    End,
    /// The connection closed, the body left unfinished.
    Cut,
}

impl Stepped {
    /// Reads one request, answers `200` with a chunked body, then follows
    /// the steps.
    async fn start() -> Stepped {
        Stepped::start_with("").await
    }

    /// [`Stepped::start`] with `extra` lines (each ending in CRLF) in the
    /// answer's head.
    async fn start_with(extra: &str) -> Stepped {
        let answer_head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n{extra}transfer-encoding: chunked\r\n\r\n"
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let (mut c, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request came whole");
                head.extend_from_slice(&buf[..n]);
            }
            c.write_all(answer_head.as_bytes()).await.unwrap();
            while let Some(step) = rx.recv().await {
                match step {
                    Step::Chunk(data) => {
                        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
                        out.extend_from_slice(&data);
                        out.extend_from_slice(b"\r\n");
                        if c.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                    Step::End => {
                        let _ = c.write_all(b"0\r\n\r\n").await;
                        // Kept open: hookrelay may reuse it.
                        std::future::pending::<()>().await;
                    }
                    Step::Cut => return,
                }
            }
        });
        Stepped { addr, steps: tx }
    }

    fn send(&self, step: Step) {
        self.steps.send(step).unwrap();
    }
}

/// A forward whose answer the test reads as it comes: its status, and the
/// body as a stream of frames.
async fn forward_streamed(
    s: &TestServer,
    slug: &str,
) -> (http::StatusCode, http::HeaderMap, hyper::body::Incoming) {
    use http_body_util::Full;
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let req = http::Request::post(s.ingest_url(&format!("/in/{slug}")))
        .body(Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("the head came while the body was still at the target")
        .unwrap();
    let (parts, body) = resp.into_parts();
    (parts.status, parts.headers, body)
}

/// Reads from `body` until `n` bytes came (or it ended).
async fn read_at_least(body: &mut hyper::body::Incoming, n: usize) -> Vec<u8> {
    use http_body_util::BodyExt;
    let mut got = Vec::new();
    while got.len() < n {
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("the answer's start came while its rest was still at the target");
        match frame {
            Some(Ok(f)) => got.extend_from_slice(&f.into_data().unwrap_or_default()),
            _ => break,
        }
    }
    got
}

/// The event's attempt once it is recorded (after the whole answer came).
async fn recorded_attempt(s: &TestServer, id: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ev = s.get(&format!("/api/events/{id}")).await;
        if let Some(a) = ev["attempts"].get(0) {
            return json!({ "event": ev.clone(), "attempt": a.clone() });
        }
        assert!(std::time::Instant::now() < deadline, "no attempt: {ev}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A long answer is passed on as it arrives: the sender reads its start
/// while the rest is still at the target (nothing holds it whole, however
/// long), and the attempt is recorded once all of it has come.
#[tokio::test]
async fn a_long_answer_is_passed_on_as_it_arrives() {
    let target = Stepped::start().await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "long", "target": format!("http://{}/", target.addr) }))
        .await;
    target.send(Step::Chunk(vec![b'a'; 100 * 1024]));
    let (status, headers, mut body) = forward_streamed(&s, "long").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain");
    let id = headers["x-hookrelay-event"].to_str().unwrap().to_string();
    let start = read_at_least(&mut body, 100 * 1024).await;
    assert_eq!(start, vec![b'a'; 100 * 1024]);
    // Only now does the target send the rest: an answer held whole until
    // its end would have left the read above waiting.
    let (_, ev) = s.api("GET", &format!("/api/events/{id}"), None).await;
    assert_eq!(
        ev["attempts"].as_array().map(Vec::len),
        Some(0),
        "recorded before the end: {ev}"
    );
    for _ in 0..40 {
        target.send(Step::Chunk(vec![b'b'; 1024 * 1024]));
    }
    target.send(Step::End);
    let rest = read_at_least(&mut body, usize::MAX).await;
    assert_eq!(rest.len(), 40 * 1024 * 1024, "the rest came whole");
    assert!(rest.iter().all(|b| *b == b'b'));
    let got = recorded_attempt(&s, &id).await;
    let a = &got["attempt"];
    assert_eq!(a["status"], 200, "{a}");
    assert_eq!(a["success"], true, "{a}");
    assert_eq!(a["body_size"], 100 * 1024 + 40 * 1024 * 1024, "{a}");
    assert_eq!(a["body_truncated"], true, "{a}");
    assert_eq!(a["body"].as_str().unwrap().len(), 64 * 1024, "{a}");
    assert_eq!(got["event"]["state"], "delivered");
}

/// A sender that hangs up in the middle of a long answer does not cut the
/// attempt short: it is read to its end and recorded as the target gave it.
#[tokio::test]
async fn a_sender_that_hangs_up_mid_answer_leaves_the_attempt_whole() {
    let target = Stepped::start().await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "gone", "target": format!("http://{}/", target.addr) }))
        .await;
    target.send(Step::Chunk(vec![b'a'; 100 * 1024]));
    let (status, headers, mut body) = forward_streamed(&s, "gone").await;
    assert_eq!(status, 200);
    let id = headers["x-hookrelay-event"].to_str().unwrap().to_string();
    read_at_least(&mut body, 1).await;
    drop(body);
    for _ in 0..4 {
        target.send(Step::Chunk(vec![b'b'; 1024 * 1024]));
    }
    target.send(Step::End);
    let got = recorded_attempt(&s, &id).await;
    let a = &got["attempt"];
    assert_eq!(a["success"], true, "{a}");
    assert_eq!(a["body_size"], 100 * 1024 + 4 * 1024 * 1024, "{a}");
    assert_eq!(got["event"]["state"], "delivered");
}

/// A slow sender holds a long answer back; the target's timeout counts
/// only the time spent waiting for the target, so the sender's pace is not
/// charged to the target as a timeout.
#[tokio::test]
async fn a_slow_sender_of_a_long_answer_is_not_the_targets_timeout() {
    let target = Stepped::start().await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "slow",
        "target": format!("http://{}/", target.addr),
        "timeout_ms": 1000,
    }))
    .await;
    target.send(Step::Chunk(vec![b'a'; 100 * 1024]));
    // More at once than the sockets and hookrelay's pieces hold.
    for _ in 0..32 {
        target.send(Step::Chunk(vec![b'b'; 1024 * 1024]));
    }
    let (status, headers, mut body) = forward_streamed(&s, "slow").await;
    assert_eq!(status, 200);
    let id = headers["x-hookrelay-event"].to_str().unwrap().to_string();
    let mut got = read_at_least(&mut body, 1).await.len();
    // The sender's pace: this wait is what is tested, not a way to sync.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    got += read_at_least(&mut body, 100 * 1024 + 32 * 1024 * 1024 - got)
        .await
        .len();
    assert_eq!(got, 100 * 1024 + 32 * 1024 * 1024);
    // The end comes from the target now: hookrelay waits for it with what
    // is left of the 1000 ms, which the sender's pace did not use up.
    target.send(Step::End);
    assert!(read_at_least(&mut body, usize::MAX).await.is_empty());
    let got = recorded_attempt(&s, &id).await;
    let a = &got["attempt"];
    assert_eq!(a["success"], true, "{a}");
    assert_eq!(a["body_size"], 100 * 1024 + 32 * 1024 * 1024, "{a}");
    // Its latency is the target's, not the sender's 2.5 s.
    let latency = a["latency_ms"].as_u64().unwrap();
    assert!(latency < 2000, "{a}");
}

/// A `Content-Length` beside `Transfer-Encoding: chunked` does not frame
/// the answer: the sender gets all of it, not a length that cuts it short.
#[tokio::test]
async fn a_long_chunked_answer_with_a_stray_length_is_passed_on_whole() {
    let target = Stepped::start_with("content-length: 100000\r\n").await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "te", "target": format!("http://{}/", target.addr) }))
        .await;
    target.send(Step::Chunk(vec![b'a'; 100 * 1024]));
    target.send(Step::Chunk(vec![b'b'; 200 * 1024]));
    target.send(Step::End);
    let (status, headers, mut body) = forward_streamed(&s, "te").await;
    assert_eq!(status, 200);
    assert!(headers.get("content-length").is_none(), "{headers:?}");
    assert_eq!(read_at_least(&mut body, usize::MAX).await.len(), 300 * 1024);
}

/// A long answer the target cuts off: the sender's answer ends broken (not
/// as if complete), and the attempt is a failed `protocol` one that counts.
#[tokio::test]
async fn a_long_answer_cut_off_by_the_target_is_a_failure() {
    let target = Stepped::start().await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "cut", "target": format!("http://{}/", target.addr) }))
        .await;
    target.send(Step::Chunk(vec![b'a'; 100 * 1024]));
    let (status, headers, mut body) = forward_streamed(&s, "cut").await;
    assert_eq!(status, 200);
    let id = headers["x-hookrelay-event"].to_str().unwrap().to_string();
    read_at_least(&mut body, 100 * 1024).await;
    target.send(Step::Cut);
    use http_body_util::BodyExt;
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match body.frame().await {
                Some(Ok(_)) => continue,
                other => return other.map(|r| r.is_ok()),
            }
        }
    })
    .await
    .expect("the answer ended");
    assert_eq!(end, Some(false), "a cut answer must not end as if complete");
    let got = recorded_attempt(&s, &id).await;
    let a = &got["attempt"];
    assert_eq!(a["success"], false, "{a}");
    assert_eq!(a["error"], "protocol", "{a}");
    assert_eq!(got["event"]["state"], "failed");
    let ep = s.get("/api/endpoints/cut").await;
    assert_eq!(ep["consecutive_failures"], 1, "{ep}");
}

/// Where no sender waits for the answer (queue mode, the mirror, replays),
/// a long one is no failure: its status counts, its start is kept and its
/// length noted — it was a failed delivery, sent again and again.
#[tokio::test]
async fn a_long_answer_to_a_queued_delivery_or_the_mirror_is_a_success() {
    const LONG: usize = (32 << 20) + 1;
    let mut up = Receiver::start(vec![Reply::status(200).body(vec![b'a'; LONG])]).await;
    let mut mirror = Receiver::start(vec![Reply::status(200).body(vec![b'm'; LONG])]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": up.url("/") }))
        .await;
    s.create_endpoint(json!({ "slug": "m", "mirror": mirror.url("/") }))
        .await;
    let queued = s.post_in("q", &[], "x").await.event_id();
    let mirrored = s.post_in("m", &[], "y").await.event_id();
    up.next().await;
    mirror.next().await;
    let settled = |id: String, pred: fn(&serde_json::Value) -> bool| {
        let s = &s;
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            loop {
                let ev = s.get(&format!("/api/events/{id}")).await;
                if pred(&ev) {
                    return ev;
                }
                assert!(std::time::Instant::now() < deadline, "{ev}");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    let ev = settled(queued, |ev| {
        ev["state"] == "delivered" || ev["state"] == "retrying"
    })
    .await;
    assert_eq!(ev["state"], "delivered", "{ev}");
    let a = &ev["attempts"][0];
    assert_eq!(a["status"], 200, "{a}");
    assert_eq!(a["body_size"], LONG, "{a}");
    assert_eq!(a["body_truncated"], true, "{a}");
    assert_eq!(ev["attempts"].as_array().unwrap().len(), 1, "sent once");
    let ev = settled(mirrored, |ev| ev["mirror_status"].is_number()).await;
    assert_eq!(ev["mirror_status"], 200, "{ev}");
}

/// A receiver's answer may carry more header fields than hyper's default
/// 100 (it was a `502` "message head is too large").
#[tokio::test]
async fn an_answer_with_many_header_fields_is_passed_on() {
    let mut reply = Reply::status(200);
    for i in 0..150 {
        reply = reply.header(&format!("x-h{i}"), "v");
    }
    let mut up = Receiver::start(vec![reply]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "h", "target": up.url("/") }))
        .await;
    // Read raw: the tests' own client stops at hyper's 100 too.
    let req = "POST /in/h HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\nx";
    let out =
        crate::support::raw(s.ingest, req.as_bytes(), std::time::Duration::from_secs(10)).await;
    up.next().await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("x-h149: v\r\n"), "{text}");
}

/// In forward mode the sync overlaps the call to the target: when it fails
/// the target may have the event already, so the sender is told to retry
/// (503) and the event stays listed with its attempt. Ingest runs on the
/// library's handler here, the only way to fail a sync on cue.
#[tokio::test]
async fn a_forward_whose_sync_fails_is_a_503_and_stays_listed_with_its_attempt() {
    use hookrelay::store::{Durability, EventFilter};

    let mut up = Receiver::start(vec![Reply::status(200).body("target has it")]).await;
    let (_dir, data) = crate::support::temp_data();
    let (store, relay) = crate::support::library_relay(&data, Durability::Sync);
    let ep = json!({ "slug": "f", "target": up.url("/hook") });
    relay
        .create(serde_json::from_value(ep).unwrap(), false)
        .await
        .unwrap();
    let (addr, server) = crate::support::serve_ingest(&relay).await;

    store.inject_sync_fault(true);
    let url = format!("http://{addr}/in/f");
    let (status, headers, body) = crate::support::send("POST", &url, &[], "sent".into()).await;
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&up.next().await.body[..], b"sent", "the target has it");
    store.inject_sync_fault(false);
    // Not "not stored": the sender learns the event, that it is not
    // acknowledged, what the target said, and when to come back.
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("not acknowledged") && error.contains("the target answered 200"),
        "{answer}"
    );
    assert_eq!(header("retry-after").as_deref(), Some("10"), "{headers:?}");
    assert_eq!(
        answer["event"].as_str(),
        header("x-hookrelay-event").as_deref()
    );

    let listed = store
        .query(&EventFilter {
            endpoint: Some("f".into()),
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(listed.events.len(), 1, "{:?}", listed.events);
    let ev = &listed.events[0];
    assert_eq!(answer["event"], ev.id.as_str());
    let attempts = store.attempts(&ev.id).unwrap();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].status, Some(200), "{attempts:?}");
    assert!(attempts[0].success);
    assert_eq!(
        store.get_body(&ev.id).unwrap().as_deref(),
        Some(&b"sent"[..])
    );
    server.abort();
}

/// A target that switches protocols unasked: the sender gets 502, not a
/// bare 101 that leaves its connection switched to nothing.
#[tokio::test]
async fn a_101_from_the_target_is_a_502() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c
                    .write_all(
                        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
                    )
                    .await;
                let _ = c.read(&mut buf).await;
            });
        }
    });
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "sw", "target": format!("http://127.0.0.1:{port}/") }))
        .await;
    let r = s.post_in("sw", &[], "x").await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    let attempt = &ev["attempts"][0];
    assert_eq!(
        (&attempt["error"], &attempt["success"]),
        (&json!("protocol"), &json!(false)),
        "{attempt}"
    );
    assert!(
        attempt["error_detail"]
            .as_str()
            .is_some_and(|d| d.contains("101")),
        "{attempt}"
    );
}
