//! Wildcards (RFC 4592) and empty non-terminals, from signed meta records.

use kadns_resolver::hickory_proto::rr::rdata::{CNAME, SOA};
use kadns_resolver::hickory_proto::rr::{RData, RecordType};
use kadns_resolver::kadns_record::{Bundle, Meta, Rr, ZoneKey};
use kadns_resolver::{MemorySource, Outcome, PROBES_PER_ROUND, Resolver};
use tracing_test::traced_test;

use crate::support::*;

/// Signs `records` and the meta record `meta` (if any) for `rel`.
fn put(
    source: &MemorySource,
    key: &ZoneKey,
    rel: &str,
    records: Vec<(u32, RData)>,
    meta: Option<Meta>,
) {
    let mut rrs: Vec<Rr> = records
        .iter()
        .map(|(ttl, rdata)| Rr::new(*ttl, rdata).unwrap())
        .collect();
    rrs.extend(meta.map(Meta::to_rr));
    let bundle = Bundle::new(owner(rel), 1, now() + 86_400, rrs)
        .unwrap()
        .sign(key)
        .unwrap();
    source.put(&bundle);
}

fn ent() -> Option<Meta> {
    Some(Meta::new(true, false))
}

fn soa(key: &ZoneKey) -> RData {
    RData::SOA(SOA::new(
        in_zone(key, "ns1"),
        in_zone(key, "hostmaster"),
        7,
        3600,
        600,
        86_400,
        300,
    ))
}

/// The zone of the done-when list: `*.users` beside `alice.users`, and `a.b`.
fn users_zone(key: &ZoneKey) -> MemorySource {
    let source = MemorySource::new();
    put(&source, key, "@", vec![(3600, soa(key))], None);
    put(&source, key, "users", vec![], Some(Meta::new(true, true)));
    put(&source, key, "*.users", vec![(3600, a(80))], None);
    put(&source, key, "alice.users", vec![(3600, a(1))], None);
    put(&source, key, "b", vec![], ent());
    put(&source, key, "a.b", vec![(3600, a(2))], None);
    source
}

fn resolver_for(key: &ZoneKey, source: &MemorySource) -> Resolver<MemorySource> {
    resolver(config(&[("example.kad", key)]), source)
}

fn only_a(answer: &kadns_resolver::Answer) -> (String, RData) {
    assert!(
        matches!(answer.outcome, Outcome::Records),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.answers.len(), 1, "{:?}", answer.answers);
    let record = &answer.answers[0];
    (record.name.to_string(), record.data.clone())
}

#[tokio::test]
#[traced_test]
async fn a_wildcard_answers_under_the_query_name_in_its_case() -> TestResult {
    let key = zone(40);
    let source = users_zone(&key);
    let resolver = resolver_for(&key, &source);
    let answer = resolver
        .lookup(&name("X.y.Users.Example.kad."), RecordType::A)
        .await;
    assert_eq!(only_a(&answer), ("X.y.Users.Example.kad.".into(), a(80)));
    assert!(
        answer.answers[0]
            .name
            .eq_case(&name("X.y.Users.Example.kad."))
    );
    assert!(answer.authenticated, "synthesized from a verified bundle");
    // One label below the encloser too.
    let answer = resolver
        .lookup(&name("bob.users.example.kad."), RecordType::A)
        .await;
    assert_eq!(only_a(&answer), ("bob.users.example.kad.".into(), a(80)));
    // The wildcard owner itself, asked literally.
    let answer = resolver
        .lookup(&name("*.users.example.kad."), RecordType::A)
        .await;
    assert_eq!(only_a(&answer), ("*.users.example.kad.".into(), a(80)));
    // The wildcard without the type: NODATA with the zone's SOA.
    let answer = resolver
        .lookup(&name("x.users.example.kad."), RecordType::AAAA)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NoData),
        "{:?}",
        answer.outcome
    );
    assert!(matches!(answer.authorities[0].data, RData::SOA(_)));
    // The literal `*.users` is its own bundle: three synthesized answers.
    assert_eq!(resolver.metrics().wildcard_answers.get(), 3);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn existing_names_and_empty_non_terminals_block_the_wildcard() -> TestResult {
    let key = zone(41);
    let source = users_zone(&key);
    // A wildcard at the apex as well: everything that does not exist matches it.
    put(
        &source,
        &key,
        "@",
        vec![(3600, soa(&key))],
        Some(Meta::new(false, true)),
    );
    put(&source, &key, "*", vec![(3600, a(9))], None);
    let resolver = resolver_for(&key, &source);
    // alice's own record, not the wildcard.
    let answer = resolver
        .lookup(&name("alice.users.example.kad."), RecordType::A)
        .await;
    assert_eq!(only_a(&answer), ("alice.users.example.kad.".into(), a(1)));
    // alice without the type: NODATA, never the wildcard's data.
    let answer = resolver
        .lookup(&name("alice.users.example.kad."), RecordType::TXT)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NoData),
        "{:?}",
        answer.outcome
    );
    // `b` exists only because `a.b` does: NODATA, not NXDOMAIN, not `*`.
    for qtype in [RecordType::A, RecordType::ANY, RecordType::Unknown(65533)] {
        let answer = resolver.lookup(&name("b.example.kad."), qtype).await;
        assert!(
            matches!(answer.outcome, Outcome::NoData),
            "{qtype}: {:?}",
            answer.outcome
        );
        assert!(answer.answers.is_empty(), "meta records are never shown");
        assert!(matches!(answer.authorities[0].data, RData::SOA(_)));
    }
    // Below `b`, the closest encloser is `b`, which has no wildcard: NXDOMAIN
    // (the apex's `*` does not reach past an existing name).
    let answer = resolver
        .lookup(&name("c.b.example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    // Names with no existing ancestor but the apex match the apex's `*`.
    let answer = resolver
        .lookup(&name("q.zzz.example.kad."), RecordType::A)
        .await;
    assert_eq!(only_a(&answer), ("q.zzz.example.kad.".into(), a(9)));
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn no_wildcard_above_is_nxdomain_at_a_bounded_cost() -> TestResult {
    let key = zone(42);
    let source = users_zone(&key);
    let resolver = resolver_for(&key, &source);
    let answer = resolver
        .lookup(&name("nope.example.kad."), RecordType::A)
        .await;
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    assert!(matches!(answer.authorities[0].data, RData::SOA(_)));
    // A deep name (40 labels): the search costs a few rounds of at most PROBES_PER_ROUND.
    let deep: Vec<String> = (0..40).map(|i| format!("l{i}")).collect();
    let qname = name(&format!("{}.example.kad.", deep.join(".")));
    let before = source.calls();
    let answer = resolver.lookup(&qname, RecordType::A).await;
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    let calls = source.calls() - before;
    assert!(
        calls <= 1 + 3 * PROBES_PER_ROUND as u64 + 1,
        "{calls} bundle lookups for a 40-label name"
    );
    assert!(resolver.metrics().encloser_lookups.get() >= 3);
    assert_eq!(
        resolver.metrics().wildcard_lookups.get(),
        0,
        "no flag, no wildcard lookup"
    );
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn a_cname_at_a_wildcard_is_followed_and_a_tombstone_does_not_block() -> TestResult {
    let key = zone(43);
    let source = users_zone(&key);
    put(&source, &key, "cdn", vec![], Some(Meta::new(true, true)));
    put(
        &source,
        &key,
        "*.cdn",
        vec![(600, RData::CNAME(CNAME(in_zone(&key, "edge"))))],
        None,
    );
    put(&source, &key, "edge", vec![(300, a(7))], None);
    // A removed name under the wildcard: it no longer exists, so `*` answers.
    put(&source, &key, "old.cdn", vec![], None);
    let resolver = resolver_for(&key, &source);
    for qname in ["img.CDN.example.kad.", "old.cdn.example.kad."] {
        let answer = resolver.lookup(&name(qname), RecordType::A).await;
        assert!(
            matches!(answer.outcome, Outcome::Records),
            "{:?}",
            answer.outcome
        );
        assert_eq!(answer.answers.len(), 2, "{:?}", answer.answers);
        assert!(answer.answers[0].name.eq_case(&name(qname)));
        assert_eq!(
            answer.answers[0].data,
            RData::CNAME(CNAME(name("edge.example.kad."))),
            "the target rebased onto the query's apex"
        );
        assert_eq!(answer.answers[1].name, name("edge.example.kad."));
        assert_eq!(answer.answers[1].data, a(7));
    }
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn an_unreachable_ancestor_fails_instead_of_guessing() -> TestResult {
    let key = zone(44);
    let source = users_zone(&key);
    let resolver = resolver_for(&key, &source);
    // Warm the name's own negative entry, then break the network.
    let _ = resolver
        .lookup(&name("apex-only.example.kad."), RecordType::A)
        .await;
    source.set_failure(Some(kadns_resolver::SourceError::NoPeers));
    let answer = resolver
        .lookup(&name("x.y.z.example.kad."), RecordType::A)
        .await;
    assert!(
        !matches!(answer.outcome, Outcome::NxDomain | Outcome::Records),
        "{:?}",
        answer.outcome
    );
    Ok(())
}

/// The ancestors of one round are looked up at once: on tokio's paused clock,
/// with every bundle lookup taking 100 ms, a 40-label name costs one round
/// trip per round, not one per lookup.
#[tokio::test(start_paused = true)]
#[traced_test]
async fn ancestor_lookups_of_a_round_run_concurrently() -> TestResult {
    let key = zone(45);
    let source = users_zone(&key);
    source.set_delay(std::time::Duration::from_millis(100));
    let resolver = resolver_for(&key, &source);
    let deep: Vec<String> = (0..40).map(|i| format!("l{i}")).collect();
    let qname = name(&format!("{}.example.kad.", deep.join(".")));
    let started = tokio::time::Instant::now();
    let answer = resolver.lookup(&qname, RecordType::A).await;
    let elapsed = started.elapsed();
    assert!(
        matches!(answer.outcome, Outcome::NxDomain),
        "{:?}",
        answer.outcome
    );
    // The name, two rounds of 4 ancestors, the apex (reused for the SOA).
    assert_eq!(source.calls(), 1 + 4 + 4 + 1);
    // Sequential lookups would take 1 s; four round trips take 400 ms.
    assert!(
        elapsed < std::time::Duration::from_millis(500),
        "{elapsed:?} for {} lookups",
        source.calls()
    );
    Ok(())
}
