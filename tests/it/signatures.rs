//! Signatures end to end: the official libraries' vectors through real HTTP
//! ingest and through `hookrelay verify`; enforcement; WooCommerce's ping;
//! topics and duplicates; checking a stored event; re-signed replay.

use base64::Engine;
use serde_json::{Value, json};

use crate::support::{Receiver, Reply, TestServer};
use hookrelay::signature::{self, SignatureConfig, Verdict};

const TIMESTAMPED: [&str; 4] = ["stripe", "standard", "slack", "paddle"];

struct Vector {
    name: String,
    scheme: String,
    secrets: Vec<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    at: i64,
    tolerance: u64,
    expected: String,
}

fn vectors() -> Vec<Vector> {
    let v: Value = serde_json::from_str(include_str!("../vectors/vectors.json")).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let body = match (c["body_b64"].as_str(), c["body_ref"].as_str()) {
                (Some(b), _) => b64.decode(b).unwrap(),
                (None, Some(r)) => b64.decode(v["bodies"][r].as_str().unwrap()).unwrap(),
                _ => panic!("vector without body: {c}"),
            };
            let at = c["now"]
                .as_i64()
                .unwrap_or_else(|| c["ts"].as_i64().unwrap() + c["now_offset"].as_i64().unwrap());
            Vector {
                name: c["name"].as_str().unwrap().into(),
                // Svix vectors use the standard scheme under svix- names.
                scheme: match c["scheme"].as_str().unwrap() {
                    "svix" => "standard".into(),
                    s => s.into(),
                },
                secrets: c["secrets"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect(),
                headers: c["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_string(),
                            h[1].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
                body,
                at,
                tolerance: c["tolerance_s"].as_u64().unwrap(),
                expected: c["expected"].as_str().unwrap().into(),
            }
        })
        .collect()
}

#[tokio::test]
async fn official_vectors_through_http_ingest() {
    let s = TestServer::start().await;
    let mut checked = 0;
    for (i, v) in vectors().into_iter().enumerate() {
        // Ingest judges timestamps against the wall clock, and the vectors
        // carry fixed ones: stale cases are covered by `verify --at` below,
        // and timestamp checks are off here (tolerance 0) so that only the
        // signature is judged.
        if v.expected == "stale" {
            continue;
        }
        let slug = format!("v{i}");
        let tolerance = if TIMESTAMPED.contains(&v.scheme.as_str()) {
            0
        } else {
            v.tolerance
        };
        s.create_endpoint(json!({
            "slug": slug,
            "signature": { "scheme": v.scheme, "secrets": v.secrets, "tolerance_s": tolerance }
        }))
        .await;
        let headers: Vec<(&str, &str)> = v
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let r = s.post_in(&slug, &headers, v.body.clone()).await;
        assert_eq!(r.status, 200, "{}", v.name);
        let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
        assert_eq!(
            ev["signature"]["verdict"],
            v.expected.as_str(),
            "{}: {}",
            v.name,
            ev["signature"]["detail"]
        );
        checked += 1;
    }
    assert!(checked > 60, "only {checked} vectors checked");
}

#[tokio::test]
async fn official_vectors_through_hookrelay_verify() {
    let dir = tempfile::tempdir().unwrap();
    let vs = vectors();
    let mut results = Vec::new();
    for (i, v) in vs.iter().enumerate() {
        let body = dir.path().join(format!("{i}.body"));
        std::fs::write(&body, &v.body).unwrap();
        let mut cmd = crate::support::cmd::hookrelay();
        cmd.args([
            "verify",
            "--scheme",
            &v.scheme,
            "--at",
            &v.at.to_string(),
            "--tolerance",
            &v.tolerance.to_string(),
            "--body-file",
        ])
        .arg(&body);
        for s in &v.secrets {
            cmd.args(["--secret", s]);
        }
        for (n, val) in &v.headers {
            cmd.args(["--header", &format!("{n}: {val}")]);
        }
        let o = crate::support::cmd::output(cmd).await;
        results.push((
            v.name.clone(),
            v.expected.clone(),
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        ));
    }
    assert!(results.len() > 80);
    for (name, expected, code, stdout, stderr) in results {
        let v: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|_| panic!("{name}: no JSON: {stdout} {stderr}"));
        assert_eq!(v["verdict"], expected.as_str(), "{name}: {}", v["detail"]);
        assert_eq!(
            code,
            Some(if expected == "valid" { 0 } else { 1 }),
            "{name}: exit status"
        );
    }
    // Input it cannot check is a usage error, told apart from "not valid".
    let mut cmd = crate::support::cmd::hookrelay();
    cmd.args([
        "verify",
        "--scheme",
        "github",
        "--secret",
        "k",
        "--body-file",
        "/nonexistent/body",
    ]);
    let o = crate::support::cmd::output(cmd).await;
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn enforced_signatures_reject_with_401_and_keep_the_event() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "gh", "signature": { "scheme": "github", "secret": "It's a Secret to Everybody", "enforce": true } })).await;
    let cfg = SignatureConfig::new("github", "It's a Secret to Everybody");
    let body = br#"{"zen":"Keep it logically awesome."}"#;
    let signed = signature::sign(&cfg, body, 0, "");
    let headers: Vec<(String, String)> = signed
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert_eq!(s.post_in("gh", &h, &body[..]).await.status, 200);

    let r = s
        .post_in("gh", &[("x-hub-signature-256", "sha256=0000")], &body[..])
        .await;
    assert_eq!(r.status, 401);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(error.starts_with("signature invalid"), "{error}");
    // No bits of the expected MAC go back to the sender: they would let it
    // test guesses of the secret offline. The admin side keeps the detail.
    let expected = signature::sign(&cfg, body, 0, "")[0].1.clone();
    let expected = String::from_utf8_lossy(&expected);
    let hex = expected.trim_start_matches("sha256=");
    assert!(
        !error.contains(&hex[..8]) && !error.contains("expects"),
        "{error}"
    );
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "rejected");
    assert!(
        ev["signature"]["detail"]
            .as_str()
            .unwrap()
            .contains("expects"),
        "{}",
        ev["signature"]
    );
    assert_eq!(
        ev["body"],
        std::str::from_utf8(body).unwrap(),
        "nothing is lost"
    );

    let r = s.post_in("gh", &[], &body[..]).await;
    assert_eq!(r.status, 401);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["signature"]["verdict"], "missing");
    let rejected = s.get("/api/events?state=rejected").await;
    assert_eq!(rejected["events"].as_array().unwrap().len(), 2);
    let valid = s.get("/api/events?signature=valid").await;
    assert_eq!(valid["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_edit_of_one_signature_setting_keeps_the_others() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "gh", "signature": { "scheme": "github", "secret": "It's a Secret to Everybody", "enforce": true, "legacy_sha1": true } })).await;
    let forged = [("x-hub-signature-256", "sha256=0000")];
    assert_eq!(s.post_in("gh", &forged, "{}").await.status, 401);

    // Only the tolerance: enforcement, the secret and legacy_sha1 stay.
    let (status, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/gh",
            Some(json!({ "signature": { "tolerance_s": 600 } })),
        )
        .await;
    assert_eq!(status, 200, "{ep}");
    let sig = &ep["signature"];
    assert_eq!(
        (&sig["scheme"], &sig["enforce"], &sig["tolerance_s"]),
        (&json!("github"), &json!(true), &json!(600)),
        "{sig}"
    );
    assert_eq!(
        (&sig["secret_count"], &sig["legacy_sha1"]),
        (&json!(1), &json!(true)),
        "{sig}"
    );
    assert_eq!(
        s.post_in("gh", &forged, "{}").await.status,
        401,
        "a forgery is still refused"
    );
    let body = br#"{"zen":"Keep it logically awesome."}"#;
    let cfg = SignatureConfig::new("github", "It's a Secret to Everybody");
    let signed = signature::sign(&cfg, body, 0, "");
    let value = String::from_utf8_lossy(&signed[0].1).into_owned();
    assert_eq!(
        s.post_in("gh", &[(signed[0].0.as_str(), value.as_str())], &body[..])
            .await
            .status,
        200,
        "the stored secret still checks"
    );

    // Another scheme: enforcement stays; the old scheme's settings go
    // (legacy_sha1 is GitHub's), and so does the tolerance (a 0 chosen for
    // one scheme must not switch off another's replay window).
    let (status, ep) = s
        .api(
            "PATCH",
            "/api/endpoints/gh",
            Some(json!({ "signature": { "scheme": "stripe", "secret": "whsec_new" } })),
        )
        .await;
    assert_eq!(status, 200, "{ep}");
    let sig = &ep["signature"];
    assert_eq!(
        (&sig["scheme"], &sig["enforce"], &sig["tolerance_s"]),
        (&json!("stripe"), &json!(true), &json!(300)),
        "{sig}"
    );
    assert!(sig.get("legacy_sha1").is_none_or(|v| v == false), "{sig}");

    // A secret given is a secret checked: an empty one is refused, as on
    // create, rather than taken as "keep".
    let (status, err) = s
        .api(
            "PATCH",
            "/api/endpoints/gh",
            Some(json!({ "signature": { "secret": "" } })),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    // And a new endpoint still needs its scheme.
    let (status, err) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "noscheme", "signature": { "secret": "x" } })),
        )
        .await;
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("signature.scheme"),
        "{err}"
    );
    // A value of the wrong type is not quoted back: it may be a secret.
    let (status, err) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "typo", "signature": { "scheme": "stripe", "secrets": "TOPSECRETzz" } })),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    let error = err["error"].as_str().unwrap();
    assert!(
        !error.contains("TOPSECRET") && error.contains("sequence"),
        "{error}"
    );
}

#[tokio::test]
async fn woocommerce_activation_ping_is_a_ping_not_a_bad_signature() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "wc", "signature": { "scheme": "woocommerce", "secret": "s", "enforce": true } })).await;
    let r = s
        .post_in(
            "wc",
            &[("content-type", "application/x-www-form-urlencoded")],
            "webhook_id=12",
        )
        .await;
    assert_eq!(r.status, 200);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["signature"]["verdict"], "unchecked");
    assert!(ev["signature"]["detail"].as_str().unwrap().contains("ping"));
}

/// The ping's body is no pass: only its exact form (a POST of `webhook_id=N`
/// to the endpoint itself) on an endpoint WooCommerce may sign for counts,
/// and an enforcing endpoint answers it itself, so its target (and mirror)
/// only ever get signed requests.
#[tokio::test]
async fn the_activation_ping_never_carries_unsigned_requests_past_enforcement() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    let form = [("content-type", "application/x-www-form-urlencoded")];
    for (slug, scheme) in [("wc", "woocommerce"), ("st", "stripe"), ("gh", "github")] {
        s.create_endpoint(json!({ "slug": slug, "target": up.url(&format!("/{slug}")), "mirror": up.url("/mirror"), "signature": { "scheme": scheme, "secret": "s3cret", "enforce": true } })).await;
    }
    let r = s.post_in("wc", &form, "webhook_id=12").await;
    assert_eq!(r.status, 200);
    assert!(
        r.json()["ping"]
            .as_str()
            .unwrap()
            .contains("answered by hookrelay")
    );
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["state"], "captured");
    assert_eq!(ev["signature"]["verdict"], "unchecked");
    for slug in ["st", "gh"] {
        let r = s.post_in(slug, &form, "webhook_id=12").await;
        assert_eq!(r.status, 401, "{slug}: a ping body on a {slug} endpoint");
    }
    // The delivery URL may have a path and query: answered all the same.
    for path in ["wc/hooks", "wc?source=shop"] {
        let r = s.post_in(path, &form, "webhook_id=12").await;
        assert_eq!(r.status, 200, "{path}");
    }
    let (status, _, _) = crate::support::send(
        "DELETE",
        &s.ingest_url("/in/wc"),
        &form,
        "webhook_id=12".into(),
    )
    .await;
    assert_eq!(status, 401, "DELETE is not the ping");

    // The first request the target (or mirror) sees is the signed one sent last.
    let cfg = SignatureConfig::new("woocommerce", "s3cret");
    let body = br#"{"id":1}"#;
    let signed = crate::support::signed(&cfg, body, 0, "");
    let h = crate::support::pairs(&signed);
    assert_eq!(s.post_in("wc", &h, &body[..]).await.status, 200);
    let mut paths = vec![up.next().await.uri, up.next().await.uri];
    paths.sort();
    assert_eq!(paths, ["/mirror", "/wc"]);

    // In queue mode, or held for a paused endpoint, the ping still gets the
    // 200 WooCommerce activates on (not 202).
    s.create_endpoint(json!({ "slug": "wq", "mode": "queue", "target": up.url("/wq"), "signature": { "scheme": "woocommerce", "secret": "s3cret" } })).await;
    assert_eq!(s.post_in("wq", &form, "webhook_id=12").await.status, 200);
    assert_eq!(up.next().await.uri, "/wq");
    // Without enforcement the ping goes on like any request, marked as a ping.
    s.create_endpoint(json!({ "slug": "open", "target": up.url("/open"), "signature": { "scheme": "woocommerce", "secret": "s3cret" } })).await;
    let r = s.post_in("open", &form, "webhook_id=12").await;
    assert_eq!(r.status, 200);
    assert_eq!(up.next().await.uri, "/open");
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert!(ev["signature"]["detail"].as_str().unwrap().contains("ping"));
}

/// A forgery stays `rejected` when an admin replays it to the target: the
/// state is the verdict on what the sender sent, and `state=rejected` must
/// keep listing it; the attempt records the replay.
#[tokio::test]
async fn a_replayed_forgery_stays_rejected() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "wc", "target": up.url("/wc"), "signature": { "scheme": "woocommerce", "secret": "s3cret", "enforce": true } })).await;
    let r = s
        .post_in("wc", &[("x-wc-webhook-signature", "Zm9yZ2Vk")], "{}")
        .await;
    assert_eq!(r.status, 401);
    let id = r.event_id();
    let (st, v) = s
        .api("POST", &format!("/api/events/{id}/replay"), Some(json!({})))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(up.next().await.uri, "/wc");
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(ev["state"], "rejected", "{ev}");
    assert_eq!(ev["attempts"].as_array().unwrap().len(), 1, "{ev}");
    let listed = s.get("/api/events?endpoint=wc&state=rejected").await;
    assert_eq!(listed["events"][0]["id"], id.as_str());
    assert_eq!(s.get("/api/endpoints/wc").await["counts"]["delivered"], 0);
}

#[tokio::test]
async fn topics_ids_and_duplicates_are_recorded_and_filterable() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "gh" })).await;
    let h = [
        ("x-github-event", "push"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ];
    let first = s.post_in("gh", &h, "{}").await.event_id();
    let second = s.post_in("gh", &h, "{}").await.event_id();
    s.post_in(
        "gh",
        &[("x-github-event", "issues"), ("x-github-delivery", "other")],
        "{}",
    )
    .await;
    let ev = s.get(&format!("/api/events/{second}")).await;
    assert_eq!(ev["topic"], "push");
    assert_eq!(ev["external_id"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_eq!(ev["duplicate_of"], first.as_str(), "flagged, never dropped");
    assert!(s.get(&format!("/api/events/{first}")).await["duplicate_of"].is_null());
    let dups = s.get("/api/events?duplicate=true").await;
    assert_eq!(dups["events"].as_array().unwrap().len(), 1);
    let push = s.get("/api/events?topic=push").await;
    assert_eq!(push["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_stored_event_is_checked_as_of_its_arrival() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "st" })).await;
    let cfg = SignatureConfig::new("stripe", "whsec_abc");
    let now = (hookrelay::time::now_ms() / 1000) as i64;
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    let headers = crate::support::signed(&cfg, body, now, "");
    let h = crate::support::pairs(&headers);
    let id = s.post_in("st", &h, &body[..]).await.event_id();
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(
        ev["signature"]["verdict"], "unchecked",
        "no secret configured: not checked"
    );
    assert!(ev["signature"]["scheme"].is_null());
    assert_eq!(ev["topic"], "invoice.paid");

    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/verify"),
            Some(json!({ "scheme": "stripe", "secret": "whsec_abc" })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["verdict"], "valid");
    let (_, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/verify"),
            Some(json!({ "secret": "wrong" })),
        )
        .await;
    assert_eq!(v["verdict"], "invalid", "auto picks stripe: {v}");
    let (st, v) = s
        .api("POST", &format!("/api/events/{id}/verify"), Some(json!({})))
        .await;
    assert_eq!(st, 422, "{v}");

    // With a secret stored: a candidate given empty or of the wrong type is
    // refused — it was taken for "none given", and the stored secret's
    // `valid` read as a verdict on the candidate. The secret is not echoed.
    s.create_endpoint(
        json!({ "slug": "st2", "signature": { "scheme": "stripe", "secret": "whsec_abc" } }),
    )
    .await;
    let id = s.post_in("st2", &h, &body[..]).await.event_id();
    let verify = format!("/api/events/{id}/verify");
    for (wrong, want) in [
        (json!({ "secrets": "definitely-wrong" }), 422),
        (json!({ "secret": 31415926 }), 422),
        (json!({ "secret": "" }), 400),
    ] {
        let (st, v) = s.api("POST", &verify, Some(wrong.clone())).await;
        assert_eq!(st, want, "{wrong}: {v}");
        let error = v["error"].as_str().unwrap();
        assert!(
            !error.contains("definitely-wrong") && !error.contains("31415926"),
            "{error}"
        );
    }
    let (st, v) = s.api("POST", &verify, Some(json!({}))).await;
    assert_eq!(
        (st, &v["verdict"], &v["secrets_from"]),
        (200, &json!("valid"), &json!("endpoint")),
        "{v}"
    );
    let (_, v) = s
        .api("POST", &verify, Some(json!({ "secret": "whsec_other" })))
        .await;
    assert_eq!(
        (&v["verdict"], &v["secrets_from"]),
        (&json!("invalid"), &json!("request")),
        "{v}"
    );
}

#[tokio::test]
async fn a_resigned_replay_verifies_now_with_the_same_body_and_id() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    s.create_endpoint(json!({ "slug": "sw", "target": up.url("/"), "signature": { "scheme": "standard", "secret": secret } })).await;
    let cfg = SignatureConfig::new("standard", secret);
    let old = (hookrelay::time::now_ms() / 1000) as i64 - 3600;
    let body = br#"{"type":"user.created","data":{"id":1}}"#;
    let headers = crate::support::signed(&cfg, body, old, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    let h = crate::support::pairs(&headers);
    let r = s.post_in("sw", &h, &body[..]).await;
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["signature"]["verdict"], "stale", "an hour old");
    up.next().await;

    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{}/replay", r.event_id()),
            Some(json!({ "resign": true })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(v["resign"].as_str().unwrap().contains("re-signed"));
    let got = up.next().await;
    assert_eq!(&got.body[..], &body[..]);
    assert_eq!(
        got.header("webhook-id").as_deref(),
        Some("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
    );
    let now = (hookrelay::time::now_ms() / 1000) as i64;
    let check = signature::verify(&cfg, &got.headers, &got.body, None, now);
    assert_eq!(check.verdict, Verdict::Valid, "{}", check.detail);

    // Body-only schemes need no re-signing and say so.
    s.create_endpoint(json!({ "slug": "gh", "target": up.url("/"), "signature": { "scheme": "github", "secret": "It's a Secret to Everybody" } })).await;
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let r = s
        .post_in("gh", &[("x-hub-signature-256", sig)], "Hello, World!")
        .await;
    up.next().await;
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{}/replay", r.event_id()),
            Some(json!({ "resign": true })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert!(
        v["resign"].as_str().unwrap().contains("only the body"),
        "{v}"
    );
}

/// A forgery refused at ingest is stored (as rejected), and may be replayed
/// to look at it, but never re-signed: that would put the endpoint's real
/// signature on the attacker's body.
#[tokio::test]
async fn a_forged_event_is_never_resigned() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "st", "target": up.url("/"), "signature": { "scheme": "stripe", "secret": "whsec_abc", "enforce": true } })).await;
    let now = (hookrelay::time::now_ms() / 1000) as i64;
    let forged = format!("t={now},v1={}", "0".repeat(64));
    let body = r#"{"id":"evt_forged","type":"payout.paid"}"#;
    let r = s
        .post_in("st", &[("stripe-signature", forged.as_str())], body)
        .await;
    assert_eq!(r.status, 401);
    let id = r.event_id();
    for filter in [
        json!({ "resign": true }),
        json!({ "resign": true, "target": up.url("/elsewhere") }),
    ] {
        let (st, v) = s
            .api("POST", &format!("/api/events/{id}/replay"), Some(filter))
            .await;
        assert_eq!(st, 200, "{v}");
        let note = v["resign"].as_str().unwrap();
        assert!(
            note.starts_with("not re-signed") && note.contains("invalid"),
            "{note}"
        );
        let got = up.next().await;
        assert_eq!(
            got.header("stripe-signature").as_deref(),
            Some(forged.as_str())
        );
        let cfg = SignatureConfig::new("stripe", "whsec_abc");
        let check = signature::verify(&cfg, &got.headers, &got.body, None, now);
        assert_eq!(check.verdict, Verdict::Invalid, "{}", check.detail);
    }
}

/// A rejected forgery that names a delivery id does not claim it: the
/// genuine delivery with that id is not flagged as the forgery's copy.
#[tokio::test]
async fn a_rejected_event_does_not_claim_its_delivery_id() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "gh", "signature": { "scheme": "github", "secret": "It's a Secret to Everybody", "enforce": true } })).await;
    let id = ("x-github-delivery", "dup-123");
    let forged = s
        .post_in(
            "gh",
            &[id, ("x-hub-signature-256", "sha256=00")],
            "Hello, World!",
        )
        .await;
    assert_eq!(forged.status, 401);
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let genuine = s
        .post_in("gh", &[id, ("x-hub-signature-256", sig)], "Hello, World!")
        .await;
    assert_eq!(genuine.status, 200);
    let ev = s.get(&format!("/api/events/{}", genuine.event_id())).await;
    assert!(ev["duplicate_of"].is_null(), "{ev}");
    let again = s
        .post_in("gh", &[id, ("x-hub-signature-256", sig)], "Hello, World!")
        .await;
    let ev = s.get(&format!("/api/events/{}", again.event_id())).await;
    assert_eq!(ev["duplicate_of"], genuine.event_id().as_str());
    // A forged repeat of a known id is still flagged: the replay an
    // operator most wants to see.
    let replayed = s
        .post_in(
            "gh",
            &[id, ("x-hub-signature-256", "sha256=00")],
            "Hello, World!",
        )
        .await;
    assert_eq!(replayed.status, 401);
    let ev = s.get(&format!("/api/events/{}", replayed.event_id())).await;
    assert_eq!(ev["duplicate_of"], genuine.event_id().as_str());
}

/// A stored event's signature is checked as of its arrival, not now: an
/// event received an hour ago (far past Standard Webhooks' 300 s, which
/// it checks both ways) and signed then is valid, one signed an hour before
/// it arrived is stale, and so is one signed an hour after (now). The
/// events are written straight to the store, the only way to have one
/// received in the past.
#[tokio::test]
async fn a_stored_event_is_checked_as_of_its_arrival_an_hour_ago() {
    use hookrelay::store::{Durability, Store};

    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let (_dir, data) = crate::support::temp_data();
    let s = TestServer::start_with(crate::support::config_at(&data)).await;
    s.create_endpoint(json!({
        "slug": "old",
        "signature": { "scheme": "standard", "secret": secret },
    }))
    .await;
    s.stop().await;

    let cfg = SignatureConfig::new("standard", secret);
    let now_ms = hookrelay::time::now_ms();
    let arrived_ms = now_ms - 3_600_000;
    let (arrived, now) = ((arrived_ms / 1000) as i64, (now_ms / 1000) as i64);
    let store = Store::open(&data, Durability::Sync).unwrap();
    let mut cases = Vec::new();
    for (name, signed_at, want) in [
        ("signed as it arrived", arrived, "valid"),
        ("signed an hour before it arrived", arrived - 3600, "stale"),
        ("signed an hour after it arrived", now, "stale"),
    ] {
        let body = format!(r#"{{"type":"test.old","case":"{name}"}}"#);
        let headers = crate::support::signed(
            &cfg,
            body.as_bytes(),
            signed_at,
            &format!("msg_{signed_at}"),
        );
        let ev: hookrelay::event::Event = serde_json::from_value(json!({
            "id": Store::new_id(), "endpoint": "old", "received_at": arrived_ms,
            "method": "POST", "path": "", "query": null, "headers": headers,
            "size": body.len(), "remote_addr": "127.0.0.1", "state": "captured",
        }))
        .unwrap();
        let ev = store.insert_event(ev, body.as_bytes()).unwrap();
        cases.push((name, ev.id, want));
    }
    store.sync_wal().unwrap();
    drop(store);

    let s = TestServer::start_with(crate::support::config_at(&data)).await;
    for (name, id, want) in cases {
        for req in [json!({}), json!({ "scheme": "standard", "secret": secret })] {
            let (st, v) = s
                .api(
                    "POST",
                    &format!("/api/events/{id}/verify"),
                    Some(req.clone()),
                )
                .await;
            assert_eq!(st, 200, "{name}: {v}");
            assert_eq!(v["verdict"], want, "{name} ({req}): {v}");
        }
    }
}
