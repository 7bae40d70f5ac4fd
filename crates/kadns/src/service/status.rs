//! Gathering what `kadns status` shows, from the handles and metrics the
//! service already has.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use kadns_record::hickory_proto::op::{Message, MessageType, OpCode, Query};
use kadns_record::hickory_proto::rr::{Name, RecordType};
use tokio::net::UdpSocket;

use super::Service;
use crate::control::{CacheStatus, DhtStatus, RecentError, Status, UpstreamStatus, hit_rate};
use crate::recent_errors::RecentErrors;

/// How long an upstream may take to answer the status probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long the DHT node may take to report its peers.
const DHT_TIMEOUT: Duration = Duration::from_secs(5);

impl Service {
    /// The node's figures now (the upstreams probed concurrently).
    pub(crate) async fn status(&self) -> Status {
        let dht = self.node.handle();
        let connected = tokio::time::timeout(DHT_TIMEOUT, dht.connected_peers()).await;
        let routing = tokio::time::timeout(DHT_TIMEOUT, dht.peers()).await;
        let count =
            |r: Result<Result<Vec<_>, _>, _>| r.ok().and_then(Result::ok).map_or(0, |p| p.len());
        let data_dir = self.config.data_dir();
        let bytes_on_disk = tokio::task::spawn_blocking(move || dir_size(&data_dir))
            .await
            .unwrap_or(0);
        let metrics = self.resolver.metrics();
        let sizes = self.resolver.cache_sizes();
        let (hits, misses) = (metrics.cache_hits.get(), metrics.cache_misses.get());
        let answers = &self.stub.metrics().answer_cache;
        let gauge =
            |g: &prometheus_client::metrics::gauge::Gauge| u64::try_from(g.get()).unwrap_or(0);
        let (answer_hits, answer_misses) = (answers.hits.get(), answers.misses.get());
        let probes = futures::future::join_all(self.resolver.upstreams().into_iter().map(probe));
        Status {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            pid: std::process::id(),
            uptime_secs: self.started.elapsed().as_secs(),
            peer_id: self.node.peer_id().to_string(),
            dns_listen: self
                .stub
                .udp_addrs()
                .iter()
                .map(ToString::to_string)
                .collect(),
            dht: DhtStatus {
                mode: if self.config.p2p.client {
                    "client"
                } else {
                    "server"
                }
                .to_owned(),
                connected_peers: count(connected),
                routing_table: count(routing),
                records_stored: dht.metrics().records.get(),
                bytes_on_disk,
            },
            cache: CacheStatus {
                entries: sizes.bundles,
                hits,
                misses,
                hit_rate: hit_rate(hits, misses),
                forwarded_entries: sizes.forwarded,
                forwarded_bytes: sizes.forwarded_bytes,
                forwarded_hits: metrics.forward_cache_hits.get(),
                forwarded_misses: metrics.forward_cache_misses.get(),
                answer_entries: gauge(&answers.entries),
                answer_bytes: gauge(&answers.bytes),
                answer_hits,
                answer_misses,
                answer_hit_rate: hit_rate(answer_hits, answer_misses),
            },
            zones: self.publishers.statuses(),
            upstreams: probes.await,
            recent_errors: RecentErrors::global()
                .snapshot()
                .into_iter()
                .collect::<Vec<RecentError>>(),
        }
    }
}

/// Bytes of the regular files under `dir` (symbolic links not followed).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| match entry.metadata() {
            Ok(meta) if meta.is_dir() => dir_size(&entry.path()),
            Ok(meta) if meta.is_file() => meta.len(),
            _ => 0,
        })
        .sum()
}

/// Asks `server` for `. NS` over UDP: any well-formed answer with our id
/// counts as healthy (REFUSED included: the server is there and talking).
async fn probe(server: SocketAddr) -> UpstreamStatus {
    let started = Instant::now();
    let result = tokio::time::timeout(PROBE_TIMEOUT, exchange(server)).await;
    let (healthy, rtt_ms, error) = match result {
        Ok(Ok(())) => (true, Some(started.elapsed().as_millis() as u64), None),
        Ok(Err(error)) => (false, None, Some(error)),
        Err(_) => (
            false,
            None,
            Some(format!("no answer within {PROBE_TIMEOUT:?}")),
        ),
    };
    UpstreamStatus {
        server: server.to_string(),
        healthy,
        rtt_ms,
        error,
    }
}

async fn exchange(server: SocketAddr) -> Result<(), String> {
    let id: u16 = rand::random();
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::root(), RecordType::NS));
    let bytes = query.to_vec().map_err(|e| e.to_string())?;
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(&bytes).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 4096];
    loop {
        let len = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        // A datagram that is not our answer is ignored, not believed.
        if let Ok(answer) = Message::from_vec(&buf[..len])
            && answer.metadata.id == id
            && answer.metadata.message_type == MessageType::Response
        {
            return Ok(());
        }
    }
}
