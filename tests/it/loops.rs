//! Targets that lead back to hookrelay itself: every request it sends
//! names it and the endpoint in `Via`; a request that comes back to the
//! endpoint it was sent for, or reaches the admin listener, is refused, so
//! one event cannot multiply and a sender cannot reach the admin API
//! through an endpoint. One endpoint forwarding to another is no loop.

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer};

#[tokio::test]
async fn a_target_that_is_hookrelay_itself_is_refused_as_a_loop() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "loop", "target": s.ingest_url("/in/loop") }))
        .await;
    let r = s.post_in("loop", &[], "once").await;
    assert_eq!(r.status, 508, "the inner request's answer, passed back");
    let events = s.get("/api/events?endpoint=loop").await;
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "one event, not a loop: {events:?}");
    let ev = s
        .get(&format!(
            "/api/events/{}",
            events[0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(ev["attempts"][0]["status"], 508, "{ev}");
}

#[tokio::test]
async fn a_target_that_is_the_admin_listener_reaches_no_api() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "adm", "target": s.admin_url("") }))
        .await;
    let r = s
        .post_in(
            "adm/api/endpoints",
            &[("content-type", "application/json")],
            r#"{"slug":"pwned"}"#,
        )
        .await;
    assert_eq!(r.status, 508);
    let (st, _) = s.api("GET", "/api/endpoints/pwned", None).await;
    assert_eq!(st, 404, "created through the ingest listener");
}

/// Another proxy's hops are kept and this one is added after them, with
/// the endpoint as its comment; another hookrelay in the chain, or this one
/// for another endpoint, is no loop.
#[tokio::test]
async fn via_names_each_hop() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "v", "target": up.url("/") }))
        .await;
    let r = s
        .post_in("v", &[("via", "1.1 edge, 1.1 hookrelay-00000000")], "x")
        .await;
    assert_eq!(r.status, 200);
    let via = up.next().await.header_all("via");
    assert_eq!(via.len(), 1, "{via:?}");
    let hops: Vec<&str> = via[0].split(", ").collect();
    assert_eq!(hops[..2], ["1.1 edge", "1.1 hookrelay-00000000"]);
    assert_eq!(hops.len(), 3);
    let ours = hops[2]
        .strip_prefix("1.1 ")
        .and_then(|h| h.strip_suffix(" (v)"))
        .unwrap_or_else(|| panic!("{via:?}"));
    assert!(ours.starts_with("hookrelay-") && ours != "hookrelay-00000000");
    for (via, want) in [
        // Only this process's name, as a hop's received-by, counts.
        (format!("1.1 not{ours} (v)"), 200),
        (format!("1.1 {ours} (v)"), 508),
        // Sent for another endpoint: no loop.
        (format!("1.1 {ours} (other)"), 200),
        // A proxy that strips comments: counted as this endpoint's.
        (format!("1.1 {ours}"), 508),
    ] {
        let r = s.post_in("v", &[("via", via.as_str())], "x").await;
        assert_eq!(r.status, want, "{via}");
    }
}

/// A disable notice sent to a bin of the same process is no loop: it is
/// sent once, on the disable.
#[tokio::test]
async fn a_disable_notice_may_go_to_a_bin_of_the_same_process() {
    let up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "alerts" })).await;
    s.create_endpoint(json!({
        "slug": "dn",
        "target": up.url("/"),
        "notify_url": s.ingest_url("/in/alerts"),
    }))
    .await;
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/dn",
            Some(json!({ "status": "disabled" })),
        )
        .await;
    assert_eq!(st, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = s.get("/api/events?endpoint=alerts").await;
        if let Some(ev) = got["events"].as_array().unwrap().first() {
            assert_eq!(ev["method"], "POST");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no notice stored");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// One endpoint of a process forwarding to another of the same process
/// works (the README's tour does it); a cycle through both is cut where it
/// comes back.
#[tokio::test]
async fn an_endpoint_may_forward_to_another_of_the_same_process() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "second", "response": { "status": 418 } }))
        .await;
    s.create_endpoint(json!({ "slug": "first", "target": s.ingest_url("/in/second") }))
        .await;
    assert_eq!(s.post_in("first", &[], "x").await.status, 418);
    let (st, _) = s
        .api(
            "PATCH",
            "/api/endpoints/second",
            Some(json!({ "target": s.ingest_url("/in/first") })),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.post_in("first", &[], "y").await.status, 508);
    let first = s.get("/api/events?endpoint=first").await;
    assert_eq!(first["events"].as_array().unwrap().len(), 2, "{first}");
}
