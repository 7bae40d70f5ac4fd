//! Where bundles come from: the seam between the resolver and the DHT.

use std::collections::BTreeMap;
use std::future::Future;

use kadns_record::{DhtKey, VerifiedBundle};

use crate::error::SourceError;

/// What a completed source lookup says about a key.
///
/// The difference between [`Absent`](Self::Absent) and
/// [`NotReached`](Self::NotReached) is the difference between NXDOMAIN and
/// SERVFAIL: a name is absent only when enough of the peers closest to its
/// key were asked and none held a valid bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceAnswer {
    /// Candidate bundle bytes: untrusted until the resolver validated them.
    Found(Vec<u8>),
    /// A bundle already verified in this process (a `VerifiedBundle` can only
    /// be made by `kadns_record::validate`): the node's own DHT layer checked
    /// its signature for this key. The resolver checks that it belongs under
    /// the key asked for, that it has not expired since, and rollback, but
    /// does not verify the signature a second time (or copy its bytes).
    Verified(Box<VerifiedBundle>),
    /// The lookup reached enough of the closest peers and none held a valid
    /// bundle (or an invalid one): the key is proven absent.
    Absent,
    /// No valid bundle, but absence is not proven: too few of the closest
    /// peers answered, the lookup did not converge, or the only answers were
    /// invalid.
    NotReached {
        /// Peers that answered.
        reached: usize,
        /// Peers that must answer to prove absence.
        required: usize,
        /// Invalid answers seen, by refusal reason (`bad_signature`, …).
        invalid: BTreeMap<String, usize>,
    },
}

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
/// The resolver bounds every call by `Config::dht.timeout_ms` (and by the
/// query's deadline) and drops the future when the bound passes, so `get`
/// must be safe to cancel.
pub trait BundleSource: Send + Sync + 'static {
    /// What a lookup of `key` found: see [`SourceAnswer`]. An error means the
    /// lookup could not be run at all (no peers, the node stopped, …).
    fn get(&self, key: DhtKey) -> impl Future<Output = Result<SourceAnswer, SourceError>> + Send;
}
