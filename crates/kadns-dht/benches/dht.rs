//! Figures, no asserts: put/get latency on 25, 50 and 100 loopback nodes,
//! validated stores per second into sled, and what a replication walk costs
//! at 100,000 records (libp2p's stock job versus the streaming one).
//!
//! `CARGO_TARGET_DIR=target-dht cargo bench -p kadns-dht --bench dht`
//! (arguments: any of `net`, `store`, `replication`; none means all; `net`
//! sizes can be given with `--nodes 25,50`).

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::{RData, rdata::A};
use kadns_dht::{
    Config, Metrics, Node, SledStorage, Storage, StoredRecord, ValidatingStore, unix_now,
};
use kadns_record::{Bundle, OwnerName, Rr, SignedBundle, ZoneKey, validate};
use libp2p::kad::store::RecordStore;
use rand::{RngExt, SeedableRng};

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn bundle(key: &ZoneKey, name: &str, sequence: u64, expires: u64) -> SignedBundle {
    let owner = OwnerName::from_labels([name.as_bytes()]).expect("valid label");
    let rr = Rr::new(300, &RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))).expect("valid A");
    Bundle::new(owner, sequence, expires, vec![rr])
        .expect("valid content")
        .sign(key)
        .expect("small")
}

fn percentiles(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  {name:<4} n={:<4} p50={:>8.2?} p90={:>8.2?} p99={:>8.2?} max={:>8.2?}",
        v.len(),
        p(0.5),
        p(0.9),
        p(0.99),
        v[v.len() - 1]
    );
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|x| x.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

async fn net(n: usize) -> Res<()> {
    let mut base = Config::default();
    base.replication_interval = None;
    let started = Instant::now();
    let first = Node::spawn(base.clone()).await?;
    let seed = first.handle().listen_addrs().await?.remove(0);
    let mut nodes = vec![first];
    for _ in 1..n {
        let mut c = base.clone();
        c.bootstrap = vec![seed.clone()];
        nodes.push(Node::spawn(c).await?);
    }
    let handles: Vec<_> = nodes.iter().map(Node::handle).collect();
    let want = (n - 1).min(20);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        futures::future::join_all(handles.iter().map(|h| h.bootstrap())).await;
        let mut ok = true;
        for h in &handles {
            ok &= h.peers().await?.len() >= want;
        }
        if ok || Instant::now() > deadline {
            break;
        }
    }
    println!("{n} nodes: up and settled in {:.2?}", started.elapsed());
    let zone = ZoneKey::from_seed([42; 32]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(n as u64);
    let mut put_lat = Vec::new();
    let mut replicas = 0;
    let mut keys = Vec::new();
    for i in 0..100 {
        let b = bundle(&zone, &format!("n{n}h{i}"), 1, unix_now() + 3600);
        keys.push(b.dht_key());
        let h = &handles[rng.random_range(0..n)];
        let t = Instant::now();
        let report = h.put(b).await?;
        put_lat.push(t.elapsed());
        replicas += report.replicas();
    }
    let mut get_lat = Vec::new();
    let mut found = 0;
    for _ in 0..300 {
        let key = keys[rng.random_range(0..keys.len())];
        let h = &handles[rng.random_range(0..n)];
        let t = Instant::now();
        let outcome = h.get(key).await?;
        get_lat.push(t.elapsed());
        found += usize::from(outcome.best.is_some());
    }
    percentiles("put", put_lat);
    println!(
        "       mean replicas per put: {:.1}",
        replicas as f64 / 100.0
    );
    percentiles("get", get_lat);
    println!("       found: {found}/300 (quorum 3)");
    futures::future::join_all(nodes.into_iter().map(Node::shutdown)).await;
    Ok(())
}

fn store_throughput() -> Res<()> {
    let dir = tempfile::tempdir()?;
    let (events, _) = tokio::sync::broadcast::channel(16);
    let mut store = ValidatingStore::new(
        Box::new(SledStorage::open(&dir.path().join("db"))?),
        Arc::new(Metrics::default()),
        events,
    );
    let zone = ZoneKey::from_seed([7; 32]);
    let now = unix_now();
    let n = 3000;
    let bundles: Vec<_> = (0..n)
        .map(|i| bundle(&zone, &format!("s{i}"), 1, now + 3600))
        .collect();
    let t = Instant::now();
    for b in &bundles {
        validate(&b.dht_key(), b.as_bytes(), now)?;
    }
    let validate_rate = n as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for b in &bundles {
        store.offer(&b.dht_key(), b.as_bytes(), now, None)?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    // The same writes without the per-record flush, to show what it costs.
    let raw = SledStorage::open(&dir.path().join("raw"))?;
    let t = Instant::now();
    for b in &bundles {
        raw.put(
            &b.dht_key(),
            &StoredRecord {
                expires: now + 3600,
                bytes: b.as_bytes().to_vec(),
            },
        )?;
    }
    raw.flush()?;
    let raw_rate = n as f64 / t.elapsed().as_secs_f64();
    println!(
        "store ({} B bundles, sled on {}):",
        bundles[0].as_bytes().len(),
        dir.path().display()
    );
    println!("  validate only:                         {validate_rate:>9.0} /s");
    println!(
        "  validated store, flushed before ack:   {rate:>9.0} /s  ({:.0} µs each)",
        1e6 / rate
    );
    println!("  raw sled put, one flush at the end:    {raw_rate:>9.0} /s");
    Ok(())
}

fn replication_cost() -> Res<()> {
    const N: usize = 100_000;
    let dir = tempfile::tempdir()?;
    let storage = SledStorage::open(&dir.path().join("db"))?;
    let zone = ZoneKey::from_seed([9; 32]);
    let now = unix_now();
    let t = Instant::now();
    let mut value_bytes = 0;
    for i in 0..N {
        let b = bundle(&zone, &format!("r{i}"), 1, now + 3600);
        value_bytes += b.as_bytes().len();
        storage.put(
            &b.dht_key(),
            &StoredRecord {
                expires: now + 3600,
                bytes: b.into_bytes(),
            },
        )?;
    }
    storage.flush()?;
    println!(
        "replication walk over {N} records ({value_bytes} B of bundles), filled in {:.2?}:",
        t.elapsed()
    );
    let (events, _) = tokio::sync::broadcast::channel(16);
    let store = ValidatingStore::new(Box::new(storage), Arc::new(Metrics::default()), events);

    // libp2p's stock PutRecordJob: records().into_owned().collect() in one
    // go, synchronously inside the swarm's poll.
    let before = rss_bytes();
    let t = Instant::now();
    let all: Vec<_> = store.records().map(Cow::into_owned).collect();
    let took = t.elapsed();
    let after = rss_bytes();
    let held: usize = all
        .iter()
        .map(|r| r.value.capacity() + r.key.as_ref().len() + size_of_val(&all[0]))
        .sum();
    println!(
        "  stock job (collect all):  {took:>8.2?} blocking the swarm task, {} records, {:.1} MiB held (RSS +{:.1} MiB)",
        all.len(),
        held as f64 / 1048576.0,
        after.saturating_sub(before) as f64 / 1048576.0
    );
    drop(all);

    // The streaming job: 32 records per step, one step per 50 ms.
    let mut cursor = None;
    let mut steps = 0;
    let mut longest = Duration::ZERO;
    let mut count = 0;
    let t = Instant::now();
    loop {
        let s = Instant::now();
        let batch = store
            .storage()
            .scan(cursor.as_ref(), kadns_dht::REPLICATION_BATCH)?;
        longest = longest.max(s.elapsed());
        steps += 1;
        count += batch.len();
        cursor = batch.last().map(|(k, _)| *k);
        if batch.len() < kadns_dht::REPLICATION_BATCH {
            break;
        }
    }
    println!(
        "  streaming job:            {:>8.2?} in total over {steps} steps, longest step {longest:.2?}, {count} records, one batch ({}) held",
        t.elapsed(),
        kadns_dht::REPLICATION_BATCH
    );
    println!(
        "  a full round at one step per {:?} spreads over {:.0} s",
        kadns_dht::REPLICATION_STEP,
        steps as f64 * kadns_dht::REPLICATION_STEP.as_secs_f64()
    );
    Ok(())
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--bench"))
        .collect();
    let mut sizes = vec![25, 50, 100];
    let mut parts = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--nodes" {
            if let Some(list) = it.next() {
                sizes = list.split(',').filter_map(|s| s.parse().ok()).collect();
            }
        } else {
            parts.push(a.as_str());
        }
    }
    let all = parts.is_empty();
    if all || parts.contains(&"store") {
        store_throughput()?;
    }
    if all || parts.contains(&"replication") {
        replication_cost()?;
    }
    if all || parts.contains(&"net") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        for n in sizes {
            rt.block_on(net(n))?;
        }
    }
    Ok(())
}
