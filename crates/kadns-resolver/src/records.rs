//! Turning a verified bundle's records into DNS records under the query's apex.

use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use kadns_record::{VerifiedBundle, rebase_rdata};

use crate::error::LookupError;

/// Where a bundle's records are written: owner name, and the apex move.
pub(crate) struct Placement<'a> {
    /// Owner name of every record (the name as the query, or a CNAME, wrote it).
    pub(crate) owner: &'a Name,
    /// The zone-id apex the bundle's RDATA names are stored under.
    pub(crate) from: &'a Name,
    /// The apex the query used.
    pub(crate) to: &'a Name,
    /// No TTL is above this: what is left of the cache entry's life.
    pub(crate) ttl_cap: u32,
}

/// The records of `bundle` whose type `wanted` accepts, as DNS records.
pub(crate) fn records(
    bundle: &VerifiedBundle,
    wanted: impl Fn(RecordType) -> bool,
    at: &Placement<'_>,
) -> Result<Vec<Record>, LookupError> {
    bundle
        // Meta records state the zone's structure; no answer shows them.
        .answer_records()
        .filter(|rr| wanted(rr.record_type()))
        .map(|rr| {
            let rdata = rr.rdata().map_err(|source| LookupError::Rdata {
                name: Box::new(at.owner.clone()),
                source,
            })?;
            let rdata =
                rebase_rdata(rdata, at.from, at.to).map_err(|source| LookupError::Rebase {
                    name: Box::new(at.owner.clone()),
                    source,
                })?;
            Ok(Record::from_rdata(
                at.owner.clone(),
                rr.ttl().min(at.ttl_cap),
                rdata,
            ))
        })
        .collect()
}

/// The SOA for the authority section of a negative answer: the zone's own
/// (from its apex bundle, rebased) when it publishes one, else a synthesized
/// one. Its TTL is the negative-caching time left, and never above the SOA's
/// TTL or MINIMUM (RFC 2308 §5).
pub(crate) fn negative_soa(
    apex_bundle: Option<&VerifiedBundle>,
    at: &Placement<'_>,
    negative_ttl: u32,
) -> Record {
    let published = apex_bundle
        .and_then(|bundle| records(bundle, |t| t == RecordType::SOA, at).ok())
        .and_then(|soas| soas.into_iter().next());
    if let Some(mut record) = published {
        if let RData::SOA(soa) = &record.data {
            record.ttl = record.ttl.min(soa.minimum);
        }
        return record;
    }
    let hostmaster = at
        .owner
        .prepend_label("hostmaster")
        .unwrap_or_else(|_| at.owner.clone());
    let soa = SOA::new(
        at.owner.clone(),
        hostmaster,
        0,
        3_600,
        600,
        86_400,
        negative_ttl,
    );
    Record::from_rdata(at.owner.clone(), at.ttl_cap, RData::SOA(soa))
}
