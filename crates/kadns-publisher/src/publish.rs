//! Publishing signed bundles into the DHT through a running node.
//!
//! [`publish`] puts every bundle with [`Handle::put`], several at a time, and
//! reports per name what the network answered. The replica count of each
//! name is the DHT's truthful one: the peers that answered that the record is
//! validated and on their disk (`PutReport::stored_on`), never the peers a
//! request was merely sent to. A name whose put fails is reported with its
//! error; it does not stop the other names.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use kadns_dht::{Config, DataDir, Mode, Node};
//! use kadns_publisher::{
//!     Config as SignConfig, DEFAULT_PUBLISH_CONCURRENCY, ParsedZone, Signer, publish,
//! };
//!
//! // Sign the zone …
//! let zone = ParsedZone::from_file("example.zone", None)?;
//! let signed = Signer::from_key_file("example.key", &SignConfig::default())?.sign(&zone)?;
//!
//! // … join the network through a short-lived client node …
//! let mut config = Config::default();
//! config.data_dir = DataDir::Temporary;
//! config.mode = Mode::Client;
//! config.bootstrap = vec!["/ip4/192.0.2.1/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN".parse()?];
//! let node = Node::spawn(config).await?;
//! node.handle().wait_for_peers(1, std::time::Duration::from_secs(10)).await?;
//!
//! // … and put every name, eight at a time.
//! let report = publish(
//!     &node.handle(),
//!     signed.into_bundles(),
//!     DEFAULT_PUBLISH_CONCURRENCY,
//!     |name| println!("{}: {} replicas", name.owner, name.replicas()),
//! )
//! .await;
//! for low in report.below(3) {
//!     eprintln!("{} is on only {} nodes: publish again later", low.owner, low.replicas());
//! }
//! node.shutdown().await;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use futures::StreamExt;
use kadns_dht::{Handle, PeerId};
use kadns_record::{DhtKey, OwnerName, SignedBundle};
use tracing::Instrument;

/// How many names [`publish`] puts at once when the caller has no reason to
/// choose: enough to overlap the lookups' round trips, few enough that the
/// node's store streams to any one peer stay well below
/// [`kadns_dht::MAX_STORE_STREAMS`].
pub const DEFAULT_PUBLISH_CONCURRENCY: usize = 8;

/// The most names [`publish`] puts at once; a higher `concurrency` is
/// lowered to this. Each put sends a store request to each of the k closest
/// peers, and a small zone's names share those peers: 32 puts keep the
/// requests on one connection below [`kadns_dht::MAX_STORE_STREAMS`] (64),
/// and far below the node's [`kadns_dht::MAX_PENDING_PUTS`] (256).
pub const MAX_PUBLISH_CONCURRENCY: usize = 32;

/// What publishing one name achieved.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NamePublished {
    /// The bundle's position in the list given to [`publish`].
    pub index: usize,
    /// The owner name, relative to the zone apex (`@` for the apex).
    pub owner: OwnerName,
    /// The bundle's DHT key.
    pub key: DhtKey,
    /// The bundle's sequence number.
    pub sequence: u64,
    /// The peers that answered that the bundle is validated and on their
    /// disk (the publishing node included if it is a server and stored it).
    pub stored_on: Vec<PeerId>,
    /// The peers that refused it, with their reason (`older`, `conflict`, …).
    pub refused: Vec<(PeerId, String)>,
    /// The peers that did not answer, with the error.
    pub failed: Vec<(PeerId, String)>,
    /// Why the put itself failed, if it did; then nothing was stored.
    pub error: Option<PublishError>,
}

impl NamePublished {
    /// How many nodes hold the bundle: the length of `stored_on`.
    pub fn replicas(&self) -> usize {
        self.stored_on.len()
    }

    /// Whether the put ran and at least `min` nodes hold the bundle.
    pub fn meets(&self, min: usize) -> bool {
        self.error.is_none() && self.replicas() >= min
    }

    /// Whether any peer answered the store request, storing or refusing.
    pub fn answered(&self) -> bool {
        !self.stored_on.is_empty() || !self.refused.is_empty()
    }

    /// The refusal reasons with how many peers gave each, by reason.
    pub fn refusal_counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for (_, reason) in &self.refused {
            *counts.entry(reason.as_str()).or_insert(0) += 1;
        }
        counts
    }
}

/// What [`publish`] achieved, one entry per bundle.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PublishReport {
    /// One entry per bundle, in the order the bundles were given.
    pub names: Vec<NamePublished>,
}

impl PublishReport {
    /// The names that failed, or that fewer than `min` nodes hold.
    pub fn below(&self, min: usize) -> impl Iterator<Item = &NamePublished> {
        self.names.iter().filter(move |n| !n.meets(min))
    }

    /// Whether every name was stored on at least `min` nodes.
    pub fn all_meet(&self, min: usize) -> bool {
        self.below(min).next().is_none()
    }

    /// The names whose put failed.
    pub fn errors(&self) -> impl Iterator<Item = &NamePublished> {
        self.names.iter().filter(|n| n.error.is_some())
    }

    /// The smallest replica count of any name; `None` for no names.
    pub fn fewest_replicas(&self) -> Option<usize> {
        self.names.iter().map(NamePublished::replicas).min()
    }

    /// Whether any peer answered a store request for any name. `false` with
    /// names to publish means the network was not reached at all.
    pub fn any_answer(&self) -> bool {
        self.names.iter().any(NamePublished::answered)
    }
}

/// Puts every bundle into the DHT through `dht`, at most `concurrency` at a
/// time (clamped to `1..=`[`MAX_PUBLISH_CONCURRENCY`]), and calls `on_done`
/// as each name finishes, in completion order. Returns every name's outcome
/// in the order of `bundles`.
///
/// Never fails as a whole: a put that errors (an invalid bundle, a node that
/// has shut down) is recorded in that name's [`NamePublished::error`], and
/// the other names go on. Each put takes at most the node's query timeout
/// plus its store timeout.
///
/// Dropping the future stops starting new puts; puts already handed to the
/// node still complete in the background.
pub async fn publish(
    dht: &Handle,
    bundles: Vec<SignedBundle>,
    concurrency: usize,
    mut on_done: impl FnMut(&NamePublished),
) -> PublishReport {
    let limit = effective_concurrency(concurrency);
    let total = bundles.len();
    let span = tracing::info_span!("publish", names = total, concurrency = limit);
    async move {
        let mut names = Vec::with_capacity(total);
        let mut finished = futures::stream::iter(bundles.into_iter().enumerate())
            .map(|(index, bundle)| put_one(dht, index, bundle))
            .buffer_unordered(limit);
        while let Some(name) = finished.next().await {
            on_done(&name);
            names.push(name);
        }
        names.sort_by_key(|n| n.index);
        let report = PublishReport { names };
        tracing::info!(
            names = total,
            failed = report.errors().count(),
            fewest_replicas = report.fewest_replicas(),
            "published"
        );
        report
    }
    .instrument(span)
    .await
}

fn effective_concurrency(requested: usize) -> usize {
    requested.clamp(1, MAX_PUBLISH_CONCURRENCY)
}

async fn put_one(dht: &Handle, index: usize, bundle: SignedBundle) -> NamePublished {
    let owner = bundle.content().owner().clone();
    let key = bundle.dht_key();
    let sequence = bundle.content().sequence();
    let mut name = NamePublished {
        index,
        owner,
        key,
        sequence,
        stored_on: Vec::new(),
        refused: Vec::new(),
        failed: Vec::new(),
        error: None,
    };
    match dht.put(bundle).await {
        Ok(report) => {
            tracing::debug!(
                owner = %name.owner,
                %key,
                replicas = report.replicas(),
                refused = report.refused.len(),
                failed = report.failed.len(),
                "name published"
            );
            name.stored_on = report.stored_on;
            name.refused = report.refused;
            name.failed = report.failed;
        }
        Err(source) => {
            tracing::debug!(owner = %name.owner, %key, error = %source, "name not published");
            name.error = Some(PublishError::Put {
                owner: name.owner.clone(),
                key,
                source,
            });
        }
    }
    name
}

/// Why one name could not be published.
///
/// A name whose put failed is reported in its
/// [`NamePublished`](crate::NamePublished); the other names go on.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The DHT node refused the put (the bundle is invalid, for example
    /// expired) or could not run it (the node has shut down).
    #[error("storing {owner} failed: {source}")]
    Put {
        /// The name.
        owner: OwnerName,
        /// Its DHT key.
        key: DhtKey,
        /// What the node answered.
        #[source]
        source: kadns_dht::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(stored: usize, refused: &[&str], error: bool) -> NamePublished {
        let owner = OwnerName::apex();
        let key = DhtKey::from_bytes([1; 32]);
        NamePublished {
            index: 0,
            owner: owner.clone(),
            key,
            sequence: 1,
            stored_on: (0..stored).map(|_| PeerId::random()).collect(),
            refused: refused
                .iter()
                .map(|r| (PeerId::random(), (*r).to_string()))
                .collect(),
            failed: Vec::new(),
            error: error.then_some(PublishError::Put {
                owner,
                key,
                source: kadns_dht::Error::Shutdown,
            }),
        }
    }

    #[test]
    fn concurrency_is_clamped() {
        assert_eq!(effective_concurrency(0), 1);
        assert_eq!(effective_concurrency(1), 1);
        assert_eq!(effective_concurrency(8), 8);
        assert_eq!(effective_concurrency(usize::MAX), MAX_PUBLISH_CONCURRENCY);
    }

    #[test]
    fn below_counts_failures_and_low_names() {
        let report = PublishReport {
            names: vec![
                name(5, &[], false),
                name(2, &["older", "older", "conflict"], false),
                name(0, &[], true),
            ],
        };
        let below: Vec<usize> = report.below(3).map(NamePublished::replicas).collect();
        assert_eq!(below, [2, 0]);
        assert!(!report.all_meet(3));
        assert!(!report.all_meet(0), "a failed name never meets the minimum");
        assert_eq!(report.errors().count(), 1);
        assert_eq!(report.fewest_replicas(), Some(0));
        assert!(report.any_answer());
        let counts = report.names[1].refusal_counts();
        assert_eq!(counts.get("older"), Some(&2));
        assert_eq!(counts.get("conflict"), Some(&1));
        let silent = PublishReport {
            names: vec![name(0, &[], false), name(0, &[], true)],
        };
        assert!(!silent.any_answer());
        assert_eq!(PublishReport::default().fewest_replicas(), None);
        assert!(PublishReport::default().all_meet(3));
    }
}
