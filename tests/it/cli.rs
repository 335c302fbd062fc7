//! The command line against a running server: endpoint add/edit/list/show/pause/disable/
//! resume/rm, events, show, replay — with and without `--json`.

use serde_json::{Value, json};

use crate::support::{Receiver, Reply, TestServer, cmd, temp_data};

async fn hookrelay(server: &TestServer, args: &[&str]) -> (i32, String, String) {
    let mut cmd = cmd::hookrelay();
    cmd.args(args)
        .env("HOOKRELAY_SERVER", server.admin_url(""))
        .env("RUST_LOG", "off");
    let out = cmd::output(cmd).await;
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
    // In a temp dir: a regression that starts must not leave a store in
    // the working directory (and is killed at the deadline).
    let (_dir, data) = crate::support::temp_data();
    let mut hr = cmd::hookrelay();
    hr.args(["serve", "--admin", "0.0.0.0:0", "--listen", "127.0.0.1:0"])
        .arg("--data")
        .arg(&data);
    let out = cmd::output(hr).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-token"), "{err}");
    assert!(!data.exists(), "the store was opened");
}

/// Like every other `HOOKRELAY_*` variable, a bad thread count is refused
/// (it silently fell back to one thread per core), before anything is
/// written.
#[tokio::test]
async fn serve_refuses_a_bad_ingest_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for bad in ["", "abc", "0", "100000"] {
        let mut hr = cmd::hookrelay();
        hr.args(["serve", "--admin", "127.0.0.1:0", "--listen", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .env("HOOKRELAY_INGEST_THREADS", bad);
        let out = cmd::output(hr).await;
        assert!(!out.status.success(), "{bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("HOOKRELAY_INGEST_THREADS"), "{bad:?}: {err}");
        assert!(!data.exists(), "{bad:?}: the store was opened");
    }
}

/// A refused value from the environment names its variable: clap's own
/// message names only the flag, which was never typed.
#[tokio::test]
async fn a_bad_value_from_the_environment_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (var, bad) in [("HOOKRELAY_LISTEN", ""), ("HOOKRELAY_MAX_BODY", "lots")] {
        let mut hr = cmd::hookrelay();
        hr.args(["serve", "--admin", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .env(var, bad);
        let out = cmd::output(hr).await;
        assert!(!out.status.success(), "{var}={bad:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var), "{var}={bad:?}: {err}");
    }
    // Values refused once parsed (a file that cannot be read) say it too.
    for var in ["HOOKRELAY_CA_FILE", "HOOKRELAY_CONFIG"] {
        let mut hr = cmd::hookrelay();
        hr.args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .env(var, dir.path().join("missing"));
        let out = cmd::output(hr).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}: {err}");
        assert!(err.contains("missing") && err.contains(var), "{var}: {err}");
    }
    // Typed on the command line, the flag is the culprit, not a variable
    // that happens to be set as well.
    let mut hr = cmd::hookrelay();
    hr.args(["serve", "--listen", "nowhere", "--data"])
        .arg(&data)
        .env("HOOKRELAY_LISTEN", "127.0.0.1:0");
    let out = cmd::output(hr).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--listen"), "{err}");
    assert!(!err.contains("HOOKRELAY_LISTEN"), "{err}");
    assert!(!data.exists());
}

#[tokio::test]
async fn export_writes_jsonl_and_har() {
    let s = TestServer::start().await;
    s.create_endpoint(
        serde_json::json!({ "slug": "ex", "response": { "status": 201, "body": "fine" } }),
    )
    .await;
    let a = s
        .post_in(
            "ex/p?x=1",
            &[("content-type", "application/json")],
            r#"{"n":1}"#,
        )
        .await
        .event_id();
    let b = s.post_in("ex", &[], vec![0u8, 255]).await.event_id();

    let (code, out, err) = hookrelay(&s, &["export", "--endpoint", "ex"]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], a.as_str(), "oldest first");
    assert_eq!(lines[0]["body"], r#"{"n":1}"#);
    assert_eq!(lines[1]["id"], b.as_str());
    assert_eq!(lines[1]["body_base64"], "AP8=");
    let (code, out, err) = hookrelay(&s, &["export", "--endpoint", "ex", "--limit", "1"]).await;
    assert_eq!(code, 0, "{err}");
    let newest: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0]["id"], b.as_str(), "--limit keeps the newest");

    let (code, out, err) = hookrelay(&s, &["export", "--format", "har"]).await;
    assert_eq!(code, 0, "{err}");
    let har: Value = serde_json::from_str(&out).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(entries.len(), 2);
    assert!(
        entries[0]["request"]["url"]
            .as_str()
            .unwrap()
            .ends_with("/in/ex/p?x=1")
    );
    assert_eq!(entries[0]["request"]["postData"]["text"], r#"{"n":1}"#);
    assert_eq!(entries[1]["request"]["postData"]["encoding"], "base64");

    let (code, _, err) = hookrelay(&s, &["export", "--format", "xml"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("format"), "{err}");

    // -o: the file holds what stdout would; a path that cannot be written
    // is refused before the download, and a failed one leaves no file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let path = file.to_str().unwrap();
    let (code, out, err) = hookrelay(&s, &["export", "--endpoint", "ex", "-o", path]).await;
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert_eq!(written.lines().count(), 2, "{written}");
    let nowhere = dir.path().join("missing/out.jsonl");
    let (code, _, err) = hookrelay(&s, &["export", "-o", nowhere.to_str().unwrap()]).await;
    assert_eq!(code, 1);
    assert!(err.contains("missing/out.jsonl"), "{err}");
    let failed = dir.path().join("failed.jsonl");
    let (code, _, err) = hookrelay(
        &s,
        &["export", "--cursor", "nope", "-o", failed.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(!failed.exists(), "a failed export leaves no file behind");
    // Nor does it touch the last one (it emptied it: a cron job's export
    // with the server down wiped the backup).
    std::fs::write(&failed, "last night's export\n").unwrap();
    let (code, _, err) = hookrelay(
        &s,
        &["export", "--cursor", "nope", "-o", failed.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap(),
        "last night's export\n"
    );
    let (code, _, err) = hookrelay(&s, &["export", "-o", failed.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read_to_string(&failed).unwrap().lines().count(),
        2,
        "a good export replaces it"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hookrelay-download-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");

    // Through a symbolic link to its file, the link kept; into a FIFO as
    // a stream (a rename put a regular file in the place of both).
    let link = dir.path().join("link.jsonl");
    std::os::unix::fs::symlink(&failed, &link).unwrap();
    let (code, _, err) = hookrelay(
        &s,
        &["export", "--limit", "1", "-o", link.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&failed).unwrap().lines().count(), 1);
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let (code, _, err) = hookrelay(&s, &["export", "-o", fifo.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(reader.join().unwrap().lines().count(), 2);
    use std::os::unix::fs::FileTypeExt;
    assert!(fifo.metadata().unwrap().file_type().is_fifo());
    // A link to a file not made yet (relative to the link) gets it made.
    let ahead = dir.path().join("ahead.jsonl");
    std::os::unix::fs::symlink("made.jsonl", &ahead).unwrap();
    let (code, _, err) = hookrelay(&s, &["export", "-o", ahead.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{err}");
    assert!(ahead.symlink_metadata().unwrap().file_type().is_symlink());
    let made = std::fs::read_to_string(dir.path().join("made.jsonl")).unwrap();
    assert_eq!(made.lines().count(), 2);
}

/// `hookrelay tail ARGS` with its stdout as a channel of lines; killed when
/// dropped.
fn tail(
    s: &TestServer,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    tail_at(&s.admin_url(""), args)
}

/// [`tail`] against any server URL.
fn tail_at(
    server: &str,
    args: &[&str],
) -> (
    tokio::process::Child,
    tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    use tokio::io::AsyncBufReadExt;
    let mut hr = cmd::hookrelay();
    hr.arg("tail")
        .args(args)
        .env("HOOKRELAY_SERVER", server)
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(hr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// The next line a tail printed, within 10 s.
async fn next_line(rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.recv())
        .await
        .expect("tail printed nothing more within 10 s")
        .expect("tail ended")
}

#[tokio::test]
async fn tail_prints_new_events_as_they_arrive() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    for slug in ["tl", "other"] {
        s.create_endpoint(serde_json::json!({ "slug": slug, "target": up.url("/") }))
            .await;
    }
    let (_json_child, mut json) = tail(&s, &["--endpoint", "tl", "--json"]);
    let (_text_child, mut text) = tail(&s, &["--endpoint", "tl"]);
    // Each subscription starts when its child connects: post until both
    // printed a line (bounded).
    let (mut json_seen, mut text_seen) = (false, false);
    for i in 0..50 {
        s.post_in("tl", &[], format!("live {i}")).await;
        up.next().await;
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(200);
        while !(json_seen && text_seen) {
            tokio::select! {
                Some(_) = json.recv(), if !json_seen => json_seen = true,
                Some(_) = text.recv(), if !text_seen => text_seen = true,
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if json_seen && text_seen {
            break;
        }
    }
    assert!(json_seen && text_seen, "tail printed nothing");

    // Another endpoint's events and attempts, then one of tl's: the stream
    // keeps their order, so anything of `other` shows before tl's attempt.
    let mut others = Vec::new();
    for i in 0..2 {
        others.push(
            s.post_in("other", &[], format!("other {i}"))
                .await
                .event_id(),
        );
        up.next().await;
    }
    let marker = s.post_in("tl/m?k=1", &[], "marker").await.event_id();
    up.next().await;
    let (mut event_line, mut attempt_line) = (None, None);
    while attempt_line.is_none() {
        let line = next_line(&mut json).await;
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("{line}"));
        let (endpoint, id) = match v["type"].as_str() {
            Some("event") => (&v["data"]["endpoint"], &v["data"]["id"]),
            Some("attempt") => (&v["data"]["event"]["endpoint"], &v["data"]["event"]["id"]),
            _ => panic!("unexpected item: {line}"),
        };
        assert_eq!(endpoint, "tl", "--endpoint tl printed: {line}");
        if id == marker.as_str() {
            match v["type"].as_str() {
                Some("event") => event_line = Some(v),
                _ => attempt_line = Some(v),
            }
        }
    }
    let event_line = event_line.expect("the event before its attempt");
    assert_eq!(event_line["data"]["endpoint"], "tl");
    let attempt = &attempt_line.unwrap()["data"]["attempt"];
    assert_eq!(attempt["trigger"], "forward", "{attempt}");
    assert_eq!(attempt["status"], 200, "{attempt}");
    // The same as text: an event line, then its attempt's.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|l: &String| l.contains(&marker) && l.contains("->"))
    {
        let line = next_line(&mut text).await;
        assert!(
            !line.contains("/in/other") && !others.iter().any(|o| line.contains(o)),
            "--endpoint tl printed: {line}"
        );
        seen.push(line);
    }
    let attempt = seen.last().unwrap();
    assert!(attempt.contains("-> forward #1 HTTP 200"), "{attempt}");
    assert!(
        seen.iter()
            .any(|l| l.contains("/in/tl/m?k=1") && l.contains(&marker) && !l.contains("->")),
        "{seen:?}"
    );

    // Large non-ASCII values span several chunks of the stream: a
    // character split between two must still print whole.
    let big = "日本語é".repeat(2000);
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            s.post_in("tl", &[("x-big", big.as_str())], "wide")
                .await
                .event_id(),
        );
        up.next().await;
    }
    let mut lines = Vec::new();
    while lines.len() < 5 {
        let line = next_line(&mut json).await;
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["type"] == "event" && ids.iter().any(|id| v["data"]["id"] == id.as_str()) {
            lines.push(line);
        }
    }
    for line in lines {
        assert!(!line.contains('\u{FFFD}'), "a character was split");
        assert!(line.contains(&big));
    }
}

#[tokio::test]
async fn endpoint_add_takes_queue_mirror_and_signature_settings() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    let target = up.url("/q");
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "add",
            "qq",
            "--target",
            &target,
            "--mode",
            "queue",
            "--retry",
            "1s, 1m",
            "--ordered",
            "--mirror",
            "http://127.0.0.1:9/m",
            "--signature-scheme",
            "github",
            "--signature-secret",
            "a",
            "--signature-secret",
            "b",
            "--enforce",
            "--paused",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep["status"], "paused");
    assert_eq!(ep["mode"], "queue");
    assert_eq!(ep["retry"], serde_json::json!(["1s", "1m"]));
    assert_eq!(ep["ordered"], true);
    assert_eq!(ep["mirror"], "http://127.0.0.1:9/m");
    assert_eq!(ep["signature"]["scheme"], "github");
    assert_eq!(ep["signature"]["secret_count"], 2);
    assert_eq!(ep["signature"]["enforce"], true);
    // Without --json the same settings are there to read.
    let (code, out, err) = hookrelay(&s, &["endpoint", "show", "qq"]).await;
    assert_eq!(code, 0, "{err}");
    for line in [
        format!("  ingest:    {}", s.ingest_url("/in/qq")),
        format!("  target:    {target} (queue mode)"),
        "  policy:    disabled past 5 failures in a row; success 2xx, 301, 302; timeout 10000 ms"
            .into(),
        "  queue:     retry 1s, 1m; ordered, one delivery in flight; 100000 pending at most".into(),
        "  mirror:    http://127.0.0.1:9/m".into(),
        // GitHub signs no timestamp: no tolerance to speak of.
        "  signature: github, enforced (invalid ones get 401), 2 secret(s)".into(),
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in:\n{out}");
    }
    let (code, _, err) = hookrelay(&s, &["endpoint", "edit", "qq", "--legacy-sha1"]).await;
    assert_eq!(code, 0, "{err}");
    let ep = json_of(&s, &["endpoint", "show", "qq", "--json"]).await;
    assert_eq!(ep["signature"]["legacy_sha1"], true, "{ep}");
    assert_eq!(ep["signature"]["secret_count"], 2, "{ep}");

    // A bin with every setting of its answer and of the generic scheme:
    // `show` prints them all.
    let (code, _, err) = hookrelay(
        &s,
        &[
            "endpoint",
            "add",
            "hb",
            "--response-status",
            "201",
            "--response-sequence",
            "500,200",
            "--response-header",
            "X-A: 1",
            "--response-body",
            "thanks <b>",
            "--signature-scheme",
            "hmac-sha256",
            "--signature-secret",
            "hb-secret",
            "--signature-header",
            "X-Sig",
            "--signature-encoding",
            "base64",
            "--signature-prefix",
            "sha256=",
            "--signature-timestamp-header",
            "X-Ts",
            "--ping-on-activate",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = hookrelay(&s, &["endpoint", "show", "hb"]).await;
    assert_eq!(code, 0, "{err}");
    for line in [
        "  target:    (bin) answers 500, 200 in turn (instead of 201)",
        "  header:    X-A: 1",
        "  body:      \"thanks <b>\"",
        "  signature: hmac-sha256, checked, not enforced, 1 secret(s), tolerance 300 s, header \"X-Sig\", encoding \"base64\", prefix \"sha256=\", timestamp header \"X-Ts\"",
        "  ping:      a signed test ping on create and on resume",
    ] {
        assert!(out.lines().any(|l| l == line), "{line:?} in:\n{out}");
    }
    assert!(out.contains("  created:   20"), "{out}");
    // '' puts a setting back to its default; headers alone go.
    let (code, _, err) = hookrelay(
        &s,
        &[
            "endpoint",
            "edit",
            "hb",
            "--signature-timestamp-header",
            "",
            "--signature-prefix",
            "",
            "--response-header",
            "",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let ep = json_of(&s, &["endpoint", "show", "hb", "--json"]).await;
    let sig = &ep["signature"];
    assert!(
        sig.get("timestamp_header").is_none_or(Value::is_null),
        "{ep}"
    );
    assert!(sig.get("prefix").is_none_or(Value::is_null), "{ep}");
    assert_eq!(sig["header"], "X-Sig", "{ep}");
    assert_eq!(ep["response"]["headers"], serde_json::json!([]), "{ep}");
    assert_eq!(ep["response"]["body"], "thanks <b>", "{ep}");
    assert_eq!(
        ep["response"]["sequence"],
        serde_json::json!([500, 200]),
        "{ep}"
    );

    let (code, out, err) = hookrelay(&s, &["endpoint", "ping", "qq"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("HTTP 200"), "{out}");
    assert_eq!(up.next().await.uri, "/q");
}

/// Stored events are hostile: `show`, `events` and `--json` never pass an
/// escape sequence (ESC, the one-byte CSI U+009B, CR) to the terminal.
#[tokio::test]
async fn event_data_cannot_drive_the_terminal() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "t" })).await;
    let id = s
        .post_in(
            "t/p",
            &[("x-c1", "a\u{9b}2Jb")],
            "line1\x1b[2J\x1b]8;;http://evil/\x07link\x1b]8;;\x07\r\x1b[Kfake\n",
        )
        .await
        .event_id();
    for args in [
        vec!["show", id.as_str()],
        vec!["events"],
        vec!["show", id.as_str(), "--json"],
    ] {
        let (code, out, _) = hookrelay(&s, &args).await;
        assert_eq!(code, 0, "{args:?}");
        for bad in ['\x1b', '\u{9b}', '\r', '\x07'] {
            assert!(!out.contains(bad), "{args:?} printed {bad:?}: {out:?}");
        }
        if args[0] == "show" {
            assert!(
                out.contains("\\u001b[2J"),
                "{args:?} shows it escaped: {out}"
            );
            assert!(out.contains("a\\u009b2Jb"), "{args:?}: {out}");
        }
        if args.contains(&"--json") {
            let v: Value = serde_json::from_str(&out).expect("still valid JSON");
            let kept = v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h[1].as_str().is_some_and(|v| v.contains('\u{9b}')));
            assert!(kept, "the JSON still carries the value itself: {v}");
        }
    }
}

/// `--dry-run` and `--rate` belong to bulk replays: with an event id they
/// are refused, not ignored (`replay ID --dry-run` used to replay for real).
/// A rate JSON cannot carry (inf, NaN) is refused instead of meaning "no
/// limit".
#[tokio::test]
async fn replay_flags_that_do_not_apply_are_refused() {
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "r", "target": up.url("/") }))
        .await;
    let id = s.post_in("r", &[], "x").await.event_id();
    up.next().await;
    for extra in [["--dry-run", ""], ["--rate", "5"]] {
        let mut args = vec!["replay", id.as_str()];
        args.extend(extra.iter().filter(|a| !a.is_empty()));
        let (code, out, err) = hookrelay(&s, &args).await;
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(err.contains("--filter"), "{args:?}: {err}");
    }
    for bad in ["inf", "NaN", "0"] {
        let (code, _, err) =
            hookrelay(&s, &["replay", "--filter", "endpoint=r", "--rate", bad]).await;
        assert_ne!(code, 0, "--rate {bad}");
        assert!(err.contains("--rate"), "--rate {bad}: {err}");
    }
    assert!(up.drain().is_empty(), "nothing was replayed");
    let ev = s.get(&format!("/api/events/{id}")).await;
    assert_eq!(ev["attempts"].as_array().unwrap().len(), 1);
}

/// An event with a body near `--max-body` is ~34 MB of JSON, more than the
/// delivery client reads from a target: the CLI reads admin answers with a
/// limit of its own.
#[tokio::test]
async fn show_reads_an_event_as_large_as_ingest_accepts() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "big" })).await;
    let body: Vec<u8> = (0..26_000_000u32).map(|i| (i % 251) as u8).collect();
    let id = s.post_in("big", &[], body).await.event_id();
    let (code, out, err) = hookrelay(&s, &["show", &id, "--json"]).await;
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["size"], 26_000_000);
    assert!(v["body_base64"].as_str().unwrap().len() > 34_000_000);
}

/// Logs going to a file or a journal (stderr not a terminal) are plain
/// text, without colour escape codes.
#[tokio::test]
async fn logs_to_a_file_carry_no_colour_codes() {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
    let (_dir, data) = crate::support::temp_data();
    let mut hr = cmd::hookrelay();
    hr.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--data",
    ])
    .arg(&data)
    .env("RUST_LOG", "info")
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(hr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let within = |what: &'static str| {
        move |r: Result<std::io::Result<usize>, tokio::time::error::Elapsed>| {
            r.unwrap_or_else(|_| panic!("{what} within {:?}", cmd::DEADLINE))
                .unwrap()
        }
    };
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    within("a first line on stdout")(
        tokio::time::timeout(cmd::DEADLINE, stdout.read_line(&mut first)).await,
    );
    assert!(first.starts_with("hookrelay ingest:"), "{first}");
    // The first log line (a signal that logging has begun), then whatever
    // followed until the kill.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    within("an info line at start")(
        tokio::time::timeout(cmd::DEADLINE, stderr.read_line(&mut log)).await,
    );
    child.kill().await.unwrap();
    within("stderr closed after the kill")(
        tokio::time::timeout(cmd::DEADLINE, stderr.read_to_string(&mut log)).await,
    );
    assert!(!log.is_empty(), "info logs at start");
    assert!(!log.contains('\x1b'), "{log:?}");
}

/// `tail --endpoint` with a slug that does not exist says so at once
/// instead of waiting forever on a stream that can never carry anything.
#[tokio::test]
async fn tail_refuses_an_unknown_endpoint() {
    let s = TestServer::start().await;
    let (code, _, err) = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        hookrelay(&s, &["tail", "--endpoint", "nope"]),
    )
    .await
    .expect("tail returns instead of waiting");
    assert_eq!(code, 1);
    assert!(err.contains("no endpoint"), "{err}");
}

/// A filter by a slug that names no endpoint says so on stderr, so a typo
/// does not pass for an endpoint without events; an existing endpoint
/// without events gets no such note.
#[tokio::test]
async fn an_empty_listing_for_an_unknown_endpoint_says_so() {
    let s = TestServer::start().await;
    s.create_endpoint(serde_json::json!({ "slug": "shop" }))
        .await;
    for args in [
        &["events", "--endpoint", "shpo"][..],
        &["events", "--endpoint", "shpo", "--json"],
        &["export", "--endpoint", "shpo"],
        &["export", "--endpoint", "shpo", "--format", "har"],
        &["replay", "--filter", "endpoint=shpo", "--dry-run"],
    ] {
        let (code, out, err) = hookrelay(&s, args).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(
            err.contains(r#"there is no endpoint "shpo""#),
            "{args:?}: {err}"
        );
        assert!(!out.contains("no endpoint"), "{args:?}: stdout stays data");
    }
    let (code, _, err) = hookrelay(&s, &["events", "--endpoint", "shop"]).await;
    assert_eq!(code, 0);
    assert!(!err.contains("no endpoint"), "{err}");
}

/// `--duplicate` and `--mirror-diff` reach the API's filters.
#[tokio::test]
async fn events_filter_duplicates_and_mirror_differences() {
    let s = TestServer::start().await;
    s.create_endpoint(serde_json::json!({ "slug": "dup" }))
        .await;
    for _ in 0..2 {
        s.post_in("dup", &[("x-wc-webhook-delivery-id", "7")], r#"{"id":1}"#)
            .await;
    }
    let dups = json_of(&s, &["events", "--duplicate", "true", "--json"]).await;
    assert_eq!(dups["events"].as_array().unwrap().len(), 1, "{dups}");
    assert!(!dups["events"][0]["duplicate_of"].is_null());
    let firsts = json_of(&s, &["events", "--duplicate", "false", "--json"]).await;
    assert_eq!(firsts["events"].as_array().unwrap().len(), 1, "{firsts}");
    let diff = json_of(&s, &["events", "--mirror-diff", "true", "--json"]).await;
    assert_eq!(diff["events"].as_array().unwrap().len(), 0, "{diff}");
}

/// `endpoint add` errors name the flag the user typed beside the API field.
#[tokio::test]
async fn endpoint_add_errors_name_the_flag() {
    let s = TestServer::start().await;
    for (args, want) in [
        (&["--timeout-ms", "0"][..], "timeout_ms (--timeout-ms): "),
        (&["--retry", "soon"], "(--retry): "),
        (
            &["--signature-scheme", "stripe", "--signature-secret", ""],
            "(--signature-secret): ",
        ),
        (&["--target", "ftp://x"], "target (--target): "),
        (
            &[
                "--signature-scheme",
                "hmac-sha256",
                "--signature-secret",
                "k",
                "--signature-header",
                "X Sig",
            ],
            "(--signature-header): ",
        ),
        (
            &[
                "--signature-scheme",
                "auto",
                "--signature-secret",
                "k",
                "--enforce",
            ],
            "(--enforce): ",
        ),
        (
            &["--response-status", "99"],
            "(--response-status/-body/-sequence): ",
        ),
    ] {
        let mut all = vec!["endpoint", "add", "flags"];
        all.extend_from_slice(args);
        let (code, _, err) = hookrelay(&s, &all).await;
        assert_eq!(code, 1, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Secrets can come from files (kept off the command line, which other local
/// users can read): `endpoint add --signature-secret-file` enforces the
/// file's secret, `verify --secret-file` checks with it, beside inline ones.
/// GitHub's documented example: "Hello, World!" under "It's a Secret to
/// Everybody".
#[tokio::test]
async fn secrets_can_come_from_files() {
    const BODY: &str = "Hello, World!";
    const SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let dir = tempfile::tempdir().unwrap();
    let right = dir.path().join("right");
    std::fs::write(&right, "It's a Secret to Everybody\n").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not it").unwrap();
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    let body = dir.path().join("body");
    std::fs::write(&body, BODY).unwrap();
    let (right, wrong, empty, body) = (
        right.to_str().unwrap(),
        wrong.to_str().unwrap(),
        empty.to_str().unwrap(),
        body.to_str().unwrap(),
    );

    let s = TestServer::start().await;
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "add",
            "gh",
            "--signature-scheme",
            "github",
            "--signature-secret",
            "an inline one",
            "--signature-secret-file",
            right,
            "--enforce",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep["signature"]["secret_count"], 2);
    let signed = s
        .post_in("gh", &[("x-hub-signature-256", SIG)], BODY.as_bytes())
        .await;
    assert_eq!(signed.status, 200);
    let unsigned = s.post_in("gh", &[], BODY.as_bytes()).await;
    assert_eq!(unsigned.status, 401);

    let header = format!("X-Hub-Signature-256: {SIG}");
    let verify = |secret_args: Vec<&str>| {
        let args: Vec<String> = ["verify", "--scheme", "github", "-H", &header]
            .into_iter()
            .chain(["--body-file", body])
            .chain(secret_args)
            .map(String::from)
            .collect();
        let s = &s;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            hookrelay(s, &refs).await
        }
    };
    let (code, out, err) = verify(vec!["--secret-file", right]).await;
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains("\"valid\""), "{out}");
    let (code, out, _) = verify(vec!["--secret-file", wrong]).await;
    assert_eq!(code, 1, "{out}");
    let (code, out, err) = verify(vec!["--secret-file", wrong, "--secret-file", right]).await;
    assert_eq!(code, 0, "{out} {err}");
    let (code, _, err) = verify(vec!["--secret-file", empty]).await;
    assert_eq!(code, 2);
    assert!(err.contains("is empty"), "{err}");
    let (code, _, err) = verify(vec!["--secret-file", "/nonexistent/secret"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("cannot read the secret file"), "{err}");
    let (code, _, err) = verify(vec![]).await;
    assert_eq!(code, 2, "a secret is still required: {err}");
}

/// `hookrelay … | head` ends the command quietly when `head` stops
/// reading: no panic and backtrace, exit 0 (it was 101).
#[tokio::test]
async fn a_closed_output_pipe_ends_a_command_quietly() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "p" })).await;
    let admin = s.admin_url("");
    let mut hr = cmd::hookrelay();
    hr.args(["endpoint", "list", "--json"])
        .env("HOOKRELAY_SERVER", admin)
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = tokio::process::Command::from(hr)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The only read end: every write the command makes fails (EPIPE).
    drop(child.stdout.take());
    let out = cmd::wait(child, "hookrelay endpoint list").await;
    let (code, err) = (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// The generic scheme needs its header (and may take an encoding, prefix and
/// timestamp header): `endpoint add` offered the scheme but no way to say
/// which header, so it could never create one.
#[tokio::test]
async fn endpoint_add_configures_the_generic_hmac_scheme() {
    let s = TestServer::start().await;
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "add",
            "generic",
            "--signature-scheme",
            "hmac-sha256",
            "--signature-secret",
            "It's a Secret to Everybody",
            "--signature-header",
            "X-Sig",
            "--signature-encoding",
            "hex",
            "--signature-prefix",
            "sha256=",
            "--signature-tolerance",
            "60",
            "--enforce",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep["signature"]["header"], "X-Sig", "{ep}");
    assert_eq!(ep["signature"]["tolerance_s"], 60, "{ep}");
    // GitHub's documented MAC, in the generic scheme's terms.
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let r = s
        .post_in("generic", &[("x-sig", sig)], "Hello, World!")
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .post_in("generic", &[("x-sig", "sha256=00")], "Hello, World!")
        .await;
    assert_eq!(r.status, 401);
}

/// A `RUST_LOG` that is no filter is said once on stderr, not silently
/// replaced by the default (a typo looked like a quiet server).
#[tokio::test]
async fn an_invalid_rust_log_is_named() {
    let mut hr = cmd::hookrelay();
    hr.args(["endpoint", "list", "--server", "http://127.0.0.1:9"])
        .env("RUST_LOG", "hookrelay=loudest");
    let out = cmd::output(hr).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RUST_LOG=\"hookrelay=loudest\" is not a log filter"),
        "{err}"
    );
}

/// A stream that ends (hookrelay restarting) is followed again, as
/// `tail -F` follows a rotated file: the second connection's event is
/// printed too.
#[tokio::test]
async fn tail_reconnects_when_the_stream_ends() {
    let sse = |id: &str| {
        Reply::status(200)
            .header("content-type", "text/event-stream")
            .header("x-hookrelay-api", "1")
            .body(format!(
                "event: event\ndata: {{\"id\":\"{id}\",\"method\":\"POST\",\"endpoint\":\"e\",\"path\":\"\",\"state\":\"captured\",\"received_at\":\"t\"}}\n\n"
            ))
    };
    let mut server = Receiver::start(vec![sse("first"), sse("second")]).await;
    let (mut child, mut lines) = tail_at(&server.url(""), &[]);
    assert!(next_line(&mut lines).await.ends_with("first"));
    assert!(next_line(&mut lines).await.ends_with("second"));
    assert_eq!(server.next().await.uri, "/api/stream");
    assert_eq!(server.next().await.uri, "/api/stream");
    child.kill().await.unwrap();
}

/// A release whose deliveries fail exits 1, as a failed replay does; and
/// `show` prints what the dashboard shows beside the headers: the
/// signature verdict, topic and provider id.
#[tokio::test]
async fn a_failed_release_exits_1_and_show_prints_the_verdict() {
    let up = Receiver::start(vec![Reply::status(500)]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({
        "slug": "rel",
        "target": up.url("/"),
        "failure_threshold": 100,
        "signature": { "scheme": "github", "secret": "s3cret" },
    }))
    .await;
    let (code, _, err) = hookrelay(&s, &["endpoint", "pause", "rel"]).await;
    assert_eq!(code, 0, "{err}");
    let r = s
        .post_in(
            "rel",
            &[("x-github-event", "push"), ("x-github-delivery", "d-1")],
            "{}",
        )
        .await;
    assert_eq!(r.status, 202);
    let (code, out, err) = hookrelay(&s, &["endpoint", "resume", "rel", "--release"]).await;
    assert_eq!(code, 1, "a failed delivery: {out}{err}");
    assert!(
        out.contains("released 1 held event: 0 delivered, 1 failed"),
        "{out}"
    );
    // A resume alone says what is still held and how to send it.
    hookrelay(&s, &["endpoint", "pause", "rel"]).await;
    assert_eq!(s.post_in("rel", &[], "{}").await.status, 202);
    let (code, _, err) = hookrelay(&s, &["endpoint", "resume", "rel"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 event is still held: `hookrelay endpoint release rel`"),
        "{err}"
    );
    let (code, out, _) = hookrelay(&s, &["show", &r.event_id()]).await;
    assert_eq!(code, 0);
    assert!(out.contains("signature: missing (github)"), "{out}");
    assert!(out.contains("topic: push"), "{out}");
    assert!(out.contains("provider id: d-1"), "{out}");
}

/// A server address without its scheme is named as typed.
#[tokio::test]
async fn a_server_address_without_a_scheme_is_refused_as_typed() {
    let mut cmd = cmd::hookrelay();
    cmd.args(["endpoint", "list"])
        .env("HOOKRELAY_SERVER", "127.0.0.1:8081")
        .env("RUST_LOG", "off");
    let out = cmd::output(cmd).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("\"127.0.0.1:8081\" is not an http:// or https:// URL"),
        "{err}"
    );
}

/// A server with an admin token refuses a command without one, and every
/// command says how to pass it, the export too (it printed only the
/// refusal).
#[tokio::test]
async fn a_refusal_for_want_of_the_token_says_how_to_pass_it() {
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(hookrelay::config::Config {
        data,
        admin_token: Some("s3cret-token".into()),
        ..Default::default()
    })
    .await;
    for args in [&["events"][..], &["export"], &["endpoint", "list"]] {
        let (code, _, err) = hookrelay(&s, args).await;
        assert_eq!(code, 1, "{args:?}");
        assert!(
            err.contains("(HTTP 401); pass --token or set HOOKRELAY_ADMIN_TOKEN"),
            "{args:?}: {err}"
        );
        // A wrong path: the dashboard sends the CLI to its login, which
        // read as an empty answer (exit 0, an empty list).
        let mut cmd = cmd::hookrelay();
        cmd.args(args)
            .env("HOOKRELAY_SERVER", s.admin_url("/prefix"))
            .env("RUST_LOG", "off");
        let out = cmd::output(cmd).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("redirected to /login") && err.contains("check the path in --server"),
            "{args:?}: {err}"
        );
    }
}

/// The top-level help says how the client commands reach the server: the
/// options live on each command, so it did not.
#[tokio::test]
async fn the_top_level_help_names_the_client_options() {
    let mut cmd = cmd::hookrelay();
    cmd.arg("--help");
    let out = cmd::output(cmd).await;
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for said in ["--server URL (HOOKRELAY_SERVER", "--token TOKEN", "--json"] {
        assert!(help.contains(said), "{said} not in {help}");
    }
}

/// A server address the CLI cannot use as typed is refused before any
/// connection: a query (joined with the API's paths it sent
/// `/?x=1/api/endpoints`), a port out of range (it went to port 80, with
/// the token), a password (printed back in every message).
#[tokio::test]
async fn a_server_address_that_cannot_be_used_is_refused_as_typed() {
    for (server, said) in [
        (
            "http://127.0.0.1:8081/?x=1",
            "/?x=1\" has a query or fragment",
        ),
        ("http://127.0.0.1:99999", ":99999\" has no valid port"),
        ("http://127.0.0.1:", ":\" has no valid port"),
        (
            "http://u:hunter2@127.0.0.1:8081",
            "a user or password in the URL is not used",
        ),
    ] {
        let mut cmd = cmd::hookrelay();
        cmd.args(["endpoint", "list"])
            .env("HOOKRELAY_SERVER", server)
            .env("RUST_LOG", "off");
        let out = cmd::output(cmd).await;
        assert_eq!(out.status.code(), Some(1), "{server}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{server}: {err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// `endpoint add` sets every endpoint field the README lists: a bin's
/// headers and delay, queue mode's limits.
#[tokio::test]
async fn endpoint_add_sets_response_headers_delay_and_queue_limits() {
    let s = TestServer::start().await;
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "add",
            "b2",
            "--response-status",
            "201",
            "--response-header",
            "X-A: 1",
            "--response-header",
            "X-B: two words",
            "--response-delay-ms",
            "5",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep["response"]["delay_ms"], 5, "{ep}");
    let r = s.post_in("b2", &[], "x").await;
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-a").as_deref(), Some("1"));
    assert_eq!(r.header("x-b").as_deref(), Some("two words"));
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "add",
            "q2",
            "--target",
            "http://127.0.0.1:9/",
            "--mode",
            "queue",
            "--max-in-flight",
            "2",
            "--max-queue-depth",
            "10",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        (&ep["max_in_flight"], &ep["max_queue_depth"]),
        (&json!(2), &json!(10))
    );
    let (code, _, err) = hookrelay(
        &s,
        &["endpoint", "add", "b3", "--response-header", "nocolon"],
    )
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--response-header: \"nocolon\" needs the form"),
        "{err}"
    );
}

#[tokio::test]
async fn endpoint_edit_changes_only_what_is_given_and_disable_holds() {
    let s = TestServer::start().await;
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    json_of(
        &s,
        &[
            "endpoint",
            "add",
            "e1",
            "--name",
            "Shop",
            "--response-status",
            "201",
            "--response-body",
            "kept",
            "--mirror",
            "http://127.0.0.1:9/",
            "--ordered",
            "--json",
        ],
    )
    .await;
    // A bin's answer: only its status changes, the body stays.
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "edit",
            "e1",
            "--response-status",
            "202",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        (
            &ep["response"]["status"],
            &ep["response"]["body"],
            &ep["name"]
        ),
        (&json!(202), &json!("kept"), &json!("Shop")),
        "{ep}"
    );
    let r = s.post_in("e1", &[], "x").await;
    assert_eq!((r.status, &r.body[..]), (202, &b"kept"[..]));
    // A target, a boolean turned off and an optional field cleared.
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "edit",
            "e1",
            "--target",
            &up.url("/hook"),
            "--ordered=false",
            "--no-mirror",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        (&ep["ordered"], &ep["mirror"], &ep["name"]),
        (&json!(false), &Value::Null, &json!("Shop")),
        "{ep}"
    );
    assert_eq!(s.post_in("e1", &[], "fwd").await.status, 200);
    assert_eq!(&up.next().await.body[..], b"fwd");
    // Disabled by hand: held, with 202, until resumed.
    let ep = json_of(&s, &["endpoint", "disable", "e1", "--json"]).await;
    assert_eq!(ep["status"], "disabled", "{ep}");
    let r = s.post_in("e1", &[], "later").await;
    let held: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!((r.status, &held["held"]), (202, &json!(true)), "{held}");
    // Back to a bin.
    let ep = json_of(&s, &["endpoint", "edit", "e1", "--no-target", "--json"]).await;
    assert_eq!(ep["target"], Value::Null, "{ep}");
    // A signature change keeps the settings not given (secrets are never
    // read back, so they are given again).
    json_of(
        &s,
        &[
            "endpoint",
            "add",
            "sg",
            "--signature-scheme",
            "github",
            "--signature-secret",
            "s1",
            "--enforce",
            "--signature-tolerance",
            "60",
            "--response-sequence",
            "500,200",
            "--json",
        ],
    )
    .await;
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "edit",
            "sg",
            "--signature-secret",
            "s2",
            "--json",
        ],
    )
    .await;
    let sig = &ep["signature"];
    assert_eq!(
        (
            &sig["scheme"],
            &sig["enforce"],
            &sig["tolerance_s"],
            &sig["secret_count"]
        ),
        (&json!("github"), &json!(true), &json!(60), &json!(1)),
        "{ep}"
    );
    // Nor need the secrets again: the stored ones stay.
    let ep = json_of(&s, &["endpoint", "edit", "sg", "--enforce=false", "--json"]).await;
    assert_eq!(
        (
            &ep["signature"]["enforce"],
            &ep["signature"]["secret_count"]
        ),
        (&json!(false), &json!(1)),
        "{ep}"
    );
    // Another scheme drops the settings that do not fit it (github takes no
    // header) and keeps the secrets.
    json_of(
        &s,
        &[
            "endpoint",
            "add",
            "hm",
            "--signature-scheme",
            "hmac-sha256",
            "--signature-secret",
            "k",
            "--signature-header",
            "X-Sig",
            "--json",
        ],
    )
    .await;
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "edit",
            "hm",
            "--signature-scheme",
            "github",
            "--json",
        ],
    )
    .await;
    assert_eq!(
        (
            &ep["signature"]["scheme"],
            &ep["signature"]["header"],
            &ep["signature"]["secret_count"]
        ),
        (&json!("github"), &Value::Null, &json!(1)),
        "{ep}"
    );
    let (code, _, err) = hookrelay(
        &s,
        &[
            "endpoint",
            "edit",
            "hm",
            "--no-signature",
            "--signature-secret",
            "x",
        ],
    )
    .await;
    assert_eq!(code, 2, "clap refuses the pair: {err}");
    let (code, _, err) = hookrelay(&s, &["endpoint", "add", "ns", "--enforce"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("need --signature-scheme"), "{err}");
    // A status given alone replaces the sequence that would still decide.
    let ep = json_of(
        &s,
        &[
            "endpoint",
            "edit",
            "sg",
            "--response-status",
            "202",
            "--json",
        ],
    )
    .await;
    assert_eq!(ep["response"]["sequence"], json!([]), "{ep}");
    assert_eq!(s.post_in("sg", &[], "x").await.status, 202);
    // Nothing to change, and a refused value named by its flag.
    let (code, _, err) = hookrelay(&s, &["endpoint", "edit", "e1"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("nothing to change"), "{err}");
    let (code, _, err) = hookrelay(&s, &["endpoint", "edit", "e1", "--target", "ftp://x"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("(--target)"), "{err}");
    let (code, _, err) = hookrelay(&s, &["endpoint", "edit", "nope", "--name", "x"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("nope"), "{err}");
}

/// Another server at `--server` answering `200` with some JSON is not
/// taken for hookrelay: every client command says so and exits 1 (an empty
/// record was printed as a success, and a bulk replay polled forever).
#[tokio::test]
async fn a_server_that_is_not_hookrelay_is_named_as_such() {
    let other = Receiver::start(vec![
        Reply::status(200)
            .header("content-type", "application/json")
            .body("{}"),
    ])
    .await;
    let url = other.url("");
    for args in [
        &["endpoint", "rm", "zz"][..],
        &["endpoint", "add", "zz"],
        &["endpoint", "list"],
        &["events"],
        &["show", "01M8WNA3MZ061Q0828ACE9303Q"],
        &["export"],
        &["replay", "--filter", "endpoint=x"],
        &["tail"],
    ] {
        let mut cmd = cmd::hookrelay();
        cmd.args(args)
            .env("HOOKRELAY_SERVER", &url)
            .env("RUST_LOG", "off");
        let out = cmd::output(cmd).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("is not hookrelay's admin API"),
            "{args:?}: {err}"
        );
    }
}

/// A bulk replay followed from the CLI outlives a restart of hookrelay: the
/// job resumes on the server, and the command waits for it and ends with
/// its result (it exited 1 with "cannot reach hookrelay" before).
#[tokio::test]
async fn a_followed_bulk_replay_outlives_a_restart() {
    use crate::support::child::{spawn_binary, spawn_binary_at};
    use crate::support::{send, temp_data};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let (_dir, data) = temp_data();
    let first = spawn_binary(&data, "sync");
    let json_post = |url: String, body: Value| async move {
        let (st, _, b) = send(
            "POST",
            &url,
            &[("content-type", "application/json")],
            body.to_string().into(),
        )
        .await;
        assert!(st < 300, "{url}: {st} {}", String::from_utf8_lossy(&b));
    };
    json_post(
        format!("{}/api/endpoints", first.admin),
        json!({ "slug": "b" }),
    )
    .await;
    for i in 0..4 {
        json_post(format!("{}/in/b", first.ingest), json!({ "n": i })).await;
    }
    let mut cli = cmd::hookrelay();
    cli.args(["replay", "--filter", "endpoint=b", "--rate", "2", "--to"])
        .arg(up.url("/r"))
        .env("HOOKRELAY_SERVER", &first.admin)
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut cli = tokio::process::Command::from(cli)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = cli.stdout.take().unwrap();
    let mut stderr = tokio::io::BufReader::new(cli.stderr.take().unwrap()).lines();
    up.next().await;
    let admin = first.admin.trim_start_matches("http://").to_string();
    drop(first); // SIGKILL, and reaped
    // Restarted once the command has seen it gone.
    let away = tokio::time::timeout(cmd::DEADLINE, async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if line.contains("hookrelay is away") {
                return line;
            }
        }
        panic!("stderr ended without noticing hookrelay was away");
    })
    .await
    .expect("the command noticed hookrelay was away");
    assert!(away.contains("goes on there when it is back"), "{away}");
    let _second = spawn_binary_at(&data, "sync", &admin);
    let rest = tokio::spawn(async move {
        let mut all = String::new();
        while let Some(line) = stderr.next_line().await.unwrap() {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut printed = String::new();
    tokio::time::timeout(
        cmd::DEADLINE,
        tokio::io::BufReader::new(stdout).read_to_string(&mut printed),
    )
    .await
    .expect("the command ended")
    .unwrap();
    let status = tokio::time::timeout(cmd::DEADLINE, cli.wait())
        .await
        .expect("the command ended")
        .unwrap();
    let stderr = rest.await.unwrap();
    assert_eq!(status.code(), Some(0), "{printed}\n{stderr}");
    assert!(stderr.contains("hookrelay is back"), "{stderr}");
    assert!(printed.contains(" done: "), "{printed}");
    let mut seen = std::collections::BTreeSet::new();
    while seen.len() < 4 {
        seen.insert(up.next().await.body);
    }
}

/// A dry run that matches more events than it lists says which ones it
/// lists.
#[tokio::test]
async fn a_dry_run_says_it_lists_the_oldest() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "many" })).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        ids.push(s.post_in("many", &[], format!("{i}")).await.event_id());
    }
    let (code, out, err) =
        hookrelay(&s, &["replay", "--filter", "endpoint=many", "--dry-run"]).await;
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("25 events match; the oldest 20:"));
    assert_eq!(lines.next().map(str::trim), Some(ids[0].as_str()));
}

/// Client flags may come before the command too (`hookrelay --server URL
/// events`); `serve` still takes none.
#[tokio::test]
async fn client_flags_may_come_before_the_command() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({ "slug": "first" })).await;
    let mut cmd = cmd::hookrelay();
    cmd.args(["--server", &s.admin_url(""), "--json", "endpoint", "list"])
        .env_remove("HOOKRELAY_SERVER")
        .env("RUST_LOG", "off");
    let out = cmd::output(cmd).await;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{printed}");
    let list: Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(list["endpoints"][0]["slug"], "first", "{list}");
    let mut cmd = cmd::hookrelay();
    cmd.args(["--json", "serve"]).env("RUST_LOG", "off");
    let out = cmd::output(cmd).await;
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}

/// Hunt #18: `export` stopped at the server's cap of 10,000 events with a
/// warning; `--all` follows the cursor to the oldest, in one file, oldest
/// first, also as one HAR document.
#[tokio::test]
async fn export_all_goes_past_the_servers_cap() {
    const N: usize = hookrelay::admin::export::MAX_EXPORT + 5;
    let (_dir, data) = temp_data();
    let store =
        hookrelay::store::Store::open(&data, hookrelay::store::Durability::Buffered).unwrap();
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let ev: hookrelay::event::Event = serde_json::from_value(json!({
            "id": hookrelay::store::Store::new_id(), "endpoint": "many", "received_at": 1,
            "method": "POST", "path": "", "query": null, "headers": [], "size": 1,
            "remote_addr": "127.0.0.1:1", "state": "captured",
        }))
        .unwrap();
        ids.push(
            store
                .insert_event(ev, format!("{i}").as_bytes())
                .unwrap()
                .id,
        );
    }
    store.flush().unwrap();
    drop(store);
    let s = TestServer::start_with(crate::support::config_at(&data)).await;
    let (code, _, err) = hookrelay(&s, &["export", "--endpoint", "many"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("--all"), "one answer says how to go on: {err}");
    let (code, out, err) = hookrelay(&s, &["export", "--endpoint", "many", "--all"]).await;
    assert_eq!((code, err.as_str()), (0, ""));
    let got: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(got, ids, "every event, oldest first");
    let (code, out, err) = hookrelay(
        &s,
        &["export", "--endpoint", "many", "--all", "--format", "har"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let har: Value = serde_json::from_str(&out).unwrap();
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), N);
    assert_eq!(
        entries[0]["request"]["postData"]["text"], "0",
        "oldest first"
    );
    assert_eq!(
        entries[N - 1]["request"]["postData"]["text"],
        format!("{}", N - 1)
    );
    let (code, _, err) = hookrelay(&s, &["export", "--all", "--limit", "3"]).await;
    assert_ne!(code, 0, "--all and --limit contradict each other: {err}");
}
