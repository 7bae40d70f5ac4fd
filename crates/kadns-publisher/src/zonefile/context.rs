//! The parser's running state: one entry at a time, RFC 1035's "last stated" values.

use std::collections::BTreeMap;
use std::path::Path;

use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::{Parser, parse_ttl};
use kadns_record::{FORBIDDEN_TYPES, MAX_TTL, OwnerName};

use super::{ProblemKind, ZoneError, ZoneProblem};
use crate::lexer::{Entry, Token};
use crate::types;
use crate::warning::{WarningKind, ZoneWarning};

use super::rdata::{
    absolute_svcb_target, check_escapes, class_code, generic_rdata, hickory_parses_text, txt_rdata,
    type_from,
};
use super::{ParsedZone, ZoneRecord};

/// The parser's running state: RFC 1035's "last stated" values.
pub(super) struct Context<'a> {
    path: &'a Path,
    /// The zone's apex, once known.
    apex: Option<Name>,
    /// The current `$ORIGIN`.
    origin: Option<Name>,
    /// `$TTL`.
    default_ttl: Option<u32>,
    /// The last TTL written on a record.
    last_ttl: Option<u32>,
    /// The last class written on a record (code, as written).
    class: (u16, String),
    /// The last owner name; `Err` after an owner that did not parse, so that
    /// the records following it are skipped rather than misattributed.
    owner: Option<Result<Name, ()>>,
    missing_origin_reported: bool,
    records: Vec<ZoneRecord>,
    problems: Vec<ZoneProblem>,
    warnings: Vec<ZoneWarning>,
}

impl<'a> Context<'a> {
    pub(super) fn new(path: &'a Path, origin: Option<&Name>) -> Self {
        let origin = origin.map(|o| {
            let mut o = o.clone();
            o.set_fqdn(true);
            o
        });
        Self {
            path,
            apex: origin.clone(),
            origin,
            default_ttl: None,
            last_ttl: None,
            class: (1, "IN".to_owned()),
            owner: None,
            missing_origin_reported: false,
            records: Vec::new(),
            problems: Vec::new(),
            warnings: Vec::new(),
        }
    }

    pub(super) fn problem(&mut self, line: usize, kind: ProblemKind) {
        if kind == ProblemKind::MissingOrigin {
            // Once is enough: every later relative name would repeat it.
            if self.missing_origin_reported {
                return;
            }
            self.missing_origin_reported = true;
        }
        self.problems.push(ZoneProblem {
            path: self.path.to_owned(),
            line,
            kind,
        });
    }

    fn warn(&mut self, line: usize, kind: WarningKind) {
        self.warnings.push(ZoneWarning {
            path: self.path.to_owned(),
            line,
            kind,
        });
    }

    pub(super) fn entry(&mut self, entry: &Entry<'_>, text: &str) {
        let Some(first) = entry.tokens.first() else {
            return;
        };
        if !entry.leading_blank && !first.quoted && first.text.starts_with('$') {
            self.directive(entry);
        } else if let Err(kind) = self.record(entry, text) {
            self.problem(entry.line, kind);
        }
    }

    fn directive(&mut self, entry: &Entry<'_>) {
        let line = entry.line;
        let (name, args) = match entry.tokens.split_first() {
            Some((name, args)) => (name.text.to_ascii_uppercase(), args),
            None => return,
        };
        let directive = match name.as_str() {
            "$ORIGIN" => "$ORIGIN",
            "$TTL" => "$TTL",
            "$INCLUDE" => return self.problem(line, ProblemKind::IncludeNotSupported),
            _ => return self.problem(line, ProblemKind::UnknownDirective { directive: name }),
        };
        let [arg] = args else {
            return self.problem(line, ProblemKind::DirectiveArguments { directive });
        };
        if directive == "$TTL" {
            match parse_ttl(arg.text) {
                Ok(ttl) if !arg.quoted => {
                    if ttl > MAX_TTL {
                        self.warn(line, WarningKind::DefaultTtlClamped { ttl, max: MAX_TTL });
                    }
                    self.default_ttl = Some(ttl);
                }
                _ => self.problem(
                    line,
                    ProblemKind::BadTtl {
                        text: arg.text.to_owned(),
                    },
                ),
            }
            return;
        }
        match self.name(arg) {
            Ok(origin) => {
                if self.apex.is_none() {
                    self.apex = Some(origin.clone());
                }
                self.origin = Some(origin);
            }
            Err(kind) => self.problem(line, kind),
        }
    }

    /// Parses a name token against the current origin.
    fn name(&self, token: &Token<'_>) -> Result<Name, ProblemKind> {
        if token.quoted {
            return Err(ProblemKind::BadName {
                text: token.text.to_owned(),
                reason: "a domain name cannot be quoted".to_owned(),
            });
        }
        if token.text == "@" {
            return self.origin.clone().ok_or(ProblemKind::MissingOrigin);
        }
        if !token.text.ends_with('.') && self.origin.is_none() {
            return Err(ProblemKind::MissingOrigin);
        }
        Name::parse(token.text, self.origin.as_ref()).map_err(|e| ProblemKind::BadName {
            text: token.text.to_owned(),
            reason: e.to_string(),
        })
    }

    fn record(&mut self, entry: &Entry<'_>, text: &str) -> Result<(), ProblemKind> {
        let Some(apex) = self.apex.clone() else {
            return Err(ProblemKind::MissingOrigin);
        };
        // The owner.
        let mut fields = entry.tokens.as_slice();
        let owner = if entry.leading_blank {
            match &self.owner {
                Some(Ok(owner)) => owner.clone(),
                Some(Err(())) => return Ok(()), // already reported
                None => return Err(ProblemKind::MissingOwner),
            }
        } else {
            let (first, rest) = fields.split_first().ok_or(ProblemKind::MissingOwner)?;
            fields = rest;
            let owner = self.name(first);
            self.owner = Some(owner.clone().map_err(|_| ()));
            owner?
        };

        // [<TTL>] [<class>] <type>, TTL and class in either order.
        let mut ttl = None;
        let mut class = None;
        let mut record_type = None;
        while let Some((token, rest)) = fields.split_first() {
            fields = rest;
            if token.quoted {
                return Err(ProblemKind::UnknownType {
                    text: token.text.to_owned(),
                });
            }
            if token.text.starts_with(|c: char| c.is_ascii_digit()) {
                ttl = Some(parse_ttl(token.text).map_err(|_| ProblemKind::BadTtl {
                    text: token.text.to_owned(),
                })?);
                continue;
            }
            let upper = token.text.to_ascii_uppercase();
            if let Some(code) = class_code(&upper) {
                class = Some((code, token.text.to_owned()));
                continue;
            }
            record_type = Some((
                type_from(&upper).ok_or(ProblemKind::UnknownType {
                    text: token.text.to_owned(),
                })?,
                token,
            ));
            break;
        }
        if let Some(ttl) = ttl {
            self.last_ttl = Some(ttl);
        }
        if let Some(class) = class {
            self.class = class;
        }
        let (record_type, type_token) = record_type.ok_or(ProblemKind::MissingType)?;
        let explicit_ttl = ttl.is_some();
        let ttl = ttl
            .or(self.default_ttl)
            .or(self.last_ttl)
            .ok_or(ProblemKind::MissingTtl)?;

        // Checks that need no RDATA.
        if !apex.zone_of(&owner) {
            return Err(ProblemKind::OutsideZone {
                name: owner.to_ascii(),
                origin: apex.to_ascii(),
            });
        }
        if self.class.0 != 1 {
            return Err(ProblemKind::NotInClass {
                class: self.class.1.clone(),
            });
        }
        if FORBIDDEN_TYPES.contains(&u16::from(record_type)) {
            return Err(ProblemKind::ForbiddenType { record_type });
        }
        if let Some(reason) = types::refused(record_type) {
            return Err(ProblemKind::RefusedType {
                record_type: types::type_name(record_type),
                reason,
            });
        }

        let rdata = self.rdata(entry, text, record_type, type_token, fields)?;
        // Above the limit: clamped, with a warning on the line that wrote the
        // TTL (this record's, or once on the `$TTL` line or the earlier record
        // it inherits from).
        let ttl = if ttl > MAX_TTL {
            if explicit_ttl {
                self.warn(entry.line, WarningKind::TtlClamped { ttl, max: MAX_TTL });
            }
            MAX_TTL
        } else {
            ttl
        };
        self.records.push(ZoneRecord {
            name: owner,
            ttl,
            rdata,
            line: entry.line,
        });
        Ok(())
    }

    fn rdata(
        &self,
        entry: &Entry<'_>,
        text: &str,
        record_type: RecordType,
        type_token: &Token<'_>,
        data: &[Token<'_>],
    ) -> Result<RData, ProblemKind> {
        if let Some((first, rest)) = data.split_first()
            && !first.quoted
            && first.text == r"\#"
        {
            return generic_rdata(record_type, rest);
        }
        if record_type == RecordType::TXT {
            return txt_rdata(data);
        }
        if let Some(origin) = &self.origin
            && let Some(parsed) = types::parse(record_type, data, origin)
        {
            return parsed;
        }
        if !hickory_parses_text(record_type) {
            return Err(ProblemKind::NeedsGenericData { record_type });
        }
        for token in data {
            check_escapes(record_type, token)?;
        }
        // Hand hickory the entry's own RDATA text, under an owner of `@` and the
        // current origin, with TTL and class already resolved.
        // hickory refuses a free-standing `@` in RDATA: write the origin instead.
        let origin = self.origin.clone().ok_or(ProblemKind::MissingOrigin)?;
        let mut snippet = format!(
            "@ 0 IN {record_type} {}",
            if type_token.in_parens { "(" } else { "" }
        );
        let mut copied = type_token.end;
        for token in data.iter().filter(|t| !t.quoted && t.text == "@") {
            let start = token.end - token.text.len();
            snippet.push_str(text.get(copied..start).unwrap_or_default());
            snippet.push_str(&origin.to_ascii());
            copied = token.end;
        }
        snippet.push_str(text.get(copied..entry.end).unwrap_or_default());
        snippet.push('\n');
        let bad = |reason: String| ProblemKind::BadRdata {
            record_type,
            reason,
        };
        let (_, sets) = Parser::new(snippet, Some(self.path.to_owned()), Some(origin.clone()))
            .parse()
            .map_err(|e| bad(e.to_string()))?;
        let mut records = sets.into_values().flat_map(|set| {
            set.records_without_rrsigs()
                .map(|r| r.data.clone())
                .collect::<Vec<_>>()
        });
        match (records.next(), records.next()) {
            (Some(rdata), None) => Ok(absolute_svcb_target(rdata, &origin)),
            _ => Err(bad(
                "the zone parser did not produce exactly one record".to_owned()
            )),
        }
    }

    pub(super) fn finish(mut self) -> Result<ParsedZone, ZoneError> {
        // hickory's whole-file parser refuses a second SOA; entry by entry it
        // cannot see one, so check here.
        let mut soas = self
            .records
            .iter()
            .filter(|r| r.record_type() == RecordType::SOA);
        if let Some(first) = soas.next() {
            let (first_line, extra): (usize, Vec<usize>) =
                (first.line, soas.map(|r| r.line).collect());
            for line in extra {
                self.problem(line, ProblemKind::SecondSoa { first_line });
            }
        }
        let mut names: BTreeMap<OwnerName, Vec<ZoneRecord>> = BTreeMap::new();
        let records = std::mem::take(&mut self.records);
        if let Some(apex) = self.apex.clone() {
            for record in records {
                match OwnerName::relative_to(&record.name, &apex) {
                    Ok(owner) => names.entry(owner).or_default().push(record),
                    Err(source) => self.problem(
                        record.line,
                        ProblemKind::OwnerName {
                            name: record.name.to_ascii(),
                            source,
                        },
                    ),
                }
            }
        }
        for records in names.values() {
            self.check_cname(records);
            self.check_duplicates(records);
        }
        self.warnings.sort_by_key(|w| w.line);
        let Some(origin) = self.apex.clone() else {
            self.problem(1, ProblemKind::MissingOrigin);
            return Err(self.failure());
        };
        if !self.problems.is_empty() {
            return Err(self.failure());
        }
        tracing::debug!(
            path = %self.path.display(),
            origin = %origin,
            names = names.len(),
            "parsed zone file"
        );
        for warning in &self.warnings {
            tracing::debug!(%warning, "zone file warning");
        }
        Ok(ParsedZone {
            path: self.path.to_owned(),
            origin,
            names,
            warnings: self.warnings,
        })
    }

    /// RFC 2181 §5: an RRset is a set, so a record written twice is one
    /// record (warned about), and its records should share one TTL (warned
    /// about when they do not).
    fn check_duplicates(&mut self, records: &[ZoneRecord]) {
        for (i, record) in records.iter().enumerate() {
            let earlier = records.get(..i).unwrap_or_default();
            let same_type = || {
                earlier
                    .iter()
                    .find(|r| r.record_type() == record.record_type())
            };
            let kind = if let Some(first) = earlier.iter().find(|r| r.rdata == record.rdata) {
                WarningKind::Duplicate {
                    name: record.name.to_ascii(),
                    record_type: types::type_name(record.record_type()),
                    first_line: first.line,
                }
            } else if let Some(first) = same_type().filter(|r| r.ttl != record.ttl) {
                WarningKind::MixedTtl {
                    name: record.name.to_ascii(),
                    record_type: types::type_name(record.record_type()),
                    ttl: record.ttl,
                    first_ttl: first.ttl,
                    first_line: first.line,
                }
            } else {
                continue;
            };
            self.warn(record.line, kind);
        }
    }

    /// RFC 1034 §3.6.2: a CNAME is alone at its name, and single. Identical
    /// CNAMEs written twice are one record (RFC 2181 §5).
    fn check_cname(&mut self, records: &[ZoneRecord]) {
        let Some(cname) = records
            .iter()
            .find(|r| r.record_type() == RecordType::CNAME)
        else {
            return;
        };
        let same_cname = |r: &ZoneRecord| match (&r.rdata, &cname.rdata) {
            (RData::CNAME(a), RData::CNAME(b)) => a.0 == b.0,
            _ => false,
        };
        let Some(other) = records
            .iter()
            .find(|r| r.line != cname.line && !same_cname(r))
        else {
            return;
        };
        let name = cname.name.to_ascii();
        let kind = if other.record_type() == RecordType::CNAME {
            ProblemKind::TwoCnames {
                name,
                first_line: cname.line,
            }
        } else {
            ProblemKind::CnameAndOtherData {
                name,
                cname_line: cname.line,
                record_type: other.record_type(),
            }
        };
        let line = other.line.max(cname.line);
        self.problem(line, kind);
    }

    fn failure(mut self) -> ZoneError {
        self.problems.sort_by_key(|p| p.line);
        ZoneError::Invalid {
            path: self.path.to_owned(),
            problems: self.problems,
        }
    }
}
