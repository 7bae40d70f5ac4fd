//! The bounded cache of lookup results, keyed by DHT key.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kadns_record::{DhtKey, VerifiedBundle};
use tokio::time::Instant;

use crate::error::LookupError;

/// TTL of a stale answer, and how long one is reused before the DHT is
/// asked again (RFC 8767's recommended 30 s for both).
pub(crate) const STALE_TTL: Duration = Duration::from_secs(30);

/// What a completed DHT lookup found: a verified bundle, or nothing.
#[derive(Clone, Debug)]
pub(crate) enum Found {
    /// A verified bundle; empty means the name does not exist (signed).
    Bundle(Arc<VerifiedBundle>),
    /// No bundle at all (unsigned absence).
    Nothing,
}

/// One cache entry.
#[derive(Clone, Debug)]
pub(crate) struct Cached {
    pub(crate) found: Found,
    /// When the entry stops being usable at all.
    pub(crate) expires: Instant,
    /// When it stops being usable for a negative answer (NXDOMAIN, NODATA).
    pub(crate) negative_until: Instant,
    /// When it was fetched (or made stale): prefetch counts from here.
    pub(crate) fetched: Instant,
    /// Until when the bundle may still be served stale: its signed expiry
    /// (`expires` for "nothing found", which is never served stale).
    pub(crate) stale_until: Instant,
    /// Set when this entry is a stale answer: the failure that made the
    /// resolver fall back on the last verified bundle.
    pub(crate) stale: Option<LookupError>,
}

impl Cached {
    /// Seconds left before `until`, rounded up, as a TTL. Rounding up keeps
    /// a fresh entry at its full TTL; it never exceeds the published TTL,
    /// which is a whole number of seconds no shorter than the entry's life.
    pub(crate) fn ttl_left(until: Instant, now: Instant) -> u32 {
        let left = until.saturating_duration_since(now);
        let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX)
    }

    /// True in the last tenth of the entry's life (unbound's prefetch rule).
    pub(crate) fn prefetch_due(&self, now: Instant) -> bool {
        let life = self.expires.saturating_duration_since(self.fetched);
        now + life / 10 >= self.expires
    }
}

/// Bounded in entries; when full, the entry closest to expiry goes first.
#[derive(Debug)]
pub(crate) struct Cache {
    max_entries: usize,
    max_ttl: Duration,
    negative_ttl: Duration,
    inner: Mutex<Inner>,
    /// Bumped whenever an entry is replaced, or dropped while still live:
    /// answers rendered from the old entry must not be served again.
    answer_generation: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<DhtKey, (Cached, u64)>,
    /// (expiry, generation, key): the eviction order.
    by_expiry: BTreeSet<(Instant, u64, DhtKey)>,
    generation: u64,
}

impl Cache {
    pub(crate) fn new(max_entries: usize, max_ttl_secs: u32, negative_ttl_secs: u32) -> Self {
        Self {
            max_entries,
            max_ttl: Duration::from_secs(max_ttl_secs.into()),
            negative_ttl: Duration::from_secs(negative_ttl_secs.min(max_ttl_secs).into()),
            inner: Mutex::default(),
            answer_generation: AtomicU64::new(0),
        }
    }

    /// See [`Resolver::answer_generation`](crate::Resolver::answer_generation).
    pub(crate) fn answer_generation(&self) -> u64 {
        self.answer_generation.load(Ordering::Acquire)
    }

    pub(crate) fn negative_ttl(&self) -> Duration {
        self.negative_ttl
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every update below leaves the maps consistent before it can panic.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The live entry for `key`, if any. An entry past its life stays for
    /// serving stale until its bundle's signed expiry; past that it is
    /// removed.
    pub(crate) fn get(&self, key: &DhtKey, now: Instant) -> Option<Cached> {
        let mut inner = self.inner();
        let (cached, generation) = inner.entries.get(key)?.clone();
        if now < cached.expires {
            return Some(cached);
        }
        if now >= cached.stale_until {
            inner.entries.remove(key);
            inner.by_expiry.remove(&(cached.expires, generation, *key));
        }
        None
    }

    /// The last verified bundle under `key` that may still be served stale
    /// at `now` (before its signed expiry), live or not.
    pub(crate) fn get_stale(&self, key: &DhtKey, now: Instant) -> Option<Arc<VerifiedBundle>> {
        let inner = self.inner();
        let (cached, _) = inner.entries.get(key)?;
        match &cached.found {
            Found::Bundle(bundle) if now < cached.stale_until => Some(Arc::clone(bundle)),
            _ => None,
        }
    }

    /// Caches `bundle` as a stale answer (because of `why`) for
    /// [`STALE_TTL`], never past its signed expiry, and returns the entry.
    pub(crate) fn insert_stale(
        &self,
        key: DhtKey,
        bundle: Arc<VerifiedBundle>,
        why: LookupError,
        now: Instant,
        now_unix: u64,
    ) -> Cached {
        let signed_left = Duration::from_secs(bundle.expires().saturating_sub(now_unix));
        let mut stale_until = now + signed_left;
        // Never later than an end already computed for this entry: a stale
        // entry renewed again and again keeps its first deadline.
        if let Some((held, _)) = self.inner().entries.get(&key) {
            stale_until = stale_until.min(held.stale_until);
        }
        let lifetime = STALE_TTL.min(stale_until.saturating_duration_since(now));
        let cached = Cached {
            found: Found::Bundle(bundle),
            expires: now + lifetime,
            negative_until: now + lifetime,
            fetched: now,
            stale_until,
            stale: Some(why),
        };
        self.put(key, cached)
    }

    /// Caches what a lookup found at `now` (`now_unix` is the wall clock, for
    /// the bundle's signed expiry) and returns the entry, cached or not.
    pub(crate) fn insert(&self, key: DhtKey, found: Found, now: Instant, now_unix: u64) -> Cached {
        let (lifetime, negative, signed_left) = match &found {
            Found::Bundle(bundle) => {
                let signed_left = Duration::from_secs(bundle.expires().saturating_sub(now_unix));
                let ttl = bundle.records().iter().map(|r| r.ttl()).min();
                let lifetime = match ttl {
                    Some(ttl) => Duration::from_secs(ttl.into()).min(self.max_ttl),
                    None => self.negative_ttl,
                };
                let lifetime = lifetime.min(signed_left);
                (lifetime, lifetime.min(self.negative_ttl), signed_left)
            }
            Found::Nothing => (self.negative_ttl, self.negative_ttl, self.negative_ttl),
        };
        let cached = Cached {
            found,
            expires: now + lifetime,
            negative_until: now + negative,
            fetched: now,
            stale_until: now + signed_left,
            stale: None,
        };
        if lifetime.is_zero() {
            return cached;
        }
        self.put(key, cached)
    }

    fn put(&self, key: DhtKey, cached: Cached) -> Cached {
        if self.max_entries == 0 || cached.expires <= cached.fetched {
            return cached;
        }
        let mut inner = self.inner();
        let inner = &mut *inner;
        inner.generation += 1;
        let generation = inner.generation;
        if let Some((old, old_generation)) = inner.entries.remove(&key) {
            inner.by_expiry.remove(&(old.expires, old_generation, key));
            self.answer_generation.fetch_add(1, Ordering::AcqRel);
        }
        while inner.entries.len() >= self.max_entries {
            let Some((expires, _, victim)) = inner.by_expiry.pop_first() else {
                break;
            };
            tracing::trace!(%victim, ?expires, "cache full, evicting");
            if expires > cached.fetched {
                self.answer_generation.fetch_add(1, Ordering::AcqRel);
            }
            inner.entries.remove(&victim);
        }
        inner.by_expiry.insert((cached.expires, generation, key));
        inner.entries.insert(key, (cached.clone(), generation));
        cached
    }

    /// Entries held, live or not yet swept.
    pub(crate) fn len(&self) -> usize {
        self.inner().entries.len()
    }

    /// Drops the entry under `key` (`kadns cache flush NAME`); true if one
    /// was held. Answers rendered from it are not served again.
    pub(crate) fn remove(&self, key: &DhtKey) -> bool {
        let mut inner = self.inner();
        let Some((old, generation)) = inner.entries.remove(key) else {
            return false;
        };
        inner.by_expiry.remove(&(old.expires, generation, *key));
        self.answer_generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Drops every entry (`kadns cache flush`) and says how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut inner = self.inner();
        let dropped = inner.entries.len();
        inner.entries.clear();
        inner.by_expiry.clear();
        self.answer_generation.fetch_add(1, Ordering::AcqRel);
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{RData, rdata::A};
    use kadns_record::{Bundle, OwnerName, Rr, ZoneKey, validate};

    const NOW: u64 = 1_900_000_000;

    fn bundle(ttls: &[u32], expires_in: u64) -> Found {
        let records = ttls
            .iter()
            .enumerate()
            .map(|(i, ttl)| Rr::new(*ttl, &RData::A(A::new(192, 0, 2, i as u8))).unwrap())
            .collect();
        let signed = Bundle::new(OwnerName::apex(), 1, NOW + expires_in, records)
            .unwrap()
            .sign(&ZoneKey::from_seed([3; 32]))
            .unwrap();
        Found::Bundle(Arc::new(
            validate(&signed.dht_key(), signed.as_bytes(), NOW).unwrap(),
        ))
    }

    fn key(n: u8) -> DhtKey {
        DhtKey::from_bytes([n; 32])
    }

    #[test]
    fn lifetimes() {
        let cache = Cache::new(10, 86_400, 60);
        let now = Instant::now();
        let c = cache.insert(key(1), bundle(&[300, 100], 10_000), now, NOW);
        assert_eq!(c.expires - now, Duration::from_secs(100), "smallest TTL");
        assert_eq!(c.negative_until - now, Duration::from_secs(60));
        let c = cache.insert(key(2), bundle(&[300], 30), now, NOW);
        assert_eq!(c.expires - now, Duration::from_secs(30), "signed expiry");
        let c = cache.insert(key(3), bundle(&[], 10_000), now, NOW);
        assert_eq!(
            c.expires - now,
            Duration::from_secs(60),
            "empty bundle: negative TTL"
        );
        let c = cache.insert(key(4), Found::Nothing, now, NOW);
        assert_eq!(c.expires - now, Duration::from_secs(60));
        let c = cache.insert(key(5), bundle(&[0], 10_000), now, NOW);
        assert_eq!(c.expires, now, "TTL 0 is not cached");
        assert!(cache.get(&key(5), now).is_none());
        assert_eq!(cache.len(), 4);

        assert!(cache.get(&key(2), now + Duration::from_secs(29)).is_some());
        assert!(cache.get(&key(2), now + Duration::from_secs(30)).is_none());
        assert_eq!(cache.len(), 3, "dead entries are removed on sight");

        let short = Cache::new(10, 50, 600);
        let c = short.insert(key(1), bundle(&[300], 10_000), now, NOW);
        assert_eq!(c.expires - now, Duration::from_secs(50), "max_ttl caps");
        assert_eq!(
            short.negative_ttl(),
            Duration::from_secs(50),
            "negative TTL clamped to max_ttl"
        );
    }

    #[test]
    fn replacing_or_evicting_a_live_entry_moves_the_answer_generation() {
        let cache = Cache::new(2, 86_400, 60);
        let now = Instant::now();
        cache.insert(key(1), bundle(&[300], 10_000), now, NOW);
        cache.insert(key(2), bundle(&[300], 10_000), now, NOW);
        assert_eq!(cache.answer_generation(), 0);
        cache.insert(key(1), bundle(&[300, 300], 10_000), now, NOW);
        assert_eq!(cache.answer_generation(), 1);
        // Full: a third name evicts a live entry.
        cache.insert(key(3), bundle(&[300], 10_000), now, NOW);
        assert_eq!(cache.answer_generation(), 2);
    }

    #[test]
    fn bounded_in_entries() {
        let cache = Cache::new(3, 86_400, 60);
        let now = Instant::now();
        for (n, ttl) in [(1, 500), (2, 100), (3, 300)] {
            cache.insert(key(n), bundle(&[ttl], 10_000), now, NOW);
        }
        cache.insert(key(4), bundle(&[400], 10_000), now, NOW);
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get(&key(2), now).is_none(),
            "closest to expiry evicted"
        );
        for n in [1, 3, 4] {
            assert!(cache.get(&key(n), now).is_some());
        }
        // Replacing an entry does not evict another.
        cache.insert(key(4), bundle(&[50], 10_000), now, NOW);
        assert_eq!(cache.len(), 3);
        for n in 10..100 {
            cache.insert(key(n), Found::Nothing, now, NOW);
            assert!(cache.len() <= 3);
        }
        assert!(
            Cache::new(0, 86_400, 60)
                .insert(key(1), Found::Nothing, now, NOW)
                .expires
                > now
        );
    }
}
