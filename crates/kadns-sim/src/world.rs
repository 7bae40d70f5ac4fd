//! A world of production nodes on one simulated [`Network`]: starting them,
//! forming the network, killing them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kadns_dht::{BucketInserts, Config, Handle, Node, Storage};
use libp2p::PeerId;
use libp2p::identity::Keypair;
use sha2::{Digest, Sha256};

use crate::link::{Network, address, mix};
use crate::storage::{LiarStorage, LieBook, LieKind, MemoryStorage};

/// Why the world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// The node did not start.
    #[error("node {index} did not start: {source}")]
    Spawn {
        /// Host index.
        index: usize,
        /// The node's error.
        #[source]
        source: kadns_dht::Error,
    },
    /// Noise could not be set up for a key (a libp2p bug).
    #[error("noise setup for node {index}: {source}")]
    Noise {
        /// Host index.
        index: usize,
        /// The error.
        #[source]
        source: libp2p::noise::Error,
    },
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// Its host index on the network (also its position in the world).
    pub index: usize,
    /// The running node; `None` once killed.
    pub node: Option<Node>,
    /// A handle to it (fails with `Shutdown` once killed).
    pub handle: Handle,
    /// Its peer id.
    pub peer_id: PeerId,
    /// What it lies about, if it is a liar.
    pub liar: Option<LieKind>,
}

/// How the network formed.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Formation {
    /// Nodes started.
    pub nodes: usize,
    /// Seconds from the first spawn until every node finished a bootstrap.
    pub form_s: f64,
    /// Smallest and median routing table after forming.
    pub table_min: usize,
    /// Median routing table size.
    pub table_median: usize,
    /// Resident memory after forming, MiB.
    pub rss_mib: f64,
    /// Connections opened while forming.
    pub connections: u64,
    /// Connections still open once formed.
    pub open_connections: u64,
    /// CPU seconds the process used while forming (both cores count).
    pub cpu_s: f64,
}

/// The nodes and their network.
#[derive(Debug)]
pub struct World {
    /// The link layer.
    pub net: Network,
    /// Every node ever started, by host index.
    pub nodes: Vec<SimNode>,
    /// The configuration every node runs with.
    pub config: Config,
    book: Arc<LieBook>,
    rng: u64,
}

/// Resident set size of this process in bytes (`VmRSS`).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// CPU time this process has used, seconds (`/proc/self/stat` user plus
/// system time, at Linux's 100 ticks per second); 0 when unknown.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15; `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

/// The simulator's idle-connection limit: production keeps an idle
/// connection 30 s; 1,000 nodes forming in one process would then hold
/// every connection forming opened (tens of thousands). Lookups in the
/// simulator so open more connections than in production: its latencies
/// are on the cold side.
pub const SIM_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest [`World::form`] waits for every node's join walk.
pub const FORM_DEADLINE: Duration = Duration::from_secs(600);

/// The node configuration the simulator uses: production defaults, with
/// background re-replication off (runs are minutes long; the job's hourly
/// round would never run anyway), a 30 s query limit,
/// [`SIM_IDLE_TIMEOUT`], and [`BucketInserts::IfRoom`]: with libp2p's
/// liveness dials into full buckets, each new connection leads to the next
/// (measured: ~850 connections opened per second in a formed 300-node
/// network doing nothing; docs/performance.md).
pub fn sim_config() -> Config {
    let mut config = Config::default();
    config.bucket_inserts = BucketInserts::IfRoom;
    config.replication_interval = None;
    config.query_timeout = Duration::from_secs(30);
    config.idle_connection_timeout = SIM_IDLE_TIMEOUT;
    config
}

/// A keypair whose Kademlia key shares at least `bits` leading bits with
/// `target` (a SHA-256 Kademlia key): an id "ground" close to it.
pub fn ground_keypair(target: &[u8; 32], bits: u32) -> Keypair {
    loop {
        let keypair = Keypair::generate_ed25519();
        let id = keypair.public().to_peer_id();
        let key: [u8; 32] = Sha256::digest(id.to_bytes()).into();
        if common_prefix(&key, target) >= bits {
            return keypair;
        }
    }
}

/// Leading bits two 256-bit keys share.
pub fn common_prefix(a: &[u8; 32], b: &[u8; 32]) -> u32 {
    let mut bits = 0;
    for (x, y) in a.iter().zip(b) {
        let d = x ^ y;
        if d == 0 {
            bits += 8;
        } else {
            return bits + d.leading_zeros();
        }
    }
    bits
}

impl World {
    /// An empty world on `net`; liars will tell the lies in `book`.
    pub fn new(net: Network, config: Config, book: Arc<LieBook>, seed: u64) -> Self {
        Self {
            net,
            nodes: Vec::new(),
            config,
            book,
            rng: mix(seed ^ 0x5157),
        }
    }

    /// A random number below `n` (n > 0) from the world's seeded stream.
    pub fn random(&mut self, n: usize) -> usize {
        self.rng = mix(self.rng);
        (self.rng % n.max(1) as u64) as usize
    }

    /// Indices of the nodes that still run.
    pub fn alive(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .filter(|n| n.node.is_some())
            .map(|n| n.index)
            .collect()
    }

    /// Starts one node with `keypair`, joining through up to three random
    /// running nodes. Returns its index.
    pub async fn spawn(
        &mut self,
        keypair: Option<Keypair>,
        liar: Option<LieKind>,
    ) -> Result<usize, WorldError> {
        let alive = self.alive();
        let mut bootstrap = Vec::new();
        for _ in 0..alive.len().min(3) {
            let pick = alive[self.random(alive.len())];
            let addr =
                address(pick).with(libp2p::multiaddr::Protocol::P2p(self.nodes[pick].peer_id));
            if !bootstrap.contains(&addr) {
                bootstrap.push(addr);
            }
        }
        let index = self.net.add_host();
        let keypair = keypair.unwrap_or_else(Keypair::generate_ed25519);
        let peer_id = keypair.public().to_peer_id();
        let mut config = self.config.clone();
        config.listen = vec![address(index)];
        config.bootstrap = bootstrap;
        let transport = self
            .net
            .transport(index, &keypair)
            .map_err(|source| WorldError::Noise { index, source })?;
        let storage: Box<dyn Storage> = match liar {
            Some(kind) => Box::new(LiarStorage::new(kind, self.book.clone())),
            None => Box::new(MemoryStorage::default()),
        };
        let node = Node::spawn_with_transport(config, storage, keypair, transport)
            .await
            .map_err(|source| WorldError::Spawn { index, source })?;
        self.nodes.push(SimNode {
            index,
            handle: node.handle(),
            node: Some(node),
            peer_id,
            liar,
        });
        Ok(index)
    }

    /// Starts `count` nodes (`liars[i]` says what node i lies about;
    /// `keys[i]` may give it an identity; each runs the production start-up:
    /// a lookup of its own id, then libp2p's walk over its farther buckets)
    /// and waits until every node finished that walk (at most
    /// [`FORM_DEADLINE`]); then reads every routing table's size,
    /// `parallel` at a time. Returns how it went.
    pub async fn form(
        &mut self,
        liars: &[Option<LieKind>],
        mut keys: Vec<Option<Keypair>>,
        parallel: usize,
    ) -> Result<Formation, WorldError> {
        let started = Instant::now();
        let cpu = cpu_seconds();
        let count = liars.len();
        keys.resize_with(count, || None);
        for (i, (liar, key)) in liars.iter().zip(keys).enumerate() {
            self.spawn(key, *liar).await?;
            if (i + 1) % 100 == 0 {
                tracing::info!(
                    nodes = i + 1,
                    secs = started.elapsed().as_secs_f64(),
                    rss_mib = rss_bytes() / (1024 * 1024),
                    open = self.net.open_connections(),
                    opened = self.net.connections(),
                    "forming"
                );
            }
        }
        tracing::info!(
            secs = started.elapsed().as_secs_f64(),
            rss_mib = rss_bytes() / (1024 * 1024),
            open = self.net.open_connections(),
            "every node started; waiting for every join walk"
        );
        // Formed = every node finished the production join: its own-id
        // lookup and libp2p's walk over its farther buckets (the walk runs
        // on its own once a node knows a peer; `Metrics::bootstraps`
        // counts it). Bounded: a node that never finishes is reported.
        let deadline = Instant::now() + FORM_DEADLINE;
        let mut progress = Instant::now();
        loop {
            let walking = self
                .nodes
                .iter()
                .filter(|n| n.handle.metrics().bootstraps.get() == 0)
                .count();
            if walking == 0 {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(
                    walking,
                    "forming deadline passed with join walks unfinished"
                );
                break;
            }
            if progress.elapsed() >= Duration::from_secs(5) {
                progress = Instant::now();
                tracing::info!(
                    walking,
                    secs = started.elapsed().as_secs_f64(),
                    rss_mib = rss_bytes() / (1024 * 1024),
                    open = self.net.open_connections(),
                    opened = self.net.connections(),
                    "forming"
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let handles: Vec<Handle> = self.nodes.iter().map(|n| n.handle.clone()).collect();
        let sizes: Vec<usize> = futures::stream::iter(handles)
            .map(|h| async move { h.peers().await.map_or(0, |p| p.len()) })
            .buffer_unordered(parallel.max(1))
            .collect()
            .await;
        let mut sizes = sizes;
        sizes.sort_unstable();
        tracing::info!(
            secs = started.elapsed().as_secs_f64(),
            rss_mib = rss_bytes() / (1024 * 1024),
            open = self.net.open_connections(),
            opened = self.net.connections(),
            cpu_s = cpu_seconds() - cpu,
            "formed"
        );
        Ok(Formation {
            nodes: count,
            form_s: started.elapsed().as_secs_f64(),
            table_min: sizes.first().copied().unwrap_or(0),
            table_median: sizes.get(sizes.len() / 2).copied().unwrap_or(0),
            rss_mib: rss_bytes() as f64 / (1024.0 * 1024.0),
            connections: self.net.connections(),
            open_connections: self.net.open_connections(),
            cpu_s: cpu_seconds() - cpu,
        })
    }

    /// Kills node `index`: it goes dead on the network (nothing in, nothing
    /// out, no connection closes) and its event loop stops.
    pub fn kill(&mut self, index: usize) {
        self.net.kill(index);
        if let Some(n) = self.nodes.get_mut(index) {
            n.node = None;
        }
    }

    /// Stops every node. The network goes silent first (every host dead),
    /// so no node spends its last turns reacting to the others leaving;
    /// then the nodes stop concurrently (one after another, a thousand
    /// busy nodes took longer than the run itself).
    pub async fn shutdown(&mut self) {
        for n in &self.nodes {
            self.net.kill(n.index);
        }
        let running: Vec<Node> = self
            .nodes
            .iter_mut()
            .filter_map(|n| n.node.take())
            .collect();
        futures::stream::iter(running)
            .for_each_concurrent(64, Node::shutdown)
            .await;
    }
}
