//! The DNS stub: sockets bound, the handler behind them, a clean shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use kadns_resolver::{BundleSource, Resolver};
use tokio::net::{TcpListener, UdpSocket};
use tracing::info;

use crate::handler::StubHandler;
use crate::metrics::StubMetrics;
use crate::stub_config::StubConfig;

/// Largest DNS message over TCP, and so the response buffer per connection.
const TCP_RESPONSE_BUFFER: usize = 65_535;

/// Ports tried for a listen address with port 0. UDP and TCP share one port,
/// but the port the OS picks for UDP may be taken for TCP (a client socket
/// in TIME-WAIT holds its port for a minute): then both are bound again.
const PORT_ZERO_ATTEMPTS: usize = 32;

/// Why the stub could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    /// A socket could not be bound.
    #[error("cannot listen for DNS over {protocol} on {addr}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
    /// The configuration lists no address to listen on.
    #[error("no address to listen on")]
    NoListenAddress,
}

/// A running DNS stub. Dropping it without [`Stub::shutdown`] aborts its tasks.
pub struct Stub<S: BundleSource> {
    server: Server<StubHandler<S>>,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    metrics: Arc<StubMetrics>,
}

impl<S: BundleSource> std::fmt::Debug for Stub<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .finish_non_exhaustive()
    }
}

impl<S: BundleSource> Stub<S> {
    /// Binds every configured address over UDP and TCP and starts answering.
    /// Returns only once all sockets listen; logs `listening for UDP on ADDR`
    /// and `listening for TCP on ADDR` for each.
    pub async fn bind(config: &StubConfig, resolver: Resolver<S>) -> Result<Self, StubError> {
        if config.listen.is_empty() {
            return Err(StubError::NoListenAddress);
        }
        let metrics = Arc::new(StubMetrics::default());
        // The handler applies the ACL itself, so that a refusal can say why (EDE 18).
        let handler = StubHandler::new(resolver, metrics.clone(), config.max_udp_payload)
            .allow(config.allow.iter().copied());
        let mut server = Server::new(handler);
        let (mut udp, mut tcp) = (Vec::new(), Vec::new());
        for &addr in &config.listen {
            let (socket, listener) = bind_pair(addr).await?;
            let local = socket.local_addr().map_err(|source| StubError::Bind {
                protocol: "UDP",
                addr,
                source,
            })?;
            let tcp_local = listener.local_addr().map_err(|source| StubError::Bind {
                protocol: "TCP",
                addr,
                source,
            })?;
            info!("listening for UDP on {local}");
            info!("listening for TCP on {tcp_local}");
            server.register_socket(socket);
            server.register_listener(
                listener,
                Duration::from_secs(config.tcp_idle_timeout_secs),
                TCP_RESPONSE_BUFFER,
            );
            udp.push(local);
            tcp.push(tcp_local);
        }
        Ok(Self {
            server,
            udp,
            tcp,
            metrics,
        })
    }

    /// The UDP addresses actually bound.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The TCP addresses actually bound.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The stub's counters.
    pub fn metrics(&self) -> &Arc<StubMetrics> {
        &self.metrics
    }

    /// Stops accepting queries and waits for the socket tasks to end.
    pub async fn shutdown(mut self) {
        if let Err(error) = self.server.shutdown_gracefully().await {
            tracing::warn!(%error, "DNS stub stopped with an error");
        }
    }
}

/// Binds `addr` over UDP, then TCP on the port UDP got, so that port 0 gives
/// one port for both. For port 0, a port taken for TCP is given up and
/// another tried, at most [`PORT_ZERO_ATTEMPTS`] times.
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), StubError> {
    let mut attempt = 1;
    loop {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| StubError::Bind {
                protocol: "UDP",
                addr,
                source,
            })?;
        let port = socket
            .local_addr()
            .map_err(|source| StubError::Bind {
                protocol: "UDP",
                addr,
                source,
            })?
            .port();
        let tcp_addr = SocketAddr::new(addr.ip(), port);
        match TcpListener::bind(tcp_addr).await {
            Ok(listener) => return Ok((socket, listener)),
            Err(source)
                if addr.port() == 0
                    && source.kind() == io::ErrorKind::AddrInUse
                    && attempt < PORT_ZERO_ATTEMPTS =>
            {
                tracing::debug!(port, attempt, "port taken for TCP: trying another");
                attempt += 1;
            }
            Err(source) => {
                return Err(StubError::Bind {
                    protocol: "TCP",
                    addr: tcp_addr,
                    source,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_zero_gives_one_port_for_udp_and_tcp() {
        for _ in 0..50 {
            let (udp, tcp) = bind_pair("127.0.0.1:0".parse().unwrap()).await.unwrap();
            assert_eq!(udp.local_addr().unwrap(), tcp.local_addr().unwrap());
        }
    }

    #[tokio::test]
    async fn an_explicit_port_taken_for_tcp_is_an_error_naming_it() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        // The port is free for UDP (or this test cannot say anything).
        if std::net::UdpSocket::bind(addr).is_err() {
            return;
        }
        match bind_pair(addr).await {
            Err(StubError::Bind {
                protocol: "TCP",
                addr: reported,
                ..
            }) => assert_eq!(reported, addr),
            other => panic!("expected a TCP bind error, got {other:?}"),
        }
    }
}
