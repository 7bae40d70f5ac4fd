//! DNS over HTTPS to an upstream (RFC 8484): POST `application/dns-message`
//! over HTTP/2 (ALPN `h2`) on a rustls connection verified like DoT's, one
//! HTTP/2 connection per upstream shared by every exchange (multiplexed),
//! replaced once it is closed or unused for [`IDLE_TIMEOUT`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hickory_proto::op::Message;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use crate::error::ForwardError;
use crate::exchange::{Response, check};
use crate::exchange_tls::{IDLE_TIMEOUT, TlsClientError, client_config};
use crate::upstream::Upstream;

/// ALPN id of HTTP/2, the only HTTP version this client speaks.
const ALPN_H2: &[u8] = b"h2";

/// The media type of a DNS message in HTTP.
const DNS_MESSAGE: &str = "application/dns-message";

/// Largest response body read: the largest DNS message.
const MAX_RESPONSE: usize = 65_535;

/// A kept HTTP/2 connection: its request handle and when it was last used.
type Kept = (SendRequest<Full<Bytes>>, Instant);

/// The DoH side of the forwarder: one HTTP/2 connection kept per upstream.
pub(crate) struct DohClient {
    connector: TlsConnector,
    connections: Mutex<HashMap<Upstream, Kept>>,
}

impl std::fmt::Debug for DohClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DohClient").finish_non_exhaustive()
    }
}

impl DohClient {
    /// A client trusting the system's roots and those in `extra_ca`.
    pub(crate) fn new(extra_ca: Option<&Path>) -> Result<Self, TlsClientError> {
        Ok(Self {
            connector: TlsConnector::from(client_config(extra_ca, ALPN_H2)?),
            connections: Mutex::default(),
        })
    }

    /// One exchange with `upstream` (a [`Upstream::Https`]): over its kept
    /// connection if it is open and fresh (once more over a new one if that
    /// fails), else over a new one. Not bounded in time: the caller wraps it
    /// in a timeout; safe to cancel.
    pub(crate) async fn exchange(
        &self,
        upstream: &Upstream,
        query: &Message,
        bytes: &[u8],
    ) -> Result<Response, ForwardError> {
        let server = upstream.addr();
        if let Some(send) = self.kept(upstream) {
            match post(send, upstream, query, bytes).await {
                Ok(response) => return Ok(response),
                Err(error) => {
                    tracing::debug!(%server, %error, "kept DoH connection failed: reconnecting");
                    self.forget(upstream);
                }
            }
        }
        let send = self.connect(upstream).await?;
        self.keep(upstream, send.clone());
        post(send, upstream, query, bytes).await
    }

    async fn connect(&self, upstream: &Upstream) -> Result<SendRequest<Full<Bytes>>, ForwardError> {
        let server = upstream.addr();
        let name = match upstream {
            Upstream::Https {
                name: Some(name), ..
            } => ServerName::try_from(name.clone())
                .map_err(|e| io_error(server, io::Error::new(io::ErrorKind::InvalidInput, e)))?,
            _ => ServerName::IpAddress(server.ip().into()),
        };
        let tcp = TcpStream::connect(server)
            .await
            .map_err(|e| io_error(server, e))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(name, tcp)
            .await
            .map_err(|e| io_error(server, e))?;
        if tls.get_ref().1.alpn_protocol() != Some(ALPN_H2) {
            return Err(io_error(
                server,
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server does not speak HTTP/2",
                ),
            ));
        }
        let (send, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .map_err(|e| io_error(server, io::Error::other(e)))?;
        // Ends when the server closes the connection or every handle to it
        // is dropped (replaced, or the client dropped).
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%server, %error, "DoH connection ended");
            }
        });
        Ok(send)
    }

    /// The kept connection of `upstream`, if it is open and was used within
    /// [`IDLE_TIMEOUT`]; marked used now.
    fn kept(&self, upstream: &Upstream) -> Option<SendRequest<Full<Bytes>>> {
        let mut connections = self.lock();
        let now = Instant::now();
        // Stale connections of every upstream go now (bounded by the
        // number of upstreams configured).
        connections.retain(|_, (send, since)| {
            !send.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT
        });
        let (send, since) = connections.get_mut(upstream)?;
        *since = now;
        Some(send.clone())
    }

    fn keep(&self, upstream: &Upstream, send: SendRequest<Full<Bytes>>) {
        self.lock().insert(upstream.clone(), (send, Instant::now()));
    }

    fn forget(&self, upstream: &Upstream) {
        self.lock().remove(upstream);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Upstream, Kept>> {
        // A map of connection handles: consistent after any panic.
        self.connections.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn io_error(server: SocketAddr, source: io::Error) -> ForwardError {
    ForwardError::Io {
        server,
        transport: "https",
        source: Arc::new(source),
    }
}

/// One POST on `send`: the response checked to be 200, a DNS message, at
/// most [`MAX_RESPONSE`] bytes, and an answer to `query`.
async fn post(
    mut send: SendRequest<Full<Bytes>>,
    upstream: &Upstream,
    query: &Message,
    bytes: &[u8],
) -> Result<Response, ForwardError> {
    let server = upstream.addr();
    let (authority, path) = match upstream {
        Upstream::Https {
            name: Some(name),
            path,
            ..
        } if server.port() == crate::upstream::DOH_PORT => (name.clone(), path.as_str()),
        Upstream::Https {
            name: Some(name),
            path,
            ..
        } => (format!("{name}:{}", server.port()), path.as_str()),
        Upstream::Https { path, .. } => (server.to_string(), path.as_str()),
        _ => (server.to_string(), crate::upstream::DOH_DEFAULT_PATH),
    };
    let request = Request::post(format!("https://{authority}{path}"))
        .header(header::CONTENT_TYPE, DNS_MESSAGE)
        .header(header::ACCEPT, DNS_MESSAGE)
        .body(Full::new(Bytes::copy_from_slice(bytes)))
        .map_err(|e| io_error(server, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    send.ready()
        .await
        .map_err(|e| io_error(server, io::Error::other(e)))?;
    let response = send
        .send_request(request)
        .await
        .map_err(|e| io_error(server, io::Error::other(e)))?;
    let (head, body) = response.into_parts();
    let malformed = |reason: String| ForwardError::Malformed { server, reason };
    if head.status != StatusCode::OK {
        return Err(malformed(format!("HTTP status {}", head.status)));
    }
    let media = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    if !media.is_some_and(|m| m.eq_ignore_ascii_case(DNS_MESSAGE)) {
        return Err(malformed(format!(
            "Content-Type {media:?}, not {DNS_MESSAGE}"
        )));
    }
    let body = Limited::new(body, MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| malformed(format!("response body: {e}")))?
        .to_bytes();
    check(server, query, &body)
}
