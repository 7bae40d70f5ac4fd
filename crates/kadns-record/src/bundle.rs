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
mod tests {
    use super::*;
    use crate::error::ContentError;
    use crate::limits::MAX_TTL;
    use hickory_proto::rr::Name;
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, TXT};
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const NOW: u64 = 1_800_000_000;

    fn key(seed: u8) -> ZoneKey {
        ZoneKey::from_seed([seed; 32])
    }

    fn owner(labels: &[&str]) -> OwnerName {
        OwnerName::from_labels(labels.iter().map(|l| l.as_bytes())).expect("valid test labels")
    }

    fn a(ttl: u32, last: u8) -> Rr {
        Rr::new(ttl, &RData::A(A::new(192, 0, 2, last))).expect("valid A")
    }

    fn sample(seed: u8) -> SignedBundle {
        Bundle::new(owner(&["www"]), 5, NOW + 3600, vec![a(300, 1), a(300, 2)])
            .expect("valid")
            .sign(&key(seed))
            .expect("fits")
    }

    #[test]
    fn sign_decode_verify() {
        let signed = sample(1);
        assert_eq!(signed.as_bytes().len(), signed.content().encoded_len());
        let decoded = SignedBundle::decode(signed.as_bytes()).expect("decodes");
        assert_eq!(decoded, signed);
        let verified = validate(&signed.dht_key(), signed.as_bytes(), NOW).expect("valid");
        assert_eq!(verified.records().len(), 2);
        assert_eq!(verified.owner(), &owner(&["www"]));
    }

    #[test]
    fn expiry_bounds() {
        let signed = sample(1);
        let key = signed.dht_key();
        let expires = NOW + 3600;
        assert_eq!(
            validate(&key, signed.as_bytes(), expires),
            Err(VerifyError::Expired {
                expires,
                now: expires
            }
            .into())
        );
        let far = Bundle::new(owner(&["x"]), 1, NOW + MAX_VALIDITY + 1, vec![])
            .expect("valid")
            .sign(&self::key(1))
            .expect("fits");
        assert!(matches!(
            validate(&far.dht_key(), far.as_bytes(), NOW),
            Err(ValidateError::Verify(VerifyError::ExpiryTooFar { .. }))
        ));
        assert!(validate(&far.dht_key(), far.as_bytes(), NOW + 1).is_ok());
    }

    #[test]
    fn size_limit_on_encode_and_decode() {
        let txt = |i: usize| {
            Rr::new(60, &RData::TXT(TXT::new(vec![format!("{i:0>200}")]))).expect("valid TXT")
        };
        let big =
            Bundle::new(owner(&["big"]), 1, NOW + 60, (0..30).map(txt).collect()).expect("valid");
        let len = big.encoded_len();
        assert!(len > MAX_BUNDLE_LEN);
        assert_eq!(
            big.sign(&key(1)),
            Err(EncodeError::TooLarge {
                len,
                max: MAX_BUNDLE_LEN
            })
        );
        let oversized = vec![FORMAT_VERSION; MAX_BUNDLE_LEN + 1];
        assert_eq!(
            SignedBundle::decode(&oversized),
            Err(DecodeError::TooLarge {
                len: MAX_BUNDLE_LEN + 1,
                max: MAX_BUNDLE_LEN
            })
        );
    }

    #[test]
    fn malformed_inputs() {
        let signed = sample(1);
        let bytes = signed.as_bytes();
        let mut v2 = bytes.to_vec();
        v2[0] = 2;
        assert_eq!(
            SignedBundle::decode(&v2),
            Err(DecodeError::UnsupportedVersion { version: 2 })
        );
        assert!(matches!(
            SignedBundle::decode(&bytes[..bytes.len() - 1]),
            Err(DecodeError::Truncated { field: "signature" })
        ));
        assert_eq!(
            SignedBundle::decode(&[]),
            Err(DecodeError::Truncated { field: "version" })
        );
        let mut long = bytes.to_vec();
        long.push(0);
        assert_eq!(
            SignedBundle::decode(&long),
            Err(DecodeError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn content_rules() {
        let cname = Rr::new(
            60,
            &RData::CNAME(CNAME(Name::from_ascii("x.example.").expect("name"))),
        )
        .expect("valid");
        assert_eq!(
            Bundle::new(owner(&["c"]), 1, NOW, vec![cname.clone(), a(60, 1)]),
            Err(ContentError::CnameWithOtherData)
        );
        assert!(Bundle::new(owner(&["c"]), 1, NOW, vec![cname]).is_ok());
        assert!(matches!(
            Rr::new(MAX_TTL + 1, &RData::A(A::new(1, 2, 3, 4))),
            Err(ContentError::TtlTooLarge { .. })
        ));
        assert!(matches!(
            Rr::from_parts(RecordType::OPT, 0, vec![]),
            Err(ContentError::ForbiddenType { .. })
        ));
        assert!(matches!(
            Rr::from_parts(RecordType::A, 0, vec![1, 2, 3]),
            Err(ContentError::BadRdata { .. })
        ));
        // Exact duplicates are dropped; order is canonical whatever the input order.
        let b =
            Bundle::new(owner(&["d"]), 1, NOW, vec![a(60, 2), a(60, 1), a(60, 2)]).expect("valid");
        assert_eq!(b.records(), &[a(60, 1), a(60, 2)]);
    }

    #[test]
    fn freshness() {
        let k = key(4);
        let make = |seq: u64, last: u8| {
            let signed = Bundle::new(owner(&["n"]), seq, NOW + 60, vec![a(60, last)])
                .expect("valid")
                .sign(&k)
                .expect("fits");
            validate(&signed.dht_key(), signed.as_bytes(), NOW).expect("valid")
        };
        let stored = make(5, 1);
        assert_eq!(make(6, 1).freshness_against(&stored), Freshness::Newer);
        assert_eq!(make(5, 1).freshness_against(&stored), Freshness::Same);
        assert_eq!(make(5, 2).freshness_against(&stored), Freshness::Conflict);
        assert_eq!(make(4, 1).freshness_against(&stored), Freshness::Older);
    }

    fn arb_label() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9-]{0,20}"
    }

    fn arb_rr() -> impl Strategy<Value = Rr> {
        prop_oneof![
            (0..=MAX_TTL, any::<[u8; 4]>()).prop_map(|(t, ip)| Rr::new(
                t,
                &RData::A(A::from(Ipv4Addr::from(ip)))
            )
            .expect("A")),
            (0..=MAX_TTL, any::<[u8; 16]>()).prop_map(|(t, ip)| Rr::new(
                t,
                &RData::AAAA(AAAA::from(Ipv6Addr::from(ip)))
            )
            .expect("AAAA")),
            (0..=MAX_TTL, "[ -~]{0,60}").prop_map(|(t, s)| Rr::new(
                t,
                &RData::TXT(TXT::new(vec![s]))
            )
            .expect("TXT")),
            (0..=MAX_TTL, any::<u16>(), arb_label()).prop_map(|(t, p, l)| {
                let exchange = Name::from_ascii(format!("{l}.example.net.")).expect("name");
                Rr::new(t, &RData::MX(MX::new(p, exchange))).expect("MX")
            }),
        ]
    }

    prop_compose! {
        fn arb_bundle()(
            labels in proptest::collection::vec(arb_label(), 0..4),
            sequence in any::<u64>(),
            expires in NOW + 1..NOW + MAX_VALIDITY,
            records in proptest::collection::vec(arb_rr(), 0..8),
        ) -> Bundle {
            let owner = OwnerName::from_labels(labels.iter().map(|l| l.as_bytes())).expect("labels");
            Bundle::new(owner, sequence, expires, records).expect("content")
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip(bundle in arb_bundle(), seed in any::<[u8; 32]>()) {
            let signed = bundle.clone().sign(&ZoneKey::from_seed(seed)).expect("fits");
            let verified = validate(&signed.dht_key(), signed.as_bytes(), NOW).expect("valid");
            prop_assert_eq!(verified.records(), bundle.records());
            prop_assert_eq!(verified.owner(), bundle.owner());
            prop_assert_eq!(SignedBundle::decode(signed.as_bytes()).expect("decodes"), signed);
        }

        #[test]
        fn any_single_bit_flip_is_refused(bundle in arb_bundle(), seed in any::<[u8; 32]>(), pick in any::<proptest::sample::Index>()) {
            let signed = bundle.sign(&ZoneKey::from_seed(seed)).expect("fits");
            let key = signed.dht_key();
            let bit = pick.index(signed.as_bytes().len() * 8);
            let mut bytes = signed.as_bytes().to_vec();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(validate(&key, &bytes, NOW).is_err(), "bit {} flipped and still valid", bit);
        }

        #[test]
        fn zone_a_never_validates_as_zone_b(bundle in arb_bundle(), a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            prop_assume!(a != b);
            let (key_a, key_b) = (ZoneKey::from_seed(a), ZoneKey::from_seed(b));
            let signed = bundle.sign(&key_a).expect("fits");
            let b_key = DhtKey::derive(&key_b.zone_id(), signed.content().owner());
            // Under B's DHT key it is refused.
            prop_assert!(validate(&b_key, signed.as_bytes(), NOW).is_err());
            // With B's public key written in, the signature no longer verifies.
            let mut bytes = signed.as_bytes().to_vec();
            bytes[1..33].copy_from_slice(key_b.zone_id().as_bytes());
            prop_assert!(validate(&b_key, &bytes, NOW).is_err());
        }

        #[test]
        fn owner_name_cannot_be_swapped(bundle in arb_bundle(), seed in any::<[u8; 32]>(), other in arb_label()) {
            let key = ZoneKey::from_seed(seed);
            let signed = bundle.sign(&key).expect("fits");
            let other = OwnerName::from_labels([other.as_bytes()]).expect("label");
            prop_assume!(&other != signed.content().owner());
            // Presented under another name's DHT key: refused.
            let other_key = DhtKey::derive(&key.zone_id(), &other);
            prop_assert!(validate(&other_key, signed.as_bytes(), NOW).is_err());
            // Owner bytes rewritten in place (same length, so the layout stays valid): refused.
            let owner_len = signed.content().owner().wire().len();
            if owner_len > 1 {
                let mut bytes = signed.as_bytes().to_vec();
                let first = 1 + 32 + 8 + 8 + 1 + 1;
                bytes[first] = if bytes[first] == b'a' { b'b' } else { b'a' };
                let forged_owner = OwnerName::from_wire(&bytes[first - 1..first - 1 + owner_len]).expect("still canonical");
                prop_assert!(validate(&DhtKey::derive(&key.zone_id(), &forged_owner), &bytes, NOW).is_err());
            }
        }
    }
}
