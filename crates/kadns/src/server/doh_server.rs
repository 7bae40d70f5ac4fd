//! The DNS over HTTPS listener (RFC 8484): TLS (ALPN `h2`, `http/1.1`),
//! then hyper's HTTP/2 or HTTP/1.1 server on the connection, every request
//! checked by [`doh`](super::doh) and answered through the [`Answerer`].
//!
//! Each connection holds a [`Slot`] from the table TCP and DoT use, marked
//! busy while a request is in flight. A connection is closed gracefully
//! when it has had no request for the idle timeout, when a newer connection
//! evicts it while idle, or at shutdown. HTTP/2 streams per connection are
//! capped like TCP pipelining; a request body is read within the idle
//! timeout and at most [`MAX_DOH_QUERY`] bytes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::conn_limit::{ConnectionSlots, Slot};
use super::doh::{self, DohError, DohRequest, MAX_DOH_QUERY};
use super::tcp::TcpSettings;
use super::{Answerer, Disposition, QueryContext, Transport, accept};

/// How often an open connection checks whether it is idle or evicted.
const IDLE_CHECK: Duration = Duration::from_millis(500);

/// Everything a DoH connection task needs besides its socket.
pub(crate) struct DohShared<A> {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) answerer: Arc<A>,
    pub(crate) settings: TcpSettings,
    pub(crate) handshake: Duration,
    pub(crate) shutdown: CancellationToken,
}

/// Accepts DoH connections until `shutdown`, each under a slot from
/// `slots`, each served in its own task.
pub(crate) async fn accept_loop<A: Answerer>(
    listener: TcpListener,
    shared: Arc<DohShared<A>>,
    slots: ConnectionSlots,
) {
    let shutdown = shared.shutdown.clone();
    accept::accept_loop(listener, slots, "DoH", shutdown, |stream, client, slot| {
        connection(stream, client, slot, shared.clone())
    })
    .await;
}

/// What the requests of one connection share with its task: the slot, and
/// whether (and since when) nothing is in flight.
struct Activity {
    slot: Slot,
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
}

impl Activity {
    fn begin(&self) {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.slot.busy();
        }
    }

    fn end(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.lock() = Instant::now();
            self.slot.idle();
        }
    }

    fn is_idle_for(&self, idle: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0 && self.lock().elapsed() >= idle
    }

    fn is_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        // An instant: consistent after any panic.
        self.idle_since.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks a request finished when dropped, also when hyper drops the
/// request's future (the client reset the stream).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

async fn connection<A: Answerer>(
    stream: TcpStream,
    client: SocketAddr,
    slot: Slot,
    shared: Arc<DohShared<A>>,
) {
    let handshake = shared.handshake;
    let Some(tls) =
        accept::tls_handshake(&shared.acceptor, stream, handshake, &slot, client, "DoH").await
    else {
        return;
    };
    let idle_timeout = shared.settings.idle_timeout;
    let activity = Arc::new(Activity {
        slot,
        in_flight: AtomicUsize::new(0),
        idle_since: Mutex::new(Instant::now()),
    });
    let service = {
        let (activity, shared) = (activity.clone(), shared.clone());
        hyper::service::service_fn(move |request: Request<Incoming>| {
            activity.begin();
            let guard = InFlight(activity.clone());
            let shared = shared.clone();
            async move {
                let response = answer(request, client, &shared).await;
                drop(guard);
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout)
        .max_buf_size(MAX_DOH_QUERY.max(8192) * 2);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(u32::try_from(shared.settings.max_in_flight.max(1)).unwrap_or(16));
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let mut ticks = tokio::time::interval(IDLE_CHECK);
    let shutdown = shared.shutdown.clone();
    let reason = loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(error) = done {
                    debug!(%client, %error, "DoH connection ended with an error");
                }
                return;
            }
            _ = ticks.tick() => {
                if activity.is_idle_for(idle_timeout) {
                    break "idle";
                }
                if activity.slot.is_evicted() && activity.is_idle() {
                    break "evicted by a newer connection";
                }
            }
            () = activity.slot.evicted(), if activity.is_idle() => {
                break "evicted by a newer connection";
            }
            () = shutdown.cancelled() => break "shutting down",
        }
    };
    debug!(%client, reason, "closing the DoH connection");
    conn.as_mut().graceful_shutdown();
    if timeout(idle_timeout, conn.as_mut()).await.is_err() {
        debug!(%client, "the DoH connection did not close in time: dropped");
    }
}

/// One HTTP request: its DNS query out, the answer back, or a 4xx that says
/// what is wrong.
async fn answer<A: Answerer>(
    request: Request<Incoming>,
    client: SocketAddr,
    shared: &DohShared<A>,
) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let query = match doh::parse_head(&head.method, &head.uri, &head.headers) {
        Ok(DohRequest::Query(query)) => query,
        Ok(DohRequest::ReadBody) => {
            let read = timeout(
                shared.settings.idle_timeout,
                Limited::new(body, MAX_DOH_QUERY).collect(),
            )
            .await;
            match read {
                Ok(Ok(collected)) => {
                    let bytes = collected.to_bytes().to_vec();
                    if let Err(error) = doh::check_body(&bytes) {
                        return refuse(client, &error);
                    }
                    bytes
                }
                Ok(Err(error)) => {
                    // Limited's error when the body is over the limit, or
                    // the connection's when the body broke off.
                    if error.is::<http_body_util::LengthLimitError>() {
                        return refuse(client, &DohError::TooLarge);
                    }
                    debug!(%client, %error, "cannot read a DoH request body");
                    return plain(StatusCode::BAD_REQUEST, "cannot read the request body\n");
                }
                Err(_) => {
                    debug!(%client, "DoH request body not sent in time");
                    return plain(
                        StatusCode::REQUEST_TIMEOUT,
                        "request body not sent in time\n",
                    );
                }
            }
        }
        Err(error) => return refuse(client, &error),
    };
    let ctx = QueryContext {
        client,
        transport: Transport::Https,
    };
    let mut out = Vec::new();
    match shared.answerer.answer(&query, ctx, &mut out).await {
        Disposition::Reply if !out.is_empty() => {
            let mut response = Response::builder().status(StatusCode::OK);
            for (name, value) in doh::response_headers(&out) {
                response = response.header(name, value);
            }
            response
                .body(Full::new(Bytes::from(out)))
                .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "\n"))
        }
        _ => plain(StatusCode::BAD_REQUEST, "not a DNS query\n"),
    }
}

fn refuse(client: SocketAddr, error: &DohError) -> Response<Full<Bytes>> {
    debug!(%client, reason = error.label(), "DoH request refused");
    let mut response = plain(error.status(), &format!("{error}\n"));
    if matches!(error, DohError::Method) {
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, POST"));
    }
    response
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
