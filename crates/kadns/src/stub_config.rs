//! Configuration of the DNS stub.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Where the stub listens and whom it answers.
///
/// The default listens on `127.0.0.1:53` and answers only loopback clients:
/// a stub that answers the whole network is an open resolver, so that takes
/// a deliberate `allow` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StubConfig {
    /// Addresses to answer on, each over both UDP and TCP.
    pub listen: Vec<SocketAddr>,
    /// Client networks that get answers; every other client gets REFUSED.
    /// Loopback (`127.0.0.0/8`, `::1/128`) by default.
    pub allow: Vec<IpNet>,
    /// Largest UDP response, in bytes, even if a client's EDNS buffer is larger.
    /// Larger answers are truncated (TC) and the client retries over TCP.
    pub max_udp_payload: u16,
    /// Idle time after which a TCP client connection is closed, in seconds.
    pub tcp_idle_timeout_secs: u64,
}

/// Default cap on UDP responses: the EDNS buffer size recommended by DNS Flag
/// Day 2020, which avoids IP fragmentation on nearly every path.
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

impl Default for StubConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            allow: vec![
                "127.0.0.0/8".parse().expect("a valid network literal"),
                "::1/128".parse().expect("a valid network literal"),
            ],
            max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
            tcp_idle_timeout_secs: 10,
        }
    }
}
