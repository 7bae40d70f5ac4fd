//! The few things the listener layer reads in an encoded response, without
//! decoding it: the response class response-rate limiting keys on, and the
//! TC reply a slipped response becomes.

/// DNS header length.
const HEADER: usize = 12;

/// Most compression pointers followed in one name (a loop ends here).
const MAX_POINTERS: usize = 16;

/// What a response is, for response-rate limiting (BIND's classes).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ResponseClass {
    /// A positive answer for a name and type (TC replies included).
    Answer {
        /// The question name, lower-cased wire format, then the type.
        name_and_type: Vec<u8>,
    },
    /// NXDOMAIN, per zone: the SOA owner of the authority section, or the
    /// question name when there is none.
    NxDomain {
        /// The zone (or name), lower-cased wire format.
        zone: Vec<u8>,
    },
    /// NOERROR with no answer (NODATA), per zone like NXDOMAIN.
    NoData {
        /// The zone (or name), lower-cased wire format.
        zone: Vec<u8>,
    },
    /// Every other RCODE: SERVFAIL, REFUSED, FORMERR, NOTIMP… one class per client prefix.
    Error,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Reads the name at `at`: the lower-cased wire name (compression
/// followed), and the offset just after it in the message.
fn read_name(bytes: &[u8], mut at: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::with_capacity(32);
    let mut end = None;
    let mut pointers = 0;
    loop {
        let len = *bytes.get(at)?;
        match len & 0xc0 {
            0x00 => {
                name.push(len);
                if len == 0 {
                    return Some((name, end.unwrap_or(at + 1)));
                }
                let label = bytes.get(at + 1..at + 1 + usize::from(len))?;
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                if name.len() > 255 {
                    return None;
                }
                at += 1 + usize::from(len);
            }
            0xc0 => {
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return None;
                }
                let target = usize::from(u16_at(bytes, at)? & 0x3fff);
                end.get_or_insert(at + 2);
                at = target;
            }
            _ => return None,
        }
    }
}

/// The offset after the resource record at `at`.
fn skip_record(bytes: &[u8], at: usize) -> Option<usize> {
    let (_, at) = read_name(bytes, at)?;
    let rdlen = usize::from(u16_at(bytes, at + 8)?);
    let end = at + 10 + rdlen;
    (end <= bytes.len()).then_some(end)
}

/// The class of an encoded response; `None` if it cannot be read (it is
/// then treated as an error response).
pub(crate) fn response_class(bytes: &[u8]) -> ResponseClass {
    classify(bytes).unwrap_or(ResponseClass::Error)
}

fn classify(bytes: &[u8]) -> Option<ResponseClass> {
    let rcode = *bytes.get(3)? & 0x0f;
    if u16_at(bytes, 4)? != 1 {
        return Some(ResponseClass::Error);
    }
    let answers = u16_at(bytes, 6)?;
    let authorities = u16_at(bytes, 8)?;
    let (qname, after_name) = read_name(bytes, HEADER)?;
    let qtype = bytes.get(after_name..after_name + 2)?;
    let truncated = bytes.get(2)? & 0x02 != 0;
    match rcode {
        0 if answers > 0 || truncated => {
            let mut name_and_type = qname;
            name_and_type.extend_from_slice(qtype);
            Some(ResponseClass::Answer { name_and_type })
        }
        0 | 3 => {
            let mut at = after_name + 4;
            for _ in 0..answers {
                at = skip_record(bytes, at)?;
            }
            let zone = (0..authorities)
                .try_fold((at, None), |(at, found), _| {
                    let (owner, after) = read_name(bytes, at)?;
                    let rtype = u16_at(bytes, after)?;
                    let found = found.or((rtype == 6).then_some(owner));
                    Some((skip_record(bytes, at)?, found))
                })
                .and_then(|(_, found)| found)
                .unwrap_or(qname);
            Some(if rcode == 0 {
                ResponseClass::NoData { zone }
            } else {
                ResponseClass::NxDomain { zone }
            })
        }
        _ => Some(ResponseClass::Error),
    }
}

/// Turns the encoded response in `bytes` into a TC reply in place: its
/// header with TC set and no records, and its question. False (and `bytes`
/// unusable) when the response has no single readable question.
pub(crate) fn truncate_in_place(bytes: &mut Vec<u8>) -> bool {
    let Some(1) = u16_at(bytes, 4) else {
        return false;
    };
    let Some((_, after_name)) = read_name(bytes, HEADER) else {
        return false;
    };
    let end = after_name + 4;
    if end > bytes.len() {
        return false;
    }
    bytes.truncate(end);
    bytes[2] |= 0x02;
    bytes[6..12].fill(0);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn response(code: ResponseCode, answer: bool, soa: Option<&str>) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Response, OpCode::Query);
        m.metadata.response_code = code;
        let name = Name::from_ascii("WwW.Example.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        if answer {
            m.add_answer(Record::from_rdata(name, 60, RData::A(A::new(192, 0, 2, 1))));
        }
        if let Some(zone) = soa {
            let zone = Name::from_ascii(zone).unwrap();
            let soa = SOA::new(zone.clone(), zone.clone(), 1, 2, 3, 4, 5);
            m.add_authority(Record::from_rdata(zone, 60, RData::SOA(soa)));
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn answers_are_keyed_by_lower_case_name_and_type() {
        let class = response_class(&response(ResponseCode::NoError, true, None));
        let mut expected = b"\x03www\x07example\x00".to_vec();
        expected.extend_from_slice(&[0, 1]);
        assert_eq!(
            class,
            ResponseClass::Answer {
                name_and_type: expected
            }
        );
    }

    #[test]
    fn nxdomain_is_keyed_by_the_soa_owner() {
        let class = response_class(&response(ResponseCode::NXDomain, false, Some("EXAMPLE.")));
        assert_eq!(
            class,
            ResponseClass::NxDomain {
                zone: b"\x07example\x00".to_vec()
            }
        );
        let class = response_class(&response(ResponseCode::NoError, false, None));
        assert_eq!(
            class,
            ResponseClass::NoData {
                zone: b"\x03www\x07example\x00".to_vec()
            }
        );
    }

    #[test]
    fn errors_and_garbage_are_one_class() {
        assert_eq!(
            response_class(&response(ResponseCode::ServFail, false, None)),
            ResponseClass::Error
        );
        assert_eq!(response_class(&[1, 2, 3]), ResponseClass::Error);
        // A compression loop in the question.
        let mut looped = response(ResponseCode::NoError, true, None);
        looped.truncate(12);
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(response_class(&looped), ResponseClass::Error);
    }

    #[test]
    fn a_truncated_reply_keeps_header_and_question() {
        let mut bytes = response(ResponseCode::NoError, true, Some("example."));
        assert!(truncate_in_place(&mut bytes));
        let m = Message::from_vec(&bytes).unwrap();
        assert!(m.metadata.truncation);
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.queries.len(), 1);
        assert!(m.answers.is_empty() && m.authorities.is_empty());
    }
}
