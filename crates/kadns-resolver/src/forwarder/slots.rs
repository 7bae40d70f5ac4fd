//! Forwarding slots shared fairly among clients, and bounded places for the
//! queries that wait on an exchange already under way.
//!
//! A slot is one upstream exchange in flight (a socket, a timer, a marker).
//! There are `total` of them. A client prefix that already holds slots may
//! take one more only while it holds fewer than its share,
//! `max(min_share, total / (active + 1))`, where `active` counts the
//! prefixes holding slots, itself included. One prefix alone therefore holds
//! at most half, and whenever `n` prefixes are busy a newcomer still finds
//! about `total / (n + 1)` free: a client flooding names that are never
//! answered cannot take the slots every other client needs.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use super::client::ClientKey;
use crate::error::ForwardError;

/// A share below this is never imposed (while slots are free): a client
/// among very many still gets a few exchanges at once.
pub(crate) const MIN_SHARE: usize = 4;

/// The forwarding slots.
#[derive(Debug)]
pub(crate) struct Slots {
    total: usize,
    state: Mutex<SlotState>,
}

#[derive(Debug, Default)]
struct SlotState {
    used: usize,
    held: HashMap<ClientKey, usize>,
}

impl Slots {
    /// `total` slots (at least one).
    pub(crate) fn new(total: usize) -> Self {
        Self {
            total: total.max(1),
            state: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // Counters updated under the lock in one step: consistent after any panic.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One slot for `client`, given back when the guard drops; an error
    /// when every slot is taken ([`ForwardError::Busy`]) or `client`
    /// holds its share ([`ForwardError::ClientBusy`]).
    pub(crate) fn take(&self, client: ClientKey) -> Result<SlotGuard<'_>, ForwardError> {
        let mut state = self.lock();
        if state.used >= self.total {
            return Err(ForwardError::Busy { limit: self.total });
        }
        let holding = state.held.get(&client).copied().unwrap_or(0);
        let active = state.held.len() + usize::from(holding == 0);
        let share = (self.total / (active + 1)).max(MIN_SHARE).min(self.total);
        if holding >= share {
            return Err(ForwardError::ClientBusy { limit: share });
        }
        state.used += 1;
        *state.held.entry(client).or_default() += 1;
        Ok(SlotGuard {
            slots: self,
            client,
        })
    }

    /// Slots in use now, and by how many prefixes.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, usize) {
        let state = self.lock();
        (state.used, state.held.len())
    }
}

/// One slot held; released on drop, however the exchange ends.
#[derive(Debug)]
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
    client: ClientKey,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.used = state.used.saturating_sub(1);
        if let Some(n) = state.held.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                state.held.remove(&self.client);
            }
        }
    }
}

/// Places for forwarded queries waiting on an upstream answer, per client
/// prefix: the one leading an exchange and every identical one sharing it.
/// Bounds the memory and tasks one client can park in the forwarder.
#[derive(Debug)]
pub(crate) struct Waiters {
    max: usize,
    counts: Mutex<HashMap<ClientKey, usize>>,
}

impl Waiters {
    /// At most `max` (at least one) waiting queries per prefix.
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            counts: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, usize>> {
        // Counters updated in one step: consistent after any panic.
        self.counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A place for one more query of `client`; an error
    /// ([`ForwardError::TooManyWaiters`]) when it has `max` waiting already.
    pub(crate) fn join(&self, client: ClientKey) -> Result<WaiterGuard<'_>, ForwardError> {
        let mut counts = self.lock();
        let n = counts.entry(client).or_default();
        if *n >= self.max {
            return Err(ForwardError::TooManyWaiters { limit: self.max });
        }
        *n += 1;
        Ok(WaiterGuard {
            waiters: self,
            client,
        })
    }

    /// Prefixes with a query waiting now.
    #[cfg(test)]
    pub(crate) fn prefixes(&self) -> usize {
        self.lock().len()
    }
}

/// One waiting place held; released on drop.
#[derive(Debug)]
pub(crate) struct WaiterGuard<'a> {
    waiters: &'a Waiters,
    client: ClientKey,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        let mut counts = self.waiters.lock();
        if let Some(n) = counts.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(n: u8) -> ClientKey {
        ClientKey::V4([10, 0, n])
    }

    #[test]
    fn one_client_cannot_take_every_slot() {
        let slots = Slots::new(256);
        let mut flood = Vec::new();
        while let Ok(slot) = slots.take(client(1)) {
            flood.push(slot);
        }
        assert_eq!(flood.len(), 128, "alone, a client holds at most half");
        assert!(matches!(
            slots.take(client(1)),
            Err(ForwardError::ClientBusy { limit: 128 })
        ));
        // A second client finds room, and its own share.
        let mut second = Vec::new();
        while let Ok(slot) = slots.take(client(2)) {
            second.push(slot);
        }
        assert_eq!(second.len(), 256 / 3);
        let third = slots.take(client(3));
        assert!(third.is_ok(), "a third still finds a free slot");
        drop(flood);
        drop(second);
        assert_eq!(slots.usage(), (1, 1), "released, however many were held");
    }

    #[test]
    fn many_clients_get_the_minimum_share_until_full() {
        let slots = Slots::new(16);
        let mut held = Vec::new();
        for n in 0..16 {
            if let Ok(slot) = slots.take(client(n)) {
                held.push(slot);
            }
        }
        assert_eq!(held.len(), 16, "one each for sixteen clients");
        assert!(matches!(
            slots.take(client(99)),
            Err(ForwardError::Busy { limit: 16 })
        ));
        drop(held);
        let small = Slots::new(2);
        let (_a, _b) = (
            small.take(client(1)).unwrap(),
            small.take(client(1)).unwrap(),
        );
        assert!(
            matches!(small.take(client(1)), Err(ForwardError::Busy { limit: 2 })),
            "the minimum share never exceeds the total"
        );
    }

    #[test]
    fn waiters_are_bounded_per_client() {
        let waiters = Waiters::new(3);
        let held: Vec<_> = (0..3).map(|_| waiters.join(client(1)).unwrap()).collect();
        assert!(matches!(
            waiters.join(client(1)),
            Err(ForwardError::TooManyWaiters { limit: 3 })
        ));
        let other = waiters.join(client(2)).unwrap();
        drop(held);
        assert!(waiters.join(client(1)).is_ok());
        drop(other);
        assert_eq!(waiters.prefixes(), 0);
    }
}
