//! `kadns serve`: the DHT node and the DNS stub, until SIGINT or SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use ipnet::IpNet;
use kadns::{ServeConfig, Service};
use kadns_dht::Multiaddr;

#[derive(Debug, Clone, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file; flags given here override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// DNS address to answer on, UDP and TCP [default: 127.0.0.1:53].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// DNS-over-TLS address to answer on (RFC 7858; repeatable), e.g.
    /// 127.0.0.1:853. Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR:PORT")]
    dot_listen: Vec<SocketAddr>,
    /// DNS-over-HTTPS address to answer on (RFC 8484, https://ADDR:PORT/dns-query;
    /// repeatable), e.g. 127.0.0.1:443. Needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR:PORT")]
    doh_listen: Vec<SocketAddr>,
    /// PEM certificate chain (leaf first) of the DoT and DoH listeners.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Client network allowed to query, e.g. 192.168.1.0/24 (repeatable). Replaces
    /// the configured list (loopback only by default): add 127.0.0.0/8 to keep
    /// answering this machine.
    #[arg(long, value_name = "NET")]
    allow: Vec<IpNet>,
    /// UDP responses per second per client prefix and response class, loopback
    /// clients included; 0 turns response-rate limiting off
    /// [default: 100 for clients off this machine, none for loopback].
    #[arg(long, value_name = "N")]
    rate_limit: Option<u32>,
    /// libp2p address to listen on for other nodes [default: /ip4/0.0.0.0/tcp/4001].
    #[arg(long, value_name = "MULTIADDR")]
    p2p_listen: Vec<Multiaddr>,
    /// A node to join through: /ip4|ip6/…/tcp/PORT/p2p/PEERID (DNS names are refused).
    #[arg(long, value_name = "MULTIADDR")]
    bootstrap: Vec<Multiaddr>,
    /// Where identity, records, peers and seen sequences are kept
    /// [default: $XDG_DATA_HOME/kadns].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Upstream DNS server for names outside kadns (repeatable, tried in order):
    /// IP:PORT, tls://IP[:PORT][#NAME] (DNS over TLS) or
    /// https://IP[:PORT][/PATH][#NAME] (DNS over HTTPS); NAME is the name the
    /// server's certificate must carry [default: the nameservers of /etc/resolv.conf].
    #[arg(long, value_name = "UPSTREAM")]
    upstream: Vec<kadns_resolver::Upstream>,
    /// PEM file of CA certificates trusted for DoT and DoH upstreams, besides the
    /// system's trust store.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,
    /// Trust anchor: the zone key ZONEID answers for NAME and below (e.g. example.kad=<zone id>).
    #[arg(long, value_name = "NAME=ZONEID", value_parser = parse_anchor)]
    anchor: Vec<(String, String)>,
    /// Run the DHT node as a client: look records up, store none for others.
    #[arg(long)]
    dht_client: bool,
    /// Forward DOMAIN and the names below it to ADDR:PORT (repeatable; the
    /// longest domain wins), e.g. corp.example=192.0.2.53:53.
    #[arg(long, value_name = "DOMAIN=ADDR:PORT", value_parser = parse_forward)]
    forward: Vec<(String, SocketAddr)>,
    /// Serve Prometheus metrics on http://ADDR:PORT/metrics [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,
    /// How often stored records are handed again to the closest nodes, e.g. 1h, 30s
    /// [default: 1h; at least 1s].
    #[arg(long, value_name = "DURATION", value_parser = parse_replication_interval)]
    replication_interval: Option<std::time::Duration>,
    /// Most bytes of records stored for the network, e.g. 8MB, 512MiB, 1G
    /// (kB/MB/GB are powers of 1000, K/M/G and KiB/MiB/GiB of 1024)
    /// [default: 1GiB]. Once full, new keys are refused.
    #[arg(long, value_name = "SIZE", value_parser = parse_max_storage)]
    max_storage: Option<u64>,
}

fn parse_max_storage(text: &str) -> Result<u64, String> {
    kadns_dht::parse_size(text).map_err(|e| e.to_string())
}

fn parse_replication_interval(text: &str) -> Result<std::time::Duration, String> {
    let interval = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    kadns::DhtConfig::check_replication_interval(interval)
}

pub(crate) fn parse_anchor(text: &str) -> Result<(String, String), String> {
    let (name, zone) = text.split_once('=').ok_or("expected NAME=ZONEID")?;
    zone.parse::<kadns_record::ZoneId>()
        .map_err(|e| format!("bad zone id for {name}: {e}"))?;
    Ok((name.trim().to_owned(), zone.trim().to_owned()))
}

pub(crate) fn parse_forward(text: &str) -> Result<(String, SocketAddr), String> {
    let (domain, addr) = text.split_once('=').ok_or("expected DOMAIN=ADDR:PORT")?;
    let addr = addr
        .trim()
        .parse()
        .map_err(|e| format!("bad server address for {domain}: {e}"))?;
    Ok((domain.trim().to_owned(), addr))
}

impl ServeArgs {
    /// The configuration file (or defaults) with the flags applied on top.
    pub(crate) fn into_config(self) -> anyhow::Result<ServeConfig> {
        let mut config = match &self.config {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        if !self.listen.is_empty() {
            config.dns.listen = self.listen;
        }
        if !self.dot_listen.is_empty() {
            config.dns.dot_listen = self.dot_listen;
        }
        if !self.doh_listen.is_empty() {
            config.dns.doh_listen = self.doh_listen;
        }
        if self.tls_cert.is_some() {
            config.dns.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            config.dns.tls_key = self.tls_key;
        }
        if !self.allow.is_empty() {
            config.dns.allow = self.allow;
        }
        if self.rate_limit.is_some() {
            config.dns.rate_limit = self.rate_limit;
        }
        if !self.p2p_listen.is_empty() {
            config.p2p.listen = self.p2p_listen;
        }
        config.p2p.bootstrap.extend(self.bootstrap);
        if self.dht_client {
            config.p2p.client = true;
        }
        if self.data_dir.is_some() {
            config.data_dir = self.data_dir;
        }
        if !self.upstream.is_empty() {
            config.resolver.upstream.servers = self.upstream;
        }
        if self.upstream_ca.is_some() {
            config.resolver.upstream.ca = self.upstream_ca;
        }
        config.resolver.trust_anchors.extend(self.anchor);
        for (domain, addr) in self.forward {
            config.forward.entry(domain).or_default().push(addr);
        }
        if let Some(interval) = self.replication_interval {
            config.dht.replication_interval = interval;
        }
        if let Some(bytes) = self.max_storage {
            config.dht.max_storage = bytes;
        }
        if let Some(listen) = self.metrics {
            config.metrics = Some(kadns::MetricsConfig::new(listen));
        }
        Ok(config)
    }
}

pub(crate) fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let loader = config_loader(&args);
    let config = args.into_config()?;
    // Every TCP connection is a file descriptor: the caps, not the soft
    // limit, should be what bounds them.
    match kadns::raise_nofile_limit() {
        Ok(limit) => tracing::debug!(limit, "open-file limit"),
        Err(error) => tracing::warn!(%error, "cannot raise the open-file limit"),
    }
    runtime()?.block_on(async {
        let service = Service::start(&config).await?;
        print_addresses(&service).await?;
        supervised(service, loader).await
    })
}

/// Re-reads the configuration for a reload: the file again, with the same
/// flags on top (they keep winning).
fn config_loader(args: &ServeArgs) -> kadns::ConfigLoader {
    let args = args.clone();
    std::sync::Arc::new(move || args.clone().into_config().map_err(|e| format!("{e:#}")))
}

/// Runs the started service until SIGINT/SIGTERM (exit 0) or until one of
/// its parts dies (exit 1, so that systemd's Restart=on-failure restarts it).
async fn supervised(service: Service, loader: kadns::ConfigLoader) -> anyhow::Result<ExitCode> {
    match service.run(Some(loader), shutdown_signal()).await {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(failure) => {
            eprintln!("kadns: error: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The runtime every networked command runs on.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// One line per address, in a stable format scripts can read:
/// `p2p <multiaddr>/p2p/<peer id>`, `metrics http <addr>` (if configured),
/// `dns tls <addr>` and `dns https <addr>` (if configured), `dns udp <addr>`,
/// `dns tcp <addr>`. The `dns tcp` lines stay last, so a reader can stop there.
pub(crate) async fn print_addresses(service: &Service) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let p2p = service.p2p_addrs().await;
    if p2p.is_empty() {
        bail!("the DHT node listens on no address");
    }
    for addr in p2p {
        writeln!(out, "p2p {addr}")?;
    }
    if let Some(addr) = service.metrics_addr() {
        writeln!(out, "metrics http {addr}")?;
    }
    for addr in service.stub().dot_addrs() {
        writeln!(out, "dns tls {addr}")?;
    }
    for addr in service.stub().doh_addrs() {
        writeln!(out, "dns https {addr}")?;
    }
    for addr in service.stub().udp_addrs() {
        writeln!(out, "dns udp {addr}")?;
    }
    for addr in service.stub().tcp_addrs() {
        writeln!(out, "dns tcp {addr}")?;
    }
    out.flush()?;
    Ok(())
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM and says which came.
pub(crate) async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return "SIGINT";
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
