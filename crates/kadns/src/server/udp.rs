//! DNS over UDP: sockets bound with `SO_REUSEPORT`, one per worker, each
//! worker one loop. The kernel spreads datagrams over the sockets by their
//! addresses, so workers never contend for one socket.
//!
//! A worker keeps up to `max_in_flight` queries in flight at once (a slow
//! lookup does not hold up cached answers behind it), and reuses its buffers:
//! one receive buffer, and a pool of query and response `Vec`s that come
//! back to it after each answer. A query the answerer can answer at once
//! (an answer cache hit, [`Answerer::answer_now`]) is answered inline,
//! straight from the receive buffer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::rrl::{Rrl, Verdict};
use super::{Answerer, Disposition, QueryContext, Transport, can_reply_to, wire};
use crate::client_policy::SharedPolicy;
use crate::metrics::StubMetrics;

/// Largest UDP datagram.
const MAX_DATAGRAM: usize = 65_535;

/// Datagrams read in one go once the socket is readable.
const BURST: usize = 64;

/// Binds one UDP socket at `addr` with `SO_REUSEPORT` (so that more can
/// join it at the same port), non-blocking, for tokio.
pub(crate) fn bind_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // As tokio binds: an IPv6 address answers IPv6 only.
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// What every UDP worker of a stub shares.
#[derive(Debug)]
pub(crate) struct UdpShared<A> {
    pub(crate) answerer: Arc<A>,
    pub(crate) policy: SharedPolicy,
    pub(crate) rrl: Rrl,
    pub(crate) metrics: Arc<StubMetrics>,
    /// Queries in flight per worker; beyond it the socket is not read.
    pub(crate) max_in_flight: usize,
}

/// One worker: answers every datagram `socket` receives until `shutdown`.
pub(crate) async fn worker<A: Answerer>(
    socket: UdpSocket,
    shared: Arc<UdpShared<A>>,
    shutdown: CancellationToken,
) {
    let max_in_flight = shared.max_in_flight.max(1);
    let mut receive = vec![0u8; MAX_DATAGRAM];
    // (query, response) buffers back from answered queries.
    let mut pool: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some((disposition, client, query, mut out)) = in_flight.next(), if !in_flight.is_empty() => {
                if disposition == Disposition::Reply {
                    send(&socket, &shared, client, &mut out).await;
                }
                if pool.len() < max_in_flight {
                    pool.push((query, out));
                }
            }
            received = socket.recv_from(&mut receive), if in_flight.len() < max_in_flight => {
                let mut next = Some(received);
                let mut taken = 0;
                while let Some(received) = next.take() {
                    taken += 1;
                    match received {
                        Err(error) => debug!(%error, "UDP receive failed"),
                        Ok((_, client)) if !can_reply_to(client) => {
                            debug!(%client, "a datagram from an address no reply can go to: dropped");
                        }
                        Ok((len, client)) => {
                            let (mut query, mut out) = pool.pop().unwrap_or_default();
                            let ctx = QueryContext { client, transport: Transport::Udp };
                            // A cache hit is answered here: no future, no copy of the query.
                            if shared.answerer.answer_now(&receive[..len], ctx, &mut out) {
                                send(&socket, &shared, client, &mut out).await;
                                if pool.len() < max_in_flight {
                                    pool.push((query, out));
                                }
                            } else {
                                query.clear();
                                query.extend_from_slice(&receive[..len]);
                                let answerer = shared.answerer.clone();
                                in_flight.push(async move {
                                    let mut out = out;
                                    let disposition =
                                        answerer.answer_after_miss(&query, ctx, &mut out).await;
                                    (disposition, client, query, out)
                                });
                            }
                        }
                    }
                    // Datagrams already queued are read without another
                    // trip through the select, up to a burst, so that
                    // finished lookups are still sent promptly.
                    if taken < BURST && in_flight.len() < max_in_flight {
                        match socket.try_recv_from(&mut receive) {
                            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                            other => next = Some(other),
                        }
                    }
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
}

/// Sends `out` to `client` unless response-rate limiting drops it (or sends it as TC).
async fn send<A>(socket: &UdpSocket, shared: &UdpShared<A>, client: SocketAddr, out: &mut Vec<u8>) {
    let limit = shared.policy.load().rate_limit;
    if let Some(limit) = limit
        && limit.applies_to(client.ip())
    {
        match shared.rrl.check(&limit, client.ip(), out, Instant::now()) {
            Verdict::Send => {}
            Verdict::Drop => {
                shared.metrics.rrl_dropped.inc();
                return;
            }
            Verdict::Slip => {
                if !wire::truncate_in_place(out) {
                    shared.metrics.rrl_dropped.inc();
                    return;
                }
                shared.metrics.rrl_slipped.inc();
            }
        }
    }
    // A UDP send rarely waits: try it at once, and wait only if the
    // socket's buffer is full.
    let sent = match socket.try_send_to(out, client) {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            socket.send_to(out, client).await.map(drop)
        }
        other => other.map(drop),
    };
    if let Err(error) = sent {
        warn!(%client, %error, "cannot send a UDP response");
    }
}
