//! What replays, releases and jobs do to an event's state and to the
//! endpoint they send to: a held event stays owed to the next release, a
//! job does not send past a pause, and the mirror comparison sees every
//! answer the target gave.

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer};

async fn set_status(s: &TestServer, slug: &str, status: &str) {
    let (st, ep) = s
        .api(
            "PATCH",
            &format!("/api/endpoints/{slug}"),
            Some(json!({ "status": status })),
        )
        .await;
    assert_eq!(st, 200, "{ep}");
}

/// A replay by hand that fails must not take an event out of `held`: the
/// release skipped it, and retention could delete it as done.
#[tokio::test]
async fn a_failed_replay_by_hand_leaves_a_held_event_to_the_release() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "h", "target": up.url("/"), "failure_threshold": 1000 }))
        .await;
    set_status(&s, "h", "paused").await;
    let ids: Vec<String> = {
        let mut ids = Vec::new();
        for i in 0..2 {
            let r = s.post_in("h", &[], format!("held-{i}")).await;
            assert_eq!(r.status, 202);
            ids.push(r.event_id());
        }
        ids
    };
    let (st, replay) = s
        .api(
            "POST",
            &format!("/api/events/{}/replay", ids[1]),
            Some(json!({})),
        )
        .await;
    assert_eq!(st, 200, "{replay}");
    assert_eq!(replay["success"], false, "{replay}");
    assert_eq!(up.next().await.body, "held-1");
    let ev = s.get(&format!("/api/events/{}", ids[1])).await;
    assert_eq!(ev["state"], "held", "{ev}");

    up.set_script(vec![Reply::status(200), Reply::status(200)]);
    set_status(&s, "h", "active").await;
    let (st, report) = s.api("POST", "/api/endpoints/h/release", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["released"], 2, "{report}");
    assert_eq!(report["delivered"], 2, "{report}");
    let bodies: Vec<_> = [up.next().await, up.next().await]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(bodies, ["held-0", "held-1"]);
}

/// A release whose failure disables the endpoint again leaves that event
/// held with the rest, to go with the next release.
#[tokio::test]
async fn a_release_that_disables_the_endpoint_keeps_its_event_held() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "r", "target": up.url("/"), "failure_threshold": 0 }))
        .await;
    set_status(&s, "r", "paused").await;
    for i in 0..2 {
        assert_eq!(s.post_in("r", &[], format!("{i}")).await.status, 202);
    }
    set_status(&s, "r", "active").await;
    let (st, report) = s.api("POST", "/api/endpoints/r/release", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(up.next().await.body, "0");
    assert_eq!(s.get("/api/endpoints/r").await["status"], "disabled");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["still_held"], 2, "{report}");
    assert_eq!(s.get("/api/endpoints/r").await["counts"]["held"], 2);
}

/// The mirror's answer is compared with the target's whenever the target
/// was tried, also when its only attempt was a release that got no answer.
#[tokio::test]
async fn a_mirror_answer_differs_from_a_release_that_got_none() {
    let mut mirror = Receiver::start(vec![Reply::status(200)]).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "mh",
        "target": format!("http://{closed}/"),
        "mirror": mirror.url("/"),
    }))
    .await;
    set_status(&s, "mh", "paused").await;
    let r = s.post_in("mh", &[], "x").await;
    assert_eq!(r.status, 202);
    let id = r.event_id();
    mirror.next().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.get(&format!("/api/events/{id}")).await["mirror_status"] != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "mirror attempt not recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    set_status(&s, "mh", "active").await;
    let (st, report) = s.api("POST", "/api/endpoints/mh/release", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    let diff = s.get("/api/events?endpoint=mh&mirror_diff=true").await;
    let found: Vec<_> = diff["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["id"])
        .collect();
    assert_eq!(found, [&json!(id)]);
    let same = s.get("/api/events?endpoint=mh&mirror_diff=false").await;
    assert!(same["events"].as_array().unwrap().is_empty(), "{same}");
}
