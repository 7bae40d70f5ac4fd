//! The default upstreams: the system's resolv.conf.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

/// The `nameserver` addresses in resolv.conf text, port 53, in order.
/// Lines that do not parse are skipped (glibc does the same).
pub(crate) fn nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            // An IPv6 zone (`fe80::1%eth0`) cannot be expressed in an IpAddr: skip it.
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// Reads `path`; a missing or unreadable file means no nameservers.
pub(crate) fn read(path: &Path) -> Vec<SocketAddr> {
    match std::fs::read_to_string(path) {
        Ok(text) => nameservers(&text),
        Err(error) => {
            tracing::info!(path = %path.display(), %error, "cannot read resolv.conf: no default upstream");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameserver_lines() {
        let text = "# comment\nsearch example.com\nnameserver 192.0.2.1\nnameserver   2001:db8::1 \n\
                    nameserver fe80::1%eth0\nnameserver bogus\n;nameserver 192.0.2.9\noptions edns0\nnameserver 127.0.0.53";
        assert_eq!(
            nameservers(text),
            ["192.0.2.1:53", "[2001:db8::1]:53", "127.0.0.53:53"]
                .map(|s| s.parse::<SocketAddr>().unwrap())
        );
        assert!(read(Path::new("/nonexistent/resolv.conf")).is_empty());
    }
}
