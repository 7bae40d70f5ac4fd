//! Starting and stopping a node.

use std::sync::Arc;

use libp2p::PeerId;
use libp2p::identity::Keypair;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::behaviour::{BoxedTransport, build_swarm_with_transport};
use crate::config::{Config, DataDir};
use crate::disk::DiskGuard;
use crate::error::Error;
use crate::event_loop::{EVENT_CHANNEL_LEN, EventLoop};
use crate::handle::Handle;
use crate::identity;
use crate::metrics::Metrics;
use crate::storage::{SledStorage, Storage};
use crate::store::ValidatingStore;

/// A running node: the event loop's task plus a [`Handle`] to it.
///
/// A drop guard: dropping it cancels the event loop. Prefer
/// [`Node::shutdown`], which flushes and waits for the loop to end (and so
/// releases the data directory's lock).
#[derive(Debug)]
pub struct Node {
    handle: Handle,
    task: Option<JoinHandle<()>>,
    cancel: CancellationToken,
    /// Cancelled once the event loop's task has ended, however it ended
    /// (shutdown, cancellation or a panic).
    ended: CancellationToken,
}

impl Node {
    /// Opens the data directory (identity key, sled database, saved peers),
    /// builds the swarm, starts listening, dials bootstrap and saved peers,
    /// and spawns the event loop on the current tokio runtime. Returns once
    /// every listen address is bound.
    ///
    /// A data directory on a full disk still opens: the ballast file is
    /// deleted first (docs/dht.md, "Storage budget"), and puts are refused
    /// until space is freed.
    pub async fn spawn(config: Config) -> Result<Self, Error> {
        let (storage, keypair, disk): (Box<dyn Storage>, Keypair, _) = match &config.data_dir {
            DataDir::Path(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::Identity {
                    path: dir.clone(),
                    source: Arc::new(e),
                })?;
                let disk = DiskGuard::prepare(dir, config.storage.disk_reserve);
                let keypair = identity::load_or_create(dir)?;
                let cache = sled_cache(config.storage.max_bytes);
                let storage = SledStorage::open_with_cache(&dir.join("db"), cache)?;
                (Box::new(storage), keypair, Some(disk))
            }
            DataDir::Temporary => (
                Box::new(SledStorage::temporary()?),
                Keypair::generate_ed25519(),
                None,
            ),
        };
        Self::spawn_over(config, storage, keypair, None, disk).await
    }

    /// Like [`Node::spawn`], with a storage engine and identity of the
    /// caller's choice (`config.data_dir` is ignored).
    pub async fn spawn_with(
        config: Config,
        storage: Box<dyn Storage>,
        keypair: Keypair,
    ) -> Result<Self, Error> {
        Self::spawn_over(config, storage, keypair, None, None).await
    }

    /// Like [`Node::spawn_with`], over `transport` instead of TCP: the same
    /// event loop, behaviour and store on another network (the simulator's
    /// in-memory link layer). `config.listen` and `config.bootstrap` must be
    /// addresses that transport understands (still `/ip4|ip6/…`).
    pub async fn spawn_with_transport(
        config: Config,
        storage: Box<dyn Storage>,
        keypair: Keypair,
        transport: BoxedTransport,
    ) -> Result<Self, Error> {
        Self::spawn_over(config, storage, keypair, Some(transport), None).await
    }

    async fn spawn_over(
        config: Config,
        storage: Box<dyn Storage>,
        keypair: Keypair,
        transport: Option<BoxedTransport>,
        disk: Option<DiskGuard>,
    ) -> Result<Self, Error> {
        let metrics = Arc::new(Metrics::default());
        let (events, _) = broadcast::channel(EVENT_CHANNEL_LEN);
        let mut store =
            ValidatingStore::with_limits(storage, metrics.clone(), events.clone(), config.storage);
        if let Some(disk) = disk {
            store.set_disk_guard(disk);
        }
        let swarm = build_swarm_with_transport(keypair, &config, store, transport)?;
        let (mut event_loop, handle) = EventLoop::new(swarm, &config, metrics, events);
        event_loop.start(&config).await?;
        let cancel = CancellationToken::new();
        let ended = CancellationToken::new();
        // The guard is dropped when the loop returns and while a panic
        // unwinds the task, so `ended` fires in every case.
        let guard = ended.clone().drop_guard();
        let run = event_loop.run(cancel.clone());
        let task = tokio::spawn(async move {
            let _guard = guard;
            run.await;
        });
        Ok(Self {
            handle,
            task: Some(task),
            cancel,
            ended,
        })
    }

    /// A handle to the node.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// The node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.handle.local_peer_id()
    }

    /// Completes once the event loop has ended, for whatever reason: after
    /// [`Node::shutdown`] or [`Handle::shutdown`], or because it panicked. A
    /// supervisor selects on it to notice a node that died on its own. The
    /// future owns what it needs (`'static`) and may be awaited any number
    /// of times.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), kadns_dht::Error> {
    /// let node = kadns_dht::Node::spawn(kadns_dht::Config::default()).await?;
    /// let ended = node.ended();
    /// node.handle().shutdown().await?;
    /// ended.await; // the loop is gone
    /// # Ok(()) }
    /// ```
    pub fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.ended.clone().cancelled_owned()
    }

    /// True once the event loop has ended (see [`Node::ended`]).
    pub fn has_ended(&self) -> bool {
        self.ended.is_cancelled()
    }

    /// Flushes the store, ends the event loop and waits for it. Every handle
    /// returns [`Error::Shutdown`] afterwards.
    pub async fn shutdown(mut self) {
        let _ = self.handle.shutdown().await;
        self.join().await;
    }

    /// Waits for the event loop to end (after [`Handle::shutdown`]).
    pub async fn join(&mut self) {
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(()) => {}
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => tracing::error!(error = %e, "event loop task failed"),
            }
        }
    }
}

/// sled's page cache for a byte budget: a quarter of it, between 8 MiB
/// and 256 MiB (sled would otherwise grow toward 1 GiB of memory).
fn sled_cache(max_bytes: u64) -> u64 {
    (max_bytes / 4).clamp(8 << 20, 256 << 20)
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}
