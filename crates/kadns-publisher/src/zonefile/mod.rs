//! Zone files: RFC 1035 master files, parsed into records that each keep their line.
//!
//! # How a file is parsed
//!
//! The file is split into entries (one directive or one record, parentheses
//! and quoted strings spanning lines) by a small lexer that keeps line numbers.
//! Directives (`$ORIGIN`, `$TTL`), owner names (`@`, relative, absolute, or
//! blank for the previous owner), TTLs (`300`, `1h30m`), classes (`IN`,
//! `CLASS1`) and types (`A`, `TYPE65534`) are read here. The RDATA of each
//! record is then parsed **entry by entry** by hickory-proto's zone parser
//! (`hickory_proto::serialize::txt::Parser`), given the entry's original text
//! and the current origin, so an error is always reported with the line of the
//! entry that caused it (hickory's own errors carry no line numbers).
//!
//! Four gaps in hickory-proto 0.26's parser are filled here, each pinned by a
//! test that shows hickory's behaviour:
//!
//! - RFC 3597 generic syntax, `TYPE65534 \# 4 0a000001`, also for known types
//!   (`A \# 4 c0000201`), and `CLASSnnn`/`TYPEnnn`: hickory refuses them. Here
//!   the hex (which may be split by spaces) is checked against its length and
//!   decoded with hickory's wire decoder, so a known type becomes its usual
//!   `RData` and an unknown one `RData::Unknown`.
//! - TXT escapes: hickory turns `"\065"` into U+0605 instead of `A`, and splits
//!   `a\;b`. TXT RDATA is therefore built here from RFC 1035 character-strings.
//!   In other types hickory would misread the same escapes; they are refused
//!   with a clear error instead of being stored wrong.
//! - `@` inside RDATA (`www CNAME @`, `MX 10 @`): hickory refuses it; here it
//!   is replaced by the current origin before hickory sees the text.
//! - Silent drops: hickory keeps only the last of two CNAMEs at one name, and
//!   ignores a line with no type. Both are errors here.
//!
//! `$INCLUDE` is refused: a zone is one self-contained file.
//!
//! # The zone's origin
//!
//! The zone's apex is the origin passed in, or else the first `$ORIGIN` of the
//! file. `$ORIGIN` may change later (a relative `$ORIGIN` is relative to the
//! current one), but every owner name must stay at or below the apex.
//!
//! # Checks
//!
//! Besides syntax, each record is checked for: class IN; a type not in
//! [`FORBIDDEN_TYPES`](kadns_record::FORBIDDEN_TYPES) nor refused for zone
//! files (DNSSEC types, the kadns meta type: `docs/zone-files.md`); an owner
//! at or below the apex; and a CNAME alone at its name (RFC 1034 §3.6.2).
//! Every problem of the file is collected, each with its line, before
//! parsing fails.
//!
//! # Warnings
//!
//! Some things operators write are accepted and changed, each with a
//! [`ZoneWarning`] naming the line ([`ParsedZone::warnings`]): a TTL above
//! [`MAX_TTL`](kadns_record::MAX_TTL) is clamped to it (on the record's line,
//! or once on the `$TTL` line for the records inheriting it); a duplicate
//! record is published once; an RRset with mixed TTLs is reported.
//!
//! # Types hickory does not parse
//!
//! The presentation forms of the types hickory-proto leaves out (LOC, RP,
//! AFSDB, DNAME, SPF, URI, APL, IPSECKEY, …) are parsed by `types.rs` into
//! wire RDATA; `docs/zone-files.md` lists every type.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hickory_proto::rr::{Name, RData, RecordType};
use kadns_record::OwnerName;

use crate::lexer;
use crate::warning::ZoneWarning;

mod context;
mod error;
mod rdata;
#[cfg(test)]
mod tests;

use context::Context;
pub(crate) use error::Problems;
pub use error::{ProblemKind, ZoneError, ZoneProblem};

/// One resource record of a zone file, with the line it was written on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneRecord {
    name: Name,
    ttl: u32,
    rdata: RData,
    line: usize,
}

impl ZoneRecord {
    /// The absolute owner name, as written (case preserved).
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// The TTL in seconds, at most [`MAX_TTL`] (clamped, with a warning).
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The record type.
    pub fn record_type(&self) -> RecordType {
        self.rdata.record_type()
    }

    /// The RDATA. In-zone names are still under the file's origin.
    pub fn rdata(&self) -> &RData {
        &self.rdata
    }

    /// The 1-based line the record starts on.
    pub fn line(&self) -> usize {
        self.line
    }
}

/// A parsed, checked zone file: its records grouped by owner name.
///
/// ```
/// use hickory_proto::rr::RecordType;
/// use kadns_publisher::ParsedZone;
///
/// let text = "$ORIGIN example.org.\n$TTL 300\n@ IN A 192.0.2.1\nwww CNAME @\n";
/// let zone = ParsedZone::from_text(text, "example.zone", None)?;
/// assert_eq!(zone.origin().to_ascii(), "example.org.");
/// assert_eq!(zone.record_count(), 2);
/// let (owner, records) = zone.names().iter().nth(1).unwrap();
/// assert_eq!(owner.to_string(), "www");
/// assert_eq!((records[0].record_type(), records[0].line()), (RecordType::CNAME, 4));
///
/// // Problems come with the file, the line and the reason.
/// let err = ParsedZone::from_text("$ORIGIN example.org.\nwww 300 IN A 192.0.2\n", "bad.zone", None).unwrap_err();
/// assert!(err.to_string().contains("bad.zone:2: bad A data"), "{err}");
/// # Ok::<_, kadns_publisher::ZoneError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedZone {
    path: PathBuf,
    origin: Name,
    names: BTreeMap<OwnerName, Vec<ZoneRecord>>,
    warnings: Vec<ZoneWarning>,
}

impl ParsedZone {
    /// Reads and parses the zone file at `path`. `origin` is the zone's apex;
    /// without it the file must start with `$ORIGIN`.
    pub fn from_file(path: impl AsRef<Path>, origin: Option<&Name>) -> Result<Self, ZoneError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| ZoneError::Read {
            path: path.into(),
            source: Arc::new(source),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let line = 1 + e
                .as_bytes()
                .iter()
                .take(valid)
                .filter(|&&b| b == b'\n')
                .count();
            ZoneError::NotUtf8 {
                path: path.into(),
                line,
            }
        })?;
        Self::from_text(&text, path, origin)
    }

    /// Parses zone file text. `path` names the file in errors.
    pub fn from_text(
        text: &str,
        path: impl Into<PathBuf>,
        origin: Option<&Name>,
    ) -> Result<Self, ZoneError> {
        let path = path.into();
        let mut cx = Context::new(&path, origin);
        let lexed = lexer::lex(text);
        for (line, kind) in lexed.problems {
            cx.problem(line, kind);
        }
        for entry in &lexed.entries {
            cx.entry(entry, text);
        }
        cx.finish()
    }

    /// The file the zone was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The zone's apex, as the file names it.
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The records, grouped by owner name relative to the apex, in file order
    /// within each name.
    pub fn names(&self) -> &BTreeMap<OwnerName, Vec<ZoneRecord>> {
        &self.names
    }

    /// What the file does that was accepted but changed (clamped TTLs,
    /// duplicates), in line order. Print them: `kadns zone sign` does.
    pub fn warnings(&self) -> &[ZoneWarning] {
        &self.warnings
    }

    /// The number of records.
    pub fn record_count(&self) -> usize {
        self.names.values().map(Vec::len).sum()
    }
}
