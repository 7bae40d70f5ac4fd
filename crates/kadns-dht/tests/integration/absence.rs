//! Absent vs unreachable (issue 8): a get that reached enough of the closest
//! peers proves a key absent; the same get with every peer gone does not.

use std::time::Duration;

use kadns_dht::Node;
use tracing_test::traced_test;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn only_a_get_that_reached_the_closest_peers_proves_absence() -> TestResult {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut nodes = spawn_net(6, |_| test_config()).await?;
        let seed = first_addr(&nodes[0]).await?;
        let mut client_config = test_config();
        client_config.mode = kadns_dht::Mode::Client;
        client_config.bootstrap = vec![seed];
        let client = Node::spawn(client_config).await?;
        let h = client.handle();
        wait_for(
            "the client knows the network",
            Duration::from_secs(20),
            || {
                let h = h.clone();
                async move { h.peers().await.is_ok_and(|p| p.len() >= 3) }
            },
        )
        .await?;

        let present = bundle(&zone(4), "www", 1, now() + 3600, 1);
        nodes[2].handle().put(present.clone()).await?;
        let missing = bundle(&zone(4), "nope", 1, now() + 3600, 1).dht_key();

        let found = h.get(present.dht_key()).await?;
        assert!(found.best.is_some());
        assert!(!found.proves_absence());

        let absent = h.get(missing).await?;
        assert!(absent.best.is_none());
        assert!(absent.converged, "{absent:?}");
        assert_eq!(absent.required, 3, "min(quorum 3, peers known)");
        assert!(absent.reached.len() >= 3, "{absent:?}");
        assert!(absent.proves_absence(), "{absent:?}");

        // Every server goes away: the same get proves nothing.
        for node in nodes.drain(..) {
            node.shutdown().await;
        }
        let unreached = h.get(missing).await?;
        assert!(unreached.best.is_none());
        assert!(unreached.reached.is_empty(), "{unreached:?}");
        assert!(!unreached.proves_absence(), "{unreached:?}");
        client.shutdown().await;
        Ok(())
    })
    .await?
}
