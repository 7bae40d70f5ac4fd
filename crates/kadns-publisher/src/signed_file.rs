//! The signed zone file: the output of `kadns zone sign --out PATH`, read back
//! by `zone verify`, `zone show` and `zone publish --signed`.
//!
//! # Format
//!
//! ```text
//! magic    8 bytes   "KADNSSZ1"
//! entry*   for each bundle, in order:
//!   length 2 bytes   u16, big-endian: the bundle's length in bytes
//!   bundle length    the signed bundle exactly as kadns-record encodes it
//! ```
//!
//! Nothing follows the last entry; an empty zone is the magic alone. The file
//! holds only public data (signed records), but nothing in it is trusted: each
//! bundle is decoded by [`SignedBundle::decode`] on reading, and must still be
//! verified ([`kadns_record::validate`]) before use.
//!
//! Reading never panics. A bad magic is [`SignedFileError::BadMagic`]; a length
//! prefix running past the end of the file is [`SignedFileError::Truncated`]
//! (with the entry's index and offset); a bundle that does not decode is
//! reported in its own [`SignedEntry`], so one bad bundle does not hide the rest.
//!
//! Writing is crash-safe: a temporary file in the same directory, fsync,
//! rename over the target, fsync of the directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kadns_record::SignedBundle;

use crate::durable;
use kadns_record::DecodeError;

/// The first 8 bytes of every signed zone file.
pub const SIGNED_FILE_MAGIC: &[u8; 8] = b"KADNSSZ1";

/// One entry of a signed zone file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SignedEntry {
    /// 0-based index of the entry.
    pub index: usize,
    /// Byte offset of the entry's length prefix in the file.
    pub offset: usize,
    /// The decoded (not yet verified) bundle, or why it does not decode.
    pub bundle: Result<SignedBundle, EntryError>,
}

/// Writes `bundles` to `path` in the signed zone file format, crash-safely,
/// replacing any file there.
///
/// ```
/// use kadns_publisher::{ParsedZone, Signer, ZoneState, Config, read_signed_file, write_signed_file};
/// use kadns_record::ZoneKey;
///
/// let dir = tempfile::tempdir()?;
/// let zone = ParsedZone::from_text("$ORIGIN example.org.\n@ 300 A 192.0.2.1\n", "example.zone", None)?;
/// let signer = Signer::new(ZoneKey::from_seed([7; 32]), ZoneState::at(dir.path().join("state")), &Config::default())?;
/// let signed = signer.sign_at(&zone, 1_800_000_000)?;
///
/// let out = dir.path().join("example.signed");
/// write_signed_file(&out, signed.bundles())?;
/// let entries = read_signed_file(&out)?;
/// assert_eq!(entries.len(), 1);
/// assert_eq!(entries[0].bundle.as_ref().unwrap(), &signed.bundles()[0]);
/// # Ok::<_, Box<dyn std::error::Error>>(())
/// ```
pub fn write_signed_file(
    path: impl AsRef<Path>,
    bundles: &[SignedBundle],
) -> Result<(), SignedFileError> {
    let path = path.as_ref();
    let bytes = encode(path, bundles)?;
    durable::write_atomic(path, &bytes, 0o644).map_err(|e| io_error(path, e))?;
    tracing::debug!(path = %path.display(), bundles = bundles.len(), bytes = bytes.len(), "wrote signed zone file");
    Ok(())
}

/// Reads the signed zone file at `path`: one [`SignedEntry`] per bundle.
pub fn read_signed_file(path: impl AsRef<Path>) -> Result<Vec<SignedEntry>, SignedFileError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| io_error(path, e))?;
    decode_signed_file(&bytes, path)
}

/// Decodes signed zone file bytes; `path` names the file in errors.
pub fn decode_signed_file(
    bytes: &[u8],
    path: impl AsRef<Path>,
) -> Result<Vec<SignedEntry>, SignedFileError> {
    let path = path.as_ref();
    let rest = bytes
        .strip_prefix(SIGNED_FILE_MAGIC.as_slice())
        .ok_or_else(|| SignedFileError::BadMagic { path: path.into() })?;
    let mut entries = Vec::new();
    let mut offset = SIGNED_FILE_MAGIC.len();
    let mut rest = rest;
    while !rest.is_empty() {
        let index = entries.len();
        let truncated = |needed: usize| SignedFileError::Truncated {
            path: path.into(),
            index,
            offset,
            needed,
            available: rest.len(),
        };
        let (prefix, tail) = rest.split_first_chunk::<2>().ok_or_else(|| truncated(2))?;
        let len = usize::from(u16::from_be_bytes(*prefix));
        if tail.len() < len {
            return Err(truncated(2 + len));
        }
        let (body, tail) = tail.split_at(len);
        let bundle = SignedBundle::decode(body).map_err(|source| EntryError {
            index,
            offset,
            source,
        });
        entries.push(SignedEntry {
            index,
            offset,
            bundle,
        });
        offset += 2 + len;
        rest = tail;
    }
    Ok(entries)
}

fn encode(path: &Path, bundles: &[SignedBundle]) -> Result<Vec<u8>, SignedFileError> {
    let total = SIGNED_FILE_MAGIC.len()
        + bundles
            .iter()
            .map(|b| 2 + b.as_bytes().len())
            .sum::<usize>();
    let mut bytes = Vec::with_capacity(total);
    bytes.extend_from_slice(SIGNED_FILE_MAGIC);
    for (index, bundle) in bundles.iter().enumerate() {
        let body = bundle.as_bytes();
        let len = u16::try_from(body.len()).map_err(|_| SignedFileError::BundleTooLong {
            path: path.into(),
            index,
            len: body.len(),
        })?;
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(body);
    }
    Ok(bytes)
}

fn io_error(path: &Path, source: io::Error) -> SignedFileError {
    SignedFileError::Io {
        path: PathBuf::from(path),
        source: Arc::new(source),
    }
}

/// Why a signed zone file could not be written or read.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum SignedFileError {
    /// The file does not start with the magic bytes `KADNSSZ1`.
    #[error("{}: not a kadns signed zone file (it does not start with KADNSSZ1)", path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
    },
    /// A length prefix runs past the end of the file.
    #[error(
        "{}: truncated: entry {index} at byte {offset} needs {needed} bytes, only {available} remain",
        path.display()
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// 0-based index of the entry.
        index: usize,
        /// Byte offset of the entry's length prefix.
        offset: usize,
        /// Bytes the entry needs (prefix included).
        needed: usize,
        /// Bytes left in the file.
        available: usize,
    },
    /// A bundle too long for its 16-bit length prefix (cannot come from
    /// kadns-record, whose bundles are at most `MAX_BUNDLE_LEN`).
    #[error("{}: bundle {index} is {len} bytes, too long for the file format", path.display())]
    BundleTooLong {
        /// The file.
        path: PathBuf,
        /// 0-based index of the bundle.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// Reading, writing or syncing failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
}

/// Why one entry of a signed zone file is not a well-formed bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {index} at byte {offset}: {source}")]
pub struct EntryError {
    /// 0-based index of the entry.
    pub index: usize,
    /// Byte offset of the entry's length prefix.
    pub offset: usize,
    /// What kadns-record's decoder refused.
    #[source]
    pub source: DecodeError,
}

#[cfg(test)]
mod tests {
    use hickory_proto::rr::RData;
    use hickory_proto::rr::rdata::A;
    use kadns_record::{Bundle, DecodeError, OwnerName, Rr, ZoneKey};
    use proptest::prelude::*;

    use super::*;

    fn bundles(n: usize) -> Vec<SignedBundle> {
        let key = ZoneKey::from_seed([9; 32]);
        (0..n)
            .map(|i| {
                let label = format!("n{i}");
                let owner = OwnerName::from_labels([label.as_bytes()]).unwrap();
                let rr = Rr::new(60, &RData::A(A::new(192, 0, 2, i as u8))).unwrap();
                Bundle::new(owner, 5, 2_000_000_000, vec![rr])
                    .unwrap()
                    .sign(&key)
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn round_trip_and_layout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.signed");
        let written = bundles(3);
        write_signed_file(&path, &written).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"KADNSSZ1");
        let first_len = written[0].as_bytes().len();
        assert_eq!(u16::from_be_bytes([bytes[8], bytes[9]]) as usize, first_len);
        assert_eq!(&bytes[10..10 + first_len], written[0].as_bytes());

        let entries = read_signed_file(&path).unwrap();
        assert_eq!(entries.len(), 3);
        let mut offset = 8;
        for (i, entry) in entries.iter().enumerate() {
            assert_eq!((entry.index, entry.offset), (i, offset));
            assert_eq!(entry.bundle.as_ref().unwrap(), &written[i]);
            offset += 2 + written[i].as_bytes().len();
        }
        // Rewriting replaces the file and leaves no temporary behind.
        write_signed_file(&path, &written[..1]).unwrap();
        assert_eq!(read_signed_file(&path).unwrap().len(), 1);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn empty_zone_is_the_magic_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.signed");
        write_signed_file(&path, &[]).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"KADNSSZ1");
        assert!(read_signed_file(&path).unwrap().is_empty());
    }

    #[test]
    fn bad_magic() {
        for bytes in [&b""[..], b"KADNS", b"KADNSSZ2\0\0", b"\0\0\0\0\0\0\0\0"] {
            let err = decode_signed_file(bytes, "x.signed").unwrap_err();
            assert!(matches!(err, SignedFileError::BadMagic { .. }), "{err:?}");
            assert!(err.to_string().contains("x.signed"));
        }
    }

    #[test]
    fn truncation_is_reported_with_index_and_offset() {
        let written = bundles(2);
        let bytes = encode(Path::new("x"), &written).unwrap();
        let second = 8 + 2 + written[0].as_bytes().len();
        // Cut inside the second bundle.
        match decode_signed_file(&bytes[..bytes.len() - 1], "x").unwrap_err() {
            SignedFileError::Truncated {
                index,
                offset,
                needed,
                available,
                ..
            } => {
                assert_eq!((index, offset), (1, second));
                assert_eq!(needed, 2 + written[1].as_bytes().len());
                assert_eq!(available, needed - 1);
            }
            other => panic!("{other:?}"),
        }
        // Cut inside the second length prefix.
        match decode_signed_file(&bytes[..second + 1], "x").unwrap_err() {
            SignedFileError::Truncated {
                index: 1,
                needed: 2,
                available: 1,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
        // A length running far past the end.
        let mut bad = b"KADNSSZ1".to_vec();
        bad.extend_from_slice(&[0xff, 0xff, 1, 2, 3]);
        assert!(matches!(
            decode_signed_file(&bad, "x"),
            Err(SignedFileError::Truncated {
                index: 0,
                offset: 8,
                needed: 65537,
                available: 5,
                ..
            })
        ));
    }

    #[test]
    fn a_bad_bundle_is_reported_in_its_entry() {
        let written = bundles(3);
        let mut bytes = encode(Path::new("x"), &written).unwrap();
        // Corrupt the version byte of the second bundle.
        let second = 8 + 2 + written[0].as_bytes().len();
        bytes[second + 2] = 99;
        let entries = decode_signed_file(&bytes, "x").unwrap();
        assert!(entries[0].bundle.is_ok() && entries[2].bundle.is_ok());
        let err = entries[1].bundle.as_ref().unwrap_err();
        assert_eq!((err.index, err.offset), (1, second));
        assert_eq!(err.source, DecodeError::UnsupportedVersion { version: 99 });
        assert!(
            err.to_string()
                .starts_with(&format!("entry 1 at byte {second}:"))
        );
        // A zero-length entry decodes to an error, not a panic.
        let mut zero = b"KADNSSZ1".to_vec();
        zero.extend_from_slice(&[0, 0]);
        assert!(decode_signed_file(&zero, "x").unwrap()[0].bundle.is_err());
    }

    #[test]
    fn write_errors_name_the_path() {
        let err = write_signed_file("/nonexistent-kadns-dir/z.signed", &bundles(1)).unwrap_err();
        assert!(matches!(err, SignedFileError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent-kadns-dir/z.signed"));
        let err = read_signed_file("/nonexistent-kadns-dir/z.signed").unwrap_err();
        assert!(matches!(err, SignedFileError::Io { .. }));
    }

    proptest! {
        /// Any byte string decodes to entries or an error, never a panic; and
        /// every prefix of a valid file is either a valid file or truncated.
        #[test]
        fn arbitrary_and_truncated_files_never_panic(
            tail in proptest::collection::vec(any::<u8>(), 0..300),
            cut in 0usize..2000,
        ) {
            let mut bytes = SIGNED_FILE_MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = decode_signed_file(&bytes, "x");

            let valid = encode(Path::new("x"), &bundles(3)).unwrap();
            let cut = cut.min(valid.len());
            match decode_signed_file(&valid[..cut], "x") {
                Ok(entries) => prop_assert!(entries.iter().all(|e| e.bundle.is_ok())),
                Err(SignedFileError::Truncated { .. }) => prop_assert!(cut >= 8),
                Err(SignedFileError::BadMagic { .. }) => prop_assert!(cut < 8),
                Err(other) => prop_assert!(false, "{other:?}"),
            }
        }
    }
}
