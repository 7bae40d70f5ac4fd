//! What a node reports about its store, for embedders and the test binary.

use kadns_record::DhtKey;
use libp2p::PeerId;

/// Something the node's store did. Subscribe with
/// [`Handle::subscribe`](crate::Handle::subscribe).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A record was written and flushed: it survives a crash from now on.
    RecordStored {
        /// Its DHT key.
        key: DhtKey,
        /// Its sequence.
        sequence: u64,
        /// The peer that offered it (`None`: Kademlia's own PUT, or local).
        from: Option<PeerId>,
    },
    /// A record was refused.
    RecordRefused {
        /// The key it was offered under.
        key: DhtKey,
        /// [`Refusal::reason`](crate::Refusal::reason).
        reason: &'static str,
        /// The peer that offered it, if known.
        from: Option<PeerId>,
    },
}
