//! The event loop: the one task that owns the swarm.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kadns_record::{DhtKey, Freshness, VerifiedBundle, validate};
use libp2p::core::transport::ListenerId;
use libp2p::kad::{self, QueryId, RecordKey};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, Swarm, identify};
use tokio::sync::{broadcast, mpsc};
use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};
use tokio_util::sync::CancellationToken;
use tracing::Span;

use crate::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use crate::config::{Config, Mode};
use crate::error::Error;
use crate::event::Event;
use crate::handle::{Command, GetOutcome, Handle, PutReport, Reply};
use crate::metrics::Metrics;
use crate::protocol::{StoreRequest, StoreResponse};
use crate::store::unix_now;

mod group_commit;
mod peer_health;
mod replication;

use group_commit::Acks;
pub use group_commit::MAX_COMMIT_GROUP;

use peer_health::PeerHealth;
pub use peer_health::{MAX_PEER_FAILURES, MAX_TRACKED_FAILURES};
use replication::Replication;
pub use replication::{
    HANDOVER_DEBOUNCE, MAX_HANDOVER_PEERS, MIN_REPLICATION_INTERVAL, REPLICATION_PUSHERS,
};

/// Commands waiting in the handle's channel before senders wait.
pub const COMMAND_CHANNEL_LEN: usize = 256;
/// Most `get` lookups in flight; further distinct keys wait in the channel.
pub const MAX_PENDING_GETS: usize = 1024;
/// Most `put`s in flight.
pub const MAX_PENDING_PUTS: usize = 256;
/// Records the replication job reads from disk per step.
pub const REPLICATION_BATCH: usize = 32;
/// How often the replication job takes a step while a round runs.
pub const REPLICATION_STEP: Duration = Duration::from_millis(50);
/// Most replication store requests in flight; the job pauses above it.
pub const MAX_REPLICATION_IN_FLIGHT: usize = 256;
/// Most keys remembered as "recently received" (skipped by the next round).
pub const MAX_REPLICATION_SKIP: usize = 100_000;
/// Expired records removed per purge tick.
pub const PURGE_BATCH: usize = 1024;
/// Most listen addresses taken from one peer's identify.
pub const MAX_ADDRS_PER_PEER: usize = 8;
/// Saved peers dialled at start-up.
pub const MAX_STARTUP_DIALS: usize = 16;
/// Capacity of the store-event broadcast channel.
pub const EVENT_CHANNEL_LEN: usize = 1024;

struct GetState {
    key: DhtKey,
    waiters: Vec<Reply<GetOutcome>>,
    best: Option<VerifiedBundle>,
    answered_by: Vec<PeerId>,
    invalid_answers: usize,
    invalid_reasons: BTreeMap<&'static str, usize>,
    local: bool,
    /// Peers that answered without a record (Kademlia's closest peers of a
    /// lookup that found nothing).
    reached_empty: Vec<PeerId>,
    converged: bool,
    /// Peers that must answer for "nothing" to prove absence.
    required: usize,
    /// Requests Kademlia sent for this lookup so far (its query stats).
    requests: u32,
    span: Span,
}

struct PutState {
    report: PutReport,
    bytes: Vec<u8>,
    outstanding: usize,
    reply: Reply<PutReport>,
    span: Span,
}

enum Outbound {
    Put { put: u64, peer: PeerId },
    Replication,
}

/// The event loop. Owns the swarm; [`Handle`]s talk to it over a bounded
/// channel. Build one with [`EventLoop::new`] from any swarm of
/// [`Behaviour`], then drive it with [`EventLoop::run`].
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    metrics: Arc<Metrics>,
    mode: Mode,
    replication_factor: NonZeroUsize,
    get_quorum: usize,
    max_saved_peers: usize,
    replication_interval: Option<Duration>,
    purge_interval: Duration,
    gets: HashMap<QueryId, GetState>,
    gets_by_key: HashMap<DhtKey, QueryId>,
    puts: HashMap<u64, PutState>,
    next_put: u64,
    closest: HashMap<QueryId, u64>,
    outbound: HashMap<OutboundRequestId, Outbound>,
    bootstraps: HashMap<QueryId, Vec<Reply<usize>>>,
    saved_peers: HashSet<PeerId>,
    replication: Replication,
    health: PeerHealth,
    purge_backlog: bool,
    acks: Acks,
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
        let event_loop = Self {
            swarm,
            commands: rx,
            metrics,
            mode: config.mode,
            replication_factor: config.replication_factor,
            get_quorum: config.get_quorum.get(),
            max_saved_peers: config.max_saved_peers,
            replication_interval: config
                .replication_interval
                .map(|d| d.max(MIN_REPLICATION_INTERVAL)),
            purge_interval: config.purge_interval,
            gets: HashMap::new(),
            gets_by_key: HashMap::new(),
            puts: HashMap::new(),
            next_put: 0,
            closest: HashMap::new(),
            outbound: HashMap::new(),
            bootstraps: HashMap::new(),
            saved_peers: HashSet::new(),
            replication: Replication::default(),
            health: PeerHealth::default(),
            purge_backlog: false,
            acks: Acks::default(),
            listen_addrs: Vec::new(),
        };
        (event_loop, handle)
    }

    /// Starts listening on `config.listen`, adds the bootstrap and saved
    /// peers, dials them and starts a bootstrap. Returns once every listener
    /// reported an address.
    pub async fn start(&mut self, config: &Config) -> Result<(), Error> {
        let mut waiting: HashMap<ListenerId, Multiaddr> = HashMap::new();
        for addr in &config.listen {
            if !is_ip(addr) {
                return Err(Error::BadAddress {
                    addr: addr.clone(),
                    reason: "listen addresses must start with /ip4 or /ip6",
                });
            }
            let id = self
                .swarm
                .listen_on(addr.clone())
                .map_err(|e| Error::Listen {
                    addr: addr.clone(),
                    source: Arc::new(e),
                })?;
            waiting.insert(id, addr.clone());
        }
        let mut dials = Vec::new();
        for addr in &config.bootstrap {
            if !is_ip(addr) {
                return Err(Error::BadAddress {
                    addr: addr.clone(),
                    reason: "bootstrap addresses must be /ip4 or /ip6: kadns does not resolve names (docs/dht.md)",
                });
            }
            let Some(peer) = peer_of(addr) else {
                return Err(Error::BadAddress {
                    addr: addr.clone(),
                    reason: "bootstrap addresses must end in /p2p/<peer id>",
                });
            };
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
            dials.push((peer, vec![addr.clone()]));
        }
        self.load_saved_peers(&mut dials);
        // Listen first: the identify message a peer gets when we dial it
        // carries our listen addresses, and a peer that got none has no
        // address to put us in its routing table under.
        while !waiting.is_empty() {
            let event = self.swarm.select_next_some().await;
            match &event {
                SwarmEvent::NewListenAddr { listener_id, .. } => {
                    waiting.remove(listener_id);
                }
                SwarmEvent::ListenerClosed {
                    listener_id,
                    reason: Err(e),
                    ..
                } => {
                    if let Some(addr) = waiting.remove(listener_id) {
                        return Err(Error::Listen {
                            addr,
                            source: Arc::new(std::io::Error::new(e.kind(), e.to_string())),
                        });
                    }
                }
                SwarmEvent::ListenerError { listener_id, error } => {
                    if let Some(addr) = waiting.remove(listener_id) {
                        return Err(Error::Listen {
                            addr,
                            source: Arc::new(std::io::Error::new(error.kind(), error.to_string())),
                        });
                    }
                }
                _ => {}
            }
            self.on_swarm_event(event);
            self.commit_group();
        }
        for (peer, addrs) in dials {
            if let Err(e) = self
                .swarm
                .dial(DialOpts::peer_id(peer).addresses(addrs).build())
            {
                tracing::debug!(%peer, error = %e, "dial failed");
            }
        }
        if let Err(kad::NoKnownPeers()) = self.swarm.behaviour_mut().kad.bootstrap() {
            tracing::debug!("no known peers: starting alone");
        }
        Ok(())
    }

    fn load_saved_peers(&mut self, dials: &mut Vec<(PeerId, Vec<Multiaddr>)>) {
        let saved = match self.swarm.behaviour_mut().kad.store_mut().storage().peers() {
            Ok(saved) => saved,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read saved peers");
                return;
            }
        };
        let local = *self.swarm.local_peer_id();
        for (peer, addrs) in saved {
            let Ok(peer) = PeerId::from_bytes(&peer) else {
                continue;
            };
            if peer == local {
                continue;
            }
            let addrs = self.add_peer_addresses(peer, addrs.iter().filter_map(|a| a.parse().ok()));
            self.saved_peers.insert(peer);
            if dials.len() < MAX_STARTUP_DIALS && !addrs.is_empty() {
                dials.push((peer, addrs));
            }
        }
        tracing::debug!(peers = self.saved_peers.len(), "loaded saved peers");
    }

    /// Runs until [`Handle::shutdown`], `cancel`, or every handle is dropped.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut purge = ticker(self.purge_interval);
        let mut replicate = self.replication_interval.map(ticker);
        let mut step = ticker(REPLICATION_STEP);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
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
                _ = purge.tick() => self.purge(),
                _ = tick(&mut replicate) => self.start_replication_round(),
                _ = step.tick(), if self.replication.active() || self.purge_backlog => {
                    if self.purge_backlog {
                        self.purge();
                    }
                    if self.replication.active() {
                        self.replication_step();
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
        if let Err(e) = self.swarm.behaviour_mut().kad.store_mut().storage().flush() {
            tracing::error!(error = %e, "flush failed");
        }
    }

    fn purge(&mut self) {
        // A full batch means more are waiting: purge again at the next step
        // (every REPLICATION_STEP) instead of the next purge tick.
        self.purge_backlog = false;
        let store = self.swarm.behaviour_mut().kad.store_mut();
        match store.purge_expired(unix_now(), PURGE_BATCH) {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(n, "purged expired records");
                self.purge_backlog = n >= PURGE_BATCH;
            }
            Err(e) => tracing::error!(error = %e, "purge failed"),
        }
        // Saved peers are written without a flush; make them durable here.
        self.flush();
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Put {
                key,
                bytes,
                store_locally,
                reply,
                span,
            } => self.start_put(key, bytes, store_locally, reply, span),
            Command::Get { key, reply, span } => self.start_get(key, reply, span),
            Command::Bootstrap { reply } => match self.swarm.behaviour_mut().kad.bootstrap() {
                Ok(id) => self.bootstraps.entry(id).or_default().push(reply),
                Err(_) => {
                    let _ = reply.send(Err(Error::NoKnownPeers));
                }
            },
            Command::Peers { reply } => {
                let _ = reply.send(Ok(self.routing_peers()));
            }
            Command::ConnectedPeers { reply } => {
                let _ = reply.send(Ok(self.swarm.connected_peers().copied().collect()));
            }
            Command::ListenAddrs { reply } => {
                let peer = *self.swarm.local_peer_id();
                let addrs = self
                    .listen_addrs
                    .iter()
                    .map(|a| a.clone().with(Protocol::P2p(peer)))
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

    fn routing_peers(&mut self) -> Vec<PeerId> {
        let mut peers = Vec::new();
        for bucket in self.swarm.behaviour_mut().kad.kbuckets() {
            for entry in bucket.iter() {
                peers.push(*entry.node.key.preimage());
            }
        }
        peers
    }

    // ---- put ----

    fn start_put(
        &mut self,
        key: DhtKey,
        bytes: Vec<u8>,
        store_locally: bool,
        reply: Reply<PutReport>,
        span: Span,
    ) {
        self.metrics.puts.inc();
        let local = *self.swarm.local_peer_id();
        let mut report = PutReport {
            key,
            stored_on: Vec::new(),
            refused: Vec::new(),
            failed: Vec::new(),
        };
        if store_locally && self.mode == Mode::Server {
            let store = self.swarm.behaviour_mut().kad.store_mut();
            match store.offer(&key, &bytes, unix_now(), None) {
                Ok(_) => report.stored_on.push(local),
                Err(refusal) => report.refused.push((local, refusal.reason().to_owned())),
            }
        }
        let id = self.next_put;
        self.next_put += 1;
        let query = self
            .swarm
            .behaviour_mut()
            .kad
            .get_closest_peers(key.as_bytes().to_vec());
        span.in_scope(|| tracing::debug!(?query, "looking up closest peers"));
        self.closest.insert(query, id);
        self.puts.insert(
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

    fn on_closest_peers(&mut self, query: QueryId, peers: Vec<PeerId>) {
        let Some(id) = self.closest.remove(&query) else {
            tracing::trace!(?query, "closest peers for an unknown query");
            return;
        };
        let Some(mut put) = self.puts.remove(&id) else {
            return;
        };
        let local = *self.swarm.local_peer_id();
        let targets: Vec<PeerId> = peers
            .into_iter()
            .filter(|p| *p != local)
            .take(self.replication_factor.get())
            .collect();
        put.span
            .in_scope(|| tracing::debug!(peers = targets.len(), "sending store requests"));
        for peer in targets {
            let request_id = self.swarm.behaviour_mut().store.send_request(
                &peer,
                StoreRequest {
                    key: put.report.key,
                    bytes: put.bytes.clone(),
                },
            );
            self.outbound
                .insert(request_id, Outbound::Put { put: id, peer });
            put.outstanding += 1;
        }
        if put.outstanding == 0 {
            self.finish_put(put);
        } else {
            self.puts.insert(id, put);
        }
    }

    fn on_put_answer(&mut self, id: u64, peer: PeerId, answer: Result<StoreResponse, String>) {
        let Some(put) = self.puts.get_mut(&id) else {
            return;
        };
        match answer {
            Ok(StoreResponse::Stored) => put.report.stored_on.push(peer),
            Ok(StoreResponse::Refused { reason }) => put.report.refused.push((peer, reason)),
            Err(error) => put.report.failed.push((peer, error)),
        }
        put.outstanding -= 1;
        if put.outstanding == 0
            && let Some(put) = self.puts.remove(&id)
        {
            self.finish_put(put);
        }
    }

    fn finish_put(&mut self, put: PutState) {
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

    // ---- get ----

    fn start_get(&mut self, key: DhtKey, reply: Reply<GetOutcome>, span: Span) {
        self.metrics.gets.inc();
        if let Some(query) = self.gets_by_key.get(&key)
            && let Some(state) = self.gets.get_mut(query)
        {
            self.metrics.gets_coalesced.inc();
            state.waiters.push(reply);
            return;
        }
        let known = self.routing_peers().len();
        let required = self.get_quorum.min(known).max(1);
        let query = self
            .swarm
            .behaviour_mut()
            .kad
            .get_record(RecordKey::new(key.as_bytes()));
        let span = tracing::debug_span!(parent: &span, "query", ?query, known, required);
        self.gets_by_key.insert(key, query);
        self.gets.insert(
            query,
            GetState {
                key,
                waiters: vec![reply],
                best: None,
                answered_by: Vec::new(),
                invalid_answers: 0,
                invalid_reasons: BTreeMap::new(),
                local: false,
                reached_empty: Vec::new(),
                converged: false,
                required,
                requests: 0,
                span,
            },
        );
    }

    fn on_found_record(&mut self, query: QueryId, found: kad::PeerRecord) {
        let Some(state) = self.gets.get_mut(&query) else {
            tracing::trace!(?query, "record for an unknown or finished query");
            return;
        };
        let _guard = state.span.enter();
        match validate(&state.key, &found.record.value, unix_now()) {
            Ok(bundle) => {
                match found.peer {
                    Some(peer) => {
                        if state.answered_by.contains(&peer) {
                            return;
                        }
                        state.answered_by.push(peer);
                        self.metrics.valid_answers.inc();
                    }
                    None => state.local = true,
                }
                tracing::debug!(peer = ?found.peer, sequence = bundle.sequence(), "valid record");
                let better = match &state.best {
                    None => true,
                    Some(best) => bundle.freshness_against(best) == Freshness::Newer,
                };
                if better {
                    state.best = Some(bundle);
                }
            }
            Err(e) => {
                state.invalid_answers += 1;
                *state.invalid_reasons.entry(e.reason()).or_default() += 1;
                self.metrics.invalid_answer(e.reason());
                tracing::debug!(peer = ?found.peer, reason = e.reason(), "invalid record in get answer");
            }
        }
        let enough = state.answered_by.len() >= self.get_quorum;
        drop(_guard);
        if enough {
            if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&query) {
                q.finish();
            }
            self.finish_get(query, true, Vec::new());
        }
    }

    /// Ends a get and answers its waiters. `converged` is false when the
    /// lookup timed out; `reached_empty` are the peers Kademlia reports as
    /// having answered a lookup that found no record.
    fn finish_get(&mut self, query: QueryId, converged: bool, reached_empty: Vec<PeerId>) {
        let Some(mut state) = self.gets.remove(&query) else {
            return;
        };
        state.converged = converged;
        state.reached_empty = reached_empty;
        self.gets_by_key.remove(&state.key);
        let mut reached = state.answered_by.clone();
        for peer in state.reached_empty {
            if !reached.contains(&peer) {
                reached.push(peer);
            }
        }
        let outcome = GetOutcome {
            key: state.key,
            best: state.best,
            answered_by: state.answered_by,
            invalid_answers: state.invalid_answers,
            local: state.local,
            invalid_reasons: state.invalid_reasons,
            reached,
            converged: state.converged,
            required: state.required,
            requests: state.requests,
        };
        state.span.in_scope(|| {
            tracing::debug!(
                found = outcome.best.is_some(),
                valid = outcome.answered_by.len(),
                invalid = outcome.invalid_answers,
                reached = outcome.reached.len(),
                required = outcome.required,
                converged = outcome.converged,
                "get finished"
            )
        });
        for waiter in state.waiters {
            let _ = waiter.send(Ok(outcome.clone()));
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
            })) => self.on_identify(peer_id, info),
            SwarmEvent::Behaviour(BehaviourEvent::Store(event)) => self.on_store_event(event),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, peer = %self.swarm.local_peer_id(), "listening");
                self.listen_addrs.push(address);
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs.retain(|a| *a != address)
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => self.peer_ok(&peer_id),
            SwarmEvent::OutgoingConnectionError {
                peer_id: Some(peer),
                error,
                ..
            } => {
                tracing::trace!(%peer, %error, "dial failed");
                self.on_dial_failure(peer, &error);
            }
            other => tracing::trace!(event = ?other, "swarm event ignored"),
        }
    }

    /// Gives Kademlia a peer's addresses (IP ones only, at most
    /// [`MAX_ADDRS_PER_PEER`]) and returns those it took.
    fn add_peer_addresses(
        &mut self,
        peer: PeerId,
        addrs: impl IntoIterator<Item = Multiaddr>,
    ) -> Vec<Multiaddr> {
        let addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .filter(is_ip)
            .take(MAX_ADDRS_PER_PEER)
            .collect();
        for addr in &addrs {
            self.swarm
                .behaviour_mut()
                .kad
                .add_address(&peer, addr.clone());
        }
        addrs
    }

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        if !info.protocols.contains(&KAD_PROTOCOL) {
            return;
        }
        let addrs = self.add_peer_addresses(peer, info.listen_addrs);
        if addrs.is_empty()
            || (!self.saved_peers.contains(&peer) && self.saved_peers.len() >= self.max_saved_peers)
        {
            return;
        }
        let text: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        match self
            .swarm
            .behaviour_mut()
            .kad
            .store_mut()
            .storage()
            .save_peer(&peer.to_bytes(), &text)
        {
            Ok(()) => {
                self.saved_peers.insert(peer);
            }
            Err(e) => tracing::warn!(%peer, error = %e, "cannot save peer"),
        }
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        if let kad::Event::RoutingUpdated {
            peer,
            is_new_peer: true,
            ..
        } = event
        {
            self.on_new_peer(peer);
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
        if let Some(state) = self.gets.get_mut(&id) {
            state.requests = stats.num_requests();
        }
        match result {
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                self.on_found_record(id, found);
                if step.last {
                    self.finish_get(id, true, Vec::new());
                }
            }
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord {
                ..
            })) => self.finish_get(id, true, Vec::new()),
            kad::QueryResult::GetRecord(Err(kad::GetRecordError::NotFound {
                closest_peers,
                ..
            })) => self.finish_get(id, true, closest_peers),
            kad::QueryResult::GetRecord(Err(_)) => self.finish_get(id, false, Vec::new()),
            kad::QueryResult::GetClosestPeers(result) => {
                let peers = match result {
                    Ok(ok) => ok.peers,
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                self.on_closest_peers(id, peers.into_iter().map(|p| p.peer_id).collect());
            }
            kad::QueryResult::Bootstrap(result) => {
                let done = match &result {
                    Ok(ok) => ok.num_remaining == 0,
                    Err(kad::BootstrapError::Timeout { num_remaining, .. }) => {
                        num_remaining.unwrap_or(0) == 0
                    }
                } || step.last;
                if done && let Some(replies) = self.bootstraps.remove(&id) {
                    let n = self.routing_peers().len();
                    for reply in replies {
                        let _ = reply.send(Ok(n));
                    }
                }
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
                self.on_store_request(peer, request, channel);
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
                self.peer_ok(&peer);
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
                if matches!(error, request_response::OutboundFailure::Timeout) {
                    self.peer_failed(peer);
                }
                self.on_outbound_done(request_id, peer, Err(error.to_string()))
            }
            other => tracing::trace!(event = ?other, "store protocol event ignored"),
        }
    }

    fn on_outbound_done(
        &mut self,
        request_id: OutboundRequestId,
        peer: PeerId,
        answer: Result<StoreResponse, String>,
    ) {
        match self.outbound.remove(&request_id) {
            Some(Outbound::Put {
                put,
                peer: expected,
            }) => {
                debug_assert_eq!(peer, expected);
                self.on_put_answer(put, expected, answer);
            }
            Some(Outbound::Replication) => {
                self.replication.answered();
                self.metrics
                    .replication_in_flight
                    .set(i64::try_from(self.replication.in_flight).unwrap_or(i64::MAX));
                if let Ok(StoreResponse::Refused { reason }) | Err(reason) = &answer {
                    tracing::trace!(%peer, %reason, "replication push not stored");
                }
            }
            None => tracing::trace!(?request_id, "answer to an unknown store request"),
        }
    }
}

fn ticker(period: Duration) -> Interval {
    let mut t = interval_at(Instant::now() + period, period);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

async fn tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
