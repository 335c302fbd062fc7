//! Backup and restore: `hookrelay backup` takes a consistent copy of a
//! running store while senders keep sending, `hookrelay restore` puts it
//! into a new data directory, and a server started on it finds every event
//! acknowledged before the backup began; a cut, damaged or hostile archive
//! is refused with nothing put in place.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;

use crate::support::{Receiver, Reply, TestServer, cmd, config_at, temp_data};

async fn run(args: &[&str], server: Option<&TestServer>) -> (i32, String, String) {
    let mut c = cmd::hookrelay();
    c.args(args).env("RUST_LOG", "off");
    if let Some(s) = server {
        c.env("HOOKRELAY_SERVER", s.admin_url(""));
    }
    let out = cmd::output(c).await;
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn staging_left(data: &Path) -> Vec<String> {
    std::fs::read_dir(data)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

#[tokio::test]
async fn a_backup_under_load_restores_every_event_acknowledged_before_it() {
    let up = Receiver::start(vec![Reply::status(201).body("made")]).await;
    let s = TestServer::start().await;
    s.create_endpoint(json!({"slug": "shop"})).await;
    s.create_endpoint(json!({
        "slug": "fw",
        "target": up.url("/hook"),
        "signature": {"scheme": "github", "secret": "It's a Secret to Everybody"},
    }))
    .await;
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let mut before = vec![s.post_in("shop/raw", &[], binary.clone()).await.event_id()];
    let forwarded = s.post_in("fw", &[], r#"{"a":1}"#).await;
    assert_eq!(forwarded.status, 201);
    before.push(forwarded.event_id());
    for i in 0..20 {
        before.push(
            s.post_in("shop", &[], format!(r#"{{"n":{i}}}"#))
                .await
                .event_id(),
        );
    }

    // Senders go on while the backup is taken; what they get acknowledged
    // during it may or may not be in it.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, url) = (Arc::clone(&stop), s.ingest_url("/in/shop/during"));
        tokio::spawn(async move {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) && sent < 5_000 {
                let (status, _, _) =
                    crate::support::send("POST", &url, &[], bytes::Bytes::from("x")).await;
                assert_eq!(status, 200);
                sent += 1;
            }
            sent
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("b.tar");
    let (code, _, err) = run(&["backup", "-o", archive.to_str().unwrap()], Some(&s)).await;
    stop.store(true, Ordering::Relaxed);
    let during = sender.await.unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("written to"), "{err}");
    assert!(during > 0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777,
        0o600,
        "the archive holds captured credentials and secrets"
    );
    // The checkpoint is gone once the archive is sent.
    assert_eq!(staging_left(&s.data), Vec::<String>::new());

    let restored = dir.path().join("restored");
    let (code, out, err) = run(
        &[
            "restore",
            archive.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("2 endpoint(s)"), "{out}");
    // Restoring over it is refused: it holds files now.
    let (code, _, err) = run(
        &[
            "restore",
            archive.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("already holds files"), "{err}");

    let copy = TestServer::start_with(config_at(&restored)).await;
    for id in &before {
        let (status, original) = s.api("GET", &format!("/api/events/{id}"), None).await;
        assert_eq!(status, 200);
        let (status, got) = copy.api("GET", &format!("/api/events/{id}"), None).await;
        assert_eq!(status, 200, "{id} is missing from the restored store");
        assert_eq!(got, original, "{id} differs after the restore");
    }
    let (_, raw) = copy.api("GET", "/api/endpoints/fw", None).await;
    assert_eq!(raw["signature"]["has_secret"], true, "{raw}");
    let (_, body) = copy
        .api("GET", &format!("/api/events/{}", before[0]), None)
        .await;
    assert_eq!(body["body_base64"], json!(base64_of(&binary)));
    // Ids go on growing past the restored ones.
    let newest = copy.get("/api/events?limit=1").await["events"][0]["id"].clone();
    let newest = newest.as_str().unwrap();
    let fresh = copy.post_in("shop", &[], "after").await.event_id();
    assert!(fresh.as_str() > newest, "{fresh} after {newest}");
    // The restored store's counters carried over.
    let (_, shop) = copy.api("GET", "/api/endpoints/shop", None).await;
    assert!(shop["counts"]["received"].as_i64().unwrap() >= 22, "{shop}");
}

fn base64_of(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[tokio::test]
async fn a_cut_damaged_or_hostile_archive_is_refused_and_nothing_is_put_in_place() {
    let s = TestServer::start().await;
    s.create_endpoint(json!({"slug": "shop"})).await;
    for i in 0..10 {
        s.post_in("shop", &[], format!(r#"{{"n":{i}}}"#)).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("b.tar");
    let (code, _, err) = run(&["backup", "-o", archive.to_str().unwrap()], Some(&s)).await;
    assert_eq!(code, 0, "{err}");
    let whole = std::fs::read(&archive).unwrap();

    // The dashboard links to the same download.
    let (_, _, page) =
        crate::support::send("GET", &s.admin_url("/"), &[], Default::default()).await;
    assert!(String::from_utf8_lossy(&page).contains(r#"href="/api/backup""#));
    let (status, headers, direct) =
        crate::support::send("GET", &s.admin_url("/api/backup"), &[], Default::default()).await;
    assert_eq!(status, 200);
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(header("content-type"), "application/x-tar");
    assert!(
        header("content-disposition").starts_with("attachment; filename=\"hookrelay-backup-"),
        "{}",
        header("content-disposition")
    );
    assert!(
        direct.len() > 1024 && direct.ends_with(&[0u8; 1024]),
        "a whole tar archive"
    );

    let refused = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let target = dir.path().join("new");
    let check = |path: std::path::PathBuf, want: &'static str| {
        let target = target.clone();
        async move {
            let (code, _, err) = run(
                &[
                    "restore",
                    path.to_str().unwrap(),
                    "--data",
                    target.to_str().unwrap(),
                ],
                None,
            )
            .await;
            assert_ne!(code, 0, "{want}: restored");
            assert!(err.contains(want), "{want}: {err}");
            assert!(!target.exists(), "{want}: the data directory was made");
        }
    };

    // Cut anywhere: in a file, or just before the manifest.
    check(refused("half.tar", &whole[..whole.len() / 2]), "cut short").await;
    let manifest_at = find(&whole, b"hookrelay-backup.json").expect("manifest entry");
    check(
        refused("nomanifest.tar", &whole[..manifest_at]),
        "cut short",
    )
    .await;

    // A byte changed inside a table file.
    let mut damaged = whole.clone();
    let sst = find(&damaged, b".sst").expect("a table file");
    let data_at = sst - sst % 512 + 512 + 100;
    damaged[data_at] ^= 0xff;
    check(
        refused("damaged.tar", &damaged),
        "does not match the manifest",
    )
    .await;

    // An entry that names a path outside the directory.
    let mut hostile = Vec::new();
    {
        let mut b = tar::Builder::new(&mut hostile);
        let mut h = tar::Header::new_old();
        let name = b"../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append(&h, &b"hi"[..]).unwrap();
        b.finish().unwrap();
    }
    check(
        refused("hostile.tar", &hostile),
        "not a file name of a backup",
    )
    .await;
    assert!(!dir.path().join("escaped").exists());

    // Not an archive at all.
    check(refused("text.tar", b"hello, this is not tar"), "cut short").await;

    // Nothing half-restored was left beside the target.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".hookrelay-restore-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");

    // The whole archive still restores into an empty directory.
    std::fs::create_dir(&target).unwrap();
    let (code, out, err) = run(
        &[
            "restore",
            archive.to_str().unwrap(),
            "--data",
            target.to_str().unwrap(),
        ],
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10 event(s)"), "{out}");
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn a_checkpoint_left_by_a_crash_is_removed_at_the_next_start() {
    let (_dir, data) = temp_data();
    let s = TestServer::start_with(config_at(&data)).await;
    s.stop().await;
    let stale = data.join(".backup-01JSTALE");
    std::fs::create_dir(&stale).unwrap();
    std::fs::write(stale.join("000009.sst"), b"x").unwrap();
    let s = TestServer::start_with(config_at(&data)).await;
    assert!(!stale.exists(), "the stale checkpoint is still there");
    let (status, _) = s.api("GET", "/api/endpoints", None).await;
    assert_eq!(status, 200);
}
