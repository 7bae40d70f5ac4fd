//! Incremental publishing at scale: a 100,000-name zone's first publish
//! through in-process DHT nodes, then the time and number of DHT puts to
//! republish after one name changes (one), and a round with nothing to do.
//!
//! `cargo bench -p kadns-publisher --bench incremental` (a release build).
//! `KADNS_BENCH_NAMES` (default 100000) and `KADNS_BENCH_NODES` (default 5)
//! change the sizes. Figures, no assertions on time; the put count is
//! checked, since "one name changed, one put" is the point.

use std::time::{Duration, Instant};

use kadns_dht::{DataDir, Mode, Node};
use kadns_publisher::testing::synthetic_zone;
use kadns_publisher::{Config, ZonePublisher, generate_key};
use kadns_tests::net::{TestNet, test_config};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Res<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Res<()> {
    let names = env("KADNS_BENCH_NAMES", 100_000);
    let nodes = env("KADNS_BENCH_NODES", 5);
    let dir = tempfile::tempdir()?;
    let net = TestNet::start(nodes).await?;
    let mut config = test_config();
    config.mode = Mode::Client;
    config.data_dir = DataDir::Temporary;
    config.bootstrap = vec![net.bootstrap_addr().await?];
    let client = Node::spawn(config).await?;
    let dht = client.handle();
    dht.wait_for_peers(1, Duration::from_secs(10)).await?;

    let key_path = dir.path().join("bench.key");
    generate_key(&key_path)?;
    let zone_path = dir.path().join("bench.zone");
    let text = synthetic_zone("example.org.", names);
    std::fs::write(&zone_path, &text)?;
    println!(
        "incremental publishing: {} names (+ apex), {nodes} in-process nodes",
        names
    );

    let opened = Instant::now();
    let mut publisher = ZonePublisher::open(&key_path, &zone_path, None, &Config::default())?;
    let open_time = opened.elapsed();
    publisher.set_concurrency(kadns_publisher::MAX_PUBLISH_CONCURRENCY);
    let puts_before = dht.metrics().puts.get();
    let started = Instant::now();
    let first = publisher.round(&dht, false, |_| {}).await?;
    let first_time = started.elapsed();
    let first_puts = dht.metrics().puts.get() - puts_before;
    let state_bytes = std::fs::metadata(publisher.state().path())?.len();
    println!("  read + check zone file      {open_time:>10.2?}");
    println!(
        "  first publish               {first_time:>10.2?}  {first_puts} DHT puts ({:.0} names/s), fewest replicas {:?}",
        first.names.len() as f64 / first_time.as_secs_f64(),
        first.fewest_replicas()
    );
    println!("  published-state file        {state_bytes} bytes");

    // One name changes.
    let edited = text.replacen("host42 300 IN A 10.0.0.42", "host42 300 IN A 10.9.9.42", 1);
    assert_ne!(edited, text, "host42 is in the synthetic zone");
    let temp = zone_path.with_extension("tmp");
    std::fs::write(&temp, edited)?;
    std::fs::rename(&temp, &zone_path)?;
    let puts_before = dht.metrics().puts.get();
    let started = Instant::now();
    publisher.check_zone_file()?;
    let reread = started.elapsed();
    let one = publisher.round(&dht, false, |_| {}).await?;
    let one_time = started.elapsed();
    let one_puts = dht.metrics().puts.get() - puts_before;
    assert_eq!(one_puts, 1, "one name changed: one put");
    assert_eq!(one.names.len(), 1);
    println!(
        "  one name changed            {one_time:>10.2?}  {one_puts} DHT put (re-reading the file: {reread:.2?})"
    );

    // Nothing changed: the cost of a poll that finds nothing.
    let started = Instant::now();
    let idle = publisher.round(&dht, false, |_| {}).await?;
    assert!(idle.is_idle());
    println!(
        "  round with nothing to do    {:>10.2?}  0 DHT puts",
        started.elapsed()
    );

    drop(publisher);
    client.shutdown().await;
    net.shutdown().await;
    Ok(())
}
