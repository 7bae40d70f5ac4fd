//! Where bundles come from: the seam between the resolver and the DHT.

use std::future::Future;

use kadns_record::DhtKey;

use crate::error::SourceError;

/// A place to look bundles up by DHT key: the DHT in production, a
/// [`MemorySource`](crate::MemorySource) in tests and embeddings.
///
/// The resolver trusts nothing a source returns: it validates the bytes with
/// `kadns_record::validate`, checks them for rollback and only then answers
/// from them. A source may therefore be as simple as "the bytes of the first
/// record found"; a DHT source should still prefer, among the records it
/// collects, the valid one with the highest sequence, so that one lying or
/// stale peer changes nothing.
///
/// The resolver bounds every call by `Config::dht.timeout_ms` and drops the
/// future when the bound passes, so `get` must be safe to cancel.
pub trait BundleSource: Send + Sync + 'static {
    /// The best candidate bundle bytes found under `key`, or `None` after a
    /// completed lookup that found nothing. An error means the lookup could
    /// not be completed (no peers, the node stopped, …).
    fn get(&self, key: DhtKey)
    -> impl Future<Output = Result<Option<Vec<u8>>, SourceError>> + Send;
}
