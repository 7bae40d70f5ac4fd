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
    /// Limit on one store request to one peer, answer included.
    #[serde(with = "secs")]
    pub store_timeout: Duration,
    /// How often every stored record is pushed again to the closest peers
    /// the node knows. `None` turns re-replication off.
    #[serde(with = "opt_secs")]
    pub replication_interval: Option<Duration>,
    /// How often expired records are purged from disk.
    #[serde(with = "secs")]
    pub purge_interval: Duration,
    /// A connection with no open stream is closed after this long.
    #[serde(with = "secs")]
    pub idle_connection_timeout: Duration,
    /// Most peers kept on disk for rejoining after a restart.
    pub max_saved_peers: usize,
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
            lookup_parallelism: NonZeroUsize::new(3).expect("3 is not zero"),
            store_timeout: Duration::from_secs(10),
            replication_interval: Some(Duration::from_secs(3600)),
            purge_interval: Duration::from_secs(60),
            idle_connection_timeout: Duration::from_secs(30),
            max_saved_peers: 200,
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
    }
}
