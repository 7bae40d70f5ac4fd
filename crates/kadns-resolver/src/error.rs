//! Error types. Absence (NXDOMAIN, NODATA) is never one of them: it is an
//! [`Outcome`](crate::Outcome).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RecordType};
use kadns_record::{ContentError, DhtKey, NameError, ValidateError, ZoneIdError};

/// A shareable, cloneable error from below (I/O, a DHT adapter, a database).
pub type BoxError = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a [`Resolver`](crate::Resolver) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A trust anchor's name is not a domain name.
    #[error("trust anchor {name:?} is not a domain name: {source}")]
    AnchorName {
        /// The name as configured.
        name: String,
        /// What the name parser said.
        #[source]
        source: hickory_proto::ProtoError,
    },
    /// A trust anchor for the root name would capture every name.
    #[error("a trust anchor cannot be the root name")]
    AnchorIsRoot,
    /// A trust anchor's zone is not a zone id.
    #[error("trust anchor {name:?} has a bad zone id: {source}")]
    AnchorZone {
        /// The anchor's name.
        name: String,
        /// Why the zone id was refused.
        #[source]
        source: ZoneIdError,
    },
    /// A configured upstream server is one of the resolver's own listen
    /// addresses: forwarding to it would loop.
    #[error("upstream {addr} is this resolver's own address")]
    UpstreamIsSelf {
        /// The upstream address.
        addr: SocketAddr,
    },
    /// A per-domain forwarding entry (`[forward]`) names no domain, or no
    /// server.
    #[error("forward domain {name:?}: {reason}")]
    ForwardDomain {
        /// The domain as configured.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS client for DoT and DoH upstreams cannot be built (the
    /// `[upstream] ca` file is unusable).
    #[error(transparent)]
    UpstreamTls(#[from] crate::exchange_tls::TlsClientError),
}

/// Why a [`BundleSource`](crate::BundleSource) could not complete a lookup.
/// "Found nothing" is not an error: it is `Ok(None)`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The DHT knows no peers to ask.
    #[error("the DHT has no peers")]
    NoPeers,
    /// The DHT node has stopped (its event loop is gone).
    #[error("the DHT node has stopped")]
    Stopped,
    /// The DHT gave up on the lookup after its own timeout.
    #[error("the DHT lookup timed out after {after:?}")]
    Timeout {
        /// How long the DHT waited.
        after: Duration,
    },
    /// The lookup failed in the DHT's transport or machinery.
    #[error("the DHT lookup failed: {source}")]
    Failed {
        /// The underlying error.
        #[source]
        source: BoxError,
    },
}

/// Why the sequence store (rollback protection) failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened.
    #[error("cannot open the sequence store at {path}: {source}")]
    Open {
        /// Its directory.
        path: PathBuf,
        /// The database's error.
        #[source]
        source: BoxError,
    },
    /// A read, write or flush failed.
    #[error("sequence store {op} failed for {key}: {source}")]
    Io {
        /// `read`, `write` or `flush`.
        op: &'static str,
        /// The DHT key concerned.
        key: DhtKey,
        /// The database's error.
        #[source]
        source: BoxError,
    },
    /// A stored value is not an 8-byte sequence number.
    #[error("sequence store holds a corrupt value of {len} bytes for {key}")]
    Corrupt {
        /// The DHT key concerned.
        key: DhtKey,
        /// The stored value's length.
        len: usize,
    },
    /// The persisted bundle cache could not be opened or scanned.
    #[error("cannot read the persisted bundle cache: {source}")]
    Scan {
        /// The database's error.
        #[source]
        source: BoxError,
    },
    /// The blocking task that ran the store call died.
    #[error("the sequence store task failed: {reason}")]
    Task {
        /// What the runtime reported.
        reason: String,
    },
}

/// Why a query could not be forwarded upstream, or got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// No upstream server is configured (and none was found in resolv.conf).
    #[error("no upstream server is configured")]
    NoUpstream,
    /// This exact query is one the resolver is forwarding right now: it came
    /// back, so forwarding it again would loop.
    #[error("forwarding loop: {name} {query_type} came back while being forwarded")]
    Loop {
        /// The query name, exactly as received.
        name: Name,
        /// The query type.
        query_type: RecordType,
    },
    /// Every forwarding slot is in use: `limit` upstream exchanges are in
    /// flight (`[upstream] max_in_flight`).
    #[error("all {limit} forwarding slots are in use")]
    Busy {
        /// The limit.
        limit: usize,
    },
    /// This client's network (its /24 or /56) holds its fair share of the
    /// forwarding slots, `limit` exchanges, while others may need the rest.
    #[error("this client's network holds its share of forwarding slots ({limit})")]
    ClientBusy {
        /// The share.
        limit: usize,
    },
    /// This client's network has `limit` forwarded queries waiting already
    /// (`[upstream] max_waiters`).
    #[error("this client's network has {limit} forwarded queries waiting already")]
    TooManyWaiters {
        /// The limit.
        limit: usize,
    },
    /// The request cannot be forwarded as it is.
    #[error("cannot forward the request: {reason}")]
    BadRequest {
        /// Why.
        reason: &'static str,
    },
    /// The query could not be encoded.
    #[error("cannot encode the query: {source}")]
    Encode {
        /// The encoder's error.
        #[source]
        source: Arc<hickory_proto::ProtoError>,
    },
    /// A socket operation with an upstream failed.
    #[error("upstream {server} ({transport}): {source}")]
    Io {
        /// The upstream.
        server: SocketAddr,
        /// `udp` or `tcp`.
        transport: &'static str,
        /// The I/O error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// An upstream sent something that is not a DNS response to the query.
    #[error("upstream {server} sent a malformed response: {reason}")]
    Malformed {
        /// The upstream.
        server: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// An upstream did not answer in time.
    #[error("upstream {server} did not answer within {after:?}")]
    Timeout {
        /// The upstream.
        server: SocketAddr,
        /// The per-server bound.
        after: Duration,
    },
    /// No upstream answered within the total bound.
    #[error("no upstream answered within {after:?}")]
    Deadline {
        /// The total bound.
        after: Duration,
    },
}

impl ForwardError {
    /// For a query refused to keep a forwarding limit, the limit: `slots`
    /// (every slot in use), `client_share` (the client's share in use) or
    /// `waiters` (the client's waiting places in use); the label of
    /// `resolver_forward_refusals_total`. `None` for every other error.
    ///
    /// ```
    /// use kadns_resolver::ForwardError;
    ///
    /// assert_eq!(ForwardError::ClientBusy { limit: 4 }.limit_reason(), Some("client_share"));
    /// assert_eq!(ForwardError::NoUpstream.limit_reason(), None);
    /// ```
    pub fn limit_reason(&self) -> Option<&'static str> {
        match self {
            Self::Busy { .. } => Some("slots"),
            Self::ClientBusy { .. } => Some("client_share"),
            Self::TooManyWaiters { .. } => Some("waiters"),
            _ => None,
        }
    }
}

/// Why a lookup failed. Every variant maps to SERVFAIL; absence is not here.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The bundle source (the DHT) could not complete the lookup.
    #[error("DHT lookup of {key} failed: {source}")]
    Source {
        /// The DHT key.
        key: DhtKey,
        /// The source's error.
        #[source]
        source: SourceError,
    },
    /// The bundle source did not answer within the configured bound.
    #[error("DHT lookup of {key} timed out after {after:?}")]
    Timeout {
        /// The DHT key.
        key: DhtKey,
        /// The bound.
        after: Duration,
    },
    /// The DHT asked too few of the closest peers to prove the name absent,
    /// and found no valid bundle: unreachable, not absent.
    #[error("DHT lookup of {key} reached {reached} of the {required} closest peers needed")]
    Unreached {
        /// The DHT key.
        key: DhtKey,
        /// Peers that answered.
        reached: usize,
        /// Peers needed to prove absence.
        required: usize,
    },
    /// The DHT found only invalid bundles (forged, expired, misplaced …).
    #[error("only invalid bundles found under {key}: {}", reason_counts(reasons))]
    OnlyInvalid {
        /// The DHT key.
        key: DhtKey,
        /// How many answers were refused, by reason.
        reasons: BTreeMap<String, usize>,
    },
    /// The query's deadline passed before it was answered.
    #[error("no answer within the query deadline of {after:?}")]
    Deadline {
        /// The deadline.
        after: Duration,
    },
    /// The bundle found is not valid (forged, misplaced, expired, malformed).
    #[error("bundle under {key} refused: {source}")]
    Invalid {
        /// The DHT key.
        key: DhtKey,
        /// Why `kadns_record::validate` refused it.
        #[source]
        source: ValidateError,
    },
    /// The bundle found is older than one already seen: a rollback.
    #[error("bundle under {key} refused: sequence {sequence} is below {highest}, seen before")]
    Rollback {
        /// The DHT key.
        key: DhtKey,
        /// The sequence found.
        sequence: u64,
        /// The highest sequence seen before.
        highest: u64,
    },
    /// The sequence store failed, so the bundle cannot be checked for rollback.
    #[error("rollback check failed: {source}")]
    Store {
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A verified record could not be written under the query's apex.
    #[error("record at {name} cannot be rebased: {source}")]
    Rebase {
        /// The owner name.
        name: Box<Name>,
        /// Why.
        #[source]
        source: NameError,
    },
    /// A verified record's data could not be decoded.
    #[error("record at {name} is unreadable: {source}")]
    Rdata {
        /// The owner name.
        name: Box<Name>,
        /// Why.
        #[source]
        source: ContentError,
    },
    /// A CNAME chain leads back to a name already in it.
    #[error("CNAME loop at {name}")]
    CnameLoop {
        /// The name seen twice.
        name: Name,
    },
    /// A CNAME chain is longer than the configured bound.
    #[error("CNAME chain longer than {limit}")]
    CnameChainTooLong {
        /// The bound.
        limit: usize,
    },
    /// Forwarding upstream failed.
    #[error(transparent)]
    Forward {
        /// Why.
        #[from]
        source: ForwardError,
    },
}

impl LookupError {
    /// True when the DHT could not be reached or did not answer in time
    /// (as opposed to answering with something refused).
    pub fn is_dht_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Source { .. }
                | Self::Timeout { .. }
                | Self::Unreached { .. }
                | Self::Deadline { .. }
        )
    }
}

/// `bad_signature ×2, wrong_key ×1`.
pub(crate) fn reason_counts(reasons: &BTreeMap<String, usize>) -> String {
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
    parts.join(", ")
}
