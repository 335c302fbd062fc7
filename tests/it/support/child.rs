//! hookrelay as a child process (the real binary), so a test can SIGKILL it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

pub struct Child {
    pub proc: std::process::Child,
    /// `http://127.0.0.1:PORT` of the ingest listener.
    pub ingest: String,
    /// `http://127.0.0.1:PORT` of the admin listener.
    pub admin: String,
}

impl Drop for Child {
    fn drop(&mut self) {
        // Only this test's own child, by its handle.
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

/// Starts `hookrelay serve` on ephemeral loopback ports and reads the two
/// URLs it prints.
pub fn spawn_binary(data: &Path, durability: &str) -> Child {
    let mut proc = Command::new(env!("CARGO_BIN_EXE_hookrelay"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--durability",
            durability,
            "--data",
        ])
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn hookrelay");
    let mut lines = BufReader::new(proc.stdout.take().unwrap()).lines();
    let mut url = |prefix: &str| -> String {
        let line = lines.next().expect("a line").expect("stdout");
        let rest = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .trim();
        rest.trim_end_matches("/in/{slug}")
            .trim_end_matches('/')
            .to_string()
    };
    let ingest = url("hookrelay ingest:");
    let admin = url("hookrelay dashboard:");
    Child {
        proc,
        ingest,
        admin,
    }
}
