//! Scenarios: build a world, publish names, disturb it, run lookups.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kadns_dht::Handle;
use kadns_record::DhtKey;
use sha2::{Digest, Sha256};

use crate::link::{LinkConfig, Network};
use crate::names::{NameError, Names, Verdict};
use crate::storage::LieKind;
use crate::world::{Formation, World, WorldError, cpu_seconds, ground_keypair};

/// What disturbs the network while lookups run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// Nothing.
    Steady,
    /// This percentage of nodes dies at once after publishing.
    Dead(f64),
    /// Nodes leave (go dead) and new ones join at this rate per minute
    /// each, while the lookups run.
    Churn(f64),
    /// This percentage of nodes lies ([`LieKind`], assigned in turn).
    Liars(f64),
    /// This many withholding nodes with ids ground close to one name's key.
    Eclipse(usize),
}

impl Kind {
    /// A short name for tables and file names.
    pub fn label(&self) -> String {
        match self {
            Kind::Steady => "steady".into(),
            Kind::Dead(p) => format!("dead-{p}pct"),
            Kind::Churn(r) => format!("churn-{r}per-min"),
            Kind::Liars(p) => format!("liars-{p}pct"),
            Kind::Eclipse(n) => format!("eclipse-{n}"),
        }
    }
}

/// Parameters shared by every scenario of a run.
#[derive(Clone, Debug)]
pub struct Params {
    /// Nodes in the network (attackers included).
    pub nodes: usize,
    /// Lookups to run.
    pub lookups: usize,
    /// Lookups in flight at once.
    pub parallel: usize,
    /// Seed for everything random.
    pub seed: u64,
    /// The link layer.
    pub link: LinkConfig,
    /// Leading bits an eclipse attacker's id shares with the target key.
    pub eclipse_bits: u32,
    /// The configuration every node runs with (start from
    /// [`sim_config`](crate::world::sim_config)).
    pub config: kadns_dht::Config,
}

/// How one lookup went.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Sample {
    /// Wall time from `get` to its answer, milliseconds.
    pub ms: f64,
    /// Kademlia requests the lookup sent.
    pub requests: u32,
    /// What it returned.
    pub outcome: Outcome,
    /// Answers it saw and refused as invalid.
    pub invalid: usize,
}

/// What a lookup returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The newest published version.
    Fresh,
    /// An older published version.
    Stale,
    /// Something never published (must never happen).
    Wrong,
    /// No valid bundle.
    NotFound,
    /// The node failed the call (shut down, timeout).
    Error,
}

/// A scenario's result.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScenarioResult {
    /// The scenario's label.
    pub scenario: String,
    /// How the network formed.
    pub formation: Formation,
    /// Mean replicas per published name.
    pub replicas: f64,
    /// Nodes dead or gone when the lookups ended.
    pub dead: usize,
    /// Nodes that joined during the lookups (churn).
    pub joined: usize,
    /// Every lookup.
    pub samples: Vec<Sample>,
    /// Wall time of the whole scenario, seconds.
    pub wall_s: f64,
    /// The mean RTT, milliseconds.
    pub rtt_ms: f64,
    /// The machine's 1-minute load average at the end (0 when unknown).
    pub load: f64,
    /// CPU seconds the process used in the scenario (both cores count).
    pub cpu_s: f64,
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Building the names failed.
    #[error(transparent)]
    Names(#[from] NameError),
    /// Building the world failed.
    #[error(transparent)]
    World(#[from] WorldError),
    /// Nothing is left to run lookups from.
    #[error("no honest node is left to look names up from")]
    NoQuerier,
}

async fn lookup(handle: Handle, key: DhtKey, names: Arc<Names>) -> Sample {
    let started = Instant::now();
    let got = tokio::time::timeout(Duration::from_secs(90), handle.get(key)).await;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match got {
        Ok(Ok(outcome)) => Sample {
            ms,
            requests: outcome.requests,
            invalid: outcome.invalid_answers,
            outcome: match &outcome.best {
                None => Outcome::NotFound,
                Some(b) => match names.verdict(&key, b.as_bytes()) {
                    Verdict::Fresh => Outcome::Fresh,
                    Verdict::Stale => Outcome::Stale,
                    Verdict::Wrong => Outcome::Wrong,
                },
            },
        },
        _ => Sample {
            ms,
            requests: 0,
            invalid: 0,
            outcome: Outcome::Error,
        },
    }
}

/// The machine's 1-minute load average (`/proc/loadavg`), 0 when unknown.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Runs one scenario from an empty network to its last lookup.
pub async fn run(kind: Kind, params: &Params) -> Result<ScenarioResult, ScenarioError> {
    let started = Instant::now();
    let cpu = cpu_seconds();
    let n = params.nodes.max(2);
    let name_count = match kind {
        Kind::Eclipse(_) => 1,
        _ => params.lookups.clamp(1, 200),
    };
    let names = Names::generate(name_count, params.seed)?;
    let net = Network::new(params.link);
    let book = names.book.clone();
    let names = Arc::new(names);
    let mut world = World::new(net, params.config.clone(), book, params.seed);

    // Who lies, and which identities are ground.
    let mut liars = vec![None; n];
    let mut keys = Vec::new();
    match kind {
        Kind::Liars(pct) => {
            let count = ((n as f64) * pct / 100.0).round() as usize;
            let mut chosen = HashSet::new();
            while chosen.len() < count.min(n - 1) {
                // Node 0 stays honest: the first node everyone joins through.
                let i = 1 + world.random(n - 1);
                if chosen.insert(i) {
                    liars[i] = Some(LieKind::ALL[chosen.len() % LieKind::ALL.len()]);
                }
            }
        }
        Kind::Eclipse(count) => {
            let target: [u8; 32] = Sha256::digest(names.newest[0].dht_key().as_bytes()).into();
            let count = count.min(n - 1);
            keys.resize_with(n, || None);
            for i in (n - count)..n {
                liars[i] = Some(LieKind::Withhold);
                keys[i] = Some(ground_keypair(&target, params.eclipse_bits));
            }
        }
        _ => {}
    }
    let formation = world.form(&liars, keys, 64).await?;

    // Publish from honest nodes.
    let honest: Vec<usize> = (0..n).filter(|i| liars[*i].is_none()).collect();
    let mut puts = Vec::new();
    for bundle in &names.newest {
        let from = honest[world.random(honest.len())];
        puts.push((world.nodes[from].handle.clone(), bundle.clone()));
    }
    let replicas: Vec<usize> = futures::stream::iter(puts)
        .map(|(h, b)| async move { h.put(b).await.map_or(0, |r| r.replicas()) })
        .buffer_unordered(16)
        .collect()
        .await;
    let replicas = replicas.iter().sum::<usize>() as f64 / replicas.len().max(1) as f64;

    if let Kind::Dead(pct) = kind {
        let count = ((n as f64) * pct / 100.0).round() as usize;
        let mut alive = world.alive();
        for _ in 0..count.min(n.saturating_sub(1)) {
            let i = world.random(alive.len());
            world.kill(alive.swap_remove(i));
        }
    }

    // Queriers: honest, running nodes that churn never takes away.
    let mut candidates: Vec<usize> = world
        .alive()
        .into_iter()
        .filter(|i| liars[*i].is_none())
        .collect();
    if candidates.is_empty() {
        return Err(ScenarioError::NoQuerier);
    }
    let mut queriers = Vec::new();
    while queriers.len() < 64.min(candidates.len()) {
        let i = world.random(candidates.len());
        queriers.push(candidates.swap_remove(i));
    }
    let protected: HashSet<usize> = queriers.iter().copied().collect();
    let mut jobs = Vec::with_capacity(params.lookups);
    for i in 0..params.lookups {
        let q = queriers[world.random(queriers.len())];
        let key = names.newest[i % names.newest.len()].dht_key();
        jobs.push((world.nodes[q].handle.clone(), key));
    }
    let lookups = futures::stream::iter(jobs)
        .map(|(h, key)| lookup(h, key, names.clone()))
        .buffer_unordered(params.parallel.max(1));
    tokio::pin!(lookups);
    let churn_period = match kind {
        Kind::Churn(per_min) if per_min > 0.0 => Some(Duration::from_secs_f64(60.0 / per_min)),
        _ => None,
    };
    let mut churn = tokio::time::interval(churn_period.unwrap_or(Duration::from_secs(3600)));
    churn.tick().await;
    let mut samples = Vec::with_capacity(params.lookups);
    let mut joined = 0;
    let mut progress = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = progress.tick() => tracing::info!(
                done = samples.len(),
                secs = started.elapsed().as_secs_f64(),
                cpu_s = cpu_seconds() - cpu,
                open = world.net.open_connections(),
                opened = world.net.connections(),
                "lookups"
            ),
            s = lookups.next() => match s {
                Some(s) => samples.push(s),
                None => break,
            },
            _ = churn.tick(), if churn_period.is_some() => {
                let victims: Vec<usize> = world
                    .alive()
                    .into_iter()
                    .filter(|i| !protected.contains(i))
                    .collect();
                if !victims.is_empty() {
                    let v = victims[world.random(victims.len())];
                    world.kill(v);
                }
                if world.spawn(None, None).await.is_ok() {
                    joined += 1;
                }
            }
        }
    }
    let dead = world.nodes.iter().filter(|n| n.node.is_none()).count();
    world.shutdown().await;
    Ok(ScenarioResult {
        scenario: kind.label(),
        formation,
        replicas,
        dead,
        joined,
        samples,
        wall_s: started.elapsed().as_secs_f64(),
        rtt_ms: params.link.rtt.as_secs_f64() * 1000.0,
        load: load_average(),
        cpu_s: cpu_seconds() - cpu,
    })
}
