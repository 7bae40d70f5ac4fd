//! Keep-alive publishing: a task that keeps a zone's names in the DHT.
//!
//! [`KeepAlive`] runs a [`ZonePublisher`] until it is cancelled: a first
//! round at once, then a round whenever a refresh comes due (see the
//! schedule in `docs/publishing.md`) or the zone file changes. The file is
//! polled every [`KeepAliveOptions::poll_interval`] (modification time and
//! size, then a content hash): portable, no file-system notification API,
//! and a saved edit is published within about one interval.

use std::time::Duration;

use kadns_dht::Handle;
use tokio_util::sync::CancellationToken;

use crate::warning::ZoneWarning;
use crate::zone_publisher::ZonePublishError;
use crate::zone_publisher::{RoundReport, ZoneCheck, ZonePublisher};

/// How often [`KeepAlive`] looks at the zone file and the clock by default.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How a [`KeepAlive`] runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeepAliveOptions {
    /// How often to look at the zone file and at the refresh schedule.
    pub poll_interval: Duration,
}

impl Default for KeepAliveOptions {
    fn default() -> Self {
        Self {
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }
}

/// What a running [`KeepAlive`] reports to its caller.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeepAliveEvent<'a> {
    /// A round put or dropped something. `round` counts from 1.
    Round {
        /// The round's number.
        round: u64,
        /// What it did.
        report: &'a RoundReport,
    },
    /// The zone file changed but cannot be used (the error lists every
    /// problem with `file:line`); what is published stays as it was.
    ZoneRejected(&'a ZonePublishError),
    /// A round failed (the state could not be written, for example); it is
    /// tried again at the next poll.
    RoundFailed(&'a ZonePublishError),
    /// The zone file changed and was accepted with warnings (TTLs clamped,
    /// duplicates dropped), each naming its line.
    ZoneWarnings(&'a [ZoneWarning]),
    /// After every round that did something: when the next one has work
    /// without the zone file changing (unix seconds; see
    /// [`ZonePublisher::next_due`]). For status displays.
    NextDue(Option<u64>),
}

/// Keeps one zone alive in the DHT: re-signs every name before its signature
/// expires, publishes edits of the zone file, and replaces removed names
/// with tombstones until nobody could replay them.
///
/// ```no_run
/// # async fn demo(dht: kadns_dht::Handle) -> Result<(), Box<dyn std::error::Error>> {
/// use kadns_publisher::{Config, KeepAlive, KeepAliveEvent, ZonePublisher};
/// use tokio_util::sync::CancellationToken;
///
/// let mut config = Config::default();
/// config.validity_secs = 86_400;
/// let publisher = ZonePublisher::open("example.key", "example.zone", None, &config)?;
/// let cancel = CancellationToken::new();
/// let task = tokio::spawn(KeepAlive::new(publisher).run(dht, cancel.clone(), |event| {
///     if let KeepAliveEvent::Round { round, report } = event {
///         println!("round {round}: {report}");
///     }
/// }));
/// // … later, to stop:
/// cancel.cancel();
/// task.await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct KeepAlive {
    publisher: ZonePublisher,
    options: KeepAliveOptions,
}

impl KeepAlive {
    /// Keeps `publisher`'s zone alive with the default options.
    pub fn new(publisher: ZonePublisher) -> Self {
        Self::with_options(publisher, KeepAliveOptions::default())
    }

    /// Keeps `publisher`'s zone alive with `options`.
    pub fn with_options(publisher: ZonePublisher, options: KeepAliveOptions) -> Self {
        Self { publisher, options }
    }

    /// Runs until `cancel` is cancelled, calling `on_event` for every round
    /// that did something and every problem; returns the publisher. A round
    /// in progress when `cancel` fires is abandoned: puts already sent
    /// complete in the background, and the names whose state was not yet
    /// written are simply published again next time.
    pub async fn run(
        self,
        dht: Handle,
        cancel: CancellationToken,
        mut on_event: impl FnMut(KeepAliveEvent<'_>),
    ) -> ZonePublisher {
        let Self {
            mut publisher,
            options,
        } = self;
        let mut rounds = 0u64;
        // The first round runs at once: new and changed names, and whatever
        // came due while no publisher ran.
        let mut pending = true;
        loop {
            let now = kadns_dht::unix_now();
            if pending || publisher.next_due().is_some_and(|due| due <= now) {
                pending = false;
                let round = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break,
                    r = publisher.round(&dht, false, |_| {}) => r,
                };
                match round {
                    Ok(report) if report.is_idle() => {}
                    Ok(report) => {
                        rounds += 1;
                        on_event(KeepAliveEvent::Round {
                            round: rounds,
                            report: &report,
                        });
                        on_event(KeepAliveEvent::NextDue(publisher.next_due()));
                    }
                    Err(error) => {
                        tracing::error!(zone = %publisher.zone_id(), %error, "publishing round failed");
                        on_event(KeepAliveEvent::RoundFailed(&error));
                        pending = true;
                    }
                }
            }
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(options.poll_interval) => {}
            }
            match publisher.check_zone_file() {
                Ok(ZoneCheck::Unchanged) => {}
                Ok(ZoneCheck::Changed { .. }) => {
                    pending = true;
                    if !publisher.warnings().is_empty() {
                        on_event(KeepAliveEvent::ZoneWarnings(publisher.warnings()));
                    }
                }
                Err(error) => {
                    tracing::warn!(zone = %publisher.zone_id(), %error, "zone file edit refused; what is published is unchanged");
                    on_event(KeepAliveEvent::ZoneRejected(&error));
                }
            }
        }
        tracing::info!(zone = %publisher.zone_id(), rounds, "keep-alive publisher stopped");
        publisher
    }
}
