//! Who a forward is for: the client's network prefix, the unit every
//! per-client forwarding limit counts in.

use std::net::IpAddr;

/// The holder of forwarding slots and waiter places: a client's /24 (IPv4)
/// or /56 (IPv6), as response-rate limiting counts clients, or the resolver
/// itself (prefetches, names it asks for on its own behalf while chasing a
/// CNAME out of a kadns zone).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum ClientKey {
    /// An IPv4 client's first three bytes (IPv4-mapped IPv6 included).
    V4([u8; 3]),
    /// An IPv6 client's first seven bytes.
    V6([u8; 7]),
    /// The resolver's own queries.
    Internal,
}

impl ClientKey {
    /// The prefix `ip` belongs to.
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                Self::V4([a, b, c])
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of(IpAddr::V4(v4)),
                None => {
                    let o = v6.octets();
                    Self::V6([o[0], o[1], o[2], o[3], o[4], o[5], o[6]])
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> ClientKey {
        ClientKey::of(s.parse().unwrap())
    }

    #[test]
    fn prefixes() {
        assert_eq!(key("127.0.0.1"), key("127.0.0.254"));
        assert_ne!(key("127.0.0.1"), key("127.0.1.1"));
        assert_eq!(key("::ffff:192.0.2.1"), key("192.0.2.9"));
        assert_eq!(key("2001:db8:0:ff::1"), key("2001:db8:0:1::2"), "same /56");
        assert_ne!(key("2001:db8:0:ff::1"), key("2001:db8:0:100::1"));
        assert_ne!(key("127.0.0.1"), ClientKey::Internal);
    }
}
