//! Prometheus metrics: named series, atomics on the hot path, text at scrape.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::event::ErrorKind;

/// Upper bounds of the attempt-latency histogram, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Upper bounds of the WAL-flush histogram, in seconds: a flush is a
/// `write(2)` (tens of µs) or, with `sync`, an `fdatasync` (hundreds).
pub const WAL_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// A latency histogram. Each observation bumps one bucket (the smallest
/// that holds it); the cumulative buckets Prometheus wants are summed at
/// scrape time, so observations from several threads do not bounce a dozen
/// shared counters.
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|le| secs <= *le) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
        self.count.fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (le, n) in self.bounds.iter().zip(&self.buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

pub struct Metrics {
    pub events_received: AtomicU64,
    pub events_held: AtomicU64,
    pub events_rejected: AtomicU64,
    pub store_errors: AtomicU64,
    /// Senders answered `503` by backpressure, nothing stored.
    pub refused_queue_depth: AtomicU64,
    pub refused_disk: AtomicU64,
    pub refused_memory: AtomicU64,
    pub endpoints_disabled: AtomicU64,
    pub retries: AtomicU64,
    /// Delivery attempts the outbound guard did not let connect.
    pub outbound_refused: AtomicU64,
    attempts_success: AtomicU64,
    attempts_failure_status: AtomicU64,
    attempts_connect: AtomicU64,
    attempts_tls: AtomicU64,
    attempts_timeout: AtomicU64,
    attempts_blocked: AtomicU64,
    attempts_other: AtomicU64,
    latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            events_received: Default::default(),
            events_held: Default::default(),
            events_rejected: Default::default(),
            store_errors: Default::default(),
            refused_queue_depth: Default::default(),
            refused_disk: Default::default(),
            refused_memory: Default::default(),
            endpoints_disabled: Default::default(),
            retries: Default::default(),
            outbound_refused: Default::default(),
            attempts_success: Default::default(),
            attempts_failure_status: Default::default(),
            attempts_connect: Default::default(),
            attempts_tls: Default::default(),
            attempts_timeout: Default::default(),
            attempts_blocked: Default::default(),
            attempts_other: Default::default(),
            latency: Histogram::new(&BUCKETS),
        }
    }
}

/// Values read at scrape time from elsewhere (registry, store).
/// One endpoint's figures for `/metrics`.
pub struct EndpointStats {
    pub slug: String,
    pub status: &'static str,
    pub consecutive_failures: u32,
    pub counts: crate::endpoint::Counts,
}

pub struct Snapshot<'a> {
    pub endpoints: Vec<EndpointStats>,
    pub store_bytes: u64,
    pub queue_depth: usize,
    pub queue_oldest_age_s: f64,
    /// Store writes and WAL flushes so far (group commit: writes per flush).
    pub store_writes: u64,
    pub wal_flushes: u64,
    pub wal_flush: Option<&'a Histogram>,
    /// Percent of the data disk in use, as the disk guard last saw it.
    pub disk_used_pct: Option<f64>,
    /// Request-body bytes ingest holds in memory now.
    pub body_bytes: usize,
    /// Whether the store can write now.
    pub store_writable: bool,
}

impl Metrics {
    pub fn attempt(&self, success: bool, error: Option<ErrorKind>, latency: Duration) {
        let c = match (success, error) {
            (true, _) => &self.attempts_success,
            (false, None) => &self.attempts_failure_status,
            (false, Some(ErrorKind::Connect)) => &self.attempts_connect,
            (false, Some(ErrorKind::Tls)) => &self.attempts_tls,
            (false, Some(ErrorKind::Timeout)) => &self.attempts_timeout,
            (false, Some(ErrorKind::Blocked)) => &self.attempts_blocked,
            (false, Some(_)) => &self.attempts_other,
        };
        c.fetch_add(1, Relaxed);
        self.latency.observe(latency);
    }

    pub fn render(&self, snap: &Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "hookrelay_events_received_total",
            "Events stored by ingest.",
            self.events_received.load(Relaxed),
        );
        counter(
            &mut out,
            "hookrelay_events_held_total",
            "Events held because their endpoint was paused or disabled.",
            self.events_held.load(Relaxed),
        );
        counter(
            &mut out,
            "hookrelay_events_rejected_total",
            "Events rejected by an enforced signature.",
            self.events_rejected.load(Relaxed),
        );
        counter(
            &mut out,
            "hookrelay_store_errors_total",
            "Writes the store refused (the sender got 503).",
            self.store_errors.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_ingest_refused_total Senders answered 503 by backpressure (nothing stored), by reason.\n# TYPE hookrelay_ingest_refused_total counter"
        );
        for (reason, c) in [
            ("queue_depth", &self.refused_queue_depth),
            ("disk", &self.refused_disk),
            ("memory", &self.refused_memory),
        ] {
            let _ = writeln!(
                out,
                "hookrelay_ingest_refused_total{{reason=\"{reason}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP hookrelay_ingest_body_bytes Request-body bytes in memory now: being received, stored, forwarded, mirrored or delivered from the queue (ingest answers 503 past its limit).\n# TYPE hookrelay_ingest_body_bytes gauge\nhookrelay_ingest_body_bytes {}",
            snap.body_bytes
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_store_writable 1 while the store can write, 0 while it cannot (a full disk, an I/O error): ingest answers 503 then, and /healthz says why.\n# TYPE hookrelay_store_writable gauge\nhookrelay_store_writable {}",
            u8::from(snap.store_writable)
        );
        if let Some(pct) = snap.disk_used_pct {
            let _ = writeln!(
                out,
                "# HELP hookrelay_disk_used_percent Data disk in use (ingest answers 503 past --max-disk-usage).\n# TYPE hookrelay_disk_used_percent gauge\nhookrelay_disk_used_percent {pct}"
            );
        }
        counter(
            &mut out,
            "hookrelay_endpoints_disabled_total",
            "Endpoints disabled by the failure policy.",
            self.endpoints_disabled.load(Relaxed),
        );
        counter(
            &mut out,
            "hookrelay_retries_total",
            "Queue-mode retries sent.",
            self.retries.load(Relaxed),
        );
        counter(
            &mut out,
            "hookrelay_outbound_refused_total",
            "Delivery attempts refused by the outbound (SSRF) guard.",
            self.outbound_refused.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_queue_depth Events waiting for delivery (queue mode).\n# TYPE hookrelay_queue_depth gauge\nhookrelay_queue_depth {}",
            snap.queue_depth
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_queue_oldest_age_seconds Age of the oldest pending event.\n# TYPE hookrelay_queue_oldest_age_seconds gauge\nhookrelay_queue_oldest_age_seconds {}",
            snap.queue_oldest_age_s
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_attempts_total Delivery attempts by outcome.\n# TYPE hookrelay_attempts_total counter"
        );
        for (outcome, c) in [
            ("success", &self.attempts_success),
            ("failure_status", &self.attempts_failure_status),
            ("connect", &self.attempts_connect),
            ("tls", &self.attempts_tls),
            ("timeout", &self.attempts_timeout),
            ("blocked", &self.attempts_blocked),
            ("other", &self.attempts_other),
        ] {
            let _ = writeln!(
                out,
                "hookrelay_attempts_total{{outcome=\"{outcome}\"}} {}",
                c.load(Relaxed)
            );
        }
        self.latency.render(
            &mut out,
            "hookrelay_attempt_duration_seconds",
            "Time from sending to the complete answer.",
        );
        if let Some(h) = snap.wal_flush {
            h.render(
                &mut out,
                "hookrelay_wal_flush_seconds",
                "Time of one write-ahead log flush (write, plus fdatasync with --durability sync); acknowledgements wait for one.",
            );
        }
        let _ = writeln!(
            out,
            "# HELP hookrelay_endpoint_status 1 for the endpoint's current status.\n# TYPE hookrelay_endpoint_status gauge"
        );
        for e in &snap.endpoints {
            for s in ["active", "paused", "disabled"] {
                let _ = writeln!(
                    out,
                    "hookrelay_endpoint_status{{endpoint=\"{}\",status=\"{s}\"}} {}",
                    e.slug,
                    u8::from(e.status == s)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hookrelay_endpoint_consecutive_failures Failed deliveries in a row (disabled past failure_threshold).\n# TYPE hookrelay_endpoint_consecutive_failures gauge"
        );
        for e in &snap.endpoints {
            let _ = writeln!(
                out,
                "hookrelay_endpoint_consecutive_failures{{endpoint=\"{}\"}} {}",
                e.slug, e.consecutive_failures
            );
        }
        // All of them apart: `received` is a state of its own (a forward
        // or queued event not settled yet), and a label saying it counted
        // every event read as that state.
        let _ = writeln!(
            out,
            "# HELP hookrelay_endpoint_events_stored Events stored per endpoint, whatever their state; retention removes them.\n# TYPE hookrelay_endpoint_events_stored gauge"
        );
        for e in &snap.endpoints {
            let _ = writeln!(
                out,
                "hookrelay_endpoint_events_stored{{endpoint=\"{}\"}} {}",
                e.slug, e.counts.received
            );
        }
        let _ = writeln!(
            out,
            "# HELP hookrelay_endpoint_events Events stored per endpoint in the states delivered, failed and held.\n# TYPE hookrelay_endpoint_events gauge"
        );
        for e in &snap.endpoints {
            let c = &e.counts;
            for (state, n) in [
                ("delivered", c.delivered),
                ("failed", c.failed),
                ("held", c.held),
            ] {
                let _ = writeln!(
                    out,
                    "hookrelay_endpoint_events{{endpoint=\"{}\",state=\"{state}\"}} {n}",
                    e.slug
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP hookrelay_store_bytes Bytes in the store (SST files and memtables).\n# TYPE hookrelay_store_bytes gauge\nhookrelay_store_bytes {}",
            snap.store_bytes
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_store_writes_total Write batches made to the store.\n# TYPE hookrelay_store_writes_total counter\nhookrelay_store_writes_total {}",
            snap.store_writes
        );
        let _ = writeln!(
            out,
            "# HELP hookrelay_wal_flushes_total Write-ahead log flushes (each one write, plus one fdatasync with --durability sync); writes per flush is the group size.\n# TYPE hookrelay_wal_flushes_total counter\nhookrelay_wal_flushes_total {}",
            snap.wal_flushes
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot<'static> {
        Snapshot {
            endpoints: Vec::new(),
            store_bytes: 0,
            queue_depth: 0,
            queue_oldest_age_s: 0.0,
            store_writes: 0,
            wal_flushes: 0,
            wal_flush: None,
            disk_used_pct: None,
            body_bytes: 0,
            store_writable: true,
        }
    }

    #[test]
    fn the_latency_histogram_is_cumulative() {
        let m = Metrics::default();
        for ms in [3, 30, 30, 20_000] {
            m.attempt(true, None, Duration::from_millis(ms));
        }
        let text = m.render(&snapshot());
        let bucket = |le: &str| -> u64 {
            let prefix = format!("hookrelay_attempt_duration_seconds_bucket{{le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(prefix.as_str())?.parse().ok())
                .unwrap_or_else(|| panic!("no bucket {le}: {text}"))
        };
        assert_eq!(bucket("0.0025"), 0);
        assert_eq!(bucket("0.005"), 1);
        assert_eq!(bucket("0.025"), 1);
        assert_eq!(bucket("0.05"), 3);
        assert_eq!(bucket("10"), 3, "20 s is beyond the last bound");
        assert_eq!(bucket("+Inf"), 4);
        assert!(text.contains("hookrelay_attempt_duration_seconds_count 4"));
    }
}
