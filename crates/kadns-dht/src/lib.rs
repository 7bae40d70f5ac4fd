//! The kadns DHT node: rust-libp2p Kademlia under `/kadns/kad/1.0.0`, with a
//! record store that validates every record with `kadns-record` before it
//! reaches sled.
//!
//! One task, the [`EventLoop`], owns the libp2p swarm. Everything else holds
//! a cloneable [`Handle`]:
//!
//! - [`Handle::put`] stores a signed bundle on the closest nodes through
//!   `/kadns/store/1.0.0` and reports the nodes that answered *after*
//!   validating and flushing it: the replica count is true.
//! - [`Handle::get`] validates every record found, keeps the valid one with the
//!   highest sequence and stops once [`Config::get_quorum`] peers agreed.
//!
//! Protocol, policies and bounds are described in `docs/dht.md`.
//!
//! ```no_run
//! # async fn demo(bundle: kadns_record::SignedBundle) -> Result<(), kadns_dht::Error> {
//! use kadns_dht::{Config, Node};
//!
//! let mut config = Config::with_data_dir("/var/lib/kadns");
//! config.bootstrap = vec!["/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse().unwrap()];
//! let node = Node::spawn(config).await?;
//! let dht = node.handle();
//! let key = bundle.dht_key();
//! let report = dht.put(bundle).await?;
//! println!("stored on {} nodes", report.replicas());
//! let found = dht.get(key).await?;
//! assert!(found.best.is_some());
//! node.shutdown().await;
//! # Ok(()) }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod behaviour;
mod budget;
mod closeness;
mod config;
mod disk;
mod error;
mod event;
mod event_loop;
mod handle;
mod identity;
mod metrics;
mod node;
mod protocol;
mod refusal_log;
mod storage;
mod store;

pub use behaviour::{
    Behaviour, BoxedTransport, IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL, MAX_PACKET_LEN,
    MAX_STORE_STREAMS, PING_INTERVAL, PING_TIMEOUT, build_swarm, build_swarm_with_transport,
};
pub use budget::BudgetExceeded;
pub use closeness::{CLOSENESS_REFRESH, CLOSENESS_SLACK};
pub use config::{
    BucketInserts, Config, DEFAULT_BOOTSTRAP_INTERVAL, DEFAULT_MAX_STORAGE,
    DEFAULT_MAX_ZONE_RECORDS, DataDir, MAX_DISK_RESERVE, MIN_DISK_RESERVE, Mode, RECORD_OVERHEAD,
    SizeError, StorageLimits, parse_size,
};
pub use disk::{BALLAST_FILE, DiskFull};
pub use error::Error;
pub use event::Event;
pub use event_loop::{
    COMMAND_CHANNEL_LEN, EVENT_CHANNEL_LEN, EventLoop, HANDOVER_DEBOUNCE, MAX_ADDRS_PER_PEER,
    MAX_COMMIT_GROUP, MAX_HANDOVER_PEERS, MAX_PEER_FAILURES, MAX_PENDING_GETS, MAX_PENDING_PUTS,
    MAX_REPLICATION_IN_FLIGHT, MAX_REPLICATION_IN_FLIGHT_PER_PEER, MAX_REPLICATION_SKIP,
    MAX_STARTUP_DIALS, MAX_TRACKED_FAILURES, MIN_REPLICATION_INTERVAL, MIN_WALK_GAP, PURGE_BATCH,
    REPLICATION_BATCH, REPLICATION_PUSHERS, REPLICATION_STEP,
};
pub use handle::{GetOutcome, Handle, PutReport};
pub use identity::IDENTITY_FILE;
pub use metrics::{Metrics, ReasonLabel};
pub use node::Node;
pub use protocol::{
    MAX_REASON_LEN, MAX_REQUEST_LEN, STORE_PROTOCOL, StoreCodec, StoreRequest, StoreResponse,
};
pub use refusal_log::REFUSAL_LOG_INTERVAL;
pub use storage::{SavedPeer, SledStorage, Storage, StorageError, StoredRecord};
pub use store::{Records, Refusal, SCAN_BATCH, Stored, ValidatingStore, unix_now};

pub use libp2p::{Multiaddr, PeerId};
