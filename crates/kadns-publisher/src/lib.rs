//! Keystore, zone-file parsing, signing and publishing for kadns zones.
//!
//! A zone owner holds an ed25519 key ([`generate_key`], [`load_key`]), writes an
//! ordinary RFC 1035 zone file ([`ParsedZone`]), and signs it ([`Signer`]) into
//! one `kadns_record::SignedBundle` per owner name, ready to be stored in the
//! DHT or written to a signed zone file ([`write_signed_file`]). [`publish`]
//! puts the bundles into the DHT through a running `kadns_dht` node and
//! reports, per name, how many nodes really stored it.
//!
//! [`ZonePublisher`] publishes incrementally: it keeps what it published per
//! name ([`PublishedState`]) and puts only new, changed and removed names
//! (the removed ones as signed empty bundles, tombstones), and unchanged
//! names only when their refresh is due. [`KeepAlive`] runs one as a task
//! that re-signs before expiry and follows edits of the zone file; see
//! `docs/publishing.md`.
//!
//! Every sequence number is taken from the zone's [`ZoneState`], which makes
//! sequences strictly increase across signings, restarts and clock steps. Keys
//! and state are written durably before any function reports success.
//!
//! Errors say where and why: a zone-file problem is `path:line: reason`, and
//! every problem of a zone is reported at once ([`ZoneError::Invalid`],
//! [`SignError::Zone`]).
//!
//! ```
//! use kadns_publisher::{Config, ParsedZone, Signer, generate_key, read_signed_file, write_signed_file};
//!
//! let dir = tempfile::tempdir()?;
//! let key_path = dir.path().join("example.key");
//! let key = generate_key(&key_path)?;
//!
//! let zone_path = dir.path().join("example.zone");
//! std::fs::write(&zone_path, "\
//! $ORIGIN example.org.
//! $TTL 3600
//! @       IN  A     192.0.2.1
//!         IN  MX    10 mail      ; mail.example.org.
//! mail    IN  A     192.0.2.25
//! www     IN  CNAME @
//! ")?;
//! let zone = ParsedZone::from_file(&zone_path, None)?;
//!
//! let signer = Signer::from_key_file(&key_path, &Config::default())?;
//! let signed = signer.sign(&zone)?;
//! assert_eq!(signed.zone_id(), key.zone_id());
//! assert_eq!(signed.summary().names, 3);
//!
//! let out = dir.path().join("example.signed");
//! write_signed_file(&out, signed.bundles())?;
//! assert_eq!(read_signed_file(&out)?.len(), 3);
//! # Ok::<_, Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(not(test), deny(clippy::unwrap_used))]
// Tests unwrap freely: a panic there is a failed test, not a crash.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod config;
mod durable;
mod keepalive;
mod keystore;
mod lexer;
mod plan;
mod presentation;
mod publish;
mod published;
mod signed_file;
mod signer;
mod state;
mod structure;
mod types;
mod warning;
mod zone_publisher;
mod zonefile;

pub mod testing;

pub use config::{Config, DEFAULT_VALIDITY_SECS, MIN_VALIDITY_SECS};
pub use keepalive::{DEFAULT_POLL_INTERVAL, KeepAlive, KeepAliveEvent, KeepAliveOptions};
pub use keystore::{KEY_FILE_HEADER, KeyError, generate_key, load_key};
pub use plan::{records_digest, refresh_due};
pub use presentation::{quote_character_string, record_line};
pub use publish::{
    DEFAULT_PUBLISH_CONCURRENCY, MAX_PUBLISH_CONCURRENCY, NamePublished, PublishError,
    PublishReport, publish,
};
pub use published::{Digest, NameEntry, PUBLISHED_FILE_HEADER, PublishedState};
pub use signed_file::{
    EntryError, SIGNED_FILE_MAGIC, SignedEntry, SignedFileError, decode_signed_file,
    read_signed_file, write_signed_file,
};
pub use signer::{SignError, SignedZone, Signer, Summary};
pub use state::{STATE_FILE_HEADER, StateError, ZoneState};
pub use warning::{WarningKind, ZoneWarning};
pub use zone_publisher::{RoundReport, ZoneCheck, ZonePublishError, ZonePublisher};
pub use zonefile::{ParsedZone, ProblemKind, ZoneError, ZoneProblem, ZoneRecord};

// Re-exported so that embedders use the same versions as kadns.
pub use kadns_dht;
pub use kadns_record;
