//! Moving the names inside RDATA from one apex to another.
//!
//! A zone's content does not depend on the apex it is reached under. In a
//! bundle, every in-zone name inside RDATA (CNAME, NS, PTR, MX, SRV, SOA,
//! SVCB/HTTPS targets) is written under the zone-id apex `<zone-id>.`. The
//! publisher rebases names from the zone file's `$ORIGIN` onto the zone-id apex
//! before signing; the resolver rebases them from the zone-id apex onto the
//! apex the query used. Names outside the zone are left alone.

use hickory_proto::rr::Name;
use hickory_proto::rr::RData;
use hickory_proto::rr::rdata::{ANAME, CNAME, NS, PTR};

use crate::error::NameError;

/// Moves `name` from under `from` to under `to`, if it is at or below `from`.
///
/// ```
/// use hickory_proto::rr::Name;
/// use kadns_record::rebase_name;
///
/// let n = |s: &str| Name::from_ascii(s).unwrap();
/// assert_eq!(rebase_name(&n("mail.example.org."), &n("example.org."), &n("z.kad.")).unwrap(), n("mail.z.kad."));
/// assert_eq!(rebase_name(&n("other.net."), &n("example.org."), &n("z.kad.")).unwrap(), n("other.net."));
/// ```
pub fn rebase_name(name: &Name, from: &Name, to: &Name) -> Result<Name, NameError> {
    if !from.zone_of(name) {
        return Ok(name.clone());
    }
    let keep = usize::from(name.num_labels()) - usize::from(from.num_labels());
    let mut relative =
        Name::from_labels(name.iter().take(keep)).map_err(|_| NameError::TooLong {
            len: name.len(),
            max: 255,
        })?;
    relative.set_fqdn(false);
    relative.append_domain(to).map_err(|_| NameError::TooLong {
        len: name.len() - from.len() + to.len(),
        max: 255,
    })
}

/// Applies [`rebase_name`] to every domain name inside `rdata` that kadns knows
/// how to find (CNAME, ANAME, NS, PTR, MX, SRV, SOA, SVCB, HTTPS). The RDATA of
/// other types is returned unchanged.
pub fn rebase_rdata(rdata: RData, from: &Name, to: &Name) -> Result<RData, NameError> {
    let re = |n: &Name| rebase_name(n, from, to);
    Ok(match rdata {
        RData::CNAME(CNAME(n)) => RData::CNAME(CNAME(re(&n)?)),
        RData::ANAME(ANAME(n)) => RData::ANAME(ANAME(re(&n)?)),
        RData::NS(NS(n)) => RData::NS(NS(re(&n)?)),
        RData::PTR(PTR(n)) => RData::PTR(PTR(re(&n)?)),
        RData::MX(mut mx) => {
            mx.exchange = re(&mx.exchange)?;
            RData::MX(mx)
        }
        RData::SRV(mut srv) => {
            srv.target = re(&srv.target)?;
            RData::SRV(srv)
        }
        RData::SOA(mut soa) => {
            soa.mname = re(&soa.mname)?;
            soa.rname = re(&soa.rname)?;
            RData::SOA(soa)
        }
        RData::SVCB(mut svcb) => {
            svcb.target_name = re(&svcb.target_name)?;
            RData::SVCB(svcb)
        }
        RData::HTTPS(mut https) => {
            https.0.target_name = re(&https.0.target_name)?;
            RData::HTTPS(https)
        }
        other => other,
    })
}
