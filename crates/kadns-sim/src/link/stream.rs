//! The byte-stream link ([`Stack::Yamux`](super::Stack::Yamux) and
//! [`Stack::Noise`](super::Stack::Noise)): connections are byte pipes with
//! the pair's one-way delay, upgraded by libp2p as over TCP.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::{AsyncRead, AsyncWrite, FutureExt};
use libp2p::Multiaddr;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use tokio::sync::mpsc;
use tokio::time::{Instant, Sleep};

use super::listener::Listener;
use super::{Host, Network, index_of, mix, unit};

/// A connection arriving at a byte-stream listener.
pub(super) struct Incoming {
    link: Link,
    from: usize,
}

impl Network {
    /// The raw transport of host `index`: connections are plain byte
    /// streams, nothing is upgraded.
    pub fn raw_transport(&self, index: usize) -> LinkTransport {
        LinkTransport {
            net: self.clone(),
            me: index,
            listener: Listener::new(index),
        }
    }

    /// A connected pair of links between `a` (dialer) and `b`.
    fn link_pair(&self, a: usize, b: usize) -> Option<(Link, Link)> {
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
            side(ha.clone(), hb.clone(), tx_ab, rx_ba, 1),
            side(hb, ha, tx_ba, rx_ab, 2),
        ))
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
    listener: Listener<mpsc::UnboundedReceiver<Incoming>, futures::future::Ready<io::Result<Link>>>,
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
        let (net, me) = (&self.net, self.me);
        self.listener.listen(id, addr, || {
            let (tx, rx) = mpsc::unbounded_channel();
            net.lock().listeners.insert(me, tx);
            rx
        })
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let (net, me) = (&self.net, self.me);
        self.listener.remove(id, || {
            net.lock().listeners.remove(&me);
        })
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
                .link_pair(me, target)
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
        self.listener.poll(cx, |rx, cx| {
            rx.poll_recv(cx)
                .map(|i| i.map(|i| (futures::future::ready(Ok(i.link)), i.from)))
        })
    }
}
