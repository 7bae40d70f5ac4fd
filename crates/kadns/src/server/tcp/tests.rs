//! Pipelining on one stream (RFC 7766 §6.2.1.1): several queries answered
//! at once, each answer written when it is ready.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use super::{StreamLimits, serve_stream};
use crate::StubMetrics;
use crate::server::conn_limit::{ConnectionLimits, ConnectionSlots};
use crate::server::{Answerer, Disposition, QueryContext, Transport};

/// Echoes every message; the one whose first byte is 0xff (the slow one)
/// only once `release` is notified, the one whose first byte is 2 at once
/// (as a cache hit is). Counts the answers under way at once.
#[derive(Default)]
struct Gated {
    release: Notify,
    started: Notify,
    running: AtomicUsize,
    most: AtomicUsize,
    inline: AtomicUsize,
}

impl Answerer for Gated {
    fn answer_now(&self, query: &[u8], _ctx: QueryContext, out: &mut Vec<u8>) -> bool {
        out.clear();
        if query.first() != Some(&2) {
            return false;
        }
        self.inline.fetch_add(1, Ordering::SeqCst);
        out.extend_from_slice(query);
        true
    }

    async fn answer(&self, query: &[u8], _ctx: QueryContext, out: &mut Vec<u8>) -> Disposition {
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(running, Ordering::SeqCst);
        if query.first() == Some(&0xff) {
            self.started.notify_one();
            self.release.notified().await;
        }
        out.clear();
        out.extend_from_slice(query);
        self.running.fetch_sub(1, Ordering::SeqCst);
        Disposition::Reply
    }
}

async fn next_answer<R: AsyncRead + Unpin>(reader: &mut R) -> Vec<u8> {
    let len = reader.read_u16().await.unwrap();
    let mut answer = vec![0; usize::from(len)];
    reader.read_exact(&mut answer).await.unwrap();
    answer
}

/// Three queries in one write, the slow one first: the two behind it (one
/// answered inline, one asynchronously) are answered while it waits (the slow answer cannot come before it is
/// released, and the test releases it only after reading the other two),
/// then it is answered on the same connection.
#[tokio::test]
async fn three_queries_back_to_back_the_slow_one_first() {
    let answerer = Arc::new(Gated::default());
    let slots = ConnectionSlots::new(
        ConnectionLimits {
            max_connections: 4,
            max_per_client: 4,
        },
        Arc::new(StubMetrics::default()),
    );
    let ctx = QueryContext {
        client: "127.0.0.1:5300".parse().unwrap(),
        transport: Transport::Tcp,
    };
    let limits = StreamLimits {
        idle_timeout: Duration::from_secs(60),
        max_in_flight: 16,
        slot: slots.acquire(ctx.client.ip()).unwrap(),
    };
    let (client, server) = tokio::io::duplex(4096);
    let served = tokio::spawn(serve_stream(server, ctx, answerer.clone(), limits));
    let (mut reader, mut writer) = tokio::io::split(client);
    let mut queries = Vec::new();
    for id in [0xff, 1, 2] {
        let message = [id, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        queries.extend_from_slice(&(message.len() as u16).to_be_bytes());
        queries.extend_from_slice(&message);
    }
    writer.write_all(&queries).await.unwrap();
    let mut fast = vec![
        next_answer(&mut reader).await[0],
        next_answer(&mut reader).await[0],
    ];
    fast.sort_unstable();
    assert_eq!(
        fast,
        [1, 2],
        "the queries behind the slow one, answered first"
    );
    assert!(
        answerer.most.load(Ordering::SeqCst) >= 2,
        "answered at once"
    );
    assert_eq!(
        answerer.inline.load(Ordering::SeqCst),
        1,
        "2 answered inline"
    );
    answerer.release.notify_one();
    let slow = next_answer(&mut reader).await;
    assert_eq!(slow, [0xff, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    writer.shutdown().await.unwrap();
    drop((reader, writer));
    served.await.unwrap();
}

/// With one query in flight allowed, the stream is not read past the
/// slow query: the one behind it starts only once the slow one is answered.
#[tokio::test]
async fn the_bound_per_connection_holds() {
    let answerer = Arc::new(Gated::default());
    let slots = ConnectionSlots::new(
        ConnectionLimits {
            max_connections: 4,
            max_per_client: 4,
        },
        Arc::new(StubMetrics::default()),
    );
    let ctx = QueryContext {
        client: "127.0.0.1:5300".parse().unwrap(),
        transport: Transport::Tcp,
    };
    let limits = StreamLimits {
        idle_timeout: Duration::from_secs(60),
        max_in_flight: 1,
        slot: slots.acquire(ctx.client.ip()).unwrap(),
    };
    let (client, server) = tokio::io::duplex(4096);
    let served = tokio::spawn(serve_stream(server, ctx, answerer.clone(), limits));
    let (mut reader, mut writer) = tokio::io::split(client);
    let mut queries = Vec::new();
    for id in [0xff, 1] {
        queries.extend_from_slice(&[0, 2, id, 0]);
    }
    writer.write_all(&queries).await.unwrap();
    answerer.started.notified().await;
    answerer.release.notify_one();
    assert_eq!(next_answer(&mut reader).await, [0xff, 0]);
    assert_eq!(next_answer(&mut reader).await, [1, 0]);
    assert_eq!(answerer.most.load(Ordering::SeqCst), 1, "never two at once");
    writer.shutdown().await.unwrap();
    drop((reader, writer));
    served.await.unwrap();
}
