//! Forwarding upstream: server list and failover, time bounds, loop protection.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::{Name, RecordType};
use tokio::time::{Instant, timeout};

use crate::config::UpstreamConfig;
use crate::error::{Error, ForwardError};
use crate::exchange::exchange;
use crate::metrics::Metrics;
use crate::resolv_conf;

/// EDNS payload size the resolver advertises in its own queries (the DNS
/// flag day 2020 value: no IP fragmentation on common paths).
const EDNS_PAYLOAD: u16 = 1232;

/// EDNS option code of the loop marker (from the range RFC 6891 leaves for
/// local and experimental use). Its value is a random marker, fresh for every
/// query sent, so it says nothing about the sender to the upstream.
pub(crate) const LOOP_MARKER_OPTION: u16 = 65_431;

/// The loop marker of one query in flight.
type Marker = [u8; 8];

/// Sends queries to the upstream servers, in order, within bounds.
#[derive(Debug)]
pub(crate) struct Forwarder {
    servers: Vec<SocketAddr>,
    attempt_timeout: Duration,
    total_timeout: Duration,
    max_in_flight: usize,
    /// The markers of the queries being forwarded right now.
    in_flight: Mutex<HashSet<Marker>>,
    metrics: Arc<Metrics>,
}

impl Forwarder {
    /// Picks the servers: the configured ones (an error if one is the
    /// resolver itself), else resolv.conf's minus the resolver itself.
    pub(crate) fn new(
        config: &UpstreamConfig,
        own: &[SocketAddr],
        metrics: Arc<Metrics>,
    ) -> Result<Self, Error> {
        let servers = if !config.servers.is_empty() {
            if let Some(addr) = config.servers.iter().find(|s| is_self(**s, own)) {
                return Err(Error::UpstreamIsSelf { addr: *addr });
            }
            config.servers.clone()
        } else if let Some(path) = &config.resolv_conf {
            let mut servers = resolv_conf::read(path);
            servers.retain(|s| {
                let ours = is_self(*s, own);
                if ours {
                    tracing::debug!(server = %s, "resolv.conf names this resolver itself: skipped");
                }
                !ours
            });
            servers
        } else {
            Vec::new()
        };
        if servers.is_empty() {
            tracing::info!("no upstream servers: names outside kadns zones will get SERVFAIL");
        }
        Ok(Self {
            servers,
            attempt_timeout: Duration::from_millis(config.attempt_timeout_ms),
            total_timeout: Duration::from_millis(config.total_timeout_ms),
            max_in_flight: config.max_in_flight,
            in_flight: Mutex::default(),
            metrics,
        })
    }

    pub(crate) fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Forwards a client's query as it is (flags, EDNS and its options, the
    /// DO bit), under a fresh id, and returns the response with the client's
    /// id and question put back.
    pub(crate) async fn forward(&self, request: &Message) -> Result<Message, ForwardError> {
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
        let mut outgoing = request.clone();
        // A TSIG signature covers the original id: it cannot travel on.
        outgoing.signature = None;
        let mut response = self.send(outgoing, question).await?;
        response.metadata.id = request.metadata.id;
        response.queries = request.queries.clone();
        Ok(response)
    }

    /// Asks the upstreams for `name`/`query_type` with a query of the
    /// resolver's own (RD set, EDNS without DO).
    pub(crate) async fn query(
        &self,
        name: &Name,
        query_type: RecordType,
    ) -> Result<Message, ForwardError> {
        let mut query = Message::query();
        query.metadata.recursion_desired = true;
        let question = Query::query(name.clone(), query_type);
        query.add_query(question.clone());
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        query.set_edns(edns);
        self.send(query, &question).await
    }

    /// The shared path: fresh id, loop marker, 0x20 case randomization,
    /// failover. `question` is the question as the caller asked it.
    async fn send(&self, mut outgoing: Message, question: &Query) -> Result<Message, ForwardError> {
        if self.servers.is_empty() {
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
        let mut response = self.failover(&outgoing).await?;
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
    async fn failover(&self, query: &Message) -> Result<Message, ForwardError> {
        let bytes = query.to_vec().map_err(|e| ForwardError::Encode {
            source: Arc::new(e),
        })?;
        let deadline = Instant::now() + self.total_timeout;
        let mut last_error = None;
        let mut last_refusal = None;
        for server in &self.servers {
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
        let forwarder = Forwarder::new(&config, &own, metrics.clone()).unwrap();
        assert_eq!(forwarder.servers(), [addr("192.0.2.1:53")]);
        config.servers = vec![addr("192.0.2.2:53"), addr("127.0.0.1:53")];
        assert!(matches!(
            Forwarder::new(&config, &own, metrics.clone()),
            Err(Error::UpstreamIsSelf { addr }) if addr == own[0]
        ));
        config.servers.clear();
        config.resolv_conf = None;
        assert!(
            Forwarder::new(&config, &own, metrics)
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
        let forwarder = Forwarder::new(&config, &[], Arc::new(Metrics::new())).unwrap();
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
        let ours = Forwarder::new(&config, &[], Arc::new(Metrics::new())).unwrap();
        let theirs = Forwarder::new(&config, &[], Arc::new(Metrics::new())).unwrap();
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
