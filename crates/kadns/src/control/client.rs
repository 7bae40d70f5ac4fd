//! The client side of the control socket, for `kadns status`, `kadns
//! reload` and `kadns cache flush`: blocking, bounded in time.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::protocol::{Request, Response};

/// Why a request to the control socket failed (before the node answered).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// Nothing listens on the socket: the node is not running with this
    /// data directory, or the caller may not open it (mode 0600).
    #[error(
        "cannot reach the node's control socket {path}: {source} (is `kadns serve` running with this data directory, as this user?)"
    )]
    Connect {
        /// The socket's path.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// The exchange failed or timed out.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket's path.
        path: PathBuf,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// The node's answer is not a response.
    #[error("control socket {path}: bad response: {reason}")]
    BadResponse {
        /// The socket's path.
        path: PathBuf,
        /// Why it does not parse.
        reason: String,
    },
}

/// Sends `request` to the control socket at `path` and returns the node's
/// response, waiting at most `timeout` for each read and write.
///
/// ```no_run
/// use kadns::control::{Request, request};
/// let path = kadns::control::socket_path(std::path::Path::new("/var/lib/kadns"));
/// let response = request(&path, &Request::Status, std::time::Duration::from_secs(10))?;
/// assert!(response.ok);
/// # Ok::<(), kadns::control::ControlError>(())
/// ```
pub fn request(
    path: &Path,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ControlError> {
    let io = |source| ControlError::Io {
        path: path.to_owned(),
        source,
    };
    let mut stream = UnixStream::connect(path).map_err(|source| ControlError::Connect {
        path: path.to_owned(),
        source,
    })?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_string(request).map_err(|e| ControlError::BadResponse {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    line.push('\n');
    stream.write_all(line.as_bytes()).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).map_err(io)?;
    serde_json::from_str(&answer).map_err(|e| ControlError::BadResponse {
        path: path.to_owned(),
        reason: format!("{e}: {:?}", answer.trim_end()),
    })
}
