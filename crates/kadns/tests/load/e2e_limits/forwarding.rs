//! Forwarding under attack: a client flooding never-answered names leaves
//! the slots another client needs, and junk datagrams on a forward's
//! socket do not end it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kadns_record::hickory_proto::op::{Message, ResponseCode};
use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::TestResult;
use kadns_tests::upstream::{Behaviour, TestUpstream};
use tokio::time::{Instant, timeout};

use super::{TEST_BOUND, ask_from, ede_code, metrics_addr, query, scrape, series, socket_on};
use crate::e2e_support::{serve, serve_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_never_answered_names_does_not_stop_another_client() -> TestResult {
    let _serial = crate::serial().await;
    timeout(TEST_BOUND, forward_flood()).await?
}

async fn forward_flood() -> TestResult {
    const NAMES: usize = 50;
    let records: Vec<(String, RData)> = (0..NAMES)
        .flat_map(|i| [format!("h{i}.example."), format!("b{i}.example.")])
        .map(|name| (name, RData::A(A::new(198, 51, 100, 9))))
        .collect();
    let records: Vec<(&str, RData)> = records
        .iter()
        .map(|(n, r)| (n.as_str(), r.clone()))
        .collect();
    let upstream = TestUpstream::start_with(
        &records,
        Behaviour {
            never_answer: Some("void.".into()),
            ..Behaviour::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.addr().to_string(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
    ]);
    let mut node = serve(args).await?;
    let metrics = metrics_addr(&mut node)?;
    let server = node.dns_udp[0];

    // The baseline: the second client's names without a flood.
    let start = Instant::now();
    for i in 0..NAMES {
        let name = format!("b{i}.example.");
        let (response, _) = ask_from("127.0.1.1", server, &name, Duration::from_secs(2), 3).await?;
        assert_eq!(response.answers.len(), 1, "{name}: {response:?}");
    }
    let baseline = start.elapsed();

    // The flood: fresh never-answered names from 127.0.0.1, 500 a second,
    // until the second client is done. Replies are not read.
    let flooding = Arc::new(AtomicBool::new(true));
    let sent = Arc::new(AtomicU64::new(0));
    let flood = {
        let (flooding, sent) = (flooding.clone(), sent.clone());
        tokio::spawn(async move {
            let socket = socket_on("127.0.0.1").await?;
            let start = Instant::now();
            let mut n: u64 = 0;
            while flooding.load(Ordering::Relaxed) {
                for _ in 0..5 {
                    let bytes = query(&format!("n{n}.void."))?.to_vec()?;
                    socket.send_to(&bytes, server).await?;
                    n += 1;
                }
                sent.store(n, Ordering::Relaxed);
                tokio::time::sleep_until(start + Duration::from_millis(10 * (n / 5))).await;
            }
            TestResult::Ok(())
        })
    };
    // Long enough for the flood to hold every slot it may: its names hang
    // for the whole 1.5 s attempt timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut answered = 0;
    let mut retries = 0;
    let start = Instant::now();
    for i in 0..NAMES {
        let name = format!("h{i}.example.");
        let (response, tries) =
            ask_from("127.0.1.1", server, &name, Duration::from_secs(2), 3).await?;
        assert_eq!(
            response.metadata.response_code,
            ResponseCode::NoError,
            "{name}: {response:?}"
        );
        assert_eq!(response.answers.len(), 1, "{name}: {response:?}");
        answered += 1;
        retries += tries - 1;
    }
    let took = start.elapsed();
    // The flooder itself, meanwhile, hears SERVFAIL with EDE 0 at once for
    // names over its share: a burst of 200 more (over its share of 128
    // whatever the background flood managed), replies read for a second.
    let burst = socket_on("127.0.0.1").await?;
    let asked = Instant::now();
    for i in 0..200 {
        burst
            .send_to(&query(&format!("burst{i}.void."))?.to_vec()?, server)
            .await?;
    }
    let (mut refused_at_once, mut first_refusal) = (0, None);
    let mut buf = vec![0u8; 65_535];
    while let Ok(received) = timeout(Duration::from_secs(1), burst.recv_from(&mut buf)).await {
        let (len, _) = received?;
        let response = Message::from_vec(&buf[..len])?;
        if response.metadata.response_code == ResponseCode::ServFail
            && ede_code(&response) == Some(0)
        {
            refused_at_once += 1;
            first_refusal.get_or_insert_with(|| asked.elapsed());
        }
    }
    let first_refusal = first_refusal.ok_or("no query of the flooder's burst was refused")?;
    assert!(
        refused_at_once >= 200 - 128,
        "at most its share of 128 may wait: {refused_at_once} of 200 refused"
    );
    flooding.store(false, Ordering::Relaxed);
    flood.await??;
    let text = tokio::task::spawn_blocking(move || scrape(metrics)).await??;
    let refused = series(
        &text,
        "kadns_resolver_forward_refusals_total{reason=\"client_share\"}",
    );
    let flood_sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "forward flood: {flood_sent} never-answered names from 127.0.0.1; second client \
         {answered}/{NAMES} answered in {took:?} (without the flood {baseline:?}, ratio {:.2}), \
         {retries} retries; flood queries refused (client_share) {refused}; of a burst \
         of 200 more, {refused_at_once} refused at once (SERVFAIL, EDE 0), the first in \
         {first_refusal:?}",
        took.as_secs_f64() / baseline.as_secs_f64()
    );
    assert_eq!(answered, NAMES);
    assert!(
        refused > 0,
        "the flood was held to its share of slots: {text}"
    );
    node.terminate()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_datagrams_on_a_forwards_socket_do_not_end_it() -> TestResult {
    let _serial = crate::serial().await;
    timeout(TEST_BOUND, junk()).await?
}

async fn junk() -> TestResult {
    // 100 datagrams (the old limit was 16) that do not answer the query reach the forward's socket
    // from the upstream's own address before the answer does.
    let upstream = TestUpstream::start_with(
        &[("sprayed.example.", RData::A(A::new(198, 51, 100, 11)))],
        Behaviour {
            junk_before_answer: 100,
            ..Behaviour::default()
        },
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend(["--upstream".into(), upstream.addr().to_string()]);
    let mut node = serve(args).await?;
    let server = node.dns_udp[0];
    let (response, tries) = ask_from(
        "127.0.0.1",
        server,
        "sprayed.example.",
        Duration::from_secs(5),
        1,
    )
    .await?;
    assert_eq!(
        response.metadata.response_code,
        ResponseCode::NoError,
        "{response:?}"
    );
    assert_eq!(response.answers.len(), 1, "{response:?}");
    assert_eq!(tries, 1);
    assert_eq!(
        upstream.queries(),
        1,
        "one exchange, not ended early and retried"
    );
    node.terminate()?;
    Ok(())
}
