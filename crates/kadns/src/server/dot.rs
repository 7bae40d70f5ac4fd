//! DNS over TLS (RFC 7858): a TCP accept loop whose connections take a
//! [`Slot`](super::conn_limit::Slot) from the same table as plain TCP, a TLS
//! handshake bounded in time, then the very same length-prefixed stream
//! serving as TCP ([`tcp::serve_stream`]) over the TLS stream.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::conn_limit::ConnectionSlots;
use super::tcp::{self, StreamLimits, TcpSettings};
use super::{Answerer, QueryContext, Transport, accept};

/// Time a client has, from the TCP accept, to finish the TLS handshake.
/// The connection holds an idle slot meanwhile, so it is also the first one
/// evicted when the caps are reached.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts DoT connections until `shutdown`: each takes a slot from `slots`
/// (shared with TCP), completes the TLS handshake within `handshake`, and
/// is served by [`tcp::serve_stream`] with [`Transport::Tls`].
pub(crate) async fn accept_loop<A: Answerer>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    answerer: Arc<A>,
    slots: ConnectionSlots,
    settings: TcpSettings,
    handshake: Duration,
    shutdown: CancellationToken,
) {
    accept::accept_loop(listener, slots, "DoT", shutdown, |stream, client, slot| {
        let acceptor = acceptor.clone();
        let answerer = answerer.clone();
        async move {
            let Some(tls) =
                accept::tls_handshake(&acceptor, stream, handshake, &slot, client, "DoT").await
            else {
                return;
            };
            let ctx = QueryContext {
                client,
                transport: Transport::Tls,
            };
            let limits = StreamLimits {
                idle_timeout: settings.idle_timeout,
                max_in_flight: settings.max_in_flight,
                slot,
            };
            tcp::serve_stream(tls, ctx, answerer, limits).await;
        }
    })
    .await;
}
