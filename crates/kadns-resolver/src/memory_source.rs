//! An in-memory bundle source, for tests and for embedders without a DHT.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kadns_record::{DhtKey, SignedBundle};

use crate::error::SourceError;
use crate::source::{BundleSource, SourceAnswer};

/// A [`BundleSource`] backed by a map in memory.
///
/// Clones share the same map, so a test can keep one handle and give another
/// to the resolver. It can also misbehave on purpose: answer after a delay
/// (on tokio's clock, so paused time applies), fail every lookup, or say
/// something other than "proven absent" for keys it does not hold
/// ([`MemorySource::set_missing`]), as a partly reachable DHT would.
///
/// ```
/// use kadns_resolver::MemorySource;
///
/// let source = MemorySource::new();
/// assert_eq!(source.calls(), 0);
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemorySource {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    state: Mutex<State>,
    calls: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    bundles: HashMap<DhtKey, Vec<u8>>,
    delay: Duration,
    failure: Option<SourceError>,
    /// What a key with no bundle answers; `None` is [`SourceAnswer::Absent`].
    missing: Option<SourceAnswer>,
}

impl MemorySource {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stores a signed bundle under its own DHT key, replacing what was there.
    pub fn put(&self, bundle: &SignedBundle) {
        self.put_bytes(bundle.dht_key(), bundle.as_bytes().to_vec());
    }

    /// Stores arbitrary bytes under `key`: a peer can return anything.
    pub fn put_bytes(&self, key: DhtKey, bytes: Vec<u8>) {
        self.state().bundles.insert(key, bytes);
    }

    /// Removes what is stored under `key`.
    pub fn remove(&self, key: &DhtKey) {
        self.state().bundles.remove(key);
    }

    /// Makes every lookup wait `delay` (on tokio's clock) before answering.
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay;
    }

    /// Makes every lookup fail with `failure` (after the delay), or succeed
    /// again with `None`.
    pub fn set_failure(&self, failure: Option<SourceError>) {
        self.state().failure = failure;
    }

    /// What a lookup of a key the source does not hold answers: by default
    /// [`SourceAnswer::Absent`] (a map in memory is the whole "network"); a
    /// [`SourceAnswer::NotReached`] makes it behave like a DHT that could
    /// not ask enough peers.
    pub fn set_missing(&self, answer: SourceAnswer) {
        self.state().missing = Some(answer);
    }

    /// How many lookups have started.
    pub fn calls(&self) -> u64 {
        self.inner.calls.load(Ordering::Relaxed)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves only plain data behind.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl BundleSource for MemorySource {
    async fn get(&self, key: DhtKey) -> Result<SourceAnswer, SourceError> {
        self.inner.calls.fetch_add(1, Ordering::Relaxed);
        let delay = self.state().delay;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let state = self.state();
        match &state.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(match state.bundles.get(&key) {
                Some(bytes) => SourceAnswer::Found(bytes.clone()),
                None => state.missing.clone().unwrap_or(SourceAnswer::Absent),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kadns_record::{Bundle, OwnerName, ZoneKey};

    #[tokio::test(start_paused = true)]
    async fn stores_delays_and_fails() {
        let key = ZoneKey::from_seed([1; 32]);
        let signed = Bundle::new(OwnerName::apex(), 1, 2_000_000_000, vec![])
            .unwrap()
            .sign(&key)
            .unwrap();
        let source = MemorySource::new();
        assert_eq!(
            source.get(signed.dht_key()).await.unwrap(),
            SourceAnswer::Absent
        );
        source.put(&signed);
        assert_eq!(
            source.get(signed.dht_key()).await.unwrap(),
            SourceAnswer::Found(signed.as_bytes().to_vec())
        );

        source.set_delay(Duration::from_secs(5));
        let start = tokio::time::Instant::now();
        source.get(signed.dht_key()).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(5));

        source.set_failure(Some(SourceError::NoPeers));
        assert!(matches!(
            source.get(signed.dht_key()).await,
            Err(SourceError::NoPeers)
        ));
        assert_eq!(source.calls(), 4);
    }
}
