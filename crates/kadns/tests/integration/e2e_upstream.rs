//! Names outside kadns, through `kadns serve` and real `dig`: forwarded to a
//! loopback upstream; SERVFAIL in bounded time when the upstream is gone or
//! silent; and an upstream that leads back to the stub is refused at start
//! or detected as a loop, never followed round and round.

use std::net::SocketAddr;
use std::time::Duration;

use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::RecordType;
use kadns_record::hickory_proto::rr::rdata::{A, AAAA};
use kadns_tests::client::{self, query_message};
use kadns_tests::net::wait_until;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{
    CLI_TIMEOUT, answers, assert_alive, dig as run_dig, free_port, serve, serve_args,
    serve_with_env,
};
use crate::support::kadns_async;

/// A failure must reach the client well inside a client's patience.
const SERVFAIL_WITHIN: Duration = Duration::from_secs(10);

/// Resolver debug logs on stderr: what shows that a loop was seen.
const LOOP_LOG: (&str, &str) = ("KADNS_LOG", "warn,kadns_resolver=debug");

fn no_dig() -> bool {
    if dig::available() {
        return false;
    }
    eprintln!("dig is not installed: skipping (CI installs it)");
    true
}

/// Asks `server` once with dig (UDP or TCP; 9 s per try) and returns the
/// status and how long the answer took.
async fn timed(
    server: SocketAddr,
    tcp: bool,
    name: &str,
    rtype: &str,
) -> TestResult<(String, Duration, String)> {
    let transport = if tcp { "+tcp" } else { "+notcp" };
    let args = vec![
        "+time=9".to_owned(),
        transport.to_owned(),
        name.to_owned(),
        rtype.to_owned(),
    ];
    let start = Instant::now();
    let out = run_dig(server, args).await?;
    let took = start.elapsed();
    Ok((dig::status(&out).unwrap_or_default(), took, out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn outside_names_are_forwarded_and_a_dead_upstream_fails_fast() -> TestResult {
    if no_dig() {
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir()?;
        let upstream = TestUpstream::start(&[
            ("outside.example.", RData::A(A::new(198, 51, 100, 7))),
            (
                "outside.example.",
                RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
            ),
        ])
        .await?;
        let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
        args.extend(["--upstream".into(), upstream.addr().to_string()]);
        let mut stub = serve(args).await?;
        let server = stub.dns_udp[0];

        // Forwarded, over UDP and TCP: exactly the upstream's record, the
        // client's letter case kept, no AD (the upstream did not set it).
        for (tcp, rtype, rdata) in [(false, "A", "198.51.100.7"), (true, "AAAA", "2001:db8::7")] {
            let (status, _, out) = timed(server, tcp, "OutSide.Example", rtype).await?;
            assert_eq!(status, "NOERROR", "{out}");
            let got = answers(&out)?;
            assert_eq!(got.len(), 1, "{out}");
            assert_eq!(
                (
                    got[0].owner.as_str(),
                    got[0].rtype.as_str(),
                    got[0].rdata.as_str()
                ),
                ("OutSide.Example.", rtype, rdata),
                "{out}"
            );
            assert!(got[0].ttl <= 300, "{out}");
            assert!(!dig::flags(&out).contains(&"ad".to_owned()), "{out}");
        }
        assert!(upstream.queries() >= 2, "{}", upstream.queries());
        let missing = timed(server, false, "missing.example", "A").await?;
        assert_eq!(missing.0, "NXDOMAIN", "{}", missing.2);

        // The upstream goes away: a name not asked before fails, quickly.
        let gone = upstream.addr();
        drop(upstream);
        let probe = query_message("probe.example.", RecordType::A, None)?.to_vec()?;
        wait_until("the upstream to stop", Duration::from_secs(10), || {
            let probe = probe.clone();
            async move {
                client::udp_raw(gone, &probe, Duration::from_millis(100))
                    .await
                    .is_ok_and(|reply| reply.is_none())
            }
        })
        .await?;
        for (tcp, name) in [(false, "gone.example"), (true, "gone-too.example")] {
            let (status, took, out) = timed(server, tcp, name, "A").await?;
            assert_eq!(status, "SERVFAIL", "{out}");
            assert!(took < SERVFAIL_WITHIN, "SERVFAIL after {took:?}");
        }

        // An upstream that listens but never answers: SERVFAIL in bounded time.
        let silent_udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        let silent_addr = silent_udp.local_addr()?;
        let _silent_tcp = std::net::TcpListener::bind(silent_addr)?;
        let mut args = serve_args(&dir.path().join("silent"), "127.0.0.1:0");
        args.extend(["--upstream".into(), silent_addr.to_string()]);
        let mut quiet = serve(args).await?;
        for tcp in [false, true] {
            let (status, took, out) = timed(quiet.dns_udp[0], tcp, "quiet.example", "A").await?;
            assert_eq!(status, "SERVFAIL", "{out}");
            assert!(took < SERVFAIL_WITHIN, "SERVFAIL after {took:?}");
        }
        assert_alive(&mut stub)?;
        assert_alive(&mut quiet)?;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn an_upstream_that_is_the_stub_itself_is_refused_at_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let own = format!("127.0.0.1:{port}");
    let mut args = serve_args(&dir.path().join("self"), &own);
    args.extend(["--upstream".into(), own.clone()]);
    let run = kadns_async(&args, CLI_TIMEOUT).await?;
    run.assert_error(&[own.as_str(), "upstream"]);
    assert_eq!(
        run.stderr.trim().lines().count(),
        1,
        "one line: {}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("dns udp"),
        "it never listened: {}",
        run.stdout
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn two_stubs_forwarding_to_each_other_get_servfail_not_a_loop() -> TestResult {
    if no_dig() {
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir()?;
        let (port_a, port_b) = (free_port()?, free_port()?);
        let (addr_a, addr_b) = (format!("127.0.0.1:{port_a}"), format!("127.0.0.1:{port_b}"));
        let mut args_a = serve_args(&dir.path().join("a"), &addr_a);
        args_a.extend(["--upstream".into(), addr_b.clone()]);
        let mut args_b = serve_args(&dir.path().join("b"), &addr_b);
        args_b.extend(["--upstream".into(), addr_a.clone()]);
        let mut a = serve_with_env(args_a, &[LOOP_LOG]).await?;
        let mut b = serve_with_env(args_b, &[LOOP_LOG]).await?;
        let (server_a, server_b) = (a.dns_udp[0], b.dns_udp[0]);

        // Lower case (the stub sends it on in random case) and mixed case
        // (sent on as it is), to either stub, over UDP and TCP.
        for (server, tcp, name) in [
            (server_a, false, "outside.example"),
            (server_a, true, "Outside.Example"),
            (server_b, false, "Other.Example"),
            (server_b, true, "other.example"),
        ] {
            let (status, took, out) = timed(server, tcp, name, "A").await?;
            assert_eq!(status, "SERVFAIL", "{name}: {out}");
            assert!(took < SERVFAIL_WITHIN, "{name}: SERVFAIL after {took:?}");
        }
        // Several at once, while the loop is being cut.
        let mut burst = tokio::task::JoinSet::new();
        for i in 0..16 {
            let server = if i % 2 == 0 { server_a } else { server_b };
            burst.spawn(timed(server, i % 4 == 1, "burst.example", "AAAA"));
        }
        while let Some(done) = burst.join_next().await {
            let (status, took, out) = done??;
            assert_eq!(status, "SERVFAIL", "{out}");
            assert!(took < SERVFAIL_WITHIN, "SERVFAIL after {took:?}");
        }

        // Both still run, and the loop was seen as one (not timed out).
        assert_alive(&mut a)?;
        assert_alive(&mut b)?;
        let needle = "came back while being forwarded";
        let seen = a.stderr().contains(needle) || b.stderr().contains(needle);
        assert!(
            seen,
            "no loop detected; a: {}\nb: {}",
            a.stderr(),
            b.stderr()
        );
        // And they still answer promptly afterwards.
        let (status, took, out) = timed(server_a, false, "after.example", "A").await?;
        assert_eq!(status, "SERVFAIL", "{out}");
        assert!(took < SERVFAIL_WITHIN, "SERVFAIL after {took:?}");
        Ok(())
    })
    .await?
}
