//! Targets that lead back to hookrelay itself: every request it sends
//! names it in `Via`, and a request carrying that name is refused at both
//! listeners, so one event cannot multiply and a sender cannot reach the
//! admin API through an endpoint.

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

/// Another proxy's hops are kept and this one is added after them; a
/// second hookrelay in the chain is not a loop.
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
    assert!(
        hops[2].starts_with("1.1 hookrelay-") && hops[2] != "1.1 hookrelay-00000000",
        "{via:?}"
    );
    assert_eq!(hops.len(), 3);
    // Only this process's name, as a hop's received-by, is a loop.
    let ours = hops[2].strip_prefix("1.1 ").unwrap();
    let not_ours = format!("1.1 not{ours}");
    let r = s.post_in("v", &[("via", not_ours.as_str())], "x").await;
    assert_eq!(r.status, 200);
    let commented = format!("1.1 {ours} (a comment)");
    let r = s.post_in("v", &[("via", commented.as_str())], "x").await;
    assert_eq!(r.status, 508);
}
