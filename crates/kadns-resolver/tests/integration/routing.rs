//! Zone-id names and trust-anchor names reach their zone; others go upstream.

use kadns_resolver::hickory_proto::op::ResponseCode;
use kadns_resolver::hickory_proto::rr::RecordType;
use kadns_resolver::{ForwardError, LookupError, MemorySource, Outcome, Route};
use tracing_test::traced_test;

use crate::support::*;

#[tokio::test]
#[traced_test]
async fn zone_id_and_anchor_names_case_insensitive_with_or_without_dot() -> TestResult {
    let key = zone(1);
    let source = MemorySource::new();
    source.put(&signed(&key, "www", 1, vec![(300, a(1))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let id = key.zone_id().to_string();
    let queries = [
        format!("www.{id}."),
        format!("www.{id}"),
        format!("WWW.{}.", id.to_uppercase()),
        "www.example.kad.".into(),
        "Www.EXAMPLE.kad".into(),
    ];
    for query in queries {
        let qname = name(&query);
        assert!(
            matches!(resolver.route(&qname), Route::Zone { zone, .. } if zone == key.zone_id())
        );
        let answer = resolver.lookup(&qname, RecordType::A).await;
        assert!(
            matches!(answer.outcome, Outcome::Records),
            "{query}: {:?}",
            answer.outcome
        );
        assert_eq!(answer.response_code(), ResponseCode::NoError);
        assert!(answer.authenticated);
        assert_eq!(answer.answers.len(), 1);
        let mut expected = qname.clone();
        expected.set_fqdn(true);
        assert!(
            answer.answers[0].name.eq_case(&expected),
            "{query}: case kept, got {}",
            answer.answers[0].name
        );
        assert_eq!(answer.answers[0].data, a(1));
    }
    assert_eq!(resolver.metrics().outcome("noerror"), 5);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn other_names_go_upstream_and_without_one_fail() -> TestResult {
    let key = zone(1);
    let source = MemorySource::new();
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    for other in [
        "example.com.",
        "kad.",
        "www.notexample.kad.",
        &format!("{}.com.", key.zone_id()),
    ] {
        assert_eq!(resolver.route(&name(other)), Route::Forward, "{other}");
        let answer = resolver.lookup(&name(other), RecordType::A).await;
        assert!(
            matches!(
                &answer.outcome,
                Outcome::Failed {
                    error: LookupError::Forward {
                        source: ForwardError::NoUpstream
                    }
                }
            ),
            "{other}: {:?}",
            answer.outcome
        );
        assert_eq!(answer.response_code(), ResponseCode::ServFail);
    }
    assert_eq!(source.calls(), 0, "no DHT lookup for names outside kadns");
    assert_eq!(resolver.metrics().outcome("servfail"), 4);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn bad_anchors_are_refused() -> TestResult {
    let source = MemorySource::new();
    let mut bad = config(&[]);
    bad.trust_anchors
        .insert("example.kad".into(), "not-a-zone-id".into());
    let error = kadns_resolver::Resolver::builder(bad, source.clone())
        .build()
        .unwrap_err();
    assert!(
        matches!(error, kadns_resolver::Error::AnchorZone { .. }),
        "{error}"
    );
    let mut root = config(&[]);
    root.trust_anchors
        .insert(".".into(), zone(1).zone_id().to_string());
    let error = kadns_resolver::Resolver::builder(root, source)
        .build()
        .unwrap_err();
    assert!(
        matches!(error, kadns_resolver::Error::AnchorIsRoot),
        "{error}"
    );
    Ok(())
}
