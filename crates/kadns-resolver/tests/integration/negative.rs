//! NXDOMAIN and NODATA, with the SOA in the authority section.

use kadns_resolver::hickory_proto::op::ResponseCode;
use kadns_resolver::hickory_proto::rr::rdata::SOA;
use kadns_resolver::hickory_proto::rr::{RData, RecordType};
use kadns_resolver::{MemorySource, Outcome};
use tracing_test::traced_test;

use crate::support::*;

fn soa_of(answer: &kadns_resolver::Answer) -> (SOA, u32) {
    assert_eq!(
        answer.authorities.len(),
        1,
        "one SOA in the authority section"
    );
    let record = &answer.authorities[0];
    let RData::SOA(soa) = &record.data else {
        panic!("SOA expected, got {record}")
    };
    (soa.clone(), record.ttl)
}

#[tokio::test]
#[traced_test]
async fn no_bundle_is_nxdomain_with_a_synthesized_soa() -> TestResult {
    let key = zone(3);
    let source = MemorySource::new();
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let answer = resolver
        .lookup(&name("nothing.Example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.response_code(), ResponseCode::NXDomain);
    assert!(answer.answers.is_empty());
    assert!(!answer.authenticated, "absence of a bundle is not signed");
    let (soa, ttl) = soa_of(&answer);
    assert!(answer.authorities[0].name.eq_case(&name("Example.kad.")));
    assert_eq!(soa.mname, name("example.kad."));
    assert_eq!(soa.rname, name("hostmaster.example.kad."));
    assert_eq!(soa.minimum, 60, "the negative TTL");
    assert!(ttl <= 60);
    assert_eq!(resolver.metrics().outcome("nxdomain"), 1);
    assert_eq!(source.calls(), 2, "the name, then the apex for its SOA");
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn empty_bundle_is_signed_nxdomain_and_soa_comes_from_the_apex() -> TestResult {
    let key = zone(3);
    let source = MemorySource::new();
    let soa = SOA::new(
        in_zone(&key, "ns1"),
        in_zone(&key, "hostmaster"),
        42,
        3600,
        600,
        86_400,
        30,
    );
    source.put(&signed(&key, "@", 1, vec![(3600, RData::SOA(soa))]));
    source.put(&signed(&key, "gone", 4, vec![]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let answer = resolver
        .lookup(&name("gone.example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    assert!(answer.authenticated, "an empty bundle is a signed denial");
    let (soa, ttl) = soa_of(&answer);
    assert_eq!((soa.serial, soa.mname), (42, name("ns1.example.kad.")));
    assert!(ttl <= 30, "SOA TTL capped by MINIMUM, got {ttl}");
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn missing_type_is_nodata() -> TestResult {
    let key = zone(3);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(300, a(1))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::AAAA)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NoData),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert!(answer.authenticated);
    let (soa, _) = soa_of(&answer);
    assert_eq!(soa.serial, 0, "the zone has no SOA: synthesized");
    assert_eq!(resolver.metrics().outcome("nodata"), 1);

    // NODATA at the apex uses the apex bundle's own SOA without a second lookup.
    let soa = SOA::new(
        in_zone(&key, "ns1"),
        in_zone(&key, "hostmaster"),
        9,
        3600,
        600,
        86_400,
        300,
    );
    source.put(&signed(&key, "@", 1, vec![(3600, RData::SOA(soa))]));
    let resolver = crate::support::resolver(config(&[("example.kad", &key)]), &source);
    let calls = source.calls();
    let answer = resolver
        .lookup(&name("example.kad."), RecordType::TXT)
        .await;
    assert!(matches!(answer.outcome, Outcome::NoData));
    assert_eq!(soa_of(&answer).0.serial, 9);
    assert_eq!(source.calls(), calls + 1);
    Ok(())
}
