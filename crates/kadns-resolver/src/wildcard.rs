//! Wildcards (RFC 4592): answering a name that has no bundle of its own from
//! its closest encloser's `*` child.
//!
//! A DNS server knows its whole zone; a kadns resolver fetches one name at a
//! time. It learns the zone's structure from the signed meta records the
//! publisher adds (`docs/record-format.md`, "The meta record"): every empty
//! non-terminal has a bundle, so the names that exist are closed under
//! "parent of", and every name with a `*` child says so. Hence:
//!
//! 1. The **closest encloser** of a name that does not exist is its deepest
//!    ancestor that has a bundle. Existence is monotone along the ancestor
//!    chain, so it is found by a search over depths: each round looks up to
//!    [`PROBES_PER_ROUND`] ancestors concurrently and narrows the range
//!    between the deepest known to exist (the apex, at first) and the
//!    shallowest known not to (the name itself) to one of the
//!    `PROBES_PER_ROUND + 1` gaps. [`MAX_ROUNDS`] rounds settle any owner a
//!    bundle can carry.
//! 2. Only if the closest encloser's meta record says it has a wildcard
//!    child is `*.<closest encloser>` looked up; its bundle then answers,
//!    with the query name as owner. An existing name (an empty non-terminal
//!    included) never reaches this module, so it blocks the wildcard.
//!
//! Every lookup goes through the fetcher: cached, coalesced, verified and
//! rollback-checked like any other. The cost is in `docs/resolver.md`.

use std::sync::Arc;

use futures::future::join_all;
use kadns_record::{DhtKey, OwnerName, VerifiedBundle, ZoneId};

use crate::cache::{Cached, Found};
use crate::deadline::Deadline;
use crate::error::LookupError;
use crate::fetch::Fetcher;
use crate::source::BundleSource;

/// Ancestors looked up at once in one round of the closest-encloser search.
/// Bounds the concurrent DHT gets one query can start.
pub const PROBES_PER_ROUND: usize = 4;

/// Rounds of the closest-encloser search. Each divides the range of depths
/// by `PROBES_PER_ROUND + 1` = 5; owners have at most 101 labels
/// (`MAX_OWNER_LEN`), and 5^3 = 125 > 101, so 3 rounds settle every name;
/// one more is margin. With the wildcard itself, a query costs at most
/// `MAX_ROUNDS × PROBES_PER_ROUND + 2` = 18 bundle lookups.
pub const MAX_ROUNDS: usize = 4;

/// The wildcard bundle that answers for `owner` in `zone`, a name with no
/// bundle of its own (or a tombstone): `None` when its closest encloser has
/// no wildcard child, so NXDOMAIN stands. A lookup that fails fails the
/// search: nothing is concluded from a network that did not answer.
pub(crate) async fn source_of_synthesis<S: BundleSource>(
    fetcher: &Arc<Fetcher<S>>,
    zone: &ZoneId,
    owner: &OwnerName,
    deadline: Deadline,
) -> Result<Option<Cached>, LookupError> {
    let Some(encloser) = closest_encloser(fetcher, zone, owner, deadline).await? else {
        return Ok(None);
    };
    if !encloser
        .meta()
        .is_some_and(kadns_record::Meta::wildcard_child)
    {
        return Ok(None);
    }
    let Ok(wildcard) = encloser.owner().wildcard_child() else {
        return Ok(None);
    };
    let cached = fetcher
        .get(DhtKey::derive(zone, &wildcard), false, deadline)
        .await?;
    fetcher.metrics.wildcard_lookups.inc();
    match &cached.found {
        Found::Bundle(bundle) if !bundle.records().is_empty() => {
            tracing::trace!(%owner, %wildcard, "answering from the wildcard");
            fetcher.metrics.wildcard_answers.inc();
            Ok(Some(cached))
        }
        // Flagged but absent or removed: the zone changed, or the network
        // withheld it. No synthesis.
        _ => Ok(None),
    }
}

/// The bundle of `owner`'s deepest existing ancestor, the apex at most
/// (`None` when not even the apex has a bundle).
async fn closest_encloser<S: BundleSource>(
    fetcher: &Arc<Fetcher<S>>,
    zone: &ZoneId,
    owner: &OwnerName,
    deadline: Deadline,
) -> Result<Option<Arc<VerifiedBundle>>, LookupError> {
    // Depths in labels below the apex: `lo` is known to exist (assumed for
    // the apex), `hi` known not to (the name itself).
    let (mut lo, mut hi) = (0usize, owner.label_count());
    let mut lo_bundle: Option<Arc<VerifiedBundle>> = None;
    for _ in 0..MAX_ROUNDS {
        if hi <= lo + 1 {
            break;
        }
        let probes = probe_depths(lo, hi);
        let lookups = probes.iter().map(|&depth| {
            let key = DhtKey::derive(zone, &owner.ancestor(depth));
            fetcher.get(key, false, deadline)
        });
        fetcher.metrics.encloser_lookups.inc_by(probes.len() as u64);
        let results = join_all(lookups).await;
        for (&depth, result) in probes.iter().zip(results) {
            match existing(result?) {
                Some(bundle) => {
                    lo = depth;
                    lo_bundle = Some(bundle);
                }
                None => {
                    hi = depth;
                    break;
                }
            }
        }
    }
    if hi > lo + 1 {
        // Not settled within the bound (cannot happen for a valid owner).
        return Ok(None);
    }
    if lo_bundle.is_none() {
        let apex = fetcher
            .get(DhtKey::derive(zone, &OwnerName::apex()), false, deadline)
            .await?;
        lo_bundle = existing(apex);
    }
    Ok(lo_bundle)
}

/// Up to [`PROBES_PER_ROUND`] depths strictly between `lo` and `hi`, evenly
/// spread, ascending.
fn probe_depths(lo: usize, hi: usize) -> Vec<usize> {
    let gap = hi - lo;
    let count = (gap - 1).min(PROBES_PER_ROUND);
    let mut depths: Vec<usize> = (1..=count)
        .map(|i| lo + (gap * i) / (count + 1))
        .filter(|d| *d > lo && *d < hi)
        .collect();
    depths.dedup();
    depths
}

/// The bundle of a name that exists: not a tombstone, not nothing.
fn existing(cached: Cached) -> Option<Arc<VerifiedBundle>> {
    match cached.found {
        Found::Bundle(bundle) if !bundle.records().is_empty() => Some(bundle),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_cover_every_gap_and_stay_bounded() {
        assert_eq!(probe_depths(0, 1), Vec::<usize>::new());
        assert_eq!(probe_depths(0, 2), [1]);
        assert_eq!(probe_depths(0, 3), [1, 2]);
        assert_eq!(probe_depths(0, 5), [1, 2, 3, 4]);
        assert_eq!(probe_depths(0, 10), [2, 4, 6, 8]);
        // The search settles the deepest owner a bundle can carry.
        let deepest = kadns_record::MAX_OWNER_LEN / 2;
        for target in 0..deepest {
            let (mut lo, mut hi) = (0, deepest);
            let mut rounds = 0;
            while hi > lo + 1 {
                let probes = probe_depths(lo, hi);
                assert!(!probes.is_empty() && probes.len() <= PROBES_PER_ROUND);
                for d in probes {
                    if d <= target {
                        lo = d;
                    } else {
                        hi = d;
                        break;
                    }
                }
                rounds += 1;
            }
            assert_eq!(lo, target);
            assert!(rounds <= MAX_ROUNDS, "{rounds} rounds for depth {target}");
        }
    }
}
