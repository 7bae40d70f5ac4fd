//! The native stack's transport: a dial yields an authenticated,
//! multiplexed connection ([`Muxer`]) after the round trips TCP and Noise XX
//! cost, with no connection upgrade run on top.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::core::transport::{DialOpts, ListenerId, Transport, TransportError, TransportEvent};
use libp2p::{Multiaddr, PeerId};
use tokio::time::Instant;

use super::delayed::{self, Receiver};
use super::listener::Listener;
use super::muxer::{Lane, Muxer, Side, muxer_pair};
use super::{Network, index_of, mix};

/// A connection arriving at a native listener, with the dialer's id.
pub(super) struct Incoming {
    muxer: Muxer,
    peer: PeerId,
    from: usize,
}

type ListenerUpgrade = futures::future::Ready<io::Result<(PeerId, Muxer)>>;

/// Host `me`'s transport on the native stack ([`super::Stack::Native`]).
pub struct NativeTransport {
    net: Network,
    me: usize,
    listener: Listener<Receiver<Incoming>, ListenerUpgrade>,
}

impl std::fmt::Debug for NativeTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeTransport")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Host `index`'s native transport (its node's peer id must be
    /// registered, as [`Network::transport`] does, before others dial it).
    pub fn native_transport(&self, index: usize) -> NativeTransport {
        NativeTransport {
            net: self.clone(),
            me: index,
            listener: Listener::new(index),
        }
    }

    /// A connected pair of muxers between `a` (dialer) and `b`.
    fn native_pair(&self, a: usize, b: usize) -> Option<(Muxer, Muxer)> {
        let (ha, hb) = (self.host(a)?, self.host(b)?);
        let n = self.connections.fetch_add(1, Ordering::Relaxed);
        let one_way = self.one_way(a, b);
        let side = |me: &Arc<super::Host>, peer: &Arc<super::Host>, salt: u64| {
            Arc::new(Side {
                me: me.clone(),
                peer: peer.clone(),
                lane: Mutex::new(Lane {
                    one_way,
                    loss: self.config.loss,
                    rto: self.config.rto(),
                    rng: mix(self.config.seed ^ mix(n) ^ salt),
                    last: Instant::now(),
                }),
                closed: AtomicBool::new(false),
            })
        };
        Some(muxer_pair(side(&ha, &hb, 1), side(&hb, &ha, 2), &self.open))
    }
}

impl Transport for NativeTransport {
    type Output = (PeerId, Muxer);
    type Error = io::Error;
    type ListenerUpgrade = ListenerUpgrade;
    type Dial = BoxFuture<'static, io::Result<(PeerId, Muxer)>>;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        let (net, me) = (&self.net, self.me);
        self.listener.listen(id, addr, || {
            let (tx, rx) = delayed::channel();
            net.lock().native_listeners.insert(me, tx);
            rx
        })
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        let (net, me) = (&self.net, self.me);
        self.listener.remove(id, || {
            net.lock().native_listeners.remove(&me);
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
            let refused = || io::Error::from(io::ErrorKind::ConnectionRefused);
            let one_way = net.one_way(me, target);
            // The SYN / SYN-ACK exchange: one RTT.
            tokio::time::sleep(one_way * 2).await;
            let listener = net.lock().native_listeners.get(&target).cloned();
            let listener = listener.ok_or_else(refused)?;
            // A dead host "accepts" and never answers the handshake: the
            // dial fails at the transport's timeout.
            if net.is_dead(target) {
                return std::future::pending().await;
            }
            let theirs = net.host(target).and_then(|h| h.peer_id.get().copied());
            let mine = net.host(me).and_then(|h| h.peer_id.get().copied());
            let (Some(theirs), Some(mine)) = (theirs, mine) else {
                return Err(refused());
            };
            let (ours, their_end) = net.native_pair(me, target).ok_or_else(refused)?;
            // The handshake (Noise XX): the dialer knows the listener after
            // one RTT and sends its last message with its first data; the
            // listener's side is ready when that arrives.
            let at = Instant::now() + one_way * 3;
            let incoming = Incoming {
                muxer: their_end,
                peer: mine,
                from: me,
            };
            if listener.send(at, incoming).is_err() {
                return Err(refused());
            }
            tokio::time::sleep(one_way * 2).await;
            Ok((theirs, ours))
        }
        .boxed())
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        self.listener.poll(cx, |rx, cx| {
            rx.poll_next(cx)
                .map(|i| Some((futures::future::ready(Ok((i.peer, i.muxer))), i.from)))
        })
    }
}
