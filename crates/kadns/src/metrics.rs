//! Counters of the DNS stub.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Labels of one answered query.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// `udp` or `tcp`.
    pub protocol: String,
    /// `noerror`, `nxdomain`, `nodata`, `servfail`, `formerr`, `notimp`, `refused`, …
    pub outcome: String,
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
    }

    /// The count of responses with these labels (for tests and status output).
    pub fn responses(&self, protocol: &str, outcome: &str) -> u64 {
        self.responses
            .get_or_create(&QueryLabels {
                protocol: protocol.to_owned(),
                outcome: outcome.to_owned(),
            })
            .get()
    }
}
