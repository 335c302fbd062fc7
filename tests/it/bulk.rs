//! Bulk replay jobs: dry run, rate, cancel, a restart in the middle, the CLI.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::child::spawn_binary;
use crate::support::{Receiver, Reply, TestServer, config_at, send, temp_data};

/// A forward endpoint whose target failed `n` events, then recovered.
async fn failed_events(s: &TestServer, up: &mut Receiver, slug: &str, n: usize) -> Vec<String> {
    s.create_endpoint(json!({ "slug": slug, "target": up.url("/"), "failure_threshold": 1000 }))
        .await;
    up.set_script(vec![Reply::status(500)]);
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            s.post_in(slug, &[], format!("{slug}-{i:03}"))
                .await
                .event_id(),
        );
        up.next().await;
    }
    up.set_script(vec![Reply::status(200)]);
    ids
}

async fn job(s: &TestServer, id: &str) -> Value {
    s.get(&format!("/api/replay/{id}")).await
}

async fn wait_job(s: &TestServer, id: &str, status: &str) -> Value {
    s.job_until(id, &format!("became {status}"), |j| j["status"] == status)
        .await
}

#[tokio::test]
async fn a_dry_run_counts_and_a_job_replays_oldest_first() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    let ids = failed_events(&s, &mut up, "b", 5).await;
    s.create_endpoint(json!({ "slug": "other" })).await;
    s.post_in("other", &[], "not me").await;

    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "b", "state": "failed", "dry_run": true })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["count"], 5);
    assert_eq!(v["first_ids"][0], ids[0].as_str(), "oldest first");
    assert_eq!(v["last_id"], ids[4].as_str(), "the newest matched");
    assert!(up.drain().is_empty(), "a dry run sends nothing");
    // The rehearsal refuses what the run would.
    for bad in [
        json!({ "rate": 0.00001 }),
        json!({ "target": "ftp://x" }),
        json!({ "resign": "yes" }),
        // "b" has no secret to sign with.
        json!({ "resign": true }),
    ] {
        let mut body = json!({ "endpoint": "b", "dry_run": true });
        body.as_object_mut()
            .unwrap()
            .extend(bad.as_object().unwrap().clone());
        let (st, v) = s.api("POST", "/api/replay", Some(body)).await;
        assert!(matches!(st, 400 | 422), "{bad}: {st} {v}");
    }
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "b", "resign": true })),
        )
        .await;
    assert_eq!(st, 422, "no job whose every event fails: {v}");
    assert!(
        v["error"].as_str().unwrap().contains("no signature secret"),
        "{v}"
    );
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "b", "rat": 1 })),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("options are dry_run, rate"),
        "{v}"
    );

    // A time relative to now is pinned when the job is made.
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "b", "state": "failed", "since": "1h" })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    assert_eq!(v["total"], 5);
    let since = v["filter"]["since"].as_str().unwrap_or_default();
    assert!(
        since.len() == 24 && since.ends_with('Z'),
        "pinned to an RFC 3339 time: {v}"
    );
    let done = wait_job(&s, v["id"].as_str().unwrap(), "done").await;
    assert_eq!(done["succeeded"], 5);
    let bodies: Vec<String> = up
        .drain()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert_eq!(
        bodies,
        (0..5).map(|i| format!("b-{i:03}")).collect::<Vec<_>>()
    );
    let ev = s.get(&format!("/api/events/{}", ids[0])).await;
    assert_eq!(ev["state"], "delivered");
    assert_eq!(ev["attempts"][1]["trigger"], "replay");

    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "b", "bogus": 1 })),
        )
        .await;
    assert_eq!(st, 422, "{v}");
    // A list is no filter value: refused, not read as the text "[\"b\"]".
    let (st, v) = s
        .api("POST", "/api/replay", Some(json!({ "endpoint": ["b"] })))
        .await;
    assert_eq!(st, 422, "{v}");
    let (st, v) = s
        .api("POST", "/api/replay", Some(json!({ "state": "nope" })))
        .await;
    assert_eq!(st, 400, "{v}");
    // No filter at all sends every stored event again: only when asked so.
    // A cursor or limit alone is no filter (the dry run's `last_id` as a
    // cursor, the filter lost, reaches back through every event).
    for body in [
        json!({}),
        json!({ "endpoint": "", "rate": 5 }),
        json!({ "cursor": "01KZZZZZZZZZZZZZZZZZZZZZZZ" }),
        json!({ "limit": 3, "all": "false" }),
        json!({ "all": false }),
    ] {
        let (st, v) = s.api("POST", "/api/replay", Some(body.clone())).await;
        assert_eq!(st, 422, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains("no filter"), "{v}");
        // Its dry run says so beforehand.
        let mut dry = body.clone();
        dry["dry_run"] = true.into();
        let (st, v) = s.api("POST", "/api/replay", Some(dry)).await;
        assert_eq!(st, 200, "{body}: {v}");
        assert!(v["refusal"].as_str().unwrap().contains("no filter"), "{v}");
    }
    for all in [json!(1), json!("maybe")] {
        let (st, v) = s
            .api("POST", "/api/replay", Some(json!({ "all": all })))
            .await;
        assert_eq!(st, 422, "{v}");
        assert!(v["error"].as_str().unwrap().contains("all: must be"), "{v}");
    }
    let (st, v) = s
        .api("POST", "/api/replay", Some(json!({ "all": "true" })))
        .await;
    assert_eq!(st, 202, "{v}");
    assert!(v["total"].as_u64() > Some(0), "{v}");
}

/// Replays `intervals + 2` events at `rate` and returns the rate the
/// receiver saw, measured from the second arrival (the first also carries
/// the job's start); arrival times are the receiver's, not when this task
/// woke.
async fn measured_rate(rate: f64, intervals: usize) -> f64 {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    failed_events(&s, &mut up, "r", intervals + 2).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "r", "rate": rate })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    up.next().await;
    let first = up.next().await.at;
    let mut last = first;
    for _ in 0..intervals {
        last = up.next().await.at;
    }
    intervals as f64 / (last - first).as_secs_f64()
}

/// Never faster than asked (each send waits for its slot); slots are kept
/// by absolute time, so a late wake-up (a loaded machine) delays one send
/// without pushing back the rest, and 20% of the run absorbs the stalls
/// longer than an interval that shift the schedule.
#[tokio::test]
async fn the_rate_is_kept_within_20_percent() {
    // 20 intervals at 10/s: 2 s.
    let rate = measured_rate(10.0, 20).await;
    assert!((8.0..=12.0).contains(&rate), "{rate:.2}/s asked 10/s");
}

#[tokio::test]
async fn a_job_can_be_cancelled() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    failed_events(&s, &mut up, "c", 30).await;
    let (_, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "c", "rate": 20 })),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    up.next().await;
    up.next().await;
    let (st, v) = s.api("DELETE", &format!("/api/replay/{id}"), None).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["status"], "cancelled");
    let sent = job(&s, &id).await["sent"].as_u64().unwrap();
    // Nothing signals that a job sends no more, so the receiver is watched
    // for ten intervals (0.5 s at 20/s): a job still running would send
    // about ten in that time. One replay may have been under way at the
    // cancel.
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(500);
    let mut late = 0;
    while let Ok(Some(_)) = tokio::time::timeout_at(quiet_until, up.rx.recv()).await {
        late += 1;
    }
    assert!(late <= 1, "{late} sent after the cancel");
    let after = job(&s, &id).await;
    assert_eq!(after["status"], "cancelled", "{after}");
    assert!(after["sent"].as_u64().unwrap() <= sent + 1, "{after}");
    assert!(after["sent"].as_u64().unwrap() < 30);
}

#[tokio::test]
async fn a_job_survives_a_restart() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    failed_events(&s, &mut up, "k", 20).await;
    let (_, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "k", "rate": 25 })),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let mut bodies = Vec::new();
    for _ in 0..5 {
        bodies.push(String::from_utf8_lossy(&up.next().await.body).into_owned());
    }
    s.stop().await;
    let s = TestServer::start_with(config_at(&data)).await;
    let done = wait_job(&s, &id, "done").await;
    assert_eq!(done["sent"], 20);
    bodies.extend(
        up.drain()
            .iter()
            .map(|r| String::from_utf8_lossy(&r.body).into_owned()),
    );
    bodies.sort();
    // A job replays one event at a time: at most the one under way at the
    // stop is sent again, never what it had finished.
    let sent_in_all = bodies.len();
    bodies.dedup();
    assert_eq!(bodies.len(), 20, "every event replayed after the restart");
    assert!(
        sent_in_all <= 20 + 1,
        "{sent_in_all} replays for 20 events: the job started over"
    );
    s.stop().await;
    // Finished: its record stays, its id list (up to 100,000 ids) goes.
    let store =
        hookrelay::store::Store::open(&data, hookrelay::store::Durability::Buffered).unwrap();
    assert!(store.job_ids(&id).unwrap().is_empty(), "id list dropped");
    assert!(
        store.jobs().unwrap().iter().any(|j| j["id"] == id.as_str()),
        "record kept"
    );
}

/// A restart does not give a job a free turn: the next event waits out the
/// rest of the interval the last one started (a crash loop would otherwise
/// send at the pace of the restarts).
#[tokio::test]
async fn the_rate_holds_across_a_restart() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    failed_events(&s, &mut up, "r", 3).await;
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "r", "rate": 0.4 })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    up.next().await;
    let first = Instant::now();
    s.job_until(&id, "recorded its first event", |j| j["sent"] == 1)
        .await;
    s.stop().await;
    let s = TestServer::start_with(config_at(&data)).await;
    let next = up.next().await;
    let gap = first.elapsed().as_secs_f64();
    assert_eq!(next.body, "r-001", "the job went on where it stopped");
    // 2.5 s at 0.4/s, less the milliseconds the stored time rounds off.
    assert!(gap >= 2.4, "the next event went {gap:.3} s after the first");
    s.stop().await;
}

/// A job killed while an event is under way sends that event again after
/// the restart, but only once its interval is over: the turn is stored when
/// it comes, not with the outcome (which a kill never stores).
#[tokio::test]
async fn the_rate_holds_across_a_kill_during_a_send() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    failed_events(&s, &mut up, "k", 2).await;
    s.stop().await;
    // The first replay is still waiting for its answer at the kill.
    up.set_script(vec![
        Reply::status(200).delay(Duration::from_secs(60)),
        Reply::status(200),
    ]);
    let child = spawn_binary(&data, "sync");
    let (st, _, body) = send(
        "POST",
        &format!("{}/api/replay", child.admin),
        &[("content-type", "application/json")],
        json!({ "endpoint": "k", "rate": 0.25 }).to_string().into(),
    )
    .await;
    assert_eq!(st, 202, "{}", String::from_utf8_lossy(&body));
    let first = up.next().await;
    assert_eq!(first.body, "k-000");
    drop(child); // SIGKILL, and reaped
    let child = spawn_binary(&data, "sync");
    let again = up.next().await;
    let gap = again.at.duration_since(first.at).as_secs_f64();
    assert_eq!(again.body, "k-000", "the event under way is sent again");
    // 4 s at 0.25/s, less the milliseconds the stored time rounds off; a
    // restart takes far less, so a job that forgot its turn goes sooner.
    assert!(gap >= 3.9, "sent again {gap:.3} s after the first try");
    drop(child);
}

/// A job's `202` and a cancel's answer are acknowledgements: a kill right
/// after either loses neither (both waited for the WAL like an event's).
#[tokio::test]
async fn a_kill_right_after_the_answer_loses_no_job_and_no_cancel() {
    let up = Receiver::start(vec![Reply::status(200)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "j" })).await;
    for i in 0..3 {
        s.post_in("j", &[], format!("j-{i}")).await;
    }
    s.stop().await;
    // A lost write needs the kill inside a few milliseconds: three rounds
    // make a pass without the waits all but impossible.
    for round in 0..3 {
        let child = spawn_binary(&data, "sync");
        // Slow enough that it is still running at every look below.
        let job = json!({ "endpoint": "j", "target": up.url("/"), "rate": 0.01 });
        let (st, v) = child.api("POST", "/api/replay", job).await;
        assert_eq!(st, 202, "{v}");
        let id = v["id"].as_str().unwrap().to_string();
        drop(child); // SIGKILL at once
        let child = spawn_binary(&data, "sync");
        let (st, v) = child
            .api("GET", &format!("/api/replay/{id}"), Value::Null)
            .await;
        assert_eq!(st, 200, "round {round}: the job acknowledged is gone: {v}");
        let (st, v) = child
            .api("DELETE", &format!("/api/replay/{id}"), Value::Null)
            .await;
        assert_eq!(st, 200, "{v}");
        drop(child);
        let child = spawn_binary(&data, "sync");
        let (_, v) = child
            .api("GET", &format!("/api/replay/{id}"), Value::Null)
            .await;
        assert_eq!(
            v["status"], "cancelled",
            "round {round}: the cancel was lost: {v}"
        );
        // Ended, too: a client following the job stops at `finished_at`.
        assert!(
            v["finished_at"].is_string(),
            "round {round}: cancelled but never finished: {v}"
        );
        drop(child);
    }
}

/// `rate` is a ceiling: after a slow replay the job does not catch up in a
/// burst on a receiver that is slow already.
#[tokio::test]
async fn the_rate_holds_after_a_slow_replay() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    failed_events(&s, &mut up, "slow", 8).await;
    up.set_script(vec![
        Reply::status(200).delay(Duration::from_millis(1000)),
        Reply::status(200),
    ]);
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "slow", "rate": 10 })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    up.next().await;
    up.next().await;
    let second = Instant::now();
    for _ in 0..5 {
        up.next().await;
    }
    let took = second.elapsed().as_secs_f64();
    // 5 intervals at 10/s: 0.5 s, not a burst of what the slow one delayed.
    assert!(
        took >= 0.4,
        "5 intervals after the slow replay took {took:.3} s"
    );

    for (rate, want) in [(0.0001, 400), (0.001, 202)] {
        let (st, v) = s
            .api(
                "POST",
                "/api/replay",
                Some(json!({ "endpoint": "slow", "rate": rate })),
            )
            .await;
        assert_eq!(st, want, "rate {rate}: {v}");
    }
}

#[tokio::test]
async fn the_cli_runs_a_bulk_replay() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    failed_events(&s, &mut up, "cli", 3).await;
    let server = s.admin_url("");
    let mut hr = crate::support::cmd::hookrelay();
    hr.args([
        "replay",
        "--filter",
        "endpoint=cli",
        "--filter",
        "state=failed",
        "--rate",
        "50",
    ])
    .env("HOOKRELAY_SERVER", server);
    let out = crate::support::cmd::output(hr).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("3 sent, 3 succeeded, 0 failed"), "{stdout}");
    assert!(
        stdout.contains("cancel: DELETE"),
        "the job id and how to stop it: {stdout}"
    );
    assert_eq!(up.drain().len(), 3);
}

/// The filter of a bulk replay or an export is the events list's, `limit`
/// and `cursor` included: `limit` keeps the newest N, `cursor` starts after
/// a page already seen.
#[tokio::test]
async fn limit_and_cursor_select_like_the_events_list() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "l" })).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(s.post_in("l", &[], format!("{i}")).await.event_id());
    }
    let dry = |extra: Value| {
        let mut body = json!({ "endpoint": "l", "dry_run": true });
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (st, v) = s
        .api("POST", "/api/replay", Some(dry(json!({ "limit": 2 }))))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["count"], 2);
    assert_eq!(
        v["first_ids"],
        json!([ids[3], ids[4]]),
        "the newest two, oldest first"
    );

    let page = s.get("/api/events?endpoint=l&limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_string();
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(dry(json!({ "cursor": cursor }))),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["first_ids"],
        json!([ids[0], ids[1], ids[2]]),
        "after the first page"
    );

    let (st, v) = s
        .api("POST", "/api/replay", Some(dry(json!({ "limit": 0 }))))
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, v) = s
        .api("POST", "/api/replay", Some(dry(json!({ "limit": " 2 " }))))
        .await;
    assert_eq!(
        (st, &v["count"]),
        (200, &json!(2)),
        "read as the events list reads it: {v}"
    );
    let (st, v) = s
        .api("POST", "/api/replay", Some(dry(json!({ "limit": "" }))))
        .await;
    assert_eq!(
        (st, &v["count"]),
        (200, &json!(5)),
        "empty is no limit: {v}"
    );

    let (st, _, body) = crate::support::send(
        "GET",
        &s.admin_url("/api/export?endpoint=l&limit=1"),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    let lines: Vec<Value> = String::from_utf8_lossy(&body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "limit=1 exports one event");
    assert_eq!(lines[0]["id"], ids[4].as_str());
}

/// A job's "these events" link stays a page the events list accepts, even
/// when the job took more than a page holds.
#[tokio::test]
async fn a_job_page_links_to_a_list_that_opens() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "j" })).await;
    s.post_in("j", &[], "x").await;
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "j", "limit": 5000, "target": "http://127.0.0.1:9/" })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let job = v["id"].as_str().unwrap();
    let (st, _, page) = crate::support::send(
        "GET",
        &s.admin_url(&format!("/replay/{job}")),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    let page = String::from_utf8_lossy(&page);
    let href = page
        .split("href=\"")
        .map(|h| h.split('"').next().unwrap())
        .find(|h| h.starts_with("/events?endpoint=j"))
        .expect("a link to the job's events")
        .replace("&amp;", "&")
        .replace("&#38;", "&");
    let (st, _, _) =
        crate::support::send("GET", &s.admin_url(&href), &[], Default::default()).await;
    assert_eq!(st, 200, "{href}");
}

/// An event a job cannot replay at all (a bin has no target) is counted as
/// failed and the job says why.
#[tokio::test]
async fn a_job_says_why_it_could_not_send() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "nobin" })).await;
    s.post_in("nobin", &[], "x").await;
    let (st, v) = s
        .api("POST", "/api/replay", Some(json!({ "endpoint": "nobin" })))
        .await;
    assert_eq!(st, 202, "{v}");
    let job = v["id"].as_str().unwrap().to_string();
    let done = wait_job(&s, &job, "done").await;
    assert_eq!(done["failed"], 1);
    assert!(
        done["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("has no target")),
        "{done}"
    );
    let (_, _, page) = crate::support::send(
        "GET",
        &s.admin_url(&format!("/replay/{job}")),
        &[],
        Default::default(),
    )
    .await;
    assert!(String::from_utf8_lossy(&page).contains("has no target"));
}

/// Retention keeps what an unfinished job has yet to send: the job would
/// count those events as failed ("no event …") had they been pruned.
#[tokio::test]
async fn retention_keeps_what_an_unfinished_job_has_yet_to_send() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.create_endpoint(json!({ "slug": "rb" })).await;
    s.create_endpoint(json!({ "slug": "other" })).await;
    for i in 0..6 {
        s.post_in("rb", &[], format!("rb{i}")).await;
    }
    // One event now, the next in 1,000 s: unfinished for the whole test.
    let (st, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({ "endpoint": "rb", "rate": 0.001, "target": up.url("/r") })),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    let job = v["id"].as_str().unwrap().to_string();
    up.next().await;
    // Newer than rb's: once the sweep has pruned these, it is past rb's.
    for i in 0..6 {
        s.post_in("other", &[], format!("o{i}")).await;
    }
    s.stop().await;

    let mut cfg = config_at(&data);
    cfg.retain_per_endpoint = Some(2);
    let s = TestServer::start_with(cfg).await;
    let count = |v: Value| v["events"].as_array().unwrap().len();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while count(s.get("/api/events?endpoint=other&limit=100").await) > 2 {
        assert!(std::time::Instant::now() < deadline, "retention never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = count(s.get("/api/events?endpoint=rb&limit=100").await);
    assert!(left >= 5, "only {left} of rb's events left for the job");
    let status = s.get(&format!("/api/replay/{job}")).await;
    assert_eq!(status["failed"], 0, "{status}");
    s.api("DELETE", &format!("/api/replay/{job}"), None).await;
}

/// A job is stored before or after a retention pass, never in the middle:
/// a pass reads the jobs it keeps events for once, at its start, and a job
/// stored after that would lose its events to the rest of the pass.
#[tokio::test]
async fn a_job_is_never_created_in_the_middle_of_a_retention_pass() {
    use std::sync::Arc;

    use hookrelay::store::{Durability, EventFilter};

    let (_dir, data) = temp_data();
    let (store, relay) = crate::support::library_relay(&data, Durability::Buffered);
    let ep = serde_json::from_value(json!({ "slug": "b" })).unwrap();
    relay.create(ep, false).await.unwrap();
    // A pass in progress, on a thread of its own as the server's runs.
    let (held, end) = (std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
    let pass = std::thread::spawn({
        let store = Arc::clone(&store);
        move || {
            let _pass = store.retention_pass();
            held.0.send(()).unwrap();
            let _ = end.1.recv();
        }
    });
    held.1.recv().unwrap();
    let job = tokio::spawn({
        let relay = Arc::clone(&relay);
        async move {
            hookrelay::replay::start(
                &relay,
                Default::default(),
                EventFilter {
                    endpoint: Some("b".into()),
                    limit: 100,
                    ..Default::default()
                },
                None,
                Some("http://127.0.0.1:9/".into()),
                false,
                None,
            )
            .await
        }
    });
    // Nothing signals a job waiting on the pass, so it is given a window:
    // many times what the same selection takes unblocked (measured here,
    // without the write), and at least 300 ms.
    let started = Instant::now();
    hookrelay::replay::dry_run(
        &relay,
        EventFilter {
            endpoint: Some("b".into()),
            limit: 100,
            ..Default::default()
        },
        None,
    )
    .await
    .unwrap();
    let window = (started.elapsed() * 20).max(Duration::from_millis(300));
    tokio::time::sleep(window).await;
    assert!(
        !job.is_finished(),
        "a job was stored during a retention pass"
    );
    assert!(store.jobs().unwrap().is_empty());
    end.0.send(()).unwrap();
    pass.join().unwrap();
    job.await.unwrap().unwrap();
    assert_eq!(store.jobs().unwrap().len(), 1);
}

/// Hunt #24: two jobs made at once (a double click, a request sent twice)
/// each found no accepted attempt and both sent every event.
#[tokio::test]
async fn two_jobs_at_once_send_each_event_once() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    let ids = failed_events(&s, &mut up, "twice", 20).await;
    up.set_script(vec![Reply::status(200).delay(Duration::from_millis(20))]);
    // To the endpoint's target the failed ones; elsewhere, all of them.
    let make = |target: Option<String>| async {
        let job = match target {
            None => json!({ "endpoint": "twice", "state": "failed" }),
            Some(t) => json!({ "endpoint": "twice", "target": t }),
        };
        let (st, v) = s.api("POST", "/api/replay", Some(job)).await;
        assert_eq!(st, 202, "{v}");
        v["id"].as_str().unwrap().to_string()
    };
    let (a, b) = tokio::join!(make(None), make(None));
    let (a, b) = (
        wait_job(&s, &a, "done").await,
        wait_job(&s, &b, "done").await,
    );
    let mut bodies: Vec<String> = up
        .drain()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort();
    let want: Vec<String> = (0..ids.len()).map(|i| format!("twice-{i:03}")).collect();
    assert_eq!(bodies, want, "each event sent once");
    for j in [&a, &b] {
        assert_eq!(j["succeeded"], 20, "{j}");
    }
    assert_eq!(
        a["already_delivered"].as_u64().unwrap() + b["already_delivered"].as_u64().unwrap(),
        20,
        "{a} {b}"
    );
    // Hunt #25: to another URL as well (its attempts are not the target's).
    let mut other =
        Receiver::start(vec![Reply::status(200).delay(Duration::from_millis(20))]).await;
    let url = other.url("/elsewhere");
    let (a, b) = tokio::join!(make(Some(url.clone())), make(Some(url)));
    let (a, b) = (
        wait_job(&s, &a, "done").await,
        wait_job(&s, &b, "done").await,
    );
    let mut bodies: Vec<String> = other
        .drain()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    bodies.sort();
    assert_eq!(bodies, want, "each event sent once to the other URL");
    assert_eq!(
        a["already_delivered"].as_u64().unwrap() + b["already_delivered"].as_u64().unwrap(),
        20,
        "{a} {b}"
    );
}
