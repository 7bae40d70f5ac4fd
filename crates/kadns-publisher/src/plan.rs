//! Deciding what one publishing round puts into the DHT: the diff between
//! the zone file and the published state, and the refresh schedule.
//!
//! # The refresh schedule
//!
//! A bundle signed at `signed` that expires at `expires` is re-signed at
//! `signed + f × (expires − signed)`, with `f` in `[1/2, 3/4)` taken from a
//! hash of the owner name and the sequence. So every bundle is refreshed while
//! at least a quarter of its validity is left (1¾ days of a 7-day signature,
//! 3.75 s of a 15 s one), and the names of a zone signed together spread their
//! refreshes over a quarter of the validity instead of coming due in one
//! burst; since each name's next refresh counts from its own signing, the
//! spread persists round after round. A round that runs takes along every
//! name due within the next 1/64 of its validity, so a large zone is
//! refreshed in batches (about 16 rounds per quarter-validity) rather than a
//! round, and a state-file write, per name.

use std::collections::BTreeMap;

use kadns_record::{OwnerName, Rr};
use sha2::{Digest as _, Sha256};

use crate::published::{Digest, NameEntry};

/// The digest that says whether a name's content changed: SHA-256 over the
/// owner's wire form and every record's type, TTL and RDATA, in the
/// canonical order [`kadns_record::Bundle::new`] keeps them. Sequence and
/// expiry are not part of it.
pub fn records_digest(owner: &OwnerName, records: &[Rr]) -> Digest {
    let mut hash = Sha256::new();
    hash.update(b"kadns-records-digest-v1\0");
    hash.update(owner.wire());
    for rr in records {
        hash.update(u16::from(rr.record_type()).to_be_bytes());
        hash.update(rr.ttl().to_be_bytes());
        let rdata = rr.rdata_bytes();
        hash.update((rdata.len() as u64).to_be_bytes());
        hash.update(rdata);
    }
    hash.finalize().into()
}

/// When the bundle that `entry` describes is due to be re-signed (unix
/// seconds): between half and three quarters of its validity after signing.
pub fn refresh_due(owner: &OwnerName, entry: &NameEntry) -> u64 {
    let span = entry.expires.saturating_sub(entry.signed);
    let mut hash = Sha256::new();
    hash.update(b"kadns-refresh-v1\0");
    hash.update(owner.wire());
    hash.update(entry.sequence.to_be_bytes());
    let bytes: [u8; 32] = hash.finalize().into();
    let spread = u64::from(u16::from_be_bytes([bytes[0], bytes[1]])) % 1024;
    // [2048, 3072) / 4096 = [1/2, 3/4). u128: no overflow for any span.
    let offset = (u128::from(span) * u128::from(2048 + spread) / 4096) as u64;
    entry.signed.saturating_add(offset)
}

/// How far ahead of its due time a name is refreshed when a round runs
/// anyway: 1/64 of its validity (2.6 h of 7 days, nothing for validities
/// under 64 s). Refreshes then come in batches, one round (and one state
/// write) for every name due in that window, instead of a round for each
/// name; still at least 23/64 of the validity is left at a refresh.
fn batched(owner: &OwnerName, entry: &NameEntry) -> u64 {
    let span = entry.expires.saturating_sub(entry.signed);
    refresh_due(owner, entry).saturating_sub(span / 64)
}

/// What one round does, by name, each list in name order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    /// New names, names whose records changed, and names back after a
    /// tombstone: signed with their records.
    pub(crate) changed: Vec<OwnerName>,
    /// Unchanged names whose refresh is due: signed again as they are.
    pub(crate) refresh: Vec<OwnerName>,
    /// Names published before and gone from the zone: a tombstone each.
    pub(crate) remove: Vec<OwnerName>,
    /// Tombstones whose refresh is due while a replay of the removed bundle
    /// would still be valid: a new tombstone each.
    pub(crate) tombstone_refresh: Vec<OwnerName>,
    /// Tombstones no longer needed (every bundle with records has expired):
    /// forgotten, nothing put.
    pub(crate) drop: Vec<OwnerName>,
}

impl Plan {
    /// How many bundles the round puts.
    pub(crate) fn puts(&self) -> usize {
        self.changed.len() + self.refresh.len() + self.remove.len() + self.tombstone_refresh.len()
    }

    /// Whether the round has nothing to do.
    pub(crate) fn is_empty(&self) -> bool {
        self.puts() == 0 && self.drop.is_empty()
    }
}

/// Compares the zone (`zone`: each name's digest) with what was published
/// (`state`) at `now`. With `all`, every name of the zone is re-signed and
/// every tombstone still needed is refreshed, due or not. Names in `held`
/// until a time after `now` (a put that reached nobody, waiting to be
/// retried) are left out.
pub(crate) fn plan(
    zone: &BTreeMap<OwnerName, Digest>,
    state: &BTreeMap<OwnerName, NameEntry>,
    held: &BTreeMap<OwnerName, u64>,
    now: u64,
    all: bool,
) -> Plan {
    let mut plan = Plan::default();
    let is_held = |owner: &OwnerName| held.get(owner).is_some_and(|&until| until > now);
    for (owner, digest) in zone {
        if is_held(owner) {
            continue;
        }
        match state.get(owner) {
            Some(entry) if entry.digest == Some(*digest) => {
                if all || batched(owner, entry) <= now {
                    plan.refresh.push(owner.clone());
                }
            }
            // New, changed, or back after a tombstone.
            _ => plan.changed.push(owner.clone()),
        }
    }
    for (owner, entry) in state {
        if zone.contains_key(owner) {
            continue;
        }
        if entry.is_tombstone() {
            if entry.live_until <= now {
                plan.drop.push(owner.clone());
            } else if !is_held(owner)
                && entry.expires < entry.live_until
                && (all || batched(owner, entry) <= now)
            {
                plan.tombstone_refresh.push(owner.clone());
            }
        } else if !is_held(owner) {
            plan.remove.push(owner.clone());
        }
    }
    plan
}

/// The earliest time (unix seconds) at which [`plan`] has work without the
/// zone changing: a refresh coming due, a tombstone to drop, or a held name
/// to retry. `None` when nothing is ever due (no names).
pub(crate) fn next_due(
    state: &BTreeMap<OwnerName, NameEntry>,
    held: &BTreeMap<OwnerName, u64>,
) -> Option<u64> {
    let due = state.iter().map(|(owner, entry)| {
        if entry.is_tombstone() {
            if entry.expires < entry.live_until {
                refresh_due(owner, entry).min(entry.live_until)
            } else {
                entry.live_until
            }
        } else {
            refresh_due(owner, entry)
        }
    });
    due.chain(held.values().copied()).min()
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    use super::*;

    fn owner(label: &str) -> OwnerName {
        OwnerName::from_labels([label.as_bytes()]).unwrap()
    }

    fn a(ttl: u32, last: u8) -> Rr {
        Rr::new(ttl, &RData::A(A::new(192, 0, 2, last))).unwrap()
    }

    #[test]
    fn the_digest_sees_every_change_of_content_and_nothing_else() {
        let www = owner("www");
        let base = records_digest(&www, &[a(300, 1)]);
        assert_eq!(base, records_digest(&www, &[a(300, 1)]));
        assert_ne!(base, records_digest(&www, &[a(300, 2)]), "address");
        assert_ne!(base, records_digest(&www, &[a(301, 1)]), "TTL");
        assert_ne!(base, records_digest(&owner("ftp"), &[a(300, 1)]), "owner");
        assert_ne!(base, records_digest(&www, &[a(300, 1), a(300, 2)]), "added");
        assert_ne!(base, records_digest(&www, &[]), "emptied");
    }

    #[test]
    fn refreshes_come_due_before_expiry_and_spread_over_a_quarter_of_the_validity() {
        for validity in [10u64, 15, 3600, 7 * 86_400, 31 * 86_400] {
            let signed = 1_800_000_000;
            let mut dues = Vec::new();
            for i in 0..2000u64 {
                let name = owner(&format!("host{i}"));
                let entry = NameEntry::live([0; 32], 5, signed, signed + validity);
                let due = refresh_due(&name, &entry);
                // At least a quarter of the validity is left, at most a half.
                assert!(due >= signed + validity / 2, "{validity}: {due}");
                assert!(
                    (entry.expires - due) * 4 >= validity,
                    "{validity}: due {due} leaves less than a quarter"
                );
                dues.push(due - signed);
            }
            if validity >= 3600 {
                // Spread, not a burst: the dues fill the window [V/2, 3V/4)
                // evenly (each eighth of it holds 1/8 of the names ± a bit).
                let window = validity / 4;
                let mut buckets = [0usize; 8];
                for d in &dues {
                    let at = (d - validity / 2) * 8 / window;
                    buckets[at as usize] += 1;
                }
                for count in buckets {
                    assert!((180..=320).contains(&count), "{validity}: {buckets:?}");
                }
            }
        }
        // A new sequence moves the name's point in the window.
        let name = owner("www");
        let dues: std::collections::BTreeSet<u64> = (0..50)
            .map(|seq| refresh_due(&name, &NameEntry::live([0; 32], seq, 0, 1_000_000)))
            .collect();
        assert!(dues.len() > 40, "{dues:?}");
    }

    fn zone(names: &[(&str, u8)]) -> BTreeMap<OwnerName, Digest> {
        names.iter().map(|(n, d)| (owner(n), [*d; 32])).collect()
    }

    #[test]
    fn changed_unchanged_new_and_removed_names() {
        let now = 1_000_000;
        let mut state = BTreeMap::new();
        // Signed just now for a day: not due.
        state.insert(
            owner("same"),
            NameEntry::live([1; 32], 9, now, now + 86_400),
        );
        state.insert(
            owner("edited"),
            NameEntry::live([2; 32], 9, now, now + 86_400),
        );
        state.insert(
            owner("removed"),
            NameEntry::live([3; 32], 9, now, now + 86_400),
        );
        // Signed a day ago for a day and a half: due.
        state.insert(
            owner("old"),
            NameEntry::live([4; 32], 9, now - 86_400, now + 43_200),
        );
        let zone = zone(&[("same", 1), ("edited", 20), ("new", 5), ("old", 4)]);
        let held = BTreeMap::new();

        let p = plan(&zone, &state, &held, now, false);
        // In `OwnerName` order (canonical wire order: shorter labels first).
        assert_eq!(p.changed, [owner("new"), owner("edited")]);
        assert_eq!(p.refresh, [owner("old")]);
        assert_eq!(p.remove, [owner("removed")]);
        assert!(p.tombstone_refresh.is_empty() && p.drop.is_empty());
        assert_eq!(p.puts(), 4);

        // Nothing changed and nothing due: an empty round.
        let quiet = BTreeMap::from([(owner("same"), [1; 32])]);
        let only = BTreeMap::from([(owner("same"), state[&owner("same")])]);
        assert!(plan(&quiet, &only, &held, now, false).is_empty());
        // `all` re-signs it anyway.
        assert_eq!(
            plan(&quiet, &only, &held, now, true).refresh,
            [owner("same")]
        );
    }

    #[test]
    fn tombstones_are_refreshed_while_the_removed_bundle_could_be_replayed_then_dropped() {
        let now = 1_000_000;
        let gone = owner("gone");
        // Removed at `now - 10`; its last bundle was valid until now + 100.
        let tomb = NameEntry::tombstone(10, now - 10, now + 5, now + 100);
        let state = BTreeMap::from([(gone.clone(), tomb)]);
        let empty = BTreeMap::new();
        let held = BTreeMap::new();

        // Not yet due (due at least half of its 15 s after signing).
        let due = refresh_due(&gone, &tomb);
        assert!(due > now - 10 && due < now + 5);
        assert!(plan(&empty, &state, &held, due - 1, false).is_empty());
        let p = plan(&empty, &state, &held, due, false);
        assert_eq!(p.tombstone_refresh, std::slice::from_ref(&gone));
        assert_eq!(next_due(&state, &held), Some(due));

        // A tombstone that outlives the removed bundle is not refreshed …
        let long = NameEntry::tombstone(11, now, now + 200, now + 100);
        let state = BTreeMap::from([(gone.clone(), long)]);
        assert!(
            plan(&empty, &state, &held, now + 150, false)
                .tombstone_refresh
                .is_empty()
        );
        assert_eq!(next_due(&state, &held), Some(now + 100));
        // … and once every bundle with records has expired, it is dropped.
        let p = plan(&empty, &state, &held, now + 100, false);
        assert_eq!(p.drop, std::slice::from_ref(&gone));
        assert_eq!(p.puts(), 0);

        // A name back after its tombstone is a change.
        let back = BTreeMap::from([(gone.clone(), [9; 32])]);
        assert_eq!(plan(&back, &state, &held, now, false).changed, [gone]);
    }

    #[test]
    fn names_due_soon_after_the_first_are_refreshed_in_the_same_round() {
        let validity = 7 * 86_400;
        let mut state = BTreeMap::new();
        let mut zone = BTreeMap::new();
        for i in 0..500 {
            let name = owner(&format!("h{i}"));
            state.insert(name.clone(), NameEntry::live([1; 32], 3, 0, validity));
            zone.insert(name, [1; 32]);
        }
        let held = BTreeMap::new();
        let first = next_due(&state, &held).unwrap();
        let p = plan(&zone, &state, &held, first, false);
        // The window is 1/64 of the validity, the spread 1/4 of it: about
        // 1/16 of the names come along, far more than the one that was due.
        assert!((15..=60).contains(&p.refresh.len()), "{}", p.refresh.len());
        for name in &p.refresh {
            let due = refresh_due(name, &state[name]);
            assert!(due <= first + validity / 64, "{name}: {due}");
        }
    }

    #[test]
    fn held_names_wait_for_their_retry_time() {
        let now = 1_000;
        let new = owner("new");
        let zone = BTreeMap::from([(new.clone(), [1; 32])]);
        let state = BTreeMap::new();
        let held = BTreeMap::from([(new.clone(), now + 5)]);
        assert!(plan(&zone, &state, &held, now, false).is_empty());
        assert_eq!(next_due(&state, &held), Some(now + 5));
        assert_eq!(plan(&zone, &state, &held, now + 5, false).changed, [new]);
        assert_eq!(next_due(&BTreeMap::new(), &BTreeMap::new()), None);
    }
}
