//! Admission limits through the real `kadns serve`, with clients on other
//! loopback addresses (127.0.1.1 is another /24 than 127.0.0.1), one file
//! per limit: response-rate limiting with slip (`rrl.rs`), TCP under 3,000
//! idle connections (`tcp.rs`), fair forwarding slots under a flood of
//! never-answered names and junk datagrams on a forward's socket
//! (`forwarding.rs`), `--allow` replacing the loopback default
//! (`allow.rs`). Every figure a test measures is printed (`--nocapture`)
//! for docs/performance.md. This file holds the helpers they share.

mod allow;
mod forwarding;
mod rrl;
mod tcp;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use kadns_record::hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use kadns_record::hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use kadns_record::hickory_proto::rr::{Name, RecordType};
use kadns_tests::TestResult;
use tokio::net::UdpSocket;
use tokio::time::{Instant, timeout};

/// Bound on each whole test.
const TEST_BOUND: Duration = Duration::from_secs(120);

/// A query for `name` A with EDNS (so that an EDE can come back).
fn query(name: &str) -> TestResult<Message> {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    message.edns = Some(edns);
    Ok(message)
}

/// A UDP socket on `ip` (any loopback address: Linux answers the whole 127/8).
async fn socket_on(ip: &str) -> TestResult<UdpSocket> {
    Ok(UdpSocket::bind(SocketAddr::new(ip.parse()?, 0)).await?)
}

/// Asks `server` for `name` A from a socket on `from`, waiting `wait` per
/// try, `tries` times (a lost datagram is retried, as every stub resolver
/// does); the response, or an error once every try timed out.
async fn ask_from(
    from: &str,
    server: SocketAddr,
    name: &str,
    wait: Duration,
    tries: usize,
) -> TestResult<(Message, usize)> {
    let socket = socket_on(from).await?;
    let message = query(name)?;
    let bytes = message.to_vec()?;
    let mut buf = vec![0u8; 65_535];
    for attempt in 1..=tries {
        socket.send_to(&bytes, server).await?;
        let deadline = Instant::now() + wait;
        while let Ok(received) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            socket.recv_from(&mut buf),
        )
        .await
        {
            let (len, _) = received?;
            let response = Message::from_vec(&buf[..len])?;
            if response.metadata.id == message.metadata.id {
                return Ok((response, attempt));
            }
        }
    }
    Err(format!("no answer from {server} for {name} from {from} in {tries} tries").into())
}

/// The INFO-CODE of the response's Extended DNS Error, if any.
fn ede_code(response: &Message) -> Option<u16> {
    match response
        .edns
        .as_ref()?
        .options()
        .get(EdnsCode::Unknown(15))?
    {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => {
            Some(u16::from_be_bytes([data[0], data[1]]))
        }
        _ => None,
    }
}

/// `GET /metrics` from the node's metrics listener.
fn scrape(addr: SocketAddr) -> TestResult<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// The value of one series in a scrape (0 when absent).
fn series(scrape: &str, name: &str) -> u64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

/// The metrics address a `kadns serve --metrics` printed.
fn metrics_addr(node: &mut kadns_tests::process::KadnsProcess) -> TestResult<SocketAddr> {
    Ok(node
        .stdout_lines()
        .iter()
        .find_map(|l| l.strip_prefix("metrics http "))
        .ok_or("no metrics line")?
        .parse()?)
}

/// Writes `text` as the node's configuration file and returns its path.
fn config_file(dir: &Path, text: &str) -> TestResult<String> {
    let path = dir.join("kadns.toml");
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}
