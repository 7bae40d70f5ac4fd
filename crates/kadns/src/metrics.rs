//! Counters of the DNS stub.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::answer_cache::AnswerCacheMetrics;
use crate::server::Transport;

/// Every outcome label the handler counts: each (protocol, outcome) pair
/// has its counter in [`ResponseCounters`], found by index.
const OUTCOMES: [&str; 9] = [
    "noerror", "nxdomain", "nodata", "upstream", "servfail", "formerr", "notimp", "refused",
    "badvers",
];

/// The `responses` family's counters, one cell per protocol and outcome,
/// each filled the first time it counts: counting a response is then an
/// index and an atomic add, where the family takes a lock, hashes the
/// labels and looks them up. A cell shares its counter with the family
/// (the same atomic), so the exported series are unchanged.
#[derive(Debug, Default)]
struct ResponseCounters {
    cells: [[OnceLock<Counter>; OUTCOMES.len()]; 4],
}

/// Labels of one answered query: static strings, so that counting a
/// response allocates nothing.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `udp`, `tcp`, `tls` or `https`.
    pub protocol: &'static str,
    /// `noerror`, `nxdomain`, `nodata`, `servfail`, `formerr`, `notimp`, `refused`, …
    pub outcome: &'static str,
}

/// What the stub counts. One instance per stub, shared through an `Arc`.
#[derive(Debug, Default)]
pub struct StubMetrics {
    /// Responses sent, by protocol and outcome.
    pub responses: Family<QueryLabels, Counter>,
    /// Queries answered from kadns zones (as opposed to forwarded).
    pub kadns_queries: Counter,
    /// Queries forwarded to the upstream DNS.
    pub forwarded_queries: Counter,
    /// UDP responses too big for the client, sent as a TC reply instead.
    pub truncated_responses: Counter,
    /// Queries refused because the client is outside the allowed networks.
    pub refused_clients: Counter,
    /// UDP replies dropped by response-rate limiting.
    pub rrl_dropped: Counter,
    /// UDP replies sent as a bare TC reply by response-rate limiting (slip).
    pub rrl_slipped: Counter,
    /// Stream connections (TCP, DoT) closed at once: over a cap, none idle.
    pub tcp_refused: Counter,
    /// Idle stream connections closed to make room for a new one.
    pub tcp_evicted: Counter,
    /// Stream connections open now.
    pub tcp_connections: Gauge,
    /// The wire-format answer cache's counters (`answer_cache_*`).
    pub answer_cache: Arc<AnswerCacheMetrics>,
    /// `responses`, by index.
    response_counters: ResponseCounters,
}

impl StubMetrics {
    /// Registers every series under `registry` (the caller picks the prefix).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "stub_responses",
            "DNS responses sent, by protocol and outcome",
            self.responses.clone(),
        );
        registry.register(
            "stub_kadns_queries",
            "Queries answered from kadns zones",
            self.kadns_queries.clone(),
        );
        registry.register(
            "stub_forwarded_queries",
            "Queries forwarded upstream",
            self.forwarded_queries.clone(),
        );
        registry.register(
            "stub_refused_clients",
            "Queries refused because the client is outside the allowed networks",
            self.refused_clients.clone(),
        );
        registry.register(
            "stub_truncated_responses",
            "UDP responses too big for the client, sent truncated (TC)",
            self.truncated_responses.clone(),
        );
        registry.register(
            "stub_rrl_dropped",
            "UDP replies dropped by response-rate limiting",
            self.rrl_dropped.clone(),
        );
        registry.register(
            "stub_rrl_slipped",
            "UDP replies sent truncated (TC) by response-rate limiting",
            self.rrl_slipped.clone(),
        );
        registry.register(
            "stub_tcp_refused",
            "Stream connections closed at once: over a connection cap, none idle",
            self.tcp_refused.clone(),
        );
        registry.register(
            "stub_tcp_evicted",
            "Idle stream connections closed to make room for a new one",
            self.tcp_evicted.clone(),
        );
        registry.register(
            "stub_tcp_connections",
            "Stream connections (TCP, DoT) open now",
            self.tcp_connections.clone(),
        );
        self.answer_cache.register(registry);
    }

    /// Counts one response sent over `transport` with `outcome` (one of
    /// the outcome labels above; any other goes through the family).
    pub(crate) fn count_response(&self, transport: Transport, outcome: &'static str) {
        let protocol = transport.as_str();
        let row = match transport {
            Transport::Udp => 0,
            Transport::Tcp => 1,
            Transport::Tls => 2,
            Transport::Https => 3,
        };
        let cell = OUTCOMES
            .iter()
            .position(|known| *known == outcome)
            .and_then(|column| self.response_counters.cells[row].get(column));
        let labels = QueryLabels { protocol, outcome };
        match cell {
            Some(cell) => cell
                .get_or_init(|| self.responses.get_or_create(&labels).clone())
                .inc(),
            None => self.responses.get_or_create(&labels).inc(),
        };
    }

    /// The count of responses with these labels (for tests and status output).
    pub fn responses(&self, protocol: &'static str, outcome: &'static str) -> u64 {
        self.responses
            .get_or_create(&QueryLabels { protocol, outcome })
            .get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_counters_are_the_family_s() {
        let metrics = StubMetrics::default();
        for _ in 0..3 {
            metrics.count_response(Transport::Udp, "noerror");
        }
        metrics.count_response(Transport::Tcp, "badvers");
        metrics.count_response(Transport::Https, "something-else");
        assert_eq!(metrics.responses("udp", "noerror"), 3);
        assert_eq!(metrics.responses("tcp", "badvers"), 1);
        assert_eq!(metrics.responses("https", "something-else"), 1);
        assert_eq!(metrics.responses("tcp", "noerror"), 0);
    }
}
