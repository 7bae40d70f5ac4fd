//! DNS over TLS to an upstream (RFC 7858): a rustls client verifying the
//! server against the system's trust store (plus an optional extra CA file),
//! and one connection per upstream kept open between exchanges (closed after
//! [`IDLE_TIMEOUT`] unused, reopened once if the server closed it meanwhile).

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::Message;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::error::ForwardError;
use crate::exchange::{Response, check};
use crate::upstream::Upstream;

/// How long an idle upstream connection is kept (below common servers' own
/// idle timeouts, so the server rarely closes it first).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// ALPN id of DNS over TLS.
const ALPN_DOT: &[u8] = b"dot";

/// Why the TLS client for upstreams cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsClientError {
    /// The extra CA file cannot be read or holds no certificate.
    #[error("upstream CA file {}: {reason}", path.display())]
    CaFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("TLS client configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The rustls client config for DoT/DoH upstreams: the system's trust store
/// (rustls-native-certs: /etc/ssl/certs on Debian) and the certificates of
/// `extra_ca`, if given; offering `alpn`.
pub(crate) fn client_config(
    extra_ca: Option<&Path>,
    alpn: &[u8],
) -> Result<Arc<ClientConfig>, TlsClientError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "skipping part of the system trust store");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "system trust store loaded");
    if let Some(path) = extra_ca {
        let bad = |reason: String| TlsClientError::CaFile {
            path: path.to_owned(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad(e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certs.is_empty() {
            return Err(bad("no CERTIFICATE block in the file".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The DoT side of the forwarder: one idle connection kept per upstream.
pub(crate) struct DotClient {
    connector: TlsConnector,
    idle: Mutex<HashMap<Upstream, (TlsStream<TcpStream>, Instant)>>,
}

impl std::fmt::Debug for DotClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DotClient").finish_non_exhaustive()
    }
}

impl DotClient {
    /// A client trusting the system's roots and those in `extra_ca`.
    pub(crate) fn new(extra_ca: Option<&Path>) -> Result<Self, TlsClientError> {
        Ok(Self {
            connector: TlsConnector::from(client_config(extra_ca, ALPN_DOT)?),
            idle: Mutex::default(),
        })
    }

    /// One exchange with `upstream` (a [`Upstream::Tls`]): over its idle
    /// connection if one is kept and fresh (once more over a new one if
    /// that fails: the server may have closed it), else over a new one. Not
    /// bounded in time: the caller wraps it in a timeout.
    pub(crate) async fn exchange(
        &self,
        upstream: &Upstream,
        query: &Message,
        bytes: &[u8],
    ) -> Result<Response, ForwardError> {
        let server = upstream.addr();
        let idle = self.take_idle(upstream);
        if let Some(stream) = idle {
            match one(stream, server, query, bytes).await {
                Ok((response, stream)) => {
                    self.put_idle(upstream, stream);
                    return Ok(response);
                }
                Err(error) => {
                    tracing::debug!(%server, %error, "kept DoT connection failed: reconnecting")
                }
            }
        }
        let stream = self.connect(upstream).await?;
        let (response, stream) = one(stream, server, query, bytes).await?;
        self.put_idle(upstream, stream);
        Ok(response)
    }

    async fn connect(&self, upstream: &Upstream) -> Result<TlsStream<TcpStream>, ForwardError> {
        let server = upstream.addr();
        let io = |source: io::Error| ForwardError::Io {
            server,
            transport: "tls",
            source: Arc::new(source),
        };
        let name = match upstream {
            Upstream::Tls {
                name: Some(name), ..
            } => ServerName::try_from(name.clone())
                .map_err(|e| io(io::Error::new(io::ErrorKind::InvalidInput, e)))?,
            _ => ServerName::IpAddress(server.ip().into()),
        };
        let tcp = TcpStream::connect(server).await.map_err(io)?;
        let _ = tcp.set_nodelay(true);
        self.connector.connect(name, tcp).await.map_err(io)
    }

    fn take_idle(&self, upstream: &Upstream) -> Option<TlsStream<TcpStream>> {
        let (stream, since) = self.lock().remove(upstream)?;
        (since.elapsed() < IDLE_TIMEOUT).then_some(stream)
    }

    fn put_idle(&self, upstream: &Upstream, stream: TlsStream<TcpStream>) {
        let mut idle = self.lock();
        let now = Instant::now();
        // Expired connections of other upstreams go now (bounded by the
        // number of upstreams configured).
        idle.retain(|_, (_, since)| now.duration_since(*since) < IDLE_TIMEOUT);
        idle.insert(upstream.clone(), (stream, now));
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<Upstream, (TlsStream<TcpStream>, Instant)>> {
        // A map of connections: consistent after any panic.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One length-prefixed exchange on `stream`; the stream back for reuse.
async fn one(
    mut stream: TlsStream<TcpStream>,
    server: std::net::SocketAddr,
    query: &Message,
    bytes: &[u8],
) -> Result<(Response, TlsStream<TcpStream>), ForwardError> {
    let io = |source: io::Error| ForwardError::Io {
        server,
        transport: "tls",
        source: Arc::new(source),
    };
    let len = u16::try_from(bytes.len()).map_err(|_| ForwardError::BadRequest {
        reason: "query longer than 65535 bytes",
    })?;
    let mut framed = Vec::with_capacity(bytes.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut buf = vec![0; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(io)?;
    Ok((check(server, query, &buf)?, stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{OpCode, Query};
    use hickory_proto::rr::{Name, RData, Record, RecordType, rdata::A};
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A loopback DoT server with a self-signed certificate for `dns.test`
    /// answering every A query with 192.0.2.1; counts connections accepted.
    async fn dot_server(
        dir: &Path,
    ) -> (
        std::net::SocketAddr,
        Arc<AtomicUsize>,
        tokio::task::JoinHandle<()>,
    ) {
        let cert = rcgen::generate_simple_self_signed(vec!["dns.test".into()]).unwrap();
        std::fs::write(dir.join("ca.pem"), cert.cert.pem()).unwrap();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(
            cert.key_pair.serialize_pem().as_bytes(),
        )
        .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    while let Ok(len) = tls.read_u16().await {
                        let mut buf = vec![0; usize::from(len)];
                        if tls.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        let query = Message::from_vec(&buf).unwrap();
                        let mut response = Message::response(query.metadata.id, OpCode::Query);
                        response.queries = query.queries.clone();
                        response.answers.push(Record::from_rdata(
                            query.queries[0].name.clone(),
                            300,
                            RData::A(A::new(192, 0, 2, 1)),
                        ));
                        let bytes = response.to_vec().unwrap();
                        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
                        out.extend_from_slice(&bytes);
                        if tls.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted, task)
    }

    #[tokio::test]
    async fn verifies_the_name_and_reuses_the_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (addr, accepted, task) = dot_server(dir.path()).await;
        let client = DotClient::new(Some(&dir.path().join("ca.pem"))).unwrap();
        let upstream: Upstream = format!("tls://{addr}#dns.test").parse().unwrap();
        for id in 1..=3u16 {
            let mut query = Message::query();
            query.metadata.id = id;
            query.add_query(Query::query(
                Name::from_ascii("a.test.").unwrap(),
                RecordType::A,
            ));
            let bytes = query.to_vec().unwrap();
            let response = client.exchange(&upstream, &query, &bytes).await.unwrap();
            assert_eq!(
                response.message.answers[0].data,
                RData::A(A::new(192, 0, 2, 1))
            );
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for three queries"
        );

        // A name the certificate does not carry is refused.
        let wrong: Upstream = format!("tls://{addr}#other.test").parse().unwrap();
        let mut query = Message::query();
        query.add_query(Query::query(
            Name::from_ascii("a.test.").unwrap(),
            RecordType::A,
        ));
        let bytes = query.to_vec().unwrap();
        assert!(matches!(
            client.exchange(&wrong, &query, &bytes).await,
            Err(ForwardError::Io {
                transport: "tls",
                ..
            })
        ));
        // Without the test CA, the system roots do not trust it.
        let untrusting = DotClient::new(None).unwrap();
        assert!(
            untrusting
                .exchange(&upstream, &query, &bytes)
                .await
                .is_err()
        );
        assert!(matches!(
            DotClient::new(Some(&dir.path().join("missing.pem"))),
            Err(TlsClientError::CaFile { .. })
        ));
        task.abort();
    }
}
