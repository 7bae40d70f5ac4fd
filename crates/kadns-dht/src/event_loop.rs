//! The event loop: the one task that owns the swarm. It keeps only the swarm
//! and dispatch; each job is a sub-state machine in `event_loop/` that owns
//! its own state, the way rust-libp2p composes behaviours:
//!
//! - `get`: lookups in flight, coalescing, validation, when a get is done;
//! - `put`: puts in flight, their closest-peer lookups and store requests;
//! - `replication`: the periodic and handover walks and their pushes;
//! - `peers`: saved peers, failure counts, bootstrap waiters;
//! - `inbound`: inbound store requests and their group commit;
//! - `expiry`: purging expired records.

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use libp2p::kad;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, identify, ping};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::event::Event;
use crate::handle::{Command, Handle};
use crate::metrics::Metrics;
use crate::protocol::{StoreRequest, StoreResponse};
use crate::store::ValidatingStore;

mod expiry;
mod get;
mod inbound;
mod peers;
mod put;
mod replication;
mod start;

use expiry::Expiry;
pub use expiry::PURGE_BATCH;
pub use get::MAX_PENDING_GETS;
use get::{GetStep, Gets};
use inbound::Inbound;
pub use inbound::MAX_COMMIT_GROUP;
pub use peers::{
    MAX_ADDRS_PER_PEER, MAX_PEER_FAILURES, MAX_STARTUP_DIALS, MAX_TRACKED_FAILURES, MIN_WALK_GAP,
};
use peers::{Peers, ping_unsupported, routing_peers};
pub use put::MAX_PENDING_PUTS;
use put::Puts;
use replication::Replication;
pub use replication::{
    HANDOVER_DEBOUNCE, MAX_HANDOVER_PEERS, MAX_REPLICATION_IN_FLIGHT,
    MAX_REPLICATION_IN_FLIGHT_PER_PEER, MAX_REPLICATION_SKIP, MIN_REPLICATION_INTERVAL,
    REPLICATION_BATCH, REPLICATION_PUSHERS, REPLICATION_STEP,
};

/// Commands waiting in the handle's channel before senders wait.
pub const COMMAND_CHANNEL_LEN: usize = 256;
/// Capacity of the store-event broadcast channel.
pub const EVENT_CHANNEL_LEN: usize = 1024;

/// Kademlia over the node's store.
type Kad = kad::Behaviour<ValidatingStore>;

/// The event loop. Owns the swarm; [`Handle`]s talk to it over a bounded
/// channel. Build one with [`EventLoop::new`] from any swarm of
/// [`Behaviour`], then drive it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    replication_interval: Option<Duration>,
    purge_interval: Duration,
    gets: Gets,
    puts: Puts,
    replication: Replication,
    peers: Peers,
    inbound: Inbound,
    expiry: Expiry,
    listen_addrs: Vec<Multiaddr>,
}

impl std::fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventLoop")
            .field("peer_id", self.swarm.local_peer_id())
            .field("gets", &self.gets.len())
            .field("puts", &self.puts.len())
            .finish_non_exhaustive()
    }
}

fn is_ip(addr: &Multiaddr) -> bool {
    matches!(
        addr.iter().next(),
        Some(Protocol::Ip4(_) | Protocol::Ip6(_))
    )
}

fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(peer)) => Some(peer),
        _ => None,
    }
}

/// Makes every write durable (sled's flush); logs a failure.
fn flush(kad: &mut Kad) {
    if let Err(e) = kad.store_mut().storage().flush() {
        tracing::error!(error = %e, "flush failed");
    }
}

impl EventLoop {
    /// Wraps an already-built swarm. `events` must be the sender the swarm's
    /// [`ValidatingStore`](crate::ValidatingStore) was given.
    pub fn new(
        swarm: Swarm<Behaviour>,
        config: &Config,
        metrics: Arc<Metrics>,
        events: broadcast::Sender<Event>,
    ) -> (Self, Handle) {
        let (tx, rx) = mpsc::channel(COMMAND_CHANNEL_LEN);
        let handle = Handle {
            commands: tx,
            local_peer_id: *swarm.local_peer_id(),
            metrics: metrics.clone(),
            events,
        };
        let server = config.mode == Mode::Server;
        let replication_interval = config
            .replication_interval
            .map(|d| d.max(MIN_REPLICATION_INTERVAL));
        let k = config.replication_factor.get();
        let mut swarm = swarm;
        if server {
            // Refuse records this node is clearly not among the closest to.
            let local = *swarm.local_peer_id();
            swarm
                .behaviour_mut()
                .kad
                .store_mut()
                .enable_closeness(local, k);
        }
        let event_loop = Self {
            swarm,
            commands: rx,
            replication_interval,
            purge_interval: config.purge_interval,
            gets: Gets::new(config.get_quorum.get(), config.get_grace, metrics.clone()),
            puts: Puts::new(server, k, metrics.clone()),
            replication: Replication::new(
                server && replication_interval.is_some(),
                k,
                metrics.clone(),
            ),
            peers: Peers::new(
                config.max_saved_peers,
                config.bucket_inserts == crate::config::BucketInserts::IfRoom,
                metrics.clone(),
            ),
            inbound: Inbound::new(server, metrics),
            expiry: Expiry::default(),
            listen_addrs: Vec::new(),
        };
        (event_loop, handle)
    }

    /// Runs until [`Handle::shutdown`], `cancel`, or every handle is dropped.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut purge = ticker(self.purge_interval);
        let mut replicate = self.replication_interval.map(ticker);
        let mut step = ticker(REPLICATION_STEP);
        loop {
            let grace = self.gets.next_deadline();
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = until(grace) => {
                    let kad = &mut self.swarm.behaviour_mut().kad;
                    for id in self.gets.expire(Instant::now()) {
                        if let Some(mut q) = kad.query_mut(&id) {
                            q.finish();
                        }
                    }
                }
                event = self.swarm.select_next_some() => {
                    self.on_swarm_event(event);
                    self.commit_group();
                }
                command = self.commands.recv(), if self.accepting() => match command {
                    Some(Command::Shutdown { reply }) => {
                        self.flush();
                        let _ = reply.send(Ok(()));
                        break;
                    }
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = purge.tick() => self.expiry.purge(&mut self.swarm.behaviour_mut().kad),
                _ = tick(&mut replicate) => self.replication.start_round(),
                _ = step.tick(), if self.replication.active() || self.expiry.backlog() => {
                    if self.expiry.backlog() {
                        self.expiry.purge(&mut self.swarm.behaviour_mut().kad);
                    }
                    if self.replication.active() {
                        let local = *self.swarm.local_peer_id();
                        self.replication.step(self.swarm.behaviour_mut(), local);
                    }
                }
            }
        }
        self.flush();
        tracing::debug!(peer = %self.swarm.local_peer_id(), "event loop ended");
    }

    /// Local work first: take new commands only while the pending maps have room.
    fn accepting(&self) -> bool {
        self.gets.len() < MAX_PENDING_GETS && self.puts.len() < MAX_PENDING_PUTS
    }

    fn flush(&mut self) {
        flush(&mut self.swarm.behaviour_mut().kad);
    }

    /// With inbound store answers waiting: handles the swarm events that are
    /// ready now (at most [`MAX_COMMIT_GROUP`]), then commits the group.
    fn commit_group(&mut self) {
        if !self.inbound.waiting() {
            return;
        }
        for _ in 0..MAX_COMMIT_GROUP {
            match self.swarm.next().now_or_never() {
                Some(Some(event)) => self.on_swarm_event(event),
                _ => break,
            }
        }
        self.inbound.commit(self.swarm.behaviour_mut());
    }

    fn on_command(&mut self, command: Command) {
        let local = *self.swarm.local_peer_id();
        match command {
            Command::Put {
                key,
                bytes,
                store_locally,
                reply,
                span,
            } => self.puts.start(
                self.swarm.behaviour_mut(),
                local,
                key,
                bytes,
                store_locally,
                reply,
                span,
            ),
            Command::Get { key, reply, span } => {
                let Some(reply) = self.gets.join(&key, reply) else {
                    return;
                };
                let kad = &mut self.swarm.behaviour_mut().kad;
                let known = routing_peers(kad).len();
                let query = kad.get_record(kad::RecordKey::new(key.as_bytes()));
                self.gets.start(query, key, reply, known, &span);
            }
            Command::Bootstrap { reply } => self
                .peers
                .bootstrap(&mut self.swarm.behaviour_mut().kad, reply),
            Command::Refresh { reply } => {
                self.peers
                    .refresh(&mut self.swarm.behaviour_mut().kad, local, reply)
            }
            Command::Peers { reply } => {
                let _ = reply.send(Ok(routing_peers(&mut self.swarm.behaviour_mut().kad)));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(Ok(self.swarm.connected_peers().copied().collect()));
            }
            Command::ListenAddrs { reply } => {
                let addrs = self
                    .listen_addrs
                    .iter()
                    .map(|a| a.clone().with(Protocol::P2p(local)))
                    .collect();
                let _ = reply.send(Ok(addrs));
            }
            Command::Dial { addr, reply } => {
                let result = match peer_of(&addr) {
                    Some(peer) if is_ip(&addr) => {
                        self.swarm
                            .behaviour_mut()
                            .kad
                            .add_address(&peer, addr.clone());
                        self.swarm.dial(addr.clone()).map_err(|e| Error::Dial {
                            addr,
                            source: Arc::new(e),
                        })
                    }
                    _ => Err(Error::BadAddress {
                        addr,
                        reason: "dial addresses must be /ip4|ip6/…/p2p/<peer id>",
                    }),
                };
                let _ = reply.send(result);
            }
            Command::Shutdown { .. } => {}
        }
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self
                .peers
                .on_identify(&mut self.swarm.behaviour_mut().kad, peer_id, info),
            SwarmEvent::Behaviour(BehaviourEvent::Store(event)) => self.on_store_event(event),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            })) if !ping_unsupported(&error) => {
                // A connection whose peer stopped answering: close it (a
                // blackholed peer never closes it), and count the failure
                // (a timeout, or the ping stream's negotiation timing out;
                // a peer without ping says `Unsupported` and is left alone)
                // so that a peer that stays silent leaves the routing table.
                tracing::debug!(%peer, %error, "ping failed; closing the connection");
                let _ = self.swarm.close_connection(connection);
                if self.peers.failed(&mut self.swarm.behaviour_mut().kad, peer) {
                    self.replication.forget(&peer);
                }
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, peer = %self.swarm.local_peer_id(), "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address)
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => self.peers.ok(&peer_id),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                tracing::trace!(%peer, %error, "dial failed");
                if self
                    .peers
                    .on_dial_failure(&mut self.swarm.behaviour_mut().kad, peer, &error)
                {
                    self.replication.forget(&peer);
                }
            }
            other => tracing::trace!(event = ?other, "swarm event ignored"),
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        if let kad::Event::RoutingUpdated {
            peer,
            is_new_peer: true,
            ..
        } = event
        {
            self.replication.on_new_peer(peer);
            return;
        }
        let kad::Event::OutboundQueryProgressed {
            id,
            result,
            step,
            stats,
        } = event
        else {
            tracing::trace!(?event, "kad event ignored");
            return;
        };
        self.gets.note_requests(id, stats.num_requests());
        let kad = &mut self.swarm.behaviour_mut().kad;
        match result {
            kad::QueryResult::GetRecord(result) => {
                if self.gets.on_result(id, result, step.last) == GetStep::Finish
                    && let Some(mut q) = kad.query_mut(&id)
                {
                    q.finish();
                }
            }
            kad::QueryResult::GetClosestPeers(_) if self.peers.on_refresh(kad, id) => {}
            kad::QueryResult::GetClosestPeers(result) => {
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let local = *self.swarm.local_peer_id();
                self.puts.on_closest_peers(
                    self.swarm.behaviour_mut(),
                    local,
                    id,
                    peers.into_iter().map(|p| p.peer_id).collect(),
                );
            }
            kad::QueryResult::Bootstrap(result) => {
                self.peers.on_bootstrap(kad, id, &result, step.last)
            }
            other => tracing::trace!(?id, result = ?other, "query result ignored"),
        }
    }

    fn on_store_event(&mut self, event: request_response::Event<StoreRequest, StoreResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The inbound-store call site: every store request a peer
                // sends is decided in `Inbound::on_request`.
                if let Some(key) =
                    self.inbound
                        .on_request(self.swarm.behaviour_mut(), peer, request, channel)
                {
                    self.replication.on_received(key);
                }
            }
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.peers.ok(&peer);
                self.on_outbound_done(request_id, peer, Ok(response))
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                // Dial failures are counted once per dial, below; a timeout
                // is a peer that is connected but does not answer.
                if matches!(error, request_response::OutboundFailure::Timeout)
                    && self.peers.failed(&mut self.swarm.behaviour_mut().kad, peer)
                {
                    self.replication.forget(&peer);
                }
                self.on_outbound_done(request_id, peer, Err(error.to_string()))
            }
            other => tracing::trace!(event = ?other, "store protocol event ignored"),
        }
    }

    /// A store request ended: it belongs to a put or to replication.
    fn on_outbound_done(
        &mut self,
        request_id: OutboundRequestId,
        peer: PeerId,
        answer: Result<StoreResponse, String>,
    ) {
        if !self.puts.on_answer(request_id, peer, &answer)
            && !self.replication.on_answer(request_id, peer, &answer)
        {
            tracing::trace!(?request_id, "answer to an unknown store request");
        }
    }
}

fn ticker(period: Duration) -> Interval {
    let mut t = interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// Sleeps until `deadline`, forever when there is none.
async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
