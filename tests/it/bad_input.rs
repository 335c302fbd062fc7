//! Bad input gets a clear error and loses nothing: oversize bodies, too many
//! or too large headers, slow clients, broken HTTP.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{TestServer, config_at, raw, send, temp_data};

/// The idle limit at 1 s and the send stall at 2 s.
async fn stall_limit_server() -> (TestServer, tempfile::TempDir) {
    let (dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.header_timeout = Duration::from_secs(1);
    cfg.send_stall = Duration::from_secs(2);
    (TestServer::start_with(cfg).await, dir)
}

async fn small_limit_server() -> (TestServer, tempfile::TempDir) {
    let (dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.max_body = 1024;
    cfg.header_timeout = Duration::from_secs(1);
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    (s, dir)
}

#[tokio::test]
async fn an_oversize_body_is_413_and_nothing_is_stored() {
    let (s, _dir) = small_limit_server().await;
    // Declared length over the limit: refused before reading.
    let r = s.post_in("b", &[], vec![b'x'; 1025]).await;
    assert_eq!(r.status, 413);
    assert!(r.json()["error"].as_str().unwrap().contains("1024"));
    // Exactly the limit is fine.
    assert_eq!(s.post_in("b", &[], vec![b'x'; 1024]).await.status, 200);

    // Chunked, no length: refused once the limit is crossed while reading.
    let head = format!(
        "POST /in/b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
        4096
    );
    let mut req = head.into_bytes();
    req.extend(vec![b'y'; 4096]);
    req.extend(b"\r\n0\r\n\r\n");
    let out = raw(s.ingest, &req, Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    let list = s.get("/api/events").await;
    assert_eq!(
        list["events"].as_array().unwrap().len(),
        1,
        "only the in-limit body was stored"
    );
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_431() {
    let (s, _dir) = small_limit_server().await;
    let mut req = String::from("POST /in/b HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n");
    for i in 0..200 {
        req.push_str(&format!("x-h{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out)
    );

    let big = format!(
        "POST /in/b HTTP/1.1\r\nhost: x\r\nx-big: {}\r\ncontent-length: 0\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let out = raw(s.ingest, big.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&out[..out.len().min(200)])
    );
    let list = s.get("/api/events").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_slow_client_is_cut_off_at_the_header_timeout() {
    let (s, _dir) = small_limit_server().await;
    let started = Instant::now();
    // Half a request head, then silence: the server must close (timeout 1 s).
    let out = raw(
        s.ingest,
        b"POST /in/b HTTP/1.1\r\nhost: x\r\n",
        Duration::from_secs(10),
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert!(
        out.is_empty() || out.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn broken_http_is_400() {
    let (s, _dir) = small_limit_server().await;
    let out = raw(
        s.ingest,
        b"THIS IS NOT HTTP\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let out = raw(
        s.ingest,
        b"POST /in/b HTTP/1.1\r\nhost: x\r\ncontent-length: nope\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Transfer codings the receiver would get without a header saying so:
    // refused, the connection closed, nothing stored. (Chunked with a
    // Content-Length is hyper's: it reads the chunks, drops the length and
    // closes the connection after the answer.)
    for framing in [
        "transfer-encoding: gzip, chunked",
        "transfer-encoding: gzip\r\ntransfer-encoding: chunked",
        "transfer-encoding: chunked, chunked",
        "transfer-encoding: chunked\r\ntransfer-encoding: chunked",
    ] {
        let req =
            format!("POST /in/b HTTP/1.1\r\nhost: x\r\n{framing}\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 400"), "{framing}: {out}");
        assert!(out.contains("nothing was stored"), "{framing}: {out}");
    }
    let list = s.get("/api/events?endpoint=b").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0, "{list}");
    // Plain chunked is fine, in any case and spacing.
    for te in ["chunked", " Chunked "] {
        let req = format!(
            "POST /in/b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {te}\r\nconnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            out.starts_with(b"HTTP/1.1 200"),
            "{te:?}: {}",
            String::from_utf8_lossy(&out)
        );
    }
    // The server is still fine afterwards.
    let (status, _, _) = send("POST", &s.ingest_url("/in/b"), &[], "ok".into()).await;
    assert_eq!(status, 200);
}

/// Request framing two parsers could read differently (the smuggling
/// corpus): refused with `400` and the connection closed, or — a length and
/// chunked together — read as chunked, answered once and closed, so bytes
/// after the chunks are never taken for a second request.
#[tokio::test]
async fn ambiguous_framing_is_refused_or_read_one_way_and_closed() {
    // The default header timeout (10 s): a connection left open after its
    // answer would show, not be closed as idle a second later.
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    let head = "POST /in/b HTTP/1.1\r\nhost: x\r\n";
    let refused = [
        (
            "two lengths",
            "content-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
        ),
        ("a signed length", "content-length: +5\r\n\r\nhello"),
        ("a length list", "content-length: 5, 5\r\n\r\nhello"),
        ("space before the colon", "content-length : 5\r\n\r\nhello"),
        (
            "a folded header",
            "x-a: 1\r\n  folded\r\ncontent-length: 5\r\n\r\nhello",
        ),
        (
            "NUL in a value",
            "x-a: a\0b\r\ncontent-length: 5\r\n\r\nhello",
        ),
        (
            "CR in a value",
            "x-a: a\rb\r\ncontent-length: 5\r\n\r\nhello",
        ),
        (
            "an unknown coding",
            "transfer-encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "bare LF in a chunk extension",
            "transfer-encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "an overflowing chunk size",
            "transfer-encoding: chunked\r\n\r\nffffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (what, rest) in refused {
        let started = Instant::now();
        let out = raw(
            s.ingest,
            format!("{head}{rest}").as_bytes(),
            Duration::from_secs(10),
        )
        .await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 400"), "{what}: {out}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{what}: left open"
        );
    }
    let old = raw(
        s.ingest,
        b"POST /in/b HTTP/1.0\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    assert!(
        old.starts_with(b"HTTP/1.1 400"),
        "chunked over HTTP/1.0: {}",
        String::from_utf8_lossy(&old)
    );
    let list = s.get("/api/events?endpoint=b").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0, "{list}");

    let smuggled = "GET /in/b HTTP/1.1\r\nhost: x\r\n\r\n";
    for both in [
        "content-length: 3\r\ntransfer-encoding: chunked",
        "transfer-encoding: chunked\r\ncontent-length: 3",
    ] {
        let req = format!("{head}{both}\r\n\r\n5\r\nhello\r\n0\r\n\r\n{smuggled}");
        let started = Instant::now();
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(10)).await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.starts_with("HTTP/1.1 200"), "{both}: {out}");
        assert_eq!(
            out.matches("HTTP/1.1 ").count(),
            1,
            "{both}: a second request was read: {out}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{both}: left open"
        );
    }
    let list = s.get("/api/events?endpoint=b").await;
    let events = list["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{list}");
    for e in events {
        let id = e["id"].as_str().unwrap();
        let (_, _, body) = send(
            "GET",
            &s.admin_url(&format!("/api/events/{id}/body")),
            &[],
            Default::default(),
        )
        .await;
        assert_eq!(&body[..], b"hello", "the chunks are the body");
    }
}

#[tokio::test]
async fn a_full_disk_is_503_with_retry_after_and_nothing_is_stored() {
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    // Any real filesystem is fuller than this: the guard trips at once.
    cfg.max_disk_usage = 0.0001;
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    let r = s.post_in("b", &[], "x").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("retry-after").as_deref(), Some("60"));
    assert!(r.json()["error"].as_str().unwrap().contains("full"));
    let list = s.get("/api/events").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0);
    // An operator sees why senders are refused.
    let (_, _, metrics) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("hookrelay_ingest_refused_total{reason=\"disk\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("hookrelay_disk_used_percent "),
        "{metrics}"
    );
    // And so does a readiness probe; the liveness probes stay fine (a
    // restart would not help), and the admin side stays up to free space.
    let (status, _, body) = send("GET", &s.ingest_url("/readyz"), &[], Default::default()).await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("\"error\":\"disk: the data disk is "),
        "{text}"
    );
    for url in [s.ingest_url("/healthz"), s.admin_url("/healthz")] {
        let (status, _, _) = send("GET", &url, &[], Default::default()).await;
        assert_eq!(status, 200, "{url}");
    }
}

#[tokio::test]
async fn dot_segments_never_reach_the_target() {
    let mut up = crate::support::Receiver::start(vec![crate::support::Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/webhooks/shop") }))
        .await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    for path in [
        "/in/f/../../admin/users/1",
        "/in/f/%2e%2e/%2E%2e/admin",
        "/in/f/a/./b",
    ] {
        let req = format!(
            "DELETE {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        );
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(out.starts_with(b"HTTP/1.1 400"), "{path}: {text}");
        assert!(text.contains("nothing was stored"), "{text}");
    }
    assert_eq!(s.get("/api/events?endpoint=f").await["events"], json!([]));

    // A bin keeps the path as received; it is not sent on by a replay.
    let req =
        "POST /in/b/../x HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let ev = &s.get("/api/events?endpoint=b").await["events"][0];
    assert_eq!(ev["path"], "/../x");
    let id = ev["id"].as_str().unwrap();
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": up.url("/hook") })),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains(".."), "{v}");

    // A plain path still goes through.
    assert_eq!(s.post_in("f", &[], "ok").await.status, 200);
    assert_eq!(up.next().await.uri, "/webhooks/shop");
    assert!(up.drain().is_empty(), "nothing else reached the target");
}

#[tokio::test]
async fn connections_that_send_no_request_are_closed() {
    // header_timeout is 1 s here.
    let (s, _dir) = small_limit_server().await;
    let mut preface_and_settings = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    preface_and_settings.extend([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let cases: [(&str, &[u8]); 3] = [
        ("nothing", b""),
        ("half an HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
        ("an HTTP/2 preface and SETTINGS", &preface_and_settings),
    ];
    for (what, bytes) in cases {
        let started = Instant::now();
        raw(s.ingest, bytes, Duration::from_secs(10)).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    // HTTP/2 PINGs every 200 ms: the server's ACKs are writes, but no
    // request is in flight, so they must not keep the connection open.
    for addr in [s.ingest, s.admin] {
        use tokio::io::AsyncWriteExt;
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        c.write_all(&preface_and_settings).await.unwrap();
        let took = pings_until_closed(&mut c, Duration::from_secs(5)).await;
        assert!(
            took <= Duration::from_secs(5),
            "{addr}: PINGs kept an idle connection open"
        );
    }
}

/// An HTTP/2 frame: its 9-byte header and `payload`.
fn h2_frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = (payload.len() as u32).to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], ty, flags];
    f.extend(stream.to_be_bytes());
    f.extend(payload);
    f
}

/// The client preface and SETTINGS with an initial window of 0: the server
/// may answer with HEADERS but never with DATA (no WINDOW_UPDATE follows).
fn h2_preface_window_zero() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    v.extend(h2_frame(4, 0, 0, &[0, 4, 0, 0, 0, 0]));
    v
}

/// A GET of `path` (under 127 bytes) on `stream`, HPACK without Huffman.
fn h2_get(stream: u32, path: &str) -> Vec<u8> {
    let mut block = vec![0x82, 0x86, 0x04, path.len() as u8];
    block.extend(path.as_bytes());
    block.extend([0x01, 9]);
    block.extend(b"127.0.0.1");
    h2_frame(1, 0x5, stream, &block)
}

/// A request with `method` for `path` on stream 1 of a fresh HTTP/2
/// connection, HPACK without Huffman; what came back on that stream:
/// whether its HEADERS ended it, its `:status` (static-table encoded, or
/// 0) and the bytes of its DATA frames, until it ended or was reset.
async fn h2_request(addr: std::net::SocketAddr, method: &str, path: &str) -> (bool, u8, usize) {
    use tokio::io::AsyncWriteExt;
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    // :method (name index 2) as a literal: HEAD has no static entry.
    let mut block = vec![0x02, method.len() as u8];
    block.extend(method.as_bytes());
    block.extend([0x86, 0x04, path.len() as u8]);
    block.extend(path.as_bytes());
    block.extend([0x01, 9]);
    block.extend(b"127.0.0.1");
    out.extend(h2_frame(1, 0x5, 1, &block));
    c.write_all(&out).await.unwrap();
    let (mut status, mut data) = (0u8, 0usize);
    let mut pending = Vec::new();
    while let Some((ty, flags, id, payload)) = h2_next_frame(&mut c, &mut pending).await {
        match (id, ty) {
            // An indexed `:status` (200, 204, 206, 304, 400, 404, 500).
            (1, 1) => {
                status = payload.first().copied().unwrap_or(0);
                if flags & 1 == 1 {
                    return (true, status, data);
                }
            }
            (1, 0) => {
                data += payload.len();
                if flags & 1 == 1 {
                    return (false, status, data);
                }
            }
            (1, 3) => return (false, status, data),
            _ => {}
        }
    }
    panic!("{addr}: stream 1 never ended");
}

/// Over HTTP/2 a DATA frame after an answer to HEAD, or after a 204, is a
/// protocol error: curl and browsers reset the stream and the sender sees
/// no answer at all (then sends again: a duplicate). HTTP/1.1 hid it.
#[tokio::test]
async fn an_answer_without_content_sends_none_over_http2() {
    let (s, _dir) = small_limit_server().await;
    s.create_endpoint(json!({ "slug": "nc", "response": { "status": 204 } }))
        .await;
    // 0x88 is `:status 200` in HPACK's static table, 0x89 204, 0x8d 404.
    for (method, path, status) in [
        ("HEAD", "/in/b/x", 0x88),
        ("HEAD", "/healthz", 0x88),
        ("HEAD", "/in/nothing-here", 0x8d),
        ("GET", "/in/nc", 0x89),
        ("HEAD", "/in/nc", 0x89),
    ] {
        let got = h2_request(s.ingest, method, path).await;
        assert_eq!(got, (true, status, 0), "{method} {path}");
    }
    // The content is still there for a GET: the check above is not vacuous.
    let got = h2_request(s.ingest, "GET", "/in/b/x").await;
    assert_eq!((got.1, got.2 > 0), (0x88, true));
    // HTTP/1.1: a HEAD says the length a GET would have had.
    let (status, headers, body) =
        send("HEAD", &s.ingest_url("/in/b"), &[], Vec::new().into()).await;
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map(|(_, v)| v.clone());
    assert_eq!(
        (status, length.as_deref(), body.len()),
        (200, Some(&b"11"[..]), 0)
    );
}

/// The next frame on `c` (`pending` holds what was read past the last
/// one): type, flags, stream and payload; `None` once the connection ends
/// or stays quiet for 5 s.
async fn h2_next_frame(
    c: &mut tokio::net::TcpStream,
    pending: &mut Vec<u8>,
) -> Option<(u8, u8, u32, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    loop {
        if pending.len() >= 9 {
            let len = u32::from_be_bytes([0, pending[0], pending[1], pending[2]]) as usize;
            if pending.len() >= 9 + len {
                let (ty, flags) = (pending[3], pending[4]);
                let id = u32::from_be_bytes(pending[5..9].try_into().unwrap()) & 0x7fff_ffff;
                let payload = pending[9..9 + len].to_vec();
                pending.drain(..9 + len);
                return Some((ty, flags, id, payload));
            }
        }
        match tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => pending.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

/// Reads frames until HEADERS on `stream` (true) or the end (false).
async fn h2_headers(c: &mut tokio::net::TcpStream, pending: &mut Vec<u8>, stream: u32) -> bool {
    while let Some((ty, _, id, _)) = h2_next_frame(c, pending).await {
        if ty == 1 && id == stream {
            return true;
        }
    }
    false
}

/// Sends an HTTP/2 PING every 200 ms, reading the ACKs, until the server
/// closes the connection or `limit` passes; how long that took.
async fn pings_until_closed(c: &mut tokio::net::TcpStream, limit: Duration) -> Duration {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() <= limit {
        let ping = h2_frame(6, 0, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
        if c.write_all(&ping).await.is_err() {
            break;
        }
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(200), c.read(&mut buf)).await
        {
            break;
        }
    }
    started.elapsed()
}

/// HTTP/2 responses the client never lets through (a window of 0, or
/// streams reset with their data still queued) keep no connection open:
/// hyper keeps such a body, and PING ACKs are no response bytes.
#[tokio::test]
async fn an_http2_response_the_client_never_takes_keeps_no_connection() {
    use tokio::io::AsyncWriteExt;
    // header_timeout (the idle limit) is 1 s here.
    let (s, _dir) = small_limit_server().await;
    for addr in [s.ingest, s.admin] {
        for reset in [false, true] {
            let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
            c.write_all(&h2_preface_window_zero()).await.unwrap();
            let mut pending = Vec::new();
            let streams = if reset { 20 } else { 1 };
            for i in 0..streams {
                let id = 2 * i + 1;
                let path = if reset {
                    format!("/in/{}", "x".repeat(100))
                } else {
                    "/healthz".to_string()
                };
                c.write_all(&h2_get(id, &path)).await.unwrap();
                assert!(
                    h2_headers(&mut c, &mut pending, id).await,
                    "{addr}: no answer"
                );
                if reset {
                    c.write_all(&h2_frame(3, 0, id, &8u32.to_be_bytes()))
                        .await
                        .unwrap();
                }
            }
            let took = pings_until_closed(&mut c, Duration::from_secs(8)).await;
            assert!(
                took < Duration::from_secs(5),
                "{addr} (reset: {reset}): open {took:?} with nothing sent"
            );
        }
    }
}

/// The live stream never finishes: a client holding its HTTP/2 window shut
/// once an event is ready to go is dropped after the send stall (2 s here),
/// not kept for as long as the stream lasts.
#[tokio::test]
async fn a_live_stream_whose_window_stays_shut_is_dropped() {
    use tokio::io::AsyncWriteExt;
    let (s, _dir) = stall_limit_server().await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    let mut c = tokio::net::TcpStream::connect(s.admin).await.unwrap();
    c.write_all(&h2_preface_window_zero()).await.unwrap();
    c.write_all(&h2_get(1, "/api/stream")).await.unwrap();
    let mut pending = Vec::new();
    assert!(h2_headers(&mut c, &mut pending, 1).await, "no answer");
    s.post_in("b", &[], "an event for the stream").await;
    let took = pings_until_closed(&mut c, Duration::from_secs(15)).await;
    assert!(
        took < Duration::from_secs(6),
        "a shut window on the live stream kept its connection {took:?}"
    );
}

/// A client flooding PINGs and reading their ACKs a little at a time keeps
/// the server's socket full without ever receiving a response: dropped
/// after the send stall (2 s here), not kept for as long as it trickles.
#[tokio::test]
async fn an_http2_client_flooding_pings_and_reading_slowly_is_dropped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (s, _dir) = stall_limit_server().await;
    for addr in [s.ingest, s.admin] {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        let (mut rd, mut wr) = sock.connect(addr).await.unwrap().into_split();
        let started = Instant::now();
        let limit = Duration::from_secs(20);
        let flood = tokio::spawn(async move {
            let pings: Vec<u8> = (0..1024).flat_map(|_| h2_frame(6, 0, 0, &[0; 8])).collect();
            let _ = wr.write_all(&h2_preface_window_zero()).await;
            while started.elapsed() < limit {
                if wr.write_all(&pings).await.is_err() {
                    break;
                }
            }
        });
        let mut buf = [0u8; 4096];
        let closed = loop {
            if started.elapsed() > limit {
                break false;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(100), rd.read(&mut buf)).await
            {
                break true;
            }
        };
        flood.abort();
        let took = started.elapsed();
        assert!(
            closed && took < Duration::from_secs(10),
            "{addr}: a PING flood read slowly kept its connection {took:?}"
        );
    }
}

#[tokio::test]
async fn a_request_in_flight_is_not_idle() {
    let (s, _dir) = small_limit_server().await;
    let mut up = crate::support::Receiver::start(vec![
        crate::support::Reply::status(200).delay(Duration::from_millis(2500)),
    ])
    .await;
    s.create_endpoint(json!({ "slug": "slow", "target": up.url("/") }))
        .await;
    // Longer than the 1 s idle limit: the answer still comes.
    assert_eq!(s.post_in("slow", &[], "x").await.status, 200);
    up.next().await;
    let req =
        "POST /in/slow HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\nconnection: close\r\n\r\ny";
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(10)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[tokio::test]
async fn an_unsendable_held_event_fails_without_blocking_the_release() {
    let mut up = crate::support::Receiver::start(vec![crate::support::Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    let (st, _) = s.api("POST", "/api/endpoints/b/pause", None).await;
    assert_eq!(st, 200);
    let req =
        "POST /in/b/../x HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\nconnection: close\r\n\r\ndot";
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 202"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let plain = s.post_in("b/y", &[], "plain").await.event_id();
    let (st, v) = s
        .api(
            "PATCH",
            "/api/endpoints/b",
            Some(json!({ "target": up.url("/hook") })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = s.api("POST", "/api/endpoints/b/resume", None).await;
    assert_eq!(st, 200);
    let (st, report) = s.api("POST", "/api/endpoints/b/release", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(
        (report["delivered"].clone(), report["failed"].clone()),
        (json!(1), json!(1)),
        "{report}"
    );
    assert_eq!(up.next().await.uri, "/hook/y");
    assert_eq!(
        s.get(&format!("/api/events/{plain}")).await["state"],
        "delivered"
    );
    let failed = s.get("/api/events?state=failed").await;
    assert_eq!(failed["events"][0]["path"], "/../x", "{failed}");
}

#[tokio::test]
async fn a_slow_download_is_not_cut_by_the_idle_limit() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.header_timeout = Duration::from_secs(1);
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    // hyper lets go of a one-chunk body as soon as it is queued; the socket
    // then takes seconds to drain it to this reader.
    let size = 16 << 20;
    let id = s.post_in("b", &[], vec![b'x'; size]).await.event_id();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    let mut c = sock.connect(s.admin).await.unwrap();
    let req = format!("GET /api/events/{id}/body HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let (mut got, mut buf) = (0usize, vec![0u8; 64 * 1024]);
    let started = Instant::now();
    // About 4 MiB/s: four seconds for the body, four times the idle limit.
    while got < size && started.elapsed() < Duration::from_secs(30) {
        match c.read(&mut buf).await.unwrap() {
            0 => break,
            n => got += n,
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    assert!(
        got > size,
        "read {got} of {size} body bytes before the server closed, after {:?}",
        started.elapsed()
    );
}

/// An admin request whose body never comes is answered and closed after
/// three header timeouts (3 s here): in flight while its body is read, it
/// would otherwise hold its connection for good.
#[tokio::test]
async fn an_admin_body_that_never_comes_is_cut_off() {
    let (s, _dir) = small_limit_server().await;
    for (path, ct) in [
        ("/api/endpoints", "application/json"),
        ("/endpoints/new", "application/x-www-form-urlencoded"),
    ] {
        let req = format!(
            "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: {ct}\r\ncontent-length: 1000\r\n\r\n{{"
        );
        let started = Instant::now();
        let out = raw(s.admin, req.as_bytes(), Duration::from_secs(15)).await;
        let took = started.elapsed();
        let out = String::from_utf8_lossy(&out);
        assert!(
            took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
            "{path}: answered after {took:?}: {out}"
        );
        assert!(out.starts_with("HTTP/1.1 400"), "{path}: {out}");
        assert!(out.contains("not received within 3 s"), "{path}: {out}");
    }
}

/// The same over HTTP/2 with a small flow-control window: hyper hands the
/// whole body to h2 at once, which then sends it as the reader's window
/// updates allow, long after the request is done.
#[tokio::test]
async fn a_slow_http2_download_is_not_cut_by_the_idle_limit() {
    use http_body_util::BodyExt;
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.header_timeout = Duration::from_secs(1);
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    let size = 4 << 20;
    let id = s.post_in("b", &[], vec![b'x'; size]).await.event_id();
    let tcp = tokio::net::TcpStream::connect(s.admin).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(64 * 1024)
            .initial_connection_window_size(64 * 1024)
            .handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://127.0.0.1/api/events/{id}/body"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let mut body = h2.send_request(req).await.unwrap().into_body();
    let (mut got, started) = (0usize, Instant::now());
    // About 1.3 MiB/s: three seconds for the body, three idle limits.
    while started.elapsed() < Duration::from_secs(30) {
        match body.frame().await {
            Some(Ok(f)) => got += f.data_ref().map_or(0, |d| d.len()),
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert_eq!(
        got,
        size,
        "read {got} of {size} body bytes before the connection ended, after {:?}",
        started.elapsed()
    );
}

/// A sender answered `503` because its event's sync failed was told the
/// event is not stored: it is not listed, not counted, and not handed to
/// the queue worker (it was delivered and then lost at a restart). Ingest
/// runs on the library's handler here, the only way to fail a sync on cue.
#[tokio::test]
async fn an_event_whose_sync_fails_is_refused_and_taken_back() {
    use hookrelay::store::{Durability, EventFilter};

    let (_dir, data) = temp_data();
    let (store, relay) = crate::support::library_relay(&data, Durability::Sync);
    for (slug, mode) in [("b", None), ("q", Some("queue"))] {
        let mut ep = json!({ "slug": slug });
        if let Some(mode) = mode {
            ep["mode"] = mode.into();
            ep["target"] = "http://127.0.0.1:9/never".into();
        }
        relay
            .create(serde_json::from_value(ep).unwrap(), false)
            .await
            .unwrap();
    }
    let (addr, server) = crate::support::serve_ingest(&relay).await;

    store.inject_sync_fault(true);
    for slug in ["b", "q"] {
        let url = format!("http://{addr}/in/{slug}");
        let (status, _, body) = send("POST", &url, &[], "x".into()).await;
        assert_eq!(status, 503, "{slug}: {}", String::from_utf8_lossy(&body));
    }
    let listed = store
        .query(&EventFilter {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert!(listed.events.is_empty(), "{:?}", listed.events);
    for slug in ["b", "q"] {
        assert_eq!(store.counts(slug).unwrap().received, 0, "{slug}");
    }
    assert_eq!(relay.queue.depth("q"), 0, "handed to the worker");
    assert!(store.queue_entries().unwrap().is_empty());

    store.inject_sync_fault(false);
    let (status, headers, _) = send("POST", &format!("http://{addr}/in/q"), &[], "y".into()).await;
    assert_eq!(status, 202);
    assert_eq!(relay.queue.depth("q"), 1);
    let id = headers
        .iter()
        .find(|(n, _)| n == "x-hookrelay-event")
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        .unwrap();
    assert!(store.get_event(&id).unwrap().is_some());
    server.abort();
}

/// A disk without room for the write-ahead log: nothing is written that
/// could fail there (a failed WAL write is fatal to RocksDB: it refused
/// every write until a restart), senders get `503`, and once there is room
/// again ingest takes events without a restart — in both durabilities,
/// for a bin and a queue, with the events answered before all kept.
#[tokio::test]
async fn a_full_disk_refuses_events_and_recovers_without_a_restart() {
    use hookrelay::store::Durability;
    for durability in [Durability::Sync, Durability::Buffered] {
        let (_dir, data) = crate::support::temp_data();
        let (store, relay) = crate::support::library_relay(&data, durability);
        for ep in [
            json!({ "slug": "b" }),
            json!({ "slug": "q", "mode": "queue", "target": "http://127.0.0.1:9/never" }),
        ] {
            relay
                .create(serde_json::from_value(ep).unwrap(), false)
                .await
                .unwrap();
        }
        let (addr, server) = crate::support::serve_ingest(&relay).await;
        let post = |slug: &'static str, body: &'static str| async move {
            let (status, headers, answer) = send(
                "POST",
                &format!("http://{addr}/in/{slug}"),
                &[],
                body.into(),
            )
            .await;
            (
                status,
                headers,
                String::from_utf8_lossy(&answer).into_owned(),
            )
        };
        let (status, _, before) = post("b", "before").await;
        assert_eq!(status, 200, "{durability:?}: {before}");

        store.inject_free_space(Some(1 << 20));
        for slug in ["b", "q"] {
            let (status, headers, answer) = post(slug, "while full").await;
            assert_eq!(status, 503, "{durability:?} {slug}: {answer}");
            assert!(answer.contains("disk is full"), "{answer}");
            assert!(
                headers.iter().any(|(n, _)| n == "retry-after"),
                "{headers:?}"
            );
        }
        // Not ready; alive all the same (a restart would not make room).
        let probe = |path: &'static str| async move {
            let (status, _, body) = send(
                "GET",
                &format!("http://{addr}{path}"),
                &[],
                Default::default(),
            )
            .await;
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        let (status, ready) = probe("/readyz").await;
        assert_eq!(status, 503, "{ready}");
        assert!(ready.contains("disk is full"), "{ready}");
        assert_eq!(probe("/healthz").await.0, 200);
        // The operator sees it on every dashboard page and in the metrics.
        let page = admin_get(&relay, "/").await;
        assert!(page.contains("Storage: the data disk is full"), "{page}");
        let metrics = admin_get(&relay, "/metrics").await;
        assert!(
            metrics.contains("\nhookrelay_store_writable 0\n"),
            "{metrics}"
        );

        store.inject_free_space(None);
        // Clear without a write: the disk is read again.
        assert_eq!(probe("/readyz").await.0, 200, "{durability:?}");
        for slug in ["b", "q"] {
            let (status, _, answer) = post(slug, "after").await;
            assert!(
                status == 200 || status == 202,
                "{durability:?} {slug}: {status} {answer}"
            );
        }
        let bodies: Vec<Vec<u8>> = store
            .query(&hookrelay::store::EventFilter {
                limit: 100,
                ..Default::default()
            })
            .unwrap()
            .events
            .iter()
            .map(|ev| store.get_body(&ev.id).unwrap().unwrap_or_default())
            .collect();
        let mut bodies: Vec<String> = bodies
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        bodies.sort();
        assert_eq!(bodies, ["after", "after", "before"], "{durability:?}");
        assert!(!admin_get(&relay, "/").await.contains("Storage:"));
        let metrics = admin_get(&relay, "/metrics").await;
        assert!(
            metrics.contains("\nhookrelay_store_writable 1\n"),
            "{metrics}"
        );
        server.abort();
    }
}

/// A sender whose event went into the store but whose sync finds the disk
/// full gets its `503` at once (not after the 10 s sync wait), and the
/// event is taken back: it is not there once the disk has room again.
#[tokio::test]
async fn a_sync_refused_for_a_full_disk_answers_at_once_and_takes_the_event_back() {
    use hookrelay::store::Durability;
    let (_dir, data) = crate::support::temp_data();
    let (store, relay) = crate::support::library_relay(&data, Durability::Sync);
    relay
        .create(
            serde_json::from_value(json!({ "slug": "b" })).unwrap(),
            false,
        )
        .await
        .unwrap();
    let (addr, server) = crate::support::serve_ingest(&relay).await;
    // The syncer is held before its write-out; the disk fills meanwhile.
    store.inject_sync_stall(Duration::from_millis(500));
    let url = format!("http://{addr}/in/b");
    let sent = Instant::now();
    let refused = tokio::spawn({
        let url = url.clone();
        async move { send("POST", &url, &[], "refused".into()).await }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !store.in_injected_stall() {
        assert!(Instant::now() < deadline, "the syncer never stalled");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // Room for a take-back, not for the log's headroom.
    store.inject_free_space(Some(64 << 10));
    let (status, _, body) = refused.await.unwrap();
    let waited = sent.elapsed();
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(
        String::from_utf8_lossy(&body).contains("disk is too full"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert!(waited < Duration::from_secs(5), "answered after {waited:?}");

    store.inject_sync_stall(Duration::ZERO);
    store.inject_free_space(None);
    let (status, _, _) = send("POST", &url, &[], "kept".into()).await;
    assert_eq!(status, 200);
    let listed = store
        .query(&hookrelay::store::EventFilter {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .events;
    let bodies: Vec<Vec<u8>> = listed
        .iter()
        .map(|ev| store.get_body(&ev.id).unwrap().unwrap_or_default())
        .collect();
    assert_eq!(bodies, [b"kept".to_vec()], "the refused one was taken back");
    server.abort();
}

/// A GET to the admin side of `relay` (no listener: the router itself).
async fn admin_get(relay: &std::sync::Arc<hookrelay::relay::Relay>, path: &str) -> String {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let router = hookrelay::admin::router(
        std::sync::Arc::clone(relay),
        None,
        Duration::from_secs(30),
        0,
    );
    let req = http::Request::get(path)
        .header("host", "127.0.0.1")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = router.oneshot(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// `/healthz` says when the store cannot write (a full disk, an I/O error;
/// RocksDB then refuses every write until a restart), so a probe can act,
/// and says it is fine again once a write works.
#[tokio::test]
async fn healthz_fails_while_the_store_cannot_write() {
    use hookrelay::store::Durability;
    let (_dir, data) = crate::support::temp_data();
    let (store, relay) = crate::support::library_relay(&data, Durability::Sync);
    // A sequence: the refused request must not use up its step.
    let ep = json!({ "slug": "b", "response": { "sequence": [500, 201] } });
    relay
        .create(serde_json::from_value(ep).unwrap(), false)
        .await
        .unwrap();
    let (addr, server) = crate::support::serve_ingest(&relay).await;
    let health = || async {
        let (status, _, body) = send(
            "GET",
            &format!("http://{addr}/healthz"),
            &[],
            Default::default(),
        )
        .await;
        (
            status,
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
        )
    };
    assert_eq!(health().await, (200, json!({ "ok": true })));
    store.inject_write_fault(true);
    let (status, headers, body) =
        send("POST", &format!("http://{addr}/in/b"), &[], "x".into()).await;
    assert_eq!(status, 503);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "retry-after" && v == b"10"),
        "{headers:?}"
    );
    assert!(
        String::from_utf8_lossy(&body).contains("write fault"),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (status, v) = health().await;
    assert_eq!(status, 503, "{v}");
    assert_eq!(v["ok"], false);
    assert!(v["error"].as_str().unwrap().starts_with("store: "), "{v}");
    let (status, _, body) = send(
        "GET",
        &format!("http://{addr}/readyz"),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(status, 503, "not ready either");
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"store: "));
    store.inject_write_fault(false);
    let (status, _, _) = send("POST", &format!("http://{addr}/in/b"), &[], "y".into()).await;
    assert_eq!(status, 500, "the sequence's first step, not its second");
    let (status, _, _) = send("POST", &format!("http://{addr}/in/b"), &[], "z".into()).await;
    assert_eq!(status, 201);
    assert_eq!(health().await, (200, json!({ "ok": true })));
    let (status, headers, _) = send(
        "POST",
        &format!("http://{addr}/healthz"),
        &[],
        Default::default(),
    )
    .await;
    let allow = headers
        .iter()
        .find(|(n, _)| n == "allow")
        .map(|(_, v)| v.clone());
    assert_eq!(
        (status, allow.as_deref()),
        (405, Some(&b"GET, HEAD"[..])),
        "a probe takes GET"
    );
    server.abort();
}

/// Bodies are held in memory until stored and sent: together they stay
/// within a budget, so slow senders cannot exhaust the host's memory. Only
/// bytes received count (a length declared and never sent holds nothing);
/// past the budget a sender gets 503 with Retry-After, and room comes back
/// as the bodies in memory go.
#[tokio::test]
async fn bodies_in_memory_stay_within_a_budget() {
    use tokio::io::AsyncWriteExt;
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.max_body = MIB;
    cfg.body_memory = 2 * MIB;
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    let in_memory = || async {
        let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
        let m = String::from_utf8_lossy(&m).into_owned();
        m.lines()
            .find_map(|l| l.strip_prefix("hookrelay_ingest_body_bytes "))
            .and_then(|v| v.parse::<usize>().ok())
            .expect("the gauge")
    };
    let until = |want: usize| async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        while in_memory().await != want {
            assert!(Instant::now() < deadline, "never {want} bytes in memory");
            tokio::task::yield_now().await;
        }
    };
    let slow = |sent: usize| async move {
        let mut c = tokio::net::TcpStream::connect(s.ingest).await.unwrap();
        let head = format!("POST /in/b HTTP/1.1\r\nhost: x\r\ncontent-length: {MIB}\r\n\r\n");
        c.write_all(head.as_bytes()).await.unwrap();
        c.write_all(&vec![b'a'; sent]).await.unwrap();
        c
    };
    // Two senders have sent 768 KiB of their MiB each: 512 KiB of room.
    let mut held = vec![slow(768 * KIB).await, slow(768 * KIB).await];
    until(1536 * KIB).await;
    // A sender that declares a MiB and sends nothing takes no room.
    held.push(slow(0).await);
    let r = s.post_in("b", &[], "small").await;
    assert_eq!(r.status, 200, "a small body still fits");
    // A body that outgrows the room, declared or chunked, is refused.
    let declared = [
        format!(
            "POST /in/b HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            600 * KIB
        )
        .into_bytes(),
        vec![b'd'; 600 * KIB],
    ]
    .concat();
    let chunk = vec![b'c'; 384 * KIB];
    let mut chunked = b"POST /in/b HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..2 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    for req in [declared, chunked] {
        let out = raw(s.ingest, &req, Duration::from_secs(10)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 503"), "{text}");
        assert!(
            text.to_ascii_lowercase().contains("retry-after: 5"),
            "{text}"
        );
        assert!(text.contains("2 MiB"), "{text}");
    }
    // Nothing of the refused ones was stored, and room comes back.
    until(1536 * KIB).await;
    drop(held);
    until(0).await;
    let list = s.get("/api/events?endpoint=b").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 1, "{list}");
    let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    assert!(
        String::from_utf8_lossy(&m).contains("hookrelay_ingest_refused_total{reason=\"memory\"} 2"),
        "both refusals counted"
    );
}

/// A mirror that reads slowly has a budget of its own (a quarter of the
/// senders'): past it copies are skipped, and senders keep their room.
#[tokio::test]
async fn a_slow_mirror_skips_copies_rather_than_take_senders_room() {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    let mirror =
        crate::support::Receiver::start(vec![crate::support::Reply::status(200).together(99)])
            .await;
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.max_body = MIB;
    cfg.body_memory = 4 * MIB;
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "m", "mirror": mirror.url("/") }))
        .await;
    for _ in 0..2 {
        assert_eq!(s.post_in("m", &[], vec![b'm'; 600 * KIB]).await.status, 200);
    }
    // One copy waits at the mirror; the second did not fit beside it.
    let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains(&format!("hookrelay_ingest_body_bytes {}\n", 600 * KIB)),
        "{m}"
    );
    // Senders still have their whole budget.
    assert_eq!(s.post_in("m", &[], vec![b'n'; MIB]).await.status, 200);
}

/// A slow mirror keeps the bodies it has yet to send: they count against
/// the budget until the copy is done.
#[tokio::test]
async fn a_mirror_copy_in_flight_keeps_its_body_counted() {
    let mut mirror =
        crate::support::Receiver::start(vec![crate::support::Reply::status(200).together(2)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "m", "mirror": mirror.url("/") }))
        .await;
    let body = vec![b'm'; 100_000];
    assert_eq!(s.post_in("m", &[], body.clone()).await.status, 200);
    // The sender has its answer; the copy waits at the mirror.
    mirror.next().await;
    let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    assert!(
        String::from_utf8_lossy(&m).contains("hookrelay_ingest_body_bytes 100000"),
        "{}",
        String::from_utf8_lossy(&m)
    );
    // A second copy lets both through; then nothing is held.
    assert_eq!(s.post_in("m", &[], "x").await.status, 200);
    mirror.next().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
        if String::from_utf8_lossy(&m).contains("hookrelay_ingest_body_bytes 0\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the copies' bodies were never given back"
        );
        tokio::task::yield_now().await;
    }
}

/// Queued deliveries read their bodies back from the store: those in
/// flight count against a budget of their own (a quarter of the senders'),
/// and one that does not fit waits for room instead of loading its body.
#[tokio::test]
async fn queued_deliveries_wait_for_room_for_their_bodies() {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    let mut receiver =
        crate::support::Receiver::start(vec![crate::support::Reply::status(200).together(2)]).await;
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.max_body = MIB;
    cfg.body_memory = 4 * MIB;
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "q", "mode": "queue", "target": receiver.url("/") }))
        .await;
    for b in [b'a', b'b'] {
        assert_eq!(s.post_in("q", &[], vec![b; 600 * KIB]).await.status, 202);
    }
    // `a` waits at the receiver for a second request; `b` does not fit
    // beside it (600 + 600 KiB > 1 MiB) and waits for room.
    let first = receiver.next().await;
    assert_eq!(first.body.len(), 600 * KIB);
    let (_, _, m) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    let m = String::from_utf8_lossy(&m);
    assert!(
        m.contains(&format!("hookrelay_ingest_body_bytes {}\n", 600 * KIB)),
        "{m}"
    );
    // A small event fits beside `a` and is sent before `b`.
    assert_eq!(s.post_in("q", &[], "c").await.status, 202);
    assert_eq!(&receiver.next().await.body[..], b"c");
    // With `a` answered, `b` has its room.
    let third = receiver.next().await;
    assert_eq!(third.body.len(), 600 * KIB);
    assert_ne!(first.body[0], third.body[0]);
    assert_eq!(s.post_in("q", &[], "d").await.status, 202);
    assert_eq!(&receiver.next().await.body[..], b"d");
}

/// `CONNECT` asks for a tunnel: forwarded, hyper's client would send a bare
/// `CONNECT host:port` (no path, no body) and record a proxy's `200` as a
/// delivery. Refused before anything is stored.
#[tokio::test]
async fn connect_is_refused_and_nothing_is_stored() {
    let mut up = crate::support::Receiver::start(vec![crate::support::Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/x") }))
        .await;
    s.create_endpoint(json!({ "slug": "b" })).await;
    for slug in ["f", "b"] {
        let req =
            format!("CONNECT /in/{slug}/m HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello");
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(out.starts_with(b"HTTP/1.1 405"), "{slug}: {text}");
        assert!(
            text.to_ascii_lowercase().contains("\r\nallow: get, "),
            "{text}"
        );
        assert!(text.contains("nothing was stored"), "{text}");
        let events = s.get(&format!("/api/events?endpoint={slug}")).await;
        assert_eq!(events["events"], json!([]), "{slug}");
    }
    // Other methods, unusual ones included, still go through.
    let req =
        "PROPFIND /in/f/m HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    let got = up.next().await;
    assert_eq!(
        (got.method.as_str(), got.uri.as_str()),
        ("PROPFIND", "/x/m")
    );
}

/// Two `Host` headers leave it to the sender which one a check reads
/// (`X-Forwarded-Host`, the admin's loopback and same-origin checks):
/// `400` on both listeners, nothing stored.
#[tokio::test]
async fn a_request_with_two_hosts_is_refused_on_both_listeners() {
    let mut up = crate::support::Receiver::start(vec![crate::support::Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/x") }))
        .await;
    let req =
        "POST /in/f HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\ncontent-length: 2\r\n\r\nhi";
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(out.starts_with(b"HTTP/1.1 400"), "{text}");
    assert!(
        text.contains("more than one Host header; nothing was stored"),
        "{text}"
    );
    assert_eq!(s.get("/api/events?endpoint=f").await["events"], json!([]));

    let req = "GET /api/endpoints HTTP/1.1\r\nhost: evil.example\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    let out = raw(s.admin, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // An HTTP/1 request line in absolute form names the host too: a Host
    // naming another one is as ambiguous (RFC 9112 §3.2.2).
    let req = format!(
        "POST http://{}/in/f HTTP/1.1\r\nhost: b.example\r\ncontent-length: 2\r\n\r\nhi",
        s.ingest
    );
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(out.starts_with(b"HTTP/1.1 400"), "{text}");
    assert!(text.contains("than the request line"), "{text}");
    let req = format!(
        "GET http://evil.example/api/endpoints HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
        s.admin
    );
    let out = raw(s.admin, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(s.get("/api/events?endpoint=f").await["events"], json!([]));
    // One Host is fine on both, and so is an absolute form that agrees.
    let req = format!(
        "POST http://{0}/in/f HTTP/1.1\r\nhost: {0}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nhi",
        s.ingest
    );
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        out.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    up.next().await;
    assert_eq!(s.post_in("f", &[], "ok").await.status, 200);
    assert_eq!(
        up.next().await.header("x-forwarded-host").as_deref(),
        Some(s.ingest.to_string().as_str())
    );
}

/// A Host that is no host would pass on as `X-Forwarded-Host` (`x,
/// evil.example` reads as evil.example to a reader that takes the last
/// entry); HTTP/1.1 without one is refused too (RFC 9112 §3.2). Content
/// on HEAD or TRACE is refused rather than sent on, where a receiver that
/// ignores it would read it as the next request on a pooled connection.
#[tokio::test]
async fn a_host_that_is_no_host_and_content_on_head_are_refused() {
    let mut up = crate::support::Receiver::start(vec![crate::support::Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "f", "target": up.url("/x") }))
        .await;
    for (head, why) in [
        ("POST /in/f HTTP/1.1\r\n", "without a Host header"),
        (
            "POST /in/f HTTP/1.1\r\nhost: x, evil.example\r\n",
            "not a host name",
        ),
        ("POST /in/f HTTP/1.1\r\nhost: user@x\r\n", "not a host name"),
        (
            "POST /in/f HTTP/1.1\r\nhost: x:99999\r\n",
            "not a host name",
        ),
        ("POST /in/f HTTP/1.1\r\nhost: a b\r\n", "not a host name"),
        (
            "HEAD /in/f HTTP/1.1\r\nhost: x\r\n",
            "a HEAD request carries no content",
        ),
        (
            "TRACE /in/f HTTP/1.1\r\nhost: x\r\n",
            "a TRACE request carries no content",
        ),
    ] {
        let req = format!("{head}content-length: 3\r\nconnection: close\r\n\r\nabc");
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
        let text = String::from_utf8_lossy(&out);
        assert!(out.starts_with(b"HTTP/1.1 400"), "{head:?}: {text}");
        assert!(
            text.contains(why) || head.starts_with("HEAD"),
            "{head:?}: {text}"
        );
    }
    // A HEAD's answer has no content to say why in; it is refused all the same.
    assert_eq!(s.get("/api/events?endpoint=f").await["events"], json!([]));
    assert!(up.drain().is_empty(), "nothing reached the target");
    // HTTP/1.0 may leave Host out; HEAD without content goes on.
    for req in [
        "POST /in/f HTTP/1.0\r\ncontent-length: 2\r\n\r\nhi",
        "HEAD /in/f HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    ] {
        let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            out.starts_with(b"HTTP/1.0 200") || out.starts_with(b"HTTP/1.1 200"),
            "{req:?}: {}",
            String::from_utf8_lossy(&out)
        );
        up.next().await;
    }
}

/// A bin's configured answer cannot set a header that frames the message or
/// describes the connection: a `content-length: 999` over a 2-byte body
/// left clients waiting and desynchronised pipelined ones. Refused when
/// saved; skipped when answering for an endpoint stored before that.
#[tokio::test]
async fn a_bin_answer_cannot_set_framing_headers() {
    let s = TestServer::start().await;
    for name in [
        "content-length",
        "Transfer-Encoding",
        "connection",
        "upgrade",
        "keep-alive",
        "te",
    ] {
        let (st, v) = s
            .api(
                "POST",
                "/api/endpoints",
                Some(json!({ "slug": "hb", "response": { "headers": [[name, "999"]], "body": "hi" } })),
            )
            .await;
        assert_eq!(st, 400, "{name}: {v}");
        assert!(
            v["error"].as_str().unwrap().contains("hookrelay sets it"),
            "{v}"
        );
    }
    let dir = s.stop().await.expect("owned dir");

    // As an earlier version could have stored it.
    let data = dir.path().join("data");
    {
        let store = hookrelay::store::Store::open(&data, hookrelay::store::Durability::Sync)
            .expect("open store");
        let mut ep =
            hookrelay::endpoint::Endpoint::new(hookrelay::endpoint::Slug::parse("old").unwrap(), 0);
        ep.response.headers = vec![
            ("content-length".into(), "999".into()),
            ("x-kept".into(), "yes".into()),
        ];
        ep.response.body = "hi".into();
        store.put_endpoint(&ep).expect("put");
    }
    let s = TestServer::start_with(config_at(&data)).await;
    let req = "POST /in/old HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    let out = raw(s.ingest, req.as_bytes(), Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(text.contains("\r\ncontent-length: 2\r\n"), "{text}");
    assert!(!text.contains("999"), "{text}");
    assert!(
        text.contains("\r\nx-kept: yes\r\n") && text.ends_with("\r\n\r\nhi"),
        "{text}"
    );
    s.stop().await;
    drop(dir);
}

/// Hunt #24: a 404 for an unknown slug left the request body unread, so
/// hyper closed the connection and a sender that pools connections (its
/// headers and body written apart) had its next request fail on it.
#[tokio::test]
async fn a_refusal_before_the_body_keeps_the_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "kept" })).await;
    let mut c = tokio::net::TcpStream::connect(s.ingest).await.unwrap();
    c.write_all(b"POST /in/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    // Answered before its body was sent, the connection cannot go on: an
    // early answer is the failure this test is about, so its wait bounds
    // how long one is looked for, it synchronises nothing.
    let mut early = [0u8; 512];
    let answered_early = tokio::time::timeout(Duration::from_millis(200), c.read(&mut early))
        .await
        .is_ok_and(|r| r.is_ok_and(|n| n > 0));
    c.write_all(
        b"helloPOST /in/kept HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out)).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        !answered_early,
        "answered before the body arrived: {}",
        String::from_utf8_lossy(&early)
    );
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["404", "200"], "{out}");
    let page = s.get("/api/events?endpoint=kept").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1, "{page}");
}

/// The drain above is not for every refusal: a body framed so that a proxy
/// in front could read it otherwise closes the connection (what follows
/// it could be a smuggled request), and a sender waiting to be asked for
/// its body is not asked only to have it dropped.
#[tokio::test]
async fn a_refusal_before_the_body_closes_when_draining_would_not_do() {
    let s = TestServer::start().await;
    let smuggled = "POST /in/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\
                    Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n\
                    GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let out = raw(s.ingest, smuggled.as_bytes(), Duration::from_secs(5)).await;
    let out = String::from_utf8_lossy(&out).to_lowercase();
    assert_eq!(out.matches("http/1.1 ").count(), 1, "{out}");
    assert!(out.contains("connection: close"), "{out}");
    let waiting = "POST /in/nope HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\
                   Expect: 100-continue\r\n\r\n";
    let out = raw(s.ingest, waiting.as_bytes(), Duration::from_secs(5)).await;
    let out = String::from_utf8_lossy(&out).to_lowercase();
    assert!(
        out.starts_with("http/1.1 404"),
        "not asked for the body: {out}"
    );
    assert!(out.contains("connection: close"), "{out}");
}
