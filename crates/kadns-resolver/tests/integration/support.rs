//! Shared helpers: zones, bundles, resolvers, and a tiny DNS server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use kadns_resolver::hickory_proto::op::{Message, ResponseCode};
use kadns_resolver::hickory_proto::rr::rdata::A;
use kadns_resolver::hickory_proto::rr::{Name, RData, Record, RecordType};
use kadns_resolver::kadns_record::{Bundle, OwnerName, Rr, SignedBundle, ZoneKey};
use kadns_resolver::{Config, MemorySource, Resolver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

pub(crate) type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Upper bound on any one test that uses real time.
pub(crate) const TEST_BOUND: Duration = Duration::from_secs(20);

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

pub(crate) fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test names are valid")
}

pub(crate) fn zone(seed: u8) -> ZoneKey {
    ZoneKey::from_seed([seed; 32])
}

/// `rel` below the zone-id apex of `key`, e.g. `ns1` → `ns1.<zone-id>.`.
pub(crate) fn in_zone(key: &ZoneKey, rel: &str) -> Name {
    name(&format!("{rel}.{}.", key.zone_id()))
}

pub(crate) fn owner(rel: &str) -> OwnerName {
    if rel == "@" {
        return OwnerName::apex();
    }
    OwnerName::from_labels(rel.split('.').map(str::as_bytes)).expect("test owners are valid")
}

/// Signs `records` (TTL, data) for `rel` in `key`'s zone, valid for a day.
pub(crate) fn signed(
    key: &ZoneKey,
    rel: &str,
    sequence: u64,
    records: Vec<(u32, RData)>,
) -> SignedBundle {
    signed_until(key, rel, sequence, now() + 86_400, records)
}

pub(crate) fn signed_until(
    key: &ZoneKey,
    rel: &str,
    sequence: u64,
    expires: u64,
    records: Vec<(u32, RData)>,
) -> SignedBundle {
    let records = records
        .iter()
        .map(|(ttl, rdata)| Rr::new(*ttl, rdata).expect("test records are valid"))
        .collect();
    Bundle::new(owner(rel), sequence, expires, records)
        .expect("test bundles are valid")
        .sign(key)
        .expect("test bundles fit")
}

pub(crate) fn a(last: u8) -> RData {
    RData::A(A::new(192, 0, 2, last))
}

/// A config with the given anchors and no upstream at all.
pub(crate) fn config(anchors: &[(&str, &ZoneKey)]) -> Config {
    let mut config = Config::default();
    for (anchor, key) in anchors {
        config
            .trust_anchors
            .insert((*anchor).into(), key.zone_id().to_string());
    }
    config.upstream.resolv_conf = None;
    config
}

pub(crate) fn resolver(config: Config, source: &MemorySource) -> Resolver<MemorySource> {
    Resolver::builder(config, source.clone())
        .build()
        .expect("test configs are valid")
}

/// How the test server answers one query.
pub(crate) type Handler =
    Arc<dyn Fn(Message, Transport) -> BoxFuture<'static, Option<Message>> + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// A DNS server on 127.0.0.1 with UDP and TCP on the same port. Its tasks
/// stop when it is dropped.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    pub(crate) udp_queries: Arc<AtomicUsize>,
    pub(crate) tcp_queries: Arc<AtomicUsize>,
    _tasks: JoinSet<()>,
}

impl TestServer {
    pub(crate) async fn start(handler: Handler) -> Self {
        let (udp, tcp) = bind_pair().await;
        let addr = udp.local_addr().expect("bound");
        let udp_queries = Arc::new(AtomicUsize::new(0));
        let tcp_queries = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        let (h, count) = (handler.clone(), udp_queries.clone());
        tasks.spawn(async move {
            let mut buf = vec![0; 65_535];
            while let Ok((len, from)) = udp.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(response) = h(query, Transport::Udp).await {
                    let _ = udp
                        .send_to(&response.to_vec().expect("encodes"), from)
                        .await;
                }
            }
        });
        let (h, count) = (handler, tcp_queries.clone());
        tasks.spawn(async move {
            while let Ok((mut stream, _)) = tcp.accept().await {
                let Ok(len) = stream.read_u16().await else {
                    continue;
                };
                let mut buf = vec![0; usize::from(len)];
                if stream.read_exact(&mut buf).await.is_err() {
                    continue;
                }
                let Ok(query) = Message::from_vec(&buf) else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(response) = h(query, Transport::Tcp).await {
                    let bytes = response.to_vec().expect("encodes");
                    let _ = stream.write_all(&(bytes.len() as u16).to_be_bytes()).await;
                    let _ = stream.write_all(&bytes).await;
                }
            }
        });
        Self {
            addr,
            udp_queries,
            tcp_queries,
            _tasks: tasks,
        }
    }

    /// The standard server: see [`standard_answer`].
    pub(crate) async fn standard() -> Self {
        Self::start(Arc::new(|query, transport| {
            Box::pin(async move { Some(standard_answer(&query, transport)) })
        }))
        .await
    }

    /// Answers every query with `rcode` and nothing else.
    pub(crate) async fn failing(rcode: ResponseCode) -> Self {
        Self::start(Arc::new(move |query, _| {
            Box::pin(async move {
                let mut response = reply(&query);
                response.metadata.response_code = rcode;
                Some(response)
            })
        }))
        .await
    }
}

/// A UDP socket and a TCP listener on the same loopback port.
async fn bind_pair() -> (UdpSocket, TcpListener) {
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.expect("loopback UDP");
        let addr = udp.local_addr().expect("bound");
        if let Ok(tcp) = TcpListener::bind(addr).await {
            return (udp, tcp);
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

/// A response skeleton: same id and question, RA set.
pub(crate) fn reply(query: &Message) -> Message {
    let mut response = Message::response(query.metadata.id, query.metadata.op_code);
    response.metadata.recursion_desired = query.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.queries = query.queries.clone();
    response
}

/// A for every name: 198.51.100.1, TTL 120. Names whose first label is `big`
/// get three records, but over UDP only a truncated (TC) empty answer.
pub(crate) fn standard_answer(query: &Message, transport: Transport) -> Message {
    let mut response = reply(query);
    let Some(question) = query.queries.first() else {
        response.metadata.response_code = ResponseCode::FormErr;
        return response;
    };
    let big = question
        .name
        .iter()
        .next()
        .is_some_and(|l| l.eq_ignore_ascii_case(b"big"));
    if big && transport == Transport::Udp {
        response.metadata.truncation = true;
        return response;
    }
    if question.query_type == RecordType::A {
        for last in 1..=if big { 3 } else { 1 } {
            let data = RData::A(A::new(198, 51, 100, last));
            response
                .answers
                .push(Record::from_rdata(question.name.clone(), 120, data));
        }
    }
    response
}

/// A UDP socket that reads nothing and answers nothing: an upstream that is down.
pub(crate) async fn black_hole() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("loopback UDP");
    let addr = socket.local_addr().expect("bound");
    (socket, addr)
}
