//! Zone state: the last sequence number a zone was signed with.
//!
//! Every signing of a zone must use a higher sequence number than the one
//! before, or the DHT keeps the old records (the highest sequence wins, and an
//! equal one with other content is refused as a conflict). The next sequence is
//! `max(last + 1, now)` with `now` in unix seconds: strictly increasing even if
//! the clock steps back, and still ahead of everything published if the state
//! file is lost, as long as the clock is right.
//!
//! # File format
//!
//! The state lives beside the key, in `<keyfile>.state`:
//!
//! ```text
//! # kadns zone state v1
//! last-sequence: 1767225600
//! ```
//!
//! It is replaced crash-safely (temporary file, fsync, rename, fsync of the
//! directory), and the new number is durable before [`ZoneState::next_sequence`]
//! returns it. A file that exists but does not parse (torn, truncated, edited)
//! is an error, never a silent reset.
//!
//! Callers of `next_sequence` for one state file are serialised with an
//! exclusive `flock(2)` on `<statefile>.lock`, across threads and processes.
//! The lock file is created once (mode 0600) and left in place; it holds no data.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

use crate::durable;
use std::sync::Arc;

/// The first line of every state file.
pub const STATE_FILE_HEADER: &str = "# kadns zone state v1";

/// Largest state file read. A real one is under 60 bytes.
const MAX_STATE_FILE_LEN: u64 = 4096;

/// The sequence-number state of one zone, kept in one file.
///
/// ```
/// use kadns_publisher::ZoneState;
///
/// let dir = tempfile::tempdir()?;
/// let state = ZoneState::beside_key(dir.path().join("example.key"));
/// assert!(state.path().ends_with("example.key.state"));
/// assert_eq!(state.last_sequence()?, None);
///
/// assert_eq!(state.next_sequence(1_000)?, 1_000);
/// // The clock stepped back: the sequence still goes up.
/// assert_eq!(state.next_sequence(900)?, 1_001);
/// assert_eq!(state.last_sequence()?, Some(1_001));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneState {
    path: PathBuf,
}

impl ZoneState {
    /// The state of the zone whose key is at `key_path`: `<key_path>.state`.
    pub fn beside_key(key_path: impl AsRef<Path>) -> Self {
        let mut path = key_path.as_ref().as_os_str().to_owned();
        path.push(".state");
        Self { path: path.into() }
    }

    /// A state kept at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last sequence number used, or `None` if the zone was never signed
    /// (there is no state file).
    pub fn last_sequence(&self) -> Result<Option<u64>, StateError> {
        let file = match File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io_error(&self.path, e)),
        };
        let mut text = String::new();
        io::Read::read_to_string(&mut io::Read::take(file, MAX_STATE_FILE_LEN + 1), &mut text)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    self.corrupt(1, "not UTF-8 text")
                } else {
                    self.io_error(&self.path, e)
                }
            })?;
        if text.len() as u64 > MAX_STATE_FILE_LEN {
            return Err(self.corrupt(1, "far too long to be a state file"));
        }
        self.parse(&text).map(Some)
    }

    /// Takes the next sequence number for a signing at `now` (unix seconds):
    /// `max(last + 1, now)`, or `now` for a zone never signed. The number is
    /// written durably before it is returned, so it is never handed out twice,
    /// even across a crash.
    pub fn next_sequence(&self, now: u64) -> Result<u64, StateError> {
        let lock_path = self.sibling(".lock");
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|e| self.io_error(&lock_path, e))?;
        // Blocks until every other holder is done; released when `lock` is closed.
        flock(&lock, FlockOperation::LockExclusive)
            .map_err(|e| self.io_error(&lock_path, e.into()))?;

        let next = match self.last_sequence()? {
            None => now,
            Some(last) => last
                .checked_add(1)
                .ok_or_else(|| StateError::Exhausted {
                    path: self.path.clone(),
                    last,
                })?
                .max(now),
        };
        let text = format!("{STATE_FILE_HEADER}\nlast-sequence: {next}\n");
        durable::write_atomic(&self.path, text.as_bytes(), 0o600)
            .map_err(|e| self.io_error(&self.path, e))?;
        drop(lock);
        tracing::debug!(path = %self.path.display(), sequence = next, "took the next sequence number");
        Ok(next)
    }

    fn parse(&self, text: &str) -> Result<u64, StateError> {
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
        match lines.next() {
            Some((_, header)) if header.trim_end() == STATE_FILE_HEADER => {}
            Some((_, header)) if header.starts_with("# kadns zone state v") => {
                return Err(self.corrupt(1, "unsupported state file version (this build reads v1)"));
            }
            _ => return Err(self.corrupt(1, "the first line must be the kadns zone state header")),
        }
        let mut last = None;
        let mut last_line = 1;
        for (number, line) in lines {
            last_line = number;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some(value) = line.strip_prefix("last-sequence:") else {
                return Err(self.corrupt(number, "expected `last-sequence: N`"));
            };
            if last.is_some() {
                return Err(self.corrupt(number, "a second `last-sequence:` line"));
            }
            let value = value.trim();
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(self.corrupt(number, "the sequence is not a decimal number"));
            }
            last = Some(
                value
                    .parse::<u64>()
                    .map_err(|_| self.corrupt(number, "the sequence is out of range"))?,
            );
        }
        if !text.ends_with('\n') {
            // Every write ends with a newline: anything else was cut short.
            return Err(self.corrupt(last_line, "the file ends mid-line (torn write?)"));
        }
        last.ok_or_else(|| self.corrupt(last_line, "no `last-sequence:` line"))
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut path = self.path.as_os_str().to_owned();
        path.push(suffix);
        path.into()
    }

    fn corrupt(&self, line: usize, reason: &'static str) -> StateError {
        StateError::corrupt(&self.path, line, reason)
    }

    fn io_error(&self, path: &Path, source: io::Error) -> StateError {
        StateError::io(path, source)
    }
}

/// Why the zone state (the last sequence number) could not be read or advanced.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state file exists but is not in the state file format (for example
    /// torn, or edited by hand). It is never silently reset.
    #[error(
        "{}:{line}: zone state is unreadable: {reason}. Refusing to guess the last sequence number; \
         fix the file or, if the clock is right, delete it (sequences then restart at the current time)",
        path.display()
    )]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another publisher (process or task) is publishing this zone from the
    /// same state right now.
    #[error(
        "{}: another publisher holds this zone's state (a `zone publish` or a `[[publish]]` entry of `kadns serve`); \
         stop it first",
        path.display()
    )]
    Busy {
        /// The lock file.
        path: PathBuf,
    },
    /// The last sequence is `u64::MAX`: no higher sequence exists.
    #[error("{}: the sequence number is exhausted (last sequence {last})", path.display())]
    Exhausted {
        /// The state file.
        path: PathBuf,
        /// The last sequence used.
        last: u64,
    },
    /// Reading, writing, locking or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
}

impl StateError {
    /// The file at `path` is corrupt at `line`.
    pub(crate) fn corrupt(path: &Path, line: usize, reason: &'static str) -> Self {
        Self::Corrupt {
            path: path.to_owned(),
            line,
            reason,
        }
    }

    /// Reading or writing `path` failed.
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use proptest::prelude::*;

    use super::*;

    fn read_raw(state: &ZoneState) -> String {
        fs::read_to_string(state.path()).unwrap_or_default()
    }

    fn fresh() -> (tempfile::TempDir, ZoneState) {
        let dir = tempfile::tempdir().unwrap();
        let state = ZoneState::beside_key(dir.path().join("zone.key"));
        (dir, state)
    }

    #[test]
    fn first_sequence_is_now_and_is_persisted_before_returning() {
        let (_dir, state) = fresh();
        assert_eq!(state.next_sequence(1_700_000_000).unwrap(), 1_700_000_000);
        assert_eq!(
            read_raw(&state),
            format!("{STATE_FILE_HEADER}\nlast-sequence: 1700000000\n")
        );
        assert_eq!(
            ZoneState::at(state.path()).last_sequence().unwrap(),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn clock_stepping_back_still_increases() {
        let (_dir, state) = fresh();
        assert_eq!(state.next_sequence(5_000).unwrap(), 5_000);
        assert_eq!(state.next_sequence(10).unwrap(), 5_001);
        assert_eq!(state.next_sequence(0).unwrap(), 5_002);
        assert_eq!(state.next_sequence(5_002).unwrap(), 5_003);
        // The clock jumps ahead: the sequence follows it.
        assert_eq!(state.next_sequence(9_000).unwrap(), 9_000);
    }

    #[test]
    fn repeated_calls_in_the_same_second_strictly_increase() {
        let (_dir, state) = fresh();
        let seqs: Vec<u64> = (0..20).map(|_| state.next_sequence(100).unwrap()).collect();
        assert_eq!(seqs, (100..120).collect::<Vec<_>>());
    }

    #[test]
    fn concurrent_callers_never_get_the_same_sequence() {
        let (_dir, state) = fresh();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    (0..15)
                        .map(|_| state.next_sequence(1_000).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all = Vec::new();
        for thread in threads {
            let seqs = thread.join().unwrap();
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            all.extend(seqs);
        }
        all.sort_unstable();
        assert_eq!(all, (1_000..1_060).collect::<Vec<_>>());
        assert_eq!(state.last_sequence().unwrap(), Some(1_059));
    }

    #[test]
    fn garbage_state_is_an_error_and_is_left_alone() {
        let cases: &[(&str, usize, &str)] = &[
            ("", 1, "header"),
            ("last-sequence: 12\n", 1, "header"),
            ("# kadns zone state v9\nlast-sequence: 12\n", 1, "version"),
            ("# kadns zone state v1\n", 1, "no `last-sequence:`"),
            ("# kadns zone state v1\nlast-seq", 2, "expected"),
            ("# kadns zone state v1\nlast-sequence: 12", 2, "mid-line"),
            ("# kadns zone state v1\nlast-sequence: 12ab\n", 2, "decimal"),
            ("# kadns zone state v1\nlast-sequence: -1\n", 2, "decimal"),
            ("# kadns zone state v1\nlast-sequence: \n", 2, "decimal"),
            (
                "# kadns zone state v1\nlast-sequence: 99999999999999999999999\n",
                2,
                "range",
            ),
            (
                "# kadns zone state v1\nlast-sequence: 1\nlast-sequence: 2\n",
                3,
                "second",
            ),
            ("\0\0\0\0", 1, "header"),
        ];
        for &(text, line, reason) in cases {
            let (_dir, state) = fresh();
            fs::write(state.path(), text).unwrap();
            for result in [state.last_sequence().map(|_| 0), state.next_sequence(50)] {
                match result.unwrap_err() {
                    StateError::Corrupt {
                        line: l, reason: r, ..
                    } => {
                        assert_eq!(l, line, "{text:?}: {r}");
                        assert!(r.contains(reason), "{text:?}: {r}");
                    }
                    other => panic!("{text:?}: {other:?}"),
                }
            }
            assert_eq!(
                read_raw(&state),
                text,
                "a bad state file must not be rewritten"
            );
        }
        let (_dir, state) = fresh();
        fs::write(state.path(), [0xff, 0xfe]).unwrap();
        assert!(matches!(
            state.next_sequence(1),
            Err(StateError::Corrupt { line: 1, .. })
        ));
        let message = state.next_sequence(1).unwrap_err().to_string();
        assert!(message.contains("zone.key.state:1:"), "{message}");
    }

    #[test]
    fn exhausted_sequence_is_an_error() {
        let (_dir, state) = fresh();
        fs::write(
            state.path(),
            format!("{STATE_FILE_HEADER}\nlast-sequence: {}\n", u64::MAX),
        )
        .unwrap();
        assert!(matches!(
            state.next_sequence(1),
            Err(StateError::Exhausted { last: u64::MAX, .. })
        ));
    }

    #[test]
    fn unwritable_directory_is_an_io_error() {
        let state = ZoneState::at("/nonexistent-kadns-dir/zone.key.state");
        assert!(matches!(state.next_sequence(1), Err(StateError::Io { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Whatever the clock does, sequences strictly increase and never lag the clock.
        #[test]
        fn sequences_strictly_increase_whatever_the_clock(clock in proptest::collection::vec(0u64..2_000, 1..12)) {
            let (_dir, state) = fresh();
            let mut last = None;
            for now in clock {
                let next = state.next_sequence(now).unwrap();
                prop_assert!(next >= now);
                if let Some(last) = last {
                    prop_assert!(next > last);
                }
                last = Some(next);
            }
        }
    }
}
