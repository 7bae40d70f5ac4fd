//! `kadns resolve`: one lookup through the embeddable resolver, no stub needed.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use kadns_dht::{DataDir, Mode, Multiaddr, Node};
use kadns_record::hickory_proto::op::ResponseCode;
use kadns_record::hickory_proto::rr::{Name, RecordType};
use kadns_resolver::{Config, Outcome, Resolver};

use super::serve::runtime;
use kadns_publisher::record_line;

/// Exit status for a name that does not exist.
const EXIT_NXDOMAIN: u8 = 3;
/// Exit status for a name that exists without records of the type asked.
const EXIT_NODATA: u8 = 4;

#[derive(Debug, Args)]
#[command(after_help = "Exit status: 0 records printed, 3 NXDOMAIN, 4 NODATA, 1 any failure.")]
pub(crate) struct ResolveArgs {
    /// The name, e.g. www.<zone id> or www.example.kad with --anchor.
    #[arg(value_name = "NAME")]
    name: Name,
    /// The record type.
    #[arg(value_name = "TYPE", default_value = "A")]
    record_type: RecordType,
    /// A node to join through: /ip4|ip6/…/tcp/PORT/p2p/PEERID.
    #[arg(long, value_name = "MULTIADDR", required = true)]
    bootstrap: Vec<Multiaddr>,
    /// Trust anchor: the zone key ZONEID answers for NAME and below.
    #[arg(long, value_name = "NAME=ZONEID", value_parser = super::serve::parse_anchor)]
    anchor: Vec<(String, String)>,
    /// Upstream DNS server for names outside kadns [default: /etc/resolv.conf's].
    #[arg(long, value_name = "ADDR:PORT")]
    upstream: Vec<SocketAddr>,
    /// How long to wait for the network, then for the answer.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

pub(crate) fn run(args: ResolveArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(resolve(args))
}

async fn resolve(args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let mut dht = kadns_dht::Config::default();
    dht.data_dir = DataDir::Temporary;
    dht.mode = Mode::Client;
    dht.bootstrap = args.bootstrap;
    let node = Node::spawn(dht)
        .await
        .context("cannot start a DHT client")?;
    let outcome = lookup(
        &node,
        args.name,
        args.record_type,
        args.anchor,
        args.upstream,
        args.timeout,
    )
    .await;
    node.shutdown().await;
    outcome
}

async fn lookup(
    node: &Node,
    name: Name,
    record_type: RecordType,
    anchors: Vec<(String, String)>,
    upstream: Vec<SocketAddr>,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    node.handle()
        .wait_for_peers(1, timeout)
        .await
        .context("no bootstrap node answered")?;
    let mut config = Config::default();
    config.trust_anchors.extend(anchors);
    if !upstream.is_empty() {
        config.upstream.servers = upstream.into_iter().map(Into::into).collect();
    }
    config.dht.timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    let resolver = Resolver::builder(config, node.handle()).build()?;
    let answer = resolver.lookup(&name, record_type).await;
    match (answer.response_code(), &answer.outcome) {
        (ResponseCode::NoError, _) if !answer.answers.is_empty() => {
            for record in &answer.answers {
                println!("{}", record_line(record));
            }
            if answer.authenticated {
                eprintln!("; verified: signed by the zone key");
            }
            Ok(ExitCode::SUCCESS)
        }
        (ResponseCode::NXDomain, _) => {
            eprintln!("kadns: {name}: no such name (NXDOMAIN)");
            Ok(ExitCode::from(EXIT_NXDOMAIN))
        }
        (ResponseCode::NoError, _) => {
            eprintln!("kadns: {name}: no {record_type} records (NODATA)");
            Ok(ExitCode::from(EXIT_NODATA))
        }
        (_, Outcome::DhtUnavailable { error }) => {
            anyhow::bail!("{name}: the DHT could not answer: {error}")
        }
        (_, Outcome::Failed { error }) => anyhow::bail!("{name}: {error}"),
        (code, _) => anyhow::bail!("{name}: the answer was {code}"),
    }
}
