//! Commands the tests run: the hookrelay binary with an environment of the
//! test's choosing, and any command with a deadline, so a command that hangs
//! fails its test with what it printed instead of hanging the suite.

use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How long a command may run before it is killed and its test fails: far
/// beyond what any of them needs, short of the suite looking stuck.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// `hookrelay` with no `HOOKRELAY_*` variable of the test's environment
/// (the README has users export `HOOKRELAY_ADMIN_TOKEN`, and the server
/// reads `HOOKRELAY_INGEST_THREADS`): only those the test sets afterwards
/// with `.env(…)` reach it.
pub fn hookrelay() -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hookrelay"));
    isolate(&mut cmd);
    cmd
}

/// Removes every inherited `HOOKRELAY_*` variable from `cmd`; a later
/// `.env(…)` on the command still sets one.
pub fn isolate(cmd: &mut std::process::Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("HOOKRELAY_") {
            cmd.env_remove(name);
        }
    }
}

/// Runs `cmd` to its end (stdin empty, stdout and stderr captured) within
/// [`DEADLINE`].
pub async fn output(cmd: impl Into<tokio::process::Command>) -> Output {
    output_within(cmd, DEADLINE).await
}

/// [`output`] with another deadline.
pub async fn output_within(cmd: impl Into<tokio::process::Command>, deadline: Duration) -> Output {
    let mut cmd: tokio::process::Command = cmd.into();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    wait_within(child, &format!("{cmd:?}"), deadline).await
}

/// Waits for a spawned child within [`DEADLINE`], reading whichever of its
/// stdout and stderr are still piped; past the deadline it is killed and
/// the test fails with what it printed.
pub async fn wait(child: tokio::process::Child, what: &str) -> Output {
    wait_within(child, what, DEADLINE).await
}

async fn wait_within(mut child: tokio::process::Child, what: &str, deadline: Duration) -> Output {
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|s| collect(s, Arc::clone(&out))),
        child.stderr.take().map(|s| collect(s, Arc::clone(&err))),
    ];
    let status = match tokio::time::timeout(deadline, child.wait()).await {
        Ok(status) => status.unwrap_or_else(|e| panic!("wait for {what}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            // A grandchild may hold the pipes open: what came so far.
            for r in readers.into_iter().flatten() {
                let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
            }
            panic!(
                "{what} still running after {deadline:?}, killed\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.lock().unwrap()),
                String::from_utf8_lossy(&err.lock().unwrap()),
            );
        }
    };
    for r in readers.into_iter().flatten() {
        // Closed with the process unless a grandchild kept them.
        if tokio::time::timeout(Duration::from_secs(10), r)
            .await
            .is_err()
        {
            panic!(
                "{what} exited but its output stayed open\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.lock().unwrap()),
                String::from_utf8_lossy(&err.lock().unwrap()),
            );
        }
    }
    let stdout = std::mem::take(&mut *out.lock().unwrap());
    let stderr = std::mem::take(&mut *err.lock().unwrap());
    Output {
        status,
        stdout,
        stderr,
    }
}

fn collect(
    mut from: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf).await {
            if n == 0 {
                break;
            }
            into.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}
