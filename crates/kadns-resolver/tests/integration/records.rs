//! Every name-bearing type comes back with its in-zone names under the
//! apex the query used, and out-of-zone names untouched.

use kadns_resolver::hickory_proto::rr::rdata::svcb::SVCB;
use kadns_resolver::hickory_proto::rr::rdata::{CNAME, HTTPS, MX, NS, PTR, SOA, SRV};
use kadns_resolver::hickory_proto::rr::{Name, RData, RecordType};
use kadns_resolver::kadns_record::ZoneKey;
use kadns_resolver::{MemorySource, Outcome, Resolver};
use tracing_test::traced_test;

use crate::support::*;

fn publish(key: &ZoneKey, source: &MemorySource) {
    let z = |rel: &str| in_zone(key, rel);
    let soa = SOA::new(z("ns1"), z("hostmaster"), 7, 3600, 600, 86_400, 30);
    source.put(&signed(
        key,
        "@",
        1,
        vec![
            (3600, RData::SOA(soa)),
            (3600, RData::NS(NS(z("ns1")))),
            (3600, RData::NS(NS(name("ns.other.net.")))),
            (3600, RData::MX(MX::new(10, z("mx")))),
        ],
    ));
    source.put(&signed(
        key,
        "_sip._tcp",
        1,
        vec![(300, RData::SRV(SRV::new(0, 5, 5060, z("sip"))))],
    ));
    source.put(&signed(
        key,
        "ptr",
        1,
        vec![(300, RData::PTR(PTR(z("host"))))],
    ));
    let svcb = SVCB::new(1, z("target"), vec![]);
    source.put(&signed(
        key,
        "svc",
        1,
        vec![
            (300, RData::SVCB(svcb.clone())),
            (300, RData::HTTPS(HTTPS(svcb))),
        ],
    ));
    source.put(&signed(
        key,
        "alias",
        1,
        vec![(300, RData::CNAME(CNAME(z("www"))))],
    ));
    source.put(&signed(key, "www", 1, vec![(300, a(1))]));
}

/// The single RDATA of type `t` at `rel` under `apex`.
async fn one(
    resolver: &Resolver<MemorySource>,
    rel: &str,
    apex: &str,
    t: RecordType,
) -> Vec<RData> {
    let qname = if rel == "@" {
        name(apex)
    } else {
        name(&format!("{rel}.{apex}"))
    };
    let answer = resolver.lookup(&qname, t).await;
    assert!(
        matches!(answer.outcome, Outcome::Records),
        "{rel} {t}: {:?}",
        answer.outcome
    );
    assert!(answer.authenticated);
    answer
        .answers
        .into_iter()
        .filter(|r| r.record_type() == t)
        .map(|r| r.data)
        .collect()
}

#[tokio::test]
#[traced_test]
async fn names_in_rdata_are_rebased_onto_the_query_apex() -> TestResult {
    let key = zone(2);
    let source = MemorySource::new();
    publish(&key, &source);
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let zone_id_apex = format!("{}.", key.zone_id());
    for apex in ["Example.KAD.", zone_id_apex.as_str()] {
        let z = |rel: &str| name(&format!("{rel}.{apex}"));
        let soa = one(&resolver, "@", apex, RecordType::SOA).await;
        let RData::SOA(soa) = &soa[0] else {
            panic!("SOA expected")
        };
        assert_eq!(
            (soa.mname.clone(), soa.rname.clone(), soa.serial),
            (z("ns1"), z("hostmaster"), 7)
        );
        let mut ns = one(&resolver, "@", apex, RecordType::NS).await;
        ns.sort_by_key(|d| d.to_string());
        let mut expected = vec![
            RData::NS(NS(z("ns1"))),
            RData::NS(NS(name("ns.other.net."))),
        ];
        expected.sort_by_key(|d| d.to_string());
        assert_eq!(ns, expected, "in-zone NS rebased, out-of-zone NS untouched");
        assert_eq!(
            one(&resolver, "@", apex, RecordType::MX).await,
            [RData::MX(MX::new(10, z("mx")))]
        );
        assert_eq!(
            one(&resolver, "_sip._tcp", apex, RecordType::SRV).await,
            [RData::SRV(SRV::new(0, 5, 5060, z("sip")))]
        );
        assert_eq!(
            one(&resolver, "ptr", apex, RecordType::PTR).await,
            [RData::PTR(PTR(z("host")))]
        );
        let svcb = SVCB::new(1, z("target"), vec![]);
        assert_eq!(
            one(&resolver, "svc", apex, RecordType::SVCB).await,
            [RData::SVCB(svcb.clone())]
        );
        assert_eq!(
            one(&resolver, "svc", apex, RecordType::HTTPS).await,
            [RData::HTTPS(HTTPS(svcb))]
        );
        assert_eq!(
            one(&resolver, "alias", apex, RecordType::CNAME).await,
            [RData::CNAME(CNAME(z("www")))]
        );
    }
    // Under the anchor, the rebased names keep the case the query used for the apex.
    let mx = one(&resolver, "@", "Example.KAD.", RecordType::MX).await;
    let RData::MX(mx) = &mx[0] else {
        panic!("MX expected")
    };
    assert!(
        mx.exchange.eq_case(&name("mx.Example.KAD.")),
        "{}",
        mx.exchange
    );
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn ttls_are_the_published_ones_and_any_returns_everything() -> TestResult {
    let key = zone(2);
    let source = MemorySource::new();
    publish(&key, &source);
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    let answer = resolver
        .lookup(&name("example.kad."), RecordType::ANY)
        .await;
    assert!(matches!(answer.outcome, Outcome::Records));
    assert_eq!(answer.answers.len(), 4);
    assert!(
        answer
            .answers
            .iter()
            .all(|r| r.ttl <= 3600 && r.name == Name::from_ascii("example.kad.").unwrap())
    );
    let answer = resolver
        .lookup(&name("www.example.kad."), RecordType::A)
        .await;
    assert_eq!(answer.answers[0].ttl, 300);
    Ok(())
}

/// Every type whose RDATA hickory holds opaquely but which carries names (the
/// record format's `NAME_LAYOUTS`), and NAPTR: published under the zone-id
/// apex, answered under the trust anchor the query used.
#[tokio::test]
#[traced_test]
async fn names_in_opaque_rdata_are_rebased_for_every_name_carrying_type() -> TestResult {
    use kadns_resolver::hickory_proto::rr::rdata::{NAPTR, NULL};
    use kadns_resolver::hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
    use kadns_resolver::kadns_record::{NAME_LAYOUTS, Part};

    fn wire(name: &Name) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = BinEncoder::new(&mut out);
        name.emit(&mut encoder).unwrap();
        out
    }
    let key = zone(61);
    let source = MemorySource::new();
    let zone_apex = key.zone_id().apex();
    let anchor = name("example.kad.");
    let layout = |apex: &Name, parts: &[Part]| -> Vec<u8> {
        let mut out = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            match part {
                Part::Fixed(n) => out.extend(std::iter::repeat_n(1u8, *n)),
                Part::Name => out.extend(wire(
                    &Name::from_ascii(format!("h{i}"))
                        .unwrap()
                        .append_domain(apex)
                        .unwrap(),
                )),
            }
        }
        out
    };
    for (code, parts) in NAME_LAYOUTS {
        let rdata = RData::Unknown {
            code: RecordType::from(*code),
            rdata: NULL::with(layout(&zone_apex, parts)),
        };
        source.put(&signed(&key, &format!("t{code}"), 1, vec![(60, rdata)]));
    }
    let naptr = NAPTR::new(
        10,
        20,
        b"s".to_vec().into_boxed_slice(),
        b"SIP+D2U".to_vec().into_boxed_slice(),
        Vec::new().into_boxed_slice(),
        in_zone(&key, "_sip._udp"),
    );
    source.put(&signed(&key, "naptr", 1, vec![(60, RData::NAPTR(naptr))]));
    let resolver = resolver(config(&[("example.kad", &key)]), &source);
    for (code, parts) in NAME_LAYOUTS {
        let qname = name(&format!("t{code}.example.kad."));
        let answer = resolver.lookup(&qname, RecordType::from(*code)).await;
        assert_eq!(answer.answers.len(), 1, "type {code}: {:?}", answer.outcome);
        let RData::Unknown { rdata, .. } = &answer.answers[0].data else {
            panic!("type {code} is opaque");
        };
        assert_eq!(rdata.anything, layout(&anchor, parts), "type {code}");
    }
    let answer = resolver
        .lookup(&name("naptr.example.kad."), RecordType::NAPTR)
        .await;
    let RData::NAPTR(naptr) = &answer.answers[0].data else {
        panic!("NAPTR expected");
    };
    assert_eq!(naptr.replacement, name("_sip._udp.example.kad."));
    Ok(())
}
