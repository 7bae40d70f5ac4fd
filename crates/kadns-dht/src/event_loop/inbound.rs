//! The inbound store: store requests other nodes send us
//! (`/kadns/store/1.0.0`), validated and written here, answered with group
//! commit. Every `Stored` answer waits for the flush that makes its record
//! durable, but the requests that are ready together share that flush: a
//! joining node handed thousands of records pays one fsync per group
//! instead of one per record.
//!
//! [`Inbound::on_request`] is the one place an inbound store request is
//! decided: checks on what a peer may make us store belong there.

use std::sync::Arc;

use kadns_record::DhtKey;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;

use libp2p::kad::KBucketKey;

use super::Kad;
use crate::behaviour::Behaviour;
use crate::metrics::Metrics;
use crate::protocol::{StoreRequest, StoreResponse};
use crate::store::{Stored, unix_now};

/// Most swarm events handled before a group of store answers is flushed and
/// sent: bounds how long an answer waits and how many wait at once.
pub const MAX_COMMIT_GROUP: usize = 256;

/// Inbound store requests waiting for the group's flush.
#[derive(Debug)]
pub(super) struct Inbound {
    /// Whether this node stores records (Kademlia server mode).
    server: bool,
    waiting: Vec<(PeerId, ResponseChannel<StoreResponse>)>,
    /// Whether a record was written since the last flush.
    dirty: bool,
    metrics: Arc<Metrics>,
}

impl Inbound {
    pub(super) fn new(server: bool, metrics: Arc<Metrics>) -> Self {
        Self {
            server,
            waiting: Vec::new(),
            dirty: false,
            metrics,
        }
    }

    /// Whether answers wait for a commit.
    pub(super) fn waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Validates and writes an offered record (without a flush); a refusal
    /// is answered at once, a `Stored` after the group's commit. Returns the
    /// key when the record is held (written now or before): its sender
    /// replicated it.
    pub(super) fn on_request(
        &mut self,
        behaviour: &mut Behaviour,
        peer: PeerId,
        request: StoreRequest,
        channel: ResponseChannel<StoreResponse>,
    ) -> Option<DhtKey> {
        let response = if self.server {
            refresh_closeness(&mut behaviour.kad);
            let store = behaviour.kad.store_mut();
            match store.offer_uncommitted(&request.key, &request.bytes, unix_now(), Some(peer)) {
                Ok(stored) => {
                    self.dirty |= matches!(stored, Stored::Written { .. });
                    // Already held may mean "written by this group": wait too.
                    self.waiting.push((peer, channel));
                    return Some(request.key);
                }
                Err(refusal) => StoreResponse::Refused {
                    reason: refusal.reason().to_owned(),
                },
            }
        } else {
            StoreResponse::Refused {
                reason: "not_server".to_owned(),
            }
        };
        respond(behaviour, peer, channel, response);
        None
    }

    /// Flushes once (if anything was written) and sends every waiting
    /// answer. The event loop first handles the swarm events that are ready
    /// (at most [`MAX_COMMIT_GROUP`]), so they join this group.
    pub(super) fn commit(&mut self, behaviour: &mut Behaviour) {
        let flushed = if std::mem::take(&mut self.dirty) {
            behaviour.kad.store_mut().commit()
        } else {
            Ok(())
        };
        let response = match flushed {
            Ok(()) => StoreResponse::Stored,
            Err(e) => {
                tracing::error!(error = %e, "flush failed; refusing the group's records");
                self.metrics.refused("storage");
                StoreResponse::Refused {
                    reason: "storage".to_owned(),
                }
            }
        };
        for (peer, channel) in std::mem::take(&mut self.waiting) {
            respond(behaviour, peer, channel, response.clone());
        }
    }
}

/// Gives the store's closeness check a fresh routing-table snapshot when
/// its last one is older than [`CLOSENESS_REFRESH`](crate::CLOSENESS_REFRESH).
pub(super) fn refresh_closeness(kad: &mut Kad) {
    if !kad.store_mut().closeness_stale() {
        return;
    }
    let mut peers: Vec<KBucketKey<PeerId>> = Vec::new();
    for bucket in kad.kbuckets() {
        peers.extend(bucket.iter().map(|entry| *entry.node.key));
    }
    kad.store_mut().refresh_closeness(peers);
}

fn respond(
    behaviour: &mut Behaviour,
    peer: PeerId,
    channel: ResponseChannel<StoreResponse>,
    response: StoreResponse,
) {
    if behaviour.store.send_response(channel, response).is_err() {
        tracing::debug!(%peer, "store requester went away before the answer");
    }
}
