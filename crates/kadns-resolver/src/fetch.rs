//! Getting one verified bundle: cache, coalescing, DHT lookup, validation
//! and the rollback check.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kadns_record::{DhtKey, validate};
use tokio::time::{Instant, timeout};
use tracing::Instrument;

use crate::cache::{Cache, Cached, Found};
use crate::error::{LookupError, StoreError};
use crate::metrics::Metrics;
use crate::sequence_store::SequenceStore;
use crate::source::BundleSource;

type Lookup = Shared<BoxFuture<'static, Result<Cached, LookupError>>>;

/// Owns everything between a DHT key and a verified, cached bundle.
pub(crate) struct Fetcher<S> {
    pub(crate) source: S,
    pub(crate) cache: Cache,
    pub(crate) sequences: Arc<dyn SequenceStore>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) timeout: Duration,
    /// DHT lookups under way: equal lookups share one.
    pub(crate) in_flight: Mutex<HashMap<DhtKey, Lookup>>,
}

impl<S> std::fmt::Debug for Fetcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cache", &self.cache)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The wall clock in unix seconds, for bundle expiry.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl<S> Fetcher<S> {
    fn in_flight(&self) -> MutexGuard<'_, HashMap<DhtKey, Lookup>> {
        // Insertions and removals only: consistent after any panic.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<S: BundleSource> Fetcher<S> {
    /// The bundle under `key`: from the cache unless `refresh`, else from the
    /// DHT, with concurrent equal lookups coalesced into one source call.
    /// Safe to cancel: the shared lookup is dropped when its last waiter is.
    pub(crate) async fn get(
        self: &Arc<Self>,
        key: DhtKey,
        refresh: bool,
    ) -> Result<Cached, LookupError> {
        if let Some(cached) = self.cache.get(&key, Instant::now()).filter(|_| !refresh) {
            self.metrics.cache_hits.inc();
            return Ok(cached);
        }
        self.metrics.cache_misses.inc();
        let lookup = self
            .in_flight()
            .entry(key)
            .or_insert_with(|| {
                let span = tracing::debug_span!("dht_lookup", %key);
                Arc::clone(self)
                    .lookup(key)
                    .instrument(span)
                    .boxed()
                    .shared()
            })
            .clone();
        Waiter {
            fetcher: self,
            key,
            lookup: Some(lookup),
        }
        .await
    }

    /// One source call, validated, rollback-checked and cached.
    async fn lookup(self: Arc<Self>, key: DhtKey) -> Result<Cached, LookupError> {
        self.metrics.dht_lookups.inc();
        let result = match timeout(self.timeout, self.source.get(key)).await {
            Err(_) => Err(LookupError::Timeout {
                key,
                after: self.timeout,
            }),
            Ok(Err(source)) => Err(LookupError::Source { key, source }),
            Ok(Ok(None)) => Ok(Found::Nothing),
            Ok(Ok(Some(bytes))) => self.verify(key, &bytes).await,
        };
        let result = result.map(|found| self.cache.insert(key, found, Instant::now(), now_unix()));
        if let Err(error) = &result {
            tracing::debug!(%error, "DHT lookup failed");
        }
        self.in_flight().remove(&key);
        result
    }

    async fn verify(&self, key: DhtKey, bytes: &[u8]) -> Result<Found, LookupError> {
        let bundle = validate(&key, bytes, now_unix()).map_err(|source| {
            self.metrics.count_refusal(source.reason());
            tracing::debug!(%source, "bundle refused");
            LookupError::Invalid { key, source }
        })?;
        let sequence = bundle.sequence();
        let store = Arc::clone(&self.sequences);
        let before = tokio::task::spawn_blocking(move || store.record(&key, sequence))
            .await
            .map_err(|e| StoreError::Task {
                reason: e.to_string(),
            })
            .and_then(|r| r)
            .map_err(|source| LookupError::Store { source })?;
        match before {
            Some(highest) if highest > sequence => {
                self.metrics.count_refusal("rollback");
                tracing::debug!(sequence, highest, "bundle refused: rollback");
                Err(LookupError::Rollback {
                    key,
                    sequence,
                    highest,
                })
            }
            _ => Ok(Found::Bundle(Arc::new(bundle))),
        }
    }
}

/// Waits for a shared lookup, and drops it when the last waiter goes away
/// before it ends, so that a lookup nobody waits for does not linger.
struct Waiter<'a, S> {
    fetcher: &'a Fetcher<S>,
    key: DhtKey,
    lookup: Option<Lookup>,
}

impl<S> Future for Waiter<'_, S> {
    type Output = Result<Cached, LookupError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.lookup.as_mut() {
            Some(lookup) => lookup.poll_unpin(cx),
            // Only `drop` takes the lookup out.
            None => Poll::Pending,
        }
    }
}

impl<S> Drop for Waiter<'_, S> {
    fn drop(&mut self) {
        drop(self.lookup.take());
        let mut in_flight = self.fetcher.in_flight();
        // Only the table's own handle is left: nobody waits any more.
        if in_flight.get(&self.key).and_then(Shared::strong_count) == Some(1) {
            in_flight.remove(&self.key);
        }
    }
}
