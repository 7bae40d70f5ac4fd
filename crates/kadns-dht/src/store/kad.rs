//! kad's `RecordStore` over the [`ValidatingStore`], and the streaming
//! iterator its `records()` returns.

use std::borrow::Cow;

use kadns_record::DhtKey;
use libp2p::PeerId;
use libp2p::kad::store::{self, RecordStore};
use libp2p::kad::{ProviderRecord, Record, RecordKey};

use super::{SCAN_BATCH, ValidatingStore, expiry_instant, unix_now};
use crate::storage::{Storage, StoredRecord};

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
        // Sent by a peer (remote), though libp2p does not say which.
        match self.offer_with(&key, &r.value, unix_now(), None, true, true) {
            Ok(_) => Ok(()),
            // libp2p's error type has no variant for "invalid"; the closest.
            Err(_) => Err(store::Error::ValueTooLarge),
        }
    }

    fn remove(&mut self, k: &RecordKey) {
        if let Some(key) = DhtKey::from_slice(k.as_ref())
            && let Err(e) = self.remove_record(&key)
        {
            tracing::warn!(%key, error = %e, "cannot remove record");
        }
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        Records {
            storage: self.storage(),
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
