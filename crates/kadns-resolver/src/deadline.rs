//! One deadline per query.

use std::time::Duration;

use tokio::time::Instant;

use crate::error::LookupError;

/// Time kept back from a DHT wait for what follows it: a stale answer read
/// from disk, or the synthesized SOA, before the query's deadline.
pub(crate) const RESERVE: Duration = Duration::from_millis(200);

/// When a query must be answered by: set once when the query arrives and
/// shared by every step (CNAME links, the negative answer's SOA, forwarding).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    /// A deadline `total` from now.
    pub(crate) fn after(total: Duration) -> Self {
        Self {
            at: Instant::now() + total,
            total,
        }
    }

    /// The instant itself.
    pub(crate) fn at(&self) -> Instant {
        self.at
    }

    /// How long a DHT wait may last: until [`RESERVE`] before the deadline.
    pub(crate) fn fetch_bound(&self) -> Instant {
        let now = Instant::now();
        self.at.checked_sub(RESERVE).unwrap_or(now).max(now)
    }

    /// The error for a query that ran out of time.
    pub(crate) fn error(&self) -> LookupError {
        LookupError::Deadline { after: self.total }
    }
}
