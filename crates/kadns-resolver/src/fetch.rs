//! Getting one verified bundle: cache, coalescing, DHT lookup, validation,
//! the rollback check, serve-stale, prefetch and the persisted cache.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use kadns_record::{DhtKey, VerifiedBundle, validate};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::cache::{Cache, Cached, Found};
use crate::deadline::Deadline;
use crate::error::{LookupError, StoreError};
use crate::metrics::Metrics;
use crate::persist::BundleStore;
use crate::sequence_store::SequenceStore;
use crate::source::{BundleSource, SourceAnswer};

type Lookup = Shared<BoxFuture<'static, Result<Cached, LookupError>>>;

/// Most background refreshes (prefetches, lookups that outlived their
/// query) running at once; more are skipped, not queued.
pub const MAX_BACKGROUND_REFRESHES: usize = 64;

/// Owns everything between a DHT key and a verified, cached bundle.
pub(crate) struct Fetcher<S> {
    pub(crate) source: S,
    pub(crate) cache: Cache,
    pub(crate) sequences: Arc<dyn SequenceStore>,
    /// The persisted cache of verified bundles, if any.
    pub(crate) persisted: Option<Arc<dyn BundleStore>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) timeout: Duration,
    /// Whether a hit in the last tenth of an entry's life refreshes it.
    pub(crate) prefetch: bool,
    /// DHT lookups under way: equal lookups share one.
    pub(crate) in_flight: Mutex<HashMap<DhtKey, Lookup>>,
    /// Background refreshes; cancelled by `shutdown` (the resolver's drop).
    pub(crate) background: Mutex<JoinSet<()>>,
    pub(crate) shutdown: CancellationToken,
}

impl<S> std::fmt::Debug for Fetcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cache", &self.cache)
            .field("timeout", &self.timeout)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

/// The wall clock in unix seconds, for bundle expiry.
pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs a store call on tokio's blocking pool when it may block, else inline
/// (memory stores: no thread hop, and paused-time tests stay deterministic).
async fn store_call<T: Send + 'static>(
    blocks: bool,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if blocks {
        tokio::task::spawn_blocking(call).await
    } else {
        Ok(call())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Insertions and removals only: consistent after any panic.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<S> Fetcher<S> {
    fn in_flight(&self) -> MutexGuard<'_, HashMap<DhtKey, Lookup>> {
        lock(&self.in_flight)
    }

    /// Runs `lookup` to its end in the background (bounded; cancelled when
    /// the resolver is dropped), so that it fills the cache for later queries.
    fn spawn_background(&self, lookup: Lookup) {
        let mut background = lock(&self.background);
        while background.try_join_next().is_some() {}
        if background.len() >= MAX_BACKGROUND_REFRESHES {
            tracing::debug!("too many background refreshes: skipped");
            return;
        }
        let shutdown = self.shutdown.clone();
        background.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                _ = lookup => {}
            }
        });
    }
}

impl<S: BundleSource> Fetcher<S> {
    /// The bundle under `key`: from the cache unless `refresh`, else from the
    /// DHT, with concurrent equal lookups coalesced into one source call,
    /// waiting no longer than `deadline` allows. A failed or late lookup
    /// falls back on the last verified bundle (a stale answer) while its
    /// signature lasts. Safe to cancel: the shared lookup is dropped when
    /// its last waiter is (unless it runs on in the background).
    pub(crate) async fn get(
        self: &Arc<Self>,
        key: DhtKey,
        refresh: bool,
        deadline: Deadline,
    ) -> Result<Cached, LookupError> {
        let now = Instant::now();
        if !refresh && let Some(cached) = self.cache.get(&key, now) {
            self.metrics.cache_hits.inc();
            if self.prefetch && cached.prefetch_due(now) && !self.in_flight().contains_key(&key) {
                tracing::debug!(%key, "prefetching");
                self.metrics.prefetches.inc();
                self.spawn_background(self.start(key));
            }
            return Ok(cached);
        }
        self.metrics.cache_misses.inc();
        let mut waiter = Waiter {
            fetcher: self,
            key,
            lookup: Some(self.start(key)),
        };
        match timeout_at(deadline.fetch_bound(), &mut waiter).await {
            Ok(result) => result,
            Err(_) => {
                // The lookup goes on, to fill the cache for the next query.
                if let Some(lookup) = waiter.lookup.clone() {
                    self.spawn_background(lookup);
                }
                drop(waiter);
                let why = deadline.error();
                tracing::debug!(%key, "DHT wait cut short by the query deadline");
                self.stale(key, why.clone()).await.ok_or(why)
            }
        }
    }

    /// The in-flight lookup of `key`, joined or started.
    fn start(self: &Arc<Self>, key: DhtKey) -> Lookup {
        self.in_flight()
            .entry(key)
            .or_insert_with(|| {
                let span = tracing::debug_span!("dht_lookup", %key);
                Arc::clone(self)
                    .lookup(key)
                    .instrument(span)
                    .boxed()
                    .shared()
            })
            .clone()
    }

    /// One source call, validated, rollback-checked, cached and persisted;
    /// on failure, the stale answer if there is one.
    async fn lookup(self: Arc<Self>, key: DhtKey) -> Result<Cached, LookupError> {
        self.metrics.dht_lookups.inc();
        let result = match timeout(self.timeout, self.source.get(key)).await {
            Err(_) => Err(LookupError::Timeout {
                key,
                after: self.timeout,
            }),
            Ok(Err(source)) => Err(LookupError::Source { key, source }),
            Ok(Ok(SourceAnswer::Absent)) => Ok(Found::Nothing),
            Ok(Ok(SourceAnswer::NotReached {
                reached,
                required,
                invalid,
            })) => Err(if invalid.is_empty() {
                LookupError::Unreached {
                    key,
                    reached,
                    required,
                }
            } else {
                for (reason, n) in &invalid {
                    tracing::debug!(reason, n, "the DHT found only invalid bundles");
                }
                LookupError::OnlyInvalid {
                    key,
                    reasons: invalid,
                }
            }),
            Ok(Ok(SourceAnswer::Found(bytes))) => self.verify(key, &bytes).await,
            Ok(Ok(SourceAnswer::Verified(bundle))) => self.accept_verified(key, *bundle).await,
        };
        let result = match result {
            Ok(found) => {
                self.persist(key, &found).await;
                Ok(self.cache.insert(key, found, Instant::now(), now_unix()))
            }
            Err(error) => {
                tracing::debug!(%error, "DHT lookup failed");
                self.stale(key, error.clone()).await.ok_or(error)
            }
        };
        self.in_flight().remove(&key);
        result
    }

    async fn verify(&self, key: DhtKey, bytes: &[u8]) -> Result<Found, LookupError> {
        self.metrics.signature_checks.inc();
        let bundle = validate(&key, bytes, now_unix()).map_err(|source| {
            self.metrics.count_refusal(source.reason());
            tracing::debug!(%source, "bundle refused");
            LookupError::Invalid { key, source }
        })?;
        self.check_rollback(key, bundle).await.map(Found::Bundle)
    }

    /// A bundle this process verified already (its DHT node did): only what
    /// can have changed is checked again. One for another key, or expired
    /// since, goes through [`verify`](Self::verify), which refuses it and
    /// says why.
    async fn accept_verified(
        &self,
        key: DhtKey,
        bundle: VerifiedBundle,
    ) -> Result<Found, LookupError> {
        if bundle.dht_key() != key || bundle.expires() <= now_unix() {
            return self.verify(key, bundle.as_bytes()).await;
        }
        self.metrics.verified_reused.inc();
        self.check_rollback(key, bundle).await.map(Found::Bundle)
    }

    /// Records the bundle's sequence and refuses it if a higher one was seen.
    async fn check_rollback(
        &self,
        key: DhtKey,
        bundle: VerifiedBundle,
    ) -> Result<Arc<VerifiedBundle>, LookupError> {
        let sequence = bundle.sequence();
        let store = Arc::clone(&self.sequences);
        let before = store_call(store.blocks(), move || store.record(&key, sequence))
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
            _ => Ok(Arc::new(bundle)),
        }
    }

    /// Writes a verified bundle to the persisted cache (or forgets the key
    /// when it was proven absent). Failures are logged, never fatal: the
    /// persisted cache only ever serves stale answers.
    async fn persist(&self, key: DhtKey, found: &Found) {
        let Some(store) = self.persisted.clone() else {
            return;
        };
        let found = found.clone();
        let result = store_call(store.blocks(), move || match &found {
            Found::Bundle(bundle) => store.save(&key, bundle.expires(), bundle.as_bytes()),
            Found::Nothing => store.remove(&key),
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot write the persisted cache"),
            Err(error) => tracing::warn!(%error, "persisted cache task failed"),
        }
    }

    /// The stale answer for `key` after `why`: the last verified bundle, from
    /// memory or else from the persisted cache (validated and
    /// rollback-checked again), cached as stale for 30 s, never past its
    /// signed expiry. `None` when there is none.
    async fn stale(&self, key: DhtKey, why: LookupError) -> Option<Cached> {
        let now_wall = now_unix();
        let bundle = match self
            .cache
            .get_stale(&key, Instant::now())
            .filter(|b| b.expires() > now_wall)
        {
            Some(bundle) => bundle,
            None => self.load_persisted(key).await?,
        };
        self.metrics.stale_answers.inc();
        tracing::debug!(%key, %why, sequence = bundle.sequence(), "serving stale");
        Some(
            self.cache
                .insert_stale(key, bundle, why, Instant::now(), now_unix()),
        )
    }

    /// The persisted bundle under `key`, if it still validates and is not a
    /// rollback; a bundle that fails is deleted.
    async fn load_persisted(&self, key: DhtKey) -> Option<Arc<VerifiedBundle>> {
        let store = self.persisted.clone()?;
        let loader = Arc::clone(&store);
        let bytes = match store_call(store.blocks(), move || loader.load(&key)).await {
            Ok(Ok(bytes)) => bytes?,
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot read the persisted cache");
                return None;
            }
            Err(error) => {
                tracing::warn!(%error, "persisted cache task failed");
                return None;
            }
        };
        let checked = match validate(&key, &bytes, now_unix()) {
            Ok(bundle) => self.check_rollback(key, bundle).await,
            Err(source) => {
                self.metrics.count_refusal(source.reason());
                Err(LookupError::Invalid { key, source })
            }
        };
        match checked {
            Ok(bundle) => {
                self.metrics.persisted_loads.inc();
                Some(bundle)
            }
            Err(error) => {
                self.metrics.persisted_dropped.inc();
                tracing::debug!(%error, "persisted bundle dropped");
                let _ = store_call(store.blocks(), move || store.remove(&key)).await;
                None
            }
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

#[cfg(test)]
mod verified_once {
    use std::sync::Mutex;

    use hickory_proto::rr::{Name, RData, RecordType, rdata::A};
    use kadns_record::{Bundle, OwnerName, Rr, ZoneKey, validate};

    use crate::{BundleSource, Config, Outcome, Resolver, SourceAnswer, SourceError};

    /// A source that answers every key with one already-verified bundle, as
    /// the DHT source does, and counts its calls.
    struct Verified(Mutex<(kadns_record::VerifiedBundle, usize)>);

    impl BundleSource for Verified {
        async fn get(&self, _key: kadns_record::DhtKey) -> Result<SourceAnswer, SourceError> {
            let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
            state.1 += 1;
            Ok(SourceAnswer::Verified(Box::new(state.0.clone())))
        }
    }

    fn resolver(zone: &ZoneKey, owner: &str, expires: u64) -> Resolver<Verified> {
        let owner = OwnerName::from_labels([owner.as_bytes()]).unwrap();
        let records = vec![Rr::new(300, &RData::A(A::new(192, 0, 2, 1))).unwrap()];
        let signed = Bundle::new(owner, 1, expires, records)
            .unwrap()
            .sign(zone)
            .unwrap();
        let bundle = validate(&signed.dht_key(), signed.as_bytes(), super::now_unix()).unwrap();
        let mut config = Config::default();
        config
            .trust_anchors
            .insert("v.kad".into(), zone.zone_id().to_string());
        config.upstream.servers = vec!["127.0.0.1:9".parse().unwrap()];
        config.upstream.resolv_conf = None;
        Resolver::builder(config, Verified(Mutex::new((bundle, 0))))
            .build()
            .unwrap()
    }

    #[tokio::test]
    async fn a_verified_bundle_for_the_key_is_answered() {
        let zone = ZoneKey::from_seed([5; 32]);
        let resolver = resolver(&zone, "www", super::now_unix() + 3_600);
        let name = Name::from_ascii("www.v.kad.").unwrap();
        let answer = resolver.lookup(&name, RecordType::A).await;
        assert!(
            matches!(answer.outcome, Outcome::Records),
            "{:?}",
            answer.outcome
        );
        assert_eq!(answer.answers.len(), 1);
        let metrics = resolver.metrics();
        assert_eq!(metrics.verified_reused.get(), 1);
        assert_eq!(
            metrics.signature_checks.get(),
            0,
            "verified once, by the node"
        );
    }

    /// A bundle that comes as bytes is verified on its first lookup; the
    /// lookups after it (the same type, another type) are answered from
    /// the cache without a second check.
    #[tokio::test]
    async fn bytes_are_verified_once() {
        let zone = ZoneKey::from_seed([6; 32]);
        let owner = OwnerName::from_labels([b"www".as_slice()]).unwrap();
        let records = vec![Rr::new(300, &RData::A(A::new(192, 0, 2, 1))).unwrap()];
        let signed = Bundle::new(owner, 1, super::now_unix() + 3_600, records)
            .unwrap()
            .sign(&zone)
            .unwrap();
        let source = crate::MemorySource::new();
        source.put(&signed);
        let mut config = Config::default();
        config
            .trust_anchors
            .insert("v.kad".into(), zone.zone_id().to_string());
        config.upstream.servers = vec!["127.0.0.1:9".parse().unwrap()];
        config.upstream.resolv_conf = None;
        let resolver = Resolver::builder(config, source).build().unwrap();
        let name = Name::from_ascii("www.v.kad.").unwrap();
        for rtype in [RecordType::A, RecordType::A, RecordType::AAAA] {
            resolver.lookup(&name, rtype).await;
        }
        assert_eq!(resolver.metrics().signature_checks.get(), 1);
        assert_eq!(resolver.metrics().verified_reused.get(), 0);
    }

    #[tokio::test]
    async fn a_verified_bundle_for_another_key_is_refused() {
        let zone = ZoneKey::from_seed([5; 32]);
        // The source hands `www`'s bundle for every key: `mail` must not get it.
        let resolver = resolver(&zone, "www", super::now_unix() + 3_600);
        let name = Name::from_ascii("mail.v.kad.").unwrap();
        let answer = resolver.lookup(&name, RecordType::A).await;
        assert!(answer.answers.is_empty(), "{:?}", answer.answers);
        assert!(
            !matches!(answer.outcome, Outcome::Records),
            "{:?}",
            answer.outcome
        );
        let refused: u64 = resolver
            .metrics()
            .refusals
            .get_or_create(&crate::metrics::ReasonLabels {
                reason: "wrong_key",
            })
            .get();
        assert!(refused >= 1, "refused as wrong_key");
    }
}
