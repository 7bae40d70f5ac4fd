//! Forwarding upstream: server choice (default and per-domain), failover,
//! time bounds, loop protection, fair admission of clients, and the cache in
//! front of it all (coalesced, scrubbed, stale-serving, prefetching).
//!
//! - `mod.rs`: the [`Forwarder`], its construction and its entry points;
//! - `coalesce.rs`: one exchange per question in flight, the cache, prefetch;
//! - `send.rs`: the query prepared and tried on each server in turn;
//! - `slots.rs`: slots shared fairly among client prefixes, bounded waiters;
//! - `client.rs`: the client prefix every per-client limit counts in;
//! - `markers.rs`: the loop markers of the queries in flight.

mod client;
mod coalesce;
mod markers;
mod send;
mod slots;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Config;
use crate::error::{Error, ForwardError};
use crate::forward_cache::{Bounds, ForwardCache, Key};
pub use crate::forwarded::Forwarded;
use crate::metrics::Metrics;
use crate::route::{ForwardTable, SharedRouter};
use crate::saved_upstreams::SavedUpstreams;
use crate::transports::Transports;
use crate::upstreams;
use client::ClientKey;
use coalesce::Flight;
use markers::Markers;
use slots::{Slots, Waiters};

/// EDNS payload size the resolver advertises in its own queries (the DNS
/// flag day 2020 value: no IP fragmentation on common paths).
const EDNS_PAYLOAD: u16 = 1232;

/// Sends queries to the upstream servers, in order, within bounds, through
/// the forward cache.
#[derive(Debug)]
pub(crate) struct Forwarder {
    servers: Vec<SocketAddr>,
    /// Which of them are DoT or DoH upstreams, and their clients.
    transports: Transports,
    domains: ForwardTable,
    /// Which names are kadns names: what scrubbing strips (swapped on reload).
    kadns: SharedRouter,
    attempt_timeout: Duration,
    total_timeout: Duration,
    /// The markers of the queries being forwarded right now.
    markers: Markers,
    /// Upstream exchanges in flight, shared fairly among client prefixes.
    slots: Slots,
    /// Forwarded queries waiting on an exchange, bounded per client prefix.
    waiters: Waiters,
    cache: ForwardCache,
    flights: Mutex<HashMap<Key, Flight>>,
    prefetch: bool,
    max_prefetches: usize,
    prefetches: Mutex<JoinSet<()>>,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    /// Picks the servers (see [`upstreams::select`]) and the per-domain
    /// ones; an error if any of them is the resolver itself.
    pub(crate) fn new(
        config: &Config,
        kadns: SharedRouter,
        own: &[SocketAddr],
        metrics: Arc<Metrics>,
        saved: Option<&SavedUpstreams>,
    ) -> Result<Self, Error> {
        let upstream = &config.upstream;
        let servers = upstreams::select(upstream, own, saved)?;
        if servers.is_empty() {
            tracing::info!("no upstream servers: names outside kadns zones will get SERVFAIL");
        }
        let mut domains = Vec::new();
        for (text, list) in &config.forward {
            let bad = |reason: &str| Error::ForwardDomain {
                name: text.clone(),
                reason: reason.to_owned(),
            };
            let name = Name::from_ascii(text.trim()).map_err(|e| bad(&e.to_string()))?;
            if list.is_empty() {
                return Err(bad("no server"));
            }
            if kadns.load().is_kadns(&name) {
                return Err(bad("inside a kadns zone: kadns names are never forwarded"));
            }
            if let Some(addr) = list.iter().find(|s| is_self(**s, own)) {
                return Err(Error::UpstreamIsSelf { addr: *addr });
            }
            domains.push((name, list.clone()));
        }
        let cache = &config.forward_cache;
        let transports = Transports::new(&upstream.servers, upstream.ca.as_deref())?;
        Ok(Self {
            servers,
            transports,
            domains: ForwardTable::new(domains),
            kadns,
            attempt_timeout: Duration::from_millis(upstream.attempt_timeout_ms),
            total_timeout: Duration::from_millis(upstream.total_timeout_ms),
            markers: Markers::default(),
            slots: Slots::new(upstream.max_in_flight),
            waiters: Waiters::new(upstream.max_waiters),
            cache: ForwardCache::new(Bounds {
                max_bytes: cache.max_bytes,
                max_ttl: config.cache.max_ttl_secs,
                max_negative_ttl: cache.max_negative_ttl_secs,
                stale_window: Duration::from_secs(cache.stale_window_secs),
            }),
            flights: Mutex::default(),
            prefetch: cache.prefetch,
            max_prefetches: cache.max_prefetches,
            prefetches: Mutex::new(JoinSet::new()),
            metrics,
        })
    }

    /// The default servers, in order.
    pub(crate) fn servers(&self) -> &[SocketAddr] {
        self.servers_inner()
    }

    /// Scrub with `kadns` from now on (a reloaded resolver's shared router).
    pub(crate) fn set_router(&mut self, kadns: SharedRouter) {
        self.kadns = kadns;
    }

    /// The router scrubbing uses now.
    #[cfg(test)]
    pub(crate) fn kadns_router(&self) -> Arc<crate::route::Router> {
        self.kadns.load_full()
    }

    /// The forward cache (`kadns cache flush`, `kadns status`).
    pub(crate) fn cache(&self) -> &ForwardCache {
        &self.cache
    }

    fn servers_inner(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The servers a query for `name` goes to: the longest matching
    /// per-domain entry's, else the default ones. Decided once per query.
    fn servers_for(&self, name: &Name) -> &[SocketAddr] {
        match self.domains.lookup(name) {
            Some((domain, servers)) => {
                tracing::trace!(%domain, "per-domain forward");
                servers
            }
            None => &self.servers,
        }
    }

    /// Forwards `client`'s query as it is (flags, EDNS and its options, the
    /// DO bit), under a fresh id, and returns the response with the client's
    /// id and question put back: from the cache when it holds a fresh
    /// answer, else from one exchange shared by every identical query in
    /// flight, else (every upstream failed) stale from the cache. The
    /// client's prefix is what its fair share of slots and its bounded
    /// waiting places are counted in.
    pub(crate) async fn forward(
        self: &Arc<Self>,
        request: &Message,
        client: IpAddr,
    ) -> Result<Forwarded, ForwardError> {
        self.forward_for(request, ClientKey::of(client)).await
    }

    async fn forward_for(
        self: &Arc<Self>,
        request: &Message,
        client: ClientKey,
    ) -> Result<Forwarded, ForwardError> {
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
        {
            return Err(ForwardError::BadRequest {
                reason: "not a standard query",
            });
        }
        let [question] = request.queries.as_slice() else {
            return Err(ForwardError::BadRequest {
                reason: "not exactly one question",
            });
        };
        if self.markers.carried_by(request) {
            self.metrics.count_refusal("forward_loop");
            tracing::debug!(name = %question.name, "query came back while being forwarded: loop");
            return Err(ForwardError::Loop {
                name: question.name.clone(),
                query_type: question.query_type,
            });
        }
        let key = Key::of(request).ok_or(ForwardError::BadRequest {
            reason: "not exactly one question",
        })?;
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&key, now)
            && entry.is_fresh(now)
        {
            self.metrics.forward_cache_hits.inc();
            if self.prefetch && entry.take_prefetch(now) {
                self.spawn_prefetch(key, request.clone());
            }
            return Ok(Forwarded::new(
                entry.fresh_response(now),
                request,
                false,
                true,
            ));
        }
        self.metrics.forward_cache_misses.inc();
        let failure = match self.coalesced(&key, request, client).await {
            Ok(response) if response.metadata.response_code != ResponseCode::ServFail => {
                return Ok(Forwarded::new((*response).clone(), request, false, false));
            }
            Ok(response) => Ok(response),
            Err(error) => Err(error),
        };
        // Every upstream failed (or this client is over its limits): the
        // last answer they gave, if the stale window still holds it
        // (RFC 8767).
        let now = Instant::now();
        if let Some(entry) = self.cache.get(&key, now) {
            if entry.is_fresh(now) {
                return Ok(Forwarded::new(
                    entry.fresh_response(now),
                    request,
                    false,
                    true,
                ));
            }
            self.metrics.forward_stale.inc();
            tracing::debug!(name = %question.name, "upstreams failed: serving stale");
            return Ok(Forwarded::new(entry.stale_response(), request, true, true));
        }
        failure.map(|response| Forwarded::new((*response).clone(), request, false, false))
    }

    /// Asks the upstreams for `name`/`query_type` with a query of the
    /// resolver's own (RD set, EDNS without DO), through the cache; charged
    /// to the resolver itself.
    pub(crate) async fn query(
        self: &Arc<Self>,
        name: &Name,
        query_type: RecordType,
    ) -> Result<Message, ForwardError> {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), query_type));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        query.set_edns(edns);
        self.forward_for(&query, ClientKey::Internal)
            .await
            .map(|f| f.message)
    }
}

/// True when sending to `server` would reach one of our own listen
/// addresses: the same address, or our port on a wildcard listener reached
/// through loopback or the wildcard address.
pub(crate) fn is_self(server: SocketAddr, own: &[SocketAddr]) -> bool {
    own.iter().any(|o| {
        *o == server
            || (o.port() == server.port()
                && (o.ip().is_unspecified()
                    && (server.ip().is_loopback() || server.ip().is_unspecified())
                    || server.ip().is_unspecified() && o.ip().is_loopback()))
    })
}
