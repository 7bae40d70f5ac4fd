//! Expiry: records past their signed expiry leave the disk in bounded
//! batches (docs/dht.md, "Expiry").

use super::inbound::refresh_closeness;
use super::{Kad, flush};
use crate::store::unix_now;

/// Expired records removed per purge tick.
pub const PURGE_BATCH: usize = 1024;

/// Whether a purge left expired records behind.
#[derive(Debug, Default)]
pub(super) struct Expiry {
    backlog: bool,
}

impl Expiry {
    /// Whether the last purge filled its batch: more are due, and the loop
    /// purges again at the next replication step instead of the next tick.
    pub(super) fn backlog(&self) -> bool {
        self.backlog
    }

    /// Removes up to [`PURGE_BATCH`] expired records, then flushes (saved
    /// peers are written without a flush; this makes them durable).
    pub(super) fn purge(&mut self, kad: &mut Kad) {
        self.backlog = false;
        // Kademlia's own inbound PUTs reach the store with no routing table
        // at hand: keep its snapshot fresh from here too.
        refresh_closeness(kad);
        match kad.store_mut().purge_expired(unix_now(), PURGE_BATCH) {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(n, "purged expired records");
                self.backlog = n >= PURGE_BATCH;
            }
            Err(e) => tracing::error!(error = %e, "purge failed"),
        }
        flush(kad);
    }
}
