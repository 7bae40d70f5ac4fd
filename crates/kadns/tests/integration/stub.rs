//! The DNS stub in-process, answering real DNS messages on loopback: a zone in
//! an in-memory DHT, a test upstream for every other name.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use kadns::{Stub, StubConfig};
use kadns_record::hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use kadns_record::hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use kadns_record::hickory_proto::rr::rdata::{A, AAAA, CNAME, TXT};
use kadns_record::hickory_proto::rr::{Name, RData, RecordType};
use kadns_record::{Bundle, OwnerName, Rr, ZoneKey};
use kadns_resolver::{Config, MemorySource, Resolver};
use kadns_tests::client::{self, query_message};
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};

struct Fixture {
    stub: Stub<MemorySource>,
    upstream: TestUpstream,
    zone: ZoneKey,
}

impl Fixture {
    fn udp(&self) -> SocketAddr {
        self.stub.udp_addrs()[0]
    }
    fn tcp(&self) -> SocketAddr {
        self.stub.tcp_addrs()[0]
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn publish(source: &MemorySource, key: &ZoneKey, labels: &[&str], records: Vec<Rr>) {
    let owner = OwnerName::from_labels(labels.iter().map(|l| l.as_bytes())).expect("owner");
    let bundle = Bundle::new(owner, 1, now() + 86_400, records)
        .expect("bundle")
        .sign(key)
        .expect("sign");
    source.put(&bundle);
}

async fn fixture_with(stub_config: StubConfig) -> TestResult<Fixture> {
    let zone = ZoneKey::from_seed([11; 32]);
    let source = MemorySource::new();
    let apex = zone.zone_id().apex();
    publish(
        &source,
        &zone,
        &["www"],
        vec![
            Rr::new(300, &RData::A(A::new(192, 0, 2, 10)))?,
            Rr::new(300, &RData::A(A::new(192, 0, 2, 11)))?,
            Rr::new(
                600,
                &RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10)),
            )?,
        ],
    );
    let www = Name::from_ascii("www")?.append_domain(&apex)?;
    publish(
        &source,
        &zone,
        &["alias"],
        vec![Rr::new(120, &RData::CNAME(CNAME(www)))?],
    );
    let big: Vec<Rr> = (0..12)
        .map(|i| {
            Rr::new(
                60,
                &RData::TXT(TXT::new(vec![format!("{i:02}-{}", "x".repeat(200))])),
            )
        })
        .collect::<Result<_, _>>()?;
    publish(&source, &zone, &["big"], big);

    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let mut config = Config::default();
    config
        .trust_anchors
        .insert("example.kad".into(), zone.zone_id().to_string());
    config.upstream.servers = vec![upstream.addr().into()];
    config.upstream.resolv_conf = None;
    let resolver = Resolver::builder(config, source).build()?;
    let stub = Stub::bind(&stub_config, resolver).await?;
    Ok(Fixture {
        stub,
        upstream,
        zone,
    })
}

async fn fixture() -> TestResult<Fixture> {
    let mut config = StubConfig::default();
    config.listen = vec!["127.0.0.1:0".parse()?];
    fixture_with(config).await
}

fn addresses(message: &Message) -> Vec<String> {
    let mut out: Vec<String> = message
        .answers
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn answers_over_udp_and_tcp_with_ad_case_and_id() -> TestResult {
    let f = fixture().await?;
    for tcp in [false, true] {
        let mut query = query_message("WwW.Example.KAD.", RecordType::A, Some(1232))?;
        // AD only when asked for (RFC 6840 §5.8).
        query.metadata.authentic_data = true;
        let response = if tcp {
            client::tcp(f.tcp(), &query).await?
        } else {
            client::udp(f.udp(), &query).await?
        };
        assert_eq!(response.metadata.id, query.metadata.id);
        assert_eq!(response.metadata.response_code, ResponseCode::NoError);
        assert!(response.metadata.authentic_data, "AD on verified records");
        assert!(response.metadata.recursion_available && response.metadata.recursion_desired);
        assert_eq!(response.queries[0].name().to_ascii(), "WwW.Example.KAD.");
        assert_eq!(
            addresses(&response),
            vec![
                "WwW.Example.KAD. A 192.0.2.10",
                "WwW.Example.KAD. A 192.0.2.11"
            ]
        );
        assert!(response.answers.iter().all(|r| r.ttl <= 300));
    }
    // The same zone under its self-certifying name.
    let by_id = client::ask(
        f.udp(),
        &format!("www.{}.", f.zone.zone_id()),
        RecordType::AAAA,
    )
    .await?;
    assert_eq!(by_id.answers.len(), 1);
    assert_eq!(
        by_id.answers[0].data,
        RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 10))
    );
    Ok(())
}

#[tokio::test]
async fn nxdomain_nodata_and_cname_chain() -> TestResult {
    let f = fixture().await?;
    let nx = client::ask(f.udp(), "missing.example.kad.", RecordType::A).await?;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.answers.is_empty());
    assert!(
        nx.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "SOA in authority: {nx:?}"
    );

    let nodata = client::ask(f.udp(), "www.example.kad.", RecordType::MX).await?;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert!(
        nodata
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA)
    );

    let chain = client::ask(f.udp(), "alias.example.kad.", RecordType::A).await?;
    assert_eq!(
        addresses(&chain),
        vec![
            "alias.example.kad. CNAME www.example.kad.",
            "www.example.kad. A 192.0.2.10",
            "www.example.kad. A 192.0.2.11"
        ]
    );
    assert_eq!(f.stub.metrics().responses("udp", "nxdomain"), 1);
    assert_eq!(f.stub.metrics().responses("udp", "nodata"), 1);
    Ok(())
}

#[tokio::test]
async fn large_answers_truncate_over_udp_and_complete_over_tcp() -> TestResult {
    let f = fixture().await?;
    let small = query_message("big.example.kad.", RecordType::TXT, Some(512))?;
    let truncated = client::udp(f.udp(), &small).await?;
    assert!(truncated.metadata.truncation, "TC over a 512-byte buffer");
    assert!(truncated.answers.len() < 12);
    // A client asking for 4096 still gets at most our 1232-byte cap over UDP.
    let large = query_message("big.example.kad.", RecordType::TXT, Some(4096))?;
    let bytes = client::udp_raw(f.udp(), &large.to_vec()?, client::EXCHANGE_TIMEOUT)
        .await?
        .ok_or("no reply")?;
    assert!(bytes.len() <= 1232, "{} bytes", bytes.len());
    assert!(Message::from_vec(&bytes)?.metadata.truncation);
    let full = client::tcp(f.tcp(), &small).await?;
    assert!(!full.metadata.truncation);
    assert_eq!(full.answers.len(), 12);
    Ok(())
}

#[tokio::test]
async fn other_names_are_forwarded_upstream() -> TestResult {
    let f = fixture().await?;
    let response = client::ask(f.udp(), "Outside.Example.", RecordType::A).await?;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        addresses(&response),
        vec!["Outside.Example. A 198.51.100.7"]
    );
    assert!(
        !response.metadata.authentic_data,
        "no AD on forwarded answers the upstream did not mark"
    );
    assert!(f.upstream.queries() >= 1);
    let nx = client::ask(f.udp(), "nothing.example.", RecordType::A).await?;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    Ok(())
}

#[tokio::test]
async fn protocol_errors_get_the_right_rcode_or_silence() -> TestResult {
    let f = fixture().await?;
    // Unknown opcode: NOTIMP, id echoed.
    let mut status = query_message("www.example.kad.", RecordType::A, None)?;
    status.metadata.op_code = OpCode::Status;
    let reply = client::udp(f.udp(), &status).await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(reply.metadata.id, status.metadata.id);
    // Two questions: FORMERR.
    let mut two = query_message("www.example.kad.", RecordType::A, None)?;
    two.add_query(Query::query(
        Name::from_ascii("alias.example.kad.")?,
        RecordType::A,
    ));
    assert_eq!(
        client::udp(f.udp(), &two).await?.metadata.response_code,
        ResponseCode::FormErr
    );
    // A question whose name runs past the end of the packet: FORMERR.
    let mut cut = query_message("www.example.kad.", RecordType::A, None)?.to_vec()?;
    cut.truncate(20);
    let reply = client::udp_raw(f.udp(), &cut, client::EXCHANGE_TIMEOUT)
        .await?
        .ok_or("no reply to a cut packet")?;
    assert_eq!(
        Message::from_vec(&reply)?.metadata.response_code,
        ResponseCode::FormErr
    );
    // Shorter than a header, or a response (QR set): no reply at all.
    let wait = std::time::Duration::from_millis(300);
    assert_eq!(client::udp_raw(f.udp(), &[1, 2, 3], wait).await?, None);
    let mut response = query_message("www.example.kad.", RecordType::A, None)?;
    response.metadata.message_type = MessageType::Response;
    assert_eq!(
        client::udp_raw(f.udp(), &response.to_vec()?, wait).await?,
        None
    );
    // EDNS version 1: BADVERS.
    let mut v1 = query_message("www.example.kad.", RecordType::A, Some(1232))?;
    if let Some(edns) = v1.edns.as_mut() {
        edns.set_version(1);
    }
    // BADVERS is code 16, which hickory decodes under its other name, BADSIG.
    let reply = client::udp(f.udp(), &v1).await?;
    assert_eq!(u16::from(reply.metadata.response_code), 16);
    assert!(
        reply.edns.is_some(),
        "an extended RCODE needs the OPT record"
    );
    // Zone transfers of kadns zones: REFUSED.
    let axfr = query_message("example.kad.", RecordType::AXFR, None)?;
    assert_eq!(
        client::tcp(f.tcp(), &axfr).await?.metadata.response_code,
        ResponseCode::Refused
    );
    Ok(())
}

#[tokio::test]
async fn clients_outside_the_allowed_networks_are_refused() -> TestResult {
    let mut config = StubConfig::default();
    config.listen = vec!["127.0.0.1:0".parse()?];
    config.allow = vec!["10.0.0.0/8".parse()?, "fd00::/8".parse()?];
    let f = fixture_with(config).await?;
    let reply = client::ask(f.udp(), "www.example.kad.", RecordType::A).await?;
    assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
    assert!(reply.answers.is_empty());
    // Over TCP too, and an EDNS client is told why: EDE 18 "Prohibited".
    for tcp in [false, true] {
        let query = query_message("www.example.kad.", RecordType::A, Some(1232))?;
        let reply = if tcp {
            client::tcp(f.tcp(), &query).await?
        } else {
            client::udp(f.udp(), &query).await?
        };
        assert_eq!(reply.metadata.response_code, ResponseCode::Refused);
        assert!(reply.answers.is_empty());
        let ede = reply
            .edns
            .as_ref()
            .and_then(|e| e.options().get(EdnsCode::Unknown(15)))
            .cloned();
        let Some(EdnsOption::Unknown(15, data)) = ede else {
            panic!("no EDE in {reply:?}");
        };
        assert_eq!(data.get(..2), Some(&18u16.to_be_bytes()[..]), "{data:?}");
    }
    Ok(())
}

#[tokio::test]
async fn survives_a_thousand_malformed_packets() -> TestResult {
    use rand::{RngExt, SeedableRng};
    let f = fixture().await?;
    let good = query_message("www.example.kad.", RecordType::A, Some(1232))?.to_vec()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let quiet = std::time::Duration::from_millis(1);
    for i in 0..1000 {
        let packet: Vec<u8> = if i % 2 == 0 {
            // Random bytes of random length.
            let len = rng.random_range(0..600);
            (0..len).map(|_| rng.random()).collect()
        } else {
            // A good query with a few bytes flipped or cut short.
            let mut p = good.clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..p.len());
                p[at] = rng.random();
            }
            p.truncate(rng.random_range(1..=p.len()));
            p
        };
        client::udp_raw(f.udp(), &packet, quiet).await?;
        if i % 10 == 0 {
            client::tcp_raw(f.tcp(), &packet, quiet).await?;
        }
    }
    for tcp in [false, true] {
        let query = query_message("www.example.kad.", RecordType::A, Some(1232))?;
        let reply = if tcp {
            client::tcp(f.tcp(), &query).await?
        } else {
            client::udp(f.udp(), &query).await?
        };
        assert_eq!(
            reply.answers.len(),
            2,
            "answered after the garbage (tcp: {tcp})"
        );
    }
    Ok(())
}

#[tokio::test]
async fn dig_sees_flags_records_and_case() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    let f = fixture().await?;
    let server = f.udp();
    for transport in ["+notcp", "+tcp"] {
        let out = tokio::task::spawn_blocking(move || {
            dig::dig(server, &[transport, "WWW.example.KAD", "A"])
        })
        .await??;
        assert_eq!(dig::status(&out).as_deref(), Some("NOERROR"), "{out}");
        let flags = dig::flags(&out);
        assert!(
            flags.contains(&"ad".to_string()) && flags.contains(&"ra".to_string()),
            "{out}"
        );
        let answers = dig::answer_lines(&out);
        assert_eq!(answers.len(), 2, "{out}");
        assert!(
            answers.iter().all(|l| l.starts_with("WWW.example.KAD.")),
            "{out}"
        );
    }
    let out =
        tokio::task::spawn_blocking(move || dig::dig(server, &["nope.example.kad", "A"])).await??;
    assert_eq!(dig::status(&out).as_deref(), Some("NXDOMAIN"));
    Ok(())
}

/// A burst from six sockets at once, which the stub reads and answers in
/// batches (`recvmmsg`/`sendmmsg`): every reply reaches the socket that
/// asked, under the ID it asked with, with its own question (in its own
/// letter case) and that question's answer. Cached answers (answered
/// inline) and cache misses (answered asynchronously: a kadns lookup, a
/// forward) are mixed in each batch. A batch that mixed up addresses,
/// IDs or buffers fails here. A query lost on the way is asked again, as
/// a real client would.
#[tokio::test]
async fn a_burst_from_many_sockets_gets_every_answer_right() -> TestResult {
    use std::collections::HashMap;
    use tokio::net::UdpSocket;
    let f = fixture().await?;
    let questions = [
        ("www.example.kad.", RecordType::A),
        ("www.example.kad.", RecordType::AAAA),
        ("alias.example.kad.", RecordType::A),
        ("missing.example.kad.", RecordType::A),
        ("outside.example.", RecordType::A),
        ("nothing.example.", RecordType::A),
    ];
    // The expected answers, asked one at a time; then only the first two
    // are in the answer cache when the burst comes.
    let mut expected = HashMap::new();
    for (i, &(name, rtype)) in questions.iter().enumerate() {
        let answer = client::ask(f.udp(), name, rtype).await?;
        let answers = addresses(&answer).join(",").to_lowercase();
        expected.insert(i, (answer.metadata.response_code, answers));
    }
    f.stub.handler().flush_answer_cache();
    for &(name, rtype) in &questions[..2] {
        client::ask(f.udp(), name, rtype).await?;
    }
    let mut sockets = Vec::new();
    for _ in 0..6 {
        sockets.push(UdpSocket::bind("127.0.0.1:0").await?);
    }
    // id → (question, the name as sent), per socket.
    let mut pending: Vec<HashMap<u16, (usize, String)>> = vec![HashMap::new(); sockets.len()];
    let mut queries = Vec::new();
    for round in 0..8u16 {
        for (s, pending) in pending.iter_mut().enumerate() {
            let id = ((s as u16) << 8) | round;
            let which = (s + usize::from(round)) % questions.len();
            let (name, rtype) = questions[which];
            // Letter case from the id: an answer patched for another query shows.
            let name: String = name
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if (usize::from(id) >> (i % 11)) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            let mut query = query_message(&name, rtype, Some(1232))?;
            query.metadata.id = id;
            pending.insert(id, (which, name));
            queries.push((s, query.to_vec()?));
        }
    }
    for (s, bytes) in &queries {
        sockets[*s].send_to(bytes, f.udp()).await?;
    }
    let mut buf = vec![0u8; 65_535];
    for (s, socket) in sockets.iter().enumerate() {
        let mut attempts = 0;
        while !pending[s].is_empty() {
            let wait = std::time::Duration::from_secs(3);
            let Ok(received) = tokio::time::timeout(wait, socket.recv_from(&mut buf)).await else {
                attempts += 1;
                assert!(attempts < 5, "socket {s}: no answer for {:?}", pending[s]);
                for (_, bytes) in queries.iter().filter(|(q, _)| *q == s) {
                    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
                    if pending[s].contains_key(&id) {
                        socket.send_to(bytes, f.udp()).await?;
                    }
                }
                continue;
            };
            let (len, from) = received?;
            assert_eq!(from, f.udp());
            let reply = Message::from_vec(&buf[..len])?;
            let id = reply.metadata.id;
            let Some((which, name)) = pending[s].remove(&id) else {
                // A duplicate after a retry is fine; an id this socket never sent is not.
                assert!(
                    queries
                        .iter()
                        .any(|(q, b)| *q == s && b[..2] == id.to_be_bytes()),
                    "socket {s} got id {id}"
                );
                continue;
            };
            assert_eq!(reply.queries.len(), 1);
            assert_eq!(reply.queries[0].name().to_ascii(), name, "id {id}");
            assert_eq!(reply.queries[0].query_type(), questions[which].1, "id {id}");
            let (rcode, answers) = &expected[&which];
            assert_eq!(reply.metadata.response_code, *rcode, "id {id} {name}");
            assert_eq!(
                &addresses(&reply).join(",").to_lowercase(),
                answers,
                "id {id} {name}"
            );
        }
    }
    Ok(())
}
