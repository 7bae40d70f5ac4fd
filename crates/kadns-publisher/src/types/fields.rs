//! The field reader: presentation tokens in order, wire RDATA out, and the
//! simple fields (numbers, names, strings, addresses, hex and base64).

use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

use crate::lexer::{self, Token};
use crate::zonefile::ProblemKind;

use super::type_name;

/// Reads presentation fields in order, writing wire RDATA.
pub(super) struct Fields<'t, 'a> {
    pub(super) tokens: &'t [Token<'a>],
    pub(super) origin: &'t Name,
    pub(super) out: Vec<u8>,
    pub(super) code: u16,
}

impl<'a> Fields<'_, 'a> {
    pub(super) fn bad(&self, reason: impl Into<String>) -> ProblemKind {
        ProblemKind::BadTypeData {
            record_type: type_name(RecordType::from(self.code)),
            reason: reason.into(),
        }
    }

    /// The next token, unquoted; `what` names it in the error.
    pub(super) fn word(&mut self, what: &str) -> Result<&'a str, ProblemKind> {
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

    pub(super) fn end(&self) -> Result<(), ProblemKind> {
        match self.tokens.first() {
            None => Ok(()),
            Some(t) => Err(self.bad(format!("unexpected '{}' after the data", t.text))),
        }
    }

    pub(super) fn number<T: std::str::FromStr>(&mut self, what: &str) -> Result<T, ProblemKind> {
        let word = self.word(what)?;
        word.parse()
            .map_err(|_| self.bad(format!("{what} '{word}' is not a number in range")))
    }

    pub(super) fn u8(&mut self) -> Result<(), ProblemKind> {
        let v: u8 = self.number("an 8-bit field")?;
        self.out.push(v);
        Ok(())
    }

    pub(super) fn u16(&mut self) -> Result<(), ProblemKind> {
        let v: u16 = self.number("a 16-bit field")?;
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    pub(super) fn u32(&mut self) -> Result<(), ProblemKind> {
        let v: u32 = self.number("a 32-bit field")?;
        self.out.extend_from_slice(&v.to_be_bytes());
        Ok(())
    }

    pub(super) fn parse_name(&mut self) -> Result<Name, ProblemKind> {
        let word = self.word("a domain name")?;
        if word == "@" {
            return Ok(self.origin.clone());
        }
        Name::parse(word, Some(self.origin))
            .map_err(|e| self.bad(format!("'{word}' is not a domain name: {e}")))
    }

    pub(super) fn emit_name(&mut self, name: &Name) -> Result<(), ProblemKind> {
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
        name.emit(&mut encoder)
            .map_err(|e| self.bad(format!("{name}: {e}")))?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }

    pub(super) fn name(&mut self) -> Result<(), ProblemKind> {
        let name = self.parse_name()?;
        self.emit_name(&name)
    }

    pub(super) fn char_string(&mut self, token: &Token<'_>) -> Result<Vec<u8>, ProblemKind> {
        let bytes = lexer::unescape(token.content())?;
        if bytes.len() > 255 {
            return Err(ProblemKind::TxtStringTooLong { len: bytes.len() });
        }
        Ok(bytes)
    }

    /// One character-string, length-prefixed.
    pub(super) fn string(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn strings(&mut self) -> Result<(), ProblemKind> {
        if self.tokens.is_empty() {
            return Err(self.bad("at least one character-string is needed"));
        }
        while !self.tokens.is_empty() {
            self.string()?;
        }
        Ok(())
    }

    pub(super) fn isdn(&mut self) -> Result<(), ProblemKind> {
        self.string()?;
        if !self.tokens.is_empty() {
            self.string()?;
        }
        self.end()
    }

    /// RFC 1712: longitude, latitude, altitude, each a decimal number as a string.
    pub(super) fn gpos(&mut self) -> Result<(), ProblemKind> {
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

    pub(super) fn ipv4(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an IPv4 address")?;
        let addr: Ipv4Addr = word
            .parse()
            .map_err(|_| self.bad(format!("'{word}' is not an IPv4 address")))?;
        self.out.extend_from_slice(&addr.octets());
        Ok(())
    }

    pub(super) fn ipv6(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an IPv6 address")?;
        let addr: Ipv6Addr = word
            .parse()
            .map_err(|_| self.bad(format!("'{word}' is not an IPv6 address")))?;
        self.out.extend_from_slice(&addr.octets());
        Ok(())
    }

    /// RFC 6742: four groups of 1–4 hex digits, `2001:0db8:1140:1000`.
    pub(super) fn locator64(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn eui(&mut self, len: usize) -> Result<(), ProblemKind> {
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
    pub(super) fn uri(&mut self) -> Result<(), ProblemKind> {
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

    pub(super) fn joined_rest(&mut self, what: &str) -> Result<String, ProblemKind> {
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
    pub(super) fn base64_rest(&mut self, dash_empty: bool) -> Result<(), ProblemKind> {
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

    pub(super) fn hex_bytes(&self, text: &str) -> Result<Vec<u8>, ProblemKind> {
        if text.is_empty() || !text.len().is_multiple_of(2) {
            return Err(self.bad(format!("'{text}' is not an even number of hex digits")));
        }
        hex::decode(text).map_err(|_| self.bad(format!("'{text}' is not hex")))
    }

    pub(super) fn hex_rest(&mut self) -> Result<(), ProblemKind> {
        let text = self.joined_rest("hex data")?;
        let bytes = self.hex_bytes(&text)?;
        self.out.extend_from_slice(&bytes);
        Ok(())
    }
}
