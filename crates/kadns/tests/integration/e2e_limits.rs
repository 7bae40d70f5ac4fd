//! Admission limits through the real `kadns serve`, with clients on other
//! loopback addresses (127.0.1.1 is another /24 than 127.0.0.1):
//! response-rate limiting with slip, TCP under 3,000 idle connections, fair
//! forwarding slots under a flood of never-answered names, and `--allow`
//! replacing the loopback default, and junk datagrams on a forward's socket
//! that do not end the forward. Every figure a test measures is printed
//! (`--nocapture`) for docs/performance.md.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use kadns_record::hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_record::hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use kadns_record::hickory_proto::rr::{Name, RData, RecordType};
use kadns_tests::upstream::{Behaviour, TestUpstream};
use kadns_tests::{TestResult, dig};
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

use crate::e2e_support::{dig as run_dig, serve, serve_args};

/// Bound on each whole test.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// A query for `name` A with EDNS (so that an EDE can come back).
fn query(name: &str) -> TestResult<Message> {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    Ok(message)
}

/// A UDP socket on `ip` (any loopback address: Linux answers the whole 127/8).
async fn socket_on(ip: &str) -> TestResult<UdpSocket> {
    Ok(UdpSocket::bind(SocketAddr::new(ip.parse()?, 0)).await?)
}

/// Asks `server` for `name` A from a socket on `from`, waiting `wait` per
/// try, `tries` times (a lost datagram is retried, as every stub resolver
/// does); the response, or an error once every try timed out.
async fn ask_from(
    from: &str,
    server: SocketAddr,
    name: &str,
    wait: Duration,
    tries: usize,
) -> TestResult<(Message, usize)> {
    let socket = socket_on(from).await?;
    let message = query(name)?;
    let bytes = message.to_vec()?;
    let mut buf = vec![0u8; 65_535];
    for attempt in 1..=tries {
        socket.send_to(&bytes, server).await?;
        let deadline = Instant::now() + wait;
        while let Ok(received) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            socket.recv_from(&mut buf),
        )
        .await
        {
            let (len, _) = received?;
            let response = Message::from_vec(&buf[..len])?;
            if response.metadata.id == message.metadata.id {
                return Ok((response, attempt));
            }
        }
    }
    Err(format!("no answer from {server} for {name} from {from} in {tries} tries").into())
}

/// The INFO-CODE of the response's Extended DNS Error, if any.
fn ede_code(response: &Message) -> Option<u16> {
    match response
        .edns
        .as_ref()?
        .options()
        .get(EdnsCode::Unknown(15))?
    {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => {
            Some(u16::from_be_bytes([data[0], data[1]]))
        }
        _ => None,
    }
}

/// `GET /metrics` from the node's metrics listener.
fn scrape(addr: SocketAddr) -> TestResult<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The value of one series in a scrape (0 when absent).
fn series(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// The metrics address a `kadns serve --metrics` printed.
fn metrics_addr(node: &mut kadns_tests::process::KadnsProcess) -> TestResult<SocketAddr> {
    Ok(node
        .stdout_lines()
        .iter()
        .find_map(|l| l.strip_prefix("metrics http "))
        .ok_or("no metrics line")?
        .parse()?)
}

/// Writes `text` as the node's configuration file and returns its path.
fn config_file(dir: &Path, text: &str) -> TestResult<String> {
    let path = dir.join("kadns.toml");
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_answers_near_the_limit_slips_tc_and_spares_another_prefix() -> TestResult {
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
            while let Ok((len, _)) = flood.recv_from(&mut buf).await {
                match Message::from_vec(&buf[..len]) {
                    Ok(m) if m.metadata.truncation && m.answers.is_empty() => {
                        slipped.fetch_add(1, Ordering::Relaxed)
                    }
                    Ok(m) if m.answers.len() == 1 => answered.fetch_add(1, Ordering::Relaxed),
                    _ => other.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };
    let bytes = query("rrl.example.")?.to_vec()?;
    let flooding = Arc::new(AtomicBool::new(true));
    // The second client, in 127.0.1.0/24, asks 20 times during the flood.
    let second = {
        let flooding = flooding.clone();
        tokio::spawn(async move {
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
                if i == 9 {
                    overlapped = flooding.load(Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
            assert!(
                overlapped,
                "half the second client's queries were asked during the flood"
            );
            TestResult::Ok((answers, retries))
        })
    };
    let start = Instant::now();
    for burst in 0..SENT / 50 {
        for _ in 0..50 {
            flood.send_to(&bytes, server).await?;
        }
        // Paced against the clock, not by bare sleeps adding up.
        let next = start + Duration::from_millis(10 * (burst + 1));
        tokio::time::sleep_until(next).await;
    }
    let elapsed = start.elapsed();
    flooding.store(false, Ordering::Relaxed);
    let (second_answers, second_retries) = second.await??;
    // Stragglers.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    reader.abort();
    let (answered, slipped, other) = (
        answered.load(Ordering::Relaxed),
        slipped.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
    );
    let text = tokio::task::spawn_blocking(move || scrape(metrics)).await??;
    let dropped = series(&text, "kadns_stub_rrl_dropped_total");
    let slipped_server = series(&text, "kadns_stub_rrl_slipped_total");
    eprintln!(
        "rrl: rate {RATE}/s, sent {SENT} in {elapsed:?}: answered {answered}, slipped (TC) {slipped}, \
         other {other}, server dropped {dropped}, server slipped {slipped_server}; \
         second client {second_answers}/20 answered, {second_retries} retries"
    );
    // A full bucket (one second's worth) plus the refill while the flood lasts.
    let bound = RATE + RATE * elapsed.as_millis() as u64 / 1_000 + 10;
    assert!(
        answered <= bound,
        "{answered} answered, bound {bound} ({elapsed:?})"
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_query_is_answered_within_a_second_under_3000_idle_connections() -> TestResult {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_never_answered_names_does_not_stop_another_client() -> TestResult {
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
         {retries} retries; flood queries refused (client_share) {refused}",
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
async fn allow_replaces_the_loopback_default() -> TestResult {
    timeout(TEST_BOUND, allow()).await?
}

async fn allow() -> TestResult {
    let upstream =
        TestUpstream::start(&[("allowed.example.", RData::A(A::new(198, 51, 100, 10)))]).await?;
    let dir = tempfile::tempdir()?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.addr().to_string(),
        "--allow".into(),
        "127.0.0.2/32".into(),
    ]);
    let mut node = serve(args).await?;
    let server = node.dns_udp[0];
    let wait = Duration::from_secs(5);
    let (refused, _) = ask_from("127.0.0.1", server, "allowed.example.", wait, 2).await?;
    assert_eq!(
        refused.metadata.response_code,
        ResponseCode::Refused,
        "{refused:?}"
    );
    assert_eq!(
        ede_code(&refused),
        Some(18),
        "EDE 18 Prohibited: {refused:?}"
    );
    assert!(refused.answers.is_empty());
    let (answered, _) = ask_from("127.0.0.2", server, "allowed.example.", wait, 2).await?;
    assert_eq!(answered.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answered.answers.len(), 1, "{answered:?}");
    node.terminate()?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_datagrams_on_a_forwards_socket_do_not_end_it() -> TestResult {
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
