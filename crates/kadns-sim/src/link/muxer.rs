//! The native stack ([`Stack::Native`](super::Stack::Native)): connections
//! that are already authenticated and multiplexed, so libp2p runs no
//! connection upgrade (multistream-select, an authentication, Yamux) over a
//! byte pipe. Each substream is a pair of delayed in-memory queues; the link
//! still adds what it says:
//!
//! - a dial costs one RTT for the SYN exchange and one for the handshake (as
//!   TCP + Noise XX: the dialer can send after two RTTs, the listener's side
//!   of the connection appears half an RTT later, with the dialer's first
//!   data);
//! - everything written (a substream's opening, its bytes, its FIN or reset,
//!   the connection's close) arrives one one-way delay later, never
//!   overtaking what was written before it on that connection (one clock per
//!   direction, [`Lane`]); a lost segment arrives one RTO late and holds back
//!   what follows, as in TCP;
//! - a dead host accepts a dial and never completes the handshake (the dial
//!   fails at the transport's timeout); on a connection to a host that has
//!   died, nothing arrives either way and the connection never closes.
//!
//! Above this, everything is the production stack: the swarm negotiates
//! every substream's protocol with multistream-select, and Kademlia,
//! identify, ping and the store protocol run unchanged.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::StreamMuxer;
use libp2p::core::muxing::StreamMuxerEvent;
use tokio::time::Instant;

use super::delayed::{self, Receiver, Sender, Shared};
use super::{Host, mix, unit};

/// One direction of a connection: its delay, its loss, and the arrival time
/// of the last thing sent (nothing sent later arrives earlier).
#[derive(Debug)]
pub(super) struct Lane {
    pub(super) one_way: Duration,
    pub(super) loss: f64,
    pub(super) rto: Duration,
    pub(super) rng: u64,
    pub(super) last: Instant,
}

impl Lane {
    /// When something written now arrives.
    fn stamp(&mut self) -> Instant {
        let mut at = Instant::now() + self.one_way;
        if self.loss > 0.0 {
            self.rng = mix(self.rng);
            if unit(self.rng) < self.loss {
                at += self.rto;
            }
        }
        let at = at.max(self.last);
        self.last = at;
        at
    }
}

/// One side of a connection: its host, the peer host, its sending lane and
/// whether this side has closed the connection.
#[derive(Debug)]
pub(super) struct Side {
    pub(super) me: Arc<Host>,
    pub(super) peer: Arc<Host>,
    pub(super) lane: Mutex<Lane>,
    pub(super) closed: AtomicBool,
}

impl Side {
    fn blackholed(&self) -> bool {
        self.me.dead.load(Ordering::Relaxed) || self.peer.dead.load(Ordering::Relaxed)
    }

    fn stamp(&self) -> Instant {
        self.lane
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stamp()
    }
}

/// What travels on a substream.
enum Segment {
    Data(Vec<u8>),
    /// The writer closed its side (FIN).
    Eof,
    /// The stream was reset: by the peer dropping it (`wire`, subject to the
    /// link like data), or because the connection closed (pushed locally).
    Reset {
        wire: bool,
    },
}

/// What travels on the connection itself.
enum Control {
    Open(Substream),
    Close,
}

/// One end of a substream.
pub struct Substream {
    rx: Receiver<Segment>,
    tx: Sender<Segment>,
    side: Arc<Side>,
    current: Option<(Vec<u8>, usize)>,
    read_eof: bool,
    read_reset: bool,
    write_closed: bool,
}

impl std::fmt::Debug for Substream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Substream").finish_non_exhaustive()
    }
}

fn substream_pair(a: &Arc<Side>, b: &Arc<Side>) -> (Substream, Substream) {
    let (tx_ab, rx_ab) = delayed::channel();
    let (tx_ba, rx_ba) = delayed::channel();
    let end = |side: &Arc<Side>, rx, tx| Substream {
        rx,
        tx,
        side: side.clone(),
        current: None,
        read_eof: false,
        read_reset: false,
        write_closed: false,
    };
    (end(a, rx_ba, tx_ab), end(b, rx_ab, tx_ba))
}

impl AsyncRead for Substream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            if this.read_reset {
                return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
            }
            if this.read_eof {
                return Poll::Ready(Ok(0));
            }
            if let Some((data, offset)) = this.current.as_mut() {
                let n = buf.len().min(data.len() - *offset);
                buf[..n].copy_from_slice(&data[*offset..*offset + n]);
                *offset += n;
                if *offset == data.len() {
                    this.current = None;
                }
                this.side.me.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                this.side
                    .peer
                    .bytes_out
                    .fetch_add(n as u64, Ordering::Relaxed);
                return Poll::Ready(Ok(n));
            }
            let segment = match this.rx.poll_next(cx) {
                Poll::Ready(s) => s,
                Poll::Pending => return Poll::Pending,
            };
            let blackholed = this.side.blackholed();
            match segment {
                // A dead host's bytes (or bytes to it) vanish, and it
                // never closes or resets anything.
                Segment::Data(data) if blackholed => {
                    this.side
                        .me
                        .swallowed
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                Segment::Eof | Segment::Reset { wire: true } if blackholed => {}
                Segment::Data(data) => this.current = Some((data, 0)),
                Segment::Eof => this.read_eof = true,
                Segment::Reset { .. } => this.read_reset = true,
            }
        }
    }
}

impl Substream {
    /// Sends a segment to the peer unless the link swallows it.
    fn send(&self, segment: Segment) -> io::Result<()> {
        if self.side.blackholed() {
            return Ok(());
        }
        self.tx
            .send(self.side.stamp(), segment)
            .map_err(|_| io::ErrorKind::ConnectionReset.into())
    }
}

impl AsyncWrite for Substream {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        if self.read_reset || self.side.closed.load(Ordering::Relaxed) {
            return Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()));
        }
        if self.side.blackholed() {
            self.side
                .me
                .swallowed
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            return Poll::Ready(Ok(buf.len()));
        }
        self.send(Segment::Data(buf.to_vec()))?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.write_closed {
            self.write_closed = true;
            // The peer may be gone already: closing succeeds anyway.
            let _ = self.send(Segment::Eof);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for Substream {
    fn drop(&mut self) {
        if self.write_closed {
            return;
        }
        // As Yamux: dropped after the peer's FIN, a FIN; else a reset.
        let segment = if self.read_eof {
            Segment::Eof
        } else {
            Segment::Reset { wire: true }
        };
        let _ = self.send(segment);
    }
}

/// The error a closed connection reports.
fn closed() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, "connection closed")
}

/// One end of a native connection: a [`StreamMuxer`] over delayed queues.
pub struct Muxer {
    local: Arc<Side>,
    remote: Arc<Side>,
    control_rx: Receiver<Control>,
    control_tx: Sender<Control>,
    inbound: VecDeque<Substream>,
    /// Our substreams' receive queues, to reset them when the connection
    /// closes (dead entries are pruned as it grows).
    streams: Vec<Weak<Shared<Segment>>>,
    prune_at: usize,
    remote_closed: bool,
    /// The network's count of live connection ends.
    open: Arc<AtomicU64>,
}

impl std::fmt::Debug for Muxer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Muxer")
            .field("remote_closed", &self.remote_closed)
            .finish_non_exhaustive()
    }
}

/// A connected pair of muxers: `a`'s and `b`'s ends of one connection.
pub(super) fn muxer_pair(a: Arc<Side>, b: Arc<Side>, open: &Arc<AtomicU64>) -> (Muxer, Muxer) {
    let (tx_ab, rx_ab) = delayed::channel();
    let (tx_ba, rx_ba) = delayed::channel();
    open.fetch_add(2, Ordering::Relaxed);
    let end = |local: &Arc<Side>, remote: &Arc<Side>, rx, tx| Muxer {
        local: local.clone(),
        remote: remote.clone(),
        control_rx: rx,
        control_tx: tx,
        inbound: VecDeque::new(),
        streams: Vec::new(),
        prune_at: 16,
        remote_closed: false,
        open: open.clone(),
    };
    (end(&a, &b, rx_ba, tx_ab), end(&b, &a, rx_ab, tx_ba))
}

impl Muxer {
    fn is_closed(&self) -> bool {
        self.remote_closed || self.local.closed.load(Ordering::Relaxed)
    }

    fn track(&mut self, s: &Substream) {
        if self.streams.len() >= self.prune_at {
            self.streams.retain(|w| w.strong_count() > 0);
            self.prune_at = (self.streams.len() * 2).max(16);
        }
        self.streams.push(s.rx.downgrade());
    }

    /// Every substream of this end fails from now on (after what has
    /// already arrived).
    fn reset_all(&mut self) {
        let now = Instant::now();
        for s in self.streams.drain(..).filter_map(|w| w.upgrade()) {
            let _ = s.push(now, Segment::Reset { wire: false });
        }
    }

    /// Takes in what has arrived on the connection.
    fn poll_control(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(control) = self.control_rx.poll_next(cx) {
            if self.local.blackholed() {
                // Dropped unseen (its drop sends nothing: blackholed).
                continue;
            }
            match control {
                Control::Open(s) => {
                    self.track(&s);
                    self.inbound.push_back(s);
                }
                Control::Close => {
                    self.remote_closed = true;
                    self.reset_all();
                }
            }
        }
    }

    fn close_local(&mut self) {
        if self.local.closed.swap(true, Ordering::Relaxed) {
            return;
        }
        self.reset_all();
        if !self.remote_closed && !self.local.blackholed() {
            let _ = self.control_tx.send(self.local.stamp(), Control::Close);
        }
    }
}

impl StreamMuxer for Muxer {
    type Substream = Substream;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Substream, io::Error>> {
        self.poll_control(cx);
        if self.is_closed() {
            return Poll::Ready(Err(closed()));
        }
        match self.inbound.pop_front() {
            Some(s) => Poll::Ready(Ok(s)),
            None => Poll::Pending,
        }
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Result<Substream, io::Error>> {
        if self.is_closed() {
            return Poll::Ready(Err(closed()));
        }
        let (mine, theirs) = substream_pair(&self.local, &self.remote);
        self.track(&mine);
        // Opening a stream costs no round trip (Yamux sends its SYN with
        // the first frame); the peer sees it one one-way delay later.
        if !self.local.blackholed() {
            // Refused (the peer's end is gone): `theirs` is dropped.
            let _ = self
                .control_tx
                .send(self.local.stamp(), Control::Open(theirs));
        }
        Poll::Ready(Ok(mine))
    }

    fn poll_close(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        self.close_local();
        Poll::Ready(Ok(()))
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, io::Error>> {
        self.poll_control(cx);
        if self.remote_closed {
            return Poll::Ready(Err(closed()));
        }
        Poll::Pending
    }
}

impl Drop for Muxer {
    fn drop(&mut self) {
        self.close_local();
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}
