//! The `[[publish]]` entries of `kadns serve`: one keep-alive publisher per
//! zone, run by tasks the [`Service`](crate::Service) owns and stops.

use std::time::Duration;

use kadns_dht::Handle;
use kadns_publisher::{Config, KeepAlive, KeepAliveEvent, ZonePublisher};
use kadns_record::hickory_proto::rr::Name;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::serve_config::PublishConfig;
use crate::service::ServiceError;

/// How often a publisher task checks for a first peer before its first round.
const PEER_POLL: Duration = Duration::from_millis(200);

/// The running keep-alive publishers of one node.
#[derive(Debug)]
pub(crate) struct Publishers {
    cancel: CancellationToken,
    tasks: JoinSet<()>,
}

/// Opens every configured zone (key, state lock, zone file) before anything
/// starts, so that a bad entry stops `serve` with its reason.
pub(crate) fn open(entries: &[PublishConfig]) -> Result<Vec<ZonePublisher>, ServiceError> {
    entries
        .iter()
        .map(|entry| {
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
        })
        .collect()
}

impl Publishers {
    /// Starts one task per publisher. Each waits for a first peer (a node
    /// alone would store its zone only on itself), then keeps its zone alive
    /// until [`shutdown`](Self::shutdown).
    pub(crate) fn spawn(publishers: Vec<ZonePublisher>, dht: Handle) -> Self {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for publisher in publishers {
            let (dht, cancel) = (dht.clone(), cancel.clone());
            tasks.spawn(async move {
                let zone = publisher.zone_id();
                loop {
                    if dht.connected_peers().await.map(|p| p.len()).unwrap_or(0) > 0 {
                        break;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(PEER_POLL) => {}
                    }
                }
                tracing::info!(%zone, path = %publisher.zone_path().display(), "keeping the zone alive");
                KeepAlive::new(publisher)
                    .run(dht, cancel, |event| match event {
                        KeepAliveEvent::Round { round, report } => {
                            tracing::info!(%zone, round, "published: {report}");
                        }
                        // KeepAlive logs these itself, at warn and error.
                        KeepAliveEvent::ZoneRejected(_) | KeepAliveEvent::RoundFailed(_) => {}
                        KeepAliveEvent::ZoneWarnings(warnings) => {
                            for warning in warnings {
                                tracing::warn!(%zone, "{warning}");
                            }
                        }
                        _ => {}
                    })
                    .await;
            });
        }
        Self { cancel, tasks }
    }

    /// Stops every publisher and waits for its task; a task's panic is
    /// reported, not swallowed.
    pub(crate) async fn shutdown(mut self) {
        self.cancel.cancel();
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "a keep-alive publisher task failed");
            }
        }
    }
}
