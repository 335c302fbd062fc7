//! Test support: a real hookrelay on ephemeral loopback ports with a
//! temporary RocksDB, scripted upstream receivers, and a small HTTP client.

#![allow(dead_code)]

pub mod child;
pub mod cmd;
pub mod receiver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use receiver::{Receiver, Reply};

use hookrelay::config::Config;
use hookrelay::server::Listeners;

/// What a server thread hands back: how `serve` ended, and the temporary
/// directory it owned (dropped only after the store is closed).
type Ended = (Result<(), String>, Option<tempfile::TempDir>);

/// A hookrelay running in this process, on a thread and runtime of its own,
/// so that dropping it can stop it gracefully without blocking the test.
pub struct TestServer {
    pub ingest: SocketAddr,
    pub admin: SocketAddr,
    pub data: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Ended>>,
}

/// Servers dropped without `stop`: still shutting down, joined at exit.
static STOPPING: std::sync::Mutex<Vec<std::thread::JoinHandle<Ended>>> =
    std::sync::Mutex::new(Vec::new());

unsafe extern "C" {
    fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

/// Runs at process exit, before RocksDB's static objects are destroyed: a
/// store still closing then would abort the process ("pthread lock:
/// Invalid argument") after every test passed.
extern "C" fn join_stopping() {
    let threads = std::mem::take(&mut *STOPPING.lock().unwrap_or_else(|p| p.into_inner()));
    for t in threads {
        let _ = t.join();
    }
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        TestServer::launch(
            Config {
                data,
                ..Config::default()
            },
            Some(dir),
        )
        .await
    }

    pub async fn start_with(config: Config) -> TestServer {
        TestServer::launch(config, None).await
    }

    async fn launch(config: Config, dir: Option<tempfile::TempDir>) -> TestServer {
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        };
        let (ingest, admin) = (bind(), bind());
        let ingest_addr = ingest.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let data = config.data.clone();
        let thread = std::thread::Builder::new()
            .name("test-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                let ended = rt.block_on(async move {
                    let listeners = Listeners {
                        ingest: TcpListener::from_std(ingest).expect("ingest listener"),
                        admin: TcpListener::from_std(admin).expect("admin listener"),
                    };
                    hookrelay::serve(config, listeners, async {
                        let _ = rx.await;
                    })
                    .await
                });
                drop(rt);
                (ended, dir)
            })
            .expect("server thread");
        let s = TestServer {
            ingest: ingest_addr,
            admin: admin_addr,
            data,
            stop: Some(tx),
            thread: Some(thread),
        };
        // The listeners are bound before serve runs, so the first request
        // waits in the accept queue; /healthz answers once the store is open.
        let (status, _, _) = send("GET", &s.admin_url("/healthz"), &[], Bytes::new()).await;
        assert_eq!(status, 200);
        // Registered once a store is open: exit handlers run in reverse,
        // so this one runs before RocksDB's static environment (its thread
        // pools) is torn down, while a closing store can still finish.
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers a plain function with the C library.
        AT_EXIT.call_once(|| unsafe {
            atexit(join_stopping);
        });
        s
    }

    /// Stops gracefully (flushes the store) and returns the data directory's owner.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let thread = self.thread.take()?;
        let (ended, dir) = tokio::task::spawn_blocking(move || thread.join())
            .await
            .expect("join")
            .expect("server thread");
        ended.expect("server stopped cleanly");
        dir
    }

    pub fn ingest_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ingest)
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    pub async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let (status, _, bytes) = send(
            method,
            &self.admin_url(path),
            &[("content-type", "application/json")],
            body,
        )
        .await;
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {:?}", String::from_utf8_lossy(&bytes)))
        };
        (status, v)
    }

    /// `GET` that must succeed.
    pub async fn get(&self, path: &str) -> Value {
        let (status, v) = self.api("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {v}");
        v
    }

    pub async fn create_endpoint(&self, body: Value) -> Value {
        let (status, v) = self.api("POST", "/api/endpoints", Some(body)).await;
        assert_eq!(status, 201, "create endpoint: {v}");
        v
    }

    /// `PATCH {"status": …}`, which must succeed.
    pub async fn set_status(&self, slug: &str, status: &str) {
        let (st, ep) = self
            .api(
                "PATCH",
                &format!("/api/endpoints/{slug}"),
                Some(serde_json::json!({ "status": status })),
            )
            .await;
        assert_eq!(st, 200, "{ep}");
    }

    /// Polls replay job `id` until `done` says so (within 20 s); `what`
    /// names the awaited moment for the failure message.
    pub async fn job_until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let j = self.get(&format!("/api/replay/{id}")).await;
            if done(&j) {
                return j;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "job never {what}: {j}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn post_in(
        &self,
        slug_path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Response {
        let (status, headers, body) = send(
            "POST",
            &self.ingest_url(&format!("/in/{slug_path}")),
            headers,
            body.into(),
        )
        .await;
        Response {
            status,
            headers,
            body,
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn event_id(&self) -> String {
        self.header("x-hookrelay-event")
            .expect("x-hookrelay-event header")
    }
}

/// One HTTP request with a fresh client; returns status, headers, body.
impl Drop for TestServer {
    /// Stops gracefully in the background; the process waits for it at exit.
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            STOPPING.lock().unwrap_or_else(|p| p.into_inner()).push(t);
        }
    }
}

pub async fn send(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, Vec<(String, Vec<u8>)>, Bytes) {
    let client: HyperClient<HttpConnector, Full<Bytes>> =
        HyperClient::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req.body(Full::new(body)).expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(30), client.request(req))
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), v.as_bytes().to_vec()))
        .collect();
    // The head's timeout does not cover the body: a response that stalls
    // half-way fails here rather than hanging the test.
    let body = tokio::time::timeout(Duration::from_secs(60), resp.into_body().collect())
        .await
        .unwrap_or_else(|_| panic!("{method} {url}: the response body did not end within 60 s"))
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

/// Sends raw bytes on a fresh TCP connection and returns all bytes read back
/// until the server closes or `wait` passes.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    out
}

pub fn temp_data() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    (dir, data)
}

/// A relay over a store in `data` with no server around it: for tests that
/// drive the library between steps a server takes together.
pub fn library_relay(
    data: &Path,
    durability: hookrelay::store::Durability,
) -> (
    std::sync::Arc<hookrelay::store::Store>,
    std::sync::Arc<hookrelay::relay::Relay>,
) {
    use std::sync::Arc;
    let store = Arc::new(hookrelay::store::Store::open(data, durability).expect("open store"));
    let client = hookrelay::deliver::Client::new(None, 0, Default::default()).expect("client");
    let relay = hookrelay::relay::Relay::new(Arc::clone(&store), client, 1 << 20).expect("relay");
    (store, Arc::new(relay))
}

pub fn config_at(data: &Path) -> Config {
    Config {
        data: data.to_path_buf(),
        ..Config::default()
    }
}

/// The headers `signature::sign` makes, as text (signature headers are
/// ASCII), for [`pairs`] and `post_in`.
pub fn signed(
    cfg: &hookrelay::signature::SignatureConfig,
    body: &[u8],
    ts: i64,
    msg_id: &str,
) -> Vec<(String, String)> {
    hookrelay::signature::sign(cfg, body, ts, msg_id)
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8(v).expect("signature headers are text")))
        .collect()
}

/// Borrowed `(name, value)` pairs, as `post_in` takes them.
pub fn pairs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

/// The bytes a loopback TCP socket (`local` to `remote`, IPv4) has queued in
/// the kernel: `(tx, rx)` — sent but not acknowledged by the peer, and
/// received but not yet read by its owner — as `/proc/net/tcp` shows them.
/// `None` when no such socket is listed.
pub fn tcp_queues(local: SocketAddr, remote: SocketAddr) -> Option<(u64, u64)> {
    let hex = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => panic!("tcp_queues reads IPv4 sockets only"),
    };
    let (l, r) = (hex(local), hex(remote));
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 4 && f[1] == l && f[2] == r {
            let (tx, rx) = f[4].split_once(':')?;
            Some((
                u64::from_str_radix(tx, 16).ok()?,
                u64::from_str_radix(rx, 16).ok()?,
            ))
        } else {
            None
        }
    })
}

/// The ingest handler of a library-level relay (see [`library_relay`]) on
/// an ephemeral loopback port, HTTP/1: for tests that reach into the store
/// (fault injection) while senders talk to it. Abort the task to stop it.
pub async fn serve_ingest(
    relay: &std::sync::Arc<hookrelay::relay::Relay>,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let relay = std::sync::Arc::clone(relay);
    let server = tokio::spawn(async move {
        loop {
            let (io, remote) = listener.accept().await.unwrap();
            let relay = std::sync::Arc::clone(&relay);
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    hookrelay::ingest::handle(std::sync::Arc::clone(&relay), req, remote, false)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(io), svc)
                    .await;
            });
        }
    });
    (addr, server)
}
