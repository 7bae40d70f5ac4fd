//! Serve-stale through the real binary (issue 8, done-when 1): a zone signed
//! for 30 s is published on three storage nodes; a client-mode stub (it
//! holds no replica) resolves a name once; every storage node is stopped.
//! The stub keeps answering the name from its last verified bundle with
//! EDE 3 and TTL ≤ 30, also after a restart with the network still down
//! (the persisted cache), until the signature expires; then SERVFAIL with an
//! EDE. A name never seen is SERVFAIL with EDE 22, never NXDOMAIN.

use std::net::SocketAddr;
use std::time::Duration;

use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{
    PUBLISH_TIMEOUT, answers, dig as run_dig, dig_until, ede_code, generate_key, network, serve,
    serve_args, terminate,
};
use crate::support::kadns_async;

const STORAGE_NODES: usize = 3;
/// How long the signatures are valid: short, so that expiry comes soon.
const VALIDITY_SECS: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn a_stub_serves_stale_until_the_signed_expiry_and_never_a_false_nxdomain() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(90), run()).await?
}

fn stub_args(
    dir: &std::path::Path,
    upstream: SocketAddr,
    bootstrap: &str,
    zone_id: &str,
) -> Vec<String> {
    let mut args = serve_args(&dir.join("stub"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.to_string(),
        "--bootstrap".into(),
        bootstrap.to_owned(),
        "--anchor".into(),
        format!("stale.kad={zone_id}"),
        "--dht-client".into(),
    ]);
    args
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone = dir.path().join("stale.zone");
    std::fs::write(
        &zone,
        "$ORIGIN stale.kad.\nwww 5 IN A 192.0.2.80\ngone 5 IN TXT \"x\"\n",
    )?;

    let mut nodes = network(dir.path(), upstream.addr(), STORAGE_NODES, &[]).await?;
    let bootstrap = nodes[0].p2p_addr().to_owned();
    let validity = format!("{VALIDITY_SECS}s");
    let run = kadns_async(
        [
            "zone",
            "publish",
            "--key",
            &key.display().to_string(),
            &zone.display().to_string(),
            "--bootstrap",
            &bootstrap,
            "--min-replicas",
            "3",
            "--validity",
            &validity,
        ],
        PUBLISH_TIMEOUT,
    )
    .await?;
    assert!(run.success, "zone publish: {run:?}");
    // The signatures expire VALIDITY_SECS after signing, which was before now.
    let expiry = Instant::now() + Duration::from_secs(VALIDITY_SECS);

    let stub = serve(stub_args(dir.path(), upstream.addr(), &bootstrap, &zone_id)).await?;
    let addr = stub.dns_udp[0];
    let out = dig_until(
        addr,
        &["www.stale.kad", "A"],
        Duration::from_secs(15),
        |out| {
            dig::status(out).as_deref() == Some("NOERROR")
                && !answers(out).unwrap_or_default().is_empty()
        },
    )
    .await?;
    assert_eq!(ede_code(&out), None, "a fresh answer has no EDE: {out}");
    // With the network up, a name nobody published is proven absent.
    let out = run_dig(addr, vec!["nope.stale.kad".into(), "A".into()]).await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NXDOMAIN"), "{out}");

    // Every storage node goes away.
    for node in nodes.drain(..) {
        terminate(node).await?;
    }

    // Once the 5 s TTL has run out: the last verified bundle, stale.
    let out = dig_until(
        addr,
        &["www.stale.kad", "A"],
        Duration::from_secs(15),
        |out| ede_code(out) == Some(3),
    )
    .await?;
    assert_stale(&out, true)?;
    // kdig, a second client, reads the same option.
    if let Some(out) = kdig(addr, "www.stale.kad").await? {
        assert!(out.contains("EDE: 3"), "kdig: {out}");
        assert!(out.contains("Stale Answer"), "kdig: {out}");
    }
    // Never seen: SERVFAIL, DHT unreachable, never NXDOMAIN.
    let out = run_dig(addr, vec!["never.stale.kad".into(), "A".into()]).await?;
    assert_eq!(dig::status(&out).as_deref(), Some("SERVFAIL"), "{out}");
    assert_eq!(ede_code(&out), Some(22), "{out}");
    assert!(out.contains("No Reachable Authority"), "{out}");
    // A client without EDNS gets no OPT record, so no EDE, and still SERVFAIL.
    let out = run_dig(
        addr,
        vec!["+noedns".into(), "never.stale.kad".into(), "A".into()],
    )
    .await?;
    assert_eq!(dig::status(&out).as_deref(), Some("SERVFAIL"), "{out}");
    assert_eq!(ede_code(&out), None, "{out}");

    // Restarted with the network still down: answered from the persisted cache.
    terminate(stub).await?;
    let stub = serve(stub_args(dir.path(), upstream.addr(), &bootstrap, &zone_id)).await?;
    let addr = stub.dns_udp[0];
    assert!(
        Instant::now() < expiry,
        "the restart came before the signed expiry"
    );
    let out = run_dig(addr, vec!["www.stale.kad".into(), "A".into()]).await?;
    assert_stale(&out, false)?;

    // Past the signed expiry: SERVFAIL with an EDE, never the old data.
    tokio::time::sleep_until(expiry + Duration::from_secs(1)).await;
    let out = dig_until(
        addr,
        &["www.stale.kad", "A"],
        Duration::from_secs(35),
        |out| dig::status(out).as_deref() == Some("SERVFAIL"),
    )
    .await?;
    assert!(answers(&out)?.is_empty(), "{out}");
    assert!(ede_code(&out).is_some(), "an EDE says why: {out}");
    let out = run_dig(addr, vec!["never.stale.kad".into(), "A".into()]).await?;
    assert_eq!(dig::status(&out).as_deref(), Some("SERVFAIL"), "{out}");
    assert_eq!(ede_code(&out), Some(22), "{out}");
    drop(stub);
    Ok(())
}

fn assert_stale(out: &str, first: bool) -> TestResult {
    assert_eq!(dig::status(out).as_deref(), Some("NOERROR"), "{out}");
    assert_eq!(ede_code(out), Some(3), "{out}");
    assert!(out.contains("Stale Answer"), "{out}");
    let records = answers(out)?;
    assert_eq!(records.len(), 1, "{out}");
    assert_eq!(records[0].rdata, "192.0.2.80", "{out}");
    assert!(
        (1..=30).contains(&records[0].ttl),
        "a stale TTL is at most 30 s: {out}"
    );
    if first {
        assert!(
            records[0].ttl > 5,
            "the stale window's TTL, not the published 5 s: {out}"
        );
    }
    Ok(())
}

/// `kdig @addr NAME A` (bounded), or `None` when kdig is not installed.
async fn kdig(addr: SocketAddr, name: &str) -> TestResult<Option<String>> {
    let name = name.to_owned();
    crate::e2e_support::blocking(move || {
        let output = match std::process::Command::new("kdig")
            .arg(format!("@{}", addr.ip()))
            .arg("-p")
            .arg(addr.port().to_string())
            .args(["+time=5", "+retry=0", "+edns", &name, "A"])
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("kdig is not installed: skipping its check (CI installs it)");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        Ok(Some(String::from_utf8(output.stdout)?))
    })
    .await
}
