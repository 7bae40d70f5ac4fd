//! Owner names in canonical form, relative to the zone apex.

use core::fmt;

use hickory_proto::rr::Name;

use crate::error::NameError;
use crate::limits::MAX_OWNER_LEN;

/// An owner name relative to its zone's apex, in canonical form: ASCII letters
/// lower-cased, DNS wire labels, ending in a zero byte. The apex itself is the
/// empty name (a single zero byte), written `@`.
///
/// This is the form that is signed and hashed into the DHT key. It is a
/// different type from [`Name`], the name a client sent, so a lookup key can
/// never be mistaken for a name to answer with.
///
/// ```
/// use hickory_proto::rr::Name;
/// use kadns_record::OwnerName;
///
/// let apex = Name::from_ascii("example.kad.").unwrap();
/// let www = Name::from_ascii("WWW.Example.kad.").unwrap();
/// let owner = OwnerName::relative_to(&www, &apex).unwrap();
/// assert_eq!(owner.to_string(), "www");
/// assert_eq!(owner.wire(), b"\x03www\x00");
/// assert!(OwnerName::relative_to(&Name::from_ascii("other.kad.").unwrap(), &apex).is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerName {
    wire: Vec<u8>,
}

impl OwnerName {
    /// The zone apex, `@`.
    pub fn apex() -> Self {
        Self { wire: vec![0] }
    }

    /// The part of `name` below `apex`, canonicalised. Fails if `name` is not
    /// `apex` or below it (names compare case-insensitively).
    pub fn relative_to(name: &Name, apex: &Name) -> Result<Self, NameError> {
        if !apex.zone_of(name) {
            return Err(NameError::OutsideZone {
                name: name.to_ascii(),
                apex: apex.to_ascii(),
            });
        }
        // Count labels, never `num_labels()`: that is RFC 4034's RRSIG label
        // count, which leaves out a leading `*` (so `*.users` would become `*`).
        let keep = name.iter().count().saturating_sub(apex.iter().count());
        Self::from_labels(name.iter().take(keep))
    }

    /// Builds an owner name from labels, most specific first.
    pub fn from_labels<'a>(labels: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, NameError> {
        let mut wire = Vec::new();
        for label in labels {
            if label.is_empty() || label.len() > 63 {
                return Err(NameError::BadLabel { len: label.len() });
            }
            wire.push(label.len() as u8);
            wire.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        if wire.len() > MAX_OWNER_LEN {
            return Err(NameError::TooLong {
                len: wire.len(),
                max: MAX_OWNER_LEN,
            });
        }
        Ok(Self { wire })
    }

    /// Reads and checks a canonical owner name from its wire form: whole labels,
    /// one terminating zero byte, no upper-case ASCII, within [`MAX_OWNER_LEN`].
    pub fn from_wire(wire: &[u8]) -> Result<Self, NameError> {
        if wire.len() > MAX_OWNER_LEN {
            return Err(NameError::TooLong {
                len: wire.len(),
                max: MAX_OWNER_LEN,
            });
        }
        let mut rest = wire;
        loop {
            let Some((&len, tail)) = rest.split_first() else {
                return Err(NameError::Unterminated);
            };
            if len == 0 {
                if !tail.is_empty() {
                    return Err(NameError::TrailingBytes);
                }
                break;
            }
            let len = usize::from(len);
            if len > 63 {
                return Err(NameError::BadLabel { len });
            }
            let label = tail.get(..len).ok_or(NameError::Unterminated)?;
            if label.iter().any(u8::is_ascii_uppercase) {
                return Err(NameError::NotCanonical);
            }
            rest = tail.get(len..).ok_or(NameError::Unterminated)?;
        }
        Ok(Self {
            wire: wire.to_vec(),
        })
    }

    /// The canonical wire form: labels and a terminating zero byte.
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// True for the zone apex.
    pub fn is_apex(&self) -> bool {
        self.wire.len() == 1
    }

    /// True when the first label is `*`: a wildcard owner (RFC 4592).
    pub fn is_wildcard(&self) -> bool {
        self.labels().next() == Some(b"*".as_slice())
    }

    /// The number of labels (0 for the apex). A leading `*` counts.
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The ancestor with the `keep` least specific labels (`keep` at or
    /// above [`label_count`](Self::label_count) gives the name itself; 0
    /// gives the apex).
    ///
    /// ```
    /// use kadns_record::OwnerName;
    ///
    /// let name = OwnerName::from_labels([b"x".as_slice(), b"y", b"users"]).unwrap();
    /// assert_eq!(name.ancestor(1).to_string(), "users");
    /// assert!(name.ancestor(0).is_apex());
    /// ```
    pub fn ancestor(&self, keep: usize) -> Self {
        let count = self.label_count();
        if keep >= count {
            return self.clone();
        }
        let labels: Vec<&[u8]> = self.labels().skip(count - keep).collect();
        // A suffix of a valid owner name is a valid owner name.
        Self::from_labels(labels).unwrap_or_else(|_| Self::apex())
    }

    /// The parent: this name without its first label (`None` for the apex).
    pub fn parent(&self) -> Option<Self> {
        let count = self.label_count();
        (count > 0).then(|| self.ancestor(count - 1))
    }

    /// `*.<self>`: the wildcard owner whose closest encloser this name is.
    /// Fails only if that name would be too long.
    pub fn wildcard_child(&self) -> Result<Self, NameError> {
        let labels: Vec<&[u8]> = core::iter::once(b"*".as_slice())
            .chain(self.labels())
            .collect();
        Self::from_labels(labels)
    }

    /// The labels, most specific first.
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.wire.as_slice();
        core::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let label = tail.get(..usize::from(len)).filter(|l| !l.is_empty())?;
            rest = tail.get(usize::from(len)..)?;
            Some(label)
        })
    }

    /// The absolute name of this owner under `apex`.
    pub fn under(&self, apex: &Name) -> Result<Name, NameError> {
        let mut name = Name::from_labels(self.labels()).map_err(|_| NameError::TooLong {
            len: self.wire.len(),
            max: MAX_OWNER_LEN,
        })?;
        name.set_fqdn(false);
        name.append_domain(apex).map_err(|_| NameError::TooLong {
            len: self.wire.len() + apex.len(),
            max: 255,
        })
    }
}

impl fmt::Display for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_apex() {
            return f.write_str("@");
        }
        let name = Name::from_labels(self.labels()).map_err(|_| fmt::Error)?;
        f.write_str(name.to_ascii().trim_end_matches('.'))
    }
}

impl fmt::Debug for OwnerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnerName({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("test names are valid")
    }

    #[test]
    fn relative_names() {
        let apex = name("Example.KAD.");
        assert!(
            OwnerName::relative_to(&name("example.kad."), &apex)
                .unwrap()
                .is_apex()
        );
        let o = OwnerName::relative_to(&name("A.b.EXAMPLE.kad."), &apex).unwrap();
        assert_eq!(o.wire(), b"\x01a\x01b\x00");
        assert_eq!(o.to_string(), "a.b");
        assert_eq!(o.under(&name("z.")).unwrap(), name("a.b.z."));
        assert_eq!(OwnerName::apex().under(&apex).unwrap(), apex);
    }

    #[test]
    fn wildcard_owners_keep_every_label() {
        let apex = name("example.kad.");
        let o = OwnerName::relative_to(&name("*.users.example.kad."), &apex).unwrap();
        assert_eq!(o.wire(), b"\x01*\x05users\x00");
        assert_eq!(o.to_string(), "*.users");
        assert!(o.is_wildcard());
        assert_eq!(o.label_count(), 2);
        assert_eq!(o.under(&apex).unwrap(), name("*.users.example.kad."));
        // Under an apex that is itself written with a leading `*`-free name.
        let star = OwnerName::relative_to(&name("*.example.kad."), &apex).unwrap();
        assert_eq!(star.to_string(), "*");
        assert_eq!(o.parent().unwrap().to_string(), "users");
        assert_eq!(
            OwnerName::from_labels([b"users".as_slice()])
                .unwrap()
                .wildcard_child()
                .unwrap(),
            o
        );
        assert!(OwnerName::apex().parent().is_none());
        assert_eq!(OwnerName::apex().wildcard_child().unwrap(), star);
    }

    #[test]
    fn wire_checks() {
        assert_eq!(
            OwnerName::from_wire(b"\x03www\x00").unwrap().to_string(),
            "www"
        );
        assert_eq!(
            OwnerName::from_wire(b"\x03WWW\x00"),
            Err(NameError::NotCanonical)
        );
        assert_eq!(
            OwnerName::from_wire(b"\x03www"),
            Err(NameError::Unterminated)
        );
        assert_eq!(
            OwnerName::from_wire(b"\x05www\x00"),
            Err(NameError::Unterminated)
        );
        assert_eq!(
            OwnerName::from_wire(b"\x00\x00"),
            Err(NameError::TrailingBytes)
        );
        assert_eq!(OwnerName::from_wire(b""), Err(NameError::Unterminated));
        assert_eq!(
            OwnerName::from_wire(&[64; 70]),
            Err(NameError::BadLabel { len: 64 })
        );
        let long = [b"\x3f".as_slice(), &[b'a'; 63]].concat().repeat(4);
        assert!(matches!(
            OwnerName::from_labels(long.chunks(64).map(|c| &c[1..])),
            Err(NameError::TooLong { .. })
        ));
    }

    use proptest::prelude::*;

    fn arb_labels() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![Just("*".to_owned()), "[a-zA-Z0-9_-]{1,12}"],
            0..6,
        )
    }

    proptest! {
        /// Any owner, wildcard labels anywhere included, survives
        /// `under` → `relative_to` under any apex, and every label is kept.
        #[test]
        fn owner_round_trips_under_any_apex(labels in arb_labels(), apex in arb_labels()) {
            let apex = Name::from_labels(apex.iter().filter(|l| *l != "*").map(|l| l.as_bytes())).unwrap();
            let owner = OwnerName::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap();
            let absolute = owner.under(&apex).unwrap();
            prop_assert_eq!(absolute.iter().count(), labels.len() + apex.iter().count());
            prop_assert_eq!(OwnerName::relative_to(&absolute, &apex).unwrap(), owner.clone());
            prop_assert_eq!(owner.label_count(), labels.len());
            for keep in 0..=labels.len() {
                let ancestor = owner.ancestor(keep);
                prop_assert_eq!(ancestor.label_count(), keep);
                prop_assert!(ancestor.under(&apex).unwrap().zone_of(&absolute));
            }
        }
    }
}
