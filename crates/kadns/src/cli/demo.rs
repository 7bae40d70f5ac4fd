//! `kadns demo`: a small kadns network on this machine, a demo zone published
//! into it, and a stub answering `dig` — no configuration, no network.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use kadns::{ServeConfig, Service};
use kadns_dht::{Multiaddr, Node};
use kadns_publisher::{Config as SignConfig, ParsedZone, Signer, ZoneState};
use kadns_record::ZoneKey;
use kadns_record::hickory_proto::rr::{Name, RecordType};

use super::serve::{runtime, shutdown_signal};

/// The demo zone, built into the binary so `kadns demo` works from anywhere.
const DEMO_ZONE: &str = include_str!("../../../../examples/demo.zone");

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the stub answers DNS, UDP and TCP.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:5353")]
    listen: SocketAddr,
    /// How many DHT nodes to run besides the stub's own.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// Publish this zone file instead of the built-in demo zone.
    #[arg(long, value_name = "FILE")]
    zone: Option<PathBuf>,
}

pub(crate) fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(demo(args))
}

async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let zone = match &args.zone {
        Some(path) => ParsedZone::from_file(path, None)?,
        None => ParsedZone::from_text(DEMO_ZONE, "examples/demo.zone", None)?,
    };

    // The network: N server nodes on loopback, each joining through the first.
    let mut nodes: Vec<Node> = Vec::new();
    let mut first: Vec<Multiaddr> = Vec::new();
    for _ in 0..args.nodes {
        let mut config = kadns_dht::Config::default();
        config.bootstrap = first.clone();
        let node = Node::spawn(config)
            .await
            .context("cannot start a DHT node")?;
        if first.is_empty() {
            first = node.handle().listen_addrs().await?;
        }
        nodes.push(node);
    }
    // Everyone has joined: one more bootstrap round lets early nodes learn
    // of later ones, then each node must know at least one other.
    let wanted = usize::from(args.nodes > 1);
    for node in &nodes {
        let _ = node.handle().bootstrap().await;
    }
    for node in &nodes {
        node.handle()
            .wait_for_peers(wanted, Duration::from_secs(20))
            .await
            .context("the demo network did not form")?;
    }

    // The zone: a fresh key, every name signed and stored on the network.
    let key = ZoneKey::from_seed(rand::random());
    let zone_id = key.zone_id();
    let signer = Signer::new(
        key,
        ZoneState::at(work.path().join("demo.state")),
        &SignConfig::default(),
    )?;
    let signed = signer.sign(&zone)?;
    let publisher = nodes.first().context("at least one node")?.handle();
    let mut weakest = usize::MAX;
    for bundle in signed.bundles() {
        let report = publisher.put(bundle.clone()).await?;
        weakest = weakest.min(report.replicas());
    }

    // The stub, with a trust anchor so the zone answers under its readable name.
    let mut config = ServeConfig::default();
    config.data_dir = Some(work.path().join("stub"));
    config.dns.listen = vec![args.listen];
    config.p2p.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    config.p2p.bootstrap = first.clone();
    let first_addr = first;
    let origin = zone.origin().to_ascii();
    let readable = origin.trim_end_matches('.').to_string();
    config
        .resolver
        .trust_anchors
        .insert(readable.clone(), zone_id.to_string());
    let service = Service::start(&config).await?;
    service
        .dht()
        .wait_for_peers(1, Duration::from_secs(20))
        .await
        .context("the stub did not join")?;

    let stub_addr = service
        .stub()
        .udp_addrs()
        .first()
        .copied()
        .unwrap_or(args.listen);
    let (ip, port) = (stub_addr.ip(), stub_addr.port());
    println!(
        "kadns demo: {} DHT nodes on 127.0.0.1, a stub on {stub_addr}",
        args.nodes
    );
    println!("zone {readable} = {zone_id}");
    if let Some(addr) = first_addr.first() {
        println!("bootstrap {addr}");
    }
    println!(
        "published {} names, {} records; every name stored on at least {weakest} nodes",
        signed.summary().names,
        signed.summary().records
    );
    println!();
    println!("try:");
    for command in dig_commands(&zone, ip, port, &readable, &zone_id.to_string()) {
        println!("  {command}");
    }
    println!();
    println!("Ctrl-C to stop.");
    if weakest == 0 {
        bail!("a name was stored on no node");
    }

    let signal = shutdown_signal().await;
    tracing::info!("{signal}: stopping the demo");
    service.shutdown().await;
    for node in nodes {
        node.shutdown().await;
    }
    Ok(ExitCode::SUCCESS)
}

/// One `dig` command per name and type of the zone, then the same zone under
/// its self-certifying name, then a name that does not exist.
fn dig_commands(
    zone: &ParsedZone,
    ip: std::net::IpAddr,
    port: u16,
    readable: &str,
    zone_id: &str,
) -> Vec<String> {
    let origin = zone.origin();
    let mut commands = Vec::new();
    for records in zone.names().values() {
        // Ask a CNAME for its target's address: dig then shows the whole chain.
        let mut types: Vec<String> = records
            .iter()
            .map(|r| {
                if r.record_type() == RecordType::CNAME {
                    "A".to_owned()
                } else {
                    r.record_type().to_string()
                }
            })
            .collect();
        types.dedup();
        for t in types.into_iter().filter(|t| t != "SOA") {
            if let Some(record) = records.first() {
                commands.push(format!(
                    "dig @{ip} -p {port} {} {t}",
                    display_name(record.name(), origin, readable)
                ));
            }
        }
    }
    commands.push(format!("dig @{ip} -p {port} www.{zone_id} A"));
    commands.push(format!("dig @{ip} -p {port} nonexistent.{readable} A"));
    commands
}

fn display_name(name: &Name, origin: &Name, readable: &str) -> String {
    // Label counts, not `num_labels()` (which leaves out a leading `*`).
    let relative = name.iter().count().saturating_sub(origin.iter().count());
    let labels: Vec<String> = name
        .iter()
        .take(relative)
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect();
    if labels.is_empty() {
        readable.to_owned()
    } else {
        format!("{}.{readable}", labels.join("."))
    }
}
