//! The wire-format answer cache: rendered responses, sent again with the
//! query's ID and letter case patched in and their TTLs counted down.
//!
//! Consulted at the very top of the stub's handler, before any decoding.
//! The key ([`QueryKey`]) is read from the raw query; an entry holds the
//! encoded response as it was sent, the offsets of its TTL fields and when
//! it was stored. A hit copies the response into the caller's buffer,
//! writes the query's ID over the stored one, copies the query's question
//! name over the stored one (same length by construction: the key holds the
//! lower-cased name; answer owner names are compression pointers to the
//! question, so they take its case too) and subtracts the whole seconds
//! elapsed from every TTL. It allocates nothing.
//!
//! An entry lives for nine tenths of its smallest TTL, so that TTLs never
//! reach 0 and the resolver behind it still sees the query that triggers
//! its prefetch (in the last tenth of a bundle's life). It is also dropped
//! when the resolver's *answer generation* has moved since it was stored:
//! the resolver bumps it whenever a cached bundle is replaced or dropped
//! while live, so the cache never serves an answer from a replaced bundle.
//!
//! The map is split into shards, each behind its own `RwLock` (hits only
//! read), and bounded in bytes: a full shard drops its expired entries,
//! then arbitrary ones (the map's random order), until the new entry fits.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use kadns::answer_cache::{AnswerCache, QueryKey};
//!
//! // "a.kad." IN A, id 1, and a response with one A record, TTL 60.
//! let query = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
//!              1, b'a', 3, b'k', b'a', b'd', 0, 0, 1, 0, 1];
//! let mut response = query.to_vec();
//! response[2] |= 0x80;
//! response[7] = 1; // ANCOUNT
//! response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, 1]);
//!
//! let cache = AnswerCache::new(1 << 20);
//! let key = QueryKey::parse(&query).unwrap();
//! let start = Instant::now();
//! cache.put(&query, &key, &response, 0, start);
//!
//! let mut again = query;
//! again[1] = 2; // another id
//! again[13] = b'A'; // another case
//! let mut out = Vec::new();
//! let later = start + Duration::from_secs(10);
//! assert!(cache.get(&again, &key, 0, 512, later, &mut out));
//! assert_eq!(out[1], 2);
//! assert_eq!(out[13], b'A');
//! assert_eq!(u32::from_be_bytes(out[out.len() - 10..][..4].try_into().unwrap()), 50);
//! // Once the resolver's generation moves, the entry is gone.
//! assert!(!cache.get(&again, &key, 1, 512, later, &mut out));
//! ```

mod key;
mod metrics;
mod wire;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

pub use key::{MAX_KEY, QueryKey};
pub use metrics::AnswerCacheMetrics;

/// What [`AnswerCache::lookup`] put in the caller's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The whole cached answer, patched for this query.
    Hit,
    /// The cached answer is longer than the client's limit: a TC reply
    /// (header, question, OPT record) built from it, so the client retries
    /// over TCP.
    Truncated,
    /// Nothing usable: the caller resolves (and `out` holds nothing useful).
    Miss,
}

/// Shards of the map (a power of two).
const SHARDS: usize = 16;

/// Bytes an entry costs beyond its response, key and TTL offsets: the map
/// slot, the boxes' headers and the entry's fields.
const ENTRY_OVERHEAD: usize = 96;

/// Default byte budget (`StubConfig::answer_cache_bytes`).
pub const DEFAULT_BYTES: usize = 4 << 20;

/// A bounded, sharded cache of rendered responses. See the [module
/// docs](self).
#[derive(Debug)]
pub struct AnswerCache {
    shards: Box<[RwLock<Shard>]>,
    /// Picks the shard; independent of the maps' own hashers.
    pick: RandomState,
    shard_budget: usize,
    metrics: Arc<AnswerCacheMetrics>,
}

#[derive(Debug, Default)]
struct Shard {
    map: HashMap<Box<[u8]>, Entry>,
    bytes: usize,
}

#[derive(Debug)]
struct Entry {
    response: Box<[u8]>,
    /// Offsets of the TTL fields in `response`.
    ttls: Box<[u16]>,
    /// Where the OPT record is in `response` (start, end).
    opt: Option<(u16, u16)>,
    stored: Instant,
    /// Whole seconds after `stored` during which the entry is served.
    life: u64,
    /// The resolver's answer generation when the answer was computed.
    generation: u64,
}

impl Entry {
    fn cost(&self, key: &[u8]) -> usize {
        self.response.len() + 2 * self.ttls.len() + key.len() + ENTRY_OVERHEAD
    }

    fn live(&self, now: Instant, generation: u64) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.stored).as_secs();
        (elapsed < self.life && self.generation == generation).then_some(elapsed)
    }
}

impl AnswerCache {
    /// An empty cache holding at most `max_bytes` bytes of entries (0
    /// disables it).
    pub fn new(max_bytes: usize) -> Self {
        Self::with_metrics(max_bytes, Arc::default())
    }

    /// An empty cache like [`AnswerCache::new`], counting into `metrics`
    /// (registered by whoever owns them: the stub's [`StubMetrics`](crate::StubMetrics)).
    pub fn with_metrics(max_bytes: usize, metrics: Arc<AnswerCacheMetrics>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            pick: RandomState::new(),
            shard_budget: max_bytes / SHARDS,
            metrics,
        }
    }

    /// False when the budget is 0: every lookup misses, nothing is stored.
    pub fn enabled(&self) -> bool {
        self.shard_budget > 0
    }

    /// The cache's counters.
    pub fn metrics(&self) -> &Arc<AnswerCacheMetrics> {
        &self.metrics
    }

    fn shard(&self, key: &[u8]) -> &RwLock<Shard> {
        let hash = self.pick.hash_one(key);
        &self.shards[(hash >> 32) as usize & (SHARDS - 1)]
    }

    fn read(shard: &RwLock<Shard>) -> RwLockReadGuard<'_, Shard> {
        // Every update leaves a shard consistent before anything can panic.
        shard
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(shard: &RwLock<Shard>) -> RwLockWriteGuard<'_, Shard> {
        shard
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers `query` (whose key is `key`) from the cache: on a hit, `out`
    /// holds the response with the query's ID and question case and the
    /// TTLs counted down to `now`, and the result is true. A response
    /// longer than `max_len` (the client's UDP limit) is not served: the
    /// caller's uncached path truncates it (see [`AnswerCache::lookup`],
    /// which builds the TC reply itself). `generation` is the resolver's
    /// current [answer generation](kadns_resolver::Resolver::answer_generation).
    /// Allocates nothing once `out` has the capacity.
    pub fn get(
        &self,
        query: &[u8],
        key: &QueryKey,
        generation: u64,
        max_len: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> bool {
        self.find(query, key, generation, max_len, now, out, false) == Lookup::Hit
    }

    /// Like [`AnswerCache::get`], but a cached response longer than
    /// `max_len` gives [`Lookup::Truncated`]: `out` holds the TC reply to
    /// `query` (the cached header with TC set and no records, the query's
    /// question, the cached OPT record). So one entry serves a 512-byte
    /// client (TC) and a 4096-byte client (whole) alike.
    ///
    /// ```
    /// use std::time::Instant;
    /// use kadns::answer_cache::{AnswerCache, Lookup, QueryKey};
    ///
    /// // "a.kad." IN A, and a response with 40 A records: 663 bytes.
    /// let query = [0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
    ///              1, b'a', 3, b'k', b'a', b'd', 0, 0, 1, 0, 1];
    /// let mut response = query.to_vec();
    /// response[2] |= 0x80;
    /// response[7] = 40; // ANCOUNT
    /// for i in 0..40 {
    ///     response.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 0, i]);
    /// }
    /// let cache = AnswerCache::new(1 << 20);
    /// let key = QueryKey::parse(&query).unwrap();
    /// let now = Instant::now();
    /// cache.put(&query, &key, &response, 0, now);
    /// let mut out = Vec::new();
    /// assert_eq!(cache.lookup(&query, &key, 0, 512, now, &mut out), Lookup::Truncated);
    /// assert_eq!(out.len(), query.len());
    /// assert_eq!(out[2] & 0x02, 0x02); // TC
    /// assert_eq!(cache.lookup(&query, &key, 0, 65_535, now, &mut out), Lookup::Hit);
    /// assert_eq!(out.len(), response.len());
    /// ```
    pub fn lookup(
        &self,
        query: &[u8],
        key: &QueryKey,
        generation: u64,
        max_len: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Lookup {
        self.find(query, key, generation, max_len, now, out, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn find(
        &self,
        query: &[u8],
        key: &QueryKey,
        generation: u64,
        max_len: usize,
        now: Instant,
        out: &mut Vec<u8>,
        truncate: bool,
    ) -> Lookup {
        let shard = Self::read(self.shard(key.as_bytes()));
        let hit = shard
            .map
            .get(key.as_bytes())
            .and_then(|entry| Some((entry, entry.live(now, generation)?)));
        let Some((entry, elapsed)) = hit else {
            drop(shard);
            self.metrics.misses.inc();
            return Lookup::Miss;
        };
        let qname_end = key.qname_end();
        out.clear();
        if entry.response.len() > max_len {
            if truncate && tc_reply(entry, query, qname_end, out) && out.len() <= max_len {
                drop(shard);
                self.metrics.hits.inc();
                return Lookup::Truncated;
            }
            drop(shard);
            out.clear();
            self.metrics.misses.inc();
            return Lookup::Miss;
        }
        out.extend_from_slice(&entry.response);
        out[..2].copy_from_slice(&query[..2]);
        out[12..qname_end].copy_from_slice(&query[12..qname_end]);
        // Only whole seconds elapsed, below the smallest TTL: none reaches 0.
        if elapsed > 0 {
            let elapsed = u32::try_from(elapsed).unwrap_or(u32::MAX);
            for &at in entry.ttls.iter() {
                let at = usize::from(at);
                if let Some(field) = out.get_mut(at..at + 4) {
                    let ttl = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                    field.copy_from_slice(&ttl.saturating_sub(elapsed).max(1).to_be_bytes());
                }
            }
        }
        drop(shard);
        self.metrics.hits.inc();
        Lookup::Hit
    }

    /// Stores `response`, the stub's answer to `query` (whose key is `key`),
    /// computed when the resolver's answer generation was `generation`
    /// (read *before* resolving). Responses that may not be cached (see
    /// the module docs: SERVFAIL, TC, stale, no TTL …) are ignored.
    pub fn put(
        &self,
        query: &[u8],
        key: &QueryKey,
        response: &[u8],
        generation: u64,
        now: Instant,
    ) {
        let Some(layout) = wire::layout(response, query, key.qname_end()) else {
            return;
        };
        // Nine tenths of the smallest TTL: see the module docs.
        let min_ttl = u64::from(layout.min_ttl);
        let entry = Entry {
            response: response.into(),
            ttls: layout.ttls.into(),
            opt: layout.opt,
            stored: now,
            life: min_ttl - min_ttl / 10,
            generation,
        };
        let cost = entry.cost(key.as_bytes());
        if cost > self.shard_budget / 4 {
            return;
        }
        let mut shard = Self::write(self.shard(key.as_bytes()));
        let shard = &mut *shard;
        let bytes_before = shard.bytes;
        let mut replaced = 0;
        if let Some(old) = shard.map.remove(key.as_bytes()) {
            shard.bytes -= old.cost(key.as_bytes());
            replaced = 1;
        }
        let mut evicted = 0;
        if shard.bytes + cost > self.shard_budget {
            let before = shard.map.len();
            shard.map.retain(|key, entry| {
                let keep = entry.live(now, generation).is_some();
                if !keep {
                    shard.bytes -= entry.cost(key);
                }
                keep
            });
            evicted += before - shard.map.len();
        }
        while shard.bytes + cost > self.shard_budget {
            let Some(victim) = shard.map.keys().next().cloned() else {
                break;
            };
            if let Some(old) = shard.map.remove(&victim) {
                shard.bytes -= old.cost(&victim);
                evicted += 1;
            }
        }
        shard.bytes += cost;
        shard.map.insert(key.as_bytes().into(), entry);
        self.metrics.stored.inc();
        self.metrics.entries.inc();
        self.metrics.evicted.inc_by(evicted as u64);
        self.metrics.entries.dec_by((evicted + replaced) as i64);
        // The gauge moves by this shard's change (no other lock is taken here).
        self.metrics.bytes.inc_by(shard.bytes as i64);
        self.metrics.bytes.dec_by(bytes_before as i64);
    }

    /// Drops every entry (`kadns cache flush`).
    pub fn clear(&self) {
        for shard in self.shards.iter() {
            let mut shard = Self::write(shard);
            shard.map.clear();
            shard.bytes = 0;
        }
        self.metrics.entries.set(0);
        self.metrics.bytes.set(0);
    }

    /// Bytes held, by the same count as the budget.
    pub fn bytes(&self) -> usize {
        self.shards.iter().map(|s| Self::read(s).bytes).sum()
    }

    /// Entries held, live or not yet swept.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| Self::read(s).map.len()).sum()
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Writes into `out` the TC reply to `query` from `entry`: its header with
/// the query's ID, TC set and no records but the OPT record; the query's
/// question; the entry's OPT record. False if the entry is malformed.
fn tc_reply(entry: &Entry, query: &[u8], qname_end: usize, out: &mut Vec<u8>) -> bool {
    let (Some(header), Some(question)) = (entry.response.get(..12), query.get(12..qname_end + 4))
    else {
        return false;
    };
    let opt = match entry.opt {
        Some((start, end)) => match entry.response.get(usize::from(start)..usize::from(end)) {
            Some(opt) => opt,
            None => return false,
        },
        None => &[],
    };
    out.extend_from_slice(&query[..2]);
    out.extend_from_slice(&header[2..4]);
    out[2] |= 0x02;
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(!opt.is_empty())]);
    out.extend_from_slice(question);
    out.extend_from_slice(opt);
    true
}

#[cfg(test)]
mod tests;
