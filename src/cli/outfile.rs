//! The file `export -o` and `backup -o` write: replaced only once the
//! download is whole, so a failed one leaves the last one as it was;
//! written through when it is a pipe or a device (`-o >(gzip …)`,
//! `-o /dev/stdout`, and `backup -o -`).

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
    /// Standard output (`-`), as the shell set it up.
    Stdout(std::io::Stdout),
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
                    .prefix(".hookrelay-download-")
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

    /// Standard output; refused on a terminal (an archive is no text).
    pub fn stdout() -> Result<OutFile, String> {
        use std::io::IsTerminal;
        let out = std::io::stdout();
        if out.is_terminal() {
            return Err("standard output is a terminal: give -o FILE, or redirect it".into());
        }
        Ok(OutFile {
            shown: PathBuf::from("standard output"),
            sink: Sink::Stdout(out),
        })
    }

    /// All of it at once.
    pub fn write(mut self, bytes: &[u8]) -> Result<(), String> {
        self.append(bytes)?;
        self.finish()
    }

    /// The next piece; nothing is in place until [`OutFile::finish`].
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), String> {
        let shown = &self.shown;
        let named = |e: std::io::Error| format!("{}: {e}", shown.display());
        match &mut self.sink {
            Sink::Replace { tmp, .. } => tmp.write_all(bytes),
            Sink::Through(file) => file.write_all(bytes),
            Sink::Stdout(out) => out.write_all(bytes),
        }
        .map_err(named)
    }

    /// Puts the whole in place (synced).
    pub fn finish(self) -> Result<(), String> {
        let named = |e: std::io::Error| format!("{}: {e}", self.shown.display());
        match self.sink {
            Sink::Replace { target, tmp } => {
                tmp.as_file().sync_all().map_err(named)?;
                tmp.persist(&target).map_err(|e| named(e.error))?;
                Ok(())
            }
            Sink::Through(mut file) => file.flush().map_err(named),
            Sink::Stdout(mut out) => out.flush().map_err(named),
        }
    }
}
