//! The cloneable handle through which everything talks to a node.

use std::collections::BTreeMap;
use std::sync::Arc;

use kadns_record::{DhtKey, SignedBundle, VerifiedBundle, validate};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::Span;

use crate::error::Error;
use crate::event::Event;
use crate::metrics::Metrics;
use crate::store::unix_now;

/// What a `put` achieved. Only answers that arrived after the peer validated
/// and flushed the record count as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutReport {
    /// The record's DHT key.
    pub key: DhtKey,
    /// Peers that answered `Stored` (the record is on their disk), the local
    /// node included when it is a server and stored it.
    pub stored_on: Vec<PeerId>,
    /// Peers that refused it, with the reason label.
    pub refused: Vec<(PeerId, String)>,
    /// Peers that did not answer (timeout, connection failure), with the error.
    pub failed: Vec<(PeerId, String)>,
}

impl PutReport {
    /// How many nodes hold the record: the length of `stored_on`.
    pub fn replicas(&self) -> usize {
        self.stored_on.len()
    }
}

/// What a `get` found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOutcome {
    /// The key looked up.
    pub key: DhtKey,
    /// The valid bundle with the highest sequence (on equal sequence, the
    /// first seen), or `None` if no valid one was found.
    pub best: Option<VerifiedBundle>,
    /// Remote peers that returned a valid bundle.
    pub answered_by: Vec<PeerId>,
    /// Remote answers that failed validation (forged, expired, misplaced …).
    pub invalid_answers: usize,
    /// Whether the local store held a valid copy.
    pub local: bool,
    /// Invalid remote answers by refusal reason (`bad_signature`,
    /// `wrong_key`, `expired`, …), so a caller can say what was wrong.
    pub invalid_reasons: BTreeMap<&'static str, usize>,
    /// Remote peers known to have answered the lookup, with or without a
    /// record: the peers that returned a valid bundle, and the closest peers
    /// that Kademlia reports as having answered a lookup that found nothing.
    pub reached: Vec<PeerId>,
    /// True when the lookup ran to its end (it converged on the closest
    /// peers, or stopped at the quorum) rather than timing out.
    pub converged: bool,
    /// How many peers must have answered for "nothing found" to prove the
    /// key absent: `max(1, min(get_quorum, peers known when the lookup
    /// started))`. See [`GetOutcome::proves_absence`].
    pub required: usize,
    /// Requests Kademlia sent for this lookup (libp2p's query statistics):
    /// the lookup's cost in messages.
    pub requests: u32,
}

impl GetOutcome {
    /// Remote peers that returned a valid bundle.
    pub fn valid_answers(&self) -> usize {
        self.answered_by.len()
    }

    /// True when this lookup proves that no valid bundle is stored under the
    /// key: none was found (nor an invalid one), the lookup converged, and at
    /// least [`required`](Self::required) of the closest peers answered.
    /// "Nothing found" without this is *not reached*, never absent: a
    /// network that could not be asked says nothing about a name.
    pub fn proves_absence(&self) -> bool {
        self.best.is_none()
            && self.invalid_answers == 0
            && self.converged
            && self.reached.len() >= self.required
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

#[derive(Debug)]
pub(crate) enum Command {
    Put {
        key: DhtKey,
        bytes: Vec<u8>,
        store_locally: bool,
        reply: Reply<PutReport>,
        span: Span,
    },
    Get {
        key: DhtKey,
        reply: Reply<GetOutcome>,
        span: Span,
    },
    Bootstrap {
        reply: Reply<usize>,
    },
    Refresh {
        reply: Reply<usize>,
    },
    Peers {
        reply: Reply<Vec<PeerId>>,
    },
    ConnectedPeers {
        reply: Reply<Vec<PeerId>>,
    },
    ListenAddrs {
        reply: Reply<Vec<Multiaddr>>,
    },
    Dial {
        addr: Multiaddr,
        reply: Reply<()>,
    },
    Shutdown {
        reply: Reply<()>,
    },
}

/// A cloneable handle to a running node. Every method sends a command to the
/// node's event loop over a bounded channel and waits for the answer; once
/// the loop has ended, every method returns [`Error::Shutdown`].
///
/// All methods are cancel-safe in the sense that dropping the future never
/// corrupts the node; a dropped `put` still completes in the background.
#[derive(Clone, Debug)]
pub struct Handle {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) local_peer_id: PeerId,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) events: broadcast::Sender<Event>,
}

impl Handle {
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| Error::Shutdown)?;
        rx.await.map_err(|_| Error::Shutdown)?
    }

    /// The node's peer id.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Subscribes to what the store does (records stored and refused).
    /// Lagging receivers lose the oldest events.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Waits until the node is connected to at least `min` peers, checking
    /// every 50 ms, for at most `timeout`: a node that could not reach any
    /// bootstrap address never gets there. Returns the number connected;
    /// [`Error::NoKnownPeers`] if the deadline passed first. Safe to cancel.
    pub async fn wait_for_peers(
        &self,
        min: usize,
        timeout: std::time::Duration,
    ) -> Result<usize, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let connected = self.connected_peers().await?.len();
            if connected >= min {
                return Ok(connected);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NoKnownPeers);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Validates `bundle`, stores it locally (server mode) and on the closest
    /// peers, and reports who acknowledged it. The report is truthful: a
    /// peer counts only once it answered that the record is on its disk.
    pub async fn put(&self, bundle: SignedBundle) -> Result<PutReport, Error> {
        let key = bundle.dht_key();
        validate(&key, bundle.as_bytes(), unix_now())
            .map_err(|source| Error::Invalid { key, source })?;
        let span = tracing::debug_span!("dht_put", %key);
        self.call(|reply| Command::Put {
            key,
            bytes: bundle.into_bytes(),
            store_locally: true,
            reply,
            span,
        })
        .await
    }

    /// Sends `bytes` under `key` to the closest peers **without checking them
    /// first** and without storing them locally. Every receiver still
    /// validates; this exists for tests and tools that probe how the network
    /// treats bad records.
    pub async fn put_unvalidated(&self, key: DhtKey, bytes: Vec<u8>) -> Result<PutReport, Error> {
        let span = tracing::debug_span!("dht_put_unvalidated", %key);
        self.call(|reply| Command::Put {
            key,
            bytes,
            store_locally: false,
            reply,
            span,
        })
        .await
    }

    /// Looks `key` up: validates every record found, keeps the valid one with
    /// the highest sequence, and finishes once
    /// [`Config::get_quorum`](crate::Config::get_quorum) remote peers gave a
    /// valid one, or [`Config::get_grace`](crate::Config::get_grace) after
    /// the first valid one (or the lookup ends). A get for a key already in
    /// flight joins that lookup.
    pub async fn get(&self, key: DhtKey) -> Result<GetOutcome, Error> {
        let span = tracing::debug_span!("dht_get", %key);
        self.call(|reply| Command::Get { key, reply, span }).await
    }

    /// Runs a Kademlia bootstrap (a lookup of the node's own id, then one
    /// of a random id in every bucket farther than the closest peer) and
    /// returns the routing table's size afterwards.
    pub async fn bootstrap(&self) -> Result<usize, Error> {
        self.call(|reply| Command::Bootstrap { reply }).await
    }

    /// The light half of a bootstrap: one lookup of the node's own id (the
    /// Kademlia join lookup), which fills the buckets nearest the node and
    /// makes it known to its closest peers, without walking every bucket.
    /// Returns the routing table's size afterwards (0 with no known peers).
    ///
    /// ```no_run
    /// # async fn f(handle: kadns_dht::Handle) -> Result<(), kadns_dht::Error> {
    /// let table = handle.refresh().await?;
    /// println!("{table} peers in the routing table");
    /// # Ok(()) }
    /// ```
    pub async fn refresh(&self) -> Result<usize, Error> {
        self.call(|reply| Command::Refresh { reply }).await
    }

    /// The peers in the routing table. A bootstrap address is in it from the
    /// start, reachable or not; see [`Handle::connected_peers`].
    pub async fn peers(&self) -> Result<Vec<PeerId>, Error> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// The peers the node has an open connection to right now.
    pub async fn connected_peers(&self) -> Result<Vec<PeerId>, Error> {
        self.call(|reply| Command::ConnectedPeers { reply }).await
    }

    /// The addresses the node listens on, each ending in `/p2p/<peer id>`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>, Error> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Dials `addr` (`/ip4|ip6/…/p2p/<peer id>`) and adds it to the routing
    /// table.
    pub async fn dial(&self, addr: Multiaddr) -> Result<(), Error> {
        self.call(|reply| Command::Dial { addr, reply }).await
    }

    /// Stops the node: flushes the store and ends the event loop.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.call(|reply| Command::Shutdown { reply }).await
    }
}
