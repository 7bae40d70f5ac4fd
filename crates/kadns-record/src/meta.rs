//! The kadns meta record: what a zone's structure says about a name.
//!
//! A resolver that finds no bundle for a name must know whether an ancestor
//! exists (the closest encloser, RFC 4592) and whether that ancestor has a
//! wildcard child. DNS servers know this from the whole zone; a kadns
//! resolver sees one name at a time. So the publisher says it, signed, in a
//! record of the private-use type [`META_TYPE`] inside the bundle:
//!
//! - an **empty non-terminal** (a name with no records of its own but with
//!   names below it, `b` when only `a.b` exists) gets a bundle whose only
//!   record is a meta record with [`Meta::empty_non_terminal`] set, so it
//!   answers NODATA and blocks wildcards;
//! - a name with a child `*` carries a meta record with
//!   [`Meta::wildcard_child`] set, so a resolver looks the wildcard up only
//!   where one exists.
//!
//! Answers never show a meta record. The layout is in `docs/record-format.md`.

use hickory_proto::rr::RecordType;

use crate::error::ContentError;
use crate::rr::Rr;

/// The record type of the meta record: 65533, in the private-use range
/// (RFC 6895 §3.1). Zone files may not use it.
pub const META_TYPE: u16 = 65533;

/// The version byte of the meta RDATA this build writes and understands.
pub const META_VERSION: u8 = 1;

const FLAG_EMPTY_NON_TERMINAL: u8 = 0x01;
const FLAG_WILDCARD_CHILD: u8 = 0x02;
const KNOWN_FLAGS: u8 = FLAG_EMPTY_NON_TERMINAL | FLAG_WILDCARD_CHILD;

/// The content of a meta record: RDATA `[version, flags]`.
///
/// ```
/// use kadns_record::{META_TYPE, Meta};
///
/// let ent = Meta::new(true, false);
/// let rr = ent.to_rr();
/// assert_eq!(u16::from(rr.record_type()), META_TYPE);
/// assert_eq!((rr.ttl(), rr.rdata_bytes()), (0, &[1, 1][..]));
/// assert_eq!(Meta::from_rdata(rr.rdata_bytes()), Some(ent));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Meta {
    flags: u8,
}

impl Meta {
    /// A meta record with the given facts.
    pub fn new(empty_non_terminal: bool, wildcard_child: bool) -> Self {
        let mut flags = 0;
        if empty_non_terminal {
            flags |= FLAG_EMPTY_NON_TERMINAL;
        }
        if wildcard_child {
            flags |= FLAG_WILDCARD_CHILD;
        }
        Self { flags }
    }

    /// The name has no records of its own, only names below it.
    pub fn empty_non_terminal(self) -> bool {
        self.flags & FLAG_EMPTY_NON_TERMINAL != 0
    }

    /// `*.<this name>` exists.
    pub fn wildcard_child(self) -> bool {
        self.flags & FLAG_WILDCARD_CHILD != 0
    }

    /// Reads meta RDATA: exactly two bytes, version [`META_VERSION`], no
    /// unknown flag bits. Anything else is not a meta record this version
    /// understands (`None`).
    pub fn from_rdata(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [META_VERSION, flags] if flags & !KNOWN_FLAGS == 0 => Some(Self { flags: *flags }),
            _ => None,
        }
    }

    /// The RDATA bytes.
    pub fn to_rdata(self) -> [u8; 2] {
        [META_VERSION, self.flags]
    }

    /// The meta record: type [`META_TYPE`], TTL 0.
    pub fn to_rr(self) -> Rr {
        Rr::from_parts(meta_type(), 0, self.to_rdata().to_vec())
            .expect("a meta record is an allowed type, TTL 0 and opaque RDATA")
    }
}

/// [`META_TYPE`] as a record type.
pub fn meta_type() -> RecordType {
    RecordType::from(META_TYPE)
}

/// True for a well-formed meta record (type, TTL 0, RDATA [`Meta::from_rdata`] reads).
pub(crate) fn is_meta_record(rr: &Rr) -> bool {
    rr.is_meta() && rr.ttl() == 0 && Meta::from_rdata(rr.rdata_bytes()).is_some()
}

/// The publisher's rules for meta records, checked by
/// [`Bundle::new`](crate::Bundle::new): at most one, well-formed, TTL 0, and
/// the empty-non-terminal flag set exactly when it is the only record.
///
/// Decoding does not apply them (nor does [`validate`](crate::validate)):
/// before this type was reserved a zone could publish type 65533 with any
/// data, and a signature made then must still verify. A meta record that is
/// not well-formed is ignored by the resolver and, like every meta-type
/// record, never shown in an answer.
pub(crate) fn check_meta(records: &[Rr]) -> Result<(), ContentError> {
    let mut metas = records.iter().filter(|r| r.is_meta());
    let Some(meta) = metas.next() else {
        return Ok(());
    };
    let bad = |reason: &str| {
        Err(ContentError::BadMeta {
            reason: reason.to_owned(),
        })
    };
    if metas.next().is_some() {
        return bad("more than one meta record");
    }
    if meta.ttl() != 0 {
        return bad("the meta record's TTL is not 0");
    }
    let Some(parsed) = Meta::from_rdata(meta.rdata_bytes()) else {
        return bad("the meta RDATA is not [version 1, known flags]");
    };
    let alone = records.len() == 1;
    if parsed.empty_non_terminal() != alone {
        return bad(if alone {
            "a name whose only record is the meta record must be marked empty non-terminal"
        } else {
            "a name with records cannot be marked empty non-terminal"
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;

    #[test]
    fn rdata_is_strict() {
        assert_eq!(Meta::from_rdata(&[1, 0]), Some(Meta::default()));
        assert_eq!(Meta::from_rdata(&[1, 3]), Some(Meta::new(true, true)));
        assert_eq!(Meta::from_rdata(&[1, 4]), None);
        assert_eq!(Meta::from_rdata(&[2, 1]), None);
        assert_eq!(Meta::from_rdata(&[1]), None);
        assert_eq!(Meta::from_rdata(&[1, 1, 0]), None);
        assert!(Meta::new(false, true).wildcard_child());
        assert!(!Meta::new(false, true).empty_non_terminal());
    }

    #[test]
    fn publisher_rules() {
        let a = Rr::new(60, &RData::A(A::new(192, 0, 2, 1))).unwrap();
        let ent = Meta::new(true, false).to_rr();
        let wild = Meta::new(false, true).to_rr();
        assert!(check_meta(std::slice::from_ref(&ent)).is_ok());
        assert!(check_meta(&[a.clone(), wild.clone()]).is_ok());
        assert!(check_meta(&[a.clone(), ent]).is_err());
        assert!(check_meta(std::slice::from_ref(&wild)).is_err());
        assert!(check_meta(&[a.clone(), wild.clone(), Meta::new(false, false).to_rr()]).is_err());
        let ttl = Rr::from_parts(meta_type(), 5, vec![1, 2]).unwrap();
        assert!(check_meta(&[a.clone(), ttl]).is_err());
        let junk = Rr::from_parts(meta_type(), 0, vec![9]).unwrap();
        assert!(check_meta(&[a, junk]).is_err());
    }
}

#[cfg(test)]
mod bundle_tests {
    use crate::{Bundle, Meta, OwnerName, Rr, ZoneKey, meta_type, validate};
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::CNAME;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn cname_beside_a_wildcard_flag_is_allowed_and_old_type_65533_still_verifies() {
        let key = ZoneKey::from_seed([3; 32]);
        let owner = OwnerName::from_labels([b"c".as_slice()]).unwrap();
        let cname = Rr::new(
            60,
            &RData::CNAME(CNAME(hickory_proto::rr::Name::from_ascii("x.").unwrap())),
        )
        .unwrap();
        let signed = Bundle::new(
            owner.clone(),
            1,
            NOW + 60,
            vec![cname.clone(), Meta::new(false, true).to_rr()],
        )
        .unwrap()
        .sign(&key)
        .unwrap();
        let verified = validate(&signed.dht_key(), signed.as_bytes(), NOW).unwrap();
        assert!(verified.meta().unwrap().wildcard_child());
        assert_eq!(verified.answer_records().collect::<Vec<_>>(), [&cname]);
        // A bundle as an older publisher could have signed it: type 65533 with
        // arbitrary data beside an A record. Decoding accepts it (stability);
        // it states no structure and is not answered.
        let a = Rr::new(
            60,
            &RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
        )
        .unwrap();
        let junk = Rr::from_parts(meta_type(), 300, vec![9, 9, 9]).unwrap();
        let content = Bundle::new(owner.clone(), 1, NOW + 60, vec![a.clone()]).unwrap();
        assert!(Bundle::new(owner, 1, NOW + 60, vec![a.clone(), junk.clone()]).is_err());
        let mut bytes = content.sign(&key).unwrap().into_bytes();
        // Re-encode by hand with the junk record appended (count 2), then sign.
        bytes.truncate(bytes.len() - 64);
        let count_at = 1 + 32 + 8 + 8 + 1 + 3;
        bytes[count_at + 1] = 2;
        bytes.extend_from_slice(&65533u16.to_be_bytes());
        bytes.extend_from_slice(&300u32.to_be_bytes());
        bytes.extend_from_slice(&3u16.to_be_bytes());
        bytes.extend_from_slice(&[9, 9, 9]);
        let signature = key.sign(&[crate::SIGNATURE_TAG, &bytes].concat());
        bytes.extend_from_slice(&signature.to_bytes());
        let dht_key = crate::DhtKey::derive(
            &key.zone_id(),
            &OwnerName::from_labels([b"c".as_slice()]).unwrap(),
        );
        let verified = validate(&dht_key, &bytes, NOW).expect("an old bundle still verifies");
        assert_eq!(verified.meta(), None);
        assert_eq!(verified.answer_records().collect::<Vec<_>>(), [&a]);
    }
}
