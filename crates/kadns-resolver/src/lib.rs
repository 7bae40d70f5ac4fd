//! The embeddable kadns resolver.
//!
//! A [`Resolver`] answers names in kadns zones from signed bundles it looks up
//! in a [`BundleSource`] (the DHT), verifies end to end with
//! `kadns_record::validate`, checks for rollback against a [`SequenceStore`]
//! and caches; it forwards every other name to upstream DNS servers.
//!
//! - **Routing** ([`Route`]): `<labels>.<zone-id>` and names under the trust
//!   anchors of the [`Config`] go to their zone; everything else upstream.
//! - **Answers** ([`Answer`], [`Outcome`]): verified records, NXDOMAIN, NODATA,
//!   DHT unavailable, an upstream's response, or a failure. Absence is an
//!   answer, not an error; [`Answer::response_code`] is the one mapping to RCODEs.
//! - **Bounds**: DHT lookups, upstream exchanges, the cache, CNAME chains and
//!   in-flight forwards are all bounded; `docs/resolver.md` lists each bound.
//!
//! ```
//! use hickory_proto::rr::{Name, RData, RecordType, rdata::A};
//! use kadns_record::{Bundle, OwnerName, Rr, ZoneKey};
//! use kadns_resolver::{Config, MemorySource, Outcome, Resolver};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A zone owner signs a bundle for `www` and puts it in the (here: in-memory) DHT.
//! let key = ZoneKey::from_seed([7; 32]);
//! let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs();
//! let www = OwnerName::from_labels([b"www".as_slice()])?;
//! let rr = Rr::new(300, &RData::A(A::new(192, 0, 2, 80)))?;
//! let source = MemorySource::new();
//! source.put(&Bundle::new(www, 1, now + 86_400, vec![rr])?.sign(&key)?);
//!
//! // A resolver that trusts that key for `example.kad`, with no upstream.
//! let mut config = Config::default();
//! config.trust_anchors.insert("example.kad".into(), key.zone_id().to_string());
//! config.upstream.resolv_conf = None;
//! let resolver = Resolver::builder(config, source).build()?;
//!
//! let answer = resolver.lookup(&Name::from_ascii("WWW.example.kad.")?, RecordType::A).await;
//! assert!(matches!(answer.outcome, Outcome::Records));
//! assert!(answer.authenticated);
//! assert_eq!(answer.answers[0].name.to_ascii(), "WWW.example.kad.");
//! assert_eq!(answer.answers[0].data, RData::A(A::new(192, 0, 2, 80)));
//!
//! // The same zone under its self-certifying name; a name it lacks is NXDOMAIN.
//! let other = Name::from_ascii(&format!("nope.{}", key.zone_id()))?;
//! assert!(matches!(resolver.lookup(&other, RecordType::A).await.outcome, Outcome::NxDomain));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// Tests may unwrap: a panic is how they fail.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod answer;
mod cache;
mod config;
mod deadline;
mod dht_source;
mod ede;
mod error;
mod exchange;
mod exchange_https;
mod exchange_tls;
mod fetch;
mod forward_cache;
mod forwarded;
mod forwarder;
mod memory_source;
mod metrics;
mod persist;
mod records;
mod reload;
mod resolv_conf;
mod resolver;
mod route;
mod saved_upstreams;
mod scrub;
mod sequence_store;
mod sled_sequences;
mod source;
mod transports;
mod upstream;
mod upstreams;
mod wildcard;

pub use answer::{Answer, Outcome};
pub use config::{
    CacheConfig, Config, DhtConfig, ForwardCacheConfig, ForwardZones, QueryConfig, UpstreamConfig,
};
pub use ede::{ExtendedError, MAX_EXTRA_TEXT};
pub use error::{BoxError, Error, ForwardError, LookupError, SourceError, StoreError};
pub use exchange_tls::TlsClientError;
pub use fetch::MAX_BACKGROUND_REFRESHES;
pub use forwarder::Forwarded;
pub use memory_source::MemorySource;
pub use metrics::{Metrics, OutcomeLabels, ReasonLabels};
pub use persist::{BundleStore, DEFAULT_PERSIST_MAX_BYTES, MemoryBundles, SledBundles};
pub use reload::{CacheSizes, Flushed, Reloaded};
pub use resolver::{Builder, Resolver};
pub use route::{Route, ZONE_ID_SUFFIX};
pub use saved_upstreams::{SaveError, SavedUpstreams};
pub use sequence_store::{MemorySequences, SequenceStore};
pub use sled_sequences::SledSequences;
pub use source::{BundleSource, SourceAnswer};
pub use upstream::{DOH_DEFAULT_PATH, DOH_PORT, DOT_PORT, Upstream, UpstreamParseError};
pub use wildcard::{MAX_ROUNDS, PROBES_PER_ROUND};

// Re-exported so that users get the same versions the resolver uses.
pub use hickory_proto;
pub use kadns_dht;
pub use kadns_record;
