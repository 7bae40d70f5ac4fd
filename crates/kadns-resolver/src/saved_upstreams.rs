//! The upstreams of the last good start, saved in the data directory: what
//! keeps a stub useful once `/etc/resolv.conf` points at the stub itself
//! (the reboot trap).

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Most servers saved: more than resolv.conf can name (glibc uses 3).
const MAX_SAVED: usize = 16;

/// A file of upstream addresses, one `ADDR:PORT` a line, replaced
/// crash-safely (written to a temporary file, synced, renamed over the old
/// one, and the directory synced): a crash leaves the old list or the new
/// one, never a torn file.
#[derive(Clone, Debug)]
pub struct SavedUpstreams {
    path: PathBuf,
}

/// Why the saved upstreams could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// A file operation failed.
    #[error("cannot save the upstreams to {path}: {source}")]
    Io {
        /// The file written.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}

impl SavedUpstreams {
    /// The list kept at `path` (typically `<data dir>/upstreams`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the list is kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved servers; none if the file is missing or unreadable. Lines
    /// that do not parse are skipped.
    pub fn load(&self) -> Vec<SocketAddr> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .take(MAX_SAVED)
                .collect(),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(error) => {
                tracing::warn!(path = %self.path.display(), %error, "cannot read the saved upstreams");
                Vec::new()
            }
        }
    }

    /// Replaces the list with `servers` (at most 16 kept), crash-safely.
    /// An empty list is not saved: the last good one stays.
    pub fn save(&self, servers: &[SocketAddr]) -> Result<(), SaveError> {
        if servers.is_empty() {
            return Ok(());
        }
        let io = |source| SaveError::Io {
            path: self.path.clone(),
            source,
        };
        let text: String = servers
            .iter()
            .take(MAX_SAVED)
            .map(|s| format!("{s}\n"))
            .collect();
        if std::fs::read_to_string(&self.path).is_ok_and(|old| old == text) {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self.path.with_extension("tmp");
        {
            let mut file = std::fs::File::create(&tmp).map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_and_loads_replacing_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let saved = SavedUpstreams::at(dir.path().join("sub/upstreams"));
        assert!(saved.load().is_empty(), "nothing saved yet");
        let a: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let b: SocketAddr = "[2001:db8::1]:5300".parse().unwrap();
        saved.save(&[a, b]).unwrap();
        assert_eq!(saved.load(), [a, b]);
        saved.save(&[]).unwrap();
        assert_eq!(
            saved.load(),
            [a, b],
            "an empty list keeps the last good one"
        );
        saved.save(&[b]).unwrap();
        assert_eq!(saved.load(), [b]);
        assert!(!saved.path().with_extension("tmp").exists());
        std::fs::write(saved.path(), "garbage\n192.0.2.9:53\n").unwrap();
        assert_eq!(
            saved.load(),
            ["192.0.2.9:53".parse::<SocketAddr>().unwrap()]
        );
    }
}
