//! Configuration of the DNS stub.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::client_policy::{ClientPolicy, RateLimit};
use crate::server::conn_limit::ConnectionLimits;

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
    // Limits and sockets (issue 9, issue 11).
    /// UDP responses per second per client prefix (/24, /56) and response
    /// class, for every client, loopback included; 0 turns response-rate
    /// limiting off. Unset: [`RateLimit::DEFAULT_RESPONSES_PER_SECOND`] for
    /// clients off this machine, none for loopback.
    pub rate_limit: Option<u32>,
    /// Every `slip`th reply over the rate is sent truncated (TC) instead of
    /// dropped, so real clients retry over TCP; 0 drops them all.
    pub slip: u32,
    /// TCP connections open at once, all clients together; over it, the
    /// oldest idle connection is closed for a new one.
    pub tcp_max_connections: usize,
    /// TCP connections open at once per client (IPv4 address, IPv6 /64).
    pub tcp_max_connections_per_client: usize,
    /// Queries answered at once on one TCP connection (pipelining).
    pub tcp_max_in_flight: usize,
    /// UDP sockets (`SO_REUSEPORT`), one worker loop each, per listen
    /// address. Unset: one per available CPU.
    pub workers: Option<usize>,
    /// Byte budget of the wire-format answer cache (rendered answers,
    /// served without decoding); 0 turns it off. 4 MiB by default (about
    /// 20,000 answers; a miss only re-renders from the resolver's caches).
    pub answer_cache_bytes: usize,
    // Encrypted DNS (issue 12; docs/operations.md "Encrypted DNS").
    /// Addresses to answer DNS over TLS on (RFC 7858; port 853 by
    /// convention). Needs `tls_cert` and `tls_key`. None by default.
    pub dot_listen: Vec<SocketAddr>,
    /// Addresses to answer DNS over HTTPS on (RFC 8484, `/dns-query`, HTTP/2
    /// and HTTP/1.1; port 443 by convention). Needs `tls_cert` and
    /// `tls_key`. None by default.
    pub doh_listen: Vec<SocketAddr>,
    /// PEM certificate chain (leaf first) for the DoT and DoH listeners.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
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
            rate_limit: None,
            slip: RateLimit::DEFAULT_SLIP,
            tcp_max_connections: 1024,
            tcp_max_connections_per_client: 64,
            tcp_max_in_flight: 16,
            workers: None,
            answer_cache_bytes: crate::answer_cache::DEFAULT_BYTES,
            dot_listen: Vec::new(),
            doh_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl StubConfig {
    /// The client policy this configuration gives: its allowed networks and
    /// its response-rate limit.
    pub fn client_policy(&self) -> ClientPolicy {
        let rate_limit = match self.rate_limit {
            Some(0) => None,
            Some(rate) => Some(RateLimit {
                responses_per_second: rate,
                slip: self.slip,
                loopback: true,
            }),
            None => Some(RateLimit {
                responses_per_second: RateLimit::DEFAULT_RESPONSES_PER_SECOND,
                slip: self.slip,
                loopback: false,
            }),
        };
        ClientPolicy {
            allow: self.allow.clone(),
            rate_limit,
        }
    }

    /// The TCP connection caps.
    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.tcp_max_connections,
            max_per_client: self.tcp_max_connections_per_client,
        }
    }

    /// UDP workers per listen address: `workers`, or one per available CPU.
    pub fn worker_count(&self) -> usize {
        self.workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
            .max(1)
    }
}
