//! The keystore: one zone key per file.
//!
//! # File format
//!
//! A key file is UTF-8 text of three lines:
//!
//! ```text
//! # kadns zone key v1. Keep this file secret.
//! zone: <zone id, 52 characters of z-base-32>
//! secret: <the 32-byte ed25519 seed as 64 lowercase hex digits>
//! ```
//!
//! The first line must be exactly the header above. After it, blank lines and
//! lines starting with `#` are ignored; `zone:` and `secret:` must each appear
//! once, and no other field may. The `zone:` line is redundant (it follows from
//! the secret) and is there so that a person can tell which zone a file is
//! for; [`load_key`] checks that it matches.
//!
//! # Protection
//!
//! [`generate_key`] creates the file with `O_CREAT | O_EXCL` and mode 0600, so
//! it never overwrites anything and nobody else can read it, and fsyncs the file
//! and its directory before returning. [`load_key`] refuses a file that group
//! or other users have any access to. The secret is never logged, and errors
//! about the secret line give its line number only.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kadns_record::{ZoneId, ZoneKey};
use rand::Rng;

use crate::durable;
use kadns_record::ZoneIdError;

/// The first line of every key file.
pub const KEY_FILE_HEADER: &str = "# kadns zone key v1. Keep this file secret.";

/// Largest key file [`load_key`] reads. A real one is about 180 bytes.
const MAX_KEY_FILE_LEN: u64 = 4096;

/// Generates a new random zone key and writes it to a new file at `path`.
///
/// The file is created with `O_CREAT | O_EXCL` and mode 0600: an existing
/// file is never overwritten ([`KeyError::AlreadyExists`]). The file and its
/// directory are fsynced before this returns, so the key survives a crash. On
/// any failure after the file was created, the partial file is removed.
///
/// ```
/// use kadns_publisher::{generate_key, load_key};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("example.key");
/// let key = generate_key(&path)?;
/// assert_eq!(load_key(&path)?.zone_id(), key.zone_id());
/// // Never overwrites.
/// assert!(generate_key(&path).is_err());
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn generate_key(path: impl AsRef<Path>) -> Result<ZoneKey, KeyError> {
    let path = path.as_ref();
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = ZoneKey::from_seed(seed);
    scrub(&mut seed);

    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::AlreadyExists { path: path.into() },
            _ => io_error(path, source),
        })?;
    let mut text = render(&key).into_bytes();
    let written = file
        .write_all(&text)
        .and_then(|()| file.sync_all())
        .and_then(|()| durable::sync_parent(path));
    scrub(&mut text);
    if let Err(source) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(io_error(path, source));
    }
    tracing::info!(path = %path.display(), zone = %key.zone_id(), "generated a new zone key");
    Ok(key)
}

/// Loads the zone key stored at `path`.
///
/// Refuses a file that group or other users can access in any way
/// ([`KeyError::PermissionsTooOpen`]), a file not in the key file format
/// ([`KeyError::Format`], with the line and the reason), and a file whose
/// `zone:` line does not match its secret ([`KeyError::Mismatch`]).
///
/// ```
/// use std::os::unix::fs::PermissionsExt;
/// use kadns_publisher::{KeyError, generate_key, load_key};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("zone.key");
/// generate_key(&path)?;
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))?;
/// let err = load_key(&path).unwrap_err();
/// assert!(matches!(err, KeyError::PermissionsTooOpen { mode: 0o644, .. }));
/// assert!(err.to_string().contains("chmod 600"));
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn load_key(path: impl AsRef<Path>) -> Result<ZoneKey, KeyError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => KeyError::NotFound { path: path.into() },
        _ => io_error(path, source),
    })?;
    // Check the file we opened, not the path again, so that nothing can be
    // swapped in between the check and the read.
    let metadata = file.metadata().map_err(|source| io_error(path, source))?;
    if !metadata.is_file() {
        return Err(KeyError::NotAFile { path: path.into() });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::PermissionsTooOpen {
            path: path.into(),
            mode,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| io_error(path, source))?;
    let format = |line: usize, reason: &'static str| KeyError::Format {
        path: path.into(),
        line,
        reason,
    };
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(format(1, "the file is far too long to be a key file"));
    }
    let key = match std::str::from_utf8(&bytes) {
        Ok(text) => parse(text, path),
        Err(_) => Err(format(1, "the file is not UTF-8 text")),
    };
    scrub(&mut bytes);
    key
}

/// Best-effort overwrite of a buffer that held the secret, before it is freed.
fn scrub(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// The key file's text for `key`.
fn render(key: &ZoneKey) -> String {
    format!(
        "{KEY_FILE_HEADER}\nzone: {}\nsecret: {}\n",
        key.zone_id(),
        hex::encode(key.seed())
    )
}

fn parse(text: &str, path: &Path) -> Result<ZoneKey, KeyError> {
    let format = |line: usize, reason: &'static str| KeyError::Format {
        path: path.into(),
        line,
        reason,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    match lines.next() {
        Some((_, header)) if header.trim_end() == KEY_FILE_HEADER => {}
        Some((_, header)) if header.starts_with("# kadns zone key v") => {
            return Err(format(
                1,
                "unsupported key file version (this build reads v1)",
            ));
        }
        _ => {
            return Err(format(
                1,
                "the first line must be the kadns zone key header",
            ));
        }
    }
    let mut zone: Option<(usize, &str)> = None;
    let mut secret: Option<(usize, [u8; 32])> = None;
    let mut last_line = 1;
    for (number, line) in lines {
        last_line = number;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((field, value)) = line.split_once(':') else {
            return Err(format(number, "expected `field: value`"));
        };
        let value = value.trim();
        match field.trim() {
            "zone" if zone.is_some() => return Err(format(number, "a second `zone:` line")),
            "zone" => zone = Some((number, value)),
            "secret" if secret.is_some() => return Err(format(number, "a second `secret:` line")),
            "secret" => {
                secret = Some((
                    number,
                    parse_secret(value).ok_or_else(|| format(number, SECRET_FORMAT))?,
                ))
            }
            _ => {
                return Err(format(
                    number,
                    "unknown field (expected `zone:` and `secret:`)",
                ));
            }
        }
    }
    let Some((zone_line, zone_text)) = zone else {
        return Err(format(last_line, "no `zone:` line"));
    };
    let Some((_, mut seed)) = secret else {
        return Err(format(last_line, "no `secret:` line"));
    };
    let stated: ZoneId = zone_text.parse().map_err(|source| KeyError::BadZoneId {
        path: path.into(),
        line: zone_line,
        source,
    })?;
    let key = ZoneKey::from_seed(seed);
    scrub(&mut seed);
    let actual = key.zone_id();
    if actual != stated {
        return Err(KeyError::Mismatch {
            path: path.into(),
            stated: stated.to_string(),
            actual: actual.to_string(),
        });
    }
    tracing::debug!(path = %path.display(), zone = %actual, "loaded zone key");
    Ok(key)
}

const SECRET_FORMAT: &str = "the secret must be 64 lowercase hex digits";

fn parse_secret(value: &str) -> Option<[u8; 32]> {
    if value.len() != 64
        || !value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut seed = [0u8; 32];
    hex::decode_to_slice(value, &mut seed).ok()?;
    Some(seed)
}

fn io_error(path: &Path, source: io::Error) -> KeyError {
    KeyError::Io {
        path: PathBuf::from(path),
        source: Arc::new(source),
    }
}

/// Why a zone key could not be generated or loaded.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// There is no key file at the path.
    #[error("{}: no such key file", path.display())]
    NotFound {
        /// The key file.
        path: PathBuf,
    },
    /// [`generate_key`](crate::generate_key) never overwrites a file.
    #[error("{}: a file already exists there; refusing to overwrite it (move it away or choose another path)", path.display())]
    AlreadyExists {
        /// The key file.
        path: PathBuf,
    },
    /// Group or other users have some access to the key file.
    #[error(
        "{}: permissions {mode:04o} are too open: the key must be readable by its owner only (run `chmod 600 {}`)",
        path.display(),
        path.display()
    )]
    PermissionsTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The path is a directory or some other non-regular file.
    #[error("{}: not a regular file", path.display())]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// The file is not in the key file format.
    #[error("{}:{line}: not a kadns key file: {reason}", path.display())]
    Format {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: &'static str,
    },
    /// The `zone:` line is not a zone id.
    #[error("{}:{line}: bad zone id: {source}", path.display())]
    BadZoneId {
        /// The key file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why it is not a zone id.
        #[source]
        source: ZoneIdError,
    },
    /// The `zone:` line names another zone than the secret signs for.
    #[error("{}: the file says zone {stated}, but its secret is the key of zone {actual}", path.display())]
    Mismatch {
        /// The key file.
        path: PathBuf,
        /// The zone id written in the file.
        stated: String,
        /// The zone id of the secret.
        actual: String,
    },
    /// Reading, writing or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
}

#[cfg(test)]
mod tests;
