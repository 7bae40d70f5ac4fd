//! The crate's error type.

use std::path::PathBuf;
use std::sync::Arc;

use kadns_record::{DhtKey, ValidateError};
use libp2p::Multiaddr;

use crate::storage::StorageError;

/// Everything a node or its [`Handle`](crate::Handle) can fail with.
///
/// `Clone`, so that one failure can be handed to every coalesced waiter.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node's event loop has ended; no method will succeed again.
    #[error("the DHT node has shut down")]
    Shutdown,
    /// A record offered to `put` is not valid; nothing was sent.
    #[error("record for {key} is invalid: {source}")]
    Invalid {
        /// The record's DHT key.
        key: DhtKey,
        /// Why `kadns-record` refused it.
        #[source]
        source: ValidateError,
    },
    /// The storage engine failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The identity key file could not be read or written.
    #[error("identity key {path}: {source}")]
    Identity {
        /// The key file.
        path: PathBuf,
        /// The I/O or decoding failure.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An address the configuration names cannot be used.
    #[error("address {addr} cannot be used: {reason}")]
    BadAddress {
        /// The address.
        addr: Multiaddr,
        /// Why not.
        reason: &'static str,
    },
    /// Listening on a configured address failed.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// The transport's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Building the transport stack failed.
    #[error("cannot build the transport: {source}")]
    Transport {
        /// The builder's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Dialing a peer failed.
    #[error("cannot dial {addr}: {source}")]
    Dial {
        /// The address dialled.
        addr: Multiaddr,
        /// The swarm's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// Bootstrap was asked for, but the routing table is empty.
    #[error("no known peers to bootstrap from")]
    NoKnownPeers,
}
