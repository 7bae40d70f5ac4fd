//! `ZonePublisher` against in-process DHT nodes: incremental rounds,
//! tombstones, the refresh schedule and the state across a restart.

use std::time::Duration;

use kadns_dht::{DataDir, Mode, Node};
use kadns_publisher::testing::synthetic_zone;
use kadns_publisher::{
    Config, StateError, ZoneCheck, ZonePublishError, ZonePublisher, generate_key,
};
use kadns_record::{DhtKey, OwnerName};
use kadns_tests::TestResult;
use kadns_tests::net::{TestNet, test_config};
use tracing_test::traced_test;

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const NAMES: usize = 60;

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

fn host(i: usize) -> OwnerName {
    OwnerName::from_labels([format!("host{i}").as_bytes()]).expect("a valid label")
}

/// Rewrites one line of the zone file, the way an editor saves it.
fn edit(path: &std::path::Path, from: &str, to: &str) -> TestResult {
    let text = std::fs::read_to_string(path)?;
    assert!(text.contains(from), "{from:?} not in the zone");
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text.replacen(from, to, 1))?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn edits_republish_only_the_names_they_touch() -> TestResult {
    tokio::time::timeout(TEST_TIMEOUT, async {
        let dir = tempfile::tempdir()?;
        let net = TestNet::start(5).await?;
        let node = client(&net).await?;
        let dht = node.handle();
        let key_path = dir.path().join("z.key");
        let key = generate_key(&key_path)?;
        let zone_path = dir.path().join("z.zone");
        std::fs::write(&zone_path, synthetic_zone("example.org.", NAMES))?;
        let mut config = Config::default();
        config.validity_secs = 86_400;

        let mut publisher = ZonePublisher::open(&key_path, &zone_path, None, &config)?;
        // One publisher per zone state at a time.
        match ZonePublisher::open(&key_path, &zone_path, None, &config) {
            Err(ZonePublishError::State(StateError::Busy { .. })) => {}
            other => panic!("a second publisher opened: {other:?}"),
        }

        // First round: every name.
        let first = publisher.round(&dht, false, |_| {}).await?;
        assert_eq!((first.changed, first.names.len()), (NAMES + 1, NAMES + 1));
        assert!(first.fewest_replicas() >= Some(3), "{first}");
        assert_eq!(publisher.state().names().len(), NAMES + 1);
        // Nothing changed, nothing due: nothing put.
        let idle = publisher.round(&dht, false, |_| {}).await?;
        assert!(idle.is_idle(), "{idle}");
        assert_eq!(idle.unchanged, NAMES + 1);

        // One address changed: that name only, with a higher sequence.
        edit(
            &zone_path,
            "host7 300 IN A 10.0.0.7",
            "host7 300 IN A 10.9.9.7",
        )?;
        assert!(matches!(
            publisher.check_zone_file()?,
            ZoneCheck::Changed { .. }
        ));
        let one = publisher.round(&dht, false, |_| {}).await?;
        assert_eq!(one.names.len(), 1, "{one}");
        assert_eq!(one.names[0].owner, host(7));
        assert_eq!((one.changed, one.unchanged), (1, NAMES));
        let got = dht.get(DhtKey::derive(&key.zone_id(), &host(7))).await?;
        let best = got.best.ok_or("host7 not found")?;
        assert!(best.sequence() > first.sequence.unwrap_or(u64::MAX));

        // One name removed: a tombstone, higher sequence, no records.
        edit(
            &zone_path,
            "host9 300 IN A 10.0.0.9\n  IN TXT \"synthetic record 9\"\n",
            "",
        )?;
        publisher.check_zone_file()?;
        let removed = publisher.round(&dht, false, |_| {}).await?;
        assert_eq!((removed.removed, removed.names.len()), (1, 1), "{removed}");
        let got = dht.get(DhtKey::derive(&key.zone_id(), &host(9))).await?;
        let tomb = got.best.ok_or("no tombstone")?;
        assert!(tomb.records().is_empty());
        assert!(tomb.sequence() > best.sequence());
        let entry = *publisher
            .state()
            .get(&host(9))
            .ok_or("no tombstone entry")?;
        assert!(entry.is_tombstone());

        // A bad edit changes nothing and says where.
        edit(
            &zone_path,
            "host3 300 IN A 10.0.0.3",
            "host3 300 IN A 10.0.0.300",
        )?;
        let error = match publisher.check_zone_file() {
            Err(e) => e.to_string(),
            Ok(check) => panic!("a bad edit was taken: {check:?}"),
        };
        assert!(error.contains("z.zone:"), "{error}");
        assert!(publisher.round(&dht, false, |_| {}).await?.is_idle());
        edit(
            &zone_path,
            "host3 300 IN A 10.0.0.300",
            "host3 300 IN A 10.0.0.3",
        )?;
        // The fixed file equals what is published: nothing to put.
        publisher.check_zone_file()?;
        assert!(publisher.round(&dht, false, |_| {}).await?.is_idle());

        // After a restart the state is read back: still incremental.
        drop(publisher);
        let mut publisher = ZonePublisher::open(&key_path, &zone_path, None, &config)?;
        assert!(publisher.round(&dht, false, |_| {}).await?.is_idle());

        // Three quarters of the validity later every live name is due; the
        // tombstone outlives the removed bundle and needs no refresh.
        let now = kadns_dht::unix_now();
        let later = now + 86_400 * 3 / 4;
        assert!(publisher.next_due().is_some_and(|d| d <= later));
        let refresh = publisher.round_at(&dht, later, false, |_| {}).await?;
        assert_eq!(
            (refresh.refreshed, refresh.names.len()),
            (NAMES, NAMES),
            "{refresh}"
        );
        assert_eq!(refresh.removed, 0);
        // Once the removed bundle has expired the tombstone is dropped.
        let after = entry.live_until + 1;
        let dropped = publisher.round_at(&dht, after, false, |_| {}).await?;
        assert_eq!((dropped.dropped, dropped.names.len()), (1, 0), "{dropped}");
        assert!(publisher.state().get(&host(9)).is_none());

        // --all re-signs everything.
        let all = publisher.round(&dht, true, |_| {}).await?;
        assert_eq!(all.names.len(), NAMES);

        node.shutdown().await;
        net.shutdown().await;
        Ok(())
    })
    .await?
}
