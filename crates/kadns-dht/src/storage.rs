//! The storage trait the record store writes through, and its sled engine.
//!
//! The trait is small on purpose: a key-value map from [`DhtKey`] to stored
//! bundle bytes plus their expiry (unix seconds, wall-clock), an expiry index
//! for purging, and a small table of peer addresses. Nothing here validates:
//! [`ValidatingStore`](crate::ValidatingStore) calls `kadns-record` before any write.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kadns_record::DhtKey;

/// A bundle as kept on disk: the signed bytes and their expiry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    /// Expiry, unix seconds (the bundle's own, already validated).
    pub expires: u64,
    /// The signed bundle bytes, exactly as validated.
    pub bytes: Vec<u8>,
}

/// A saved peer: its peer id bytes and its addresses as text.
pub type SavedPeer = (Vec<u8>, Vec<String>);

/// Why a storage engine failed. Cheap to clone: the source is shared.
#[derive(Clone, Debug, thiserror::Error)]
#[error("storage engine failed during {operation}: {source}")]
pub struct StorageError {
    /// What was being done (`open`, `put`, `flush` …).
    pub operation: &'static str,
    /// The engine's error.
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

impl StorageError {
    /// Wraps an engine error.
    pub fn new(
        operation: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            operation,
            source: Arc::new(source),
        }
    }
}

/// A storage engine for validated bundles and saved peers.
///
/// Every method is synchronous and does bounded work: the record store calls
/// it from inside the swarm's poll. `put` must not return before the write is
/// durable (it survives `kill -9` and, for a real disk, power loss).
pub trait Storage: Send + fmt::Debug + 'static {
    /// The stored record under `key`, expired or not.
    fn get(&self, key: &DhtKey) -> Result<Option<StoredRecord>, StorageError>;
    /// Stores `record` under `key`, replacing any previous one. Atomic, but
    /// durable only after the next [`Storage::flush`] (so callers can group
    /// commits; the record store flushes before it acknowledges).
    fn put(&self, key: &DhtKey, record: &StoredRecord) -> Result<(), StorageError>;
    /// Removes the record under `key`, if any.
    fn remove(&self, key: &DhtKey) -> Result<(), StorageError>;
    /// Up to `limit` records in key order, starting after `after` (or at the
    /// first key). Cursor-style so that a full walk never holds more than one
    /// batch in memory.
    fn scan(
        &self,
        after: Option<&DhtKey>,
        limit: usize,
    ) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError>;
    /// Removes up to `limit` records whose expiry is at or before `now`
    /// (unix seconds); returns how many were removed.
    fn purge_expired(&self, now: u64, limit: usize) -> Result<usize, StorageError>;
    /// Up to `limit` records whose expiry is at or before `now`, removing
    /// nothing (the record store removes them and keeps its budget). The
    /// default walks every record; engines with an expiry index override it.
    fn expired(&self, now: u64, limit: usize) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
        let mut out = Vec::new();
        let mut cursor: Option<DhtKey> = None;
        while out.len() < limit {
            let batch = self.scan(cursor.as_ref(), 256)?;
            let done = batch.len() < 256;
            cursor = batch.last().map(|(k, _)| *k);
            out.extend(batch.into_iter().filter(|(_, r)| r.expires <= now));
            if done {
                break;
            }
        }
        out.truncate(limit);
        Ok(out)
    }
    /// How many records are stored.
    fn len(&self) -> usize;
    /// Whether no record is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Remembers `addrs` (multiaddrs as text) for `peer` (peer id bytes).
    /// Not flushed: peers are hints, flushed by [`Storage::flush`].
    fn save_peer(&self, peer: &[u8], addrs: &[String]) -> Result<(), StorageError>;
    /// Forgets `peer`.
    fn forget_peer(&self, peer: &[u8]) -> Result<(), StorageError>;
    /// Every saved peer with its addresses.
    fn peers(&self) -> Result<Vec<SavedPeer>, StorageError>;
    /// Makes every earlier write durable.
    fn flush(&self) -> Result<(), StorageError>;
}

/// sled's own default page cache.
const DEFAULT_CACHE: u64 = 1 << 30;

const RECORD_PREFIX: u8 = b'r';
const EXPIRY_PREFIX: u8 = b'e';

/// The sled engine (sled `=0.34.7`).
///
/// One tree, three key spaces: `r ‖ dht key` → `expires (u64 BE) ‖ bundle`,
/// `e ‖ expires (u64 BE) ‖ dht key` → empty (the expiry index, in expiry
/// order), and a separate `peers` tree. Record and index entries change
/// together in one atomic batch.
pub struct SledStorage {
    db: sled::Db,
    records: sled::Tree,
    peers: sled::Tree,
    path: Option<PathBuf>,
    /// Number of records, counted once at open and kept up to date (sled's
    /// own `len` walks the tree).
    count: AtomicUsize,
}

impl fmt::Debug for SledStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStorage")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SledStorage {
    /// Opens (or creates) the database in directory `path`, with sled's
    /// default cache (1 GiB).
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::open_with_cache(path, DEFAULT_CACHE)
    }

    /// Like [`SledStorage::open`], with sled's page cache bounded to
    /// `cache_bytes` (sled keeps up to this much of the database in memory).
    pub fn open_with_cache(path: &Path, cache_bytes: u64) -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .open()
            .map_err(|e| StorageError::new("open", e))?;
        Self::from_db(db, Some(path.to_path_buf()))
    }

    /// A database that lives in a temporary file and is deleted on drop.
    pub fn temporary() -> Result<Self, StorageError> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(|e| StorageError::new("open", e))?;
        Self::from_db(db, None)
    }

    fn from_db(db: sled::Db, path: Option<PathBuf>) -> Result<Self, StorageError> {
        let records = db
            .open_tree("records")
            .map_err(|e| StorageError::new("open", e))?;
        let peers = db
            .open_tree("peers")
            .map_err(|e| StorageError::new("open", e))?;
        let count = records.scan_prefix([EXPIRY_PREFIX]).count();
        Ok(Self {
            db,
            records,
            peers,
            path,
            count: AtomicUsize::new(count),
        })
    }
}

fn record_key(key: &DhtKey) -> [u8; 33] {
    let mut k = [0u8; 33];
    k[0] = RECORD_PREFIX;
    k[1..].copy_from_slice(key.as_bytes());
    k
}

fn expiry_key(expires: u64, key: &DhtKey) -> [u8; 41] {
    let mut k = [0u8; 41];
    k[0] = EXPIRY_PREFIX;
    k[1..9].copy_from_slice(&expires.to_be_bytes());
    k[9..].copy_from_slice(key.as_bytes());
    k
}

fn decode_value(value: &[u8]) -> Option<StoredRecord> {
    let (head, bytes) = value.split_at_checked(8)?;
    let expires = u64::from_be_bytes(head.try_into().ok()?);
    Some(StoredRecord {
        expires,
        bytes: bytes.to_vec(),
    })
}

impl Storage for SledStorage {
    fn get(&self, key: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        let value = self
            .records
            .get(record_key(key))
            .map_err(|e| StorageError::new("get", e))?;
        Ok(value.and_then(|v| decode_value(&v)))
    }

    fn put(&self, key: &DhtKey, record: &StoredRecord) -> Result<(), StorageError> {
        let rk = record_key(key);
        let mut batch = sled::Batch::default();
        let old = self
            .records
            .get(rk)
            .map_err(|e| StorageError::new("put", e))?;
        if let Some(old) = old.as_deref().and_then(decode_value) {
            batch.remove(&expiry_key(old.expires, key)[..]);
        }
        let mut value = Vec::with_capacity(8 + record.bytes.len());
        value.extend_from_slice(&record.expires.to_be_bytes());
        value.extend_from_slice(&record.bytes);
        batch.insert(&rk[..], value);
        batch.insert(&expiry_key(record.expires, key)[..], &[][..]);
        self.records
            .apply_batch(batch)
            .map_err(|e| StorageError::new("put", e))?;
        if old.is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn remove(&self, key: &DhtKey) -> Result<(), StorageError> {
        let rk = record_key(key);
        if let Some(old) = self
            .records
            .get(rk)
            .map_err(|e| StorageError::new("remove", e))?
        {
            let mut batch = sled::Batch::default();
            if let Some(old) = decode_value(&old) {
                batch.remove(&expiry_key(old.expires, key)[..]);
            }
            batch.remove(&rk[..]);
            self.records
                .apply_batch(batch)
                .map_err(|e| StorageError::new("remove", e))?;
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn scan(
        &self,
        after: Option<&DhtKey>,
        limit: usize,
    ) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
        use std::ops::Bound;
        let lower = match after {
            Some(after) => Bound::Excluded(record_key(after).to_vec()),
            None => Bound::Included(vec![RECORD_PREFIX]),
        };
        let upper = Bound::Excluded(vec![RECORD_PREFIX + 1]);
        let mut out = Vec::with_capacity(limit.min(1024));
        for item in self.records.range::<Vec<u8>, _>((lower, upper)).take(limit) {
            let (k, v) = item.map_err(|e| StorageError::new("scan", e))?;
            push_entry(&mut out, &k, &v);
        }
        Ok(out)
    }

    fn purge_expired(&self, now: u64, limit: usize) -> Result<usize, StorageError> {
        let end = expiry_key(now, &DhtKey::from_bytes([0xff; 32]));
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for item in self
            .records
            .range([EXPIRY_PREFIX].as_slice()..=end.as_slice())
            .take(limit)
        {
            let (k, _) = item.map_err(|e| StorageError::new("purge", e))?;
            let Some(key) = k.get(9..).and_then(DhtKey::from_slice) else {
                continue;
            };
            batch.remove(k);
            batch.remove(&record_key(&key)[..]);
            n += 1;
        }
        if n > 0 {
            self.records
                .apply_batch(batch)
                .map_err(|e| StorageError::new("purge", e))?;
            let _ = self
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                    Some(c.saturating_sub(n))
                });
        }
        Ok(n)
    }

    fn expired(&self, now: u64, limit: usize) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
        let end = expiry_key(now, &DhtKey::from_bytes([0xff; 32]));
        let mut out = Vec::new();
        for item in self
            .records
            .range([EXPIRY_PREFIX].as_slice()..=end.as_slice())
            .take(limit)
        {
            let (k, _) = item.map_err(|e| StorageError::new("expired", e))?;
            let Some(key) = k.get(9..).and_then(DhtKey::from_slice) else {
                continue;
            };
            if let Some(record) = self.get(&key)? {
                out.push((key, record));
            }
        }
        Ok(out)
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    fn save_peer(&self, peer: &[u8], addrs: &[String]) -> Result<(), StorageError> {
        self.peers
            .insert(peer, addrs.join("\n").into_bytes())
            .map_err(|e| StorageError::new("save peer", e))?;
        Ok(())
    }

    fn forget_peer(&self, peer: &[u8]) -> Result<(), StorageError> {
        self.peers
            .remove(peer)
            .map_err(|e| StorageError::new("forget peer", e))?;
        Ok(())
    }

    fn peers(&self) -> Result<Vec<SavedPeer>, StorageError> {
        let mut out = Vec::new();
        for item in self.peers.iter() {
            let (k, v) = item.map_err(|e| StorageError::new("load peers", e))?;
            let addrs = String::from_utf8_lossy(&v)
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            out.push((k.to_vec(), addrs));
        }
        Ok(out)
    }

    fn flush(&self) -> Result<(), StorageError> {
        self.db.flush().map_err(|e| StorageError::new("flush", e))?;
        Ok(())
    }
}

fn push_entry(out: &mut Vec<(DhtKey, StoredRecord)>, k: &[u8], v: &[u8]) {
    if let (Some(key), Some(record)) = (k.get(1..).and_then(DhtKey::from_slice), decode_value(v)) {
        out.push((key, record));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> DhtKey {
        DhtKey::from_bytes([i; 32])
    }

    fn rec(expires: u64) -> StoredRecord {
        StoredRecord {
            expires,
            bytes: vec![1, 2, 3],
        }
    }

    #[test]
    fn put_get_remove_count() {
        let s = SledStorage::temporary().unwrap();
        assert!(s.is_empty());
        s.put(&key(1), &rec(10)).unwrap();
        s.put(&key(1), &rec(20)).unwrap();
        s.put(&key(2), &rec(30)).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s.get(&key(1)).unwrap(), Some(rec(20)));
        s.remove(&key(1)).unwrap();
        s.remove(&key(1)).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&key(1)).unwrap(), None);
    }

    #[test]
    fn scan_walks_in_batches() {
        let s = SledStorage::temporary().unwrap();
        for i in 0..10 {
            s.put(&key(i), &rec(100)).unwrap();
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let batch = s.scan(cursor.as_ref(), 3).unwrap();
            if batch.is_empty() {
                break;
            }
            cursor = batch.last().map(|(k, _)| *k);
            seen.extend(batch.into_iter().map(|(k, _)| k));
        }
        assert_eq!(seen, (0..10).map(key).collect::<Vec<_>>());
    }

    #[test]
    fn purge_removes_only_expired_and_is_bounded() {
        let s = SledStorage::temporary().unwrap();
        for i in 0..5 {
            s.put(&key(i), &rec(10 + u64::from(i))).unwrap();
        }
        // A record re-put with a later expiry must not be purged by its old index entry.
        s.put(&key(0), &rec(100)).unwrap();
        let expired = s.expired(12, 100).unwrap();
        assert_eq!(
            expired.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            vec![key(1), key(2)],
            "key 0's old expiry no longer counts"
        );
        assert_eq!(s.len(), 5, "expired() removes nothing");
        assert_eq!(s.purge_expired(12, 1).unwrap(), 1);
        assert_eq!(s.purge_expired(12, 100).unwrap(), 1);
        assert_eq!(s.len(), 3);
        assert!(s.get(&key(0)).unwrap().is_some());
        assert!(s.get(&key(1)).unwrap().is_none());
        assert!(s.get(&key(3)).unwrap().is_some());
    }

    #[test]
    fn records_and_peers_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStorage::open(dir.path()).unwrap();
            s.put(&key(7), &rec(99)).unwrap();
            s.save_peer(b"peer", &["/ip4/127.0.0.1/tcp/1".to_owned()])
                .unwrap();
            s.flush().unwrap();
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s.get(&key(7)).unwrap(), Some(rec(99)));
        assert_eq!(
            s.peers().unwrap(),
            vec![(b"peer".to_vec(), vec!["/ip4/127.0.0.1/tcp/1".to_owned()])]
        );
        s.forget_peer(b"peer").unwrap();
        assert!(s.peers().unwrap().is_empty());
    }
}
