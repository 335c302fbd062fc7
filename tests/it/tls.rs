//! TLS both ways: rustls on the ingest listener (HTTP/1.1 and HTTP/2 by
//! ALPN), and outbound HTTPS trusting a private CA given by `ca_file`.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::{Receiver, Reply, TestServer, config_at, temp_data};

struct TestCert {
    cert_pem: String,
    key_pem: String,
}

fn localhost_cert() -> TestCert {
    let ck =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    TestCert {
        cert_pem: ck.cert.pem(),
        key_pem: ck.signing_key.serialize_pem(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    rustls::crypto::ring::default_provider().into()
}

/// An HTTPS receiver that answers 200 with the HTTP version it saw.
async fn tls_receiver(cert: &TestCert) -> (u16, tokio::task::JoinHandle<()>) {
    let certs = vec![CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let svc = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let mut resp = http::Response::new(Full::new(body));
                    resp.headers_mut()
                        .insert("x-version", version.parse().unwrap());
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, task)
}

#[tokio::test]
async fn outbound_https_trusts_a_private_ca_from_ca_file_and_speaks_h2() {
    let cert = localhost_cert();
    let (port, _task) = tls_receiver(&cert).await;
    let (dir, data) = temp_data();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert.cert_pem).unwrap();

    let mut cfg = config_at(&data);
    cfg.ca_file = Some(ca);
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "sec", "target": format!("https://localhost:{port}/x") }))
        .await;
    let r = s.post_in("sec", &[], "over tls").await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"over tls");
    assert_eq!(
        r.header("x-version").as_deref(),
        Some("HTTP/2.0"),
        "ALPN picked HTTP/2"
    );
    s.stop().await;

    // Without the CA the certificate is not trusted: a failed attempt of kind tls.
    let (_dir2, data2) = temp_data();
    let s = TestServer::start_with(config_at(&data2)).await;
    s.create_endpoint(json!({ "slug": "sec", "target": format!("https://localhost:{port}/x") }))
        .await;
    let r = s.post_in("sec", &[], "over tls").await;
    assert_eq!(r.status, 502);
    let ev = s.get(&format!("/api/events/{}", r.event_id())).await;
    assert_eq!(ev["attempts"][0]["error"], "tls", "{}", ev["attempts"][0]);
    drop(dir);
}

#[tokio::test]
async fn the_ingest_listener_serves_tls_with_http1_and_http2() {
    let cert = localhost_cert();
    let (dir, data) = temp_data();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let mut up = Receiver::start(vec![Reply::status(200)]).await;
    let mut cfg = config_at(&data);
    cfg.tls = Some((cert_path, key_path));
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "in", "target": up.url("/") }))
        .await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap())
        .unwrap();
    for h2 in [false, true] {
        let tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        let b = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_only();
        let connector = if h2 {
            b.enable_http2().build()
        } else {
            b.enable_http1().build()
        };
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .http2_only(h2)
                .build(connector);
        let url = format!("https://localhost:{}/in/in", s.ingest.port());
        let req = http::Request::post(url)
            .body(Full::new(Bytes::from_static(b"hello")))
            .unwrap();
        let resp = client.request(req).await.expect("TLS request");
        assert_eq!(resp.status(), 200);
        let want = if h2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        assert_eq!(resp.version(), want);
        let got = up.next().await;
        assert_eq!(got.header("x-forwarded-proto").as_deref(), Some("https"));
        assert_eq!(&got.body[..], b"hello");
    }
    // A client that offers only HTTP/1.0 in ALPN (curl --http1.0) is served.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots.clone())
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"http/1.0".to_vec()];
        let tcp = tokio::net::TcpStream::connect(s.ingest).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let mut c = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls))
            .connect(name, tcp)
            .await
            .expect("a TLS handshake offering http/1.0");
        c.write_all(b"POST /in/in HTTP/1.0\r\nhost: localhost\r\ncontent-length: 2\r\n\r\nhi")
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut out)).await;
        let head = String::from_utf8_lossy(&out);
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        assert_eq!(&up.next().await.body[..], b"hi");
    }
    // A replay of an event received over TLS still says https.
    let list = s.get("/api/events?endpoint=in&limit=1").await;
    let id = list["events"][0]["id"].as_str().unwrap().to_string();
    let (st, v) = s
        .api(
            "POST",
            &format!("/api/events/{id}/replay"),
            Some(json!({ "target": up.url("/again") })),
        )
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        up.next().await.header("x-forwarded-proto").as_deref(),
        Some("https")
    );
}

#[tokio::test]
async fn a_bad_key_refuses_the_start_before_anything_is_written() {
    let (dir, data) = temp_data();
    let cert = localhost_cert();
    let cert_path = dir.path().join("cert.pem");
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    let key_path = dir.path().join("key.pem");
    std::fs::write(&key_path, "not a key").unwrap();
    let file = dir.path().join("hookrelay.toml");
    std::fs::write(&file, "[[endpoint]]\nslug = \"shop\"\n").unwrap();
    let mut hr = crate::support::cmd::hookrelay();
    hr.args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .arg("--config")
        .arg(&file)
        .arg("--data")
        .arg(&data)
        .arg("--tls-cert")
        .arg(cert_path)
        .arg("--tls-key")
        .arg(key_path);
    let out = crate::support::cmd::output(hr).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-key"), "{err}");
    // Started again without TLS: the refused start created nothing.
    let s = TestServer::start_with(config_at(&data)).await;
    let (status, _) = s.api("GET", "/api/endpoints/shop", None).await;
    assert_eq!(status, 404, "the refused start wrote the config's endpoint");
    drop(dir);
}

/// Certificate files that hold nothing usable are named at start, not met
/// as handshake errors later; the certificate and key may come from
/// different sources (a flag and the config file).
#[tokio::test]
async fn unusable_certificate_files_are_named_at_start() {
    let (dir, data) = temp_data();
    let cert = localhost_cert();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let run = |extra: Vec<std::ffi::OsString>| {
        let mut hr = crate::support::cmd::hookrelay();
        hr.args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .args(extra);
        crate::support::cmd::output(hr)
    };
    let cases = [
        (
            vec![
                "--tls-cert".into(),
                garbage.clone().into_os_string(),
                "--tls-key".into(),
                key_path.clone().into_os_string(),
            ],
            // The flag, as the other flags' errors name theirs (hunt #21).
            "--tls-cert",
        ),
        (
            vec!["--ca-file".into(), garbage.clone().into_os_string()],
            "--ca-file",
        ),
    ];
    for (extra, named) in cases {
        let out = run(extra).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{named}: started");
        assert!(
            err.contains(named) && err.contains("no PEM CERTIFICATE"),
            "{err}"
        );
    }

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: hookrelay::config::ServeArgs,
    }
    let file = dir.path().join("hookrelay.toml");
    std::fs::write(
        &file,
        format!("[server]\ntls_key = {:?}\n", key_path.display().to_string()),
    )
    .unwrap();
    let parsed = <Serve as clap::Parser>::try_parse_from([
        "serve".into(),
        "--tls-cert".into(),
        cert_path.clone().into_os_string(),
        "--config".into(),
        file.into_os_string(),
    ] as [std::ffi::OsString; 5])
    .expect("--tls-cert alone on the command line");
    let cfg = hookrelay::Config::resolve(parsed.args).unwrap();
    assert_eq!(cfg.tls, Some((cert_path, key_path)));
}

/// Plain HTTP sent to the TLS listener gets a `400` that says to use
/// https:// (not a TLS alert, which a client shows as garbage), and TLS
/// keeps working beside it.
#[tokio::test]
async fn plain_http_to_the_tls_listener_is_told_to_use_https() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cert = localhost_cert();
    let (dir, data) = temp_data();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert.cert_pem).unwrap();
    std::fs::write(&key_path, &cert.key_pem).unwrap();
    let mut cfg = config_at(&data);
    cfg.tls = Some((cert_path, key_path));
    let s = TestServer::start_with(cfg).await;
    s.create_endpoint(json!({ "slug": "bin" })).await;

    for request in [
        &b"POST /in/bin HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\nhi"[..],
        b"\r\npost /in/bin HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\nhi",
    ] {
        let mut tcp = tokio::net::TcpStream::connect(s.ingest).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(crate::support::cmd::DEADLINE, tcp.read_to_end(&mut out))
            .await
            .expect("the connection is closed after the answer")
            .expect("the answer is read, not reset");
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
        assert!(text.contains("https://"), "{text}");
    }
    let list = s.get("/api/events?endpoint=bin").await;
    assert_eq!(list["events"].as_array().unwrap().len(), 0, "{list}");

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap())
        .unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .build();
    let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let req = http::Request::post(format!("https://localhost:{}/in/bin", s.ingest.port()))
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    assert_eq!(client.request(req).await.expect("TLS").status(), 200);
}

/// A key that is not the certificate's names both files; an expired
/// certificate starts, with a warning that names it (every client would
/// refuse the handshake, and senders alone would see why).
#[tokio::test]
async fn certificate_problems_name_their_files() {
    use tokio::io::AsyncBufReadExt;
    let (dir, data) = temp_data();
    let (a, b) = (localhost_cert(), localhost_cert());
    let (cert_path, other_key) = (dir.path().join("a.pem"), dir.path().join("b-key.pem"));
    std::fs::write(&cert_path, &a.cert_pem).unwrap();
    std::fs::write(&other_key, &b.key_pem).unwrap();
    let serve = |cert: &std::path::Path, key: &std::path::Path| {
        let mut hr = crate::support::cmd::hookrelay();
        hr.args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
            .arg("--data")
            .arg(&data)
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key)
            .env("RUST_LOG", "info");
        hr
    };
    let out = crate::support::cmd::output(serve(&cert_path, &other_key)).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with another certificate's key"
    );
    assert!(
        err.contains(&cert_path.display().to_string())
            && err.contains(&other_key.display().to_string()),
        "{err}"
    );

    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let expired = params.self_signed(&key).unwrap();
    let (old_cert, old_key) = (dir.path().join("old.pem"), dir.path().join("old-key.pem"));
    std::fs::write(&old_cert, expired.pem()).unwrap();
    std::fs::write(&old_key, key.serialize_pem()).unwrap();
    let mut cmd = tokio::process::Command::from(serve(&old_cert, &old_key));
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    // Read up to the `listening` line: the warning comes before it.
    let log = tokio::time::timeout(crate::support::cmd::DEADLINE, async {
        let mut log = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening") {
                break;
            }
        }
        log
    })
    .await
    .expect("the server started");
    let warning = log.lines().find(|l| l.contains("expired"));
    assert!(
        warning.is_some_and(|l| l.contains(&old_cert.display().to_string()) && l.contains("2021")),
        "{log}"
    );
    let _ = child.kill().await;
    drop(dir);
}
