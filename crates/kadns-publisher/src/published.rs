//! The published state: what the publisher last put into the DHT, per name.
//!
//! Incremental publishing rests on this file. For every owner name it keeps
//! the digest of the records last published (or that the name was replaced
//! by a tombstone), the bundle's sequence, when it was signed, when it
//! expires, and until when a replay of the name's last non-empty bundle
//! would still be valid (`live-until`, which bounds how long a tombstone is
//! kept).
//!
//! # File format
//!
//! Beside the key, in `<keyfile>.published`, one line per name:
//!
//! ```text
//! # kadns published state v1
//! zone <52-character zone id>
//! <owner wire form, hex> <sequence> <signed> <expires> <live-until> <digest hex | tombstone>
//! …
//! end <number of name lines>
//! ```
//!
//! Times are unix seconds. The owner is the relative wire form
//! ([`OwnerName::wire`]) in lower-case hex, `00` for the apex, so any label
//! bytes round-trip. The `end` line makes a truncated file detectable even
//! though every write is atomic (temporary file, fsync, rename, fsync of the
//! directory, like the zone state). A file that does not parse is an error
//! with its line, never a silent reset: a reset would forget which names
//! need tombstones.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kadns_record::{OwnerName, ZoneId};
use rustix::fs::{FlockOperation, flock};

use crate::durable;
use crate::state::StateError;

/// The first line of every published-state file.
pub const PUBLISHED_FILE_HEADER: &str = "# kadns published state v1";

/// Largest published-state file read: about 1.5 million names' lines. A
/// bigger file is refused rather than read into memory.
const MAX_PUBLISHED_FILE_LEN: u64 = 256 * 1024 * 1024;

/// A SHA-256 digest of one name's records (see [`records_digest`](crate::records_digest)).
pub type Digest = [u8; 32];

/// What was last published for one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct NameEntry {
    /// The digest of the records published, `None` for a tombstone (an
    /// empty bundle: the name was removed).
    pub digest: Option<Digest>,
    /// The bundle's sequence number.
    pub sequence: u64,
    /// When it was signed, unix seconds.
    pub signed: u64,
    /// Its signed expiry, unix seconds.
    pub expires: u64,
    /// The latest expiry of any non-empty bundle published for this name:
    /// until then a replay of an old bundle would be valid, so a tombstone
    /// must stay in the DHT. Equal to `expires` for a live name.
    pub live_until: u64,
}

impl NameEntry {
    /// An entry for a name published with records of digest `digest`.
    pub fn live(digest: Digest, sequence: u64, signed: u64, expires: u64) -> Self {
        Self {
            digest: Some(digest),
            sequence,
            signed,
            expires,
            live_until: expires,
        }
    }

    /// An entry for a tombstone of a name whose content was valid until
    /// `live_until`.
    pub fn tombstone(sequence: u64, signed: u64, expires: u64, live_until: u64) -> Self {
        Self {
            digest: None,
            sequence,
            signed,
            expires,
            live_until,
        }
    }

    /// Whether the entry is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.digest.is_none()
    }
}

/// The published state of one zone, read into memory and saved whole.
///
/// ```
/// use kadns_publisher::{NameEntry, PublishedState};
/// use kadns_record::{OwnerName, ZoneKey};
///
/// let dir = tempfile::tempdir()?;
/// let zone = ZoneKey::from_seed([7; 32]).zone_id();
/// let path = dir.path().join("example.key.published");
///
/// let mut state = PublishedState::load(&path, zone)?;
/// assert!(state.names().is_empty());
/// state.set(OwnerName::apex(), NameEntry::live([1; 32], 10, 100, 200));
/// state.save()?;
///
/// let again = PublishedState::load(&path, zone)?;
/// assert_eq!(again.get(&OwnerName::apex()).unwrap().sequence, 10);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedState {
    path: PathBuf,
    zone: ZoneId,
    names: BTreeMap<OwnerName, NameEntry>,
}

impl PublishedState {
    /// The published-state path of the zone whose key is at `key_path`:
    /// `<key_path>.published`.
    pub fn path_beside_key(key_path: impl AsRef<Path>) -> PathBuf {
        let mut path = key_path.as_ref().as_os_str().to_owned();
        path.push(".published");
        path.into()
    }

    /// Reads the state at `path` for `zone`; an absent file is an empty
    /// state (nothing published yet). A file that does not parse, or that
    /// belongs to another zone, is an error.
    pub fn load(path: impl Into<PathBuf>, zone: ZoneId) -> Result<Self, StateError> {
        let path = path.into();
        let mut state = Self {
            path,
            zone,
            names: BTreeMap::new(),
        };
        let file = match File::open(&state.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(state),
            Err(e) => return Err(state.io_error(&state.path, e)),
        };
        let mut text = String::new();
        io::Read::read_to_string(
            &mut io::Read::take(file, MAX_PUBLISHED_FILE_LEN + 1),
            &mut text,
        )
        .map_err(|e| {
            if e.kind() == io::ErrorKind::InvalidData {
                state.corrupt(1, "not UTF-8 text")
            } else {
                state.io_error(&state.path, e)
            }
        })?;
        if text.len() as u64 > MAX_PUBLISHED_FILE_LEN {
            return Err(state.corrupt(1, "far too long to be a published-state file"));
        }
        state.names = state.parse(&text)?;
        Ok(state)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The zone it belongs to.
    pub fn zone(&self) -> ZoneId {
        self.zone
    }

    /// Every name's entry, in name order.
    pub fn names(&self) -> &BTreeMap<OwnerName, NameEntry> {
        &self.names
    }

    /// One name's entry.
    pub fn get(&self, owner: &OwnerName) -> Option<&NameEntry> {
        self.names.get(owner)
    }

    /// Records what was published for `owner` (in memory; see [`save`](Self::save)).
    pub fn set(&mut self, owner: OwnerName, entry: NameEntry) {
        self.names.insert(owner, entry);
    }

    /// Forgets `owner` (in memory; see [`save`](Self::save)).
    pub fn remove(&mut self, owner: &OwnerName) -> Option<NameEntry> {
        self.names.remove(owner)
    }

    /// Writes the whole state crash-safely (mode 0600): once this returns,
    /// the file holds exactly this state, even after a crash.
    pub fn save(&self) -> Result<(), StateError> {
        durable::write_atomic(&self.path, self.render().as_bytes(), 0o600)
            .map_err(|e| self.io_error(&self.path, e))
    }

    fn render(&self) -> String {
        let mut text = String::with_capacity(64 + self.names.len() * 120);
        // Writing to a String cannot fail.
        let _ = writeln!(text, "{PUBLISHED_FILE_HEADER}\nzone {}", self.zone);
        for (owner, e) in &self.names {
            let digest = match &e.digest {
                Some(d) => hex::encode(d),
                None => "tombstone".to_owned(),
            };
            let _ = writeln!(
                text,
                "{} {} {} {} {} {digest}",
                hex::encode(owner.wire()),
                e.sequence,
                e.signed,
                e.expires,
                e.live_until
            );
        }
        let _ = writeln!(text, "end {}", self.names.len());
        text
    }

    fn parse(&self, text: &str) -> Result<BTreeMap<OwnerName, NameEntry>, StateError> {
        if !text.ends_with('\n') {
            let line = text.lines().count().max(1);
            return Err(self.corrupt(line, "the file ends mid-line (torn write?)"));
        }
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, h)) if h == PUBLISHED_FILE_HEADER => {}
            Some((_, h)) if h.starts_with("# kadns published state v") => {
                return Err(self.corrupt(
                    1,
                    "unsupported published-state version (this build reads v1)",
                ));
            }
            _ => {
                return Err(self.corrupt(1, "the first line must be the published-state header"));
            }
        }
        match lines.next() {
            Some((n, line)) => {
                let zone = line
                    .strip_prefix("zone ")
                    .ok_or_else(|| self.corrupt(n, "expected `zone <zone id>`"))?;
                if zone != self.zone.to_string() {
                    return Err(self.corrupt(n, "the state belongs to another zone key"));
                }
            }
            None => return Err(self.corrupt(1, "no `zone` line")),
        }
        let mut names = BTreeMap::new();
        for (n, line) in lines {
            if let Some(count) = line.strip_prefix("end ") {
                let count: usize = count
                    .parse()
                    .map_err(|_| self.corrupt(n, "the `end` count is not a number"))?;
                if count != names.len() {
                    return Err(self.corrupt(n, "the `end` count differs from the names read"));
                }
                if n != text.lines().count() {
                    return Err(self.corrupt(n + 1, "lines after `end`"));
                }
                return Ok(names);
            }
            let (owner, entry) = self.parse_name(n, line)?;
            if names.insert(owner, entry).is_some() {
                return Err(self.corrupt(n, "a name listed twice"));
            }
        }
        let last = text.lines().count();
        Err(self.corrupt(last, "no `end` line (truncated?)"))
    }

    fn parse_name(&self, n: usize, line: &str) -> Result<(OwnerName, NameEntry), StateError> {
        let fields: Vec<&str> = line.split(' ').collect();
        let [owner, sequence, signed, expires, live_until, digest] = fields.as_slice() else {
            return Err(self.corrupt(
                n,
                "expected `<owner> <sequence> <signed> <expires> <live-until> <digest>`",
            ));
        };
        let wire = hex::decode(owner).map_err(|_| self.corrupt(n, "the owner is not hex"))?;
        let owner = OwnerName::from_wire(&wire)
            .map_err(|_| self.corrupt(n, "the owner is not a valid owner name"))?;
        let number = |text: &str| -> Result<u64, StateError> {
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.corrupt(n, "a time or sequence is not a decimal number"));
            }
            text.parse()
                .map_err(|_| self.corrupt(n, "a time or sequence is out of range"))
        };
        let (sequence, signed, expires, live_until) = (
            number(sequence)?,
            number(signed)?,
            number(expires)?,
            number(live_until)?,
        );
        let digest = if *digest == "tombstone" {
            None
        } else {
            let bytes =
                hex::decode(digest).map_err(|_| self.corrupt(n, "the digest is not hex"))?;
            Some(
                Digest::try_from(bytes.as_slice())
                    .map_err(|_| self.corrupt(n, "the digest is not 32 bytes"))?,
            )
        };
        if signed > expires || (digest.is_some() && live_until != expires) {
            return Err(self.corrupt(n, "the times are inconsistent"));
        }
        Ok((
            owner,
            NameEntry {
                digest,
                sequence,
                signed,
                expires,
                live_until,
            },
        ))
    }

    fn corrupt(&self, line: usize, reason: &'static str) -> StateError {
        StateError::corrupt(&self.path, line, reason)
    }

    fn io_error(&self, path: &Path, source: io::Error) -> StateError {
        StateError::io(path, source)
    }
}

/// An exclusive claim on publishing one zone from one state file: held by a
/// publisher for its whole life, so two publishers (a `--keep` and a
/// `[[publish]]` entry, say) never overwrite each other's state.
#[derive(Debug)]
pub(crate) struct PublishLock {
    _file: File,
}

impl PublishLock {
    /// Takes the lock `<state>.lock`, failing at once if another holds it.
    pub(crate) fn take(state: &Path) -> Result<Self, StateError> {
        let mut path = state.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let io_error = |source: io::Error| StateError::Io {
            path: path.clone(),
            source: Arc::new(source),
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_error)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Self { _file: file }),
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(StateError::Busy { path }),
            Err(e) => Err(io_error(e.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use kadns_record::ZoneKey;

    use super::*;

    fn zone() -> ZoneId {
        ZoneKey::from_seed([3; 32]).zone_id()
    }

    fn owner(label: &str) -> OwnerName {
        OwnerName::from_labels([label.as_bytes()]).unwrap()
    }

    fn sample(dir: &Path) -> PublishedState {
        let mut state = PublishedState::load(dir.join("z.published"), zone()).unwrap();
        state.set(OwnerName::apex(), NameEntry::live([0xab; 32], 7, 100, 700));
        state.set(owner("www"), NameEntry::live([0x01; 32], 8, 101, 701));
        state.set(owner("gone"), NameEntry::tombstone(9, 102, 702, 650));
        state
    }

    #[test]
    fn round_trips_every_kind_of_entry() {
        let dir = tempfile::tempdir().unwrap();
        let state = sample(dir.path());
        state.save().unwrap();
        let again = PublishedState::load(state.path(), zone()).unwrap();
        assert_eq!(again, state);
        let text = fs::read_to_string(state.path()).unwrap();
        assert!(text.starts_with(PUBLISHED_FILE_HEADER), "{text}");
        assert!(text.ends_with("end 3\n"), "{text}");
        assert!(text.contains("tombstone"), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(state.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn an_absent_file_is_an_empty_state() {
        let dir = tempfile::tempdir().unwrap();
        let state = PublishedState::load(dir.path().join("none"), zone()).unwrap();
        assert!(state.names().is_empty());
    }

    #[test]
    fn torn_or_garbage_files_are_errors_not_resets() {
        let dir = tempfile::tempdir().unwrap();
        let good = sample(dir.path());
        good.save().unwrap();
        let text = fs::read_to_string(good.path()).unwrap();
        let other_zone = ZoneKey::from_seed([4; 32]).zone_id().to_string();
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 1, "mid-line"),
            ("\0\0\0\n".into(), 1, "header"),
            (
                "# kadns published state v2\nzone x\nend 0\n".into(),
                1,
                "version",
            ),
            // Cut anywhere: mid-line, or before the `end` line.
            (text[..text.len() - 3].into(), 6, "mid-line"),
            (text[..text.rfind("end").unwrap()].into(), 5, "no `end`"),
            (text.replace("end 3", "end 4"), 6, "count"),
            (
                text.replace(&zone().to_string(), &other_zone),
                2,
                "another zone",
            ),
            (text.replace(" 8 101 ", " 8x 101 "), 4, "decimal"),
            (text.replace("tombstone", "tomb"), 5, "hex"),
            (text.replace("end 3\n", "end 3\nmore\n"), 7, "after `end`"),
            (text.replacen("\n0", "\n0 1", 1), 3, "expected `<owner>"),
        ];
        for (bad, line, reason) in cases {
            fs::write(good.path(), &bad).unwrap();
            match PublishedState::load(good.path(), zone()).unwrap_err() {
                StateError::Corrupt {
                    line: l, reason: r, ..
                } => {
                    assert_eq!(l, line, "{bad:?}: {r}");
                    assert!(r.contains(reason), "{bad:?}: {r}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
            // Left exactly as found, for the operator to look at.
            assert_eq!(fs::read_to_string(good.path()).unwrap(), bad);
        }
    }

    #[test]
    fn a_second_publisher_of_the_same_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.published");
        let lock = PublishLock::take(&path).unwrap();
        assert!(matches!(
            PublishLock::take(&path).unwrap_err(),
            StateError::Busy { .. }
        ));
        drop(lock);
        PublishLock::take(&path).unwrap();
    }
}
