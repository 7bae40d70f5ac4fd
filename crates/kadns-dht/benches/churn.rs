//! Figures, no asserts: how many names survive the network turning over.
//!
//! N in-process nodes (default 30) hold a few hundred names (default 300),
//! put once by a client-mode publisher. Then, round after round, `N / 10`
//! fresh nodes join, the round runs for `--round` seconds, and the `N / 10`
//! oldest nodes stop, until every original node is gone (100% replaced).
//! After each round a fresh client node (no local copies, in nobody's
//! routing table) looks every name up; the bench prints the fraction found.
//! Four runs: re-replication off or on (`--interval` seconds), each without
//! the publisher (gone after its first put) and with a publisher that puts
//! every name again once per round.
//!
//! `cargo bench -p kadns-dht --bench churn` (options: `--nodes 30`,
//! `--names 300`, `--round 3`, `--interval 3`).

use std::net::Ipv4Addr;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use futures::StreamExt;
use hickory_proto::rr::{RData, rdata::A};
use kadns_dht::{Config, Handle, Mode, Multiaddr, Node};
use kadns_record::{Bundle, OwnerName, Rr, SignedBundle, ZoneKey};
use rand::SeedableRng;
use rand::seq::IndexedRandom;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, Copy, Debug)]
struct Params {
    nodes: usize,
    names: usize,
    round: Duration,
    interval: Duration,
}

fn bundle(key: &ZoneKey, i: usize, expires: u64) -> SignedBundle {
    let owner = OwnerName::from_labels([format!("c{i}").as_bytes()]).expect("valid label");
    let rr =
        Rr::new(300, &RData::A(A(Ipv4Addr::new(192, 0, 2, (i % 250) as u8)))).expect("valid A");
    Bundle::new(owner, 1, expires, vec![rr])
        .expect("valid content")
        .sign(key)
        .expect("small")
}

fn node_config(replication: Option<Duration>) -> Config {
    let mut c = Config::default();
    c.query_timeout = Duration::from_secs(10);
    c.store_timeout = Duration::from_secs(5);
    c.replication_interval = replication;
    c
}

async fn spawn(config: Config, bootstrap: Vec<Multiaddr>) -> Res<(Node, Multiaddr)> {
    let mut config = config;
    config.bootstrap = bootstrap;
    let node = Node::spawn(config).await?;
    let addr = node
        .handle()
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("no listen address")?;
    Ok((node, addr))
}

/// A client-mode node joined through `bootstrap`.
async fn client(bootstrap: Vec<Multiaddr>) -> Res<Node> {
    let mut c = node_config(None);
    c.mode = Mode::Client;
    c.get_quorum = NonZeroUsize::new(1).expect("1 > 0");
    let (node, _) = spawn(c, bootstrap).await?;
    node.handle()
        .wait_for_peers(1, Duration::from_secs(10))
        .await?;
    let _ = node.handle().bootstrap().await;
    Ok(node)
}

/// Puts every name through `dht`, 16 at a time; the mean replica count.
async fn put_all(dht: &Handle, names: &[SignedBundle]) -> Res<f64> {
    let reports: Vec<_> = futures::stream::iter(names.iter().cloned().map(|b| dht.put(b)))
        .buffer_unordered(16)
        .collect()
        .await;
    let mut replicas = 0;
    for report in reports {
        replicas += report?.replicas();
    }
    Ok(replicas as f64 / names.len() as f64)
}

/// How many names a fresh client finds.
async fn resolving(bootstrap: Vec<Multiaddr>, names: &[SignedBundle]) -> Res<usize> {
    let probe = client(bootstrap).await?;
    let dht = probe.handle();
    let found: Vec<bool> = futures::stream::iter(names.iter().map(|b| {
        let dht = dht.clone();
        let key = b.dht_key();
        async move { matches!(dht.get(key).await, Ok(o) if o.best.is_some()) }
    }))
    .buffer_unordered(16)
    .collect()
    .await;
    probe.shutdown().await;
    Ok(found.into_iter().filter(|f| *f).count())
}

async fn run(p: Params, replication: bool, keep_publishing: bool) -> Res<()> {
    let started = Instant::now();
    let interval = replication.then_some(p.interval);
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // The network: the first node alone, the rest through it.
    let mut alive: Vec<(Node, Multiaddr)> = Vec::with_capacity(p.nodes * 2);
    for _ in 0..p.nodes {
        let seed = alive
            .first()
            .map(|(_, a)| vec![a.clone()])
            .unwrap_or_default();
        alive.push(spawn(node_config(interval), seed).await?);
    }
    settle(&alive).await;
    let settled = started.elapsed();
    let seeds = |alive: &[(Node, Multiaddr)], rng: &mut rand::rngs::StdRng| -> Vec<Multiaddr> {
        alive.sample(rng, 3).map(|(_, a)| a.clone()).collect()
    };

    let zone = ZoneKey::from_seed([77; 32]);
    let expires = kadns_dht::unix_now() + 3600;
    let names: Vec<SignedBundle> = (0..p.names).map(|i| bundle(&zone, i, expires)).collect();
    let publisher = client(seeds(&alive, &mut rng)).await?;
    let replicas = put_all(&publisher.handle(), &names).await?;
    let mut publisher = Some(publisher);
    if !keep_publishing && let Some(p) = publisher.take() {
        p.shutdown().await;
    }
    println!(
        "  replication {}, {}: settled in {settled:.1?}, first put {replicas:.1} replicas per name ({:.1?})",
        if replication { "on" } else { "off" },
        if keep_publishing {
            "publisher re-puts every name each round"
        } else {
            "publisher gone after the first put"
        },
        started.elapsed()
    );

    let step = (p.nodes / 10).max(1);
    let mut replaced = 0;
    let mut round = 0;
    while replaced < p.nodes {
        round += 1;
        for _ in 0..step {
            let seed = seeds(&alive, &mut rng);
            alive.push(spawn(node_config(interval), seed).await?);
        }
        tokio::time::sleep(p.round).await;
        for (node, _) in alive.drain(..step) {
            drop(node);
        }
        replaced += step;
        if let Some(publisher) = &publisher {
            put_all(&publisher.handle(), &names).await?;
        }
        let probing = Instant::now();
        let found = resolving(seeds(&alive, &mut rng), &names).await?;
        let probe_time = probing.elapsed();
        let (mut handover, mut periodic, mut rounds) = (0, 0, 0);
        for (n, _) in &alive {
            let m = n.handle().metrics().clone();
            handover += m.handover_pushes.get();
            periodic += m.replication_pushes.get();
            rounds += m.replication_rounds.get();
        }
        println!(
            "    round {round:>2}: {:>3}% replaced, {found:>4}/{} resolve ({:>5.1}%); live nodes sent {handover} handover and {periodic} periodic pushes in {rounds} rounds ({:.1?}, lookups {probe_time:.1?})",
            replaced * 100 / p.nodes,
            p.names,
            found as f64 * 100.0 / p.names as f64,
            started.elapsed()
        );
    }
    if let Some(p) = publisher {
        p.shutdown().await;
    }
    futures::future::join_all(alive.into_iter().map(|(n, _)| n.shutdown())).await;
    println!("    ({:.1?})", started.elapsed());
    Ok(())
}

/// Bootstraps every node until each knows at least min(n - 1, 20) peers
/// (at most 60 s).
async fn settle(alive: &[(Node, Multiaddr)]) {
    let handles: Vec<Handle> = alive.iter().map(|(n, _)| n.handle()).collect();
    let want = (handles.len() - 1).min(20);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        futures::future::join_all(handles.iter().map(Handle::bootstrap)).await;
        let mut ok = true;
        for h in &handles {
            ok &= h.peers().await.map(|p| p.len() >= want).unwrap_or(false);
        }
        if ok || Instant::now() > deadline {
            return;
        }
    }
}

fn main() -> Res<()> {
    let mut p = Params {
        nodes: 30,
        names: 300,
        round: Duration::from_secs(3),
        interval: Duration::from_secs(3),
    };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"))
        .collect();
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (a.as_str(), value) {
            ("--nodes", Some(v)) => p.nodes = v as usize,
            ("--names", Some(v)) => p.names = v as usize,
            ("--round", Some(v)) => p.round = Duration::from_secs(v),
            ("--interval", Some(v)) => p.interval = Duration::from_secs(v),
            ("--only", Some(v)) => only = Some(v),
            _ => return Err(format!("unknown option {a}").into()),
        }
    }
    println!(
        "churn: {} nodes, {} names, k = 20, {} nodes replaced per round of {:?}, replication interval {:?}",
        p.nodes,
        p.names,
        (p.nodes / 10).max(1),
        p.round,
        p.interval
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (i, (replication, keep)) in [(false, false), (false, true), (true, false), (true, true)]
        .into_iter()
        .enumerate()
    {
        if only.is_none_or(|o| o == i as u64 + 1) {
            rt.block_on(run(p, replication, keep))?;
        }
    }
    Ok(())
}
