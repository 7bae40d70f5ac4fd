//! The listening half both transports share: one listener per host, on the
//! host's own address, announced once, and incoming connections turned into
//! [`TransportEvent::Incoming`]. Each transport brings its own queue of
//! arrivals (`R`) and upgrade type (`U`).

use std::collections::VecDeque;
use std::io;
use std::task::{Context, Poll};

use libp2p::Multiaddr;
use libp2p::core::transport::{ListenerId, TransportError, TransportEvent};

use super::{address, index_of};

/// Host `me`'s listener slot.
pub(super) struct Listener<R, U> {
    me: usize,
    slot: Option<(ListenerId, Multiaddr, R)>,
    events: VecDeque<TransportEvent<U, io::Error>>,
}

impl<R, U> Listener<R, U> {
    pub(super) fn new(me: usize) -> Self {
        Self {
            me,
            slot: None,
            events: VecDeque::new(),
        }
    }

    /// Listens on `addr`, which must be the host's own address, once;
    /// `register` makes the host reachable and returns the queue its
    /// arrivals come in on.
    pub(super) fn listen(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
        register: impl FnOnce() -> R,
    ) -> Result<(), TransportError<io::Error>> {
        if index_of(&addr) != Some(self.me) || self.slot.is_some() {
            return Err(TransportError::MultiaddrNotSupported(addr));
        }
        self.slot = Some((id, addr.clone(), register()));
        self.events.push_back(TransportEvent::NewAddress {
            listener_id: id,
            listen_addr: addr,
        });
        Ok(())
    }

    /// Stops listener `id`; `unregister` makes the host unreachable.
    pub(super) fn remove(&mut self, id: ListenerId, unregister: impl FnOnce()) -> bool {
        match &self.slot {
            Some((lid, _, _)) if *lid == id => {
                self.slot = None;
                unregister();
                true
            }
            _ => false,
        }
    }

    /// The next event: a queued announcement, else the next arrival that
    /// `recv` takes off the queue (its upgrade and the dialing host).
    pub(super) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        recv: impl FnOnce(&mut R, &mut Context<'_>) -> Poll<Option<(U, usize)>>,
    ) -> Poll<TransportEvent<U, io::Error>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(event);
        }
        let Some((id, addr, queue)) = self.slot.as_mut() else {
            return Poll::Pending;
        };
        match recv(queue, cx) {
            Poll::Ready(Some((upgrade, from))) => Poll::Ready(TransportEvent::Incoming {
                listener_id: *id,
                upgrade,
                local_addr: addr.clone(),
                send_back_addr: address(from),
            }),
            _ => Poll::Pending,
        }
    }
}
