//! Issue 9, done-when 1 and 2: the storage budget holds against a flood of
//! fresh keys, and a node whose disk is full starts, serves what it holds,
//! refuses puts with `disk_full` and accepts them again once space is freed.
//!
//! The flooder is a bare libp2p peer speaking only `/kadns/store/1.0.0`
//! (`kadns_tests::hostile::flood_store`) against a real `kadns serve`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use kadns_dht::{Config, Mode, Node};
use kadns_record::{DhtKey, OwnerName, ZoneId};
use kadns_tests::TestResult;
use kadns_tests::hostile::{FloodReport, flood_store, fresh_zone_bundles};
use kadns_tests::process::KadnsProcess;

use crate::e2e_support::{
    blocking, dig_until, generate_key, publish, replicas, serve, serve_args, terminate,
};

/// Names flooded at the node (issue 9, done-when 1).
const FLOOD: usize = 50_000;

/// The budget given to the flooded node.
const BUDGET: &str = "8MB";
const BUDGET_BYTES: u64 = 8_000_000;

/// How far sled's files may exceed the byte budget: sled 0.34 documents
/// space amplification (its log keeps old versions of pages until segments
/// are cleaned, in 512 KiB segments). Measured: see docs/performance.md,
/// "Limits: storage".
const SLED_OVERHEAD_FACTOR: u64 = 3;

/// A bound on the flooded node's resident memory (VmRSS).
const RSS_BOUND_KIB: u64 = 300 * 1024;

/// Bound on the whole flood.
const FLOOD_TIMEOUT: Duration = Duration::from_secs(480);

fn zone_text(origin: &str, address: &str) -> String {
    format!("$ORIGIN {origin}.\n$TTL 300\nwww IN A {address}\n")
}

/// `VmRSS` of `pid` in KiB.
fn rss_kib(pid: u32) -> TestResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .ok_or("no VmRSS line")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("no VmRSS value")?
        .parse()?)
}

/// Bytes allocated on disk under `dir` (blocks, not apparent sizes).
fn disk_bytes(dir: &Path) -> TestResult<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    Ok(total)
}

fn www_key(zone_id: &str) -> TestResult<DhtKey> {
    let zone: ZoneId = zone_id.parse()?;
    let owner = OwnerName::from_labels([b"www".as_slice()])?;
    Ok(DhtKey::derive(&zone, &owner))
}

async fn flood(target: &str, n: usize, seed: u64) -> TestResult<FloodReport> {
    let target = target.parse()?;
    let records = fresh_zone_bundles(n, seed).map(|b| (b.dht_key(), b.into_bytes()));
    flood_store(&target, records, 32, FLOOD_TIMEOUT).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_fresh_keys_stays_within_the_budget_and_the_held_zone_resolves() -> TestResult {
    let _serial = crate::serial().await;
    tokio::time::timeout(FLOOD_TIMEOUT + Duration::from_secs(120), async {
        let dir = tempfile::tempdir()?;
        let (key, zone_id) = generate_key(dir.path()).await?;
        let zone = dir.path().join("flood.zone");
        std::fs::write(&zone, zone_text("flood.kad", "192.0.2.77"))?;
        let data = dir.path().join("node");
        let mut args = serve_args(&data, "127.0.0.1:0");
        args.extend([
            "--upstream".into(),
            "127.0.0.1:9".into(),
            "--max-storage".into(),
            BUDGET.into(),
            "--anchor".into(),
            format!("flood.kad={zone_id}"),
        ]);
        let node = serve(args).await?;
        let target = node.p2p_addr().to_owned();

        // The zone is published first (and not looked up: the answer must
        // come from the node's store after the flood, not from a cache).
        let run = publish(&key, &zone, &target, 1).await?;
        assert!(run.success, "{run:?}");
        assert!(
            replicas(&run.stdout).iter().all(|(_, n)| *n == 1),
            "{run:?}"
        );

        let db = data.join("dht/db");
        let rss_before = rss_kib(node.pid())?;
        let disk_before = disk_bytes(&db)?;
        let report = flood(&target, FLOOD, 1).await?;
        let rss_after = rss_kib(node.pid())?;
        let disk_after = disk_bytes(&db)?;
        let rate = report.sent as f64 / report.elapsed.as_secs_f64();
        eprintln!(
            "flood: {} sent in {:.1?} ({rate:.0}/s), {} stored, refused {:?}, {} failed; \
             sled dir {disk_before} -> {disk_after} bytes (budget {BUDGET_BYTES}); \
             VmRSS {rss_before} -> {rss_after} KiB",
            report.sent, report.elapsed, report.stored, report.refused, report.failed
        );

        assert_eq!(report.sent, FLOOD);
        assert_eq!(report.failed, 0, "every request is answered: {report:?}");
        assert!(report.stored > 0, "the budget admits some: {report:?}");
        let budget_refusals: usize = report
            .refused
            .iter()
            .filter(|(r, _)| r.starts_with("budget_"))
            .map(|(_, n)| n)
            .sum();
        assert!(
            budget_refusals > 0 && budget_refusals == report.refused_total(),
            "the rest are refused by the budget: {report:?}"
        );
        let per_record = report_cost_floor();
        assert!(
            report.stored as u64 * per_record <= BUDGET_BYTES,
            "{} stored is over the byte budget",
            report.stored
        );
        assert!(
            disk_after <= BUDGET_BYTES * SLED_OVERHEAD_FACTOR,
            "sled's files hold {disk_after} bytes for a {BUDGET_BYTES}-byte budget"
        );
        assert!(
            rss_after <= RSS_BOUND_KIB,
            "VmRSS {rss_after} KiB after the flood"
        );

        // The zone published before the flood resolves from this node alone.
        let stub = node.dns_udp[0];
        let out = dig_until(
            stub,
            &["www.flood.kad", "A"],
            Duration::from_secs(30),
            |o| o.contains("192.0.2.77"),
        )
        .await?;
        assert!(out.contains("status: NOERROR"), "{out}");

        // And a second flood, once full, is refused at once and changes nothing.
        let again = flood(&target, 2_000, 2).await?;
        eprintln!(
            "second flood, budget full: {} sent in {:.1?} ({:.0}/s), refused {:?}",
            again.sent,
            again.elapsed,
            again.sent as f64 / again.elapsed.as_secs_f64(),
            again.refused
        );
        assert_eq!(again.stored, 0, "{again:?}");
        assert_eq!(again.refused_total(), 2_000, "{again:?}");
        terminate(node).await?;
        Ok(())
    })
    .await?
}

/// The least a flooded record is charged: its bundle (over 100 bytes) plus
/// the per-record overhead.
fn report_cost_floor() -> u64 {
    100 + kadns_dht::RECORD_OVERHEAD
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A private mount namespace holding a small tmpfs at `dir`, kept alive by
/// a `sleep` until dropped. Other processes enter it with `nsenter`; this
/// process reaches its files through `/proc/<pid>/root`.
struct Tmpfs {
    holder: Child,
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> TestResult<Self> {
        use std::io::BufRead;
        let script = format!(
            "mount -t tmpfs -o size={size} kadns-test {} && echo mounted && exec sleep 900",
            dir.display()
        );
        let mut holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdout = holder.stdout.take().ok_or("no stdout")?;
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "mounted" {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err(format!("tmpfs mount failed: {line:?}").into());
        }
        Ok(Self {
            holder,
            dir: dir.to_path_buf(),
        })
    }

    /// `path` (inside the tmpfs) as this process can reach it.
    fn outside(&self, path: &Path) -> PathBuf {
        let inside = path.strip_prefix("/").unwrap_or(path);
        PathBuf::from(format!("/proc/{}/root", self.holder.id())).join(inside)
    }

    /// `kadns serve ARGS…` inside the namespace.
    fn serve(&self, args: &[String]) -> TestResult<KadnsProcess> {
        let mut all: Vec<String> = vec![
            "-t".into(),
            self.holder.id().to_string(),
            "-m".into(),
            "--".into(),
            crate::support::KADNS.into(),
        ];
        all.extend(args.iter().cloned());
        KadnsProcess::serve(Path::new("nsenter"), &all)
    }

    /// Writes a file until the tmpfs is full; returns its size.
    fn fill(&self, name: &str) -> TestResult<u64> {
        use std::io::Write;
        let mut file = std::fs::File::create(self.outside(&self.dir.join(name)))?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
                Err(e) => return Err(e.into()),
            }
        }
        // Whatever the page cache still holds must fail now, not later.
        let _ = file.sync_all();
        Ok(written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

async fn dht_get(bootstrap: &str, key: DhtKey) -> TestResult<Option<u64>> {
    let mut config = Config::default();
    config.mode = Mode::Client;
    config.bootstrap = vec![bootstrap.parse()?];
    let client = Node::spawn(config).await?;
    // The node is in the routing table before the get starts.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.handle().bootstrap().await.unwrap_or(0) == 0 {
        if tokio::time::Instant::now() > deadline {
            return Err("the client never joined the node".into());
        }
        tokio::time::sleep(crate::e2e_support::POLL).await;
    }
    let found = client.handle().get(key).await?;
    client.shutdown().await;
    Ok(found.best.map(|b| b.sequence()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_full_disk_starts_serves_refuses_and_recovers() -> TestResult {
    let _serial = crate::serial().await;
    if !is_root()
        || Command::new("unshare").arg("--help").output().is_err()
        || Command::new("nsenter").arg("--help").output().is_err()
    {
        eprintln!(
            "not root or no unshare/nsenter: skipping the full-disk test (CI runs it as root)"
        );
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(300), async {
        let dir = tempfile::tempdir()?;
        let mount = dir.path().join("tmpfs");
        std::fs::create_dir(&mount)?;
        let tmpfs = blocking({
            let mount = mount.clone();
            move || Tmpfs::mount(&mount, "24m")
        })
        .await?;
        let (key, zone_id) = generate_key(dir.path()).await?;
        let zone = dir.path().join("full.zone");
        std::fs::write(&zone, zone_text("full.kad", "192.0.2.88"))?;
        let mut args = serve_args(&mount.join("node"), "127.0.0.1:0");
        args.extend([
            "--upstream".into(),
            "127.0.0.1:9".into(),
            "--max-storage".into(),
            "16MB".into(),
            "--anchor".into(),
            format!("full.kad={zone_id}"),
        ]);
        let tmpfs = std::sync::Arc::new(tmpfs);
        let start =
            |tmpfs: std::sync::Arc<Tmpfs>, args: Vec<String>| blocking(move || tmpfs.serve(&args));

        // First start: the ballast is written; the zone is stored.
        let node = start(tmpfs.clone(), args.clone()).await?;
        let ballast = tmpfs.outside(&mount.join("node/dht").join(kadns_dht::BALLAST_FILE));
        assert!(ballast.exists(), "the ballast is written at first start");
        let run = publish(&key, &zone, node.p2p_addr(), 1).await?;
        assert!(run.success, "{run:?}");
        let before = flood(node.p2p_addr(), 20, 10).await?;
        assert_eq!(before.stored, 20, "{before:?}");

        // The disk fills up under the running node: puts are refused with
        // a clear reason, none acknowledged.
        let filler = mount.join("filler");
        let filled = blocking({
            let tmpfs = tmpfs.clone();
            move || tmpfs.fill("filler")
        })
        .await?;
        eprintln!("filler: {filled} bytes");
        let full = flood(node.p2p_addr(), 20, 11).await?;
        assert_eq!(full.stored, 0, "no ack on a full disk: {full:?}");
        assert_eq!(full.refused.get("disk_full"), Some(&20), "{full:?}");
        let _ = blocking(move || {
            let mut node = node;
            node.terminate()
        })
        .await?;

        // It starts on the full disk (the ballast is given up for sled)...
        let node = start(tmpfs.clone(), args.clone()).await?;
        assert!(!ballast.exists(), "the ballast was deleted to open");
        // ...answers DNS from what it holds...
        let out = dig_until(
            node.dns_udp[0],
            &["www.full.kad", "A"],
            Duration::from_secs(30),
            |o| o.contains("192.0.2.88"),
        )
        .await?;
        assert!(out.contains("status: NOERROR"), "{out}");
        // ...and DHT gets...
        assert!(
            dht_get(node.p2p_addr(), www_key(&zone_id)?)
                .await?
                .is_some(),
            "a DHT get finds the zone's record"
        );
        // ...and refuses puts.
        let refused = flood(node.p2p_addr(), 10, 12).await?;
        assert_eq!(refused.refused.get("disk_full"), Some(&10), "{refused:?}");

        // Space is freed: puts are accepted again, and the ballast is back.
        std::fs::remove_file(tmpfs.outside(&filler))?;
        let after = flood(node.p2p_addr(), 10, 13).await?;
        assert_eq!(after.stored, 10, "{after:?}");
        assert!(ballast.exists(), "the ballast is written again");
        // Nothing acknowledged was lost.
        let first = fresh_zone_bundles(20, 10).next().ok_or("a bundle")?;
        assert_eq!(dht_get(node.p2p_addr(), first.dht_key()).await?, Some(1));
        terminate(node).await?;
        Ok(())
    })
    .await?
}
