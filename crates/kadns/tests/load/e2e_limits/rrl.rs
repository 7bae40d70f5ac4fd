//! Response-rate limiting: answers near the limit, slips as TC, and another
//! prefix spared.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kadns_record::hickory_proto::op::Message;
use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::TestResult;
use kadns_tests::upstream::TestUpstream;
use tokio::time::{Instant, timeout};

use super::{TEST_BOUND, ask_from, config_file, metrics_addr, query, scrape, series, socket_on};
use crate::e2e_support::{serve, serve_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_near_the_limit_slips_tc_and_spares_another_prefix() -> TestResult {
    let _serial = crate::serial().await;
    timeout(TEST_BOUND, rate_limit()).await?
}

async fn rate_limit() -> TestResult {
    const RATE: u64 = 100;
    const SENT: u64 = 5_000;
    let upstream =
        TestUpstream::start(&[("rrl.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let dir = tempfile::tempdir()?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--config".into(),
        config_file(dir.path(), &format!("[dns]\nrate_limit = {RATE}\n"))?,
        "--upstream".into(),
        upstream.addr().to_string(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
    ]);
    let mut node = serve(args).await?;
    let metrics = metrics_addr(&mut node)?;
    let server = node.dns_udp[0];
    // The answer cached first, from a third prefix.
    let (primed, _) = ask_from(
        "127.0.2.1",
        server,
        "rrl.example.",
        Duration::from_secs(5),
        3,
    )
    .await?;
    assert_eq!(primed.answers.len(), 1, "{primed:?}");

    // The flood: 5,000 identical queries from 127.0.0.1 in about a second,
    // 50 every 10 ms; every reply read as it comes.
    let flood = Arc::new(socket_on("127.0.0.1").await?);
    let (answered, slipped, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let reader = {
        let (flood, answered, slipped, other) = (
            flood.clone(),
            answered.clone(),
            slipped.clone(),
            other.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_535];
            // When the stub answered: the first and the last reply.
            let mut span: Option<(Instant, Instant)> = None;
            loop {
                let received =
                    match timeout(Duration::from_secs(2), flood.recv_from(&mut buf)).await {
                        Ok(Ok((len, _))) => len,
                        _ => break,
                    };
                let now = Instant::now();
                span = Some(span.map_or((now, now), |(first, _)| (first, now)));
                match Message::from_vec(&buf[..received]) {
                    Ok(m) if m.metadata.truncation && m.answers.is_empty() => {
                        slipped.fetch_add(1, Ordering::Relaxed)
                    }
                    Ok(m) if m.answers.len() == 1 => answered.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
            span.map_or(Duration::ZERO, |(first, last)| last - first)
        })
    };
    let bytes = query("rrl.example.")?.to_vec()?;
    let flooding = Arc::new(AtomicBool::new(true));
    let flood_sent = Arc::new(AtomicU64::new(0));
    // The second client, in 127.0.1.0/24, asks 20 times once the flood is
    // under way (500 sent), the first answers at least inside it.
    let second = {
        let (flooding, flood_sent) = (flooding.clone(), flood_sent.clone());
        tokio::spawn(async move {
            while flood_sent.load(Ordering::Relaxed) < 500 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let mut retries = 0;
            let mut answers = 0;
            let mut overlapped = false;
            for i in 0..20 {
                let (response, tries) = ask_from(
                    "127.0.1.1",
                    server,
                    "rrl.example.",
                    Duration::from_secs(1),
                    3,
                )
                .await?;
                assert!(!response.metadata.truncation, "{response:?}");
                assert_eq!(response.answers.len(), 1, "{response:?}");
                retries += tries - 1;
                answers += 1;
                if i == 0 {
                    overlapped = flooding.load(Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            assert!(
                overlapped,
                "the second client was answered during the flood"
            );
            TestResult::Ok((answers, retries))
        })
    };
    let start = Instant::now();
    for burst in 0..SENT / 50 {
        for _ in 0..50 {
            flood.send_to(&bytes, server).await?;
        }
        flood_sent.fetch_add(50, Ordering::Relaxed);
        // Paced against the clock, not by bare sleeps adding up.
        let next = start + Duration::from_millis(10 * (burst + 1));
        tokio::time::sleep_until(next).await;
    }
    let elapsed = start.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let (second_answers, second_retries) = second.await??;
    // Stragglers: the reader stops 2 s after the last reply.
    let replying = reader.await?;
    let (answered, slipped, other) = (
        answered.load(Ordering::Relaxed),
        slipped.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    let text = tokio::task::spawn_blocking(move || scrape(metrics)).await??;
    let dropped = series(&text, "kadns_stub_rrl_dropped_total");
    let slipped_server = series(&text, "kadns_stub_rrl_slipped_total");
    eprintln!(
        "rrl: rate {RATE}/s, sent {SENT} in {elapsed:?}, replies over {replying:?}: answered {answered}, slipped (TC) {slipped}, \
         other {other}, server dropped {dropped}, server slipped {slipped_server}; \
         second client {second_answers}/20 answered, {second_retries} retries"
    );
    // A full bucket (one second's worth) plus the refill while the stub was
    // replying (longer than the flood lasted when the machine is loaded and
    // the stub falls behind).
    let bound = RATE + RATE * replying.as_millis() as u64 / 1_000 + 10;
    assert!(
        answered <= bound,
        "{answered} answered, bound {bound} (replies over {replying:?})"
    );
    assert!(
        answered >= RATE / 2,
        "{answered} answered: the limit, not nothing"
    );
    assert!(
        slipped >= 1_000,
        "half of the limited replies slip: {slipped}"
    );
    assert!(
        slipped <= slipped_server,
        "every TC reply the client saw was a slip"
    );
    assert!(dropped >= 1_000, "the other half are dropped: {dropped}");
    assert_eq!(other, 0, "every reply is an answer or a bare TC");
    assert_eq!(second_answers, 20);
    node.terminate()?;
    Ok(())
}
