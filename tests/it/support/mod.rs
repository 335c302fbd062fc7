//! Test support: a real hookrelay on ephemeral loopback ports with a
//! temporary RocksDB, scripted upstream receivers, and a small HTTP client.

#![allow(dead_code)]

pub mod child;
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

/// A hookrelay running in this process.
pub struct TestServer {
    pub ingest: SocketAddr,
    pub admin: SocketAddr,
    pub data: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut s = TestServer::start_with(Config {
            data,
            ..Config::default()
        })
        .await;
        s._dir = Some(dir);
        s
    }

    pub async fn start_with(config: Config) -> TestServer {
        let ingest = TcpListener::bind("127.0.0.1:0").await.expect("bind ingest");
        let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let ingest_addr = ingest.local_addr().unwrap();
        let admin_addr = admin.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let data = config.data.clone();
        let task = tokio::spawn(hookrelay::serve(
            config,
            Listeners { ingest, admin },
            async {
                let _ = rx.await;
            },
        ));
        let s = TestServer {
            ingest: ingest_addr,
            admin: admin_addr,
            data,
            stop: Some(tx),
            task: Some(task),
            _dir: None,
        };
        // The listeners are bound before serve runs, so the first request
        // waits in the accept queue; /healthz answers once the store is open.
        let (status, _, _) = send("GET", &s.admin_url("/healthz"), &[], Bytes::new()).await;
        assert_eq!(status, 200);
        s
    }

    /// Stops gracefully (flushes the store) and returns the data directory's owner.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        self._dir.take()
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

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
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
    let body = resp.into_body().collect().await.expect("body").to_bytes();
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

pub fn config_at(data: &Path) -> Config {
    Config {
        data: data.to_path_buf(),
        ..Config::default()
    }
}
