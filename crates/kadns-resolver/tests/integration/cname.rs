//! CNAME chains: followed across kadns zones and out to upstream, returned
//! whole; loops and overlong chains refused.

use kadns_resolver::hickory_proto::op::ResponseCode;
use kadns_resolver::hickory_proto::rr::rdata::CNAME;
use kadns_resolver::hickory_proto::rr::{Name, RData, RecordType};
use kadns_resolver::{LookupError, MemorySource, Outcome};
use tracing_test::traced_test;

use crate::support::*;

fn cname(target: Name) -> Vec<(u32, RData)> {
    vec![(600, RData::CNAME(CNAME(target)))]
}

fn chain_of(answer: &kadns_resolver::Answer) -> Vec<(String, RecordType)> {
    answer
        .answers
        .iter()
        .map(|r| (r.name.to_ascii(), r.record_type()))
        .collect()
}

#[tokio::test]
#[traced_test]
async fn chains_are_followed_across_zones_and_returned_whole() -> TestResult {
    let key = zone(7);
    let other = zone(8);
    let source = MemorySource::new();
    source.put(&signed(&key, "a", 1, cname(in_zone(&key, "b"))));
    source.put(&signed(&key, "b", 1, cname(in_zone(&other, "c"))));
    source.put(&signed(&other, "c", 1, vec![(300, a(3))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);

    let answer = resolver
        .lookup(&name("A.Example.KAD."), RecordType::A)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::Records),
        "{:?}",
        answer.outcome
    );
    assert!(answer.authenticated);
    let c = format!("c.{}.", other.zone_id());
    assert_eq!(
        chain_of(&answer),
        [
            ("A.Example.KAD.".to_string(), RecordType::CNAME),
            ("b.Example.KAD.".to_string(), RecordType::CNAME),
            (c.clone(), RecordType::A),
        ]
    );
    assert_eq!(
        answer.answers[0].data,
        RData::CNAME(CNAME(name("b.example.kad.")))
    );
    assert_eq!(answer.answers[1].data, RData::CNAME(CNAME(name(&c))));

    // Asking for the CNAME itself does not follow it.
    let answer = resolver
        .lookup(&name("a.example.kad."), RecordType::CNAME)
        .await;
    assert_eq!(
        chain_of(&answer),
        [("a.example.kad.".to_string(), RecordType::CNAME)]
    );

    // A chain ending at a missing name is NXDOMAIN with the chain.
    source.put(&signed(&key, "d", 1, cname(in_zone(&key, "missing"))));
    let answer = resolver
        .lookup(&name("d.example.kad."), RecordType::A)
        .await;
    assert!(matches!(answer.outcome, Outcome::NxDomain));
    assert_eq!(
        chain_of(&answer),
        [("d.example.kad.".to_string(), RecordType::CNAME)]
    );
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn loops_and_overlong_chains_are_refused() -> TestResult {
    let key = zone(7);
    let source = MemorySource::new();
    source.put(&signed(&key, "x", 1, cname(in_zone(&key, "y"))));
    source.put(&signed(&key, "y", 1, cname(name("X.example.kad."))));
    source.put(&signed(&key, "self", 1, cname(in_zone(&key, "self"))));
    for i in 0..10 {
        source.put(&signed(
            &key,
            &format!("l{i}"),
            1,
            cname(in_zone(&key, &format!("l{}", i + 1))),
        ));
    }
    source.put(&signed(&key, "l10", 1, vec![(300, a(10))]));
    let mut config = config(&[("example.kad", &key)]);
    config.dht.max_cname_chain = 8;
    let resolver = resolver(config, &source);

    for looping in ["x.example.kad.", "self.example.kad."] {
        let answer = resolver.lookup(&name(looping), RecordType::A).await;
        assert!(
            matches!(
                &answer.outcome,
                Outcome::Failed {
                    error: LookupError::CnameLoop { .. }
                }
            ),
            "{looping}: {:?}",
            answer.outcome
        );
        assert_eq!(answer.response_code(), ResponseCode::ServFail);
    }
    let answer = resolver
        .lookup(&name("l0.example.kad."), RecordType::A)
        .await;
    assert!(matches!(
        &answer.outcome,
        Outcome::Failed {
            error: LookupError::CnameChainTooLong { limit: 8 }
        }
    ));
    // Eight links are fine.
    let answer = resolver
        .lookup(&name("l2.example.kad."), RecordType::A)
        .await;
    assert!(matches!(answer.outcome, Outcome::Records));
    assert_eq!(answer.answers.len(), 9);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn a_cname_leaving_kadns_is_followed_upstream() -> TestResult {
    let server = TestServer::standard().await;
    let key = zone(7);
    let source = MemorySource::new();
    source.put(&signed(&key, "ext", 1, cname(name("www.example.com."))));
    let mut config = config(&[("example.kad", &key)]);
    config.upstream.servers = vec![server.addr.into()];
    let resolver = resolver(config, &source);
    let answer = tokio::time::timeout(
        TEST_BOUND,
        resolver.lookup(&name("ext.example.kad."), RecordType::A),
    )
    .await?;
    let Outcome::Upstream { response } = &answer.outcome else {
        panic!("upstream expected, got {:?}", answer.outcome);
    };
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        chain_of(&answer),
        [
            ("ext.example.kad.".to_string(), RecordType::CNAME),
            ("www.example.com.".to_string(), RecordType::A),
        ]
    );
    assert!(!answer.authenticated, "upstream data is not verified");
    assert_eq!(resolver.metrics().outcome("upstream"), 1);
    Ok(())
}
