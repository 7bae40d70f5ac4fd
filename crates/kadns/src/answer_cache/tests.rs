//! The answer cache's behaviour: what a hit sends, when an entry goes.

use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message};
use proptest::prelude::*;

use super::wire::tests::exchange;
use super::*;

fn ttls_of(response: &[u8]) -> Vec<u32> {
    let message = Message::from_vec(response).unwrap();
    message
        .answers
        .iter()
        .chain(&message.authorities)
        .map(|r| r.ttl)
        .collect()
}

fn key(query: &[u8]) -> QueryKey {
    QueryKey::parse(query).unwrap()
}

#[test]
fn a_hit_carries_the_queries_id_and_case_in_question_and_answers() {
    let cache = AnswerCache::new(1 << 20);
    let (query, response) = exchange("www.example.kad.", &[300], None, None);
    let now = Instant::now();
    cache.put(&query, &key(&query), &response, 0, now);

    let (mut other, _) = exchange("WwW.ExAmPlE.kad.", &[300], None, None);
    other[..2].copy_from_slice(&0xbeefu16.to_be_bytes());
    let mut out = Vec::new();
    assert!(cache.get(&other, &key(&other), 0, 512, now, &mut out));
    let message = Message::from_vec(&out).unwrap();
    assert_eq!(message.metadata.id, 0xbeef);
    assert_eq!(message.queries[0].name().to_ascii(), "WwW.ExAmPlE.kad.");
    assert_eq!(message.answers[0].name.to_ascii(), "WwW.ExAmPlE.kad.");
    assert_eq!(cache.metrics().hits.get(), 1);
}

#[test]
fn ttls_count_down_and_the_entry_goes_before_any_reaches_zero() {
    let cache = AnswerCache::new(1 << 20);
    let (query, response) = exchange("www.example.kad.", &[300, 20], Some(100), None);
    let start = Instant::now();
    cache.put(&query, &key(&query), &response, 0, start);
    let mut out = Vec::new();
    let at = |secs: u64| start + Duration::from_millis(secs * 1000 + 500);
    assert!(cache.get(&query, &key(&query), 0, 512, at(0), &mut out));
    assert_eq!(ttls_of(&out), [300, 20, 100]);
    assert!(cache.get(&query, &key(&query), 0, 512, at(7), &mut out));
    assert_eq!(ttls_of(&out), [293, 13, 93]);
    // Nine tenths of the smallest TTL (20 s): served until 18 s, not after.
    assert!(cache.get(&query, &key(&query), 0, 512, at(17), &mut out));
    assert_eq!(ttls_of(&out), [283, 3, 83]);
    assert!(!cache.get(&query, &key(&query), 0, 512, at(18), &mut out));
    assert!(!cache.get(&query, &key(&query), 0, 512, at(4000), &mut out));
}

#[test]
fn do_and_non_do_answers_are_kept_apart() {
    let cache = AnswerCache::new(1 << 20);
    let mut with_do = Edns::new();
    with_do.set_dnssec_ok(true);
    let (q_do, r_do) = exchange("www.example.kad.", &[300], None, Some(with_do));
    let (q_plain, r_plain) = exchange("www.example.kad.", &[60], None, Some(Edns::new()));
    let now = Instant::now();
    cache.put(&q_do, &key(&q_do), &r_do, 0, now);
    let mut out = Vec::new();
    assert!(!cache.get(&q_plain, &key(&q_plain), 0, 4096, now, &mut out));
    cache.put(&q_plain, &key(&q_plain), &r_plain, 0, now);
    assert!(cache.get(&q_do, &key(&q_do), 0, 4096, now, &mut out));
    assert_eq!(out, r_do);
    assert!(cache.get(&q_plain, &key(&q_plain), 0, 4096, now, &mut out));
    assert_eq!(out, r_plain);
}

#[test]
fn an_answer_too_big_for_the_client_is_not_served() {
    let cache = AnswerCache::new(1 << 20);
    let (query, response) = exchange("www.example.kad.", &[300; 40], None, None);
    assert!(response.len() > 512);
    let now = Instant::now();
    cache.put(&query, &key(&query), &response, 0, now);
    let mut out = Vec::new();
    assert!(!cache.get(&query, &key(&query), 0, 512, now, &mut out));
    assert!(cache.get(&query, &key(&query), 0, 65_535, now, &mut out));
    assert_eq!(out.len(), response.len());
}

#[test]
fn a_new_answer_generation_invalidates_older_entries() {
    let cache = AnswerCache::new(1 << 20);
    let (query, response) = exchange("www.example.kad.", &[300], None, None);
    let now = Instant::now();
    cache.put(&query, &key(&query), &response, 4, now);
    let mut out = Vec::new();
    assert!(cache.get(&query, &key(&query), 4, 512, now, &mut out));
    assert!(!cache.get(&query, &key(&query), 5, 512, now, &mut out));
    let (_, newer) = exchange("www.example.kad.", &[300, 300], None, None);
    cache.put(&query, &key(&query), &newer, 5, now);
    assert!(cache.get(&query, &key(&query), 5, 512, now, &mut out));
    assert_eq!(out, newer);
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_byte_budget_holds() {
    let budget = 64 << 10;
    let cache = AnswerCache::new(budget);
    let now = Instant::now();
    for i in 0..5_000 {
        let (query, response) = exchange(&format!("host{i}.example.kad."), &[300], None, None);
        cache.put(&query, &key(&query), &response, 0, now);
        assert!(cache.bytes() <= budget);
    }
    assert!(cache.len() > 100, "{} entries", cache.len());
    assert!(cache.metrics().evicted.get() > 0);
    assert_eq!(cache.metrics().entries.get(), cache.len() as i64);
    assert_eq!(cache.metrics().bytes.get(), cache.bytes() as i64);
    cache.clear();
    assert!(cache.is_empty());
}

#[test]
fn uncacheable_responses_are_not_stored() {
    let cache = AnswerCache::new(1 << 20);
    let (query, mut response) = exchange("www.example.kad.", &[300], None, None);
    response[3] = (response[3] & 0xf0) | 2; // SERVFAIL
    cache.put(&query, &key(&query), &response, 0, Instant::now());
    assert!(cache.is_empty());
}

proptest! {
    #[test]
    fn ttls_never_reach_zero_nor_grow(
        ttls in proptest::collection::vec(1u32..100_000, 1..6),
        probes in proptest::collection::vec(0u64..200_000_000, 1..20),
    ) {
        let cache = AnswerCache::new(1 << 20);
        let (query, response) = exchange("www.example.kad.", &ttls, None, None);
        let start = Instant::now();
        cache.put(&query, &key(&query), &response, 0, start);
        let mut out = Vec::new();
        for millis in probes {
            let now = start + Duration::from_millis(millis);
            if cache.get(&query, &key(&query), 0, 65_535, now, &mut out) {
                let elapsed = (millis / 1000) as u32;
                let got = ttls_of(&out);
                for (got, published) in got.iter().zip(&ttls) {
                    prop_assert!(*got >= 1);
                    prop_assert_eq!(*got, published - elapsed);
                }
            } else {
                let min = u64::from(*ttls.iter().min().unwrap());
                prop_assert!(millis / 1000 >= min - min / 10);
            }
        }
    }
}
