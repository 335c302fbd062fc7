//! The file `export -o` writes: replaced only once the export is whole, so
//! a failed export leaves the last one as it was; written through when it
//! is a pipe or a device (`-o >(gzip …)`, `-o /dev/stdout`).

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct OutFile {
    /// The path as the user gave it, for messages.
    shown: PathBuf,
    sink: Sink,
}

enum Sink {
    /// A regular file (or a name not taken yet): a temporary file beside
    /// it, renamed over it once written. Dropped unrenamed, it is removed.
    Replace {
        target: PathBuf,
        tmp: tempfile::NamedTempFile,
    },
    /// A FIFO, a terminal, a character device: nothing there to keep, and
    /// a rename would put a regular file in its place.
    Through(File),
}

impl OutFile {
    /// Opened before the download: a directory that cannot be written is
    /// said before up to 128 MiB are fetched, not after.
    pub fn open(path: &Path) -> Result<OutFile, String> {
        let named = |e: std::io::Error| format!("{}: {e}", path.display());
        let sink = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => return Err(format!("{}: is a directory", path.display())),
            Ok(m) if !m.is_file() => {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(named)?;
                Sink::Through(file)
            }
            found => {
                // Through a symbolic link to its file: the link stays (one
                // to nothing yet gets its file made).
                let target = match found {
                    Ok(_) => std::fs::canonicalize(path).map_err(named)?,
                    Err(_) => match std::fs::read_link(path) {
                        Ok(to) => path.parent().unwrap_or(Path::new("")).join(to),
                        Err(_) => path.to_path_buf(),
                    },
                };
                let dir = target
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                if !dir.is_dir() {
                    return Err(format!(
                        "{}: no such directory {}",
                        path.display(),
                        dir.display()
                    ));
                }
                // Its error names the temporary file; the user named `path`.
                let tmp = tempfile::Builder::new()
                    .prefix(".hookrelay-export-")
                    .tempfile_in(dir)
                    .map_err(|e| named(std::io::Error::from(e.kind())))?;
                Sink::Replace { target, tmp }
            }
        };
        Ok(OutFile {
            shown: path.to_path_buf(),
            sink,
        })
    }

    pub fn write(self, bytes: &[u8]) -> Result<(), String> {
        let named = |e: std::io::Error| format!("{}: {e}", self.shown.display());
        match self.sink {
            Sink::Replace { target, mut tmp } => {
                tmp.write_all(bytes)
                    .and_then(|()| tmp.as_file().sync_all())
                    .map_err(named)?;
                tmp.persist(&target).map_err(|e| named(e.error))?;
                Ok(())
            }
            Sink::Through(mut file) => file.write_all(bytes).map_err(named),
        }
    }
}
