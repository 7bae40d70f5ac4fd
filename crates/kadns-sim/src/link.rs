//! The link layer: an in-memory network of byte-stream connections with a
//! one-way delay per node pair, TCP-like loss (a lost segment arrives one
//! retransmission timeout late, and everything behind it waits), and dead
//! nodes that swallow everything without ever closing a connection.
//!
//! Node `i` listens on `/ip4/10.a.b.c/tcp/4001` where `a.b.c` is `i` in base
//! 256, so the production code's "IP addresses only" rules hold unchanged.
//! [`LinkTransport`] is a raw libp2p transport; [`Network::transport`] puts
//! the production upgrades (Noise, Yamux) on top.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::Ipv4Addr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, FutureExt};
use libp2p::PeerId;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::core::upgrade::{
    InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo, Version,
};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, noise, yamux};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

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
    /// Limit on the connection upgrade (identity exchange or Noise, then
    /// Yamux): a dial into a dead node fails after this long, as with the
    /// production TCP transport's `dial_timeout`.
    pub upgrade_timeout: Duration,
    /// Secure connections with the production Noise handshake. Off (the
    /// default), peers exchange their ids in the clear instead ([`IdExchange`]):
    /// the same round trip as Noise XX, without its key agreement's CPU cost
    /// and buffers. The simulator's adversaries lie in what they store, never
    /// about who they are, so nothing it measures depends on Noise.
    pub noise: bool,
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
            noise: false,
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
    /// Bytes delivered *to* this host.
    bytes_in: AtomicU64,
    /// Bytes this host wrote that were delivered.
    bytes_out: AtomicU64,
    /// Bytes written by or to this host while it was dead, dropped.
    swallowed: AtomicU64,
}

struct Incoming {
    link: Link,
    from: usize,
}

#[derive(Default)]
struct Inner {
    hosts: Vec<Arc<Host>>,
    listeners: HashMap<usize, mpsc::UnboundedSender<Incoming>>,
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

    /// The raw transport of host `index`: connections are plain byte
    /// streams, nothing is upgraded.
    pub fn raw_transport(&self, index: usize) -> LinkTransport {
        LinkTransport {
            net: self.clone(),
            me: index,
            listener: None,
            events: VecDeque::new(),
        }
    }

    /// The transport a production node of host `index` runs over: the raw
    /// link upgraded as libp2p's TCP builder does (multistream-select, an
    /// authentication, Yamux), with [`LinkConfig::upgrade_timeout`]. The
    /// authentication is Noise with [`LinkConfig::noise`], else
    /// [`IdExchange`].
    pub fn transport(
        &self,
        index: usize,
        keypair: &Keypair,
    ) -> Result<kadns_dht::BoxedTransport, noise::Error> {
        let upgraded = self.raw_transport(index).upgrade(Version::V1Lazy);
        Ok(if self.config.noise {
            upgraded
                .authenticate(noise::Config::new(keypair)?)
                .multiplex(yamux::Config::default())
                .timeout(self.config.upgrade_timeout)
                .boxed()
        } else {
            upgraded
                .authenticate(IdExchange {
                    local: keypair.public().to_peer_id(),
                })
                .multiplex(yamux::Config::default())
                .timeout(self.config.upgrade_timeout)
                .boxed()
        })
    }

    /// A connected pair of links between `a` (dialer) and `b`.
    fn pair(&self, a: usize, b: usize) -> Option<(Link, Link)> {
        let (ha, hb) = (self.host(a)?, self.host(b)?);
        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        let one_way = self.one_way(a, b);
        let (tx_ab, rx_ab) = mpsc::unbounded_channel();
        let (tx_ba, rx_ba) = mpsc::unbounded_channel();
        self.open.fetch_add(2, Ordering::Relaxed);
        let side = |me: Arc<Host>, peer: Arc<Host>, tx, rx, salt: u64| Link {
            open: self.open.clone(),
            tx: Some(tx),
            rx,
            pending: None,
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            me,
            peer,
            one_way,
            loss: self.config.loss,
            rto: self.config.rto(),
            rng: mix(self.config.seed ^ mix(n) ^ salt),
            last: Instant::now(),
        };
        Some((
            side(ha, hb.clone(), tx_ab, rx_ba, 1),
            side(hb, self.host(a)?, tx_ba, rx_ab, 2),
        ))
    }
}

/// The simulator's stand-in for Noise: each side sends its peer id (one
/// length byte, then the id's bytes) and reads the other's. The dialer can
/// send data after one round trip, as with Noise XX; a dead host never
/// answers, so a dial into it hangs until the upgrade timeout, as with
/// Noise. Ids are announced, not proven: see [`LinkConfig::noise`].
#[derive(Clone, Copy, Debug)]
pub struct IdExchange {
    /// This side's peer id.
    pub local: PeerId,
}

/// [`IdExchange`]'s protocol name in multistream-select.
pub const ID_EXCHANGE_PROTOCOL: &str = "/kadns-sim/id/1.0.0";

impl UpgradeInfo for IdExchange {
    type Info = &'static str;
    type InfoIter = std::iter::Once<&'static str>;

    fn protocol_info(&self) -> Self::InfoIter {
        std::iter::once(ID_EXCHANGE_PROTOCOL)
    }
}

async fn exchange_ids<C>(local: PeerId, mut io: C) -> io::Result<(PeerId, C)>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let mine = local.to_bytes();
    let len = u8::try_from(mine.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut hello = Vec::with_capacity(1 + mine.len());
    hello.push(len);
    hello.extend_from_slice(&mine);
    io.write_all(&hello).await?;
    io.flush().await?;
    let mut len = [0u8; 1];
    io.read_exact(&mut len).await?;
    let mut theirs = vec![0u8; usize::from(len[0])];
    io.read_exact(&mut theirs).await?;
    let peer =
        PeerId::from_bytes(&theirs).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok((peer, io))
}

impl<C> InboundConnectionUpgrade<C> for IdExchange
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = (PeerId, C);
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<(PeerId, C)>>;

    fn upgrade_inbound(self, socket: C, _: Self::Info) -> Self::Future {
        exchange_ids(self.local, socket).boxed()
    }
}

impl<C> OutboundConnectionUpgrade<C> for IdExchange
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Output = (PeerId, C);
    type Error = io::Error;
    type Future = BoxFuture<'static, io::Result<(PeerId, C)>>;

    fn upgrade_outbound(self, socket: C, _: Self::Info) -> Self::Future {
        exchange_ids(self.local, socket).boxed()
    }
}

struct Chunk {
    at: Instant,
    data: Vec<u8>,
    offset: usize,
}

/// One end of a simulated connection: a byte stream whose writes arrive
/// at the other end after the pair's one-way delay.
pub struct Link {
    tx: Option<mpsc::UnboundedSender<Chunk>>,
    rx: mpsc::UnboundedReceiver<Chunk>,
    pending: Option<Chunk>,
    sleep: Pin<Box<Sleep>>,
    me: Arc<Host>,
    peer: Arc<Host>,
    one_way: Duration,
    loss: f64,
    rto: Duration,
    rng: u64,
    /// When the last written segment arrives: later ones never overtake it.
    last: Instant,
    /// The network's count of live link ends.
    open: Arc<AtomicU64>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("one_way", &self.one_way)
            .finish_non_exhaustive()
    }
}

impl Link {
    fn blackholed(&self) -> bool {
        self.me.dead.load(Ordering::Relaxed) || self.peer.dead.load(Ordering::Relaxed)
    }
}

impl AsyncRead for Link {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.pending.is_none() {
                match this.rx.poll_recv(cx) {
                    Poll::Ready(Some(chunk)) => {
                        this.sleep.as_mut().reset(chunk.at);
                        this.pending = Some(chunk);
                    }
                    // A dead peer never closes: its end stays silent.
                    Poll::Ready(None) if this.blackholed() => return Poll::Pending,
                    Poll::Ready(None) => return Poll::Ready(Ok(0)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if this.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let blackholed = this.blackholed();
            let Some(chunk) = this.pending.as_mut() else {
                continue;
            };
            if blackholed {
                let lost = (chunk.data.len() - chunk.offset) as u64;
                this.me.swallowed.fetch_add(lost, Ordering::Relaxed);
                this.pending = None;
                continue;
            }
            let n = buf.len().min(chunk.data.len() - chunk.offset);
            buf[..n].copy_from_slice(&chunk.data[chunk.offset..chunk.offset + n]);
            chunk.offset += n;
            if chunk.offset == chunk.data.len() {
                this.pending = None;
            }
            this.me.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
            this.peer.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            return Poll::Ready(Ok(n));
        }
    }
}

impl AsyncWrite for Link {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.blackholed() {
            this.me
                .swallowed
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            return Poll::Ready(Ok(buf.len()));
        }
        let Some(tx) = &this.tx else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let mut at = Instant::now() + this.one_way;
        if this.loss > 0.0 {
            this.rng = mix(this.rng);
            if unit(this.rng) < this.loss {
                at += this.rto;
            }
        }
        let at = at.max(this.last);
        this.last = at;
        let chunk = Chunk {
            at,
            data: buf.to_vec(),
            offset: 0,
        };
        if tx.send(chunk).is_err() {
            // The other end is gone (its node stopped): like a reset.
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A dead host sends no FIN either: keep the sender so the peer
        // never sees end of stream.
        if !self.blackholed() {
            self.tx = None;
        }
        Poll::Ready(Ok(()))
    }
}

/// Host `me`'s raw transport on the [`Network`].
pub struct LinkTransport {
    net: Network,
    me: usize,
    listener: Option<(ListenerId, Multiaddr, mpsc::UnboundedReceiver<Incoming>)>,
    events: VecDeque<TransportEvent<futures::future::Ready<io::Result<Link>>, io::Error>>,
}

impl std::fmt::Debug for LinkTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTransport")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Transport for LinkTransport {
    type Output = Link;
    type Error = io::Error;
    type ListenerUpgrade = futures::future::Ready<io::Result<Link>>;
    type Dial = BoxFuture<'static, io::Result<Link>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        if index_of(&addr) != Some(self.me) || self.listener.is_some() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        self.net.lock().listeners.insert(self.me, tx);
        self.listener = Some((id, addr.clone(), rx));
        self.events.push_back(TransportEvent::NewAddress {
            listener_id: id,
            listen_addr: addr,
        });
        Ok(())
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        match &self.listener {
            Some((lid, _, _)) if *lid == id => {
                self.listener = None;
                self.net.lock().listeners.remove(&self.me);
                true
            }
            _ => false,
        }
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        _opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        let Some(target) = index_of(&addr) else {
            return Err(TransportError::MultiaddrNotSupported(addr));
        };
        let net = self.net.clone();
        let me = self.me;
        Ok(async move {
            // The SYN / SYN-ACK exchange: one RTT before data flows.
            tokio::time::sleep(net.one_way(me, target) * 2).await;
            let listener = net.lock().listeners.get(&target).cloned();
            let Some(listener) = listener else {
                return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
            };
            let (mine, theirs) = net
                .pair(me, target)
                .ok_or_else(|| io::Error::from(io::ErrorKind::ConnectionRefused))?;
            // A dead host "accepts" (the dial succeeds) and then never
            // answers: its listener is not told.
            if !net.is_dead(target) {
                let _ = listener.send(Incoming {
                    link: theirs,
                    from: me,
                });
            }
            Ok(mine)
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        let Some((id, addr, rx)) = self.listener.as_mut() else {
            return Poll::Pending;
        };
        match rx.poll_recv(cx) {
            Poll::Ready(Some(incoming)) => Poll::Ready(TransportEvent::Incoming {
                listener_id: *id,
                upgrade: futures::future::ready(Ok(incoming.link)),
                local_addr: addr.clone(),
                send_back_addr: address(incoming.from),
            }),
            _ => Poll::Pending,
        }
    }
}
