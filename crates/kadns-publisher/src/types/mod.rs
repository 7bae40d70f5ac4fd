//! Presentation formats of the record types hickory-proto 0.26 does not parse
//! from text, and the zone-file policy for the types kadns refuses.
//!
//! Each type here is parsed from its RFC presentation form straight into
//! canonical wire RDATA (names uncompressed and lower-cased, RFC 4034 §6.2)
//! and held as `RData::Unknown` with its type number: hickory carries it
//! opaquely, `kadns_record::rebase_rdata` finds the names inside by the RFC
//! layout, and any DNS client decodes it by type. `docs/zone-files.md` lists
//! every type with its source.

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};

use crate::lexer::Token;
use crate::zonefile::ProblemKind;

mod composite;
mod fields;

use fields::Fields;

/// Mnemonics hickory's `RecordType::from_str` does not know, with their
/// numbers (IANA "Resource Record (RR) TYPEs").
pub(crate) const MNEMONICS: &[(&str, u16)] = &[
    ("MD", 3),
    ("MF", 4),
    ("MB", 7),
    ("MG", 8),
    ("MR", 9),
    ("WKS", 11),
    ("MINFO", 14),
    ("RP", 17),
    ("AFSDB", 18),
    ("X25", 19),
    ("ISDN", 20),
    ("RT", 21),
    ("NSAP", 22),
    ("NSAP-PTR", 23),
    ("PX", 26),
    ("GPOS", 27),
    ("LOC", 29),
    ("NXT", 30),
    ("EID", 31),
    ("NIMLOC", 32),
    ("ATMA", 34),
    ("KX", 36),
    ("A6", 38),
    ("SINK", 40),
    ("APL", 42),
    ("IPSECKEY", 45),
    ("DHCID", 49),
    ("HIP", 55),
    ("NINFO", 56),
    ("RKEY", 57),
    ("TALINK", 58),
    ("ZONEMD", 63),
    ("SPF", 99),
    ("UINFO", 100),
    ("UID", 101),
    ("GID", 102),
    ("NID", 104),
    ("L32", 105),
    ("L64", 106),
    ("LP", 107),
    ("EUI48", 108),
    ("EUI64", 109),
    ("URI", 256),
    ("AVC", 258),
    ("DOA", 259),
    ("AMTRELAY", 260),
    ("RESINFO", 261),
    ("WALLET", 262),
    ("TA", 32768),
    ("DLV", 32769),
];

/// The type number of a mnemonic from [`MNEMONICS`] (upper case).
pub(crate) fn mnemonic(upper: &str) -> Option<RecordType> {
    MNEMONICS
        .iter()
        .find(|(m, _)| *m == upper)
        .map(|(_, code)| RecordType::from(*code))
}

/// The mnemonic of a type, from hickory or [`MNEMONICS`], else `TYPEnnn`.
pub(crate) fn type_name(record_type: RecordType) -> String {
    let code = u16::from(record_type);
    if let Some((m, _)) = MNEMONICS.iter().find(|(_, c)| *c == code) {
        return (*m).to_owned();
    }
    match record_type {
        RecordType::Unknown(_) => format!("TYPE{code}"),
        known => known.to_string(),
    }
}

/// Types a zone file may not use although the record format could carry
/// them, and why. (The types the record format itself forbids, such as
/// RRSIG, are `kadns_record::FORBIDDEN_TYPES`.)
pub(crate) fn refused(record_type: RecordType) -> Option<&'static str> {
    const DNSSEC: &str = "DNSSEC data signed or delegated by another key: a kadns zone is \
                          signed by its zone key, and nothing validates a DNSSEC chain through it";
    match u16::from(record_type) {
        25 => Some("KEY is DNSSEC's old key type (RFC 3445): for SIG(0) and DNSSEC, not zone data"),
        43 | 48 | 51 | 59 | 60 | 32768 | 32769 => Some(DNSSEC),
        kadns_record::META_TYPE => {
            Some("type 65533 is reserved for kadns's own meta record (docs/record-format.md)")
        }
        _ => None,
    }
}

/// Parses the presentation RDATA of a type this module knows; `None` for the
/// types hickory parses (and those that need RFC 3597 generic data).
pub(crate) fn parse(
    record_type: RecordType,
    tokens: &[Token<'_>],
    origin: &Name,
) -> Option<Result<RData, ProblemKind>> {
    let code = u16::from(record_type);
    let mut f = Fields {
        tokens,
        origin,
        out: Vec::new(),
        code,
    };
    let result = match code {
        3 | 4 | 7 | 8 | 9 | 23 | 39 => f.name().and_then(|()| f.end()),
        14 | 17 | 58 => f.name().and_then(|()| f.name()).and_then(|()| f.end()),
        18 | 21 | 36 | 107 => f.u16().and_then(|()| f.name()).and_then(|()| f.end()),
        26 => f
            .u16()
            .and_then(|()| f.name())
            .and_then(|()| f.name())
            .and_then(|()| f.end()),
        19 | 100 => f.string().and_then(|()| f.end()),
        20 => f.isdn(),
        27 => f.gpos(),
        56 | 99 | 258 | 261 | 262 => f.strings(),
        101 | 102 => f.u32().and_then(|()| f.end()),
        105 => f.u16().and_then(|()| f.ipv4()).and_then(|()| f.end()),
        104 | 106 => f.u16().and_then(|()| f.locator64()).and_then(|()| f.end()),
        108 => f.eui(6),
        109 => f.eui(8),
        256 => f.uri(),
        49 => f.base64_rest(false),
        31 | 32 => f.hex_rest(),
        22 => f.nsap(),
        34 => f.atma(),
        63 => f
            .u32()
            .and_then(|()| f.u8())
            .and_then(|()| f.u8())
            .and_then(|()| f.hex_rest()),
        29 => f.loc(),
        11 => f.wks(),
        42 => f.apl(),
        45 => f.ipseckey(),
        260 => f.amtrelay(),
        55 => f.hip(),
        38 => f.a6(),
        57 => f
            .u16()
            .and_then(|()| f.u8())
            .and_then(|()| f.u8())
            .and_then(|()| f.base64_rest(false)),
        40 => f
            .u8()
            .and_then(|()| f.u8())
            .and_then(|()| f.base64_rest(true)),
        259 => f.doa(),
        _ => return None,
    };
    Some(result.map(|()| RData::Unknown {
        code: record_type,
        // `NULL::with` asserts non-empty data (an empty APL is valid).
        rdata: if f.out.is_empty() {
            NULL::new()
        } else {
            NULL::with(f.out)
        },
    }))
}
