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
use crate::error::KeyError;

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

#[cfg(test)]
mod tests {
    use std::fs::{self, Permissions};

    use super::*;

    fn write_key_file(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("test.key");
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn valid_text(seed: [u8; 32]) -> String {
        render(&ZoneKey::from_seed(seed))
    }

    #[test]
    fn generated_file_is_0600_in_the_documented_format_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.key");
        let key = generate_key(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], KEY_FILE_HEADER);
        assert_eq!(lines[1], format!("zone: {}", key.zone_id()));
        assert_eq!(lines[2], format!("secret: {}", hex::encode(key.seed())));
        let loaded = load_key(&path).unwrap();
        assert_eq!(loaded.seed(), key.seed());
        // Two keys are different.
        let other = generate_key(dir.path().join("other.key")).unwrap();
        assert_ne!(other.zone_id(), key.zone_id());
    }

    #[test]
    fn generate_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.key");
        fs::write(&path, "precious").unwrap();
        let err = generate_key(&path).unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err:?}");
        assert!(err.to_string().contains("refusing to overwrite"));
        assert_eq!(fs::read_to_string(&path).unwrap(), "precious");
    }

    #[test]
    fn generate_into_a_missing_directory_is_an_io_error_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing/z.key");
        let err = generate_key(&path).unwrap_err();
        assert!(
            matches!(&err, KeyError::Io { path: p, .. } if *p == path),
            "{err:?}"
        );
    }

    #[test]
    fn load_reports_not_found_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_key(dir.path().join("nope.key")).unwrap_err();
        assert!(matches!(err, KeyError::NotFound { .. }), "{err:?}");
        fs::set_permissions(dir.path(), Permissions::from_mode(0o700)).unwrap();
        let err = load_key(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::NotAFile { .. }), "{err:?}");
    }

    #[test]
    fn load_refuses_any_group_or_other_bit() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key_file(dir.path(), &valid_text([1; 32]));
        for mode in [0o640, 0o604, 0o601, 0o610, 0o666, 0o700 | 0o004] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
            let err = load_key(&path).unwrap_err();
            match &err {
                KeyError::PermissionsTooOpen { mode: m, .. } => assert_eq!(*m, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
            let message = err.to_string();
            assert!(message.contains(&format!("{mode:04o}")), "{message}");
            assert!(message.contains("chmod 600"), "{message}");
        }
        for mode in [0o600, 0o400, 0o700] {
            fs::set_permissions(&path, Permissions::from_mode(mode)).unwrap();
            load_key(&path).unwrap();
        }
    }

    #[test]
    fn load_reports_format_errors_with_line_and_reason() {
        let good = valid_text([0xab; 32]);
        let zone_line = good.lines().nth(1).unwrap().to_owned();
        let secret_line = good.lines().nth(2).unwrap().to_owned();
        let cases: Vec<(String, usize, &str)> = vec![
            (String::new(), 1, "header"),
            ("zone: x\n".into(), 1, "header"),
            (
                format!(
                    "# kadns zone key v2. Keep this file secret.\n{zone_line}\n{secret_line}\n"
                ),
                1,
                "version",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\n"),
                2,
                "no `secret:`",
            ),
            (
                format!("{KEY_FILE_HEADER}\n\n{secret_line}\n"),
                3,
                "no `zone:`",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\n{secret_line}\n{secret_line}\n"),
                4,
                "second `secret:`",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\n{zone_line}\n"),
                3,
                "second `zone:`",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\nsecret: abc\n"),
                3,
                "64 lowercase hex",
            ),
            (
                format!(
                    "{KEY_FILE_HEADER}\n{zone_line}\n{}\n",
                    secret_line.to_uppercase().replace("SECRET", "secret")
                ),
                3,
                "64 lowercase hex",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\n{secret_line}00\n"),
                3,
                "64 lowercase hex",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\nnonsense\n"),
                3,
                "field: value",
            ),
            (
                format!("{KEY_FILE_HEADER}\n{zone_line}\npublic: 12\n"),
                3,
                "unknown field",
            ),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (text, line, reason) in cases {
            let path = write_key_file(dir.path(), &text);
            match load_key(&path).unwrap_err() {
                KeyError::Format {
                    line: l, reason: r, ..
                } => {
                    assert_eq!(l, line, "{text:?}: {r}");
                    assert!(r.contains(reason), "{text:?}: {r}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn comments_and_blank_lines_are_allowed_after_the_header() {
        let good = valid_text([3; 32]);
        let mut lines = good.lines();
        let text = format!(
            "{}\n\n# a note\n{}\n   \n{}\n",
            lines.next().unwrap(),
            lines.next().unwrap(),
            lines.next().unwrap()
        );
        let dir = tempfile::tempdir().unwrap();
        let key = load_key(write_key_file(dir.path(), &text)).unwrap();
        assert_eq!(key.seed(), &[3; 32]);
    }

    #[test]
    fn bad_zone_id_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let secret = hex::encode([4u8; 32]);
        let path = write_key_file(
            dir.path(),
            &format!("{KEY_FILE_HEADER}\nzone: short\nsecret: {secret}\n"),
        );
        assert!(matches!(
            load_key(&path).unwrap_err(),
            KeyError::BadZoneId { line: 2, .. }
        ));

        let other = ZoneKey::from_seed([5; 32]).zone_id();
        let path = write_key_file(
            dir.path(),
            &format!("{KEY_FILE_HEADER}\nzone: {other}\nsecret: {secret}\n"),
        );
        match load_key(&path).unwrap_err() {
            KeyError::Mismatch { stated, actual, .. } => {
                assert_eq!(stated, other.to_string());
                assert_eq!(actual, ZoneKey::from_seed([4; 32]).zone_id().to_string());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_never_contain_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let good = valid_text([6; 32]);
        let secret = hex::encode([6u8; 32]);
        // A secret with one bad character, and a mismatching zone: neither
        // message may echo the secret.
        let bad_secret = good.replace(&secret, &format!("{}g", &secret[..63]));
        let mismatch = good.replace(
            &ZoneKey::from_seed([6; 32]).zone_id().to_string(),
            &ZoneKey::from_seed([7; 32]).zone_id().to_string(),
        );
        for text in [bad_secret, mismatch] {
            let err = load_key(write_key_file(dir.path(), &text)).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(&secret[..16]), "{shown}");
        }
    }

    #[test]
    fn oversized_and_binary_files_are_format_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_key_file(dir.path(), &"#".repeat(5000));
        assert!(matches!(
            load_key(&path).unwrap_err(),
            KeyError::Format { line: 1, .. }
        ));
        fs::write(&path, [0xff, 0xfe, 0]).unwrap();
        assert!(matches!(
            load_key(&path).unwrap_err(),
            KeyError::Format { line: 1, .. }
        ));
    }
}
