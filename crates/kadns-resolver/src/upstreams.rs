//! Which upstream servers the forwarder uses by default: the configured
//! ones, else resolv.conf's, else (the reboot trap) the ones saved at the
//! last good start.

use std::net::SocketAddr;

use crate::config::UpstreamConfig;
use crate::error::Error;
use crate::forwarder::is_self;
use crate::resolv_conf;
use crate::saved_upstreams::SavedUpstreams;
use crate::upstream::Upstream;

/// Picks the default upstreams:
/// 1. `config.servers` when given (`--upstream` always wins), by address
///    (the transport of each is the forwarder's `Transports`' business); an
///    error if one of them is the resolver itself;
/// 2. else the nameservers of `config.resolv_conf`, minus the resolver's own
///    addresses;
/// 3. else, when that leaves none (resolv.conf points at this stub itself,
///    or names nothing usable), the list `saved` holds from the last good
///    start, minus our own addresses, with a warning that says so.
pub(crate) fn select(
    config: &UpstreamConfig,
    own: &[SocketAddr],
    saved: Option<&SavedUpstreams>,
) -> Result<Vec<SocketAddr>, Error> {
    if !config.servers.is_empty() {
        let servers: Vec<SocketAddr> = config.servers.iter().map(Upstream::addr).collect();
        if let Some(addr) = servers.iter().find(|s| is_self(**s, own)) {
            return Err(Error::UpstreamIsSelf { addr: *addr });
        }
        return Ok(servers);
    }
    let Some(path) = &config.resolv_conf else {
        return Ok(Vec::new());
    };
    let listed = resolv_conf::read(path);
    let mut servers = listed.clone();
    servers.retain(|s| {
        let ours = is_self(*s, own);
        if ours {
            tracing::debug!(server = %s, "resolv.conf names this resolver itself: skipped");
        }
        !ours
    });
    if !servers.is_empty() {
        return Ok(servers);
    }
    let Some(saved) = saved else {
        return Ok(servers);
    };
    let mut fallback = saved.load();
    fallback.retain(|s| !is_self(*s, own));
    let why = if listed.is_empty() {
        "names no usable nameserver"
    } else {
        "points at this stub itself"
    };
    if fallback.is_empty() {
        tracing::warn!(
            resolv_conf = %path.display(),
            saved = %saved.path().display(),
            "{} {why} and no upstreams were saved at an earlier start: names outside kadns will get SERVFAIL; pass --upstream",
            path.display()
        );
    } else {
        let list: Vec<String> = fallback.iter().map(ToString::to_string).collect();
        tracing::warn!(
            resolv_conf = %path.display(),
            saved = %saved.path().display(),
            "{} {why}: using the upstreams saved at the last good start: {}",
            path.display(),
            list.join(", ")
        );
    }
    Ok(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    #[tracing_test::traced_test]
    fn resolv_conf_pointing_at_us_falls_back_to_the_saved_list() {
        let dir = tempfile::tempdir().unwrap();
        let resolv = dir.path().join("resolv.conf");
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        let saved = SavedUpstreams::at(dir.path().join("upstreams"));
        let own = [addr("127.0.0.1:53")];
        let mut config = UpstreamConfig {
            resolv_conf: Some(resolv.clone()),
            ..UpstreamConfig::default()
        };
        // Nothing saved yet: no upstream, and a warning saying what to do.
        assert!(select(&config, &own, Some(&saved)).unwrap().is_empty());
        assert!(logs_contain("no upstreams were saved"));

        saved
            .save(&[addr("192.0.2.1:53"), addr("127.0.0.1:53")])
            .unwrap();
        assert_eq!(
            select(&config, &own, Some(&saved)).unwrap(),
            [addr("192.0.2.1:53")],
            "the saved list, minus ourselves"
        );
        assert!(logs_contain(
            "points at this stub itself: using the upstreams saved"
        ));

        // A usable resolv.conf is used as it is.
        std::fs::write(&resolv, "nameserver 192.0.2.7\n").unwrap();
        assert_eq!(
            select(&config, &own, Some(&saved)).unwrap(),
            [addr("192.0.2.7:53")]
        );

        // --upstream always wins.
        std::fs::write(&resolv, "nameserver 127.0.0.1\n").unwrap();
        config.servers = vec![addr("198.51.100.1:53").into()];
        assert_eq!(
            select(&config, &own, Some(&saved)).unwrap(),
            [addr("198.51.100.1:53")]
        );
        config.servers = vec![addr("127.0.0.1:53").into()];
        assert!(matches!(
            select(&config, &own, Some(&saved)),
            Err(Error::UpstreamIsSelf { .. })
        ));
    }
}
