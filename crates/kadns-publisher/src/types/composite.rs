//! The types whose fields need more than a sequence of simple ones: LOC, WKS,
//! APL, IPSECKEY, AMTRELAY, HIP, A6, DOA, NSAP, ATMA.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::zonefile::ProblemKind;

use super::fields::Fields;

impl<'a> Fields<'_, 'a> {
    /// RFC 1706: `0x` and hex digits, dots allowed between them.
    pub(super) fn nsap(&mut self) -> Result<(), ProblemKind> {
        let word = self.word("an NSAP address")?;
        let Some(hex) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) else {
            return Err(self.bad(format!("'{word}' does not start with 0x")));
        };
        let bytes = self.hex_bytes(&hex.replace('.', ""))?;
        self.out.extend_from_slice(&bytes);
        self.end()
    }

    /// ATM Forum: hex digits (AESA, format 0) or `+` and decimal digits (E.164, format 1).
    pub(super) fn atma(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn loc(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn angle(
        &mut self,
        hemispheres: [char; 2],
        max_degrees: u32,
    ) -> Result<u32, ProblemKind> {
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

    pub(super) fn metres(&mut self, what: &str, min: f64, max: f64) -> Result<f64, ProblemKind> {
        let word = self.word(what)?;
        let number = word.strip_suffix(['m', 'M']).unwrap_or(word);
        number
            .parse::<f64>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| self.bad(format!("{what} '{word}' is not metres in range")))
    }

    /// RFC 1035 §3.4.2: address, protocol, services as a bit map.
    pub(super) fn wks(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn apl(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn gateway(&mut self, kind: u8) -> Result<(), ProblemKind> {
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
    pub(super) fn ipseckey(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn amtrelay(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn hip(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn a6(&mut self) -> Result<(), ProblemKind> {
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
    pub(super) fn doa(&mut self) -> Result<(), ProblemKind> {
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
