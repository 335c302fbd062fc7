//! Bin mode: capture byte-exact, answer with the configured response.

use serde_json::json;

use crate::support::{TestServer, send};

#[tokio::test]
async fn a_bin_captures_the_request_byte_for_byte() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "bin1",
        "response": { "status": 201, "body": "thanks", "headers": [["x-bin", "yes"]] }
    }))
    .await;

    let body: Vec<u8> = (0u8..=255)
        .chain([0xff, 0xfe, 0x00, b'\r', b'\n'])
        .collect();
    let r = s
        .post_in(
            "bin1/sub/path?a=1&b=%20two",
            &[
                ("X-Dup", "first"),
                ("x-dup", "second"),
                ("X-Mixed-Case", "Value With Spaces"),
                ("content-type", "application/octet-stream"),
            ],
            body.clone(),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(&r.body[..], b"thanks");
    assert_eq!(r.header("x-bin").as_deref(), Some("yes"));
    let id = r.event_id();

    let (status, headers, raw) = send(
        "GET",
        &s.admin_url(&format!("/api/events/{id}/body")),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(&raw[..], &body[..], "body stored byte-exact");
    let disposition = headers
        .iter()
        .find(|(n, _)| n == "content-disposition")
        .map(|(_, v)| v.clone());
    assert!(disposition.is_some_and(|d| d.starts_with(b"attachment")));

    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(ev["state"], "captured");
    assert_eq!(ev["method"], "POST");
    assert_eq!(ev["endpoint"], "bin1");
    assert_eq!(ev["path"], "/sub/path");
    assert_eq!(ev["query"], "a=1&b=%20two");
    assert_eq!(ev["size"], body.len());
    assert!(ev["body"].is_null(), "binary body is not shown as text");
    let b64 = ev["body_base64"].as_str().unwrap();
    use base64::Engine;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap(),
        body
    );
    let headers = ev["headers"].as_array().unwrap();
    let dups: Vec<&str> = headers
        .iter()
        .filter(|h| h[0] == "x-dup")
        .map(|h| h[1].as_str().unwrap())
        .collect();
    assert_eq!(dups, ["first", "second"], "duplicate headers kept in order");
    assert!(
        headers
            .iter()
            .any(|h| h[0] == "x-mixed-case" && h[1] == "Value With Spaces")
    );
}

#[tokio::test]
async fn a_text_body_is_shown_as_text() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "t" })).await;
    let r = s
        .post_in(
            "t",
            &[("content-type", "application/json")],
            r#"{"hello":"wörld"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], br#"{"ok":true}"#, "the default bin answer");
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["body"], r#"{"hello":"wörld"}"#);
}

#[tokio::test]
async fn a_response_sequence_cycles() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "flaky", "response": { "sequence": [500, 500, 200] } }))
        .await;
    let mut got = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let r = s.post_in("flaky", &[], "x").await;
        got.push(r.status);
        ids.push(r.event_id());
    }
    assert_eq!(got, [500, 500, 200, 500]);
    // Each event keeps the answer it got: a sender's retries can be
    // checked, and `status=` finds them.
    for (id, status) in ids.iter().zip(got) {
        let ev = s.get(&format!("/api/events/{id}")).await;
        assert_eq!(ev["last_status"], status, "{ev}");
    }
    let failed = s.get("/api/events?endpoint=flaky&status=500").await;
    assert_eq!(failed["events"].as_array().unwrap().len(), 3, "{failed}");
    let har = crate::support::send(
        "GET",
        &s.admin_url("/api/export?format=har&endpoint=flaky"),
        &[],
        Default::default(),
    )
    .await;
    let har: serde_json::Value = serde_json::from_slice(&har.2).unwrap();
    let statuses: Vec<_> = har["log"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 200, 500], "the HAR's answers");
    // A held event's entry says what the sender got from hookrelay.
    s.api(
        "PATCH",
        "/api/endpoints/flaky",
        Some(json!({ "status": "paused" })),
    )
    .await;
    assert_eq!(s.post_in("flaky", &[], "x").await.status, 202);
    let (_, har) = s
        .api(
            "GET",
            "/api/export?format=har&endpoint=flaky&state=held",
            None,
        )
        .await;
    let entry = &har["log"]["entries"][0];
    assert_eq!(entry["response"]["status"], 202, "{har}");
    assert_eq!(entry["response"]["statusText"], "held by hookrelay");
    let page = crate::support::send(
        "GET",
        &s.admin_url(&format!("/events/{}", ids[2])),
        &[],
        Default::default(),
    )
    .await;
    assert!(
        String::from_utf8_lossy(&page.2).contains("answered <span class=\"code\">200</span>"),
        "the event page"
    );
}

#[tokio::test]
async fn an_unknown_slug_is_404_and_stores_nothing() {
    let s = TestServer::start().await;
    let r = s.post_in("nope", &[], "x").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("nope"));
    let r = send("GET", &s.ingest_url("/elsewhere"), &[], Default::default()).await;
    assert_eq!(r.0, 404);
    let list = s.get("/api/events").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0);
}

/// A slug written percent-encoded is the same slug (RFC 3986 §6.2.2.2);
/// the rest of the path is kept as sent.
#[tokio::test]
async fn a_percent_encoded_slug_names_its_endpoint() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "bin" })).await;
    let r = s.post_in("%62in/a%2Fb", &[], "x").await;
    assert_eq!(r.status, 200);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["endpoint"], "bin");
    assert_eq!(ev["path"], "/a%2Fb");
    let r = s.post_in("%ff", &[], "x").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn any_method_is_captured() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "m" })).await;
    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let (status, _, _) = send(method, &s.ingest_url("/in/m"), &[], Default::default()).await;
        assert_eq!(status, 200, "{method}");
    }
    let list = s.get("/api/events?endpoint=m&method=put").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 1);
    assert_eq!(list["events"][0]["method"], "PUT");
}
