//! Disk-space backpressure: when the filesystem holding the data directory
//! passes `--max-disk-usage`, ingest answers `503` with `Retry-After`
//! instead of accepting events it may not be able to keep.
//!
//! The check is a `statvfs` refreshed in the background, so the hot path
//! reads one atomic; between two reads, the bytes of the events accepted
//! count as used, so a burst cannot fill the disk past the limit before the
//! next read sees it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How often the usage is read.
const REFRESH: Duration = Duration::from_secs(1);

/// Free space kept whatever the percentage says: a restart after a crash
/// writes the WAL it replays into table files before it frees the WAL, so
/// a disk left with less than that fails the restart with ENOSPC (on a
/// disk of tens of MB, 5% is less than one WAL).
pub const MIN_FREE: u64 = 2 * crate::store::WAL_CAP;

/// Past the limit: `used` of `usable` bytes over `max_used_pct`, or less
/// than [`MIN_FREE`] left.
fn over(used: u64, usable: u64, max_used_pct: f64) -> bool {
    used as f64 * 100.0 / usable as f64 >= max_used_pct || usable.saturating_sub(used) < MIN_FREE
}

pub struct DiskGuard {
    path: PathBuf,
    max_used_pct: f64,
    full: AtomicBool,
    /// Used share in hundredths of a percent, for messages and metrics.
    used_bp: AtomicU64,
    /// At the last read: bytes in use, and in use plus what this process
    /// may still write (0 before a read worked).
    used: AtomicU64,
    usable: AtomicU64,
    /// Bytes of events accepted since the last read.
    since_read: AtomicU64,
}

impl DiskGuard {
    pub fn new(path: PathBuf, max_used_pct: f64) -> DiskGuard {
        let g = DiskGuard {
            path,
            max_used_pct,
            full: AtomicBool::new(false),
            used_bp: AtomicU64::new(0),
            used: AtomicU64::new(0),
            usable: AtomicU64::new(0),
            since_read: AtomicU64::new(0),
        };
        g.refresh();
        g
    }

    /// Reads the filesystem's usage now. A failed read leaves the last state.
    pub fn refresh(&self) {
        // Zeroed first: what is accepted from here on is either in this
        // read or counted after it, never lost between the two.
        let since = self.since_read.swap(0, Ordering::AcqRel);
        let Ok(st) = rustix::fs::statvfs(&self.path) else {
            self.since_read.fetch_add(since, Ordering::AcqRel);
            return;
        };
        // As `df` counts it: used over what is used plus what this process
        // may still write. Blocks reserved for root are neither, so the
        // figure matches what an operator sees (on this VM 22%, where
        // `1 - avail/total` said 72%).
        let used = st.f_blocks.saturating_sub(st.f_bfree);
        let usable = used + st.f_bavail;
        if usable == 0 {
            self.since_read.fetch_add(since, Ordering::AcqRel);
            return;
        }
        let block = st.f_frsize.max(1);
        self.used.store(used * block, Ordering::Relaxed);
        self.usable.store(usable * block, Ordering::Relaxed);
        let pct = used as f64 * 100.0 / usable as f64;
        self.used_bp.store((pct * 100.0) as u64, Ordering::Relaxed);
        self.full.store(
            over(used * block, usable * block, self.max_used_pct),
            Ordering::Relaxed,
        );
        // Bytes accepted while this read ran may not be in it.
        self.accepted(0);
    }

    /// Counts `bytes` just accepted as used until the next read, twice:
    /// RocksDB writes them to its WAL and then to a table file, and the WAL
    /// goes only after that. It only ever raises the figure and sets
    /// `full`; a read clears it.
    pub fn accepted(&self, bytes: u64) {
        let bytes = bytes.saturating_mul(2);
        let since = self.since_read.fetch_add(bytes, Ordering::AcqRel) + bytes;
        let usable = self.usable.load(Ordering::Relaxed);
        if usable == 0 || since == 0 {
            return;
        }
        let used = self.used.load(Ordering::Relaxed) + since;
        let pct = used as f64 * 100.0 / usable as f64;
        self.used_bp
            .fetch_max((pct * 100.0) as u64, Ordering::Relaxed);
        if over(used, usable, self.max_used_pct) {
            self.full.store(true, Ordering::Relaxed);
        }
    }

    /// Why ingest refuses events, while it does.
    pub fn refusal(&self) -> Option<String> {
        self.is_full().then(|| {
            format!(
                "the data disk is {:.2}% full (limit {}%, and at least {} MiB kept free for a restart)",
                self.used_pct(),
                self.max_used_pct,
                MIN_FREE >> 20
            )
        })
    }

    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    pub fn used_pct(&self) -> f64 {
        self.used_bp.load(Ordering::Relaxed) as f64 / 100.0
    }

    /// Refreshes until `stop`.
    pub async fn watch(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => self.refresh(),
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_accepted_count_until_the_next_read() {
        let dir = std::env::temp_dir();
        let g = DiskGuard::new(dir.clone(), 100.0);
        assert!(!g.is_full(), "a limit of 100% with room left");
        let room = g.usable.load(Ordering::Relaxed) - g.used.load(Ordering::Relaxed);
        // Counted twice (WAL, then table file); MIN_FREE stays free.
        g.accepted((room - MIN_FREE) / 4);
        assert!(!g.is_full());
        g.accepted(room / 2);
        assert!(g.is_full(), "accepted past the room left");
        assert!(g.used_pct() >= 100.0);
        // A read counts what is really on the disk again.
        g.refresh();
        assert!(!g.is_full());
    }

    /// A small disk keeps room for a restart's replay of the WAL, however
    /// low its usage in percent.
    #[test]
    fn a_small_disk_keeps_room_for_a_restart() {
        let mib = 1 << 20;
        assert!(!over(100 * mib, 1000 * mib, 95.0));
        assert!(over(950 * mib, 1000 * mib, 95.0), "the percentage");
        assert!(
            over(20 * mib, 40 * mib, 95.0),
            "50% of 40 MiB leaves too little"
        );
        assert!(!over(0, 2 * MIN_FREE, 95.0));
    }
}
