//! `kadns serve` as a library object: the DHT node, the resolver and the DNS
//! stub, started together, supervised, reloaded and stopped in order.

mod reload;
pub(crate) mod run;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;

use kadns_dht::{Handle, Mode, Multiaddr, Node};
use kadns_resolver::{Resolver, SavedUpstreams, SledSequences};
use prometheus_client::registry::Registry;
use tracing::info;

use crate::control::server::{Call, ControlServer};
use crate::metrics_server::MetricsServer;
use crate::publish_task::{self, Publishers};
use crate::serve_config::ServeConfig;
use crate::stub::{Stub, StubError};

/// What starts on top of the DHT node.
type Started = (Resolver<Handle>, Stub<Handle>, Option<MetricsServer>);

/// A running kadns node: a DHT server node storing records for the network,
/// and the DNS stub answering this machine's queries through it.
#[derive(Debug)]
pub struct Service {
    node: Node,
    resolver: Resolver<Handle>,
    stub: Stub<Handle>,
    metrics: Option<MetricsServer>,
    publishers: Publishers,
    /// The control socket (`kadns status`, `reload`, `cache flush`).
    control: ControlServer,
    /// The requests that came through it, answered by [`Service::run`].
    calls: tokio::sync::mpsc::Receiver<Call>,
    /// The configuration in force (restart-only settings as started).
    config: ServeConfig,
    /// Whether `debug` control commands are allowed (`KADNS_TEST_HOOKS=1`).
    test_hooks: bool,
    started: std::time::Instant,
}

/// The environment variable that enables the control socket's `debug`
/// commands (`kadns` test suites only): `KADNS_TEST_HOOKS=1`.
pub const TEST_HOOKS_ENV: &str = "KADNS_TEST_HOOKS";

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The DHT node could not start (data directory, identity, listen address…).
    #[error("the DHT node cannot start: {0}")]
    Dht(#[from] kadns_dht::Error),
    /// The resolver's sequence store could not be opened.
    #[error("the resolver cannot start: {0}")]
    Resolver(#[from] kadns_resolver::Error),
    /// The resolver's sequence store could not be opened.
    #[error("the rollback store cannot open: {0}")]
    Sequences(#[from] kadns_resolver::StoreError),
    /// The DNS stub could not bind its sockets.
    #[error(transparent)]
    Stub(#[from] StubError),
    /// A `[[publish]]` entry cannot be used (key, state, zone file, validity).
    #[error("[[publish]] {}: {source}", key.display())]
    Publish {
        /// The entry's key file.
        key: std::path::PathBuf,
        /// Why.
        #[source]
        source: kadns_publisher::ZonePublishError,
    },
    /// A `[[publish]]` entry's origin is not a domain name.
    #[error("[[publish]] {}: bad origin: {reason}", key.display())]
    PublishOrigin {
        /// The entry's key file.
        key: std::path::PathBuf,
        /// Why the name does not parse.
        reason: String,
    },
    /// The control socket could not be created in the data directory.
    #[error("cannot create the control socket {}: {source}", path.display())]
    Control {
        /// The socket's path.
        path: std::path::PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The metrics endpoint could not bind its address.
    #[error("cannot serve metrics on {addr}: {source}")]
    Metrics {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
}

impl Service {
    /// Starts the node (server mode, data under `data_dir/dht`), the resolver
    /// (highest-seen sequences under `data_dir/resolver`) and the stub.
    /// Returns once every socket listens.
    pub async fn start(config: &ServeConfig) -> Result<Self, ServiceError> {
        let data_dir = config.data_dir();
        let publishers = publish_task::open(&config.publish)?;
        let mut dht = kadns_dht::Config::with_data_dir(data_dir.join("dht"));
        dht.listen = config.p2p.listen.clone();
        dht.bootstrap = config.p2p.bootstrap.clone();
        // A client stores nothing for others (see `P2pConfig::client`).
        dht.mode = if config.p2p.client {
            Mode::Client
        } else {
            Mode::Server
        };
        // Re-replication is on for every serving node (docs/dht.md).
        dht.replication_interval = Some(config.dht.replication_interval);
        dht.storage = config.dht.storage_limits();
        let node = Node::spawn(dht).await?;
        let test_hooks = std::env::var(TEST_HOOKS_ENV).is_ok_and(|v| v == "1");
        let (calls_tx, calls) = tokio::sync::mpsc::channel(16);
        let path = crate::control::socket_path(&data_dir);
        let control = match ControlServer::bind(&path, calls_tx, test_hooks) {
            Ok(control) => control,
            Err(source) => {
                node.shutdown().await;
                return Err(ServiceError::Control { path, source });
            }
        };
        if test_hooks {
            tracing::warn!("{TEST_HOOKS_ENV}=1: the control socket accepts debug commands");
        }
        match Self::start_resolver(config, &node).await {
            Ok((resolver, stub, metrics)) => {
                info!(data_dir = %data_dir.display(), peer = %node.peer_id(), "kadns node started");
                let publishers = Publishers::spawn(&config.publish, publishers, node.handle());
                Ok(Self {
                    node,
                    resolver,
                    stub,
                    metrics,
                    publishers,
                    control,
                    calls,
                    config: config.clone(),
                    test_hooks,
                    started: std::time::Instant::now(),
                })
            }
            Err(error) => {
                node.shutdown().await;
                Err(error)
            }
        }
    }

    async fn start_resolver(config: &ServeConfig, node: &Node) -> Result<Started, ServiceError> {
        let sequences = SledSequences::open(config.data_dir().join("resolver"))?;
        // The last verified bundles, beside the sequences: a stub restarted
        // while the network is down still answers from them (stale).
        let persisted = sequences.bundles(config.resolver.cache.persist_max_bytes)?;
        let saved = SavedUpstreams::at(config.data_dir().join("upstreams"));
        let resolver = Resolver::builder(config.resolver_config(), node.handle())
            .sequences(sequences)
            .persisted_cache(persisted)
            .local_addrs(config.dns.listen.iter().copied())
            .saved_upstreams(saved.clone())
            .build()?;
        let stub = Stub::bind(&config.dns, resolver.clone()).await?;
        // A good start: these upstreams work around the reboot trap next time.
        if let Err(error) = saved.save(&resolver.upstreams()) {
            tracing::warn!(%error, "cannot save the upstreams for the next start");
        }
        let metrics = match &config.metrics {
            None => None,
            Some(metrics) => {
                // One registry for every part, each series prefixed `kadns_`.
                let mut registry = Registry::with_prefix("kadns");
                stub.metrics().register(&mut registry);
                resolver.metrics().register(&mut registry);
                node.handle().metrics().register(&mut registry);
                let server = MetricsServer::bind(metrics.listen, Arc::new(registry))
                    .await
                    .map_err(|source| ServiceError::Metrics {
                        addr: metrics.listen,
                        source,
                    })?;
                Some(server)
            }
        };
        Ok((resolver, stub, metrics))
    }

    /// Where `GET /metrics` is served, if metrics are configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::addr)
    }

    /// The node's libp2p addresses, each ending in `/p2p/<peer id>`, for
    /// other nodes to bootstrap from.
    pub async fn p2p_addrs(&self) -> Vec<Multiaddr> {
        self.node.handle().listen_addrs().await.unwrap_or_default()
    }

    /// A handle to the DHT node.
    pub fn dht(&self) -> Handle {
        self.node.handle()
    }

    /// The resolver the stub answers through.
    pub fn resolver(&self) -> &Resolver<Handle> {
        &self.resolver
    }

    /// The DNS stub.
    pub fn stub(&self) -> &Stub<Handle> {
        &self.stub
    }

    /// Stops the `[[publish]]` publishers, stops answering DNS, then stops
    /// the node (its store flushed).
    pub async fn shutdown(self) {
        self.publishers.shutdown().await;
        drop(self.control);
        drop(self.metrics);
        self.stub.shutdown().await;
        drop(self.resolver);
        self.node.shutdown().await;
        info!("kadns node stopped");
    }

    /// Where the control socket listens.
    pub fn control_path(&self) -> std::path::PathBuf {
        crate::control::socket_path(&self.config.data_dir())
    }
}
