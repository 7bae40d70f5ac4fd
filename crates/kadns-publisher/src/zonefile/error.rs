//! Zone file errors: every problem of a file, each with its line and reason.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::rr::RecordType;
use kadns_record::{ContentError, EncodeError, NameError};

/// One problem in a zone, at one line of its file.
///
/// Displays as `path:line: reason`, like a compiler message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {kind}", path.display())]
pub struct ZoneProblem {
    /// The zone file.
    pub path: PathBuf,
    /// 1-based line number (the first line of a multi-line entry).
    pub line: usize,
    /// What is wrong (part of the message, not a separate cause).
    pub kind: ProblemKind,
}

/// What is wrong with one line or record of a zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProblemKind {
    /// A `(` was never closed.
    #[error("'(' is not closed")]
    UnclosedParenthesis,
    /// A `)` without a `(`.
    #[error("')' without a matching '('")]
    UnbalancedParenthesis,
    /// A `(` inside parentheses.
    #[error("nested parentheses")]
    NestedParenthesis,
    /// A `"` was never closed.
    #[error("quoted string is not closed")]
    UnclosedQuote,
    /// A control character outside a quoted string.
    #[error("control character U+{code:04X} outside a quoted string")]
    ControlCharacter {
        /// The character's code point.
        code: u32,
    },
    /// `$INCLUDE` is refused: a zone is one self-contained file.
    #[error("$INCLUDE is not supported: put the zone in one file")]
    IncludeNotSupported,
    /// A `$` directive other than `$ORIGIN` and `$TTL`.
    #[error("unknown directive {directive} (only $ORIGIN and $TTL are supported)")]
    UnknownDirective {
        /// The directive as written.
        directive: String,
    },
    /// A directive with a missing or extra argument.
    #[error("{directive} takes exactly one argument")]
    DirectiveArguments {
        /// The directive.
        directive: &'static str,
    },
    /// A relative name, or `@`, before any origin is known.
    #[error("no origin: start the file with $ORIGIN or give the zone's origin")]
    MissingOrigin,
    /// A record that starts with a blank before any owner was named.
    #[error("the record has no owner name (the first record must name its owner)")]
    MissingOwner,
    /// A name that does not parse.
    #[error("bad domain name {text:?}: {reason}")]
    BadName {
        /// The name as written.
        text: String,
        /// What the name parser reported.
        reason: String,
    },
    /// A TTL field that does not parse.
    #[error("bad TTL {text:?}")]
    BadTtl {
        /// The TTL as written.
        text: String,
    },
    /// No TTL on the record, no `$TTL` and no earlier TTL.
    #[error("the record has no TTL (give one, or set $TTL)")]
    MissingTtl,
    /// The record has an owner but no type.
    #[error("the record has no type")]
    MissingType,
    /// A type mnemonic that is not known.
    #[error("unknown record type {text:?} (write unknown types as TYPEnnn with RFC 3597 \\# data)")]
    UnknownType {
        /// The type as written.
        text: String,
    },
    /// A type given by number that hickory cannot parse from text.
    #[error("{record_type} needs RFC 3597 generic data: {record_type} \\# <length> <hex>")]
    NeedsGenericData {
        /// The type.
        record_type: RecordType,
    },
    /// RFC 3597 data whose length field is not a number.
    #[error("bad RFC 3597 data length {text:?}")]
    GenericLength {
        /// The length as written.
        text: String,
    },
    /// RFC 3597 data that is not hexadecimal.
    #[error("bad RFC 3597 hex data {text:?}")]
    GenericHex {
        /// The offending token.
        text: String,
    },
    /// RFC 3597 data whose length differs from its declared length.
    #[error("RFC 3597 data is {actual} bytes, but its length field says {declared}")]
    GenericLengthMismatch {
        /// The length field.
        declared: usize,
        /// The bytes given.
        actual: usize,
    },
    /// An escape in a quoted string or bare word that hickory-proto's zone parser
    /// misreads (it would silently store other bytes).
    #[error(
        "escape {escape:?} in {record_type} data is not supported (hickory-proto misreads it): \
         write the character itself, or the whole RDATA as RFC 3597 \\# data"
    )]
    UnsupportedEscape {
        /// The type.
        record_type: RecordType,
        /// The escape sequence.
        escape: String,
    },
    /// A bad `\DDD` escape (more than 255).
    #[error("bad escape {escape:?}: \\DDD must be at most \\255")]
    BadEscape {
        /// The escape sequence.
        escape: String,
    },
    /// A TXT record without a character-string.
    #[error("a TXT record needs at least one character-string")]
    EmptyTxt,
    /// A TXT character-string longer than 255 bytes.
    #[error(
        "TXT character-string of {len} bytes is longer than 255 (split it into several quoted strings)"
    )]
    TxtStringTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// RDATA that does not parse or decode as its type.
    #[error("bad {record_type} data: {reason}")]
    BadRdata {
        /// The type.
        record_type: RecordType,
        /// What the DNS parser reported.
        reason: String,
    },
    /// RDATA that does not parse as its type, for a type kadns parses itself
    /// (one hickory does not; `docs/zone-files.md`).
    #[error("bad {record_type} data: {reason}")]
    BadTypeData {
        /// The type's mnemonic.
        record_type: String,
        /// What is wrong.
        reason: String,
    },
    /// A type that the record format could carry but a kadns zone file may
    /// not use (`docs/zone-files.md` says why for each).
    #[error("{record_type} records are not accepted: {reason}")]
    RefusedType {
        /// The type's mnemonic.
        record_type: String,
        /// Why.
        reason: &'static str,
    },
    /// A class other than IN.
    #[error("class {class} is not supported (only IN)")]
    NotInClass {
        /// The class as written or inherited.
        class: String,
    },
    /// A TTL above [`MAX_TTL`](kadns_record::MAX_TTL). The zone-file parser no
    /// longer raises it: it clamps, with [`WarningKind::TtlClamped`](crate::WarningKind::TtlClamped).
    #[error("TTL {ttl} is above the limit of {max} seconds")]
    TtlTooLarge {
        /// The TTL.
        ttl: u32,
        /// The limit.
        max: u32,
    },
    /// A type kadns does not publish (see [`FORBIDDEN_TYPES`](kadns_record::FORBIDDEN_TYPES)).
    #[error("record type {record_type} cannot be published in kadns")]
    ForbiddenType {
        /// The type.
        record_type: RecordType,
    },
    /// A name that is not at or below the zone's origin.
    #[error("{name} is outside the zone {origin}")]
    OutsideZone {
        /// The name.
        name: String,
        /// The zone origin.
        origin: String,
    },
    /// A name that cannot be an owner name (too long for the zone-id apex).
    #[error("owner name {name}: {source}")]
    OwnerName {
        /// The name.
        name: String,
        /// Why.
        #[source]
        source: NameError,
    },
    /// A CNAME beside other data (RFC 1034 §3.6.2).
    #[error(
        "{name} has a CNAME (line {cname_line}) and a {record_type} record: a CNAME must be the only record at its name"
    )]
    CnameAndOtherData {
        /// The name.
        name: String,
        /// Line of the CNAME.
        cname_line: usize,
        /// Type of the other record.
        record_type: RecordType,
    },
    /// Two different CNAMEs at one name (RFC 1034 §3.6.2).
    #[error("{name} has a second CNAME (the first is at line {first_line})")]
    TwoCnames {
        /// The name.
        name: String,
        /// Line of the first CNAME.
        first_line: usize,
    },
    /// A second SOA record (a zone has one, at its apex).
    #[error("a second SOA record (the first is at line {first_line})")]
    SecondSoa {
        /// Line of the first SOA.
        first_line: usize,
    },
    /// A record that kadns-record refuses.
    #[error("{name}: {source}")]
    Record {
        /// The owner name.
        name: String,
        /// Why.
        #[source]
        source: ContentError,
    },
    /// A bundle that kadns-record cannot encode and sign.
    #[error("{name}: {source}")]
    Encode {
        /// The owner name.
        name: String,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// A name inside RDATA that cannot be moved onto the zone-id apex.
    #[error("{name}: a name in the RDATA cannot be moved under the zone-id apex: {source}")]
    Rebase {
        /// The owner name.
        name: String,
        /// Why.
        #[source]
        source: NameError,
    },
    /// A name whose bundle is larger than [`MAX_BUNDLE_LEN`](kadns_record::MAX_BUNDLE_LEN).
    #[error(
        "the records of {name} make a bundle of {len} bytes, above the limit of {max}: move some records to another name"
    )]
    BundleTooLarge {
        /// The owner name.
        name: String,
        /// The bundle's encoded size.
        len: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a zone file could not be read or parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ZoneError {
    /// The file could not be read.
    #[error("{}: {source}", path.display())]
    Read {
        /// The zone file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// The file is not UTF-8 text.
    #[error("{}:{line}: not UTF-8 text", path.display())]
    NotUtf8 {
        /// The zone file.
        path: PathBuf,
        /// 1-based line of the first bad byte.
        line: usize,
    },
    /// The file has problems: all of them are listed, one per line.
    #[error("{}: {}", path.display(), Problems(problems))]
    Invalid {
        /// The zone file.
        path: PathBuf,
        /// Every problem found, in file order.
        problems: Vec<ZoneProblem>,
    },
}

/// Renders a list of problems, one per line.
pub(crate) struct Problems<'a>(pub(crate) &'a [ZoneProblem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(f, "{n} problem{}", if n == 1 { "" } else { "s" })?;
        for problem in self.0 {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
