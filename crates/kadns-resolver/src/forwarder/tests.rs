//! The forwarder as a whole, against loopback upstreams.

use super::*;
use crate::config::UpstreamConfig;
use crate::route::Router;

/// A client in 127.0.0.0/24.
const CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn new_forwarder(
    upstream: &UpstreamConfig,
    own: &[SocketAddr],
    metrics: Arc<Metrics>,
) -> Result<Forwarder, Error> {
    let config = Config {
        upstream: upstream.clone(),
        ..Config::default()
    };
    Forwarder::new(
        &config,
        crate::route::shared(Router::default()),
        own,
        metrics,
        None,
    )
}

/// A loopback UDP server that answers every query with one A record (TTL
/// 300) after `delay`, counting the queries; names under `void.` are
/// never answered.
async fn slow_upstream(
    delay: Duration,
) -> (
    SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    use hickory_proto::rr::{RData, Record, rdata::A};
    let socket = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let task = tokio::spawn(async move {
        let mut buf = vec![0; 4096];
        while let Ok((len, from)) = socket.recv_from(&mut buf).await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let query = Message::from_vec(&buf[..len]).unwrap();
            if query.queries[0]
                .name
                .to_lowercase()
                .to_ascii()
                .ends_with("void.")
            {
                continue;
            }
            let mut response = Message::response(query.metadata.id, OpCode::Query);
            response.queries = query.queries.clone();
            let name = query.queries[0].name.clone();
            response.answers.push(Record::from_rdata(
                name,
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ));
            let socket = Arc::clone(&socket);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            });
        }
    });
    (addr, count, task)
}

fn a_query(name: &str) -> Message {
    let mut query = Message::query();
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    query
}

#[tokio::test]
async fn identical_queries_share_one_exchange_then_hit_the_cache() {
    let (addr, count, task) = slow_upstream(Duration::from_millis(200)).await;
    let config = UpstreamConfig {
        servers: vec![addr.into()],
        ..UpstreamConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let forwarder = Arc::new(new_forwarder(&config, &[], metrics.clone()).unwrap());
    let mut waiters = JoinSet::new();
    for i in 0..10u16 {
        let forwarder = Arc::clone(&forwarder);
        waiters.spawn(async move {
            let mut query = a_query(if i % 2 == 0 { "a.test." } else { "A.TEST." });
            query.metadata.id = i;
            forwarder.forward(&query, CLIENT).await
        });
    }
    while let Some(result) = waiters.join_next().await {
        let forwarded = result.unwrap().unwrap();
        assert_eq!(forwarded.message.answers.len(), 1);
        assert_eq!(
            forwarded.message.answers[0].name,
            forwarded.message.queries[0].name
        );
    }
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "coalesced"
    );
    let again = forwarder
        .forward(&a_query("a.test."), CLIENT)
        .await
        .unwrap();
    assert!(again.from_cache && !again.stale);
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1, "cached");
    assert_eq!(metrics.forward_cache_hits.get(), 1);
    assert!(forwarder.lock_flights().is_empty(), "no flight left behind");
    task.abort();
}

#[tokio::test]
async fn stale_when_the_upstream_is_gone() {
    let (addr, _count, task) = slow_upstream(Duration::ZERO).await;
    let config = Config {
        upstream: UpstreamConfig {
            servers: vec![addr.into()],
            attempt_timeout_ms: 200,
            total_timeout_ms: 300,
            ..UpstreamConfig::default()
        },
        cache: crate::config::CacheConfig {
            max_ttl_secs: 1,
            ..Default::default()
        },
        ..Config::default()
    };
    let forwarder = Arc::new(
        Forwarder::new(
            &config,
            crate::route::shared(Router::default()),
            &[],
            Arc::new(Metrics::new()),
            None,
        )
        .unwrap(),
    );
    let first = forwarder
        .forward(&a_query("a.test."), CLIENT)
        .await
        .unwrap();
    assert_eq!(first.message.answers[0].ttl, 1, "capped by max_ttl_secs");
    task.abort();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = forwarder
        .forward(&a_query("a.test."), CLIENT)
        .await
        .unwrap();
    assert!(stale.stale, "served stale");
    assert_eq!(
        stale.message.answers[0].ttl, 1,
        "stale TTL is at most 30 and the record's own"
    );
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn self_addresses() {
    let own = [addr("127.0.0.1:5353"), addr("0.0.0.0:53")];
    assert!(is_self(addr("127.0.0.1:5353"), &own));
    assert!(
        is_self(addr("127.0.0.53:53"), &own),
        "wildcard listener on 53 answers on loopback"
    );
    assert!(is_self(addr("0.0.0.0:5353"), &own));
    assert!(!is_self(addr("127.0.0.1:5354"), &own));
    assert!(!is_self(addr("192.0.2.1:53"), &own));
    assert!(
        !is_self(addr("127.0.0.53:53"), &[addr("127.0.0.1:53")]),
        "systemd-resolved is not us"
    );
}

#[test]
fn configured_self_is_refused_and_resolv_conf_self_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "nameserver 127.0.0.1\nnameserver 192.0.2.1\n").unwrap();
    let own = [addr("127.0.0.1:53")];
    let metrics = Arc::new(Metrics::new());
    let mut config = UpstreamConfig {
        resolv_conf: Some(path),
        ..UpstreamConfig::default()
    };
    let forwarder = new_forwarder(&config, &own, metrics.clone()).unwrap();
    assert_eq!(forwarder.servers(), [addr("192.0.2.1:53")]);
    config.servers = vec![addr("192.0.2.2:53").into(), addr("127.0.0.1:53").into()];
    assert!(matches!(
        new_forwarder(&config, &own, metrics.clone()),
        Err(Error::UpstreamIsSelf { addr }) if addr == own[0]
    ));
    config.servers.clear();
    config.resolv_conf = None;
    assert!(
        new_forwarder(&config, &own, metrics)
            .unwrap()
            .servers()
            .is_empty()
    );
}

#[tokio::test]
async fn a_flooding_client_leaves_slots_for_another() {
    let (addr, _count, task) = slow_upstream(Duration::ZERO).await;
    let config = UpstreamConfig {
        servers: vec![addr.into()],
        max_in_flight: 8,
        attempt_timeout_ms: 3_000,
        total_timeout_ms: 3_000,
        ..UpstreamConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let forwarder = Arc::new(new_forwarder(&config, &[], metrics.clone()).unwrap());
    let flooder: IpAddr = "10.0.0.1".parse().unwrap();
    let mut flood = JoinSet::new();
    for i in 0..40 {
        let forwarder = Arc::clone(&forwarder);
        flood.spawn(async move {
            let query = a_query(&format!("n{i}.void."));
            forwarder.forward(&query, flooder).await
        });
    }
    // Every flood query either holds a slot (and waits) or is refused now.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metrics.forward_refusal("client_share") < 36 {
        assert!(Instant::now() < deadline, "the flood was not refused");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(forwarder.slots.usage(), (4, 1), "half the slots, no more");
    let second: IpAddr = "10.0.1.1".parse().unwrap();
    let mut others = JoinSet::new();
    for i in 0..4 {
        let forwarder = Arc::clone(&forwarder);
        others.spawn(async move {
            forwarder
                .forward(&a_query(&format!("n{i}.answered.")), second)
                .await
        });
    }
    while let Some(result) = others.join_next().await {
        let forwarded = result.unwrap().expect("the second client is answered");
        assert_eq!(forwarded.message.answers.len(), 1);
    }
    let mut refused = 0;
    while let Some(result) = flood.join_next().await {
        match result.unwrap() {
            Err(ForwardError::ClientBusy { limit: 4 }) => refused += 1,
            Err(ForwardError::Timeout { .. } | ForwardError::Deadline { .. }) => {}
            other => panic!("a flood query ended with {other:?}"),
        }
    }
    assert_eq!(refused, 36);
    assert_eq!(forwarder.slots.usage(), (0, 0), "every slot given back");
    task.abort();
}

#[tokio::test]
async fn waiters_on_one_flight_are_bounded_per_client() {
    let (addr, count, task) = slow_upstream(Duration::ZERO).await;
    let config = UpstreamConfig {
        servers: vec![addr.into()],
        max_waiters: 3,
        attempt_timeout_ms: 1_000,
        total_timeout_ms: 1_000,
        ..UpstreamConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let forwarder = Arc::new(new_forwarder(&config, &[], metrics.clone()).unwrap());
    let mut waiting = JoinSet::new();
    for _ in 0..10 {
        let forwarder = Arc::clone(&forwarder);
        waiting.spawn(async move { forwarder.forward(&a_query("same.void."), CLIENT).await });
    }
    let mut refused = 0;
    while let Some(result) = waiting.join_next().await {
        match result.unwrap() {
            Err(ForwardError::TooManyWaiters { limit: 3 }) => refused += 1,
            Err(ForwardError::Timeout { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, 7);
    assert_eq!(metrics.forward_refusal("waiters"), 7);
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the three waiters shared one exchange"
    );
    assert_eq!(forwarder.waiters.prefixes(), 0, "every place given back");
    task.abort();
}
