//! The control socket: `<data dir>/control`, a Unix socket (mode 0600)
//! through which `kadns status`, `kadns reload` and `kadns cache flush`
//! talk to a running `kadns serve`. See [`protocol`] for the wire format.

mod client;
pub mod protocol;
pub(crate) mod server;
mod status;

use std::path::{Path, PathBuf};

pub use client::{ControlError, request};
pub use protocol::{ReloadReport, Request, Response};
pub(crate) use status::hit_rate;
pub use status::{CacheStatus, DhtStatus, Status, UpstreamStatus};

pub use crate::publish_task::ZoneStatus;
pub use crate::recent_errors::RecentError;

/// The control socket's file name inside the data directory.
pub const SOCKET_NAME: &str = "control";

/// The control socket of the node whose data directory is `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}
