//! Issue 8, done-when 6: no query outlives the deadline under a DHT whose
//! peers accept requests and never answer. Three hostile in-process peers
//! (`HangingStorage`: the first get blocks the peer's event loop for good)
//! are the whole network of a client-mode stub whose per-lookup DHT bound is
//! raised to 20 s, so that only the per-query deadline (4 s) can cut the
//! wait. `dig` must hear SERVFAIL with EDE 22 within the deadline plus a
//! margin, measured on the client side.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use kadns_dht::{Handle, Node};
use kadns_record::ZoneKey;
use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::hostile::HangingStorage;
use kadns_tests::net::{test_config, wait_until};
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use libp2p::identity::Keypair;
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{dig as run_dig, ede_code, serve, serve_args};

/// The stub's query deadline (the default).
const DEADLINE: Duration = Duration::from_secs(4);
/// Scheduling slack on a loaded 2-core machine, and dig's own start-up.
const MARGIN: Duration = Duration::from_millis(1_500);

/// A hostile peer on a thread of its own (its event loop will block).
struct HangingPeer {
    storage: HangingStorage,
    handle: Handle,
    addr: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HangingPeer {
    fn start() -> TestResult<Self> {
        let storage = HangingStorage::new();
        let (ready, started) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let engine = storage.clone();
        let thread = std::thread::spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            runtime.block_on(async move {
                let keypair = Keypair::generate_ed25519();
                match Node::spawn_with(test_config(), Box::new(engine), keypair).await {
                    Ok(node) => {
                        let addrs = node.handle().listen_addrs().await;
                        let first = addrs
                            .map_err(|e| e.to_string())
                            .and_then(|a| a.first().cloned().ok_or("no address".to_owned()));
                        let _ = ready.send(first.map(|a| (a.to_string(), node.handle())));
                        let _ = stopped.await;
                        node.shutdown().await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                    }
                }
            });
        });
        let (addr, handle) = started.recv_timeout(Duration::from_secs(30))??;
        Ok(Self {
            storage,
            handle,
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for HangingPeer {
    fn drop(&mut self) {
        self.storage.release();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn no_query_outlives_the_deadline_when_peers_never_answer() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(60), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let peers = tokio::task::spawn_blocking(|| {
        (0..3)
            .map(|_| HangingPeer::start())
            .collect::<TestResult<Vec<_>>>()
    })
    .await??;

    // Only the deadline can bound the wait: the DHT bound is far above it.
    let config = dir.path().join("kadns.toml");
    std::fs::write(
        &config,
        "[resolver.dht]\ntimeout_ms = 20000\n[resolver.query]\ndeadline_ms = 4000\n",
    )?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--config".into(),
        config.display().to_string(),
        "--upstream".into(),
        upstream.addr().to_string(),
        "--dht-client".into(),
    ]);
    for peer in &peers {
        args.extend(["--bootstrap".into(), peer.addr.clone()]);
    }
    let stub = serve(args).await?;
    let addr = stub.dns_udp[0];
    // The stub is connected to the hostile peers before it is asked.
    for peer in &peers {
        let handle = peer.handle.clone();
        wait_until(
            "the stub connects to a hostile peer",
            Duration::from_secs(20),
            || {
                let handle = handle.clone();
                async move { handle.connected_peers().await.is_ok_and(|p| !p.is_empty()) }
            },
        )
        .await?;
    }

    let zone = ZoneKey::from_seed([42; 32]).zone_id();
    for rel in ["www", "a.b.c", "www"] {
        let name = format!("{rel}.{zone}");
        let start = Instant::now();
        let out = run_dig(addr, vec![name.clone(), "A".into()]).await?;
        let took = start.elapsed();
        eprintln!("{name}: SERVFAIL after {took:?} (deadline {DEADLINE:?})");
        assert_eq!(
            dig::status(&out).as_deref(),
            Some("SERVFAIL"),
            "{name}: {out}"
        );
        assert_eq!(ede_code(&out), Some(22), "{name}: {out}");
        assert!(
            took <= DEADLINE + MARGIN,
            "{name}: answered after {took:?}, deadline {DEADLINE:?}: {out}"
        );
    }
    let hung: usize = peers
        .iter()
        .map(|p| p.storage.hung().load(Ordering::SeqCst))
        .sum();
    assert!(
        hung > 0,
        "the stub's gets reached a hostile peer and hung there"
    );

    // A forwarded name is still answered meanwhile.
    let out = run_dig(addr, vec!["outside.example".into(), "A".into()]).await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NOERROR"), "{out}");
    drop(stub);
    drop(peers);
    Ok(())
}
