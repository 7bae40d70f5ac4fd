//! The service's life after start: readiness, the watchdog, signals, the
//! control socket's requests, and supervision of every background task.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kadns_record::hickory_proto::rr::Name;
use tokio::signal::unix::{SignalKind, signal};

use super::Service;
use crate::control::{Request, Response};
use crate::notify;
use crate::serve_config::ServeConfig;
use crate::supervise::{Part, Supervisor};

/// Reads the configuration again for a reload: the file, with the command
/// line's flags applied on top as at start. An `Err` is the reason.
pub type ConfigLoader = Arc<dyn Fn() -> Result<ServeConfig, String> + Send + Sync>;

/// How long a node with somewhere to join waits for a first peer before it
/// says it is ready anyway ("joined or given up").
pub const JOIN_WAIT: Duration = Duration::from_secs(10);

/// How long stopping may take after a part died; the process exits anyway.
const FAILED_STOP_WAIT: Duration = Duration::from_secs(10);

/// A part of the service ended while it should have been running: the
/// service stopped, and the process should exit non-zero so that its
/// service manager restarts it.
#[derive(Debug, thiserror::Error)]
#[error("{part} ended unexpectedly; kadns stopped so that it can be restarted whole")]
#[non_exhaustive]
pub struct ServiceFailure {
    /// The part that ended.
    pub part: Part,
}

impl Service {
    /// Runs until `shutdown` completes (then stops cleanly, `Ok`) or a
    /// background task ends on its own or panics (then stops what is left
    /// and returns the [`ServiceFailure`]: never half-alive). Meanwhile it
    /// answers the control socket, reloads on SIGHUP (with `loader`; without
    /// one, reloads are refused) and talks to systemd: `READY=1` once the
    /// node has joined or given up ([`JOIN_WAIT`]), `WATCHDOG=1` while the
    /// DHT event loop answers, `STOPPING=1` at the end.
    pub async fn run(
        mut self,
        loader: Option<ConfigLoader>,
        shutdown: impl Future<Output = &'static str>,
    ) -> Result<(), ServiceFailure> {
        let mut supervisor = Supervisor::new();
        supervisor.watch(Part::EventLoop, self.node.ended());
        supervisor.watch(Part::DnsListener, self.stub.ended());
        supervisor.watch(Part::Publisher, self.publishers.ended());
        supervisor.watch(Part::Control, self.control.ended());
        if let Some(metrics) = &self.metrics {
            supervisor.watch(Part::Metrics, metrics.ended());
        }
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP: reload through `kadns reload` only");
                None
            }
        };
        let watchdog = notify::watchdog_interval();
        let mut watchdog_tick =
            tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
        let joined = self.joined();
        tokio::pin!(joined, shutdown);
        let mut ready = false;
        loop {
            tokio::select! {
                signal = &mut shutdown => {
                    tracing::info!("{signal}: shutting down");
                    notify::stopping();
                    self.shutdown().await;
                    return Ok(());
                }
                part = supervisor.first_ended() => {
                    tracing::error!("{part} ended unexpectedly: stopping kadns so that it is restarted whole");
                    notify::status(&format!("failed: {part} ended"));
                    self.stop_after_failure(part).await;
                    return Err(ServiceFailure { part });
                }
                peers = &mut joined, if !ready => {
                    ready = true;
                    let status = self.ready_status(peers);
                    tracing::info!("ready: {status}");
                    notify::ready(&status);
                }
                Some(()) = async { hangup.as_mut()?.recv().await } => {
                    tracing::info!("SIGHUP: reloading the configuration");
                    let _ = self.reload_logged(loader.as_ref()).await;
                }
                Some((request, reply)) = self.calls.recv() => {
                    let response = self.answer(request, loader.as_ref()).await;
                    let _ = reply.send(response);
                }
                _ = watchdog_tick.tick(), if watchdog.is_some() => {
                    self.watchdog(watchdog.unwrap_or_default()).await;
                }
            }
        }
    }

    /// Completes once the node has a first peer, or has given up waiting
    /// ([`JOIN_WAIT`]), or at once if it has nobody to join; yields the
    /// number of peers connected.
    fn joined(&self) -> impl Future<Output = usize> + 'static {
        let dht = self.node.handle();
        let has_bootstrap = !self.config.p2p.bootstrap.is_empty();
        async move {
            // Saved peers from an earlier run are in the routing table.
            let known = dht.peers().await.map_or(0, |p| p.len());
            if !has_bootstrap && known == 0 {
                return 0;
            }
            match dht.wait_for_peers(1, JOIN_WAIT).await {
                Ok(n) => n,
                Err(_) => {
                    tracing::warn!(
                        "no peer reached within {JOIN_WAIT:?}: ready without the network"
                    );
                    0
                }
            }
        }
    }

    fn ready_status(&self, peers: usize) -> String {
        let dns: Vec<String> = self
            .stub
            .udp_addrs()
            .iter()
            .map(ToString::to_string)
            .collect();
        format!("answering on {}, {peers} peers", dns.join(" "))
    }

    /// `WATCHDOG=1`, only if the event loop answers within the interval: a
    /// stuck loop stops the pings and systemd restarts the service.
    async fn watchdog(&self, interval: Duration) {
        let dht = self.node.handle();
        match tokio::time::timeout(interval, dht.connected_peers()).await {
            Ok(Ok(peers)) => {
                notify::watchdog();
                let dns: Vec<String> = self
                    .stub
                    .udp_addrs()
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                notify::status(&format!(
                    "answering on {}, {} peers",
                    dns.join(" "),
                    peers.len()
                ));
            }
            _ => tracing::warn!("the DHT event loop did not answer: no watchdog ping"),
        }
    }

    async fn answer(&mut self, request: Request, loader: Option<&ConfigLoader>) -> Response {
        match request {
            Request::Status => Response::ok(self.status().await),
            Request::CacheFlush { name } => {
                let name = match name.as_deref().map(Name::from_ascii).transpose() {
                    Ok(name) => name,
                    Err(error) => return Response::error(format!("bad name: {error}")),
                };
                let flushed = self.stub.flush_caches(name.as_ref());
                tracing::info!(name = ?name.map(|n| n.to_string()), bundles = flushed.bundles, forwarded = flushed.forwarded, "cache flushed");
                Response::ok(serde_json::json!({
                    "bundles": flushed.bundles,
                    "forwarded": flushed.forwarded,
                }))
            }
            Request::Reload => match self.reload_logged(loader).await {
                Ok(report) => Response::ok(report),
                Err(reason) => Response::error(reason),
            },
            Request::Debug { action } if self.test_hooks && action == "kill-event-loop" => {
                tracing::warn!("debug: ending the DHT event loop on request");
                let _ = self.node.handle().shutdown().await;
                Response::ok("the event loop was told to end")
            }
            Request::Debug { action } if self.test_hooks => {
                Response::error(format!("unknown debug action {action:?}"))
            }
            Request::Debug { .. } => Response::error("debug commands are not enabled"),
        }
    }

    /// Stops what is left after `part` died, within [`FAILED_STOP_WAIT`].
    /// A dead event loop is not joined (its panic is already logged).
    async fn stop_after_failure(self, part: Part) {
        let stop = async move {
            self.publishers.shutdown().await;
            drop(self.control);
            drop(self.metrics);
            self.stub.shutdown().await;
            drop(self.resolver);
            if part == Part::EventLoop {
                drop(self.node);
            } else {
                self.node.shutdown().await;
            }
        };
        if tokio::time::timeout(FAILED_STOP_WAIT, stop).await.is_err() {
            tracing::error!("stopping took longer than {FAILED_STOP_WAIT:?}: exiting anyway");
        }
    }
}
