//! A network of in-process `kadns-dht` server nodes on loopback.

use std::future::Future;
use std::time::Duration;

use kadns_dht::{Config, DataDir, Handle, Mode, Multiaddr, Node, PeerId};

use crate::TestResult;

/// How long [`TestNet::start`] waits for the routing tables to fill.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);

/// How often condition waits check again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The configuration of a test node: a server on `127.0.0.1` with an
/// ephemeral port and a temporary store, 10 s query and store timeouts, and
/// no background replication (so tests see only what they caused).
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.data_dir = DataDir::Temporary;
    config.mode = Mode::Server;
    config.query_timeout = Duration::from_secs(10);
    config.store_timeout = Duration::from_secs(10);
    config.replication_interval = None;
    config
}

/// Polls `cond` every [`POLL_INTERVAL`] until it holds; an error naming
/// `what` once `timeout` has passed.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F) -> TestResult
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}").into());
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// N server nodes on loopback with temporary stores, connected to each
/// other: the first starts alone, every other one bootstraps from it.
/// Dropping the net cancels every node; [`TestNet::shutdown`] also waits.
#[derive(Debug)]
pub struct TestNet {
    nodes: Vec<Node>,
    /// Each node's peer id and first listen address, `…/p2p/<peer id>`.
    addrs: Vec<(PeerId, Multiaddr)>,
}

impl TestNet {
    /// Starts `n` nodes with [`test_config`] and waits (at most
    /// [`SETTLE_TIMEOUT`]) until every node knows at least `min(n - 1, 10)`
    /// peers.
    pub async fn start(n: usize) -> TestResult<Self> {
        Self::start_with(n, |_| test_config()).await
    }

    /// Like [`TestNet::start`], with `config(i)` for node `i` (its
    /// `bootstrap` is replaced).
    pub async fn start_with(n: usize, config: impl Fn(usize) -> Config) -> TestResult<Self> {
        if n == 0 {
            return Err("a test network needs at least one node".into());
        }
        let mut nodes = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        let mut seed: Vec<Multiaddr> = Vec::new();
        for i in 0..n {
            let mut c = config(i);
            c.bootstrap = seed.clone();
            let node = Node::spawn(c).await?;
            let addr = node
                .handle()
                .listen_addrs()
                .await?
                .into_iter()
                .next()
                .ok_or("a node has no listen address")?;
            if seed.is_empty() {
                seed = vec![addr.clone()];
            }
            addrs.push((node.peer_id(), addr));
            nodes.push(node);
        }
        let net = Self { nodes, addrs };
        net.wait_for_peers((n - 1).min(10), SETTLE_TIMEOUT).await?;
        Ok(net)
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// A handle to every node.
    pub fn handles(&self) -> Vec<Handle> {
        self.nodes.iter().map(Node::handle).collect()
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the net has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The first node's first listen address, `/ip4/127.0.0.1/tcp/…/p2p/…`:
    /// what a `--bootstrap` option takes.
    pub async fn bootstrap_addr(&self) -> TestResult<Multiaddr> {
        self.addrs
            .first()
            .map(|(_, addr)| addr.clone())
            .ok_or_else(|| "the net has no nodes".into())
    }

    /// Every node's first listen address, `/ip4/127.0.0.1/tcp/…/p2p/…`.
    pub fn addrs(&self) -> Vec<Multiaddr> {
        self.addrs.iter().map(|(_, addr)| addr.clone()).collect()
    }

    /// Waits until every node's routing table holds at least `min` peers; an
    /// error saying how many each knows once `timeout` has passed.
    ///
    /// Every node first runs a Kademlia bootstrap. A node still behind then
    /// dials the nodes missing from its routing table, which adds them at
    /// once: a node can otherwise miss a peer that only ever connected to it
    /// (until identify runs again, minutes later), and these tests are about
    /// what runs on top of a connected network, not about how it forms.
    pub async fn wait_for_peers(&self, min: usize, timeout: Duration) -> TestResult {
        let handles = self.handles();
        futures::future::join_all(handles.iter().map(Handle::bootstrap)).await;
        let result = wait_until("routing tables to fill", timeout, || {
            let handles = handles.clone();
            async move {
                let mut done = true;
                for h in &handles {
                    let known = match h.peers().await {
                        Ok(peers) if peers.len() >= min => continue,
                        Ok(peers) => peers,
                        Err(_) => Vec::new(),
                    };
                    done = false;
                    for (peer, addr) in &self.addrs {
                        if *peer != h.local_peer_id() && !known.contains(peer) {
                            tracing::debug!(
                                node = %h.local_peer_id(),
                                %peer,
                                "the node does not know a peer: dialing it"
                            );
                            // A failed dial is retried on the next round.
                            let _ = h.dial(addr.clone()).await;
                        }
                    }
                }
                done
            }
        })
        .await;
        if let Err(e) = result {
            let mut known = Vec::with_capacity(handles.len());
            for h in &handles {
                known.push(h.peers().await.map(|p| p.len()).unwrap_or(0));
            }
            return Err(format!("{e}: wanted {min} peers per node, nodes know {known:?}").into());
        }
        Ok(())
    }

    /// Shuts every node down (flush, end the loop) and waits for them.
    pub async fn shutdown(self) {
        futures::future::join_all(self.nodes.into_iter().map(Node::shutdown)).await;
    }
}
