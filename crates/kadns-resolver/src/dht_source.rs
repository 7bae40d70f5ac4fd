//! The DHT as a bundle source.

use std::sync::Arc;

use kadns_record::DhtKey;

use crate::error::SourceError;
use crate::source::{BundleSource, SourceAnswer};

/// A DHT node's handle is a bundle source: the node validates every record
/// it finds (signature, key, expiry) and returns the valid one with the
/// highest sequence as a [`VerifiedBundle`](kadns_record::VerifiedBundle),
/// which reaches the resolver as [`SourceAnswer::Verified`]: verified once
/// per process. The resolver still checks its key and expiry against its
/// own question and clock, and rollback (it trusts no peer's choice of
/// sequence).
///
/// "Nothing found" is [`SourceAnswer::Absent`] only when
/// [`GetOutcome::proves_absence`](kadns_dht::GetOutcome::proves_absence)
/// holds: the lookup converged and at least `max(1, min(get_quorum, known
/// peers))` of the closest peers answered. Anything less is
/// [`SourceAnswer::NotReached`] (SERVFAIL or a stale answer), so an
/// unreachable network is never mistaken for a name that does not exist.
impl BundleSource for kadns_dht::Handle {
    async fn get(&self, key: DhtKey) -> Result<SourceAnswer, SourceError> {
        let outcome = kadns_dht::Handle::get(self, key)
            .await
            .map_err(|error| match error {
                kadns_dht::Error::Shutdown => SourceError::Stopped,
                other => SourceError::Failed {
                    source: Arc::new(other),
                },
            })?;
        if let Some(best) = outcome.best {
            return Ok(SourceAnswer::Verified(Box::new(best)));
        }
        if outcome.proves_absence() {
            return Ok(SourceAnswer::Absent);
        }
        Ok(SourceAnswer::NotReached {
            reached: outcome.reached.len(),
            required: outcome.required,
            invalid: outcome
                .invalid_reasons
                .iter()
                .map(|(reason, n)| ((*reason).to_owned(), *n))
                .collect(),
        })
    }
}
