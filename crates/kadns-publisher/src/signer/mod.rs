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
use crate::keystore::KeyError;
use crate::keystore::load_key;
use crate::state::StateError;
use crate::state::ZoneState;
use crate::zonefile::ParsedZone;
use crate::zonefile::Problems;
use crate::zonefile::{ProblemKind, ZoneProblem};
use std::path::PathBuf;

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

/// Why a zone could not be signed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignError {
    /// The configured validity is below [`MIN_VALIDITY_SECS`](crate::MIN_VALIDITY_SECS)
    /// or above [`MAX_VALIDITY`](kadns_record::MAX_VALIDITY).
    #[error(
        "signature validity of {validity} s is not allowed: it must be between {min} and {max} s"
    )]
    BadValidity {
        /// The configured validity, seconds.
        validity: u64,
        /// The lower limit, seconds.
        min: u64,
        /// The limit, seconds.
        max: u64,
    },
    /// The system clock reads before 1970.
    #[error("the system clock is before the unix epoch")]
    ClockBeforeEpoch,
    /// The key could not be loaded.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The next sequence number could not be taken.
    #[error(transparent)]
    State(#[from] StateError),
    /// Some names cannot be signed: all of them are listed.
    #[error("{}: cannot sign: {}", path.display(), Problems(problems))]
    Zone {
        /// The zone file.
        path: PathBuf,
        /// Every problem found, in name order.
        problems: Vec<ZoneProblem>,
    },
}

#[cfg(test)]
mod tests;
