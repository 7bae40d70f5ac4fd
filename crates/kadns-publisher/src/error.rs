//! Error types. Each names the file, and where it matters the line, and says why.
//!
//! `io::Error` is held in an [`Arc`] so that every error is `Clone`. No error ever
//! carries key material: a bad secret line is reported by its line number only.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::RecordType;
use kadns_record::{
    ContentError, DecodeError, DhtKey, EncodeError, NameError, OwnerName, ZoneIdError,
};

/// Why a zone key could not be generated or loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// There is no key file at the path.
    #[error("{}: no such key file", path.display())]
    NotFound {
        /// The key file.
        path: PathBuf,
    },
    /// [`generate_key`](crate::generate_key) never overwrites a file.
    #[error("{}: a file already exists there; refusing to overwrite it (move it away or choose another path)", path.display())]
    AlreadyExists {
        /// The key file.
        path: PathBuf,
    },
    /// Group or other users have some access to the key file.
    #[error(
        "{}: permissions {mode:04o} are too open: the key must be readable by its owner only (run `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    PermissionsTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is a directory or some other non-regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is not in the key file format.
    #[error("{}:{line}: not a kadns key file: {reason}", path.display())]
    Format {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: &'static str,
    },
    /// The `zone:` line is not a zone id.
    #[error("{}:{line}: bad zone id: {source}", path.display())]
    BadZoneId {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it is not a zone id.
        #[source]
        source: ZoneIdError,
    },
    /// The `zone:` line names another zone than the secret signs for.
    #[error("{}: the file says zone {stated}, but its secret is the key of zone {actual}", path.display())]
    Mismatch {
        /// The key file.
        path: PathBuf,
        /// The zone id written in the file.
        stated: String,
        /// The zone id of the secret.
        actual: String,
    },
    /// Reading, writing or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// Why the zone state (the last sequence number) could not be read or advanced.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state file exists but is not in the state file format (for example
    /// torn, or edited by hand). It is never silently reset.
    #[error(
        "{}:{line}: zone state is unreadable: {reason}. Refusing to guess the last sequence number; \
         fix the file or, if the clock is right, delete it (sequences then restart at the current time)",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another publisher (process or task) is publishing this zone from the
    /// same state right now.
    #[error(
        "{}: another publisher holds this zone's state (a `zone publish` or a `[[publish]]` entry of `kadns serve`); \
         stop it first",
        path.display()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// The last sequence is `u64::MAX`: no higher sequence exists.
    #[error("{}: the sequence number is exhausted (last sequence {last})", path.display())]
    Exhausted {
        /// The state file.
        path: PathBuf,
        /// The last sequence used.
        last: u64,
    },
    /// Reading, writing, locking or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
}

impl StateError {
    /// The file at `path` is corrupt at `line`.
    pub(crate) fn corrupt(path: &Path, line: usize, reason: &'static str) -> Self {
        Self::Corrupt {
            path: path.to_owned(),
            line,
            reason,
        }
    }

    /// Reading or writing `path` failed.
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }
}

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

/// Why a zone could not be signed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The configured validity is below [`MIN_VALIDITY_SECS`](crate::MIN_VALIDITY_SECS)
    /// or above [`MAX_VALIDITY`](kadns_record::MAX_VALIDITY).
    #[error(
        "signature validity of {validity} s is not allowed: it must be between {min} and {max} s"
    )]
    BadValidity {
        /// The configured validity, seconds.
        validity: u64,
        /// The lower limit, seconds.
        min: u64,
        /// The limit, seconds.
        max: u64,
    },
    /// The system clock reads before 1970.
    #[error("the system clock is before the unix epoch")]
    ClockBeforeEpoch,
    /// The key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The next sequence number could not be taken.
    #[error(transparent)]
    State(#[from] StateError),
    /// Some names cannot be signed: all of them are listed.
    #[error("{}: cannot sign: {}", path.display(), Problems(problems))]
    Zone {
        /// The zone file.
        path: PathBuf,
        /// Every problem found, in name order.
        problems: Vec<ZoneProblem>,
    },
}

/// Why a signed zone file could not be written or read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignedFileError {
    /// The file does not start with the magic bytes `KADNSSZ1`.
    #[error("{}: not a kadns signed zone file (it does not start with KADNSSZ1)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A length prefix runs past the end of the file.
    #[error(
        "{}: truncated: entry {index} at byte {offset} needs {needed} bytes, only {available} remain",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 0-based index of the entry.
        index: usize,
        /// Byte offset of the entry's length prefix.
        offset: usize,
        /// Bytes the entry needs (prefix included).
        needed: usize,
        /// Bytes left in the file.
        available: usize,
    },
    /// A bundle too long for its 16-bit length prefix (cannot come from
    /// kadns-record, whose bundles are at most `MAX_BUNDLE_LEN`).
    #[error("{}: bundle {index} is {len} bytes, too long for the file format", path.display())]
    BundleTooLong {
        /// The file.
        path: PathBuf,
        /// 0-based index of the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// Reading, writing or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// Why one entry of a signed zone file is not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index} at byte {offset}: {source}")]
pub struct EntryError {
    /// 0-based index of the entry.
    pub index: usize,
    /// Byte offset of the entry's length prefix.
    pub offset: usize,
    /// What kadns-record's decoder refused.
    #[source]
    pub source: DecodeError,
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

/// Renders a list of problems, one per line.
struct Problems<'a>(&'a [ZoneProblem]);

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

/// Why a [`ZonePublisher`](crate::ZonePublisher) could not open or finish a
/// round. A name whose put failed is not an error: it is reported in the
/// round's [`NamePublished`](crate::NamePublished) and retried.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ZonePublishError {
    /// The zone file could not be read or has problems (each with its line).
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// The key, the validity or a name of the zone is refused.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The zone state or the published state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// One name could not be signed (cannot happen for a zone that passed
    /// the checks; kept so that nothing can panic).
    #[error("{owner}: cannot sign: {source}")]
    Encode {
        /// The name.
        owner: OwnerName,
        /// What kadns-record refused.
        #[source]
        source: EncodeError,
    },
}
