//! Unit tests of the validating store.

use std::net::Ipv4Addr;

use hickory_proto::rr::{RData, rdata::A};
use kadns_record::{Bundle, MAX_BUNDLE_LEN, OwnerName, Rr, SignedBundle, ZoneKey};

use super::*;
use crate::storage::SledStorage;
use libp2p::kad::store::RecordStore;
use libp2p::kad::{ProviderRecord, Record, RecordKey};

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
fn the_same_bytes_again_are_held_only_while_unexpired() {
    let (mut s, _) = store();
    let now = unix_now();
    let b = bundle(1, "again", 3, now + 10, 1);
    let key = b.dht_key();
    s.offer(&key, b.as_bytes(), now, None).unwrap();
    // A second holder hands the same bytes over: held, nothing written.
    assert_eq!(
        s.offer(&key, b.as_bytes(), now + 5, None).unwrap(),
        Stored::AlreadyHeld { sequence: 3 }
    );
    assert_eq!(s.metrics.stores.get(), 1);
    // Past the signed expiry the same bytes are checked, and refused.
    assert_eq!(
        s.offer(&key, b.as_bytes(), now + 20, None)
            .unwrap_err()
            .reason(),
        "expired"
    );
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

fn limited(storage: SledStorage, max_bytes: u64, max_zone_records: usize) -> ValidatingStore {
    let mut limits = StorageLimits::for_bytes(max_bytes);
    limits.max_zone_records = max_zone_records;
    limits.max_records = 1000;
    ValidatingStore::with_limits(
        Box::new(storage),
        Arc::new(Metrics::default()),
        broadcast::channel(64).0,
        limits,
    )
}

#[test]
fn a_full_budget_refuses_new_keys_and_keeps_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    let first = bundle(1, "www", 1, now + 3600, 1);
    let per_record = crate::budget::cost(first.as_bytes().len());
    // Room for ten records of this size.
    let max_bytes = per_record * 10;
    let mut s = limited(SledStorage::open(dir.path()).unwrap(), max_bytes, 3);
    s.offer(&first.dht_key(), first.as_bytes(), now, None)
        .unwrap();
    // One zone: the per-zone cap (3) binds first.
    for name in ["a", "b"] {
        let b = bundle(1, name, 1, now + 3600, 1);
        s.offer(&b.dht_key(), b.as_bytes(), now, None).unwrap();
    }
    let fourth = bundle(1, "c", 1, now + 3600, 1);
    let refusal = s
        .offer(&fourth.dht_key(), fourth.as_bytes(), now, None)
        .unwrap_err();
    assert_eq!(refusal.reason(), "budget_zone");
    // A flood of fresh zones fills the byte budget, then is refused.
    let mut refused = 0;
    for seed in 10..40u8 {
        let b = bundle(seed, "www", 1, now + 3600, 1);
        match s.offer(&b.dht_key(), b.as_bytes(), now, None) {
            Ok(_) => {}
            Err(r) => {
                assert_eq!(r.reason(), "budget_bytes", "{r}");
                refused += 1;
            }
        }
    }
    assert_eq!(refused, 30 - 7, "seven more fit beside the first three");
    assert_eq!(s.stored_records(), 10);
    assert!(s.stored_bytes() <= max_bytes);
    assert_eq!(s.metrics.refusals_for("budget_bytes"), 23);
    // What was held first is still there, and may still be updated.
    assert!(s.get_bytes(&first.dht_key(), now).is_some());
    let newer = bundle(1, "www", 2, now + 3600, 9);
    assert_eq!(
        s.offer(&first.dht_key(), newer.as_bytes(), now, None)
            .unwrap(),
        Stored::Written { sequence: 2 }
    );
    s.commit().unwrap();
    drop(s);

    // The accounting is recomputed at open.
    let mut s = limited(SledStorage::open(dir.path()).unwrap(), max_bytes, 3);
    assert_eq!(s.stored_records(), 10);
    assert_eq!(s.metrics.records.get(), 10);
    let late = bundle(99, "www", 1, now + 3600, 1);
    assert_eq!(
        s.offer(&late.dht_key(), late.as_bytes(), now, None)
            .unwrap_err()
            .reason(),
        "budget_bytes"
    );
    let zone_one = bundle(1, "d", 1, now + 3600, 1);
    assert_eq!(
        s.offer(&zone_one.dht_key(), zone_one.as_bytes(), now, None)
            .unwrap_err()
            .reason(),
        "budget_zone",
        "the per-zone count survived the restart"
    );
    s.remove_record(&first.dht_key()).unwrap();
    assert_eq!(s.stored_records(), 9);
    s.offer(&late.dht_key(), late.as_bytes(), now, None)
        .unwrap();
}

#[test]
fn purged_and_expired_records_give_their_budget_back() {
    let now = unix_now();
    let short = bundle(1, "short", 1, now + 10, 1);
    let per_record = crate::budget::cost(short.as_bytes().len());
    let mut s = limited(SledStorage::temporary().unwrap(), per_record * 2, 10);
    s.offer(&short.dht_key(), short.as_bytes(), now, None)
        .unwrap();
    let other = bundle(2, "x", 1, now + 10, 1);
    s.offer(&other.dht_key(), other.as_bytes(), now, None)
        .unwrap();
    let third = bundle(3, "x", 1, now + 3600, 1);
    assert!(
        s.offer(&third.dht_key(), third.as_bytes(), now, None)
            .is_err()
    );
    // One leaves by a read after its expiry, one by the purge.
    assert!(s.get_bytes(&short.dht_key(), now + 20).is_none());
    assert_eq!(s.purge_expired(now + 20, 10).unwrap(), 1);
    assert_eq!(s.stored_records(), 0);
    assert_eq!(s.stored_bytes(), 0);
    s.offer(&third.dht_key(), third.as_bytes(), now + 20, None)
        .unwrap();
}

#[test]
fn closeness_refuses_far_keys_from_peers_but_not_own_puts() {
    let (mut s, _) = store();
    let local = PeerId::random();
    s.enable_closeness(local, 1);
    let peers: Vec<PeerId> = (0..30).map(|_| PeerId::random()).collect();
    s.refresh_closeness(peers.iter().copied().map(KBucketKey::from).collect());
    let now = unix_now();
    let from = Some(PeerId::random());
    let (mut far, mut near) = (0, 0);
    for i in 0..60 {
        let b = bundle(1, &format!("n{i}"), 1, now + 3600, 1);
        let key = b.dht_key();
        let expected_far = s.closeness.as_ref().unwrap().too_far(&key).is_some();
        match s.offer(&key, b.as_bytes(), now, from) {
            Err(r) => {
                assert!(expected_far);
                assert_eq!(r.reason(), "not_closest");
                assert!(s.get_bytes(&key, now).is_none());
                // The node's own put of the same record is stored.
                s.offer(&key, b.as_bytes(), now, None).unwrap();
                far += 1;
            }
            Ok(_) => {
                assert!(!expected_far);
                near += 1;
            }
        }
    }
    assert!(far > 30 && near > 0, "{far} far, {near} near");
    // Through Kademlia's own PUT too.
    let b = (0..200)
        .map(|i| bundle(2, &format!("k{i}"), 1, now + 3600, 1))
        .find(|b| {
            s.closeness
                .as_ref()
                .unwrap()
                .too_far(&b.dht_key())
                .is_some()
        })
        .unwrap();
    assert!(s.put(record(&b.dht_key(), b.as_bytes().to_vec())).is_err());
    assert_eq!(s.metrics.refusals_for("not_closest"), far + 1);
}

#[test]
#[tracing_test::traced_test]
fn quota_refusals_warn_once_per_interval_and_validation_refusals_do_not() {
    let now = unix_now();
    let first = bundle(1, "www", 1, now + 3600, 1);
    let per_record = crate::budget::cost(first.as_bytes().len());
    let mut s = limited(SledStorage::temporary().unwrap(), per_record, 10);
    s.offer(&first.dht_key(), first.as_bytes(), now, None)
        .unwrap();
    for seed in 2..52u8 {
        let b = bundle(seed, "www", 1, now + 3600, 1);
        assert!(s.offer(&b.dht_key(), b.as_bytes(), now, None).is_err());
    }
    // A stale version: routine, not warned.
    let stale = bundle(1, "www", 0, now + 3600, 1);
    assert!(
        s.offer(&first.dht_key(), stale.as_bytes(), now, None)
            .is_err()
    );
    assert_eq!(s.metrics.refusals_for("budget_bytes"), 50);
    assert_eq!(s.metrics.refusals_for("older"), 1);
    logs_assert(|lines: &[&str]| {
        let warned: Vec<&&str> = lines
            .iter()
            .filter(|l| l.contains("WARN") && l.contains("record refused"))
            .collect();
        match warned.as_slice() {
            [line] if line.contains("budget_bytes") && line.contains("suppressed=0") => Ok(()),
            other => Err(format!("expected one budget_bytes warning, got {other:?}")),
        }
    });
}

#[test]
fn a_full_budget_refuses_new_keys_before_checking_signatures() {
    let now = unix_now();
    let first = bundle(1, "www", 1, now + 3600, 1);
    let per_record = crate::budget::cost(first.as_bytes().len());
    let mut s = limited(SledStorage::temporary().unwrap(), per_record, 10);
    // With room, a forged record is refused for its signature.
    let mut forged = bundle(2, "www", 1, now + 3600, 1).into_bytes();
    let at = forged.len() - 64;
    forged[at] ^= 1;
    let forged_key = bundle(2, "www", 1, now + 3600, 1).dht_key();
    assert_eq!(
        s.offer(&forged_key, &forged, now, None)
            .unwrap_err()
            .reason(),
        "bad_signature"
    );
    s.offer(&first.dht_key(), first.as_bytes(), now, None)
        .unwrap();
    // Full: the same forged record is refused by the budget, unverified...
    assert_eq!(
        s.offer(&forged_key, &forged, now, None)
            .unwrap_err()
            .reason(),
        "budget_bytes"
    );
    // ...while the held key is still checked in full.
    let mut forged_update = bundle(1, "www", 2, now + 3600, 1).into_bytes();
    let at = forged_update.len() - 64;
    forged_update[at] ^= 1;
    assert_eq!(
        s.offer(&first.dht_key(), &forged_update, now, None)
            .unwrap_err()
            .reason(),
        "bad_signature"
    );
}
