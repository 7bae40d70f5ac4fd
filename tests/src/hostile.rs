//! A hostile DHT peer's storage: it keeps nothing it is sent and answers gets
//! with bytes of the test's choosing (a forged or a stale bundle).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use kadns_dht::{SavedPeer, Storage, StorageError, StoredRecord};
use kadns_record::DhtKey;

/// Plug into `kadns_dht::Node::spawn_with` to run a node that serves `bytes`
/// to every get (or only to gets for one key), and counts how often it did.
#[derive(Debug, Clone)]
pub struct ReplayingStorage {
    key: Option<DhtKey>,
    bytes: Vec<u8>,
    served: Arc<AtomicUsize>,
}

impl ReplayingStorage {
    /// Answers every get, whatever the key, with `bytes`.
    pub fn for_every_key(bytes: Vec<u8>) -> Self {
        Self {
            key: None,
            bytes,
            served: Arc::default(),
        }
    }

    /// Answers gets for `key` with `bytes`, and nothing else.
    pub fn for_key(key: DhtKey, bytes: Vec<u8>) -> Self {
        Self {
            key: Some(key),
            ..Self::for_every_key(bytes)
        }
    }

    /// How many gets it has answered (shared by clones).
    pub fn served(&self) -> Arc<AtomicUsize> {
        self.served.clone()
    }
}

/// The `Storage` methods of a hostile peer that keeps nothing it is sent and
/// holds no peers: every write is a no-op, every listing empty.
macro_rules! keeps_nothing {
    () => {
        fn put(&self, _: &DhtKey, _: &StoredRecord) -> Result<(), StorageError> {
            Ok(())
        }
        fn remove(&self, _: &DhtKey) -> Result<(), StorageError> {
            Ok(())
        }
        fn scan(
            &self,
            _: Option<&DhtKey>,
            _: usize,
        ) -> Result<Vec<(DhtKey, StoredRecord)>, StorageError> {
            Ok(Vec::new())
        }
        fn purge_expired(&self, _: u64, _: usize) -> Result<usize, StorageError> {
            Ok(0)
        }
        fn len(&self) -> usize {
            0
        }
        fn save_peer(&self, _: &[u8], _: &[String]) -> Result<(), StorageError> {
            Ok(())
        }
        fn forget_peer(&self, _: &[u8]) -> Result<(), StorageError> {
            Ok(())
        }
        fn peers(&self) -> Result<Vec<SavedPeer>, StorageError> {
            Ok(Vec::new())
        }
        fn flush(&self) -> Result<(), StorageError> {
            Ok(())
        }
    };
}

impl Storage for ReplayingStorage {
    fn get(&self, key: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        if self.key.is_some_and(|k| k != *key) {
            return Ok(None);
        }
        self.served.fetch_add(1, Ordering::SeqCst);
        Ok(Some(StoredRecord {
            expires: u64::MAX,
            bytes: self.bytes.clone(),
        }))
    }
    keeps_nothing!();
}

/// A hostile peer's storage that never answers: the first get blocks the
/// node's event loop (the store runs inside the swarm's poll) until
/// [`HangingStorage::release`], so the peer has accepted the request and
/// answers nothing, on any stream, from then on. Run the node on a thread
/// of its own. Keeps nothing it is sent.
#[derive(Debug, Clone, Default)]
pub struct HangingStorage {
    gate: Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    hung: Arc<AtomicUsize>,
}

impl HangingStorage {
    /// A storage that hangs on every get until released.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets every blocked and later get go on (answering nothing found).
    pub fn release(&self) {
        let (released, wake) = &*self.gate;
        *released.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
    }

    /// How many gets have hung so far (shared by clones).
    pub fn hung(&self) -> Arc<AtomicUsize> {
        self.hung.clone()
    }
}

impl Storage for HangingStorage {
    fn get(&self, _: &DhtKey) -> Result<Option<StoredRecord>, StorageError> {
        self.hung.fetch_add(1, Ordering::SeqCst);
        let (released, wake) = &*self.gate;
        let mut done = released.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = wake.wait(done).unwrap_or_else(|p| p.into_inner());
        }
        Ok(None)
    }
    keeps_nothing!();
}

/// What a [`flood_store`] run saw.
#[derive(Debug, Default, Clone)]
pub struct FloodReport {
    /// Store requests sent.
    pub sent: usize,
    /// Answered `Stored`.
    pub stored: usize,
    /// Answered `Refused`, by reason.
    pub refused: std::collections::BTreeMap<String, usize>,
    /// Requests that got no answer (stream reset, timeout, connection lost).
    pub failed: usize,
    /// From the first request to the last answer.
    pub elapsed: std::time::Duration,
}

impl FloodReport {
    /// Requests answered `Refused`, whatever the reason.
    pub fn refused_total(&self) -> usize {
        self.refused.values().sum()
    }
}

/// Signed bundles for `n` names under `n` fresh zone keys (seeded from
/// `seed`): what a flood that costs nothing to make looks like. Each
/// bundle holds one A record and is valid for an hour.
pub fn fresh_zone_bundles(n: usize, seed: u64) -> impl Iterator<Item = kadns_record::SignedBundle> {
    use hickory_proto::rr::{RData, rdata::A};
    use kadns_record::{Bundle, OwnerName, Rr, ZoneKey};
    let expires = kadns_dht::unix_now() + 3600;
    (0..n).filter_map(move |i| {
        let mut key_seed = [0u8; 32];
        key_seed[..8].copy_from_slice(&seed.to_be_bytes());
        key_seed[8..16].copy_from_slice(&(i as u64).to_be_bytes());
        let owner = OwnerName::from_labels([format!("n{i}").as_bytes()]).ok()?;
        let octets = (i as u32).to_be_bytes();
        let rr = Rr::new(60, &RData::A(A(std::net::Ipv4Addr::from(octets)))).ok()?;
        Bundle::new(owner, 1, expires, vec![rr])
            .ok()?
            .sign(&ZoneKey::from_seed(key_seed))
            .ok()
    })
}

/// Sends one `/kadns/store/1.0.0` request per item of `records` straight
/// to the node at `target` (`/ip4/…/tcp/…/p2p/<peer id>`), keeping at most
/// `window` unanswered, from a bare libp2p peer that speaks nothing else:
/// a hostile flooder, which need not be a Kademlia node nor be near the
/// keys. Returns once every request was answered or failed, or `within`
/// has passed (the rest then count as failed).
pub async fn flood_store(
    target: &libp2p::Multiaddr,
    records: impl IntoIterator<Item = (DhtKey, Vec<u8>)>,
    window: usize,
    within: std::time::Duration,
) -> crate::TestResult<FloodReport> {
    use futures::StreamExt;
    use libp2p::multiaddr::Protocol;
    use libp2p::request_response::{self, ProtocolSupport};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{noise, tcp, yamux};

    let Some(Protocol::P2p(peer)) = target.iter().last() else {
        return Err(format!("{target} does not end in /p2p/<peer id>").into());
    };
    let window = window.clamp(1, kadns_dht::MAX_STORE_STREAMS);
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|_| {
            request_response::Behaviour::with_codec(
                kadns_dht::StoreCodec,
                [(kadns_dht::STORE_PROTOCOL, ProtocolSupport::Outbound)],
                request_response::Config::default()
                    .with_request_timeout(std::time::Duration::from_secs(30))
                    .with_max_concurrent_streams(window),
            )
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(60)))
        .build();
    swarm.dial(target.clone())?;
    let deadline = tokio::time::Instant::now() + within;
    let started = std::time::Instant::now();
    let mut records = records.into_iter();
    let mut report = FloodReport::default();
    let mut in_flight = 0usize;
    let mut exhausted = false;
    loop {
        while !exhausted && in_flight < window {
            match records.next() {
                Some((key, bytes)) => {
                    swarm
                        .behaviour_mut()
                        .send_request(&peer, kadns_dht::StoreRequest { key, bytes });
                    report.sent += 1;
                    in_flight += 1;
                }
                None => exhausted = true,
            }
        }
        if exhausted && in_flight == 0 {
            break;
        }
        let event = tokio::select! {
            event = swarm.select_next_some() => event,
            _ = tokio::time::sleep_until(deadline) => {
                report.failed += in_flight;
                break;
            }
        };
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            }) => {
                in_flight -= 1;
                match response {
                    kadns_dht::StoreResponse::Stored => report.stored += 1,
                    kadns_dht::StoreResponse::Refused { reason } => {
                        *report.refused.entry(reason).or_default() += 1
                    }
                }
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { .. }) => {
                in_flight -= 1;
                report.failed += 1;
            }
            _ => {}
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
