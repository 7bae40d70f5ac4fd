//! Disk-full handling: a free-space guard in front of every write and a
//! ballast file that lets a node whose disk is full open its store again
//! (docs/dht.md, "Storage budget").
//!
//! sled must never see `ENOSPC`: an I/O error during a flush sets its
//! global error, and every later write fails until the database is opened
//! again. So puts are refused (`disk_full`) while less than the reserve is
//! free, which leaves sled the reserve for its own background writes; and
//! at first start a ballast file of the reserve's size is written beside
//! the database. A node that starts on a full disk deletes the ballast,
//! which gives sled room to open, then serves what it holds and refuses
//! puts until space is freed, when the ballast is written again.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The ballast file in the data directory.
pub const BALLAST_FILE: &str = "reserve.ballast";

/// Free space on the file system holding `path`, in bytes, as an
/// unprivileged writer may use it; `None` if it cannot be read.
pub(crate) fn available(path: &Path) -> Option<u64> {
    let stat = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

/// Why a write was refused for lack of space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("disk full: {available} bytes free on the data directory, {reserve} kept in reserve")]
pub struct DiskFull {
    /// Bytes free.
    pub available: u64,
    /// Bytes the node keeps free.
    pub reserve: u64,
}

/// The free-space guard of one data directory.
#[derive(Debug)]
pub(crate) struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
    ballast: PathBuf,
}

impl DiskGuard {
    /// Run before the database opens: deletes the ballast if less than the
    /// reserve is free (so that sled can open), or writes it if it is
    /// missing and there is room for it and the reserve.
    pub(crate) fn prepare(dir: &Path, reserve: u64) -> Self {
        let guard = Self {
            dir: dir.to_path_buf(),
            reserve,
            ballast: dir.join(BALLAST_FILE),
        };
        let free = available(dir);
        if guard.ballast.exists() {
            if free.is_some_and(|free| free < reserve) {
                match std::fs::remove_file(&guard.ballast) {
                    Ok(()) => tracing::warn!(
                        dir = %dir.display(),
                        free = free.unwrap_or(0),
                        released = reserve,
                        "disk full: deleted the ballast file so the store can open; \
                         puts are refused until space is freed"
                    ),
                    Err(e) => tracing::error!(
                        path = %guard.ballast.display(),
                        error = %e,
                        "disk full and the ballast file cannot be deleted"
                    ),
                }
            }
        } else {
            guard.restore_ballast(free);
        }
        guard
    }

    /// `Ok` if a write may go ahead: at least the reserve is free (after
    /// the ballast is written again, if it was missing and there is room).
    pub(crate) fn check(&self) -> Result<(), DiskFull> {
        let Some(free) = available(&self.dir) else {
            // Cannot tell: let the engine decide (and fail cleanly).
            return Ok(());
        };
        let free = if self.ballast.exists() {
            free
        } else if self.restore_ballast(Some(free)) {
            free.saturating_sub(self.reserve)
        } else {
            free
        };
        if free < self.reserve {
            return Err(DiskFull {
                available: free,
                reserve: self.reserve,
            });
        }
        Ok(())
    }

    /// Writes the ballast if `free` leaves room for it and the reserve;
    /// returns whether it did.
    fn restore_ballast(&self, free: Option<u64>) -> bool {
        if free.is_none_or(|free| free < self.reserve.saturating_mul(2)) {
            return false;
        }
        match write_ballast(&self.ballast, self.reserve) {
            Ok(()) => {
                tracing::info!(
                    path = %self.ballast.display(),
                    bytes = self.reserve,
                    "ballast file written"
                );
                true
            }
            Err(e) => {
                tracing::warn!(path = %self.ballast.display(), error = %e, "cannot write the ballast file");
                let _ = std::fs::remove_file(&self.ballast);
                false
            }
        }
    }
}

/// Writes `len` bytes to `path` with their blocks allocated (a sparse file
/// would free nothing when deleted), then syncs it. Written under a
/// temporary name and renamed, so a crash leaves no short ballast.
fn write_ballast(path: &Path, len: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    if allocate(&file, len).is_err() {
        // No fallocate here: write the bytes (not zeros, which some file
        // systems store sparsely or compress).
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
    }
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
}

fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    let len = i64::try_from(len).map_err(std::io::Error::other)?;
    nix::fcntl::fallocate(file, nix::fcntl::FallocateFlags::empty(), 0, len)
        .map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ballast_is_written_with_room_and_refusal_follows_free_space() {
        let dir = tempfile::tempdir().unwrap();
        let free = available(dir.path()).unwrap();
        // A reserve the disk can hold twice: the ballast is written.
        let guard = DiskGuard::prepare(dir.path(), 1 << 20);
        let meta = std::fs::metadata(dir.path().join(BALLAST_FILE)).unwrap();
        assert_eq!(meta.len(), 1 << 20);
        assert!(guard.check().is_ok());
        // A reserve larger than the free space: refused, ballast deleted
        // at prepare (it exists and less than the reserve is free).
        let huge = free.saturating_mul(4);
        let full = DiskGuard::prepare(dir.path(), huge);
        assert!(!dir.path().join(BALLAST_FILE).exists());
        let refusal = full.check().unwrap_err();
        assert_eq!(refusal.reserve, huge);
        assert!(refusal.available < huge);
    }
}
