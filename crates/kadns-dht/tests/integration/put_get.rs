//! Done-when 1: 25 nodes; a put from one is returned by a get from every other.

use std::time::Duration;

use tracing_test::traced_test;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn put_from_one_node_is_found_by_all_25() -> TestResult {
    tokio::time::timeout(Duration::from_secs(120), async {
        let nodes = spawn_net(25, |_| test_config()).await?;
        let key = zone(1);
        let signed = bundle(&key, "www", 1, now() + 3600, 1);
        let dht_key = signed.dht_key();

        let report = nodes[7].handle().put(signed.clone()).await?;
        // The local store plus the 20 closest peers (replication factor 20).
        assert_eq!(report.replicas(), 21, "{report:?}");
        assert!(
            report.refused.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
        assert!(report.stored_on.contains(&nodes[7].peer_id()));

        let gets = nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 7)
            .map(|(_, n)| {
                let h = n.handle();
                async move { h.get(dht_key).await }
            });
        for outcome in futures::future::join_all(gets).await {
            let outcome = outcome?;
            let best = outcome
                .best
                .as_ref()
                .ok_or("a node did not find the record")?;
            assert_eq!(best.as_bytes(), signed.as_bytes());
            assert_eq!(outcome.invalid_answers, 0);
        }
        // Coalescing: ten concurrent gets for one key on one node, one lookup.
        let h = nodes[3].handle();
        let before = h.metrics().gets_coalesced.get();
        let many = (0..10).map(|_| h.get(dht_key));
        for outcome in futures::future::join_all(many).await {
            assert!(outcome?.best.is_some());
        }
        assert!(h.metrics().gets_coalesced.get() > before);

        // After shutdown every method says so.
        let h = nodes[0].handle();
        shutdown_all(nodes).await;
        assert!(matches!(
            h.get(dht_key).await,
            Err(kadns_dht::Error::Shutdown)
        ));
        assert!(matches!(h.peers().await, Err(kadns_dht::Error::Shutdown)));
        Ok(())
    })
    .await?
}
