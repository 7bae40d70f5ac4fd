//! TCP under 3,000 idle connections: a new query still answered at once.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tokio::time::timeout;

use super::{TEST_BOUND, config_file, metrics_addr, scrape, series};
use crate::e2e_support::{dig as run_dig, serve, serve_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_query_is_answered_within_a_second_under_3000_idle_connections() -> TestResult {
    let _serial = crate::serial().await;
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    timeout(TEST_BOUND, idle_connections()).await?
}

async fn idle_connections() -> TestResult {
    const IDLE: usize = 3_000;
    let limit = kadns::raise_nofile_limit()?;
    assert!(
        limit >= 4_096,
        "the test needs 3,000 descriptors and more, the hard limit is {limit}"
    );
    let upstream = TestUpstream::start(&[
        ("tcp.example.", RData::A(A::new(198, 51, 100, 8))),
        ("base.example.", RData::A(A::new(198, 51, 100, 8))),
    ])
    .await?;
    let dir = tempfile::tempdir()?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        // Idle connections stay until evicted: only the caps close them.
        "--config".into(),
        config_file(dir.path(), "[dns]\ntcp_idle_timeout_secs = 600\n")?,
        "--upstream".into(),
        upstream.addr().to_string(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
    ]);
    let mut node = serve(args).await?;
    let metrics = metrics_addr(&mut node)?;
    let server = node.dns_tcp[0];
    let baseline = tcp_query_time(server, "base.example.").await?;
    // 3,000 connections that never send a byte, 50 from each of 60
    // addresses (under the per-client cap of 64).
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        let source: IpAddr = format!("127.0.3.{}", 1 + i / 50).parse()?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        // Closed with a reset, not a FIN: 3,000 connections left in
        // TIME_WAIT on loopback for a minute slow the tests run after this
        // one (libp2p's dials among them) until they time out.
        socket2::SockRef::from(&socket).set_linger(Some(Duration::ZERO))?;
        socket.bind(SocketAddr::new(source, 0))?;
        idle.push(timeout(Duration::from_secs(10), socket.connect(server)).await??);
    }
    let start = std::time::Instant::now();
    let (out, query_time) = tcp_query_time(server, "tcp.example.").await?;
    let wall = start.elapsed();
    let text = tokio::task::spawn_blocking(move || scrape(metrics)).await??;
    let (open, evicted, refused) = (
        series(&text, "kadns_stub_tcp_connections"),
        series(&text, "kadns_stub_tcp_evicted_total"),
        series(&text, "kadns_stub_tcp_refused_total"),
    );
    eprintln!(
        "tcp: {IDLE} idle connections opened; dig +tcp query time {query_time} ms \
         (wall {wall:?} with dig's start; {} ms with no idle connection); open {open}, \
         evicted {evicted}, refused {refused}",
        baseline.1
    );
    assert_eq!(dig::status(&out).as_deref(), Some("NOERROR"), "{out}");
    assert!(out.contains("198.51.100.8"), "{out}");
    assert!(query_time < 1_000, "answered in {query_time} ms: {out}");
    assert!(open <= 1_024, "the global cap holds: {open} open");
    assert!(
        evicted as usize >= IDLE - 1_024,
        "the oldest idle connections made room: {evicted} evicted"
    );
    drop(idle);
    node.terminate()?;
    Ok(())
}

/// `dig +tcp NAME A` at `server`: its output and the query time it reports.
async fn tcp_query_time(server: SocketAddr, name: &str) -> TestResult<(String, u64)> {
    let out = run_dig(server, vec!["+tcp".into(), name.into(), "A".into()]).await?;
    let query_time = out
        .lines()
        .find_map(|l| {
            l.strip_prefix(";; Query time: ")?
                .strip_suffix(" msec")?
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("no query time in {out}"))?;
    Ok((out, query_time))
}
