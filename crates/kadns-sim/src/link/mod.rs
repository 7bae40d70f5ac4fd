//! The link layer: an in-memory network between simulated hosts with a
//! one-way delay per host pair, TCP-like loss (a lost segment arrives one
//! retransmission timeout late, and everything behind it waits), and dead
//! hosts that swallow everything without ever closing a connection.
//!
//! Node `i` listens on `/ip4/10.a.b.c/tcp/4001` where `a.b.c` is `i` in base
//! 256, so the production code's "IP addresses only" rules hold unchanged.
//! [`Network::transport`] gives a node its transport, by [`Stack`]: native
//! in-memory connections with substreams ([`muxer`], the default), or byte
//! pipes ([`LinkTransport`]) upgraded by libp2p as over TCP, with an id
//! exchange ([`IdExchange`]) or Noise, and Yamux.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use libp2p::core::Transport;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, noise, yamux};
use tokio::sync::mpsc;

mod delayed;
mod id_exchange;
mod listener;
pub mod muxer;
mod native;
mod stream;

pub use id_exchange::{ID_EXCHANGE_PROTOCOL, IdExchange};
pub use native::NativeTransport;
pub use stream::{Link, LinkTransport};

/// What a connection is made of, below the production behaviour.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Stack {
    /// In-memory connections that are already authenticated and
    /// multiplexed ([`muxer`]): no connection upgrade, each substream a
    /// pair of delayed queues. The same round trips as TCP + Noise + Yamux
    /// (a dial costs two RTTs, opening a substream none), a fraction of the
    /// CPU. Substream protocols are still negotiated (multistream-select)
    /// by the production swarm.
    #[default]
    Native,
    /// Byte pipes upgraded as libp2p's TCP builder does: multistream-select,
    /// [`IdExchange`] (Noise's round trip without its key agreement), Yamux.
    Yamux,
    /// As `Yamux`, with the production Noise handshake.
    Noise,
}

/// The TCP port every simulated node listens on.
pub const PORT: u16 = 4001;

/// How per-pair one-way delays are chosen.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Delay {
    /// Every pair has half the RTT.
    Fixed,
    /// Each pair's RTT is drawn once, uniformly in `rtt × [1 − j, 1 + j]`,
    /// from the seed and the pair (the same both ways, every run).
    Uniform(f64),
}

/// Link-layer settings.
#[derive(Clone, Copy, Debug)]
pub struct LinkConfig {
    /// Mean round-trip time between two nodes.
    pub rtt: Duration,
    /// How the per-pair RTT varies around `rtt`.
    pub delay: Delay,
    /// Probability that a written segment is lost once (0.0–1.0). A lost
    /// segment is retransmitted: it arrives [`LinkConfig::rto`] late.
    pub loss: f64,
    /// Seed for delays and losses.
    pub seed: u64,
    /// Limit on a dial, handshakes included: a dial into a dead node fails
    /// after this long, as with the production TCP transport's
    /// `dial_timeout`.
    pub upgrade_timeout: Duration,
    /// What connections are made of ([`Stack`]). Ids are announced, not
    /// proven, on every stack but [`Stack::Noise`]: the simulator's
    /// adversaries lie in what they store, never about who they are, so
    /// nothing it measures depends on Noise.
    pub stack: Stack,
}

impl LinkConfig {
    /// `rtt` between every pair, no loss.
    pub fn fixed(rtt: Duration) -> Self {
        Self {
            rtt,
            delay: Delay::Fixed,
            loss: 0.0,
            seed: 0,
            upgrade_timeout: Duration::from_secs(10),
            stack: Stack::Native,
        }
    }

    /// The retransmission timeout a lost segment costs: 2 RTT, at least
    /// 200 ms (Linux's minimum RTO).
    pub fn rto(&self) -> Duration {
        (self.rtt * 2).max(Duration::from_millis(200))
    }
}

/// One node's place in the network.
#[derive(Debug, Default)]
struct Host {
    dead: AtomicBool,
    /// Its node's peer id, set when its transport is made.
    peer_id: OnceLock<PeerId>,
    /// Bytes delivered *to* this host.
    bytes_in: AtomicU64,
    /// Bytes this host wrote that were delivered.
    bytes_out: AtomicU64,
    /// Bytes written by or to this host while it was dead, dropped.
    swallowed: AtomicU64,
}

#[derive(Default)]
struct Inner {
    hosts: Vec<Arc<Host>>,
    /// Byte-stream listeners ([`LinkTransport`]).
    listeners: HashMap<usize, mpsc::UnboundedSender<stream::Incoming>>,
    /// Native listeners ([`NativeTransport`]).
    native_listeners: HashMap<usize, delayed::Sender<native::Incoming>>,
}

/// The simulated network: hosts, listeners and link settings. Cheap to
/// clone (shared).
#[derive(Clone)]
pub struct Network {
    config: LinkConfig,
    inner: Arc<Mutex<Inner>>,
    connections: Arc<AtomicU64>,
    /// Link ends alive now (two per open connection).
    open: Arc<AtomicU64>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The listen address of host `index`.
pub fn address(index: usize) -> Multiaddr {
    let i = u32::try_from(index).unwrap_or(u32::MAX) & 0x00ff_ffff;
    let ip = Ipv4Addr::from(0x0a00_0000 | i);
    Multiaddr::empty()
        .with(Protocol::Ip4(ip))
        .with(Protocol::Tcp(PORT))
}

/// The host index an address names, if it is one of ours.
pub fn index_of(addr: &Multiaddr) -> Option<usize> {
    let mut parts = addr.iter();
    let Some(Protocol::Ip4(ip)) = parts.next() else {
        return None;
    };
    let Some(Protocol::Tcp(PORT)) = parts.next() else {
        return None;
    };
    let bits = u32::from(ip);
    (bits >> 24 == 10).then_some((bits & 0x00ff_ffff) as usize)
}

/// splitmix64: small, seedable, good enough for delays and losses.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A uniform float in [0, 1) from 64 random bits.
pub fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

impl Network {
    /// An empty network.
    pub fn new(config: LinkConfig) -> Self {
        Self {
            config,
            inner: Arc::default(),
            connections: Arc::default(),
            open: Arc::default(),
        }
    }

    /// The link settings.
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a host and returns its index.
    pub fn add_host(&self) -> usize {
        let mut inner = self.lock();
        inner.hosts.push(Arc::default());
        inner.hosts.len() - 1
    }

    fn host(&self, index: usize) -> Option<Arc<Host>> {
        self.lock().hosts.get(index).cloned()
    }

    /// Makes host `index` dead: from now on it receives nothing and
    /// nothing it sends arrives, and no connection to it ever closes.
    pub fn kill(&self, index: usize) {
        if let Some(host) = self.host(index) {
            host.dead.store(true, Ordering::SeqCst);
        }
    }

    /// Whether host `index` is dead.
    pub fn is_dead(&self, index: usize) -> bool {
        self.host(index)
            .is_some_and(|h| h.dead.load(Ordering::SeqCst))
    }

    /// Bytes delivered to host `index` and bytes it sent that arrived.
    pub fn traffic(&self, index: usize) -> (u64, u64) {
        self.host(index).map_or((0, 0), |h| {
            (
                h.bytes_in.load(Ordering::Relaxed),
                h.bytes_out.load(Ordering::Relaxed),
            )
        })
    }

    /// Bytes dropped because host `index` was dead.
    pub fn swallowed(&self, index: usize) -> u64 {
        self.host(index)
            .map_or(0, |h| h.swallowed.load(Ordering::Relaxed))
    }

    /// Connections opened so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Connections open now (both ends not yet dropped count as one; a
    /// half-dropped one as a half, rounded up).
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::Relaxed).div_ceil(2)
    }

    /// The one-way delay between hosts `a` and `b`.
    pub fn one_way(&self, a: usize, b: usize) -> Duration {
        let half = self.config.rtt / 2;
        match self.config.delay {
            Delay::Fixed => half,
            Delay::Uniform(j) => {
                let (lo, hi) = (a.min(b) as u64, a.max(b) as u64);
                let r = unit(mix(self.config.seed ^ mix(lo ^ mix(hi))));
                half.mul_f64((1.0 - j + 2.0 * j * r).max(0.0))
            }
        }
    }

    /// The transport a production node of host `index` runs over, by
    /// [`LinkConfig::stack`], with [`LinkConfig::upgrade_timeout`] on every
    /// dial. Registers the node's peer id with its host.
    pub fn transport(
        &self,
        index: usize,
        keypair: &Keypair,
    ) -> Result<kadns_dht::BoxedTransport, noise::Error> {
        let local = keypair.public().to_peer_id();
        if let Some(host) = self.host(index) {
            let _ = host.peer_id.set(local);
        }
        let timeout = self.config.upgrade_timeout;
        Ok(match self.config.stack {
            Stack::Native => TransportTimeout::new(
                self.native_transport(index)
                    .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer))),
                timeout,
            )
            .boxed(),
            Stack::Yamux => self
                .raw_transport(index)
                .upgrade(Version::V1Lazy)
                .authenticate(IdExchange { local })
                .multiplex(yamux::Config::default())
                .timeout(timeout)
                .boxed(),
            Stack::Noise => self
                .raw_transport(index)
                .upgrade(Version::V1Lazy)
                .authenticate(noise::Config::new(keypair)?)
                .multiplex(yamux::Config::default())
                .timeout(timeout)
                .boxed(),
        })
    }
}
