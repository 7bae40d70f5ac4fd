//! RDATA the zone parser builds itself, and the mnemonics it reads.

use std::str::FromStr;

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecoder, Restrict};

use super::ProblemKind;
use crate::lexer::{self, Token};
use crate::types;

/// hickory reads an SVCB/HTTPS target without the origin (`1 svc` stays the
/// relative `svc`, which nothing could rebase); RFC 1035 makes it relative to
/// the origin, as for every other name in RDATA.
pub(super) fn absolute_svcb_target(rdata: RData, origin: &Name) -> RData {
    let absolute = |target: &mut Name| {
        if !target.is_fqdn()
            && let Ok(name) = target.clone().append_domain(origin)
        {
            *target = name;
        }
    };
    match rdata {
        RData::SVCB(mut svcb) => {
            absolute(&mut svcb.target_name);
            RData::SVCB(svcb)
        }
        RData::HTTPS(mut https) => {
            absolute(&mut https.0.target_name);
            RData::HTTPS(https)
        }
        other => other,
    }
}

/// The class mnemonics of RFC 1035 and RFC 3597's `CLASSnnn`.
pub(super) fn class_code(upper: &str) -> Option<u16> {
    match upper {
        "IN" => Some(1),
        "CH" => Some(3),
        "HS" => Some(4),
        "NONE" => Some(254),
        "ANY" => Some(255),
        _ => upper.strip_prefix("CLASS").and_then(decimal_u16),
    }
}

/// A type mnemonic hickory knows, or RFC 3597's `TYPEnnn`.
pub(super) fn type_from(upper: &str) -> Option<RecordType> {
    match upper.strip_prefix("TYPE").and_then(decimal_u16) {
        Some(code) => Some(RecordType::from(code)),
        None => RecordType::from_str(upper)
            .ok()
            // "*" is hickory's spelling of ANY in queries, never a type in a zone.
            .filter(|_| upper != "*")
            .or_else(|| types::mnemonic(upper)),
    }
}

pub(super) fn decimal_u16(digits: &str) -> Option<u16> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The types whose text form hickory-proto 0.26 parses (without its DNSSEC
/// feature). Every other type needs RFC 3597 generic data.
pub(super) fn hickory_parses_text(record_type: RecordType) -> bool {
    use RecordType::*;
    matches!(
        record_type,
        A | AAAA
            | ANAME
            | CAA
            | CERT
            | CNAME
            | CSYNC
            | HINFO
            | HTTPS
            | MX
            | NAPTR
            | NS
            | OPENPGPKEY
            | PTR
            | SMIMEA
            | SOA
            | SRV
            | SSHFP
            | SVCB
            | TLSA
            | TXT
    )
}

/// Refuses the escapes hickory's lexer misreads: `\DDD` inside quotes (it
/// builds a wrong character), and a backslash before a blank, `;` or `)` in a
/// bare word (it ends the word there).
pub(super) fn check_escapes(record_type: RecordType, token: &Token<'_>) -> Result<(), ProblemKind> {
    let bytes = token.content().as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'\\' {
            let next = bytes.get(i + 1).copied();
            let bad = match next {
                Some(d) if token.quoted => d.is_ascii_digit(),
                Some(c) => matches!(c, b' ' | b'\t' | b';' | b')'),
                None => false,
            };
            if bad {
                let end = if token.quoted { i + 4 } else { i + 2 };
                let escape = token.content().get(i..end.min(bytes.len())).unwrap_or("\\");
                return Err(ProblemKind::UnsupportedEscape {
                    record_type,
                    escape: escape.to_owned(),
                });
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// TXT RDATA from RFC 1035 character-strings, quoted or bare, escapes decoded.
pub(super) fn txt_rdata(data: &[Token<'_>]) -> Result<RData, ProblemKind> {
    if data.is_empty() {
        return Err(ProblemKind::EmptyTxt);
    }
    let strings = data
        .iter()
        .map(|token| {
            let bytes = lexer::unescape(token.content())?;
            if bytes.len() > 255 {
                return Err(ProblemKind::TxtStringTooLong { len: bytes.len() });
            }
            Ok(bytes)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RData::TXT(TXT::from_bytes(
        strings.iter().map(Vec::as_slice).collect(),
    )))
}

/// RFC 3597 generic RDATA: `\# <length> <hex>…`, decoded with hickory's wire
/// decoder (so a known type becomes its usual `RData`).
pub(super) fn generic_rdata(
    record_type: RecordType,
    data: &[Token<'_>],
) -> Result<RData, ProblemKind> {
    let (length, hex_tokens) = data
        .split_first()
        .ok_or_else(|| ProblemKind::GenericLength {
            text: String::new(),
        })?;
    let declared = if length.quoted {
        None
    } else {
        decimal_u16(length.text)
    };
    let declared = declared.ok_or_else(|| ProblemKind::GenericLength {
        text: length.text.to_owned(),
    })?;
    let mut hex_digits = String::new();
    for token in hex_tokens {
        if token.quoted || !token.text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ProblemKind::GenericHex {
                text: token.text.to_owned(),
            });
        }
        hex_digits.push_str(token.text);
    }
    if !hex_digits.len().is_multiple_of(2) {
        return Err(ProblemKind::GenericHex { text: hex_digits });
    }
    let bytes =
        hex::decode(&hex_digits).map_err(|_| ProblemKind::GenericHex { text: hex_digits })?;
    if bytes.len() != usize::from(declared) {
        return Err(ProblemKind::GenericLengthMismatch {
            declared: usize::from(declared),
            actual: bytes.len(),
        });
    }
    let bad = |reason: String| ProblemKind::BadRdata {
        record_type,
        reason,
    };
    let mut decoder = BinDecoder::new(&bytes);
    let rdata = RData::read(&mut decoder, record_type, Restrict::new(declared))
        .map_err(|e| bad(e.to_string()))?;
    if !decoder.is_empty() {
        return Err(bad(format!("{} bytes left after the RDATA", decoder.len())));
    }
    Ok(rdata)
}
