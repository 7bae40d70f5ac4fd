//! The on-disk sequence store, in sled.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kadns_record::DhtKey;

use crate::error::StoreError;
use crate::persist::SledBundles;
use crate::sequence_store::SequenceStore;

/// A [`SequenceStore`] in a sled database of its own: rollback protection
/// that survives restarts and crashes.
///
/// Each raised sequence is flushed to disk before [`SequenceStore::record`]
/// returns. Writes happen only when a bundle newer than any seen before
/// arrives, so the fsync is paid once per zone update, not per lookup. sled
/// holds an exclusive lock on its directory: one process at a time.
#[derive(Debug, Clone)]
pub struct SledSequences {
    tree: sled::Tree,
    db: sled::Db,
}

impl SledSequences {
    /// Opens (or creates) the store in the directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let open_error = |e: sled::Error| StoreError::Open {
            path: path.to_path_buf(),
            source: Arc::new(e),
        };
        let db = sled::Config::new().path(path).open().map_err(open_error)?;
        Self::from_db(db, path.to_path_buf())
    }

    /// A store in a temporary database that is deleted when dropped.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| StoreError::Open {
                path: PathBuf::new(),
                source: Arc::new(e),
            })?;
        Self::from_db(db, PathBuf::new())
    }

    fn from_db(db: sled::Db, path: PathBuf) -> Result<Self, StoreError> {
        let tree = db
            .open_tree("highest_sequence")
            .map_err(|e| StoreError::Open {
                path,
                source: Arc::new(e),
            })?;
        Ok(Self { tree, db })
    }

    /// The persisted cache of verified bundles in the same database (tree
    /// `verified_bundles`), holding at most `max_bytes` of bundles. Bundles
    /// past their signed expiry are deleted now.
    pub fn bundles(&self, max_bytes: u64) -> Result<SledBundles, StoreError> {
        self.bundles_at(max_bytes, crate::fetch::now_unix())
    }

    pub(crate) fn bundles_at(
        &self,
        max_bytes: u64,
        now_unix: u64,
    ) -> Result<SledBundles, StoreError> {
        let tree = self
            .db
            .open_tree("verified_bundles")
            .map_err(|e| StoreError::Scan {
                source: Arc::new(e),
            })?;
        SledBundles::open(tree, max_bytes, now_unix)
    }
}

impl SequenceStore for SledSequences {
    fn record(&self, key: &DhtKey, sequence: u64) -> Result<Option<u64>, StoreError> {
        let io = |op: &'static str| {
            move |e: sled::Error| StoreError::Io {
                op,
                key: *key,
                source: Arc::new(e),
            }
        };
        let decode = |bytes: &[u8]| {
            <[u8; 8]>::try_from(bytes)
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::Corrupt {
                    key: *key,
                    len: bytes.len(),
                })
        };
        let before = self
            .tree
            .fetch_and_update(key.as_bytes(), |old| match old {
                // A corrupt value is left alone and reported below.
                Some(old) if old.len() != 8 => Some(old.to_vec()),
                Some(old) if decode(old).is_ok_and(|b| b >= sequence) => Some(old.to_vec()),
                _ => Some(sequence.to_be_bytes().to_vec()),
            })
            .map_err(io("write"))?;
        let before = before.map(|b| decode(&b)).transpose()?;
        if before.is_none_or(|b| b < sequence) {
            self.db.flush().map_err(io("flush"))?;
        }
        Ok(before)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = DhtKey::from_bytes([7; 32]);
        {
            let store = SledSequences::open(dir.path()).unwrap();
            assert_eq!(store.record(&key, 10).unwrap(), None);
        }
        let store = SledSequences::open(dir.path()).unwrap();
        assert_eq!(store.record(&key, 9).unwrap(), Some(10));
    }

    #[test]
    fn corrupt_values_are_reported() {
        let store = SledSequences::temporary().unwrap();
        let key = DhtKey::from_bytes([8; 32]);
        store.tree.insert(key.as_bytes(), &b"abc"[..]).unwrap();
        assert!(matches!(
            store.record(&key, 1),
            Err(StoreError::Corrupt { len: 3, .. })
        ));
        assert!(
            matches!(store.record(&key, 1), Err(StoreError::Corrupt { .. })),
            "and left alone"
        );
    }
}
