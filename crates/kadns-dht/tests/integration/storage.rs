//! Closeness refusal between real nodes: a record sent straight to a node
//! that knows k × CLOSENESS_SLACK peers closer to its key is refused
//! (`not_closest`); the closest nodes, within the slack, store it; and an
//! ordinary put, routed by a lookup, is never refused for closeness.

use std::time::Duration;

use kadns_dht::{CLOSENESS_SLACK, Node, PeerId};
use kadns_tests::hostile::flood_store;
use libp2p::kad::KBucketKey;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_sent_to_nodes_far_from_their_key_are_refused() -> TestResult {
    tokio::time::timeout(Duration::from_secs(180), async {
        // k = 1: a node refuses once it knows 2 peers closer to the key.
        let k = 1;
        let nodes = spawn_net(6, |_| {
            let mut c = test_config();
            c.replication_factor = std::num::NonZeroUsize::new(k).expect("k > 0");
            c
        })
        .await?;
        let owner = zone(7);
        let record = bundle(&owner, "www", 1, now() + 3600, 7);
        let key = record.dht_key();
        let target = KBucketKey::new(key.as_bytes().to_vec());
        let mut by_distance: Vec<&Node> = nodes.iter().collect();
        by_distance.sort_by_key(|n| target.distance(&KBucketKey::from(n.peer_id())));

        for (rank, node) in by_distance.iter().enumerate() {
            let addr = first_addr(node)
                .await?
                .with(libp2p::multiaddr::Protocol::P2p(node.peer_id()));
            let report = flood_store(
                &addr,
                [(key, record.as_bytes().to_vec())],
                1,
                Duration::from_secs(30),
            )
            .await?;
            let refused = report.refused.get("not_closest").copied().unwrap_or(0);
            if rank < k * CLOSENESS_SLACK {
                assert_eq!(report.stored, 1, "rank {rank}: {report:?}");
            } else {
                assert_eq!(refused, 1, "rank {rank}: {report:?}");
                assert_eq!(node.handle().metrics().refusals_for("not_closest"), 1);
            }
        }

        // An ordinary put is routed to the closest and stored there.
        let other = bundle(&owner, "mail", 1, now() + 3600, 8);
        let report = by_distance[5].handle().put(other).await?;
        assert!(report.replicas() >= 1, "{report:?}");
        assert!(
            report.refused.iter().all(|(_, r)| r != "not_closest"),
            "{report:?}"
        );
        let peers: Vec<PeerId> = nodes.iter().map(Node::peer_id).collect();
        assert!(report.stored_on.iter().all(|p| peers.contains(p)));
        shutdown_all(nodes).await;
        Ok(())
    })
    .await?
}
