//! Counters of what the node stored, refused and looked up.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of a refusal: the short reason (`bad_signature`, `older` …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason, as [`Refusal::reason`](crate::Refusal::reason) gives it.
    pub reason: String,
}

/// The node's metrics. Created once, shared as an `Arc`; register it in the
/// operator's registry with [`Metrics::register`].
#[derive(Debug, Default)]
pub struct Metrics {
    /// Records written to the store (new or newer versions).
    pub stores: Counter,
    /// Records offered for storage that were refused, by reason (the
    /// validation labels, and `not_closest`, `budget_bytes`,
    /// `budget_records`, `budget_zone`, `disk_full`, `storage`).
    pub refusals: Family<ReasonLabel, Counter>,
    /// Records found by a `get` that failed validation, by reason.
    pub invalid_answers: Family<ReasonLabel, Counter>,
    /// Valid records found by `get`s.
    pub valid_answers: Counter,
    /// `get` calls.
    pub gets: Counter,
    /// `get` calls that joined a lookup already in flight.
    pub gets_coalesced: Counter,
    /// `get` lookups that returned at the end of `get_grace` with a valid
    /// answer but fewer than `get_quorum` of them.
    pub gets_grace_expired: Counter,
    /// `put` calls.
    pub puts: Counter,
    /// Replicas that `put`s reported stored (remote acknowledgements and the
    /// local store).
    pub put_replicas: Counter,
    /// Store requests sent by the periodic re-replication round.
    pub replication_pushes: Counter,
    /// Periodic re-replication rounds started.
    pub replication_rounds: Counter,
    /// Store requests sent to newly joined peers by handover walks.
    pub handover_pushes: Counter,
    /// Handover walks started (one per batch of newly joined peers).
    pub handover_walks: Counter,
    /// Replication and handover pushes sent and not answered yet (at most
    /// `MAX_REPLICATION_IN_FLIGHT`).
    pub replication_in_flight: Gauge,
    /// Walk steps that waited because `MAX_REPLICATION_IN_FLIGHT` pushes
    /// were unanswered (slow or silent peers).
    pub replication_capped: Counter,
    /// Unreachable peers removed from the routing table and saved peers.
    pub peers_removed: Counter,
    /// Routing-table walks finished (libp2p's bootstrap: a lookup of the
    /// node's own id, then one per farther bucket). The first runs on its
    /// own once a starting node knows a peer; then every
    /// `bootstrap_interval`, and on [`Handle::bootstrap`](crate::Handle::bootstrap).
    pub bootstraps: Counter,
    /// Routing-table walks libp2p started again right after one ended, and
    /// the node stopped (`MIN_WALK_GAP`).
    pub bootstraps_suppressed: Counter,
    /// Expired records removed from disk.
    pub purged: Counter,
    /// Records on disk.
    pub records: Gauge,
    /// Bytes charged against the storage budget for the records held.
    pub stored_bytes: Gauge,
    /// The storage budget in bytes (`max_storage`).
    pub max_stored_bytes: Gauge,
}

impl Metrics {
    /// Registers every series under `dht_` in `registry` (kadns gives it the
    /// `kadns` prefix, so series read `kadns_dht_…`).
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("dht");
        r.register(
            "stores",
            "Records written to the store",
            self.stores.clone(),
        );
        r.register(
            "refusals",
            "Records refused for storage, by reason",
            self.refusals.clone(),
        );
        r.register(
            "get_invalid_answers",
            "Records found by gets that failed validation, by reason",
            self.invalid_answers.clone(),
        );
        r.register(
            "get_valid_answers",
            "Valid records found by gets",
            self.valid_answers.clone(),
        );
        r.register("gets", "get calls", self.gets.clone());
        r.register(
            "gets_coalesced",
            "get calls joined to a lookup in flight",
            self.gets_coalesced.clone(),
        );
        r.register(
            "gets_grace_expired",
            "get lookups returned at the end of get_grace, short of the quorum",
            self.gets_grace_expired.clone(),
        );
        r.register("puts", "put calls", self.puts.clone());
        r.register(
            "put_replicas",
            "Replicas reported stored by puts",
            self.put_replicas.clone(),
        );
        r.register(
            "replication_pushes",
            "Store requests sent by re-replication",
            self.replication_pushes.clone(),
        );
        r.register(
            "replication_rounds",
            "Periodic re-replication rounds started",
            self.replication_rounds.clone(),
        );
        r.register(
            "handover_pushes",
            "Store requests sent to newly joined peers",
            self.handover_pushes.clone(),
        );
        r.register(
            "handover_walks",
            "Handover walks started for newly joined peers",
            self.handover_walks.clone(),
        );
        r.register(
            "replication_in_flight",
            "Replication and handover pushes not answered yet",
            self.replication_in_flight.clone(),
        );
        r.register(
            "replication_capped",
            "Replication steps that waited for unanswered pushes",
            self.replication_capped.clone(),
        );
        r.register(
            "peers_removed",
            "Unreachable peers removed from the routing table",
            self.peers_removed.clone(),
        );
        r.register(
            "bootstraps",
            "Routing-table walks (own id, then every farther bucket) finished",
            self.bootstraps.clone(),
        );
        r.register(
            "bootstraps_suppressed",
            "Repeated routing-table walks stopped at once",
            self.bootstraps_suppressed.clone(),
        );
        r.register("purged", "Expired records removed", self.purged.clone());
        r.register("records", "Records on disk", self.records.clone());
        r.register(
            "stored_bytes",
            "Bytes charged against the storage budget",
            self.stored_bytes.clone(),
        );
        r.register(
            "max_stored_bytes",
            "The storage budget in bytes",
            self.max_stored_bytes.clone(),
        );
    }

    pub(crate) fn refused(&self, reason: &str) {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub(crate) fn invalid_answer(&self, reason: &str) {
        self.invalid_answers
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Refusals counted for `reason` so far.
    pub fn refusals_for(&self, reason: &str) -> u64 {
        self.refusals
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .get()
    }
}
