//! Rollback protection: the highest sequence seen per DHT key.

use std::collections::HashMap;
use std::sync::Mutex;

use kadns_record::DhtKey;

use crate::error::StoreError;

/// Remembers, per DHT key, the highest bundle sequence the resolver has
/// accepted, so that an older bundle (a rollback) is refused, also after a
/// restart when the store is on disk.
///
/// Calls are synchronous and may block on disk; the resolver runs them on
/// tokio's blocking pool.
pub trait SequenceStore: Send + Sync + 'static {
    /// Records that a valid bundle with `sequence` was found under `key`,
    /// unless a higher sequence was recorded before, and returns the highest
    /// sequence recorded *before* this call (`None` if the key is new).
    ///
    /// When the returned value is below `sequence` (or `None`) the new value
    /// must be durable before this returns: the caller answers from the
    /// bundle right after. When it is above, nothing is written.
    fn record(&self, key: &DhtKey, sequence: u64) -> Result<Option<u64>, StoreError>;

    /// Whether calls may block (on disk): if so (the default) the resolver
    /// runs them on tokio's blocking pool, else inline.
    fn blocks(&self) -> bool {
        true
    }
}

impl<T: SequenceStore + ?Sized> SequenceStore for std::sync::Arc<T> {
    fn record(&self, key: &DhtKey, sequence: u64) -> Result<Option<u64>, StoreError> {
        (**self).record(key, sequence)
    }

    fn blocks(&self) -> bool {
        (**self).blocks()
    }
}

/// A [`SequenceStore`] in memory: rollback protection for the life of the
/// process only, for embedders that want no files.
#[derive(Debug, Default)]
pub struct MemorySequences {
    highest: Mutex<HashMap<DhtKey, u64>>,
}

impl MemorySequences {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl SequenceStore for MemorySequences {
    fn record(&self, key: &DhtKey, sequence: u64) -> Result<Option<u64>, StoreError> {
        // The map holds plain numbers: a panic elsewhere cannot leave it half-written.
        let mut highest = self
            .highest
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let before = highest.get(key).copied();
        if before.is_none_or(|b| b < sequence) {
            highest.insert(*key, sequence);
        }
        Ok(before)
    }

    fn blocks(&self) -> bool {
        false
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sled_sequences::SledSequences;

    fn key(n: u8) -> DhtKey {
        DhtKey::from_bytes([n; 32])
    }

    /// The behaviour every store must have.
    pub(crate) fn battery(store: &dyn SequenceStore) {
        assert_eq!(store.record(&key(1), 5).unwrap(), None);
        assert_eq!(store.record(&key(1), 5).unwrap(), Some(5));
        assert_eq!(
            store.record(&key(1), 3).unwrap(),
            Some(5),
            "a rollback is reported"
        );
        assert_eq!(
            store.record(&key(1), 4).unwrap(),
            Some(5),
            "and not written"
        );
        assert_eq!(store.record(&key(1), 9).unwrap(), Some(5));
        assert_eq!(store.record(&key(1), 0).unwrap(), Some(9));
        assert_eq!(
            store.record(&key(2), 0).unwrap(),
            None,
            "keys are independent"
        );
        assert_eq!(store.record(&key(2), u64::MAX).unwrap(), Some(0));
        assert_eq!(store.record(&key(2), 1).unwrap(), Some(u64::MAX));
    }

    macro_rules! store_battery {
        ($($name:ident => $make:expr;)*) => {$(
            #[test]
            fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let _ = &dir;
                let store = $make(dir.path());
                battery(&store);
            }
        )*};
    }

    store_battery! {
        memory => |_: &std::path::Path| MemorySequences::new();
        sled_temporary => |_: &std::path::Path| SledSequences::temporary().unwrap();
        sled_on_disk => |p: &std::path::Path| SledSequences::open(p.join("seq")).unwrap();
    }
}
