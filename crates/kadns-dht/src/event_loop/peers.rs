//! The peer book: what the node knows about other peers beyond Kademlia's
//! routing table. It feeds identify's addresses into Kademlia, keeps the
//! saved peers on disk (for rejoining without the bootstrap list), answers
//! bootstrap waiters, and drops dead peers.
//!
//! Dead peers leave the routing table: libp2p's Kademlia keeps a peer whose
//! every dial fails (it only evicts one when its bucket is full), so after
//! churn the "k closest" of the routing table are partly dead and
//! replication reaches fewer live nodes than k. A peer whose dials (or store
//! requests) fail [`MAX_PEER_FAILURES`] times in a row, with no connection
//! in between, is removed from the routing table and from the saved peers.
//! It comes back by connecting again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::core::upgrade::NegotiationError;
use libp2p::kad::{self, QueryId};
use libp2p::swarm::DialError;
use libp2p::{Multiaddr, PeerId, identify, ping};

use super::{Kad, is_ip};
use crate::behaviour::KAD_PROTOCOL;
use crate::handle::Reply;
use crate::metrics::Metrics;

/// Consecutive failures (dials, store requests that timed out) after which a
/// peer is dropped from the routing table and the saved peers.
pub const MAX_PEER_FAILURES: u32 = 3;
/// Most peers whose failures are counted at once; failures of further peers
/// are not counted until some entries go away.
pub const MAX_TRACKED_FAILURES: usize = 1024;
/// Most listen addresses taken from one peer's identify.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Saved peers dialled at start-up.
pub const MAX_STARTUP_DIALS: usize = 16;
/// A routing-table walk that libp2p starts on its own less than this long
/// after the last one ended is stopped at once (when the table holds k
/// peers or more): see `Peers::on_bootstrap`.
pub const MIN_WALK_GAP: Duration = Duration::from_secs(60);

/// Saved peers, failure counts and bootstrap waiters.
#[derive(Debug)]
pub(super) struct Peers {
    max_saved: usize,
    /// [`BucketInserts::IfRoom`](crate::BucketInserts::IfRoom): identify
    /// adds a peer only while its bucket has room.
    if_room: bool,
    saved: HashSet<PeerId>,
    failures: HashMap<PeerId, u32>,
    bootstraps: HashMap<QueryId, Vec<Reply<usize>>>,
    /// Repeated walks being stopped, step by step.
    suppressed: HashSet<QueryId>,
    /// When the last walk ended.
    last_walk: Option<Instant>,
    refreshes: HashMap<QueryId, Vec<Reply<usize>>>,
    metrics: Arc<Metrics>,
}

/// The peers in Kademlia's routing table.
pub(super) fn routing_peers(kad: &mut Kad) -> Vec<PeerId> {
    let mut peers = Vec::new();
    for bucket in kad.kbuckets() {
        for entry in bucket.iter() {
            peers.push(*entry.node.key.preimage());
        }
    }
    peers
}

/// Whether `peer` is in its k-bucket already or the bucket has room (no
/// liveness dial is needed to add it).
fn has_room(kad: &mut Kad, peer: &PeerId) -> bool {
    match kad.kbucket(*peer) {
        Some(bucket) => {
            bucket.num_entries() < kad::K_VALUE.get()
                || bucket.iter().any(|e| e.node.key.preimage() == peer)
        }
        // Our own id.
        None => false,
    }
}

/// Gives Kademlia a peer's addresses (IP ones only, at most
/// [`MAX_ADDRS_PER_PEER`]) and returns those it took.
pub(super) fn add_peer_addresses(
    kad: &mut Kad,
    peer: PeerId,
    addrs: impl IntoIterator<Item = Multiaddr>,
) -> Vec<Multiaddr> {
    let addrs: Vec<Multiaddr> = addrs
        .into_iter()
        .filter(is_ip)
        .take(MAX_ADDRS_PER_PEER)
        .collect();
    for addr in &addrs {
        kad.add_address(&peer, addr.clone());
    }
    addrs
}

/// Whether a ping failed because the peer does not speak ping. With lazy
/// negotiation (`behaviour::swarm_config`) the peer's refusal reaches the
/// pinger as a failed read, an I/O error around multistream-select's
/// `NegotiationError::Failed`, instead of as `Failure::Unsupported`.
pub(super) fn ping_unsupported(failure: &ping::Failure) -> bool {
    let ping::Failure::Other { error } = failure else {
        return matches!(failure, ping::Failure::Unsupported);
    };
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&**error);
    while let Some(e) = next {
        if let Some(NegotiationError::Failed) = e.downcast_ref::<NegotiationError>() {
            return true;
        }
        // `io::Error::source` skips the error it wraps: look at it too.
        next = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    false
}

impl Peers {
    pub(super) fn new(max_saved: usize, if_room: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            max_saved,
            if_room,
            saved: HashSet::new(),
            failures: HashMap::new(),
            bootstraps: HashMap::new(),
            suppressed: HashSet::new(),
            last_walk: None,
            refreshes: HashMap::new(),
            metrics,
        }
    }

    /// Puts the saved peers into the routing table and adds up to
    /// [`MAX_STARTUP_DIALS`] of them to `dials`.
    pub(super) fn load_saved(
        &mut self,
        kad: &mut Kad,
        local: PeerId,
        dials: &mut Vec<(PeerId, Vec<Multiaddr>)>,
    ) {
        let saved = match kad.store_mut().storage().peers() {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read saved peers");
                return;
            }
        };
        for (peer, addrs) in saved {
            let Ok(peer) = PeerId::from_bytes(&peer) else {
                continue;
            };
            if peer == local {
                continue;
            }
            let addrs = add_peer_addresses(kad, peer, addrs.iter().filter_map(|a| a.parse().ok()));
            self.saved.insert(peer);
            if dials.len() < MAX_STARTUP_DIALS && !addrs.is_empty() {
                dials.push((peer, addrs));
            }
        }
        tracing::debug!(peers = self.saved.len(), "loaded saved peers");
    }

    /// Identify told us a peer's protocols and listen addresses: a kadns
    /// peer's addresses go to Kademlia and to the saved peers.
    pub(super) fn on_identify(&mut self, kad: &mut Kad, peer: PeerId, info: identify::Info) {
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        if self.if_room && !has_room(kad, &peer) {
            return;
        }
        let addrs = add_peer_addresses(kad, peer, info.listen_addrs);
        if addrs.is_empty() || (!self.saved.contains(&peer) && self.saved.len() >= self.max_saved) {
            return;
        }
        let text: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        match kad.store_mut().storage().save_peer(&peer.to_bytes(), &text) {
            Ok(()) => {
                self.saved.insert(peer);
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot save peer"),
        }
    }

    /// Starts a Kademlia bootstrap whose end answers `reply` with the
    /// routing table's size.
    pub(super) fn bootstrap(&mut self, kad: &mut Kad, reply: Reply<usize>) {
        match kad.bootstrap() {
            Ok(id) => self.bootstraps.entry(id).or_default().push(reply),
            Err(_) => {
                let _ = reply.send(Err(crate::error::Error::NoKnownPeers));
            }
        }
    }

    /// Starts a lookup of the node's own id whose end answers `reply` with
    /// the routing table's size (0 when no peer is known).
    pub(super) fn refresh(&mut self, kad: &mut Kad, local: PeerId, reply: Reply<usize>) {
        if routing_peers(kad).is_empty() {
            let _ = reply.send(Ok(0));
            return;
        }
        let id = kad.get_closest_peers(local);
        self.refreshes.entry(id).or_default().push(reply);
    }

    /// A closest-peers query ended: if it was a refresh, answers it and
    /// returns true.
    pub(super) fn on_refresh(&mut self, kad: &mut Kad, id: QueryId) -> bool {
        let Some(replies) = self.refreshes.remove(&id) else {
            return false;
        };
        let n = routing_peers(kad).len();
        for reply in replies {
            let _ = reply.send(Ok(n));
        }
        true
    }

    /// A bootstrap query progressed; `last` is Kademlia's `step.last`.
    /// A walk nobody asked for that libp2p starts again right after one
    /// ended (see [`MIN_WALK_GAP`]) is stopped here: Kademlia runs the next
    /// bucket's lookup of a finished step, so each step is finished as it
    /// begins, before it sends a request.
    pub(super) fn on_bootstrap(
        &mut self,
        kad: &mut Kad,
        id: QueryId,
        result: &kad::BootstrapResult,
        last: bool,
    ) {
        let done = match result {
            Ok(ok) => ok.num_remaining == 0,
            Err(kad::BootstrapError::Timeout { num_remaining, .. }) => {
                num_remaining.unwrap_or(0) == 0
            }
        } || last;
        if self.suppressed.contains(&id) || self.is_repeat(kad, id) {
            if done {
                self.suppressed.remove(&id);
            } else {
                self.suppressed.insert(id);
                if let Some(mut query) = kad.query_mut(&id) {
                    query.finish();
                }
            }
            return;
        }
        if last {
            self.metrics.bootstraps.inc();
            self.last_walk = Some(Instant::now());
        }
        if done && let Some(replies) = self.bootstraps.remove(&id) {
            let n = routing_peers(kad).len();
            for reply in replies {
                let _ = reply.send(Ok(n));
            }
        }
    }

    /// Whether walk `id`, reporting a step, repeats one that ended less
    /// than [`MIN_WALK_GAP`] ago, with a routing table of k peers or more,
    /// and nobody waits for it ([`Peers::bootstrap`]). A repeat is caught at
    /// its first report (the end of its own-id lookup): the end of the
    /// walk before it is what `last_walk` holds. libp2p starts a walk
    /// whenever a peer enters a table of fewer than k, 500 ms later, even
    /// while one runs: a node whose join fills its table slowly (slow
    /// links, a busy machine) walks twice in a row. Counted in
    /// `kadns_dht_bootstraps_suppressed`.
    fn is_repeat(&mut self, kad: &mut Kad, id: QueryId) -> bool {
        let repeat = !self.bootstraps.contains_key(&id)
            && self
                .last_walk
                .is_some_and(|ended| ended.elapsed() < MIN_WALK_GAP)
            && routing_peers(kad).len() >= kad::K_VALUE.get();
        if repeat {
            self.metrics.bootstraps_suppressed.inc();
            tracing::debug!(?id, "repeated routing-table walk stopped");
        }
        repeat
    }

    /// A connection to `peer` works: its count starts again.
    pub(super) fn ok(&mut self, peer: &PeerId) {
        self.failures.remove(peer);
    }

    /// A dial to `peer` failed. Returns true if the peer was dropped.
    pub(super) fn on_dial_failure(
        &mut self,
        kad: &mut Kad,
        peer: PeerId,
        error: &DialError,
    ) -> bool {
        match error {
            // Not a sign the peer is gone: a dial was already under way,
            // or we are connected.
            DialError::DialPeerConditionFalse(_) | DialError::Aborted => false,
            _ => self.failed(kad, peer),
        }
    }

    /// Something sent to `peer` failed (a dial, or a store request timed
    /// out). Drops the peer after [`MAX_PEER_FAILURES`] in a row and then
    /// returns true: the caller forgets it elsewhere too.
    pub(super) fn failed(&mut self, kad: &mut Kad, peer: PeerId) -> bool {
        let health = &mut self.failures;
        if !health.contains_key(&peer) && health.len() >= MAX_TRACKED_FAILURES {
            return false;
        }
        let count = health.entry(peer).or_insert(0);
        *count += 1;
        if *count < MAX_PEER_FAILURES {
            return false;
        }
        health.remove(&peer);
        let in_table = kad.remove_peer(&peer).is_some();
        let saved = self.saved.remove(&peer);
        if saved && let Err(e) = kad.store_mut().storage().forget_peer(&peer.to_bytes()) {
            tracing::warn!(%peer, error = %e, "cannot forget a saved peer");
        }
        if in_table || saved {
            self.metrics.peers_removed.inc();
            tracing::debug!(%peer, failures = MAX_PEER_FAILURES, "unreachable peer removed");
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_ping_is_unsupported_whether_negotiated_lazily_or_not() {
        let lazy = ping::Failure::Other {
            error: Box::new(std::io::Error::from(NegotiationError::Failed)),
        };
        assert!(ping_unsupported(&lazy));
        assert!(ping_unsupported(&ping::Failure::Unsupported));
        let broken = ping::Failure::Other {
            error: Box::new(std::io::Error::other("connection reset")),
        };
        assert!(!ping_unsupported(&broken));
        assert!(!ping_unsupported(&ping::Failure::Timeout));
    }
}
