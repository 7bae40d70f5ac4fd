//! Re-replication under churn: a joining node is handed the records it is
//! now among the k closest to; records past their signed expiry leave the
//! disk; replication never has more than `MAX_REPLICATION_IN_FLIGHT` pushes
//! unanswered, nor more than `MAX_REPLICATION_IN_FLIGHT_PER_PEER` to one peer.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use kadns_dht::{
    DataDir, KAD_PROTOCOL, MAX_REPLICATION_IN_FLIGHT, MAX_REPLICATION_IN_FLIGHT_PER_PEER, Node,
    PeerId, STORE_PROTOCOL, SledStorage, Storage, StoreCodec, StoreResponse,
};
use kadns_record::DhtKey;
use libp2p::kad::{self, KBucketKey, RecordKey, store::MemoryStore};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, identify, noise, request_response, tcp, yamux};
use tokio::sync::watch;
use tracing_test::traced_test;

use crate::support::*;

/// The `k` peers of `all` closest to `key` (XOR distance, as Kademlia).
fn closest(key: &DhtKey, all: &[PeerId], k: usize) -> Vec<PeerId> {
    let target = KBucketKey::new(RecordKey::new(key.as_bytes()));
    let mut peers = all.to_vec();
    peers.sort_by_key(|p| target.distance(&KBucketKey::from(*p)));
    peers.truncate(k);
    peers
}

/// Every key stored in the sled database under `dir/db`.
fn keys_on_disk(
    dir: &std::path::Path,
) -> Result<BTreeSet<DhtKey>, Box<dyn std::error::Error + Send + Sync>> {
    let storage = SledStorage::open(&dir.join("db"))?;
    Ok(storage
        .scan(None, 100_000)?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn a_joining_node_is_handed_the_records_it_is_among_the_closest_to() -> TestResult {
    const K: usize = 4;
    tokio::time::timeout(Duration::from_secs(90), async {
        // k = 4 of 8 nodes, so a newcomer is among the closest for some
        // records and not for others. The periodic round (1 h) never runs:
        // only the handover can bring the records.
        let config = || {
            let mut c = test_config();
            c.replication_factor = std::num::NonZeroUsize::new(K).expect("4 > 0");
            c.replication_interval = Some(Duration::from_secs(3600));
            c
        };
        let nodes = spawn_net(8, |_| config()).await?;
        settle(&nodes, 7).await?;
        let key = zone(11);
        let expires = now() + 3600;
        let names: Vec<_> = (0..60)
            .map(|i| bundle(&key, &format!("j{i}"), 1, expires, i as u8))
            .collect();
        for b in &names {
            let report = nodes[0].handle().put(b.clone()).await?;
            assert!(report.replicas() > K, "{report:?}");
        }

        let dir = tempfile::tempdir()?;
        let mut c = config();
        c.data_dir = DataDir::Path(dir.path().to_path_buf());
        c.bootstrap = vec![first_addr(&nodes[1]).await?];
        let newcomer = Node::spawn(c).await?;
        let new_id = newcomer.peer_id();
        let new_addr = first_addr(&newcomer).await?;
        // Every node gets to know the newcomer (its table is what decides).
        let handles: Vec<_> = nodes.iter().map(Node::handle).collect();
        wait_for(
            "every node to know the newcomer",
            Duration::from_secs(30),
            || {
                let handles = handles.clone();
                let new_addr = new_addr.clone();
                async move {
                    let mut all = true;
                    for h in &handles {
                        if !h.peers().await.unwrap_or_default().contains(&new_id) {
                            all = false;
                            let _ = h.dial(new_addr.clone()).await;
                        }
                    }
                    all
                }
            },
        )
        .await?;

        let mut everyone: Vec<PeerId> = nodes.iter().map(Node::peer_id).collect();
        everyone.push(new_id);
        let due: BTreeSet<DhtKey> = names
            .iter()
            .map(|b| b.dht_key())
            .filter(|k| closest(k, &everyone, K).contains(&new_id))
            .collect();
        // A holder pushes to the k closest of its own table, which lacks the
        // holder itself: the newcomer may also get records where it is k+1th.
        let allowed: BTreeSet<DhtKey> = names
            .iter()
            .map(|b| b.dht_key())
            .filter(|k| closest(k, &everyone, K + 1).contains(&new_id))
            .collect();
        assert!(
            !due.is_empty() && allowed.len() < names.len(),
            "{} due",
            due.len()
        );
        // Wait on the keys themselves, not a count: the newcomer may also get
        // records where it is k+1th, so a count can be reached early.
        let newcomer_handle = newcomer.handle();
        wait_for(
            "the newcomer to hold its records",
            Duration::from_secs(30),
            || {
                let handle = newcomer_handle.clone();
                let due = due.clone();
                async move {
                    for key in due {
                        match handle.get(key).await {
                            Ok(outcome) if outcome.local => {}
                            _ => return false,
                        }
                    }
                    true
                }
            },
        )
        .await?;
        let handed: u64 = nodes
            .iter()
            .map(|n| n.handle().metrics().handover_pushes.get())
            .sum();
        let periodic: u64 = nodes
            .iter()
            .map(|n| n.handle().metrics().replication_pushes.get())
            .sum();
        assert!(handed >= due.len() as u64, "{handed} handover pushes");
        assert_eq!(periodic, 0, "no periodic round ran");
        newcomer.shutdown().await;
        let held = keys_on_disk(dir.path())?;
        assert!(
            held.is_superset(&due),
            "missing {:?}",
            due.difference(&held).collect::<Vec<_>>()
        );
        assert!(
            held.is_subset(&allowed),
            "handed records it is not among the closest to: {:?}",
            held.difference(&allowed).collect::<Vec<_>>()
        );
        shutdown_all(nodes).await;
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn records_past_their_signed_expiry_are_deleted_from_disk() -> TestResult {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dir = tempfile::tempdir()?;
        let mut c = test_config();
        c.data_dir = DataDir::Path(dir.path().to_path_buf());
        c.purge_interval = Duration::from_millis(500);
        let node = Node::spawn(c).await?;
        let key = zone(12);
        let short: Vec<_> = (0..3)
            .map(|i| bundle(&key, &format!("short{i}"), 1, now() + 2, i))
            .collect();
        let long = bundle(&key, "long", 1, now() + 3600, 9);
        for b in short.iter().chain([&long]) {
            let report = node.handle().put(b.clone()).await?;
            assert_eq!(report.replicas(), 1, "{report:?}");
        }
        let metrics = node.handle().metrics().clone();
        assert_eq!(metrics.records.get(), 4);
        // Nothing reads the records: only the purge can remove them.
        wait_for(
            "the purge to remove the expired records",
            Duration::from_secs(20),
            || {
                let metrics = metrics.clone();
                async move { metrics.purged.get() >= 3 && metrics.records.get() == 1 }
            },
        )
        .await?;
        node.shutdown().await;
        let held = keys_on_disk(dir.path())?;
        assert_eq!(held, BTreeSet::from([long.dht_key()]));
        // The expiry index went with them: a reopened store counts one record.
        assert_eq!(SledStorage::open(&dir.path().join("db"))?.len(), 1);
        Ok(())
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn one_newcomer_never_has_more_pushes_unanswered_than_its_streams_allow() -> TestResult {
    const RECORDS: usize = 100;
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut c = test_config();
        c.replication_interval = Some(Duration::from_secs(3600));
        c.store_timeout = Duration::from_secs(120);
        let node = Node::spawn(c).await?;
        let dht = node.handle();
        let key = zone(14);
        let expires = now() + 3600;
        for i in 0..RECORDS {
            dht.put(bundle(&key, &format!("peer{i}"), 1, expires, i as u8))
                .await?;
        }
        let received = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let peer = tokio::spawn(silent_peer(
            first_addr(&node).await?,
            received.clone(),
            released,
        ));
        // 100 records for one newcomer, far below the overall cap (256): only
        // the per-peer cap holds the pushes back.
        let cap = MAX_REPLICATION_IN_FLIGHT_PER_PEER;
        assert!(cap < RECORDS && RECORDS < MAX_REPLICATION_IN_FLIGHT);
        wait_for(
            "pushes to reach the per-peer cap",
            Duration::from_secs(30),
            || {
                let received = received.clone();
                async move { received.load(Ordering::SeqCst) >= cap }
            },
        )
        .await?;
        let metrics = dht.metrics().clone();
        let capped = metrics.replication_capped.get();
        wait_for("steps to wait at the cap", Duration::from_secs(10), || {
            let metrics = metrics.clone();
            async move { metrics.replication_capped.get() >= capped + 10 }
        })
        .await?;
        assert_eq!(received.load(Ordering::SeqCst), cap);
        assert_eq!(metrics.replication_in_flight.get(), cap as i64);

        release.send(true)?;
        wait_for("every record handed over", Duration::from_secs(30), || {
            let received = received.clone();
            async move { received.load(Ordering::SeqCst) >= RECORDS }
        })
        .await?;
        drop(release);
        peer.abort();
        node.shutdown().await;
        Ok(())
    })
    .await?
}

/// A peer that speaks Kademlia and the store protocol, takes every store
/// request and answers none until released.
#[derive(NetworkBehaviour)]
struct Silent {
    kad: kad::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    store: request_response::Behaviour<StoreCodec>,
}

async fn silent_peer(
    target: Multiaddr,
    received: Arc<AtomicUsize>,
    mut release: watch::Receiver<bool>,
) -> TestResult {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            let id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                id,
                MemoryStore::new(id),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(Some(kad::Mode::Server));
            Silent {
                kad,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/kadns/1.0.0".into(),
                    key.public(),
                )),
                store: request_response::Behaviour::with_codec(
                    StoreCodec,
                    [(STORE_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(120))
                        .with_max_concurrent_streams(1024),
                ),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    swarm.dial(target)?;
    let mut held = Vec::new();
    let mut released = false;
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(SilentEvent::Store(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) => {
                    received.fetch_add(1, Ordering::SeqCst);
                    if released {
                        let _ = swarm.behaviour_mut().store.send_response(channel, StoreResponse::Stored);
                    } else {
                        held.push(channel);
                    }
                }
                SwarmEvent::Behaviour(SilentEvent::Identify(identify::Event::Received {
                    peer_id, info, ..
                })) => {
                    for addr in info.listen_addrs {
                        swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                    }
                }
                _ => {}
            },
            changed = release.changed(), if !released => {
                if changed.is_err() {
                    return Ok(());
                }
                released = true;
                for channel in held.drain(..) {
                    let _ = swarm.behaviour_mut().store.send_response(channel, StoreResponse::Stored);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn replication_never_has_more_than_the_cap_unanswered() -> TestResult {
    const PEERS: usize = 20;
    const RECORDS: usize = 40;
    tokio::time::timeout(Duration::from_secs(90), async {
        let mut c = test_config();
        c.replication_interval = Some(Duration::from_secs(1));
        c.store_timeout = Duration::from_secs(120);
        let node = Node::spawn(c).await?;
        let dht = node.handle();
        // Stored while the node is alone: the puts ask nobody.
        let key = zone(13);
        let expires = now() + 3600;
        for i in 0..RECORDS {
            dht.put(bundle(&key, &format!("cap{i}"), 1, expires, i as u8))
                .await?;
        }
        let addr = first_addr(&node).await?;
        let received = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let mut peers = tokio::task::JoinSet::new();
        for _ in 0..PEERS {
            peers.spawn(silent_peer(
                addr.clone(),
                received.clone(),
                released.clone(),
            ));
        }
        // 20 newcomers × 40 records = 800 handover pushes wanted, and a
        // periodic round every second: the cap stops them at 256.
        let cap = MAX_REPLICATION_IN_FLIGHT;
        let metrics = dht.metrics().clone();
        let sent = |m: &kadns_dht::Metrics| m.handover_pushes.get() + m.replication_pushes.get();
        wait_for("pushes to reach the cap", Duration::from_secs(30), || {
            let received = received.clone();
            async move { received.load(Ordering::SeqCst) > cap - PEERS }
        })
        .await?;
        // A second of steps (20) that found the cap reached, with the
        // periodic round (started after 1 s) trying as well.
        let capped = metrics.replication_capped.get();
        wait_for("steps to wait at the cap", Duration::from_secs(10), || {
            let metrics = metrics.clone();
            async move {
                metrics.replication_capped.get() >= capped + 20
                    && metrics.replication_rounds.get() >= 1
            }
        })
        .await?;
        assert!(
            received.load(Ordering::SeqCst) <= cap,
            "{} pushes unanswered, cap {cap}",
            received.load(Ordering::SeqCst)
        );
        assert!(sent(&metrics) <= cap as u64, "{} sent", sent(&metrics));
        assert!(metrics.replication_in_flight.get() <= cap as i64);

        // Answered, the walk goes on: every newcomer gets every record.
        release.send(true)?;
        wait_for("every handover push", Duration::from_secs(30), || {
            let metrics = metrics.clone();
            let received = received.clone();
            async move {
                metrics.handover_pushes.get() >= (PEERS * RECORDS) as u64
                    && received.load(Ordering::SeqCst) >= PEERS * RECORDS
            }
        })
        .await?;
        drop(release);
        peers.abort_all();
        node.shutdown().await;
        Ok(())
    })
    .await?
}
