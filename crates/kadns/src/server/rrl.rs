//! Response-rate limiting over UDP, after BIND's RRL: a token bucket per
//! client prefix (/24 for IPv4, /56 for IPv6) and response class (see
//! [`ResponseClass`]): `responses_per_second` tokens a second, at most one
//! second's worth saved up. A reply without a token is dropped, or, every
//! `slip`th time, sent as a bare TC reply so that a real client retries over
//! TCP (where no spoofed source can be).
//!
//! The table is bounded: buckets that have filled up again are the same as
//! no bucket and are the first thrown away; when every bucket is in use a
//! reply from a new key slips (TC) rather than growing the table.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use crate::client_policy::{RateLimit, canonical};

use super::wire::{self, ResponseClass};

/// Shards of the table (fewer workers wait on one lock).
const SHARDS: usize = 16;

/// Buckets per shard: 16 × 8,192 = 131,072 keys, a few MiB.
const MAX_PER_SHARD: usize = 8_192;

/// What to do with one UDP reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send it.
    Send,
    /// Send nothing.
    Drop,
    /// Send it as a bare TC reply (header and question).
    Slip,
}

/// One bucket's key: prefix and class, the class's name hashed (keyed
/// randomly per process, so no one can aim collisions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    prefix: u128,
    class: u8,
    name: u64,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    limited: u32,
}

/// The rate limiter shared by every UDP worker of a stub.
///
/// ```
/// use std::time::Instant;
/// use kadns::RateLimit;
/// use kadns::server::rrl::{Rrl, Verdict};
///
/// let rrl = Rrl::new();
/// let limit = RateLimit { responses_per_second: 2, slip: 2, loopback: true };
/// let client = "192.0.2.1".parse().unwrap();
/// let servfail = [0u8, 1, 0x81, 0x82, 0, 0, 0, 0, 0, 0, 0, 0];
/// let now = Instant::now();
/// let verdicts: Vec<Verdict> = (0..5).map(|_| rrl.check(&limit, client, &servfail, now)).collect();
/// assert_eq!(verdicts, [Verdict::Send, Verdict::Send, Verdict::Drop, Verdict::Slip, Verdict::Drop]);
/// ```
#[derive(Debug)]
pub struct Rrl {
    shards: Vec<Mutex<HashMap<Key, Bucket>>>,
    hasher: RandomState,
}

impl Default for Rrl {
    fn default() -> Self {
        Self::new()
    }
}

/// The client's prefix as a number: /24 of IPv4 (tagged apart from IPv6), /56 of IPv6.
fn prefix(client: IpAddr) -> u128 {
    match canonical(client) {
        IpAddr::V4(v4) => (1u128 << 64) | u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => u128::from(v6) & !((1u128 << 72) - 1),
    }
}

impl Rrl {
    /// An empty table.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    /// Whether the encoded `response` to `client` may be sent under `limit` at `now`.
    pub fn check(
        &self,
        limit: &RateLimit,
        client: IpAddr,
        response: &[u8],
        now: Instant,
    ) -> Verdict {
        let (class, name) = match wire::response_class(response) {
            ResponseClass::Answer { name_and_type } => (0, self.hash(&name_and_type)),
            ResponseClass::NxDomain { zone } => (1, self.hash(&zone)),
            ResponseClass::NoData { zone } => (2, self.hash(&zone)),
            ResponseClass::Error => (3, 0),
        };
        let key = Key {
            prefix: prefix(client),
            class,
            name,
        };
        let rate = f64::from(limit.responses_per_second.max(1));
        let shard = usize::try_from(self.hash(&key) % SHARDS as u64).unwrap_or(0);
        let mut table = self.shards[shard]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !table.contains_key(&key) && table.len() >= MAX_PER_SHARD {
            // Buckets full again say nothing a new bucket would not.
            table.retain(|_, b| refilled(b, now, rate) < rate);
            if table.len() >= MAX_PER_SHARD {
                return Verdict::Slip;
            }
        }
        let bucket = table.entry(key).or_insert(Bucket {
            tokens: rate,
            updated: now,
            limited: 0,
        });
        bucket.tokens = refilled(bucket, now, rate);
        bucket.updated = now.max(bucket.updated);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Send;
        }
        bucket.limited = bucket.limited.wrapping_add(1);
        if limit.slip > 0 && bucket.limited.is_multiple_of(limit.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    fn hash(&self, value: &impl Hash) -> u64 {
        self.hasher.hash_one(value)
    }
}

/// The bucket's tokens at `now`: refilled at `rate` a second, at most `rate`.
fn refilled(bucket: &Bucket, now: Instant, rate: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
    (bucket.tokens + elapsed * rate).min(rate)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn answer(name: &str) -> Vec<u8> {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        let name = Name::from_ascii(name).unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
        m.to_vec().unwrap()
    }

    const LIMIT: RateLimit = RateLimit {
        responses_per_second: 10,
        slip: 3,
        loopback: true,
    };

    #[test]
    fn a_burst_gets_the_rate_then_drops_with_every_slipth_slipped() {
        let rrl = Rrl::new();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        let now = Instant::now();
        let www = answer("www.example.");
        let verdicts: Vec<_> = (0..40)
            .map(|_| rrl.check(&LIMIT, client, &www, now))
            .collect();
        let count = |v| verdicts.iter().filter(|&&x| x == v).count();
        assert_eq!(count(Verdict::Send), 10);
        assert_eq!(count(Verdict::Slip), 10);
        assert_eq!(count(Verdict::Drop), 20);
        // Half a second later: half the rate again.
        let later = now + Duration::from_millis(500);
        let sent = (0..40)
            .filter(|_| rrl.check(&LIMIT, client, &www, later) == Verdict::Send)
            .count();
        assert_eq!(sent, 5);
    }

    #[test]
    fn other_prefixes_and_other_names_have_their_own_buckets() {
        let rrl = Rrl::new();
        let now = Instant::now();
        let www = answer("www.example.");
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..50 {
            rrl.check(&LIMIT, a, &www, now);
        }
        // Same /24: limited.
        let same = "192.0.2.200".parse().unwrap();
        assert_ne!(rrl.check(&LIMIT, same, &www, now), Verdict::Send);
        // Another /24, another name: not limited.
        let other = "192.0.3.1".parse().unwrap();
        assert_eq!(rrl.check(&LIMIT, other, &www, now), Verdict::Send);
        assert_eq!(
            rrl.check(&LIMIT, a, &answer("ftp.example."), now),
            Verdict::Send
        );
        // Case does not make a new name.
        assert_ne!(
            rrl.check(&LIMIT, a, &answer("WWW.example."), now),
            Verdict::Send
        );
    }

    #[test]
    fn ipv6_clients_share_a_56() {
        let rrl = Rrl::new();
        let now = Instant::now();
        let www = answer("www.example.");
        for _ in 0..50 {
            rrl.check(&LIMIT, "2001:db8:0:1::1".parse().unwrap(), &www, now);
        }
        let same_56 = "2001:db8:0:ff::1".parse().unwrap();
        assert_ne!(rrl.check(&LIMIT, same_56, &www, now), Verdict::Send);
        let other_56 = "2001:db8:0:100::1".parse().unwrap();
        assert_eq!(rrl.check(&LIMIT, other_56, &www, now), Verdict::Send);
    }

    #[test]
    fn the_table_stays_bounded() {
        let rrl = Rrl::new();
        let now = Instant::now();
        let client: IpAddr = "192.0.2.1".parse().unwrap();
        for i in 0..(SHARDS * MAX_PER_SHARD + 1_000) {
            let name = format!("n{i}.example.");
            rrl.check(&LIMIT, client, &answer(&name), now);
        }
        let total: usize = rrl.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= SHARDS * MAX_PER_SHARD, "{total}");
    }
}
