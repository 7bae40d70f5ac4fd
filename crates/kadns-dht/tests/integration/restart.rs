//! Done-when 4: a node restarted from its data directory, with no bootstrap
//! list, keeps its peer id, rejoins through saved peers and serves its records.

use std::time::Duration;

use kadns_dht::{Config, DataDir, Node};
use tracing_test::traced_test;

use crate::support::*;

fn config_in(dir: &std::path::Path) -> Config {
    let mut c = test_config();
    c.data_dir = DataDir::Path(dir.to_path_buf());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn restarted_node_rejoins_through_saved_peers() -> TestResult {
    tokio::time::timeout(Duration::from_secs(90), async {
        let dir = tempfile::tempdir()?;
        let a = Node::spawn(config_in(dir.path())).await?;
        let a_id = a.peer_id();

        // A is alone when it publishes: the record lives only on A.
        let signed = bundle(&zone(4), "alone", 1, now() + 3600, 4);
        let key = signed.dht_key();
        let report = a.handle().put(signed.clone()).await?;
        assert_eq!(report.stored_on, vec![a_id]);

        // B and C join through A; A learns (and saves) them.
        let seed = first_addr(&a).await?;
        let mut others = Vec::new();
        for _ in 0..2 {
            let mut c = test_config();
            c.bootstrap = vec![seed.clone()];
            others.push(Node::spawn(c).await?);
        }
        let ids: Vec<_> = others.iter().map(Node::peer_id).collect();
        let ha = a.handle();
        wait_for("A to know B and C", Duration::from_secs(30), || {
            let ha = ha.clone();
            let ids = ids.clone();
            async move {
                ha.peers()
                    .await
                    .is_ok_and(|p| ids.iter().all(|id| p.contains(id)))
            }
        })
        .await?;
        a.shutdown().await;
        assert!(std::fs::metadata(dir.path().join(kadns_dht::IDENTITY_FILE)).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(kadns_dht::IDENTITY_FILE))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }

        // Restart with no bootstrap list.
        let a = Node::spawn(config_in(dir.path())).await?;
        assert_eq!(a.peer_id(), a_id, "the peer id survives a restart");
        let ha = a.handle();
        wait_for("A to rejoin", Duration::from_secs(30), || {
            let ha = ha.clone();
            async move { ha.peers().await.is_ok_and(|p| !p.is_empty()) }
        })
        .await?;
        // A still has the record and serves it: B finds it, answered by A.
        let local = a.handle().get(key).await?;
        assert!(local.local, "A's own copy survives the restart");
        let hb = others[0].handle();
        wait_for("B to find the record on A", Duration::from_secs(30), || {
            let hb = hb.clone();
            async move {
                hb.get(key)
                    .await
                    .is_ok_and(|o| o.answered_by.contains(&a_id))
            }
        })
        .await?;
        let outcome = hb.get(key).await?;
        assert_eq!(
            outcome.best.as_ref().map(|b| b.as_bytes().to_vec()),
            Some(signed.as_bytes().to_vec())
        );
        a.shutdown().await;
        shutdown_all(others).await;
        Ok(())
    })
    .await?
}
