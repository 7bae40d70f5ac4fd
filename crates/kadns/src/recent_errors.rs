//! The last warnings and errors the process logged, for `kadns status`: a
//! bounded ring filled by a small `tracing` layer.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

/// How many events the ring keeps: the oldest go first.
pub const RECENT_ERRORS: usize = 32;

/// Longest message kept, in bytes; longer ones are cut.
const MAX_MESSAGE: usize = 512;

/// One logged warning or error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecentError {
    /// When, in seconds since the Unix epoch.
    pub unix_time: u64,
    /// `WARN` or `ERROR`.
    pub level: String,
    /// The module that logged it.
    pub target: String,
    /// The message, with the event's fields as `name=value`.
    pub message: String,
}

/// A bounded ring of the most recent warnings and errors, shared by the
/// layer that fills it and the control socket that reads it.
#[derive(Clone, Debug, Default)]
pub struct RecentErrors {
    ring: Arc<Mutex<VecDeque<RecentError>>>,
}

impl RecentErrors {
    /// The process's ring: [`RecentErrors::layer`] fills it, `kadns status`
    /// shows it.
    pub fn global() -> &'static Self {
        static GLOBAL: OnceLock<RecentErrors> = OnceLock::new();
        GLOBAL.get_or_init(Self::default)
    }

    /// A `tracing` layer that records every WARN and ERROR event into this
    /// ring (filter it as the other layers are filtered).
    ///
    /// ```
    /// use tracing_subscriber::layer::SubscriberExt;
    /// let recent = kadns::RecentErrors::default();
    /// let subscriber = tracing_subscriber::registry().with(recent.layer());
    /// tracing::subscriber::with_default(subscriber, || tracing::warn!("disk almost full"));
    /// assert_eq!(recent.snapshot()[0].message, "disk almost full");
    /// ```
    pub fn layer(&self) -> RecentErrorsLayer {
        RecentErrorsLayer { ring: self.clone() }
    }

    /// The events kept, oldest first.
    pub fn snapshot(&self) -> Vec<RecentError> {
        self.lock().iter().cloned().collect()
    }

    fn push(&self, error: RecentError) {
        let mut ring = self.lock();
        if ring.len() >= RECENT_ERRORS {
            ring.pop_front();
        }
        ring.push_back(error);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<RecentError>> {
        // A push leaves the ring consistent before anything can panic.
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The layer of [`RecentErrors::layer`].
#[derive(Debug)]
pub struct RecentErrorsLayer {
    ring: RecentErrors,
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for RecentErrorsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut visitor = Message::default();
        event.record(&mut visitor);
        let mut message = visitor.message;
        if !visitor.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&visitor.fields);
        }
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.ring.push(RecentError {
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            level: level.to_string(),
            target: event.metadata().target().to_owned(),
            message,
        });
    }
}

#[derive(Default)]
struct Message {
    message: String,
    fields: String,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_the_last_warnings_and_errors_only() {
        let recent = RecentErrors::default();
        let subscriber = tracing_subscriber::registry().with(recent.layer());
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::debug!("not kept");
            for i in 0..(RECENT_ERRORS + 3) {
                tracing::warn!(i, "warning");
            }
            tracing::error!(peer = "p", "the last one");
        });
        let kept = recent.snapshot();
        assert_eq!(kept.len(), RECENT_ERRORS);
        assert_eq!(kept[0].message, "warning i=4", "the oldest went first");
        let last = kept.last().unwrap();
        assert_eq!(last.level, "ERROR");
        assert_eq!(last.message, "the last one peer=\"p\"");
        assert!(last.target.ends_with("recent_errors::tests"));
    }
}
