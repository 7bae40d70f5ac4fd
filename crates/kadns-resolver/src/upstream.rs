//! One upstream server and how to reach it: plain DNS (`IP:PORT`, UDP then
//! TCP), DNS over TLS (`tls://IP[:PORT][#NAME]`, RFC 7858) or DNS over HTTPS
//! (`https://IP[:PORT][/PATH][#NAME]`, RFC 8484).
//!
//! The host is always an IP address: the resolver cannot look up its own
//! upstream's name. `#NAME` is the name the server's certificate must carry
//! (and the TLS SNI and HTTP authority); without it the certificate must
//! carry the IP address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default port of DNS over TLS (RFC 7858).
pub const DOT_PORT: u16 = 853;
/// Default port of DNS over HTTPS.
pub const DOH_PORT: u16 = 443;
/// Default DoH path.
pub const DOH_DEFAULT_PATH: &str = "/dns-query";

/// An upstream server.
///
/// ```
/// use kadns_resolver::Upstream;
/// let dot: Upstream = "tls://192.0.2.1#dns.example".parse().unwrap();
/// assert_eq!(dot.addr(), "192.0.2.1:853".parse().unwrap());
/// assert_eq!(dot.to_string(), "tls://192.0.2.1:853#dns.example");
/// let plain: Upstream = "192.0.2.53:53".parse().unwrap();
/// assert_eq!(plain, Upstream::Plain("192.0.2.53:53".parse().unwrap()));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Upstream {
    /// Plain DNS: UDP, then TCP when the answer is truncated.
    Plain(SocketAddr),
    /// DNS over TLS.
    Tls {
        /// The server's address.
        addr: SocketAddr,
        /// The name its certificate must carry; `None`: its IP address.
        name: Option<String>,
    },
    /// DNS over HTTPS (HTTP/2, POST).
    Https {
        /// The server's address.
        addr: SocketAddr,
        /// The name its certificate must carry; `None`: its IP address.
        name: Option<String>,
        /// The request path, `/dns-query` by default.
        path: String,
    },
}

impl Upstream {
    /// The server's socket address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Self::Plain(addr) | Self::Tls { addr, .. } | Self::Https { addr, .. } => *addr,
        }
    }

    /// `udp`, `tls` or `https`.
    pub fn transport(&self) -> &'static str {
        match self {
            Self::Plain(_) => "udp",
            Self::Tls { .. } => "tls",
            Self::Https { .. } => "https",
        }
    }
}

impl From<SocketAddr> for Upstream {
    fn from(addr: SocketAddr) -> Self {
        Self::Plain(addr)
    }
}

/// Why an upstream address does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad upstream {text:?}: {reason} (expected IP:PORT, tls://IP[:PORT][#NAME] or https://IP[:PORT][/PATH][#NAME])"
)]
pub struct UpstreamParseError {
    text: String,
    reason: &'static str,
}

impl FromStr for Upstream {
    type Err = UpstreamParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |reason| UpstreamParseError {
            text: text.to_owned(),
            reason,
        };
        let trimmed = text.trim();
        let (scheme, rest) = match trimmed.split_once("://") {
            None => {
                return trimmed
                    .parse()
                    .map(Self::Plain)
                    .map_err(|_| bad("not an IP:PORT"));
            }
            Some((scheme, rest)) => (scheme.to_ascii_lowercase(), rest),
        };
        let (rest, name) = match rest.split_once('#') {
            Some((_, "")) => return Err(bad("empty name after #")),
            Some((rest, name)) => (rest, Some(name.to_owned())),
            None => (rest, None),
        };
        if let Some(name) = &name
            && rustls::pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(bad("the name after # is not a DNS name"));
        }
        match scheme.as_str() {
            "tls" => Ok(Self::Tls {
                addr: host_port(rest, DOT_PORT)
                    .ok_or_else(|| bad("the host is not an IP[:PORT]"))?,
                name,
            }),
            "https" => {
                let (host, path) = match rest.find('/') {
                    Some(at) => rest.split_at(at),
                    None => (rest, DOH_DEFAULT_PATH),
                };
                Ok(Self::Https {
                    addr: host_port(host, DOH_PORT)
                        .ok_or_else(|| bad("the host is not an IP[:PORT]"))?,
                    name,
                    path: path.to_owned(),
                })
            }
            "udp" | "dns" => host_port(rest, 53)
                .map(Self::Plain)
                .ok_or_else(|| bad("the host is not an IP[:PORT]")),
            _ => Err(bad("unknown scheme")),
        }
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, or an IP alone with the default port.
fn host_port(text: &str, default: u16) -> Option<SocketAddr> {
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    let ip = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    ip.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, default))
}

impl fmt::Display for Upstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name =
            |name: &Option<String>| name.as_ref().map(|n| format!("#{n}")).unwrap_or_default();
        match self {
            Self::Plain(addr) => write!(f, "{addr}"),
            Self::Tls { addr, name: n } => write!(f, "tls://{addr}{}", name(n)),
            Self::Https {
                addr,
                name: n,
                path,
            } => write!(f, "https://{addr}{path}{}", name(n)),
        }
    }
}

impl Serialize for Upstream {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Upstream {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(s: &str) -> Upstream {
        s.parse().unwrap()
    }

    #[test]
    fn parses_and_round_trips() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(up("192.0.2.1:53"), Upstream::Plain(addr("192.0.2.1:53")));
        assert_eq!(up("udp://192.0.2.1"), Upstream::Plain(addr("192.0.2.1:53")));
        assert_eq!(
            up("tls://192.0.2.1:8853#dns.example"),
            Upstream::Tls {
                addr: addr("192.0.2.1:8853"),
                name: Some("dns.example".into())
            }
        );
        assert_eq!(
            up("TLS://[2001:db8::1]"),
            Upstream::Tls {
                addr: addr("[2001:db8::1]:853"),
                name: None
            }
        );
        assert_eq!(
            up("https://192.0.2.1/q#dns.example"),
            Upstream::Https {
                addr: addr("192.0.2.1:443"),
                name: Some("dns.example".into()),
                path: "/q".into()
            }
        );
        assert_eq!(
            up("https://127.0.0.1:8443"),
            Upstream::Https {
                addr: addr("127.0.0.1:8443"),
                name: None,
                path: "/dns-query".into()
            }
        );
        for text in [
            "192.0.2.1:53",
            "tls://192.0.2.1:853#dns.example",
            "tls://[2001:db8::1]:853",
            "https://192.0.2.1:443/dns-query#dns.example",
        ] {
            assert_eq!(up(text).to_string(), text);
            let json = serde_json_like(&up(text));
            assert_eq!(json, text);
        }
        for bad in [
            "dns.example:53",
            "tls://dns.example#dns.example",
            "tls://192.0.2.1#",
            "tls://192.0.2.1#not a name",
            "quic://192.0.2.1",
            "https://host/dns-query",
        ] {
            let err = bad.parse::<Upstream>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    fn serde_json_like(upstream: &Upstream) -> String {
        #[derive(Serialize, Deserialize)]
        struct Wrap {
            u: Upstream,
        }
        let text = toml::to_string(&Wrap {
            u: upstream.clone(),
        })
        .unwrap();
        let back: Wrap = toml::from_str(&text).unwrap();
        assert_eq!(&back.u, upstream);
        back.u.to_string()
    }
}
