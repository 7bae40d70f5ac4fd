//! Dead peers leave the routing table: libp2p's Kademlia keeps a peer whose
//! every dial fails (it only evicts one when its bucket is full), so after
//! churn the "k closest" of the routing table are partly dead and
//! replication reaches fewer live nodes than k. A peer whose dials (or store
//! requests) fail [`MAX_PEER_FAILURES`] times in a row, with no connection
//! in between, is removed from the routing table and from the saved peers.
//! It comes back by connecting again.

use std::collections::HashMap;

use libp2p::PeerId;
use libp2p::swarm::DialError;

use super::EventLoop;

/// Consecutive failures (dials, store requests that timed out) after which a
/// peer is dropped from the routing table and the saved peers.
pub const MAX_PEER_FAILURES: u32 = 3;
/// Most peers whose failures are counted at once; failures of further peers
/// are not counted until some entries go away.
pub const MAX_TRACKED_FAILURES: usize = 1024;

/// Failure counts per peer.
#[derive(Debug, Default)]
pub(super) struct PeerHealth {
    failures: HashMap<PeerId, u32>,
}

impl EventLoop {
    /// A connection to `peer` works: its count starts again.
    pub(super) fn peer_ok(&mut self, peer: &PeerId) {
        self.health.failures.remove(peer);
    }

    /// A dial to `peer` failed.
    pub(super) fn on_dial_failure(&mut self, peer: PeerId, error: &DialError) {
        match error {
            // Not a sign the peer is gone: a dial was already under way,
            // or we are connected.
            DialError::DialPeerConditionFalse(_) | DialError::Aborted => {}
            _ => self.peer_failed(peer),
        }
    }

    /// Something sent to `peer` failed (a dial, or a store request timed
    /// out). Drops the peer after [`MAX_PEER_FAILURES`] in a row.
    pub(super) fn peer_failed(&mut self, peer: PeerId) {
        let health = &mut self.health.failures;
        if !health.contains_key(&peer) && health.len() >= MAX_TRACKED_FAILURES {
            return;
        }
        let count = health.entry(peer).or_insert(0);
        *count += 1;
        if *count < MAX_PEER_FAILURES {
            return;
        }
        health.remove(&peer);
        let in_table = self.swarm.behaviour_mut().kad.remove_peer(&peer).is_some();
        let saved = self.saved_peers.remove(&peer);
        if saved
            && let Err(e) = self
                .swarm
                .behaviour_mut()
                .kad
                .store_mut()
                .storage()
                .forget_peer(&peer.to_bytes())
        {
            tracing::warn!(%peer, error = %e, "cannot forget a saved peer");
        }
        self.replication.forget(&peer);
        if in_table || saved {
            self.metrics.peers_removed.inc();
            tracing::debug!(%peer, failures = MAX_PEER_FAILURES, "unreachable peer removed");
        }
    }
}
