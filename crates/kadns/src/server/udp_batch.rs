//! Batched datagram I/O for the UDP workers: an [`Inbox`] that reads the
//! datagrams queued on a socket, and an [`Outbox`] that sends the replies.
//!
//! On Linux both make one system call for up to [`BATCH`] datagrams:
//! `recvmmsg` and `sendmmsg` (a profile of cached answers put 56 % of the
//! stub's time in the kernel, one `recvfrom` and one `sendto` per query).
//! Elsewhere, and on a Linux whose kernel or sandbox refuses those calls
//! (`ENOSYS`, seen once and remembered), the same types make one
//! `recv_from` or `send_to` per datagram. Both go through tokio's readiness
//! (`UdpSocket::try_io`), so a worker still sleeps in the reactor when its
//! socket is empty.
//!
//! The calls go through `nix` (`recvmmsg`, `sendmmsg`, `MultiHeaders`): safe
//! wrappers, a destination per message in one call, no socket options
//! changed, and already one of the stub's dependencies. `quinn-udp`, in the
//! tree through QUIC, was the other candidate: it receives with `recvmmsg`
//! too, but it sends with one `sendmsg` per destination (its send batching
//! is GSO: segments to a single peer, which DNS replies to many clients are
//! not), and it turns on GRO, ECN and packet-info messages on the socket.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;
use tracing::{debug, warn};

/// Most datagrams read, or sent, in one system call.
pub(crate) const BATCH: usize = 32;

/// Largest UDP datagram.
pub(crate) const MAX_DATAGRAM: usize = 65_535;

/// Whether `error` says the batched calls do not exist here.
#[cfg(target_os = "linux")]
fn unsupported(error: &io::Error) -> bool {
    error.raw_os_error() == Some(nix::errno::Errno::ENOSYS as i32)
}

/// The message headers `recvmmsg` and `sendmmsg` fill in, per thread: they
/// hold raw pointers (so they are not `Send`, and a worker's future, which
/// moves between runtime threads, cannot keep them), and are used only
/// within one synchronous call.
#[cfg(target_os = "linux")]
struct Headers {
    recv: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
    send: nix::sys::socket::MultiHeaders<nix::sys::socket::SockaddrStorage>,
}

#[cfg(target_os = "linux")]
thread_local! {
    static HEADERS: std::cell::RefCell<Headers> = std::cell::RefCell::new(Headers {
        recv: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
        send: nix::sys::socket::MultiHeaders::preallocate(BATCH, None),
    });
}

/// The datagrams of one read: up to [`BATCH`] of them, each in a slot of
/// [`MAX_DATAGRAM`] bytes.
pub(crate) struct Inbox {
    /// `BATCH` slots in one allocation (2 MiB). The allocator hands a block
    /// this size out as fresh zeroed pages, so only the pages datagrams are
    /// written to count in the process's resident memory.
    buf: Box<[u8]>,
    /// Length and source of each datagram of the last read; no source for
    /// one that cannot be answered (not IP, or cut short).
    received: Vec<(usize, Option<SocketAddr>)>,
    /// `recvmmsg` is used (until the kernel says it has none).
    batched: bool,
}

impl Inbox {
    /// An inbox that reads in batches where the system can.
    pub(crate) fn new() -> Self {
        Self::with_batching(true)
    }

    /// An inbox that reads in batches only if `batched` (and the system can).
    pub(crate) fn with_batching(batched: bool) -> Self {
        Self {
            buf: vec![0; BATCH * MAX_DATAGRAM].into_boxed_slice(),
            received: Vec::with_capacity(BATCH),
            batched: batched && cfg!(target_os = "linux"),
        }
    }

    /// Reads up to `max` (at most [`BATCH`]) of the datagrams queued on
    /// `socket`, without waiting: how many, at least one, or `WouldBlock`
    /// when none is queued (and tokio then waits for readiness again).
    pub(crate) fn try_recv(&mut self, socket: &UdpSocket, max: usize) -> io::Result<usize> {
        self.received.clear();
        #[cfg(target_os = "linux")]
        if self.batched && max > 1 {
            use std::os::fd::AsRawFd;
            let fd = socket.as_raw_fd();
            match socket.try_io(tokio::io::Interest::READABLE, || {
                self.recv_batch(fd, max.min(BATCH))
            }) {
                Err(error) if unsupported(&error) => {
                    debug!(%error, "no recvmmsg here: one datagram per call");
                    self.batched = false;
                }
                other => return other,
            }
        }
        let slot = self.buf.get_mut(..MAX_DATAGRAM).unwrap_or_default();
        let (len, from) = socket.try_recv_from(slot)?;
        self.received.push((len, Some(from)));
        Ok(1)
    }

    #[cfg(target_os = "linux")]
    fn recv_batch(&mut self, fd: std::os::fd::RawFd, max: usize) -> io::Result<usize> {
        use nix::sys::socket::{MsgFlags, SockaddrStorage, recvmmsg};
        use std::io::IoSliceMut;

        HEADERS.with_borrow_mut(|headers| {
            let mut slots = self.buf.chunks_exact_mut(MAX_DATAGRAM);
            let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
                std::array::from_fn(|_| [IoSliceMut::new(slots.next().unwrap_or_default())]);
            let results = recvmmsg(
                fd,
                &mut headers.recv,
                iovs.iter_mut().take(max),
                MsgFlags::MSG_DONTWAIT,
                None,
            )?;
            for message in results {
                let from = message
                    .address
                    .as_ref()
                    .and_then(|address: &SockaddrStorage| {
                        if let Some(v4) = address.as_sockaddr_in() {
                            Some(SocketAddr::V4((*v4).into()))
                        } else {
                            address
                                .as_sockaddr_in6()
                                .map(|v6| SocketAddr::V6((*v6).into()))
                        }
                    })
                    .filter(|_| !message.flags.contains(MsgFlags::MSG_TRUNC));
                self.received.push((message.bytes, from));
            }
            Ok(self.received.len())
        })
    }

    /// The datagrams of the last read, in order: the bytes and the source
    /// (`None`: no reply can go to it).
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = (&[u8], Option<SocketAddr>)> + '_ {
        self.buf
            .chunks_exact(MAX_DATAGRAM)
            .zip(&self.received)
            .map(|(slot, &(len, from))| (slot.get(..len).unwrap_or_default(), from))
    }
}

/// Replies waiting to be sent: up to [`BATCH`], each with its destination.
pub(crate) struct Outbox {
    /// Reply buffers, reused; the first `to.len()` are queued.
    replies: Vec<Vec<u8>>,
    to: Vec<SocketAddr>,
    /// `sendmmsg` is used (until the kernel says it has none).
    batched: bool,
    #[cfg(target_os = "linux")]
    addresses: Vec<Option<nix::sys::socket::SockaddrStorage>>,
}

impl Outbox {
    /// An outbox that sends in batches where the system can.
    pub(crate) fn new() -> Self {
        Self::with_batching(true)
    }

    /// An outbox that sends in batches only if `batched` (and the system can).
    pub(crate) fn with_batching(batched: bool) -> Self {
        Self {
            replies: Vec::with_capacity(BATCH),
            to: Vec::with_capacity(BATCH),
            batched: batched && cfg!(target_os = "linux"),
            #[cfg(target_os = "linux")]
            addresses: Vec::with_capacity(BATCH),
        }
    }

    /// No room for another reply: [`flush`](Self::flush) first.
    pub(crate) fn is_full(&self) -> bool {
        self.to.len() >= BATCH
    }

    /// The buffer the next reply goes into (holding an old reply's bytes),
    /// queued by [`queue`](Self::queue). Call only when not full.
    pub(crate) fn next_buffer(&mut self) -> &mut Vec<u8> {
        let next = self.to.len();
        while self.replies.len() <= next {
            self.replies.push(Vec::new());
        }
        &mut self.replies[next]
    }

    /// Queues the reply in [`next_buffer`](Self::next_buffer) for `to`.
    pub(crate) fn queue(&mut self, to: SocketAddr) {
        if self.to.len() < self.replies.len() {
            self.to.push(to);
        }
    }

    /// Sends every queued reply, waiting for room in the socket's buffer
    /// when it is full. A reply that cannot be sent is logged and skipped.
    pub(crate) async fn flush(&mut self, socket: &UdpSocket) {
        let mut sent = 0;
        while sent < self.to.len() {
            match self.try_send(socket, sent) {
                Ok(count) => sent += count.max(1),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    if let Err(error) = socket.writable().await {
                        warn!(%error, "cannot send UDP responses");
                        break;
                    }
                }
                Err(error) => {
                    // A batch stops at the first reply it cannot send, and
                    // the next call reports that reply's error.
                    let client = self.to[sent];
                    warn!(%client, %error, "cannot send a UDP response");
                    sent += 1;
                }
            }
        }
        self.to.clear();
    }

    /// Sends queued replies from the `from`th on without waiting: how many went.
    fn try_send(&mut self, socket: &UdpSocket, from: usize) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        if self.batched && self.to.len() - from > 1 {
            use std::os::fd::AsRawFd;
            let fd = socket.as_raw_fd();
            match socket.try_io(tokio::io::Interest::WRITABLE, || self.send_batch(fd, from)) {
                Err(error) if unsupported(&error) => {
                    debug!(%error, "no sendmmsg here: one datagram per call");
                    self.batched = false;
                }
                other => return other,
            }
        }
        socket
            .try_send_to(&self.replies[from], self.to[from])
            .map(|_| 1)
    }

    #[cfg(target_os = "linux")]
    fn send_batch(&mut self, fd: std::os::fd::RawFd, from: usize) -> io::Result<usize> {
        use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage, sendmmsg};
        use std::io::IoSlice;

        let queued = self.to.get(from..).unwrap_or_default();
        let count = queued.len().min(BATCH);
        self.addresses.clear();
        self.addresses
            .extend(queued.iter().map(|&to| Some(SockaddrStorage::from(to))));
        HEADERS.with_borrow_mut(|headers| {
            let mut replies = self.replies.iter().skip(from);
            let iovs: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                [IoSlice::new(replies.next().map_or(&[][..], Vec::as_slice))]
            });
            let no_control: [ControlMessage<'_>; 0] = [];
            let results = sendmmsg(
                fd,
                &mut headers.send,
                iovs.iter().take(count),
                &self.addresses,
                no_control,
                MsgFlags::MSG_DONTWAIT,
            )?;
            Ok(results.count())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several sockets send numbered datagrams at once; every one comes
    /// out of the inbox with its own bytes and its own source, and every
    /// reply sent back through the outbox reaches the socket it answers:
    /// batched and one at a time alike.
    #[tokio::test]
    async fn every_datagram_keeps_its_source_and_every_reply_its_destination() {
        for batched in [true, false] {
            let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = server.local_addr().unwrap();
            let mut clients = Vec::new();
            for _ in 0..5 {
                clients.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
            }
            let per_client = 20u8;
            for n in 0..per_client {
                for (c, client) in clients.iter().enumerate() {
                    let len = 1 + usize::from(n % 7);
                    let mut datagram = vec![c as u8, n];
                    datagram.resize(2 + len, 0xaa);
                    client.send_to(&datagram, addr).await.unwrap();
                }
            }
            let total = clients.len() * usize::from(per_client);
            let mut inbox = Inbox::with_batching(batched);
            let mut outbox = Outbox::with_batching(batched);
            let mut seen = 0;
            let mut largest_read = 0;
            while seen < total {
                server.readable().await.unwrap();
                let count = match inbox.try_recv(&server, BATCH) {
                    Ok(count) => count,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(error) => panic!("{error}"),
                };
                largest_read = largest_read.max(count);
                for (bytes, from) in inbox.datagrams() {
                    let from = from.expect("an IPv4 source");
                    let c = usize::from(bytes[0]);
                    assert_eq!(from, clients[c].local_addr().unwrap(), "datagram {bytes:?}");
                    assert_eq!(bytes.len(), 3 + usize::from(bytes[1] % 7));
                    // The reply: the datagram reversed.
                    let out = outbox.next_buffer();
                    out.clear();
                    out.extend(bytes.iter().rev());
                    outbox.queue(from);
                    seen += 1;
                }
                outbox.flush(&server).await;
            }
            if batched {
                assert!(largest_read > 1, "queued datagrams are read together");
            } else {
                assert_eq!(largest_read, 1);
            }
            for (c, client) in clients.iter().enumerate() {
                let mut buf = [0u8; 64];
                let mut numbers = Vec::new();
                for _ in 0..per_client {
                    let (len, from) = client.recv_from(&mut buf).await.unwrap();
                    assert_eq!(from, addr);
                    let reply = &buf[..len];
                    let n = reply[len - 2];
                    assert_eq!(reply[len - 1], c as u8, "a reply for another client");
                    assert_eq!(len, 3 + usize::from(n % 7));
                    numbers.push(n);
                }
                numbers.sort_unstable();
                assert_eq!(numbers, (0..per_client).collect::<Vec<_>>());
            }
        }
    }
}
