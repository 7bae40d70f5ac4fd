//! A running `kadns serve` gets 1,000 malformed or random packets over UDP
//! and the same 1,000 over TCP (plus broken TCP framing), then still answers
//! a good query correctly over both, and is still running.

use std::net::SocketAddr;
use std::time::Duration;

use kadns_record::hickory_proto::op::{Message, MessageType, ResponseCode};
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_record::hickory_proto::rr::{RData, RecordType};
use kadns_tests::TestResult;
use kadns_tests::client::{self, query_message};
use kadns_tests::net::wait_until;
use kadns_tests::upstream::TestUpstream;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinSet;
use tokio::time::timeout;
use tracing_test::traced_test;

use crate::e2e_support::{assert_alive, generate_key, publish, serve, serve_args};

const PACKETS: usize = 1_000;

/// TCP connections open at once while the garbage is sent.
const TCP_PARALLEL: usize = 25;

/// Connections left open mid-message (a huge length prefix, then nothing)
/// while the good queries are asked.
const STALLED: usize = 20;

/// Bound on one garbage exchange over TCP: connect, send, read to the end.
const TCP_EXCHANGE: Duration = Duration::from_secs(3);

/// One malformed packet, by kind `i % 7`, from the good query `good`.
fn malformed(rng: &mut StdRng, good: &[u8], i: usize) -> Vec<u8> {
    let mut p = good.to_vec();
    match i % 7 {
        // Random bytes of random length.
        0 => {
            let len = rng.random_range(0..600);
            (0..len).map(|_| rng.random()).collect()
        }
        // A good query cut short (shorter than a header included).
        1 => {
            p.truncate(rng.random_range(0..p.len()));
            p
        }
        // A good query with 1 to 8 bits flipped.
        2 => {
            for _ in 0..rng.random_range(1..=8) {
                let at = rng.random_range(0..p.len());
                p[at] ^= 1 << rng.random_range(0..8);
            }
            p
        }
        // Wrong section counts: one of QD/AN/NS/AR set to a random value.
        3 => {
            let field = 4 + 2 * rng.random_range(0..4usize);
            let count: u16 = match rng.random_range(0..3) {
                0 => 0,
                1 => u16::MAX,
                _ => rng.random(),
            };
            p[field..field + 2].copy_from_slice(&count.to_be_bytes());
            p
        }
        // The question name replaced by a compression pointer: to itself,
        // past the end, or anywhere.
        4 => {
            p.truncate(12);
            let target: u16 = match rng.random_range(0..3) {
                0 => 12,
                1 => 0x3fff,
                _ => rng.random_range(0..0x4000),
            };
            p.extend_from_slice(&(0xc000 | target).to_be_bytes());
            p.extend_from_slice(&[0, 1, 0, 1]);
            p
        }
        // Label lengths above 63, or a name longer than 255 bytes.
        5 => {
            p.truncate(12);
            if rng.random() {
                p.push(rng.random_range(64..=255));
                p.extend((0..rng.random_range(0..80)).map(|_| b'x'));
            } else {
                for _ in 0..5 {
                    p.push(63);
                    p.extend([b'a'; 63]);
                }
            }
            p.extend_from_slice(&[0, 0, 1, 0, 1]);
            p
        }
        // A good query with random bytes after it.
        _ => {
            p.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>()));
            p
        }
    }
}

/// Every complete length-prefixed message in `bytes`, and the bytes left.
fn frames(mut bytes: &[u8]) -> (Vec<Vec<u8>>, usize) {
    let mut out = Vec::new();
    while bytes.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
        if bytes.len() < 2 + len {
            break;
        }
        out.push(bytes[2..2 + len].to_vec());
        bytes = &bytes[2 + len..];
    }
    (out, bytes.len())
}

/// A reply to garbage is a well-formed DNS response, or there is none.
fn assert_response(bytes: &[u8], how: &str) {
    let message = Message::from_vec(bytes)
        .unwrap_or_else(|e| panic!("{how}: a reply that does not decode ({e}): {bytes:02x?}"));
    assert_eq!(
        message.metadata.message_type,
        MessageType::Response,
        "{how}: {message:?}"
    );
}

/// One TCP connection: `bytes` written as they are (framing included), the
/// write side closed, everything the stub sends read until it closes.
async fn tcp_garbage(server: SocketAddr, bytes: Vec<u8>) -> TestResult<Vec<u8>> {
    timeout(TCP_EXCHANGE, async move {
        // SO_REUSEADDR: this socket's TIME-WAIT must not keep its port from
        // listeners (that set it too) for the next minute.
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        let mut stream = socket.connect(server).await?;
        // The stub may close first on a bad frame: a failed write is fine.
        if stream.write_all(&bytes).await.is_ok() {
            let _ = stream.shutdown().await;
        }
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply).await;
        Ok::<_, std::io::Error>(reply)
    })
    .await
    .map_err(|_| format!("the stub kept a TCP connection open past {TCP_EXCHANGE:?} after EOF"))?
    .map_err(Into::into)
}

/// The framing of packet `i` over TCP: mostly its true length; sometimes a
/// huge or wrong length prefix, an empty frame, or a good query behind it.
fn tcp_bytes(rng: &mut StdRng, packet: &[u8], good: &[u8], i: usize) -> Vec<u8> {
    let true_len = u16::try_from(packet.len()).unwrap_or(u16::MAX);
    let prefix: u16 = match i % 10 {
        0 => u16::MAX,
        1 => rng.random_range(true_len.saturating_add(1)..=u16::MAX),
        2 => 0,
        _ => true_len,
    };
    let mut out = prefix.to_be_bytes().to_vec();
    out.extend_from_slice(packet);
    if i % 10 == 3 {
        // Garbage, then a good query on the same connection.
        out.extend_from_slice(&u16::try_from(good.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(good);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn survives_a_thousand_malformed_packets_over_udp_and_tcp() -> TestResult {
    timeout(Duration::from_secs(120), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("good.example.", RData::A(A::new(198, 51, 100, 9)))]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone = dir.path().join("test.zone");
    std::fs::write(
        &zone,
        "$ORIGIN test.kad.\n@ 300 IN A 192.0.2.1\nwww 300 IN A 192.0.2.10\n",
    )?;
    let mut args = serve_args(&dir.path().join("node"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.addr().to_string(),
        "--anchor".into(),
        format!("test.kad={zone_id}"),
    ]);
    let mut node = serve(args).await?;
    let (udp, tcp) = (node.dns_udp[0], node.dns_tcp[0]);
    // A one-node network: the node itself holds the zone.
    let run = publish(&key, &zone, node.p2p_addr(), 1).await?;
    assert!(run.success, "zone publish: {run:?}");
    wait_until(
        "the zone to be answered",
        Duration::from_secs(30),
        || async {
            client::ask(udp, "www.test.kad.", RecordType::A)
                .await
                .is_ok_and(|m| !m.answers.is_empty())
        },
    )
    .await?;

    let good = query_message("www.test.kad.", RecordType::A, Some(1232))?.to_vec()?;
    let mut rng = StdRng::seed_from_u64(0x6b61_646e);
    let packets: Vec<Vec<u8>> = (0..PACKETS)
        .map(|i| malformed(&mut rng, &good, i))
        .collect();

    // UDP: every packet from one socket; the replies are read as they come.
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    for packet in &packets {
        socket.send_to(packet, udp).await?;
    }
    let mut buf = vec![0u8; 65_535];
    let mut udp_replies = 0usize;
    // Replies stop once the stub has dealt with everything.
    while let Ok(received) = timeout(Duration::from_secs(2), socket.recv_from(&mut buf)).await {
        let (len, from) = received?;
        assert_eq!(from, udp);
        assert_response(&buf[..len], "UDP");
        udp_replies += 1;
        assert!(udp_replies <= PACKETS, "more replies than packets");
    }

    // TCP: the same packets, one connection each, some with broken framing.
    let mut tcp_replies = 0usize;
    for (chunk_start, chunk) in packets.chunks(TCP_PARALLEL).enumerate() {
        let mut tasks = JoinSet::new();
        for (offset, packet) in chunk.iter().enumerate() {
            let i = chunk_start * TCP_PARALLEL + offset;
            tasks.spawn(tcp_garbage(tcp, tcp_bytes(&mut rng, packet, &good, i)));
        }
        while let Some(done) = tasks.join_next().await {
            let reply = done??;
            let (messages, _partial) = frames(&reply);
            for message in &messages {
                assert_response(message, "TCP");
            }
            tcp_replies += messages.len();
        }
    }

    // Connections stalled mid-message stay open while good queries come in.
    let mut stalled = Vec::with_capacity(STALLED);
    for _ in 0..STALLED {
        let mut stream = TcpStream::connect(tcp).await?;
        stream.write_all(&[0xff, 0xff, 0x12, 0x34]).await?;
        stalled.push(stream);
    }

    assert_alive(&mut node)?;
    for over_tcp in [false, true] {
        let mut query = query_message("wWw.TeSt.KaD.", RecordType::A, Some(1232))?;
        // AD only when asked for (RFC 6840 §5.8).
        query.metadata.authentic_data = true;
        let reply = if over_tcp {
            client::tcp(tcp, &query).await?
        } else {
            client::udp(udp, &query).await?
        };
        assert_eq!(reply.metadata.id, query.metadata.id);
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.metadata.authentic_data, "tcp {over_tcp}: {reply:?}");
        assert_eq!(reply.answers.len(), 1, "tcp {over_tcp}: {reply:?}");
        assert_eq!(reply.answers[0].name.to_ascii(), "wWw.TeSt.KaD.");
        assert_eq!(reply.answers[0].data, RData::A(A::new(192, 0, 2, 10)));
        let outside = query_message("good.example.", RecordType::A, None)?;
        let reply = if over_tcp {
            client::tcp(tcp, &outside).await?
        } else {
            client::udp(udp, &outside).await?
        };
        assert_eq!(
            reply.answers.first().map(|r| r.data.clone()),
            Some(RData::A(A::new(198, 51, 100, 9))),
            "{reply:?}"
        );
    }
    assert_alive(&mut node)?;
    let stderr = node.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    tracing::info!(udp_replies, tcp_replies, "garbage answered");
    drop(stalled);
    Ok(())
}
