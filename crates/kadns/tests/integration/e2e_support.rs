//! Helpers shared by the end-to-end tests: `kadns` commands with a time
//! bound, `kadns serve` processes started off the async runtime, `dig` runs
//! and the records they print.

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::Duration;

use kadns_tests::process::KadnsProcess;
use kadns_tests::{TestResult, dig};
use tokio::time::Instant;

use crate::support::{KADNS, Run, kadns_async};

/// Bound on one short `kadns` command (`key generate`, `zone sign`).
pub(crate) const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// Bound on one `kadns zone publish`: joining, one lookup per name, stores.
pub(crate) const PUBLISH_TIMEOUT: Duration = Duration::from_secs(60);

/// How often condition waits ask again.
pub(crate) const POLL: Duration = Duration::from_millis(200);

/// Runs a blocking closure (a process, `dig`) on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> TestResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> TestResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f).await?
}

/// `kadns key generate` into `dir`: the key's path and its zone id.
pub(crate) async fn generate_key(dir: &Path) -> TestResult<(PathBuf, String)> {
    let path = dir.join("zone.key");
    let run = kadns_async(
        &[
            "key".as_ref(),
            "generate".as_ref(),
            "--out".as_ref(),
            path.as_os_str(),
        ],
        CLI_TIMEOUT,
    )
    .await?;
    assert!(run.success, "{run:?}");
    Ok((path, run.stdout.trim().to_owned()))
}

/// `kadns zone publish --key KEY ZONE --bootstrap ADDR [--min-replicas N]`.
pub(crate) async fn publish(
    key: &Path,
    zone: &Path,
    bootstrap: &str,
    min_replicas: usize,
) -> TestResult<Run> {
    let min = min_replicas.to_string();
    kadns_async(
        [
            "zone".as_ref(),
            "publish".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            zone.as_os_str(),
            "--bootstrap".as_ref(),
            bootstrap.as_ref(),
            "--min-replicas".as_ref(),
            min.as_ref(),
        ],
        PUBLISH_TIMEOUT,
    )
    .await
}

/// The replica count of each `ok` line of `zone publish`'s output, by name.
pub(crate) fn replicas(publish_stdout: &str) -> Vec<(String, usize)> {
    publish_stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.strip_prefix("ok ")?.split_whitespace();
            let name = words.next()?.to_owned();
            let count = words.next()?.parse().ok()?;
            Some((name, count))
        })
        .collect()
}

/// The arguments of a `kadns serve` on loopback, with its data under `data_dir`.
pub(crate) fn serve_args(data_dir: &Path, listen: &str) -> Vec<String> {
    vec![
        "serve".into(),
        "--listen".into(),
        listen.into(),
        "--p2p-listen".into(),
        "/ip4/127.0.0.1/tcp/0".into(),
        "--data-dir".into(),
        data_dir.display().to_string(),
    ]
}

/// Starts `n` `kadns serve` nodes on loopback, their data under `dir/n{i}`,
/// all forwarding to the loopback `upstream`: the first alone, the others
/// joining through it. The last one also gets `last_args` (the stub under
/// test, say its `--anchor`).
pub(crate) async fn network(
    dir: &Path,
    upstream: SocketAddr,
    n: usize,
    last_args: &[String],
) -> TestResult<Vec<KadnsProcess>> {
    let mut nodes: Vec<KadnsProcess> = Vec::with_capacity(n);
    for i in 0..n {
        let mut args = serve_args(&dir.join(format!("n{i}")), "127.0.0.1:0");
        args.extend(["--upstream".into(), upstream.to_string()]);
        if let Some(first) = nodes.first() {
            args.extend(["--bootstrap".into(), first.p2p_addr().to_owned()]);
        }
        if i + 1 == n {
            args.extend(last_args.iter().cloned());
        }
        nodes.push(serve(args).await?);
    }
    Ok(nodes)
}

/// Starts `kadns serve ARGS…` and waits for its address lines.
pub(crate) async fn serve(args: Vec<String>) -> TestResult<KadnsProcess> {
    serve_with_env(args, &[]).await
}

/// Like [`serve`], with extra environment variables.
pub(crate) async fn serve_with_env(
    args: Vec<String>,
    env: &[(&'static str, &'static str)],
) -> TestResult<KadnsProcess> {
    let env = env.to_vec();
    blocking(move || KadnsProcess::serve_with_env(Path::new(KADNS), args, &env)).await
}

/// Sends SIGTERM and waits for a clean exit.
pub(crate) async fn terminate(mut process: KadnsProcess) -> TestResult<KadnsProcess> {
    blocking(move || {
        let status = process.terminate()?;
        assert!(
            status.success(),
            "exit on SIGTERM: {status:?}; stderr {}",
            process.stderr()
        );
        Ok(process)
    })
    .await
}

/// Asserts that the process is still running.
pub(crate) fn assert_alive(process: &mut KadnsProcess) -> TestResult {
    let status = process.exited()?;
    assert!(
        status.is_none(),
        "kadns exited ({status:?}); stderr {}",
        process.stderr()
    );
    Ok(())
}

/// A loopback port free for both UDP and TCP right now.
pub(crate) fn free_port() -> TestResult<u16> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no port free for both UDP and TCP".into())
}

/// Runs `dig @server ARGS…` (bounded: `+time=5 +tries=1` per query).
pub(crate) async fn dig(server: SocketAddr, args: Vec<String>) -> TestResult<String> {
    blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dig::dig(server, &args)
    })
    .await
}

/// Runs `dig` with `args` until `done` holds for its output; the last output,
/// or an error with it once `within` has passed.
pub(crate) async fn dig_until(
    server: SocketAddr,
    args: &[&str],
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> TestResult<String> {
    let deadline = Instant::now() + within;
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    loop {
        let out = dig(server, args.clone()).await;
        if let Ok(out) = &out
            && done(out)
        {
            return Ok(out.clone());
        }
        if Instant::now() >= deadline {
            return Err(format!("dig {args:?}: not done after {within:?}; last: {out:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One record of a dig ANSWER or AUTHORITY line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DigRecord {
    /// The owner name exactly as printed.
    pub(crate) owner: String,
    pub(crate) ttl: u32,
    pub(crate) rtype: String,
    /// The record data, words joined by single spaces.
    pub(crate) rdata: String,
}

impl DigRecord {
    /// Parses `owner ttl class type rdata…`.
    pub(crate) fn parse(line: &str) -> TestResult<Self> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [owner, ttl, _class, rtype, rdata @ ..] = words.as_slice() else {
            return Err(format!("not a record line: {line:?}").into());
        };
        Ok(Self {
            owner: (*owner).to_owned(),
            ttl: ttl.parse()?,
            rtype: (*rtype).to_owned(),
            rdata: rdata.join(" "),
        })
    }

    /// `owner type rdata`, lower-cased: what compares records regardless of
    /// TTL and letter case.
    pub(crate) fn key(&self) -> String {
        format!("{} {} {}", self.owner, self.rtype, self.rdata).to_lowercase()
    }
}

/// The ANSWER section of one dig response, parsed.
pub(crate) fn answers(output: &str) -> TestResult<Vec<DigRecord>> {
    dig::answer_lines(output)
        .iter()
        .map(|l| DigRecord::parse(l))
        .collect()
}

/// The A/AAAA addresses in one dig response's ANSWER section, as a set.
pub(crate) fn addresses(output: &str) -> TestResult<BTreeSet<String>> {
    Ok(answers(output)?
        .into_iter()
        .filter(|r| r.rtype == "A" || r.rtype == "AAAA")
        .map(|r| r.rdata)
        .collect())
}

/// The EDE INFO-CODE dig printed (`; EDE: 3 (Stale Answer): (…)` → 3), if any.
pub(crate) fn ede_code(dig_output: &str) -> Option<u16> {
    let line = dig_output.lines().find(|l| l.starts_with("; EDE: "))?;
    line.strip_prefix("; EDE: ")?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The name with its letters alternately upper and lower case: `WwW.TeSt.KaD`.
pub(crate) fn mixed_case(name: &str) -> String {
    let mut letters = 0usize;
    name.chars()
        .map(|c| {
            if !c.is_ascii_alphabetic() {
                return c;
            }
            letters += 1;
            if letters % 2 == 1 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}
