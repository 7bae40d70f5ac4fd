//! Issue 7, done-when 3: names outlive every node that took them at publish
//! time. Ten `kadns serve` nodes take a 200-name zone published once; the
//! publisher is gone. Then, one at a time, a fresh node joins, the test waits
//! until it holds every record (its `kadns_dht_records` gauge), and an
//! original node is killed with `kill -9`. Once no original is left, every
//! name resolves with `dig` through the stub of a fresh node that has never
//! been asked for any of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use kadns_tests::process::KadnsProcess;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{
    POLL, addresses, blocking, dig as run_dig, generate_key, publish, replicas, serve, serve_args,
};

const ORIGINAL: usize = 10;
const FRESH: usize = 10;
const NAMES: usize = 200;
/// Bundles the zone is signed into: every name, plus the apex, which has no
/// records of its own and so is an empty non-terminal (a meta-only bundle).
const BUNDLES: usize = NAMES + 1;
/// Short, so the periodic round also runs during the test (the handover
/// does not wait for it).
const REPLICATION_INTERVAL: &str = "5s";
/// Bound on a fresh node receiving every record after it joined (2–6 s on a
/// busy 2-core machine in a debug build; generous for a saturated one).
const HANDOVER_DEADLINE: Duration = Duration::from_secs(60);

fn address(i: usize) -> String {
    format!("10.7.{}.{}", i / 250, i % 250 + 1)
}

fn zone_file() -> String {
    let mut text = String::from("$ORIGIN churn.kad.\n$TTL 300\n");
    for i in 0..NAMES {
        text.push_str(&format!("host{i} IN A {}\n", address(i)));
    }
    text
}

/// `kadns serve` with a short replication interval, metrics on, joining
/// through `bootstrap`.
async fn start_node(
    dir: &Path,
    name: &str,
    upstream: SocketAddr,
    zone_id: &str,
    bootstrap: &[String],
) -> TestResult<(KadnsProcess, SocketAddr)> {
    let mut args = serve_args(&dir.join(name), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.to_string(),
        "--replication-interval".into(),
        REPLICATION_INTERVAL.into(),
        "--metrics".into(),
        "127.0.0.1:0".into(),
        "--anchor".into(),
        format!("churn.kad={zone_id}"),
    ]);
    for addr in bootstrap {
        args.extend(["--bootstrap".into(), addr.clone()]);
    }
    let mut node = serve(args).await?;
    let metrics = node
        .stdout_lines()
        .iter()
        .find_map(|l| l.strip_prefix("metrics http "))
        .ok_or("no metrics line")?
        .parse()?;
    Ok((node, metrics))
}

/// The value of the `kadns_dht_records` gauge.
async fn records_held(metrics: SocketAddr) -> TestResult<u64> {
    blocking(move || {
        let mut stream = TcpStream::connect_timeout(&metrics, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET /metrics HTTP/1.1\r\nHost: {metrics}\r\nConnection: close\r\n\r\n"
        )?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix("kadns_dht_records "))
            .ok_or_else(|| format!("no kadns_dht_records in {text}"))?;
        Ok(value.trim().parse()?)
    })
    .await
}

async fn wait_for_records(metrics: SocketAddr, what: &str) -> TestResult<Duration> {
    let started = Instant::now();
    let deadline = started + HANDOVER_DEADLINE;
    loop {
        let held = records_held(metrics).await?;
        if held >= BUNDLES as u64 {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} holds {held} of {BUNDLES} records after {HANDOVER_DEADLINE:?}"
            )
            .into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn every_name_survives_replacing_every_node_with_kill_9() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(300), run()).await?
}

async fn run() -> TestResult {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let upstream = TestUpstream::start(&[]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone = dir.path().join("churn.zone");
    std::fs::write(&zone, zone_file())?;

    let mut originals = Vec::with_capacity(ORIGINAL);
    for i in 0..ORIGINAL {
        let bootstrap: Vec<String> = originals
            .iter()
            .take(1)
            .map(|(n, _): &(KadnsProcess, SocketAddr)| n.p2p_addr().to_owned())
            .collect();
        originals.push(
            start_node(
                dir.path(),
                &format!("o{i}"),
                upstream.addr(),
                &zone_id,
                &bootstrap,
            )
            .await?,
        );
    }

    // Published once, through a node in the middle; the publisher exits.
    let run = publish(&key, &zone, originals[5].0.p2p_addr(), 3).await?;
    assert!(run.success, "zone publish: {run:?}");
    let stored = replicas(&run.stdout);
    assert_eq!(stored.len(), BUNDLES, "{}", run.stdout);
    assert!(stored.iter().all(|(_, n)| *n >= 3), "{}", run.stdout);
    tracing::info!(elapsed = ?started.elapsed(), "published");

    // One at a time: a fresh node joins through the nodes alive now, gets
    // every record, and an original dies without a chance to clean up.
    let mut fresh: Vec<(KadnsProcess, SocketAddr)> = Vec::with_capacity(FRESH);
    for i in 0..FRESH {
        let bootstrap: Vec<String> = originals[i..]
            .iter()
            .chain(&fresh)
            .rev()
            .take(3)
            .map(|(n, _)| n.p2p_addr().to_owned())
            .collect();
        let node = start_node(
            dir.path(),
            &format!("f{i}"),
            upstream.addr(),
            &zone_id,
            &bootstrap,
        )
        .await?;
        let took = wait_for_records(node.1, &format!("fresh node {i}")).await?;
        tracing::info!(i, ?took, "fresh node holds every record");
        fresh.push(node);
        originals[i].0.kill9()?;
    }
    drop(originals);
    tracing::info!(elapsed = ?started.elapsed(), "every original node killed");

    // The last fresh node's stub has never been asked: every answer is a DHT
    // lookup among the fresh nodes, verified.
    let (last, _) = fresh.last().ok_or("no fresh node")?;
    let stub = last.dns_udp[0];
    let mut args = vec!["+notcp".to_owned()];
    for i in 0..NAMES {
        args.extend([format!("host{i}.churn.kad"), "A".to_owned()]);
    }
    let out = run_dig(stub, args).await?;
    let responses = dig::responses(&out);
    assert_eq!(responses.len(), NAMES, "{out}");
    for (i, response) in responses.iter().enumerate() {
        assert_eq!(
            dig::status(response).as_deref(),
            Some("NOERROR"),
            "host{i}: {response}"
        );
        assert!(
            dig::flags(response).contains(&"ad".to_owned()),
            "host{i}: no AD: {response}"
        );
        assert_eq!(
            addresses(response)?,
            [address(i)].into(),
            "host{i}: {response}"
        );
    }
    tracing::info!(elapsed = ?started.elapsed(), "every name resolved");
    drop(fresh);
    Ok(())
}
