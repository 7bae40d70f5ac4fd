//! The signed record format of kadns.
//!
//! This crate is the one definition of what a valid kadns record is. It is pure:
//! no I/O, no clock (callers pass `now`), no async, no networking. Every other
//! kadns crate calls it and never re-implements a check.
//!
//! - A zone is an ed25519 key ([`ZoneKey`]); its public half is the [`ZoneId`],
//!   written as 52 characters of z-base-32.
//! - All records of one owner name travel as one signed bundle: [`Bundle`] is
//!   the content, [`SignedBundle`] the decoded but unchecked bytes,
//!   [`VerifiedBundle`] what [`validate`] returns once everything checks out.
//! - A bundle lives in the DHT under [`DhtKey::derive`]`(zone, owner)`.
//! - A zone's structure — which names are empty non-terminals, which have a
//!   `*` child — travels signed in a [`Meta`] record (type [`META_TYPE`]),
//!   which no answer shows.
//!
//! The byte layout, key derivation and limits are specified, with test vectors,
//! in `docs/record-format.md`.
//!
//! ```
//! use hickory_proto::rr::{Name, RData, rdata::A};
//! use kadns_record::{Bundle, OwnerName, Rr, ZoneKey, validate};
//!
//! let key = ZoneKey::from_seed([1; 32]);
//! let apex = key.zone_id().apex();
//! let www = OwnerName::relative_to(&Name::from_ascii("www").unwrap().append_domain(&apex).unwrap(), &apex).unwrap();
//! let rr = Rr::new(60, &RData::A(A::new(198, 51, 100, 1))).unwrap();
//! let signed = Bundle::new(www, 7, 2_000_000_000, vec![rr]).unwrap().sign(&key).unwrap();
//!
//! let bundle = validate(&signed.dht_key(), signed.as_bytes(), 1_999_000_000).unwrap();
//! assert_eq!(bundle.records().len(), 1);
//! // One flipped bit anywhere and it is refused.
//! let mut forged = signed.as_bytes().to_vec();
//! forged[60] ^= 1;
//! assert!(validate(&signed.dht_key(), &forged, 1_999_000_000).is_err());
//! ```
#![deny(missing_docs, rustdoc::broken_intra_doc_links)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)
)]
// Tests unwrap freely: a panic there is a failed test, not a crash.
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod apex;
mod bundle;
mod dht_key;
mod error;
mod key;
mod limits;
mod meta;
mod owner;
mod rr;
mod zbase32;

pub use apex::{NAME_LAYOUTS, Part, rebase_name, rebase_rdata};
pub use bundle::{
    Bundle, FORMAT_VERSION, Freshness, SIGNATURE_TAG, SignedBundle, VerifiedBundle, validate,
};
pub use dht_key::{DHT_KEY_TAG, DhtKey};
pub use error::{
    ContentError, DecodeError, EncodeError, NameError, ValidateError, VerifyError, ZoneIdError,
};
pub use key::{ZONE_ID_LEN, ZoneId, ZoneKey};
pub use limits::{MAX_BUNDLE_LEN, MAX_OWNER_LEN, MAX_RECORDS, MAX_TTL, MAX_VALIDITY};
pub use meta::{META_TYPE, META_VERSION, Meta, meta_type};
pub use owner::OwnerName;
pub use rr::{FORBIDDEN_TYPES, Rr};

// Re-exported so that users get the same hickory-proto version kadns uses.
pub use hickory_proto;
