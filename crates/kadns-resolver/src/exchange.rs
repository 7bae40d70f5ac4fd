//! One DNS exchange with one server: UDP, then TCP when the answer is truncated.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::error::ForwardError;

/// Largest DNS message over UDP or TCP, in bytes (the TCP length prefix is 16 bits).
const MAX_MESSAGE: usize = u16::MAX as usize;

/// A response that answers the query it was checked against, and its size
/// on the wire (what the forward cache counts it as, without encoding it
/// again).
#[derive(Debug)]
pub(crate) struct Response {
    /// The decoded response.
    pub(crate) message: Message,
    /// Its length in bytes, as received.
    pub(crate) wire_len: usize,
}

/// Sends `query` (already encoded as `bytes`) to `server` and returns its
/// response. Not bounded in time: the caller wraps it in a timeout, and
/// everything here is safe to cancel. Over UDP, datagrams that do not answer
/// the query (another id, another question, not DNS) are dropped and the
/// wait goes on: however many an off-path sender manages to get through,
/// only the caller's deadline ends the exchange.
pub(crate) async fn exchange(
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
) -> Result<Response, ForwardError> {
    let response = udp(server, query, bytes).await?;
    if !response.message.metadata.truncation {
        return Ok(response);
    }
    tracing::debug!(%server, "truncated over UDP, retrying over TCP");
    tcp(server, query, bytes).await
}

async fn udp(server: SocketAddr, query: &Message, bytes: &[u8]) -> Result<Response, ForwardError> {
    let io = |source: io::Error| ForwardError::Io {
        server,
        transport: "udp",
        source: Arc::new(source),
    };
    let socket = UdpSocket::bind(SocketAddr::new(local_ip(server.ip()), 0))
        .await
        .map_err(io)?;
    // Connected: the kernel drops datagrams from anyone but the server.
    socket.connect(server).await.map_err(io)?;
    socket.send(bytes).await.map_err(io)?;
    // Room for the largest datagram, left uninitialised: the kernel writes
    // what arrives (no 64 KiB zeroed per query).
    let mut buf = Vec::with_capacity(MAX_MESSAGE);
    let mut dropped: u64 = 0;
    loop {
        buf.clear();
        socket.recv_buf(&mut buf).await.map_err(io)?;
        match check(server, query, &buf) {
            Ok(response) => return Ok(response),
            Err(error) => {
                dropped += 1;
                // Logged once, then every 1,024th: a spray costs no log flood.
                if dropped == 1 || dropped.is_multiple_of(1_024) {
                    tracing::debug!(%server, %error, dropped, "dropping datagrams that do not answer the query");
                }
            }
        }
    }
}

async fn tcp(server: SocketAddr, query: &Message, bytes: &[u8]) -> Result<Response, ForwardError> {
    let io = |source: io::Error| ForwardError::Io {
        server,
        transport: "tcp",
        source: Arc::new(source),
    };
    let len = u16::try_from(bytes.len()).map_err(|_| ForwardError::BadRequest {
        reason: "query longer than 65535 bytes",
    })?;
    let mut stream = TcpStream::connect(server).await.map_err(io)?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(io)?;
    check(server, query, &buf)
}

/// Decodes `bytes` and checks that it is a response to `query`: same id, QR
/// set, and the same question (names compared case-insensitively, since not
/// every server keeps the case of the question). A response without a
/// question is accepted only as an error.
pub(crate) fn check(
    server: SocketAddr,
    query: &Message,
    bytes: &[u8],
) -> Result<Response, ForwardError> {
    let malformed = |reason: String| ForwardError::Malformed { server, reason };
    let response = Message::from_vec(bytes).map_err(|e| malformed(e.to_string()))?;
    if response.metadata.id != query.metadata.id {
        return Err(malformed(format!(
            "id {} does not match {}",
            response.metadata.id, query.metadata.id
        )));
    }
    if response.metadata.message_type != MessageType::Response {
        return Err(malformed("a query, not a response".into()));
    }
    let same_question = match response.queries.as_slice() {
        [] => response.metadata.response_code != ResponseCode::NoError,
        questions => questions == query.queries.as_slice(),
    };
    if !same_question {
        return Err(malformed("the question does not match".into()));
    }
    Ok(Response {
        message: response,
        wire_len: bytes.len(),
    })
}

/// The address to send from: loopback for a loopback server (nothing leaves
/// the host), otherwise any address of the server's family.
fn local_ip(server: IpAddr) -> IpAddr {
    match (server, server.is_loopback()) {
        (IpAddr::V4(_), true) => Ipv4Addr::LOCALHOST.into(),
        (IpAddr::V4(_), false) => Ipv4Addr::UNSPECIFIED.into(),
        (IpAddr::V6(_), true) => Ipv6Addr::LOCALHOST.into(),
        (IpAddr::V6(_), false) => Ipv6Addr::UNSPECIFIED.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::{Name, RecordType};

    #[test]
    fn checks_responses() {
        let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("a.example.").unwrap(),
            RecordType::A,
        ));
        let mut response = Message::response(query.metadata.id, OpCode::Query);
        response.add_query(Query::query(
            Name::from_ascii("A.EXAMPLE.").unwrap(),
            RecordType::A,
        ));
        assert!(check(server, &query, &response.to_vec().unwrap()).is_ok());

        let mut wrong_id = response.clone();
        wrong_id.metadata.id = wrong_id.metadata.id.wrapping_add(1);
        assert!(check(server, &query, &wrong_id.to_vec().unwrap()).is_err());
        let mut wrong_name = response.clone();
        wrong_name.queries[0].name = Name::from_ascii("b.example.").unwrap();
        assert!(check(server, &query, &wrong_name.to_vec().unwrap()).is_err());
        assert!(
            check(server, &query, &query.to_vec().unwrap()).is_err(),
            "not a response"
        );
        assert!(check(server, &query, b"\x00\x01").is_err());
        let mut empty = Message::error_msg(query.metadata.id, OpCode::Query, ResponseCode::FormErr);
        assert!(check(server, &query, &empty.to_vec().unwrap()).is_ok());
        empty.metadata.response_code = ResponseCode::NoError;
        assert!(check(server, &query, &empty.to_vec().unwrap()).is_err());
    }

    /// A server that first sprays the query's socket with 500 datagrams
    /// that do not answer it (wrong id, wrong question, a query, garbage),
    /// from its own address so that the kernel lets them through as an
    /// off-path spoofer's would, then answers: the answer is taken.
    #[tokio::test]
    async fn junk_datagrams_never_end_an_exchange() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let server = upstream.local_addr().unwrap();
        let mut query = Message::query();
        query.metadata.id = 7;
        query.add_query(Query::query(
            Name::from_ascii("a.example.").unwrap(),
            RecordType::A,
        ));
        let bytes = query.to_vec().unwrap();
        let spray = tokio::spawn(async move {
            let mut buf = vec![0; 512];
            let (len, from) = upstream.recv_from(&mut buf).await.unwrap();
            let asked = Message::from_vec(&buf[..len]).unwrap();
            let mut wrong_id = Message::response(asked.metadata.id ^ 1, OpCode::Query);
            wrong_id.queries = asked.queries.clone();
            let mut wrong_name = Message::response(asked.metadata.id, OpCode::Query);
            wrong_name.add_query(Query::query(
                Name::from_ascii("b.example.").unwrap(),
                RecordType::A,
            ));
            let junk = [
                wrong_id.to_vec().unwrap(),
                wrong_name.to_vec().unwrap(),
                asked.to_vec().unwrap(),
                b"\xde\xad".to_vec(),
            ];
            for i in 0..500 {
                upstream.send_to(&junk[i % junk.len()], from).await.unwrap();
                if i % 32 == 31 {
                    // Paced, so that the receive buffer never overflows.
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut answer = Message::response(asked.metadata.id, OpCode::Query);
            answer.queries = asked.queries.clone();
            upstream
                .send_to(&answer.to_vec().unwrap(), from)
                .await
                .unwrap();
        });
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            exchange(server, &query, &bytes),
        )
        .await
        .expect("answered before the test's bound")
        .expect("the real answer, after 500 junk datagrams");
        assert_eq!(response.message.metadata.id, 7);
        assert_eq!(response.message.queries, query.queries);
        spray.await.unwrap();
    }
}
