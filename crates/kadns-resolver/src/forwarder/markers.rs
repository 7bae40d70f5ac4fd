//! Loop protection: every query this resolver forwards carries a random
//! EDNS marker while it is in flight; a query that arrives carrying one of
//! them has come back to us through some chain of resolvers.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// EDNS option code of the loop marker (from the range RFC 6891 leaves for
/// local and experimental use). Its value is a random marker, fresh for every
/// query sent, so it says nothing about the sender to the upstream.
pub(crate) const LOOP_MARKER_OPTION: u16 = 65_431;

/// The loop marker of one query in flight.
pub(crate) type Marker = [u8; 8];

/// The markers of the queries being forwarded right now.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    in_flight: Mutex<HashSet<Marker>>,
}

impl Markers {
    fn lock(&self) -> MutexGuard<'_, HashSet<Marker>> {
        // A set of markers: consistent after any panic.
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a query in flight under a fresh marker, kept until the
    /// guard drops. Not bounded here: the slots bound what is in flight.
    pub(crate) fn enter(&self) -> MarkerGuard<'_> {
        let mut in_flight = self.lock();
        let mut marker: Marker = rand::random();
        while !in_flight.insert(marker) {
            marker = rand::random();
        }
        MarkerGuard {
            markers: self,
            marker,
        }
    }

    /// True if `request` carries the marker of a query in flight here.
    pub(crate) fn carried_by(&self, request: &Message) -> bool {
        let Some(edns) = request.edns.as_ref() else {
            return false;
        };
        let in_flight = self.lock();
        edns.options()
            .get_all(EdnsCode::Unknown(LOOP_MARKER_OPTION))
            .iter()
            .any(|option| match option {
                EdnsOption::Unknown(_, value) => {
                    Marker::try_from(value.as_slice()).is_ok_and(|m| in_flight.contains(&m))
                }
                _ => false,
            })
    }

    /// Markers in flight now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Keeps a query's marker in flight until the forward ends, however it ends.
#[derive(Debug)]
pub(crate) struct MarkerGuard<'a> {
    markers: &'a Markers,
    pub(crate) marker: Marker,
}

impl Drop for MarkerGuard<'_> {
    fn drop(&mut self) {
        self.markers.lock().remove(&self.marker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Edns;

    #[test]
    fn only_a_marker_in_flight_here_means_a_loop() {
        let (ours, theirs) = (Markers::default(), Markers::default());
        let (our_query, their_query) = (ours.enter(), theirs.enter());
        let with = |markers: &[Marker]| {
            let mut message = Message::query();
            let mut edns = Edns::new();
            for marker in markers {
                edns.options_mut()
                    .insert(EdnsOption::Unknown(LOOP_MARKER_OPTION, marker.to_vec()));
            }
            message.edns = Some(edns);
            message
        };
        assert!(!ours.carried_by(&Message::query()), "no EDNS at all");
        assert!(
            !ours.carried_by(&with(&[their_query.marker])),
            "another resolver's query"
        );
        let both = with(&[their_query.marker, our_query.marker]);
        assert!(ours.carried_by(&both), "ours, among others");
        assert!(theirs.carried_by(&both));
        let done = our_query.marker;
        drop(our_query);
        assert!(
            !ours.carried_by(&with(&[done])),
            "a finished query's marker is forgotten"
        );
        assert_eq!(ours.len(), 0);
    }
}
