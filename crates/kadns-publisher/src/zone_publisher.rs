//! Incremental publishing of one zone: sign and put only what changed or is
//! due, and replace removed names with tombstones.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::rr::Name;
use kadns_dht::Handle;
use kadns_record::{OwnerName, Rr, SignedBundle, ZoneId};
use sha2::{Digest as _, Sha256};

use crate::config::Config;
use crate::plan::{Plan, next_due, plan, records_digest};
use crate::publish::{DEFAULT_PUBLISH_CONCURRENCY, NamePublished, publish};
use crate::published::{Digest, NameEntry, PublishLock, PublishedState};
use crate::signer::SignError;
use crate::signer::Signer;
use crate::state::StateError;
use crate::warning::ZoneWarning;
use crate::zonefile::ParsedZone;
use crate::zonefile::ZoneError;
use kadns_record::EncodeError;

/// Publishes one zone incrementally, keeping what it published in a
/// [`PublishedState`] beside the key.
///
/// Each [`round`](Self::round) compares the last zone file read with that
/// state: new and changed names are signed and put, removed names get a
/// tombstone (a signed empty bundle with a higher sequence), unchanged names
/// only when their refresh is due, and tombstones until the removed name's
/// last bundle has expired. Every bundle of a round carries the same fresh
/// sequence number from the zone's [`ZoneState`](crate::ZoneState): one
/// durable write per round, strictly higher than anything the zone published
/// before. A name's state is updated only once at least one node stored its
/// bundle, and the state file is written after the puts: a crash between the
/// two re-publishes those names next time, never skips them.
///
/// A publisher holds an exclusive lock on the zone's state for its life.
///
/// ```no_run
/// # async fn demo(dht: kadns_dht::Handle) -> Result<(), Box<dyn std::error::Error>> {
/// use kadns_publisher::{Config, ZonePublisher};
///
/// let mut publisher = ZonePublisher::open("example.key", "example.zone", None, &Config::default())?;
/// let report = publisher.round(&dht, false, |_| {}).await?;
/// println!("{report}");
/// // Edit one name of the zone file; the next round puts that name only.
/// publisher.check_zone_file()?;
/// let report = publisher.round(&dht, false, |_| {}).await?;
/// assert_eq!(report.names.len(), 1);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct ZonePublisher {
    signer: Signer,
    zone_path: PathBuf,
    origin: Option<Name>,
    /// The last zone read that parsed and passed every check.
    zone: BTreeMap<OwnerName, ZoneName>,
    /// Each name's digest (of `zone`), the input of every plan.
    digests: BTreeMap<OwnerName, Digest>,
    /// What the zone file looked like when last read.
    seen: Option<FileSeen>,
    /// What the parser changed or dropped in `zone` (clamped TTLs, duplicates).
    warnings: Vec<ZoneWarning>,
    state: PublishedState,
    /// Names whose last put reached nobody, with when to try again.
    held: BTreeMap<OwnerName, u64>,
    /// `next_due` of `state` and `held`, kept current by every round (the
    /// only code that changes them), so that polling it costs nothing.
    due: Option<u64>,
    concurrency: usize,
    _lock: PublishLock,
}

#[derive(Debug, Clone)]
struct ZoneName {
    digest: Digest,
    records: Vec<Rr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FileSeen {
    modified: Option<SystemTime>,
    len: u64,
    hash: [u8; 32],
}

/// What [`ZonePublisher::check_zone_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZoneCheck {
    /// The file is as last read.
    Unchanged,
    /// The file changed and its new content is valid; the next round
    /// publishes the difference.
    Changed {
        /// Names in the new zone.
        names: usize,
    },
}

/// What one [`ZonePublisher::round`] did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RoundReport {
    /// The sequence number of every bundle put, `None` if nothing was put.
    pub sequence: Option<u64>,
    /// Unchanged names re-signed because their refresh was due, and
    /// tombstones refreshed.
    pub refreshed: usize,
    /// New and changed names.
    pub changed: usize,
    /// Names replaced by a tombstone this round.
    pub removed: usize,
    /// Tombstones forgotten: the removed name's last bundle has expired.
    pub dropped: usize,
    /// Names of the zone not put this round.
    pub unchanged: usize,
    /// Every put, in name order within each kind (changed, refreshed,
    /// removed, tombstones refreshed).
    pub names: Vec<NamePublished>,
    /// Whether the round stopped after its first put because no node
    /// answered it; nothing else was put.
    pub unreachable: bool,
}

impl RoundReport {
    /// The smallest replica count of any put, `None` if nothing was put.
    pub fn fewest_replicas(&self) -> Option<usize> {
        self.names.iter().map(NamePublished::replicas).min()
    }

    /// Whether the round put nothing and dropped nothing.
    pub fn is_idle(&self) -> bool {
        self.names.is_empty() && self.dropped == 0 && !self.unreachable
    }
}

impl fmt::Display for RoundReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} refreshed, {} changed, {} removed, {} unchanged; fewest replicas ",
            self.refreshed, self.changed, self.removed, self.unchanged
        )?;
        match self.fewest_replicas() {
            Some(n) => write!(f, "{n}")?,
            None => write!(f, "-")?,
        }
        if let Some(sequence) = self.sequence {
            write!(f, "; sequence {sequence}")?;
        }
        if self.dropped > 0 {
            write!(f, "; {} tombstones dropped", self.dropped)?;
        }
        if self.unreachable {
            write!(f, "; no DHT node answered, will retry")?;
        }
        Ok(())
    }
}

impl ZonePublisher {
    /// Opens the publisher of the zone in `zone_path`, signed with the key at
    /// `key_path`, its state in `<key_path>.published` and its sequence
    /// numbers in `<key_path>.state`. Reads and checks the zone file: a
    /// zone with problems is an error here, with every problem's line.
    pub fn open(
        key_path: impl AsRef<Path>,
        zone_path: impl Into<PathBuf>,
        origin: Option<&Name>,
        config: &Config,
    ) -> Result<Self, ZonePublishError> {
        let key_path = key_path.as_ref();
        let signer = Signer::from_key_file(key_path, config)?;
        let state_path = PublishedState::path_beside_key(key_path);
        let lock = PublishLock::take(&state_path)?;
        let state = PublishedState::load(state_path, signer.zone_id())?;
        let mut publisher = Self {
            signer,
            zone_path: zone_path.into(),
            origin: origin.cloned(),
            zone: BTreeMap::new(),
            digests: BTreeMap::new(),
            seen: None,
            warnings: Vec::new(),
            state,
            held: BTreeMap::new(),
            due: None,
            concurrency: DEFAULT_PUBLISH_CONCURRENCY,
            _lock: lock,
        };
        publisher.due = next_due(publisher.state.names(), &publisher.held);
        publisher.check_zone_file()?;
        Ok(publisher)
    }

    /// Puts at most `concurrency` names at once (default
    /// [`DEFAULT_PUBLISH_CONCURRENCY`]).
    pub fn set_concurrency(&mut self, concurrency: usize) {
        self.concurrency = concurrency;
    }

    /// The zone.
    pub fn zone_id(&self) -> ZoneId {
        self.signer.zone_id()
    }

    /// The zone file.
    pub fn zone_path(&self) -> &Path {
        &self.zone_path
    }

    /// How long each signature is valid, in seconds.
    pub fn validity_secs(&self) -> u64 {
        self.signer.validity_secs()
    }

    /// Names in the zone as last read.
    pub fn names(&self) -> usize {
        self.zone.len()
    }

    /// What has been published.
    pub fn state(&self) -> &PublishedState {
        &self.state
    }

    /// Reads the zone file again if it changed (modification time, size,
    /// then a hash of its content). A new content that does not parse or
    /// does not pass the signing checks is an error listing every problem
    /// with its line, and changes nothing: the last good zone stays the one
    /// published and refreshed.
    pub fn check_zone_file(&mut self) -> Result<ZoneCheck, ZonePublishError> {
        let read_error = |source: std::io::Error| ZoneError::Read {
            path: self.zone_path.clone(),
            source: source.into(),
        };
        let meta = std::fs::metadata(&self.zone_path).map_err(read_error)?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        if let Some(seen) = &self.seen
            && seen.modified == modified
            && seen.len == len
            && modified.is_some()
        {
            return Ok(ZoneCheck::Unchanged);
        }
        let bytes = std::fs::read(&self.zone_path).map_err(read_error)?;
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        let seen = FileSeen {
            modified,
            len,
            hash,
        };
        if self.seen.as_ref().is_some_and(|s| s.hash == hash) {
            self.seen = Some(seen);
            return Ok(ZoneCheck::Unchanged);
        }
        // Whatever the outcome, this content has been looked at: a bad edit
        // is reported once, not every second.
        self.seen = Some(seen);
        let parsed = match std::str::from_utf8(&bytes) {
            Ok(text) => ParsedZone::from_text(text, &self.zone_path, self.origin.as_ref())?,
            // from_file reports the line of the first bad byte.
            Err(_) => ParsedZone::from_file(&self.zone_path, self.origin.as_ref())?,
        };
        let prepared = self.signer.prepare_zone(&parsed)?;
        self.warnings = parsed.warnings().to_vec();
        self.zone = prepared
            .into_iter()
            .map(|p| {
                let digest = records_digest(&p.owner, &p.records);
                (
                    p.owner,
                    ZoneName {
                        digest,
                        records: p.records,
                    },
                )
            })
            .collect();
        self.digests = self
            .zone
            .iter()
            .map(|(owner, name)| (owner.clone(), name.digest))
            .collect();
        tracing::info!(
            zone = %self.zone_id(),
            path = %self.zone_path.display(),
            names = self.zone.len(),
            "zone file read"
        );
        Ok(ZoneCheck::Changed {
            names: self.zone.len(),
        })
    }

    /// The warnings of the zone file last read and accepted: what the parser
    /// changed (TTLs clamped) or dropped (duplicates), each with its line.
    pub fn warnings(&self) -> &[ZoneWarning] {
        &self.warnings
    }

    /// When, in unix seconds, a round next has work without the zone file
    /// changing: the earliest refresh due, tombstone to drop, or retry.
    pub fn next_due(&self) -> Option<u64> {
        self.due
    }

    /// Whether a round at `now` would put or drop anything.
    pub fn has_work(&self, now: u64) -> bool {
        !self.plan(now, false).is_empty()
    }

    fn plan(&self, now: u64, all: bool) -> Plan {
        plan(&self.digests, self.state.names(), &self.held, now, all)
    }

    /// One round at the current time: see [`round_at`](Self::round_at).
    pub async fn round(
        &mut self,
        dht: &Handle,
        all: bool,
        on_done: impl FnMut(&NamePublished),
    ) -> Result<RoundReport, ZonePublishError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| SignError::ClockBeforeEpoch)?
            .as_secs();
        self.round_at(dht, now, all, on_done).await
    }

    /// Signs and puts what changed or is due at `now` (unix seconds; the
    /// DHT checks expiry against its own clock). With `all`, every name of
    /// the zone and every tombstone still needed is re-signed and put.
    ///
    /// The first bundle goes alone: if no node answers it, the round stops
    /// there ([`RoundReport::unreachable`]) and the names are retried after
    /// a short wait. `on_done` is called as each put finishes.
    pub async fn round_at(
        &mut self,
        dht: &Handle,
        now: u64,
        all: bool,
        on_done: impl FnMut(&NamePublished),
    ) -> Result<RoundReport, ZonePublishError> {
        let result = self.run_round(dht, now, all, on_done).await;
        self.due = next_due(self.state.names(), &self.held);
        result
    }

    async fn run_round(
        &mut self,
        dht: &Handle,
        now: u64,
        all: bool,
        mut on_done: impl FnMut(&NamePublished),
    ) -> Result<RoundReport, ZonePublishError> {
        let plan = self.plan(now, all);
        let mut report = RoundReport {
            unchanged: self
                .zone
                .len()
                .saturating_sub(plan.changed.len() + plan.refresh.len()),
            ..RoundReport::default()
        };
        for owner in &plan.drop {
            self.state.remove(owner);
            tracing::debug!(zone = %self.zone_id(), %owner, "tombstone no longer needed");
        }
        report.dropped = plan.drop.len();
        if plan.puts() == 0 {
            if report.dropped > 0 {
                self.state.save()?;
            }
            return Ok(report);
        }

        let sequence = self.signer.state().next_sequence(now)?;
        let expires = now.saturating_add(self.signer.validity_secs());
        report.sequence = Some(sequence);
        let mut bundles: Vec<(SignedBundle, Option<Digest>)> = Vec::with_capacity(plan.puts());
        for owner in plan.changed.iter().chain(&plan.refresh) {
            let name = &self.zone[owner];
            let bundle = self.sign(owner, name.records.clone(), sequence, expires)?;
            bundles.push((bundle, Some(name.digest)));
        }
        for owner in plan.remove.iter().chain(&plan.tombstone_refresh) {
            let bundle = self.sign(owner, Vec::new(), sequence, expires)?;
            bundles.push((bundle, None));
        }
        report.changed = plan.changed.len();
        report.refreshed = plan.refresh.len() + plan.tombstone_refresh.len();
        report.removed = plan.remove.len();

        let digests: Vec<Option<Digest>> = bundles.iter().map(|(_, d)| *d).collect();
        let mut bundles: Vec<SignedBundle> = bundles.into_iter().map(|(b, _)| b).collect();
        let rest = bundles.split_off(1);
        let first = publish(dht, bundles, 1, &mut on_done).await.names;
        let mut names = first;
        if names.iter().any(NamePublished::answered) {
            let more = publish(dht, rest, self.concurrency, &mut on_done).await;
            names.extend(more.names.into_iter().map(|mut n| {
                n.index += 1;
                n
            }));
        } else {
            report.unreachable = true;
            let retry = now + self.retry_after();
            for bundle in rest {
                self.held.insert(bundle.content().owner().clone(), retry);
            }
        }

        let retry = now + self.retry_after();
        for name in &names {
            if name.replicas() == 0 {
                self.held.insert(name.owner.clone(), retry);
                continue;
            }
            self.held.remove(&name.owner);
            let entry = match digests[name.index] {
                Some(digest) => NameEntry::live(digest, sequence, now, expires),
                None => {
                    let live_until = self
                        .state
                        .get(&name.owner)
                        .map_or(0, |e| e.live_until)
                        .max(now);
                    NameEntry::tombstone(sequence, now, expires, live_until)
                }
            };
            self.state.set(name.owner.clone(), entry);
        }
        self.state.save()?;
        report.names = names;
        tracing::info!(
            zone = %self.zone_id(),
            sequence,
            changed = report.changed,
            refreshed = report.refreshed,
            removed = report.removed,
            fewest_replicas = report.fewest_replicas(),
            "publishing round"
        );
        Ok(report)
    }

    /// How long a name whose put reached nobody waits before it is tried
    /// again: a tenth of the validity, between 1 s and 60 s.
    fn retry_after(&self) -> u64 {
        (self.signer.validity_secs() / 10).clamp(1, 60)
    }

    fn sign(
        &self,
        owner: &OwnerName,
        records: Vec<Rr>,
        sequence: u64,
        expires: u64,
    ) -> Result<SignedBundle, ZonePublishError> {
        self.signer
            .sign_name(owner.clone(), records, sequence, expires)
            .map_err(|source| ZonePublishError::Encode {
                owner: owner.clone(),
                source,
            })
    }
}

/// Why a [`ZonePublisher`](crate::ZonePublisher) could not open or finish a
/// round. A name whose put failed is not an error: it is reported in the
/// round's [`NamePublished`](crate::NamePublished) and retried.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ZonePublishError {
    /// The zone file could not be read or has problems (each with its line).
    #[error(transparent)]
    Zone(#[from] ZoneError),
    /// The key, the validity or a name of the zone is refused.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// The zone state or the published state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// One name could not be signed (cannot happen for a zone that passed
    /// the checks; kept so that nothing can panic).
    #[error("{owner}: cannot sign: {source}")]
    Encode {
        /// The name.
        owner: OwnerName,
        /// What kadns-record refused.
        #[source]
        source: EncodeError,
    },
}
