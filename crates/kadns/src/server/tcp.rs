//! DNS over a byte stream (RFC 1035 §4.2.2, RFC 7766): length-prefixed
//! messages, several in flight per connection, each answer written as soon
//! as it is ready, the connection closed after an idle timeout.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::conn_limit::{ConnectionSlots, Slot};
use super::{Answerer, Disposition, QueryContext, Transport, accept};

/// Largest DNS message over a stream: what a 16-bit length prefix can say.
pub const MAX_MESSAGE: usize = 65_535;

/// How much the frame buffer grows by per read (most queries fit at once).
const READ_CHUNK: usize = 1024;

/// What bounds one stream.
#[derive(Debug)]
pub struct StreamLimits {
    /// Time without a query in flight and without a whole new query after
    /// which the stream is closed. Also bounds each write: a client that
    /// does not read its answers is dropped.
    pub idle_timeout: Duration,
    /// Queries answered at once on this stream (pipelining, RFC 7766 §6.2.1.1);
    /// beyond that the stream is not read until one is answered.
    pub max_in_flight: usize,
    /// The stream's place in the connection caps, held for its life: marked
    /// busy while queries are in flight; when a newer connection evicts it,
    /// the stream closes once its answers are written.
    pub slot: Slot,
}

/// Reads length-prefixed messages off a stream, cancel-safely: bytes read
/// stay in the buffer until a whole message is there.
#[derive(Debug, Default)]
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next whole message; `None` at a clean end of stream.
    async fn next<R: AsyncRead + Unpin>(&mut self, reader: &mut R) -> io::Result<Option<Vec<u8>>> {
        loop {
            if self.buf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]]));
                if self.buf.len() >= 2 + len {
                    let message = self.buf[2..2 + len].to_vec();
                    self.buf.drain(..2 + len);
                    return Ok(Some(message));
                }
                // Room for the rest of this message, no more than a chunk at a time.
                self.buf.reserve((2 + len - self.buf.len()).min(READ_CHUNK));
            } else {
                self.buf.reserve(READ_CHUNK);
            }
            let read = reader.read_buf(&mut self.buf).await?;
            if read == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the stream ended inside a message",
                    ))
                };
            }
        }
    }
}

/// Serves one length-prefixed DNS stream (any `AsyncRead + AsyncWrite`: TCP,
/// or TLS for DoT) until the client closes it, it is idle for
/// `limits.idle_timeout`, a frame is broken, or its slot is evicted.
/// Several queries are answered at once (at most `limits.max_in_flight`),
/// each answer written when it is ready, so one slow lookup does not hold up
/// the cached answers behind it.
///
/// ```no_run
/// # async fn run(stream: tokio::net::TcpStream, answerer: std::sync::Arc<impl kadns::server::Answerer>,
/// #              slots: kadns::server::conn_limit::ConnectionSlots) -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use kadns::server::{QueryContext, Transport, tcp};
///
/// let client = stream.peer_addr()?;
/// let slot = slots.acquire(client.ip())?;
/// let ctx = QueryContext { client, transport: Transport::Tcp };
/// let limits = tcp::StreamLimits { idle_timeout: Duration::from_secs(10), max_in_flight: 16, slot };
/// tcp::serve_stream(stream, ctx, answerer, limits).await;
/// # Ok(()) }
/// ```
pub async fn serve_stream<S, A>(
    stream: S,
    ctx: QueryContext,
    answerer: Arc<A>,
    limits: StreamLimits,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    A: Answerer,
{
    let StreamLimits {
        idle_timeout,
        max_in_flight,
        slot,
    } = limits;
    let max_in_flight = max_in_flight.max(1);
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut frames = FrameReader::default();
    let mut in_flight = FuturesUnordered::new();
    let mut write_buf = Vec::new();
    let mut deadline = Instant::now() + idle_timeout;
    let mut reading = true;
    loop {
        if !reading && in_flight.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            Some((disposition, out)) = in_flight.next(), if !in_flight.is_empty() => {
                let (disposition, out): (Disposition, Vec<u8>) = (disposition, out);
                if disposition == Disposition::Reply
                    && !write_answer(&mut writer, &mut write_buf, &out, ctx, idle_timeout).await
                {
                    break;
                }
                if in_flight.is_empty() {
                    slot.idle();
                    deadline = Instant::now() + idle_timeout;
                }
            }
            frame = frames.next(&mut reader), if reading && in_flight.len() < max_in_flight => {
                match frame {
                    Ok(Some(query)) => {
                        deadline = Instant::now() + idle_timeout;
                        let mut out = Vec::new();
                        // A cache hit is answered here, without a future.
                        if answerer.answer_now(&query, ctx, &mut out) {
                            if !write_answer(&mut writer, &mut write_buf, &out, ctx, idle_timeout).await {
                                break;
                            }
                            continue;
                        }
                        slot.busy();
                        let answerer = answerer.clone();
                        in_flight.push(async move {
                            let disposition = answerer.answer_after_miss(&query, ctx, &mut out).await;
                            (disposition, out)
                        });
                    }
                    Ok(None) => reading = false,
                    Err(error) => {
                        debug!(client = %ctx.client, %error, "broken stream: answering what came, then closing");
                        reading = false;
                    }
                }
            }
            () = sleep_until(deadline), if in_flight.is_empty() => {
                debug!(client = %ctx.client, "idle: closed");
                break;
            }
            () = slot.evicted(), if in_flight.is_empty() => {
                debug!(client = %ctx.client, "evicted by a newer connection: closed");
                break;
            }
        }
    }
    let _ = timeout(idle_timeout, writer.shutdown()).await;
}

/// Writes `answer` with its length prefix (through `buf`), within
/// `timeout_after`; false when the stream is to be closed (a write error,
/// or a client that reads no answers). An empty or over-long answer is not
/// sent.
async fn write_answer<W: AsyncWrite + Unpin>(
    writer: &mut W,
    buf: &mut Vec<u8>,
    answer: &[u8],
    ctx: QueryContext,
    timeout_after: Duration,
) -> bool {
    if answer.is_empty() {
        return true;
    }
    let Ok(len) = u16::try_from(answer.len()) else {
        warn!(
            len = answer.len(),
            "an answer too long for a stream: not sent"
        );
        return true;
    };
    buf.clear();
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(answer);
    match timeout(timeout_after, writer.write_all(buf)).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            debug!(client = %ctx.client, %error, "cannot write an answer");
            false
        }
        Err(_) => {
            debug!(client = %ctx.client, "the client reads no answers: closed");
            false
        }
    }
}

/// What the TCP accept loop gives each connection.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TcpSettings {
    pub(crate) idle_timeout: Duration,
    pub(crate) max_in_flight: usize,
}

/// Accepts TCP connections until `shutdown`, each served by
/// [`serve_stream`] in its own task under a slot from `slots`. A
/// connection that gets no slot is closed at once.
pub(crate) async fn accept_loop<A: Answerer>(
    listener: TcpListener,
    answerer: Arc<A>,
    slots: ConnectionSlots,
    settings: TcpSettings,
    shutdown: CancellationToken,
) {
    accept::accept_loop(listener, slots, "TCP", shutdown, |stream, client, slot| {
        let ctx = QueryContext {
            client,
            transport: Transport::Tcp,
        };
        let limits = StreamLimits {
            idle_timeout: settings.idle_timeout,
            max_in_flight: settings.max_in_flight,
            slot,
        };
        serve_stream(stream, ctx, answerer.clone(), limits)
    })
    .await;
}

#[cfg(test)]
mod tests;
