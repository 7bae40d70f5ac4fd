//! Moving the names inside RDATA from one apex to another.
//!
//! A zone's content does not depend on the apex it is reached under. In a
//! bundle, every in-zone name inside RDATA (see [`rebase_rdata`] for the
//! types) is written under the zone-id apex `<zone-id>.`. The
//! publisher rebases names from the zone file's `$ORIGIN` onto the zone-id apex
//! before signing; the resolver rebases them from the zone-id apex onto the
//! apex the query used. Names outside the zone are left alone.

use hickory_proto::rr::rdata::{ANAME, CNAME, NS, NULL, PTR};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, NameEncoding,
};

use crate::error::NameError;

/// Moves `name` from under `from` to under `to`, if it is at or below `from`.
///
/// ```
/// use hickory_proto::rr::Name;
/// use kadns_record::rebase_name;
///
/// let n = |s: &str| Name::from_ascii(s).unwrap();
/// assert_eq!(rebase_name(&n("mail.example.org."), &n("example.org."), &n("z.kad.")).unwrap(), n("mail.z.kad."));
/// assert_eq!(rebase_name(&n("other.net."), &n("example.org."), &n("z.kad.")).unwrap(), n("other.net."));
/// ```
pub fn rebase_name(name: &Name, from: &Name, to: &Name) -> Result<Name, NameError> {
    if !from.zone_of(name) {
        return Ok(name.clone());
    }
    // Count labels, never `num_labels()`, which leaves out a leading `*`.
    let keep = name.iter().count().saturating_sub(from.iter().count());
    let mut relative =
        Name::from_labels(name.iter().take(keep)).map_err(|_| NameError::TooLong {
            len: name.len(),
            max: 255,
        })?;
    relative.set_fqdn(false);
    relative.append_domain(to).map_err(|_| NameError::TooLong {
        len: name.len() - from.len() + to.len(),
        max: 255,
    })
}

/// Applies [`rebase_name`] to every domain name inside `rdata`.
///
/// Types hickory models: CNAME, ANAME, NS, PTR, MX, SRV, SOA (both names),
/// NAPTR (replacement), SVCB and HTTPS (target). Types hickory holds as
/// opaque bytes, by their RFC layout (see [`NAME_LAYOUTS`]): MD, MF, MB, MG,
/// MR, NSAP-PTR, DNAME (one name); MINFO, RP, TALINK (two names); AFSDB, RT,
/// KX, LP (preference, name); PX (preference, two names); IPSECKEY and
/// AMTRELAY with a gateway or relay of type 3 (a name). Opaque RDATA that does
/// not fit its type's layout, and every other type, is returned unchanged
/// (RFC 3597).
pub fn rebase_rdata(rdata: RData, from: &Name, to: &Name) -> Result<RData, NameError> {
    let re = |n: &Name| rebase_name(n, from, to);
    Ok(match rdata {
        RData::NAPTR(mut naptr) => {
            naptr.replacement = re(&naptr.replacement)?;
            RData::NAPTR(naptr)
        }
        RData::Unknown { code, rdata } => {
            let bytes = match opaque_layout(code, &rdata.anything) {
                Some(parts) => rebase_opaque(&rdata.anything, &parts, &re)?,
                None => None,
            };
            RData::Unknown {
                code,
                rdata: bytes.map_or(rdata, NULL::with),
            }
        }
        RData::CNAME(CNAME(n)) => RData::CNAME(CNAME(re(&n)?)),
        RData::ANAME(ANAME(n)) => RData::ANAME(ANAME(re(&n)?)),
        RData::NS(NS(n)) => RData::NS(NS(re(&n)?)),
        RData::PTR(PTR(n)) => RData::PTR(PTR(re(&n)?)),
        RData::MX(mut mx) => {
            mx.exchange = re(&mx.exchange)?;
            RData::MX(mx)
        }
        RData::SRV(mut srv) => {
            srv.target = re(&srv.target)?;
            RData::SRV(srv)
        }
        RData::SOA(mut soa) => {
            soa.mname = re(&soa.mname)?;
            soa.rname = re(&soa.rname)?;
            RData::SOA(soa)
        }
        RData::SVCB(mut svcb) => {
            svcb.target_name = re(&svcb.target_name)?;
            RData::SVCB(svcb)
        }
        RData::HTTPS(mut https) => {
            https.0.target_name = re(&https.0.target_name)?;
            RData::HTTPS(https)
        }
        other => other,
    })
}

/// One part of an RDATA layout, for the types hickory holds as opaque bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// So many bytes of fixed-size fields.
    Fixed(usize),
    /// An uncompressed domain name.
    Name,
}

/// The RDATA layouts of the types that carry domain names and that hickory
/// 0.26 holds as opaque bytes: type number and the parts before the
/// remaining (name-free) bytes. IPSECKEY (45) and AMTRELAY (260) carry a name
/// only for gateway/relay type 3 and are handled beside this table.
pub const NAME_LAYOUTS: &[(u16, &[Part])] = &[
    (3, &[Part::Name]),                              // MD
    (4, &[Part::Name]),                              // MF
    (7, &[Part::Name]),                              // MB
    (8, &[Part::Name]),                              // MG
    (9, &[Part::Name]),                              // MR
    (14, &[Part::Name, Part::Name]),                 // MINFO
    (17, &[Part::Name, Part::Name]),                 // RP
    (18, &[Part::Fixed(2), Part::Name]),             // AFSDB
    (21, &[Part::Fixed(2), Part::Name]),             // RT
    (23, &[Part::Name]),                             // NSAP-PTR
    (26, &[Part::Fixed(2), Part::Name, Part::Name]), // PX
    (36, &[Part::Fixed(2), Part::Name]),             // KX
    (39, &[Part::Name]),                             // DNAME
    (58, &[Part::Name, Part::Name]),                 // TALINK
    (107, &[Part::Fixed(2), Part::Name]),            // LP
];

/// The layout of opaque RDATA of type `code`, when it carries names.
fn opaque_layout(code: RecordType, bytes: &[u8]) -> Option<Vec<Part>> {
    let code = u16::from(code);
    match code {
        // IPSECKEY: precedence, gateway type, algorithm, gateway, key.
        45 if bytes.get(1) == Some(&3) => Some(vec![Part::Fixed(3), Part::Name]),
        // AMTRELAY: precedence, D bit and relay type, relay.
        260 if bytes.get(1).map(|b| b & 0x7f) == Some(3) => Some(vec![Part::Fixed(2), Part::Name]),
        _ => NAME_LAYOUTS
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(_, parts)| parts.to_vec()),
    }
}

/// Rebases the names of opaque RDATA laid out as `parts`; `None` when the
/// bytes do not fit the layout (they are then left alone).
fn rebase_opaque(
    bytes: &[u8],
    parts: &[Part],
    re: &dyn Fn(&Name) -> Result<Name, NameError>,
) -> Result<Option<Vec<u8>>, NameError> {
    let mut decoder = BinDecoder::new(bytes);
    let mut out = Vec::with_capacity(bytes.len() + 64);
    for part in parts {
        match part {
            Part::Fixed(n) => match decoder.read_slice(*n) {
                Ok(slice) => out.extend_from_slice(slice.unverified()),
                Err(_) => return Ok(None),
            },
            Part::Name => {
                let Ok(name) = Name::read(&mut decoder) else {
                    return Ok(None);
                };
                let name = re(&name)?;
                // A fresh buffer per name: an encoder writes from its buffer's start.
                let mut encoded = Vec::new();
                let mut encoder = BinEncoder::new(&mut encoded);
                encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
                if name.emit(&mut encoder).is_err() {
                    return Ok(None);
                }
                out.extend_from_slice(&encoded);
            }
        }
    }
    let rest = decoder.read_slice(decoder.len()).map(|s| s.unverified());
    match rest {
        Ok(rest) => out.extend_from_slice(rest),
        Err(_) => return Ok(None),
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = BinEncoder::new(&mut out);
        n(name).emit(&mut encoder).unwrap();
        out
    }

    #[test]
    fn wildcard_names_keep_their_labels() {
        assert_eq!(
            rebase_name(&n("*.users.example.org."), &n("example.org."), &n("z.kad.")).unwrap(),
            n("*.users.z.kad.")
        );
        assert_eq!(
            rebase_name(&n("*.example.org."), &n("example.org."), &n("z.kad.")).unwrap(),
            n("*.z.kad.")
        );
    }

    use proptest::prelude::*;

    fn arb_labels() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(
            prop_oneof![Just("*".to_owned()), "[a-zA-Z0-9-]{1,10}"],
            0..5,
        )
    }

    fn absolute(labels: &[String], apex: &Name) -> Name {
        let mut name = Name::from_labels(labels.iter().map(|l| l.as_bytes())).unwrap();
        name.set_fqdn(false);
        name.append_domain(apex).unwrap()
    }

    proptest! {
        /// Rebasing keeps every label below the old apex, `*` labels
        /// included, and rebasing back restores the name.
        #[test]
        fn rebase_keeps_every_label(labels in arb_labels(), from in arb_labels(), to in arb_labels()) {
            let clean = |v: Vec<String>| -> Vec<String> { v.into_iter().filter(|l| l != "*").collect() };
            let from = absolute(&clean(from), &Name::root());
            let to = absolute(&clean(to), &Name::root());
            let name = absolute(&labels, &from);
            let moved = rebase_name(&name, &from, &to).unwrap();
            prop_assert_eq!(moved.iter().count(), labels.len() + to.iter().count());
            prop_assert!(to.zone_of(&moved));
            let kept: Vec<&[u8]> = moved.iter().take(labels.len()).collect();
            let want: Vec<&[u8]> = labels.iter().map(|l| l.as_bytes()).collect();
            prop_assert_eq!(kept, want);
            // Back again (when `to` is not inside `from`, which would be ambiguous).
            if !from.zone_of(&to) && !to.zone_of(&from) {
                prop_assert_eq!(rebase_name(&moved, &to, &from).unwrap(), name);
            }
        }
    }

    /// Every type of [`NAME_LAYOUTS`], and IPSECKEY/AMTRELAY, rebases each of
    /// its names and keeps every other byte.
    #[test]
    fn opaque_types_rebase_every_name() {
        let (from, to) = (n("example.org."), n("z.kad."));
        for (code, parts) in NAME_LAYOUTS {
            let mut before = Vec::new();
            let mut after = Vec::new();
            for (i, part) in parts.iter().enumerate() {
                match part {
                    Part::Fixed(k) => {
                        before.extend(std::iter::repeat_n(7u8, *k));
                        after.extend(std::iter::repeat_n(7u8, *k));
                    }
                    Part::Name => {
                        before.extend(wire(&format!("h{i}.example.org.")));
                        after.extend(wire(&format!("h{i}.z.kad.")));
                    }
                }
            }
            let rdata = RData::Unknown {
                code: RecordType::from(*code),
                rdata: NULL::with(before),
            };
            let got = rebase_rdata(rdata, &from, &to).unwrap();
            assert_eq!(
                got,
                RData::Unknown {
                    code: RecordType::from(*code),
                    rdata: NULL::with(after)
                },
                "type {code}"
            );
        }
        // IPSECKEY with a name gateway: the name moves, the key stays.
        let mut ipseckey = vec![10, 3, 2];
        ipseckey.extend(wire("gw.example.org."));
        ipseckey.extend([1, 2, 3]);
        let mut want = vec![10, 3, 2];
        want.extend(wire("gw.z.kad."));
        want.extend([1, 2, 3]);
        let got = rebase_rdata(
            RData::Unknown {
                code: RecordType::from(45),
                rdata: NULL::with(ipseckey),
            },
            &from,
            &to,
        )
        .unwrap();
        assert_eq!(
            got,
            RData::Unknown {
                code: RecordType::from(45),
                rdata: NULL::with(want)
            }
        );
        // IPSECKEY with an IPv4 gateway: untouched.
        let v4 = vec![10, 1, 2, 192, 0, 2, 1, 9, 9];
        let untouched = RData::Unknown {
            code: RecordType::from(45),
            rdata: NULL::with(v4),
        };
        assert_eq!(
            rebase_rdata(untouched.clone(), &from, &to).unwrap(),
            untouched
        );
        // AMTRELAY, D bit set, relay type 3.
        let mut amt = vec![0, 0x83];
        amt.extend(wire("relay.example.org."));
        let mut want = vec![0, 0x83];
        want.extend(wire("relay.z.kad."));
        let got = rebase_rdata(
            RData::Unknown {
                code: RecordType::from(260),
                rdata: NULL::with(amt),
            },
            &from,
            &to,
        )
        .unwrap();
        assert_eq!(
            got,
            RData::Unknown {
                code: RecordType::from(260),
                rdata: NULL::with(want)
            }
        );
        // Bytes that do not fit the layout are left alone.
        let junk = RData::Unknown {
            code: RecordType::from(39),
            rdata: NULL::with(vec![5, b'a']),
        };
        assert_eq!(rebase_rdata(junk.clone(), &from, &to).unwrap(), junk);
    }
}
