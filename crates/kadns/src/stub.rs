//! The DNS stub: sockets bound, the handler behind them, a clean shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use kadns_resolver::{BundleSource, Resolver};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::client_policy::{ClientPolicy, SharedPolicy};
use crate::handler::StubHandler;
use crate::metrics::StubMetrics;
use crate::server::conn_limit::ConnectionSlots;
use crate::server::doh_server::{self, DohShared};
use crate::server::dot;
use crate::server::rrl::Rrl;
use crate::server::tcp::{self, TcpSettings};
use crate::server::tls_config::{ALPN_DOH, ALPN_DOT, TlsConfigError, TlsIdentity};
use crate::server::udp::{self, UdpShared};
use crate::stub_config::StubConfig;
use crate::supervise::Watch;
use kadns_resolver::hickory_proto::rr::Name;

/// Ports tried for a listen address with port 0. UDP and TCP share one port,
/// but the port the OS picks for TCP may be taken for UDP: then both are
/// bound again.
const PORT_ZERO_ATTEMPTS: usize = 32;

/// Queries in flight per UDP worker; beyond it the worker's socket is not
/// read (the kernel's receive buffer takes the rest, then drops).
const UDP_IN_FLIGHT_PER_WORKER: usize = 4_096;

/// Why the stub could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StubError {
    /// A socket could not be bound.
    #[error("cannot listen for DNS over {protocol} on {addr}: {source}")]
    Bind {
        /// `UDP`, `TCP`, `TLS` or `HTTPS`.
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
    /// The TLS certificate or key of the DoT and DoH listeners is missing
    /// or unusable.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
}

/// A running DNS stub. Dropping it without [`Stub::shutdown`] aborts its tasks.
pub struct Stub<S: BundleSource> {
    handler: Arc<StubHandler<S>>,
    policy: SharedPolicy,
    slots: ConnectionSlots,
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    dot: Vec<SocketAddr>,
    doh: Vec<SocketAddr>,
    metrics: Arc<StubMetrics>,
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
    /// Fires when a listener task ends (or panics): see [`Stub::ended`].
    ended: Watch,
    /// The resolver behind the handler, for [`Stub::flush_caches`].
    resolver: Resolver<S>,
}

impl<S: BundleSource> std::fmt::Debug for Stub<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stub")
            .field("udp", &self.udp)
            .field("tcp", &self.tcp)
            .field("dot", &self.dot)
            .field("doh", &self.doh)
            .finish_non_exhaustive()
    }
}

impl<S: BundleSource> Stub<S> {
    /// Binds every configured address over UDP (one `SO_REUSEPORT` socket
    /// per worker) and TCP and starts answering. Returns only once all
    /// sockets listen; logs `listening for UDP on ADDR` and `listening for
    /// TCP on ADDR` for each. The DoT and DoH addresses (`dot_listen`,
    /// `doh_listen`) are bound too, with the TLS identity of `tls_cert` and
    /// `tls_key` (read before anything is bound), and logged as `listening
    /// for DoT on ADDR` and `listening for DoH on ADDR`.
    pub async fn bind(config: &StubConfig, resolver: Resolver<S>) -> Result<Self, StubError> {
        if config.listen.is_empty() {
            return Err(StubError::NoListenAddress);
        }
        let identity = if config.dot_listen.is_empty() && config.doh_listen.is_empty() {
            None
        } else {
            let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
                return Err(TlsConfigError::Missing.into());
            };
            Some(TlsIdentity::load(cert, key)?)
        };
        let metrics = Arc::new(StubMetrics::default());
        let policy: SharedPolicy = Arc::new(ArcSwap::from_pointee(config.client_policy()));
        // The handler applies the ACL itself, so that a refusal can say why (EDE 18).
        let handler = Arc::new(
            StubHandler::new(resolver.clone(), metrics.clone(), config.max_udp_payload)
                .answer_cache_bytes(config.answer_cache_bytes)
                .with_policy(policy.clone()),
        );
        let slots = ConnectionSlots::new(config.connection_limits(), metrics.clone());
        let udp_shared = Arc::new(UdpShared {
            answerer: handler.clone(),
            policy: policy.clone(),
            rrl: Rrl::new(),
            metrics: metrics.clone(),
            max_in_flight: UDP_IN_FLIGHT_PER_WORKER,
        });
        let settings = TcpSettings {
            idle_timeout: Duration::from_secs(config.tcp_idle_timeout_secs),
            max_in_flight: config.tcp_max_in_flight,
        };
        let workers = config.worker_count();
        let shutdown = CancellationToken::new();
        let ended = Watch::new();
        let mut tasks = JoinSet::new();
        let (mut udp, mut tcp) = (Vec::new(), Vec::new());
        for &addr in &config.listen {
            let (sockets, listener) = bind_group(addr, workers).await?;
            let local = listener.local_addr().map_err(|source| StubError::Bind {
                protocol: "TCP",
                addr,
                source,
            })?;
            info!("listening for UDP on {local}");
            info!("listening for TCP on {local}");
            for socket in sockets {
                tasks.spawn(ended.watched(udp::worker(
                    socket,
                    udp_shared.clone(),
                    shutdown.clone(),
                )));
            }
            tasks.spawn(ended.watched(tcp::accept_loop(
                listener,
                handler.clone(),
                slots.clone(),
                settings,
                shutdown.clone(),
            )));
            udp.push(local);
            tcp.push(local);
        }
        let (mut dot, mut doh) = (Vec::new(), Vec::new());
        if let Some(identity) = &identity {
            let acceptor = tokio_rustls::TlsAcceptor::from(identity.server_config(&[ALPN_DOT]));
            for &addr in &config.dot_listen {
                let (listener, local) = bind_stream("TLS", addr).await?;
                info!("listening for DoT on {local}");
                tasks.spawn(ended.watched(dot::accept_loop(
                    listener,
                    acceptor.clone(),
                    handler.clone(),
                    slots.clone(),
                    settings,
                    dot::HANDSHAKE_TIMEOUT,
                    shutdown.clone(),
                )));
                dot.push(local);
            }
            let shared = Arc::new(DohShared {
                acceptor: tokio_rustls::TlsAcceptor::from(identity.server_config(ALPN_DOH)),
                answerer: handler.clone(),
                settings,
                handshake: dot::HANDSHAKE_TIMEOUT,
                shutdown: shutdown.clone(),
            });
            for &addr in &config.doh_listen {
                let (listener, local) = bind_stream("HTTPS", addr).await?;
                info!("listening for DoH on {local}");
                tasks.spawn(ended.watched(doh_server::accept_loop(
                    listener,
                    shared.clone(),
                    slots.clone(),
                )));
                doh.push(local);
            }
        }
        Ok(Self {
            handler,
            policy,
            slots,
            udp,
            tcp,
            dot,
            doh,
            metrics,
            tasks,
            shutdown,
            ended,
            resolver,
        })
    }

    /// Completes once any listener task has ended on its own or panicked
    /// (also, of course, after [`Stub::shutdown`] began): a stub that no
    /// longer listens everywhere it should.
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.ended.ended()
    }

    /// Drops cached answers for `name` (every type), or all of them, so the
    /// next query is resolved again (`kadns cache flush [NAME]`). Returns
    /// what the resolver dropped.
    pub fn flush_caches(&self, name: Option<&Name>) -> kadns_resolver::Flushed {
        // The rendered answers go whole, even for one name: cheap to
        // rebuild, and no answer of the flushed name can survive.
        self.handler.flush_answer_cache();
        self.resolver.flush_cache(name)
    }

    /// The UDP addresses actually bound.
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The TCP addresses actually bound.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The DNS-over-TLS addresses actually bound.
    pub fn dot_addrs(&self) -> &[SocketAddr] {
        &self.dot
    }

    /// The DNS-over-HTTPS addresses actually bound (`https://ADDR/dns-query`).
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        &self.doh
    }

    /// The stub's counters.
    pub fn metrics(&self) -> &Arc<StubMetrics> {
        &self.metrics
    }

    /// The answerer behind every listener: other stream listeners (DoT,
    /// DoH) answer through it too.
    pub fn handler(&self) -> &Arc<StubHandler<S>> {
        &self.handler
    }

    /// Empties the wire-format answer cache (`kadns cache flush`).
    pub fn flush_answer_cache(&self) {
        self.handler.flush_answer_cache();
    }

    /// The connection caps shared by every stream listener.
    pub fn connection_slots(&self) -> &ConnectionSlots {
        &self.slots
    }

    /// The client policy in force.
    pub fn client_policy(&self) -> ClientPolicy {
        ClientPolicy::clone(&self.policy.load())
    }

    /// Replaces the allowed networks and the response-rate limit, as one
    /// value: every query after this is answered under the new policy.
    pub fn set_client_policy(&self, policy: ClientPolicy) {
        self.policy.store(Arc::new(policy));
    }

    /// Stops accepting queries and waits for the socket tasks to end.
    pub async fn shutdown(mut self) {
        self.shutdown.cancel();
        while let Some(done) = self.tasks.join_next().await {
            if let Err(error) = done
                && error.is_panic()
            {
                tracing::warn!(%error, "a DNS listener task panicked");
            }
        }
    }
}

/// Binds one TCP listener for an encrypted transport and reads back its address.
async fn bind_stream(
    protocol: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StubError> {
    let bind = |source| StubError::Bind {
        protocol,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind)?;
    let local = listener.local_addr().map_err(bind)?;
    Ok((listener, local))
}

/// Binds `addr` over TCP, then `workers` UDP sockets with `SO_REUSEPORT` on
/// the port TCP got, so that port 0 gives one port for both. TCP goes
/// first, without `SO_REUSEPORT`: a second server on the same port fails
/// there rather than silently sharing the UDP sockets. For port 0, a port
/// taken for UDP is given up and another tried, at most
/// [`PORT_ZERO_ATTEMPTS`] times.
async fn bind_group(
    addr: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, TcpListener), StubError> {
    let mut attempt = 1;
    loop {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StubError::Bind {
                protocol: "TCP",
                addr,
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StubError::Bind {
                protocol: "TCP",
                addr,
                source,
            })?
            .port();
        let udp_addr = SocketAddr::new(addr.ip(), port);
        match (0..workers.max(1))
            .map(|_| udp::bind_reuseport(udp_addr))
            .collect::<io::Result<Vec<_>>>()
        {
            Ok(sockets) => return Ok((sockets, listener)),
            Err(source)
                if addr.port() == 0
                    && source.kind() == io::ErrorKind::AddrInUse
                    && attempt < PORT_ZERO_ATTEMPTS =>
            {
                tracing::debug!(port, attempt, "port taken for UDP: trying another");
                attempt += 1;
            }
            Err(source) => {
                return Err(StubError::Bind {
                    protocol: "UDP",
                    addr: udp_addr,
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
            let (udp, tcp) = bind_group("127.0.0.1:0".parse().unwrap(), 2).await.unwrap();
            for socket in &udp {
                assert_eq!(socket.local_addr().unwrap(), tcp.local_addr().unwrap());
            }
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
        match bind_group(addr, 2).await {
            Err(StubError::Bind {
                protocol: "TCP",
                addr: reported,
                ..
            }) => assert_eq!(reported, addr),
            other => panic!("expected a TCP bind error, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod udp_taken {
    use super::*;

    #[tokio::test]
    async fn an_explicit_port_taken_for_udp_is_an_error_naming_it() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        if std::net::TcpListener::bind(addr).is_err() {
            return;
        }
        match bind_group(addr, 2).await {
            Err(StubError::Bind {
                protocol: "UDP",
                addr: reported,
                ..
            }) => assert_eq!(reported, addr),
            other => panic!("expected a UDP bind error, got {other:?}"),
        }
    }
}
