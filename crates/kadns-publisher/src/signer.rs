//! Signing a parsed zone: one signed bundle per owner name.
//!
//! Owner names become relative to the zone's apex, and every in-zone name
//! inside RDATA is moved from the file's origin onto the zone-id apex
//! (`<zone-id>.`) with [`kadns_record::rebase_rdata`], so the signed content
//! does not depend on the name the zone file used. Every record is encoded and
//! checked by `kadns_record` ([`Rr::new`], [`Bundle::new`]); this module adds
//! only the file, line and name to what it refuses.
//!
//! A signing uses one sequence number for the whole zone, taken from the
//! zone's [`ZoneState`] only once every name has passed every check, and one
//! expiry, `now + validity`.

use std::time::{SystemTime, UNIX_EPOCH};

use kadns_record::{
    Bundle, EncodeError, MAX_BUNDLE_LEN, MAX_VALIDITY, OwnerName, Rr, SignedBundle, ZoneId, ZoneKey,
};

use crate::config::{Config, MIN_VALIDITY_SECS};
use crate::error::{ProblemKind, SignError, ZoneProblem};
use crate::keystore::load_key;
use crate::state::ZoneState;
use crate::zonefile::ParsedZone;

/// Signs zones with one zone key, taking sequence numbers from its state.
///
/// ```
/// use kadns_publisher::{Config, ParsedZone, Signer, generate_key};
/// use kadns_record::validate;
///
/// let dir = tempfile::tempdir()?;
/// let key_path = dir.path().join("example.key");
/// generate_key(&key_path)?;
/// let signer = Signer::from_key_file(&key_path, &Config::default())?;
///
/// let zone = ParsedZone::from_text(
///     "$ORIGIN example.org.\n$TTL 300\n@ A 192.0.2.1\nwww CNAME @\n",
///     "example.zone",
///     None,
/// )?;
/// let now = 1_800_000_000;
/// let signed = signer.sign_at(&zone, now)?;
/// assert_eq!(signed.summary().names, 2);
/// assert_eq!(signed.summary().sequence, now);
/// for bundle in signed.bundles() {
///     validate(&bundle.dht_key(), bundle.as_bytes(), now)?;
/// }
/// // The next signing gets a higher sequence, even at the same time.
/// assert_eq!(signer.sign_at(&zone, now)?.summary().sequence, now + 1);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Signer {
    key: ZoneKey,
    state: ZoneState,
    validity: u64,
}

impl Signer {
    /// A signer for `key`, taking sequence numbers from `state`. Fails if the
    /// configured validity is 0 or above [`MAX_VALIDITY`].
    pub fn new(key: ZoneKey, state: ZoneState, config: &Config) -> Result<Self, SignError> {
        let validity = config.validity_secs;
        if !(MIN_VALIDITY_SECS..=MAX_VALIDITY).contains(&validity) {
            return Err(SignError::BadValidity {
                validity,
                min: MIN_VALIDITY_SECS,
                max: MAX_VALIDITY,
            });
        }
        Ok(Self {
            key,
            state,
            validity,
        })
    }

    /// A signer for the key in the file at `key_path`, with its state beside
    /// it ([`ZoneState::beside_key`]).
    pub fn from_key_file(
        key_path: impl AsRef<std::path::Path>,
        config: &Config,
    ) -> Result<Self, SignError> {
        let key_path = key_path.as_ref();
        let key = load_key(key_path)?;
        Self::new(key, ZoneState::beside_key(key_path), config)
    }

    /// The zone this signer signs for.
    pub fn zone_id(&self) -> ZoneId {
        self.key.zone_id()
    }

    /// The sequence-number state it uses.
    pub fn state(&self) -> &ZoneState {
        &self.state
    }

    /// How long the bundles it signs stay valid, in seconds.
    pub fn validity_secs(&self) -> u64 {
        self.validity
    }

    /// Checks every name of `zone` and readies its records for signing, or
    /// reports every problem at once; takes no sequence number. What
    /// [`sign_at`](Self::sign_at) does first, for callers that sign names one
    /// by one ([`ZonePublisher`](crate::ZonePublisher)).
    pub(crate) fn prepare_zone(&self, zone: &ParsedZone) -> Result<Vec<Prepared>, SignError> {
        prepare(zone, &self.key.zone_id())
    }

    /// Signs one name's records (already checked by
    /// [`prepare_zone`](Self::prepare_zone)), or a tombstone if `records` is
    /// empty, with the given sequence and expiry.
    pub(crate) fn sign_name(
        &self,
        owner: OwnerName,
        records: Vec<Rr>,
        sequence: u64,
        expires: u64,
    ) -> Result<SignedBundle, EncodeError> {
        Bundle::new(owner, sequence, expires, records)
            .map_err(EncodeError::from)
            .and_then(|bundle| bundle.sign(&self.key))
    }

    /// Signs `zone` at the current system time.
    pub fn sign(&self, zone: &ParsedZone) -> Result<SignedZone, SignError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError::ClockBeforeEpoch)?
            .as_secs();
        self.sign_at(zone, now)
    }

    /// Signs `zone` as at `now` (unix seconds): every name is checked first and
    /// every problem reported together; only then is a sequence number taken
    /// (and persisted) and the bundles signed.
    pub fn sign_at(&self, zone: &ParsedZone, now: u64) -> Result<SignedZone, SignError> {
        let prepared = prepare(zone, &self.key.zone_id())?;
        let sequence = self.state.next_sequence(now)?;
        let expires = now.saturating_add(self.validity);

        let mut problems = Vec::new();
        let mut bundles = Vec::with_capacity(prepared.len());
        for name in prepared {
            match self.sign_name(name.owner, name.records, sequence, expires) {
                Ok(bundle) => bundles.push(bundle),
                // `prepare` has checked both already; kept so that nothing can panic.
                Err(e) => problems.push(encode_problem(zone, &name.name, name.line, e)),
            }
        }
        if !problems.is_empty() {
            return Err(SignError::Zone {
                path: zone.path().to_owned(),
                problems,
            });
        }
        let summary = Summary {
            names: bundles.len(),
            records: bundles.iter().map(|b| b.content().records().len()).sum(),
            bytes: bundles.iter().map(|b| b.as_bytes().len()).sum(),
            sequence,
            expires,
        };
        tracing::info!(
            zone = %self.key.zone_id(),
            path = %zone.path().display(),
            names = summary.names,
            records = summary.records,
            bytes = summary.bytes,
            sequence,
            expires,
            "signed zone"
        );
        Ok(SignedZone {
            zone: self.key.zone_id(),
            bundles,
            summary,
        })
    }
}

/// A signed zone: one bundle per owner name, in owner-name order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedZone {
    zone: ZoneId,
    bundles: Vec<SignedBundle>,
    summary: Summary,
}

impl SignedZone {
    /// The zone that signed it.
    pub fn zone_id(&self) -> ZoneId {
        self.zone
    }

    /// The signed bundles.
    pub fn bundles(&self) -> &[SignedBundle] {
        &self.bundles
    }

    /// The signed bundles, by value.
    pub fn into_bundles(self) -> Vec<SignedBundle> {
        self.bundles
    }

    /// What was signed.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// What a signing produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Owner names, one bundle each.
    pub names: usize,
    /// Resource records, over all bundles (exact duplicates counted once).
    pub records: usize,
    /// Encoded size of all bundles, in bytes.
    pub bytes: usize,
    /// The sequence number of every bundle.
    pub sequence: u64,
    /// The expiry of every bundle, unix seconds.
    pub expires: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} names, {} records, {} bytes, sequence {}, expires at {} (unix time)",
            self.names, self.records, self.bytes, self.sequence, self.expires
        )
    }
}

/// One name's records, checked and ready to sign.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) owner: OwnerName,
    /// The name as the file wrote it, for messages.
    pub(crate) name: String,
    /// The line of its first record.
    pub(crate) line: usize,
    /// In canonical order, without duplicates (as [`Bundle::new`] keeps them).
    pub(crate) records: Vec<Rr>,
}

/// Rebases and encodes every record and checks every name's bundle, collecting
/// every problem.
fn prepare(zone: &ParsedZone, zone_id: &ZoneId) -> Result<Vec<Prepared>, SignError> {
    let apex = zone_id.apex();
    let origin = zone.origin();
    let mut problems = Vec::new();
    let mut prepared = Vec::with_capacity(zone.names().len());
    for (owner, records) in zone.names() {
        let Some(first) = records.first() else {
            continue;
        };
        let name = first.name().to_ascii();
        let line = first.line();
        let problem = |line, kind| ZoneProblem {
            path: zone.path().to_owned(),
            line,
            kind,
        };
        let mut rrs = Vec::with_capacity(records.len());
        for record in records {
            let rr = kadns_record::rebase_rdata(record.rdata().clone(), origin, &apex)
                .map_err(|source| ProblemKind::Rebase {
                    name: name.clone(),
                    source,
                })
                .and_then(|rdata| {
                    Rr::new(record.ttl(), &rdata).map_err(|source| ProblemKind::Record {
                        name: name.clone(),
                        source,
                    })
                });
            match rr {
                Ok(rr) => rrs.push(rr),
                Err(kind) => problems.push(problem(record.line(), kind)),
            }
        }
        if rrs.len() != records.len() {
            continue;
        }
        // Sequence and expiry do not change the size: check with placeholders.
        match Bundle::new(owner.clone(), 0, 0, rrs) {
            Ok(bundle) if bundle.encoded_len() > MAX_BUNDLE_LEN => problems.push(problem(
                line,
                ProblemKind::BundleTooLarge {
                    name,
                    len: bundle.encoded_len(),
                    max: MAX_BUNDLE_LEN,
                },
            )),
            Ok(bundle) => prepared.push(Prepared {
                owner: owner.clone(),
                name,
                line,
                records: bundle.records().to_vec(),
            }),
            Err(source) => problems.push(problem(line, ProblemKind::Record { name, source })),
        }
    }
    // Empty non-terminals and wildcard parents: `structure.rs`.
    problems.extend(crate::structure::add_meta_records(&mut prepared, zone));
    if problems.is_empty() {
        Ok(prepared)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(SignError::Zone {
            path: zone.path().to_owned(),
            problems,
        })
    }
}

fn encode_problem(zone: &ParsedZone, name: &str, line: usize, error: EncodeError) -> ZoneProblem {
    let kind = match error {
        EncodeError::TooLarge { len, max } => ProblemKind::BundleTooLarge {
            name: name.to_owned(),
            len,
            max,
        },
        other => ProblemKind::Encode {
            name: name.to_owned(),
            source: other,
        },
    };
    ZoneProblem {
        path: zone.path().to_owned(),
        line,
        kind,
    }
}

#[cfg(test)]
mod tests {
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
                let rdata =
                    kadns_record::rebase_rdata(rr.rdata().unwrap(), &apex, &origin).unwrap();
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
        let err =
            Signer::from_key_file(dir.path().join("none.key"), &Config::default()).unwrap_err();
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
}
