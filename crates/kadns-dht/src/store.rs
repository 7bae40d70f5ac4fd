//! libp2p's `RecordStore`, validating every record with `kadns-record` before
//! it reaches the [`Storage`] engine.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kadns_record::{DhtKey, Freshness, SignedBundle, ValidateError, VerifiedBundle, validate};
use libp2p::PeerId;
use libp2p::kad::KBucketKey;
use tokio::sync::broadcast;

use crate::budget::{Budget, BudgetExceeded, zone_of};
use crate::closeness::Closeness;
use crate::config::StorageLimits;
use crate::disk::{DiskFull, DiskGuard};
use crate::event::Event;
use crate::metrics::Metrics;
use crate::refusal_log::{RefusalLog, is_warned};
use crate::storage::{Storage, StorageError, StoredRecord};

mod kad;
#[cfg(test)]
mod tests;

pub use kad::Records;

/// Records read per batch when walking the store.
pub const SCAN_BATCH: usize = 256;

/// The current wall-clock time in unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Converts a wall-clock expiry to the monotonic `Instant` libp2p wants.
pub(crate) fn expiry_instant(expires: u64, now_unix: u64) -> Instant {
    // Valid bundles expire within 31 days; cap anything a storage engine
    // returns so the addition cannot overflow.
    let ahead = Duration::from_secs(expires.saturating_sub(now_unix).min(10 * 365 * 86_400));
    let now = Instant::now();
    now.checked_add(ahead).unwrap_or(now)
}

/// What a successful store did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stored {
    /// Written (no record before, or an older one replaced) and flushed.
    Written {
        /// The stored sequence.
        sequence: u64,
    },
    /// The identical bundle was already held; nothing written.
    AlreadyHeld {
        /// Its sequence.
        sequence: u64,
    },
}

/// Why a store refused a record.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// `kadns-record` refused it.
    #[error(transparent)]
    Invalid(#[from] ValidateError),
    /// A higher sequence is held.
    #[error("sequence {offered} is lower than the stored {stored}")]
    Older {
        /// Sequence held.
        stored: u64,
        /// Sequence offered.
        offered: u64,
    },
    /// The same sequence with other content is held; the held one is kept.
    #[error("a different bundle with sequence {sequence} is already stored")]
    Conflict {
        /// The sequence.
        sequence: u64,
    },
    /// This node is a Kademlia client and stores nothing for others.
    #[error("this node is a client and stores no records")]
    NotServer,
    /// This node is clearly not among the closest to the key: it knows at
    /// least k × [`CLOSENESS_SLACK`](crate::CLOSENESS_SLACK) peers closer.
    #[error("{closer} known peers are closer to the key than this node")]
    NotClosest {
        /// Known peers strictly closer to the key.
        closer: usize,
    },
    /// The storage budget is spent (docs/dht.md, "Storage budget").
    #[error(transparent)]
    Budget(#[from] BudgetExceeded),
    /// Less than the disk reserve is free on the data directory.
    #[error(transparent)]
    DiskFull(#[from] DiskFull),
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Refusal {
    /// A short, stable label: [`ValidateError::reason`]'s labels, or
    /// `older`, `conflict`, `not_server`, `not_closest`, `budget_bytes`,
    /// `budget_records`, `budget_zone`, `disk_full`, `storage`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.reason(),
            Self::Older { .. } => "older",
            Self::Conflict { .. } => "conflict",
            Self::NotServer => "not_server",
            Self::NotClosest { .. } => "not_closest",
            Self::Budget(b) => b.reason(),
            Self::DiskFull(_) => "disk_full",
            Self::Storage(_) => "storage",
        }
    }
}

/// The validating record store: kad's `RecordStore` over a [`Storage`].
///
/// Every write goes through [`ValidatingStore::offer`]: for a record a peer
/// sent, the closeness check; then `kadns-record`'s [`validate`], then
/// [`VerifiedBundle::freshness_against`] the stored bundle, then the storage
/// budget and the free-space guard, then a write that is flushed before it
/// returns. Provider records are not supported (kadns does not use them).
#[derive(Debug)]
pub struct ValidatingStore {
    storage: Box<dyn Storage>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<Event>,
    /// Interior: an expired record found by a read (`&self`) is removed.
    budget: RefCell<Budget>,
    closeness: Option<Closeness>,
    disk: Option<DiskGuard>,
    log: RefusalLog,
}

impl ValidatingStore {
    /// Wraps `storage` with the default [`StorageLimits`].
    pub fn new(
        storage: Box<dyn Storage>,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
    ) -> Self {
        Self::with_limits(storage, metrics, events, StorageLimits::default())
    }

    /// Wraps `storage` under `limits`. Walks the store once to total what it
    /// holds (the budget's accounting is recomputed at every open, never
    /// trusted from disk).
    pub fn with_limits(
        storage: Box<dyn Storage>,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
        limits: StorageLimits,
    ) -> Self {
        let budget = Budget::recompute(limits, &*storage).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot total the store; budget counts from empty");
            Budget::empty(limits)
        });
        let store = Self {
            storage,
            metrics,
            events,
            budget: RefCell::new(budget),
            closeness: None,
            disk: None,
            log: RefusalLog::default(),
        };
        store.update_gauges();
        store
    }

    /// Guards writes with free space on the data directory.
    pub(crate) fn set_disk_guard(&mut self, guard: DiskGuard) {
        self.disk = Some(guard);
    }

    /// Turns the closeness check on for node `local` with replication
    /// factor `k` (done by the event loop in server mode).
    pub(crate) fn enable_closeness(&mut self, local: PeerId, k: usize) {
        self.closeness = Some(Closeness::new(local, k));
    }

    /// Whether the closeness check wants a new routing-table snapshot.
    pub(crate) fn closeness_stale(&self) -> bool {
        self.closeness.as_ref().is_some_and(Closeness::stale)
    }

    /// Gives the closeness check the routing table's peers.
    pub(crate) fn refresh_closeness(&mut self, peers: Vec<KBucketKey<PeerId>>) {
        if let Some(c) = &mut self.closeness {
            c.refresh(peers);
        }
    }

    /// The storage engine.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// The limits in force.
    pub fn limits(&self) -> StorageLimits {
        *self.budget.borrow().limits()
    }

    /// Bytes charged against [`StorageLimits::max_bytes`] for what is held.
    pub fn stored_bytes(&self) -> u64 {
        self.budget.borrow().bytes()
    }

    /// Records held, as the budget counts them.
    pub fn stored_records(&self) -> usize {
        self.budget.borrow().records()
    }

    fn update_gauges(&self) {
        let budget = self.budget.borrow();
        self.metrics
            .records
            .set(i64::try_from(budget.records()).unwrap_or(i64::MAX));
        self.metrics
            .stored_bytes
            .set(i64::try_from(budget.bytes()).unwrap_or(i64::MAX));
        self.metrics
            .max_stored_bytes
            .set(i64::try_from(budget.limits().max_bytes).unwrap_or(i64::MAX));
    }

    /// Validates `bytes` offered under `key` at `now` (unix seconds) and stores
    /// them if they are valid, not older than what is held and within the
    /// budget. Returns only after the write is durable. `from` is the peer
    /// that offered it (`None`: this node's own put), for the closeness
    /// check, the event and logs.
    pub fn offer(
        &mut self,
        key: &DhtKey,
        bytes: &[u8],
        now: u64,
        from: Option<PeerId>,
    ) -> Result<Stored, Refusal> {
        self.offer_with(key, bytes, now, from, from.is_some(), true)
    }

    /// Like [`ValidatingStore::offer`], but a write is **not durable** until
    /// the next [`ValidatingStore::commit`]: for group commit, where every
    /// acknowledgement of a group waits for one flush. A `Stored` answer
    /// (written or already held) must not be sent before that commit.
    pub fn offer_uncommitted(
        &mut self,
        key: &DhtKey,
        bytes: &[u8],
        now: u64,
        from: Option<PeerId>,
    ) -> Result<Stored, Refusal> {
        self.offer_with(key, bytes, now, from, from.is_some(), false)
    }

    /// Makes every earlier write durable (sled's flush).
    pub fn commit(&self) -> Result<(), StorageError> {
        self.storage.flush()
    }

    pub(crate) fn offer_with(
        &mut self,
        key: &DhtKey,
        bytes: &[u8],
        now: u64,
        from: Option<PeerId>,
        remote: bool,
        flush: bool,
    ) -> Result<Stored, Refusal> {
        let result = self.offer_inner(key, bytes, now, remote, flush);
        match &result {
            Ok(Stored::Written { sequence }) => {
                self.metrics.stores.inc();
                self.update_gauges();
                tracing::debug!(%key, sequence, ?from, "record stored");
                let _ = self.events.send(Event::RecordStored {
                    key: *key,
                    sequence: *sequence,
                    from,
                });
            }
            Ok(Stored::AlreadyHeld { .. }) => {}
            Err(refusal) => {
                let reason = refusal.reason();
                self.metrics.refused(reason);
                if !is_warned(reason) {
                    tracing::debug!(%key, ?from, reason, %refusal, "record refused");
                } else if let Some(suppressed) = self.log.admit(reason, Instant::now()) {
                    tracing::warn!(%key, ?from, reason, suppressed, %refusal, "record refused");
                }
                let _ = self.events.send(Event::RecordRefused {
                    key: *key,
                    reason,
                    from,
                });
            }
        }
        result
    }

    fn offer_inner(
        &mut self,
        key: &DhtKey,
        bytes: &[u8],
        now: u64,
        remote: bool,
        flush: bool,
    ) -> Result<Stored, Refusal> {
        // The cheapest check first: a far key is refused unread.
        if remote && let Some(closer) = self.closeness.as_ref().and_then(|c| c.too_far(key)) {
            return Err(Refusal::NotClosest { closer });
        }
        // The very bytes already held (a record handed over by several
        // holders, say): nothing to check, since the held copy was verified
        // when it was written. Only its expiry, which the store keeps.
        let existing = self.storage.get(key)?;
        if let Some(stored) = &existing
            && stored.expires > now
            && stored.bytes == bytes
            && let Ok(held) = SignedBundle::decode(&stored.bytes)
        {
            return Ok(Stored::AlreadyHeld {
                sequence: held.content().sequence(),
            });
        }
        // A full budget refuses a new key before its signature is checked:
        // a flood, once the budget is spent, costs a read, not a verify.
        // (The zone is the one the bytes claim; the check after validation
        // below is the one that admits.)
        if let Some(zone) = zone_of(bytes)
            && let Err(full) = self.budget.borrow().admit(&zone, bytes.len(), None)
            && existing.is_none()
        {
            return Err(full.into());
        }
        let offered = validate(key, bytes, now)?;
        let held = self.held(key, now)?;
        let held_len = held.as_ref().map(|h| h.as_bytes().len());
        if let Some(held) = held {
            match offered.freshness_against(&held) {
                Freshness::Newer => {}
                Freshness::Same => {
                    return Ok(Stored::AlreadyHeld {
                        sequence: held.sequence(),
                    });
                }
                Freshness::Conflict => {
                    return Err(Refusal::Conflict {
                        sequence: held.sequence(),
                    });
                }
                Freshness::Older => {
                    return Err(Refusal::Older {
                        stored: held.sequence(),
                        offered: offered.sequence(),
                    });
                }
            }
        }
        let zone = *offered.zone().as_bytes();
        let len = offered.as_bytes().len();
        self.budget.borrow().admit(&zone, len, held_len)?;
        if let Some(disk) = &self.disk {
            disk.check()?;
        }
        self.storage.put(
            key,
            &StoredRecord {
                expires: offered.expires(),
                bytes: offered.as_bytes().to_vec(),
            },
        )?;
        match held_len {
            Some(old) => self.budget.borrow_mut().replace(old, len),
            None => self.budget.borrow_mut().add(Some(zone), len),
        }
        // Durable before anyone hears "stored" (or, uncommitted, before the
        // group's acknowledgements go out).
        if flush {
            self.storage.flush()?;
        }
        Ok(Stored::Written {
            sequence: offered.sequence(),
        })
    }

    /// Removes the record under `key`, keeping the budget's totals.
    pub(crate) fn remove_record(&self, key: &DhtKey) -> Result<(), StorageError> {
        if let Some(old) = self.storage.get(key)? {
            self.storage.remove(key)?;
            self.budget
                .borrow_mut()
                .remove(zone_of(&old.bytes), old.bytes.len());
        }
        Ok(())
    }

    /// The held bundle, re-validated (so an expired one counts as absent and
    /// is removed).
    fn held(&self, key: &DhtKey, now: u64) -> Result<Option<VerifiedBundle>, StorageError> {
        let Some(stored) = self.storage.get(key)? else {
            return Ok(None);
        };
        match validate(key, &stored.bytes, now) {
            Ok(bundle) => Ok(Some(bundle)),
            Err(e) => {
                tracing::debug!(%key, reason = e.reason(), "held record no longer valid, removing");
                self.storage.remove(key)?;
                self.budget
                    .borrow_mut()
                    .remove(zone_of(&stored.bytes), stored.bytes.len());
                Ok(None)
            }
        }
    }

    /// The stored, unexpired bytes under `key`. Expired records are removed
    /// on read.
    pub fn get_bytes(&self, key: &DhtKey, now: u64) -> Option<StoredRecord> {
        match self.storage.get(key) {
            Ok(Some(r)) if r.expires > now => Some(r),
            Ok(Some(old)) => {
                match self.storage.remove(key) {
                    Ok(()) => {
                        self.budget
                            .borrow_mut()
                            .remove(zone_of(&old.bytes), old.bytes.len());
                        self.update_gauges();
                    }
                    Err(e) => tracing::warn!(%key, error = %e, "cannot remove expired record"),
                }
                self.metrics.purged.inc();
                None
            }
            Ok(None) => None,
            Err(e) => {
                tracing::error!(%key, error = %e, "storage read failed");
                None
            }
        }
    }

    /// Removes up to `limit` expired records (the budget's totals follow).
    pub fn purge_expired(&mut self, now: u64, limit: usize) -> Result<usize, StorageError> {
        let expired = self.storage.expired(now, limit)?;
        let mut n = 0;
        for (key, _) in &expired {
            self.remove_record(key)?;
            n += 1;
        }
        if n > 0 {
            self.metrics.purged.inc_by(n as u64);
            self.update_gauges();
        }
        Ok(n)
    }
}
