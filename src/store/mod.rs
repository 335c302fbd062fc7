//! The store: the only module that names RocksDB.
//!
//! It offers domain operations (insert an event, record an attempt, query,
//! prune), each one `WriteBatch`, so the indexes never disagree with the
//! records. Records are JSON with added-only fields; bodies are kept apart
//! and compressed by the column family. Keys live in [`keys`], reading
//! events back (filters, cursors, scan budgets) in `query`, retention
//! sweeps in `retention`.
//!
//! The methods are blocking (a synced write waits for `fdatasync`); async
//! callers go through [`Store::run`], which moves them to the blocking pool.
//!
//! RocksDB keeps the write-ahead log in its own buffer (`manual_wal_flush`)
//! and every sender waiting in [`Store::durable`] shares one flush: with
//! `sync`, one thread (`wal_syncer`) writes and syncs it for all of them;
//! with `buffered`, the sender's own ingest thread writes it once for every
//! request it had ready. A hundred concurrent acknowledgements cost one
//! `write` (and one `fdatasync`), not a hundred. Writes nobody waits for
//! (attempt outcomes) are written out by `wal_syncer` within [`LAZY_FLUSH`],
//! and by `wal_writer` while one of its syncs is stalled.

pub mod backup;
mod field;
pub mod keys;
mod query;
mod retention;

pub use field::FieldFilter;
pub use query::{EventFilter, EventPage, MAX_SCAN, Q_BODY_BUDGET};
pub use retention::Sweep;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType,
    DBRecoveryMode, DBWithThreadMode, Direction, IteratorMode, MergeOperands, Options, ReadOptions,
    SingleThreaded, WriteBatch, WriteOptions,
};
use ulid::Ulid;

use crate::endpoint::{Counts, Endpoint};
use crate::error::{Error, Result};
use crate::event::{Attempt, Event, EventState};

/// Column families are all created at open and never dropped, so the
/// single-threaded mode (which only makes creating and dropping them need
/// `&mut`) serves: its handles are plain references, where the
/// multi-threaded mode takes a lock and clones an `Arc` per lookup.
type Db = DBWithThreadMode<SingleThreaded>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The write-ahead log is synced before any sender is answered.
    Sync,
    /// Written to the OS before answering: survives a process crash, not a power loss.
    Buffered,
}

/// Striped locks serialise read-modify-write of one event record; a stripe
/// is picked by the id's last (random) byte.
const STRIPES: usize = 256;
/// Neighbouring events deleted together by range tombstones rather than a
/// point tombstone each (see `Store::delete_events_into`): fewer, and a
/// range tombstone per event would cost every later read more than it saves.
const RANGE_RUN_MIN: usize = 8;

/// An event, its body and its attempts.
pub type FullEvent = (Event, Vec<u8>, Vec<Attempt>);

/// The most attempts an event's detail carries, the newest: one event
/// replayed thousands of times made a detail of hundreds of MB (each
/// attempt keeps up to 64 KiB of its answer). The older ones are read a
/// page at a time ([`Store::attempts_page`]).
pub const ATTEMPTS_SHOWN: usize = 50;

/// See [`Store::attempts_back`].
pub struct AttemptsBack<'a> {
    store: &'a Store,
    id: String,
    before: Option<u32>,
    /// The current page, oldest first: taken from its end.
    page: Vec<Attempt>,
    done: bool,
}

impl Iterator for AttemptsBack<'_> {
    type Item = Result<Attempt>;

    fn next(&mut self) -> Option<Result<Attempt>> {
        if self.page.is_empty() && !self.done {
            match self
                .store
                .attempts_page(&self.id, self.before, ATTEMPTS_SHOWN)
            {
                Ok(page) => {
                    match page.first() {
                        Some(a) if a.n > 1 => self.before = Some(a.n),
                        _ => self.done = true,
                    }
                    self.page = page;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.page.pop().map(Ok)
    }
}

/// How one write moves an event in the delivery queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueMove {
    /// The entry (its due time) to remove.
    pub remove: Option<u64>,
    /// A new entry's due time.
    pub add: Option<u64>,
}

/// A write failure switched on by a test ([`Store::inject_write_fault`]).
#[derive(Default)]
struct Fault {
    failing: std::sync::atomic::AtomicBool,
    /// Acknowledgements fail after the write, as a failing `fdatasync` would.
    sync_failing: std::sync::atomic::AtomicBool,
    refused: std::sync::atomic::AtomicU64,
}

pub struct Store {
    db: Arc<Db>,
    /// Every write goes to RocksDB's WAL buffer without waiting. Outcomes
    /// (attempts, state moves) stay that way and reach the disk within
    /// [`LAZY_FLUSH`]: a crash can lose the newest outcomes, never an
    /// acknowledged event. Acknowledgements wait in `durable`; rare
    /// operations flush (and sync) in `write`.
    write_opts: WriteOptions,
    sync: bool,
    /// Each stripe also keeps the event it last wrote: an attempt's outcome
    /// usually follows its event's insert within milliseconds, and reading
    /// and decoding the record again cost ~5% of a forward's CPU.
    stripes: Vec<Mutex<Option<Recent>>>,
    dedup_locks: Vec<Mutex<()>>,
    fault: Fault,
    wal: Arc<WalSync>,
    /// `wal_syncer`, and with `sync` `wal_writer`.
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// Written for a whole retention pass, read while a replay job picks
    /// its events and stores their list: a job stored during a pass would
    /// not be among the jobs the pass keeps events for.
    retention: std::sync::RwLock<()>,
    /// Set at shutdown: a retention sweep under way stops between events.
    sweep_stopped: std::sync::atomic::AtomicBool,
}

/// Whether the store can write now, for `/healthz`: a write or WAL flush
/// that failed (disk full, I/O error; RocksDB then refuses every write
/// until a restart) and none that worked since.
#[derive(Default)]
struct Health {
    failing: std::sync::atomic::AtomicBool,
    why: Mutex<Option<String>>,
}

impl Health {
    fn fail(&self, why: String) {
        *lock(&self.why) = Some(why);
        self.failing
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Cheap while healthy: one atomic load per write.
    fn ok(&self) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        if self.failing.load(Acquire) && self.failing.swap(false, AcqRel) {
            *lock(&self.why) = None;
        }
    }

    fn get(&self) -> Option<String> {
        lock(&self.why).clone()
    }
}

/// Group commit for acknowledgements. Hot-path writes go to the WAL buffer
/// without waiting; a writer that must not answer before its write is
/// written out (and, with `sync`, on disk) takes a ticket and waits for a
/// flush that started after its write. Concurrent senders share each
/// `write` and `fdatasync` (see `Store::durable` for who runs them), and
/// the wait happens on the async side without tying up a blocking thread.
struct WalSync {
    requested: std::sync::atomic::AtomicU64,
    /// A ticket is waiting (or the store is closing).
    pending: Mutex<bool>,
    wake: std::sync::Condvar,
    /// Something was written since the last flush.
    dirty: std::sync::atomic::AtomicBool,
    /// Writes made (counted after RocksDB took them) and writes known to be
    /// flushed: `Store::wal_written` / `Store::wal_flushed`.
    writes: std::sync::atomic::AtomicU64,
    flushed_writes: std::sync::atomic::AtomicU64,
    /// WAL flushes done (each a `write(2)`, plus an `fdatasync` with `sync`)
    /// and how long each took: a slow disk shows here before senders do.
    flushes: std::sync::atomic::AtomicU64,
    flush_time: crate::metrics::Histogram,
    closed: std::sync::atomic::AtomicBool,
    /// The highest ticket whose writes are flushed.
    synced: tokio::sync::watch::Sender<u64>,
    /// Serialises inline flushes (`buffered`), so a second worker waits for
    /// the flush under way and then usually finds its ticket covered.
    flushing: Mutex<()>,
    /// 1 + milliseconds after `epoch` since the syncer has been in a synced
    /// flush (`sync`); 0 when it is not. `wal_writer` writes the buffer out
    /// while one lasts over [`LAZY_FLUSH`].
    syncing_since: std::sync::atomic::AtomicU64,
    /// Writes known written out by `wal_writer` (`Store::wal_written_out`).
    written_out: std::sync::atomic::AtomicU64,
    /// `wal_writer` sleeps here while no sync happens; `writer_parked` tells the
    /// syncer to wake it (under `writer_lock`) when one starts.
    writer_lock: Mutex<()>,
    writer_wake: std::sync::Condvar,
    writer_parked: std::sync::atomic::AtomicBool,
    epoch: std::time::Instant,
    /// Writes into RocksDB and WAL flushes fail apart (a full disk fails
    /// the flush while memtable writes still work): each is cleared only by
    /// a success of its own kind.
    write_health: Health,
    flush_health: Health,
    /// Test hook: the syncer's next synced flushes take this long (ms).
    stall_ms: std::sync::atomic::AtomicU64,
    stalling: std::sync::atomic::AtomicBool,
    /// What the data disk has room for; see [`WalSync::room_for_wal`].
    space: WalSpace,
}

/// The free space a WAL write-out is checked against. A `write` of the WAL
/// that fails (ENOSPC) is fatal to RocksDB: it refuses every write after
/// it until the store is reopened, so a disk filled by another program for
/// a moment broke hookrelay until a restart. A write-out the disk may not
/// have room for is not attempted: the writes wait in RocksDB's buffer
/// (their senders get `503`), and go out once there is room again.
struct WalSpace {
    dir: std::path::PathBuf,
    /// Bytes written into RocksDB so far, and of them those a WAL
    /// write-out covered (write-outs run on several threads at once, and
    /// finish in any order).
    written: std::sync::atomic::AtomicU64,
    written_out: std::sync::atomic::AtomicU64,
    /// Bytes of writes under way (checked, not yet taken by RocksDB): two
    /// writes at once must not both count on the same free space.
    inflight: std::sync::atomic::AtomicU64,
    /// A write was refused for want of room; [`Store::health`] reads the
    /// disk again to clear it (no write may come to clear it otherwise).
    refused: std::sync::atomic::AtomicBool,
    /// Write-outs refused for want of room so far: a sender waiting for
    /// its sync gets its `503` at the first one, not after [`SYNC_WAIT`].
    refusals: std::sync::atomic::AtomicU64,
    /// Free bytes at the last reading, and when it was taken (`ms()`).
    free: std::sync::atomic::AtomicU64,
    read_at: std::sync::atomic::AtomicU64,
    /// Test hook: the free space to see instead of the disk's (`u64::MAX`:
    /// none injected).
    injected: std::sync::atomic::AtomicU64,
}

impl WalSpace {
    /// Bytes that may still be in RocksDB's WAL buffer: what was written
    /// since the last write-out, but never more than the buffer holds
    /// (RocksDB writes a full buffer, and a larger record, straight to the
    /// file: those bytes take disk space already).
    fn pending(&self) -> u64 {
        use std::sync::atomic::Ordering::Acquire;
        self.written
            .load(Acquire)
            .saturating_sub(self.written_out.load(Acquire))
            .min(WAL_BUFFER)
    }
}

/// RocksDB's buffer in front of each file it writes (its default, set
/// explicitly: [`WalSpace::pending`] counts on it).
const WAL_BUFFER: u64 = 1 << 20;

/// Free space a WAL write-out must leave: room for the log's own block
/// padding and a file switch. (A memtable flush or a compaction may need
/// more; a failure there is one RocksDB recovers from by itself.)
const WAL_HEADROOM: u64 = 4 << 20;

/// Below this much free space the disk is read before every write-out;
/// above it at most once a millisecond (a `statvfs` costs ~1 µs).
const SPACE_ROOMY: u64 = 256 << 20;

impl WalSync {
    fn ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Writes RocksDB's WAL buffer out (and syncs it with `sync`).
    fn flush(&self, db: &Db, sync: bool) -> Result<()> {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        let covered = self.writes.load(Acquire);
        let bytes = self.space.written.load(Acquire);
        // Nothing left in the buffer (a sync of what is written out needs
        // no new space).
        let pending = self.space.pending();
        if pending > 0 {
            self.room_for_wal(pending, WAL_HEADROOM)?;
        }
        let started = std::time::Instant::now();
        db.flush_wal(sync)?;
        // Writes made meanwhile stay counted for the next one.
        self.space.written_out.fetch_max(bytes, AcqRel);
        self.flush_time.observe(started.elapsed());
        self.flushed_writes
            .fetch_max(covered, std::sync::atomic::Ordering::AcqRel);
        self.flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// `Err` when writing `pending` bytes of WAL out could leave the data
    /// disk less than `headroom` (see [`WalSpace`]).
    fn room_for_wal(&self, pending: u64, headroom: u64) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let space = &self.space;
        let now = self.ms();
        let free = match space.injected.load(Relaxed) {
            u64::MAX => None,
            free => Some(free),
        };
        let free = match free {
            Some(free) => free,
            None if space.read_at.load(Relaxed) == now
                && space.free.load(Relaxed) >= SPACE_ROOMY =>
            {
                space.free.load(Relaxed)
            }
            None => match rustix::fs::statvfs(&space.dir) {
                Ok(st) => {
                    let free = st.f_bavail.saturating_mul(st.f_frsize.max(1));
                    space.free.store(free, Relaxed);
                    space.read_at.store(now, Relaxed);
                    free
                }
                // Unreadable: RocksDB's own write decides.
                Err(_) => return Ok(()),
            },
        };
        if free < pending.saturating_add(headroom) {
            return Err(Error::Unavailable(format!(
                "the data disk is full ({} KiB free): the write-ahead log is not written out until there is room again",
                free >> 10
            )));
        }
        Ok(())
    }

    /// Records why a write-out failed: no room (cleared once there is, see
    /// [`Store::space_refusal`]) or RocksDB's own error.
    fn flush_failed(&self, e: &Error) {
        match e {
            Error::Unavailable(_) => {
                use std::sync::atomic::Ordering::SeqCst;
                self.space.refused.store(true, SeqCst);
                self.space.refusals.fetch_add(1, SeqCst);
                // Wakes the waiters without moving the ticket (`durable`).
                self.synced.send_modify(|_| {});
            }
            e => self
                .flush_health
                .fail(format!("writing the WAL failed: {e}")),
        }
    }

    /// Records a flush that covered every ticket up to `target`; flushes
    /// may finish out of order.
    fn flushed(&self, target: u64) {
        self.synced.send_if_modified(|v| {
            let newer = target > *v;
            if newer {
                *v = target;
            }
            newer
        });
    }
}

/// WAL bytes alive before RocksDB flushes the families that keep the oldest
/// file: bounds what a restart after a crash replays.
///
/// Reaching it flushes every family at once, and the disk is then busy for
/// a while (the old WAL's sync, then the new tables): writes waited up to
/// ~100-200 ms then at 64 MiB, about half that at 16 MiB, with the same
/// throughput (open-loop runs of `benches/load.rs`, 2026-12-02).
pub const WAL_CAP: u64 = 16 << 20;
/// WAL files kept for reuse once obsolete (`WAL_CAP` keeps about two alive).
const WAL_RECYCLE: usize = 2;
/// RocksDB's LOG rolls at this size, and this many old ones are kept: at
/// most ~80 MiB of the data disk.
const LOG_FILE_SIZE: usize = 16 << 20;
const LOG_FILES_KEPT: usize = 4;

/// Memtables of all families together: RocksDB's default is 64 MiB each,
/// twice over, for eleven families.
pub const MEMTABLE_BUDGET: usize = 256 << 20;
/// One block cache for all families (RocksDB's default: 32 MiB each).
pub const BLOCK_CACHE: usize = 128 << 20;

/// How long a write nobody waits for may stay in RocksDB's WAL buffer.
pub const LAZY_FLUSH: std::time::Duration = std::time::Duration::from_millis(5);

/// How long a sender waits for its WAL sync before getting a 503.
pub const SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

impl Drop for Store {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.wal.closed.store(true, SeqCst);
        *lock(&self.wal.pending) = true;
        self.wal.wake.notify_all();
        {
            let _guard = lock(&self.wal.writer_lock);
            self.wal.writer_wake.notify_all();
        }
        // Joined so that the database is closed when the store is dropped.
        for t in std::mem::take(&mut *lock(&self.threads)) {
            let _ = t.join();
        }
    }
}

/// What changed in one event's state, for the counters.
fn count_tag(state: EventState) -> Option<u8> {
    match state {
        EventState::Delivered => Some(b'd'),
        EventState::Failed => Some(b'f'),
        EventState::Held => Some(b'h'),
        _ => None,
    }
}

fn sum_merge(_key: &[u8], existing: Option<&[u8]>, ops: &MergeOperands) -> Option<Vec<u8>> {
    let read = |b: &[u8]| b.try_into().map(i64::from_le_bytes).unwrap_or(0);
    let mut total = existing.map(read).unwrap_or(0);
    for op in ops {
        total += read(op);
    }
    Some(total.to_le_bytes().to_vec())
}

/// Makes the data directory unless it exists; when this call made it, the
/// topmost directory it made (the data directory, or a parent it had to
/// make too). Captured requests carry credentials (Authorization, cookies) and
/// endpoints their signing secrets: a directory made here is for this user
/// only. One that exists keeps the mode it was given ([`Store::open`] warns
/// when others may read it).
pub fn create_data_dir(path: &Path) -> Result<Option<std::path::PathBuf>> {
    use std::os::unix::fs::DirBuilderExt;
    let creating =
        |e: std::io::Error| Error::Unavailable(format!("creating {}: {e}", path.display()));
    match std::fs::metadata(path) {
        Err(_) => {
            let topmost = path
                .ancestors()
                .take_while(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_err())
                .last()
                .map(Path::to_path_buf);
            // Parents get the usual mode; only the data directory is
            // closed to others.
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(creating)?;
            }
            // Another hookrelay starting on the same path may have made
            // it meanwhile: RocksDB's lock then tells them apart.
            match std::fs::DirBuilder::new().mode(0o700).create(path) {
                Ok(()) => Ok(topmost),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(creating(e)),
            }
        }
        Ok(m) if !m.is_dir() => Err(Error::Unavailable(format!(
            "{} is not a directory",
            path.display()
        ))),
        Ok(_) => Ok(None),
    }
}

impl Store {
    pub fn open(path: &Path, durability: Durability) -> Result<Store> {
        use std::os::unix::fs::PermissionsExt;
        create_data_dir(path)?;
        backup::refuse_half_restored(path)?;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                data = %path.display(),
                mode = format!("{:o}", m.permissions().mode() & 0o777),
                "the data directory is open to other users, and holds captured credentials and signing secrets: chmod 700 it"
            );
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        // Flushes and compactions at the lowest CPU priority (nice 19): they
        // come in bursts (every WAL-full switch flushes each family), and at
        // their normal priority a burst took the CPU from the ingest
        // threads, the sender and the receiver alike on a small host: forwards
        // offered 5,000/s (`buffered`, 2 cores) had a p99 of 6–76 ms, median
        // ~22, against 4–22 ms, median ~6, at the lowest priority. With idle
        // CPU they still run at once; only under saturation do they wait,
        // and RocksDB's write stalls then pace ingest (benches/RESULTS.md).
        let mut env = rocksdb::Env::new()?;
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        opts.set_env(&env);
        // Writers come from two async worker threads: spinning for the
        // write-group leader burned CPU (AwaitState + sched_yield in profiles).
        opts.set_enable_write_thread_adaptive_yield(false);
        // The WAL is written out by `wal_syncer`, once per group of writers:
        // a `write` per request cost a fifth of the ingest CPU in profiles.
        opts.set_manual_wal_flush(true);
        opts.set_writable_file_max_buffer_size(WAL_BUFFER);
        // A WAL file lives until every family with data in it is flushed:
        // uncapped, the slow families (indexes, counters) kept gigabytes of
        // it alive, all to be replayed by a restart after a crash.
        opts.set_max_total_wal_size(WAL_CAP);
        // A recycled WAL file is overwritten in place, so `fdatasync` has no
        // new file size to commit to the journal: a synced group commit took
        // ~270 µs instead of ~390 µs here, and a forward with `sync` gained
        // ~19% throughput. RocksDB allows it with point-in-time recovery
        // only, and only without writes that skip the WAL or ingested files,
        // neither of which this store makes.
        opts.set_recycle_log_file_num(WAL_RECYCLE);
        opts.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
        // Memory that does not grow with the number of families: a soak
        // with reads over every event took RSS to ~600 MB.
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        // Table files kept open within the descriptor budget: with RocksDB's
        // default (all of them) a large store and many connections could
        // leave no descriptor for the next WAL file, which stops writes.
        opts.set_max_open_files(crate::fds::Budget::current().rocksdb_files);
        // RocksDB's own LOG, bounded: unbounded (its default), a store that
        // cannot write logs its refusals there for as long as it runs.
        opts.set_max_log_file_size(LOG_FILE_SIZE);
        opts.set_keep_log_file_num(LOG_FILES_KEPT);
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let cfs = keys::ALL.iter().map(|name| {
            let mut o = Options::default();
            // Two (the default) stopped every write when a family whose
            // memtable was being flushed had its memtable switched again by
            // the next WAL-full flush: "Stopping writes because we have 2
            // immutable memtables" for as long as the flush lasted. What
            // they hold stays bounded by the WAL cap (each WAL-full switch
            // flushes them), far below MEMTABLE_BUDGET.
            o.set_max_write_buffer_number(4);
            let mut table = BlockBasedOptions::default();
            table.set_block_cache(&cache);
            o.set_block_based_table_factory(&table);
            match *name {
                keys::BODIES | keys::EVENTS | keys::ATTEMPTS => {
                    // LZ4 at every level: ZSTD at the bottom level cost ~4% of
                    // ingest CPU in profiles for little gain on JSON bodies.
                    o.set_compression_type(DBCompressionType::Lz4);
                }
                keys::COUNTS => o.set_merge_operator_associative("sum_i64", sum_merge),
                _ => {}
            }
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = Db::open_cf_descriptors(&opts, path, cfs).map_err(|e| {
            if e.as_ref().contains("LOCK") {
                Error::Unavailable(format!(
                    "{} is in use by another hookrelay (or another RocksDB program): {e}",
                    path.display()
                ))
            } else {
                Error::from(e)
            }
        })?;
        // Under RocksDB's lock: another hookrelay starting on this directory
        // must not remove the running one's checkpoint.
        backup::remove_stale(path);
        // No write waits for the WAL inside RocksDB: a synced writer would
        // hold every writer grouped behind it. Durability comes from `write`
        // (rare operations flush directly) and `durable` (group commit).
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(false);
        let sync = durability == Durability::Sync;
        ids_after(newest_event_ms(&db)?);
        let db = Arc::new(db);
        let wal = Arc::new(WalSync {
            requested: Default::default(),
            pending: Mutex::new(false),
            wake: std::sync::Condvar::new(),
            dirty: Default::default(),
            writes: Default::default(),
            flushed_writes: Default::default(),
            flushes: Default::default(),
            flush_time: crate::metrics::Histogram::new(&crate::metrics::WAL_BUCKETS),
            closed: Default::default(),
            synced: tokio::sync::watch::Sender::new(0),
            flushing: Mutex::new(()),
            syncing_since: Default::default(),
            written_out: Default::default(),
            writer_lock: Mutex::new(()),
            writer_wake: std::sync::Condvar::new(),
            writer_parked: Default::default(),
            epoch: std::time::Instant::now(),
            write_health: Default::default(),
            flush_health: Default::default(),
            stall_ms: Default::default(),
            stalling: Default::default(),
            space: WalSpace {
                dir: path.to_path_buf(),
                written: Default::default(),
                written_out: Default::default(),
                inflight: Default::default(),
                refused: Default::default(),
                refusals: Default::default(),
                free: Default::default(),
                read_at: Default::default(),
                injected: std::sync::atomic::AtomicU64::new(u64::MAX),
            },
        });
        let mut threads = Vec::new();
        let spawn = |name: &str, run: fn(&Db, &WalSync, bool)| {
            let (db, wal) = (Arc::clone(&db), Arc::clone(&wal));
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || run(&db, &wal, sync))
                .map_err(|e| Error::Internal(format!("cannot start the {name} thread: {e}")))
        };
        threads.push(spawn("hookrelay-wal-sync", wal_syncer)?);
        if sync {
            threads.push(spawn("hookrelay-wal-write", wal_writer)?);
        }
        Ok(Store {
            db,
            write_opts,
            sync,
            stripes: (0..STRIPES).map(|_| Mutex::new(None)).collect(),
            dedup_locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            fault: Fault::default(),
            wal,
            threads: Mutex::new(threads),
            retention: Default::default(),
            sweep_stopped: Default::default(),
        })
    }

    /// Waits until every write this task made before the call is on disk
    /// (sync durability) or written to the OS (`buffered`). Ingest calls it
    /// before answering a sender.
    pub async fn durable(&self) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if self
            .fault
            .sync_failing
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            return Err(Error::Unavailable("injected sync fault".into()));
        }
        let ticket = self.wal.requested.fetch_add(1, SeqCst) + 1;
        if !self.sync {
            // A `write` takes microseconds: done on this worker, after every
            // other task ready here had its turn to add its own write, so
            // one `write` covers them all without a hop to another thread.
            tokio::task::yield_now().await;
            return self.flush_upto(ticket);
        }
        // Before subscribing: a refusal from here on fails this wait.
        let refusals = self.wal.space.refusals.load(SeqCst);
        let mut rx = self.wal.synced.subscribe();
        {
            // Once per group: the senders after the first find the flag set
            // and spare themselves the wake-up (a `futex` call each).
            let mut pending = lock(&self.wal.pending);
            if !*pending {
                *pending = true;
                self.wal.wake.notify_one();
            }
        }
        let refused = || self.wal.space.refusals.load(SeqCst) != refusals;
        match tokio::time::timeout(SYNC_WAIT, rx.wait_for(|v| *v >= ticket || refused())).await {
            Ok(Ok(v)) if *v >= ticket => Ok(()),
            Ok(Ok(_)) => Err(Error::Unavailable(
                "the data disk is too full to write the event's log out; it is not acknowledged"
                    .into(),
            )),
            _ => Err(Error::Unavailable(
                "the write-ahead log could not be synced; the event is not acknowledged".into(),
            )),
        }
    }

    /// Writes the WAL buffer out to the OS unless a flush since `ticket` was
    /// taken already did (`buffered` durability).
    fn flush_upto(&self, ticket: u64) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if *self.wal.synced.borrow() >= ticket {
            return Ok(());
        }
        let _one = lock(&self.wal.flushing);
        if *self.wal.synced.borrow() >= ticket {
            return Ok(());
        }
        let target = self.wal.requested.load(SeqCst);
        if let Err(e) = self.wal.flush(&self.db, false) {
            self.wal.flush_failed(&e);
            return Err(e);
        }
        self.wal.flush_health.ok();
        self.wal.flushed(target);
        Ok(())
    }

    /// How many writes this store has made, and how many of them are known
    /// to be written out (or synced, with `sync`): a write nobody waits for
    /// is covered once `wal_flushed()` reaches the `wal_written()` read
    /// after it.
    pub fn wal_written(&self) -> u64 {
        self.wal.writes.load(std::sync::atomic::Ordering::Acquire)
    }

    /// WAL flushes so far: with [`Store::wal_written`], how many writes
    /// each `write(2)` (and `fdatasync`) covered.
    pub fn wal_flushes(&self) -> u64 {
        self.wal.flushes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why writes are refused for want of room on the data disk, while
    /// they are (read again at each call, so it clears with no write
    /// needed once there is room). Not [`Store::health`]: a restart does
    /// not make room.
    pub fn space_refusal(&self) -> Option<String> {
        use std::sync::atomic::Ordering::Relaxed;
        let space = &self.wal.space;
        if !space.refused.load(Relaxed) {
            return None;
        }
        match self.wal.room_for_wal(space.pending(), WAL_HEADROOM) {
            Ok(()) => {
                space.refused.store(false, Relaxed);
                None
            }
            Err(e) => Some(e.to_string()),
        }
    }

    /// `Err` with the reason while the last write or WAL flush failed and
    /// none has worked since (`/healthz` answers 503 then).
    pub fn health(&self) -> std::result::Result<(), String> {
        match self
            .wal
            .write_health
            .get()
            .or_else(|| self.wal.flush_health.get())
        {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// How long WAL flushes take (for `/metrics`).
    pub fn wal_flush_time(&self) -> &crate::metrics::Histogram {
        &self.wal.flush_time
    }

    /// See [`Store::wal_written`].
    pub fn wal_flushed(&self) -> u64 {
        self.wal
            .flushed_writes
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Like [`Store::wal_flushed`], counting also what is written out to
    /// the OS (where a crash of this process cannot take it) but not yet
    /// synced: with `sync`, the writes `wal_writer` carried out of a
    /// stalled sync's way.
    pub fn wal_written_out(&self) -> u64 {
        use std::sync::atomic::Ordering::Acquire;
        self.wal_flushed().max(self.wal.written_out.load(Acquire))
    }

    /// The stripe locks of `ids`, held while they are deleted, taken in
    /// stripe order (nothing else holds two), with their events dropped
    /// from the stripes' cache: an outcome written after the delete must
    /// not find one there.
    fn stripes_for_delete(
        &self,
        ids: &[[u8; 16]],
    ) -> Vec<std::sync::MutexGuard<'_, Option<Recent>>> {
        let mut at: Vec<usize> = ids.iter().map(|k| k[15] as usize % STRIPES).collect();
        at.sort_unstable();
        at.dedup();
        at.into_iter()
            .map(|i| {
                let mut recent = lock(&self.stripes[i]);
                if recent.as_ref().is_some_and(|r| ids.contains(&r.key)) {
                    *recent = None;
                }
                recent
            })
            .collect()
    }

    /// The lock (and last-written event) of `key`'s stripe.
    fn stripe(&self, key: &[u8; 16]) -> std::sync::MutexGuard<'_, Option<Recent>> {
        lock(&self.stripes[key[15] as usize % STRIPES])
    }

    /// Runs blocking store work off the async workers.
    pub async fn run<T, F>(self: &Arc<Self>, f: F) -> Result<T>
    where
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let store = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&store)).await?
    }

    fn cf(&self, name: &str) -> &ColumnFamily {
        self.db
            .cf_handle(name)
            .expect("column families are created at open")
    }

    /// A write that is on disk (sync durability) or in the OS (`buffered`)
    /// when this returns: for the rare operations (endpoints, state changes
    /// by hand, pruning).
    fn write(&self, batch: WriteBatch) -> Result<()> {
        self.write_lazy(batch)?;
        self.sync_wal()
    }

    /// A write left in the WAL buffer: `wal_syncer` writes it out within
    /// [`LAZY_FLUSH`], or sooner for a sender waiting in [`Store::durable`].
    fn write_lazy(&self, batch: WriteBatch) -> Result<()> {
        self.write_lazy_within(batch, WAL_HEADROOM)
    }

    /// [`Store::write_lazy`] leaving at least `headroom` bytes free.
    fn write_lazy_within(&self, batch: WriteBatch, headroom: u64) -> Result<()> {
        use std::sync::atomic::Ordering::{AcqRel, Relaxed};
        if self.fault.failing.load(Relaxed) {
            self.fault.refused.fetch_add(1, Relaxed);
            self.wal.write_health.fail("injected write fault".into());
            return Err(Error::Unavailable("injected write fault".into()));
        }
        let space = &self.wal.space;
        let size = batch.size_in_bytes() as u64;
        // RocksDB writes its WAL buffer out by itself once the buffer is
        // full, within this call: the same check as a write-out's, with
        // the other writes under way counted in.
        let inflight = space.inflight.fetch_add(size, AcqRel) + size;
        let room = self
            .wal
            .room_for_wal(space.pending().saturating_add(inflight), headroom);
        let written = room.and_then(|()| Ok(self.db.write_opt(batch, &self.write_opts)?));
        // Taken over by `written` only once RocksDB has it: a write-out
        // meanwhile must not count it as written out.
        if written.is_ok() {
            space.written.fetch_add(size, AcqRel);
        }
        space.inflight.fetch_sub(size, AcqRel);
        match written {
            Ok(()) => {}
            Err(e @ Error::Unavailable(_)) => {
                space.refused.store(true, Relaxed);
                return Err(e);
            }
            Err(e) => {
                self.wal.write_health.fail(format!("a write failed: {e}"));
                return Err(e);
            }
        }
        self.wal.write_health.ok();
        self.wal.writes.fetch_add(1, AcqRel);
        if !self.wal.dirty.swap(true, AcqRel) {
            // Under the lock: the syncer checks `dirty` and sleeps under it,
            // so this wake-up cannot fall between the two.
            let _guard = lock(&self.wal.pending);
            self.wal.wake.notify_one();
        }
        Ok(())
    }

    // ---- endpoints ----

    /// [`Store::put_endpoint`] without the sync; pair it with
    /// [`Store::sync_wal`] once locks are released.
    pub fn put_endpoint_unsynced(&self, ep: &Endpoint) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(keys::ENDPOINTS), ep.slug.as_str(), to_json(ep)?);
        self.write_lazy(b)
    }

    /// For tests of store failures: while on, every write fails as a full
    /// or broken disk would make it fail.
    pub fn inject_write_fault(&self, on: bool) {
        self.fault
            .failing
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// For tests of sync failures: while on, [`Store::durable`] fails after
    /// the write went to RocksDB, as a failing `fdatasync` or a sync that
    /// outlasts its wait would.
    pub fn inject_sync_fault(&self, on: bool) {
        self.fault
            .sync_failing
            .store(on, std::sync::atomic::Ordering::Relaxed);
    }

    /// For tests of a full disk: the WAL write-out sees `free` bytes free
    /// instead of the disk's (`None`: the disk's again).
    pub fn inject_free_space(&self, free: Option<u64>) {
        self.wal.space.injected.store(
            free.map_or(u64::MAX, |f| f.min(u64::MAX - 1)),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Test hook: each synced flush of the WAL thread takes `stall` longer
    /// (a disk stalled behind other writes); zero ends it.
    pub fn inject_sync_stall(&self, stall: std::time::Duration) {
        self.wal.stall_ms.store(
            stall.as_millis() as u64,
            std::sync::atomic::Ordering::SeqCst,
        );
    }

    /// Whether the WAL thread is inside an injected stall now.
    pub fn in_injected_stall(&self) -> bool {
        self.wal.stalling.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes refused by [`Store::inject_write_fault`] so far.
    pub fn refused_writes(&self) -> u64 {
        self.fault
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Makes everything written so far durable: synced (sync durability)
    /// or written to the OS (`buffered`).
    pub fn sync_wal(&self) -> Result<()> {
        self.wal.flush(&self.db, self.sync)?;
        Ok(())
    }

    pub fn put_endpoint(&self, ep: &Endpoint) -> Result<()> {
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(keys::ENDPOINTS), ep.slug.as_str(), to_json(ep)?);
        self.write(b)
    }

    pub fn delete_endpoint(&self, slug: &str) -> Result<()> {
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(keys::ENDPOINTS), slug);
        self.write(b)
    }

    pub fn endpoints(&self) -> Result<Vec<Endpoint>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(keys::ENDPOINTS), IteratorMode::Start)
        {
            let (_, v) = item?;
            out.push(from_json(&v)?);
        }
        Ok(out)
    }

    /// [`Store::counts`] of each endpoint in `slugs`, in order: one call
    /// from the async side for a whole list.
    pub fn counts_of(&self, slugs: &[String]) -> Result<Vec<Counts>> {
        slugs.iter().map(|slug| self.counts(slug)).collect()
    }

    pub fn counts(&self, slug: &str) -> Result<Counts> {
        let cf = self.cf(keys::COUNTS);
        let get = |tag: u8| -> Result<i64> {
            Ok(self
                .db
                .get_pinned_cf(&cf, keys::count(slug, tag))?
                .and_then(|v| v.as_ref().try_into().ok().map(i64::from_le_bytes))
                .unwrap_or(0))
        };
        Ok(Counts {
            received: get(b'r')?,
            delivered: get(b'd')?,
            failed: get(b'f')?,
            held: get(b'h')?,
        })
    }

    /// Events received and failed attempts per minute, for the `minutes`
    /// minutes up to and including `now_minute`, oldest first. Reads at
    /// most `2 × minutes` keys, however busy the endpoint is.
    pub fn per_minute(
        &self,
        slug: &str,
        now_minute: u64,
        minutes: usize,
    ) -> Result<(Vec<u64>, Vec<u64>)> {
        let first = now_minute.saturating_sub(minutes as u64 - 1);
        let cf = self.cf(keys::COUNTS);
        let read = |kind: u8| -> Result<Vec<u64>> {
            let mut out = vec![0u64; minutes];
            let start = keys::minute(slug, kind, first);
            let prefix = keys::count(slug, kind);
            for item in self
                .db
                .iterator_cf(&cf, IteratorMode::From(&start, Direction::Forward))
            {
                let (k, v) = item?;
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    break;
                }
                let m = u64::from_be_bytes(k[prefix.len()..].try_into().expect("8 bytes"));
                if m > now_minute {
                    break;
                }
                let n = v.as_ref().try_into().map(i64::from_le_bytes).unwrap_or(0);
                out[(m - first) as usize] = n.max(0) as u64;
            }
            Ok(out)
        };
        Ok((read(keys::MINUTE_EVENTS)?, read(keys::MINUTE_FAILURES)?))
    }

    // ---- events ----

    /// Stores a new event and its body (await [`Store::durable`] before
    /// acknowledging it). When `external_id` was seen before on
    /// the same endpoint, the event is stored anyway and marked as a
    /// duplicate of the first; the returned event carries that mark.
    pub fn insert_event(&self, ev: Event, body: &[u8]) -> Result<Event> {
        self.insert_event_queued(ev, body, None)
    }

    /// [`Store::insert_event`], also putting the event in the delivery queue
    /// at `due` in the same batch (queue mode).
    pub fn insert_event_queued(
        &self,
        mut ev: Event,
        body: &[u8],
        due: Option<u64>,
    ) -> Result<Event> {
        let id = keys::parse_id(&ev.id).ok_or_else(|| Error::Internal("bad event id".into()))?;
        let mut b = WriteBatch::default();
        // The dedup read and write must not interleave with another insert of
        // the same external id, or both would claim to be first.
        let _guard = ev.external_id.as_ref().map(|ext| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&ev.endpoint, ext).hash(&mut h);
            lock(&self.dedup_locks[h.finish() as usize % STRIPES])
        });
        // A rejected event (a forgery, say) is flagged as a duplicate but
        // never claims the id: the genuine delivery would be flagged as the
        // copy of the forgery.
        if let Some(ext) = &ev.external_id {
            let key = keys::dedup(&ev.endpoint, ext);
            let dedup = self.cf(keys::DEDUP);
            match self.db.get_pinned_cf(&dedup, &key)? {
                Some(first) => ev.duplicate_of = Some(String::from_utf8_lossy(&first).into_owned()),
                None if ev.state != EventState::Rejected => b.put_cf(&dedup, key, ev.id.as_bytes()),
                None => {}
            }
        }
        b.put_cf(self.cf(keys::EVENTS), id, to_json(&ev)?);
        b.put_cf(self.cf(keys::BODIES), id, body);
        b.put_cf(
            self.cf(keys::BY_ENDPOINT),
            keys::by_endpoint(&ev.endpoint, &id),
            [],
        );
        b.put_cf(
            self.cf(keys::BY_EP_STATE),
            keys::by_ep_state(&ev.endpoint, ev.state.tag(), &id),
            [],
        );
        let counts = self.cf(keys::COUNTS);
        b.merge_cf(&counts, keys::count(&ev.endpoint, b'r'), 1i64.to_le_bytes());
        if let Some(tag) = count_tag(ev.state) {
            b.merge_cf(&counts, keys::count(&ev.endpoint, tag), 1i64.to_le_bytes());
        }
        b.merge_cf(
            &counts,
            keys::minute(&ev.endpoint, keys::MINUTE_EVENTS, ev.received_at / 60_000),
            1i64.to_le_bytes(),
        );
        if let Some(due) = due {
            b.put_cf(
                self.cf(keys::QUEUE),
                keys::queue(due, &id),
                ev.endpoint.as_bytes(),
            );
        }
        // Not flushed here: the caller awaits `durable()` before answering,
        // so concurrent inserts share one write and one sync.
        let mut recent = self.stripe(&id);
        self.write_lazy(b)?;
        // Kept only for an event an outcome follows within milliseconds
        // (forward, queue): a bin's, a held or a rejected one is written
        // once, and copying its headers is all the cache would cost.
        if ev.state == EventState::Received {
            *recent = Some(Recent {
                key: id,
                ev: ev.clone(),
            });
        }
        Ok(ev)
    }

    /// Read-modify-write of one event in one batch: `change` may alter the
    /// event (its state) and return an attempt to append; `endpoint`, when
    /// given, is written in the same batch (policy state moves with the
    /// attempt that changed it).
    pub fn update_event<F>(
        &self,
        id: &str,
        endpoint: Option<&Endpoint>,
        change: F,
    ) -> Result<(Event, Option<Attempt>)>
    where
        F: FnOnce(&mut Event) -> Option<Attempt>,
    {
        let (ev, a, _) =
            self.update_event_with(id, endpoint, |e| (change(e), QueueMove::default()))?;
        self.sync_wal()?;
        Ok((ev, a))
    }

    /// [`Store::update_event`] for an attempt's outcome (or a state change
    /// made for one), left in the WAL buffer, not waited on (see
    /// `write_lazy`). `change` also returns how the event moves in the
    /// delivery queue, written in the same batch: a crash leaves it either
    /// still queued (the attempt will be repeated) or recorded and moved,
    /// never lost.
    pub fn record_outcome<F>(
        &self,
        id: &str,
        endpoint: Option<&Endpoint>,
        change: F,
    ) -> Result<(Event, Option<Attempt>, QueueMove)>
    where
        F: FnOnce(&mut Event) -> (Option<Attempt>, QueueMove),
    {
        self.update_event_with(id, endpoint, change)
    }

    fn update_event_with<F>(
        &self,
        id: &str,
        endpoint: Option<&Endpoint>,
        change: F,
    ) -> Result<(Event, Option<Attempt>, QueueMove)>
    where
        F: FnOnce(&mut Event) -> (Option<Attempt>, QueueMove),
    {
        let key = keys::parse_id(id).ok_or_else(|| Error::NotFound(format!("no event {id}")))?;
        let mut recent = self.stripe(&key);
        // Taken out: if anything below fails, the stripe forgets it and the
        // next change reads the record from the store.
        let cached = match recent.take() {
            Some(r) if r.key == key => Some(r.ev),
            other => {
                *recent = other;
                None
            }
        };
        let mut ev = match cached {
            Some(ev) => ev,
            None => self
                .event_by_key(&key)?
                .ok_or_else(|| Error::NotFound(format!("no event {id}")))?,
        };
        let old = ev.state;
        let (mut attempt, queue) = change(&mut ev);
        let mut b = WriteBatch::default();
        if let Some(a) = attempt.as_mut() {
            use crate::event::Trigger;
            ev.attempts += 1;
            a.n = ev.attempts;
            // Mirror copies and replays elsewhere are not the endpoint's
            // failures (`to_target` is false for both).
            if !a.success && a.to_target {
                b.merge_cf(
                    self.cf(keys::COUNTS),
                    keys::minute(&ev.endpoint, keys::MINUTE_FAILURES, a.at / 60_000),
                    1i64.to_le_bytes(),
                );
            }
            ev.target_tried |= a.to_target;
            match a.trigger {
                Trigger::Mirror => ev.mirror_status = Some(a.status.unwrap_or(0)),
                Trigger::Forward | Trigger::Retry => {
                    ev.tries += 1;
                    ev.last_status = a.status;
                }
                // A replay to another URL is not the event's answer.
                _ if a.to_target => ev.last_status = a.status,
                _ => {}
            }
            b.put_cf(
                self.cf(keys::ATTEMPTS),
                keys::attempt(&key, a.n),
                to_json(a)?,
            );
        }
        if old != ev.state {
            let idx = self.cf(keys::BY_EP_STATE);
            b.delete_cf(&idx, keys::by_ep_state(&ev.endpoint, old.tag(), &key));
            b.put_cf(
                &idx,
                keys::by_ep_state(&ev.endpoint, ev.state.tag(), &key),
                [],
            );
            let counts = self.cf(keys::COUNTS);
            if let Some(tag) = count_tag(old) {
                b.merge_cf(
                    &counts,
                    keys::count(&ev.endpoint, tag),
                    (-1i64).to_le_bytes(),
                );
            }
            if let Some(tag) = count_tag(ev.state) {
                b.merge_cf(&counts, keys::count(&ev.endpoint, tag), 1i64.to_le_bytes());
            }
        }
        b.put_cf(self.cf(keys::EVENTS), key, to_json(&ev)?);
        if let Some(ep) = endpoint {
            b.put_cf(self.cf(keys::ENDPOINTS), ep.slug.as_str(), to_json(ep)?);
        }
        let q = self.cf(keys::QUEUE);
        if let Some(due) = queue.remove {
            b.delete_cf(&q, keys::queue(due, &key));
        }
        if let Some(due) = queue.add {
            b.put_cf(&q, keys::queue(due, &key), ev.endpoint.as_bytes());
        }
        self.write_lazy(b)?;
        *recent = Some(Recent {
            key,
            ev: ev.clone(),
        });
        Ok((ev, attempt, queue))
    }

    pub fn get_event(&self, id: &str) -> Result<Option<Event>> {
        let Some(key) = keys::parse_id(id) else {
            return Ok(None);
        };
        self.event_by_key(&key)
    }

    fn event_by_key(&self, key: &[u8; 16]) -> Result<Option<Event>> {
        match self.db.get_pinned_cf(self.cf(keys::EVENTS), key)? {
            Some(v) => Ok(Some(from_json(&v)?)),
            None => Ok(None),
        }
    }

    /// An event with its body (empty if missing) and attempts, read from
    /// one snapshot: an outcome written between separate reads would show
    /// its attempt beside the state it had not yet changed.
    pub fn event_full(&self, id: &str) -> Result<Option<FullEvent>> {
        let Some(key) = keys::parse_id(id) else {
            return Ok(None);
        };
        let snapshot = self.db.snapshot();
        let at_snapshot = || {
            let mut o = ReadOptions::default();
            o.set_snapshot(&snapshot);
            o
        };
        let Some(ev) = self
            .db
            .get_pinned_cf_opt(self.cf(keys::EVENTS), key, &at_snapshot())?
        else {
            return Ok(None);
        };
        let ev = from_json(&ev)?;
        let body = self
            .db
            .get_cf_opt(self.cf(keys::BODIES), key, &at_snapshot())?
            .unwrap_or_default();
        let attempts = self.attempts_page_with(&key, None, ATTEMPTS_SHOWN, at_snapshot())?;
        Ok(Some((ev, body, attempts)))
    }

    pub fn get_body(&self, id: &str) -> Result<Option<Vec<u8>>> {
        let Some(key) = keys::parse_id(id) else {
            return Ok(None);
        };
        Ok(self.db.get_cf(self.cf(keys::BODIES), key)?)
    }

    /// All of an event's attempts, oldest first.
    pub fn attempts(&self, id: &str) -> Result<Vec<Attempt>> {
        self.attempts_page(id, None, usize::MAX)
    }

    /// Up to `limit` of an event's attempts numbered below `before` (or
    /// all), the newest of them, oldest first.
    pub fn attempts_page(
        &self,
        id: &str,
        before: Option<u32>,
        limit: usize,
    ) -> Result<Vec<Attempt>> {
        let Some(key) = keys::parse_id(id) else {
            return Ok(Vec::new());
        };
        self.attempts_page_with(&key, before, limit, ReadOptions::default())
    }

    /// An event's attempts numbered below `before` (or all), newest first,
    /// read a page at a time as the caller goes back: an event may have
    /// thousands, and most callers stop early.
    pub fn attempts_back(&self, id: &str, before: Option<u32>) -> AttemptsBack<'_> {
        AttemptsBack {
            store: self,
            id: id.to_string(),
            before,
            page: Vec::new(),
            done: false,
        }
    }

    fn attempts_page_with(
        &self,
        key: &[u8; 16],
        before: Option<u32>,
        limit: usize,
        read: ReadOptions,
    ) -> Result<Vec<Attempt>> {
        let last = match before {
            Some(0) => return Ok(Vec::new()),
            Some(b) => b - 1,
            None => u32::MAX,
        };
        let start = keys::attempt(key, last);
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(
            &self.cf(keys::ATTEMPTS),
            read,
            IteratorMode::From(&start, Direction::Reverse),
        ) {
            let (k, v) = item?;
            if !k.starts_with(key) || out.len() == limit {
                break;
            }
            out.push(from_json(&v)?);
        }
        out.reverse();
        Ok(out)
    }

    /// Ids of an endpoint's events in `state`, oldest first (arrival order).
    pub fn ids_in_state(&self, slug: &str, state: EventState, limit: usize) -> Result<Vec<String>> {
        Ok(self
            .oldest_in_state(slug, state, limit)?
            .into_iter()
            .filter_map(|id| keys::id_string(&id))
            .collect())
    }

    /// The oldest `limit` event keys of `slug` in `state`, in order.
    fn oldest_in_state(
        &self,
        slug: &str,
        state: EventState,
        limit: usize,
    ) -> Result<Vec<[u8; 16]>> {
        let prefix = keys::ep_state_prefix(slug, state.tag());
        let cf = self.cf(keys::BY_EP_STATE);
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(&cf, IteratorMode::From(&prefix, Direction::Forward))
        {
            let (k, _) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            if let Some(id) = keys::tail_id(&k) {
                out.push(id);
            }
        }
        Ok(out)
    }

    // ---- the delivery queue and replay jobs ----

    /// Every queue entry: `(due, event id, slug)`, soonest first.
    pub fn queue_entries(&self) -> Result<Vec<(u64, String, String)>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(keys::QUEUE), IteratorMode::Start)
        {
            let (k, v) = item?;
            if let Some((due, id)) = keys::parse_queue(&k)
                && let Some(id) = keys::id_string(&id)
            {
                out.push((due, id, String::from_utf8_lossy(&v).into_owned()));
            }
        }
        Ok(out)
    }

    /// Drops a queue entry whose event no longer exists.
    pub fn remove_queued(&self, due: u64, id: &str) -> Result<()> {
        let Some(key) = keys::parse_id(id) else {
            return Ok(());
        };
        let mut b = WriteBatch::default();
        b.delete_cf(self.cf(keys::QUEUE), keys::queue(due, &key));
        // Lost in a crash, the entry is taken again and removed again.
        self.write_lazy(b)
    }

    /// Stores a replay job's record (`ids` = None) or its id list, which is
    /// written once, apart, so progress updates stay small.
    pub fn put_job(
        &self,
        id: &str,
        record: &serde_json::Value,
        ids: Option<&[String]>,
    ) -> Result<()> {
        let mut b = WriteBatch::default();
        let cf = self.cf(keys::JOBS);
        b.put_cf(&cf, keys::job(id), to_json(record)?);
        if let Some(ids) = ids {
            b.put_cf(&cf, keys::job_ids(id), to_json(&ids)?);
        }
        // Progress is advisory (a lost update repeats a few replays), so it
        // does not wait for fsync.
        self.write_lazy(b)
    }

    /// Stores a finished job's last record and drops its id list, which
    /// only a restart in the middle of the job needed.
    pub fn end_job(&self, id: &str, record: &serde_json::Value) -> Result<()> {
        let mut b = WriteBatch::default();
        let cf = self.cf(keys::JOBS);
        b.put_cf(&cf, keys::job(id), to_json(record)?);
        b.delete_cf(&cf, keys::job_ids(id));
        self.write_lazy(b)
    }

    /// Deletes finished jobs' id lists, and their records unless `keep`
    /// says to keep them.
    pub fn forget_jobs(&self, ids: &[(String, bool)]) -> Result<()> {
        let mut b = WriteBatch::default();
        let cf = self.cf(keys::JOBS);
        for (id, keep) in ids {
            b.delete_cf(&cf, keys::job_ids(id));
            if !keep {
                b.delete_cf(&cf, keys::job(id));
            }
        }
        self.write_lazy(b)
    }

    /// Every job record (without the id lists).
    pub fn jobs(&self) -> Result<Vec<serde_json::Value>> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(keys::JOBS), IteratorMode::Start)
        {
            let (k, v) = item?;
            if !k.ends_with(keys::JOB_IDS_SUFFIX) {
                out.push(from_json(&v)?);
            }
        }
        Ok(out)
    }

    /// A job's id list (read only for jobs that still have work to do).
    pub fn job_ids(&self, id: &str) -> Result<Vec<String>> {
        match self
            .db
            .get_pinned_cf(self.cf(keys::JOBS), keys::job_ids(id))?
        {
            Some(v) => from_json(&v),
            None => Ok(Vec::new()),
        }
    }

    /// Takes back an event whose sender was told it is not stored (its
    /// WAL sync failed or timed out): record, body, indexes, counters and
    /// its queue entry at `due`. Best effort — a store broken by an I/O
    /// error keeps it until a restart drops what never reached the disk.
    pub fn withdraw(&self, ev: &Event, due: Option<u64>) -> Result<()> {
        let id = keys::parse_id(&ev.id).ok_or_else(|| Error::Internal("bad event id".into()))?;
        let _stripe = self.stripes_for_delete(&[id]);
        let mut b = WriteBatch::default();
        // As it stands now, under its lock: an outcome written meanwhile
        // moved its state index and counters.
        if let Some(now) = self.event_by_key(&id)? {
            self.delete_event_into(&mut b, &id, &now)?;
        }
        if let Some(due) = due {
            b.delete_cf(self.cf(keys::QUEUE), keys::queue(due, &id));
        }
        b.merge_cf(
            self.cf(keys::COUNTS),
            keys::minute(&ev.endpoint, keys::MINUTE_EVENTS, ev.received_at / 60_000),
            (-1i64).to_le_bytes(),
        );
        // Without the headroom new data must leave: on a disk too full for
        // new events a take-back still goes through, or the refused event
        // would be written out (and queued) once there is room again.
        self.write_lazy_within(b, 0)
    }

    fn delete_event_into(&self, b: &mut WriteBatch, id: &[u8; 16], ev: &Event) -> Result<()> {
        self.delete_records_into(b, id, ev.attempts);
        let mut counts = HashMap::new();
        self.delete_entries_into(b, id, ev, &mut counts)?;
        self.merge_counts_into(b, counts);
        Ok(())
    }

    /// Deletes `gone` (events in ascending id order, each read under its
    /// stripe lock, which the caller holds) in one batch. A run of
    /// [`RANGE_RUN_MIN`] or more that are neighbours in the events family,
    /// all older than `horizon`, loses its records, bodies, attempts and
    /// index entries by a few range tombstones instead of a point tombstone
    /// per key. Measured on a sweep of 2.7M events while senders sent 3,000
    /// a second (`sync`): one batch and a tombstone per key kept their p99
    /// at 10–30 ms with windows of 0.2–1.3 s; batches of ranges, 7–13 ms
    /// and at most 41 ms.
    pub(crate) fn delete_events_into(
        &self,
        b: &mut WriteBatch,
        gone: &[([u8; 16], Event)],
        horizon: &[u8; 16],
    ) -> Result<()> {
        let ids: Vec<[u8; 16]> = gone.iter().map(|(id, _)| *id).collect();
        let mut counts = HashMap::new();
        for run in self.neighbour_runs(&ids)? {
            let (first, last) = (ids[run.start], ids[run.end - 1]);
            if run.len() >= RANGE_RUN_MIN && last < *horizon {
                let end = (u128::from_be_bytes(last) + 1).to_be_bytes();
                b.delete_range_cf(self.cf(keys::EVENTS), first, end);
                b.delete_range_cf(self.cf(keys::BODIES), first, end);
                b.delete_range_cf(
                    self.cf(keys::ATTEMPTS),
                    keys::attempt(&first, 0),
                    keys::attempt(&end, 0),
                );
                // No other event lies between the run's ids, so neither does
                // another entry in an endpoint's (and state's) part of an
                // index: one range for each part the run touches.
                let mut parts = std::collections::BTreeSet::new();
                for (_, ev) in &gone[run] {
                    parts.insert((ev.endpoint.as_str(), ev.state.tag()));
                    self.delete_claim_into(b, ev, &mut counts)?;
                }
                let mut slugs = std::collections::BTreeSet::new();
                for (slug, tag) in parts {
                    b.delete_range_cf(
                        self.cf(keys::BY_EP_STATE),
                        keys::by_ep_state(slug, tag, &first),
                        keys::by_ep_state(slug, tag, &end),
                    );
                    slugs.insert(slug);
                }
                for slug in slugs {
                    b.delete_range_cf(
                        self.cf(keys::BY_ENDPOINT),
                        keys::by_endpoint(slug, &first),
                        keys::by_endpoint(slug, &end),
                    );
                }
            } else {
                for (id, ev) in &gone[run] {
                    self.delete_records_into(b, id, ev.attempts);
                    self.delete_entries_into(b, id, ev, &mut counts)?;
                }
            }
        }
        self.merge_counts_into(b, counts);
        Ok(())
    }

    /// Splits `ids` (ascending, all stored) into runs with no other event
    /// between neighbours.
    fn neighbour_runs(&self, ids: &[[u8; 16]]) -> Result<Vec<std::ops::Range<usize>>> {
        let mut runs = Vec::new();
        let mut it = self.db.raw_iterator_cf(self.cf(keys::EVENTS));
        let mut i = 0;
        while i < ids.len() {
            let start = i;
            it.seek(ids[i]);
            while i < ids.len() && it.valid() && it.key() == Some(&ids[i][..]) {
                i += 1;
                it.next();
            }
            // Not found (deleted meanwhile): alone, by point deletes.
            i = i.max(start + 1);
            runs.push(start..i);
        }
        it.status()?;
        Ok(runs)
    }

    /// An event's record, body and attempts, by point deletes.
    fn delete_records_into(&self, b: &mut WriteBatch, id: &[u8; 16], attempts: u32) {
        b.delete_cf(self.cf(keys::EVENTS), id);
        b.delete_cf(self.cf(keys::BODIES), id);
        // One point delete per attempt: a range tombstone per event costs
        // every later read of the column family more than the keys it drops.
        let cf = self.cf(keys::ATTEMPTS);
        for n in 1..=attempts {
            b.delete_cf(&cf, keys::attempt(id, n));
        }
    }

    /// An event's index entries and dedup claim; its counters' changes are
    /// added up in `counts` (one merge per counter and batch).
    fn delete_entries_into(
        &self,
        b: &mut WriteBatch,
        id: &[u8; 16],
        ev: &Event,
        counts: &mut HashMap<Vec<u8>, i64>,
    ) -> Result<()> {
        b.delete_cf(
            self.cf(keys::BY_ENDPOINT),
            keys::by_endpoint(&ev.endpoint, id),
        );
        b.delete_cf(
            self.cf(keys::BY_EP_STATE),
            keys::by_ep_state(&ev.endpoint, ev.state.tag(), id),
        );
        self.delete_claim_into(b, ev, counts)
    }

    /// An event's dedup claim (if it made one) and its share of the
    /// counters, added up in `counts`.
    fn delete_claim_into(
        &self,
        b: &mut WriteBatch,
        ev: &Event,
        counts: &mut HashMap<Vec<u8>, i64>,
    ) -> Result<()> {
        if let Some(ext) = &ev.external_id
            && ev.duplicate_of.is_none()
        {
            // Only the claim this event made: a rejected one made none.
            let dedup = self.cf(keys::DEDUP);
            let key = keys::dedup(&ev.endpoint, ext);
            if self
                .db
                .get_pinned_cf(&dedup, &key)?
                .is_some_and(|first| first.as_ref() == ev.id.as_bytes())
            {
                b.delete_cf(&dedup, key);
            }
        }
        *counts.entry(keys::count(&ev.endpoint, b'r')).or_default() -= 1;
        if let Some(tag) = count_tag(ev.state) {
            *counts.entry(keys::count(&ev.endpoint, tag)).or_default() -= 1;
        }
        Ok(())
    }

    fn merge_counts_into(&self, b: &mut WriteBatch, counts: HashMap<Vec<u8>, i64>) {
        let cf = self.cf(keys::COUNTS);
        for (key, n) in counts {
            b.merge_cf(&cf, key, n.to_le_bytes());
        }
    }

    /// Bytes on disk (SST files plus memtables), for `/metrics`.
    pub fn size_bytes(&self) -> u64 {
        self.property_sum("rocksdb.total-sst-files-size")
            + self.property_sum("rocksdb.size-all-mem-tables")
    }

    /// A RocksDB integer property summed over every column family.
    fn property_sum(&self, property: &str) -> u64 {
        keys::ALL
            .iter()
            .map(|name| {
                self.db
                    .property_int_value_cf(&self.cf(name), property)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// Syncs the WAL and flushes memtables; called at shutdown.
    pub fn flush(&self) -> Result<()> {
        self.wal.flush(&self.db, true)?;
        for name in keys::ALL {
            self.db.flush_cf(self.cf(name))?;
        }
        Ok(())
    }

    /// A new event id: a ULID, so ids sort by arrival time. Ids made in the
    /// same millisecond still increase (monotonic generator), so arrival
    /// order is exact, which release order and pagination rely on.
    pub fn new_id() -> String {
        Store::new_id_ms().0
    }

    /// A new id and the time it carries: an event's `received_at`, so that
    /// `since`/`until` (which bound ids) and the times shown agree. Ids only
    /// grow, also when the clock steps back (the generator keeps the last
    /// time and counts up; see [`ids_after`] for a restart).
    pub fn new_id_ms() -> (String, u64) {
        let mut g = lock(&ID_GENERATOR);
        let g = g.get_or_insert_with(ulid::Generator::new);
        let id = g.generate().unwrap_or_else(|_| Ulid::generate());
        (id.to_string(), id.timestamp_ms())
    }
}

static ID_GENERATOR: Mutex<Option<ulid::Generator>> = Mutex::new(None);

/// How far ahead of the clock a stored event may be and still hold new ids
/// back: a store written once with a clock far in the future must not
/// date every later event there.
const ID_CLOCK_AHEAD_MAX_MS: u64 = 24 * 3600 * 1000;

/// The time of the newest stored event id, if any.
fn newest_event_ms(db: &Db) -> Result<Option<u64>> {
    let cf = db
        .cf_handle(keys::EVENTS)
        .ok_or_else(|| Error::Internal("no events column family".into()))?;
    let mut it = db.raw_iterator_cf(&cf);
    it.seek_to_last();
    it.status()?;
    Ok(it
        .key()
        .and_then(|k| <[u8; 16]>::try_from(k).ok())
        .map(|k| Ulid::from_bytes(k).timestamp_ms()))
}

/// Makes new ids start after `newest_ms` (the newest stored event's time),
/// so that a clock set back between two runs does not make new events sort
/// (and list, page, expire and queue in order) before older ones. Until the
/// clock catches up, new events carry that time.
fn ids_after(newest_ms: Option<u64>) {
    let Some(newest) = newest_ms else { return };
    let now = crate::time::now_ms();
    if newest < now {
        return;
    }
    if newest - now > ID_CLOCK_AHEAD_MAX_MS {
        tracing::warn!(
            ahead_s = (newest - now) / 1000,
            "the newest stored event is dated far ahead of this machine's clock; new events may sort before it"
        );
        return;
    }
    tracing::warn!(
        ahead_ms = newest - now,
        "the clock is behind the newest stored event (set back?): new events carry its time until the clock catches up"
    );
    let mut g = lock(&ID_GENERATOR);
    let g = g.get_or_insert_with(ulid::Generator::new);
    let after = std::time::UNIX_EPOCH + std::time::Duration::from_millis(newest + 1);
    let _ = g.generate_from_datetime(after);
}

/// The WAL thread: writes out (and with `sync`, syncs) RocksDB's WAL buffer
/// whenever tickets are waiting, each flush covering every write completed
/// before its ticket was taken; and within [`LAZY_FLUSH`] of any write
/// nobody waits for. Flushes once more when the store closes.
fn wal_syncer(db: &Db, wal: &WalSync, sync: bool) {
    use std::sync::atomic::Ordering::{AcqRel, Acquire, SeqCst};
    const ERROR_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    const RETRY_FLUSH_FIRST: std::time::Duration = std::time::Duration::from_millis(50);
    const RETRY_FLUSH_AT_MOST: std::time::Duration = std::time::Duration::from_secs(1);
    let mut last_error_log: Option<std::time::Instant> = None;
    let mut retry_in = RETRY_FLUSH_FIRST;
    loop {
        {
            let mut pending = lock(&wal.pending);
            while !*pending {
                if wal.dirty.load(SeqCst) {
                    let (guard, waited) = wal
                        .wake
                        .wait_timeout(pending, LAZY_FLUSH)
                        .unwrap_or_else(|p| p.into_inner());
                    pending = guard;
                    if waited.timed_out() {
                        break;
                    }
                } else {
                    pending = wal.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
                }
            }
            *pending = false;
        }
        let closing = wal.closed.load(SeqCst);
        let target = wal.requested.load(SeqCst);
        // Cleared before the flush: a write that lands after this sets it
        // again and gets the next flush. Inline flushes (`buffered`) do not
        // clear it, so the counters say whether anything is left to write.
        let dirty = wal.dirty.swap(false, AcqRel)
            && wal.flushed_writes.load(Acquire) < wal.writes.load(Acquire);
        if dirty || *wal.synced.borrow() < target {
            if sync {
                wal.syncing_since.store(wal.ms() + 1, SeqCst);
                if wal.writer_parked.load(SeqCst) {
                    let _guard = lock(&wal.writer_lock);
                    wal.writer_wake.notify_one();
                }
                let stall = wal.stall_ms.load(SeqCst);
                if stall > 0 {
                    wal.stalling.store(true, SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(stall));
                    wal.stalling.store(false, SeqCst);
                }
            }
            let flushed = wal.flush(db, sync);
            wal.syncing_since.store(0, SeqCst);
            match flushed {
                Ok(()) => {
                    wal.flushed(target);
                    wal.flush_health.ok();
                    last_error_log = None;
                    retry_in = RETRY_FLUSH_FIRST;
                }
                Err(e) => {
                    // Waiters time out with 503; try again shortly (a full
                    // disk clears once there is room; a store broken by an
                    // I/O error stays broken until a restart): said once,
                    // then every minute, not at every retry.
                    let now = std::time::Instant::now();
                    if last_error_log.is_none_or(|t| now.duration_since(t) >= ERROR_LOG_EVERY) {
                        tracing::error!(error = %e, "WAL flush failed");
                        last_error_log = Some(now);
                    }
                    wal.flush_failed(&e);
                    wal.dirty.store(true, SeqCst);
                    // RocksDB refuses every write after a WAL error until
                    // the store is reopened, and logs each refusal in its
                    // LOG: retried ever less often (a fault a test switches
                    // off still clears within a second).
                    std::thread::sleep(retry_in);
                    retry_in = (retry_in * 2).min(RETRY_FLUSH_AT_MOST);
                    *lock(&wal.pending) = true;
                }
            }
        }
        if closing {
            return;
        }
    }
}

/// With `sync`, while `wal_syncer` sits in a synced flush nothing else
/// leaves RocksDB's WAL buffer: on a disk stalled behind an SST write that
/// lasts up to seconds here, and a crash then lost every outcome written
/// meanwhile (each delivery and job step made during the stall repeated
/// after the restart). Once a sync has lasted [`LAZY_FLUSH`], this thread
/// writes the buffer out (`FlushWAL(false)`, which RocksDB runs beside a
/// WAL sync) every `LAZY_FLUSH` until the sync returns. It ticks while
/// syncs keep coming and sleeps after a quiet second, so an idle server
/// has no timer, and a busy one no wake-up per sync.
fn wal_writer(db: &Db, wal: &WalSync, _sync: bool) {
    use std::sync::atomic::Ordering::{Acquire, SeqCst};
    const QUIET: u32 = 200;
    let lazy = LAZY_FLUSH.as_millis() as u64;
    let (mut quiet_ticks, mut last_flushes) = (0, u64::MAX);
    loop {
        if wal.closed.load(SeqCst) {
            return;
        }
        let since = wal.syncing_since.load(SeqCst);
        let flushes = wal.flushes.load(Acquire);
        if since == 0 && flushes == last_flushes {
            quiet_ticks += 1;
        } else {
            quiet_ticks = 0;
        }
        last_flushes = flushes;
        if since != 0 && wal.ms().saturating_sub(since - 1) >= lazy {
            let writes = wal.writes.load(Acquire);
            if writes
                > wal
                    .written_out
                    .load(Acquire)
                    .max(wal.flushed_writes.load(Acquire))
            {
                let bytes = wal.space.written.load(Acquire);
                match wal
                    .room_for_wal(wal.space.pending(), WAL_HEADROOM)
                    .and_then(|()| Ok(db.flush_wal(false)?))
                {
                    Ok(()) => {
                        wal.written_out.fetch_max(writes, SeqCst);
                        wal.space.written_out.fetch_max(bytes, SeqCst);
                    }
                    // No room: the syncer says so (once a minute).
                    Err(Error::Unavailable(_)) => {}
                    // The writes are made: the syncer's flush retries.
                    Err(e) => {
                        tracing::warn!(error = %e, "writing the WAL out beside a stalled sync failed")
                    }
                }
            }
        }
        let mut guard = lock(&wal.writer_lock);
        if quiet_ticks >= QUIET {
            // Set under the lock and checked by the syncer after it marks a
            // sync, so a sync starting now either is seen here or wakes us.
            wal.writer_parked.store(true, SeqCst);
            while wal.syncing_since.load(SeqCst) == 0 && !wal.closed.load(SeqCst) {
                guard = wal
                    .writer_wake
                    .wait(guard)
                    .unwrap_or_else(|p| p.into_inner());
            }
            wal.writer_parked.store(false, SeqCst);
            quiet_ticks = 0;
        } else {
            drop(
                wal.writer_wake
                    .wait_timeout(guard, LAZY_FLUSH)
                    .unwrap_or_else(|p| p.into_inner()),
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a stripe leaves no broken invariant: a cached
    // event is taken out before it is changed and put back after its write;
    // the WAL thread's flag is only ever set or cleared whole.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event a stripe wrote last, exactly as stored.
struct Recent {
    key: [u8; 16],
    ev: Event,
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::Internal(format!("encode: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| Error::Internal(format!("decode stored record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "id": id, "endpoint": "qb", "received_at": 1, "method": "POST", "path": "",
            "query": null, "headers": [], "size": 0, "remote_addr": "127.0.0.1:1",
            "state": "captured",
        }))
        .unwrap()
    }

    /// RocksDB's LOG is bounded (its default keeps every line forever; a
    /// store that cannot write logs each refusal there).
    #[test]
    fn the_rocksdb_log_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let _store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let options = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("OPTIONS-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap())
            .expect("an OPTIONS file");
        let set = |name: &str| {
            options
                .lines()
                .find_map(|l| l.trim().strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("{name} not in OPTIONS"))
                .to_string()
        };
        assert_eq!(set("max_log_file_size"), LOG_FILE_SIZE.to_string());
        assert_eq!(set("keep_log_file_num"), LOG_FILES_KEPT.to_string());
    }

    /// An event read while outcomes land shows its state and attempts as
    /// of one moment: the API showed an attempt beside the state it had not
    /// yet changed (`received` with a successful attempt).
    #[test]
    fn an_event_is_read_whole_while_outcomes_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let id = Store::new_id();
        store.insert_event(event(&id), b"x").unwrap();
        const OUTCOMES: u32 = 3000;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for n in 0..OUTCOMES {
                    let attempt: Attempt = serde_json::from_value(serde_json::json!({
                        "n": 0, "at": 1, "trigger": "forward", "url": "http://t/",
                        "status": 200, "headers": [], "body": "", "body_size": 0,
                        "body_truncated": false, "latency_ms": 1, "error": null,
                        "error_detail": null, "replay_of": null, "success": true,
                    }))
                    .unwrap();
                    store
                        .record_outcome(&id, None, |ev| {
                            ev.state = if n % 2 == 0 {
                                EventState::Delivered
                            } else {
                                EventState::Failed
                            };
                            (Some(attempt), QueueMove::default())
                        })
                        .unwrap();
                }
            });
            loop {
                let (ev, _, attempts) = store.event_full(&id).unwrap().unwrap();
                // The newest attempts only (ATTEMPTS_SHOWN); the newest
                // one's number counts them all.
                let count = attempts.last().map_or(0, |a| a.n as usize);
                assert_eq!(ev.attempts as usize, count);
                assert_eq!(attempts.len(), count.min(ATTEMPTS_SHOWN));
                let expected = match count {
                    0 => EventState::Captured,
                    n if n % 2 == 1 => EventState::Delivered,
                    _ => EventState::Failed,
                };
                assert_eq!(ev.state, expected, "after {count} attempts");
                if count == OUTCOMES as usize {
                    break;
                }
            }
        });
    }

    /// A clock set back between two runs: the next run's ids still sort
    /// after the stored ones (they listed below older events, and a cursor
    /// or retention by age read them as older). 300 ms ahead, so that the
    /// other tests of this process are barely affected.
    #[test]
    fn ids_grow_across_a_restart_with_the_clock_set_back() {
        let dir = tempfile::tempdir().unwrap();
        let ahead = Ulid::from_parts(crate::time::now_ms() + 300, u128::MAX >> 48);
        {
            let store = Store::open(dir.path(), Durability::Buffered).unwrap();
            store.insert_event(event(&ahead.to_string()), b"x").unwrap();
        }
        let _store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let next = Store::new_id();
        assert!(next > ahead.to_string(), "{next} after {ahead}");
    }

    /// Count retention takes refused forgeries first: a flood of them must
    /// not push out an endpoint's older real events.
    #[test]
    fn count_retention_deletes_rejected_events_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let mut real = Vec::new();
        for _ in 0..3 {
            real.push(
                store
                    .insert_event(event(&Store::new_id()), b"r")
                    .unwrap()
                    .id,
            );
        }
        let mut junk = Vec::new();
        for _ in 0..4 {
            let mut ev = event(&Store::new_id());
            ev.state = EventState::Rejected;
            junk.push(store.insert_event(ev, b"j").unwrap().id);
        }
        let deleted = store
            .prune(crate::time::now_ms(), None, Some(4), &Default::default())
            .unwrap()
            .deleted();
        assert_eq!(deleted, 3);
        for id in &real {
            assert!(store.get_event(id).unwrap().is_some(), "a real event went");
        }
        let left: Vec<bool> = junk
            .iter()
            .map(|id| store.get_event(id).unwrap().is_some())
            .collect();
        assert_eq!(left, [false, false, false, true], "the oldest forgeries go");
        assert_eq!(store.counts("qb").unwrap().received, 4);
    }

    /// After a large retention sweep, reads no longer wade through what it
    /// deleted: RocksDB keeps a tombstone per deleted key until compaction,
    /// and every query that reached the pruned range stepped over each one
    /// (a list of ten live events took as long as one over 20,000).
    #[test]
    fn reads_after_a_large_prune_skip_no_tombstones() {
        use rocksdb::perf::{PerfContext, PerfMetric, PerfStatsLevel, set_perf_stats};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        const EVENTS: usize = 20_000;
        for _ in 0..EVENTS {
            store.insert_event(event(&Store::new_id()), b"{}").unwrap();
        }
        // Some of them in the SST files too, as on a store that has run.
        store.db.flush_cf(store.cf(keys::EVENTS)).unwrap();
        let sweep = store
            .prune(crate::time::now_ms(), None, Some(10), &Default::default())
            .unwrap();
        assert_eq!(sweep.deleted(), EVENTS - 10);
        store.compact_swept(&sweep);
        set_perf_stats(PerfStatsLevel::EnableCount);
        let mut perf = PerfContext::default();
        perf.reset();
        // Each page asks for more than is left, so it reads to the end.
        let by_state = store.query(&EventFilter {
            endpoint: Some("qb".into()),
            state: Some(EventState::Captured),
            limit: 50,
            ..Default::default()
        });
        let all = store.query(&EventFilter {
            limit: 50,
            ..Default::default()
        });
        let skipped = perf.metric(PerfMetric::InternalDeleteSkippedCount);
        set_perf_stats(PerfStatsLevel::Disable);
        assert_eq!(by_state.unwrap().events.len(), 10);
        assert_eq!(all.unwrap().events.len(), 10);
        assert!(skipped < 1_000, "{skipped} tombstones stepped over");
    }

    /// Hunt #22: with `q` and `field` together each body was charged twice,
    /// so one over half the budget was never searched, and the first event
    /// of a page ended it with no cursor: matches were silently lost.
    #[test]
    fn a_text_search_and_a_field_read_each_body_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let mut ids = Vec::new();
        for body in [
            br#"{"tag":"hit","pad":"aaaaaaaaaa"}"#,
            br#"{"tag":"hit","pad":"bbbbbbbbbb"}"#,
        ] {
            ids.push(
                store
                    .insert_event(event(&Store::new_id()), body)
                    .unwrap()
                    .id,
            );
        }
        let mut f = EventFilter {
            q: Some("hit".into()),
            field: Some(FieldFilter::parse("tag:hit").unwrap()),
            limit: 10,
            ..Default::default()
        };
        // 40 bytes: one 32-byte body fits, twice it does not.
        let mut found = Vec::new();
        for _ in 0..3 {
            let page = store.query_within(&f, 40, query::MAX_SCAN).unwrap();
            found.extend(page.events.into_iter().map(|e| e.id));
            match page.next_cursor {
                Some(c) => f.cursor = Some(c),
                None => break,
            }
        }
        ids.reverse();
        assert_eq!(found, ids);
    }

    /// A body that crosses the `q` budget is never half-searched: the page
    /// stops before it and its cursor leads back to it.
    #[test]
    fn a_text_search_never_skips_a_body_that_crosses_its_budget() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Durability::Buffered).unwrap();
        let mut ids = Vec::new();
        for body in [
            &b"xxxxxxxxxxxxxxxxNEEDLE"[..],
            b"yyyyyyyyyyyyyyyyyyyy",
            b"zzzzzzzzzzzzzzzzzzzz",
        ] {
            let ev = store.insert_event(event(&Store::new_id()), body).unwrap();
            ids.push(ev.id);
        }
        let mut f = EventFilter {
            q: Some("needle".into()),
            limit: 10,
            ..Default::default()
        };
        // 50 bytes: the two newest bodies (40) fit, the needle's (22) not.
        let first = store.query_within(&f, 50, query::MAX_SCAN).unwrap();
        assert!(first.events.is_empty());
        assert!(first.scan_capped);
        assert_eq!(first.next_cursor.as_deref(), Some(ids[1].as_str()));
        f.cursor = first.next_cursor;
        let second = store.query_within(&f, 50, query::MAX_SCAN).unwrap();
        assert_eq!(second.events.len(), 1);
        assert_eq!(second.events[0].id, ids[0]);
        // A body larger than the whole budget is still searched when it
        // comes first, so a search always moves on.
        f.cursor = Some(ids[1].clone());
        let big = store.query_within(&f, 5, query::MAX_SCAN).unwrap();
        assert_eq!(big.events.len(), 1);
    }
}
