//! Scrubbing forwarded responses before they are cached or answered.
//!
//! An upstream is trusted for the names it was asked about, and for nothing
//! else: not for kadns names (only a bundle verified against its zone key
//! speaks for those), and not for names outside the query's bailiwick (the
//! classic cache-poisoning vector). What stays, section by section:
//!
//! - **answer**: the CNAME/DNAME chain that starts at the query name, and the
//!   records owned by the names on it; nothing owned by a kadns name (a chain
//!   that enters a kadns zone is cut there).
//! - **authority**: records owned by the query name or one of its ancestors,
//!   or by a name on the answer chain or one of its ancestors (the SOA of a
//!   negative answer, the NS of the zone, DS), and NSEC/NSEC3/RRSIG records
//!   below an SOA or NS owner kept; nothing owned by a kadns name.
//! - **additional**: records owned by a name that a kept answer or authority
//!   record points at (NS, MX, SRV, SVCB/HTTPS targets: glue and address
//!   hints); nothing owned by a kadns name.

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::route::Router;

/// What scrubbing removed, for the log and the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scrubbed {
    /// Records removed because a kadns name owned them.
    pub(crate) kadns: usize,
    /// Records removed because they were outside the query's bailiwick or
    /// unrelated to the answer.
    pub(crate) out_of_bailiwick: usize,
}

impl Scrubbed {
    pub(crate) fn total(&self) -> usize {
        self.kadns + self.out_of_bailiwick
    }
}

/// Strips from `response` (an upstream's answer to a question for `qname`)
/// every record it has no business sending. See the module doc.
pub(crate) fn scrub(response: &mut Message, qname: &Name, router: &Router) -> Scrubbed {
    let mut removed = Scrubbed::default();
    let mut qname = qname.clone();
    qname.set_fqdn(true);

    // The answer chain: query name, then each CNAME target in turn.
    let mut chain = vec![qname.clone()];
    let answers = std::mem::take(&mut response.answers);
    let mut kept_answers = Vec::with_capacity(answers.len());
    let mut pending: Vec<Record> = answers;
    loop {
        let before = kept_answers.len();
        let mut rest = Vec::new();
        for record in pending {
            let on_chain = chain.contains(&record.name)
                || (record.record_type() == RecordType::DNAME
                    && chain.iter().any(|n| record.name.zone_of(n)));
            if on_chain {
                if router.is_kadns(&record.name) {
                    removed.kadns += 1;
                    continue;
                }
                if let RData::CNAME(target) = &record.data {
                    let mut target = target.0.clone();
                    target.set_fqdn(true);
                    if !chain.contains(&target) {
                        chain.push(target);
                    }
                }
                kept_answers.push(record);
            } else {
                rest.push(record);
            }
        }
        pending = rest;
        if kept_answers.len() == before || pending.is_empty() {
            break;
        }
    }
    for record in pending {
        if router.is_kadns(&record.name) {
            removed.kadns += 1;
        } else {
            removed.out_of_bailiwick += 1;
        }
    }
    response.answers = kept_answers;

    // Authority: ancestors-or-self of a chain name, and DNSSEC denial
    // records below a zone apex kept.
    let in_bailiwick = |name: &Name| chain.iter().any(|n| name.zone_of(n));
    let authorities = std::mem::take(&mut response.authorities);
    let apexes: Vec<Name> = authorities
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::SOA | RecordType::NS))
        .filter(|r| in_bailiwick(&r.name) && !router.is_kadns(&r.name))
        .map(|r| r.name.clone())
        .collect();
    for record in authorities {
        let denial = matches!(
            record.record_type(),
            RecordType::NSEC | RecordType::NSEC3 | RecordType::RRSIG
        );
        if router.is_kadns(&record.name) {
            removed.kadns += 1;
        } else if in_bailiwick(&record.name)
            || (denial && apexes.iter().any(|apex| apex.zone_of(&record.name)))
        {
            response.authorities.push(record);
        } else {
            removed.out_of_bailiwick += 1;
        }
    }

    // Additional: only names that kept records point at.
    let targets: Vec<Name> = response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .filter_map(|r| target_of(&r.data))
        .collect();
    for record in std::mem::take(&mut response.additionals) {
        if router.is_kadns(&record.name) {
            removed.kadns += 1;
        } else if targets.contains(&record.name) {
            response.additionals.push(record);
        } else {
            removed.out_of_bailiwick += 1;
        }
    }
    removed
}

/// The name a record points at for which address records may follow in the
/// additional section.
fn target_of(data: &RData) -> Option<Name> {
    let mut name = match data {
        RData::NS(ns) => ns.0.clone(),
        RData::MX(mx) => mx.exchange.clone(),
        RData::SRV(srv) => srv.target.clone(),
        RData::SVCB(svcb) => svcb.target_name.clone(),
        RData::HTTPS(https) => https.0.target_name.clone(),
        RData::CNAME(cname) => cname.0.clone(),
        _ => return None,
    };
    name.set_fqdn(true);
    Some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};
    use kadns_record::ZoneKey;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(owner: &str, last: u8) -> Record {
        Record::from_rdata(name(owner), 300, RData::A(A::new(192, 0, 2, last)))
    }

    fn router() -> Router {
        let zone = ZoneKey::from_seed([3; 32]).zone_id();
        Router::new([(name("example.kad."), zone)])
    }

    fn owners(records: &[Record]) -> Vec<String> {
        records.iter().map(|r| r.name.to_ascii()).collect()
    }

    #[test]
    fn kadns_and_out_of_bailiwick_records_are_stripped() {
        let zone = ZoneKey::from_seed([3; 32]).zone_id();
        let mut response = Message::query();
        response.add_query(Query::query(name("www.corp.test."), RecordType::A));
        response.answers = vec![
            Record::from_rdata(
                name("www.corp.test."),
                300,
                RData::CNAME(CNAME(name("edge.cdn.test."))),
            ),
            a("edge.cdn.test.", 1),
            a("unrelated.test.", 2),
            a("web.example.kad.", 3),
        ];
        response.authorities = vec![
            Record::from_rdata(
                name("corp.test."),
                300,
                RData::NS(NS(name("ns1.corp.test."))),
            ),
            Record::from_rdata(name("com."), 300, RData::NS(NS(name("ns.evil.test.")))),
            Record::from_rdata(
                name("example.kad."),
                300,
                RData::NS(NS(name("ns.evil.test."))),
            ),
        ];
        response.additionals = vec![
            a("ns1.corp.test.", 4),
            a("ns.evil.test.", 5),
            a("web.example.kad.", 6),
            a(&format!("www.{zone}."), 7),
        ];
        let removed = scrub(&mut response, &name("WWW.corp.test."), &router());
        assert_eq!(
            owners(&response.answers),
            ["www.corp.test.", "edge.cdn.test."]
        );
        assert_eq!(owners(&response.authorities), ["corp.test."]);
        assert_eq!(owners(&response.additionals), ["ns1.corp.test."]);
        assert_eq!(
            removed,
            Scrubbed {
                kadns: 4,
                out_of_bailiwick: 3
            }
        );
    }

    #[test]
    fn a_chain_into_a_kadns_zone_is_cut_and_negative_soa_kept() {
        let mut response = Message::query();
        response.answers = vec![
            Record::from_rdata(
                name("alias.test."),
                300,
                RData::CNAME(CNAME(name("web.example.kad."))),
            ),
            a("web.example.kad.", 9),
        ];
        let soa = SOA::new(name("ns.test."), name("h.test."), 1, 2, 3, 4, 5);
        response.authorities = vec![
            Record::from_rdata(name("test."), 60, RData::SOA(soa.clone())),
            Record::from_rdata(name("other."), 60, RData::SOA(soa)),
        ];
        let removed = scrub(&mut response, &name("alias.test."), &router());
        assert_eq!(owners(&response.answers), ["alias.test."]);
        assert_eq!(owners(&response.authorities), ["test."]);
        assert_eq!(
            removed,
            Scrubbed {
                kadns: 1,
                out_of_bailiwick: 1
            }
        );
    }
}
