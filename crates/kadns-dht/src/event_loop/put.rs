//! The put state machine: a put stores the bundle locally (server mode),
//! looks up the closest peers and sends each a store request; it reports once
//! every request was answered or failed (docs/dht.md, "PUT"). It owns its
//! pending puts, its closest-peer lookups and its store requests.

use std::collections::HashMap;
use std::sync::Arc;

use kadns_record::DhtKey;
use libp2p::PeerId;
use libp2p::kad::QueryId;
use libp2p::request_response::OutboundRequestId;
use tracing::Span;

use crate::behaviour::Behaviour;
use crate::handle::{PutReport, Reply};
use crate::metrics::Metrics;
use crate::protocol::{StoreRequest, StoreResponse};
use crate::store::unix_now;

/// Most `put`s in flight.
pub const MAX_PENDING_PUTS: usize = 256;

struct PutState {
    report: PutReport,
    bytes: Vec<u8>,
    outstanding: usize,
    reply: Reply<PutReport>,
    span: Span,
}

/// The puts in flight.
pub(super) struct Puts {
    /// Whether this node stores records (Kademlia server mode).
    server: bool,
    replication_factor: usize,
    pending: HashMap<u64, PutState>,
    next: u64,
    /// Closest-peer lookups, by the put they serve.
    lookups: HashMap<QueryId, u64>,
    /// Store requests sent, by the put and the peer they went to.
    requests: HashMap<OutboundRequestId, (u64, PeerId)>,
    metrics: Arc<Metrics>,
}

impl Puts {
    pub(super) fn new(server: bool, replication_factor: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            server,
            replication_factor,
            pending: HashMap::new(),
            next: 0,
            lookups: HashMap::new(),
            requests: HashMap::new(),
            metrics,
        }
    }

    /// Puts in flight.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Starts a put: the local store (if asked and a server), then a lookup
    /// of the key's closest peers.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn start(
        &mut self,
        behaviour: &mut Behaviour,
        local: PeerId,
        key: DhtKey,
        bytes: Vec<u8>,
        store_locally: bool,
        reply: Reply<PutReport>,
        span: Span,
    ) {
        self.metrics.puts.inc();
        let mut report = PutReport {
            key,
            stored_on: Vec::new(),
            refused: Vec::new(),
            failed: Vec::new(),
        };
        if store_locally && self.server {
            let store = behaviour.kad.store_mut();
            match store.offer(&key, &bytes, unix_now(), None) {
                Ok(_) => report.stored_on.push(local),
                Err(refusal) => report.refused.push((local, refusal.reason().to_owned())),
            }
        }
        let id = self.next;
        self.next += 1;
        let query = behaviour.kad.get_closest_peers(key.as_bytes().to_vec());
        span.in_scope(|| tracing::debug!(?query, "looking up closest peers"));
        self.lookups.insert(query, id);
        self.pending.insert(
            id,
            PutState {
                report,
                bytes,
                outstanding: 0,
                reply,
                span,
            },
        );
    }

    /// The closest-peer lookup `query` ended with `peers`: sends the store
    /// requests (to at most `replication_factor` of them).
    pub(super) fn on_closest_peers(
        &mut self,
        behaviour: &mut Behaviour,
        local: PeerId,
        query: QueryId,
        peers: Vec<PeerId>,
    ) {
        let Some(id) = self.lookups.remove(&query) else {
            tracing::trace!(?query, "closest peers for an unknown query");
            return;
        };
        let Some(mut put) = self.pending.remove(&id) else {
            return;
        };
        let targets: Vec<PeerId> = peers
            .into_iter()
            .filter(|p| *p != local)
            .take(self.replication_factor)
            .collect();
        put.span
            .in_scope(|| tracing::debug!(peers = targets.len(), "sending store requests"));
        for peer in targets {
            let request_id = behaviour.store.send_request(
                &peer,
                StoreRequest {
                    key: put.report.key,
                    bytes: put.bytes.clone(),
                },
            );
            self.requests.insert(request_id, (id, peer));
            put.outstanding += 1;
        }
        if put.outstanding == 0 {
            self.finish(put);
        } else {
            self.pending.insert(id, put);
        }
    }

    /// A store request ended. Returns false if `request_id` is not one of
    /// the puts' requests.
    pub(super) fn on_answer(
        &mut self,
        request_id: OutboundRequestId,
        peer: PeerId,
        answer: &Result<StoreResponse, String>,
    ) -> bool {
        let Some((id, expected)) = self.requests.remove(&request_id) else {
            return false;
        };
        debug_assert_eq!(peer, expected);
        let Some(put) = self.pending.get_mut(&id) else {
            return true;
        };
        match answer {
            Ok(StoreResponse::Stored) => put.report.stored_on.push(expected),
            Ok(StoreResponse::Refused { reason }) => {
                put.report.refused.push((expected, reason.clone()))
            }
            Err(error) => put.report.failed.push((expected, error.clone())),
        }
        put.outstanding -= 1;
        if put.outstanding == 0
            && let Some(put) = self.pending.remove(&id)
        {
            self.finish(put);
        }
        true
    }

    fn finish(&self, put: PutState) {
        let report = put.report;
        self.metrics
            .put_replicas
            .inc_by(report.stored_on.len() as u64);
        put.span.in_scope(|| {
            tracing::debug!(
                stored = report.stored_on.len(),
                refused = report.refused.len(),
                failed = report.failed.len(),
                "put finished"
            )
        });
        let _ = put.reply.send(Ok(report));
    }
}
