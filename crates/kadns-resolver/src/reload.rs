//! Changing a running resolver: a new configuration's trust anchors,
//! upstreams and per-domain forwards take effect without dropping the
//! bundle cache (`kadns reload`, SIGHUP); and the caches can be flushed
//! (`kadns cache flush`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_proto::rr::Name;
use kadns_record::{DhtKey, ZoneId};

use crate::config::Config;
use crate::error::Error;
use crate::forwarder::Forwarder;
use crate::resolver::Resolver;
use crate::route::{Route, Router};
use crate::saved_upstreams::SavedUpstreams;
use crate::source::BundleSource;

/// What a resolver was built from, kept for [`Resolver::reload`].
pub(crate) struct ReloadState {
    config: Mutex<Config>,
    local_addrs: Vec<SocketAddr>,
    saved_upstreams: Option<SavedUpstreams>,
}

impl ReloadState {
    pub(crate) fn new(
        config: Config,
        local_addrs: Vec<SocketAddr>,
        saved_upstreams: Option<SavedUpstreams>,
    ) -> Self {
        Self {
            config: Mutex::new(config),
            local_addrs,
            saved_upstreams,
        }
    }

    fn config(&self) -> std::sync::MutexGuard<'_, Config> {
        // Replaced whole under the lock: consistent after a panic.
        self.config.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The trust anchors of `config`, checked: names, not the root, zone ids.
pub(crate) fn anchors(config: &Config) -> Result<Vec<(Name, ZoneId)>, Error> {
    let mut anchors = Vec::new();
    for (name, zone) in &config.trust_anchors {
        let apex = Name::from_ascii(name).map_err(|source| Error::AnchorName {
            name: name.clone(),
            source,
        })?;
        if apex.is_root() {
            return Err(Error::AnchorIsRoot);
        }
        let zone = zone.parse::<ZoneId>().map_err(|source| Error::AnchorZone {
            name: name.clone(),
            source,
        })?;
        anchors.push((apex, zone));
    }
    Ok(anchors)
}

/// What [`Resolver::reload`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reloaded {
    /// The trust anchors changed (and are in force).
    pub anchors: bool,
    /// The upstreams or the per-domain forwards changed: the forwarder was
    /// rebuilt, its cache of forwarded answers started empty.
    pub forwarding: bool,
    /// Settings that differ from the running ones but take effect only at
    /// the next start (`cache`, `dht`, `query`, `forward_cache`).
    pub needs_restart: Vec<&'static str>,
}

/// What [`Resolver::flush_cache`] dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Flushed {
    /// Verified bundles (and negative entries) of kadns names.
    pub bundles: usize,
    /// Forwarded answers.
    pub forwarded: usize,
}

/// How full the resolver's caches are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheSizes {
    /// Entries of the bundle cache (kadns names, negative ones included).
    pub bundles: usize,
    /// Entries of the forward cache.
    pub forwarded: usize,
    /// Bytes held by the forward cache.
    pub forwarded_bytes: usize,
}

impl<S: BundleSource> Resolver<S> {
    /// Puts `config`'s trust anchors, upstreams and per-domain forwards in
    /// force; the bundle cache, the rollback store and the in-flight lookups
    /// are kept. Either everything applies or nothing does: a bad anchor, a
    /// forward domain inside a kadns zone or an upstream that is the
    /// resolver itself is an error and the running configuration stays.
    /// The forwarder (and its cache) is rebuilt only when the upstreams or
    /// the forwards changed.
    ///
    /// ```
    /// use kadns_resolver::{Config, MemorySource, Resolver};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let resolver = Resolver::builder(Config::default(), MemorySource::new()).build()?;
    /// let mut config = Config::default();
    /// let zone = "yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy";
    /// config.trust_anchors.insert("example.kad".into(), zone.into());
    /// assert!(resolver.reload(&config)?.anchors);
    /// let name = "www.example.kad.".parse()?;
    /// assert!(matches!(resolver.route(&name), kadns_resolver::Route::Zone { .. }));
    /// # Ok(()) }
    /// ```
    pub fn reload(&self, config: &Config) -> Result<Reloaded, Error> {
        let inner = &self.inner;
        let state = &inner.reload;
        let mut running = state.config();
        let router = Router::new(anchors(config)?);
        let anchors_changed = running.trust_anchors != config.trust_anchors;
        let forwarding_changed =
            running.upstream != config.upstream || running.forward != config.forward;
        // Built against the new anchors before anything is swapped: a forward
        // domain inside a new anchor is refused here.
        let forwarder = if forwarding_changed || anchors_changed {
            let shared = crate::route::shared(router.clone());
            Some(Forwarder::new(
                config,
                shared,
                &state.local_addrs,
                Arc::clone(self.metrics()),
                state.saved_upstreams.as_ref(),
            )?)
        } else {
            None
        };
        let mut needs_restart = Vec::new();
        if running.cache != config.cache {
            needs_restart.push("resolver.cache");
        }
        if running.dht != config.dht {
            needs_restart.push("resolver.dht");
        }
        if running.query != config.query {
            needs_restart.push("resolver.query");
        }
        if running.forward_cache != config.forward_cache {
            needs_restart.push("resolver.forward_cache");
        }
        inner.router.store(Arc::new(router));
        if forwarding_changed && let Some(mut forwarder) = forwarder {
            // The new forwarder scrubs with the shared, swappable router.
            forwarder.set_router(Arc::clone(&inner.router));
            inner.forwarder.store(Arc::new(forwarder));
        }
        let mut kept = config.clone();
        // Restart-only settings stay as they run, so the next reload
        // reports them again.
        kept.cache = running.cache.clone();
        kept.dht = running.dht.clone();
        kept.query = running.query.clone();
        kept.forward_cache = running.forward_cache.clone();
        *running = kept;
        Ok(Reloaded {
            anchors: anchors_changed,
            forwarding: forwarding_changed,
            needs_restart,
        })
    }

    /// Drops cached answers: for `name` only (its bundle if it is a kadns
    /// name, its forwarded answers of every type otherwise), or everything.
    /// The next query for a dropped name is looked up again. Bundles kept
    /// on disk for serving stale answers are not touched.
    ///
    /// ```
    /// use kadns_resolver::{Config, MemorySource, Resolver};
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let resolver = Resolver::builder(Config::default(), MemorySource::new()).build()?;
    /// let flushed = resolver.flush_cache(None);
    /// assert_eq!(flushed.bundles + flushed.forwarded, 0);
    /// # Ok(()) }
    /// ```
    pub fn flush_cache(&self, name: Option<&Name>) -> Flushed {
        let bundles = &self.inner.fetcher.cache;
        let forwarder = self.inner.forwarder.load();
        match name {
            None => Flushed {
                bundles: bundles.clear(),
                forwarded: forwarder.cache().clear(),
            },
            Some(name) => match self.route(name) {
                Route::Zone { zone, owner, .. } => Flushed {
                    bundles: usize::from(bundles.remove(&DhtKey::derive(&zone, &owner))),
                    forwarded: 0,
                },
                Route::TooLong { .. } => Flushed::default(),
                _ => Flushed {
                    bundles: 0,
                    forwarded: forwarder.cache().remove_name(name),
                },
            },
        }
    }

    /// How many entries the caches hold now.
    pub fn cache_sizes(&self) -> CacheSizes {
        let forwarder = self.inner.forwarder.load();
        CacheSizes {
            bundles: self.inner.fetcher.cache.len(),
            forwarded: forwarder.cache().len(),
            forwarded_bytes: forwarder.cache().bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemorySource;

    const ZONE: &str = "yqooxx9u3aemh8mo5wcqq16yufu6jitouq1o4za751dger1igghy";

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[tokio::test]
    async fn a_bad_reload_changes_nothing_and_a_good_one_swaps_the_anchors() {
        let mut config = Config::default();
        config.upstream.servers = vec!["127.0.0.1:5300".parse().unwrap()];
        let resolver = Resolver::builder(config.clone(), MemorySource::new())
            .build()
            .unwrap();
        assert_eq!(resolver.route(&name("www.example.kad.")), Route::Forward);

        let mut bad = config.clone();
        bad.trust_anchors
            .insert("example.kad".into(), "not-a-zone-id".into());
        assert!(matches!(
            resolver.reload(&bad),
            Err(Error::AnchorZone { .. })
        ));
        let mut inside = config.clone();
        inside
            .trust_anchors
            .insert("example.kad".into(), ZONE.into());
        inside.forward.insert(
            "corp.example.kad".into(),
            vec!["127.0.0.1:5301".parse().unwrap()],
        );
        assert!(
            resolver.reload(&inside).is_err(),
            "forward inside an anchor"
        );
        assert_eq!(resolver.route(&name("www.example.kad.")), Route::Forward);
        let addrs = |servers: &[crate::Upstream]| {
            servers
                .iter()
                .map(crate::Upstream::addr)
                .collect::<Vec<_>>()
        };
        assert_eq!(resolver.upstreams(), addrs(&config.upstream.servers));

        let mut good = config.clone();
        good.trust_anchors.insert("example.kad".into(), ZONE.into());
        good.upstream.servers = vec!["127.0.0.1:5302".parse().unwrap()];
        good.cache.max_entries += 1;
        let reloaded = resolver.reload(&good).unwrap();
        assert!(reloaded.anchors && reloaded.forwarding);
        assert_eq!(reloaded.needs_restart, vec!["resolver.cache"]);
        assert!(matches!(
            resolver.route(&name("www.example.kad.")),
            Route::Zone { .. }
        ));
        assert_eq!(resolver.upstreams(), addrs(&good.upstream.servers));
        // The forwarder scrubs with the reloaded anchors too.
        assert!(
            resolver
                .inner
                .forwarder
                .load()
                .kadns_router()
                .is_kadns(&name("a.example.kad."))
        );
        let again = resolver.reload(&good).unwrap();
        assert!(!again.anchors && !again.forwarding);
    }
}
