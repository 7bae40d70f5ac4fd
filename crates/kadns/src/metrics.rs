//! Counters of the DNS stub.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::answer_cache::AnswerCacheMetrics;

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

    /// The count of responses with these labels (for tests and status output).
    pub fn responses(&self, protocol: &'static str, outcome: &'static str) -> u64 {
        self.responses
            .get_or_create(&QueryLabels { protocol, outcome })
            .get()
    }
}
