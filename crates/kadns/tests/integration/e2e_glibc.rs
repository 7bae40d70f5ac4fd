//! glibc's resolver, through a resolv.conf, reaches a kadns name.
//!
//! In a private mount namespace (`unshare -m`), a temporary resolv.conf is
//! bind-mounted over /etc/resolv.conf and points at a stub on 127.0.0.X:53
//! (glibc only talks to port 53); `getent hosts` and `getent ahosts` must
//! return the name's addresses. The host's own resolv.conf is untouched.
//! Needs root (CI runs as root); elsewhere the test says so and passes.

use std::path::Path;
use std::process::Command;

use kadns_tests::TestResult;
use kadns_tests::process::KadnsProcess;

use crate::e2e_support::serve_args;
use crate::support::{KADNS, kadns, new_key};

const ZONE: &str = "\
$ORIGIN glibc.kad.
$TTL 300
www   IN A     192.0.2.80
www   IN AAAA  2001:db8::80
alias IN CNAME www
";

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn getent(resolv_conf: &Path, database: &str, name: &str) -> TestResult<String> {
    let script = format!(
        "mount --bind {} /etc/resolv.conf && exec getent {database} {name}",
        resolv_conf.display()
    );
    let output = Command::new("timeout")
        .args(["30", "unshare", "-m", "sh", "-c", &script])
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "getent {database} {name}: {:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(output.stdout)?)
}

#[test]
fn getent_resolves_a_kadns_name_through_resolv_conf() -> TestResult {
    if !is_root() || Command::new("unshare").arg("--help").output().is_err() {
        eprintln!("not root or no unshare: skipping the glibc test (CI runs it as root)");
        return Ok(());
    }
    let host_resolv_conf = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let dir = tempfile::tempdir()?;
    let bin = Path::new(KADNS);

    // A small network: three nodes, then the zone published into it.
    let mut nodes = Vec::new();
    for i in 0..3 {
        let data = dir.path().join(format!("node{i}"));
        let mut args = serve_args(&data, "127.0.0.1:0");
        args.extend(["--upstream".into(), "127.0.0.1:9".into()]);
        if let Some(first) = nodes
            .first()
            .map(|n: &KadnsProcess| n.p2p_addr().to_owned())
        {
            args.extend(["--bootstrap".into(), first]);
        }
        nodes.push(KadnsProcess::serve(bin, &args)?);
    }
    let (key, zone_id) = new_key(dir.path());
    let zone_file = dir.path().join("glibc.zone");
    std::fs::write(&zone_file, ZONE)?;
    let bootstrap = nodes[0].p2p_addr().to_owned();
    let publish = kadns([
        "zone".as_ref(),
        "publish".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        zone_file.as_os_str(),
        "--bootstrap".as_ref(),
        bootstrap.as_ref(),
        "--min-replicas".as_ref(),
        "2".as_ref(),
    ]);
    assert!(publish.success, "{publish:?}");

    // The stub glibc talks to, on port 53 of a loopback address of its own.
    let octet = 2 + std::process::id() % 200;
    let stub_addr = format!("127.0.0.{octet}:53");
    let mut stub_args = serve_args(&dir.path().join("stub"), &stub_addr);
    stub_args.extend([
        "--bootstrap".into(),
        bootstrap.clone(),
        "--upstream".into(),
        "127.0.0.1:9".into(),
        "--anchor".into(),
        format!("glibc.kad={zone_id}"),
    ]);
    let stub = KadnsProcess::serve(bin, &stub_args)?;
    assert_eq!(stub.dns_udp[0].to_string(), stub_addr);

    let resolv_conf = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv_conf,
        format!("nameserver 127.0.0.{octet}\noptions timeout:2 attempts:3\n"),
    )?;

    // The stub may need a moment to find the records: retry within a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let hosts = loop {
        match getent(&resolv_conf, "hosts", "www.glibc.kad") {
            Ok(out) => break out,
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            // Poll interval of a deadline-bounded wait.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    };
    assert!(
        hosts.contains("2001:db8::80") || hosts.contains("192.0.2.80"),
        "{hosts}"
    );
    assert!(hosts.contains("www.glibc.kad"), "{hosts}");

    let ahosts = getent(&resolv_conf, "ahosts", "www.glibc.kad")?;
    eprintln!("getent ahosts www.glibc.kad:\n{ahosts}");
    assert!(
        ahosts.contains("192.0.2.80") && ahosts.contains("2001:db8::80"),
        "{ahosts}"
    );
    let v4 = getent(&resolv_conf, "ahostsv4", "alias.glibc.kad")?;
    assert!(v4.contains("192.0.2.80"), "the CNAME is followed: {v4}");
    assert!(
        getent(&resolv_conf, "hosts", "missing.glibc.kad").is_err(),
        "a missing name fails"
    );

    // The host's resolv.conf was never touched.
    assert_eq!(
        std::fs::read("/etc/resolv.conf").unwrap_or_default(),
        host_resolv_conf
    );
    drop(stub);
    Ok(())
}
