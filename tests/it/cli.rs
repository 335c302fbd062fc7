//! The command line against a running server: endpoint add/list/show/pause/
//! resume/rm, events, show, replay — with and without `--json`.

use std::process::Command;

use serde_json::Value;

use crate::support::{Receiver, Reply, TestServer};

async fn hookrelay(server: &TestServer, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    cmd.args(args)
        .env("HOOKRELAY_SERVER", server.admin_url(""))
        .env("RUST_LOG", "off");
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run hookrelay"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn json_of(server: &TestServer, args: &[&str]) -> Value {
    let (code, out, err) = hookrelay(server, args).await;
    assert_eq!(code, 0, "{args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|_| panic!("{args:?} printed no JSON: {out}"))
}

#[tokio::test]
async fn the_cli_drives_the_tour() {
    let mut up = Receiver::start(vec![Reply::status(500)]).await;
    let mut dev = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;

    let target = up.url("/hooks");
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "add",
            "shop",
            "--target",
            &target,
            "--failure-threshold",
            "6",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep["slug"], "shop");
    assert_eq!(ep["failure_threshold"], 6);
    let (code, out, _) = hookrelay(&s, &["endpoint", "list"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("shop") && out.contains(&target), "{out}");

    let (code, _, err) = hookrelay(&s, &["endpoint", "add", "Bad Slug"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("invalid slug"), "{err}");

    let id = s.post_in("shop", &[], "order 1").await.event_id();
    up.next().await;

    let list = json_of(&s, &["events", "--endpoint", "shop", "--json"]).await;
    assert_eq!(list["events"][0]["id"], id.as_str());
    let (code, out, _) = hookrelay(&s, &["events", "--state", "failed"]).await;
    assert_eq!(code, 0);
    assert!(out.contains(&id), "{out}");

    let ev = json_of(&s, &["show", &id, "--json"]).await;
    assert_eq!(ev["body"], "order 1");
    let (_, out, _) = hookrelay(&s, &["show", &id]).await;
    assert!(
        out.contains("order 1") && out.contains("attempt 1"),
        "{out}"
    );

    let to = dev.url("/local");
    let (code, out, err) = hookrelay(&s, &["replay", &id, "--to", &to]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("HTTP 200"), "{out}");
    assert_eq!(&dev.next().await.body[..], b"order 1");
    // Replaying to the failing target exits non-zero.
    let (code, _, _) = hookrelay(&s, &["replay", &id]).await;
    assert_eq!(code, 1);

    let ep = json_of(&s, &["endpoint", "pause", "shop", "--json"]).await;
    assert_eq!(ep["status"], "paused");
    assert_eq!(s.post_in("shop", &[], "held one").await.status, 202);
    up.set_script(vec![Reply::status(200)]);
    let v = json_of(&s, &["endpoint", "resume", "shop", "--release", "--json"]).await;
    assert_eq!(v["endpoint"]["status"], "active");
    assert_eq!(v["release"]["delivered"], 1);
    let ep = json_of(&s, &["endpoint", "show", "shop", "--json"]).await;
    assert_eq!(ep["counts"]["held"], 0);

    let (code, out, _) = hookrelay(&s, &["endpoint", "rm", "shop"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, _, err) = hookrelay(&s, &["endpoint", "show", "shop"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no endpoint"), "{err}");
}

#[tokio::test]
async fn serve_refuses_a_public_admin_without_a_token() {
    let out = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_hookrelay"))
            .args(["serve", "--admin", "0.0.0.0:0", "--listen", "127.0.0.1:0"])
            .env_remove("HOOKRELAY_ADMIN_TOKEN")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-token"), "{err}");
}
