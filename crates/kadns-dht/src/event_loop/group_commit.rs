//! Group commit of inbound store requests. Every `Stored` answer waits for
//! the flush that makes its record durable, but the requests that are ready
//! together share that flush: a joining node handed thousands of records
//! pays one fsync per group instead of one per record.

use futures::FutureExt;
use futures::StreamExt;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;

use super::{EventLoop, MAX_REPLICATION_SKIP};
use crate::config::Mode;
use crate::protocol::{StoreRequest, StoreResponse};
use crate::store::{Stored, unix_now};

/// Most swarm events handled before a group of store answers is flushed and
/// sent: bounds how long an answer waits and how many wait at once.
pub const MAX_COMMIT_GROUP: usize = 256;

/// Answers waiting for the group's flush.
#[derive(Debug, Default)]
pub(super) struct Acks {
    waiting: Vec<(PeerId, ResponseChannel<StoreResponse>)>,
    /// Whether a record was written since the last flush.
    dirty: bool,
}

impl EventLoop {
    /// Validates and writes an offered record (without a flush); a refusal
    /// is answered at once, a `Stored` after the group's commit.
    pub(super) fn on_store_request(
        &mut self,
        peer: PeerId,
        request: StoreRequest,
        channel: ResponseChannel<StoreResponse>,
    ) {
        let response = if self.mode == Mode::Server {
            let store = self.swarm.behaviour_mut().kad.store_mut();
            match store.offer_uncommitted(&request.key, &request.bytes, unix_now(), Some(peer)) {
                Ok(stored) => {
                    if self.replication.received.len() < MAX_REPLICATION_SKIP {
                        self.replication.received.insert(request.key);
                    }
                    self.acks.dirty |= matches!(stored, Stored::Written { .. });
                    // Already held may mean "written by this group": wait too.
                    self.acks.waiting.push((peer, channel));
                    return;
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
        self.respond(peer, channel, response);
    }

    fn respond(
        &mut self,
        peer: PeerId,
        channel: ResponseChannel<StoreResponse>,
        response: StoreResponse,
    ) {
        if self
            .swarm
            .behaviour_mut()
            .store
            .send_response(channel, response)
            .is_err()
        {
            tracing::debug!(%peer, "store requester went away before the answer");
        }
    }

    /// With answers waiting: handles the swarm events that are ready now (at
    /// most [`MAX_COMMIT_GROUP`]), then flushes once and sends every answer.
    pub(super) fn commit_group(&mut self) {
        if self.acks.waiting.is_empty() {
            return;
        }
        for _ in 0..MAX_COMMIT_GROUP {
            match self.swarm.next().now_or_never() {
                Some(Some(event)) => self.on_swarm_event(event),
                _ => break,
            }
        }
        let flushed = if std::mem::take(&mut self.acks.dirty) {
            self.swarm.behaviour_mut().kad.store_mut().commit()
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
        for (peer, channel) in std::mem::take(&mut self.acks.waiting) {
            self.respond(peer, channel, response.clone());
        }
    }
}
