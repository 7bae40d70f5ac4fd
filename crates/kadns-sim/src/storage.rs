//! Storage engines for simulated nodes: an honest in-memory one, and a
//! lying one that serves what a hostile node would.
//!
//! Both sit under the production [`ValidatingStore`](kadns_dht::ValidatingStore),
//! so a liar still *accepts* records the normal way (it acknowledges puts);
//! it lies only when asked: Kademlia's inbound GET reads the storage
//! engine's bytes and sends them, unchecked, to the asking peer. That is
//! exactly what a modified node could do, and it is the verifying side —
//! the asking node's production `get` — that is under test.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use kadns_dht::{SavedPeer, Storage, StorageError, StoredRecord};
use kadns_record::DhtKey;

#[derive(Debug, Default)]
struct Tables {
    records: BTreeMap<DhtKey, StoredRecord>,
    peers: HashMap<Vec<u8>, Vec<String>>,
}

/// Records and saved peers in memory. Nothing is durable (a simulated
/// node never restarts).
#[derive(Debug, Default)]
pub struct MemoryStorage {
    tables: Mutex<Tables>,
}

impl MemoryStorage {
    fn lock(&self) -> MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        Ok(self.lock().records.get(key).cloned())
    }

    fn put(&self, key: &DhtKey, record: &StoredRecord) -> Result<(), StorageError> {
        self.lock().records.insert(*key, record.clone());
        Ok(())
    }

    fn remove(&self, key: &DhtKey) -> Result<(), StorageError> {
        self.lock().records.remove(key);
        Ok(())
    }

    fn scan(
        &self,
        after: Option<&DhtKey>,
        limit: usize,
    ) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
        let tables = self.lock();
        let range = match after {
            Some(after) => tables.records.range((
                std::ops::Bound::Excluded(*after),
                std::ops::Bound::Unbounded,
            )),
            None => tables.records.range(..),
        };
        Ok(range.take(limit).map(|(k, v)| (*k, v.clone())).collect())
    }

    fn purge_expired(&self, now: u64, limit: usize) -> Result<usize, StorageError> {
        let mut tables = self.lock();
        let expired: Vec<DhtKey> = tables
            .records
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(k, _)| *k)
            .take(limit)
            .collect();
        for key in &expired {
            tables.records.remove(key);
        }
        Ok(expired.len())
    }

    fn len(&self) -> usize {
        self.lock().records.len()
    }

    fn save_peer(&self, peer: &[u8], addrs: &[String]) -> Result<(), StorageError> {
        self.lock().peers.insert(peer.to_vec(), addrs.to_vec());
        Ok(())
    }

    fn forget_peer(&self, peer: &[u8]) -> Result<(), StorageError> {
        self.lock().peers.remove(peer);
        Ok(())
    }

    fn peers(&self) -> Result<Vec<SavedPeer>, StorageError> {
        Ok(self
            .lock()
            .peers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}

/// What a lying node does when a peer asks it for a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LieKind {
    /// Serves an older, validly signed version (sequence 1 where the
    /// newest is 2), for every name, whether it was asked to store it or not.
    Stale,
    /// Serves a bundle with a higher sequence whose A record was changed
    /// after signing: the signature no longer matches.
    Forged,
    /// Serves a validly signed bundle for the same owner name under
    /// another zone key (the attacker's): right name, wrong key.
    WrongKey,
    /// Acknowledges every put, then answers every get with "nothing".
    Withhold,
}

impl LieKind {
    /// Every kind, in the order liars are assigned them.
    pub const ALL: [LieKind; 4] = [
        LieKind::Stale,
        LieKind::Forged,
        LieKind::WrongKey,
        LieKind::Withhold,
    ];
}

/// The lies liars tell, per key: prepared by the scenario from the names
/// it publishes.
#[derive(Debug, Default)]
pub struct LieBook {
    /// Key → (stale, forged, wrong-key) bundle bytes.
    pub lies: HashMap<DhtKey, Lies>,
}

/// The three false answers for one key.
#[derive(Clone, Debug)]
pub struct Lies {
    /// Expiry to report (unix seconds).
    pub expires: u64,
    /// A validly signed older version.
    pub stale: Vec<u8>,
    /// A higher-sequence bundle with a broken signature.
    pub forged: Vec<u8>,
    /// A validly signed bundle under another zone key.
    pub wrong_key: Vec<u8>,
}

/// A node's storage that lies on reads (see [`LieKind`]); writes go to an
/// honest [`MemoryStorage`] so the node takes part in the network normally.
#[derive(Debug)]
pub struct LiarStorage {
    kind: LieKind,
    book: Arc<LieBook>,
    inner: MemoryStorage,
}

impl LiarStorage {
    /// A liar of `kind` telling the lies in `book`.
    pub fn new(kind: LieKind, book: Arc<LieBook>) -> Self {
        Self {
            kind,
            book,
            inner: MemoryStorage::default(),
        }
    }
}

impl Storage for LiarStorage {
    fn get(&self, key: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        let lie = |lies: &Lies| {
            let bytes = match self.kind {
                LieKind::Stale => &lies.stale,
                LieKind::Forged => &lies.forged,
                LieKind::WrongKey => &lies.wrong_key,
                LieKind::Withhold => return None,
            };
            Some(StoredRecord {
                expires: lies.expires,
                bytes: bytes.clone(),
            })
        };
        match self.book.lies.get(key) {
            Some(lies) => Ok(lie(lies)),
            None if self.kind == LieKind::Withhold => Ok(None),
            None => self.inner.get(key),
        }
    }

    fn put(&self, key: &DhtKey, record: &StoredRecord) -> Result<(), StorageError> {
        self.inner.put(key, record)
    }

    fn remove(&self, key: &DhtKey) -> Result<(), StorageError> {
        self.inner.remove(key)
    }

    fn scan(
        &self,
        after: Option<&DhtKey>,
        limit: usize,
    ) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
        self.inner.scan(after, limit)
    }

    fn purge_expired(&self, now: u64, limit: usize) -> Result<usize, StorageError> {
        self.inner.purge_expired(now, limit)
    }

    fn len(&self) -> usize {
        self.inner.len()
    }

    fn save_peer(&self, peer: &[u8], addrs: &[String]) -> Result<(), StorageError> {
        self.inner.save_peer(peer, addrs)
    }

    fn forget_peer(&self, peer: &[u8]) -> Result<(), StorageError> {
        self.inner.forget_peer(peer)
    }

    fn peers(&self) -> Result<Vec<SavedPeer>, StorageError> {
        self.inner.peers()
    }

    fn flush(&self) -> Result<(), StorageError> {
        Ok(())
    }
}
