//! The Prometheus endpoint: `GET /metrics` on an address the operator chose.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Largest request head read, in bytes: a scrape is one short GET.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Time a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Scrapes served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 16;

/// Serves the registry's text encoding over HTTP/1.1 until dropped.
#[derive(Debug)]
pub(crate) struct MetricsServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// Fires if the accept task ends or panics (supervision).
    ended: crate::supervise::Watch,
}

impl MetricsServer {
    /// Binds `addr` and starts answering.
    pub(crate) async fn bind(addr: SocketAddr, registry: Arc<Registry>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        tracing::info!("serving metrics on http://{addr}/metrics");
        let ended = crate::supervise::Watch::new();
        let task = tokio::spawn(ended.watched(serve(listener, registry)));
        Ok(Self { addr, task, ended })
    }

    /// Completes once the accept task has ended (it never does on its own).
    pub(crate) fn ended(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.ended.ended()
    }

    /// The address actually bound.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's JoinSet: they go too.
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        if connections.len() >= MAX_CONNECTIONS {
            let _ = connections.join_next().await;
            continue;
        }
        match listener.accept().await {
            Ok((stream, _)) => {
                connections.spawn(answer(stream, registry.clone()));
            }
            Err(error) => {
                tracing::debug!(%error, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(mut stream: TcpStream, registry: Arc<Registry>) {
    let Ok(Ok(head)) = tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    let (status, content_type, body) =
        if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
            let mut body = String::new();
            match prometheus_client::encoding::text::encode(&mut body, &registry) {
                Ok(()) => (
                    "200 OK",
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    body,
                ),
                Err(_) => (
                    "500 Internal Server Error",
                    "text/plain",
                    "cannot encode metrics\n".to_owned(),
                ),
            }
        } else {
            (
                "404 Not Found",
                "text/plain",
                "only GET /metrics is served\n".to_owned(),
            )
        };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads until the blank line that ends an HTTP request head.
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_REQUEST_HEAD {
            return Err(io::ErrorKind::InvalidData.into());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
