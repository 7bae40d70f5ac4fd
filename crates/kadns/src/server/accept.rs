//! The accept loop every stream listener shares (TCP, DoT, DoH): a
//! connection first takes a [`Slot`] from the stub's [`ConnectionSlots`]
//! (or is closed at once), then is served in its own task. What "served"
//! means is the listener's: framing, TLS, HTTP.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::can_reply_to;
use super::conn_limit::{ConnectionSlots, Slot};

/// Pause after a failed accept (out of descriptors or memory), so that the
/// open connections can finish instead of the loop spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts connections on `listener` until `shutdown`, each under a slot
/// from `slots`, each served by `serve` in a task this loop owns; at
/// shutdown every connection task is ended. `what` names the listener in
/// logs ("TCP", "DoT", "DoH").
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    slots: ConnectionSlots,
    what: &'static str,
    shutdown: CancellationToken,
    mut serve: F,
) where
    F: FnMut(TcpStream, SocketAddr, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        let (stream, client) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                warn!(%error, "cannot accept a {what} connection");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                    () = shutdown.cancelled() => break,
                }
            }
        };
        if !can_reply_to(client) {
            continue;
        }
        let slot = match slots.acquire(client.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                debug!(%client, %refused, "{what} connection refused");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve(stream, client, slot));
    }
    connections.shutdown().await;
}

/// The TLS handshake of a DoT or DoH connection, bounded by `limit` and
/// abandoned if the connection's slot is evicted meanwhile; `None` (logged
/// at debug, `what` naming the listener) when it does not complete.
pub(crate) async fn tls_handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    limit: Duration,
    slot: &Slot,
    client: SocketAddr,
    what: &'static str,
) -> Option<TlsStream<TcpStream>> {
    let tls = tokio::select! {
        tls = timeout(limit, acceptor.accept(stream)) => tls,
        () = slot.evicted() => {
            debug!(%client, "evicted during the TLS handshake");
            return None;
        }
    };
    match tls {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            debug!(%client, %error, "{what} handshake failed");
            None
        }
        Err(_) => {
            debug!(%client, ?limit, "{what} handshake timed out");
            None
        }
    }
}
