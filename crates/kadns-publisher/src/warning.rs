//! Warnings: what a zone file does that kadns accepts but changes or drops.

use std::path::PathBuf;

/// One warning about a zone file, at one line. Signing goes ahead; `kadns
/// zone sign` and `publish` print each on stderr.
///
/// Displays as `path:line: warning: reason`, like a compiler message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: warning: {kind}", path.display())]
pub struct ZoneWarning {
    /// The zone file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// What was changed or dropped.
    pub kind: WarningKind,
}

/// What a [`ZoneWarning`] is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WarningKind {
    /// A record's TTL above [`MAX_TTL`](kadns_record::MAX_TTL), lowered to it.
    #[error("TTL {ttl} is above the limit of {max} seconds: clamped to {max}")]
    TtlClamped {
        /// The TTL as written.
        ttl: u32,
        /// The limit, and the TTL signed.
        max: u32,
    },
    /// A `$TTL` above the limit: the records that inherit it get the limit.
    #[error("$TTL {ttl} is above the limit of {max} seconds: records that inherit it get {max}")]
    DefaultTtlClamped {
        /// The default TTL as written.
        ttl: u32,
        /// The limit.
        max: u32,
    },
    /// The same record (owner, type and data) written again: published once
    /// (RFC 2181 §5).
    #[error(
        "duplicate {record_type} record for {name} (first at line {first_line}): published once"
    )]
    Duplicate {
        /// The owner name.
        name: String,
        /// The type, as its mnemonic.
        record_type: String,
        /// The line of the first copy.
        first_line: usize,
    },
    /// Records of one RRset with different TTLs (RFC 2181 §5.2): each is
    /// kept as written, but resolvers may serve the lowest.
    #[error(
        "{record_type} records for {name} have different TTLs ({ttl} here, {first_ttl} at line {first_line})"
    )]
    MixedTtl {
        /// The owner name.
        name: String,
        /// The type, as its mnemonic.
        record_type: String,
        /// This record's TTL.
        ttl: u32,
        /// The first record's TTL.
        first_ttl: u32,
        /// The first record's line.
        first_line: usize,
    },
}
