//! The storage budget's accounting: bytes, records and records per zone,
//! recomputed from the engine at open and kept up to date by every write
//! and removal (docs/dht.md, "Storage budget").
//!
//! Policy: a new key is admitted only if it fits every limit; a newer
//! version of a key already held is admitted if it fits the byte budget or
//! is no larger than the version it replaces. Nothing held is ever evicted
//! to make room: a flood can fill the budget, but it cannot push out a
//! record that was here first.

use std::collections::HashMap;

use kadns_record::DhtKey;

use crate::config::{RECORD_OVERHEAD, StorageLimits};
use crate::storage::{Storage, StorageError};
use crate::store::SCAN_BATCH;

/// One zone's identity: its 32-byte public key.
pub(crate) type ZoneBytes = [u8; 32];

/// The zone a stored bundle's bytes claim (bytes 1..33 of the encoding,
/// after the version byte; `kadns-record`'s format).
pub(crate) fn zone_of(bytes: &[u8]) -> Option<ZoneBytes> {
    bytes.get(1..33).and_then(|z| z.try_into().ok())
}

/// What a record is charged: its bundle plus [`RECORD_OVERHEAD`].
pub(crate) fn cost(bundle_len: usize) -> u64 {
    bundle_len as u64 + RECORD_OVERHEAD
}

/// Which limit a record would pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetExceeded {
    /// The byte budget ([`StorageLimits::max_bytes`]).
    #[error("the store holds {held} of {max} bytes; {needed} more do not fit")]
    Bytes {
        /// Bytes charged now.
        held: u64,
        /// Bytes the record needs.
        needed: u64,
        /// The budget.
        max: u64,
    },
    /// The record cap ([`StorageLimits::max_records`]).
    #[error("the store holds {max} records, its limit")]
    Records {
        /// The cap.
        max: usize,
    },
    /// The per-zone cap ([`StorageLimits::max_zone_records`]).
    #[error("the store holds {max} records of this zone, its limit")]
    Zone {
        /// The cap.
        max: usize,
    },
}

impl BudgetExceeded {
    /// `budget_bytes`, `budget_records` or `budget_zone`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Bytes { .. } => "budget_bytes",
            Self::Records { .. } => "budget_records",
            Self::Zone { .. } => "budget_zone",
        }
    }
}

/// The running totals against [`StorageLimits`].
#[derive(Debug)]
pub(crate) struct Budget {
    limits: StorageLimits,
    bytes: u64,
    records: usize,
    zones: HashMap<ZoneBytes, usize>,
}

impl Budget {
    /// Nothing counted yet.
    pub(crate) fn empty(limits: StorageLimits) -> Self {
        Self {
            limits,
            bytes: 0,
            records: 0,
            zones: HashMap::new(),
        }
    }

    /// Walks `storage` once (in [`SCAN_BATCH`]es) to total what it holds.
    pub(crate) fn recompute(
        limits: StorageLimits,
        storage: &dyn Storage,
    ) -> Result<Self, StorageError> {
        let mut budget = Self::empty(limits);
        let mut cursor: Option<DhtKey> = None;
        loop {
            let batch = storage.scan(cursor.as_ref(), SCAN_BATCH)?;
            let done = batch.len() < SCAN_BATCH;
            for (key, record) in &batch {
                budget.add(zone_of(&record.bytes), record.bytes.len());
                cursor = Some(*key);
            }
            if done {
                break;
            }
        }
        Ok(budget)
    }

    pub(crate) fn limits(&self) -> &StorageLimits {
        &self.limits
    }

    /// Bytes charged for what is held.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records held.
    pub(crate) fn records(&self) -> usize {
        self.records
    }

    /// Records held for `zone`.
    pub(crate) fn zone_records(&self, zone: &ZoneBytes) -> usize {
        self.zones.get(zone).copied().unwrap_or(0)
    }

    /// Whether a record of `len` bundle bytes for `zone` may be stored,
    /// replacing a held one of `held_len` bytes if `Some`.
    pub(crate) fn admit(
        &self,
        zone: &ZoneBytes,
        len: usize,
        held_len: Option<usize>,
    ) -> Result<(), BudgetExceeded> {
        let needed = cost(len);
        match held_len {
            Some(old) => {
                let freed = cost(old);
                if needed > freed
                    && self.bytes - freed.min(self.bytes) + needed > self.limits.max_bytes
                {
                    return Err(BudgetExceeded::Bytes {
                        held: self.bytes,
                        needed: needed - freed,
                        max: self.limits.max_bytes,
                    });
                }
            }
            None => {
                if self.records >= self.limits.max_records {
                    return Err(BudgetExceeded::Records {
                        max: self.limits.max_records,
                    });
                }
                if self.zone_records(zone) >= self.limits.max_zone_records {
                    return Err(BudgetExceeded::Zone {
                        max: self.limits.max_zone_records,
                    });
                }
                if self.bytes.saturating_add(needed) > self.limits.max_bytes {
                    return Err(BudgetExceeded::Bytes {
                        held: self.bytes,
                        needed,
                        max: self.limits.max_bytes,
                    });
                }
            }
        }
        Ok(())
    }

    /// A record of `len` bytes for `zone` was stored (new key).
    pub(crate) fn add(&mut self, zone: Option<ZoneBytes>, len: usize) {
        self.bytes = self.bytes.saturating_add(cost(len));
        self.records += 1;
        if let Some(zone) = zone {
            *self.zones.entry(zone).or_default() += 1;
        }
    }

    /// A record of `old` bytes was replaced by one of `new` bytes (same key,
    /// so the same zone).
    pub(crate) fn replace(&mut self, old: usize, new: usize) {
        self.bytes = self
            .bytes
            .saturating_sub(cost(old))
            .saturating_add(cost(new));
    }

    /// A record of `len` bytes for `zone` was removed.
    pub(crate) fn remove(&mut self, zone: Option<ZoneBytes>, len: usize) {
        self.bytes = self.bytes.saturating_sub(cost(len));
        self.records = self.records.saturating_sub(1);
        if let Some(zone) = zone
            && let Some(n) = self.zones.get_mut(&zone)
        {
            *n -= 1;
            if *n == 0 {
                self.zones.remove(&zone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{SledStorage, StoredRecord};

    fn limits(max_bytes: u64, max_records: usize, max_zone_records: usize) -> StorageLimits {
        let mut l = StorageLimits::for_bytes(max_bytes);
        l.max_records = max_records;
        l.max_zone_records = max_zone_records;
        l
    }

    fn bundle_bytes(zone: u8, len: usize) -> Vec<u8> {
        let mut b = vec![1u8; len.max(33)];
        b[1..33].copy_from_slice(&[zone; 32]);
        b
    }

    #[test]
    fn new_keys_are_refused_at_each_limit_and_updates_within_bytes() {
        let mut b = Budget::empty(limits(1000, 3, 2));
        let z1 = [1; 32];
        let z2 = [2; 32];
        b.admit(&z1, 100, None).unwrap();
        b.add(Some(z1), 100);
        b.add(Some(z1), 100);
        assert_eq!(
            b.admit(&z1, 100, None),
            Err(BudgetExceeded::Zone { max: 2 }),
            "third record of one zone"
        );
        b.admit(&z2, 100, None).unwrap();
        b.add(Some(z2), 100);
        assert_eq!(b.bytes(), 3 * (100 + RECORD_OVERHEAD));
        assert_eq!(
            b.admit(&[3; 32], 10, None),
            Err(BudgetExceeded::Records { max: 3 })
        );
        // An update that grows past the byte budget is refused; one that
        // shrinks or fits is admitted.
        assert!(matches!(
            b.admit(&z1, 600, Some(100)),
            Err(BudgetExceeded::Bytes { .. })
        ));
        b.admit(&z1, 50, Some(100)).unwrap();
        b.admit(&z1, 300, Some(100)).unwrap();
        b.replace(100, 300);
        assert_eq!(
            b.bytes(),
            2 * (100 + RECORD_OVERHEAD) + 300 + RECORD_OVERHEAD
        );
        b.remove(Some(z1), 300);
        b.remove(Some(z1), 100);
        assert_eq!(b.zone_records(&z1), 0);
        assert_eq!(b.records(), 1);
        b.admit(&z1, 100, None).unwrap();
        // Bytes are the binding limit with room in the count.
        b.limits.max_records = 100;
        assert!(matches!(
            b.admit(&[4; 32], 1000, None),
            Err(BudgetExceeded::Bytes { needed, .. }) if needed == 1000 + RECORD_OVERHEAD
        ));
    }

    #[test]
    fn recompute_totals_what_the_engine_holds() {
        let s = SledStorage::temporary().unwrap();
        let n = SCAN_BATCH * 2 + 3;
        for i in 0..n {
            let mut key = [0u8; 32];
            key[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let zone = u8::try_from(i % 3).unwrap();
            s.put(
                &DhtKey::from_bytes(key),
                &StoredRecord {
                    expires: 100,
                    bytes: bundle_bytes(zone, 200),
                },
            )
            .unwrap();
        }
        let b = Budget::recompute(StorageLimits::default(), &s).unwrap();
        assert_eq!(b.records(), n);
        assert_eq!(b.bytes(), n as u64 * (200 + RECORD_OVERHEAD));
        assert_eq!(
            b.zone_records(&[0; 32]) + b.zone_records(&[1; 32]) + b.zone_records(&[2; 32]),
            n
        );
        assert_eq!(b.zone_records(&[0; 32]), n.div_ceil(3));
    }
}
