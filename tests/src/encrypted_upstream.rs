//! An upstream that speaks DNS over TLS and DNS over HTTPS (HTTP/2, POST
//! and GET) on loopback, for forwarding tests: a TLS front with a
//! [`TestCerts`] certificate that relays every query over TCP to a plain
//! [`TestUpstream`] answering from a fixed table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_proto::rr::RData;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::TestResult;
use crate::tls::TestCerts;
use crate::upstream::TestUpstream;

/// A DoT and a DoH server on loopback answering from a fixed table (see
/// [`TestUpstream::start`]). Stops when dropped.
#[derive(Debug)]
pub struct TestEncryptedUpstream {
    dot: SocketAddr,
    doh: SocketAddr,
    dot_queries: Arc<AtomicU64>,
    doh_queries: Arc<AtomicU64>,
    dot_connections: Arc<AtomicU64>,
    doh_connections: Arc<AtomicU64>,
    _plain: Arc<TestUpstream>,
    _tasks: JoinSet<()>,
}

impl TestEncryptedUpstream {
    /// Starts both servers with the certificate of `certs` (for
    /// [`TEST_SERVER_NAME`](crate::tls::TEST_SERVER_NAME) and 127.0.0.1),
    /// answering `records` with TTL 300 and unknown names with NXDOMAIN.
    pub async fn start(records: &[(&str, RData)], certs: &TestCerts) -> TestResult<Self> {
        let plain = Arc::new(TestUpstream::start(records).await?);
        let chain = CertificateDer::pem_file_iter(&certs.cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&certs.key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = |alpn: &[&[u8]]| -> TestResult<TlsAcceptor> {
            let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())?;
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            Ok(TlsAcceptor::from(Arc::new(config)))
        };
        let dot_acceptor = config(&[b"dot"])?;
        let doh_acceptor = config(&[b"h2"])?;
        let dot_listener = TcpListener::bind("127.0.0.1:0").await?;
        let doh_listener = TcpListener::bind("127.0.0.1:0").await?;
        let (dot, doh) = (dot_listener.local_addr()?, doh_listener.local_addr()?);
        let backend = plain.addr();
        let dot_queries = Arc::new(AtomicU64::new(0));
        let doh_queries = Arc::new(AtomicU64::new(0));
        let dot_connections = Arc::new(AtomicU64::new(0));
        let doh_connections = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        {
            let (queries, connections) = (dot_queries.clone(), dot_connections.clone());
            tasks.spawn(async move {
                while let Ok((tcp, _)) = dot_listener.accept().await {
                    connections.fetch_add(1, Ordering::Relaxed);
                    let (acceptor, queries) = (dot_acceptor.clone(), queries.clone());
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        while let Ok(Some(query)) = read_frame(&mut tls).await {
                            queries.fetch_add(1, Ordering::Relaxed);
                            let Ok(reply) = relay(backend, &query).await else {
                                return;
                            };
                            if write_frame(&mut tls, &reply).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            });
        }
        {
            let (queries, connections) = (doh_queries.clone(), doh_connections.clone());
            tasks.spawn(async move {
                while let Ok((tcp, _)) = doh_listener.accept().await {
                    connections.fetch_add(1, Ordering::Relaxed);
                    let (acceptor, queries) = (doh_acceptor.clone(), queries.clone());
                    tokio::spawn(async move {
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            let queries = queries.clone();
                            async move {
                                Ok::<_, std::convert::Infallible>(
                                    doh_answer(request, backend, &queries).await,
                                )
                            }
                        });
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    });
                }
            });
        }
        Ok(Self {
            dot,
            doh,
            dot_queries,
            doh_queries,
            dot_connections,
            doh_connections,
            _plain: plain,
            _tasks: tasks,
        })
    }

    /// The DoT address.
    pub fn dot_addr(&self) -> SocketAddr {
        self.dot
    }

    /// The DoH address (path `/dns-query`).
    pub fn doh_addr(&self) -> SocketAddr {
        self.doh
    }

    /// Queries received over DoT so far.
    pub fn dot_queries(&self) -> u64 {
        self.dot_queries.load(Ordering::Relaxed)
    }

    /// DoT connections accepted so far (TLS handshakes attempted).
    pub fn dot_connections(&self) -> u64 {
        self.dot_connections.load(Ordering::Relaxed)
    }

    /// DoH connections accepted so far.
    pub fn doh_connections(&self) -> u64 {
        self.doh_connections.load(Ordering::Relaxed)
    }

    /// Queries received over DoH so far.
    pub fn doh_queries(&self) -> u64 {
        self.doh_queries.load(Ordering::Relaxed)
    }
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    if stream.read_exact(&mut len).await.is_err() {
        return Ok(None);
    }
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).await?;
    Ok(Some(buf))
}

async fn write_frame<S: AsyncWrite + Unpin>(stream: &mut S, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).map_err(std::io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(message);
    stream.write_all(&framed).await?;
    stream.flush().await
}

/// One query to the plain upstream over TCP.
async fn relay(backend: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut tcp = TcpStream::connect(backend).await?;
    write_frame(&mut tcp, query).await?;
    read_frame(&mut tcp)
        .await?
        .ok_or_else(|| std::io::Error::other("the plain upstream closed"))
}

async fn doh_answer(
    request: Request<Incoming>,
    backend: SocketAddr,
    queries: &AtomicU64,
) -> Response<Full<Bytes>> {
    let status = |code: StatusCode| {
        let mut response = Response::new(Full::default());
        *response.status_mut() = code;
        response
    };
    if request.uri().path() != "/dns-query" {
        return status(StatusCode::NOT_FOUND);
    }
    let query = match *request.method() {
        Method::GET => {
            let Some(encoded) = request
                .uri()
                .query()
                .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("dns=")))
            else {
                return status(StatusCode::BAD_REQUEST);
            };
            match URL_SAFE_NO_PAD.decode(encoded) {
                Ok(query) => query,
                Err(_) => return status(StatusCode::BAD_REQUEST),
            }
        }
        Method::POST => match Limited::new(request.into_body(), 65_535).collect().await {
            Ok(body) => body.to_bytes().to_vec(),
            Err(_) => return status(StatusCode::PAYLOAD_TOO_LARGE),
        },
        _ => return status(StatusCode::METHOD_NOT_ALLOWED),
    };
    queries.fetch_add(1, Ordering::Relaxed);
    match relay(backend, &query).await {
        Ok(reply) => {
            let mut response = Response::new(Full::new(Bytes::from(reply)));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/dns-message"),
            );
            response
        }
        Err(_) => status(StatusCode::BAD_GATEWAY),
    }
}
