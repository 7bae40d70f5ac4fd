//! Supervision: every background task of `kadns serve` is watched, and the
//! first one that ends on its own ends the service, so that a process
//! manager restarts it rather than leaving it half-alive.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio_util::sync::{CancellationToken, DropGuard};

/// A part of the service whose end is watched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Part {
    /// The DHT node's event loop.
    EventLoop,
    /// A DNS listener task (UDP worker, TCP, DoT or DoH accept loop).
    DnsListener,
    /// A `[[publish]]` keep-alive publisher.
    Publisher,
    /// The Prometheus endpoint.
    Metrics,
    /// The control socket's server.
    Control,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::EventLoop => "the DHT event loop",
            Self::DnsListener => "a DNS listener",
            Self::Publisher => "a keep-alive publisher",
            Self::Metrics => "the metrics endpoint",
            Self::Control => "the control socket",
        })
    }
}

/// Fires when a watched task ends: hand a [`Watch::guard`] to each task of
/// a group; the first guard dropped (the task returned, or its panic
/// unwound) fires the watch.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watch {
    token: CancellationToken,
}

impl Watch {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// A guard for one task: keep it alive for the task's whole life.
    pub(crate) fn guard(&self) -> DropGuard {
        self.token.clone().drop_guard()
    }

    /// Wraps `task` so that its end, or its panic, fires the watch.
    pub(crate) fn watched<F: Future>(&self, task: F) -> impl Future<Output = F::Output> + use<F> {
        let guard = self.guard();
        async move {
            let _guard = guard;
            task.await
        }
    }

    /// Completes once a task of the group has ended.
    pub(crate) fn ended(&self) -> impl Future<Output = ()> + Send + 'static {
        self.token.clone().cancelled_owned()
    }
}

type Ended = Pin<Box<dyn Future<Output = Part> + Send>>;

/// The set of watched parts of a running service.
pub(crate) struct Supervisor {
    parts: Vec<Ended>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Supervisor")
            .field("parts", &self.parts.len())
            .finish()
    }
}

impl Supervisor {
    pub(crate) fn new() -> Self {
        Self { parts: Vec::new() }
    }

    /// Watches `part`, which has ended once `ended` completes.
    pub(crate) fn watch(&mut self, part: Part, ended: impl Future<Output = ()> + Send + 'static) {
        self.parts.push(Box::pin(async move {
            ended.await;
            part
        }));
    }

    /// Completes with the first part that ended (and forgets it); never,
    /// if nothing is watched. Cancel-safe: dropping the future loses
    /// nothing, so it can sit in a `select!` loop.
    pub(crate) async fn first_ended(&mut self) -> Part {
        std::future::poll_fn(|cx| {
            for i in 0..self.parts.len() {
                if let Poll::Ready(part) = self.parts[i].as_mut().poll(cx) {
                    drop(self.parts.swap_remove(i));
                    return Poll::Ready(part);
                }
            }
            Poll::Pending
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_first_ended_task_is_reported_even_when_it_panics() {
        let (listeners, publishers) = (Watch::new(), Watch::new());
        let mut supervisor = Supervisor::new();
        supervisor.watch(Part::DnsListener, listeners.ended());
        supervisor.watch(Part::Publisher, publishers.ended());
        let _forever = tokio::spawn(listeners.watched(std::future::pending::<()>()));
        let panicking = tokio::spawn(publishers.watched(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            panic!("boom");
        }));
        let part = tokio::time::timeout(Duration::from_secs(10), supervisor.first_ended())
            .await
            .expect("a part ended");
        assert_eq!(part, Part::Publisher);
        assert!(panicking.await.unwrap_err().is_panic());
        // Nothing else ended.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), supervisor.first_ended())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_dropped_wait_loses_no_part() {
        let watch = Watch::new();
        let mut supervisor = Supervisor::new();
        supervisor.watch(Part::EventLoop, watch.ended());
        for _ in 0..3 {
            // A select! loop drops the wait whenever another branch wins.
            assert!(
                tokio::time::timeout(Duration::from_millis(10), supervisor.first_ended())
                    .await
                    .is_err()
            );
        }
        drop(watch.guard());
        let part = tokio::time::timeout(Duration::from_secs(10), supervisor.first_ended())
            .await
            .expect("still watched");
        assert_eq!(part, Part::EventLoop);
    }

    #[tokio::test]
    async fn nothing_watched_never_ends() {
        let mut supervisor = Supervisor::new();
        assert!(
            tokio::time::timeout(Duration::from_millis(20), supervisor.first_ended())
                .await
                .is_err()
        );
    }
}
