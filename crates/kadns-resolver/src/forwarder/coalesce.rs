//! Coalescing: one upstream exchange per question in flight, shared by every
//! identical query that arrives while it runs, its answer cached; and the
//! background prefetches that keep popular answers fresh.

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};

use hickory_proto::op::Message;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::Forwarder;
use super::client::ClientKey;
use crate::error::ForwardError;
use crate::exchange::Response;
use crate::forward_cache::Key;
use crate::scrub::scrub;

/// One upstream exchange shared by every identical query that arrives while
/// it runs.
pub(super) type Flight = Arc<OnceCell<Result<Arc<Message>, ForwardError>>>;

impl Forwarder {
    /// One upstream exchange for `key`, shared by every query for it that
    /// arrives while it runs; its scrubbed response cached when cacheable.
    ///
    /// `client` waits in one of its bounded places (refused with
    /// [`ForwardError::TooManyWaiters`] when it has none left), and the
    /// query that starts the exchange takes one of `client`'s fair share of
    /// slots ([`ForwardError::Busy`], [`ForwardError::ClientBusy`]). A
    /// refusal is not shared: another waiter of the same flight then tries
    /// with a slot of its own.
    pub(super) async fn coalesced(
        self: &Arc<Self>,
        key: &Key,
        request: &Message,
        client: ClientKey,
    ) -> Result<Arc<Message>, ForwardError> {
        let _place = self
            .waiters
            .join(client)
            .inspect_err(|refused| self.count_limit(refused))?;
        let flight = Arc::clone(self.lock_flights().entry(key.clone()).or_default());
        let _leave = LeaveFlight {
            forwarder: self,
            key,
            flight: &flight,
        };
        let shared = flight
            .get_or_try_init(|| async {
                let _slot = self.slots.take(client)?;
                let result = self.exchange_and_cache(key, request).await;
                self.metrics
                    .forward_cache_bytes
                    .set(i64::try_from(self.cache.bytes()).unwrap_or(i64::MAX));
                Ok(result)
            })
            .await
            .inspect_err(|refused| self.count_limit(refused))?;
        shared.clone()
    }

    fn count_limit(&self, refused: &ForwardError) {
        if let Some(reason) = refused.limit_reason() {
            self.metrics.count_forward_refusal(reason);
            tracing::debug!(%refused, "forward refused");
        }
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
        let Response {
            message: mut response,
            wire_len,
        } = self.send(outgoing, question, servers).await?;
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
        // The upstream's signature covers what it sent, not what is relayed.
        response.signature = None;
        // One response, shared by the cache and every waiter of the flight.
        let response = Arc::new(response);
        let cached =
            self.cache
                .insert_shared(key.clone(), Arc::clone(&response), wire_len, Instant::now());
        if let Some(ttl) = cached {
            tracing::trace!(ttl, "forwarded answer cached");
        }
        Ok(response)
    }

    /// Refreshes `key` in the background (at most `max_prefetches` at once;
    /// the tasks are owned here and end when the forwarder does). Charged
    /// to the resolver itself, not to the client whose hit triggered it.
    pub(super) fn spawn_prefetch(self: &Arc<Self>, key: Key, request: Message) {
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
            if let Err(error) = this.coalesced(&key, &request, ClientKey::Internal).await {
                tracing::debug!(%error, "prefetch failed");
            }
        });
    }

    pub(super) fn lock_flights(&self) -> MutexGuard<'_, HashMap<Key, Flight>> {
        // A map of shared cells: consistent after any panic.
        self.flights
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
