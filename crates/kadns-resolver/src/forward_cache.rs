//! The cache of forwarded answers: positive and negative (RFC 2308), bounded
//! in bytes, TTLs counted down on hits, kept past expiry for serve-stale
//! (RFC 8767) within a window.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use tokio::time::Instant;

/// TTL of a stale answer (RFC 8767 §4 recommends 30 s).
pub(crate) const STALE_TTL: u32 = 30;

/// Bytes counted per entry on top of its encoded response: the key, the
/// map and index slots, the bookkeeping. An estimate, so that many tiny
/// entries cannot exceed the byte bound by much.
const ENTRY_OVERHEAD: usize = 256;

/// Answers whose TTL is below this are not prefetched: refreshing them
/// would cost an upstream query every few seconds for no gain.
const MIN_PREFETCH_TTL: u32 = 10;

/// What a cached answer is keyed by: the question, and the two flags that
/// change what an upstream returns (DO brings RRSIGs, CD skips validation).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    name: Name,
    query_type: RecordType,
    query_class: DNSClass,
    dnssec_ok: bool,
    checking_disabled: bool,
}

impl Key {
    /// The key of `request`'s first question.
    pub(crate) fn of(request: &Message) -> Option<Self> {
        let question = request.queries.first()?;
        let mut name = question.name.to_lowercase();
        name.set_fqdn(true);
        Some(Self {
            name,
            query_type: question.query_type,
            query_class: question.query_class,
            dnssec_ok: request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            checking_disabled: request.metadata.checking_disabled,
        })
    }
}

/// One cached response, scrubbed, as received (TTLs as the upstream sent
/// them), shared with the exchange that fetched it.
#[derive(Debug)]
pub(crate) struct Entry {
    response: Arc<Message>,
    stored: Instant,
    /// How long it is fresh, in seconds.
    ttl: u32,
    /// Bytes counted against the bound.
    size: usize,
    /// Index slot: (end of the stale window, insertion number).
    slot: (Instant, u64),
    /// A prefetch of this entry is under way or done.
    prefetched: AtomicBool,
}

impl Entry {
    /// Still fresh at `now`.
    pub(crate) fn is_fresh(&self, now: Instant) -> bool {
        now < self.stored + Duration::from_secs(u64::from(self.ttl))
    }

    /// Whole seconds since it was stored.
    fn age(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.stored).as_secs()).unwrap_or(u32::MAX)
    }

    /// The response as it stands at `now`: every TTL lowered by the time
    /// spent in the cache.
    pub(crate) fn fresh_response(&self, now: Instant) -> Message {
        let age = self.age(now);
        self.with_ttls(|ttl| ttl.saturating_sub(age))
    }

    /// The response served stale: every TTL [`STALE_TTL`] (or lower, if the
    /// record's own was).
    pub(crate) fn stale_response(&self) -> Message {
        self.with_ttls(|ttl| ttl.min(STALE_TTL))
    }

    fn with_ttls(&self, f: impl Fn(u32) -> u32) -> Message {
        let mut response = Message::clone(&self.response);
        for record in response
            .answers
            .iter_mut()
            .chain(response.authorities.iter_mut())
            .chain(response.additionals.iter_mut())
        {
            record.ttl = f(record.ttl);
        }
        response
    }

    /// True, once per entry, when a hit at `now` falls in the last tenth of
    /// the TTL: time to refresh it in the background (unbound's prefetch).
    pub(crate) fn take_prefetch(&self, now: Instant) -> bool {
        if self.ttl < MIN_PREFETCH_TTL || !self.is_fresh(now) {
            return false;
        }
        let left = self.ttl.saturating_sub(self.age(now));
        left * 10 <= self.ttl && !self.prefetched.swap(true, Ordering::Relaxed)
    }
}

/// TTL bounds applied to forwarded answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Bounds {
    /// Most bytes held.
    pub(crate) max_bytes: usize,
    /// Longest a positive answer is fresh (the kadns cache's cap).
    pub(crate) max_ttl: u32,
    /// Longest a negative answer is fresh.
    pub(crate) max_negative_ttl: u32,
    /// How long past its TTL an answer may still be served stale.
    pub(crate) stale_window: Duration,
}

/// The cache. Evicts first what is past its stale window, then the entries
/// whose stale window ends soonest.
#[derive(Debug)]
pub(crate) struct ForwardCache {
    bounds: Bounds,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Arc<Entry>>,
    /// (end of stale window, insertion number) → key: eviction order.
    index: BTreeMap<(Instant, u64), Key>,
    bytes: usize,
    inserted: u64,
}

impl State {
    fn remove(&mut self, key: &Key) {
        if let Some(entry) = self.entries.remove(key) {
            self.index.remove(&entry.slot);
            self.bytes -= entry.size;
        }
    }
}

impl ForwardCache {
    pub(crate) fn new(bounds: Bounds) -> Self {
        Self {
            bounds,
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain maps updated together under the lock: consistent after a panic.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry for `key`, fresh or stale, while its stale window lasts.
    pub(crate) fn get(&self, key: &Key, now: Instant) -> Option<Arc<Entry>> {
        let mut state = self.lock();
        let entry = state.entries.get(key)?;
        if now >= entry.slot.0 {
            state.remove(key);
            return None;
        }
        Some(Arc::clone(entry))
    }

    /// Bytes held now.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Entries held now.
    pub(crate) fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Drops every entry (`kadns cache flush`) and says how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut state = self.lock();
        let dropped = state.entries.len();
        *state = State {
            inserted: state.inserted,
            ..State::default()
        };
        dropped
    }

    /// Drops every entry for `name`, whatever its type and flags
    /// (`kadns cache flush NAME`), and says how many there were.
    pub(crate) fn remove_name(&self, name: &Name) -> usize {
        let mut name = name.to_lowercase();
        name.set_fqdn(true);
        let mut state = self.lock();
        let keys: Vec<Key> = state
            .entries
            .keys()
            .filter(|k| k.name == name)
            .cloned()
            .collect();
        for key in &keys {
            state.remove(key);
        }
        keys.len()
    }

    /// Applies the TTL caps to the records of `response` itself, as kadns
    /// answers are capped: every record at most `max_ttl`, and the SOA of a
    /// negative answer at its negative TTL (RFC 2308 §3).
    pub(crate) fn cap_ttls(&self, response: &mut Message) {
        let negative = ttl_of(response, &self.bounds).filter(|_| {
            response.metadata.response_code == ResponseCode::NXDomain || response.answers.is_empty()
        });
        for record in response
            .answers
            .iter_mut()
            .chain(response.authorities.iter_mut())
            .chain(response.additionals.iter_mut())
        {
            record.ttl = record.ttl.min(self.bounds.max_ttl);
            if let (Some(ttl), RData::SOA(_)) = (negative, &record.data) {
                record.ttl = record.ttl.min(ttl);
            }
        }
    }

    /// [`insert_shared`](Self::insert_shared) of a copy of `response`,
    /// counted at its encoded size.
    #[cfg(test)]
    pub(crate) fn insert(&self, key: Key, response: &Message, now: Instant) -> Option<u32> {
        let wire_len = response.to_vec().ok()?.len();
        self.insert_shared(key, Arc::new(response.clone()), wire_len, now)
    }

    /// Caches `response` under `key` if it can be cached (see [`ttl_of`]);
    /// returns the TTL it was cached for. The entry shares the response
    /// (nothing copied, nothing encoded again) and counts `wire_len`, its
    /// size as received, against the byte bound, plus the entry's overhead.
    pub(crate) fn insert_shared(
        &self,
        key: Key,
        response: Arc<Message>,
        wire_len: usize,
        now: Instant,
    ) -> Option<u32> {
        let ttl = ttl_of(&response, &self.bounds)?;
        let size = wire_len + ENTRY_OVERHEAD;
        if size > self.bounds.max_bytes {
            return None;
        }
        let end = now + Duration::from_secs(u64::from(ttl)) + self.bounds.stale_window;
        let mut state = self.lock();
        state.remove(&key);
        // Past their stale window first, then the soonest to end.
        while state.bytes + size > self.bounds.max_bytes
            || state
                .index
                .first_key_value()
                .is_some_and(|(slot, _)| slot.0 <= now)
        {
            let Some((_, victim)) = state.index.pop_first() else {
                break;
            };
            if let Some(entry) = state.entries.remove(&victim) {
                state.bytes -= entry.size;
            }
        }
        state.inserted += 1;
        let slot = (end, state.inserted);
        state.index.insert(slot, key.clone());
        state.bytes += size;
        state.entries.insert(
            key,
            Arc::new(Entry {
                response,
                stored: now,
                ttl,
                size,
                slot,
                prefetched: AtomicBool::new(false),
            }),
        );
        Some(ttl)
    }
}

/// How long `response` may be cached, or `None` if it must not be:
/// - NOERROR with answers: the smallest answer TTL, capped at `max_ttl`;
/// - NXDOMAIN, or NOERROR without answers (NODATA): RFC 2308 §5, the
///   smaller of the authority SOA's TTL and its MINIMUM field (and of the
///   TTLs of a CNAME chain before it), capped at `max_negative_ttl`; without
///   an SOA, not cached (RFC 2308 §5: SHOULD NOT);
/// - anything else (SERVFAIL, REFUSED, truncated…): not cached.
pub(crate) fn ttl_of(response: &Message, bounds: &Bounds) -> Option<u32> {
    if response.metadata.truncation {
        return None;
    }
    let answer_ttl = response.answers.iter().map(|r| r.ttl).min();
    let ttl = match (response.metadata.response_code, answer_ttl) {
        (ResponseCode::NoError, Some(ttl)) if answer_covers_question(response) => {
            ttl.min(bounds.max_ttl)
        }
        (ResponseCode::NoError, None) | (ResponseCode::NXDomain, _) => {
            let soa = response.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })?;
            soa.min(answer_ttl.unwrap_or(u32::MAX))
                .min(bounds.max_negative_ttl)
        }
        _ => return None,
    };
    (ttl > 0).then_some(ttl)
}

/// A NOERROR with answers is a positive answer only if it answers the
/// question (a CNAME chain that ends without the type is NODATA, and needs
/// the SOA for its TTL).
fn answer_covers_question(response: &Message) -> bool {
    let Some(question) = response.queries.first() else {
        return true;
    };
    question.query_type == RecordType::ANY
        || response
            .answers
            .iter()
            .any(|r| r.record_type() == question.query_type || r.record_type() == RecordType::CNAME)
}

#[cfg(test)]
mod tests;
