//! The cache key of a query, read from its raw bytes without decoding it.
//!
//! Everything in a query that can change the stub's answer is in the key,
//! and nothing else: the header flags (opcode, RD, AD, CD), the question
//! name lower-cased, QTYPE and QCLASS, and the OPT record if any (its
//! extended RCODE, version and flags, among them DO; and every EDNS option
//! except COOKIE and PADDING, which the stub's answer never depends on).
//! The message ID and the question's letter case are left out: they are
//! patched into the stored answer when it is sent. So is the OPT record's
//! UDP payload size: it only decides whether a UDP answer fits the client
//! (the stub's responses advertise the stub's own size), so one entry
//! serves a 512-byte client (as a TC reply) and a 4096-byte client (whole);
//! the handler reads it with [`QueryKey::udp_payload`].
//!
//! A query of any other shape (not exactly one question, records in the
//! answer or authority sections, an additional record that is not OPT, a
//! compression pointer in the question, trailing bytes, a key longer than
//! [`MAX_KEY`]) has no key: it takes the uncached path, which answers it
//! as before.

/// Longest key: the flags, a 255-byte name, QTYPE/QCLASS, the OPT fields
/// and up to 104 bytes of EDNS options.
pub const MAX_KEY: usize = 384;

/// EDNS option codes left out of the key (RFC 7873 COOKIE, RFC 7830 PADDING).
const IGNORED_OPTIONS: [u16; 2] = [10, 12];

/// OPT's RR type (RFC 6891).
pub(crate) const OPT: u16 = 41;

/// The key of one query, on the stack (no allocation).
#[derive(Clone)]
pub struct QueryKey {
    bytes: [u8; MAX_KEY],
    len: usize,
    /// End of the question name in the query (it starts at offset 12).
    qname_end: usize,
    /// The OPT record's UDP payload size, if the query has one.
    udp_payload: Option<u16>,
}

impl std::fmt::Debug for QueryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryKey")
            .field("bytes", &self.as_bytes())
            .field("udp_payload", &self.udp_payload)
            .finish()
    }
}

impl PartialEq for QueryKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for QueryKey {}

impl QueryKey {
    /// The key of `query` (one DNS message, no TCP length prefix), or `None`
    /// when the query is not of the one shape the cache answers.
    ///
    /// ```
    /// use kadns::answer_cache::QueryKey;
    /// // id 0x1234, RD, one question: "A.b." IN A, no EDNS.
    /// let query = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
    ///              1, b'A', 1, b'b', 0, 0, 1, 0, 1];
    /// let mut lower = query;
    /// lower[13] = b'a';
    /// lower[0] = 0x99;
    /// assert_eq!(QueryKey::parse(&query), QueryKey::parse(&lower));
    /// assert!(QueryKey::parse(&query[..20]).is_none());
    /// ```
    pub fn parse(query: &[u8]) -> Option<Self> {
        let header = query.get(..12)?;
        // A response (QR) or an opcode other than QUERY is never cached.
        if header[2] & 0x80 != 0 || (header[2] >> 3) & 0x0f != 0 {
            return None;
        }
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
            return None;
        }
        let mut key = Self {
            bytes: [0; MAX_KEY],
            len: 0,
            qname_end: 0,
            udp_payload: None,
        };
        key.push(&header[2..4])?;
        // The question name: labels only, lower-cased into the key.
        let mut at = 12;
        loop {
            let len = usize::from(*query.get(at)?);
            if len > 63 {
                return None; // a compression pointer or a reserved label type
            }
            let label = query.get(at..at + 1 + len)?;
            if at + 1 + len - 12 > 255 {
                return None;
            }
            let start = key.len;
            key.push(label)?;
            key.bytes[start..key.len].make_ascii_lowercase();
            at += 1 + len;
            if len == 0 {
                break;
            }
        }
        key.qname_end = at;
        key.push(query.get(at..at + 4)?)?;
        at += 4;
        if count(10) == 1 {
            at = key.opt(query, at)?;
        } else {
            key.push(&[0])?;
        }
        (at == query.len()).then_some(key)
    }

    /// Reads the OPT record at `at` into the key; returns where it ends.
    fn opt(&mut self, query: &[u8], at: usize) -> Option<usize> {
        let fixed = query.get(at..at + 11)?;
        if fixed[0] != 0 || u16::from_be_bytes([fixed[1], fixed[2]]) != OPT {
            return None;
        }
        self.udp_payload = Some(u16::from_be_bytes([fixed[3], fixed[4]]));
        self.push(&[1])?;
        // Extended RCODE, version and flags (DO); not the payload size.
        self.push(&fixed[5..9])?;
        let rdlen = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
        let end = at + 11 + rdlen;
        let mut option = at + 11;
        while option < end {
            let head = query.get(option..option + 4)?;
            let code = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let whole = query.get(option..option + 4 + len)?;
            if option + 4 + len > end {
                return None;
            }
            if !IGNORED_OPTIONS.contains(&code) {
                self.push(whole)?;
            }
            option += 4 + len;
        }
        Some(end)
    }

    fn push(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len + bytes.len();
        self.bytes.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Where the question name ends in the query: it spans `12..qname_end`,
    /// in the query and in every answer stored under this key.
    pub fn qname_end(&self) -> usize {
        self.qname_end
    }

    /// The UDP payload size of the query's OPT record; `None` without EDNS.
    pub fn udp_payload(&self) -> Option<u16> {
        self.udp_payload
    }

    /// Whether the query set the DO bit.
    pub fn dnssec_ok(&self) -> bool {
        // Layout after the question: 1 (OPT present), ext RCODE, version,
        // flags (2): DO is the top bit of the flags.
        let opt = 2 + (self.qname_end - 12) + 4;
        self.bytes[opt] == 1 && self.bytes[opt + 3] & 0x80 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query};
    use hickory_proto::rr::{Name, RecordType};
    use proptest::prelude::*;

    fn query(id: u16, name: &str, qtype: RecordType, edns: Option<(u16, bool)>) -> Vec<u8> {
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        if let Some((payload, dnssec_ok)) = edns {
            let mut e = Edns::new();
            e.set_max_payload(payload);
            e.set_dnssec_ok(dnssec_ok);
            message.edns = Some(e);
        }
        message.to_vec().unwrap()
    }

    #[test]
    fn id_and_case_are_not_in_the_key_but_everything_else_is() {
        let base = QueryKey::parse(&query(1, "www.Example.kad.", RecordType::A, None)).unwrap();
        let same = QueryKey::parse(&query(9, "WWW.example.KAD.", RecordType::A, None)).unwrap();
        assert_eq!(base, same);
        for other in [
            query(1, "ww.example.kad.", RecordType::A, None),
            query(1, "www.example.kad.", RecordType::AAAA, None),
            query(1, "www.example.kad.", RecordType::A, Some((1232, false))),
            query(1, "www.example.kad.", RecordType::A, Some((1232, true))),
            query(1, "www.example.kad.", RecordType::A, Some((512, false))),
        ] {
            assert_ne!(base, QueryKey::parse(&other).unwrap());
        }
        let mut cd = query(1, "www.example.kad.", RecordType::A, None);
        cd[3] |= 0x10;
        assert_ne!(base, QueryKey::parse(&cd).unwrap());
    }

    #[test]
    fn the_payload_size_is_read_but_not_keyed() {
        let small = QueryKey::parse(&query(1, "a.kad.", RecordType::A, Some((512, true)))).unwrap();
        let big = QueryKey::parse(&query(2, "a.kad.", RecordType::A, Some((4096, true)))).unwrap();
        assert_eq!(small, big);
        assert_eq!(
            (small.udp_payload(), big.udp_payload()),
            (Some(512), Some(4096))
        );
        assert!(small.dnssec_ok() && big.dnssec_ok());
    }

    #[test]
    fn do_bit_and_payload_are_read() {
        let key = QueryKey::parse(&query(1, "a.kad.", RecordType::A, Some((1400, true)))).unwrap();
        assert!(key.dnssec_ok());
        assert_eq!(key.udp_payload(), Some(1400));
        let key = QueryKey::parse(&query(1, "a.kad.", RecordType::A, Some((1400, false)))).unwrap();
        assert!(!key.dnssec_ok());
        let key = QueryKey::parse(&query(1, "a.kad.", RecordType::A, None)).unwrap();
        assert!(!key.dnssec_ok());
        assert_eq!(key.udp_payload(), None);
        assert_eq!(key.qname_end(), 12 + 7);
    }

    #[test]
    fn cookie_is_ignored_other_options_are_kept() {
        let plain = query(1, "a.kad.", RecordType::A, Some((1232, false)));
        let with = |code: u16| {
            let mut q = plain.clone();
            let rdlen_at = q.len() - 2;
            q[rdlen_at..].copy_from_slice(&12u16.to_be_bytes());
            q.extend_from_slice(&code.to_be_bytes());
            q.extend_from_slice(&8u16.to_be_bytes());
            q.extend_from_slice(&[7; 8]);
            q
        };
        let base = QueryKey::parse(&plain).unwrap();
        assert_eq!(base, QueryKey::parse(&with(10)).unwrap());
        assert_ne!(base, QueryKey::parse(&with(8)).unwrap());
    }

    #[test]
    fn other_shapes_have_no_key() {
        let good = query(1, "a.kad.", RecordType::A, None);
        let mut response = good.clone();
        response[2] |= 0x80;
        let mut notify = good.clone();
        notify[2] |= 4 << 3;
        let mut two = good.clone();
        two[5] = 2;
        let mut trailing = good.clone();
        trailing.push(0);
        let mut pointer = good.clone();
        pointer[12] = 0xc0;
        for bad in [
            response,
            notify,
            two,
            trailing,
            pointer,
            good[..good.len() - 1].to_vec(),
        ] {
            assert!(QueryKey::parse(&bad).is_none(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = QueryKey::parse(&bytes);
        }

        #[test]
        fn case_and_id_never_change_the_key(
            labels in proptest::collection::vec("[a-zA-Z0-9]{1,20}", 1..5),
            id in any::<u16>(),
            flips in any::<u64>(),
            dnssec_ok in any::<bool>(),
        ) {
            let name = format!("{}.", labels.join("."));
            let flipped: String = name.chars().enumerate().map(|(i, c)| {
                if flips >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() }
            }).collect();
            let a = QueryKey::parse(&query(0, &name, RecordType::A, Some((1232, dnssec_ok)))).unwrap();
            let b = QueryKey::parse(&query(id, &flipped, RecordType::A, Some((1232, dnssec_ok)))).unwrap();
            prop_assert_eq!(a.dnssec_ok(), dnssec_ok);
            prop_assert_eq!(a, b);
        }
    }
}
