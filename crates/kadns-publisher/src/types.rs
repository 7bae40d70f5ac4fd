//! Presentation formats of the record types hickory-proto 0.26 does not parse
//! from text, and the zone-file policy for the types kadns refuses.
//!
//! Each type here is parsed from its RFC presentation form straight into
//! canonical wire RDATA (names uncompressed and lower-cased, RFC 4034 §6.2)
//! and held as `RData::Unknown` with its type number: hickory carries it
//! opaquely, `kadns_record::rebase_rdata` finds the names inside by the RFC
//! layout, and any DNS client decodes it by type. `docs/zone-files.md` lists
//! every type with its source.

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::error::ProblemKind;
use crate::lexer::{self, Token};

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

/// Reads presentation fields in order, writing wire RDATA.
struct Fields<'t, 'a> {
    tokens: &'t [Token<'a>],
    origin: &'t Name,
    out: Vec<u8>,
    code: u16,
}

impl<'a> Fields<'_, 'a> {
    fn bad(&self, reason: impl Into<String>) -> ProblemKind {
        ProblemKind::BadTypeData {
            record_type: type_name(RecordType::from(self.code)),
            reason: reason.into(),
        }
    }

    /// The next token, unquoted; `what` names it in the error.
    fn word(&mut self, what: &str) -> Result<&'a str, ProblemKind> {
        let (first, rest) = self
            .tokens
            .split_first()
            .ok_or_else(|| self.bad(format!("{what} is missing")))?;
        if first.quoted {
            return Err(self.bad(format!("{what} cannot be quoted")));
        }
        self.tokens = rest;
        Ok(first.text)
    }

    fn end(&self) -> Result<(), ProblemKind> {
        match self.tokens.first() {
            None => Ok(()),
            Some(t) => Err(self.bad(format!("unexpected '{}' after the data", t.text))),
        }
    }

    fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ProblemKind> {
        let word = self.word(what)?;
        word.parse()
            .map_err(|_| self.bad(format!("{what} '{word}' is not a number in range")))
    }

    fn u8(&mut self) -> Result<(), ProblemKind> {
        let v: u8 = self.number("an 8-bit field")?;
        self.out.push(v);
        Ok(())
    }

    fn u16(&mut self) -> Result<(), ProblemKind> {
        let v: u16 = self.number("a 16-bit field")?;
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn u32(&mut self) -> Result<(), ProblemKind> {
        let v: u32 = self.number("a 32-bit field")?;
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    fn parse_name(&mut self) -> Result<Name, ProblemKind> {
        let word = self.word("a domain name")?;
        if word == "@" {
            return Ok(self.origin.clone());
        }
        Name::parse(word, Some(self.origin))
            .map_err(|e| self.bad(format!("'{word}' is not a domain name: {e}")))
    }

    fn emit_name(&mut self, name: &Name) -> Result<(), ProblemKind> {
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
        name.emit(&mut encoder)
            .map_err(|e| self.bad(format!("{name}: {e}")))?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    fn name(&mut self) -> Result<(), ProblemKind> {
        let name = self.parse_name()?;
        self.emit_name(&name)
    }

    fn char_string(&mut self, token: &Token<'_>) -> Result<Vec<u8>, ProblemKind> {
        let bytes = lexer::unescape(token.content())?;
        if bytes.len() > 255 {
            return Err(ProblemKind::TxtStringTooLong { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// One character-string, length-prefixed.
    fn string(&mut self) -> Result<(), ProblemKind> {
        let (first, rest) = self
            .tokens
            .split_first()
            .ok_or_else(|| self.bad("a character-string is missing"))?;
        self.tokens = rest;
        let bytes = self.char_string(first)?;
        self.out.push(bytes.len() as u8);
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    /// One or more character-strings (the TXT layout).
    fn strings(&mut self) -> Result<(), ProblemKind> {
        if self.tokens.is_empty() {
            return Err(self.bad("at least one character-string is needed"));
        }
        while !self.tokens.is_empty() {
            self.string()?;
        }
        Ok(())
    }

    fn isdn(&mut self) -> Result<(), ProblemKind> {
        self.string()?;
        if !self.tokens.is_empty() {
            self.string()?;
        }
        self.end()
    }

    /// RFC 1712: longitude, latitude, altitude, each a decimal number as a string.
    fn gpos(&mut self) -> Result<(), ProblemKind> {
        for what in ["longitude", "latitude", "altitude"] {
            let token = self
                .tokens
                .first()
                .ok_or_else(|| self.bad(format!("{what} is missing")))?;
            if token.content().parse::<f64>().is_err() {
                return Err(self.bad(format!("{what} '{}' is not a number", token.content())));
            }
            self.string()?;
        }
        self.end()
    }

    fn ipv4(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an IPv4 address")?;
        let addr: Ipv4Addr = word
            .parse()
            .map_err(|_| self.bad(format!("'{word}' is not an IPv4 address")))?;
        self.out.extend_from_slice(&addr.octets());
        Ok(())
    }

    fn ipv6(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an IPv6 address")?;
        let addr: Ipv6Addr = word
            .parse()
            .map_err(|_| self.bad(format!("'{word}' is not an IPv6 address")))?;
        self.out.extend_from_slice(&addr.octets());
        Ok(())
    }

    /// RFC 6742: four groups of 1–4 hex digits, `2001:0db8:1140:1000`.
    fn locator64(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("a 64-bit locator")?;
        let groups: Vec<&str> = word.split(':').collect();
        if groups.len() != 4 {
            return Err(self.bad(format!("'{word}' is not four groups of hex digits")));
        }
        for group in groups {
            if group.is_empty() || group.len() > 4 {
                return Err(self.bad(format!("'{word}' is not four groups of hex digits")));
            }
            let v = u16::from_str_radix(group, 16)
                .map_err(|_| self.bad(format!("'{word}' is not four groups of hex digits")))?;
            self.out.extend_from_slice(&v.to_be_bytes());
        }
        Ok(())
    }

    /// RFC 7043: `00-00-5e-00-53-2a`.
    fn eui(&mut self, len: usize) -> Result<(), ProblemKind> {
        let word = self.word("an EUI address")?;
        let groups: Vec<&str> = word.split('-').collect();
        if groups.len() != len || groups.iter().any(|g| g.len() != 2) {
            return Err(self.bad(format!("'{word}' is not {len} hex pairs joined by '-'")));
        }
        for g in groups {
            let v =
                u8::from_str_radix(g, 16).map_err(|_| self.bad(format!("'{word}' is not hex")))?;
            self.out.push(v);
        }
        self.end()
    }

    /// RFC 7553: priority, weight, and the target as one quoted string
    /// (raw bytes, no length prefix).
    fn uri(&mut self) -> Result<(), ProblemKind> {
        self.u16()?;
        self.u16()?;
        let (first, rest) = self
            .tokens
            .split_first()
            .ok_or_else(|| self.bad("the target is missing"))?;
        if !first.quoted {
            return Err(self.bad("the target must be a quoted string"));
        }
        self.tokens = rest;
        let bytes = lexer::unescape(first.content())?;
        if bytes.is_empty() {
            return Err(self.bad("the target is empty"));
        }
        self.out.extend_from_slice(&bytes);
        self.end()
    }

    fn joined_rest(&mut self, what: &str) -> Result<String, ProblemKind> {
        let mut text = String::new();
        for token in self.tokens {
            if token.quoted {
                return Err(self.bad(format!("{what} cannot be quoted")));
            }
            text.push_str(token.text);
        }
        self.tokens = &[];
        Ok(text)
    }

    /// The remaining tokens as one base64 string; `dash_empty` allows `-`
    /// for no data.
    fn base64_rest(&mut self, dash_empty: bool) -> Result<(), ProblemKind> {
        let text = self.joined_rest("base64 data")?;
        if dash_empty && text == "-" {
            return Ok(());
        }
        if text.is_empty() {
            return Err(self.bad("base64 data is missing"));
        }
        let bytes = data_encoding::BASE64
            .decode(text.as_bytes())
            .map_err(|e| self.bad(format!("bad base64: {e}")))?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    fn hex_bytes(&self, text: &str) -> Result<Vec<u8>, ProblemKind> {
        if text.is_empty() || !text.len().is_multiple_of(2) {
            return Err(self.bad(format!("'{text}' is not an even number of hex digits")));
        }
        hex::decode(text).map_err(|_| self.bad(format!("'{text}' is not hex")))
    }

    fn hex_rest(&mut self) -> Result<(), ProblemKind> {
        let text = self.joined_rest("hex data")?;
        let bytes = self.hex_bytes(&text)?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    /// RFC 1706: `0x` and hex digits, dots allowed between them.
    fn nsap(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an NSAP address")?;
        let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) else {
            return Err(self.bad(format!("'{word}' does not start with 0x")));
        };
        let bytes = self.hex_bytes(&hex.replace('.', ""))?;
        self.out.extend_from_slice(&bytes);
        self.end()
    }

    /// ATM Forum: hex digits (AESA, format 0) or `+` and decimal digits (E.164, format 1).
    fn atma(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an ATM address")?;
        if let Some(digits) = word.strip_prefix('+') {
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.bad(format!("'{word}' is not an E.164 number")));
            }
            self.out.push(1);
            self.out.extend_from_slice(digits.as_bytes());
        } else {
            let bytes = self.hex_bytes(&word.replace('.', ""))?;
            self.out.push(0);
            self.out.extend_from_slice(&bytes);
        }
        self.end()
    }

    /// RFC 1876: `d [m [s]] N|S d [m [s]] E|W alt[m] [size[m] [hp[m] [vp[m]]]]`.
    fn loc(&mut self) -> Result<(), ProblemKind> {
        let latitude = self.angle(['N', 'S'], 90)?;
        let longitude = self.angle(['E', 'W'], 180)?;
        let altitude = self.metres("altitude", -100_000.0, 42_849_672.95)?;
        // Defaults (RFC 1876 §3): size 1 m, horizontal 10 km, vertical 10 m.
        let mut precision = [1.0, 10_000.0, 10.0];
        let names = ["size", "horizontal precision", "vertical precision"];
        for (slot, what) in precision.iter_mut().zip(names) {
            if self.tokens.is_empty() {
                break;
            }
            *slot = self.metres(what, 0.0, 90_000_000.0)?;
        }
        self.end()?;
        self.out.push(0); // version
        for p in precision {
            self.out.push(precsize((p * 100.0).round() as u64));
        }
        self.out.extend_from_slice(&latitude.to_be_bytes());
        self.out.extend_from_slice(&longitude.to_be_bytes());
        let alt = ((altitude * 100.0).round() as i64 + 10_000_000) as u32;
        self.out.extend_from_slice(&alt.to_be_bytes());
        Ok(())
    }

    /// Degrees, optional minutes and seconds, a hemisphere letter: thousandths
    /// of an arc second offset by 2^31.
    fn angle(&mut self, hemispheres: [char; 2], max_degrees: u32) -> Result<u32, ProblemKind> {
        let degrees: u32 = self.number("degrees")?;
        let mut minutes = 0u32;
        let mut millis = 0u32;
        let mut parts = 0;
        let hemisphere = loop {
            let word = self.word("a hemisphere")?;
            let upper = word.to_ascii_uppercase();
            if let [c] = upper.chars().collect::<Vec<_>>()[..]
                && hemispheres.contains(&c)
            {
                break c;
            }
            match parts {
                0 => {
                    minutes = word
                        .parse()
                        .ok()
                        .filter(|m| *m < 60)
                        .ok_or_else(|| self.bad(format!("minutes '{word}' not in 0–59")))?
                }
                1 => {
                    let secs: f64 = word
                        .parse()
                        .ok()
                        .filter(|s: &f64| (0.0..60.0).contains(s))
                        .ok_or_else(|| self.bad(format!("seconds '{word}' not in 0–59.999")))?;
                    millis = (secs * 1000.0).round() as u32;
                }
                _ => {
                    return Err(self.bad(format!(
                        "expected {} or {}, found '{word}'",
                        hemispheres[0], hemispheres[1]
                    )));
                }
            }
            parts += 1;
        };
        let total = (degrees * 3600 + minutes * 60) * 1000 + millis;
        if total > max_degrees * 3_600_000 {
            return Err(self.bad(format!("more than {max_degrees} degrees")));
        }
        let base = 1u32 << 31;
        Ok(if hemisphere == hemispheres[0] {
            base + total
        } else {
            base - total
        })
    }

    fn metres(&mut self, what: &str, min: f64, max: f64) -> Result<f64, ProblemKind> {
        let word = self.word(what)?;
        let number = word.strip_suffix(['m', 'M']).unwrap_or(word);
        number
            .parse::<f64>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| self.bad(format!("{what} '{word}' is not metres in range")))
    }

    /// RFC 1035 §3.4.2: address, protocol, services as a bit map.
    fn wks(&mut self) -> Result<(), ProblemKind> {
        self.ipv4()?;
        let proto = self.word("a protocol")?;
        let proto: u8 = match proto.to_ascii_lowercase().as_str() {
            "tcp" => 6,
            "udp" => 17,
            other => other
                .parse()
                .map_err(|_| self.bad(format!("protocol '{proto}' is not tcp, udp or a number")))?,
        };
        self.out.push(proto);
        let mut bitmap: Vec<u8> = Vec::new();
        while !self.tokens.is_empty() {
            let word = self.word("a service")?;
            let port = match service_port(&word.to_ascii_lowercase()) {
                Some(port) => port,
                None => word.parse::<u16>().map_err(|_| {
                    self.bad(format!(
                        "service '{word}' is not a port number or a known name"
                    ))
                })?,
            };
            let byte = usize::from(port / 8);
            if bitmap.len() <= byte {
                bitmap.resize(byte + 1, 0);
            }
            if let Some(b) = bitmap.get_mut(byte) {
                *b |= 0x80 >> (port % 8);
            }
        }
        self.out.extend_from_slice(&bitmap);
        Ok(())
    }

    /// RFC 3123: `[!]afi:address/prefix`, any number of items.
    fn apl(&mut self) -> Result<(), ProblemKind> {
        while !self.tokens.is_empty() {
            let word = self.word("an APL item")?;
            let (negate, item) = match word.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, word),
            };
            let bad = || self.bad(format!("'{word}' is not [!]afi:address/prefix"));
            let (afi, rest) = item.split_once(':').ok_or_else(bad)?;
            let (address, prefix) = rest.rsplit_once('/').ok_or_else(bad)?;
            let prefix: u8 = prefix.parse().map_err(|_| bad())?;
            let (afi, mut bytes, max) = match afi {
                "1" => (
                    1u16,
                    address
                        .parse::<Ipv4Addr>()
                        .map_err(|_| bad())?
                        .octets()
                        .to_vec(),
                    32,
                ),
                "2" => (
                    2u16,
                    address
                        .parse::<Ipv6Addr>()
                        .map_err(|_| bad())?
                        .octets()
                        .to_vec(),
                    128,
                ),
                _ => return Err(bad()),
            };
            if prefix > max {
                return Err(bad());
            }
            while bytes.last() == Some(&0) {
                bytes.pop();
            }
            self.out.extend_from_slice(&afi.to_be_bytes());
            self.out.push(prefix);
            self.out
                .push(bytes.len() as u8 | if negate { 0x80 } else { 0 });
            self.out.extend_from_slice(&bytes);
        }
        Ok(())
    }

    /// A gateway or relay of the given type: 0 none (`.`), 1 IPv4, 2 IPv6, 3 a name.
    fn gateway(&mut self, kind: u8) -> Result<(), ProblemKind> {
        match kind {
            0 => {
                let word = self.word("the gateway")?;
                if word != "." {
                    return Err(self.bad("gateway type 0 is written '.'"));
                }
                Ok(())
            }
            1 => self.ipv4(),
            2 => self.ipv6(),
            3 => self.name(),
            other => Err(self.bad(format!("gateway type {other} is not 0–3"))),
        }
    }

    /// RFC 4025: precedence, gateway type, algorithm, gateway, [public key].
    fn ipseckey(&mut self) -> Result<(), ProblemKind> {
        self.u8()?;
        let kind: u8 = self.number("the gateway type")?;
        self.out.push(kind);
        self.u8()?;
        self.gateway(kind)?;
        if !self.tokens.is_empty() {
            self.base64_rest(false)?;
        }
        Ok(())
    }

    /// RFC 8777: precedence, discovery-optional bit, relay type, relay.
    fn amtrelay(&mut self) -> Result<(), ProblemKind> {
        self.u8()?;
        let d: u8 = self.number("the D bit")?;
        if d > 1 {
            return Err(self.bad("the D bit is 0 or 1"));
        }
        let kind: u8 = self.number("the relay type")?;
        if kind > 0x7f {
            return Err(self.bad("the relay type is 0–127"));
        }
        self.out.push(d << 7 | kind);
        self.gateway(kind)?;
        self.end()
    }

    /// RFC 8005: algorithm, HIT (hex), public key (base64), rendezvous servers.
    fn hip(&mut self) -> Result<(), ProblemKind> {
        let algorithm: u8 = self.number("the algorithm")?;
        let hit_text = self.word("the HIT")?;
        let hit = self.hex_bytes(hit_text)?;
        let pk_text = self.word("the public key")?;
        let pk = data_encoding::BASE64
            .decode(pk_text.as_bytes())
            .map_err(|e| self.bad(format!("bad base64 public key: {e}")))?;
        let hit_len = u8::try_from(hit.len()).map_err(|_| self.bad("HIT too long"))?;
        let pk_len = u16::try_from(pk.len()).map_err(|_| self.bad("public key too long"))?;
        self.out.push(hit_len);
        self.out.push(algorithm);
        self.out.extend_from_slice(&pk_len.to_be_bytes());
        self.out.extend_from_slice(&hit);
        self.out.extend_from_slice(&pk);
        while !self.tokens.is_empty() {
            self.name()?;
        }
        Ok(())
    }

    /// RFC 2874 (historic): prefix length, address suffix, [prefix name].
    fn a6(&mut self) -> Result<(), ProblemKind> {
        let prefix: u8 = self.number("the prefix length")?;
        if prefix > 128 {
            return Err(self.bad("the prefix length is 0–128"));
        }
        self.out.push(prefix);
        let word = self.word("the address suffix")?;
        let addr: Ipv6Addr = word
            .parse()
            .map_err(|_| self.bad(format!("'{word}' is not an IPv6 address")))?;
        let suffix_len = usize::from(128 - prefix).div_ceil(8);
        let octets = addr.octets();
        self.out
            .extend_from_slice(octets.get(16 - suffix_len..).unwrap_or_default());
        if prefix > 0 {
            self.name()?;
        }
        self.end()
    }

    /// draft-durand-doa-over-dns: enterprise, type, location, media type, data (base64 or `-`).
    fn doa(&mut self) -> Result<(), ProblemKind> {
        self.u32()?;
        self.u32()?;
        self.u8()?;
        self.string()?;
        self.base64_rest(true)
    }
}

/// RFC 1876's size encoding: centimetres as mantissa × 10^exponent, both 0–9.
fn precsize(mut cm: u64) -> u8 {
    let mut exponent = 0u8;
    while cm >= 10 && exponent < 9 {
        cm /= 10;
        exponent += 1;
    }
    (cm.min(9) as u8) << 4 | exponent
}

/// Well-known service names for WKS (the common ones of `/etc/services`).
fn service_port(name: &str) -> Option<u16> {
    Some(match name {
        "echo" => 7,
        "discard" => 9,
        "daytime" => 13,
        "ftp-data" => 20,
        "ftp" => 21,
        "ssh" => 22,
        "telnet" => 23,
        "smtp" => 25,
        "time" => 37,
        "whois" => 43,
        "domain" => 53,
        "tftp" => 69,
        "gopher" => 70,
        "finger" => 79,
        "http" | "www" => 80,
        "kerberos" => 88,
        "pop3" => 110,
        "sunrpc" => 111,
        "auth" | "ident" => 113,
        "nntp" => 119,
        "ntp" => 123,
        "imap" | "imap2" => 143,
        "snmp" => 161,
        "ldap" => 389,
        "https" => 443,
        "submission" => 587,
        "imaps" => 993,
        "pop3s" => 995,
        _ => return None,
    })
}
