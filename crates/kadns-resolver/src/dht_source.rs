//! The DHT as a bundle source.

use std::sync::Arc;

use kadns_record::DhtKey;

use crate::error::SourceError;
use crate::source::BundleSource;

/// A DHT node's handle is a bundle source: the node validates every record
/// it finds and returns the valid one with the highest sequence; the
/// resolver validates those bytes again (it trusts no peer, nor its own DHT
/// node's choice) and checks them for rollback.
///
/// A lookup that nobody answered on a node with no peers has not really
/// completed, so it is [`SourceError::NoPeers`] (SERVFAIL), never NXDOMAIN:
/// an unreachable network must not be mistaken for a name that does not exist.
impl BundleSource for kadns_dht::Handle {
    async fn get(&self, key: DhtKey) -> Result<Option<Vec<u8>>, SourceError> {
        let outcome = kadns_dht::Handle::get(self, key)
            .await
            .map_err(|error| match error {
                kadns_dht::Error::Shutdown => SourceError::Stopped,
                other => SourceError::Failed {
                    source: Arc::new(other),
                },
            })?;
        if let Some(best) = outcome.best {
            return Ok(Some(best.as_bytes().to_vec()));
        }
        if outcome.answered_by.is_empty() && !outcome.local {
            let peers = self.peers().await.map_err(|_| SourceError::Stopped)?;
            if peers.is_empty() {
                return Err(SourceError::NoPeers);
            }
        }
        Ok(None)
    }
}
