//! Test harness: nodes on loopback with temporary stores, signed bundles from
//! seeded zone keys, and condition waits with deadlines.

use std::net::Ipv4Addr;
use std::num::NonZeroUsize;
use std::time::Duration;

use hickory_proto::rr::{RData, rdata::A};
use kadns_dht::{Config, Multiaddr, Node};
use kadns_record::{Bundle, OwnerName, Rr, SignedBundle, ZoneKey};

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Short Kademlia timeouts, no background replication, temporary store.
pub(crate) fn test_config() -> Config {
    let mut config = Config::default();
    config.query_timeout = Duration::from_secs(10);
    config.store_timeout = Duration::from_secs(10);
    config.replication_interval = None;
    config
}

pub(crate) fn with_quorum(mut config: Config, quorum: usize) -> Config {
    config.get_quorum = NonZeroUsize::new(quorum).expect("quorum > 0");
    config
}

pub(crate) fn now() -> u64 {
    kadns_dht::unix_now()
}

/// A zone key from a seed.
pub(crate) fn zone(seed: u8) -> ZoneKey {
    ZoneKey::from_seed([seed; 32])
}

/// A signed bundle: `name` in `key`'s zone with one A record.
pub(crate) fn bundle(
    key: &ZoneKey,
    name: &str,
    sequence: u64,
    expires: u64,
    last_octet: u8,
) -> SignedBundle {
    let owner = OwnerName::from_labels([name.as_bytes()]).expect("a valid test label");
    let rr =
        Rr::new(60, &RData::A(A(Ipv4Addr::new(192, 0, 2, last_octet)))).expect("a valid A record");
    Bundle::new(owner, sequence, expires, vec![rr])
        .expect("valid content")
        .sign(key)
        .expect("small bundle")
}

/// Polls a condition until it holds, or fails naming it after a timeout.
pub(crate) use kadns_tests::net::wait_until as wait_for;

pub(crate) async fn first_addr(
    node: &Node,
) -> Result<Multiaddr, Box<dyn std::error::Error + Send + Sync>> {
    node.handle()
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| "node has no listen address".into())
}

/// Starts `n` nodes: the first alone, the rest bootstrapping from it. Waits
/// until every routing table holds at least `min(n - 1, 10)` peers.
pub(crate) async fn spawn_net(
    n: usize,
    config: impl Fn(usize) -> Config,
) -> Result<Vec<Node>, Box<dyn std::error::Error + Send + Sync>> {
    let first = Node::spawn(config(0)).await?;
    let seed = first_addr(&first).await?;
    let mut nodes = vec![first];
    for i in 1..n {
        let mut c = config(i);
        c.bootstrap = vec![seed.clone()];
        nodes.push(Node::spawn(c).await?);
    }
    settle(&nodes, (n - 1).min(10)).await?;
    Ok(nodes)
}

/// Bootstraps every node and waits until each knows `min_peers` peers.
pub(crate) async fn settle(nodes: &[Node], min_peers: usize) -> TestResult {
    let handles: Vec<_> = nodes.iter().map(Node::handle).collect();
    futures::future::join_all(handles.iter().map(|h| h.bootstrap())).await;
    wait_for("routing tables to fill", Duration::from_secs(60), || {
        let handles = handles.clone();
        async move {
            let mut behind = Vec::new();
            for h in &handles {
                match h.peers().await {
                    Ok(p) if p.len() >= min_peers => {}
                    _ => behind.push(h.bootstrap()),
                }
            }
            let done = behind.is_empty();
            futures::future::join_all(behind).await;
            done
        }
    })
    .await
}

pub(crate) async fn shutdown_all(nodes: Vec<Node>) {
    futures::future::join_all(nodes.into_iter().map(Node::shutdown)).await;
}
