//! hookrelay as a child process (the real binary), so a test can SIGKILL it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

pub struct Child {
    pub proc: std::process::Child,
    /// `http://127.0.0.1:PORT` of the ingest listener.
    pub ingest: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
}

impl Child {
    /// A JSON request to the admin API: the status and the answer's JSON
    /// (`null` when it is none).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let (st, _, b) = super::send(
            method,
            &format!("{}{path}", self.admin),
            &[("content-type", "application/json")],
            body.to_string().into(),
        )
        .await;
        (st, serde_json::from_slice(&b).unwrap_or_default())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // Only this test's own child, by its handle.
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// Starts `hookrelay serve` on ephemeral loopback ports and reads the two
/// URLs it prints (within [`super::cmd::DEADLINE`], else it is killed and
/// the test fails).
pub fn spawn_binary(data: &Path, durability: &str) -> Child {
    spawn_binary_at(data, durability, "127.0.0.1:0")
}

/// [`spawn_binary`] with the admin listener on `admin` (a restart where a
/// client expects it).
pub fn spawn_binary_at(data: &Path, durability: &str, admin: &str) -> Child {
    start(super::cmd::hookrelay(), data, durability, admin)
}

/// [`spawn_binary`] under a limit of `nofile` open files, soft and hard (a
/// shell's `ulimit -n`), so that raising it cannot escape the test.
pub fn spawn_binary_limited(data: &Path, nofile: u32) -> Child {
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg(format!("ulimit -n {nofile} && exec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_hookrelay"));
    super::cmd::isolate(&mut sh);
    start(sh, data, "sync", "127.0.0.1:0")
}

fn start(mut cmd: std::process::Command, data: &Path, durability: &str, admin: &str) -> Child {
    let mut proc = cmd
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            admin,
            "--durability",
            durability,
            "--data",
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hookrelay");
    // Read on a thread of its own, so a child that never prints is met by a
    // deadline instead of a read that blocks forever.
    let stdout = proc.stdout.take().unwrap();
    // Owned from here: a failure below kills it on the way out.
    let mut child = Child {
        proc,
        ingest: String::new(),
        admin: String::new(),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + super::cmd::DEADLINE;
    let url = |prefix: &str| -> String {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = match rx.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Ok(line)) => line,
            other => panic!("hookrelay serve did not print its {prefix:?} line: {other:?}"),
        };
        let rest = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .trim();
        rest.trim_end_matches("/in/{slug}")
            .trim_end_matches('/')
            .to_string()
    };
    child.ingest = url("hookrelay ingest:");
    child.admin = url("hookrelay dashboard:");
    child
}
