//! The node's configuration.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

/// Where the node keeps its records, identity key and saved peers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DataDir {
    /// A directory: `identity.key` (mode 0600) and the sled database `db/`.
    /// A restarted node keeps its peer id, records and saved peers.
    Path(PathBuf),
    /// A temporary sled database, deleted when the node stops, and a fresh
    /// identity on every start. For tests and short-lived embedders.
    #[default]
    Temporary,
}

/// The Kademlia mode the node runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// Serves records and routing to others (a full node). Set explicitly:
    /// libp2p would otherwise wait for a confirmed external address, which
    /// never comes on loopback or a LAN.
    #[default]
    Server,
    /// Only asks: stores nothing for others and is not in anyone's routing
    /// table. For embedders behind NAT or on battery.
    Client,
}

/// How a newly met peer enters its k-bucket when that bucket is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BucketInserts {
    /// libp2p's: every connected Kademlia peer is offered to its bucket; a
    /// full bucket dials its oldest disconnected entry to see whether it is
    /// alive (the newcomer replaces it if not). Each such dial makes a new
    /// connection, which the peer dialled treats the same way: with most
    /// entries disconnected, one new connection leads to the next
    /// (docs/dht.md, "Routing table").
    #[default]
    Probe,
    /// A peer enters only while its bucket has room (the classic Kademlia
    /// preference for old peers); no dial is made to check a full bucket.
    /// Dead entries still leave, after `MAX_PEER_FAILURES` failures.
    IfRoom,
}

/// Configuration of one DHT node. `Default` is a safe local setup: a
/// temporary store, listening on `127.0.0.1` with an ephemeral TCP port,
/// server mode, replication factor 20.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Where records, identity and saved peers live.
    pub data_dir: DataDir,
    /// Addresses to listen on. `/ip4`, `/ip6` only, with `/tcp` (or
    /// `/udp/…/quic-v1` with the `quic` feature).
    pub listen: Vec<Multiaddr>,
    /// Peers to join through, as `/ip4|ip6/…/tcp/…/p2p/<peer id>`. DNS names are
    /// refused on purpose: see `docs/dht.md`.
    pub bootstrap: Vec<Multiaddr>,
    /// Kademlia server or client mode.
    pub mode: Mode,
    /// How many of the closest nodes a record is stored on (Kademlia's k).
    pub replication_factor: NonZeroUsize,
    /// A `get` finishes early once this many remote peers have returned a
    /// valid record; otherwise it runs until the lookup converges. Higher is
    /// safer against stale replicas, lower is faster.
    pub get_quorum: NonZeroUsize,
    /// Once a `get` holds a valid remote answer but not yet `get_quorum`
    /// of them, it waits at most this long for more, then returns the
    /// highest sequence among the answers in. Bounds a lookup whose other
    /// holders are dead or slow (docs/dht.md, "GET").
    #[serde(with = "secs")]
    pub get_grace: Duration,
    /// Limit on one Kademlia query (lookup, get, bootstrap).
    #[serde(with = "secs")]
    pub query_timeout: Duration,
    /// Limit on one Kademlia request to one peer (the answer included): a
    /// peer that does not answer in time counts as failed and the lookup
    /// moves on to the next one. Well below `query_timeout`.
    #[serde(with = "secs")]
    pub request_timeout: Duration,
    /// Limit on opening a connection (TCP connect, Noise, Yamux): a dial
    /// into a host that drops packets fails after this long.
    #[serde(with = "secs")]
    pub dial_timeout: Duration,
    /// Kademlia's α: requests a lookup keeps in flight.
    pub lookup_parallelism: NonZeroUsize,
    /// Run every lookup over α disjoint paths (S/Kademlia; libp2p's
    /// `disjoint_query_paths`): no peer is asked on two paths, so one
    /// path's false closer peers cannot steer the others. Costs more
    /// requests per lookup (docs/dht.md, "GET").
    pub disjoint_query_paths: bool,
    /// How newly met peers enter a full k-bucket ([`BucketInserts`]).
    pub bucket_inserts: BucketInserts,
    /// Limit on one store request to one peer, answer included.
    #[serde(with = "secs")]
    pub store_timeout: Duration,
    /// How often every stored record is pushed again to the closest peers
    /// the node knows. `None` turns re-replication off.
    #[serde(with = "opt_secs")]
    pub replication_interval: Option<Duration>,
    /// How often a node walks its routing table again (libp2p's periodic
    /// bootstrap: a lookup of its own id, then one per farther bucket).
    /// Each node stretches or shrinks it by up to a quarter, by its peer
    /// id, so that nodes started together do not all walk at once
    /// (docs/dht.md, "Bootstrap"). `None` turns it off.
    #[serde(with = "opt_secs")]
    pub bootstrap_interval: Option<Duration>,
    /// How often expired records are purged from disk.
    #[serde(with = "secs")]
    pub purge_interval: Duration,
    /// A connection with no open stream is closed after this long.
    #[serde(with = "secs")]
    pub idle_connection_timeout: Duration,
    /// Most peers kept on disk for rejoining after a restart.
    pub max_saved_peers: usize,
    /// The storage budget: bytes, records, records per zone, and the disk
    /// reserve (docs/dht.md, "Storage budget").
    pub storage: StorageLimits,
}

/// The default [`Config::bootstrap_interval`]: 15 minutes (libp2p's
/// default is 5).
pub const DEFAULT_BOOTSTRAP_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Bytes a stored record is charged for beyond its bundle: its key, its
/// expiry-index entry and sled's per-entry bookkeeping.
pub const RECORD_OVERHEAD: u64 = 128;

/// The default byte budget: 1 GiB.
pub const DEFAULT_MAX_STORAGE: u64 = 1 << 30;

/// The default per-zone cap, in records.
pub const DEFAULT_MAX_ZONE_RECORDS: usize = 10_000;

/// The smallest disk reserve (ballast) a node keeps.
pub const MIN_DISK_RESERVE: u64 = 2 << 20;

/// The largest disk reserve (ballast) a node keeps.
pub const MAX_DISK_RESERVE: u64 = 64 << 20;

/// What the store may hold (docs/dht.md, "Storage budget"). A new key is
/// refused once any limit would be passed; records already held are never
/// dropped to make room.
///
/// ```
/// use kadns_dht::StorageLimits;
///
/// let limits = StorageLimits::for_bytes(8_000_000);
/// assert_eq!(limits.max_bytes, 8_000_000);
/// assert_eq!(limits.max_records, 8_000_000 / 256);
/// assert_eq!(limits.disk_reserve, 2 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StorageLimits {
    /// Most bytes of records held: each record's bundle plus
    /// [`RECORD_OVERHEAD`]. sled's files on disk are larger (docs/dht.md).
    pub max_bytes: u64,
    /// Most records held.
    pub max_records: usize,
    /// Most records held for one zone (one signing key).
    pub max_zone_records: usize,
    /// Free space kept on the data directory's file system: puts are
    /// refused (`disk_full`) when less is free, and a ballast file this
    /// large is kept so that a full disk can be opened again.
    pub disk_reserve: u64,
}

impl StorageLimits {
    /// Limits derived from a byte budget: one record per 256 bytes of
    /// budget, [`DEFAULT_MAX_ZONE_RECORDS`] per zone (at most the record
    /// cap), and a disk reserve of 1/16 of the budget between
    /// [`MIN_DISK_RESERVE`] and [`MAX_DISK_RESERVE`].
    pub fn for_bytes(max_bytes: u64) -> Self {
        let max_records = usize::try_from(max_bytes / 256)
            .unwrap_or(usize::MAX)
            .max(1);
        Self {
            max_bytes,
            max_records,
            max_zone_records: DEFAULT_MAX_ZONE_RECORDS.min(max_records),
            disk_reserve: (max_bytes / 16).clamp(MIN_DISK_RESERVE, MAX_DISK_RESERVE),
        }
    }
}

impl Default for StorageLimits {
    fn default() -> Self {
        Self::for_bytes(DEFAULT_MAX_STORAGE)
    }
}

/// Why a size could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad size {text:?}: expected a number of bytes with an optional unit (8MB, 512KiB, 1G)")]
pub struct SizeError {
    /// The text given.
    pub text: String,
}

/// Reads a size in bytes: a number with an optional unit. `kB`, `MB`, `GB`,
/// `TB` are powers of 1000; `KiB`, `MiB`, `GiB`, `TiB` and the bare `K`,
/// `M`, `G`, `T` are powers of 1024 (as `du` and `dd` read them). Case is
/// ignored except that `b` alone means bytes.
///
/// ```
/// use kadns_dht::parse_size;
///
/// assert_eq!(parse_size("8MB").unwrap(), 8_000_000);
/// assert_eq!(parse_size("8 MiB").unwrap(), 8 << 20);
/// assert_eq!(parse_size("1G").unwrap(), 1 << 30);
/// assert_eq!(parse_size("4096").unwrap(), 4096);
/// assert!(parse_size("lots").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError {
        text: text.to_owned(),
    };
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, unit) = trimmed.split_at(split);
    let number: u64 = digits.parse().map_err(|_| err())?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        _ => return Err(err()),
    };
    number.checked_mul(multiplier).ok_or_else(err)
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: DataDir::Temporary,
            listen: vec![
                "/ip4/127.0.0.1/tcp/0"
                    .parse()
                    .expect("a constant, valid multiaddr"),
            ],
            bootstrap: Vec::new(),
            mode: Mode::Server,
            replication_factor: NonZeroUsize::new(20).expect("20 is not zero"),
            get_quorum: NonZeroUsize::new(3).expect("3 is not zero"),
            get_grace: Duration::from_secs(1),
            query_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            dial_timeout: Duration::from_secs(5),
            lookup_parallelism: NonZeroUsize::new(5).expect("5 is not zero"),
            disjoint_query_paths: false,
            bucket_inserts: BucketInserts::Probe,
            store_timeout: Duration::from_secs(10),
            replication_interval: Some(Duration::from_secs(3600)),
            bootstrap_interval: Some(DEFAULT_BOOTSTRAP_INTERVAL),
            purge_interval: Duration::from_secs(60),
            idle_connection_timeout: Duration::from_secs(30),
            max_saved_peers: 200,
            storage: StorageLimits::default(),
        }
    }
}

impl Config {
    /// The default configuration with records kept in `path`.
    pub fn with_data_dir(path: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: DataDir::Path(path.into()),
            ..Self::default()
        }
    }
}

mod secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

mod opt_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<f64>::deserialize(d)?
            .map(|secs| Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_local_server_and_round_trips() {
        let c = Config::default();
        assert_eq!(c.mode, Mode::Server);
        assert_eq!(c.replication_factor.get(), 20);
        assert_eq!(c.data_dir, DataDir::Temporary);
        assert_eq!(c.listen[0].to_string(), "/ip4/127.0.0.1/tcp/0");
        let text = serde_json::to_string(&Config::with_data_dir("/tmp/x")).unwrap();
        let back: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(back, Config::with_data_dir("/tmp/x"));
        let partial: Config =
            serde_json::from_str(r#"{"mode":"client","replication_interval":null}"#).unwrap();
        assert_eq!(partial.mode, Mode::Client);
        assert_eq!(partial.replication_interval, None);
        assert!(serde_json::from_str::<Config>(r#"{"nope":1}"#).is_err());
        assert_eq!(c.storage.max_bytes, 1 << 30);
        assert_eq!(c.storage.disk_reserve, MAX_DISK_RESERVE);
    }

    #[test]
    fn sizes_parse_with_si_and_binary_units() {
        for (text, bytes) in [
            ("0", 0),
            ("8MB", 8_000_000),
            ("8mb", 8_000_000),
            ("8 MiB", 8 << 20),
            ("8M", 8 << 20),
            ("512KiB", 512 << 10),
            ("3kB", 3_000),
            ("1GiB", 1 << 30),
            ("2GB", 2_000_000_000),
            ("1T", 1 << 40),
            ("100b", 100),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        for bad in [
            "",
            "MB",
            "8XB",
            "-1",
            "1.5G",
            "99999999999999999999",
            "20000000T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_follow_the_byte_budget() {
        let small = StorageLimits::for_bytes(8_000_000);
        assert_eq!(small.max_records, 31_250);
        assert_eq!(small.max_zone_records, DEFAULT_MAX_ZONE_RECORDS);
        assert_eq!(small.disk_reserve, MIN_DISK_RESERVE);
        let tiny = StorageLimits::for_bytes(1000);
        assert_eq!(tiny.max_records, 3);
        assert_eq!(tiny.max_zone_records, 3);
        let big = StorageLimits::for_bytes(1 << 40);
        assert_eq!(big.disk_reserve, MAX_DISK_RESERVE);
    }
}
