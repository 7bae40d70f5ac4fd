//! Closeness refusal: a node stores a record for another node only if it
//! may be among the k closest to the record's key (docs/dht.md, "Storage
//! budget").
//!
//! The check counts the peers of the routing table that are strictly
//! closer (XOR distance of the SHA-256 Kademlia keys) to the record than
//! this node, and refuses when there are at least `k ×`
//! [`CLOSENESS_SLACK`]: the slack covers routing tables that differ from
//! node to node, so a put that the sender's lookup honestly routed here is
//! never refused, while one aimed at a node far from the key is.

use std::time::{Duration, Instant};

use kadns_record::DhtKey;
use libp2p::PeerId;
use libp2p::kad::KBucketKey;

/// How many times k closer peers a node must know before it refuses a
/// record as not its own.
pub const CLOSENESS_SLACK: usize = 2;

/// How long a snapshot of the routing table is used before it is taken
/// again.
pub const CLOSENESS_REFRESH: Duration = Duration::from_secs(1);

/// The routing table as the closeness check sees it: this node's Kademlia
/// key and its peers', taken from the event loop now and then.
#[derive(Debug)]
pub(crate) struct Closeness {
    local: KBucketKey<PeerId>,
    peers: Vec<KBucketKey<PeerId>>,
    /// Refuse at this many strictly closer peers (k × slack).
    threshold: usize,
    taken: Option<Instant>,
}

impl Closeness {
    /// For node `local` with replication factor `k`; no peers known yet.
    pub(crate) fn new(local: PeerId, k: usize) -> Self {
        Self {
            local: KBucketKey::from(local),
            peers: Vec::new(),
            threshold: k.saturating_mul(CLOSENESS_SLACK).max(1),
            taken: None,
        }
    }

    /// Whether the snapshot is older than [`CLOSENESS_REFRESH`].
    pub(crate) fn stale(&self) -> bool {
        self.taken.is_none_or(|t| t.elapsed() >= CLOSENESS_REFRESH)
    }

    /// Replaces the snapshot with `peers`.
    pub(crate) fn refresh(&mut self, peers: impl IntoIterator<Item = KBucketKey<PeerId>>) {
        self.peers.clear();
        self.peers
            .extend(peers.into_iter().filter(|p| *p != self.local));
        self.taken = Some(Instant::now());
    }

    /// `Some(closer)` if at least the threshold of known peers are strictly
    /// closer to `key` than this node (refuse), `None` otherwise.
    pub(crate) fn too_far(&self, key: &DhtKey) -> Option<usize> {
        if self.peers.len() < self.threshold {
            return None;
        }
        let target = KBucketKey::new(key.as_bytes().to_vec());
        let ours = target.distance(&self.local);
        let closer = self
            .peers
            .iter()
            .filter(|p| target.distance(*p) < ours)
            .count();
        (closer >= self.threshold).then_some(closer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_with_k_times_slack_strictly_closer_peers() {
        let local = PeerId::random();
        let k = 3;
        let mut c = Closeness::new(local, k);
        assert!(c.stale());
        let peers: Vec<PeerId> = (0..40).map(|_| PeerId::random()).collect();
        c.refresh(peers.iter().copied().map(KBucketKey::from));
        assert!(!c.stale());
        let local_key = KBucketKey::from(local);
        let mut refused = 0;
        let mut kept = 0;
        for i in 0u32..400 {
            let mut bytes = [0u8; 32];
            bytes[..4].copy_from_slice(&i.to_be_bytes());
            let key = DhtKey::from_bytes(bytes);
            let target = KBucketKey::new(key.as_bytes().to_vec());
            let ours = target.distance(&local_key);
            let closer = peers
                .iter()
                .filter(|p| target.distance(&KBucketKey::from(**p)) < ours)
                .count();
            match c.too_far(&key) {
                Some(n) => {
                    assert_eq!(n, closer);
                    assert!(closer >= k * CLOSENESS_SLACK, "{closer}");
                    refused += 1;
                }
                None => {
                    assert!(closer < k * CLOSENESS_SLACK, "{closer}");
                    kept += 1;
                }
            }
        }
        // With 40 peers, about 6/41 of the key space is ours.
        assert!(refused > 200 && kept > 10, "{refused} refused, {kept} kept");

        // Too few peers known: nothing is refused.
        c.refresh(
            peers
                .iter()
                .take(k * CLOSENESS_SLACK - 1)
                .copied()
                .map(KBucketKey::from),
        );
        assert!((0u8..=255).all(|i| c.too_far(&DhtKey::from_bytes([i; 32])).is_none()));
    }
}
