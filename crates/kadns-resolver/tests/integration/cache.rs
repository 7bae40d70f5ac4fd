//! The cache on paused time: TTLs count down, entries expire, negative
//! answers are cached for a bounded time, the cache is bounded, equal
//! lookups coalesce, and DHT lookups are bounded in time.

use std::time::Duration;

use futures::future::join_all;
use kadns_resolver::hickory_proto::rr::RecordType;
use kadns_resolver::{LookupError, MemorySource, Outcome, SourceError};
use tokio::time::{Instant, advance};
use tracing_test::traced_test;

use crate::support::*;

#[tokio::test(start_paused = true)]
#[traced_test]
async fn ttls_count_down_and_entries_expire() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(300, a(1)), (900, a(2))]));
    let mut config = config(&[("example.kad", &key)]);
    // Expiry itself is under test here (prefetch would refresh the entry).
    config.cache.prefetch = false;
    let resolver = resolver(config, &source);
    let www = name("www.example.kad.");

    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(
        answer.answers.iter().map(|r| r.ttl).collect::<Vec<_>>(),
        [300, 300],
        "no TTL above the entry's life"
    );
    advance(Duration::from_secs(100)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(answer.answers[0].ttl, 200);
    assert_eq!(source.calls(), 1);
    assert_eq!(resolver.metrics().cache_hits.get(), 1);
    advance(Duration::from_secs(199)).await;
    assert_eq!(resolver.lookup(&www, RecordType::A).await.answers[0].ttl, 1);
    assert_eq!(source.calls(), 1);
    advance(Duration::from_secs(1)).await;
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(source.calls(), 2, "expired after the smallest TTL");
    assert_eq!(answer.answers[0].ttl, 300);
    assert_eq!(resolver.metrics().cache_misses.get(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn the_signed_expiry_caps_the_cache_life() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    source.put(&signed_until(&key, "www", 1, now() + 50, vec![(300, a(1))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = name("www.example.kad.");
    let ttl = resolver.lookup(&www, RecordType::A).await.answers[0].ttl;
    assert!(
        (49..=50).contains(&ttl),
        "TTL {ttl} capped by the bundle's expiry"
    );
    advance(Duration::from_secs(50)).await;
    resolver.lookup(&www, RecordType::A).await;
    assert_eq!(source.calls(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn negative_answers_are_cached_for_the_negative_ttl() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(3600, a(1))]));
    let mut config = config(&[("example.kad", &key)]);
    config.cache.negative_ttl_secs = 30;
    let resolver = resolver(config, &source);
    let new = name("new.example.kad.");
    let www = name("www.example.kad.");

    // NXDOMAIN: the name, then the apex for the SOA.
    assert!(matches!(
        resolver.lookup(&new, RecordType::A).await.outcome,
        Outcome::NxDomain
    ));
    assert_eq!(source.calls(), 2);
    source.put(&signed(&key, "new", 1, vec![(300, a(9))]));
    advance(Duration::from_secs(10)).await;
    let answer = resolver.lookup(&new, RecordType::A).await;
    assert!(matches!(answer.outcome, Outcome::NxDomain), "still cached");
    assert_eq!(
        answer.authorities[0].ttl, 20,
        "the SOA TTL counts down with the entry"
    );
    assert_eq!(source.calls(), 2);
    advance(Duration::from_secs(20)).await;
    assert!(matches!(
        resolver.lookup(&new, RecordType::A).await.outcome,
        Outcome::Records
    ));
    assert_eq!(source.calls(), 3);

    // NODATA comes from the bundle cached for an hour, with no refetch while
    // it lives; its TTL is the negative TTL, capped by the bundle's life.
    let answer = resolver.lookup(&www, RecordType::AAAA).await;
    assert!(matches!(answer.outcome, Outcome::NoData));
    let calls = source.calls();
    advance(Duration::from_secs(600)).await;
    let answer = resolver.lookup(&www, RecordType::AAAA).await;
    assert!(matches!(answer.outcome, Outcome::NoData));
    assert_eq!(answer.authorities[0].ttl, 30, "the negative TTL");
    assert_eq!(
        source.calls(),
        calls + 1,
        "NODATA from a live bundle: only the apex (whose own negative entry expired) \
         is asked again, for the SOA; www is not refetched"
    );
    assert_eq!(resolver.metrics().dht_lookups.get(), calls + 1);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn the_cache_is_bounded_in_entries() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    for (i, rel) in ["a", "b", "c"].into_iter().enumerate() {
        source.put(&signed(&key, rel, 1, vec![(300 + i as u32, a(1))]));
    }
    let mut config = config(&[("example.kad", &key)]);
    config.cache.max_entries = 2;
    let resolver = resolver(config, &source);
    for rel in ["a", "b", "c"] {
        resolver
            .lookup(&name(&format!("{rel}.example.kad.")), RecordType::A)
            .await;
    }
    assert_eq!(source.calls(), 3);
    resolver
        .lookup(&name("c.example.kad."), RecordType::A)
        .await;
    resolver
        .lookup(&name("b.example.kad."), RecordType::A)
        .await;
    assert_eq!(source.calls(), 3, "b and c are held");
    resolver
        .lookup(&name("a.example.kad."), RecordType::A)
        .await;
    assert_eq!(source.calls(), 4, "a, closest to expiry, was evicted");
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn concurrent_lookups_coalesce_into_one_source_call() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(300, a(1))]));
    source.set_delay(Duration::from_millis(500));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = name("www.example.kad.");
    let lookups = (0..50).map(|_| resolver.lookup(&www, RecordType::A));
    let answers = join_all(lookups).await;
    assert!(
        answers
            .iter()
            .all(|a| matches!(a.outcome, Outcome::Records))
    );
    assert_eq!(source.calls(), 1);
    assert_eq!(resolver.metrics().dht_lookups.get(), 1);
    assert_eq!(resolver.metrics().cache_misses.get(), 50);

    // Also across tasks, and for different types of one name.
    let other = name("other.example.kad.");
    let mut tasks = tokio::task::JoinSet::new();
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::TXT,
        RecordType::A,
    ] {
        let (resolver, other) = (resolver.clone(), other.clone());
        tasks.spawn(async move { resolver.lookup(&other, t).await });
    }
    while let Some(answer) = tasks.join_next().await {
        assert!(matches!(answer?.outcome, Outcome::NxDomain));
    }
    assert_eq!(source.calls(), 3, "one for the name, one for the apex SOA");
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn a_cancelled_lookup_does_not_linger() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(300, a(1))]));
    source.set_delay(Duration::from_secs(1));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = name("www.example.kad.");
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        resolver.lookup(&www, RecordType::A),
    )
    .await;
    assert!(cancelled.is_err());
    // A new lookup starts afresh instead of waiting on an orphan.
    assert!(matches!(
        resolver.lookup(&www, RecordType::A).await.outcome,
        Outcome::Records
    ));
    assert_eq!(source.calls(), 2);
    Ok(())
}

#[tokio::test(start_paused = true)]
#[traced_test]
async fn dht_lookups_are_bounded_and_failures_are_not_cached() -> TestResult {
    let key = zone(6);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(300, a(1))]));
    source.set_delay(Duration::from_secs(60));
    let mut config = config(&[("example.kad", &key)]);
    config.dht.timeout_ms = 2_000;
    let resolver = resolver(config, &source);
    let www = name("www.example.kad.");

    let start = Instant::now();
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert!(
        matches!(
            &answer.outcome,
            Outcome::DhtUnavailable {
                error: LookupError::Timeout { .. }
            }
        ),
        "{:?}",
        answer.outcome
    );
    assert_eq!(
        answer.response_code(),
        kadns_resolver::hickory_proto::op::ResponseCode::ServFail
    );

    source.set_delay(Duration::ZERO);
    source.set_failure(Some(SourceError::NoPeers));
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert!(matches!(
        &answer.outcome,
        Outcome::DhtUnavailable {
            error: LookupError::Source {
                source: SourceError::NoPeers,
                ..
            }
        }
    ));
    source.set_failure(None);
    assert!(matches!(
        resolver.lookup(&www, RecordType::A).await.outcome,
        Outcome::Records
    ));
    assert_eq!(resolver.metrics().outcome("servfail"), 2);
    assert_eq!(resolver.metrics().outcome("noerror"), 1);
    Ok(())
}
