//! The resolver's configuration.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::upstream::Upstream;

/// Everything a [`Resolver`](crate::Resolver) is built from, apart from its
/// bundle source, sequence store and metrics. `Default` is a safe local setup:
/// no trust anchors, the system's upstreams, the bounds below.
///
/// ```
/// let config: kadns_resolver::Config = toml::from_str(r#"
///     [trust_anchors]
///     "example.kad" = "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"
///     [upstream]
///     servers = ["192.0.2.53:53"]
///     [cache]
///     max_entries = 1000
/// "#).unwrap();
/// assert_eq!(config.cache.max_entries, 1000);
/// assert_eq!(config.cache.negative_ttl_secs, 60);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// Human-readable names and the zone key that answers for each:
    /// `"example.kad" = "<zone-id>"` makes that zone answer for `example.kad`
    /// and every name below it. Names compare case-insensitively; the zone id
    /// is checked when the resolver is built.
    pub trust_anchors: BTreeMap<String, String>,
    /// Whole queries.
    pub query: QueryConfig,
    /// DHT lookups.
    pub dht: DhtConfig,
    /// The cache.
    pub cache: CacheConfig,
    /// Upstream servers for every name outside kadns zones.
    pub upstream: UpstreamConfig,
    /// Per-domain forwarding: `"corp.example" = ["192.0.2.53:53"]` sends
    /// `corp.example` and every name below it to those servers instead of
    /// the default upstreams. The longest matching domain wins. Names in
    /// kadns zones are never forwarded, whatever this says.
    pub forward: ForwardZones,
    /// The cache of forwarded answers.
    pub forward_cache: ForwardCacheConfig,
}

/// Per-domain upstreams: domain → servers, tried in order.
pub type ForwardZones = BTreeMap<String, Vec<SocketAddr>>;

/// The cache of answers from upstream servers (see `docs/resolver.md`,
/// "Forwarding").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ForwardCacheConfig {
    /// Most bytes of forwarded answers held (default 16 MiB), counted as
    /// each answer's wire size plus a per-entry overhead. When full, the
    /// answers whose stale window ends soonest are evicted.
    pub max_bytes: usize,
    /// Longest a negative forwarded answer is cached, in seconds (default
    /// 3600, unbound's `cache-max-negative-ttl`). Its TTL is otherwise the
    /// RFC 2308 one: min(SOA TTL, SOA MINIMUM). Positive answers are capped
    /// by `cache.max_ttl_secs`, as kadns answers are.
    pub max_negative_ttl_secs: u32,
    /// How long past its TTL a forwarded answer is still served, with TTL
    /// 30, when every upstream fails (RFC 8767), in seconds (default 86 400).
    /// 0 turns serve-stale off for forwarded names.
    pub stale_window_secs: u64,
    /// Refresh a cached answer in the background when a hit falls in the
    /// last tenth of its TTL (default true; unbound's `prefetch`).
    pub prefetch: bool,
    /// Most prefetches under way at once (default 16).
    pub max_prefetches: usize,
}

impl Default for ForwardCacheConfig {
    fn default() -> Self {
        Self {
            max_bytes: 16 << 20,
            max_negative_ttl_secs: 3_600,
            stale_window_secs: 86_400,
            prefetch: true,
            max_prefetches: 16,
        }
    }
}

/// Whole queries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct QueryConfig {
    /// One deadline per query, in milliseconds (default 4000): CNAME
    /// chasing, the negative answer's SOA and forwarding all fit in it, so
    /// a client (glibc waits 5 s) always hears an answer, SERVFAIL at worst.
    pub deadline_ms: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self { deadline_ms: 4_000 }
    }
}

impl QueryConfig {
    pub(crate) fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// DHT lookups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DhtConfig {
    /// Bound on one DHT lookup, in milliseconds (default 3000). Past it the
    /// answer is a DHT timeout (SERVFAIL): a client's own timeout is about 5 s
    /// (glibc), and it should hear SERVFAIL before it gives up.
    pub timeout_ms: u64,
    /// Longest CNAME chain followed, links counted (default 8). Longer chains,
    /// and chains that loop, are answered with SERVFAIL.
    pub max_cname_chain: usize,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 3_000,
            max_cname_chain: 8,
        }
    }
}

impl DhtConfig {
    pub(crate) fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

/// The cache of verified bundles and negative answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Most entries held (default 10 000). One entry per DHT key (owner
    /// name); a bundle is at most 4 KiB, so this also bounds memory (about
    /// 40 MiB at worst). When full, the entry closest to expiry is evicted.
    pub max_entries: usize,
    /// Longest time a verified bundle is kept, in seconds (default 86 400,
    /// the record format's own TTL bound). Bundles are kept until the
    /// smallest TTL among their records or their signed expiry, whichever
    /// is earlier, and never longer than this.
    pub max_ttl_secs: u32,
    /// How long a negative answer (NXDOMAIN, NODATA) is cached, in seconds
    /// (default 60). Short, because a name may be published at any moment and
    /// no registry announces it; clamped to `max_ttl_secs`.
    pub negative_ttl_secs: u32,
    /// Refresh an entry in the background when it is used in the last tenth
    /// of its life (default true), as unbound's `prefetch` does: popular
    /// names never expire from the cache while the DHT answers.
    pub prefetch: bool,
    /// Most bytes of verified bundles kept on disk for serving stale answers
    /// after a restart (default 16 MiB), where a persisted cache is used
    /// (the stub's data directory).
    pub persist_max_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_ttl_secs: kadns_record::MAX_TTL,
            negative_ttl_secs: 60,
            prefetch: true,
            persist_max_bytes: crate::persist::DEFAULT_PERSIST_MAX_BYTES,
        }
    }
}

/// Upstream DNS servers, for names outside kadns zones and CNAMEs that leave
/// kadns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct UpstreamConfig {
    /// Servers, tried in this order: `IP:PORT` (plain DNS),
    /// `tls://IP[:PORT][#NAME]` (DNS over TLS) or
    /// `https://IP[:PORT][/PATH][#NAME]` (DNS over HTTPS), see [`Upstream`].
    /// When empty, the `nameserver` lines of `resolv_conf` are used
    /// instead, minus the resolver's own addresses.
    pub servers: Vec<Upstream>,
    /// The resolv.conf read (once, when the resolver is built) when `servers`
    /// is empty; default `/etc/resolv.conf`. `None`, or no usable nameserver
    /// in it, means no upstream: names outside kadns get SERVFAIL.
    pub resolv_conf: Option<PathBuf>,
    /// A PEM file of CA certificates trusted for DoT and DoH upstreams, in
    /// addition to the system's trust store (default: none).
    pub ca: Option<PathBuf>,
    /// Bound on one exchange with one server, in milliseconds (default 1500).
    pub attempt_timeout_ms: u64,
    /// Bound on a whole forward, failover included, in milliseconds
    /// (default 4000): below a client's usual 5 s, so it hears SERVFAIL.
    pub total_timeout_ms: u64,
    /// Most upstream exchanges in flight at once (default 256): the
    /// forwarding slots. Bounds sockets and memory, and what a forwarding
    /// loop the resolver cannot see can cost. Shared fairly: a client
    /// network (/24, /56) may hold at most max(4, max_in_flight / (n + 1))
    /// of them while n networks hold some (half when it is alone); beyond,
    /// its query gets SERVFAIL at once (see `docs/resolver.md`).
    pub max_in_flight: usize,
    /// Most forwarded queries one client network (/24, /56) may have
    /// waiting for an upstream answer at once, the ones sharing another
    /// query's exchange included (default 512); beyond, SERVFAIL at once.
    /// Bounds the memory one client can park in the forwarder.
    pub max_waiters: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            resolv_conf: Some(PathBuf::from("/etc/resolv.conf")),
            ca: None,
            attempt_timeout_ms: 1_500,
            total_timeout_ms: 4_000,
            max_in_flight: 256,
            max_waiters: 512,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_toml_is_the_default() {
        let config: Config = toml::from_str("").unwrap();
        assert_eq!(config, Config::default());
        let text = toml::to_string(&config).unwrap();
        assert_eq!(toml::from_str::<Config>(&text).unwrap(), config);
        assert!(
            toml::from_str::<Config>("[cache]\nmax_entrys = 3").is_err(),
            "typos are refused"
        );
        let forward: Config = toml::from_str(
            "[forward]\n\"corp.example\" = [\"192.0.2.53:53\", \"192.0.2.54:53\"]\n\
             [forward_cache]\nstale_window_secs = 60\n",
        )
        .unwrap();
        assert_eq!(forward.forward["corp.example"].len(), 2);
        assert_eq!(forward.forward_cache.stale_window_secs, 60);
        assert_eq!(forward.forward_cache.max_bytes, 16 << 20);
        let limits: Config =
            toml::from_str("[upstream]\nmax_in_flight = 64\nmax_waiters = 8\n").unwrap();
        assert_eq!(
            (limits.upstream.max_in_flight, limits.upstream.max_waiters),
            (64, 8)
        );
        assert_eq!(Config::default().upstream.max_waiters, 512);
    }
}
