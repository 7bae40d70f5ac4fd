//! Checks the test vectors in `docs/record-format.md` byte for byte.

use std::str::FromStr;

use kadns_record::hickory_proto::rr::{RData, RecordType};
use kadns_record::{
    Bundle, DhtKey, OwnerName, Rr, SIGNATURE_TAG, ValidateError, VerifyError, ZoneId, ZoneKey,
    validate,
};

const SPEC: &str = include_str!("../../../../docs/record-format.md");

#[derive(Default)]
struct Vector {
    seed: String,
    zone_id: String,
    owner: String,
    sequence: u64,
    expires: u64,
    records: Vec<String>,
    dht_key: String,
    body: String,
    signature: String,
}

fn vectors() -> Vec<Vector> {
    let mut out = Vec::new();
    let mut current: Option<Vector> = None;
    for line in SPEC.lines() {
        if line == "```text" {
            current = Some(Vector::default());
            continue;
        }
        if line == "```" {
            if let Some(v) = current.take().filter(|v| !v.seed.is_empty()) {
                out.push(v);
            }
            continue;
        }
        let Some(v) = current.as_mut() else { continue };
        let Some((field, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim().to_string();
        match field {
            "seed" => v.seed = value,
            "zone-id" => v.zone_id = value,
            "owner" => v.owner = value,
            "sequence" => v.sequence = value.parse().expect("sequence"),
            "expires" => v.expires = value.parse().expect("expires"),
            "record" => v.records.push(value),
            "dht-key" => v.dht_key = value,
            "body" => v.body.push_str(&value),
            "signature" => v.signature = value,
            _ => {}
        }
    }
    out
}

fn record(text: &str) -> Rr {
    let mut parts = text.splitn(3, ' ');
    let ttl: u32 = parts.next().and_then(|t| t.parse().ok()).expect("ttl");
    let ty = parts.next().expect("type");
    let data = parts.next().expect("rdata");
    if let Some(hex) = data.strip_prefix("hex:") {
        let code: u16 = ty.trim_start_matches("TYPE").parse().expect("type number");
        Rr::from_parts(RecordType::from(code), ttl, hex::decode(hex).expect("hex")).expect("record")
    } else {
        let ty = RecordType::from_str(ty).expect("type");
        Rr::new(ttl, &RData::try_from_str(ty, data).expect("rdata")).expect("record")
    }
}

#[test]
fn spec_vectors_match_byte_for_byte() {
    let vectors = vectors();
    assert!(
        vectors.len() >= 6,
        "the spec must carry at least six vectors"
    );
    for v in vectors {
        let seed: [u8; 32] = hex::decode(&v.seed)
            .expect("hex")
            .try_into()
            .expect("32 bytes");
        let key = ZoneKey::from_seed(seed);
        assert_eq!(key.zone_id().to_string(), v.zone_id);
        assert_eq!(
            ZoneId::from_str(&v.zone_id).expect("zone id"),
            key.zone_id()
        );

        let owner = if v.owner == "@" {
            OwnerName::apex()
        } else {
            OwnerName::from_labels(v.owner.split('.').map(str::as_bytes)).expect("owner")
        };
        let records = v.records.iter().map(|r| record(r)).collect();
        let signed = Bundle::new(owner.clone(), v.sequence, v.expires, records)
            .expect("content")
            .sign(&key)
            .expect("sign");
        let bytes = signed.as_bytes();
        let (body, signature) = bytes.split_at(bytes.len() - 64);
        assert_eq!(hex::encode(body), v.body, "body of {}", v.owner);
        assert_eq!(
            hex::encode(signature),
            v.signature,
            "signature of {}",
            v.owner
        );
        assert_eq!(signed.dht_key().to_string(), v.dht_key);
        assert_eq!(
            DhtKey::derive(&key.zone_id(), &owner).to_string(),
            v.dht_key
        );

        // The signature is over the tag and the body, independently of this crate's signer.
        let verifying =
            ed25519_dalek::VerifyingKey::from_bytes(key.zone_id().as_bytes()).expect("key");
        let signature = ed25519_dalek::Signature::from_slice(signature).expect("64 bytes");
        verifying
            .verify_strict(&[SIGNATURE_TAG, body].concat(), &signature)
            .expect("signature over tag || body");

        let dht_key = signed.dht_key();
        let verified = validate(&dht_key, bytes, v.expires - 1).expect("valid");
        // The meta vector states an empty non-terminal with a wildcard child.
        if v.records.iter().any(|r| r.contains("TYPE65533")) {
            let meta = verified.meta().expect("a well-formed meta record");
            assert!(meta.empty_non_terminal() && meta.wildcard_child());
            assert!(verified.is_empty_non_terminal());
            assert_eq!(verified.answer_records().count(), 0);
        }
        assert_eq!(
            validate(&dht_key, bytes, v.expires),
            Err(ValidateError::Verify(VerifyError::Expired {
                expires: v.expires,
                now: v.expires
            }))
        );
    }
}
