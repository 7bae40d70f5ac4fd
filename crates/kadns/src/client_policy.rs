//! Whom the stub answers, and how fast: the allowed networks and the
//! response-rate limit, swapped as one value on reload.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;

/// Response-rate limiting (RRL) over UDP, as BIND does it: responses per
/// second per client prefix (/24 for IPv4, /56 for IPv6) and response class
/// (one answer, one NXDOMAIN name, errors). Beyond the rate, replies are
/// dropped, and every `slip`th dropped reply is sent truncated (TC) instead,
/// so a real client behind a spoofed flood retries over TCP and gets its
/// answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Responses per second per prefix and response class (at least 1).
    pub responses_per_second: u32,
    /// Every `slip`th limited reply is sent as TC instead of dropped; 0 drops every one.
    pub slip: u32,
    /// Whether loopback clients are limited too. The default limit leaves
    /// them alone (they are this machine's own programs); a limit set in the
    /// configuration applies to every client.
    pub loopback: bool,
}

impl RateLimit {
    /// Responses per second per prefix of the default limit, applied to
    /// non-loopback clients when the configuration sets no `rate_limit`.
    pub const DEFAULT_RESPONSES_PER_SECOND: u32 = 100;
    /// Default slip: every second limited reply is sent as TC (BIND's default).
    pub const DEFAULT_SLIP: u32 = 2;

    /// Whether replies to `client` are limited at all.
    pub fn applies_to(&self, client: IpAddr) -> bool {
        self.loopback || !crate::client_policy::canonical(client).is_loopback()
    }
}

/// Whom the stub answers and how fast.
///
/// ```
/// use kadns::{ClientPolicy, RateLimit};
///
/// let policy = ClientPolicy {
///     allow: vec!["192.168.1.0/24".parse().unwrap()],
///     rate_limit: Some(RateLimit { responses_per_second: 50, slip: 2, loopback: true }),
/// };
/// assert!(policy.allows("192.168.1.7".parse().unwrap()));
/// assert!(!policy.allows("10.0.0.1".parse().unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientPolicy {
    /// Client networks answered; every other client gets REFUSED (EDE 18).
    pub allow: Vec<IpNet>,
    /// Response-rate limiting over UDP; `None` turns it off.
    pub rate_limit: Option<RateLimit>,
}

impl ClientPolicy {
    /// A policy that answers every client, unlimited.
    pub fn open() -> Self {
        Self {
            allow: vec![
                "0.0.0.0/0".parse().expect("a valid network literal"),
                "::/0".parse().expect("a valid network literal"),
            ],
            rate_limit: None,
        }
    }

    /// Whether a client at `ip` may be answered (IPv4-mapped IPv6 addresses
    /// count as their IPv4 address).
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allow.iter().any(|net| net.contains(&ip))
    }
}

/// An IPv4-mapped IPv6 address as its IPv4 address; every other address as it is.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The policy in force, shared by the handler (ACL) and the UDP workers
/// (RRL), replaced as one value.
pub(crate) type SharedPolicy = Arc<ArcSwap<ClientPolicy>>;
