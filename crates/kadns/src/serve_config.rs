//! The configuration of `kadns serve`: one TOML file, every section optional.

use std::path::{Path, PathBuf};

use kadns_dht::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::stub_config::StubConfig;

/// Everything `kadns serve` runs: where it keeps its data, the DNS stub, the
/// DHT node, and the resolver between them.
///
/// ```toml
/// data_dir = "/var/lib/kadns"
///
/// [dns]
/// listen = ["127.0.0.1:53"]
///
/// [p2p]
/// listen = ["/ip4/0.0.0.0/tcp/4001"]
/// bootstrap = ["/ip4/192.0.2.7/tcp/4001/p2p/12D3KooW…"]
///
/// [dht]
/// replication_interval = "1h"
/// max_storage = "1GiB"
///
/// [resolver.trust_anchors]
/// "example.kad" = "<52-character zone id>"
///
/// [resolver.upstream]
/// servers = ["192.0.2.53:53"]
///
/// [metrics]
/// listen = "127.0.0.1:9153"
///
/// [forward]
/// "corp.example" = ["192.0.2.53:53"]
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServeConfig {
    /// Where the node keeps its identity, stored records, saved peers and the
    /// resolver's highest-seen sequences. Default: [`default_data_dir`].
    pub data_dir: Option<PathBuf>,
    /// The DNS stub.
    pub dns: StubConfig,
    /// The DHT node.
    pub p2p: P2pConfig,
    /// What the DHT node does for the records it stores.
    pub dht: DhtConfig,
    /// The resolver: trust anchors, upstreams, cache and lookup bounds.
    pub resolver: kadns_resolver::Config,
    /// The Prometheus endpoint. Absent: no metrics are served.
    pub metrics: Option<MetricsConfig>,
    /// Per-domain forwarding: `"corp.example" = ["192.0.2.53:53"]` sends
    /// that domain and every name below it to its own servers (longest
    /// domain wins). Merged into `resolver.forward`.
    pub forward: kadns_resolver::ForwardZones,
    /// Zones this node keeps alive in the DHT for their owner (`[[publish]]`
    /// entries). None by default.
    pub publish: Vec<PublishConfig>,
}

/// One `[[publish]]` entry: a zone the node keeps alive for its owner, as
/// `kadns zone publish --keep` does: every name re-signed before it expires,
/// edits of the zone file published within seconds, removed names replaced
/// by tombstones. The key stays in its file (mode 0600); the node's
/// incremental state lives beside it (see docs/publishing.md).
///
/// ```toml
/// [[publish]]
/// key = "/etc/kadns/example.key"
/// zone = "/etc/kadns/example.zone"
/// validity = "7d"
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PublishConfig {
    /// The zone key file (`kadns key generate`).
    pub key: PathBuf,
    /// The RFC 1035 zone file.
    pub zone: PathBuf,
    /// The zone's origin, if the file has no `$ORIGIN` line.
    #[serde(default)]
    pub origin: Option<String>,
    /// How long each signature stays valid (humantime: `15s`, `7d`): 10
    /// seconds to 31 days. Default 7 days.
    #[serde(default = "default_validity", with = "humantime_secs")]
    pub validity: std::time::Duration,
}

impl PublishConfig {
    /// Keep the zone in `zone`, signed with `key`, alive with the default validity.
    pub fn new(key: impl Into<PathBuf>, zone: impl Into<PathBuf>) -> Self {
        Self {
            key: key.into(),
            zone: zone.into(),
            origin: None,
            validity: default_validity(),
        }
    }
}

fn default_validity() -> std::time::Duration {
    std::time::Duration::from_secs(kadns_publisher::DEFAULT_VALIDITY_SECS)
}

/// A duration written the humantime way (`15s`, `7d`) in TOML.
mod humantime_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

/// Where to serve `GET /metrics` (Prometheus text format, every series
/// prefixed `kadns_`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// The HTTP address, e.g. `127.0.0.1:9153`.
    pub listen: std::net::SocketAddr,
}

impl MetricsConfig {
    /// Metrics served on `listen`.
    pub fn new(listen: std::net::SocketAddr) -> Self {
        Self { listen }
    }
}

/// The DHT node's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct P2pConfig {
    /// Addresses to listen on for other nodes (`/ip4|ip6/…/tcp/PORT`).
    /// Default: every IPv4 interface, TCP port 4001.
    pub listen: Vec<Multiaddr>,
    /// Nodes to join through (`/ip4|ip6/…/tcp/PORT/p2p/PEERID`). After the
    /// first start, peers seen before are enough: no node is special.
    pub bootstrap: Vec<Multiaddr>,
    /// Run the DHT node as a Kademlia client (default false): it looks
    /// records up but stores none for the network and is in no other node's
    /// routing table (behind NAT, on battery). The stub then answers only
    /// from what it fetched and verified, its cache and persisted cache.
    pub client: bool,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001"
                    .parse()
                    .expect("a valid multiaddr literal"),
            ],
            bootstrap: Vec::new(),
            client: false,
        }
    }
}

/// The DHT node's storage duties (`[dht]`). Addresses live in `[p2p]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DhtConfig {
    /// How often every stored record is handed again to the k closest nodes
    /// the node knows (re-replication; docs/dht.md). A duration as
    /// humantime writes it (`"1h"`, `"90s"`, `"1h 30m"`) or a number of
    /// seconds. Default 1 h; at least [`MIN_REPLICATION_INTERVAL`] (1 s).
    /// Newly joined peers get their records at once, whatever this is.
    #[serde(with = "duration")]
    pub replication_interval: std::time::Duration,
    /// The storage budget: most bytes of records the node holds for the
    /// network (docs/dht.md, "Storage budget"). A number of bytes or a size
    /// with a unit (`"8MB"`, `"512MiB"`, `"1G"`). Default 1 GiB. Once full,
    /// new keys are refused and what is held is kept.
    #[serde(with = "size")]
    pub max_storage: u64,
    /// Most records held. Default: one per 256 bytes of `max_storage`.
    pub max_records: Option<usize>,
    /// Most records held for one zone (one signing key). Default 10,000
    /// (at most `max_records`).
    pub max_zone_records: Option<usize>,
}

/// The shortest `replication_interval` accepted.
pub const MIN_REPLICATION_INTERVAL: std::time::Duration = kadns_dht::MIN_REPLICATION_INTERVAL;

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            replication_interval: std::time::Duration::from_secs(3600),
            max_storage: kadns_dht::DEFAULT_MAX_STORAGE,
            max_records: None,
            max_zone_records: None,
        }
    }
}

impl DhtConfig {
    /// The node's storage limits: derived from `max_storage`
    /// ([`kadns_dht::StorageLimits::for_bytes`]), with `max_records` and
    /// `max_zone_records` applied when set.
    pub fn storage_limits(&self) -> kadns_dht::StorageLimits {
        let mut limits = kadns_dht::StorageLimits::for_bytes(self.max_storage);
        if let Some(n) = self.max_records {
            limits.max_records = n;
        }
        limits.max_zone_records = self
            .max_zone_records
            .unwrap_or(limits.max_zone_records)
            .min(limits.max_records);
        limits
    }

    /// Checks a replication interval: at least [`MIN_REPLICATION_INTERVAL`].
    pub fn check_replication_interval(
        interval: std::time::Duration,
    ) -> Result<std::time::Duration, String> {
        if interval < MIN_REPLICATION_INTERVAL {
            return Err(format!(
                "replication_interval {} is below the minimum {}",
                humantime::format_duration(interval),
                humantime::format_duration(MIN_REPLICATION_INTERVAL)
            ));
        }
        Ok(interval)
    }
}

/// `"1h"` (humantime) or `3600` (seconds), at least the minimum interval.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(u64),
        Human(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let duration = match Text::deserialize(d)? {
            Text::Seconds(secs) => Duration::from_secs(secs),
            Text::Human(text) => humantime::parse_duration(&text).map_err(|e| {
                serde::de::Error::custom(format!(
                    "bad duration {text:?}: {e} (e.g. \"1h\", \"90s\")"
                ))
            })?,
        };
        super::DhtConfig::check_replication_interval(duration).map_err(serde::de::Error::custom)
    }
}

/// `"8MB"` (a size with a unit, see [`kadns_dht::parse_size`]) or `8000000`.
mod size {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*bytes)
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Bytes(u64),
        Human(String),
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match Text::deserialize(d)? {
            Text::Bytes(n) => Ok(n),
            Text::Human(text) => kadns_dht::parse_size(&text).map_err(serde::de::Error::custom),
        }
    }
}

impl ServeConfig {
    /// Reads a TOML configuration file; unknown keys are errors.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// The resolver configuration in effect: `resolver`, with the
    /// top-level `[forward]` entries added (they win over `resolver.forward`).
    pub fn resolver_config(&self) -> kadns_resolver::Config {
        let mut resolver = self.resolver.clone();
        resolver.forward.extend(self.forward.clone());
        resolver
    }

    /// The data directory in effect.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(default_data_dir)
    }
}

/// `$XDG_DATA_HOME/kadns`, else `$HOME/.local/share/kadns`, else
/// `/var/lib/kadns` (a service account with no home).
pub fn default_data_dir() -> PathBuf {
    let non_empty = |var: &str| {
        std::env::var_os(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return xdg.join("kadns");
    }
    if let Some(home) = non_empty("HOME") {
        return home.join(".local/share/kadns");
    }
    PathBuf::from("/var/lib/kadns")
}

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        #[source]
        source: Box<toml::de::Error>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses_and_typos_are_refused() {
        let text = r#"
data_dir = "/tmp/kadns"
[dns]
listen = ["127.0.0.1:5353"]
[p2p]
listen = ["/ip4/127.0.0.1/tcp/4001"]
bootstrap = ["/ip4/127.0.0.1/tcp/4002/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"]
[resolver.trust_anchors]
"example.kad" = "yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy"
[resolver.upstream]
servers = ["127.0.0.1:5300"]
[dht]
replication_interval = "90s"
[metrics]
listen = "127.0.0.1:9153"
[forward]
"corp.example" = ["192.0.2.53:53"]
"#;
        let config: ServeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.dns.listen, vec!["127.0.0.1:5353".parse().unwrap()]);
        assert_eq!(config.p2p.bootstrap.len(), 1);
        assert_eq!(config.resolver.trust_anchors.len(), 1);
        assert_eq!(
            config.resolver_config().forward["corp.example"],
            vec!["192.0.2.53:53".parse::<std::net::SocketAddr>().unwrap()]
        );
        assert_eq!(
            config.metrics,
            Some(MetricsConfig::new("127.0.0.1:9153".parse().unwrap()))
        );
        assert!(toml::from_str::<ServeConfig>("[dns]\nlisten_on = []\n").is_err());
        // Absent sections take the defaults: loopback DNS on port 53.
        let empty: ServeConfig = toml::from_str("").unwrap();
        assert_eq!(empty.dns, StubConfig::default());
        assert_eq!(empty.metrics, None, "metrics are off unless configured");
        assert!(
            empty.publish.is_empty(),
            "nothing is published unless configured"
        );
    }

    #[test]
    fn encrypted_dns_keys_parse_and_round_trip() {
        let text = r#"
[dns]
dot_listen = ["127.0.0.1:853"]
doh_listen = ["127.0.0.1:443", "[::1]:443"]
tls_cert = "/etc/kadns/cert.pem"
tls_key = "/etc/kadns/key.pem"
[resolver.upstream]
servers = ["192.0.2.53:53", "tls://192.0.2.1#dns.example", "https://192.0.2.2:8443/q#doh.example"]
ca = "/etc/kadns/ca.pem"
"#;
        let config: ServeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.dns.dot_listen, ["127.0.0.1:853".parse().unwrap()]);
        assert_eq!(config.dns.doh_listen.len(), 2);
        assert_eq!(
            config.dns.tls_key.as_deref(),
            Some(Path::new("/etc/kadns/key.pem"))
        );
        let servers: Vec<String> = config
            .resolver
            .upstream
            .servers
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            servers,
            [
                "192.0.2.53:53",
                "tls://192.0.2.1:853#dns.example",
                "https://192.0.2.2:8443/q#doh.example"
            ]
        );
        assert_eq!(
            config.resolver.upstream.ca.as_deref(),
            Some(Path::new("/etc/kadns/ca.pem"))
        );
        let back: ServeConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(back, config);
        // Off by default; a bad upstream is an error naming it.
        let empty: ServeConfig = toml::from_str("").unwrap();
        assert!(empty.dns.dot_listen.is_empty() && empty.dns.doh_listen.is_empty());
        let err = toml::from_str::<ServeConfig>(
            "[resolver.upstream]\nservers = [\"tls://dns.example\"]\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("tls://dns.example"), "{err}");
    }

    #[test]
    fn publish_entries_parse_with_humantime_validities() {
        let text = r#"
[[publish]]
key = "/k/a.key"
zone = "/z/a.zone"
validity = "15s"
[[publish]]
key = "/k/b.key"
zone = "/z/b.zone"
origin = "example.org."
"#;
        let config: ServeConfig = toml::from_str(text).unwrap();
        assert_eq!(config.publish.len(), 2);
        assert_eq!(
            config.publish[0].validity,
            std::time::Duration::from_secs(15)
        );
        assert_eq!(config.publish[0].key, PathBuf::from("/k/a.key"));
        assert_eq!(
            config.publish[1].validity,
            std::time::Duration::from_secs(7 * 86_400)
        );
        assert_eq!(config.publish[1].origin.as_deref(), Some("example.org."));
        let round: ServeConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(round, config);
        for bad in [
            "[[publish]]\nkey = \"k\"\n",
            "[[publish]]\nkey = \"k\"\nzone = \"z\"\nvalidity = \"soon\"\n",
            "[[publish]]\nkey = \"k\"\nzone = \"z\"\nsecret = \"x\"\n",
        ] {
            assert!(toml::from_str::<ServeConfig>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dht_section_takes_durations_or_seconds_with_a_floor() {
        let parse = |text: &str| toml::from_str::<ServeConfig>(text).map(|c| c.dht);
        let empty = parse("").unwrap();
        assert_eq!(
            empty.replication_interval,
            std::time::Duration::from_secs(3600),
            "re-replication is on by default"
        );
        let human = parse("[dht]\nreplication_interval = \"1h 30m\"\n").unwrap();
        assert_eq!(human.replication_interval.as_secs(), 5400);
        let secs = parse("[dht]\nreplication_interval = 5\n").unwrap();
        assert_eq!(secs.replication_interval.as_secs(), 5);
        for bad in ["\"0s\"", "0", "\"500ms\"", "\"soon\"", "-1"] {
            let err = parse(&format!("[dht]\nreplication_interval = {bad}\n"));
            assert!(err.is_err(), "{bad} accepted");
        }
        assert!(parse("[dht]\nreplication = \"1h\"\n").is_err());
        let config = ServeConfig {
            dht: human,
            ..ServeConfig::default()
        };
        let back: ServeConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(back.dht, config.dht);
    }

    #[test]
    fn max_storage_takes_sizes_and_derives_the_limits() {
        let parse = |text: &str| toml::from_str::<ServeConfig>(text).map(|c| c.dht);
        let empty = parse("").unwrap();
        assert_eq!(empty.max_storage, 1 << 30);
        assert_eq!(empty.storage_limits(), kadns_dht::StorageLimits::default());
        let small = parse("[dht]\nmax_storage = \"8MB\"\n").unwrap();
        assert_eq!(small.max_storage, 8_000_000);
        assert_eq!(small.storage_limits().max_records, 31_250);
        let bytes =
            parse("[dht]\nmax_storage = 4096\nmax_records = 7\nmax_zone_records = 9\n").unwrap();
        let limits = bytes.storage_limits();
        assert_eq!(limits.max_bytes, 4096);
        assert_eq!(limits.max_records, 7);
        assert_eq!(limits.max_zone_records, 7, "never above the record cap");
        assert!(parse("[dht]\nmax_storage = \"lots\"\n").is_err());
        let config = ServeConfig {
            dht: small,
            ..ServeConfig::default()
        };
        let back: ServeConfig = toml::from_str(&toml::to_string(&config).unwrap()).unwrap();
        assert_eq!(back.dht, config.dht);
    }
}
