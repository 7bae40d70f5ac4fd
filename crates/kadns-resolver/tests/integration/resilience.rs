//! Issue 8's resolver side: absent vs unreachable, serve-stale, the
//! persisted cache, prefetch and the per-query deadline, on paused time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kadns_resolver::hickory_proto::op::ResponseCode;
use kadns_resolver::hickory_proto::rr::rdata::CNAME;
use kadns_resolver::hickory_proto::rr::{RData, RecordType};
use kadns_resolver::kadns_record::{DhtKey, ZoneKey};
use kadns_resolver::{
    Answer, Config, ExtendedError, LookupError, MemoryBundles, MemorySequences, MemorySource,
    Outcome, Resolver, SequenceStore, SourceAnswer, SourceError,
};
use tokio::time::{Instant, advance};
use tracing_test::traced_test;

use crate::support::*;

fn ede(answer: &Answer) -> Option<u16> {
    answer.extended_error().map(|e| e.code)
}

fn key_of(key: &ZoneKey, rel: &str) -> DhtKey {
    DhtKey::derive(&key.zone_id(), &owner(rel))
}

fn with_store(
    config: Config,
    source: &MemorySource,
    store: &MemoryBundles,
) -> Resolver<MemorySource> {
    Resolver::builder(config, source.clone())
        .persisted_cache(store.clone())
        .build()
        .expect("test configs are valid")
}

fn not_reached(invalid: &[(&str, usize)]) -> SourceAnswer {
    let invalid: BTreeMap<String, usize> =
        invalid.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect();
    SourceAnswer::NotReached {
        reached: 1,
        required: 3,
        invalid,
    }
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn nxdomain_only_when_proven_absent() -> TestResult {
    let key = zone(21);
    let source = MemorySource::new();
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let gone = name("gone.example.kad.");

    // Too few of the closest peers answered: SERVFAIL with EDE 22, not cached.
    source.set_missing(not_reached(&[]));
    let answer = resolver.lookup(&gone, RecordType::A).await;
    assert!(
        matches!(
            &answer.outcome,
            Outcome::DhtUnavailable {
                error: LookupError::Unreached {
                    reached: 1,
                    required: 3,
                    ..
                }
            }
        ),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert_eq!(ede(&answer), Some(ExtendedError::NO_REACHABLE_AUTHORITY));
    let calls = source.calls();

    // Only invalid answers: SERVFAIL with the reasons counted.
    source.set_missing(not_reached(&[("bad_signature", 2), ("wrong_key", 1)]));
    let answer = resolver.lookup(&gone, RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    let error = answer.extended_error().unwrap();
    assert_eq!(error.code, ExtendedError::BOGUS);
    assert!(error.text.contains("bad_signature ×2"), "{}", error.text);
    assert!(error.text.contains("wrong_key ×1"), "{}", error.text);
    assert!(source.calls() > calls, "the failure was not cached");
    source.set_missing(not_reached(&[("expired", 3)]));
    let answer = resolver.lookup(&gone, RecordType::A).await;
    assert_eq!(ede(&answer), Some(ExtendedError::SIGNATURE_EXPIRED));

    // Proven absent: NXDOMAIN, no EDE.
    source.set_missing(SourceAnswer::Absent);
    let answer = resolver.lookup(&gone, RecordType::A).await;
    assert!(matches!(answer.outcome, Outcome::NxDomain));
    assert_eq!(ede(&answer), None);
    assert_eq!(resolver.metrics().outcome("nxdomain"), 1);
    assert_eq!(resolver.metrics().outcome("servfail"), 3);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn stale_until_the_signed_expiry_then_servfail() -> TestResult {
    let key = zone(22);
    let source = MemorySource::new();
    // TTL 60, signature valid for 200 s.
    source.put(&signed_until(&key, "www", 1, now() + 200, vec![(60, a(1))]));
    source.put(&signed_until(&key, "gone", 1, now() + 200, vec![]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = name("www.example.kad.");
    let gone = name("gone.example.kad.");
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert!(matches!(answer.outcome, Outcome::Records));
    assert!(answer.stale.is_none());
    assert!(matches!(
        resolver.lookup(&gone, RecordType::A).await.outcome,
        Outcome::NxDomain
    ));

    source.set_failure(Some(SourceError::NoPeers));
    advance(Duration::from_secs(61)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert!(
        matches!(answer.outcome, Outcome::Records),
        "{:?}",
        answer.outcome
    );
    assert!(answer.stale.is_some());
    assert_eq!(ede(&answer), Some(ExtendedError::STALE_ANSWER));
    assert_eq!(answer.answers[0].ttl, 30, "a stale answer's TTL");
    assert_eq!(answer.answers[0].data, a(1));
    // A stale tombstone is a stale NXDOMAIN.
    let answer = resolver.lookup(&gone, RecordType::A).await;
    assert!(matches!(answer.outcome, Outcome::NxDomain));
    assert_eq!(ede(&answer), Some(ExtendedError::STALE_NXDOMAIN_ANSWER));

    // Within 30 s the stale entry answers without asking the DHT again.
    let calls = source.calls();
    advance(Duration::from_secs(10)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(ede(&answer), Some(ExtendedError::STALE_ANSWER));
    assert_eq!(answer.answers[0].ttl, 20);
    assert_eq!(source.calls(), calls);

    // Past the signature's expiry: SERVFAIL with the reason, never the old data.
    advance(Duration::from_secs(130)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(
        answer.response_code(),
        ResponseCode::ServFail,
        "{:?}",
        answer.outcome
    );
    assert!(answer.answers.is_empty());
    assert_eq!(ede(&answer), Some(ExtendedError::NO_REACHABLE_AUTHORITY));
    assert!(resolver.metrics().stale_answers.get() >= 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn a_stale_entry_is_refreshed_in_the_background() -> TestResult {
    let key = zone(23);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(60, a(1))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = name("www.example.kad.");
    resolver.lookup(&www, RecordType::A).await;
    source.set_failure(Some(SourceError::NoPeers));
    advance(Duration::from_secs(61)).await;
    assert_eq!(
        ede(&resolver.lookup(&www, RecordType::A).await),
        Some(ExtendedError::STALE_ANSWER)
    );
    // The network is back with a new version; a hit late in the stale
    // window refreshes in the background while still answering stale.
    source.set_failure(None);
    source.put(&signed(&key, "www", 2, vec![(60, a(2))]));
    advance(Duration::from_secs(28)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(ede(&answer), Some(ExtendedError::STALE_ANSWER));
    let mut fresh = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let answer = resolver.lookup(&www, RecordType::A).await;
        if answer.stale.is_none() {
            fresh = Some(answer);
            break;
        }
    }
    let fresh = fresh.expect("the background refresh replaced the stale entry");
    assert_eq!(fresh.answers[0].data, a(2));
    assert_eq!(ede(&fresh), None);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn the_persisted_cache_is_revalidated_on_reload() -> TestResult {
    let key = zone(24);
    let source = MemorySource::new();
    for (rel, last) in [("www", 1), ("mail", 2), ("old", 3)] {
        source.put(&signed(&key, rel, 5, vec![(60, a(last))]));
    }
    let store = MemoryBundles::default();
    {
        let first = with_store(config(&[("example.kad", &key)]), &source, &store);
        for rel in ["www", "mail", "old"] {
            let answer = first
                .lookup(&name(&format!("{rel}.example.kad.")), RecordType::A)
                .await;
            assert!(matches!(answer.outcome, Outcome::Records));
        }
    }
    assert_eq!(store.len(), 3, "every verified bundle persisted");

    // The disk is damaged under `mail`; `old` is older than the sequence
    // the resolver has since recorded (a rolled-back disk).
    let mail = key_of(&key, "mail");
    let mut bytes = store.get_raw(&mail).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    store.put_raw(mail, bytes);
    let sequences = Arc::new(MemorySequences::new());
    sequences.record(&key_of(&key, "old"), 9)?;

    // Restarted with the network down.
    source.set_failure(Some(SourceError::NoPeers));
    let second = Resolver::builder(config(&[("example.kad", &key)]), source.clone())
        .persisted_cache(store.clone())
        .sequences(Arc::clone(&sequences))
        .build()?;
    let answer = second
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::Records),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.answers[0].data, a(1));
    assert_eq!(ede(&answer), Some(ExtendedError::STALE_ANSWER));
    assert!(answer.answers[0].ttl <= 30);

    for rel in ["mail", "old"] {
        let answer = second
            .lookup(&name(&format!("{rel}.example.kad.")), RecordType::A)
            .await;
        assert_eq!(answer.response_code(), ResponseCode::ServFail, "{rel}");
        assert!(answer.answers.is_empty(), "{rel} is not served");
        assert!(
            store.get_raw(&key_of(&key, rel)).is_none(),
            "{rel} was deleted"
        );
    }
    assert_eq!(second.metrics().persisted_loads.get(), 1);
    assert_eq!(second.metrics().persisted_dropped.get(), 2);
    assert_eq!(second.metrics().refusal("bad_signature"), 1);
    assert_eq!(second.metrics().refusal("rollback"), 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn prefetch_fires_in_the_last_tenth_of_the_ttl() -> TestResult {
    let key = zone(25);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(100, a(1))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = name("www.example.kad.");
    resolver.lookup(&www, RecordType::A).await;
    assert_eq!(source.calls(), 1);
    advance(Duration::from_secs(85)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(answer.answers[0].ttl, 15);
    tokio::task::yield_now().await;
    assert_eq!(source.calls(), 1, "no prefetch before the last tenth");
    assert_eq!(resolver.metrics().prefetches.get(), 0);

    advance(Duration::from_secs(6)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(answer.answers[0].ttl, 9, "answered from the cache at once");
    assert_eq!(resolver.metrics().prefetches.get(), 1);
    let mut refreshed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if resolver.lookup(&www, RecordType::A).await.answers[0].ttl == 100 {
            refreshed = true;
            break;
        }
    }
    assert!(refreshed, "the prefetch refreshed the entry");
    assert_eq!(source.calls(), 2, "one background lookup");
    // Past the old entry's end, still a cache hit.
    advance(Duration::from_secs(20)).await;
    resolver.lookup(&www, RecordType::A).await;
    assert_eq!(source.calls(), 2);
    assert_eq!(resolver.metrics().prefetches.get(), 1);

    // Prefetch can be turned off.
    let mut config = config(&[("example.kad", &key)]);
    config.cache.prefetch = false;
    let quiet = crate::support::resolver(config, &source);
    quiet.lookup(&www, RecordType::A).await;
    advance(Duration::from_secs(95)).await;
    quiet.lookup(&www, RecordType::A).await;
    assert_eq!(quiet.metrics().prefetches.get(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn one_deadline_covers_a_cname_chain_and_the_soa() -> TestResult {
    let key = zone(26);
    let source = MemorySource::new();
    let target = |rel: &str| vec![(600, RData::CNAME(CNAME(in_zone(&key, rel))))];
    source.put(&signed(&key, "a", 1, target("b")));
    source.put(&signed(&key, "b", 1, target("c")));
    source.put(&signed(&key, "c", 1, vec![(600, a(3))]));
    source.put(&signed(&key, "sub", 1, vec![(600, a(4))]));
    // Each DHT lookup takes 1.5 s: well within the 3 s per-lookup bound,
    // but three of them do not fit the 4 s deadline.
    source.set_delay(Duration::from_millis(1_500));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let start = Instant::now();
    let answer = resolver
        .lookup(&name("a.example.kad."), RecordType::A)
        .await;
    let took = start.elapsed();
    assert!(
        matches!(
            &answer.outcome,
            Outcome::DhtUnavailable {
                error: LookupError::Deadline { .. }
            }
        ),
        "{:?}",
        answer.outcome
    );
    assert!(took <= Duration::from_secs(4), "{took:?}");
    assert!(took >= Duration::from_secs(3), "{took:?}");
    assert_eq!(ede(&answer), Some(ExtendedError::NO_REACHABLE_AUTHORITY));

    // A negative answer late in the deadline gets a synthesized SOA in time
    // instead of waiting for the apex: `x.sub` (1.6 s) is absent, its
    // closest encloser `sub` (1.6 s more) exists with no wildcard child, and
    // the apex would take until 4.8 s.
    source.set_delay(Duration::from_millis(1_600));
    let start = Instant::now();
    let answer = resolver
        .lookup(&name("x.sub.example.kad."), RecordType::A)
        .await;
    let took = start.elapsed();
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    let RData::SOA(soa) = &answer.authorities[0].data else {
        panic!("an SOA")
    };
    assert_eq!(soa.serial, 0, "synthesized");

    // The deadline is configurable.
    let mut config = config(&[("example.kad", &key)]);
    config.query.deadline_ms = 1_000;
    let short = crate::support::resolver(config, &source);
    let start = Instant::now();
    let answer = short.lookup(&name("c.example.kad."), RecordType::A).await;
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(start.elapsed() <= Duration::from_secs(1));
    Ok(())
}
