//! The zone's structure as signed data: a bundle for every empty
//! non-terminal, and a wildcard-child flag on every name with a `*` child.
//!
//! A kadns resolver sees one name at a time, so it can tell an empty
//! non-terminal (NODATA) from a name that does not exist (NXDOMAIN), and find
//! a wildcard's closest encloser (RFC 4592), only when the zone says so. The
//! signer states both in kadns meta records ([`kadns_record::Meta`], specified
//! in `docs/record-format.md`). The bundles this adds are ordinary bundles:
//! published, kept alive and tombstoned like any other name.

use std::collections::BTreeMap;

use kadns_record::{Bundle, MAX_BUNDLE_LEN, Meta, OwnerName};

use crate::signer::Prepared;
use crate::zonefile::ParsedZone;
use crate::zonefile::{ProblemKind, ZoneProblem};

/// The meta record each name needs, given the names that have records: every
/// missing ancestor (apex included) is an empty non-terminal, and every parent
/// of a wildcard owner has a wildcard child. With each, the line of the
/// first record that made it necessary.
pub(crate) fn meta_records<'a>(
    owners: impl IntoIterator<Item = (&'a OwnerName, usize)>,
) -> BTreeMap<OwnerName, (Meta, usize)> {
    let owners: BTreeMap<&OwnerName, usize> = owners.into_iter().collect();
    let mut out: BTreeMap<OwnerName, (bool, bool, usize)> = BTreeMap::new();
    for (&owner, &line) in &owners {
        let mut child = owner.clone();
        while let Some(parent) = child.parent() {
            let entry = out.entry(parent.clone()).or_insert((false, false, line));
            entry.2 = entry.2.min(line);
            if !owners.contains_key(&parent) {
                entry.0 = true;
            }
            if child.is_wildcard() && child.label_count() == parent.label_count() + 1 {
                entry.1 = true;
            }
            child = parent;
        }
    }
    out.into_iter()
        .filter(|(_, (ent, wild, _))| *ent || *wild)
        .map(|(owner, (ent, wild, line))| (owner, (Meta::new(ent, wild), line)))
        .collect()
}

/// Adds the meta records of `zone`'s structure to the prepared names: new
/// bundles for empty non-terminals, a flag beside the records of wildcard
/// parents. Returns the names that no longer fit [`MAX_BUNDLE_LEN`].
pub(crate) fn add_meta_records(
    prepared: &mut Vec<Prepared>,
    zone: &ParsedZone,
) -> Vec<ZoneProblem> {
    let metas = meta_records(prepared.iter().map(|p| (&p.owner, p.line)));
    let mut problems = Vec::new();
    for (owner, (meta, line)) in metas {
        let rr = meta.to_rr();
        if meta.empty_non_terminal() {
            let name = owner
                .under(zone.origin())
                .map_or_else(|_| owner.to_string(), |n| n.to_ascii());
            tracing::debug!(%name, wildcard_child = meta.wildcard_child(), "empty non-terminal");
            prepared.push(Prepared {
                owner,
                name,
                line,
                records: vec![rr],
            });
            continue;
        }
        let Some(target) = prepared.iter_mut().find(|p| p.owner == owner) else {
            continue;
        };
        target.records.push(rr);
        // Keep the records in canonical order, as `prepare` hands them over.
        let len = match Bundle::new(owner, 0, 0, target.records.clone()) {
            Ok(bundle) => {
                target.records = bundle.records().to_vec();
                bundle.encoded_len()
            }
            Err(_) => usize::MAX,
        };
        if len > MAX_BUNDLE_LEN {
            problems.push(ZoneProblem {
                path: zone.path().to_owned(),
                line: target.line,
                kind: ProblemKind::BundleTooLarge {
                    name: target.name.clone(),
                    len,
                    max: MAX_BUNDLE_LEN,
                },
            });
        }
    }
    prepared.sort_by(|a, b| a.owner.cmp(&b.owner));
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(s: &str) -> OwnerName {
        if s == "@" {
            return OwnerName::apex();
        }
        OwnerName::from_labels(s.split('.').map(str::as_bytes)).unwrap()
    }

    fn metas(owners: &[&str]) -> Vec<(String, bool, bool)> {
        let owners: Vec<OwnerName> = owners.iter().map(|o| owner(o)).collect();
        meta_records(owners.iter().map(|o| (o, 1)))
            .into_iter()
            .map(|(o, (m, _))| (o.to_string(), m.empty_non_terminal(), m.wildcard_child()))
            .collect()
    }

    #[test]
    fn empty_non_terminals_and_wildcard_parents() {
        // `a.b` alone: `b` and the apex are empty non-terminals.
        assert_eq!(
            metas(&["a.b"]),
            [("@".into(), true, false), ("b".into(), true, false)]
        );
        // With an apex of its own, only `b`.
        assert_eq!(metas(&["@", "a.b"]), [("b".into(), true, false)]);
        // `*.users` beside `alice.users`: `users` is empty with a wildcard child.
        assert_eq!(
            metas(&["@", "*.users", "alice.users"]),
            [("users".into(), true, true)]
        );
        // A wildcard below a name with records: the flag sits beside them.
        assert_eq!(metas(&["@", "*", "www"]), [("@".into(), false, true)]);
        // `x.*.w`: `*.w` is an empty non-terminal, and it is `w`'s wildcard child.
        assert_eq!(
            metas(&["@", "w", "x.*.w"]),
            [("*.w".into(), true, false), ("w".into(), false, true)]
        );
        // A flat zone needs nothing.
        assert!(metas(&["@", "www", "mail"]).is_empty());
    }
}
