//! Names that stay alive: `zone publish --keep` re-signs before expiry and
//! follows edits of the zone file (changed addresses, removed names as
//! tombstones, syntax errors refused), a replayed old bundle cannot bring a
//! removed name back, and `[[publish]]` in `serve`'s configuration does the
//! same inside a node.
//!
//! Sequences are observed with an in-process `kadns_dht` client node that
//! looks each name's key up: the bundle the network hands out, validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kadns_dht::{DataDir, Mode, Multiaddr, Node};
use kadns_record::{DhtKey, OwnerName, VerifiedBundle, ZoneId};
use kadns_tests::process::KadnsProcess;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{
    POLL, addresses, blocking, dig_until, generate_key, network, serve, serve_args, terminate,
};

/// How long to wait for one thing the network or the publisher does.
const STEP: Duration = Duration::from_secs(20);
use crate::support::{KADNS, kadns_async};

/// The TTL of every record but the apex's: how long a stub may cache it.
const TTL: u64 = 2;
/// How long one `kadns resolve` may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(20);

fn zone_text(www: &str, with_gone: bool) -> String {
    let mut text = format!(
        "$ORIGIN test.kad.\n$TTL {TTL}\n\
         @ 60 IN SOA ns hostmaster 1 7200 3600 1209600 {TTL}\n\
         www IN A {www}\n\
         mail IN A 192.0.2.25\n\
         ftp IN AAAA 2001:db8::21\n"
    );
    if with_gone {
        text.push_str("gone IN A 192.0.2.99\n");
    }
    text
}

/// Replaces `path` the way editors do: a new file renamed over the old.
fn save(path: &Path, text: &str) -> TestResult {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

fn owner(name: &str) -> TestResult<OwnerName> {
    if name == "@" {
        return Ok(OwnerName::apex());
    }
    Ok(OwnerName::from_labels(name.split('.').map(str::as_bytes))?)
}

/// A client node joined to the network through `bootstrap`, for lookups.
async fn observer(bootstrap: &str) -> TestResult<Node> {
    let mut config = kadns_dht::Config::default();
    config.data_dir = DataDir::Temporary;
    config.mode = Mode::Client;
    config.bootstrap = vec![bootstrap.parse::<Multiaddr>()?];
    config.replication_interval = None;
    let node = Node::spawn(config).await?;
    node.handle()
        .wait_for_peers(1, Duration::from_secs(20))
        .await?;
    Ok(node)
}

/// The best valid bundle the network has for `name` of `zone`.
async fn lookup(node: &Node, zone: &ZoneId, name: &str) -> TestResult<Option<VerifiedBundle>> {
    let key = DhtKey::derive(zone, &owner(name)?);
    Ok(node.handle().get(key).await?.best)
}

/// `kadns resolve NAME.<zone id> TYPE`: its exit code and standard output.
async fn resolve(bootstrap: &str, name: &str, rtype: &str) -> TestResult<(Option<i32>, String)> {
    let args: Vec<String> = vec![
        "resolve".into(),
        name.into(),
        rtype.into(),
        "--bootstrap".into(),
        bootstrap.into(),
        "--timeout".into(),
        "5s".into(),
    ];
    let output = blocking(move || {
        Ok(std::process::Command::new(KADNS)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()?)
    });
    let output = tokio::time::timeout(RESOLVE_TIMEOUT, output).await??;
    Ok((
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    ))
}

/// Starts `n` serve nodes on loopback, each bootstrapping from the first.
/// The secret line of a key file, to check that it never reaches a log.
fn secret_of(key: &Path) -> TestResult<String> {
    let text = std::fs::read_to_string(key)?;
    text.lines()
        .find_map(|l| l.strip_prefix("secret:"))
        .map(|s| s.trim().to_owned())
        .filter(|s| s.len() == 64)
        .ok_or_else(|| format!("no secret line in {}", key.display()).into())
}

fn mode_of(path: &Path) -> TestResult<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn keep_refreshes_follows_edits_and_tombstones_cannot_be_rolled_back() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    // Four validity periods of 15 s, the edits inside them, and start-up.
    tokio::time::timeout(Duration::from_secs(150), keep_run()).await?
}

async fn keep_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream = TestUpstream::start(&[]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone: ZoneId = zone_id.parse()?;
    let zone_file = dir.path().join("test.zone");
    std::fs::write(&zone_file, zone_text("192.0.2.10", true))?;

    // Six nodes; the last is also the stub, with the zone's trust anchor.
    let mut nodes = network(dir.path(), upstream.addr(), 5, &[]).await?;
    let mut stub_args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    stub_args.extend([
        "--upstream".into(),
        upstream.addr().to_string(),
        "--anchor".into(),
        format!("test.kad={zone_id}"),
        "--bootstrap".into(),
        nodes[0].p2p_addr().to_owned(),
    ]);
    nodes.push(serve(stub_args).await?);
    let stub = nodes[5].dns_udp[0];
    let boot = nodes[1].p2p_addr().to_owned();

    let mut keep = {
        let args: Vec<PathBuf> = ["zone", "publish", "--keep", "--validity", "15s", "--key"]
            .iter()
            .map(PathBuf::from)
            .chain([key.clone(), zone_file.clone()])
            .chain(["--bootstrap".into(), boot.clone().into()])
            .collect();
        blocking(move || KadnsProcess::spawn(Path::new(KADNS), args)).await?
    };
    let (first, keep) = blocking(move || {
        let line = keep.wait_for(|l| l.starts_with("round 1:"), Duration::from_secs(60))?;
        Ok((line, keep))
    })
    .await?;
    let mut keep = keep;
    let started = Instant::now();
    assert!(
        first.contains("0 refreshed, 5 changed, 0 removed"),
        "{first}"
    );
    let first_sequence: u64 = first
        .rsplit("sequence ")
        .next()
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .ok_or("no sequence in the round line")?
        .parse()?;

    let eye = observer(nodes[2].p2p_addr()).await?;
    for name in ["@", "www", "mail", "ftp", "gone"] {
        let bundle = lookup(&eye, &zone, name)
            .await?
            .ok_or(format!("{name} not found"))?;
        assert!(bundle.sequence() >= first_sequence, "{name}");
    }
    let www = ["www.test.kad", "A"];
    dig_until(stub, &www, STEP, |out| {
        addresses(out).is_ok_and(|a| a.contains("192.0.2.10"))
    })
    .await?;
    let gone = ["gone.test.kad", "A"];
    dig_until(stub, &gone, STEP, |out| {
        dig::status(out).as_deref() == Some("NOERROR")
    })
    .await?;

    // Kept for the replay below: `gone` with its records, signed recently
    // enough that it is still valid when replayed (at least 9 of its 15 s
    // left), so that only its sequence can make the nodes refuse it.
    let deadline = Instant::now() + STEP;
    let old_gone = loop {
        let bundle = lookup(&eye, &zone, "gone").await?.ok_or("no gone")?;
        if bundle.expires() >= kadns_dht::unix_now() + 9 {
            break bundle;
        }
        assert!(Instant::now() < deadline, "gone is never re-signed");
        tokio::time::sleep(POLL).await;
    };
    assert!(!old_gone.records().is_empty());

    // Edit: www moves, gone is removed. The stub answers the new address
    // within the TTL plus a few seconds (poll, sign, put, cache expiry).
    save(&zone_file, &zone_text("192.0.2.20", false))?;
    let edited = Instant::now();
    let new_www = std::collections::BTreeSet::from(["192.0.2.20".to_owned()]);
    dig_until(stub, &www, Duration::from_secs(TTL + 6), |out| {
        addresses(out).is_ok_and(|a| a == new_www)
    })
    .await?;

    // The tombstone: a signed empty bundle with a higher sequence.
    let deadline = Instant::now() + STEP;
    let tomb = loop {
        let bundle = lookup(&eye, &zone, "gone").await?.ok_or("gone vanished")?;
        if bundle.records().is_empty() {
            break bundle;
        }
        assert!(Instant::now() < deadline, "no tombstone for gone");
        tokio::time::sleep(POLL).await;
    };
    assert!(tomb.sequence() > old_gone.sequence());

    // A peer replays the old bundle (still within its signed validity):
    // refused as older, and the name stays removed.
    assert!(old_gone.expires() > kadns_dht::unix_now());
    let replay = eye
        .handle()
        .put_unvalidated(old_gone.dht_key(), old_gone.as_bytes().to_vec())
        .await?;
    assert!(replay.stored_on.is_empty(), "{replay:?}");
    assert!(
        replay.refused.iter().any(|(_, reason)| reason == "older"),
        "{replay:?}"
    );
    let still = lookup(&eye, &zone, "gone").await?.ok_or("no tombstone")?;
    assert!(still.records().is_empty() && still.sequence() >= tomb.sequence());

    // The removed name: NXDOMAIN with the zone's SOA once its TTL ran out,
    // through the stub and through `kadns resolve` (exit 3).
    let out = dig_until(stub, &gone, Duration::from_secs(TTL + 8), |out| {
        dig::status(out).as_deref() == Some("NXDOMAIN")
    })
    .await?;
    let authority = dig::authority_lines(&out);
    assert!(
        authority.iter().any(|l| l.contains("SOA")),
        "NXDOMAIN without the SOA: {out}"
    );
    let (code, _) = resolve(&boot, &format!("gone.{zone_id}"), "A").await?;
    assert_eq!(code, Some(3), "kadns resolve of a removed name");
    let edit_line = keep
        .stdout_lines()
        .iter()
        .find(|l| l.contains("1 changed, 1 removed"))
        .cloned()
        .ok_or_else(|| format!("no round for the edit: {:?}", keep.stdout_lines()))?;
    assert!(edit_line.starts_with("round "), "{edit_line}");
    let _ = edited;

    // A syntax error: reported with its line; nothing published changes.
    let rounds_before = keep.stdout_lines().len();
    save(
        &zone_file,
        &format!("{}mail IN A 192.0.2.300\n", zone_text("192.0.2.30", false)),
    )?;
    let stderr = keep.wait_for_stderr("test.zone:7:", Duration::from_secs(10))?;
    assert!(stderr.contains("nothing published changed"), "{stderr}");
    // Two refresh rounds later, www still has the last good address.
    let deadline = Instant::now() + STEP;
    while keep.stdout_lines().len() < rounds_before + 2 {
        assert!(Instant::now() < deadline, "{:?}", keep.stdout_lines());
        tokio::time::sleep(POLL).await;
    }
    let www_now = lookup(&eye, &zone, "www").await?.ok_or("no www")?;
    let (code, out) = resolve(&boot, &format!("www.{zone_id}"), "A").await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("192.0.2.20") && !out.contains("192.0.2.30"),
        "{out}"
    );
    for line in &keep.stdout_lines()[rounds_before..] {
        assert!(line.contains(" 0 changed, 0 removed"), "{line}");
    }

    // Four validity periods after the first round, every name still
    // resolves, signed with a later sequence than the first round's.
    // (What is waited for here is the passing of time itself.)
    tokio::time::sleep_until(started + Duration::from_secs(60)).await;
    for (name, rtype) in [("@", "SOA"), ("www", "A"), ("mail", "A"), ("ftp", "AAAA")] {
        let fqdn = if name == "@" {
            zone_id.clone()
        } else {
            format!("{name}.{zone_id}")
        };
        let (code, out) = resolve(&boot, &fqdn, rtype).await?;
        assert_eq!(code, Some(0), "{fqdn} {rtype}: {out}");
        let bundle = lookup(&eye, &zone, name).await?.ok_or("not found")?;
        assert!(bundle.sequence() > first_sequence, "{name}: {bundle:?}");
        if name == "www" {
            assert!(bundle.sequence() > www_now.sequence(), "refreshed since");
        }
    }
    // The tombstone was dropped from the state once the removed bundle had
    // expired (15 s after its signing): only the four live names are left.
    let state = std::fs::read_to_string(format!("{}.published", key.display()))?;
    assert!(state.ends_with("end 4\n"), "{state}");
    assert!(!state.contains("tombstone"), "{state}");
    let (code, _) = resolve(&boot, &format!("gone.{zone_id}"), "A").await?;
    assert_eq!(
        code,
        Some(3),
        "the removed name after its tombstone expired"
    );

    // The key stayed 0600 and never reached a log.
    assert_eq!(mode_of(&key)?, 0o600);
    let secret = secret_of(&key)?;
    assert!(!keep.stderr().contains(&secret));
    assert!(!keep.stdout_lines().iter().any(|l| l.contains(&secret)));

    // SIGINT: a clean stop.
    let status = blocking(move || {
        let status = keep.interrupt()?;
        let stopped = keep.stdout_lines().iter().any(|l| l.ends_with("stopped"));
        assert!(stopped, "{:?}", keep.stdout_lines());
        Ok(status)
    })
    .await?;
    assert!(status.success(), "{status:?}");
    eye.shutdown().await;
    for node in nodes {
        terminate(node).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn serve_publish_entries_keep_a_zone_alive() -> TestResult {
    tokio::time::timeout(Duration::from_secs(90), serve_publish_run()).await?
}

async fn serve_publish_run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream = TestUpstream::start(&[]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone: ZoneId = zone_id.parse()?;
    let zone_file = dir.path().join("test.zone");
    std::fs::write(&zone_file, zone_text("192.0.2.10", false))?;
    let nodes = network(dir.path(), upstream.addr(), 3, &[]).await?;

    // The owner's node: a fourth node with the zone in its configuration.
    let config = dir.path().join("kadns.toml");
    std::fs::write(
        &config,
        format!(
            "[[publish]]\nkey = {:?}\nzone = {:?}\nvalidity = \"10s\"\n",
            key.display().to_string(),
            zone_file.display().to_string()
        ),
    )?;
    let mut args = serve_args(&dir.path().join("owner"), "127.0.0.1:0");
    args.extend([
        "--config".into(),
        config.display().to_string(),
        "--upstream".into(),
        upstream.addr().to_string(),
        "--bootstrap".into(),
        nodes[0].p2p_addr().to_owned(),
    ]);
    let owner_node = serve(args).await?;

    let boot = nodes[1].p2p_addr().to_owned();
    let eye = observer(&boot).await?;
    let www = format!("www.{zone_id}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        if let Some(bundle) = lookup(&eye, &zone, "www").await? {
            break bundle.sequence();
        }
        assert!(
            Instant::now() < deadline,
            "the node never published its zone"
        );
        tokio::time::sleep(POLL).await;
    };
    // Three validity periods later it is still there, re-signed. (What is
    // waited for is the passing of time itself.)
    tokio::time::sleep(Duration::from_secs(30)).await;
    let (code, out) = resolve(&boot, &www, "A").await?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("192.0.2.10"), "{out}");
    let now = lookup(&eye, &zone, "www").await?.ok_or("www gone")?;
    assert!(now.sequence() > first, "{} after {first}", now.sequence());
    assert!(
        now.expires() <= kadns_dht::unix_now() + 10,
        "signed for the configured 10 s"
    );
    assert!(!owner_node.stderr().contains(&secret_of(&key)?));

    // The node stops its publisher with everything else.
    terminate(owner_node).await?;
    eye.shutdown().await;
    for node in nodes {
        terminate(node).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn validity_below_ten_seconds_is_refused_before_anything_runs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (key, _) = generate_key(dir.path()).await?;
    let zone_file = dir.path().join("test.zone");
    std::fs::write(&zone_file, zone_text("192.0.2.10", false))?;
    let run = kadns_async(
        [
            "zone".as_ref(),
            "publish".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            zone_file.as_os_str(),
            "--validity".as_ref(),
            "9s".as_ref(),
            "--bootstrap".as_ref(),
            "/ip4/127.0.0.1/tcp/9/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                .as_ref(),
        ],
        Duration::from_secs(30),
    )
    .await?;
    assert!(!run.success, "{run:?}");
    assert!(run.stderr.contains("outside 10 s to 31 days"), "{run:?}");
    Ok(())
}

/// `kadns zone publish --key … ZONE --bootstrap ADDR [EXTRA…]`.
async fn publish_once(
    key: &Path,
    zone: &Path,
    bootstrap: &str,
    extra: &[&str],
) -> TestResult<crate::support::Run> {
    let mut args: Vec<std::ffi::OsString> = vec![
        "zone".into(),
        "publish".into(),
        "--key".into(),
        key.into(),
        zone.into(),
        "--bootstrap".into(),
        bootstrap.into(),
    ];
    args.extend(extra.iter().map(Into::into));
    kadns_async(args, Duration::from_secs(60)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn one_shot_publishing_is_incremental_across_runs() -> TestResult {
    tokio::time::timeout(Duration::from_secs(120), async {
        let dir = tempfile::tempdir()?;
        let net = kadns_tests::net::TestNet::start(4).await?;
        let boot = net.bootstrap_addr().await?.to_string();
        let (key, zone_id) = generate_key(dir.path()).await?;
        let zone: ZoneId = zone_id.parse()?;
        let zone_file = dir.path().join("test.zone");
        std::fs::write(&zone_file, zone_text("192.0.2.10", true))?;

        let run = publish_once(&key, &zone_file, &boot, &[]).await?;
        assert!(run.success, "{run:?}");
        assert!(
            run.stdout.contains("5 changed, 0 refreshed, 0 removed"),
            "{run:?}"
        );
        assert!(run.stdout.contains("5 names, 5 ok"), "{run:?}");

        // Nothing changed: nothing put, and that is success.
        let run = publish_once(&key, &zone_file, &boot, &[]).await?;
        assert!(run.success, "{run:?}");
        assert!(
            run.stdout.contains("0 changed, 0 refreshed, 0 removed"),
            "{run:?}"
        );
        assert!(
            run.stdout
                .contains("(not put again: --all puts every name)"),
            "{run:?}"
        );

        // One address changed, one name removed: two puts, one a tombstone.
        let before = net.handles()[0]
            .get(DhtKey::derive(&zone, &owner("www")?))
            .await?
            .best
            .ok_or("no www")?;
        save(&zone_file, &zone_text("192.0.2.20", false))?;
        let run = publish_once(&key, &zone_file, &boot, &[]).await?;
        assert!(run.success, "{run:?}");
        assert!(
            run.stdout.contains("1 changed, 0 refreshed, 1 removed"),
            "{run:?}"
        );
        assert!(run.stdout.contains("2 names, 2 ok"), "{run:?}");
        let handle = &net.handles()[0];
        let www = handle
            .get(DhtKey::derive(&zone, &owner("www")?))
            .await?
            .best
            .ok_or("no www")?;
        assert!(www.sequence() > before.sequence());
        let gone = handle
            .get(DhtKey::derive(&zone, &owner("gone")?))
            .await?
            .best
            .ok_or("no tombstone")?;
        assert!(gone.records().is_empty());

        // --all puts every name of the zone again; the tombstone already
        // outlives the removed bundle, so it needs no new one.
        let run = publish_once(&key, &zone_file, &boot, &["--all"]).await?;
        assert!(run.success, "{run:?}");
        assert!(
            run.stdout.contains("0 changed, 4 refreshed, 0 removed"),
            "{run:?}"
        );
        assert!(run.stdout.contains("4 names, 4 ok"), "{run:?}");
        net.shutdown().await;
        Ok(())
    })
    .await?
}
