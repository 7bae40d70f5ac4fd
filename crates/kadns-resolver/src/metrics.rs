//! The resolver's metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Label set of [`Metrics::outcomes`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `noerror`, `nxdomain`, `nodata`, `servfail` or `upstream`.
    pub outcome: &'static str,
}

/// Label set of [`Metrics::refusals`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// `rollback`, `forward_loop`, or a `kadns_record::ValidateError::reason`
    /// (`bad_signature`, `wrong_key`, `expired`, `malformed`, …).
    pub reason: &'static str,
}

/// Every series the resolver records. Pass it in as an `Arc`; register it in
/// the process's registry (under a `kadns` prefix) with [`Metrics::register`].
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Metrics {
    /// Lookups answered, by outcome (`resolver_lookups_total{outcome}`).
    pub outcomes: Family<OutcomeLabels, Counter>,
    /// Bundle lookups answered from the cache (`resolver_cache_hits_total`).
    pub cache_hits: Counter,
    /// Bundle lookups that needed the DHT (`resolver_cache_misses_total`),
    /// coalesced waiters included.
    pub cache_misses: Counter,
    /// Calls made to the bundle source (`resolver_dht_lookups_total`): misses
    /// less the coalesced ones.
    pub dht_lookups: Counter,
    /// Bundles whose signature the resolver checked itself
    /// (`resolver_signature_checks_total`): bundles that reached it as
    /// bytes, refused ones included.
    pub signature_checks: Counter,
    /// Bundles the process's own DHT node had verified already, accepted
    /// without checking the signature a second time
    /// (`resolver_verified_reused_total`): verified once per process.
    pub verified_reused: Counter,
    /// Bundles and queries refused, by reason (`resolver_refusals_total{reason}`).
    pub refusals: Family<ReasonLabels, Counter>,
    /// Queries sent to an upstream server (`resolver_upstream_queries_total`),
    /// each attempt counted.
    pub upstream_queries: Counter,
    /// Ancestor bundles looked up to find a wildcard's closest encloser
    /// (`resolver_encloser_lookups_total`), cache hits included.
    pub encloser_lookups: Counter,
    /// Wildcard bundles looked up because a closest encloser said it has a
    /// `*` child (`resolver_wildcard_lookups_total`).
    pub wildcard_lookups: Counter,
    /// Names answered from a wildcard (`resolver_wildcard_answers_total`).
    pub wildcard_answers: Counter,
    /// Bundles served stale because a refresh failed
    /// (`resolver_stale_answers_total`), counted when an entry turns stale.
    pub stale_answers: Counter,
    /// Background refreshes started by a hit late in an entry's life
    /// (`resolver_prefetches_total`).
    pub prefetches: Counter,
    /// Bundles loaded from the persisted cache and accepted after
    /// re-validation (`resolver_persisted_loads_total`).
    pub persisted_loads: Counter,
    /// Bundles in the persisted cache that failed re-validation or the
    /// rollback check and were deleted (`resolver_persisted_dropped_total`).
    pub persisted_dropped: Counter,
    /// Forwarded queries answered fresh from the forward cache
    /// (`resolver_forward_cache_hits_total`).
    pub forward_cache_hits: Counter,
    /// Forwarded queries that needed an upstream exchange, coalesced ones
    /// included (`resolver_forward_cache_misses_total`).
    pub forward_cache_misses: Counter,
    /// Forwarded queries answered stale because every upstream failed
    /// (`resolver_forward_stale_total`).
    pub forward_stale: Counter,
    /// Background refreshes of popular forwarded answers started
    /// (`resolver_forward_prefetches_total`).
    pub forward_prefetches: Counter,
    /// Records stripped from upstream responses: kadns names, out of
    /// bailiwick (`resolver_forward_scrubbed_total`).
    pub forward_scrubbed: Counter,
    /// Forwarded queries refused to keep a limit, by reason
    /// (`resolver_forward_refusals_total{reason}`): `slots`, `client_share`,
    /// `waiters` (see [`ForwardError::limit_reason`](crate::ForwardError::limit_reason)).
    pub forward_refusals: Family<ReasonLabels, Counter>,
    /// Bytes held by the forward cache (`resolver_forward_cache_bytes`).
    pub forward_cache_bytes: prometheus_client::metrics::gauge::Gauge,
}

impl Metrics {
    /// Metrics not registered anywhere (tests, embedders without a registry).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers every series in `registry`, each name starting `resolver_`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "resolver_lookups",
            "Lookups answered, by outcome",
            self.outcomes.clone(),
        );
        registry.register(
            "resolver_cache_hits",
            "Bundle lookups answered from the cache",
            self.cache_hits.clone(),
        );
        registry.register(
            "resolver_cache_misses",
            "Bundle lookups that needed the DHT",
            self.cache_misses.clone(),
        );
        registry.register(
            "resolver_dht_lookups",
            "Calls made to the bundle source",
            self.dht_lookups.clone(),
        );
        registry.register(
            "resolver_signature_checks",
            "Bundle signatures checked by the resolver",
            self.signature_checks.clone(),
        );
        registry.register(
            "resolver_verified_reused",
            "Bundles verified by the node already, accepted without a second signature check",
            self.verified_reused.clone(),
        );
        registry.register(
            "resolver_refusals",
            "Bundles and queries refused, by reason",
            self.refusals.clone(),
        );
        registry.register(
            "resolver_upstream_queries",
            "Queries sent to upstream servers",
            self.upstream_queries.clone(),
        );
        registry.register(
            "resolver_encloser_lookups",
            "Ancestor bundles looked up to find a wildcard's closest encloser",
            self.encloser_lookups.clone(),
        );
        registry.register(
            "resolver_wildcard_lookups",
            "Wildcard bundles looked up",
            self.wildcard_lookups.clone(),
        );
        registry.register(
            "resolver_wildcard_answers",
            "Names answered from a wildcard",
            self.wildcard_answers.clone(),
        );
        registry.register(
            "resolver_stale_answers",
            "Bundles served stale because a refresh failed",
            self.stale_answers.clone(),
        );
        registry.register(
            "resolver_prefetches",
            "Background refreshes started by a hit late in an entry's life",
            self.prefetches.clone(),
        );
        registry.register(
            "resolver_persisted_loads",
            "Bundles loaded from the persisted cache after re-validation",
            self.persisted_loads.clone(),
        );
        registry.register(
            "resolver_persisted_dropped",
            "Persisted bundles that failed re-validation and were deleted",
            self.persisted_dropped.clone(),
        );
        registry.register(
            "resolver_forward_cache_hits",
            "Forwarded queries answered from the forward cache",
            self.forward_cache_hits.clone(),
        );
        registry.register(
            "resolver_forward_cache_misses",
            "Forwarded queries that needed an upstream exchange",
            self.forward_cache_misses.clone(),
        );
        registry.register(
            "resolver_forward_stale",
            "Forwarded queries answered stale because every upstream failed",
            self.forward_stale.clone(),
        );
        registry.register(
            "resolver_forward_prefetches",
            "Background refreshes of forwarded answers started",
            self.forward_prefetches.clone(),
        );
        registry.register(
            "resolver_forward_scrubbed",
            "Records stripped from upstream responses",
            self.forward_scrubbed.clone(),
        );
        registry.register(
            "resolver_forward_refusals",
            "Forwarded queries refused to keep a limit, by reason",
            self.forward_refusals.clone(),
        );
        registry.register(
            "resolver_forward_cache_bytes",
            "Bytes held by the forward cache",
            self.forward_cache_bytes.clone(),
        );
    }

    /// The count of one outcome so far.
    pub fn outcome(&self, outcome: &'static str) -> u64 {
        self.outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .get()
    }

    /// The count of one refusal reason so far.
    pub fn refusal(&self, reason: &'static str) -> u64 {
        self.refusals.get_or_create(&ReasonLabels { reason }).get()
    }

    /// The count of forwarded queries refused for one limit so far.
    pub fn forward_refusal(&self, reason: &'static str) -> u64 {
        self.forward_refusals
            .get_or_create(&ReasonLabels { reason })
            .get()
    }

    pub(crate) fn count_forward_refusal(&self, reason: &'static str) {
        self.forward_refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub(crate) fn count_outcome(&self, outcome: &'static str) {
        self.outcomes
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(crate) fn count_refusal(&self, reason: &'static str) {
        self.refusals.get_or_create(&ReasonLabels { reason }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_and_encodes() {
        let mut registry = Registry::with_prefix("kadns");
        let metrics = Metrics::new();
        metrics.register(&mut registry);
        metrics.count_outcome("nxdomain");
        metrics.count_refusal("rollback");
        metrics.cache_hits.inc();
        metrics.count_forward_refusal("client_share");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains("kadns_resolver_lookups_total{outcome=\"nxdomain\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kadns_resolver_refusals_total{reason=\"rollback\"} 1"),
            "{text}"
        );
        assert!(text.contains("kadns_resolver_cache_hits_total 1"), "{text}");
        assert!(
            text.contains("kadns_resolver_forward_refusals_total{reason=\"client_share\"} 1"),
            "{text}"
        );
        assert_eq!(metrics.outcome("nxdomain"), 1);
        assert_eq!(metrics.refusal("bad_signature"), 0);
    }
}
