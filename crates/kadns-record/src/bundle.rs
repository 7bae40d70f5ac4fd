//! The signed bundle: every record of one owner name, signed by the zone key.

use ed25519_dalek::Signature;
use hickory_proto::rr::RecordType;

use crate::dht_key::DhtKey;
use crate::error::{ContentError, DecodeError, EncodeError, ValidateError, VerifyError};
use crate::key::{ZoneId, ZoneKey};
use crate::limits::{MAX_BUNDLE_LEN, MAX_VALIDITY};
use crate::meta::{Meta, check_meta, is_meta_record};
use crate::owner::OwnerName;
use crate::rr::{Rr, check_record_set};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Domain-separation tag prepended to the bytes the zone key signs.
pub const SIGNATURE_TAG: &[u8] = b"kadns-bundle-v1\0";

const SIGNATURE_LEN: usize = 64;

/// The unsigned content of a bundle: an owner name's records, a sequence
/// number and an expiry time. [`Bundle::sign`] turns it into a [`SignedBundle`].
///
/// ```
/// use hickory_proto::rr::{RData, rdata::A};
/// use kadns_record::{Bundle, OwnerName, Rr, ZoneKey, validate};
///
/// let key = ZoneKey::from_seed([42; 32]);
/// let owner = OwnerName::from_labels([b"www".as_slice()]).unwrap();
/// let rr = Rr::new(300, &RData::A(A::new(192, 0, 2, 7))).unwrap();
/// let now = 1_800_000_000;
/// let signed = Bundle::new(owner, 1, now + 86_400, vec![rr]).unwrap().sign(&key).unwrap();
///
/// // Anyone holding only the bytes and the DHT key can check it.
/// let verified = validate(&signed.dht_key(), signed.as_bytes(), now).unwrap();
/// assert_eq!(verified.zone(), &key.zone_id());
/// assert_eq!(verified.sequence(), 1);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    owner: OwnerName,
    sequence: u64,
    expires: u64,
    records: Vec<Rr>,
}

impl Bundle {
    /// Collects records into canonical order, dropping exact duplicates
    /// (RFC 2181 §5), and checks the content rules. An empty record list is
    /// allowed: it says the name no longer exists.
    pub fn new(
        owner: OwnerName,
        sequence: u64,
        expires: u64,
        mut records: Vec<Rr>,
    ) -> Result<Self, ContentError> {
        records.sort_by(Rr::canonical_cmp);
        records.dedup_by(|a, b| a.canonical_cmp(b).is_eq());
        check_record_set(&records)?;
        check_meta(&records)?;
        Ok(Self {
            owner,
            sequence,
            expires,
            records,
        })
    }

    /// The owner name.
    pub fn owner(&self) -> &OwnerName {
        &self.owner
    }

    /// The records, in canonical order.
    pub fn records(&self) -> &[Rr] {
        &self.records
    }

    /// The sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Expiry, unix seconds.
    pub fn expires(&self) -> u64 {
        self.expires
    }

    /// The size the signed encoding will have, in bytes.
    pub fn encoded_len(&self) -> usize {
        1 + 32
            + 8
            + 8
            + 1
            + self.owner.wire().len()
            + 2
            + self.records.iter().map(Rr::encoded_len).sum::<usize>()
            + SIGNATURE_LEN
    }

    /// Encodes the bundle under `key`'s zone and signs it.
    pub fn sign(self, key: &ZoneKey) -> Result<SignedBundle, EncodeError> {
        let len = self.encoded_len();
        if len > MAX_BUNDLE_LEN {
            return Err(EncodeError::TooLarge {
                len,
                max: MAX_BUNDLE_LEN,
            });
        }
        let zone = key.zone_id();
        let mut bytes = Vec::with_capacity(len);
        bytes.push(FORMAT_VERSION);
        bytes.extend_from_slice(zone.as_bytes());
        bytes.extend_from_slice(&self.sequence.to_be_bytes());
        bytes.extend_from_slice(&self.expires.to_be_bytes());
        // Both lengths are bounded by the checks above (owner name, record count).
        bytes.push(self.owner.wire().len() as u8);
        bytes.extend_from_slice(self.owner.wire());
        bytes.extend_from_slice(&(self.records.len() as u16).to_be_bytes());
        for rr in &self.records {
            bytes.extend_from_slice(&u16::from(rr.record_type()).to_be_bytes());
            bytes.extend_from_slice(&rr.ttl().to_be_bytes());
            bytes.extend_from_slice(&(rr.rdata_bytes().len() as u16).to_be_bytes());
            bytes.extend_from_slice(rr.rdata_bytes());
        }
        let signature = key.sign(&signed_message(&bytes));
        bytes.extend_from_slice(&signature.to_bytes());
        debug_assert_eq!(bytes.len(), len);
        Ok(SignedBundle {
            zone,
            content: self,
            signature,
            bytes,
        })
    }
}

fn signed_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_TAG.len() + body.len());
    message.extend_from_slice(SIGNATURE_TAG);
    message.extend_from_slice(body);
    message
}

/// A well-formed bundle whose signature has **not** been checked. It comes from
/// [`SignedBundle::decode`] or [`Bundle::sign`]; only [`SignedBundle::verify`]
/// turns it into something to store or answer from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedBundle {
    zone: ZoneId,
    content: Bundle,
    signature: Signature,
    bytes: Vec<u8>,
}

impl SignedBundle {
    /// Parses the encoding. Checks the size limit first, then every field and
    /// every content rule; does not check the signature or the expiry.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() > MAX_BUNDLE_LEN {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_BUNDLE_LEN,
            });
        }
        let mut reader = Reader(bytes);
        let [version] = reader.array::<1>("version")?;
        if version != FORMAT_VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let zone =
            ZoneId::from_bytes(&reader.array::<32>("zone key")?).map_err(DecodeError::ZoneKey)?;
        let sequence = u64::from_be_bytes(reader.array::<8>("sequence")?);
        let expires = u64::from_be_bytes(reader.array::<8>("expires")?);
        let [owner_len] = reader.array::<1>("owner length")?;
        let owner = OwnerName::from_wire(reader.take(usize::from(owner_len), "owner name")?)
            .map_err(DecodeError::OwnerName)?;
        let count = u16::from_be_bytes(reader.array::<2>("record count")?);
        let mut records = Vec::with_capacity(usize::from(count).min(crate::MAX_RECORDS));
        for _ in 0..count {
            let record_type =
                RecordType::from(u16::from_be_bytes(reader.array::<2>("record type")?));
            let ttl = u32::from_be_bytes(reader.array::<4>("ttl")?);
            let rdlen = u16::from_be_bytes(reader.array::<2>("rdata length")?);
            let rdata = reader.take(usize::from(rdlen), "rdata")?.to_vec();
            records.push(Rr::from_parts(record_type, ttl, rdata).map_err(DecodeError::Content)?);
        }
        check_record_set(&records).map_err(DecodeError::Content)?;
        let signature = Signature::from_bytes(&reader.array::<SIGNATURE_LEN>("signature")?);
        if !reader.0.is_empty() {
            return Err(DecodeError::TrailingBytes {
                extra: reader.0.len(),
            });
        }
        Ok(Self {
            zone,
            content: Bundle {
                owner,
                sequence,
                expires,
                records,
            },
            signature,
            bytes: bytes.to_vec(),
        })
    }

    /// Checks the signature and that the expiry lies in `(now, now + MAX_VALIDITY]`.
    pub fn verify(self, now: u64) -> Result<VerifiedBundle, VerifyError> {
        let body_len = self.bytes.len() - SIGNATURE_LEN;
        let body = self
            .bytes
            .get(..body_len)
            .ok_or(VerifyError::BadSignature)?;
        if !self
            .zone
            .verify_strict(&signed_message(body), &self.signature)
        {
            return Err(VerifyError::BadSignature);
        }
        let expires = self.content.expires;
        if expires <= now {
            return Err(VerifyError::Expired { expires, now });
        }
        if expires - now > MAX_VALIDITY {
            return Err(VerifyError::ExpiryTooFar {
                expires,
                now,
                max_validity: MAX_VALIDITY,
            });
        }
        Ok(VerifiedBundle(self))
    }

    /// The zone key the bundle claims to be signed by.
    pub fn zone(&self) -> &ZoneId {
        &self.zone
    }

    /// The unsigned content.
    pub fn content(&self) -> &Bundle {
        &self.content
    }

    /// The DHT key this bundle belongs under.
    pub fn dht_key(&self) -> DhtKey {
        DhtKey::derive(&self.zone, &self.content.owner)
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, by value.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A bundle whose signature, expiry and content have been checked. The only
/// kind of bundle that may be stored, cached or answered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBundle(SignedBundle);

impl VerifiedBundle {
    /// The zone that signed it.
    pub fn zone(&self) -> &ZoneId {
        &self.0.zone
    }

    /// The owner name, relative to the apex.
    pub fn owner(&self) -> &OwnerName {
        &self.0.content.owner
    }

    /// The sequence number: among valid bundles of a name, the highest wins.
    pub fn sequence(&self) -> u64 {
        self.0.content.sequence
    }

    /// Expiry, unix seconds.
    pub fn expires(&self) -> u64 {
        self.0.content.expires
    }

    /// The records, in canonical order, meta record included. Empty means
    /// the name does not exist.
    pub fn records(&self) -> &[Rr] {
        &self.0.content.records
    }

    /// The records an answer may show: every record but the meta-type ones.
    pub fn answer_records(&self) -> impl Iterator<Item = &Rr> {
        self.records().iter().filter(|r| !r.is_meta())
    }

    /// The zone structure the bundle states: its well-formed meta record, if any.
    pub fn meta(&self) -> Option<Meta> {
        self.records()
            .iter()
            .find(|r| is_meta_record(r))
            .and_then(|r| Meta::from_rdata(r.rdata_bytes()))
    }

    /// True when the name exists (the bundle is not a tombstone) but holds
    /// no answerable records: an empty non-terminal, NODATA for every type.
    pub fn is_empty_non_terminal(&self) -> bool {
        !self.records().is_empty() && self.answer_records().next().is_none()
    }

    /// The DHT key it belongs under.
    pub fn dht_key(&self) -> DhtKey {
        self.0.dht_key()
    }

    /// The encoded bytes, exactly as signed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0.bytes
    }

    /// How `self`, arriving, compares with `stored`, a bundle already held for
    /// the same DHT key. This is the one rule every store and resolver applies.
    pub fn freshness_against(&self, stored: &VerifiedBundle) -> Freshness {
        match self.sequence().cmp(&stored.sequence()) {
            core::cmp::Ordering::Greater => Freshness::Newer,
            core::cmp::Ordering::Less => Freshness::Older,
            core::cmp::Ordering::Equal if self.as_bytes() == stored.as_bytes() => Freshness::Same,
            core::cmp::Ordering::Equal => Freshness::Conflict,
        }
    }
}

/// The outcome of [`VerifiedBundle::freshness_against`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Higher sequence: replaces the stored bundle.
    Newer,
    /// The identical bundle: nothing to do.
    Same,
    /// Same sequence, different content (a re-signature, or a key holder that
    /// reused a sequence): the stored bundle is kept, so replicas cannot be
    /// flipped back and forth.
    Conflict,
    /// Lower sequence: a rollback, refused.
    Older,
}

/// The one validation entry point: is `bytes`, found or offered under `key`,
/// a valid bundle at time `now` (unix seconds)?
///
/// Checks, in order: size, format version, every field and content rule, that
/// the bundle's zone and owner hash to `key`, the signature, and the expiry.
pub fn validate(key: &DhtKey, bytes: &[u8], now: u64) -> Result<VerifiedBundle, ValidateError> {
    let bundle = SignedBundle::decode(bytes)?;
    let actual = bundle.dht_key();
    if actual != *key {
        return Err(VerifyError::WrongKey {
            expected: *key,
            actual,
        }
        .into());
    }
    Ok(bundle.verify(now)?)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated { field });
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        self.take(N, field)?
            .try_into()
            .map_err(|_| DecodeError::Truncated { field })
    }
}

#[cfg(test)]
mod tests;
