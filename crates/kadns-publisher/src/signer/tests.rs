use std::collections::BTreeSet;

use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::txt::Parser;
use kadns_record::{MAX_TTL, validate};

use super::*;
use crate::config::DEFAULT_VALIDITY_SECS;

const NOW: u64 = 1_800_000_000;

/// Every listed type, mixed-case names, relative and absolute names,
/// comments, a multi-line record and per-record TTLs.
const ZONE: &str = r#"$ORIGIN Example.ORG.
$TTL 3600
@       IN SOA  ns1 HostMaster (
            2024010101 ; serial
            7200 3600 1209600 300 )
    IN NS   ns1
    IN NS   ns2.example.net.
    IN MX   10 Mail
    IN CAA  0 issue "letsencrypt.org"
    IN HTTPS 1 . alpn=h2,h3
ns1     IN A    192.0.2.53
WWW     IN A    192.0.2.1
    IN A    192.0.2.2
    IN AAAA 2001:db8::1
    600 IN TXT "v=spf1 -all" "second string"
mail    IN A    192.0.2.25
alias   IN CNAME www
ext     IN CNAME target.example.net.
_sip._tcp IN SRV 10 60 5060 sip
svc     IN SVCB 1 www.example.org. alpn="h2" port=8443
1.2     IN PTR  www.example.org.
"#;

/// An RFC 3597 record hickory cannot parse: checked apart.
const GENERIC: &str = "blob 120 IN TYPE65534 \\# 4 0a000001\n";

fn signer(dir: &tempfile::TempDir) -> Signer {
    let state = ZoneState::beside_key(dir.path().join("zone.key"));
    Signer::new(ZoneKey::from_seed([21; 32]), state, &Config::default()).unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// (lower-case owner, type, TTL, canonical RDATA bytes): equal records have
/// equal keys, whatever the case of their names.
type Key = (String, RecordType, u32, Vec<u8>);

fn key(owner: &Name, ttl: u32, rdata: &RData) -> Key {
    let rr = Rr::new(ttl, rdata).unwrap();
    (
        owner.to_lowercase().to_ascii(),
        rr.record_type(),
        ttl,
        rr.rdata_bytes().to_vec(),
    )
}

#[test]
fn round_trip_equals_hickorys_parse() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(&dir);
    let text = format!("{ZONE}{GENERIC}");
    let zone = ParsedZone::from_text(&text, "example.zone", None).unwrap();
    let signed = signer.sign_at(&zone, NOW).unwrap();
    let apex = signer.zone_id().apex();
    let origin = name("example.org.");

    // Decode and verify every bundle, and move its names back to the origin.
    let mut ours = BTreeSet::new();
    for bundle in signed.bundles() {
        let verified = validate(&bundle.dht_key(), bundle.as_bytes(), NOW).unwrap();
        assert_eq!(verified.sequence(), NOW);
        assert_eq!(verified.expires(), NOW + DEFAULT_VALIDITY_SECS);
        let owner = verified.owner().under(&origin).unwrap();
        // Meta records state the structure (empty non-terminals): not zone data.
        for rr in verified.answer_records() {
            let rdata = kadns_record::rebase_rdata(rr.rdata().unwrap(), &apex, &origin).unwrap();
            assert!(ours.insert(key(&owner, rr.ttl(), &rdata)));
        }
    }

    let (_, sets) = Parser::new(ZONE, None, Some(origin.clone()))
        .parse()
        .unwrap();
    let mut theirs: BTreeSet<Key> = sets
        .values()
        .flat_map(|set| set.records_without_rrsigs())
        .map(|r| key(&r.name, r.ttl, &r.data))
        .collect();
    theirs.insert((
        "blob.example.org.".into(),
        RecordType::Unknown(65534),
        120,
        vec![10, 0, 0, 1],
    ));
    assert_eq!(ours, theirs);
    // Plus two empty non-terminals (`2` above `1.2`, `_tcp` above
    // `_sip._tcp`), one meta record each.
    assert_eq!(signed.summary().records, 18 + 2);
    assert_eq!(signed.summary().names, 10 + 2);
}

#[test]
fn names_in_rdata_move_to_the_zone_id_apex() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(&dir);
    let zone = ParsedZone::from_text(ZONE, "example.zone", None).unwrap();
    let signed = signer.sign_at(&zone, NOW).unwrap();
    let apex = signer.zone_id().apex();
    let target = |label: &str| {
        let owner = OwnerName::from_labels([label.as_bytes()]).unwrap();
        let bundle = signed
            .bundles()
            .iter()
            .find(|b| b.content().owner() == &owner)
            .unwrap();
        bundle.content().records()[0].rdata().unwrap()
    };
    assert_eq!(
        target("alias"),
        RData::CNAME(CNAME(name("www").append_domain(&apex).unwrap()))
    );
    assert_eq!(
        target("ext"),
        RData::CNAME(CNAME(name("target.example.net.")))
    );
    // Owners are relative: the apex is `@`.
    assert!(
        signed
            .bundles()
            .iter()
            .any(|b| b.content().owner().is_apex())
    );
}

#[test]
fn one_sequence_per_signing_from_the_state_and_the_configured_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        validity_secs: 3_600,
    };
    let state = ZoneState::at(dir.path().join("s"));
    let signer = Signer::new(ZoneKey::from_seed([1; 32]), state.clone(), &config).unwrap();
    let zone = ParsedZone::from_text(ZONE, "example.zone", None).unwrap();
    let first = signer.sign_at(&zone, NOW).unwrap();
    assert!(
        first
            .bundles()
            .iter()
            .all(|b| b.content().encoded_len() == b.as_bytes().len())
    );
    let seqs: BTreeSet<u64> = first
        .bundles()
        .iter()
        .map(|b| {
            validate(&b.dht_key(), b.as_bytes(), NOW)
                .unwrap()
                .sequence()
        })
        .collect();
    assert_eq!(seqs, BTreeSet::from([NOW]));
    assert_eq!(first.summary().expires, NOW + 3_600);
    assert_eq!(
        first.summary().bytes,
        first
            .bundles()
            .iter()
            .map(|b| b.as_bytes().len())
            .sum::<usize>()
    );
    // The clock steps back: the next signing still gets a higher sequence.
    let second = signer.sign_at(&zone, NOW - 100).unwrap();
    assert_eq!(second.summary().sequence, NOW + 1);
    assert_eq!(state.last_sequence().unwrap(), Some(NOW + 1));
    assert!(
        second
            .summary()
            .to_string()
            .contains(&format!("sequence {}", NOW + 1))
    );
}

#[test]
fn validity_must_be_within_the_record_format_limit() {
    let key = || ZoneKey::from_seed([1; 32]);
    let state = ZoneState::at("/unused");
    for validity in [0, 1, MIN_VALIDITY_SECS - 1, MAX_VALIDITY + 1] {
        let config = Config {
            validity_secs: validity,
        };
        match Signer::new(key(), state.clone(), &config).unwrap_err() {
            SignError::BadValidity {
                validity: v,
                min,
                max,
            } => assert_eq!((v, min, max), (validity, MIN_VALIDITY_SECS, MAX_VALIDITY)),
            other => panic!("{other:?}"),
        }
    }
    for validity in [MIN_VALIDITY_SECS, 15, MAX_VALIDITY] {
        let config = Config {
            validity_secs: validity,
        };
        Signer::new(key(), state.clone(), &config).unwrap();
    }
    assert!(Config::default().validity_secs <= MAX_VALIDITY);
}

#[test]
fn every_problem_of_a_zone_is_reported_and_no_sequence_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(&dir);
    let chunk = "x".repeat(250);
    let txt = |n: usize| vec![format!("\"{chunk}\""); n].join(" ");
    // 4 labels of 50 under `o.`: fine in the file, too long under the 52-character zone id.
    let long_target = vec!["a".repeat(50); 4].join(".");
    let text = format!(
        "$ORIGIN o.\n$TTL 60\n\
         big TXT {}\n\
         ok A 192.0.2.1\n\
         huge TXT {}\n  TXT {}\n\
         far CNAME {long_target}\n",
        txt(16),
        txt(16),
        txt(4),
    );
    let zone = ParsedZone::from_text(&text, "big.zone", None).unwrap();
    let err = signer.sign_at(&zone, NOW).unwrap_err();
    let SignError::Zone { path, problems } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path.to_str(), Some("big.zone"));
    let got: Vec<(usize, &ProblemKind)> = problems.iter().map(|p| (p.line, &p.kind)).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    // One TXT record of 16 strings of 250 bytes: 16 * 251 + 8 bytes of record.
    let big_len = 1 + 32 + 8 + 8 + 1 + 5 + 2 + (8 + 16 * 251) + 64;
    assert_eq!(
        got[0],
        (
            3,
            &ProblemKind::BundleTooLarge {
                name: "big.o.".into(),
                len: big_len,
                max: MAX_BUNDLE_LEN
            }
        )
    );
    assert!(
        matches!(got[1], (5, ProblemKind::BundleTooLarge { name, len, .. }) if name == "huge.o." && *len > MAX_BUNDLE_LEN)
    );
    assert!(matches!(got[2], (7, ProblemKind::Rebase { name, .. }) if name == "far.o."));
    let message = err.to_string();
    assert!(message.contains(&format!("big.zone:3: the records of big.o. make a bundle of {big_len} bytes, above the limit of 4096")), "{message}");
    // Nothing was signed, so no sequence number was used.
    assert_eq!(signer.state().last_sequence().unwrap(), None);
}

#[test]
fn from_key_file_reports_key_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = Signer::from_key_file(dir.path().join("none.key"), &Config::default()).unwrap_err();
    assert!(
        matches!(err, SignError::Key(crate::KeyError::NotFound { .. })),
        "{err:?}"
    );
    let path = dir.path().join("zone.key");
    let key = crate::generate_key(&path).unwrap();
    let signer = Signer::from_key_file(&path, &Config::default()).unwrap();
    assert_eq!(signer.zone_id(), key.zone_id());
    assert_eq!(signer.state().path(), dir.path().join("zone.key.state"));
}

#[test]
fn a_bad_state_file_fails_the_signing() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(&dir);
    std::fs::write(signer.state().path(), "garbage").unwrap();
    let zone = ParsedZone::from_text(ZONE, "example.zone", None).unwrap();
    assert!(matches!(
        signer.sign_at(&zone, NOW),
        Err(SignError::State(_))
    ));
}

#[test]
fn ttl_limits_agree_with_kadns_record() {
    // The parser clamps to exactly what kadns-record accepts.
    let dir = tempfile::tempdir().unwrap();
    for ttl in [MAX_TTL, MAX_TTL + 1, u32::MAX / 2] {
        let text = format!("$ORIGIN o.\na {ttl} A 192.0.2.1\n");
        let zone = ParsedZone::from_text(&text, "t", None).unwrap();
        assert_eq!(zone.warnings().len(), usize::from(ttl > MAX_TTL));
        let signed = signer(&dir).sign_at(&zone, NOW).unwrap();
        let a = signed.bundles().iter().flat_map(|b| b.content().records());
        assert!(a.filter(|r| !r.is_meta()).all(|r| r.ttl() == MAX_TTL));
    }
}

#[test]
fn a_synthetic_zone_signs() {
    let dir = tempfile::tempdir().unwrap();
    let text = crate::testing::synthetic_zone("example.org.", 300);
    let zone = ParsedZone::from_text(&text, "synthetic.zone", None).unwrap();
    let signed = signer(&dir).sign_at(&zone, NOW).unwrap();
    assert_eq!(signed.summary().names, 301);
}
