//! The get state machine: lookups in flight, keyed by Kademlia's `QueryId`,
//! with coalescing by key. It validates every record a lookup finds, keeps
//! the valid one with the highest sequence and decides when a lookup is done
//! (docs/dht.md, "GET"). It does no I/O: the event loop starts the Kademlia
//! query and finishes it when told to.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kadns_record::{DhtKey, Freshness, VerifiedBundle, validate};
use libp2p::PeerId;
use libp2p::kad::{self, QueryId};
use tokio::time::{Duration, Instant};
use tracing::Span;

use crate::handle::{GetOutcome, Reply};
use crate::metrics::Metrics;
use crate::store::unix_now;

/// Most `get` lookups in flight; further distinct keys wait in the channel.
pub const MAX_PENDING_GETS: usize = 1024;

struct GetState {
    key: DhtKey,
    waiters: Vec<Reply<GetOutcome>>,
    best: Option<VerifiedBundle>,
    answered_by: Vec<PeerId>,
    invalid_answers: usize,
    invalid_reasons: BTreeMap<&'static str, usize>,
    local: bool,
    /// Peers that must answer for "nothing" to prove absence.
    required: usize,
    /// Requests Kademlia sent for this lookup so far (its query stats).
    requests: u32,
    /// Set by the first valid remote answer: the get returns then even if
    /// its quorum is not in.
    grace_until: Option<Instant>,
    span: Span,
}

/// What the event loop must do after a lookup's progress.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub(super) enum GetStep {
    /// Keep the Kademlia query running.
    Continue,
    /// The get was answered: finish the Kademlia query (`query_mut(id).finish()`).
    Finish,
}

/// The lookups in flight.
pub(super) struct Gets {
    quorum: usize,
    grace: Duration,
    pending: HashMap<QueryId, GetState>,
    by_key: HashMap<DhtKey, QueryId>,
    metrics: Arc<Metrics>,
}

impl Gets {
    pub(super) fn new(quorum: usize, grace: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            quorum,
            grace,
            pending: HashMap::new(),
            by_key: HashMap::new(),
            metrics,
        }
    }

    /// Lookups in flight.
    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Joins the lookup of `key` already in flight, if there is one;
    /// otherwise gives `reply` back so the caller starts a lookup.
    pub(super) fn join(
        &mut self,
        key: &DhtKey,
        reply: Reply<GetOutcome>,
    ) -> Option<Reply<GetOutcome>> {
        self.metrics.gets.inc();
        if let Some(query) = self.by_key.get(key)
            && let Some(state) = self.pending.get_mut(query)
        {
            self.metrics.gets_coalesced.inc();
            state.waiters.push(reply);
            return None;
        }
        Some(reply)
    }

    /// Registers the lookup `query` of `key`, started while the routing
    /// table held `known` peers.
    pub(super) fn start(
        &mut self,
        query: QueryId,
        key: DhtKey,
        reply: Reply<GetOutcome>,
        known: usize,
        span: &Span,
    ) {
        let required = self.quorum.min(known).max(1);
        let span = tracing::debug_span!(parent: span, "query", ?query, known, required);
        self.by_key.insert(key, query);
        self.pending.insert(
            query,
            GetState {
                key,
                waiters: vec![reply],
                best: None,
                answered_by: Vec::new(),
                invalid_answers: 0,
                invalid_reasons: BTreeMap::new(),
                local: false,
                required,
                requests: 0,
                grace_until: None,
                span,
            },
        );
    }

    /// Records how many requests Kademlia has sent for `query` so far.
    pub(super) fn note_requests(&mut self, query: QueryId, requests: u32) {
        if let Some(state) = self.pending.get_mut(&query) {
            state.requests = requests;
        }
    }

    /// One `GetRecord` progress event of the Kademlia query `query`; `last`
    /// is Kademlia's `step.last`.
    pub(super) fn on_result(
        &mut self,
        query: QueryId,
        result: Result<kad::GetRecordOk, kad::GetRecordError>,
        last: bool,
    ) -> GetStep {
        match result {
            Ok(kad::GetRecordOk::FoundRecord(found)) => {
                let step = self.on_found_record(query, found);
                if last {
                    self.finish(query, true, Vec::new());
                }
                step
            }
            Ok(kad::GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                self.finish(query, true, Vec::new());
                GetStep::Continue
            }
            Err(kad::GetRecordError::NotFound { closest_peers, .. }) => {
                self.finish(query, true, closest_peers);
                GetStep::Continue
            }
            Err(_) => {
                self.finish(query, false, Vec::new());
                GetStep::Continue
            }
        }
    }

    fn on_found_record(&mut self, query: QueryId, found: kad::PeerRecord) -> GetStep {
        let Some(state) = self.pending.get_mut(&query) else {
            tracing::trace!(?query, "record for an unknown or finished query");
            return GetStep::Continue;
        };
        let _guard = state.span.enter();
        match validate(&state.key, &found.record.value, unix_now()) {
            Ok(bundle) => {
                match found.peer {
                    Some(peer) => {
                        if state.answered_by.contains(&peer) {
                            return GetStep::Continue;
                        }
                        state.answered_by.push(peer);
                        self.metrics.valid_answers.inc();
                        if state.grace_until.is_none() {
                            state.grace_until = Some(Instant::now() + self.grace);
                        }
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
        let enough = state.answered_by.len() >= self.quorum;
        drop(_guard);
        if enough {
            self.finish(query, true, Vec::new());
            return GetStep::Finish;
        }
        GetStep::Continue
    }

    /// The earliest end of a grace period among the gets in flight.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.pending.values().filter_map(|s| s.grace_until).min()
    }

    /// Ends every get whose grace period is over at `now` (it holds a valid
    /// answer but not its quorum) with the best answer in, and returns their
    /// queries: the event loop finishes them in Kademlia.
    pub(super) fn expire(&mut self, now: Instant) -> Vec<QueryId> {
        let due: Vec<QueryId> = self
            .pending
            .iter()
            .filter(|(_, s)| s.grace_until.is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for query in &due {
            if let Some(state) = self.pending.get(query) {
                state.span.in_scope(|| {
                    tracing::debug!(
                        valid = state.answered_by.len(),
                        quorum = self.quorum,
                        "grace over: returning without the quorum"
                    )
                });
            }
            self.metrics.gets_grace_expired.inc();
            self.finish(*query, true, Vec::new());
        }
        due
    }

    /// Ends a get and answers its waiters. `converged` is false when the
    /// lookup timed out; `reached_empty` are the peers Kademlia reports as
    /// having answered a lookup that found no record.
    fn finish(&mut self, query: QueryId, converged: bool, reached_empty: Vec<PeerId>) {
        let Some(state) = self.pending.remove(&query) else {
            return;
        };
        self.by_key.remove(&state.key);
        let mut reached = state.answered_by.clone();
        for peer in reached_empty {
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
            converged,
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
}
