//! Counters of the answer cache (static names, no labels).

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the answer cache counts.
#[derive(Debug, Default)]
pub struct AnswerCacheMetrics {
    /// Queries answered from the cache.
    pub hits: Counter,
    /// Queries with a key that found no live entry.
    pub misses: Counter,
    /// Queries the cache cannot key (another shape), answered uncached.
    pub uncacheable: Counter,
    /// Responses stored.
    pub stored: Counter,
    /// Entries removed to stay within the byte budget (expired ones included).
    pub evicted: Counter,
    /// Bytes held (responses, keys and per-entry overhead).
    pub bytes: Gauge,
    /// Entries held.
    pub entries: Gauge,
}

impl AnswerCacheMetrics {
    /// Registers every series under `registry` (the caller picks the prefix).
    pub fn register(&self, registry: &mut Registry) {
        let mut add = |name: &str, help: &str, counter: &Counter| {
            registry.register(name, help, counter.clone());
        };
        add(
            "answer_cache_hits",
            "Queries answered from the wire-format answer cache",
            &self.hits,
        );
        add(
            "answer_cache_misses",
            "Cacheable queries the answer cache did not hold",
            &self.misses,
        );
        add(
            "answer_cache_uncacheable",
            "Queries of a shape the answer cache does not key",
            &self.uncacheable,
        );
        add(
            "answer_cache_stored",
            "Responses stored in the answer cache",
            &self.stored,
        );
        add(
            "answer_cache_evicted",
            "Answer cache entries removed to stay within its byte budget",
            &self.evicted,
        );
        registry.register(
            "answer_cache_bytes",
            "Bytes held by the answer cache",
            self.bytes.clone(),
        );
        registry.register(
            "answer_cache_entries",
            "Entries held by the answer cache",
            self.entries.clone(),
        );
    }
}
