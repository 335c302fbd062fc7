//! The outbound guard (SSRF): where deliveries may not connect, whatever the
//! spelling of the address, and the networks let through by name.

use std::path::Path;

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer, temp_data};
use hookrelay::config::Config;
use hookrelay::deliver::guard::TargetGuard;

/// Hosts that all reach a listener on 127.0.0.1 when nothing stops them:
/// IP literals, and names the resolver turns into loopback.
const LOOPBACK_SPELLINGS: [&str; 7] = [
    "127.0.0.1",
    "[::ffff:127.0.0.1]",
    "0.0.0.0",
    "localhost",
    "2130706433",
    "0177.0.0.1",
    "127.1",
];

async fn server(data: &Path, guard: TargetGuard) -> TestServer {
    TestServer::start_with(Config {
        data: data.to_path_buf(),
        target_guard: guard,
        ..Config::default()
    })
    .await
}

fn deny_private() -> TargetGuard {
    TargetGuard {
        deny_private: true,
        ..TargetGuard::default()
    }
}

/// Forwards one request through each spelling's endpoint; returns the
/// answers' statuses and bodies.
async fn forward_to_each(s: &TestServer) -> Vec<(u16, String)> {
    let mut answers = Vec::new();
    for i in 0..LOOPBACK_SPELLINGS.len() {
        let r = s.post_in(&format!("spelling-{i}"), &[], "{}").await;
        answers.push((r.status, String::from_utf8_lossy(&r.body).into_owned()));
    }
    answers
}

#[tokio::test]
async fn deny_private_targets_refuses_every_spelling_of_loopback() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let port = up.addr.port();
    let (_dir, data) = temp_data();

    // Without the flag each spelling reaches the receiver: the list is real.
    let open = server(&data, TargetGuard::default()).await;
    for (i, host) in LOOPBACK_SPELLINGS.iter().enumerate() {
        open.create_endpoint(json!({
            "slug": format!("spelling-{i}"),
            "target": format!("http://{host}:{port}/in"),
        }))
        .await;
    }
    let answers = forward_to_each(&open).await;
    assert!(answers.iter().all(|(s, _)| *s == 200), "{answers:?}");
    assert_eq!(up.drain().len(), LOOPBACK_SPELLINGS.len());
    open.stop().await;

    // The same endpoints, stored before the flag, after a restart with it:
    // refused when connecting, literal or resolved.
    let guarded = server(&data, deny_private()).await;
    let answers = forward_to_each(&guarded).await;
    for (host, (status, body)) in LOOPBACK_SPELLINGS.iter().zip(&answers) {
        assert_eq!(*status, 502, "{host}: {body}");
        assert!(body.contains("--deny-private-targets"), "{host}: {body}");
    }
    assert!(
        up.drain().is_empty(),
        "a refused delivery reached the receiver"
    );
    // Recorded as a failed attempt of its own kind, in the guard's words.
    let events = guarded.get("/api/events?endpoint=spelling-3").await;
    let id = events["events"][0]["id"].as_str().unwrap().to_string();
    let ev = guarded.get(&format!("/api/events/{id}")).await;
    let attempt = &ev["attempts"][0];
    assert_eq!(attempt["error"], "blocked", "{attempt}");
    assert!(
        attempt["error_detail"]
            .as_str()
            .unwrap()
            .starts_with("localhost: 127.0.0.1 is a loopback address"),
        "{attempt}"
    );

    // A literal address is refused when it is given: endpoint URLs, a
    // replay's target, a bulk job's. A name waits for the connect.
    let port_url = |host: &str| format!("http://{host}:{port}/");
    for (method, path, body, says) in [
        (
            "POST",
            "/api/endpoints".to_string(),
            json!({ "slug": "new", "target": port_url("127.0.0.1") }),
            "target: 127.0.0.1 is a loopback address",
        ),
        (
            "POST",
            "/api/endpoints".to_string(),
            json!({ "slug": "odd", "target": port_url("0x7f.1") }),
            "target: 127.0.0.1 is a loopback address",
        ),
        (
            "PATCH",
            "/api/endpoints/spelling-3".to_string(),
            json!({ "mirror": "http://[::1]:9/" }),
            "mirror: ::1 is a loopback address",
        ),
        (
            "POST",
            format!("/api/events/{id}/replay"),
            json!({ "target": port_url("[::1]") }),
            "target: ::1 is a loopback address",
        ),
        (
            "POST",
            "/api/replay".to_string(),
            json!({ "endpoint": "spelling-3", "target": "http://10.0.0.7/" }),
            "target: 10.0.0.7 is a private address",
        ),
    ] {
        let (status, v) = guarded.api(method, &path, Some(body)).await;
        assert_eq!(status, 400, "{method} {path}: {v}");
        assert!(
            v["error"].as_str().unwrap().starts_with(says),
            "{method} {path}: {v}"
        );
    }
    // A name is accepted, and refused where it leads.
    let (status, v) = guarded
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": format!("http://localhost:{port}/x") })),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["error"], "blocked", "{v}");
    assert!(
        v["error_detail"].as_str().unwrap().starts_with(
            "localhost: 127.0.0.1 is a loopback address, refused by --deny-private-targets"
        ),
        "{v}"
    );
    assert!(up.drain().is_empty());
    // An operator can alert on them: the seven forwards and the replay.
    let (_, _, metrics) = crate::support::send(
        "GET",
        &guarded.admin_url("/metrics"),
        &[],
        Default::default(),
    )
    .await;
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("\nhookrelay_outbound_refused_total 8\n")
            && metrics.contains("hookrelay_attempts_total{outcome=\"blocked\"} 8\n"),
        "{metrics}"
    );
    guarded.stop().await;

    // A network named in --allow-target-net goes through.
    let allowed = server(
        &data,
        TargetGuard {
            allow: vec!["127.0.0.0/8".parse().unwrap()],
            ..deny_private()
        },
    )
    .await;
    assert_eq!(allowed.post_in("spelling-0", &[], "{}").await.status, 200);
    assert_eq!(allowed.post_in("spelling-3", &[], "{}").await.status, 200);
    assert_eq!(up.drain().len(), 2);
    allowed.stop().await;
}

#[tokio::test]
async fn metadata_addresses_are_refused_by_default() {
    let s = TestServer::start().await;
    let (status, v) = s
        .api(
            "POST",
            "/api/endpoints",
            Some(json!({ "slug": "meta", "target": "http://169.254.169.254/latest/meta-data/" })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254 is a link-local address"),
        "{v}"
    );
    let up = Receiver::start(vec![Reply::status(200)]).await;
    s.create_endpoint(json!({ "slug": "ok", "target": up.url("/") }))
        .await;
    let id = s.post_in("ok", &[], "{}").await.event_id();
    let (status, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": "http://[fd00:ec2::254]/latest/" })),
        )
        .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("an AWS instance service address"),
        "{v}"
    );
}

unsafe extern "C" {
    /// The C library's own reader of IPv4 spellings, which its resolver
    /// uses for numeric hosts.
    #[link_name = "inet_aton"]
    fn c_inet_aton(cp: *const std::ffi::c_char, inp: *mut u32) -> std::ffi::c_int;
}

fn libc_reads(host: &str) -> Option<std::net::IpAddr> {
    let c = std::ffi::CString::new(host).ok()?;
    let mut addr = 0u32;
    // SAFETY: a NUL-terminated string and a place for one `in_addr`.
    let ok = unsafe { c_inet_aton(c.as_ptr(), &mut addr) };
    (ok == 1).then(|| std::net::Ipv4Addr::from(u32::from_be(addr)).into())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]
    /// What the guard reads as an address when a URL is given is what the
    /// system's resolver would connect to: the two readers agree on every
    /// spelling of digits, hex, octal and dots.
    #[test]
    fn ipv4_spellings_are_read_as_the_c_library_reads_them(
        host in "((0[xX][0-9a-fA-F]{0,10}|0[0-9]{0,13}|[1-9][0-9]{0,11}|[+a-g]{0,2})\\.?){1,5}"
    ) {
        proptest::prop_assert_eq!(
            hookrelay::deliver::guard::inet_aton(&host),
            libc_reads(&host),
            "{}",
            host
        );
    }
}
