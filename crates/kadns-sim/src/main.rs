//! `kadns-sim`: runs scenarios and prints their table, `--json`, an SVG CDF
//! per scenario and a last `SUMMARY` line. See docs/dht.md ("Simulator").

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use kadns_dht::BucketInserts;
use kadns_sim::link::{Delay, LinkConfig, Stack};
use kadns_sim::report;
use kadns_sim::scenario::{self, Kind, Params};
use kadns_sim::world::sim_config;

/// jemalloc, not glibc's malloc: libp2p preallocates each routing table
/// (256 buckets × k entries, 1.6 MiB) and glibc's allocator makes all of it
/// resident; at 1,000 nodes that alone is 1.6 GB (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Runs N production kadns-dht nodes over a simulated network and measures
/// lookups.
#[derive(Debug, Parser)]
#[command(name = "kadns-sim", version)]
struct Args {
    /// Nodes in the network.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Mean round-trip time between two nodes (`50ms`).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    rtt: Duration,
    /// Per-pair RTT spread: each pair's RTT is drawn uniformly in
    /// rtt × [1 − J, 1 + J]. 0 means every pair has `--rtt`.
    #[arg(long, default_value_t = 0.0)]
    jitter: f64,
    /// Segment loss probability, percent (a lost segment arrives one RTO late).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Lookups per scenario.
    #[arg(long, default_value_t = 100)]
    lookups: usize,
    /// Lookups in flight at once.
    #[arg(long, default_value_t = 16)]
    parallel: usize,
    /// Run the "dead" scenario: this percentage of nodes dies at once.
    #[arg(long)]
    dead: Vec<f64>,
    /// Run the "liars" scenario with this percentage of lying nodes.
    #[arg(long)]
    liars: Vec<f64>,
    /// Run the "churn" scenario: nodes leaving and joining per minute.
    #[arg(long)]
    churn: Vec<f64>,
    /// Run the "eclipse" scenario with this many ground attacker ids.
    #[arg(long)]
    eclipse: Vec<usize>,
    /// Leading bits an eclipse id shares with its target key.
    #[arg(long, default_value_t = 10)]
    eclipse_bits: u32,
    /// Scenario set: `steady` (also the default when no other flag names one)
    /// or `all` (steady, dead 50 and 80, churn 60/min, liars 20, eclipse 20).
    #[arg(long)]
    scenario: Option<String>,
    /// Seed for everything random.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the figures and every sample as JSON (before the SUMMARY line).
    #[arg(long)]
    json: bool,
    /// Close a connection after this long without a stream (default: the
    /// simulator's node configuration, `sim_config`).
    #[arg(long, value_parser = humantime::parse_duration)]
    idle_timeout: Option<Duration>,
    /// Kademlia's α, requests a lookup keeps in flight (default: the
    /// production default).
    #[arg(long)]
    alpha: Option<std::num::NonZeroUsize>,
    /// How long a get with a valid answer waits for the rest of its quorum
    /// (default: the production default).
    #[arg(long, value_parser = humantime::parse_duration)]
    grace: Option<Duration>,
    /// What connections are made of: `native` (in-memory substreams, no
    /// connection upgrade), `yamux` (byte pipes, an id exchange, Yamux) or
    /// `noise` (byte pipes, Noise, Yamux: the production stack). The round
    /// trips are the same on all three; see docs/dht.md.
    #[arg(long, default_value = "native", value_parser = parse_stack)]
    stack: Stack,
    /// Run lookups over disjoint paths (S/Kademlia; kadns-dht's
    /// `disjoint_query_paths`).
    #[arg(long)]
    disjoint: bool,
    /// How a newly met peer enters a full k-bucket: `if-room` (the
    /// simulator's default) or `probe` (libp2p's and kadns-dht's default:
    /// dial the bucket's oldest disconnected entry to check it).
    #[arg(long, default_value = "if-room", value_parser = parse_inserts)]
    bucket_inserts: BucketInserts,
    /// Directory for the SVG plots.
    #[arg(long, default_value = "target/kadns-sim")]
    out_dir: PathBuf,
}

fn parse_stack(text: &str) -> Result<Stack, String> {
    match text {
        "native" => Ok(Stack::Native),
        "yamux" => Ok(Stack::Yamux),
        "noise" => Ok(Stack::Noise),
        other => Err(format!("unknown stack {other:?}: native, yamux or noise")),
    }
}

fn parse_inserts(text: &str) -> Result<BucketInserts, String> {
    match text {
        "if-room" => Ok(BucketInserts::IfRoom),
        "probe" => Ok(BucketInserts::Probe),
        other => Err(format!(
            "unknown bucket inserts {other:?}: if-room or probe"
        )),
    }
}

fn scenarios(args: &Args) -> anyhow::Result<Vec<Kind>> {
    let mut kinds = Vec::new();
    match args.scenario.as_deref() {
        None => {}
        Some("steady") => kinds.push(Kind::Steady),
        Some("all") => kinds.extend([
            Kind::Steady,
            Kind::Dead(50.0),
            Kind::Dead(80.0),
            Kind::Churn(60.0),
            Kind::Liars(20.0),
            Kind::Eclipse(20),
        ]),
        Some(other) => anyhow::bail!("unknown --scenario {other:?}: use steady or all"),
    }
    for &p in &args.dead {
        anyhow::ensure!((0.0..100.0).contains(&p), "--dead must be in [0, 100)");
        kinds.push(Kind::Dead(p));
    }
    for &p in &args.liars {
        anyhow::ensure!((0.0..100.0).contains(&p), "--liars must be in [0, 100)");
        kinds.push(Kind::Liars(p));
    }
    for &r in &args.churn {
        anyhow::ensure!(r > 0.0 && r.is_finite(), "--churn must be a positive rate");
        kinds.push(Kind::Churn(r));
    }
    for &e in &args.eclipse {
        kinds.push(Kind::Eclipse(e));
    }
    if kinds.is_empty() {
        kinds.push(Kind::Steady);
    }
    Ok(kinds)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,libp2p=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    anyhow::ensure!(args.nodes >= 2, "--nodes must be at least 2");
    anyhow::ensure!(args.lookups >= 1, "--lookups must be at least 1");
    anyhow::ensure!(
        (0.0..100.0).contains(&args.loss),
        "--loss must be in [0, 100)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.jitter),
        "--jitter must be in [0, 1]"
    );
    anyhow::ensure!(
        args.eclipse_bits <= 20,
        "--eclipse-bits above 20 takes too long to grind"
    );
    let kinds = scenarios(&args)?;
    let mut config = sim_config();
    if let Some(idle) = args.idle_timeout {
        config.idle_connection_timeout = idle;
    }
    if let Some(alpha) = args.alpha {
        config.lookup_parallelism = alpha;
    }
    if let Some(grace) = args.grace {
        config.get_grace = grace;
    }
    config.disjoint_query_paths = args.disjoint;
    config.bucket_inserts = args.bucket_inserts;
    let params = Params {
        nodes: args.nodes,
        lookups: args.lookups,
        parallel: args.parallel,
        seed: args.seed,
        link: LinkConfig {
            rtt: args.rtt,
            delay: if args.jitter > 0.0 {
                Delay::Uniform(args.jitter)
            } else {
                Delay::Fixed
            },
            loss: args.loss / 100.0,
            seed: args.seed,
            // The production TCP swarm's dial limit, on the simulated link.
            upgrade_timeout: config.dial_timeout,
            stack: args.stack,
        },
        eclipse_bits: args.eclipse_bits,
        config,
    };
    std::fs::create_dir_all(&args.out_dir)
        .with_context(|| format!("creating {}", args.out_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let started = Instant::now();
    let mut results = Vec::new();
    let mut rows = Vec::new();
    println!("{}", report::TABLE_HEADER);
    for kind in kinds {
        let result = runtime
            .block_on(scenario::run(kind, &params))
            .with_context(|| format!("scenario {}", kind.label()))?;
        let figures = report::scenario_figures(&result);
        println!("{}", report::table_row(&figures));
        let path = args
            .out_dir
            .join(format!("{}-n{}.svg", result.scenario, args.nodes));
        std::fs::write(
            &path,
            report::cdf_svg(&result.scenario, result.rtt_ms, &result.samples),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        rows.push(figures);
        results.push(result);
    }
    let all: Vec<_> = results
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .collect();
    let total = report::figures("all", args.nodes, args.rtt.as_secs_f64() * 1000.0, &all);
    let wall = started.elapsed().as_secs_f64();
    if args.json {
        let json = serde_json::json!({ "figures": rows, "scenarios": results, "total": total });
        println!("{json}");
    }
    println!("{}", report::summary_line(&total, wall));
    Ok(())
}
