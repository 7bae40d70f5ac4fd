//! Done-when 3: 50 names on 30 nodes; the publisher and half of the others,
//! chosen at random, stop; every name still resolves from every survivor.

use std::time::Duration;

use futures::StreamExt;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use tracing_test::traced_test;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn names_survive_losing_the_publisher_and_half_the_nodes() -> TestResult {
    tokio::time::timeout(Duration::from_secs(150), async {
        // Quorum 1: this test is about availability, and signature checks are
        // slow in debug builds.
        let mut nodes = spawn_net(30, |_| with_quorum(test_config(), 1)).await?;
        let publisher_node = nodes.remove(0);
        let publisher = publisher_node.handle();
        let key = zone(3);
        let expires = now() + 3600;
        let names: Vec<_> = (0..50)
            .map(|i| bundle(&key, &format!("host{i}"), 1, expires, i as u8))
            .collect();
        for chunk in names.chunks(10) {
            let puts = chunk.iter().map(|b| publisher.put(b.clone()));
            for report in futures::future::join_all(puts).await {
                let report = report?;
                assert!(report.replicas() >= 20, "{report:?}");
            }
        }
        // Stop the publisher and 14 of the other 29, chosen by a seeded shuffle.
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        nodes.shuffle(&mut rng);
        let survivors = nodes.split_off(14);
        publisher_node.shutdown().await;
        shutdown_all(nodes).await;
        let lookups = survivors.iter().map(|node| {
            let h = node.handle();
            let names = &names;
            async move {
                let gets = futures::stream::iter(names.iter().map(|b| {
                    let h = h.clone();
                    async move { (b, h.get(b.dht_key()).await) }
                }))
                .buffer_unordered(5)
                .collect::<Vec<_>>()
                .await;
                for (b, outcome) in gets {
                    let best = outcome?.best.ok_or_else(|| {
                        format!("{} not found from {}", b.dht_key(), h.local_peer_id())
                    })?;
                    assert_eq!(best.as_bytes(), b.as_bytes());
                }
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            }
        });
        for result in futures::future::join_all(lookups).await {
            result?;
        }
        shutdown_all(survivors).await;
        Ok(())
    })
    .await?
}
