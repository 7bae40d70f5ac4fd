//! Records in zone-file presentation form that parses back to the same data.
//!
//! hickory's `Display` is close but not re-parseable for a few types: TXT
//! strings come out unquoted and run together, SVCB/HTTPS lists get trailing
//! commas, and unknown types have no RFC 3597 form. Those are written here;
//! everything else uses hickory's form.

use std::fmt::Write as _;

use kadns_record::hickory_proto::rr::rdata::svcb::{SVCB, SvcParamValue};
use kadns_record::hickory_proto::rr::{RData, Record};

/// One record as a zone-file line: `name TTL IN TYPE RDATA`.
///
/// ```
/// use kadns_publisher::record_line;
/// use kadns_record::hickory_proto::rr::{Name, RData, Record, rdata::TXT};
///
/// let txt = Record::from_rdata(Name::from_ascii("t.example.")?, 60, RData::TXT(TXT::new(vec!["a \"b\"".into(), "c".into()])));
/// assert_eq!(record_line(&txt), r#"t.example. 60 IN TXT "a \"b\"" "c""#);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn record_line(record: &Record) -> String {
    let head = format!("{} {} IN", record.name, record.ttl);
    match &record.data {
        RData::TXT(txt) => {
            let strings: Vec<String> = txt
                .txt_data
                .iter()
                .map(|s| quote_character_string(s))
                .collect();
            format!("{head} TXT {}", strings.join(" "))
        }
        RData::SVCB(svcb) => format!("{head} SVCB {}", svcb_rdata(svcb)),
        RData::HTTPS(https) => format!("{head} HTTPS {}", svcb_rdata(&https.0)),
        RData::Unknown { code, rdata } => {
            format!(
                "{head} TYPE{} \\# {} {}",
                u16::from(*code),
                rdata.anything.len(),
                hex(&rdata.anything)
            )
        }
        _ => record.to_string(),
    }
}

/// A DNS character-string in quotes: `"` and `\` escaped, bytes outside
/// printable ASCII as `\DDD` (RFC 1035 §5.1).
pub fn quote_character_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(char::from(b));
            }
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\{b:03}");
            }
        }
    }
    out.push('"');
    out
}

fn svcb_rdata(svcb: &SVCB) -> String {
    let mut out = format!("{} {}", svcb.svc_priority, svcb.target_name);
    for (key, value) in &svcb.svc_params {
        let value = match value {
            SvcParamValue::Mandatory(keys) => Some(join(keys.0.iter())),
            SvcParamValue::Alpn(ids) => Some(join(ids.0.iter())),
            SvcParamValue::NoDefaultAlpn => None,
            SvcParamValue::Port(port) => Some(port.to_string()),
            SvcParamValue::Ipv4Hint(hint) => Some(join(hint.0.iter())),
            SvcParamValue::Ipv6Hint(hint) => Some(join(hint.0.iter())),
            SvcParamValue::EchConfigList(ech) => {
                Some(ech.to_string().trim_end_matches(',').to_string())
            }
            SvcParamValue::Unknown(unknown) => Some(quote_character_string(&unknown.0)),
        };
        match value {
            Some(value) => {
                let _ = write!(out, " {key}={value}");
            }
            None => {
                let _ = write!(out, " {key}");
            }
        }
    }
    out
}

fn join<T: std::fmt::Display>(items: impl Iterator<Item = T>) -> String {
    items.map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_is_quoted_and_escaped() {
        assert_eq!(quote_character_string(b"a \"b\" \\c"), r#""a \"b\" \\c""#);
        assert_eq!(quote_character_string(&[0, 200, b'x']), r#""\000\200x""#);
    }
}
