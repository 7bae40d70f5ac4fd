//! The open-file limit: every TCP connection is a file descriptor, so
//! `kadns serve` raises its soft `RLIMIT_NOFILE` to the hard limit at start
//! (systemd's default soft limit is 1,024; its hard limit 524,288).

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft open-file limit to the hard limit and returns the limit
/// now in force. Errors leave the limit as it was.
///
/// ```
/// let limit = kadns::raise_nofile_limit().unwrap();
/// assert!(limit > 0);
/// ```
pub fn raise_nofile_limit() -> Result<u64, nix::Error> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(getrlimit(Resource::RLIMIT_NOFILE)?.0)
}
