//! Running kadns for real (issue 12): `kadns status` and `kadns cache
//! flush` through the control socket, reload on SIGHUP and `kadns reload`,
//! supervision (a dead event loop ends `serve` with a failure), and
//! systemd's readiness protocol under a fake `NOTIFY_SOCKET`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::RecordType;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::process::KadnsProcess;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, client, dig};
use tokio::time::Instant;

use crate::e2e_support::{
    CLI_TIMEOUT, POLL, addresses, assert_alive, blocking, dig_until, free_port, generate_key,
    network, publish, serve_args, terminate,
};
use crate::support::{KADNS, Run, kadns_async};

/// Bound on each whole test: nodes start, a zone is published, answers
/// come, on a loaded two-core machine.
const TEST_TIMEOUT: Duration = Duration::from_secs(150);

/// How long a first answer after publishing may take.
const ANSWER_WITHIN: Duration = Duration::from_secs(40);

const ZONE: &str = "$ORIGIN test.kad.\n$TTL 300\nwww IN A 192.0.2.10\n";

fn www() -> std::collections::BTreeSet<String> {
    ["192.0.2.10".to_owned()].into()
}

/// `kadns ARGS… --data-dir DIR`.
async fn ctl(data_dir: &Path, args: &[&str]) -> TestResult<Run> {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.extend(["--data-dir".into(), data_dir.as_os_str().to_owned()]);
    kadns_async(&all, CLI_TIMEOUT).await
}

/// `kadns status --json` as JSON.
async fn status_json(data_dir: &Path) -> TestResult<serde_json::Value> {
    let run = ctl(data_dir, &["status", "--json"]).await?;
    assert!(run.success, "{run:?}");
    Ok(serde_json::from_str(&run.stdout)?)
}

fn number(status: &serde_json::Value, path: &[&str]) -> u64 {
    let mut value = status;
    for key in path {
        value = match key.parse::<usize>() {
            Ok(index) => &value[index],
            Err(_) => &value[*key],
        };
    }
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} in {status}"))
}

/// Publishes the test zone through `bootstrap` on at least `min` nodes.
async fn publish_zone(dir: &Path, bootstrap: &str, min: usize) -> TestResult<String> {
    let (key, zone_id) = generate_key(dir).await?;
    let zone = dir.join("test.zone");
    std::fs::write(&zone, ZONE)?;
    let run = publish(&key, &zone, bootstrap, min).await?;
    assert!(run.success, "zone publish: {run:?}");
    Ok(zone_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_peers_and_cache_figures_and_a_flush_makes_the_next_query_miss() -> TestResult
{
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(TEST_TIMEOUT, status_and_flush()).await?
}

async fn status_and_flush() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let anchor = ["--anchor".to_owned(), format!("test.kad={zone_id}")];
    let nodes = network(dir.path(), upstream.addr(), 3, &anchor).await?;
    let zone = dir.path().join("test.zone");
    std::fs::write(&zone, ZONE)?;
    let run = publish(&key, &zone, nodes[0].p2p_addr(), 2).await?;
    assert!(run.success, "zone publish: {run:?}");
    let stub = nodes[2].dns_udp[0];
    let data = dir.path().join("n2");

    dig_until(stub, &["www.test.kad", "A"], ANSWER_WITHIN, |out| {
        addresses(out).is_ok_and(|a| a == www())
    })
    .await?;
    // Answered again, from the cache; and one forwarded name.
    for _ in 0..2 {
        let out = crate::e2e_support::dig(stub, vec!["www.test.kad".into(), "A".into()]).await?;
        assert_eq!(addresses(&out)?, www(), "{out}");
    }
    // The zone-id form under the split-DNS suffix answers the same records.
    let suffixed = format!("www.{zone_id}.kadns");
    let out = crate::e2e_support::dig(stub, vec![suffixed, "A".into()]).await?;
    assert_eq!(addresses(&out)?, www(), "{out}");
    let outside = client::ask(stub, "outside.example.", RecordType::A).await?;
    assert_eq!(outside.answers.len(), 1);

    let status = status_json(&data).await?;
    assert!(
        number(&status, &["dht", "connected_peers"]) >= 1,
        "{status}"
    );
    assert!(number(&status, &["dht", "routing_table"]) >= 1, "{status}");
    assert!(number(&status, &["dht", "bytes_on_disk"]) > 0, "{status}");
    assert!(number(&status, &["cache", "entries"]) >= 1, "{status}");
    assert!(number(&status, &["cache", "misses"]) >= 1, "{status}");
    // The repeats were answered from a cache: the stub's rendered answers
    // first, the bundle cache behind it.
    let hits = number(&status, &["cache", "answer_hits"]) + number(&status, &["cache", "hits"]);
    assert!(hits >= 2, "{status}");
    assert!(
        number(&status, &["cache", "answer_entries"]) >= 1,
        "{status}"
    );
    assert!(
        status["cache"]["answer_hit_rate"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{status}"
    );
    assert!(
        number(&status, &["cache", "forwarded_entries"]) >= 1,
        "{status}"
    );
    assert_eq!(
        status["upstreams"][0]["server"],
        upstream.addr().to_string()
    );
    assert_eq!(status["upstreams"][0]["healthy"], true, "{status}");
    assert_eq!(number(&status, &["pid"]), u64::from(nodes[2].pid()));

    // The text form names the same figures.
    let text = ctl(&data, &["status"]).await?;
    assert!(text.success, "{text:?}");
    for fragment in [
        "connected peers",
        "in the routing table",
        "hit rate",
        "upstream",
    ] {
        assert!(
            text.stdout.contains(fragment),
            "{fragment:?} in {}",
            text.stdout
        );
    }

    // Flushing the name: the next query is a miss, looked up again.
    let misses = number(&status, &["cache", "misses"]);
    let answer_misses = number(&status, &["cache", "answer_misses"]);
    let flushed = ctl(&data, &["cache", "flush", "www.test.kad."]).await?;
    assert!(flushed.success, "{flushed:?}");
    assert!(flushed.stdout.contains("1 bundles"), "{}", flushed.stdout);
    let out = crate::e2e_support::dig(stub, vec!["www.test.kad".into(), "A".into()]).await?;
    assert_eq!(addresses(&out)?, www(), "{out}");
    let after = status_json(&data).await?;
    assert_eq!(
        number(&after, &["cache", "misses"]),
        misses + 1,
        "the flushed name missed the bundle cache: {after}"
    );
    // (How many misses one query counts is the answer cache's business: since
    // UDP workers probe it inline first, one query can count more than one.)
    assert!(
        number(&after, &["cache", "answer_misses"]) > answer_misses,
        "and the answer cache: {after}"
    );
    // Flushing everything empties both caches.
    let all = ctl(&data, &["cache", "flush"]).await?;
    assert!(all.success, "{all:?}");
    let empty = status_json(&data).await?;
    assert_eq!(number(&empty, &["cache", "entries"]), 0, "{empty}");
    assert_eq!(
        number(&empty, &["cache", "forwarded_entries"]),
        0,
        "{empty}"
    );
    assert_eq!(number(&empty, &["cache", "answer_entries"]), 0, "{empty}");
    drop(nodes);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_adds_a_trust_anchor_and_a_broken_config_keeps_the_old_one() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(TEST_TIMEOUT, reload()).await?
}

fn write_config(path: &Path, anchor: Option<&str>, extra: &str) -> TestResult {
    let mut text = String::new();
    if let Some(zone) = anchor {
        text.push_str(&format!(
            "[resolver.trust_anchors]\n\"test.kad\" = \"{zone}\"\n"
        ));
    }
    text.push_str(extra);
    // Written whole, then renamed: the node never reads half a file.
    let staging = path.with_extension("tmp");
    std::fs::write(&staging, text)?;
    std::fs::rename(&staging, path)?;
    Ok(())
}

async fn reload() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let config = dir.path().join("kadns.toml");
    write_config(&config, None, "")?;
    let args = ["--config".to_owned(), config.display().to_string()];
    let mut nodes = network(dir.path(), upstream.addr(), 2, &args).await?;
    let zone_id = publish_zone(dir.path(), nodes[0].p2p_addr(), 1).await?;
    let stub = nodes[1].dns_udp[0];
    let data = dir.path().join("n1");
    let pid = nodes[1].pid();

    // Not a kadns name yet: forwarded, and the upstream knows nothing of it.
    let before = crate::e2e_support::dig(stub, vec!["www.test.kad".into(), "A".into()]).await?;
    assert!(addresses(&before).map_or(true, |a| a != www()), "{before}");

    write_config(&config, Some(&zone_id), "")?;
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    assert!(hup.success());
    dig_until(stub, &["www.test.kad", "A"], ANSWER_WITHIN, |out| {
        addresses(out).is_ok_and(|a| a == www())
    })
    .await?;
    assert_alive(&mut nodes[1])?;
    assert_eq!(nodes[1].pid(), pid, "no restart");

    // A broken file: `kadns reload` fails with the reason, the node keeps
    // answering on the configuration it has.
    write_config(&config, Some("not-a-zone-id"), "")?;
    let failed = ctl(&data, &["reload"]).await?;
    failed.assert_error(&["bad zone id"]);
    write_config(&config, Some(&zone_id), "[dns]\nlisten_on = 1\n")?;
    let typo = ctl(&data, &["reload"]).await?;
    typo.assert_error(&["listen_on"]);
    let out = crate::e2e_support::dig(stub, vec!["www.test.kad".into(), "A".into()]).await?;
    assert_eq!(
        addresses(&out)?,
        www(),
        "still the old configuration: {out}"
    );
    assert_alive(&mut nodes[1])?;
    let status = status_json(&data).await?;
    let errors = status["recent_errors"].to_string();
    assert!(errors.contains("reload failed"), "{errors}");

    // [[publish]] through a reload: a key that cannot be opened is refused
    // with its path; the real one starts keeping the zone alive, and an
    // edit of the zone file is published by the node.
    let missing = dir.path().join("missing.key");
    let publish_missing = format!(
        "[[publish]]\nkey = \"{}\"\nzone = \"{}\"\n",
        missing.display(),
        dir.path().join("test.zone").display()
    );
    write_config(&config, Some(&zone_id), &publish_missing)?;
    let refused = ctl(&data, &["reload"]).await?;
    refused.assert_error(&["missing.key"]);
    let zone_file = dir.path().join("test.zone");
    std::fs::write(&zone_file, format!("{ZONE}new IN A 192.0.2.20\n"))?;
    let publish_entry = format!(
        "[[publish]]\nkey = \"{}\"\nzone = \"{}\"\n",
        dir.path().join("zone.key").display(),
        zone_file.display()
    );
    write_config(&config, Some(&zone_id), &publish_entry)?;
    let started = ctl(&data, &["reload"]).await?;
    assert!(started.success, "{started:?}");
    assert!(started.stdout.contains("1 started"), "{}", started.stdout);
    let new: std::collections::BTreeSet<String> = ["192.0.2.20".to_owned()].into();
    dig_until(stub, &["new.test.kad", "A"], ANSWER_WITHIN, |out| {
        addresses(out).is_ok_and(|a| a == new)
    })
    .await?;
    let status = status_json(&data).await?;
    assert_eq!(status["zones"][0]["zone"], zone_id.as_str(), "{status}");
    assert!(number(&status, &["zones", "0", "rounds"]) >= 1, "{status}");

    // A good file again, through `kadns reload`: reported as applied.
    write_config(&config, None, "")?;
    let good = ctl(&data, &["reload"]).await?;
    assert!(good.success, "{good:?}");
    assert!(good.stdout.contains("trust anchors"), "{}", good.stdout);
    assert!(good.stdout.contains("1 stopped"), "{}", good.stdout);
    let stub_node = nodes.pop().ok_or("no stub")?;
    terminate(stub_node).await?;
    Ok(())
}

/// Sends one raw control request and returns the response line.
fn control_request(data_dir: &Path, line: &str) -> TestResult<String> {
    let mut stream = UnixStream::connect(data_dir.join("control"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_event_loop_makes_serve_exit_non_zero_within_seconds() -> TestResult {
    let upstream = TestUpstream::start(&[]).await?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("node");
    let mut args = serve_args(&data, "127.0.0.1:0");
    args.extend(["--upstream".into(), upstream.addr().to_string()]);

    // Without the opt-in, the hook is refused and the node lives on.
    let mut plain = KadnsProcess::serve(Path::new(KADNS), args.clone())?;
    let d = data.clone();
    let refused =
        blocking(move || control_request(&d, r#"{"command":"debug","action":"kill-event-loop"}"#))
            .await?;
    assert!(refused.contains("\"ok\":false"), "{refused}");
    std::thread::sleep(Duration::from_millis(300));
    assert_alive(&mut plain)?;
    terminate(plain).await?;

    let mut node =
        KadnsProcess::serve_with_env(Path::new(KADNS), args, &[("KADNS_TEST_HOOKS", "1")])?;
    let d = data.clone();
    let answer =
        blocking(move || control_request(&d, r#"{"command":"debug","action":"kill-event-loop"}"#))
            .await?;
    assert!(answer.contains("\"ok\":true"), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = node.exited()? {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve still running: {}",
            node.stderr()
        );
        tokio::time::sleep(POLL).await;
    };
    assert!(!status.success(), "exit status {status:?}");
    let stderr = node.stderr();
    assert!(
        stderr.contains("DHT event loop ended unexpectedly"),
        "{stderr}"
    );
    assert!(!data.join("control").exists(), "the socket is removed");
    Ok(())
}

/// Receives notification datagrams until one contains `needle`.
fn wait_notification(socket: &UnixDatagram, needle: &str, within: Duration) -> TestResult<String> {
    let deadline = std::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!("no {needle:?} notification within {within:?}").into());
        }
        socket.set_read_timeout(Some(left))?;
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if text.lines().any(|l| l == needle) {
                    return Ok(text);
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_arrives_on_notify_socket_once_the_dns_sockets_answer() -> TestResult {
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let dir = tempfile::tempdir()?;
    let notify: PathBuf = dir.path().join("notify");
    let socket = UnixDatagram::bind(&notify)?;
    let port = free_port()?;
    let listen = format!("127.0.0.1:{port}");
    let mut args = serve_args(&dir.path().join("node"), &listen);
    args.extend(["--upstream".into(), upstream.addr().to_string()]);
    let notify_env = notify.display().to_string();
    let node = KadnsProcess::spawn_with_env(
        Path::new(KADNS),
        args,
        &[
            ("NOTIFY_SOCKET", notify_env.as_str()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    )?;
    let (socket, ready) = blocking(move || {
        let ready = wait_notification(&socket, "READY=1", Duration::from_secs(60))?;
        Ok((socket, ready))
    })
    .await?;
    assert!(ready.contains("STATUS=answering on"), "{ready}");
    // The moment READY arrives, the stub answers.
    let addr = listen.parse()?;
    let answer = client::ask(addr, "outside.example.", RecordType::A).await?;
    assert_eq!(answer.answers.len(), 1, "{answer:?}");
    // The watchdog is fed at half of WATCHDOG_USEC.
    let socket = blocking(move || {
        wait_notification(&socket, "WATCHDOG=1", Duration::from_secs(10))?;
        Ok(socket)
    })
    .await?;
    let mut node = terminate(node).await?;
    assert!(node.exited()?.is_some());
    blocking(move || {
        wait_notification(&socket, "STOPPING=1", Duration::from_secs(5))?;
        Ok(())
    })
    .await?;
    Ok(())
}
