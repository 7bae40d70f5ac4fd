//! A hostile DHT peer's storage: it keeps nothing it is sent and answers gets
//! with bytes of the test's choosing (a forged or a stale bundle).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kadns_dht::{SavedPeer, Storage, StorageError, StoredRecord};
use kadns_record::DhtKey;

/// Plug into `kadns_dht::Node::spawn_with` to run a node that serves `bytes`
/// to every get (or only to gets for one key), and counts how often it did.
#[derive(Debug, Clone)]
pub struct ReplayingStorage {
    key: Option<DhtKey>,
    bytes: Vec<u8>,
    served: Arc<AtomicUsize>,
}

impl ReplayingStorage {
    /// Answers every get, whatever the key, with `bytes`.
    pub fn for_every_key(bytes: Vec<u8>) -> Self {
        Self {
            key: None,
            bytes,
            served: Arc::default(),
        }
    }

    /// Answers gets for `key` with `bytes`, and nothing else.
    pub fn for_key(key: DhtKey, bytes: Vec<u8>) -> Self {
        Self {
            key: Some(key),
            ..Self::for_every_key(bytes)
        }
    }

    /// How many gets it has answered (shared by clones).
    pub fn served(&self) -> Arc<AtomicUsize> {
        self.served.clone()
    }
}

/// The `Storage` methods of a hostile peer that keeps nothing it is sent and
/// holds no peers: every write is a no-op, every listing empty.
macro_rules! keeps_nothing {
    () => {
        fn put(&self, _: &DhtKey, _: &StoredRecord) -> Result<(), StorageError> {
            Ok(())
        }
        fn remove(&self, _: &DhtKey) -> Result<(), StorageError> {
            Ok(())
        }
        fn scan(
            &self,
            _: Option<&DhtKey>,
            _: usize,
        ) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
            Ok(Vec::new())
        }
        fn purge_expired(&self, _: u64, _: usize) -> Result<usize, StorageError> {
            Ok(0)
        }
        fn len(&self) -> usize {
            0
        }
        fn save_peer(&self, _: &[u8], _: &[String]) -> Result<(), StorageError> {
            Ok(())
        }
        fn forget_peer(&self, _: &[u8]) -> Result<(), StorageError> {
            Ok(())
        }
        fn peers(&self) -> Result<Vec<SavedPeer>, StorageError> {
            Ok(Vec::new())
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    };
}

impl Storage for ReplayingStorage {
    fn get(&self, key: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        if self.key.is_some_and(|k| k != *key) {
            return Ok(None);
        }
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(Some(StoredRecord {
            expires: u64::MAX,
            bytes: self.bytes.clone(),
        }))
    }
    keeps_nothing!();
}

/// A hostile peer's storage that never answers: the first get blocks the
/// node's event loop (the store runs inside the swarm's poll) until
/// [`HangingStorage::release`], so the peer has accepted the request and
/// answers nothing, on any stream, from then on. Run the node on a thread
/// of its own. Keeps nothing it is sent.
#[derive(Debug, Clone, Default)]
pub struct HangingStorage {
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    hung: Arc<AtomicUsize>,
}

impl HangingStorage {
    /// A storage that hangs on every get until released.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every blocked and later get go on (answering nothing found).
    pub fn release(&self) {
        let (released, wake) = &*self.gate;
        *released.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }

    /// How many gets have hung so far (shared by clones).
    pub fn hung(&self) -> Arc<AtomicUsize> {
        self.hung.clone()
    }
}

impl Storage for HangingStorage {
    fn get(&self, _: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        self.hung.fetch_add(1, Ordering::SeqCst);
        let (released, wake) = &*self.gate;
        let mut done = released.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = wake.wait(done).unwrap_or_else(|p| p.into_inner());
        }
        Ok(None)
    }
    keeps_nothing!();
}
