//! The persisted cache of verified bundles, for serving stale answers after
//! a restart while the network is down.
//!
//! Only bundles that were verified when fetched are written, and nothing
//! read back is trusted: the resolver runs `kadns_record::validate` and the
//! rollback check on every bundle it loads, and drops (deletes) what fails.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use kadns_record::DhtKey;

use crate::error::StoreError;

/// Default bound on the bytes a [`SledBundles`] holds: 16 MiB, about 4 000
/// full-size (4 KiB) bundles, far more small ones.
pub const DEFAULT_PERSIST_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// Where the last verified bundle of each name is kept across restarts.
///
/// Synchronous (it may block on disk; the resolver calls it on tokio's
/// blocking pool). A store is a cache, not a source of truth: losing an entry
/// costs a stale answer, never correctness, so writes need not be flushed.
pub trait BundleStore: Send + Sync + 'static {
    /// Saves the bytes of a verified bundle under `key`, replacing what was
    /// there; `expires` is its signed expiry (unix seconds), for eviction.
    fn save(&self, key: &DhtKey, expires: u64, bytes: &[u8]) -> Result<(), StoreError>;
    /// The bytes saved under `key`, if any (unverified).
    fn load(&self, key: &DhtKey) -> Result<Option<Vec<u8>>, StoreError>;
    /// Forgets `key` (its bundle failed validation, or is superseded).
    fn remove(&self, key: &DhtKey) -> Result<(), StoreError>;

    /// Whether calls may block (on disk): if so (the default) the resolver
    /// runs them on tokio's blocking pool, else inline.
    fn blocks(&self) -> bool {
        true
    }
}

/// Byte accounting and the eviction order, shared by both stores.
#[derive(Debug, Default)]
struct Index {
    /// key → (expires, length).
    entries: HashMap<DhtKey, (u64, usize)>,
    /// (expires, key): the earliest expiry is evicted first.
    by_expiry: BTreeSet<(u64, DhtKey)>,
    bytes: u64,
}

impl Index {
    fn insert(&mut self, key: DhtKey, expires: u64, len: usize) {
        self.remove(&key);
        self.entries.insert(key, (expires, len));
        self.by_expiry.insert((expires, key));
        self.bytes += len as u64;
    }

    fn remove(&mut self, key: &DhtKey) {
        if let Some((expires, len)) = self.entries.remove(key) {
            self.by_expiry.remove(&(expires, *key));
            self.bytes -= len as u64;
        }
    }

    /// Keys to evict so that the total fits `max_bytes`, earliest expiry first.
    fn over(&mut self, max_bytes: u64) -> Vec<DhtKey> {
        let mut victims = Vec::new();
        while self.bytes > max_bytes {
            let Some(&(_, key)) = self.by_expiry.first() else {
                break;
            };
            self.remove(&key);
            victims.push(key);
        }
        victims
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update leaves the maps consistent before it can panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The index and the bytes of a [`MemoryBundles`].
type Held = (Index, HashMap<DhtKey, Vec<u8>>);

/// A [`BundleStore`] in memory, bounded in bytes: for tests and embedders.
/// Clones share the same map.
#[derive(Clone, Debug)]
pub struct MemoryBundles {
    inner: Arc<Mutex<Held>>,
    max_bytes: u64,
}

impl Default for MemoryBundles {
    fn default() -> Self {
        Self::new(DEFAULT_PERSIST_MAX_BYTES)
    }
}

impl MemoryBundles {
    /// An empty store holding at most `max_bytes` of bundles.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            inner: Arc::default(),
            max_bytes,
        }
    }

    /// The bytes held under `key`.
    pub fn get_raw(&self, key: &DhtKey) -> Option<Vec<u8>> {
        lock(&self.inner).1.get(key).cloned()
    }

    /// Puts arbitrary bytes under `key`, as a damaged disk could.
    pub fn put_raw(&self, key: DhtKey, bytes: Vec<u8>) {
        let mut inner = lock(&self.inner);
        inner.0.insert(key, u64::MAX, bytes.len());
        inner.1.insert(key, bytes);
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        lock(&self.inner).1.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        lock(&self.inner).0.bytes
    }
}

impl BundleStore for MemoryBundles {
    fn save(&self, key: &DhtKey, expires: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        let (index, map) = &mut *inner;
        index.insert(*key, expires, bytes.len());
        map.insert(*key, bytes.to_vec());
        for victim in index.over(self.max_bytes) {
            map.remove(&victim);
        }
        Ok(())
    }

    fn load(&self, key: &DhtKey) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_raw(key))
    }

    fn remove(&self, key: &DhtKey) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        inner.0.remove(key);
        inner.1.remove(key);
        Ok(())
    }

    fn blocks(&self) -> bool {
        false
    }
}

/// A [`BundleStore`] in a sled tree (`verified_bundles`) of the resolver's
/// database, next to the sequence store: get one with
/// [`SledSequences::bundles`](crate::SledSequences::bundles).
///
/// Values are `expires (u64 BE) ‖ bundle bytes`. Bounded in bytes: past the
/// bound, the bundles closest to their signed expiry are deleted first. On
/// open, the tree is scanned once to rebuild the byte count and the eviction
/// order, and bundles past their signed expiry (or unreadable) are deleted.
/// Writes are not flushed individually (sled flushes every 500 ms): a crash
/// loses at most the last moments of cache, never correctness.
#[derive(Clone, Debug)]
pub struct SledBundles {
    tree: sled::Tree,
    index: Arc<Mutex<Index>>,
    max_bytes: u64,
}

impl SledBundles {
    pub(crate) fn open(
        tree: sled::Tree,
        max_bytes: u64,
        now_unix: u64,
    ) -> Result<Self, StoreError> {
        let mut index = Index::default();
        let mut dead = Vec::new();
        for item in tree.iter() {
            let (key, value) = item.map_err(|e| StoreError::Scan {
                source: Arc::new(e),
            })?;
            let key_bytes = <[u8; 32]>::try_from(key.as_ref()).ok();
            let expires = value
                .get(..8)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes);
            match (key_bytes, expires) {
                (Some(k), Some(expires)) if expires > now_unix => {
                    index.insert(DhtKey::from_bytes(k), expires, value.len() - 8);
                }
                _ => dead.push(key),
            }
        }
        for key in dead {
            tree.remove(key).map_err(|e| StoreError::Scan {
                source: Arc::new(e),
            })?;
        }
        let store = Self {
            tree,
            index: Arc::new(Mutex::new(index)),
            max_bytes,
        };
        store.evict()?;
        Ok(store)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        lock(&self.index).entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bundle bytes held (not counting the 8-byte expiry prefixes).
    pub fn bytes(&self) -> u64 {
        lock(&self.index).bytes
    }

    fn evict(&self) -> Result<(), StoreError> {
        let victims = lock(&self.index).over(self.max_bytes);
        for key in victims {
            tracing::trace!(%key, "persisted cache full, evicting");
            self.tree
                .remove(key.as_bytes())
                .map_err(io("remove", key))?;
        }
        Ok(())
    }
}

fn io(op: &'static str, key: DhtKey) -> impl FnOnce(sled::Error) -> StoreError {
    move |e| StoreError::Io {
        op,
        key,
        source: Arc::new(e),
    }
}

impl BundleStore for SledBundles {
    fn save(&self, key: &DhtKey, expires: u64, bytes: &[u8]) -> Result<(), StoreError> {
        let mut value = Vec::with_capacity(8 + bytes.len());
        value.extend_from_slice(&expires.to_be_bytes());
        value.extend_from_slice(bytes);
        self.tree
            .insert(key.as_bytes(), value)
            .map_err(io("write", *key))?;
        lock(&self.index).insert(*key, expires, bytes.len());
        self.evict()
    }

    fn load(&self, key: &DhtKey) -> Result<Option<Vec<u8>>, StoreError> {
        let value = self.tree.get(key.as_bytes()).map_err(io("read", *key))?;
        Ok(value.and_then(|v| v.get(8..).map(<[u8]>::to_vec)))
    }

    fn remove(&self, key: &DhtKey) -> Result<(), StoreError> {
        self.tree
            .remove(key.as_bytes())
            .map_err(io("remove", *key))?;
        lock(&self.index).remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SledSequences;

    fn key(n: u8) -> DhtKey {
        DhtKey::from_bytes([n; 32])
    }

    #[test]
    fn sled_bundles_survive_reopening_and_stay_bounded() {
        // One database, the tree opened twice: a reopen rebuilds the index
        // from disk (a process restart is covered by the stub's e2e test).
        let sequences = SledSequences::temporary().unwrap();
        {
            let store = sequences.bundles_at(250, 0).unwrap();
            store.save(&key(1), 2_000, &[1; 100]).unwrap();
            store.save(&key(2), 3_000, &[2; 100]).unwrap();
            store.save(&key(3), 500, &[3; 10]).unwrap();
            assert_eq!(store.bytes(), 210);
            store.save(&key(4), 4_000, &[4; 100]).unwrap();
            assert_eq!(store.bytes(), 200, "the earliest expiries went first");
            assert!(store.load(&key(3)).unwrap().is_none());
            assert!(store.load(&key(1)).unwrap().is_none());
            assert_eq!(store.load(&key(2)).unwrap().unwrap(), vec![2; 100]);
        }
        // Reopened at unix time 3 500: key 2 has expired and is deleted.
        let store = sequences.bundles_at(250, 3_500).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.bytes(), 100);
        assert!(store.load(&key(2)).unwrap().is_none());
        assert_eq!(store.load(&key(4)).unwrap().unwrap(), vec![4; 100]);
        store.remove(&key(4)).unwrap();
        assert!(store.is_empty());
    }

    #[test]
    fn memory_bundles_are_bounded() {
        let store = MemoryBundles::new(150);
        store.save(&key(1), 10, &[1; 100]).unwrap();
        store.save(&key(2), 20, &[2; 100]).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.load(&key(2)).unwrap().unwrap(), vec![2; 100]);
        store.save(&key(2), 20, &[2; 50]).unwrap();
        assert_eq!(store.bytes(), 50, "a replaced entry is not counted twice");
    }
}
