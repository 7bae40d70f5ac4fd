//! Reading a rendered response once, when it is stored: where its TTL
//! fields are, the smallest TTL, and whether it may be cached at all.

use super::key::OPT;

/// RFC 8914's Stale Answer INFO-CODE, and the EDE option code.
const EDE_OPTION: u16 = 15;
const EDE_STALE: u16 = 3;

/// Longest TTL an entry keeps (RFC 2181 §8: a TTL with the top bit set
/// counts as 0, so anything above `i32::MAX` is not cached).
const MAX_TTL: u32 = 0x7fff_ffff;

/// What storing needs to know about a response.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offsets of every TTL field (OPT's is not a TTL and is not listed).
    pub(crate) ttls: Vec<u16>,
    /// The smallest of those TTLs.
    pub(crate) min_ttl: u32,
    /// Where the OPT record is (start, end), if the response has one: a TC
    /// reply built from the entry carries it.
    pub(crate) opt: Option<(u16, u16)>,
}

/// The layout of `response` if it may be stored as the answer to a query
/// whose question name is `query[12..qname_end]`: a NOERROR or NXDOMAIN
/// response without TC, whose question is byte for byte the query's, that
/// is well formed to its last byte, holds at least one TTL, none of them 0,
/// and carries no EDE "Stale Answer".
pub(crate) fn layout(response: &[u8], query: &[u8], qname_end: usize) -> Option<Layout> {
    let header = response.get(..12)?;
    let rcode = header[3] & 0x0f;
    if header[2] & 0x80 == 0 || header[2] & 0x02 != 0 || !matches!(rcode, 0 | 3) {
        return None;
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([header[at], header[at + 1]]));
    if count(4) != 1 {
        return None;
    }
    // The question, as the client sent it: patched later by copying.
    if response.get(12..qname_end + 4)? != query.get(12..qname_end + 4)? {
        return None;
    }
    let mut at = qname_end + 4;
    let mut ttls = Vec::new();
    let mut min_ttl = u32::MAX;
    let mut opt = None;
    for _ in 0..count(6) + count(8) + count(10) {
        let start = at;
        at = skip_name(response, at)?;
        let fixed = response.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let rdata = response.get(at + 10..at + 10 + rdlen)?;
        if rtype == OPT {
            if carries_stale_ede(rdata)? {
                return None;
            }
            let end = at + 10 + rdlen;
            opt = Some((u16::try_from(start).ok()?, u16::try_from(end).ok()?));
        } else {
            let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
            if ttl == 0 || ttl > MAX_TTL {
                return None;
            }
            min_ttl = min_ttl.min(ttl);
            ttls.push(u16::try_from(at + 4).ok()?);
        }
        at += 10 + rdlen;
    }
    (at == response.len() && !ttls.is_empty()).then_some(Layout { ttls, min_ttl, opt })
}

/// Skips a (possibly compressed) name at `at`; returns where it ends.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(len),
            0xc0..=0xff => {
                message.get(at + 1)?;
                return Some(at + 2);
            }
            _ => return None,
        }
    }
    None
}

/// Whether OPT RDATA carries EDE 3; `None` if the options are malformed.
fn carries_stale_ede(mut options: &[u8]) -> Option<bool> {
    while !options.is_empty() {
        let head = options.get(..4)?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let data = options.get(4..4 + len)?;
        if code == EDE_OPTION && data.get(..2) == Some(&EDE_STALE.to_be_bytes()[..]) {
            return Some(true);
        }
        options = &options[4 + len..];
    }
    Some(false)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::op::{Edns, Message, Query, ResponseCode};
    use hickory_proto::rr::rdata::opt::EdnsOption;
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    /// A query and a response to it with A records of `ttls` (and an SOA of
    /// `soa_ttl` in the authority section, if given).
    pub(crate) fn exchange(
        name: &str,
        ttls: &[u32],
        soa_ttl: Option<u32>,
        edns: Option<Edns>,
    ) -> (Vec<u8>, Vec<u8>) {
        let name = Name::from_ascii(name).unwrap();
        let mut query = Message::query();
        query.metadata.id = 77;
        query.add_query(Query::query(name.clone(), RecordType::A));
        query.edns = edns.clone();
        let mut response = Message::response(77, query.metadata.op_code);
        response.add_query(Query::query(name.clone(), RecordType::A));
        for (i, ttl) in ttls.iter().enumerate() {
            response.add_answer(Record::from_rdata(
                name.clone(),
                *ttl,
                RData::A(A::new(10, 0, 0, i as u8)),
            ));
        }
        if let Some(ttl) = soa_ttl {
            let apex = name.base_name();
            let soa = SOA::new(apex.clone(), apex.clone(), 1, 3600, 600, 86_400, 60);
            response.add_authority(Record::from_rdata(apex, ttl, RData::SOA(soa)));
            if ttls.is_empty() {
                response.metadata.response_code = ResponseCode::NXDomain;
            }
        }
        response.edns = edns;
        (query.to_vec().unwrap(), response.to_vec().unwrap())
    }

    fn qname_end(query: &[u8]) -> usize {
        crate::answer_cache::QueryKey::parse(query)
            .unwrap()
            .qname_end()
    }

    #[test]
    fn finds_every_ttl_but_opts() {
        let (q, r) = exchange("www.a.kad.", &[300, 60], Some(900), Some(Edns::new()));
        let layout = layout(&r, &q, qname_end(&q)).unwrap();
        assert_eq!(layout.ttls.len(), 3);
        assert_eq!(layout.min_ttl, 60);
        let read = |at: u16| {
            let at = usize::from(at);
            u32::from_be_bytes(r[at..at + 4].try_into().unwrap())
        };
        let found: Vec<u32> = layout.ttls.iter().map(|&at| read(at)).collect();
        assert_eq!(found, [300, 60, 900]);
    }

    #[test]
    fn nxdomain_is_kept_by_its_soa_ttl() {
        let (q, r) = exchange("nx.a.kad.", &[], Some(45), None);
        assert_eq!(r[3] & 0x0f, 3);
        assert_eq!(layout(&r, &q, qname_end(&q)).unwrap().min_ttl, 45);
    }

    #[test]
    fn refuses_what_must_not_be_cached() {
        let (q, r) = exchange("www.a.kad.", &[300], None, None);
        let end = qname_end(&q);
        assert!(layout(&r, &q, end).is_some());
        let mut servfail = r.clone();
        servfail[3] = (servfail[3] & 0xf0) | 2;
        let mut truncated = r.clone();
        truncated[2] |= 0x02;
        let mut other_case = r.clone();
        other_case[13] = b'W';
        let mut trailing = r.clone();
        trailing.push(0);
        for bad in [
            servfail,
            truncated,
            other_case,
            trailing,
            r[..r.len() - 1].to_vec(),
        ] {
            assert!(layout(&bad, &q, end).is_none());
        }
        let (q, zero) = exchange("www.a.kad.", &[300, 0], None, None);
        assert!(layout(&zero, &q, end).is_none());
        let (q, none) = exchange("www.a.kad.", &[], None, None);
        assert!(layout(&none, &q, end).is_none());
    }

    #[test]
    fn a_stale_answer_is_not_cached() {
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDE_OPTION, vec![0, 3, b'x']));
        let (q, r) = exchange("www.a.kad.", &[300], None, Some(edns));
        assert!(layout(&r, &q, qname_end(&q)).is_none());
        let mut edns = Edns::new();
        edns.options_mut()
            .insert(EdnsOption::Unknown(EDE_OPTION, vec![0, 22]));
        let (q, r) = exchange("www.a.kad.", &[300], None, Some(edns));
        assert!(layout(&r, &q, qname_end(&q)).is_some());
    }
}
