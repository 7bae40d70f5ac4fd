//! DNS over UDP: sockets bound with `SO_REUSEPORT`, one per worker, each
//! worker one loop. The kernel spreads datagrams over the sockets by their
//! addresses, so workers never contend for one socket.
//!
//! A worker reads the datagrams queued on its socket in batches and sends
//! the replies in batches (`recvmmsg` and `sendmmsg` on Linux, see
//! `udp_batch`). A query the answerer can answer at once
//! (an answer cache hit, [`Answerer::answer_now`]) is answered inline,
//! straight from the receive buffer, into the outgoing batch. Every other
//! query is copied out and answered asynchronously: up to `max_in_flight`
//! at once per worker (a slow lookup does not hold up cached answers
//! behind it), their query and response `Vec`s reused from a pool; answers
//! that finish together go out in one batch too.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::rrl::{Rrl, Verdict};
use super::udp_batch::{Inbox, Outbox};
use super::{Answerer, Disposition, QueryContext, Transport, can_reply_to, wire};
use crate::client_policy::SharedPolicy;
use crate::metrics::StubMetrics;

/// Datagrams read in one go once the socket is readable (in reads of up to
/// `udp_batch::BATCH`), before the worker looks
/// at its finished lookups again.
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
    let mut inbox = Inbox::new();
    let mut outbox = Outbox::new();
    // (query, response) buffers back from answered queries.
    let mut pool: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut in_flight = FuturesUnordered::new();
    loop {
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                // This answer, and every other one already finished, in one batch.
                let mut next = Some(done);
                while let Some((disposition, client, query, mut out)) = next.take() {
                    if disposition == Disposition::Reply && admit(&shared, client, &mut out) {
                        if outbox.is_full() {
                            outbox.flush(&socket).await;
                        }
                        std::mem::swap(outbox.next_buffer(), &mut out);
                        outbox.queue(client);
                    }
                    if pool.len() < max_in_flight {
                        pool.push((query, out));
                    }
                    next = poll_fn(|cx| match in_flight.poll_next_unpin(cx) {
                        Poll::Ready(done) => Poll::Ready(done),
                        Poll::Pending => Poll::Ready(None),
                    })
                    .await;
                }
                outbox.flush(&socket).await;
            }
            ready = socket.readable(), if in_flight.len() < max_in_flight => {
                if let Err(error) = ready {
                    warn!(%error, "UDP socket unusable: worker stops");
                    break;
                }
                let mut taken = 0;
                while taken < BURST && in_flight.len() < max_in_flight {
                    let room = (max_in_flight - in_flight.len()).min(BURST - taken);
                    let count = match inbox.try_recv(&socket, room) {
                        Ok(count) => count,
                        Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                        Err(error) => {
                            debug!(%error, "UDP receive failed");
                            taken += 1;
                            continue;
                        }
                    };
                    taken += count.max(1);
                    for (query, client) in inbox.datagrams() {
                        let Some(client) = client.filter(|client| can_reply_to(*client)) else {
                            debug!(?client, "a datagram from an address no reply can go to: dropped");
                            continue;
                        };
                        let ctx = QueryContext { client, transport: Transport::Udp };
                        if outbox.is_full() {
                            outbox.flush(&socket).await;
                        }
                        // A cache hit is answered here: no future, no copy of the query.
                        let out = outbox.next_buffer();
                        if shared.answerer.answer_now(query, ctx, out) {
                            if admit(&shared, client, out) {
                                outbox.queue(client);
                            }
                            continue;
                        }
                        let (mut query_buf, out) = pool.pop().unwrap_or_default();
                        query_buf.clear();
                        query_buf.extend_from_slice(query);
                        let answerer = shared.answerer.clone();
                        in_flight.push(async move {
                            let mut out = out;
                            let disposition =
                                answerer.answer_after_miss(&query_buf, ctx, &mut out).await;
                            (disposition, client, query_buf, out)
                        });
                    }
                    outbox.flush(&socket).await;
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
}

/// Whether the reply in `out` goes to `client`: response-rate limiting may
/// drop it, or turn it into a TC reply in place (slip).
fn admit<A>(shared: &UdpShared<A>, client: SocketAddr, out: &mut Vec<u8>) -> bool {
    let limit = shared.policy.load().rate_limit;
    if let Some(limit) = limit
        && limit.applies_to(client.ip())
    {
        match shared.rrl.check(&limit, client.ip(), out, Instant::now()) {
            Verdict::Send => {}
            Verdict::Drop => {
                shared.metrics.rrl_dropped.inc();
                return false;
            }
            Verdict::Slip => {
                if !wire::truncate_in_place(out) {
                    shared.metrics.rrl_dropped.inc();
                    return false;
                }
                shared.metrics.rrl_slipped.inc();
            }
        }
    }
    true
}
