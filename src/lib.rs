//! hookrelay: a webhook inspection and replay proxy.
//!
//! Layout, in the order a webhook flows through it:
//!
//! - [`config`]: one typed `Config` from flags, `HOOKRELAY_*` env vars and TOML.
//! - [`server`]: both listeners (ingest, admin), inbound TLS, graceful shutdown.
//! - [`ingest`]: `ANY /in/{slug}[/{rest}]`: limits, lookup, bin / forward / hold, answer.
//! - [`capture`]: an inbound request turned into an [`event::Event`]; no I/O.
//! - [`forwarded`]: the client behind a trusted proxy (`X-Forwarded-For`).
//! - [`provider`]: sender header meanings: topic, provider event id, pings.
//! - [`signature`]: every provider's signature scheme: verify, sign, re-sign.
//! - [`store`]: the only user of RocksDB; one `WriteBatch` per state change.
//! - [`deliver`]: the outbound client: one attempt of an event to a URL.
//! - [`policy`]: pure failure-disable rules (success codes, consecutive failures).
//! - [`queue`]: queue mode's delivery queue, worker and retry schedule.
//! - [`disk`]: disk-space backpressure.
//! - [`memory`]: memory budgets for request bodies (ingest, mirror copies).
//! - [`fds`]: the open-file limit, raised and shared (RocksDB, inbound, outbound).
//! - [`relay`]: the operations shared by ingest, API and CLI: forward, replay,
//!   release, ping, mirror, record outcomes, notify.
//! - [`replay`]: bulk replay jobs (filter, dry run, rate, cancel, resume).
//! - [`admin`]: JSON API, `/metrics`, `/healthz` on the admin listener.
//! - [`metrics`]: Prometheus counters and histograms.
//! - [`cli`]: the `hookrelay` command line (server and client commands).
//! - [`text`]: characters of senders' text that could deceive a reader.
#![forbid(unsafe_code)]

pub mod admin;
pub mod capture;
pub mod cli;
pub mod config;
pub mod deliver;
pub mod disk;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod fds;
pub mod forwarded;
pub mod idle;
pub mod ingest;
pub mod memory;
pub mod metrics;
pub mod policy;
pub mod provider;
pub mod queue;
pub mod relay;
pub mod replay;
pub mod server;
pub mod signature;
pub mod store;
pub mod text;
pub mod time;

pub use config::Config;
pub use server::{Listeners, serve};
