//! Reloading the configuration of a running service (SIGHUP, `kadns
//! reload`): trust anchors, upstreams and forwards, the ACL and rate
//! limit, and the `[[publish]]` zones, without dropping the caches or the
//! DHT node. A configuration that cannot be used changes nothing.

use super::Service;
use super::run::ConfigLoader;
use crate::control::ReloadReport;
use crate::notify;
use crate::serve_config::ServeConfig;

impl Service {
    /// Reloads with `loader`, logs the outcome (a failure at warn) and
    /// returns it; the reason on failure.
    pub(crate) async fn reload_logged(
        &mut self,
        loader: Option<&ConfigLoader>,
    ) -> Result<ReloadReport, String> {
        let Some(loader) = loader else {
            let reason = "this node was started without a configuration to reload".to_owned();
            tracing::warn!("reload refused: {reason}");
            return Err(reason);
        };
        notify::reloading();
        let result = match loader() {
            Ok(config) => self.reload(config).await,
            Err(reason) => Err(reason),
        };
        match &result {
            Ok(report) => {
                tracing::info!(applied = ?report.applied, needs_restart = ?report.needs_restart, "configuration reloaded");
                for setting in &report.needs_restart {
                    tracing::warn!("reload: {setting} changed; it takes effect at the next start");
                }
            }
            Err(reason) => {
                tracing::warn!("reload failed, the running configuration is kept: {reason}");
            }
        }
        notify::reloaded(&match &result {
            Ok(_) => "configuration reloaded".to_owned(),
            Err(reason) => format!("reload failed, old configuration kept: {reason}"),
        });
        result
    }

    /// Applies `new`: the resolver's part first (checked whole before
    /// anything changes), then the `[[publish]]` entries (undone if a new
    /// zone cannot be opened, and then the resolver's part too), then the
    /// client policy, which cannot fail.
    async fn reload(&mut self, new: ServeConfig) -> Result<ReloadReport, String> {
        let old = self.config.clone();
        let mut report = ReloadReport::default();
        let resolved = self
            .resolver
            .reload(&new.resolver_config())
            .map_err(|e| format!("resolver: {e}"))?;
        if resolved.anchors {
            report.applied.push("trust anchors".into());
        }
        if resolved.forwarding {
            report.applied.push("upstreams and forwards".into());
        }
        report
            .needs_restart
            .extend(resolved.needs_restart.iter().map(|s| (*s).to_owned()));
        match self.publishers.reload(&new.publish).await {
            Ok((0, 0)) => {}
            Ok((stopped, started)) => report
                .applied
                .push(format!("[[publish]]: {stopped} stopped, {started} started")),
            Err(error) => {
                if let Err(again) = self.resolver.reload(&old.resolver_config()) {
                    tracing::error!(error = %again, "reload: cannot put the old resolver configuration back");
                }
                return Err(error.to_string());
            }
        }
        let policy = new.dns.client_policy();
        if policy != self.stub.client_policy() {
            self.stub.set_client_policy(policy);
            report.applied.push("ACL and rate limit".into());
        }
        let mut restart_only = Vec::new();
        if new.data_dir != old.data_dir {
            restart_only.push("data_dir");
        }
        let mut dns = new.dns.clone();
        dns.allow = old.dns.allow.clone();
        dns.rate_limit = old.dns.rate_limit;
        dns.slip = old.dns.slip;
        if dns != old.dns {
            restart_only.push("dns (listen addresses, limits)");
        }
        if new.p2p != old.p2p {
            restart_only.push("p2p");
        }
        if new.dht != old.dht {
            restart_only.push("dht");
        }
        if new.metrics != old.metrics {
            restart_only.push("metrics");
        }
        report
            .needs_restart
            .extend(restart_only.into_iter().map(str::to_owned));
        // What runs now: the reloadable parts of `new`, the rest as started.
        let mut running = old;
        running.resolver.trust_anchors = new.resolver.trust_anchors;
        running.resolver.upstream = new.resolver.upstream;
        running.resolver.forward = new.resolver.forward;
        running.forward = new.forward;
        running.publish = new.publish;
        running.dns.allow = new.dns.allow;
        running.dns.rate_limit = new.dns.rate_limit;
        running.dns.slip = new.dns.slip;
        self.config = running;
        Ok(report)
    }
}
