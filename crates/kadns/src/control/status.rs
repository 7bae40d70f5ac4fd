//! What `kadns status` shows: the figures, and their text rendering.

use std::fmt::{self, Write as _};

use serde::{Deserialize, Serialize};

use crate::publish_task::ZoneStatus;
use crate::recent_errors::RecentError;

/// A running node's state, as the control socket reports it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Status {
    /// The kadns version.
    pub version: String,
    /// The process id.
    pub pid: u32,
    /// Seconds since the service started.
    pub uptime_secs: u64,
    /// The node's libp2p peer id.
    pub peer_id: String,
    /// The DNS addresses answered on.
    pub dns_listen: Vec<String>,
    /// The DHT node.
    pub dht: DhtStatus,
    /// The resolver's caches.
    pub cache: CacheStatus,
    /// The `[[publish]]` zones this node keeps alive.
    pub zones: Vec<ZoneStatus>,
    /// The upstream DNS servers, probed now.
    pub upstreams: Vec<UpstreamStatus>,
    /// The last warnings and errors logged, oldest first.
    pub recent_errors: Vec<RecentError>,
}

/// The DHT node's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DhtStatus {
    /// `server` or `client`.
    pub mode: String,
    /// Peers with an open connection now.
    pub connected_peers: usize,
    /// Peers in the routing table.
    pub routing_table: usize,
    /// Records this node stores for the network.
    pub records_stored: i64,
    /// Bytes of the node's data directory on disk (records, peers, seen
    /// sequences, persisted cache, the storage reserve file).
    pub bytes_on_disk: u64,
}

/// The resolver's cache figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheStatus {
    /// Verified bundles (and negative entries) held.
    pub entries: usize,
    /// Bundle lookups answered from the cache since the start.
    pub hits: u64,
    /// Bundle lookups that needed the DHT since the start.
    pub misses: u64,
    /// `hits / (hits + misses)`, if there was any lookup.
    pub hit_rate: Option<f64>,
    /// Forwarded answers held.
    pub forwarded_entries: usize,
    /// Bytes the forwarded answers take.
    pub forwarded_bytes: usize,
    /// Forwarded queries answered from the forward cache.
    pub forwarded_hits: u64,
    /// Forwarded queries that needed an upstream.
    pub forwarded_misses: u64,
    /// The stub's cache of rendered answers: entries held.
    pub answer_entries: u64,
    /// Bytes it holds.
    pub answer_bytes: u64,
    /// Queries it answered.
    pub answer_hits: u64,
    /// Cacheable queries it did not hold.
    pub answer_misses: u64,
    /// `answer_hits / (answer_hits + answer_misses)`, if any.
    pub answer_hit_rate: Option<f64>,
}

/// One upstream server's health.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UpstreamStatus {
    /// The server.
    pub server: String,
    /// Whether it answered a probe (`. NS` over UDP) just now.
    pub healthy: bool,
    /// The probe's round trip, in milliseconds, if it answered.
    pub rtt_ms: Option<u64>,
    /// Why the probe failed, if it did.
    pub error: Option<String>,
}

/// `hits / (hits + misses)`, `None` before the first lookup.
pub(crate) fn hit_rate(hits: u64, misses: u64) -> Option<f64> {
    let total = hits + misses;
    (total > 0).then(|| hits as f64 / total as f64)
}

fn unix_time(secs: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "kadns {} (pid {}), up {}",
            self.version,
            self.pid,
            humantime::format_duration(std::time::Duration::from_secs(self.uptime_secs))
        );
        let _ = writeln!(out, "peer id         {}", self.peer_id);
        let _ = writeln!(out, "dns             {}", self.dns_listen.join(" "));
        let d = &self.dht;
        let _ = writeln!(
            out,
            "dht             {} mode, {} connected peers, {} in the routing table",
            d.mode, d.connected_peers, d.routing_table
        );
        let _ = writeln!(
            out,
            "records stored  {} ({} bytes on disk)",
            d.records_stored, d.bytes_on_disk
        );
        let c = &self.cache;
        let percent = |rate: Option<f64>| {
            rate.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
        };
        let _ = writeln!(
            out,
            "answer cache    {} entries ({} bytes), {} hits, {} misses, hit rate {}",
            c.answer_entries,
            c.answer_bytes,
            c.answer_hits,
            c.answer_misses,
            percent(c.answer_hit_rate)
        );
        let _ = writeln!(
            out,
            "bundle cache    {} entries, {} hits, {} misses, hit rate {}",
            c.entries,
            c.hits,
            c.misses,
            percent(c.hit_rate)
        );
        let _ = writeln!(
            out,
            "forward cache   {} entries ({} bytes), {} hits, {} misses",
            c.forwarded_entries, c.forwarded_bytes, c.forwarded_hits, c.forwarded_misses
        );
        if self.zones.is_empty() {
            let _ = writeln!(out, "zones kept      none");
        }
        for z in &self.zones {
            let next = z.next_refresh.map_or_else(|| "-".into(), unix_time);
            let fewest = z
                .fewest_replicas
                .map_or_else(|| "-".into(), |n| n.to_string());
            let _ = writeln!(
                out,
                "zone            {} ({}): {} rounds, next refresh {next}, fewest replicas {fewest}",
                z.zone, z.zone_file, z.rounds
            );
            if let Some(error) = &z.last_error {
                let _ = writeln!(out, "                last problem: {error}");
            }
        }
        if self.upstreams.is_empty() {
            let _ = writeln!(out, "upstreams       none");
        }
        for u in &self.upstreams {
            let health = match (u.healthy, u.rtt_ms, &u.error) {
                (true, Some(ms), _) => format!("ok, {ms} ms"),
                (_, _, Some(error)) => format!("FAILING: {error}"),
                _ => "unknown".into(),
            };
            let _ = writeln!(out, "upstream        {} {health}", u.server);
        }
        if self.recent_errors.is_empty() {
            let _ = writeln!(out, "recent errors   none");
        } else {
            let _ = writeln!(out, "recent errors   {}", self.recent_errors.len());
            for e in &self.recent_errors {
                let _ = writeln!(
                    out,
                    "  {} {:5} {}: {}",
                    unix_time(e.unix_time),
                    e.level,
                    e.target,
                    e.message
                );
            }
        }
        f.write_str(&out)
    }
}
