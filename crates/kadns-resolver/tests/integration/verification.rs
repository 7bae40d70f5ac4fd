//! Nothing from the source is answered unless it verifies: forged, misplaced,
//! expired and rolled-back bundles are refused.

use kadns_resolver::hickory_proto::op::ResponseCode;
use kadns_resolver::hickory_proto::rr::RecordType;
use kadns_resolver::kadns_record::DhtKey;
use kadns_resolver::{Config, LookupError, MemorySource, Outcome, Resolver, SledSequences};
use tracing_test::traced_test;

use crate::support::*;

fn refused(outcome: &Outcome) -> Option<&LookupError> {
    match outcome {
        Outcome::Failed { error } => Some(error),
        _ => None,
    }
}

#[tokio::test]
#[traced_test]
async fn forged_misplaced_and_expired_bundles_are_refused() -> TestResult {
    let key = zone(4);
    let other = zone(5);
    let source = MemorySource::new();
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let www = DhtKey::derive(&key.zone_id(), &owner("www"));

    // One flipped bit in the signature.
    let mut forged = signed(&key, "www", 1, vec![(300, a(1))]).into_bytes();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    source.put_bytes(www, forged);
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(refused(&answer.outcome), Some(LookupError::Invalid { .. })),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(answer.answers.is_empty());
    assert_eq!(resolver.metrics().refusal("bad_signature"), 1);

    // A valid bundle of another zone, served under this zone's key.
    source.put_bytes(
        www,
        signed(&other, "www", 1, vec![(300, a(6))]).into_bytes(),
    );
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert!(matches!(
        refused(&answer.outcome),
        Some(LookupError::Invalid { .. })
    ));
    // This zone's bundle of another name.
    source.put_bytes(www, signed(&key, "mail", 1, vec![(300, a(7))]).into_bytes());
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert!(matches!(
        refused(&answer.outcome),
        Some(LookupError::Invalid { .. })
    ));
    assert_eq!(resolver.metrics().refusal("wrong_key"), 2);

    // Expired.
    source.put(&signed_until(&key, "www", 1, now() - 10, vec![(300, a(1))]));
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(refused(&answer.outcome), Some(LookupError::Invalid { .. })),
        "{:?}",
        answer.outcome
    );
    assert_eq!(resolver.metrics().refusal("expired"), 1);

    // Garbage.
    source.put_bytes(www, vec![1, 2, 3]);
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert!(matches!(
        refused(&answer.outcome),
        Some(LookupError::Invalid { .. })
    ));
    assert_eq!(resolver.metrics().refusal("malformed"), 1);
    assert_eq!(resolver.metrics().outcome("servfail"), 5);
    Ok(())
}

fn no_cache(key: &kadns_resolver::kadns_record::ZoneKey) -> Config {
    let mut config = config(&[("example.kad", key)]);
    config.cache.max_entries = 0;
    config
}

#[tokio::test]
#[traced_test]
async fn rollback_is_refused_also_after_reopening_the_store() -> TestResult {
    let key = zone(4);
    let dir = tempfile::tempdir()?;
    let source = MemorySource::new();
    let www = name("www.example.kad.");
    {
        let resolver = Resolver::builder(no_cache(&key), source.clone())
            .sequences(SledSequences::open(dir.path())?)
            .build()?;
        source.put(&signed(&key, "www", 5, vec![(300, a(5))]));
        let answer = resolver.lookup(&www, RecordType::A).await;
        assert_eq!(answer.answers[0].data, a(5));
        source.put(&signed(&key, "www", 3, vec![(300, a(3))]));
        let answer = resolver.lookup(&www, RecordType::A).await;
        let Some(LookupError::Rollback {
            sequence, highest, ..
        }) = refused(&answer.outcome)
        else {
            panic!("rollback expected, got {:?}", answer.outcome);
        };
        assert_eq!((*sequence, *highest), (3, 5));
        assert_eq!(resolver.metrics().refusal("rollback"), 1);
        // The same sequence again is fine (a re-fetch, not a rollback).
        source.put(&signed(&key, "www", 5, vec![(300, a(5))]));
        assert!(matches!(
            resolver.lookup(&www, RecordType::A).await.outcome,
            Outcome::Records
        ));
    }
    // A new process: the store on disk still knows sequence 5.
    let resolver = Resolver::builder(no_cache(&key), source.clone())
        .sequences(SledSequences::open(dir.path())?)
        .build()?;
    source.put(&signed(&key, "www", 4, vec![(300, a(4))]));
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert!(
        matches!(
            refused(&answer.outcome),
            Some(LookupError::Rollback { highest: 5, .. })
        ),
        "{:?}",
        answer.outcome
    );
    // An empty bundle (NXDOMAIN) with an old sequence is a rollback too.
    source.put(&signed(&key, "www", 2, vec![]));
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert!(matches!(
        refused(&answer.outcome),
        Some(LookupError::Rollback { .. })
    ));
    source.put(&signed(&key, "www", 6, vec![(300, a(6))]));
    let answer = resolver.lookup(&www, RecordType::A).await;
    assert_eq!(answer.answers[0].data, a(6));
    Ok(())
}
