//! `kadns zone publish` against a network of in-process DHT nodes: the
//! binary runs as a child process while the nodes run on this test's
//! multi-thread runtime.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kadns_publisher::{Config, ParsedZone, Signer, ZoneState, read_signed_file, write_signed_file};
use kadns_record::{SignedBundle, ZoneKey};
use kadns_tests::TestResult;
use kadns_tests::net::TestNet;
use tracing_test::traced_test;

use crate::support::{Run, all_types_zone, kadns_async};

/// The bound on each whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);
/// The bound on one run of the binary.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// Bundles of the all-types fixture: 10 names with records, 5 empty non-terminals.
const NAMES: usize = 15;

fn args<const N: usize>(items: [&dyn AsRef<std::ffi::OsStr>; N]) -> Vec<OsString> {
    items.iter().map(|a| a.as_ref().to_owned()).collect()
}

/// `kadns key generate` into `dir`: the key's path and zone id.
async fn new_key(dir: &Path) -> TestResult<(PathBuf, String)> {
    let path = dir.join("zone.key");
    let run = kadns_async(args([&"key", &"generate", &"--out", &path]), RUN_TIMEOUT).await?;
    assert!(run.success, "{run:?}");
    Ok((path, run.stdout.trim().to_owned()))
}

/// `kadns zone sign` of the fixture into `dir/zone.signed`.
async fn sign(key: &Path, dir: &Path) -> TestResult<PathBuf> {
    let out = dir.join("zone.signed");
    let run = kadns_async(
        args([
            &"zone",
            &"sign",
            &"--key",
            &key,
            &"--out",
            &out,
            &all_types_zone(),
        ]),
        RUN_TIMEOUT,
    )
    .await?;
    assert!(run.success, "{run:?}");
    Ok(out)
}

/// The bundles of a signed zone file, every entry well-formed.
fn bundles(path: &Path) -> TestResult<Vec<SignedBundle>> {
    read_signed_file(path)?
        .into_iter()
        .map(|e| e.bundle.map_err(Into::into))
        .collect()
}

/// `kadns zone publish EXTRA… --bootstrap ADDR`.
async fn publish(net: &TestNet, extra: Vec<OsString>) -> TestResult<Run> {
    let mut all: Vec<OsString> = args([&"zone", &"publish"]);
    all.extend(extra);
    all.extend(args([
        &"--bootstrap",
        &net.bootstrap_addr().await?.to_string(),
    ]));
    kadns_async(all, RUN_TIMEOUT).await
}

/// One result line of `zone publish`: status, owner name, replica count.
#[derive(Debug)]
struct Line {
    status: String,
    name: String,
    replicas: Option<usize>,
    text: String,
}

fn result_lines(stdout: &str) -> Vec<Line> {
    stdout
        .lines()
        .filter(|l| ["ok ", "LOW ", "FAIL "].iter().any(|p| l.starts_with(p)))
        .map(|l| {
            let mut words = l.split_whitespace();
            let status = words.next().unwrap_or_default().to_owned();
            let name = words.next().unwrap_or_default().to_owned();
            let replicas = words.next().and_then(|w| w.parse().ok());
            Line {
                status,
                name,
                replicas,
                text: l.to_owned(),
            }
        })
        .collect()
}

/// The line for `bundle`'s owner name.
fn line_for<'a>(lines: &'a [Line], bundle: &SignedBundle) -> TestResult<&'a Line> {
    let owner = bundle.content().owner().to_string();
    lines
        .iter()
        .find(|l| l.name == owner)
        .ok_or_else(|| format!("no line for {owner}").into())
}

/// Looks `bundle`'s key up from every node. Every node must find the same
/// bytes; returns them and how many nodes hold a copy in their own store.
async fn lookup_everywhere(net: &TestNet, bundle: &SignedBundle) -> TestResult<(Vec<u8>, usize)> {
    let mut found: Option<Vec<u8>> = None;
    let mut local = 0;
    for handle in net.handles() {
        let outcome = handle.get(bundle.dht_key()).await?;
        let best = outcome.best.ok_or("a node did not find the name")?;
        match &found {
            None => found = Some(best.as_bytes().to_vec()),
            Some(bytes) => assert_eq!(bytes.as_slice(), best.as_bytes()),
        }
        local += usize::from(outcome.local);
    }
    Ok((found.unwrap_or_default(), local))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn publish_with_key_stores_every_name_and_counts_truly() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(10).await?;
        let (key, zone_id) = new_key(dir.path()).await?;
        // An earlier signing: the names, keys and records to expect. The fixture's
        // 10 names come with 5 empty non-terminals: 15 bundles.
        let earlier = bundles(&sign(&key, dir.path()).await?)?;
        assert_eq!(earlier.len(), NAMES);

        let run = publish(&net, args([&"--key", &key, &all_types_zone()])).await?;
        assert!(run.success, "{run:?}");
        assert!(!run.stderr.contains("kadns: error"), "{run:?}");
        let lines = result_lines(&run.stdout);
        assert_eq!(lines.len(), NAMES, "{}", run.stdout);
        let summary = run.stdout.lines().last().unwrap_or_default();
        assert!(summary.contains(&zone_id), "{summary}");
        assert!(
            summary.contains("15 names, 15 ok, 0 low, 0 failed"),
            "{summary}"
        );

        for bundle in &earlier {
            let line = line_for(&lines, bundle)?;
            assert_eq!(line.status, "ok", "{line:?}");
            let replicas = line.replicas.ok_or("no replica count")?;
            assert!(replicas >= 3, "{line:?}");
            assert!(line.text.ends_with(" replicas"), "{line:?}");

            let (bytes, local) = lookup_everywhere(&net, bundle).await?;
            // The count is true: exactly the nodes that hold it on disk.
            assert_eq!(local, replicas, "{line:?}");
            let stored = SignedBundle::decode(&bytes)?;
            assert_eq!(stored.content().owner(), bundle.content().owner());
            assert_eq!(stored.content().records(), bundle.content().records());
            assert!(stored.content().sequence() > bundle.content().sequence());
            kadns_record::validate(&bundle.dht_key(), &bytes, kadns_dht::unix_now())?;
        }
        net.shutdown().await;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn publish_signed_stores_the_signed_bytes() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(10).await?;
        let (key, _) = new_key(dir.path()).await?;
        let signed = sign(&key, dir.path()).await?;
        let expected = bundles(&signed)?;

        let run = publish(&net, args([&"--signed", &signed])).await?;
        assert!(run.success, "{run:?}");
        let lines = result_lines(&run.stdout);
        assert_eq!(lines.len(), NAMES, "{}", run.stdout);
        for bundle in &expected {
            let line = line_for(&lines, bundle)?;
            assert_eq!(line.status, "ok", "{line:?}");
            let replicas = line.replicas.ok_or("no replica count")?;
            assert!(replicas >= 3, "{line:?}");
            let (bytes, local) = lookup_everywhere(&net, bundle).await?;
            assert_eq!(bytes, bundle.as_bytes());
            assert_eq!(local, replicas, "{line:?}");
        }
        net.shutdown().await;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn min_replicas_above_the_network_size_fails_naming_the_low_names() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(4).await?;
        let (key, _) = new_key(dir.path()).await?;
        let run = publish(
            &net,
            args([&"--key", &key, &all_types_zone(), &"--min-replicas", &"5"]),
        )
        .await?;
        run.assert_error(&[
            "15 of 15 names are stored on fewer than 5 nodes",
            "www",
            "publish again once more nodes are up",
        ]);
        let lines = result_lines(&run.stdout);
        assert_eq!(lines.len(), NAMES, "{}", run.stdout);
        for line in &lines {
            // Stored on every node there is, and still reported low.
            assert_eq!(line.status, "LOW", "{line:?}");
            assert_eq!(line.replicas, Some(4), "{line:?}");
            assert!(line.text.contains("(minimum 5)"), "{line:?}");
        }
        assert!(
            run.stdout.contains("0 ok, 15 low, 0 failed"),
            "{}",
            run.stdout
        );
        net.shutdown().await;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn an_unreachable_bootstrap_node_fails_clearly_within_the_timeout() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let (key, _) = new_key(dir.path()).await?;
        // A port nobody listens on any more.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let nobody = format!(
            "/ip4/127.0.0.1/tcp/{port}/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
        );
        let started = Instant::now();
        let run = kadns_async(
            args([
                &"zone",
                &"publish",
                &"--key",
                &key,
                &all_types_zone(),
                &"--bootstrap",
                &nobody,
                &"--timeout",
                &"3s",
            ]),
            RUN_TIMEOUT,
        )
        .await?;
        // Joining and the one probing lookup are each bounded by --timeout.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{:?}",
            started.elapsed()
        );
        run.assert_error(&["no DHT node answered", &nobody, "could be reached"]);
        assert!(result_lines(&run.stdout).is_empty(), "{run:?}");
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn expired_or_tampered_signed_files_are_refused_before_publishing() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(3).await?;
        let zone = ParsedZone::from_file(all_types_zone(), None)?;
        let mut config = Config::default();
        config.validity_secs = 86_400;
        let signer = |state: &str| {
            Signer::new(
                ZoneKey::from_seed([9; 32]),
                ZoneState::at(dir.path().join(state)),
                &config,
            )
        };
        let now = kadns_dht::unix_now();

        // Signed two days ago for one day: every name has expired.
        let expired = dir.path().join("expired.signed");
        write_signed_file(
            &expired,
            signer("old")?.sign_at(&zone, now - 2 * 86_400)?.bundles(),
        )?;
        let run = publish(&net, args([&"--signed", &expired])).await?;
        run.assert_error(&["15 of 15 names", "are not valid; nothing was published"]);
        let lines = result_lines(&run.stdout);
        assert_eq!(lines.len(), NAMES, "{run:?}");
        assert!(
            lines
                .iter()
                .all(|l| l.status == "FAIL" && l.text.contains("expired")),
            "{run:?}"
        );

        // A valid signing with one signature byte changed.
        let valid = signer("new")?.sign_at(&zone, now)?.into_bundles();
        let tampered = dir.path().join("tampered.signed");
        write_signed_file(&tampered, &valid)?;
        let mut bytes = std::fs::read(&tampered)?;
        // The first byte of the last bundle's signature (its R half, so the
        // bundle still decodes and only the signature check fails).
        let at = bytes.len() - 64;
        bytes[at] ^= 0x01;
        std::fs::write(&tampered, &bytes)?;
        let run = publish(&net, args([&"--signed", &tampered])).await?;
        run.assert_error(&["1 of 15 names", "nothing was published"]);
        let lines = result_lines(&run.stdout);
        assert_eq!(lines.len(), 1, "{run:?}");
        assert_eq!(lines[0].status, "FAIL");
        assert!(lines[0].text.contains("bad signature"), "{run:?}");
        let last = valid.last().ok_or("no bundles")?;
        assert_eq!(lines[0].name, last.content().owner().to_string());

        // Not one name reached the network.
        let handle = net.nodes()[0].handle();
        for bundle in &valid {
            let outcome = handle.get(bundle.dht_key()).await?;
            assert!(
                outcome.best.is_none(),
                "{} was published",
                bundle.content().owner()
            );
        }
        net.shutdown().await;
        Ok(())
    })
    .await?
}
