//! The network behaviour and the swarm built around it.

use std::time::Duration;

use kadns_record::MAX_BUNDLE_LEN;
use libp2p::PeerId;
use libp2p::core::Transport as _;
use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::identity::Keypair;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{StreamProtocol, Swarm, identify, kad, noise, ping, request_response, tcp, yamux};

use crate::config::{BucketInserts, Config, Mode};
use crate::error::Error;
use crate::protocol::{STORE_PROTOCOL, StoreCodec};
use crate::store::ValidatingStore;

/// Kademlia protocol name: kadns's own network, never the IPFS DHT.
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/kadns/kad/1.0.0");

/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/kadns/1.0.0";

/// Kademlia's maximum packet size on every node: a response may carry a full
/// bundle plus up to k peers with their addresses; 4 × the bundle limit
/// leaves room for both (libp2p's default is 16 KiB).
pub const MAX_PACKET_LEN: usize = 4 * MAX_BUNDLE_LEN + 16 * 1024;

/// Concurrent inbound plus outbound store streams per connection.
pub const MAX_STORE_STREAMS: usize = 64;

/// How often a connection is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(15);
/// A ping unanswered after this long fails (so does a ping stream whose
/// negotiation times out): the event loop closes that
/// connection and counts a failure against the peer (a blackholed peer never
/// closes its connections itself).
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's behaviour: Kademlia over the validating store, identify, ping,
/// and the store protocol.
#[derive(NetworkBehaviour)]
#[allow(missing_docs)]
pub struct Behaviour {
    /// Kademlia, under [`KAD_PROTOCOL`].
    pub kad: kad::Behaviour<ValidatingStore>,
    /// Identify: its listen addresses feed Kademlia.
    pub identify: identify::Behaviour,
    /// Ping: liveness.
    pub ping: ping::Behaviour,
    /// `/kadns/store/1.0.0`.
    pub store: request_response::Behaviour<StoreCodec>,
}

impl std::fmt::Debug for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Behaviour")
            .field("mode", &self.kad.mode())
            .finish_non_exhaustive()
    }
}

impl Behaviour {
    /// Builds the behaviour for `keypair`'s node over `store`.
    pub fn new(keypair: &Keypair, config: &Config, store: ValidatingStore) -> Self {
        let peer_id = keypair.public().to_peer_id();
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config
            .set_replication_factor(config.replication_factor)
            .set_query_timeout(config.query_timeout)
            // One request to one peer: a dead or hung peer fails after this
            // and the lookup moves on (the iterator's own per-peer limit,
            // 10 s, is fixed in libp2p).
            .set_substreams_timeout(config.request_timeout)
            .set_parallelism(config.lookup_parallelism)
            .disjoint_query_paths(config.disjoint_query_paths)
            .set_max_packet_size(MAX_PACKET_LEN)
            // Validation happens inside `RecordStore::put`; a refusal fails
            // the sender's PUT instead of being acknowledged.
            .set_record_filtering(kad::StoreInserts::Unfiltered)
            // Records carry their own expiry, checked by kadns-record.
            .set_record_ttl(None)
            .set_provider_record_ttl(None)
            .set_provider_publication_interval(None)
            // The stock jobs load every record into memory at once; the event
            // loop runs a streaming replication job instead (docs/dht.md).
            .set_replication_interval(None)
            .set_publication_interval(None)
            .set_caching(kad::Caching::Disabled)
            .set_periodic_bootstrap_interval(
                config
                    .bootstrap_interval
                    .map(|d| spread_interval(d, &peer_id)),
            );
        if config.bucket_inserts == BucketInserts::IfRoom {
            // Peers enter the table from identify only (`Peers::on_identify`),
            // and only while their bucket has room.
            kad_config.set_kbucket_inserts(kad::BucketInserts::Manual);
        }
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        kad.set_mode(Some(match config.mode {
            Mode::Server => kad::Mode::Server,
            Mode::Client => kad::Mode::Client,
        }));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL_VERSION.to_owned(), keypair.public())
                // Tell connected peers at once when our listen addresses change.
                .with_push_listen_addr_updates(true)
                .with_agent_version(format!("kadns-dht/{}", env!("CARGO_PKG_VERSION"))),
        );
        let support = match config.mode {
            Mode::Server => request_response::ProtocolSupport::Full,
            Mode::Client => request_response::ProtocolSupport::Outbound,
        };
        let store = request_response::Behaviour::with_codec(
            StoreCodec,
            [(STORE_PROTOCOL, support)],
            request_response::Config::default()
                .with_request_timeout(config.store_timeout)
                .with_max_concurrent_streams(MAX_STORE_STREAMS),
        );
        Self {
            kad,
            identify,
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(PING_INTERVAL)
                    .with_timeout(PING_TIMEOUT),
            ),
            store,
        }
    }
}

/// `interval` stretched or shrunk by up to a quarter, by `peer`: the same
/// node always gets the same interval, and nodes started at the same moment
/// (a restarted data centre, a simulation) do not refresh together.
fn spread_interval(interval: Duration, peer: &PeerId) -> Duration {
    let bytes = peer.to_bytes();
    // The last bytes are the key's (hash) bits; the first are the multihash
    // header, the same for every ed25519 peer.
    let tail = bytes
        .iter()
        .rev()
        .take(8)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    let unit = (tail >> 11) as f64 / (1u64 << 53) as f64;
    interval.mul_f64(0.75 + unit / 2.0)
}

/// The swarm settings both builders share: `idle` as the idle-connection
/// limit, and lazy protocol negotiation on every outbound substream. Each
/// kadns protocol is offered alone (one Kademlia, one store, one identify,
/// one ping protocol), so the dialer can send its request together with its
/// protocol choice instead of waiting one round trip for the listener's
/// confirmation (multistream-select `V1Lazy`; libp2p's default `V1` waits).
/// A Kademlia request on a new substream costs one RTT instead of two
/// (docs/dht.md, "Round trips").
fn swarm_config(config: libp2p::swarm::Config, idle: Duration) -> libp2p::swarm::Config {
    config
        .with_idle_connection_timeout(idle)
        .with_substream_upgrade_protocol_override(Version::V1Lazy)
}

fn transport_error(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Transport {
        source: std::sync::Arc::new(e),
    }
}

/// A complete libp2p transport (authenticated and multiplexed), for
/// [`build_swarm_with_transport`]: an in-memory network in a simulator, say.
pub type BoxedTransport = Boxed<(PeerId, StreamMuxerBox)>;

/// Builds the swarm: TCP + Noise + Yamux (and QUIC with the `quic` feature),
/// no DNS transport, on the tokio runtime. A TCP dial, handshakes included,
/// fails after `config.dial_timeout` (libp2p's TCP transport has no connect
/// timeout of its own: a blackholed host would hold a dial for the kernel's
/// SYN retries, about two minutes).
pub fn build_swarm(
    keypair: Keypair,
    config: &Config,
    store: ValidatingStore,
) -> Result<Swarm<Behaviour>, Error> {
    build_swarm_with_transport(keypair, config, store, None)
}

/// Like [`build_swarm`], but over `transport` instead of TCP (and QUIC) when
/// it is `Some`. The behaviour and swarm settings are the same either way:
/// this is the hook the simulator (`kadns-sim`) runs production nodes over
/// an in-memory link layer with; `None` is [`build_swarm`].
///
/// ```
/// use libp2p::core::{transport::MemoryTransport, upgrade::Version, Transport};
/// use libp2p::{identity::Keypair, noise, yamux};
///
/// let keypair = Keypair::generate_ed25519();
/// let transport = MemoryTransport::default()
///     .upgrade(Version::V1Lazy)
///     .authenticate(noise::Config::new(&keypair).unwrap())
///     .multiplex(yamux::Config::default())
///     .boxed();
/// let store = kadns_dht::ValidatingStore::new(
///     Box::new(kadns_dht::SledStorage::temporary().unwrap()),
///     Default::default(),
///     tokio::sync::broadcast::channel(8).0,
/// );
/// # let rt = tokio::runtime::Runtime::new().unwrap();
/// # let _guard = rt.enter();
/// let swarm = kadns_dht::build_swarm_with_transport(
///     keypair,
///     &kadns_dht::Config::default(),
///     store,
///     Some(transport),
/// )
/// .unwrap();
/// # drop(swarm);
/// ```
pub fn build_swarm_with_transport(
    keypair: Keypair,
    config: &Config,
    store: ValidatingStore,
    transport: Option<BoxedTransport>,
) -> Result<Swarm<Behaviour>, Error> {
    let idle = config.idle_connection_timeout;
    if let Some(transport) = transport {
        let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_other_transport(|_| transport)
            .map_err(|e| transport_error(std::io::Error::other(e.to_string())))?
            .with_behaviour(|key| Behaviour::new(key, config, store))
            .map_err(|e| transport_error(std::io::Error::other(e.to_string())))?
            .with_swarm_config(|c| swarm_config(c, idle))
            .build();
        return Ok(swarm);
    }
    let dial_timeout = config.dial_timeout;
    let builder = libp2p::SwarmBuilder::with_existing_identity(keypair).with_tokio();
    #[cfg(feature = "quic")]
    let builder = builder.with_quic();
    let swarm = builder
        .with_other_transport(|key| {
            let noise = noise::Config::new(key)
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            Ok(
                tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                    .upgrade(Version::V1Lazy)
                    .authenticate(noise)
                    .multiplex(yamux::Config::default())
                    .timeout(dial_timeout),
            )
        })
        .map_err(|e| transport_error(std::io::Error::other(e.to_string())))?
        .with_behaviour(|key| Behaviour::new(key, config, store))
        .map_err(|e| transport_error(std::io::Error::other(e.to_string())))?
        .with_swarm_config(|c| swarm_config(c, idle))
        .build();
    Ok(swarm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_intervals_are_spread_within_a_quarter_and_stable_per_node() {
        let base = Duration::from_secs(600);
        let mut seen = Vec::new();
        for _ in 0..200 {
            let peer = Keypair::generate_ed25519().public().to_peer_id();
            let d = spread_interval(base, &peer);
            assert!(d >= base.mul_f64(0.75) && d < base.mul_f64(1.25), "{d:?}");
            assert_eq!(d, spread_interval(base, &peer));
            seen.push(d);
        }
        seen.sort();
        // Spread over the range, not bunched: the 10th and 90th percentiles
        // are more than a quarter of the base apart.
        assert!(
            seen[180] - seen[20] > base / 4,
            "{:?} .. {:?}",
            seen[20],
            seen[180]
        );
    }
}
