//! `hookrelay backup` (download the running store's backup, checked
//! against its manifest as it arrives) and `hookrelay restore` (offline,
//! into a new data directory); the archive itself is `store::backup`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::RemoteArgs;
use super::outfile::OutFile;
use super::remote::Remote;

pub async fn download(output: Option<PathBuf>, remote: &RemoteArgs) -> Result<ExitCode, String> {
    let r = Remote::new(remote)?;
    let shown =
        output.unwrap_or_else(|| crate::store::backup::file_name(crate::time::now_ms()).into());
    let mut file = if shown.as_os_str() == "-" {
        OutFile::stdout()?
    } else {
        OutFile::open(&shown)?
    };
    // Checked against its manifest as it arrives: an archive that
    // ends cleanly but early (a proxy in front) is not kept.
    let (feed, pieces) = std::sync::mpsc::sync_channel::<bytes::Bytes>(16);
    let check = std::thread::spawn(move || {
        crate::store::backup::check_archive(Pieces::new(pieces), |_, content| {
            std::io::copy(content, &mut std::io::sink())
                .map(drop)
                .map_err(|e| crate::error::Error::Internal(e.to_string()))
        })
    });
    let bytes = r
        .download("/api/backup", |chunk| {
            file.append(chunk)?;
            // A checker that stopped has its verdict below.
            let _ = feed.send(bytes::Bytes::copy_from_slice(chunk));
            Ok(())
        })
        .await;
    drop(feed);
    let verdict = check
        .join()
        .map_err(|_| "checking the backup failed".to_string())?;
    let bytes = bytes?;
    verdict.map_err(|e| format!("the backup is not whole, nothing was kept: {e}"))?;
    file.finish()?;
    if shown.as_os_str() != "-" {
        eprintln!(
            "backup: {} written to {} (restore it with `hookrelay restore {} --data NEW_DIR`)",
            crate::text::bytes(bytes),
            shown.display(),
            shown.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn restore(file: &Path, data: &Path) -> Result<ExitCode, String> {
    let restored = if file.as_os_str() == "-" {
        crate::store::backup::restore(std::io::stdin().lock(), data)
    } else {
        let f = std::fs::File::open(file).map_err(|e| format!("{}: {e}", file.display()))?;
        crate::store::backup::restore(std::io::BufReader::new(f), data)
    }
    .map_err(|e| format!("restore: {e}"))?;
    say!(
        "restored {} into {}: {} endpoint(s), {} event(s){}; start it with `hookrelay serve --data {}`",
        crate::text::bytes(restored.bytes),
        data.display(),
        restored.endpoints,
        restored.events,
        restored
            .newest
            .map(|id| format!(", the newest {id}"))
            .unwrap_or_default(),
        data.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A reader over the pieces of a download, for checking it as it arrives.
struct Pieces {
    rx: std::sync::mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl Pieces {
    fn new(rx: std::sync::mpsc::Receiver<bytes::Bytes>) -> Self {
        Pieces {
            rx,
            current: bytes::Bytes::new(),
        }
    }
}

impl std::io::Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.recv() {
                Ok(piece) => self.current = piece,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}
