//! The stub's wire-format answer cache, seen by a real DNS client: what a
//! hit sends (ID, case, TTLs), what is kept apart (DO), truncation per
//! client from one entry, invalidation when a bundle goes, forwarded
//! answers, and the flush.
//!
//! A hit is told from a miss by the stub's own counters: a miss goes
//! through the resolver (`stub_kadns_queries` or `stub_forwarded_queries`
//! moves), a hit does not (`answer_cache_hits` moves).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kadns::{Stub, StubConfig};
use kadns_record::hickory_proto::op::{Message, ResponseCode};
use kadns_record::hickory_proto::rr::rdata::{A, AAAA, TXT};
use kadns_record::hickory_proto::rr::{RData, RecordType};
use kadns_record::{Bundle, OwnerName, Rr, ZoneKey};
use kadns_resolver::{Config, MemorySource, Resolver};
use kadns_tests::TestResult;
use kadns_tests::client::{self, query_message};
use kadns_tests::upstream::TestUpstream;
use tokio::time::Instant;

struct Fixture {
    stub: Stub<MemorySource>,
    source: MemorySource,
    zone: ZoneKey,
    _upstream: TestUpstream,
}

impl Fixture {
    fn udp(&self) -> SocketAddr {
        self.stub.udp_addrs()[0]
    }
    fn tcp(&self) -> SocketAddr {
        self.stub.tcp_addrs()[0]
    }
    fn hits(&self) -> u64 {
        self.stub.metrics().answer_cache.hits.get()
    }
    fn resolved(&self) -> u64 {
        self.stub.metrics().kadns_queries.get()
    }
    fn publish(&self, labels: &[&str], sequence: u64, records: Vec<Rr>) -> TestResult {
        publish(&self.source, &self.zone, labels, sequence, records)
    }
}

fn publish(
    source: &MemorySource,
    key: &ZoneKey,
    labels: &[&str],
    sequence: u64,
    records: Vec<Rr>,
) -> TestResult {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let owner = OwnerName::from_labels(labels.iter().map(|l| l.as_bytes()))?;
    let bundle = Bundle::new(owner, sequence, now + 86_400, records)?.sign(key)?;
    source.put(&bundle);
    Ok(())
}

/// A stub answering `example.kad.` from an in-memory DHT (`www`: two A
/// records, TTL `www_ttl`, and an AAAA; `big`: 12 TXT records, about 2.5
/// KB), with a test upstream for `outside.example.`.
async fn fixture(
    www_ttl: u32,
    tune: impl FnOnce(&mut Config, &mut StubConfig),
) -> TestResult<Fixture> {
    let zone = ZoneKey::from_seed([21; 32]);
    let source = MemorySource::new();
    publish(
        &source,
        &zone,
        &["www"],
        1,
        vec![
            Rr::new(www_ttl, &RData::A(A::new(192, 0, 2, 10)))?,
            Rr::new(www_ttl, &RData::A(A::new(192, 0, 2, 11)))?,
            Rr::new(
                600,
                &RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            )?,
        ],
    )?;
    let big: Vec<Rr> = (0..12)
        .map(|i| {
            Rr::new(
                300,
                &RData::TXT(TXT::new(vec![format!("{i:02}-{}", "x".repeat(200))])),
            )
        })
        .collect::<Result<_, _>>()?;
    publish(&source, &zone, &["big"], 1, big)?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let mut config = Config::default();
    config
        .trust_anchors
        .insert("example.kad".into(), zone.zone_id().to_string());
    config.upstream.servers = vec![upstream.addr().into()];
    config.upstream.resolv_conf = None;
    let mut stub_config = StubConfig::default();
    stub_config.listen = vec!["127.0.0.1:0".parse()?];
    tune(&mut config, &mut stub_config);
    let resolver = Resolver::builder(config, source.clone()).build()?;
    let stub = Stub::bind(&stub_config, resolver).await?;
    Ok(Fixture {
        stub,
        source,
        zone,
        _upstream: upstream,
    })
}

fn a_records(message: &Message) -> Vec<String> {
    let mut out: Vec<String> = message
        .answers
        .iter()
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_hit_carries_the_queries_id_and_case_and_ttls_count_down() -> TestResult {
    let f = fixture(300, |_, _| {}).await?;
    let first = client::udp(
        f.udp(),
        &query_message("www.example.kad.", RecordType::A, None)?,
    )
    .await?;
    assert_eq!(a_records(&first).len(), 2);
    assert_eq!((f.resolved(), f.hits()), (1, 0));

    for tcp in [false, true] {
        let query = query_message("WwW.ExAmPlE.KaD.", RecordType::A, None)?;
        let reply = if tcp {
            client::tcp(f.tcp(), &query).await?
        } else {
            client::udp(f.udp(), &query).await?
        };
        assert_eq!(reply.metadata.id, query.metadata.id);
        assert_eq!(reply.queries[0].name().to_ascii(), "WwW.ExAmPlE.KaD.");
        assert_eq!(
            a_records(&reply),
            ["WwW.ExAmPlE.KaD. 192.0.2.10", "WwW.ExAmPlE.KaD. 192.0.2.11"]
        );
        assert!(reply.metadata.authoritative && reply.metadata.recursion_available);
    }
    assert_eq!(f.resolved(), 1, "both answered from the cache");
    assert_eq!(f.hits(), 2);

    // Once a second has passed, the cached TTLs are a second lower.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply = client::udp(
            f.udp(),
            &query_message("www.example.kad.", RecordType::A, None)?,
        )
        .await?;
        let ttls: Vec<u32> = reply.answers.iter().map(|r| r.ttl).collect();
        assert!(ttls.iter().all(|&t| (1..=300).contains(&t)), "{ttls:?}");
        if ttls.iter().all(|&t| t < 300) {
            break;
        }
        assert!(Instant::now() < deadline, "TTLs never counted down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(f.resolved(), 1, "still from the cache");
    Ok(())
}

#[tokio::test]
async fn ttls_never_reach_zero_and_the_answer_is_resolved_again() -> TestResult {
    // TTL 3: the entry lives 3 s (nine tenths, whole seconds), then the
    // next query goes to the resolver again.
    let f = fixture(3, |_, _| {}).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while f.resolved() < 2 {
        let reply = client::udp(
            f.udp(),
            &query_message("www.example.kad.", RecordType::A, None)?,
        )
        .await?;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        let ttls: Vec<u32> = reply.answers.iter().map(|r| r.ttl).collect();
        assert_eq!(ttls.len(), 2);
        assert!(ttls.iter().all(|&t| (1..=3).contains(&t)), "{ttls:?}");
        assert!(Instant::now() < deadline, "never resolved again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(f.hits() >= 1, "some answers came from the cache");
    Ok(())
}

#[tokio::test]
async fn do_and_non_do_answers_are_kept_apart() -> TestResult {
    let f = fixture(300, |_, _| {}).await?;
    let with_do = || -> TestResult<Message> {
        let mut query = query_message("www.example.kad.", RecordType::A, Some(1232))?;
        if let Some(edns) = query.edns.as_mut() {
            edns.set_dnssec_ok(true);
        }
        Ok(query)
    };
    let without = || query_message("www.example.kad.", RecordType::A, Some(1232));
    for round in 0..2 {
        let signed = client::udp(f.udp(), &with_do()?).await?;
        assert!(
            signed.metadata.authentic_data,
            "AD for a DO query (round {round})"
        );
        assert!(signed.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok));
        let plain = client::udp(f.udp(), &without()?).await?;
        assert!(
            !plain.metadata.authentic_data,
            "no AD without DO (round {round})"
        );
        assert!(plain.edns.as_ref().is_some_and(|e| !e.flags().dnssec_ok));
    }
    assert_eq!(f.resolved(), 2, "one miss each");
    assert_eq!(f.hits(), 2, "one hit each");
    Ok(())
}

#[tokio::test]
async fn truncation_is_per_client_from_one_entry() -> TestResult {
    let f = fixture(300, |_, stub| stub.max_udp_payload = 4096).await?;
    let big = |payload| query_message("big.example.kad.", RecordType::TXT, Some(payload));
    // The first query stores the whole answer (and is itself truncated).
    let small = client::udp(f.udp(), &big(512)?).await?;
    assert!(small.metadata.truncation && small.answers.is_empty());
    assert_eq!(f.resolved(), 1);
    // The same entry: whole for a 4096-byte client, TC for 512, whole over TCP.
    let whole = client::udp(f.udp(), &big(4096)?).await?;
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 12);
    let query = big(512)?;
    let bytes = client::udp_raw(f.udp(), &query.to_vec()?, client::EXCHANGE_TIMEOUT)
        .await?
        .ok_or("no reply")?;
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let again = Message::from_vec(&bytes)?;
    assert!(again.metadata.truncation && again.answers.is_empty());
    assert_eq!(again.metadata.id, query.metadata.id);
    assert_eq!(again.queries, query.queries);
    assert!(again.edns.is_some(), "the TC reply keeps the OPT record");
    let tcp = client::tcp(f.tcp(), &big(512)?).await?;
    assert_eq!(tcp.answers.len(), 12);
    assert_eq!(f.resolved(), 1, "all three from the cache");
    assert_eq!(f.hits(), 3);
    assert_eq!(f.stub.metrics().truncated_responses.get(), 2);
    Ok(())
}

#[tokio::test]
async fn an_answer_goes_when_its_bundle_goes() -> TestResult {
    // A resolver cache of one bundle: looking up `big` drops `www`'s live
    // bundle, which moves the answer generation.
    let f = fixture(300, |config, _| config.cache.max_entries = 1).await?;
    let ask = || query_message("www.example.kad.", RecordType::A, None);
    let old = client::udp(f.udp(), &ask()?).await?;
    assert_eq!(
        a_records(&old),
        ["www.example.kad. 192.0.2.10", "www.example.kad. 192.0.2.11"]
    );
    client::udp(f.udp(), &ask()?).await?;
    assert_eq!(f.hits(), 1);
    // A new version of `www` is published; the cached answer still stands…
    f.publish(
        &["www"],
        2,
        vec![Rr::new(300, &RData::A(A::new(192, 0, 2, 20)))?],
    )?;
    let cached = client::udp(f.udp(), &ask()?).await?;
    assert_eq!(a_records(&cached).len(), 2);
    // …until the bundle behind it leaves the resolver's cache.
    client::tcp(
        f.tcp(),
        &query_message("big.example.kad.", RecordType::TXT, None)?,
    )
    .await?;
    let resolved = f.resolved();
    let new = client::udp(f.udp(), &ask()?).await?;
    assert_eq!(a_records(&new), ["www.example.kad. 192.0.2.20"]);
    assert_eq!(
        f.resolved(),
        resolved + 1,
        "resolved again, not served from the cache"
    );
    Ok(())
}

#[tokio::test]
async fn forwarded_answers_are_cached_and_a_flush_empties_the_cache() -> TestResult {
    let f = fixture(300, |_, _| {}).await?;
    let forwarded = || f.stub.metrics().forwarded_queries.get();
    let ask = || query_message("Outside.Example.", RecordType::A, Some(1232));
    let first = client::udp(f.udp(), &ask()?).await?;
    assert_eq!(a_records(&first), ["Outside.Example. 198.51.100.7"]);
    let query = ask()?;
    let second = client::udp(f.udp(), &query).await?;
    assert_eq!(second.metadata.id, query.metadata.id);
    assert_eq!(a_records(&second), ["Outside.Example. 198.51.100.7"]);
    assert!(
        !second.metadata.authoritative,
        "forwarded: no AA, from the cache too"
    );
    assert_eq!((forwarded(), f.hits()), (1, 1));
    assert_eq!(f.stub.metrics().responses("udp", "upstream"), 2);

    client::udp(
        f.udp(),
        &query_message("www.example.kad.", RecordType::A, None)?,
    )
    .await?;
    assert!(!f.stub.handler().answer_cache().is_empty());
    f.stub.flush_answer_cache();
    assert!(f.stub.handler().answer_cache().is_empty());
    client::udp(f.udp(), &ask()?).await?;
    client::udp(
        f.udp(),
        &query_message("www.example.kad.", RecordType::A, None)?,
    )
    .await?;
    assert_eq!((forwarded(), f.resolved(), f.hits()), (2, 2, 1));
    Ok(())
}

#[tokio::test]
async fn a_zero_budget_turns_the_cache_off() -> TestResult {
    let f = fixture(300, |_, stub| stub.answer_cache_bytes = 0).await?;
    for _ in 0..3 {
        let reply = client::udp(
            f.udp(),
            &query_message("www.example.kad.", RecordType::A, None)?,
        )
        .await?;
        assert_eq!(reply.answers.len(), 2);
    }
    assert_eq!((f.resolved(), f.hits()), (3, 0));
    Ok(())
}
