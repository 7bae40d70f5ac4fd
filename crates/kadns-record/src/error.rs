//! Error types. Each says exactly why a key, name or bundle was refused.

use hickory_proto::rr::RecordType;

use crate::dht_key::DhtKey;

/// Why a string or byte string is not a zone id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneIdError {
    /// Not 52 characters long.
    #[error("a zone id is 52 characters of z-base-32, this is {len}")]
    Length {
        /// The length found.
        len: usize,
    },
    /// A character outside the z-base-32 alphabet.
    #[error("character {index} of the zone id is not z-base-32")]
    Character {
        /// Index of the first bad character.
        index: usize,
    },
    /// The last character carries non-zero padding bits.
    #[error("the zone id's last character is not canonical (padding bits set)")]
    Padding,
    /// The bytes are not an ed25519 public key.
    #[error("the zone id is not an ed25519 public key")]
    NotAKey,
    /// A small-order key, for which signatures are meaningless.
    #[error("the zone id is a weak (small-order) ed25519 key")]
    WeakKey,
}

/// Why a name cannot be an owner name, or cannot be rebased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The name is not the apex or below it.
    #[error("{name} is outside the zone {apex}")]
    OutsideZone {
        /// The name.
        name: String,
        /// The zone apex.
        apex: String,
    },
    /// An empty label, or one longer than 63 bytes.
    #[error("a label of {len} bytes (labels are 1 to 63 bytes)")]
    BadLabel {
        /// Length of the label.
        len: usize,
    },
    /// The name is too long.
    #[error("name of {len} bytes is longer than {max}")]
    TooLong {
        /// Length found.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The wire form ends inside a label or lacks its zero byte.
    #[error("name is not terminated")]
    Unterminated,
    /// Bytes follow the terminating zero byte.
    #[error("bytes after the end of the name")]
    TrailingBytes,
    /// Upper-case ASCII in a canonical name.
    #[error("name is not in canonical (lower-case) form")]
    NotCanonical,
}

/// Why a bundle's records break the content rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentError {
    /// A type that may not be stored (see [`FORBIDDEN_TYPES`](crate::FORBIDDEN_TYPES)).
    #[error("record type {record_type} cannot be published")]
    ForbiddenType {
        /// The type.
        record_type: RecordType,
    },
    /// A TTL above [`MAX_TTL`](crate::MAX_TTL).
    #[error("{record_type} TTL {ttl} is above the limit of {max} seconds")]
    TtlTooLarge {
        /// The type.
        record_type: RecordType,
        /// The TTL.
        ttl: u32,
        /// The limit.
        max: u32,
    },
    /// RDATA that does not decode (or encode) as its type.
    #[error("{record_type} RDATA is malformed: {reason}")]
    BadRdata {
        /// The type.
        record_type: RecordType,
        /// What the DNS codec reported.
        reason: String,
    },
    /// RDATA longer than a DNS record can carry.
    #[error("{record_type} RDATA of {len} bytes is longer than 65535")]
    RdataTooLong {
        /// The type.
        record_type: RecordType,
        /// Its length.
        len: usize,
    },
    /// More than [`MAX_RECORDS`](crate::MAX_RECORDS).
    #[error("{count} records, the limit is {max}")]
    TooManyRecords {
        /// Records found.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A meta record that breaks the publisher's rules (`docs/record-format.md`).
    #[error("bad kadns meta record: {reason}")]
    BadMeta {
        /// Which rule.
        reason: String,
    },
    /// The same record twice.
    #[error("duplicate {record_type} record")]
    Duplicate {
        /// The type.
        record_type: RecordType,
    },
    /// Records not sorted by type, then RDATA bytes.
    #[error("records are not in canonical order")]
    NotInCanonicalOrder,
    /// A CNAME beside other data, or more than one CNAME (RFC 1034 §3.6.2).
    #[error("a CNAME must be the only record at its name")]
    CnameWithOtherData,
    /// More than one SOA record (a zone has one, at its apex).
    #[error("more than one SOA record")]
    MultipleSoa,
}

/// Why a bundle could not be built and signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The records break a content rule.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The encoded bundle would exceed [`MAX_BUNDLE_LEN`](crate::MAX_BUNDLE_LEN).
    #[error("bundle of {len} bytes is larger than the limit of {max}")]
    TooLarge {
        /// Encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why bytes are not a well-formed bundle. Checked before any signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than [`MAX_BUNDLE_LEN`](crate::MAX_BUNDLE_LEN); refused before parsing.
    #[error("bundle of {len} bytes is larger than the limit of {max}")]
    TooLarge {
        /// Size found.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A version this build does not understand.
    #[error("unsupported bundle format version {version}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// The bytes end inside a field.
    #[error("bundle is truncated in the {field} field")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes after the signature.
    #[error("{extra} bytes after the end of the bundle")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The zone key field is not a usable public key.
    #[error("bad zone key: {0}")]
    ZoneKey(#[source] ZoneIdError),
    /// The owner name field is not a canonical relative name.
    #[error("bad owner name: {0}")]
    OwnerName(#[source] NameError),
    /// A record breaks the content rules.
    #[error("bad records: {0}")]
    Content(#[source] ContentError),
}

/// Why a well-formed bundle is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature does not verify under the bundle's zone key.
    #[error("bad signature")]
    BadSignature,
    /// The bundle's zone key and owner name do not hash to the DHT key it was
    /// stored or found under.
    #[error("bundle belongs under DHT key {actual}, not {expected}")]
    WrongKey {
        /// The key it was presented under.
        expected: DhtKey,
        /// The key its content derives.
        actual: DhtKey,
    },
    /// The expiry time has passed.
    #[error("bundle expired at {expires}, now is {now} (unix seconds)")]
    Expired {
        /// Expiry, unix seconds.
        expires: u64,
        /// The time it was checked at.
        now: u64,
    },
    /// The expiry lies further ahead than [`MAX_VALIDITY`](crate::MAX_VALIDITY).
    #[error("bundle expiry {expires} is more than {max_validity} s after now ({now})")]
    ExpiryTooFar {
        /// Expiry, unix seconds.
        expires: u64,
        /// The time it was checked at.
        now: u64,
        /// The limit, seconds.
        max_validity: u64,
    },
}

/// Everything [`validate`](crate::validate) can refuse a record for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    /// Malformed, oversized or of an unknown version.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// Well-formed, but forged, misplaced or expired.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

impl ValidateError {
    /// A short, stable label for the reason, for metrics and logs:
    /// `too_large`, `unsupported_version`, `malformed`, `bad_signature`,
    /// `wrong_key`, `expired` or `expiry_too_far`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Decode(DecodeError::TooLarge { .. }) => "too_large",
            Self::Decode(DecodeError::UnsupportedVersion { .. }) => "unsupported_version",
            Self::Decode(_) => "malformed",
            Self::Verify(VerifyError::BadSignature) => "bad_signature",
            Self::Verify(VerifyError::WrongKey { .. }) => "wrong_key",
            Self::Verify(VerifyError::Expired { .. }) => "expired",
            Self::Verify(VerifyError::ExpiryTooFar { .. }) => "expiry_too_far",
        }
    }
}
