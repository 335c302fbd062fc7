//! What replays, releases and jobs do to an event's state and to the
//! endpoint they send to: a held event stays owed to the next release, a
//! job does not send past a pause, and the mirror comparison sees every
//! answer the target gave.

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, TestServer};

/// A replay by hand that fails must not take an event out of `held`: the
/// release skipped it, and retention could delete it as done.
#[tokio::test]
async fn a_failed_replay_by_hand_leaves_a_held_event_to_the_release() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "h", "target": up.url("/"), "failure_threshold": 1000 }))
        .await;
    s.set_status("h", "paused").await;
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
    s.set_status("h", "active").await;
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
    s.set_status("r", "paused").await;
    for i in 0..2 {
        assert_eq!(s.post_in("r", &[], format!("{i}")).await.status, 202);
    }
    s.set_status("r", "active").await;
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
    s.set_status("mh", "paused").await;
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
    s.set_status("mh", "active").await;
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

/// A job sending to a paused endpoint's own target waits, says why, and
/// goes on when the endpoint is resumed; one sending elsewhere does not.
#[tokio::test]
async fn a_job_waits_while_its_endpoint_is_paused() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let mut other = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "jw", "target": up.url("/") }))
        .await;
    s.set_status("jw", "paused").await;
    for i in 0..3 {
        assert_eq!(s.post_in("jw", &[], format!("e{i}")).await.status, 202);
    }
    let (st, elsewhere) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "jw", "target": other.url("/x") })),
        )
        .await;
    assert_eq!(st, 202, "{elsewhere}");
    let (st, own) = s
        .api("POST", "/api/replay", Some(json!({ "endpoint": "jw" })))
        .await;
    assert_eq!(st, 202, "{own}");
    let own = own["id"].as_str().unwrap().to_string();
    let waiting = s
        .job_until(&own, "waited", |j| j["waiting"].is_string())
        .await;
    assert_eq!(waiting["sent"], 0, "{waiting}");
    assert_eq!(waiting["status"], "running", "{waiting}");
    assert!(
        waiting["waiting"]
            .as_str()
            .unwrap()
            .contains("\"jw\" is paused"),
        "{waiting}"
    );
    let done = s
        .job_until(elsewhere["id"].as_str().unwrap(), "finished", |j| {
            j["status"] == "done"
        })
        .await;
    assert_eq!(done["succeeded"], 3, "{done}");
    for _ in 0..3 {
        other.next().await;
    }
    // The page says so too.
    let page = crate::support::send(
        "GET",
        &s.admin_url(&format!("/replay/{own}")),
        &[],
        Default::default(),
    )
    .await;
    let html = String::from_utf8_lossy(&page.2);
    assert!(
        html.contains("Waiting: endpoint &#34;jw&#34; is paused"),
        "{html}"
    );
    assert!(up.drain().is_empty(), "sent to a paused endpoint");

    s.set_status("jw", "active").await;
    let done = s
        .job_until(&own, "finished", |j| j["status"] == "done")
        .await;
    assert_eq!(done["succeeded"], 3, "{done}");
    assert_eq!(done["waiting"], Value::Null, "{done}");
    let bodies: Vec<_> = [up.next().await, up.next().await, up.next().await]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(bodies, ["e0", "e1", "e2"]);
}

/// A cancel answers with the job's final count: the replay it had in
/// flight is counted before the answer, and nothing is left "queued".
#[tokio::test]
async fn a_cancel_answers_with_the_final_count() {
    let mut slow = Receiver::start(vec![
        Reply::status(200).delay(std::time::Duration::from_millis(500)),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "jc" })).await;
    for i in 0..3 {
        assert_eq!(s.post_in("jc", &[], format!("c{i}")).await.status, 200);
    }
    let (st, job) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "jc", "target": slow.url("/") })),
        )
        .await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap();
    // The first replay is in flight: the receiver has it and is slow.
    slow.next().await;
    let (st, cancelled) = s.api("DELETE", &format!("/api/replay/{id}"), None).await;
    assert_eq!(st, 200, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["sent"], 1, "{cancelled}");
    assert_eq!(cancelled["succeeded"], 1, "{cancelled}");
    assert!(cancelled["finished_at"].is_string(), "{cancelled}");
    assert_eq!(cancelled["queued"], 0, "{cancelled}");
    assert_eq!(cancelled["skipped"], 2, "{cancelled}");
    assert_eq!(s.get(&format!("/api/replay/{id}")).await, cancelled);
    assert!(slow.drain().is_empty(), "sent after the cancel");
}

/// A job waiting for held events' endpoint, then "resume and release":
/// the release sends each event once, and the job does not send them
/// again (they count as succeeded).
#[tokio::test]
async fn a_waiting_job_and_a_release_send_each_event_once() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "wr", "target": up.url("/") }))
        .await;
    s.set_status("wr", "paused").await;
    for i in 0..3 {
        assert_eq!(s.post_in("wr", &[], format!("h{i}")).await.status, 202);
    }
    let (st, job) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "wr", "state": "held" })),
        )
        .await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    s.job_until(&id, "waited", |j| j["waiting"].is_string())
        .await;
    let (st, v) = s
        .api("POST", "/api/endpoints/wr/resume?release=true", None)
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["release"]["delivered"], 3, "{v}");
    let done = s
        .job_until(&id, "finished", |j| j["status"] == "done")
        .await;
    assert_eq!(done["succeeded"], 3, "{done}");
    let mut bodies: Vec<_> = [up.next().await, up.next().await, up.next().await]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, ["h0", "h1", "h2"]);
    assert!(up.drain().is_empty(), "sent twice");
}

/// With a rate, the pause is looked at after the rate's wait, right before
/// the send: a pause during that wait holds the next event back.
#[tokio::test]
async fn a_pause_during_a_jobs_rate_wait_holds_its_next_event() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "rp", "target": up.url("/") }))
        .await;
    for i in 0..2 {
        assert_eq!(s.post_in("rp", &[], format!("r{i}")).await.status, 200);
        up.next().await;
    }
    let (st, job) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "rp", "rate": 1 })),
        )
        .await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    assert_eq!(up.next().await.body, "r0");
    s.set_status("rp", "paused").await;
    let waiting = s
        .job_until(&id, "waited", |j| j["waiting"].is_string())
        .await;
    assert_eq!(waiting["sent"], 1, "{waiting}");
    assert!(up.drain().is_empty(), "sent to a paused endpoint");
    s.set_status("rp", "active").await;
    let done = s
        .job_until(&id, "finished", |j| j["status"] == "done")
        .await;
    assert_eq!(done["succeeded"], 2, "{done}");
    assert_eq!(up.next().await.body, "r1");
}

/// A release started while a job's replay is in flight waits for it, and
/// the job then passes over what the release delivered: each held event
/// reaches the receiver once.
#[tokio::test]
async fn a_release_during_a_jobs_replay_sends_nothing_twice() {
    let mut up = Receiver::start(vec![
        Reply::status(200).delay(std::time::Duration::from_millis(400)),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "jr", "target": up.url("/") }))
        .await;
    s.set_status("jr", "paused").await;
    for i in 0..3 {
        assert_eq!(s.post_in("jr", &[], format!("j{i}")).await.status, 202);
    }
    s.set_status("jr", "active").await;
    let (st, job) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "jr", "state": "held" })),
        )
        .await;
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_str().unwrap().to_string();
    // The job's first replay is at the receiver, which takes its time.
    assert_eq!(up.next().await.body, "j0");
    let (st, report) = s.api("POST", "/api/endpoints/jr/release", None).await;
    assert_eq!(st, 200, "{report}");
    assert_eq!(
        report["released"], 2,
        "the job delivered j0 first: {report}"
    );
    let done = s
        .job_until(&id, "finished", |j| j["status"] == "done")
        .await;
    assert_eq!(done["succeeded"], 3, "{done}");
    assert_eq!(done["already_delivered"], 2, "{done}");
    let rest: Vec<_> = [up.next().await, up.next().await]
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(rest, ["j1", "j2"]);
    assert!(up.drain().is_empty(), "sent twice");
}
