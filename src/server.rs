//! The process: both listeners (ingest, admin), rustls on ingest, connection
//! limits, the retention sweeper, and graceful shutdown (stop accepting,
//! finish in-flight requests, flush RocksDB).
//!
//! Ingest runs thread-per-core: each ingest thread has its own
//! single-threaded runtime accepting from the shared listener, and its own
//! outbound pool, so a request is read, stored, forwarded and answered
//! without waking another thread. (On the shared work-stealing runtime a
//! forward cost a third more CPU, mostly in cross-thread wake-ups.) Admin,
//! the queue worker, replays and retention stay on the main runtime.
//!
//! [`serve`] takes bound listeners and a shutdown future, so tests bind
//! `127.0.0.1:0` and stop the server when they are done.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::admin;
use crate::config::{Config, MAX_HEAD_BYTES, MAX_HEADERS};
use crate::deliver::Client;
use crate::ingest;
use crate::relay::Relay;
use crate::store::Store;

/// How long shutdown waits for in-flight requests before closing anyway.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// A TLS handshake that takes longer than this is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections the kernel queues for a listener while hookrelay is at its
/// connection limit (std's 128 turns a burst of senders into SYN retries
/// of a second and more); the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 1024;
/// Concurrent HTTP/2 streams per connection.
const MAX_H2_STREAMS: u32 = 100;
/// How often retention runs.
const RETENTION_EVERY: Duration = Duration::from_secs(300);

pub struct Listeners {
    pub ingest: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    /// Binds both; the error names the listener and its flag.
    pub async fn bind(config: &Config) -> Result<Listeners, String> {
        let bind = |addr: SocketAddr, what: &'static str| {
            let socket = match addr {
                SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
                SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
            };
            socket
                .and_then(|s| {
                    s.set_reuseaddr(true)?;
                    s.bind(addr)?;
                    s.listen(LISTEN_BACKLOG)
                })
                .map_err(|e| format!("cannot bind the {what} listener to {addr}: {e}"))
        };
        Ok(Listeners {
            ingest: bind(config.listen, "ingest (--listen)")?,
            admin: bind(config.admin, "admin (--admin)")?,
        })
    }
}

/// Runs until `shutdown` completes, then drains and flushes.
pub async fn serve(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), String> {
    // Checked before the store opens and the config's endpoints are
    // written: a bad key or CA file must refuse the start without changing
    // anything.
    let tls = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let shards = ingest_threads()?;
    // Before the store opens: RocksDB sizes its table cache from it.
    let fds = crate::fds::Budget::for_limit(crate::fds::raise());
    tracing::info!(
        open_files = fds.limit,
        ingest_connections = fds.ingest_connections,
        admin_connections = fds.admin_connections,
        outbound_connections = fds.outbound_connections,
        rocksdb_files = fds.rocksdb_files,
        "file descriptors"
    );
    let client = Client::new(
        config.ca_file.as_deref(),
        shards,
        config.target_guard.clone(),
    )?;
    // A start refused from here on leaves no store behind in a directory
    // this run made (the next start with a mended config starts afresh).
    let made = crate::store::create_data_dir(&config.data)
        .map_err(|e| format!("data {}: {e}", config.data.display()))?;
    let mut made = MadeHere(made);
    let store = Arc::new(Store::open(&config.data, config.durability).map_err(|e| {
        let e = e.to_string();
        // Opening replays the log into table files: it needs room.
        let hint = if e.contains("No space left on device") {
            format!(
                " — free some space on that disk (opening needs about {} MiB) and start again: nothing stored is lost",
                crate::disk::MIN_FREE >> 20
            )
        } else {
            String::new()
        };
        format!("data {}: {e}{hint}", config.data.display())
    })?);
    let relay = Arc::new(
        Relay::new(Arc::clone(&store), client, config.max_body).map_err(|e| e.to_string())?,
    );
    relay.set_body_memory(config.body_memory);
    // By its place in the file too (as a type error is): the slug may be
    // the thing that is missing.
    let file = config
        .file
        .as_ref()
        .map(|f| format!(" {}:", f.display()))
        .unwrap_or_default();
    let named = |i: usize, input: &crate::endpoint::EndpointInput, e: crate::error::Error| {
        match &input.slug {
            Some(slug) => format!("config{file} endpoint[{i}] {slug:?}: {e}"),
            None => format!("config{file} endpoint[{i}]: {e}"),
        }
    };
    // All checked before any is written: a refused start changes nothing.
    for (i, input) in config.endpoints.iter().enumerate() {
        relay
            .check_create(input.clone(), true)
            .map_err(|e| named(i, input, e))?;
    }
    let mut created = Vec::new();
    for (i, input) in config.endpoints.clone().into_iter().enumerate() {
        let (ep, new) = relay
            .upsert(input.clone(), true)
            .await
            .map_err(|e| named(i, &input, e))?;
        if new {
            created.push(ep);
        }
    }

    let ingest_addr = listeners.ingest.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = listeners.admin.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let _ = relay.ingest_base.set(format!("{scheme}://{ingest_addr}"));
    let _ = relay.trusted_proxies.set(config.trusted_proxies.clone());
    if config.trusted_proxies.trusts_everyone() {
        tracing::warn!(
            "--trusted-proxy includes every address: any sender can choose the client address hookrelay records and the one it charges token guesses to"
        );
    }
    // `ping_on_activate` as for an endpoint created through the API.
    for ep in &created {
        relay.ping_if_activated(None, ep);
    }
    println!(
        "hookrelay ingest:    {scheme}://{}/in/{{slug}}",
        reachable(ingest_addr)
    );
    println!("hookrelay dashboard: http://{}/", reachable(admin_addr));
    tracing::info!(
        %ingest_addr,
        %admin_addr,
        durability = ?config.durability,
        admin_token = config.admin_token.is_some(),
        deny_private_targets = config.target_guard.deny_private,
        allow_target_net = ?config.target_guard.allow,
        "listening"
    );

    let (stop_tx, stop_rx) = watch::channel(false);
    // Admin bodies are small documents: three header timeouts (30 s by
    // default) is generous for them.
    let admin_app = admin::router(
        Arc::clone(&relay),
        config.admin_token.clone(),
        config.header_timeout.saturating_mul(3),
        admin_addr.port(),
    );
    let trusted = config.trusted_proxies.clone();
    let admin_loop = accept_loop(
        listeners.admin,
        None,
        stop_rx.clone(),
        &config,
        fds.admin_connections,
        move |remote, _| {
            // The client's address, for the wrong-guess throttle.
            let trusted = trusted.clone();
            let app = tower::ServiceExt::map_request(
                admin_app.clone(),
                move |mut req: http::Request<_>| {
                    let client = trusted.client(remote.ip(), req.headers());
                    req.extensions_mut().insert(admin::ClientAddr(client));
                    req
                },
            );
            hyper_util::service::TowerToHyperService::new(app)
        },
    );
    let _ = relay.disk.set(crate::disk::DiskGuard::new(
        config.data.clone(),
        config.max_disk_usage,
    ));
    let disk_relay = Arc::clone(&relay);
    let disk_stop = stop_rx.clone();
    let disk = tokio::spawn(async move {
        if let Some(d) = disk_relay.disk.get() {
            d.watch(disk_stop).await;
        }
    });
    relay.resume_releases().await;
    crate::replay::resume(&relay)
        .await
        .map_err(|e| format!("resuming replay jobs: {e}"))?;
    let worker = tokio::spawn(crate::queue::run_worker(
        Arc::clone(&relay),
        stop_rx.clone(),
    ));
    let retention = tokio::spawn(retention_task(
        Arc::clone(&store),
        config.clone(),
        stop_rx.clone(),
    ));

    // Last, so that nothing is accepted before the queue worker, the disk
    // guard and resumed jobs are in place.
    let (release_tx, release_rx) = watch::channel(false);
    let (ingest_loop, ingest_threads) = ingest_shards(
        listeners.ingest,
        shards,
        tls,
        (stop_rx.clone(), release_rx),
        &config,
        fds.ingest_connections,
        &relay,
    )?;
    made.keep();
    let loops = async { tokio::join!(ingest_loop, admin_loop) };
    tokio::pin!(loops);
    tokio::select! {
        _ = shutdown => {}
        _ = &mut loops => {}
    }
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    let drain_until = tokio::time::Instant::now() + DRAIN_TIMEOUT;
    let _ = stop_tx.send(true);
    relay.closing.cancel();
    loops.await;
    // Forwards whose senders hung up are not in any connection's drain;
    // they share its deadline, so shutdown takes DRAIN_TIMEOUT at most.
    relay.deliveries.close();
    if tokio::time::timeout_at(drain_until, relay.deliveries.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "forward deliveries still in flight after {DRAIN_TIMEOUT:?}; their events stay received"
        );
    }
    let _ = worker.await;
    relay.jobs.shutdown().await;
    // The queue worker's last deliveries ran on the ingest threads: only
    // now may their runtimes go.
    let _ = release_tx.send(true);
    let _ = tokio::task::spawn_blocking(move || {
        for t in ingest_threads {
            let _ = t.join();
        }
    })
    .await;
    let _ = disk.await;
    store.stop_sweeps();
    retention.abort();
    let _ = retention.await;
    store
        .flush()
        .map_err(|e| format!("flush at shutdown: {e}"))?;
    drop(relay);
    tracing::info!("stopped");
    Ok(())
}

/// The data directory this run made (with the parents it made for it),
/// removed when the start is refused (dropped before [`MadeHere::keep`]).
/// Declared before the store, so the store is closed first.
struct MadeHere(Option<std::path::PathBuf>);

impl MadeHere {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for MadeHere {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {
                    tracing::info!(data = %dir.display(), "start refused: removed the data directory it had made")
                }
                Err(e) => {
                    tracing::warn!(data = %dir.display(), error = %e, "start refused: could not remove the data directory it had made")
                }
            }
        }
    }
}

/// Ingest threads: one per core unless `HOOKRELAY_INGEST_THREADS` says.
fn ingest_threads() -> Result<usize, String> {
    match std::env::var("HOOKRELAY_INGEST_THREADS") {
        Err(_) => Ok(std::thread::available_parallelism().map_or(2, |n| n.get())),
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_INGEST_THREADS).contains(n))
            .ok_or_else(|| {
                format!(
                    "HOOKRELAY_INGEST_THREADS: {v:?} is not a number of threads (1 to {MAX_INGEST_THREADS})"
                )
            }),
    }
}

/// More ingest threads than this is a typo, not a machine.
const MAX_INGEST_THREADS: usize = 1024;

/// Starts `shards` ingest threads on `listener` and hands their runtimes to
/// the relay (queued deliveries run there too). The future completes when
/// every thread has stopped accepting and drained its connections; the
/// threads then keep their runtimes until `release` turns true.
fn ingest_shards(
    listener: TcpListener,
    shards: usize,
    tls: Option<TlsAcceptor>,
    (stop, release): (watch::Receiver<bool>, watch::Receiver<bool>),
    config: &Config,
    connections: usize,
    relay: &Arc<Relay>,
) -> Result<
    (
        impl Future<Output = ()> + use<>,
        Vec<std::thread::JoinHandle<()>>,
    ),
    String,
> {
    let listener = listener.into_std().map_err(|e| e.to_string())?;
    let mut drained = Vec::new();
    let mut threads = Vec::new();
    let mut handles = Vec::new();
    // Each thread holds its share: a thread that has used up its own stops
    // accepting, and the others take what the kernel queues.
    let slots = (connections / shards).max(1);
    for i in 0..shards {
        let listener = listener.try_clone().map_err(|e| e.to_string())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start an ingest runtime: {e}"))?;
        handles.push(rt.handle().clone());
        let (tls, stop, mut release, config) =
            (tls.clone(), stop.clone(), release.clone(), config.clone());
        let relay = Arc::clone(relay);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        drained.push(rx);
        let thread = std::thread::Builder::new()
            .name(format!("hookrelay-ingest-{i}"))
            .spawn(move || {
                crate::deliver::set_shard(i);
                rt.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => {
                            accept_loop(listener, tls, stop, &config, slots, move |remote, tls| {
                                let relay = Arc::clone(&relay);
                                service_fn(move |req| {
                                    ingest::handle(Arc::clone(&relay), req, remote, tls)
                                })
                            })
                            .await
                        }
                        Err(e) => tracing::error!(error = %e, "ingest listener"),
                    }
                    let _ = tx.send(());
                    // Errs when serve returns early: nothing left to wait for.
                    let _ = release.wait_for(|r| *r).await;
                });
                // What is still spawned here is cancelled with the runtime
                // (mirror copies, notify_url calls); every request is done.
            })
            .map_err(|e| format!("cannot start an ingest thread: {e}"))?;
        threads.push(thread);
    }
    let _ = relay.shards.set(handles);
    let drained = async move {
        for rx in drained {
            let _ = rx.await;
        }
    };
    Ok((drained, threads))
}

/// Accepts and serves connections until `stop`, holding at most `slots`
/// open at once.
async fn accept_loop<S, F, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
    config: &Config,
    slots: usize,
    make_service: F,
) where
    F: Fn(SocketAddr, bool) -> S,
    S: hyper::service::Service<http::Request<hyper::body::Incoming>, Response = http::Response<B>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // `idle` closes a connection without a request in flight, a slow
        // head included; hyper's own header timer would also cut a response
        // still being written to a slow reader (it starts waiting for the
        // next head once the body is queued, not once it is sent).
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        // Each stream may buffer a body up to --max-body: bound them.
        .max_concurrent_streams(MAX_H2_STREAMS);
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    loop {
        // At the limit, stop accepting until a connection closes: the
        // kernel's backlog then pushes back on new senders.
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p.expect("never closed"),
            _ = stop.changed() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let activity = crate::idle::Activity::new(config.send_stall);
        let service =
            crate::idle::Tracked::new(make_service(remote, tls.is_some()), Arc::clone(&activity));
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let idle = config.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            // Dropping the connection closes it: see `idle`.
            let closed_idle = async {
                activity.idle(idle).await;
                tracing::debug!(%remote, "closed a connection idle for {idle:?}");
                Ok(())
            };
            use tokio_util::either::Either;
            let stream = match tls {
                None => Either::Left(stream),
                Some(acceptor) => {
                    let handshake = async {
                        if plain_http(&stream).await {
                            refuse_plain_http(stream).await;
                            return None;
                        }
                        Some(acceptor.accept(stream).await)
                    };
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(None) => {
                            tracing::debug!(%remote, "plain HTTP to the TLS listener; answered 400");
                            return;
                        }
                        Ok(Some(Ok(s))) => Either::Right(s),
                        Ok(Some(Err(e))) => {
                            tracing::debug!(%remote, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    }
                }
            };
            let io = TokioIo::new(crate::idle::Metered::new(stream, activity.clone()));
            let result = tokio::select! {
                r = watcher.watch(builder.serve_connection(io, service)) => r,
                r = closed_idle => r,
            };
            if let Err(e) = result {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}");
    }
}

/// Whether a connection to the TLS listener opened with plain HTTP: a TLS
/// client's first byte is a handshake record (22), a request line's is a
/// letter of its method (or the empty line some clients send before it).
async fn plain_http(stream: &tokio::net::TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(stream.peek(&mut first).await, Ok(1) if first[0].is_ascii_alphabetic() || matches!(first[0], b'\r' | b'\n'))
}

/// Answers a plain-HTTP request on the TLS listener with a `400` that says
/// so (a TLS alert would reach the sender as a garbled answer), then
/// closes: what the sender sent is read first, or closing with it unread
/// would reset the connection before the answer is read.
async fn refuse_plain_http(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = "This is hookrelay's ingest listener, which serves HTTPS only: send the request to https:// on this port.\n";
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut sink = [0u8; 16 * 1024];
    let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut sink)).await;
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    // Whatever else comes is drained for a moment, so the answer is not
    // overtaken by a reset; bounded in bytes and time.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut left = 256 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no PEM CERTIFICATE block found",
            cert.display()
        ));
    }
    warn_if_out_of_date(cert, &certs[0]);
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "--tls-key {}: {e} (expected an unencrypted PEM private key: PKCS#8, PKCS#1 or SEC1)",
            key.display()
        )
    })?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| {
        format!(
            "--tls-cert {} with --tls-key {}: {e}",
            cert.display(),
            key_path.display()
        )
    })?;
    // HTTP/1.0 too: rustls refuses a client whose only offer is not listed
    // (curl --http1.0 failed the handshake), and hyper serves it.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}

/// Warns of a certificate outside its validity period: rustls serves it,
/// and then every client refuses the handshake, which senders see as a TLS
/// error and hookrelay's log would not mention. Not a refusal: a renewal
/// may be on its way, and a bin for a test client may not care.
fn warn_if_out_of_date(path: &std::path::Path, cert: &rustls_pki_types::CertificateDer<'_>) {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return;
    };
    let validity = parsed.validity();
    let now = x509_parser::time::ASN1Time::now();
    if validity.not_after < now {
        tracing::warn!(
            tls_cert = %path.display(),
            not_after = %validity.not_after,
            "the certificate has expired: clients will refuse the TLS handshake"
        );
    } else if validity.not_before > now {
        tracing::warn!(
            tls_cert = %path.display(),
            not_before = %validity.not_before,
            "the certificate is not valid yet: clients will refuse the TLS handshake"
        );
    }
}

/// One retention pass; failures are logged, never fatal.
async fn prune(store: &Arc<Store>, config: &Config) {
    if config.retain_days.is_none() && config.retain_per_endpoint.is_none() {
        return;
    }
    let max_age = config
        .retain_days
        .map(|d| d.saturating_mul(24 * 3600 * 1000));
    let per = config.retain_per_endpoint;
    match store
        .run(move |s| {
            let sweep = {
                let _pass = s.retention_pass();
                let pinned = crate::replay::pending_ids(s)?;
                s.prune(crate::time::now_ms(), max_age, per, &pinned)?
            };
            s.compact_swept(&sweep);
            Ok(sweep.deleted())
        })
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "retention pruned events"),
        Err(e) => tracing::warn!(error = %e, "retention failed"),
    }
}

/// Prunes at start, then every [`RETENTION_EVERY`]. The first sweep runs
/// beside the listeners: on a large store it takes seconds, and health
/// checks and senders must not wait for it.
async fn retention_task(store: Arc<Store>, config: Config, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = prune(&store, &config) => {}
            _ = stop.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Where others reach a listener: one bound to every interface (`0.0.0.0`,
/// `[::]`) by this machine's host name, which a sender can use where
/// `0.0.0.0` means nothing.
fn reachable(addr: SocketAddr) -> String {
    match machine_host().filter(|_| addr.ip().is_unspecified()) {
        Some(host) => format!("{host}:{}", addr.port()),
        None => addr.to_string(),
    }
}

/// This machine's host name, when it is one a URL can carry.
pub(crate) fn machine_host() -> Option<String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = host.trim();
    (!host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'))
    .then(|| host.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_on_every_interface_is_shown_by_host_name() {
        assert_eq!(
            reachable("127.0.0.1:8080".parse().unwrap()),
            "127.0.0.1:8080"
        );
        assert_eq!(reachable("[::1]:8080".parse().unwrap()), "[::1]:8080");
        for any in ["0.0.0.0:8080", "[::]:8080"] {
            let shown = reachable(any.parse().unwrap());
            assert!(shown.ends_with(":8080"), "{shown}");
            assert!(
                !shown.starts_with("0.0.0.0") && !shown.starts_with("[::]"),
                "{shown}"
            );
        }
    }
}
