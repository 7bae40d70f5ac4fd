use super::*;
use hickory_proto::op::{OpCode, Query};
use hickory_proto::rr::Record;
use hickory_proto::rr::rdata::{A, SOA, TXT};

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn bounds(max_bytes: usize) -> Bounds {
    Bounds {
        max_bytes,
        max_ttl: 86_400,
        max_negative_ttl: 3_600,
        stale_window: Duration::from_secs(100),
    }
}

fn query(owner: &str) -> Message {
    let mut q = Message::query();
    q.add_query(Query::query(name(owner), RecordType::A));
    q
}

fn positive(owner: &str, ttl: u32) -> Message {
    let mut r = Message::response(1, OpCode::Query);
    r.add_query(Query::query(name(owner), RecordType::A));
    r.answers.push(Record::from_rdata(
        name(owner),
        ttl,
        RData::A(A::new(192, 0, 2, 1)),
    ));
    r
}

fn negative(owner: &str, soa_ttl: u32, minimum: u32) -> Message {
    let mut r = Message::response(1, OpCode::Query);
    r.metadata.response_code = ResponseCode::NXDomain;
    r.add_query(Query::query(name(owner), RecordType::A));
    let soa = SOA::new(name("ns.test."), name("h.test."), 1, 2, 3, 4, minimum);
    r.authorities
        .push(Record::from_rdata(name("test."), soa_ttl, RData::SOA(soa)));
    r
}

#[tokio::test(start_paused = true)]
async fn ttls_count_down_then_stale_then_gone() {
    let cache = ForwardCache::new(bounds(1 << 20));
    let key = Key::of(&query("a.test.")).unwrap();
    assert_eq!(
        cache.insert(key.clone(), &positive("a.test.", 300), Instant::now()),
        Some(300)
    );
    tokio::time::advance(Duration::from_secs(120)).await;
    let entry = cache.get(&key, Instant::now()).unwrap();
    assert!(entry.is_fresh(Instant::now()));
    assert_eq!(entry.fresh_response(Instant::now()).answers[0].ttl, 180);
    tokio::time::advance(Duration::from_secs(181)).await;
    let entry = cache.get(&key, Instant::now()).unwrap();
    assert!(!entry.is_fresh(Instant::now()), "past its TTL");
    assert_eq!(entry.stale_response().answers[0].ttl, STALE_TTL);
    tokio::time::advance(Duration::from_secs(100)).await;
    assert!(
        cache.get(&key, Instant::now()).is_none(),
        "past the stale window"
    );
    assert_eq!(cache.bytes(), 0);
}

#[test]
fn negative_ttl_is_min_of_soa_ttl_and_minimum() {
    let b = bounds(1 << 20);
    assert_eq!(ttl_of(&negative("x.test.", 900, 5), &b), Some(5));
    assert_eq!(ttl_of(&negative("x.test.", 7, 900), &b), Some(7));
    assert_eq!(
        ttl_of(&negative("x.test.", 90_000, 90_000), &b),
        Some(3_600),
        "capped"
    );
    let mut nodata = negative("x.test.", 60, 60);
    nodata.metadata.response_code = ResponseCode::NoError;
    assert_eq!(ttl_of(&nodata, &b), Some(60));
    let mut no_soa = negative("x.test.", 60, 60);
    no_soa.authorities.clear();
    assert_eq!(ttl_of(&no_soa, &b), None, "no SOA: not cached");
    let mut servfail = positive("x.test.", 60);
    servfail.metadata.response_code = ResponseCode::ServFail;
    assert_eq!(ttl_of(&servfail, &b), None);
    let mut tc = positive("x.test.", 60);
    tc.metadata.truncation = true;
    assert_eq!(ttl_of(&tc, &b), None);
    assert_eq!(
        ttl_of(&positive("x.test.", 0), &b),
        None,
        "TTL 0 is not cached"
    );
    assert_eq!(
        ttl_of(&positive("x.test.", 200_000), &b),
        Some(86_400),
        "capped"
    );
}

#[test]
fn bounded_in_bytes_evicting_the_soonest_to_end() {
    let query = |owner: &str| {
        let mut q = query(owner);
        q.queries[0].query_type = RecordType::TXT;
        q
    };
    let big = |owner: &str, ttl: u32| {
        let mut r = positive(owner, ttl);
        r.queries[0].query_type = RecordType::TXT;
        r.answers = vec![Record::from_rdata(
            name(owner),
            ttl,
            RData::TXT(TXT::new(vec!["x".repeat(200); 4])),
        )];
        r
    };
    let one = {
        let cache = ForwardCache::new(bounds(1 << 20));
        cache.insert(
            Key::of(&query("n9.test.")).unwrap(),
            &big("n9.test.", 60),
            Instant::now(),
        );
        cache.bytes()
    };
    assert!(one > 800, "one entry counted with its size");
    let cache = ForwardCache::new(bounds(one * 3));
    let now = Instant::now();
    for (i, ttl) in [(0, 500), (1, 100), (2, 900), (3, 700)] {
        let owner = format!("n{i}.test.");
        cache.insert(Key::of(&query(&owner)).unwrap(), &big(&owner, ttl), now);
        assert!(cache.bytes() <= one * 3, "over the byte bound");
    }
    assert_eq!(cache.len(), 3);
    assert!(
        cache
            .get(&Key::of(&query("n1.test.")).unwrap(), now)
            .is_none(),
        "shortest evicted"
    );
    for kept in ["n0.test.", "n2.test.", "n3.test."] {
        assert!(cache.get(&Key::of(&query(kept)).unwrap(), now).is_some());
    }
    let tiny = ForwardCache::new(bounds(100));
    assert_eq!(
        tiny.insert(
            Key::of(&query("a.test.")).unwrap(),
            &big("a.test.", 60),
            now
        ),
        None
    );
    assert_eq!(tiny.bytes(), 0);
}

#[tokio::test(start_paused = true)]
async fn prefetch_once_in_the_last_tenth() {
    let cache = ForwardCache::new(bounds(1 << 20));
    let key = Key::of(&query("a.test.")).unwrap();
    cache.insert(key.clone(), &positive("a.test.", 100), Instant::now());
    tokio::time::advance(Duration::from_secs(85)).await;
    assert!(
        !cache
            .get(&key, Instant::now())
            .unwrap()
            .take_prefetch(Instant::now())
    );
    tokio::time::advance(Duration::from_secs(6)).await;
    let entry = cache.get(&key, Instant::now()).unwrap();
    assert!(entry.take_prefetch(Instant::now()), "9 s of 100 left");
    assert!(!entry.take_prefetch(Instant::now()), "only once");
}

#[test]
fn keys_fold_case_and_separate_do_and_cd() {
    let mut upper = query("A.TEST.");
    assert_eq!(Key::of(&upper), Key::of(&query("a.test")));
    upper.metadata.checking_disabled = true;
    assert_ne!(Key::of(&upper), Key::of(&query("a.test.")));
}
