//! `publish` against a few in-process DHT nodes on loopback.

use std::collections::BTreeSet;
use std::time::Duration;

use kadns_dht::{DataDir, Mode, Node};
use kadns_publisher::testing::synthetic_zone;
use kadns_publisher::{Config, NamePublished, ParsedZone, Signer, ZoneState, publish};
use kadns_record::{SignedBundle, ZoneKey};
use kadns_tests::TestResult;
use kadns_tests::net::{TestNet, test_config};
use tracing_test::traced_test;

/// The bound on each whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

fn now() -> u64 {
    kadns_dht::unix_now()
}

/// `names` + 1 bundles of a synthetic zone, signed as at `at` with a fresh
/// state in `dir` (so the sequence is `at`).
fn signed(dir: &std::path::Path, seed: u8, names: usize, at: u64) -> TestResult<Vec<SignedBundle>> {
    let zone = ParsedZone::from_text(&synthetic_zone("example.org.", names), "t.zone", None)?;
    let state = ZoneState::at(dir.join(format!("state-{seed}-{at}")));
    let signer = Signer::new(ZoneKey::from_seed([seed; 32]), state, &Config::default())?;
    Ok(signer.sign_at(&zone, at)?.into_bundles())
}

/// A client-mode node that joined `net`, as `kadns zone publish` runs one.
async fn client(net: &TestNet) -> TestResult<Node> {
    let mut config = test_config();
    config.mode = Mode::Client;
    config.data_dir = DataDir::Temporary;
    config.bootstrap = vec![net.bootstrap_addr().await?];
    let node = Node::spawn(config).await?;
    node.handle()
        .wait_for_peers(1, Duration::from_secs(10))
        .await?;
    Ok(node)
}

/// How many of the net's nodes hold `bundle` in their own store, checking
/// that every node's lookup returns exactly its bytes.
async fn local_copies(net: &TestNet, bundle: &SignedBundle) -> TestResult<usize> {
    let mut copies = 0;
    for handle in net.handles() {
        let outcome = handle.get(bundle.dht_key()).await?;
        let best = outcome.best.ok_or("a node did not find the record")?;
        assert_eq!(best.as_bytes(), bundle.as_bytes());
        copies += usize::from(outcome.local);
    }
    Ok(copies)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn every_name_is_stored_and_its_replica_count_is_true() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(5).await?;
        let node = client(&net).await?;
        let bundles = signed(dir.path(), 1, 20, now())?;
        assert_eq!(bundles.len(), 21);

        let mut finished = Vec::new();
        let report = publish(&node.handle(), bundles.clone(), 4, |n: &NamePublished| {
            finished.push(n.index)
        })
        .await;

        // `on_done` once per name; the report in input order.
        assert_eq!(finished.len(), bundles.len());
        assert_eq!(
            finished.iter().copied().collect::<BTreeSet<_>>(),
            (0..bundles.len()).collect()
        );
        assert_eq!(report.names.len(), bundles.len());
        for (i, (name, bundle)) in report.names.iter().zip(&bundles).enumerate() {
            assert_eq!(name.index, i);
            assert_eq!(&name.owner, bundle.content().owner());
            assert_eq!(name.key, bundle.dht_key());
            assert_eq!(name.sequence, bundle.content().sequence());
            assert!(name.error.is_none(), "{name:?}");
            assert!(
                name.refused.is_empty() && name.failed.is_empty(),
                "{name:?}"
            );
            // A client stores nothing itself: every replica is a server.
            assert!(!name.stored_on.contains(&node.peer_id()));
            // The count is true: exactly the nodes that hold it on disk.
            assert_eq!(
                name.replicas(),
                local_copies(&net, bundle).await?,
                "{name:?}"
            );
            assert_eq!(name.replicas(), net.len(), "{name:?}");
        }
        assert!(report.all_meet(net.len()));
        assert_eq!(report.fewest_replicas(), Some(net.len()));
        node.shutdown().await;
        net.shutdown().await;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn a_refused_or_invalid_name_does_not_stop_the_others() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(3).await?;
        let handle = net.nodes()[0].handle();
        let t = now();

        // Newer versions of two names go in first.
        let newer = signed(dir.path(), 2, 1, t)?;
        let first = publish(&handle, newer.clone(), 8, |_| {}).await;
        assert!(first.all_meet(3), "{first:?}");

        // Then: those two names at an older sequence, an expired bundle of
        // another zone, and names nobody holds yet.
        let older = signed(dir.path(), 2, 1, t - 100)?;
        let expired = signed(dir.path(), 3, 0, t - 10 * 86_400)?;
        let fresh = signed(dir.path(), 4, 3, t)?;
        let mut bundles = older.clone();
        bundles.extend(expired);
        bundles.extend(fresh.clone());
        let mut calls = 0;
        let report = publish(&handle, bundles, 8, |_| calls += 1).await;
        assert_eq!(calls, report.names.len());
        assert_eq!(report.names.len(), older.len() + 1 + fresh.len());

        for name in &report.names[..older.len()] {
            assert!(name.error.is_none(), "{name:?}");
            assert_eq!(name.replicas(), 0, "{name:?}");
            assert!(name.answered());
            assert_eq!(name.refusal_counts().get("older"), Some(&3), "{name:?}");
        }
        let bad = &report.names[older.len()];
        let error = bad
            .error
            .as_ref()
            .ok_or("the expired bundle was published")?;
        assert!(error.to_string().contains("expired"), "{error}");
        assert_eq!(bad.replicas(), 0);
        for name in &report.names[older.len() + 1..] {
            assert!(name.meets(3), "{name:?}");
        }
        let below: Vec<usize> = report.below(1).map(|n| n.index).collect();
        assert_eq!(below, (0..=older.len()).collect::<Vec<_>>());
        assert_eq!(report.errors().count(), 1);

        // The network still answers with the newer versions.
        for bundle in &newer {
            assert_eq!(local_copies(&net, bundle).await?, 3);
        }
        net.shutdown().await;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn a_stopped_node_fails_every_name_without_panicking() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let node = Node::spawn(test_config()).await?;
        let handle = node.handle();
        node.shutdown().await;
        let bundles = signed(dir.path(), 5, 4, now())?;
        let report = publish(&handle, bundles.clone(), 0, |_| {}).await;
        assert_eq!(report.names.len(), bundles.len());
        assert_eq!(report.errors().count(), bundles.len());
        assert!(!report.any_answer());
        assert!(
            report.names.iter().all(|n| matches!(
                n.error,
                Some(kadns_publisher::PublishError::Put {
                    source: kadns_dht::Error::Shutdown,
                    ..
                })
            )),
            "{report:?}"
        );
        Ok(())
    })
    .await?
}
