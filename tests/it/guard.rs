//! The outbound guard (SSRF): where deliveries may not connect, whatever the
//! spelling of the address, and the networks let through by name.

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer, temp_data};
use hookrelay::config::Config;
use hookrelay::deliver::guard::TargetGuard;

/// Hosts that all reach a listener on 127.0.0.1 when nothing stops them.
const LOOPBACK_SPELLINGS: [&str; 7] = [
    "127.0.0.1",
    "localhost",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "2130706433",
    "0177.0.0.1",
    "127.1",
];

async fn server(guard: TargetGuard) -> (TestServer, tempfile::TempDir) {
    let (dir, data) = temp_data();
    let s = TestServer::start_with(Config {
        data,
        target_guard: guard,
        ..Config::default()
    })
    .await;
    (s, dir)
}

/// Forwards one request through an endpoint per spelling; returns the
/// answers' statuses and bodies.
async fn forward_to_each(s: &TestServer, port: u16) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for (i, host) in LOOPBACK_SPELLINGS.iter().enumerate() {
        let slug = format!("spelling-{i}");
        s.create_endpoint(json!({ "slug": slug, "target": format!("http://{host}:{port}/in") }))
            .await;
        let r = s.post_in(&slug, &[], "{}").await;
        answers.push((r.status, String::from_utf8_lossy(&r.body).into_owned()));
    }
    answers
}

#[tokio::test]
async fn deny_private_targets_refuses_every_spelling_of_loopback() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let port = up.addr.port();

    // Without the flag each spelling reaches the receiver: the list is real.
    let (open, _dir) = server(TargetGuard::default()).await;
    let answers = forward_to_each(&open, port).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(up.drain().len(), LOOPBACK_SPELLINGS.len());
    open.stop().await;

    let (guarded, _dir) = server(TargetGuard {
        deny_private: true,
        ..TargetGuard::default()
    })
    .await;
    let answers = forward_to_each(&guarded, port).await;
    for (host, (status, body)) in LOOPBACK_SPELLINGS.iter().zip(&answers) {
        assert_eq!(*status, 502, "{host}: {body}");
        assert!(body.contains("--deny-private-targets"), "{host}: {body}");
    }
    assert!(
        up.drain().is_empty(),
        "a refused delivery reached the receiver"
    );
    // Recorded as a failed connect, like any unreachable target.
    let events = guarded.get("/api/events?endpoint=spelling-1").await;
    let ev = guarded
        .get(&format!(
            "/api/events/{}",
            events["events"][0]["id"].as_str().unwrap()
        ))
        .await;
    let attempt = &ev["attempts"][0];
    assert_eq!(attempt["error"], "connect", "{attempt}");
    assert!(
        attempt["error_detail"]
            .as_str()
            .unwrap()
            .contains("localhost resolves to 127.0.0.1 is a loopback address"),
        "{attempt}"
    );

    // A replay to a URL is held to the same rule.
    let id = ev["id"].as_str().unwrap();
    let (status, v) = guarded
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": format!("http://[::1]:{port}/x") })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["error"], "connect", "{v}");
    assert!(
        v["error_detail"]
            .as_str()
            .unwrap()
            .contains("--deny-private-targets"),
        "{v}"
    );
    assert!(up.drain().is_empty());
    guarded.stop().await;

    // A network named in --allow-target-net goes through.
    let (allowed, _dir) = server(TargetGuard {
        deny_private: true,
        allow: vec!["127.0.0.0/8".parse().unwrap()],
        off: false,
    })
    .await;
    allowed
        .create_endpoint(json!({ "slug": "mine", "target": up.url("/in") }))
        .await;
    assert_eq!(allowed.post_in("mine", &[], "{}").await.status, 200);
    assert_eq!(up.drain().len(), 1);
    allowed.stop().await;
}

#[tokio::test]
async fn metadata_addresses_are_refused_by_default() {
    let s = TestServer::start().await;
    s.create_endpoint(
        json!({ "slug": "meta", "target": "http://169.254.169.254/latest/meta-data/" }),
    )
    .await;
    let r = s.post_in("meta", &[], "{}").await;
    assert_eq!(r.status, 502);
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("169.254.169.254 is a link-local address"),
        "{body}"
    );
    let id = r.event_id();
    let (status, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": "http://[fd00:ec2::254]/latest/" })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["error_detail"]
            .as_str()
            .unwrap()
            .contains("the AWS metadata service"),
        "{v}"
    );
}
