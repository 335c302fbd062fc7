//! Backups of the whole store, and their restore. A backup is a RocksDB
//! checkpoint of the running store (consistent: every event acknowledged
//! before it started is in it), sent as a tar archive whose last entry is a
//! manifest with every file's size and SHA-256. A restore writes such an
//! archive into a new (or empty) data directory through a staging
//! directory, checks it against its manifest and opens it before putting it
//! in place, so a cut or damaged backup is refused rather than half
//! restored; the locks that keep two restores out of each other's way are
//! here too. Owns the archive's format.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Durability, Store, WAL_CAP, WAL_HEADROOM, keys};
use crate::error::{Error, Result};

/// The archive's last entry.
pub const MANIFEST: &str = "hookrelay-backup.json";
/// The manifest's `format`: what a restore knows how to read.
const FORMAT: u32 = 1;
/// Checkpoints are made inside the data directory (hard links need the
/// same file system) under this prefix, and removed once sent; one left by
/// a crash is removed at the next start ([`remove_stale`]).
const STAGING_PREFIX: &str = ".backup-";
/// The most a manifest may take: ~100 bytes per file.
const MANIFEST_MAX: u64 = 16 << 20;

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: u32,
    hookrelay: String,
    created_at: String,
    files: Vec<FileEntry>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct FileEntry {
    name: String,
    size: u64,
    sha256: String,
}

/// A checkpoint of the store in the data directory, removed when dropped.
pub struct Checkpoint {
    dir: PathBuf,
}

impl Checkpoint {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Checkpoint {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.dir.display(), error = %e, "could not remove a backup's checkpoint");
        }
    }
}

/// What went into an archive.
#[derive(Debug)]
pub struct Written {
    pub files: usize,
    pub bytes: u64,
}

/// What a restore put in place.
#[derive(Debug)]
pub struct Restored {
    pub endpoints: usize,
    pub events: u64,
    /// The newest event's id.
    pub newest: Option<String>,
    pub bytes: u64,
}

impl Store {
    /// A consistent copy of the store beside it (hard links for the table
    /// files; the memtables are flushed into new ones first).
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        // The flush writes up to the memtables' size and a copy of the WAL:
        // like a WAL write-out, not attempted without room for it.
        let memtables = self.property_sum("rocksdb.size-all-mem-tables");
        self.wal
            .room_for_wal(memtables.saturating_add(WAL_CAP), WAL_HEADROOM)?;
        // What is acknowledged is on disk before the copy is taken.
        self.sync_wal()?;
        let dir = self
            .wal
            .space
            .dir
            .join(format!("{STAGING_PREFIX}{}", Store::new_id()));
        let made =
            rocksdb::checkpoint::Checkpoint::new(&*self.db).and_then(|c| c.create_checkpoint(&dir));
        let checkpoint = Checkpoint { dir };
        made?;
        Ok(checkpoint)
    }
}

/// The name a backup made at `now_ms` is saved under:
/// `hookrelay-backup-20261203T211500Z.tar`.
pub fn file_name(now_ms: u64) -> String {
    let stamp: String = crate::time::rfc3339_ms(now_ms)
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(15)
        .collect();
    format!("hookrelay-backup-{stamp}Z.tar")
}

/// `Err` for a directory with table files but no `CURRENT`: a restore
/// interrupted while moving its files in. RocksDB would start an empty
/// store there and the restored events would seem lost.
pub fn refuse_half_restored(data: &Path) -> Result<()> {
    if data.join("CURRENT").exists() {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(data) else {
        return Ok(());
    };
    let tables = entries
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".sst"));
    if tables {
        return Err(Error::Unavailable(format!(
            "{} holds a store's table files but no CURRENT file: a restore that was interrupted? Empty the directory and run `hookrelay restore` again",
            data.display()
        )));
    }
    Ok(())
}

/// Removes checkpoints a backup cut short by a crash left in `data`.
pub fn remove_stale(data: &Path) {
    let Ok(entries) = std::fs::read_dir(data) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAGING_PREFIX)
        {
            drop(Checkpoint { dir: entry.path() });
        }
    }
}

/// Writes the files of `checkpoint` to `out` as a tar archive, the manifest
/// last. An error leaves the archive without its manifest: a restore
/// refuses it. `keep_going` is asked before each file: the checkpoint's
/// links keep table files the store has since deleted, so a slow download
/// of a busy store holds more and more of the disk, and is stopped when
/// the store needs the room.
pub fn write_archive(
    checkpoint: &Path,
    out: impl Write,
    keep_going: impl Fn() -> Result<()>,
) -> Result<Written> {
    let io = |e: std::io::Error| Error::Internal(format!("writing the backup: {e}"));
    let mut names: Vec<String> = std::fs::read_dir(checkpoint)
        .map_err(io)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()
        .map_err(io)?;
    names.sort();
    let mtime = crate::time::now_ms() / 1000;
    let mut tar = tar::Builder::new(out);
    let mut files = Vec::with_capacity(names.len());
    let mut bytes = 0;
    for name in names {
        keep_going()?;
        let file = std::fs::File::open(checkpoint.join(&name)).map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        let mut reader = Hashing::new(file.take(size));
        tar.append(&header(&name, size, mtime), &mut reader)
            .map_err(io)?;
        if reader.count != size {
            return Err(Error::Internal(format!(
                "writing the backup: {name} changed while it was read"
            )));
        }
        bytes += size;
        files.push(FileEntry {
            name,
            size,
            sha256: reader.hex(),
        });
    }
    let written = Written {
        files: files.len(),
        bytes,
    };
    let manifest = serde_json::to_vec_pretty(&Manifest {
        format: FORMAT,
        hookrelay: env!("CARGO_PKG_VERSION").into(),
        created_at: crate::time::rfc3339_ms(crate::time::now_ms()),
        files,
    })
    .map_err(|e| Error::Internal(e.to_string()))?;
    tar.append(
        &header(MANIFEST, manifest.len() as u64, mtime),
        manifest.as_slice(),
    )
    .map_err(io)?;
    tar.into_inner().and_then(|mut w| w.flush()).map_err(io)?;
    Ok(written)
}

fn header(name: &str, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    // Names are RocksDB's own (000123.sst, MANIFEST-000005): short ASCII.
    let _ = h.set_path(name);
    h.set_size(size);
    // The store holds captured credentials and signing secrets.
    h.set_mode(0o600);
    h.set_mtime(mtime);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

/// Reads an archive through, checking it against its manifest: every
/// entry a plain file with a name RocksDB gives its files, the sizes and
/// SHA-256 sums as listed, the store's `CURRENT` and `MANIFEST` among
/// them, nothing after the manifest. `save` gets each file's content (a
/// restore writes it, a download's check only reads it). Returns the bytes
/// of the files.
pub fn check_archive(
    input: impl Read,
    mut save: impl FnMut(&str, &mut dyn Read) -> Result<()>,
) -> Result<u64> {
    let invalid = Error::Unprocessable;
    let cut = || invalid("the archive ends early: the backup was cut short (take it again)".into());
    let unreadable = |e: std::io::Error| {
        // tar's messages quote the header bytes it could not read.
        let why: String = e
            .to_string()
            .chars()
            .map(
                |c| match c.is_control() || c == char::REPLACEMENT_CHARACTER {
                    true => '?',
                    false => c,
                },
            )
            .take(160)
            .collect();
        invalid(format!(
            "the archive is unreadable ({why}): cut short, or not one `hookrelay backup` made"
        ))
    };
    let (head, input) = peek(input, 6).map_err(unreadable)?;
    if let Some(kind) = compressed(&head) {
        return Err(invalid(format!(
            "the archive is compressed ({kind}): decompress it first, e.g. `{kind} -dc FILE | hookrelay restore - --data DIR`"
        )));
    }
    let mut found: BTreeMap<String, FileEntry> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    let mut archive = tar::Archive::new(input);
    for entry in archive.entries().map_err(unreadable)? {
        let mut entry = entry.map_err(unreadable)?;
        let name = entry_name(&entry)?;
        if manifest.is_some() {
            return Err(invalid(format!(
                "{name} follows the manifest: this is not an archive `hookrelay backup` made"
            )));
        }
        if !matches!(entry.header().entry_type(), tar::EntryType::Regular) {
            return Err(invalid(format!(
                "{name} is not a regular file: this is not an archive `hookrelay backup` made"
            )));
        }
        let size = entry.size();
        if name == MANIFEST {
            if size > MANIFEST_MAX {
                return Err(invalid("the backup's manifest is too large".into()));
            }
            let mut text = Vec::new();
            entry.read_to_end(&mut text).map_err(|_| cut())?;
            if text.len() as u64 != size {
                return Err(cut());
            }
            manifest = Some(
                serde_json::from_slice(&text)
                    .map_err(|e| invalid(format!("the backup's manifest is unreadable: {e}")))?,
            );
            continue;
        }
        if !is_store_file(&name) {
            return Err(invalid(format!(
                "{name} is not a file of a store: this is not an archive `hookrelay backup` made"
            )));
        }
        if found.contains_key(&name) {
            return Err(invalid(format!("{name} is in the archive twice")));
        }
        let mut reader = Hashing::new(&mut entry);
        save(&name, &mut reader)?;
        // A short entry reads as a short file (tar finds the cut at the
        // next header): the size says so at once.
        if reader.count != size {
            return Err(cut());
        }
        found.insert(
            name.clone(),
            FileEntry {
                size: reader.count,
                sha256: reader.hex(),
                name,
            },
        );
    }
    let manifest = manifest.ok_or_else(cut)?;
    if manifest.format != FORMAT {
        return Err(invalid(format!(
            "the backup is in format {} (made by hookrelay {}); this hookrelay reads format {FORMAT}",
            manifest.format, manifest.hookrelay
        )));
    }
    let mut bytes = 0;
    for want in &manifest.files {
        match found.remove(&want.name) {
            Some(got) if got == *want => bytes += got.size,
            Some(_) => {
                return Err(invalid(format!(
                    "{} does not match the manifest (size or SHA-256): the backup is damaged",
                    want.name
                )));
            }
            None => {
                return Err(invalid(format!(
                    "{} is in the manifest but not in the archive: the backup is damaged",
                    want.name
                )));
            }
        }
    }
    if let Some(extra) = found.keys().next() {
        return Err(invalid(format!(
            "{extra} is in the archive but not in its manifest: this is not an archive `hookrelay backup` made"
        )));
    }
    let has = |prefix: &str| manifest.files.iter().any(|f| f.name.starts_with(prefix));
    if !has("CURRENT") || !has("MANIFEST-") {
        return Err(invalid(
            "the archive holds no store (no CURRENT and MANIFEST files): this is not an archive `hookrelay backup` made"
                .into(),
        ));
    }
    Ok(bytes)
}

/// The names RocksDB gives the files a checkpoint holds.
fn is_store_file(name: &str) -> bool {
    let numbered = |rest: &str| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit());
    name == "CURRENT"
        || name == "IDENTITY"
        || name.strip_prefix("MANIFEST-").is_some_and(numbered)
        || name.strip_prefix("OPTIONS-").is_some_and(numbered)
        || [".sst", ".log", ".blob"]
            .iter()
            .any(|ext| name.strip_suffix(ext).is_some_and(numbered))
}

/// Restores the archive read from `input` into `data`, which must not
/// exist or be an empty directory. The files go to a staging directory
/// (beside `data`, or inside it when it exists: a mount point or a
/// directory made for the service keeps its owner and mode), are checked
/// against the manifest, opened as a store, and only then moved into
/// place, `CURRENT` last: until it is there, [`Store::open`] refuses the
/// directory rather than start an empty store in it.
pub fn restore(input: impl Read, data: &Path) -> Result<Restored> {
    let io = |what: &Path, e: std::io::Error| {
        Error::Unavailable(format!("restoring into {}: {e}", what.display()))
    };
    let existing = match std::fs::symlink_metadata(data) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(Error::Conflict(format!(
                "{} is a symbolic link: give the directory it points to",
                data.display()
            )));
        }
        Ok(m) if !m.is_dir() => {
            return Err(Error::Conflict(format!(
                "{} is not a directory",
                data.display()
            )));
        }
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(io(data, e)),
    };
    let parent = match data.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let home = if existing { data } else { parent };
    // Held to the end: two restores into one existing directory would
    // both find it empty, then move their files over each other's; one
    // into a new directory in it (which holds its parent shared) would put
    // a store inside the one being restored.
    let _lock = match existing {
        true => lock_dir(data, Lock::Exclusive)
            .map_err(|e| io(data, e))?
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "another restore into {} (or into a new directory in it) is under way",
                    data.display()
                ))
            })?,
        false => {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
            lock_dir(parent, Lock::Shared)
                .map_err(|e| io(parent, e))?
                .ok_or_else(|| {
                    Error::Conflict(format!("a restore into {} is under way", parent.display()))
                })?
        }
    };
    let others_restoring = remove_stale_restores(home);
    if existing {
        if others_restoring {
            return Err(Error::Conflict(format!(
                "another restore into {} is under way",
                data.display()
            )));
        }
        let others: Vec<_> = std::fs::read_dir(data)
            .map_err(|e| io(data, e))?
            .flatten()
            // A fresh ext4 file system's own directory: its mount point is
            // "empty" to `serve` too.
            .filter(|e| e.file_name() != "lost+found" || !e.path().is_dir())
            .map(|e| e.file_name())
            .collect();
        if !others.is_empty() {
            return Err(Error::Conflict(format!(
                "{} already holds files: restore into a new or empty directory (and point --data at it), or move this one away first",
                data.display()
            )));
        }
    }
    let staging = Staging::new(home).map_err(|e| io(home, e))?;
    let bytes = check_archive(input, |name, content| {
        let path = staging.path().join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        std::io::copy(content, &mut file).map_err(|e| io(&path, e))?;
        file.sync_all().map_err(|e| io(&path, e))
    })?;
    // Opened (and so read through RocksDB's own checks) before it replaces
    // anything; the events' keys are read for the summary.
    let (endpoints, events, newest) = {
        let store = Store::open(staging.path(), Durability::Sync).map_err(|e| {
            Error::Unprocessable(format!("the restored files do not open as a store: {e}"))
        })?;
        let endpoints = store.endpoints()?.len();
        let mut events = 0;
        let mut newest = None;
        for item in store
            .db
            .iterator_cf(&store.cf(keys::EVENTS), rocksdb::IteratorMode::End)
        {
            let (key, _) = item?;
            if newest.is_none() {
                newest = keys::id_string(&key);
            }
            events += 1;
        }
        store.flush()?;
        (endpoints, events, newest)
    };
    if existing {
        let mut names: Vec<_> = std::fs::read_dir(staging.path())
            .map_err(|e| io(staging.path(), e))?
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "LOCK")
            .collect();
        // CURRENT last: it is what makes the directory a store.
        names.sort_by_key(|n| n == "CURRENT");
        for name in names {
            let to = data.join(&name);
            std::fs::rename(staging.path().join(&name), &to).map_err(|e| io(&to, e))?;
        }
        sync_dir(data);
    } else {
        // Not over a directory made meanwhile (another restore's, which
        // a plain rename replaces when empty).
        rename_new(staging.path(), data).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Conflict(format!(
                "{} was made while this restore ran (another restore?): nothing was put in place",
                data.display()
            )),
            _ => io(data, e),
        })?;
        staging.moved();
        sync_dir(parent);
    }
    Ok(Restored {
        endpoints,
        events,
        newest,
        bytes,
    })
}

/// Where a restore stages its files; one left by an interrupted restore is
/// removed by the next, one still in use (locked) is not.
const RESTORE_PREFIX: &str = ".hookrelay-restore-";
/// A staging directory before it is locked: see [`Staging::new`].
const MAKING_PREFIX: &str = ".hookrelay-restoring-";

/// A restore's staging directory, locked (`flock`) for as long as the
/// restore runs, and removed when dropped unless moved into place.
struct Staging {
    path: PathBuf,
    _lock: std::fs::File,
    moved: bool,
}

impl Staging {
    fn new(home: &Path) -> std::io::Result<Staging> {
        // Made under a name the stale sweep passes over, locked, and only
        // then given the name it looks for: another restore starting in
        // between must not take it for one left behind.
        let made = tempfile::Builder::new()
            .prefix(MAKING_PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir_in(home)?;
        let lock = lock_dir(made.path(), Lock::Exclusive)?.ok_or_else(|| {
            std::io::Error::other("a directory just made is locked by another process")
        })?;
        let name = made
            .path()
            .file_name()
            .unwrap_or_default()
            .to_string_lossy();
        let path = home.join(name.replacen(MAKING_PREFIX, RESTORE_PREFIX, 1));
        rename_new(made.path(), &path)?;
        let _renamed = made.keep();
        Ok(Staging {
            path,
            _lock: lock,
            moved: false,
        })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Renamed into place: nothing is left to remove.
    fn moved(mut self) {
        self.moved = true;
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.moved {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[derive(Clone, Copy)]
enum Lock {
    Shared,
    Exclusive,
}

/// `dir` opened and locked (`flock`), or none when another process holds
/// a lock that excludes this one. A file system without such locks (some
/// network ones) gets the directory unlocked: restores there are not kept
/// apart.
fn lock_dir(dir: &Path, how: Lock) -> std::io::Result<Option<std::fs::File>> {
    let d = std::fs::File::open(dir)?;
    let op = match how {
        Lock::Shared => rustix::fs::FlockOperation::NonBlockingLockShared,
        Lock::Exclusive => rustix::fs::FlockOperation::NonBlockingLockExclusive,
    };
    match rustix::fs::flock(&d, op) {
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Ok(()) | Err(_) => Ok(Some(d)),
    }
}

/// Renames `from` to `to`, which must not exist (not even as an empty
/// directory, which a plain rename replaces).
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    let cwd = rustix::fs::CWD;
    rustix::fs::renameat_with(cwd, from, cwd, to, rustix::fs::RenameFlags::NOREPLACE)
        .map_err(std::io::Error::from)
}

/// Removes the staging directories in `dir` that interrupted restores left
/// (and a not yet locked one a minute old, left by a crash at its making);
/// returns whether another restore is using one there now.
fn remove_stale_restores(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    let mut in_use = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(RESTORE_PREFIX) {
            // One that cannot be opened cannot be removed either: the
            // emptiness check then names the directory as it is.
            match lock_dir(&entry.path(), Lock::Exclusive) {
                Ok(Some(_lock)) => {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
                Ok(None) => in_use = true,
                Err(_) => {}
            }
        } else if name.starts_with(MAKING_PREFIX)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(60))
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    in_use
}

/// The first `n` bytes of `input` (fewer at its end), and `input` whole again.
fn peek(mut input: impl Read, n: usize) -> std::io::Result<(Vec<u8>, impl Read)> {
    let mut head = Vec::with_capacity(n);
    (&mut input).take(n as u64).read_to_end(&mut head)?;
    Ok((head.clone(), std::io::Cursor::new(head).chain(input)))
}

/// The compressor whose magic number `head` starts with: an archive
/// compressed for keeping (the README suggests `zstd`) and given as is.
fn compressed(head: &[u8]) -> Option<&'static str> {
    const MAGIC: [(&[u8], &str); 5] = [
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
        (&[0x1f, 0x8b], "gzip"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
        (b"BZh", "bzip2"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4"),
    ];
    MAGIC
        .iter()
        .find(|(magic, _)| head.starts_with(magic))
        .map(|(_, kind)| *kind)
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The file name an archive entry stands for: one plain name such as
/// RocksDB writes, never a path (`../x`, `/etc/x`, `a/b`).
fn entry_name<R: Read>(entry: &tar::Entry<R>) -> Result<String> {
    let raw = entry.path_bytes();
    let name = std::str::from_utf8(&raw).unwrap_or("");
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain {
        return Err(Error::Unprocessable(format!(
            "the archive holds {:?}, which is not a file name of a backup: this is not an archive `hookrelay backup` made",
            String::from_utf8_lossy(&raw)
        )));
    }
    Ok(name.to_string())
}

/// A reader that counts and hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    count: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            count: 0,
        }
    }

    fn hex(&self) -> String {
        crate::signature::hex(&self.hash.clone().finalize())
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}
