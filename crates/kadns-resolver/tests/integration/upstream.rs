//! Forwarding to upstream servers on loopback: UDP, TCP after truncation,
//! failover, bounded failure, and never to itself.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use kadns_resolver::hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use kadns_resolver::hickory_proto::rr::{RData, RecordType};
use kadns_resolver::{Error, ForwardError, LookupError, MemorySource, Outcome, Resolver};
use tokio::time::timeout;
use tracing_test::traced_test;

use crate::support::*;

/// The client the forwarded queries come from.
const CLIENT: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn upstream_config(
    servers: &[std::net::SocketAddr],
    attempt_ms: u64,
    total_ms: u64,
) -> kadns_resolver::Config {
    let mut config = config(&[]);
    config.upstream.servers = servers.iter().map(|s| (*s).into()).collect();
    config.upstream.attempt_timeout_ms = attempt_ms;
    config.upstream.total_timeout_ms = total_ms;
    config
}

#[tokio::test]
#[traced_test]
async fn lookups_are_forwarded_over_udp_and_keep_the_query_case() -> TestResult {
    let server = TestServer::standard().await;
    let resolver = resolver(
        upstream_config(&[server.addr], 1_000, 2_000),
        &MemorySource::new(),
    );
    let qname = name("WwW.example.COM.");
    let answer = timeout(TEST_BOUND, resolver.lookup(&qname, RecordType::A)).await?;
    let Outcome::Upstream { response } = &answer.outcome else {
        panic!("{:?}", answer.outcome)
    };
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    assert!(
        answer.answers[0].name.eq_case(&qname),
        "got {}",
        answer.answers[0].name
    );
    assert_eq!(
        answer.answers[0].data,
        RData::A(kadns_resolver::hickory_proto::rr::rdata::A::new(
            198, 51, 100, 1
        ))
    );
    assert!(!answer.authenticated);
    assert_eq!(
        (
            server.udp_queries.load(Ordering::SeqCst),
            server.tcp_queries.load(Ordering::SeqCst)
        ),
        (1, 0)
    );
    assert_eq!(resolver.metrics().upstream_queries.get(), 1);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn truncated_answers_are_retried_over_tcp() -> TestResult {
    let server = TestServer::standard().await;
    let resolver = resolver(
        upstream_config(&[server.addr], 1_000, 2_000),
        &MemorySource::new(),
    );
    let answer = timeout(
        TEST_BOUND,
        resolver.lookup(&name("big.example.com."), RecordType::A),
    )
    .await?;
    assert!(
        matches!(answer.outcome, Outcome::Upstream { .. }),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.answers.len(), 3);
    assert_eq!(
        (
            server.udp_queries.load(Ordering::SeqCst),
            server.tcp_queries.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn raw_client_queries_are_forwarded_as_they_are() -> TestResult {
    // The server checks that the DO bit and the payload size arrived.
    let server = TestServer::start(Arc::new(|query: Message, transport| {
        Box::pin(async move {
            let edns = query.edns.as_ref()?;
            if !edns.flags().dnssec_ok
                || edns.max_payload() != 4000
                || !query.metadata.checking_disabled
            {
                return None;
            }
            Some(standard_answer(&query, transport))
        })
    }))
    .await;
    let resolver = resolver(
        upstream_config(&[server.addr], 1_000, 2_000),
        &MemorySource::new(),
    );
    let mut request = Message::new(
        4321,
        kadns_resolver::hickory_proto::op::MessageType::Query,
        OpCode::Query,
    );
    request.metadata.recursion_desired = true;
    request.metadata.checking_disabled = true;
    request.add_query(Query::query(name("big.Example.com."), RecordType::A));
    let mut edns = Edns::new();
    edns.set_dnssec_ok(true);
    edns.set_max_payload(4000);
    request.set_edns(edns);

    let response = timeout(TEST_BOUND, resolver.forward(&request, CLIENT))
        .await??
        .message;
    assert_eq!(response.metadata.id, 4321);
    assert!(
        response.queries[0].name.eq_case(&name("big.Example.com.")),
        "the client's question is restored"
    );
    assert_eq!(
        response.answers.len(),
        3,
        "TCP fallback for forwarded queries too"
    );
    assert!(response.answers[0].name.eq_case(&name("big.Example.com.")));
    assert_eq!(server.tcp_queries.load(Ordering::SeqCst), 1);
    assert_eq!(resolver.metrics().outcome("upstream"), 1);

    let mut two = request.clone();
    two.add_query(Query::query(name("b.example.com."), RecordType::A));
    assert!(matches!(
        resolver.forward(&two, CLIENT).await,
        Err(ForwardError::BadRequest { .. })
    ));
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn failover_goes_through_the_servers_in_order() -> TestResult {
    let (_hole, down) = black_hole().await;
    let failing = TestServer::failing(ResponseCode::ServFail).await;
    let good = TestServer::standard().await;
    let resolver = resolver(
        upstream_config(&[down, failing.addr, good.addr], 300, 3_000),
        &MemorySource::new(),
    );
    let start = Instant::now();
    let answer = timeout(
        TEST_BOUND,
        resolver.lookup(&name("www.example.com."), RecordType::A),
    )
    .await?;
    assert!(
        matches!(answer.outcome, Outcome::Upstream { .. }),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.response_code(), ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(failing.udp_queries.load(Ordering::SeqCst), 1);
    assert_eq!(good.udp_queries.load(Ordering::SeqCst), 1);

    // When every server refuses, the last refusal is the answer.
    let refusing = TestServer::failing(ResponseCode::Refused).await;
    let resolver = crate::support::resolver(
        upstream_config(&[failing.addr, refusing.addr], 300, 3_000),
        &MemorySource::new(),
    );
    let answer = timeout(
        TEST_BOUND,
        resolver.lookup(&name("www.example.com."), RecordType::A),
    )
    .await?;
    assert_eq!(answer.response_code(), ResponseCode::Refused);
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn an_upstream_that_is_down_fails_in_bounded_time() -> TestResult {
    let (_a, down_a) = black_hole().await;
    let (_b, down_b) = black_hole().await;
    let (_c, down_c) = black_hole().await;
    let resolver = resolver(
        upstream_config(&[down_a, down_b, down_c], 300, 500),
        &MemorySource::new(),
    );
    let start = Instant::now();
    let answer = timeout(
        TEST_BOUND,
        resolver.lookup(&name("www.example.com."), RecordType::A),
    )
    .await?;
    let elapsed = start.elapsed();
    assert!(
        matches!(
            &answer.outcome,
            Outcome::Failed {
                error: LookupError::Forward {
                    source: ForwardError::Deadline { .. } | ForwardError::Timeout { .. }
                }
            }
        ),
        "{:?}",
        answer.outcome
    );
    assert_eq!(answer.response_code(), ResponseCode::ServFail);
    assert!(
        elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(1_500),
        "{elapsed:?}"
    );
    assert_eq!(
        resolver.metrics().upstream_queries.get(),
        2,
        "the third server is past the total bound"
    );
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn the_resolver_never_forwards_to_itself() -> TestResult {
    let own = "127.0.0.1:5300".parse()?;
    let error = Resolver::builder(upstream_config(&[own], 300, 500), MemorySource::new())
        .local_addrs([own])
        .build()
        .unwrap_err();
    assert!(
        matches!(error, Error::UpstreamIsSelf { addr } if addr == own),
        "{error}"
    );

    // resolv.conf naming ourselves is skipped, not an error.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("resolv.conf");
    std::fs::write(&path, "nameserver 127.0.0.1\nnameserver 127.0.0.2\n")?;
    let mut config = config(&[]);
    config.upstream.resolv_conf = Some(path);
    let resolver = Resolver::builder(config, MemorySource::new())
        .local_addrs(["0.0.0.0:53".parse()?])
        .build()?;
    assert!(
        resolver.upstreams().is_empty(),
        "{:?}",
        resolver.upstreams()
    );
    Ok(())
}

#[tokio::test]
#[traced_test]
async fn a_query_that_comes_back_while_forwarded_gets_servfail() -> TestResult {
    // An upstream misconfigured to forward back to us.
    let slot: Arc<OnceLock<Resolver<MemorySource>>> = Arc::new(OnceLock::new());
    let back = slot.clone();
    let server = TestServer::start(Arc::new(move |query: Message, _| {
        let back = back.clone();
        Box::pin(async move {
            let resolver = back.get()?;
            match resolver.forward(&query, CLIENT).await {
                Ok(response) => Some(response.message),
                Err(_) => Some(
                    Message::error_msg(query.metadata.id, OpCode::Query, ResponseCode::ServFail)
                        .into_response_for(&query),
                ),
            }
        })
    }))
    .await;
    let resolver = resolver(
        upstream_config(&[server.addr], 1_000, 2_000),
        &MemorySource::new(),
    );
    slot.set(resolver.clone()).map_err(|_| "set once")?;

    let start = Instant::now();
    let answer = timeout(
        TEST_BOUND,
        resolver.lookup(&name("loop.example.com."), RecordType::A),
    )
    .await?;
    assert_eq!(
        answer.response_code(),
        ResponseCode::ServFail,
        "{:?}",
        answer.outcome
    );
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "detected at once, not by timeout: {:?}",
        start.elapsed()
    );
    assert_eq!(resolver.metrics().refusal("forward_loop"), 1);
    assert_eq!(
        server.udp_queries.load(Ordering::SeqCst),
        1,
        "the loop went round once"
    );
    Ok(())
}

/// Puts a query's question into an error response.
trait ForQuery {
    fn into_response_for(self, query: &Message) -> Message;
}

impl ForQuery for Message {
    fn into_response_for(mut self, query: &Message) -> Message {
        self.queries = query.queries.clone();
        self
    }
}

#[tokio::test]
#[traced_test]
async fn concurrent_identical_queries_are_answered_not_taken_for_a_loop() -> TestResult {
    // A slow upstream, so that both forwards are in flight at once. A client
    // that retransmits sends the very same question, letter case included.
    let server = TestServer::start(Arc::new(|query: Message, transport| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Some(standard_answer(&query, transport))
        })
    }))
    .await;
    let resolver = resolver(
        upstream_config(&[server.addr], 2_000, 4_000),
        &MemorySource::new(),
    );
    let mut query = Message::query();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name("MiXeD.Example.com."), RecordType::A));
    query.set_edns(Edns::new());
    let (first, second) = timeout(TEST_BOUND, async {
        tokio::join!(
            resolver.forward(&query, CLIENT),
            resolver.forward(&query, CLIENT)
        )
    })
    .await?;
    for response in [first?.message, second?.message] {
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert_eq!(response.answers.len(), 1);
        assert_eq!(response.answers[0].name, name("MiXeD.Example.com."));
    }
    assert_eq!(resolver.metrics().refusal("forward_loop"), 0);
    Ok(())
}
