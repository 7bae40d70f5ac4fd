//! The `[[publish]]` entries of `kadns serve`: one keep-alive publisher per
//! zone, run by tasks the [`Service`](crate::Service) owns, watches,
//! replaces on reload and stops.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kadns_dht::Handle;
use kadns_publisher::{Config, KeepAlive, KeepAliveEvent, ZonePublisher};
use kadns_record::hickory_proto::rr::Name;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::serve_config::PublishConfig;
use crate::service::ServiceError;
use crate::supervise::Watch;

/// How often a publisher task checks for a first peer before its first round.
const PEER_POLL: Duration = Duration::from_millis(200);

/// What `kadns status` shows of one zone kept alive.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ZoneStatus {
    /// The zone id.
    pub zone: String,
    /// The zone file.
    pub zone_file: String,
    /// Rounds that put or dropped something since the start.
    pub rounds: u64,
    /// When the last such round ended (unix seconds).
    pub last_round: Option<u64>,
    /// The fewest replicas any put of the last round reached.
    pub fewest_replicas: Option<usize>,
    /// When the next refresh is due without an edit (unix seconds).
    pub next_refresh: Option<u64>,
    /// The last round's or zone file's problem, if the last event was one.
    pub last_error: Option<String>,
}

/// The status of every zone, by zone id, shared with the publisher tasks.
type Statuses = Arc<Mutex<BTreeMap<String, ZoneStatus>>>;

/// One running publisher.
#[derive(Debug)]
struct Running {
    entry: PublishConfig,
    zone: String,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// The running keep-alive publishers of one node.
#[derive(Debug)]
pub(crate) struct Publishers {
    dht: Handle,
    running: Vec<Running>,
    /// Fires when a publisher task ends without being stopped.
    ended: Watch,
    statuses: Statuses,
}

/// Opens every configured zone (key, state lock, zone file) before anything
/// starts, so that a bad entry stops `serve` (or fails a reload) with its
/// reason.
pub(crate) fn open(entries: &[PublishConfig]) -> Result<Vec<ZonePublisher>, ServiceError> {
    entries.iter().map(open_one).collect()
}

fn open_one(entry: &PublishConfig) -> Result<ZonePublisher, ServiceError> {
    let origin = entry
        .origin
        .as_deref()
        .map(Name::from_ascii)
        .transpose()
        .map_err(|e| ServiceError::PublishOrigin {
            key: entry.key.clone(),
            reason: e.to_string(),
        })?;
    let mut config = Config::default();
    config.validity_secs = entry.validity.as_secs();
    let publisher = ZonePublisher::open(&entry.key, &entry.zone, origin.as_ref(), &config)
        .map_err(|source| ServiceError::Publish {
            key: entry.key.clone(),
            source,
        })?;
    for warning in publisher.warnings() {
        tracing::warn!(zone = %publisher.zone_id(), "{warning}");
    }
    Ok(publisher)
}

fn lock(statuses: &Statuses) -> std::sync::MutexGuard<'_, BTreeMap<String, ZoneStatus>> {
    // Each update is one assignment: consistent after a panic.
    statuses.lock().unwrap_or_else(|p| p.into_inner())
}

fn unix_now() -> u64 {
    kadns_dht::unix_now()
}

impl Publishers {
    /// Starts one task per publisher (`entries[i]` opened as
    /// `publishers[i]`). Each waits for a first peer (a node alone would
    /// store its zone only on itself), then keeps its zone alive until
    /// stopped.
    pub(crate) fn spawn(
        entries: &[PublishConfig],
        publishers: Vec<ZonePublisher>,
        dht: Handle,
    ) -> Self {
        let mut this = Self {
            dht,
            running: Vec::new(),
            ended: Watch::new(),
            statuses: Statuses::default(),
        };
        for (entry, publisher) in entries.iter().zip(publishers) {
            this.start(entry.clone(), publisher);
        }
        this
    }

    fn start(&mut self, entry: PublishConfig, publisher: ZonePublisher) {
        let zone = publisher.zone_id().to_string();
        lock(&self.statuses).insert(
            zone.clone(),
            ZoneStatus {
                zone: zone.clone(),
                zone_file: publisher.zone_path().display().to_string(),
                next_refresh: publisher.next_due(),
                ..ZoneStatus::default()
            },
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(keep_alive(
            publisher,
            self.dht.clone(),
            cancel.clone(),
            self.ended.clone(),
            self.statuses.clone(),
        ));
        self.running.push(Running {
            entry,
            zone,
            cancel,
            task,
        });
    }

    /// Completes once a publisher task ended without being stopped (it
    /// panicked, or returned on its own).
    pub(crate) fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.ended.ended()
    }

    /// What each zone's publisher did last.
    pub(crate) fn statuses(&self) -> Vec<ZoneStatus> {
        lock(&self.statuses).values().cloned().collect()
    }

    /// Makes the running publishers those of `entries`: stops the ones no
    /// longer listed, opens and starts the new ones, leaves the unchanged
    /// ones running. If a new entry cannot be opened, the ones stopped are
    /// started again and the error returned: nothing changed. Returns how
    /// many were (stopped, started).
    pub(crate) async fn reload(
        &mut self,
        entries: &[PublishConfig],
    ) -> Result<(usize, usize), ServiceError> {
        let (stop, keep): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.running)
            .into_iter()
            .partition(|r| !entries.contains(&r.entry));
        self.running = keep;
        let added: Vec<&PublishConfig> = entries
            .iter()
            .filter(|e| !self.running.iter().any(|r| &r.entry == *e))
            .collect();
        if stop.is_empty() && added.is_empty() {
            return Ok((0, 0));
        }
        // Stopped first: a changed entry's state lock must be free to reopen.
        let stopped: Vec<PublishConfig> = stop.iter().map(|r| r.entry.clone()).collect();
        for running in stop {
            Self::stop(running, &self.statuses).await;
        }
        let opened: Result<Vec<_>, _> = added.iter().map(|e| open_one(e)).collect();
        match opened {
            Ok(publishers) => {
                for (entry, publisher) in added.iter().zip(publishers) {
                    tracing::info!(zone = %publisher.zone_id(), "reload: keeping a new zone alive");
                    self.start((*entry).clone(), publisher);
                }
                Ok((stopped.len(), added.len()))
            }
            Err(error) => {
                for entry in &stopped {
                    match open_one(entry) {
                        Ok(publisher) => self.start(entry.clone(), publisher),
                        Err(again) => {
                            tracing::error!(error = %again, "reload: cannot restart a publisher that was running");
                        }
                    }
                }
                Err(error)
            }
        }
    }

    async fn stop(running: Running, statuses: &Statuses) {
        running.cancel.cancel();
        if let Err(error) = running.task.await {
            tracing::error!(%error, "a keep-alive publisher task failed");
        }
        lock(statuses).remove(&running.zone);
    }

    /// Stops every publisher and waits for its task; a task's panic is
    /// reported, not swallowed.
    pub(crate) async fn shutdown(mut self) {
        for running in std::mem::take(&mut self.running) {
            Self::stop(running, &self.statuses).await;
        }
    }
}

/// One publisher's task: waits for a peer, then keeps the zone alive until
/// `cancel`. Ending any other way (a panic included) fires `ended`.
async fn keep_alive(
    publisher: ZonePublisher,
    dht: Handle,
    cancel: CancellationToken,
    ended: Watch,
    statuses: Statuses,
) {
    let guard = ended.guard();
    let zone = publisher.zone_id();
    let key = zone.to_string();
    loop {
        if dht.connected_peers().await.map(|p| p.len()).unwrap_or(0) > 0 {
            break;
        }
        tokio::select! {
            () = cancel.cancelled() => {
                guard.disarm();
                return;
            }
            () = tokio::time::sleep(PEER_POLL) => {}
        }
    }
    tracing::info!(%zone, path = %publisher.zone_path().display(), "keeping the zone alive");
    let update = |f: &mut dyn FnMut(&mut ZoneStatus)| {
        if let Some(status) = lock(&statuses).get_mut(&key) {
            f(status);
        }
    };
    KeepAlive::new(publisher)
        .run(dht, cancel.clone(), |event| match event {
            KeepAliveEvent::Round { round, report } => {
                tracing::info!(%zone, round, "published: {report}");
                update(&mut |s| {
                    s.rounds = round;
                    s.last_round = Some(unix_now());
                    s.fewest_replicas = report.fewest_replicas();
                    s.last_error = report
                        .unreachable
                        .then(|| "no node answered the round's first put".to_owned());
                });
            }
            KeepAliveEvent::NextDue(due) => update(&mut |s| s.next_refresh = due),
            // KeepAlive logs these itself, at warn and error.
            KeepAliveEvent::ZoneRejected(error) | KeepAliveEvent::RoundFailed(error) => {
                let text = error.to_string();
                update(&mut |s| s.last_error = Some(text.clone()));
            }
            KeepAliveEvent::ZoneWarnings(warnings) => {
                for warning in warnings {
                    tracing::warn!(%zone, "{warning}");
                }
            }
            _ => {}
        })
        .await;
    if cancel.is_cancelled() {
        guard.disarm();
    } else {
        tracing::error!(%zone, "the keep-alive publisher stopped on its own");
    }
}
