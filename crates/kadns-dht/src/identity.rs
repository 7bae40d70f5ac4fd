//! The node's identity key, kept in its data directory with mode 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use libp2p::identity::Keypair;

use crate::error::Error;

/// File name of the identity key inside the data directory.
pub const IDENTITY_FILE: &str = "identity.key";

/// Largest identity file read (a protobuf-encoded ed25519 key is 68 bytes).
const MAX_IDENTITY_LEN: u64 = 4096;

/// Loads the key in `dir`, or creates, writes and syncs a new ed25519 key.
pub(crate) fn load_or_create(dir: &Path) -> Result<Keypair, Error> {
    let path = dir.join(IDENTITY_FILE);
    let err = |e: io::Error| Error::Identity {
        path: path.clone(),
        source: Arc::new(e),
    };
    match File::open(&path) {
        Ok(mut file) => {
            check_mode(&file).map_err(err)?;
            let mut bytes = Vec::new();
            Read::by_ref(&mut file)
                .take(MAX_IDENTITY_LEN)
                .read_to_end(&mut bytes)
                .map_err(err)?;
            Keypair::from_protobuf_encoding(&bytes)
                .map_err(|e| err(io::Error::new(io::ErrorKind::InvalidData, e)))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let keypair = Keypair::generate_ed25519();
            let bytes = keypair
                .to_protobuf_encoding()
                .map_err(|e| err(io::Error::other(e)))?;
            write_new(dir, &path, &bytes).map_err(err)?;
            Ok(keypair)
        }
        Err(e) => Err(err(e)),
    }
}

#[cfg(unix)]
fn check_mode(file: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "identity key is readable by others (mode {:o}); chmod 600 it",
                mode & 0o777
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_mode(_: &File) -> io::Result<()> {
    Ok(())
}

fn write_new(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{IDENTITY_FILE}.tmp"));
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
