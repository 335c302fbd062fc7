//! The admin API: validation with clear errors, every endpoint field, event
//! filters and cursor pagination, the admin token.

use serde_json::json;

use crate::support::{TestServer, config_at, send, temp_data};

#[tokio::test]
async fn endpoint_fields_are_stored_and_returned() {
    let s = TestServer::start().await;
    let ep = s
        .create_endpoint(json!({
            "slug": "full",
            "name": "Shop orders",
            "target": "https://example.test/hooks",
            "timeout_ms": 2500,
            "failure_threshold": 6,
            "success_codes": ["200-302"],
            "retry": ["1s", "10s"],
            "signature": { "scheme": "github", "secret": "shh" },
            "response": { "status": 202, "body": "ok", "delay_ms": 5 },
            "notify_url": "http://127.0.0.1:9/notify"
        }))
        .await;
    assert_eq!(ep["name"], "Shop orders");
    assert_eq!(ep["status"], "active");
    assert_eq!(ep["mode"], "forward");
    assert_eq!(ep["timeout_ms"], 2500);
    assert_eq!(ep["failure_threshold"], 6);
    assert_eq!(ep["success_codes"], json!(["200-302"]));
    assert_eq!(ep["retry"], json!(["1s", "10s"]));
    assert_eq!(ep["signature"]["scheme"], "github");
    assert_eq!(ep["signature"]["has_secret"], true);
    assert_eq!(
        ep["has_secret"], true,
        "the contract names it on the endpoint"
    );
    assert!(
        ep["signature"].get("secret").is_none(),
        "secrets never leave"
    );
    assert_eq!(ep["response"]["status"], 202);
    assert_eq!(ep["notify_url"], "http://127.0.0.1:9/notify");
    assert_eq!(
        ep["counts"],
        json!({ "received": 0, "delivered": 0, "failed": 0, "held": 0 })
    );

    let defaults = s.create_endpoint(json!({ "slug": "d" })).await;
    assert!(
        defaults["name"]
            .as_str()
            .unwrap()
            .starts_with("Endpoint created on ")
    );
    assert!(defaults["name"].as_str().unwrap().contains(" @ "));
    assert_eq!(defaults["success_codes"], json!(["2xx", "301", "302"]));
    assert_eq!(defaults["failure_threshold"], 5);
    assert_eq!(defaults["timeout_ms"], 10000);
    assert_eq!(
        defaults["retry"],
        json!(["5s", "5m", "30m", "2h", "5h", "10h"])
    );
    assert!(defaults["target"].is_null());
    assert_eq!(defaults["has_secret"], false);
    // A setting left to its default shows it (the header was left out).
    let generic = s
        .create_endpoint(
            json!({ "slug": "g", "signature": { "scheme": "hmac-sha256", "secret": "k" } }),
        )
        .await;
    assert_eq!(
        (
            &generic["signature"]["header"],
            &generic["signature"]["encoding"]
        ),
        (&json!("X-Signature"), &json!("hex")),
        "{generic}"
    );

    let (status, changed) = s
        .api(
            "PATCH",
            "/api/endpoints/d",
            Some(json!({ "target": "http://127.0.0.1:1/x", "name": "renamed" })),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(changed["target"], "http://127.0.0.1:1/x");
    let (_, cleared) = s
        .api("PATCH", "/api/endpoints/d", Some(json!({ "target": null })))
        .await;
    assert!(cleared["target"].is_null(), "null clears a field");
    assert_eq!(cleared["name"], "renamed", "absent fields keep their value");
    // A field with no "none" refuses null, by name, and nothing changes:
    // read as absent it would silently keep the value.
    for field in [
        "name",
        "timeout_ms",
        "retry",
        "response",
        "ordered",
        "status",
    ] {
        let (status, v) = s
            .api(
                "PATCH",
                "/api/endpoints/d",
                Some(json!({ field: null, "mirror": "http://127.0.0.1:1/m" })),
            )
            .await;
        assert_eq!(status, 422, "{field}: {v}");
        let why = v["error"].as_str().unwrap();
        assert!(
            why.contains(&format!("{field}: null is not a value for this field")),
            "{why}"
        );
    }
    // A name shown raw in a terminal must not carry escape sequences.
    let (status, v) = s
        .api(
            "PATCH",
            "/api/endpoints/d",
            Some(json!({ "name": "red \u{1b}[31m", "mirror": "http://127.0.0.1:1/m" })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("control characters"),
        "{v}"
    );
    let kept = s.get("/api/endpoints/d").await;
    assert_eq!(kept["name"], "renamed");
    assert!(
        kept["mirror"].is_null(),
        "nothing of a refused change was applied"
    );

    let list = s.get("/api/endpoints").await;
    let slugs: Vec<&str> = list["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["d", "full", "g"]);
    assert!(list["next_cursor"].is_null(), "{list}");
    // Paged by name on request.
    let page = s.get("/api/endpoints?limit=2").await;
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["slug"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        (names(&page), &page["next_cursor"]),
        (vec!["d".into(), "full".into()], &json!("full"))
    );
    let rest = s.get("/api/endpoints?limit=2&cursor=full").await;
    assert_eq!(
        (names(&rest), &rest["next_cursor"]),
        (vec!["g".into()], &json!(null))
    );
    for bad in ["limit=0", "limit=1001", "page=2"] {
        let (st, v) = s.api("GET", &format!("/api/endpoints?{bad}"), None).await;
        assert_eq!(st, 400, "{bad}: {v}");
    }

    let (status, _) = s.api("DELETE", "/api/endpoints/d", None).await;
    assert_eq!(status, 204);
    let (status, _) = s.api("GET", "/api/endpoints/d", None).await;
    assert_eq!(status, 404);
    assert_eq!(s.post_in("d", &[], "x").await.status, 404);
}

/// Edits of different fields at the same moment all apply: each was made
/// to a copy of the endpoint taken before the others were saved, and the
/// last save undid the rest — `enforce` or a rotated secret lost, with a
/// 200 for every edit.
#[tokio::test]
async fn edits_at_the_same_moment_all_apply() {
    let s = std::sync::Arc::new(TestServer::start().await);
    s.create_endpoint(json!({ "slug": "race", "target": "http://127.0.0.1:9/", "signature": { "scheme": "github", "secret": "old" } }))
        .await;
    for round in 0..15u64 {
        let edits = [
            json!({ "name": format!("round {round}") }),
            json!({ "timeout_ms": 1000 + round }),
            json!({ "failure_threshold": 10 + round }),
            json!({ "retry": [format!("{}s", 1 + round)] }),
            json!({ "notify_url": format!("http://127.0.0.1:9/n{round}") }),
            json!({ "mirror": format!("http://127.0.0.1:9/m{round}") }),
            json!({ "signature": { "tolerance_s": 100 + round } }),
            json!({ "signature": { "enforce": round % 2 == 0 } }),
        ];
        let sent = edits.into_iter().map(|edit| {
            let s = std::sync::Arc::clone(&s);
            tokio::spawn(async move { s.api("PATCH", "/api/endpoints/race", Some(edit)).await })
        });
        for done in sent.collect::<Vec<_>>() {
            let (status, body) = done.await.unwrap();
            assert_eq!(status, 200, "{body}");
        }
        let ep = s.get("/api/endpoints/race").await;
        let got = (
            &ep["name"],
            &ep["timeout_ms"],
            &ep["failure_threshold"],
            &ep["retry"][0],
            &ep["notify_url"],
            &ep["mirror"],
            &ep["signature"]["tolerance_s"],
            &ep["signature"]["enforce"],
        );
        let want = (
            &json!(format!("round {round}")),
            &json!(1000 + round),
            &json!(10 + round),
            &json!(format!("{}s", 1 + round)),
            &json!(format!("http://127.0.0.1:9/n{round}")),
            &json!(format!("http://127.0.0.1:9/m{round}")),
            &json!(100 + round),
            &json!(round % 2 == 0),
        );
        assert_eq!(got, want, "round {round}: an edit was lost");
    }
}

#[tokio::test]
async fn bad_requests_get_clear_errors() {
    let s = TestServer::start().await;
    let check = |status: u16, body: serde_json::Value, want_status: u16, want_text: &str| {
        assert_eq!(status, want_status, "{body}");
        let msg = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error field: {body}"));
        assert!(
            msg.contains(want_text),
            "{msg:?} should mention {want_text:?}"
        );
    };
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "Bad Slug" })),
        )
        .await;
    check(st, b, 400, "invalid slug");
    let (st, b) = s
        .api("POST", "/api/endpoints", Some(json!({ "name": "x" })))
        .await;
    check(st, b, 400, "slug");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "tagret": "x" })),
        )
        .await;
    check(st, b, 422, "tagret");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "target": "ftp://x" })),
        )
        .await;
    check(st, b, 400, "target");
    for field in ["target", "mirror", "notify_url"] {
        let (st, b) = s
            .api(
                "POST",
                "/api/endpoints",
                Some(json!({ "slug": "a", field: "http://user:hunter2@127.0.0.1:1/" })),
            )
            .await;
        check(st, b.clone(), 400, "user or password");
        assert!(!b.to_string().contains("hunter2"), "{b}");
    }
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "success_codes": ["7xx"] })),
        )
        .await;
    check(st, b, 400, "success_codes");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "retry": ["soon"] })),
        )
        .await;
    check(st, b, 400, "retry");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "retry": ["5s", "18400000000000000000s"] })),
        )
        .await;
    check(st, b, 400, "30 days");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "mode": "later" })),
        )
        .await;
    check(st, b, 422, "unknown variant");
    // serde_json calls this one a syntax error; it is well-formed JSON.
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "mode": 5 })),
        )
        .await;
    check(
        st,
        b,
        422,
        "mode: a value of the wrong type at line 1 column",
    );
    // A value of the wrong type is named by its field's path: serde names
    // only the type it expected.
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(
                json!({ "slug": "a", "signature": { "scheme": "github", "tolerance_s": "soon" } }),
            ),
        )
        .await;
    check(st, b, 422, "signature.tolerance_s: invalid type: string");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "retry": ["5s", 30] })),
        )
        .await;
    check(st, b, 422, "retry[1]: invalid type: integer");
    // An array is not an object: serde would read it as the fields in order.
    let (st, b) = s
        .api("POST", "/api/endpoints", Some(json!(["arr", "Array made"])))
        .await;
    check(st, b, 422, "expected a JSON object, found an array");
    let (st, b) = s
        .api("POST", "/api/replay", Some(json!(["endpoint", "x"])))
        .await;
    check(st, b, 422, "found an array");
    // Names are counted in characters, not bytes.
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "ru", "name": "Ж".repeat(200) })),
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "ru2", "name": "Ж".repeat(201) })),
        )
        .await;
    check(st, b, 400, "name: must be 1 to 200 characters");
    // The dashboard's form for a new endpoint is /endpoints/new.
    let (st, b) = s
        .api("POST", "/api/endpoints", Some(json!({ "slug": "new" })))
        .await;
    check(st, b, 400, "slug \"new\" is reserved");
    let (st, b) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "a", "timeout_ms": 0 })),
        )
        .await;
    check(st, b, 400, "timeout_ms");

    let (st, _, body) = send(
        "POST",
        &s.admin_url("/api/endpoints"),
        &[("content-type", "application/json")],
        "{not json".into(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    check(st, v, 400, "invalid JSON");

    s.create_endpoint(json!({ "slug": "a" })).await;
    let (st, b) = s
        .api("POST", "/api/endpoints", Some(json!({ "slug": "a" })))
        .await;
    check(st, b, 409, "already exists");
    let (st, b) = s.api("GET", "/api/endpoints/zzz", None).await;
    check(st, b, 404, "zzz");
    let (st, b) = s
        .api("GET", "/api/events/01ARZ3NDEKTSV4RRFFQ69G5FAV", None)
        .await;
    check(st, b, 404, "no event");
    let (st, b) = s.api("GET", "/api/events?state=bogus", None).await;
    check(st, b, 400, "state");
    let (st, b) = s.api("GET", "/api/events?signature=bogus", None).await;
    check(st, b, 400, "signature");
    let (st, b) = s.api("GET", "/api/events?since=yesterday", None).await;
    check(st, b, 400, "since");
    // Both count back from now: an empty page read as "none in that hour".
    let (st, b) = s.api("GET", "/api/events?since=1h&until=2h", None).await;
    check(st, b, 400, "since is after until");
    // A typo in a filter's name would list everything.
    let (st, b) = s.api("GET", "/api/events?endpont=x", None).await;
    check(st, b, 400, "endpont");
    let (st, b) = s.api("GET", "/api/export?stat=failed", None).await;
    check(st, b, 400, "stat");
    // Decoded lossily, `%FF` became U+FFFD: a search that found nothing.
    let (st, b) = s.api("GET", "/api/events?q=%FF", None).await;
    check(st, b, 400, "query parameter \"q\": its percent-escapes");
    let (st, b) = s.api("GET", "/api/events?field=a:%C3", None).await;
    check(st, b, 400, "\"field\"");
    let (st, _) = s
        .api("GET", "/api/export?format=har&endpoint=x", None)
        .await;
    assert_eq!(st, 200);
    // Past what an id can carry (48 bits of ms): it wrapped around to 1970.
    let (st, b) = s
        .api("GET", "/api/events?until=281474976710656", None)
        .await;
    check(st, b, 400, "until");
    let (st, b) = s.api("GET", "/api/events?cursor=nope", None).await;
    check(st, b, 400, "cursor");
    // 26 digits past the 128-bit range: not an id (it once wrapped around).
    let (st, b) = s
        .api("GET", "/api/events?cursor=ZZZZZZZZZZZZZZZZZZZZZZZZZZ", None)
        .await;
    check(st, b, 400, "cursor");
    let (st, b) = s
        .api(
            "POST",
            "/api/events/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay",
            Some(json!({ "bogus": 1 })),
        )
        .await;
    check(st, b, 422, "bogus");

    let (st, _, body) = send(
        "POST",
        &s.admin_url("/api/endpoints"),
        &[("content-type", "application/json")],
        format!(
            "{{\"slug\": \"big\", \"name\": \"{}\"}}",
            "n".repeat(2 << 20)
        )
        .into(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    check(st, v, 413, "KiB");
    let (st, _, body) = send(
        "PUT",
        &s.admin_url("/api/endpoints/a"),
        &[],
        Default::default(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("405 body is not JSON: {:?}", String::from_utf8_lossy(&body)));
    check(st, v, 405, "PUT is not allowed");
    // A path segment that is not UTF-8: a JSON error like the rest.
    let (st, _, body) = send(
        "GET",
        &s.admin_url("/api/endpoints/%FF"),
        &[],
        Default::default(),
    )
    .await;
    let v: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("400 body is not JSON: {:?}", String::from_utf8_lossy(&body)));
    check(st, v, 400, "UTF-8");
}

#[tokio::test]
async fn events_filter_and_paginate_newest_first() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "a" })).await;
    s.create_endpoint(json!({ "slug": "b", "response": { "status": 500 } }))
        .await;
    let mut ids_a = Vec::new();
    for i in 0..7 {
        ids_a.push(s.post_in("a", &[], format!("alpha {i}")).await.event_id());
    }
    let mid = s.get(&format!("/api/events/{}", ids_a[3])).await["received_at"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..3 {
        s.post_in("b", &[("x-note", "needle-in-header")], format!("beta {i}"))
            .await;
    }

    let all = s.get("/api/events?limit=1000").await;
    assert_eq!(all["events"].as_array().unwrap().len(), 10);
    assert_eq!(all["events"][0]["endpoint"], "b", "newest first");

    // Cursor pagination over endpoint a: 3 + 3 + 1, no repeats, newest first.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/events?endpoint=a&limit=3&cursor={c}"),
            None => "/api/events?endpoint=a&limit=3".to_string(),
        };
        let page = s.get(&path).await;
        for e in page["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut want = ids_a.clone();
    want.reverse();
    assert_eq!(seen, want);

    let count = |v: serde_json::Value| v["events"].as_array().unwrap().len();
    assert_eq!(count(s.get("/api/events?state=captured").await), 10);
    assert_eq!(
        count(s.get("/api/events?endpoint=b&state=captured").await),
        3
    );
    assert_eq!(
        count(s.get("/api/events?q=needle-in").await),
        3,
        "q searches headers"
    );
    assert_eq!(
        count(s.get("/api/events?q=ALPHA").await),
        7,
        "q searches bodies, case-insensitive"
    );
    // Several events may share a millisecond: the expectation comes from the data.
    let times: Vec<String> = s.get("/api/events?endpoint=a").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["received_at"].as_str().unwrap().to_string())
        .collect();
    let since = times.iter().filter(|t| t.as_str() >= mid.as_str()).count();
    let until = times.iter().filter(|t| t.as_str() <= mid.as_str()).count();
    assert!(since >= 4 && until >= 4);
    assert_eq!(
        count(s.get(&format!("/api/events?endpoint=a&since={mid}")).await),
        since
    );
    assert_eq!(
        count(s.get(&format!("/api/events?endpoint=a&until={mid}")).await),
        until
    );
    // A duration back from now: everything is newer than an hour, nothing
    // older (these events are seconds old).
    let all = times.len();
    assert_eq!(count(s.get("/api/events?endpoint=a&since=1h").await), all);
    assert_eq!(
        count(s.get("/api/events?endpoint=a&until=1h%20ago").await),
        0
    );
    assert_eq!(count(s.get("/api/events?method=GET").await), 0);
}

#[tokio::test]
async fn the_admin_token_guards_everything_but_healthz() {
    let (_dir, data) = temp_data();
    let mut cfg = config_at(&data);
    cfg.admin_token = Some("t0ken-123".into());
    let s = TestServer::start_with(cfg).await;
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("authorization", "Bearer wrong")],
        Default::default(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("authorization", "Bearer t0ken-123")],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    // The scheme's name is case-insensitive.
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("authorization", "bearer t0ken-123")],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    let (st, _, _) = send("GET", &s.admin_url("/metrics"), &[], Default::default()).await;
    assert_eq!(st, 401);
    let (st, headers, _) = send("GET", &s.admin_url("/healthz"), &[], Default::default()).await;
    assert_eq!(st, 200);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "x-content-type-options" && v == b"nosniff")
    );
}

#[tokio::test]
async fn endpoints_from_the_config_file_are_created_or_updated() {
    let (dir, data) = temp_data();
    let path = dir.path().join("hookrelay.toml");
    std::fs::write(
        &path,
        "[[endpoint]]\nslug = \"shop\"\nname = \"From file\"\nstatus = \"active\"\nfailure_threshold = 6\n\n[endpoint.response]\nstatus = 202\n\n[[endpoint]]\nslug = \"later\"\nstatus = \"paused\"\n",
    )
    .unwrap();
    let args = hookrelay::config::ServeArgs {
        config: Some(path.clone()),
        data: Some(data.clone()),
        ..Default::default()
    };
    let cfg = hookrelay::Config::resolve(args.clone()).unwrap();
    let s = TestServer::start_with(cfg).await;
    let ep = s.get("/api/endpoints/shop").await;
    assert_eq!(ep["name"], "From file");
    assert_eq!(ep["failure_threshold"], 6);
    assert_eq!(s.post_in("shop", &[], "x").await.status, 202);
    assert_eq!(
        s.get("/api/endpoints/later").await["status"],
        "paused",
        "the file's status is where a new endpoint starts"
    );
    // Paused by hand (as the policy would disable it): a restart with the
    // file still saying "active" must not undo that.
    let (st, _) = s.api("POST", "/api/endpoints/shop/pause", None).await;
    assert_eq!(st, 200);
    s.stop().await;

    std::fs::write(
        &path,
        "[[endpoint]]\nslug = \"shop\"\nname = \"Changed\"\nstatus = \"active\"\n",
    )
    .unwrap();
    let s = TestServer::start_with(hookrelay::Config::resolve(args).unwrap()).await;
    let ep = s.get("/api/endpoints/shop").await;
    assert_eq!(ep["name"], "Changed");
    assert_eq!(
        ep["failure_threshold"], 6,
        "fields the file no longer names keep their value"
    );
    assert_eq!(ep["status"], "paused", "the live status stands");
    drop(dir);
}

#[tokio::test]
async fn without_a_token_a_foreign_host_is_refused() {
    // DNS rebinding: a page on evil.example resolves its name to 127.0.0.1.
    let s = TestServer::start().await;
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("host", "evil.example:8081")],
        Default::default(),
    )
    .await;
    assert_eq!(st, 401);
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/api/endpoints"),
        &[("host", "localhost:8081")],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    // A Host that is not text names no host at all: refused before the
    // token check looks at it.
    let out = crate::support::raw(
        s.admin,
        b"GET /api/endpoints HTTP/1.1\r\nhost: \xff\xfe\r\nconnection: close\r\n\r\n",
        std::time::Duration::from_secs(10),
    )
    .await;
    assert!(
        out.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // Health probes name a service, and learn nothing a page could use.
    let (st, _, _) = send(
        "GET",
        &s.admin_url("/healthz"),
        &[("host", "hookrelay.internal:8081")],
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
}

/// Replaying an event of a deleted endpoint without a target says why.
#[tokio::test]
async fn replay_names_a_deleted_endpoint() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "gone" })).await;
    let id = s.post_in("gone", &[], "x").await.event_id();
    let (st, _) = s.api("DELETE", "/api/endpoints/gone", None).await;
    assert_eq!(st, 204);
    let (st, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), Some(json!({})))
        .await;
    assert_eq!(st, 422, "{v}");
    assert!(v["error"].as_str().unwrap().contains("was deleted"), "{v}");
}

/// Over HTTP/2 the host travels in `:authority`, not in a Host header: the
/// no-token Host rule must read it there too.
#[tokio::test]
async fn without_a_token_a_foreign_authority_over_h2c_is_refused() {
    let s = TestServer::start().await;
    for (authority, want) in [("evil.example:8081", 401), ("localhost:8081", 200)] {
        let tcp = tokio::net::TcpStream::connect(s.admin).await.unwrap();
        let (mut h2, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        // Sent to the test server; `:authority` names another host, as a
        // DNS-rebound page's request would.
        let req = http::Request::get(format!("http://{authority}/api/endpoints"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = h2.send_request(req).await.unwrap();
        assert_eq!(resp.status(), want, "{authority}");
    }
}

/// Listening on every address, the ingest URLs shown name a host a sender
/// can use: the one the dashboard was reached by, else this machine's name.
#[tokio::test]
async fn a_wildcard_ingest_address_is_shown_by_a_host_name() {
    use hookrelay::store::Durability;
    let (_dir, data) = crate::support::temp_data();
    let (_store, relay) = crate::support::library_relay(&data, Durability::Buffered);
    relay.ingest_base.set("http://0.0.0.0:8080".into()).unwrap();
    assert_eq!(
        relay.ingest_base_for(Some("dash.example")).as_deref(),
        Some("http://dash.example:8080")
    );
    let shown = relay.ingest_base_for(None).unwrap();
    assert!(
        shown.ends_with(":8080") && !shown.contains("0.0.0.0"),
        "{shown}"
    );
}

/// Exports are built whole in memory: two at a time, and a client that
/// does not read its export keeps its turn until it hangs up.
#[tokio::test]
async fn exports_take_turns() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "big" })).await;
    // ~40 MB of export: more than loopback sockets buffer, so an export
    // nobody reads stays in flight.
    let body = "a".repeat(1 << 20);
    for _ in 0..40 {
        assert_eq!(s.post_in("big", &[], body.clone()).await.status, 200);
    }
    let admin = s.admin;
    // Sends the request and reads only the status line.
    let start = async || {
        let mut c = tokio::net::TcpStream::connect(admin).await.unwrap();
        c.write_all(b"GET /api/export?endpoint=big HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        c
    };
    let status_line = async |c: &mut tokio::net::TcpStream| {
        let mut line = [0u8; 12];
        c.read_exact(&mut line).await.unwrap();
        String::from_utf8_lossy(&line).into_owned()
    };
    let mut first = start().await;
    let mut second = start().await;
    assert_eq!(status_line(&mut first).await, "HTTP/1.1 200");
    assert_eq!(status_line(&mut second).await, "HTTP/1.1 200");
    let mut third = start().await;
    let mut line = [0u8; 12];
    // Nothing to wait for when it works: a wrong server answers at once.
    let early = tokio::time::timeout(
        std::time::Duration::from_secs(1),
        third.read_exact(&mut line),
    )
    .await;
    assert!(
        early.is_err(),
        "a third export was sent while two were in flight"
    );
    drop(first);
    let line = tokio::time::timeout(std::time::Duration::from_secs(15), status_line(&mut third))
        .await
        .expect("the third export once the first client hung up");
    assert_eq!(line, "HTTP/1.1 200");
    // Read whole, an export still has every event.
    drop((second, third));
    let (st, _, all) = send(
        "GET",
        &s.admin_url("/api/export?endpoint=big"),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(
        (
            st,
            all.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count()
        ),
        (200, 40)
    );
}

/// Hunt #19: a text answer over the 64 KiB an attempt keeps was exported
/// to HAR as base64 of the kept part with its size, nothing saying it was
/// cut, and shown on the event page as a binary hex dump (the kept part
/// ends inside a character).
#[tokio::test]
async fn a_long_text_answer_stays_text_and_says_it_was_cut() {
    use crate::support::{Receiver, Reply};
    let answer = format!("a{}", "é".repeat(40_000));
    let up = Receiver::start(vec![
        Reply::status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(answer.clone()),
    ])
    .await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({"slug": "long", "target": up.url("/")}))
        .await;
    let r = s
        .post_in("long", &[("cookie", "sid=1; theme=dark")], "x")
        .await;
    assert_eq!(r.body.len(), answer.len(), "the sender gets all of it");
    let id = r.event_id();
    let (_, _, har) = send(
        "GET",
        &s.admin_url("/api/export?format=har"),
        &[],
        Default::default(),
    )
    .await;
    let har: serde_json::Value = serde_json::from_slice(&har).unwrap();
    let entry = &har["log"]["entries"][0];
    let content = &entry["response"]["content"];
    assert_eq!(content["size"], answer.len(), "{content}");
    assert!(content.get("encoding").is_none(), "text, not base64");
    let kept = content["text"].as_str().unwrap();
    assert!(
        answer.starts_with(kept) && kept.len() >= 65_000,
        "{}",
        kept.len()
    );
    assert!(
        content["comment"]
            .as_str()
            .unwrap()
            .contains("first 65536 bytes"),
        "{content}"
    );
    assert_eq!(
        entry["request"]["cookies"],
        json!([{"name": "sid", "value": "1"}, {"name": "theme", "value": "dark"}])
    );
    let (_, _, page) = send(
        "GET",
        &s.admin_url(&format!("/events/{id}")),
        &[],
        Default::default(),
    )
    .await;
    let page = String::from_utf8_lossy(&page);
    assert!(!page.contains("binary, hex dump"), "shown as binary");
    assert!(page.contains("bytes · text"), "not shown as text");
}

/// Hunt #18: an event replayed thousands of times made its detail (API,
/// page, export) hundreds of MB. The detail carries the newest attempts;
/// the older ones come a page at a time.
#[tokio::test]
async fn an_event_detail_carries_the_newest_attempts_and_pages_the_rest() {
    use crate::support::{Receiver, Reply};
    let up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({"slug": "bin"})).await;
    let id = s.post_in("bin", &[], "x").await.event_id();
    let shown = hookrelay::store::ATTEMPTS_SHOWN;
    let total = shown + 7;
    for _ in 0..total {
        let (status, a) = s
            .api(
                "POST",
                &format!("/api/events/{id}/replay"),
                Some(json!({"target": up.url("/r")})),
            )
            .await;
        assert_eq!(status, 200, "{a}");
    }
    let ev = s.get(&format!("/api/events/{id}")).await;
    let listed = ev["attempts"].as_array().unwrap();
    assert_eq!(listed.len(), shown);
    assert_eq!(listed.last().unwrap()["n"], total, "the newest are shown");
    assert_eq!(ev["attempts_omitted"], 7, "{}", ev["attempts_omitted"]);
    assert_eq!(ev["attempt_count"], total);

    let page = s
        .get(&format!("/api/events/{id}/attempts?before=8&limit=5"))
        .await;
    let ns: Vec<_> = page["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["n"].clone())
        .collect();
    assert_eq!(ns, [3, 4, 5, 6, 7].map(serde_json::Value::from));
    assert_eq!(page["next_before"], 3);
    let first = s.get(&format!("/api/events/{id}/attempts?before=3")).await;
    assert_eq!(first["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_before"], serde_json::Value::Null);
    let (status, _) = s
        .api(
            "GET",
            "/api/events/01KAAAAAAAAAAAAAAAAAAAAAAA/attempts",
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Hunt #20: out-of-range or foreign parameters were taken silently.
    for (query, says) in [
        ("limit=0", "limit: \"0\" must be between 1 and 50"),
        ("limit=51", "must be between 1 and 50"),
        (
            "before=99999999999999999999",
            "must be between 1 and 4294967295",
        ),
        ("before=x", "before: \"x\" must be between"),
        (
            "state=failed",
            "unknown parameter \"state\"; the parameters are before, limit",
        ),
    ] {
        let (status, body) = s
            .api("GET", &format!("/api/events/{id}/attempts?{query}"), None)
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }

    let (_, _, html) = send(
        "GET",
        &s.admin_url(&format!("/events/{id}")),
        &[],
        Default::default(),
    )
    .await;
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains(&format!("({total}, newest first)")),
        "count of all"
    );
    assert!(
        html.contains("7 older ones are in"),
        "no note of the older ones"
    );
    assert_eq!(html.matches("<li class=\"attempt").count(), shown);
}

/// The HAR entry's answer is the target's last even when more than a
/// detail's worth of replays to other URLs came after it.
#[tokio::test]
async fn a_har_entry_finds_the_targets_answer_behind_many_replays() {
    use crate::support::{Receiver, Reply};
    let target = Receiver::start(vec![Reply::status(201).body("from the target")]).await;
    let other = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({"slug": "fw", "target": target.url("/t")}))
        .await;
    let id = s.post_in("fw", &[], "x").await.event_id();
    for _ in 0..hookrelay::store::ATTEMPTS_SHOWN + 1 {
        let (status, a) = s
            .api(
                "POST",
                &format!("/api/events/{id}/replay"),
                Some(json!({"target": other.url("/o")})),
            )
            .await;
        assert_eq!(status, 200, "{a}");
    }
    let (_, _, har) = send(
        "GET",
        &s.admin_url("/api/export?format=har&endpoint=fw"),
        &[],
        Default::default(),
    )
    .await;
    let har: serde_json::Value = serde_json::from_slice(&har).unwrap();
    let response = &har["log"]["entries"][0]["response"];
    assert_eq!(response["status"], 201, "{response}");
    assert_eq!(response["content"]["text"], "from the target");
}

/// `field=PATH[:VALUE]` finds events by a field of their JSON body, in the
/// API, the CLI, the dashboard's list and a bulk replay's count (research:
/// users find "the right delivery" by an id inside the payload).
#[tokio::test]
async fn events_are_found_by_a_field_of_their_json_body() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({"slug": "shop"})).await;
    let mut ids = Vec::new();
    for body in [
        r#"{"type":"order.paid","data":{"id":"ord_1","total":12.5,"items":[{"sku":"A"}]}}"#,
        r#"{"type":"order.paid","data":{"id":"ord_2","total":99,"items":[{"sku":"B"}]}}"#,
        r#"{"type":"refund","data":{"id":"ord_1"}}"#,
        "id=ord_1&type=form",
        "\u{0}\u{1}binary",
    ] {
        ids.push(s.post_in("shop", &[], body).await.event_id());
    }
    let found = |q: &'static str| {
        let s = &s;
        async move {
            let v = s.get(&format!("/api/events?{q}")).await;
            let mut got: Vec<String> = v["events"]
                .as_array()
                .unwrap_or_else(|| panic!("{q}: {v}"))
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_string())
                .collect();
            got.reverse();
            got
        }
    };
    assert_eq!(
        found("field=data.id:ord_1").await,
        [ids[0].clone(), ids[2].clone()]
    );
    assert_eq!(found("field=data.total:99").await, [ids[1].clone()]);
    assert_eq!(found("field=data.items.0.sku:A").await, [ids[0].clone()]);
    assert_eq!(
        found("field=data.items").await,
        [ids[0].clone(), ids[1].clone()]
    );
    assert_eq!(
        found("endpoint=shop&field=type:refund&q=ord_1").await,
        [ids[2].clone()],
        "with the other filters"
    );
    assert!(
        found("field=id:ord_1").await.is_empty(),
        "a form body is not JSON"
    );
    let (status, v) = s.api("GET", "/api/events?field=a..b", None).await;
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().starts_with("field: "), "{v}");

    // The CLI's flag, the dashboard's form and a bulk replay's count.
    let mut cli = crate::support::cmd::hookrelay();
    cli.args(["events", "--field", "data.id:ord_2", "--json"])
        .env("HOOKRELAY_SERVER", s.admin_url(""));
    let out = crate::support::cmd::output(cli).await;
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(listed["events"][0]["id"], ids[1].as_str());
    assert_eq!(listed["events"].as_array().unwrap().len(), 1);
    let (_, _, html) = send(
        "GET",
        &s.admin_url("/events?field=data.id%3Aord_2"),
        &[],
        Default::default(),
    )
    .await;
    let html = String::from_utf8_lossy(&html);
    assert!(
        html.contains(r#"name="field" value="data.id:ord_2""#),
        "kept in the form"
    );
    assert!(
        html.contains(&ids[1]) && !html.contains(&ids[0]),
        "filtered"
    );
    let (status, v) = s
        .api(
            "POST",
            "/api/replay",
            Some(json!({"field": "type:order.paid", "dry_run": true})),
        )
        .await;
    assert_eq!((status, &v["count"]), (200, &json!(2)), "{v}");
}
