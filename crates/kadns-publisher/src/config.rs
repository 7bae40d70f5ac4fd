//! The publisher's configuration.

use serde::{Deserialize, Serialize};

/// How long a signature is valid by default: 7 days. Publishers re-sign well
/// before that; resolvers refuse a bundle once it has expired.
pub const DEFAULT_VALIDITY_SECS: u64 = 7 * 86_400;

/// The shortest signature validity allowed: 10 seconds. Short validities are
/// for tests and fast-changing records; a publisher must be running
/// ([`KeepAlive`](crate::KeepAlive)) to keep such names alive, since it
/// re-signs each name when between a half and a quarter of its validity is
/// left.
pub const MIN_VALIDITY_SECS: u64 = 10;

/// Configuration of the publisher. `Default` gives the documented defaults.
///
/// ```
/// use kadns_publisher::Config;
///
/// let mut config = Config::default();
/// assert_eq!(config.validity_secs, 7 * 86_400);
/// config.validity_secs = 2 * 86_400;
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// How long each signed bundle stays valid, in seconds: its expiry is the
    /// signing time plus this. Must be between [`MIN_VALIDITY_SECS`] (10 s) and
    /// [`MAX_VALIDITY`](kadns_record::MAX_VALIDITY) (31 days). Default 7 days.
    pub validity_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            validity_secs: DEFAULT_VALIDITY_SECS,
        }
    }
}
