//! The stub's own DNS listeners: UDP workers, TCP connections, their limits.
//!
//! The listener layer knows nothing about DNS beyond framing and the few
//! header bytes response-rate limiting reads: every message goes to an
//! [`Answerer`] (the stub's is [`StubHandler`](crate::StubHandler)), which
//! decodes it, answers and encodes the answer into a buffer the listener
//! owns and reuses.
//!
//! - [`udp`]: one `SO_REUSEPORT` socket per worker, each worker one loop with
//!   a bounded set of queries in flight, response-rate limiting ([`rrl`]) on
//!   every reply; datagrams read and replies sent in batches (`udp_batch`:
//!   `recvmmsg`/`sendmmsg` on Linux).
//! - [`tcp`]: an accept loop that takes a [`conn_limit::Slot`] for every
//!   connection, and [`tcp::serve_stream`], which serves one length-prefixed
//!   stream (TCP, or DoT over TLS) with pipelining and an idle timeout.
//! - `dot`: DNS over TLS (RFC 7858), a TLS handshake bounded in time, then
//!   [`tcp::serve_stream`] over the TLS stream, under the same slots as TCP.
//! - `doh_server`: DNS over HTTPS (RFC 8484), hyper's HTTP/2 and HTTP/1.1
//!   server over TLS, requests checked by `doh`, under the same slots.

use std::future::Future;
use std::net::SocketAddr;

mod accept;
pub mod conn_limit;
pub mod rrl;
pub mod tcp;
pub mod udp;
mod udp_batch;
mod wire;

pub(crate) mod doh;
pub(crate) mod doh_server;
pub(crate) mod dot;
pub(crate) mod tls_config;

/// How a query reached the stub.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Plain DNS over UDP.
    Udp,
    /// Plain DNS over TCP (RFC 7766).
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
}

impl Transport {
    /// The lower-case name used in metrics labels and logs: `udp`, `tcp`, `tls`, `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Udp => "udp",
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Https => "https",
        }
    }
}

/// Who asked and how.
#[derive(Clone, Copy, Debug)]
pub struct QueryContext {
    /// The client's address (its source address and port).
    pub client: SocketAddr,
    /// The transport the query came over.
    pub transport: Transport,
}

/// What the listener does after [`Answerer::answer`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Send the bytes left in `out`.
    Reply,
    /// Send nothing (a packet too short for a header, a response, …).
    Drop,
}

/// One DNS message in, one out. Implemented by [`StubHandler`](crate::StubHandler).
///
/// ```
/// use kadns::server::{Answerer, Disposition, QueryContext};
///
/// /// Answers every query with its own bytes, QR set: a toy echo server.
/// struct Echo;
///
/// impl Answerer for Echo {
///     async fn answer(&self, query: &[u8], _ctx: QueryContext, out: &mut Vec<u8>) -> Disposition {
///         out.clear();
///         if query.len() < 12 {
///             return Disposition::Drop;
///         }
///         out.extend_from_slice(query);
///         out[2] |= 0x80;
///         Disposition::Reply
///     }
/// }
/// ```
pub trait Answerer: Send + Sync + 'static {
    /// `query` is one DNS message (no TCP length prefix). The callee clears `out` and, on
    /// `Reply`, leaves the whole encoded response in it. Over `Udp` the response is already
    /// truncated (TC) to what the client advertised; other transports allow 65,535 bytes.
    fn answer(
        &self,
        query: &[u8],
        ctx: QueryContext,
        out: &mut Vec<u8>,
    ) -> impl Future<Output = Disposition> + Send;

    /// Answers `query` at once, without waiting on anything, if it can
    /// (an answer cache hit): true when `out` then holds the whole reply,
    /// under the same contract as [`answer`](Self::answer). A listener calls
    /// it first and sets up the asynchronous answer only when it returns
    /// false, so the hot path costs no task, future or copy. The default
    /// answers nothing at once.
    fn answer_now(&self, query: &[u8], ctx: QueryContext, out: &mut Vec<u8>) -> bool {
        let _ = (query, ctx, out);
        false
    }

    /// [`answer`](Self::answer), for a query that [`answer_now`](Self::answer_now)
    /// has just declined: an implementation may skip what that call already
    /// tried (the cache lookup, counted once). The default is `answer`.
    fn answer_after_miss(
        &self,
        query: &[u8],
        ctx: QueryContext,
        out: &mut Vec<u8>,
    ) -> impl Future<Output = Disposition> + Send {
        self.answer(query, ctx, out)
    }
}

/// Whether a reply to `src` can be sent at all: not to port 0, nor to an
/// unspecified or broadcast address (such a source is forged, and a reply
/// would go nowhere or everywhere).
pub(crate) fn can_reply_to(src: SocketAddr) -> bool {
    if src.port() == 0 {
        return false;
    }
    match src.ip() {
        std::net::IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => !v6.is_unspecified(),
    }
}
