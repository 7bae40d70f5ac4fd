//! Re-replication: the periodic walk that hands every held record to the k
//! closest peers, and the handover walk that gives newly joined peers the
//! records they are now among the closest to. Both read the store in
//! batches and share one cap on unanswered pushes (docs/dht.md). The state
//! machine owns its walks and its store requests.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kadns_record::DhtKey;
use libp2p::PeerId;
use libp2p::kad::{self, RecordKey};
use libp2p::request_response::OutboundRequestId;
use tokio::time::Instant;

use crate::behaviour::Behaviour;
use crate::metrics::Metrics;
use crate::protocol::{StoreRequest, StoreResponse};
use crate::store::unix_now;

/// Records the replication job reads from disk per step.
pub const REPLICATION_BATCH: usize = 32;
/// How often the replication job takes a step while a round runs.
pub const REPLICATION_STEP: Duration = Duration::from_millis(50);
/// Most replication store requests in flight; the job pauses above it.
pub const MAX_REPLICATION_IN_FLIGHT: usize = 256;
/// Most replication store requests in flight to one peer: half the store
/// streams a connection takes ([`MAX_STORE_STREAMS`](crate::MAX_STORE_STREAMS)),
/// so a newcomer handed thousands of records never drops a push for want of
/// a stream, and still has streams of its own.
pub const MAX_REPLICATION_IN_FLIGHT_PER_PEER: usize = crate::behaviour::MAX_STORE_STREAMS / 2;
/// Most keys remembered as "recently received" (skipped by the next round).
pub const MAX_REPLICATION_SKIP: usize = 100_000;
/// How long the node waits after the first newly joined peer before it
/// starts a handover walk: peers that join together share one walk.
pub const HANDOVER_DEBOUNCE: Duration = Duration::from_secs(1);
/// Most newly joined peers waiting for a handover walk; more are left to the
/// next periodic round.
pub const MAX_HANDOVER_PEERS: usize = 256;
/// In a periodic round, only the nodes that are this many closest to a key
/// (in their own routing table) push it; a holder outside the k closest
/// pushes too (it hands the record on). Without it, every holder pushes every
/// record whenever the "recently received" skips line up, k times the work.
pub const REPLICATION_PUSHERS: usize = 3;
/// Shortest replication interval the loop accepts (shorter ones are raised
/// to it): a round must have time to read a batch before the next begins.
pub const MIN_REPLICATION_INTERVAL: Duration = Duration::from_secs(1);

/// One walk over the store, resumable after `cursor`.
#[derive(Debug, Default)]
pub(super) struct Walk {
    cursor: Option<DhtKey>,
    /// `None`: push to every one of the k closest peers (the periodic
    /// round). `Some`: only to these peers (a handover).
    targets: Option<HashSet<PeerId>>,
}

#[derive(Debug)]
pub(super) struct Replication {
    /// Whether the node hands records on at all: a server with a
    /// replication interval.
    enabled: bool,
    replication_factor: usize,
    /// The periodic round, while it runs.
    round: Option<Walk>,
    /// The handover walk, while it runs.
    handover: Option<Walk>,
    /// Newly joined peers waiting for the next handover walk.
    joined: HashSet<PeerId>,
    /// When the next handover walk starts (set by the first joined peer).
    handover_due: Option<Instant>,
    /// Replication and handover pushes sent and not yet answered, with the
    /// peer each went to.
    in_flight: HashMap<OutboundRequestId, PeerId>,
    /// Unanswered pushes per peer (only peers with at least one).
    per_peer: HashMap<PeerId, usize>,
    /// Keys received from other nodes since the current round began: the
    /// sender replicated them, so the next round skips them.
    received: HashSet<DhtKey>,
    skip: HashSet<DhtKey>,
    metrics: Arc<Metrics>,
}

impl Replication {
    pub(super) fn new(enabled: bool, replication_factor: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            enabled,
            replication_factor,
            round: None,
            handover: None,
            joined: HashSet::new(),
            handover_due: None,
            in_flight: HashMap::new(),
            per_peer: HashMap::new(),
            received: HashSet::new(),
            skip: HashSet::new(),
            metrics,
        }
    }

    /// Whether the step ticker has work: a walk runs or a handover is due.
    pub(super) fn active(&self) -> bool {
        self.round.is_some() || self.handover.is_some() || self.handover_due.is_some()
    }

    /// A store request ended. Returns false if `request_id` is not one of
    /// replication's pushes.
    pub(super) fn on_answer(
        &mut self,
        request_id: OutboundRequestId,
        peer: PeerId,
        answer: &Result<StoreResponse, String>,
    ) -> bool {
        let Some(to) = self.in_flight.remove(&request_id) else {
            return false;
        };
        if let Some(count) = self.per_peer.get_mut(&to) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_peer.remove(&to);
            }
        }
        self.set_in_flight_gauge();
        if let Ok(StoreResponse::Refused { reason }) | Err(reason) = answer {
            tracing::trace!(%peer, %reason, "replication push not stored");
        }
        true
    }

    /// A peer stored `key` on this node: it replicated the record, so the
    /// next round skips it (at most [`MAX_REPLICATION_SKIP`] keys).
    pub(super) fn on_received(&mut self, key: DhtKey) {
        if self.received.len() < MAX_REPLICATION_SKIP {
            self.received.insert(key);
        }
    }

    fn set_in_flight_gauge(&self) {
        self.metrics
            .replication_in_flight
            .set(i64::try_from(self.in_flight.len()).unwrap_or(i64::MAX));
    }

    /// Forgets a peer that was removed from the routing table.
    pub(super) fn forget(&mut self, peer: &PeerId) {
        self.joined.remove(peer);
        if let Some(targets) = self.handover.as_mut().and_then(|w| w.targets.as_mut()) {
            targets.remove(peer);
        }
    }
}

/// What one step of a walk did.
enum Progress {
    /// More records follow; resume after the cursor.
    More(Walk),
    /// The walk reached the end of the store (or failed).
    Done,
}

impl Replication {
    /// A replication tick: starts a periodic round unless one still runs.
    pub(super) fn start_round(&mut self) {
        if self.round.is_some() {
            tracing::debug!("replication round still running; skipping a tick");
            return;
        }
        self.round = Some(Walk::default());
        self.skip = std::mem::take(&mut self.received);
        self.metrics.replication_rounds.inc();
        tracing::debug!(skip = self.skip.len(), "replication round started");
    }

    /// A peer entered the routing table: it gets the records it is now among
    /// the closest to, in the next handover walk.
    pub(super) fn on_new_peer(&mut self, peer: PeerId) {
        // A client holds nothing for others; with replication off, a node
        // hands nothing on (tests that want only what they caused).
        if !self.enabled {
            return;
        }
        if self.joined.len() >= MAX_HANDOVER_PEERS {
            tracing::debug!(%peer, "too many joined peers waiting; left to the periodic round");
            return;
        }
        self.joined.insert(peer);
        if self.handover_due.is_none() {
            self.handover_due = Some(Instant::now() + HANDOVER_DEBOUNCE);
        }
    }

    /// One step of each running walk, every [`REPLICATION_STEP`]: the
    /// handover first (a newcomer is waiting), then the periodic round.
    pub(super) fn step(&mut self, behaviour: &mut Behaviour, local: PeerId) {
        if self.handover.is_none()
            && self.handover_due.is_some_and(|due| due <= Instant::now())
            && !self.joined.is_empty()
        {
            self.handover_due = None;
            let targets = std::mem::take(&mut self.joined);
            tracing::debug!(peers = targets.len(), "handover walk started");
            self.metrics.handover_walks.inc();
            self.handover = Some(Walk {
                cursor: None,
                targets: Some(targets),
            });
        } else if self.joined.is_empty() {
            self.handover_due = None;
        }
        if let Some(walk) = self.handover.take() {
            match self.walk_step(behaviour, local, walk, false) {
                Progress::More(walk) => self.handover = Some(walk),
                Progress::Done => {
                    tracing::debug!("handover walk finished");
                    // Peers that joined meanwhile get the next walk.
                    if !self.joined.is_empty() {
                        self.handover_due = Some(Instant::now() + HANDOVER_DEBOUNCE);
                    }
                }
            }
        }
        if let Some(walk) = self.round.take() {
            match self.walk_step(behaviour, local, walk, true) {
                Progress::More(walk) => self.round = Some(walk),
                Progress::Done => {
                    self.skip.clear();
                    tracing::debug!("replication round finished");
                }
            }
        }
        self.set_in_flight_gauge();
    }

    /// Reads up to [`REPLICATION_BATCH`] records after the walk's cursor and
    /// pushes each to its targets among the k closest peers of the routing
    /// table. Stops before a record whose pushes would take the unanswered
    /// pushes past [`MAX_REPLICATION_IN_FLIGHT`]; the next step resumes there.
    fn walk_step(
        &mut self,
        behaviour: &mut Behaviour,
        local: PeerId,
        mut walk: Walk,
        periodic: bool,
    ) -> Progress {
        if self.in_flight.len() >= MAX_REPLICATION_IN_FLIGHT {
            self.metrics.replication_capped.inc();
            return Progress::More(walk);
        }
        if walk.targets.as_ref().is_some_and(HashSet::is_empty) {
            return Progress::Done;
        }
        let now = unix_now();
        let batch = match behaviour
            .kad
            .store_mut()
            .storage()
            .scan(walk.cursor.as_ref(), REPLICATION_BATCH)
        {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "replication scan failed");
                return Progress::Done;
            }
        };
        let complete = batch.len() < REPLICATION_BATCH;
        // No record is ever pushed to more peers than the cap, so one always
        // fits once the pushes in flight are answered.
        let k = self.replication_factor.min(MAX_REPLICATION_IN_FLIGHT);
        for (key, stored) in batch {
            if stored.expires <= now || (periodic && self.skip.contains(&key)) {
                walk.cursor = Some(key);
                continue;
            }
            let target = kad::KBucketKey::new(RecordKey::new(key.as_bytes()));
            let closest: Vec<PeerId> = behaviour
                .kad
                .get_closest_local_peers(&target)
                .map(|k| *k.preimage())
                .filter(|p| *p != local)
                .take(k)
                .collect();
            // Only the few holders closest to the key push it; the others
            // know those will. In a handover the newcomers hold nothing yet,
            // so they do not count towards a holder's rank.
            let own = target.distance(&kad::KBucketKey::from(local));
            let holders = closest
                .iter()
                .filter(|p| walk.targets.as_ref().is_none_or(|t| !t.contains(*p)));
            let rank = holders
                .clone()
                .take_while(|p| target.distance(&kad::KBucketKey::from(**p)) < own)
                .count();
            if rank >= REPLICATION_PUSHERS && rank < holders.count() {
                walk.cursor = Some(key);
                continue;
            }
            let peers: Vec<PeerId> = closest
                .into_iter()
                .filter(|p| walk.targets.as_ref().is_none_or(|t| t.contains(p)))
                .collect();
            let peer_full = peers.iter().any(|p| {
                self.per_peer.get(p).copied().unwrap_or(0) >= MAX_REPLICATION_IN_FLIGHT_PER_PEER
            });
            if peer_full || self.in_flight.len() + peers.len() > MAX_REPLICATION_IN_FLIGHT {
                self.metrics.replication_capped.inc();
                return Progress::More(walk);
            }
            walk.cursor = Some(key);
            for peer in peers {
                let request_id = behaviour.store.send_request(
                    &peer,
                    StoreRequest {
                        key,
                        bytes: stored.bytes.clone(),
                    },
                );
                self.in_flight.insert(request_id, peer);
                *self.per_peer.entry(peer).or_default() += 1;
                if periodic {
                    self.metrics.replication_pushes.inc();
                } else {
                    self.metrics.handover_pushes.inc();
                }
            }
        }
        if complete {
            Progress::Done
        } else {
            Progress::More(walk)
        }
    }
}
