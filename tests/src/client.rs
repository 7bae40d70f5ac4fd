//! A minimal DNS client: one query, one response, bounded in time.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::TestResult;

/// How long any single exchange may take.
pub const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a recursive query for `name`/`rtype`, with EDNS advertising
/// `edns_payload` bytes if given.
pub fn query_message(
    name: &str,
    rtype: RecordType,
    edns_payload: Option<u16>,
) -> TestResult<Message> {
    let mut message = Message::new(rand::random(), MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name)?, rtype));
    if let Some(payload) = edns_payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.edns = Some(edns);
    }
    Ok(message)
}

/// Sends raw bytes over UDP and waits for one datagram back (`None` on timeout).
pub async fn udp_raw(
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> TestResult<Option<Vec<u8>>> {
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "127.0.0.1:0"
    } else {
        "[::1]:0"
    })
    .await?;
    socket.send_to(bytes, server).await?;
    let mut buf = vec![0u8; 65_535];
    match timeout(wait, socket.recv_from(&mut buf)).await {
        Ok(received) => {
            let (len, _) = received?;
            buf.truncate(len);
            Ok(Some(buf))
        }
        Err(_) => Ok(None),
    }
}

/// Sends one message over UDP and decodes the response.
pub async fn udp(server: SocketAddr, message: &Message) -> TestResult<Message> {
    let bytes = udp_raw(server, &message.to_vec()?, EXCHANGE_TIMEOUT)
        .await?
        .ok_or("no UDP response before the deadline")?;
    Ok(Message::from_vec(&bytes)?)
}

/// Sends raw bytes as one length-prefixed TCP message and reads one response
/// (`None` if the server closed the connection or said nothing in `wait`).
pub async fn tcp_raw(
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> TestResult<Option<Vec<u8>>> {
    let mut stream = timeout(EXCHANGE_TIMEOUT, TcpStream::connect(server)).await??;
    let len = u16::try_from(bytes.len())?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(bytes).await?;
    let read = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    match timeout(wait, read).await {
        Ok(Ok(buf)) => Ok(Some(buf)),
        Ok(Err(_)) | Err(_) => Ok(None),
    }
}

/// Sends one message over TCP and decodes the response.
pub async fn tcp(server: SocketAddr, message: &Message) -> TestResult<Message> {
    let bytes = tcp_raw(server, &message.to_vec()?, EXCHANGE_TIMEOUT)
        .await?
        .ok_or("no TCP response before the deadline")?;
    Ok(Message::from_vec(&bytes)?)
}

/// One query over UDP, EDNS with a 1232-byte buffer.
pub async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> TestResult<Message> {
    udp(server, &query_message(name, rtype, Some(1232))?).await
}
