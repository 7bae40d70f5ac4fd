//! libp2p's `RecordStore`, validating every record with `kadns-record` before
//! it reaches the [`Storage`] engine.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kadns_record::{DhtKey, Freshness, ValidateError, VerifiedBundle, validate};
use libp2p::PeerId;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};
use tokio::sync::broadcast;

use crate::event::Event;
use crate::metrics::Metrics;
use crate::storage::{Storage, StorageError, StoredRecord};

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
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl Refusal {
    /// A short, stable label: [`ValidateError::reason`]'s labels, or
    /// `older`, `conflict`, `not_server`, `storage`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Invalid(e) => e.reason(),
            Self::Older { .. } => "older",
            Self::Conflict { .. } => "conflict",
            Self::NotServer => "not_server",
            Self::Storage(_) => "storage",
        }
    }
}

/// The validating record store: kad's `RecordStore` over a [`Storage`].
///
/// Every write goes through [`ValidatingStore::offer`]: `kadns-record`'s
/// [`validate`], then [`VerifiedBundle::freshness_against`] the stored bundle,
/// then a write that is flushed before it returns. Provider records are not
/// supported (kadns does not use them).
#[derive(Debug)]
pub struct ValidatingStore {
    storage: Box<dyn Storage>,
    metrics: Arc<Metrics>,
    events: broadcast::Sender<Event>,
}

impl ValidatingStore {
    /// Wraps `storage`.
    pub fn new(
        storage: Box<dyn Storage>,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
    ) -> Self {
        metrics
            .records
            .set(i64::try_from(storage.len()).unwrap_or(i64::MAX));
        Self {
            storage,
            metrics,
            events,
        }
    }

    /// The storage engine.
    pub fn storage(&self) -> &dyn Storage {
        &*self.storage
    }

    /// Validates `bytes` offered under `key` at `now` (unix seconds) and stores
    /// them if they are valid and not older than what is held. Returns only
    /// after the write is durable. `from` is the peer that offered it, for
    /// the event and logs.
    pub fn offer(
        &mut self,
        key: &DhtKey,
        bytes: &[u8],
        now: u64,
        from: Option<PeerId>,
    ) -> Result<Stored, Refusal> {
        self.offer_with(key, bytes, now, from, true)
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
        self.offer_with(key, bytes, now, from, false)
    }

    /// Makes every earlier write durable (sled's flush).
    pub fn commit(&self) -> Result<(), StorageError> {
        self.storage.flush()
    }

    fn offer_with(
        &mut self,
        key: &DhtKey,
        bytes: &[u8],
        now: u64,
        from: Option<PeerId>,
        flush: bool,
    ) -> Result<Stored, Refusal> {
        let result = self.offer_inner(key, bytes, now, flush);
        match &result {
            Ok(Stored::Written { sequence }) => {
                self.metrics.stores.inc();
                self.metrics
                    .records
                    .set(i64::try_from(self.storage.len()).unwrap_or(i64::MAX));
                tracing::debug!(%key, sequence, ?from, "record stored");
                let _ = self.events.send(Event::RecordStored {
                    key: *key,
                    sequence: *sequence,
                    from,
                });
            }
            Ok(Stored::AlreadyHeld { .. }) => {}
            Err(refusal) => {
                self.metrics.refused(refusal.reason());
                tracing::debug!(%key, ?from, reason = refusal.reason(), %refusal, "record refused");
                let _ = self.events.send(Event::RecordRefused {
                    key: *key,
                    reason: refusal.reason(),
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
        flush: bool,
    ) -> Result<Stored, Refusal> {
        let offered = validate(key, bytes, now)?;
        if let Some(held) = self.held(key, now)? {
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
        self.storage.put(
            key,
            &StoredRecord {
                expires: offered.expires(),
                bytes: offered.as_bytes().to_vec(),
            },
        )?;
        // Durable before anyone hears "stored" (or, uncommitted, before the
        // group's acknowledgements go out).
        if flush {
            self.storage.flush()?;
        }
        Ok(Stored::Written {
            sequence: offered.sequence(),
        })
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
                Ok(None)
            }
        }
    }

    /// The stored, unexpired bytes under `key`. Expired records are removed
    /// on read.
    pub fn get_bytes(&self, key: &DhtKey, now: u64) -> Option<StoredRecord> {
        match self.storage.get(key) {
            Ok(Some(r)) if r.expires > now => Some(r),
            Ok(Some(_)) => {
                if let Err(e) = self.storage.remove(key) {
                    tracing::warn!(%key, error = %e, "cannot remove expired record");
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

    /// Removes up to `limit` expired records.
    pub fn purge_expired(&mut self, now: u64, limit: usize) -> Result<usize, StorageError> {
        let n = self.storage.purge_expired(now, limit)?;
        if n > 0 {
            self.metrics.purged.inc_by(n as u64);
            self.metrics
                .records
                .set(i64::try_from(self.storage.len()).unwrap_or(i64::MAX));
        }
        Ok(n)
    }
}

fn to_record(key: &DhtKey, stored: StoredRecord, now: u64) -> Record {
    Record {
        key: RecordKey::new(key.as_bytes()),
        value: stored.bytes,
        publisher: None,
        expires: Some(expiry_instant(stored.expires, now)),
    }
}

impl RecordStore for ValidatingStore {
    type RecordsIter<'a> = Records<'a>;
    type ProvidedIter<'a> = std::iter::Empty<Cow<'a, ProviderRecord>>;

    fn get(&self, k: &RecordKey) -> Option<Cow<'_, Record>> {
        let key = DhtKey::from_slice(k.as_ref())?;
        let now = unix_now();
        self.get_bytes(&key, now)
            .map(|r| Cow::Owned(to_record(&key, r, now)))
    }

    /// Kademlia's inbound PUT (replication by other nodes) ends here. A refusal
    /// makes libp2p reset the stream, so the sender's PUT fails instead of
    /// counting this node.
    fn put(&mut self, r: Record) -> store::Result<()> {
        let Some(key) = DhtKey::from_slice(r.key.as_ref()) else {
            self.metrics.refused("bad_key");
            return Err(store::Error::ValueTooLarge);
        };
        match self.offer(&key, &r.value, unix_now(), None) {
            Ok(_) => Ok(()),
            // libp2p's error type has no variant for "invalid"; the closest.
            Err(_) => Err(store::Error::ValueTooLarge),
        }
    }

    fn remove(&mut self, k: &RecordKey) {
        if let Some(key) = DhtKey::from_slice(k.as_ref())
            && let Err(e) = self.storage.remove(&key)
        {
            tracing::warn!(%key, error = %e, "cannot remove record");
        }
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        Records {
            storage: &*self.storage,
            cursor: None,
            batch: Vec::new().into_iter(),
            done: false,
            now: unix_now(),
        }
    }

    fn add_provider(&mut self, _record: ProviderRecord) -> store::Result<()> {
        Err(store::Error::MaxProvidedKeys)
    }

    fn providers(&self, _key: &RecordKey) -> Vec<ProviderRecord> {
        Vec::new()
    }

    fn provided(&self) -> Self::ProvidedIter<'_> {
        std::iter::empty()
    }

    fn remove_provider(&mut self, _k: &RecordKey, _p: &PeerId) {}
}

/// Streams the stored records from the engine, [`SCAN_BATCH`] at a time,
/// skipping expired ones. Holds one batch in memory, not the whole store.
#[derive(Debug)]
pub struct Records<'a> {
    storage: &'a dyn Storage,
    cursor: Option<DhtKey>,
    batch: std::vec::IntoIter<(DhtKey, StoredRecord)>,
    done: bool,
    now: u64,
}

impl<'a> Iterator for Records<'a> {
    type Item = Cow<'a, Record>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, stored)) = self.batch.next() {
                self.cursor = Some(key);
                if stored.expires > self.now {
                    return Some(Cow::Owned(to_record(&key, stored, self.now)));
                }
                continue;
            }
            if self.done {
                return None;
            }
            match self.storage.scan(self.cursor.as_ref(), SCAN_BATCH) {
                Ok(batch) => {
                    self.done = batch.len() < SCAN_BATCH;
                    self.batch = batch.into_iter();
                }
                Err(e) => {
                    tracing::error!(error = %e, "storage scan failed");
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::{RData, rdata::A};
    use kadns_record::{Bundle, MAX_BUNDLE_LEN, OwnerName, Rr, SignedBundle, ZoneKey};

    use super::*;
    use crate::storage::SledStorage;

    fn bundle(seed: u8, name: &str, sequence: u64, expires: u64, octet: u8) -> SignedBundle {
        let owner = OwnerName::from_labels([name.as_bytes()]).unwrap();
        let rr = Rr::new(60, &RData::A(A(Ipv4Addr::new(192, 0, 2, octet)))).unwrap();
        Bundle::new(owner, sequence, expires, vec![rr])
            .unwrap()
            .sign(&ZoneKey::from_seed([seed; 32]))
            .unwrap()
    }

    fn store() -> (ValidatingStore, broadcast::Receiver<Event>) {
        let (tx, rx) = broadcast::channel(64);
        let store = ValidatingStore::new(
            Box::new(SledStorage::temporary().unwrap()),
            Arc::new(Metrics::default()),
            tx,
        );
        (store, rx)
    }

    fn record(key: &DhtKey, bytes: Vec<u8>) -> Record {
        Record::new(RecordKey::new(key.as_bytes()), bytes)
    }

    #[test]
    fn every_refusal_reason_through_kademlia_put() {
        let (mut s, mut events) = store();
        let now = unix_now();
        let genuine = bundle(1, "www", 5, now + 3600, 1);
        let key = genuine.dht_key();
        s.put(record(&key, genuine.as_bytes().to_vec())).unwrap();
        assert!(matches!(
            events.try_recv(),
            Ok(Event::RecordStored { sequence: 5, .. })
        ));

        let mut forged = genuine.as_bytes().to_vec();
        let at = forged.len() - 64;
        forged[at] ^= 1;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (forged, "bad_signature"),
            (bundle(2, "www", 9, now + 3600, 2).into_bytes(), "wrong_key"),
            (bundle(1, "www", 4, now + 3600, 3).into_bytes(), "older"),
            (bundle(1, "www", 5, now + 3600, 4).into_bytes(), "conflict"),
            (bundle(1, "www", 6, now - 1, 5).into_bytes(), "expired"),
            (vec![1; MAX_BUNDLE_LEN + 1], "too_large"),
            (vec![1, 2, 3], "malformed"),
        ];
        for (bytes, reason) in cases {
            assert!(s.put(record(&key, bytes.clone())).is_err(), "{reason}");
            assert_eq!(
                s.offer(&key, &bytes, now, None).unwrap_err().reason(),
                reason
            );
            assert_eq!(s.metrics.refusals_for(reason), 2, "{reason}");
        }
        // A key that is not 32 bytes.
        assert!(
            s.put(Record::new(RecordKey::new(&[1u8; 3]), vec![]))
                .is_err()
        );
        // The genuine record is untouched.
        let held = RecordStore::get(&s, &RecordKey::new(key.as_bytes())).unwrap();
        assert_eq!(held.value, genuine.as_bytes());
        assert!(held.expires.is_some());
    }

    #[test]
    fn same_is_idempotent_and_newer_replaces() {
        let (mut s, _) = store();
        let now = unix_now();
        let v1 = bundle(1, "a", 1, now + 100, 1);
        let v2 = bundle(1, "a", 2, now + 100, 2);
        let key = v1.dht_key();
        assert_eq!(
            s.offer(&key, v1.as_bytes(), now, None).unwrap(),
            Stored::Written { sequence: 1 }
        );
        assert_eq!(
            s.offer(&key, v1.as_bytes(), now, None).unwrap(),
            Stored::AlreadyHeld { sequence: 1 }
        );
        assert_eq!(
            s.offer(&key, v2.as_bytes(), now, None).unwrap(),
            Stored::Written { sequence: 2 }
        );
        assert_eq!(s.get_bytes(&key, now).unwrap().bytes, v2.as_bytes());
        assert_eq!(s.metrics.stores.get(), 2);
    }

    #[test]
    fn expired_records_are_absent_and_purged() {
        let (mut s, _) = store();
        let now = unix_now();
        let b = bundle(1, "short", 1, now + 10, 1);
        let key = b.dht_key();
        s.offer(&key, b.as_bytes(), now, None).unwrap();
        // Seen from 20 s later it is gone, and an older bundle is accepted again.
        assert!(s.get_bytes(&key, now + 20).is_none());
        assert_eq!(s.storage().len(), 0);
        s.offer(&key, b.as_bytes(), now, None).unwrap();
        assert_eq!(s.purge_expired(now + 20, 10).unwrap(), 1);
        assert!(s.storage().is_empty());
    }

    #[test]
    fn records_streams_every_unexpired_record() {
        let (mut s, _) = store();
        let now = unix_now();
        let n = SCAN_BATCH * 2 + 5;
        for i in 0..n {
            let b = bundle(1, &format!("h{i}"), 1, now + 100, 1);
            s.offer(&b.dht_key(), b.as_bytes(), now, None).unwrap();
        }
        assert_eq!(s.records().count(), n);
        assert_eq!(s.providers(&RecordKey::new(&[0u8; 32])).len(), 0);
        assert!(
            s.add_provider(ProviderRecord::new(
                RecordKey::new(&[0u8; 32]),
                PeerId::random(),
                vec![]
            ))
            .is_err()
        );
    }
}
