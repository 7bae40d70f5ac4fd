//! Forwarding upstream: server choice (default and per-domain), failover,
//! time bounds, loop protection, and the cache in front of it all
//! (coalesced, scrubbed, stale-serving, prefetching).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use tokio::sync::OnceCell;
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout};

use crate::config::Config;
use crate::error::{Error, ForwardError};
use crate::exchange::exchange;
use crate::forward_cache::{Bounds, ForwardCache, Key};
pub use crate::forwarded::Forwarded;
use crate::metrics::Metrics;
use crate::route::{ForwardTable, SharedRouter};
use crate::saved_upstreams::SavedUpstreams;
use crate::scrub::scrub;
use crate::upstreams;

/// EDNS payload size the resolver advertises in its own queries (the DNS
/// flag day 2020 value: no IP fragmentation on common paths).
const EDNS_PAYLOAD: u16 = 1232;

/// EDNS option code of the loop marker (from the range RFC 6891 leaves for
/// local and experimental use). Its value is a random marker, fresh for every
/// query sent, so it says nothing about the sender to the upstream.
pub(crate) const LOOP_MARKER_OPTION: u16 = 65_431;

/// The loop marker of one query in flight.
type Marker = [u8; 8];

/// One upstream exchange shared by every identical query that arrives while
/// it runs.
type Flight = Arc<OnceCell<Result<Arc<Message>, ForwardError>>>;

/// Sends queries to the upstream servers, in order, within bounds, through
/// the forward cache.
#[derive(Debug)]
pub(crate) struct Forwarder {
    servers: Vec<SocketAddr>,
    domains: ForwardTable,
    /// Which names are kadns names: what scrubbing strips (swapped on reload).
    kadns: SharedRouter,
    attempt_timeout: Duration,
    total_timeout: Duration,
    max_in_flight: usize,
    /// The markers of the queries being forwarded right now.
    in_flight: Mutex<HashSet<Marker>>,
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
        Ok(Self {
            servers,
            domains: ForwardTable::new(domains),
            kadns,
            attempt_timeout: Duration::from_millis(upstream.attempt_timeout_ms),
            total_timeout: Duration::from_millis(upstream.total_timeout_ms),
            max_in_flight: upstream.max_in_flight,
            in_flight: Mutex::default(),
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

    /// The default servers, in order.
    pub(crate) fn servers(&self) -> &[SocketAddr] {
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

    /// Forwards a client's query as it is (flags, EDNS and its options, the
    /// DO bit), under a fresh id, and returns the response with the client's
    /// id and question put back: from the cache when it holds a fresh
    /// answer, else from one exchange shared by every identical query in
    /// flight, else (every upstream failed) stale from the cache.
    pub(crate) async fn forward(
        self: &Arc<Self>,
        request: &Message,
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
        if self.carries_our_marker(request) {
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
        let failure = match self.coalesced(&key, request).await {
            Ok(response) if response.metadata.response_code != ResponseCode::ServFail => {
                return Ok(Forwarded::new((*response).clone(), request, false, false));
            }
            Ok(response) => Ok(response),
            Err(error) => Err(error),
        };
        // Every upstream failed: the last answer they gave, if the stale
        // window still holds it (RFC 8767).
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
    /// resolver's own (RD set, EDNS without DO), through the cache.
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
        self.forward(&query).await.map(|f| f.message)
    }

    /// One upstream exchange for `key`, shared by every query for it that
    /// arrives while it runs; its scrubbed response cached when cacheable.
    async fn coalesced(
        self: &Arc<Self>,
        key: &Key,
        request: &Message,
    ) -> Result<Arc<Message>, ForwardError> {
        let flight = Arc::clone(self.lock_flights().entry(key.clone()).or_default());
        let _leave = LeaveFlight {
            forwarder: self,
            key,
            flight: &flight,
        };
        flight
            .get_or_init(|| async {
                let result = self.exchange_and_cache(key, request).await;
                self.metrics
                    .forward_cache_bytes
                    .set(i64::try_from(self.cache.bytes()).unwrap_or(i64::MAX));
                result
            })
            .await
            .clone()
    }

    async fn exchange_and_cache(
        &self,
        key: &Key,
        request: &Message,
    ) -> Result<Arc<Message>, ForwardError> {
        let [question] = request.queries.as_slice() else {
            return Err(ForwardError::BadRequest {
                reason: "not exactly one question",
            });
        };
        let mut outgoing = request.clone();
        // A TSIG signature covers the original id: it cannot travel on.
        outgoing.signature = None;
        let servers = self.servers_for(&question.name);
        let mut response = self.send(outgoing, question, servers).await?;
        let removed = scrub(&mut response, &question.name, &self.kadns.load());
        if removed.total() > 0 {
            self.metrics.forward_scrubbed.inc_by(removed.total() as u64);
            tracing::debug!(
                kadns = removed.kadns,
                out_of_bailiwick = removed.out_of_bailiwick,
                "scrubbed records from the upstream's response"
            );
        }
        self.cache.cap_ttls(&mut response);
        if let Some(ttl) = self.cache.insert(key.clone(), &response, Instant::now()) {
            tracing::trace!(ttl, "forwarded answer cached");
        }
        Ok(Arc::new(response))
    }

    /// Refreshes `key` in the background (at most `max_prefetches` at once;
    /// the tasks are owned here and end when the forwarder does).
    fn spawn_prefetch(self: &Arc<Self>, key: Key, request: Message) {
        let mut tasks = self
            .prefetches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while let Some(done) = tasks.try_join_next() {
            if let Err(error) = done
                && error.is_panic()
            {
                tracing::error!(%error, "a prefetch task panicked");
            }
        }
        if tasks.len() >= self.max_prefetches {
            tracing::debug!(
                limit = self.max_prefetches,
                "prefetch skipped: too many under way"
            );
            return;
        }
        self.metrics.forward_prefetches.inc();
        let this = Arc::clone(self);
        tasks.spawn(async move {
            if let Err(error) = this.coalesced(&key, &request).await {
                tracing::debug!(%error, "prefetch failed");
            }
        });
    }

    fn lock_flights(&self) -> MutexGuard<'_, HashMap<Key, Flight>> {
        // A map of shared cells: consistent after any panic.
        self.flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The shared path: fresh id, loop marker, 0x20 case randomization,
    /// failover. `question` is the question as the caller asked it.
    async fn send(
        &self,
        mut outgoing: Message,
        question: &Query,
        servers: &[SocketAddr],
    ) -> Result<Message, ForwardError> {
        if servers.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        outgoing.metadata.id = rand::random();
        // Random letter case (DNS 0x20): one more thing an off-path spoofer
        // must guess. The answer's owner names are put back below.
        let mut sent = question.clone();
        sent.name.randomize_label_case();
        outgoing.queries = vec![sent.clone()];
        // The loop marker: kadns forwards a client's EDNS options as they
        // are, so a query that comes back to us through any chain of kadns
        // resolvers still carries it (see `forward`).
        let edns = outgoing.edns.get_or_insert_with(|| {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            edns
        });
        let guard = self.enter()?;
        edns.options_mut().insert(EdnsOption::Unknown(
            LOOP_MARKER_OPTION,
            guard.marker.to_vec(),
        ));
        let mut response = self.failover(&outgoing, servers).await?;
        // Answers for the question carry the name as the caller wrote it.
        for record in response.answers.iter_mut() {
            if record.name == sent.name {
                record.name = question.name.clone();
            }
        }
        Ok(response)
    }

    /// True if `request` carries the marker of a query this forwarder is
    /// forwarding right now: it has come back to us.
    fn carries_our_marker(&self, request: &Message) -> bool {
        let Some(edns) = request.edns.as_ref() else {
            return false;
        };
        let in_flight = self.lock();
        edns.options()
            .get_all(EdnsCode::Unknown(LOOP_MARKER_OPTION))
            .iter()
            .any(|option| match option {
                EdnsOption::Unknown(_, value) => {
                    Marker::try_from(value.as_slice()).is_ok_and(|m| in_flight.contains(&m))
                }
                _ => false,
            })
    }

    /// Tries each server in order until one answers with something other than
    /// SERVFAIL or REFUSED, within the per-server and the total bound.
    async fn failover(
        &self,
        query: &Message,
        servers: &[SocketAddr],
    ) -> Result<Message, ForwardError> {
        let bytes = query.to_vec().map_err(|e| ForwardError::Encode {
            source: Arc::new(e),
        })?;
        let deadline = Instant::now() + self.total_timeout;
        let mut last_error = None;
        let mut last_refusal = None;
        for server in servers {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                last_error = Some(ForwardError::Deadline {
                    after: self.total_timeout,
                });
                break;
            }
            let bound = self.attempt_timeout.min(left);
            self.metrics.upstream_queries.inc();
            match timeout(bound, exchange(*server, query, &bytes)).await {
                Ok(Ok(response)) => match response.metadata.response_code {
                    ResponseCode::ServFail | ResponseCode::Refused => {
                        tracing::debug!(%server, rcode = %response.metadata.response_code, "trying the next upstream");
                        last_refusal = Some(response);
                    }
                    _ => return Ok(response),
                },
                Ok(Err(error)) => {
                    tracing::debug!(%server, %error, "upstream failed");
                    last_error = Some(error);
                }
                Err(_) => {
                    tracing::debug!(%server, ?bound, "upstream timed out");
                    last_error = Some(ForwardError::Timeout {
                        server: *server,
                        after: bound,
                    });
                }
            }
        }
        match (last_refusal, last_error) {
            (Some(response), _) => Ok(response),
            (None, Some(error)) => Err(error),
            (None, None) => Err(ForwardError::NoUpstream),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashSet<Marker>> {
        // A set of markers: consistent after any panic.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a query in flight under a fresh marker, within the bound.
    fn enter(&self) -> Result<FlightGuard<'_>, ForwardError> {
        let mut in_flight = self.lock();
        if in_flight.len() >= self.max_in_flight {
            return Err(ForwardError::Busy {
                limit: self.max_in_flight,
            });
        }
        let mut marker: Marker = rand::random();
        while !in_flight.insert(marker) {
            marker = rand::random();
        }
        Ok(FlightGuard {
            forwarder: self,
            marker,
        })
    }
}

/// Takes a finished (or abandoned) flight out of the map, however the
/// waiter ends: a flight that is done is never joined again (the cache
/// answers from then on), and one whose every waiter is gone is not left
/// behind.
struct LeaveFlight<'a> {
    forwarder: &'a Forwarder,
    key: &'a Key,
    flight: &'a Flight,
}

impl Drop for LeaveFlight<'_> {
    fn drop(&mut self) {
        let mut flights = self.forwarder.lock_flights();
        let ours = flights
            .get(self.key)
            .is_some_and(|f| Arc::ptr_eq(f, self.flight));
        // The map's reference and ours: nobody else waits.
        if ours && (self.flight.initialized() || Arc::strong_count(self.flight) <= 2) {
            flights.remove(self.key);
        }
    }
}

/// Keeps a query's marker in flight until the forward ends, however it ends.
struct FlightGuard<'a> {
    forwarder: &'a Forwarder,
    marker: Marker,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        self.forwarder.lock().remove(&self.marker);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UpstreamConfig;
    use crate::route::Router;

    fn new_forwarder(
        upstream: &UpstreamConfig,
        own: &[SocketAddr],
        metrics: Arc<Metrics>,
    ) -> Result<Forwarder, Error> {
        let config = Config {
            upstream: upstream.clone(),
            ..Config::default()
        };
        Forwarder::new(
            &config,
            crate::route::shared(Router::default()),
            own,
            metrics,
            None,
        )
    }

    /// A loopback UDP server that answers every query for `a.test.` with
    /// one A record (TTL 300) after `delay`, counting the queries.
    async fn slow_upstream(
        delay: Duration,
    ) -> (
        SocketAddr,
        Arc<std::sync::atomic::AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        use hickory_proto::rr::{RData, Record, rdata::A};
        let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let addr = socket.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = Arc::clone(&count);
        let task = tokio::spawn(async move {
            let mut buf = vec![0; 4096];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let query = Message::from_vec(&buf[..len]).unwrap();
                let mut response = Message::response(query.metadata.id, OpCode::Query);
                response.queries = query.queries.clone();
                let name = query.queries[0].name.clone();
                response.answers.push(Record::from_rdata(
                    name,
                    300,
                    RData::A(A::new(192, 0, 2, 1)),
                ));
                let socket = Arc::clone(&socket);
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
                });
            }
        });
        (addr, count, task)
    }

    fn a_query(name: &str) -> Message {
        let mut query = Message::query();
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        query
    }

    #[tokio::test]
    async fn identical_queries_share_one_exchange_then_hit_the_cache() {
        let (addr, count, task) = slow_upstream(Duration::from_millis(200)).await;
        let config = UpstreamConfig {
            servers: vec![addr],
            ..UpstreamConfig::default()
        };
        let metrics = Arc::new(Metrics::new());
        let forwarder = Arc::new(new_forwarder(&config, &[], metrics.clone()).unwrap());
        let mut waiters = JoinSet::new();
        for i in 0..10u16 {
            let forwarder = Arc::clone(&forwarder);
            waiters.spawn(async move {
                let mut query = a_query(if i % 2 == 0 { "a.test." } else { "A.TEST." });
                query.metadata.id = i;
                forwarder.forward(&query).await
            });
        }
        while let Some(result) = waiters.join_next().await {
            let forwarded = result.unwrap().unwrap();
            assert_eq!(forwarded.message.answers.len(), 1);
            assert_eq!(
                forwarded.message.answers[0].name,
                forwarded.message.queries[0].name
            );
        }
        assert_eq!(
            count.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "coalesced"
        );
        let again = forwarder.forward(&a_query("a.test.")).await.unwrap();
        assert!(again.from_cache && !again.stale);
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "cached");
        assert_eq!(metrics.forward_cache_hits.get(), 1);
        assert!(forwarder.lock_flights().is_empty(), "no flight left behind");
        task.abort();
    }

    #[tokio::test]
    async fn stale_when_the_upstream_is_gone() {
        let (addr, _count, task) = slow_upstream(Duration::ZERO).await;
        let config = Config {
            upstream: UpstreamConfig {
                servers: vec![addr],
                attempt_timeout_ms: 200,
                total_timeout_ms: 300,
                ..UpstreamConfig::default()
            },
            cache: crate::config::CacheConfig {
                max_ttl_secs: 1,
                ..Default::default()
            },
            ..Config::default()
        };
        let forwarder = Arc::new(
            Forwarder::new(
                &config,
                crate::route::shared(Router::default()),
                &[],
                Arc::new(Metrics::new()),
                None,
            )
            .unwrap(),
        );
        let first = forwarder.forward(&a_query("a.test.")).await.unwrap();
        assert_eq!(first.message.answers[0].ttl, 1, "capped by max_ttl_secs");
        task.abort();
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let stale = forwarder.forward(&a_query("a.test.")).await.unwrap();
        assert!(stale.stale, "served stale");
        assert_eq!(
            stale.message.answers[0].ttl, 1,
            "stale TTL is at most 30 and the record's own"
        );
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn self_addresses() {
        let own = [addr("127.0.0.1:5353"), addr("0.0.0.0:53")];
        assert!(is_self(addr("127.0.0.1:5353"), &own));
        assert!(
            is_self(addr("127.0.0.53:53"), &own),
            "wildcard listener on 53 answers on loopback"
        );
        assert!(is_self(addr("0.0.0.0:5353"), &own));
        assert!(!is_self(addr("127.0.0.1:5354"), &own));
        assert!(!is_self(addr("192.0.2.1:53"), &own));
        assert!(
            !is_self(addr("127.0.0.53:53"), &[addr("127.0.0.1:53")]),
            "systemd-resolved is not us"
        );
    }

    #[test]
    fn configured_self_is_refused_and_resolv_conf_self_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 127.0.0.1\nnameserver 192.0.2.1\n").unwrap();
        let own = [addr("127.0.0.1:53")];
        let metrics = Arc::new(Metrics::new());
        let mut config = UpstreamConfig {
            resolv_conf: Some(path),
            ..UpstreamConfig::default()
        };
        let forwarder = new_forwarder(&config, &own, metrics.clone()).unwrap();
        assert_eq!(forwarder.servers(), [addr("192.0.2.1:53")]);
        config.servers = vec![addr("192.0.2.2:53"), addr("127.0.0.1:53")];
        assert!(matches!(
            new_forwarder(&config, &own, metrics.clone()),
            Err(Error::UpstreamIsSelf { addr }) if addr == own[0]
        ));
        config.servers.clear();
        config.resolv_conf = None;
        assert!(
            new_forwarder(&config, &own, metrics)
                .unwrap()
                .servers()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn in_flight_is_bounded_and_released() {
        let config = UpstreamConfig {
            servers: vec![addr("127.0.0.1:9")],
            max_in_flight: 2,
            ..UpstreamConfig::default()
        };
        let forwarder = new_forwarder(&config, &[], Arc::new(Metrics::new())).unwrap();
        let a = forwarder.enter().unwrap();
        let b = forwarder.enter().unwrap();
        assert!(matches!(
            forwarder.enter(),
            Err(ForwardError::Busy { limit: 2 })
        ));
        drop(a);
        assert_eq!(forwarder.lock().len(), 1);
        drop(b);
        assert!(forwarder.lock().is_empty());
        assert!(forwarder.enter().is_ok());
    }

    #[test]
    fn only_a_marker_in_flight_here_means_a_loop() {
        let config = UpstreamConfig::default();
        let ours = new_forwarder(&config, &[], Arc::new(Metrics::new())).unwrap();
        let theirs = new_forwarder(&config, &[], Arc::new(Metrics::new())).unwrap();
        let (our_query, their_query) = (ours.enter().unwrap(), theirs.enter().unwrap());
        let with = |markers: &[Marker]| {
            let mut message = Message::query();
            let mut edns = Edns::new();
            for marker in markers {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(LOOP_MARKER_OPTION, marker.to_vec()));
            }
            message.edns = Some(edns);
            message
        };
        assert!(
            !ours.carries_our_marker(&Message::query()),
            "no EDNS at all"
        );
        assert!(
            !ours.carries_our_marker(&with(&[their_query.marker])),
            "another resolver's query"
        );
        let both = with(&[their_query.marker, our_query.marker]);
        assert!(ours.carries_our_marker(&both), "ours, among others");
        assert!(theirs.carries_our_marker(&both));
        let done = our_query.marker;
        drop(our_query);
        assert!(
            !ours.carries_our_marker(&with(&[done])),
            "a finished query's marker is forgotten"
        );
    }
}
