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
    let big = Bundle::new(owner(&["big"]), 1, NOW + 60, (0..30).map(txt).collect()).expect("valid");
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
    let b = Bundle::new(owner(&["d"]), 1, NOW, vec![a(60, 2), a(60, 1), a(60, 2)]).expect("valid");
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
        (0..=MAX_TTL, "[ -~]{0,60}")
            .prop_map(|(t, s)| Rr::new(t, &RData::TXT(TXT::new(vec![s]))).expect("TXT")),
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
