//! A zone update reaches the stub once the cached TTL runs out; an older
//! bundle replayed by a hostile peer is never answered, before or after the
//! stub restarts, not even when it is all the stub can find.
//!
//! The hostile peer is an in-process `kadns_dht::Node` whose storage answers
//! every get for `www` with the first signing's bytes (sequence s0) and
//! keeps nothing it is sent. Its identity is chosen to be the closest to the
//! record's key, so that every get for `www` asks it.

use std::collections::{BTreeSet, HashSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use kadns_dht::{Node, PeerId};
use kadns_publisher::{ZoneState, read_signed_file};
use kadns_record::DhtKey;
use kadns_tests::hostile::ReplayingStorage;
use kadns_tests::net::wait_until;
use kadns_tests::process::KadnsProcess;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use libp2p::identity::Keypair;
use libp2p::kad::{KBucketKey, RecordKey};
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{
    CLI_TIMEOUT, POLL, PUBLISH_TIMEOUT, addresses, dig as run_dig, generate_key, publish, replicas,
    serve, serve_args, serve_with_env, terminate,
};
use crate::support::kadns_async;

const OLD: &str = "192.0.2.10";
const NEW: &str = "192.0.2.20";
/// The TTL of `www`: how long the stub may answer from its cache.
const TTL: u64 = 2;

/// What the stub logs when its rollback store refuses a bundle.
const ROLLBACK_LOG: &str = "bundle refused: rollback";

fn zone_text(www: &str) -> String {
    format!("$ORIGIN test.kad.\n$TTL 60\n@ IN A 192.0.2.1\nwww {TTL} IN A {www}\n")
}

/// The peer id at the end of a `…/p2p/<id>` address.
fn peer_of(addr: &str) -> TestResult<PeerId> {
    let id = addr
        .rsplit("/p2p/")
        .next()
        .ok_or("no /p2p/ in the address")?;
    Ok(PeerId::from_str(id)?)
}

/// An identity closer to `key` (Kademlia's XOR metric) than every peer of
/// `others`: the first peer any get for `key` asks.
fn closest_identity(key: &DhtKey, others: &[PeerId]) -> TestResult<Keypair> {
    let target = KBucketKey::new(RecordKey::new(key.as_bytes()));
    let nearest = others
        .iter()
        .map(|p| target.distance(&KBucketKey::from(*p)))
        .min()
        .ok_or("no other peers")?;
    for _ in 0..10_000 {
        let keypair = Keypair::generate_ed25519();
        if target.distance(&KBucketKey::from(keypair.public().to_peer_id())) < nearest {
            return Ok(keypair);
        }
    }
    Err("no identity closer than every honest peer".into())
}

/// One answer of the stub for `www.test.kad A`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    status: String,
    addrs: BTreeSet<String>,
}

impl Seen {
    fn is(&self, addr: &str) -> bool {
        self.status == "NOERROR" && self.addrs == BTreeSet::from([addr.to_owned()])
    }
}

async fn ask(server: std::net::SocketAddr) -> TestResult<Seen> {
    let out = run_dig(server, vec!["www.test.kad".into(), "A".into()]).await?;
    Ok(Seen {
        status: dig::status(&out).unwrap_or_default(),
        addrs: addresses(&out)?,
    })
}

/// Asks the stub again and again, every answer checked by `allowed`, until
/// `done` holds; an error once `within` has passed. Returns every answer.
async fn watch(
    server: std::net::SocketAddr,
    within: Duration,
    allowed: impl Fn(&Seen) -> bool,
    mut done: impl FnMut(&Seen) -> bool,
) -> TestResult<Vec<Seen>> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let answer = ask(server).await?;
        assert!(allowed(&answer), "{answer:?} after {seen:?}");
        seen.push(answer.clone());
        if done(&answer) {
            return Ok(seen);
        }
        if Instant::now() >= deadline {
            return Err(format!("not done after {within:?}: {seen:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The new address, or SERVFAIL: never the old one.
fn never_old(seen: &Seen) -> bool {
    seen.is(NEW) || seen.status == "SERVFAIL" && seen.addrs.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn updates_are_answered_and_replayed_old_bundles_never_are() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(150), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream = TestUpstream::start(&[]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone = dir.path().join("test.zone");
    std::fs::write(&zone, zone_text(OLD))?;

    // The first signing, kept: these exact bytes are replayed later.
    let old_signed = dir.path().join("old.signed");
    let run = kadns_async(
        &[
            "zone".as_ref(),
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--out".as_ref(),
            old_signed.as_os_str(),
            zone.as_os_str(),
        ],
        CLI_TIMEOUT,
    )
    .await?;
    assert!(run.success, "{run:?}");
    let old = read_signed_file(&old_signed)?
        .into_iter()
        .filter_map(|e| e.bundle.ok())
        .find(|b| b.content().owner().to_string() == "www")
        .ok_or("no www bundle in the signed zone")?;
    let (old_key, old_sequence) = (old.dht_key(), old.content().sequence());

    // Three nodes and the stub (a node too).
    let mut honest: Vec<KadnsProcess> = Vec::new();
    for i in 0..3 {
        let mut args = serve_args(&dir.path().join(format!("n{i}")), "127.0.0.1:0");
        args.extend(["--upstream".into(), upstream.addr().to_string()]);
        if let Some(first) = honest.first() {
            args.extend(["--bootstrap".into(), first.p2p_addr().to_owned()]);
        }
        honest.push(serve(args).await?);
    }
    let stub_dir = dir.path().join("stub");
    let stub_args = |data: &Path, bootstrap: &str| {
        let mut args = serve_args(data, "127.0.0.1:0");
        args.extend([
            "--upstream".into(),
            upstream.addr().to_string(),
            "--anchor".into(),
            format!("test.kad={zone_id}"),
            "--bootstrap".into(),
            bootstrap.to_owned(),
        ]);
        args
    };
    let stub = serve(stub_args(&stub_dir, honest[0].p2p_addr())).await?;
    let stub_peer = peer_of(stub.p2p_addr())?;

    // Version 1: the signed file itself, published.
    let run = kadns_async(
        &[
            "zone".as_ref(),
            "publish".as_ref(),
            "--signed".as_ref(),
            old_signed.as_os_str(),
            "--bootstrap".as_ref(),
            honest[1].p2p_addr().as_ref(),
        ],
        PUBLISH_TIMEOUT,
    )
    .await?;
    assert!(run.success, "{run:?}");
    watch(
        stub.dns_udp[0],
        Duration::from_secs(30),
        |s| s.is(OLD) || s.status == "SERVFAIL",
        |s| s.is(OLD),
    )
    .await?;

    // Version 2: the zone edited and published again, with a higher sequence.
    std::fs::write(&zone, zone_text(NEW))?;
    let run = publish(&key, &zone, honest[2].p2p_addr(), 3).await?;
    assert!(run.success, "{run:?}");
    assert!(
        replicas(&run.stdout).iter().all(|(_, n)| *n >= 3),
        "{run:?}"
    );
    let new_sequence = ZoneState::beside_key(&key)
        .last_sequence()?
        .ok_or("no sequence state")?;
    assert!(
        new_sequence > old_sequence,
        "{new_sequence} > {old_sequence}"
    );
    // Old until the cached TTL runs out, then new, and new from then on.
    let published = Instant::now();
    let seen = watch(
        stub.dns_udp[0],
        Duration::from_secs(30),
        |s| s.is(OLD) || s.is(NEW),
        |s| s.is(NEW),
    )
    .await?;
    let switched = published.elapsed();
    tracing::info!(?switched, answers = seen.len(), "update answered");
    let after = Instant::now();
    watch(
        stub.dns_udp[0],
        Duration::from_secs(30),
        |s| s.is(NEW),
        |_| after.elapsed() > Duration::from_secs(TTL + 1),
    )
    .await?;

    // The hostile peer joins, closer to `www`'s key than any honest node.
    let mut honest_peers: HashSet<PeerId> = HashSet::from([stub_peer]);
    for node in &honest {
        honest_peers.insert(peer_of(node.p2p_addr())?);
    }
    let ids: Vec<PeerId> = honest_peers.iter().copied().collect();
    let mut config = kadns_dht::Config::default();
    config.bootstrap = vec![honest[0].p2p_addr().parse()?];
    config.query_timeout = Duration::from_secs(10);
    config.replication_interval = None;
    let replaying = ReplayingStorage::for_key(old_key, old.as_bytes().to_vec());
    let served = replaying.served();
    let liar = Node::spawn_with(
        config,
        Box::new(replaying),
        closest_identity(&old_key, &ids)?,
    )
    .await?;
    let liar_handle = liar.handle();
    let liar_addr = liar_handle
        .listen_addrs()
        .await?
        .into_iter()
        .next()
        .ok_or("the hostile node has no address")?
        .to_string();
    wait_until(
        "the hostile node to know every honest node",
        Duration::from_secs(30),
        || {
            let (handle, ids) = (liar_handle.clone(), honest_peers.clone());
            async move {
                let _ = handle.bootstrap().await;
                handle
                    .peers()
                    .await
                    .is_ok_and(|peers| ids.iter().all(|p| peers.contains(p)))
            }
        },
    )
    .await?;

    // (a) It pushes the old bundle to everyone: every honest node refuses.
    let report = liar_handle
        .put_unvalidated(old_key, old.as_bytes().to_vec())
        .await?;
    assert_eq!(report.replicas(), 0, "{report:?}");
    let refusers: HashSet<PeerId> = report.refused.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        refusers, honest_peers,
        "every honest node refuses: {report:?}"
    );
    assert!(
        report.refused.iter().all(|(_, reason)| reason == "older"),
        "{report:?}"
    );

    // (b) It answers gets with the old bundle: the stub, asking it on every
    // lookup once the cache runs out, still answers only the new address.
    let before = served.load(Ordering::SeqCst);
    let mut asked_after = None;
    watch(stub.dns_udp[0], Duration::from_secs(30), never_old, |s| {
        let now = served.load(Ordering::SeqCst);
        // Done once an answer came after the hostile node had served at
        // least twice (two cache expiries).
        if asked_after.is_none() && now >= before + 2 {
            asked_after = Some(now);
            return false;
        }
        asked_after.is_some() && s.is(NEW)
    })
    .await?;

    // The honest nodes go away; the stub restarts on the same data directory
    // with only the hostile node to bootstrap from. Its own store still holds
    // version 2.
    for node in honest.drain(..) {
        terminate(node).await?;
    }
    terminate(stub).await?;
    let stub = serve(stub_args(&stub_dir, &liar_addr)).await?;
    let before = served.load(Ordering::SeqCst);
    watch(stub.dns_udp[0], Duration::from_secs(30), never_old, |_| {
        served.load(Ordering::SeqCst) > before
    })
    .await?;
    // A few more answers across a cache expiry.
    let after = Instant::now();
    watch(stub.dns_udp[0], Duration::from_secs(30), never_old, |_| {
        after.elapsed() > Duration::from_secs(TTL + 1)
    })
    .await?;
    terminate(stub).await?;

    // Restarted once more, its DHT records lost (as after a disk failure)
    // but its rollback store kept: now the old bundle is all it can find,
    // and only the rollback store stands between it and the client.
    std::fs::remove_dir_all(stub_dir.join("dht").join("db"))?;
    assert!(stub_dir.join("resolver").exists());
    let log = [("KADNS_LOG", "warn,kadns_resolver=debug")];
    let mut stub = serve_with_env(stub_args(&stub_dir, &liar_addr), &log).await?;
    let before = served.load(Ordering::SeqCst);
    let seen = watch(stub.dns_udp[0], Duration::from_secs(30), never_old, |_| {
        served.load(Ordering::SeqCst) > before && stub.stderr().contains(ROLLBACK_LOG)
    })
    .await?;
    // What is left is the stub's own last verified bundle (its persisted
    // cache, re-validated): served stale, or SERVFAIL once that is gone.
    assert!(
        seen.iter().all(|s| s.status == "SERVFAIL" || s.is(NEW)),
        "the replayed bundle was refused; only version 2 or SERVFAIL: {seen:?}"
    );
    let stderr = stub.stderr();
    assert!(
        stderr.contains(&format!("sequence={old_sequence}"))
            && stderr.contains(&format!("highest={new_sequence}")),
        "the refusal names both sequences: {stderr}"
    );
    assert!(stub.exited()?.is_none(), "{stderr}");

    // The control: a stub that never saw version 2 takes the replayed
    // bundle, which shows the hostile node really served it.
    let fresh = serve(stub_args(&dir.path().join("fresh"), &liar_addr)).await?;
    watch(
        fresh.dns_udp[0],
        Duration::from_secs(30),
        |s| s.is(OLD) || s.status == "SERVFAIL",
        |s| s.is(OLD),
    )
    .await?;
    drop((stub, fresh));
    liar.shutdown().await;
    Ok(())
}
