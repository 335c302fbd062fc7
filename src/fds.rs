//! The process's file descriptors: the soft limit raised to the hard one at
//! start, and shared out so that no consumer can take what another cannot
//! do without. RocksDB above all: a store that cannot open its next WAL
//! file stops taking writes until a restart, so idle sockets must never
//! use up the descriptors it needs.
//!
//! Inbound connections are capped (see `server`), and so are outbound ones
//! (`deliver::slots`); running out of those is hookrelay's failure, not
//! the target's.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Linux's default ceiling (`fs.nr_open`) for a soft limit when the hard
/// one is unlimited.
const NR_OPEN: u64 = 1 << 20;
/// Descriptors that are neither RocksDB's tables nor connections: standard
/// streams, runtime pollers and wakers, WAL files, the manifest, RocksDB's
/// log, certificate and config files, exports being written.
const FIXED: u64 = 96;
/// Open connections per listener beyond which more descriptors buy nothing
/// (each costs a task and buffers).
pub const MAX_CONNECTIONS: usize = 10_000;

/// How the descriptors are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// The soft limit it is made from.
    pub limit: u64,
    /// RocksDB's `max_open_files`: table files kept open at once (others
    /// are opened when read).
    pub rocksdb_files: i32,
    /// Connections the ingest listener holds at once.
    pub ingest_connections: usize,
    /// Connections the admin listener holds at once.
    pub admin_connections: usize,
    /// Connections to receivers open at once, pooled idle ones included.
    pub outbound_connections: usize,
}

impl Budget {
    /// The budget for a soft limit of `limit` descriptors. Of what RocksDB
    /// and [`FIXED`] leave, ingest connections get 3 in 10, admin ones 1 in
    /// 10 and outbound ones the other 6: a forward holds an outbound
    /// connection besides its inbound one (two with a mirror; an HTTP/2
    /// sender has up to 100 forwards on one), and pooled outbound
    /// connections stay open a while after.
    pub fn for_limit(limit: u64) -> Budget {
        let rocksdb = (limit / 8).clamp(32, 1024);
        let spare = limit.saturating_sub(rocksdb + FIXED);
        let share = |tenths: u64, floor: usize| {
            usize::try_from(spare * tenths / 10)
                .unwrap_or(usize::MAX)
                .clamp(floor, MAX_CONNECTIONS)
        };
        Budget {
            limit,
            rocksdb_files: rocksdb as i32,
            ingest_connections: share(3, 8),
            admin_connections: share(1, 4),
            outbound_connections: usize::try_from(spare * 6 / 10).unwrap_or(usize::MAX).max(8),
        }
    }

    /// The budget for the soft limit now in force.
    pub fn current() -> Budget {
        Budget::for_limit(soft_limit())
    }
}

/// The soft limit on open descriptors.
pub fn soft_limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(NR_OPEN)
}

/// Raises the soft limit to the hard one (1,024 is a common soft limit,
/// reached by a thousand idle senders), and returns the limit in force.
/// A refusal leaves it as it was.
pub fn raise() -> u64 {
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(NR_OPEN);
    let hard = now.maximum.unwrap_or(NR_OPEN);
    if hard > soft {
        let raised = Rlimit {
            current: Some(hard),
            maximum: now.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(soft, hard, error = %e, "cannot raise the open-file limit");
        }
    }
    soft_limit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_limit_still_leaves_room_for_every_consumer() {
        let b = Budget::for_limit(256);
        assert_eq!(b.rocksdb_files, 32);
        // 256 - 32 - 96 = 128 spare: 38 ingest, 12 admin, 76 outbound.
        assert_eq!(
            (
                b.ingest_connections,
                b.admin_connections,
                b.outbound_connections
            ),
            (38, 12, 76)
        );
        let used = b.rocksdb_files as u64
            + FIXED
            + (b.ingest_connections + b.admin_connections + b.outbound_connections) as u64;
        assert!(used <= 256, "{used} descriptors shared out of 256");
    }

    #[test]
    fn the_common_soft_limit_and_a_raised_one() {
        let b = Budget::for_limit(1024);
        assert_eq!(
            (b.rocksdb_files, b.ingest_connections, b.admin_connections),
            (128, 240, 80)
        );
        let b = Budget::for_limit(NR_OPEN);
        assert_eq!(b.rocksdb_files, 1024);
        assert_eq!(
            (b.ingest_connections, b.admin_connections),
            (MAX_CONNECTIONS, MAX_CONNECTIONS)
        );
    }

    #[test]
    fn a_limit_below_the_fixed_needs_keeps_a_few_connections() {
        let b = Budget::for_limit(64);
        assert_eq!((b.ingest_connections, b.admin_connections), (8, 4));
    }
}
