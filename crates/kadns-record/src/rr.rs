//! One resource record inside a bundle: type, TTL and canonical RDATA bytes.

use core::cmp::Ordering;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecoder, BinEncodable, BinEncoder, NameEncoding, Restrict,
};

use crate::error::ContentError;
use crate::limits::{MAX_RECORDS, MAX_TTL};

/// A resource record without its owner: the owner is the bundle's. Class is
/// always IN. RDATA is held in canonical wire form (RFC 4034 §6.2: no name
/// compression, names lower-cased), so equal records have equal bytes.
///
/// ```
/// use hickory_proto::rr::{RData, RecordType, rdata::A};
/// use kadns_record::Rr;
///
/// let rr = Rr::new(300, &RData::A(A::new(192, 0, 2, 1))).unwrap();
/// assert_eq!(rr.record_type(), RecordType::A);
/// assert_eq!(rr.rdata_bytes(), &[192, 0, 2, 1]);
/// assert_eq!(rr.rdata().unwrap(), RData::A(A::new(192, 0, 2, 1)));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Rr {
    record_type: RecordType,
    ttl: u32,
    rdata: Vec<u8>,
}

impl Rr {
    /// Encodes `rdata` canonically and checks it against the content rules.
    pub fn new(ttl: u32, rdata: &RData) -> Result<Self, ContentError> {
        let record_type = rdata.record_type();
        let mut bytes = Vec::new();
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_canonical_form(true);
        encoder.set_name_encoding(NameEncoding::UncompressedLowercase);
        rdata
            .emit(&mut encoder)
            .map_err(|e| ContentError::BadRdata {
                record_type,
                reason: e.to_string(),
            })?;
        Self::from_parts(record_type, ttl, bytes)
    }

    /// Builds a record from RDATA bytes already in wire form, checking that
    /// they decode as `record_type` and that type and TTL are allowed.
    pub fn from_parts(
        record_type: RecordType,
        ttl: u32,
        rdata: Vec<u8>,
    ) -> Result<Self, ContentError> {
        check_type(record_type)?;
        if ttl > MAX_TTL {
            return Err(ContentError::TtlTooLarge {
                record_type,
                ttl,
                max: MAX_TTL,
            });
        }
        if rdata.len() > usize::from(u16::MAX) {
            return Err(ContentError::RdataTooLong {
                record_type,
                len: rdata.len(),
            });
        }
        let rr = Self {
            record_type,
            ttl,
            rdata,
        };
        rr.rdata()?;
        Ok(rr)
    }

    /// The record type.
    pub fn record_type(&self) -> RecordType {
        self.record_type
    }

    /// True for a record of the kadns meta type ([`META_TYPE`](crate::META_TYPE)):
    /// structure, never shown in an answer.
    pub fn is_meta(&self) -> bool {
        u16::from(self.record_type) == crate::meta::META_TYPE
    }

    /// The TTL in seconds, at most [`MAX_TTL`].
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The canonical RDATA bytes.
    pub fn rdata_bytes(&self) -> &[u8] {
        &self.rdata
    }

    /// Decodes the RDATA. Types hickory does not know come back as
    /// `RData::Unknown`, their bytes untouched (RFC 3597).
    pub fn rdata(&self) -> Result<RData, ContentError> {
        let bad = |reason: String| ContentError::BadRdata {
            record_type: self.record_type,
            reason,
        };
        let len =
            u16::try_from(self.rdata.len()).map_err(|_| bad("longer than 65535 bytes".into()))?;
        let mut decoder = BinDecoder::new(&self.rdata);
        let rdata = RData::read(&mut decoder, self.record_type, Restrict::new(len))
            .map_err(|e| bad(e.to_string()))?;
        if !decoder.is_empty() {
            return Err(bad(format!("{} bytes left after the RDATA", decoder.len())));
        }
        Ok(rdata)
    }

    /// Bytes this record takes in an encoded bundle: type, TTL, RDATA length and RDATA.
    pub fn encoded_len(&self) -> usize {
        2 + 4 + 2 + self.rdata.len()
    }

    /// This record as a hickory [`Record`] owned by `owner`, class IN.
    pub fn to_record(&self, owner: Name) -> Result<Record, ContentError> {
        Ok(Record::from_rdata(owner, self.ttl, self.rdata()?))
    }

    /// The canonical order of records in a bundle: by type number, then by
    /// RDATA bytes (RFC 4034 §6.3 within an RRset). TTL does not order.
    pub(crate) fn canonical_cmp(&self, other: &Self) -> Ordering {
        u16::from(self.record_type)
            .cmp(&u16::from(other.record_type))
            .then_with(|| self.rdata.cmp(&other.rdata))
    }
}

/// Types that may not appear in a bundle: meta and query types, and the DNSSEC
/// and transaction-signature types, whose meaning kadns replaces with its own
/// signature.
pub const FORBIDDEN_TYPES: &[u16] = &[
    0,   // reserved
    24,  // SIG
    30,  // NXT
    41,  // OPT
    46,  // RRSIG
    47,  // NSEC
    50,  // NSEC3
    249, // TKEY
    250, // TSIG
    251, // IXFR
    252, // AXFR
    253, // MAILB
    254, // MAILA
    255, // ANY
];

fn check_type(record_type: RecordType) -> Result<(), ContentError> {
    if FORBIDDEN_TYPES.contains(&u16::from(record_type)) {
        return Err(ContentError::ForbiddenType { record_type });
    }
    Ok(())
}

/// Checks a bundle's record list: at most [`MAX_RECORDS`], strictly in
/// canonical order (so no duplicates), a CNAME alone and single (RFC 1034 §3.6.2;
/// a well-formed meta record beside it is structure, not data), and at most one SOA.
pub(crate) fn check_record_set(records: &[Rr]) -> Result<(), ContentError> {
    if records.len() > MAX_RECORDS {
        return Err(ContentError::TooManyRecords {
            count: records.len(),
            max: MAX_RECORDS,
        });
    }
    for pair in records.windows(2) {
        if let [a, b] = pair {
            match a.canonical_cmp(b) {
                Ordering::Less => {}
                Ordering::Equal => {
                    return Err(ContentError::Duplicate {
                        record_type: a.record_type,
                    });
                }
                Ordering::Greater => return Err(ContentError::NotInCanonicalOrder),
            }
        }
    }
    let count = |t: RecordType| records.iter().filter(|r| r.record_type == t).count();
    let cnames = count(RecordType::CNAME);
    let data = records
        .iter()
        .filter(|r| !crate::meta::is_meta_record(r))
        .count();
    if cnames > 1 || (cnames == 1 && data > 1) {
        return Err(ContentError::CnameWithOtherData);
    }
    if count(RecordType::SOA) > 1 {
        return Err(ContentError::MultipleSoa);
    }
    Ok(())
}
