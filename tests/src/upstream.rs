//! A DNS server on loopback that plays the ordinary DNS in forwarding tests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::TestResult;

/// A loopback DNS server answering from a fixed table: known names get their
/// records, unknown names NXDOMAIN. Over UDP, answers that do not fit 512
/// bytes (or the client's EDNS size) are sent truncated with TC set, so
/// clients must retry over TCP. Stops when dropped.
#[derive(Debug)]
pub struct TestUpstream {
    addr: SocketAddr,
    queries: Arc<AtomicU64>,
    _tasks: JoinSet<()>,
}

/// How a [`TestUpstream`] answers besides its table of records.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// The SOA put in the authority section of negative answers (NXDOMAIN,
    /// NODATA): `(zone, TTL, MINIMUM)`. Without it, negative answers carry
    /// no SOA (and are not cacheable, RFC 2308).
    pub soa: Option<(String, u32, u32)>,
    /// Records added to the authority section of every answer: a hostile
    /// upstream's injections.
    pub inject_authority: Vec<Record>,
    /// Records added to the additional section of every answer.
    pub inject_additional: Vec<Record>,
    /// Names at or under this suffix (say `void.`) are never answered, over
    /// UDP or TCP: an upstream that lets a forward hang until its deadline.
    pub never_answer: Option<String>,
    /// Over UDP, this many datagrams that do not answer the query (another
    /// id, another question, not DNS) are sent to the query's source port
    /// before the answer: what an off-path spoofer that guessed the port
    /// would get through the kernel's filter.
    pub junk_before_answer: usize,
}

struct Shared {
    table: HashMap<(Name, RecordType), Vec<RData>>,
    behaviour: Behaviour,
}

impl TestUpstream {
    /// Starts the server on 127.0.0.1 (one port for UDP and TCP) with the
    /// given `(name, rdata)` records, TTL 300.
    pub async fn start(records: &[(&str, RData)]) -> TestResult<Self> {
        Self::start_with(records, Behaviour::default()).await
    }

    /// Like [`start`](Self::start), answering as `behaviour` says.
    pub async fn start_with(records: &[(&str, RData)], behaviour: Behaviour) -> TestResult<Self> {
        let mut table: HashMap<(Name, RecordType), Vec<RData>> = HashMap::new();
        for (name, rdata) in records {
            let name = Name::from_ascii(name)?.to_lowercase();
            table
                .entry((name, rdata.record_type()))
                .or_default()
                .push(rdata.clone());
        }
        let table = Arc::new(Shared { table, behaviour });
        let (udp, tcp) = bind_pair().await?;
        let addr = udp.local_addr()?;
        let queries = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        {
            let (table, queries) = (table.clone(), queries.clone());
            tasks.spawn(async move {
                let mut buf = vec![0u8; 65_535];
                while let Ok((len, from)) = udp.recv_from(&mut buf).await {
                    queries.fetch_add(1, Ordering::Relaxed);
                    if let Some(reply) = answer(&table, &buf[..len], true) {
                        for junk in junk_for(&reply, table.behaviour.junk_before_answer) {
                            let _ = udp.send_to(&junk, from).await;
                        }
                        let _ = udp.send_to(&reply, from).await;
                    }
                }
            });
        }
        {
            let (table, queries) = (table.clone(), queries.clone());
            tasks.spawn(async move {
                while let Ok((mut stream, _)) = tcp.accept().await {
                    let (table, queries) = (table.clone(), queries.clone());
                    tokio::spawn(async move {
                        loop {
                            let mut len = [0u8; 2];
                            if stream.read_exact(&mut len).await.is_err() {
                                return;
                            }
                            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                            if stream.read_exact(&mut buf).await.is_err() {
                                return;
                            }
                            queries.fetch_add(1, Ordering::Relaxed);
                            let Some(reply) = answer(&table, &buf, false) else {
                                return;
                            };
                            let len = (reply.len() as u16).to_be_bytes();
                            if stream.write_all(&len).await.is_err()
                                || stream.write_all(&reply).await.is_err()
                            {
                                return;
                            }
                        }
                    });
                }
            });
        }
        Ok(Self {
            addr,
            queries,
            _tasks: tasks,
        })
    }

    /// The address it answers on (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queries received so far, over both protocols.
    pub fn queries(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }
}

/// A UDP socket and a TCP listener on one loopback port. The port the OS
/// picks for UDP may be taken for TCP (a client socket in TIME-WAIT holds it
/// for a minute): then another is tried.
async fn bind_pair() -> TestResult<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind("127.0.0.1:0").await?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(format!("no loopback port free for both UDP and TCP: {last:?}").into())
}

/// `n` datagrams that look like but do not answer `reply`'s query, in turn:
/// the reply under another id, the reply for another question, and bytes
/// that are not DNS.
fn junk_for(reply: &[u8], n: usize) -> Vec<Vec<u8>> {
    let Ok(message) = Message::from_vec(reply) else {
        return Vec::new();
    };
    let mut wrong_id = message.clone();
    wrong_id.metadata.id = wrong_id.metadata.id.wrapping_add(1);
    let mut wrong_question = message;
    if let (Some(query), Ok(other)) = (
        wrong_question.queries.first_mut(),
        Name::from_ascii("junk.invalid."),
    ) {
        query.name = other;
    }
    let kinds = [
        wrong_id.to_vec().unwrap_or_default(),
        wrong_question.to_vec().unwrap_or_default(),
        b"\xde\xad\xbe\xef".to_vec(),
    ];
    (0..n).map(|i| kinds[i % kinds.len()].clone()).collect()
}

fn answer(shared: &Shared, bytes: &[u8], udp: bool) -> Option<Vec<u8>> {
    let table = &shared.table;
    let request = Message::from_vec(bytes).ok()?;
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata.recursion_desired = request.metadata.recursion_desired;
    response.metadata.recursion_available = true;
    response.queries = request.queries.clone();
    let query = request.queries.first()?;
    let name = query.name().to_lowercase();
    if let Some(suffix) = &shared.behaviour.never_answer
        && Name::from_ascii(suffix).is_ok_and(|s| s.zone_of(&name))
    {
        return None;
    }
    let known = table.keys().any(|(n, _)| *n == name);
    match table.get(&(name, query.query_type())) {
        Some(rdatas) => {
            response.answers = rdatas
                .iter()
                .map(|r| Record::from_rdata(query.name().clone(), 300, r.clone()))
                .collect();
        }
        None if !known => response.metadata.response_code = ResponseCode::NXDomain,
        None => {}
    }
    let behaviour = &shared.behaviour;
    if response.answers.is_empty()
        && let Some((zone, ttl, minimum)) = &behaviour.soa
    {
        let zone = Name::from_ascii(zone).ok()?;
        let soa = hickory_proto::rr::rdata::SOA::new(
            Name::from_ascii("ns").ok()?.append_domain(&zone).ok()?,
            Name::from_ascii("hostmaster")
                .ok()?
                .append_domain(&zone)
                .ok()?,
            1,
            3600,
            600,
            86_400,
            *minimum,
        );
        response
            .authorities
            .push(Record::from_rdata(zone, *ttl, RData::SOA(soa)));
    }
    response
        .authorities
        .extend(behaviour.inject_authority.iter().cloned());
    response
        .additionals
        .extend(behaviour.inject_additional.iter().cloned());
    let bytes = response.to_vec().ok()?;
    let limit = request
        .edns
        .as_ref()
        .map_or(512, |e| usize::from(e.max_payload().max(512)));
    if udp && bytes.len() > limit {
        response.answers.clear();
        response.authorities.clear();
        response.additionals.clear();
        response.metadata.truncation = true;
        return response.to_vec().ok();
    }
    Some(bytes)
}
