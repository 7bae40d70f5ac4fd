//! Caps on stream connections (TCP, DoT): at most so many at once, and at
//! most so many per client. A new connection over a cap evicts the oldest
//! idle connection (of that client, or of all) instead of waiting; only when
//! none is idle is it refused.
//!
//! A connection is idle when it has no query in flight, from the moment it
//! is accepted: a client that connects and says nothing is the first to go.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::client_policy::canonical;
use crate::metrics::StubMetrics;

/// The caps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections open at once, all clients together.
    pub max_connections: usize,
    /// Connections open at once from one client (an IPv4 address, an IPv6 /64).
    pub max_per_client: usize,
}

/// Why a connection was not given a slot: every connection over the cap is busy.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlotRefused {
    /// The client has its maximum of connections, none idle.
    #[error("this client has {0} connections open, none idle")]
    PerClient(usize),
    /// The stub has its maximum of connections, none idle.
    #[error("{0} connections open, none idle")]
    Global(usize),
}

/// The connection slots shared by every stream listener of a stub (cloned
/// handles, one table).
///
/// ```
/// use std::sync::Arc;
/// use kadns::StubMetrics;
/// use kadns::server::conn_limit::{ConnectionLimits, ConnectionSlots};
///
/// let slots = ConnectionSlots::new(
///     ConnectionLimits { max_connections: 2, max_per_client: 1 },
///     Arc::new(StubMetrics::default()),
/// );
/// let client = "192.0.2.1".parse().unwrap();
/// let first = slots.acquire(client).unwrap();
/// // The client's only connection is idle: the second one evicts it.
/// let _second = slots.acquire(client).unwrap();
/// assert!(first.is_evicted());
/// ```
#[derive(Clone, Debug)]
pub struct ConnectionSlots {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limits: ConnectionLimits,
    metrics: Arc<StubMetrics>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    per_client: HashMap<IpAddr, usize>,
    /// Idle connections, oldest first.
    idle: BTreeSet<(Instant, u64)>,
}

#[derive(Debug)]
struct Conn {
    client: IpAddr,
    idle_since: Option<Instant>,
    evict: CancellationToken,
}

/// One connection's place in [`ConnectionSlots`], given back on drop.
#[derive(Debug)]
pub struct Slot {
    slots: ConnectionSlots,
    id: u64,
    evicted: CancellationToken,
}

/// The key a client's connections are counted under: an IPv4 address, or an
/// IPv6 /64 (one host's share of a network).
fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

impl ConnectionSlots {
    /// Slots under `limits` (each at least 1), counted in `metrics`.
    pub fn new(limits: ConnectionLimits, metrics: Arc<StubMetrics>) -> Self {
        let limits = ConnectionLimits {
            max_connections: limits.max_connections.max(1),
            max_per_client: limits.max_per_client.max(1),
        };
        Self {
            inner: Arc::new(Inner {
                limits,
                metrics,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The caps in force.
    pub fn limits(&self) -> ConnectionLimits {
        self.inner.limits
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.state().conns.len()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step: a panic
        // elsewhere while holding the lock leaves nothing half-done.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for a new connection from `client`, evicting the oldest idle
    /// connection if a cap is reached (the client's own first, for the
    /// per-client cap). Refused only when every connection over the cap is busy.
    pub fn acquire(&self, client: IpAddr) -> Result<Slot, SlotRefused> {
        let key = client_key(client);
        let limits = self.inner.limits;
        let metrics = &self.inner.metrics;
        let mut state = self.state();
        if state.per_client.get(&key).copied().unwrap_or(0) >= limits.max_per_client {
            let oldest = state
                .conns
                .iter()
                .filter(|(_, c)| c.client == key)
                .filter_map(|(id, c)| c.idle_since.map(|since| (since, *id)))
                .min();
            match oldest {
                Some((_, id)) => {
                    state.evict(id);
                    metrics.tcp_evicted.inc();
                }
                None => {
                    metrics.tcp_refused.inc();
                    return Err(SlotRefused::PerClient(limits.max_per_client));
                }
            }
        }
        if state.conns.len() >= limits.max_connections {
            match state.idle.first().copied() {
                Some((_, id)) => {
                    state.evict(id);
                    metrics.tcp_evicted.inc();
                }
                None => {
                    metrics.tcp_refused.inc();
                    return Err(SlotRefused::Global(limits.max_connections));
                }
            }
        }
        let id = state.next_id;
        state.next_id += 1;
        let now = Instant::now();
        let evict = CancellationToken::new();
        state.conns.insert(
            id,
            Conn {
                client: key,
                idle_since: Some(now),
                evict: evict.clone(),
            },
        );
        state.idle.insert((now, id));
        *state.per_client.entry(key).or_default() += 1;
        metrics.tcp_connections.set(gauge(state.conns.len()));
        Ok(Slot {
            slots: self.clone(),
            id,
            evicted: evict,
        })
    }
}

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl State {
    /// Takes connection `id` out of the table and tells it to close.
    fn evict(&mut self, id: u64) {
        if let Some(conn) = self.remove(id) {
            conn.evict.cancel();
        }
    }

    fn remove(&mut self, id: u64) -> Option<Conn> {
        let conn = self.conns.remove(&id)?;
        if let Some(since) = conn.idle_since {
            self.idle.remove(&(since, id));
        }
        if let Some(count) = self.per_client.get_mut(&conn.client) {
            *count -= 1;
            if *count == 0 {
                self.per_client.remove(&conn.client);
            }
        }
        Some(conn)
    }
}

impl Slot {
    /// Marks the connection busy (a query in flight): it cannot be evicted.
    pub fn busy(&self) {
        let mut state = self.slots.state();
        if let Some(conn) = state.conns.get_mut(&self.id)
            && let Some(since) = conn.idle_since.take()
        {
            state.idle.remove(&(since, self.id));
        }
    }

    /// Marks the connection idle (nothing in flight): the oldest idle
    /// connection is the first evicted.
    pub fn idle(&self) {
        let mut state = self.slots.state();
        let now = Instant::now();
        if let Some(conn) = state.conns.get_mut(&self.id)
            && conn.idle_since.is_none()
        {
            conn.idle_since = Some(now);
            state.idle.insert((now, self.id));
        }
    }

    /// Whether a newer connection took this slot: the connection should close.
    pub fn is_evicted(&self) -> bool {
        self.evicted.is_cancelled()
    }

    /// Completes once a newer connection took this slot (cancel-safe).
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.evicted.cancelled()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.remove(self.id);
        self.slots
            .inner
            .metrics
            .tcp_connections
            .set(gauge(state.conns.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slots(max_connections: usize, max_per_client: usize) -> ConnectionSlots {
        ConnectionSlots::new(
            ConnectionLimits {
                max_connections,
                max_per_client,
            },
            Arc::new(StubMetrics::default()),
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_oldest_idle_connection_goes_first() {
        let slots = slots(3, 10);
        let a = slots.acquire(ip("192.0.2.1")).unwrap();
        let b = slots.acquire(ip("192.0.2.2")).unwrap();
        let c = slots.acquire(ip("192.0.2.3")).unwrap();
        a.busy();
        let _d = slots.acquire(ip("192.0.2.4")).unwrap();
        assert!(!a.is_evicted(), "a busy connection is never evicted");
        assert!(b.is_evicted(), "b was the oldest idle one");
        assert!(!c.is_evicted());
        assert_eq!(slots.open(), 3);
        assert_eq!(slots.inner.metrics.tcp_evicted.get(), 1);
    }

    #[test]
    fn all_busy_refuses_and_counts() {
        let slots = slots(2, 10);
        let a = slots.acquire(ip("192.0.2.1")).unwrap();
        let b = slots.acquire(ip("192.0.2.2")).unwrap();
        a.busy();
        b.busy();
        assert_eq!(
            slots.acquire(ip("192.0.2.3")).unwrap_err(),
            SlotRefused::Global(2)
        );
        assert_eq!(slots.inner.metrics.tcp_refused.get(), 1);
        b.idle();
        assert!(slots.acquire(ip("192.0.2.3")).is_ok());
        assert!(b.is_evicted());
    }

    #[test]
    fn the_per_client_cap_evicts_the_clients_own_connection() {
        let slots = slots(10, 2);
        let other = slots.acquire(ip("192.0.2.9")).unwrap();
        let a = slots.acquire(ip("192.0.2.1")).unwrap();
        let b = slots.acquire(ip("192.0.2.1")).unwrap();
        b.busy();
        let c = slots.acquire(ip("192.0.2.1")).unwrap();
        assert!(a.is_evicted());
        assert!(
            !other.is_evicted(),
            "another client's idle connection stays"
        );
        c.busy();
        assert_eq!(
            slots.acquire(ip("192.0.2.1")).unwrap_err(),
            SlotRefused::PerClient(2)
        );
        // An evicted slot's marks and drop change nothing.
        a.idle();
        drop(a);
        assert_eq!(slots.open(), 3);
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let slots = slots(10, 1);
        let a = slots.acquire(ip("2001:db8::1")).unwrap();
        a.busy();
        assert_eq!(
            slots.acquire(ip("2001:db8::2")).unwrap_err(),
            SlotRefused::PerClient(1)
        );
        assert!(slots.acquire(ip("2001:db8:0:1::2")).is_ok());
    }

    #[test]
    fn dropping_gives_the_slot_back() {
        let slots = slots(1, 1);
        let a = slots.acquire(ip("192.0.2.1")).unwrap();
        a.busy();
        assert!(slots.acquire(ip("192.0.2.2")).is_err());
        drop(a);
        assert!(slots.acquire(ip("192.0.2.2")).is_ok());
        assert_eq!(slots.inner.metrics.tcp_connections.get(), 0);
    }
}
