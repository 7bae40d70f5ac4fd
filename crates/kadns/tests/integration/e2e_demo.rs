//! `kadns demo`, started as the README says, answers the dig commands it prints.

use std::path::Path;
use std::time::Duration;

use kadns_tests::process::KadnsProcess;
use kadns_tests::{TestResult, dig};

use crate::support::{KADNS, kadns};

#[test]
fn demo_answers_every_printed_dig_command() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    // The README runs `kadns demo`, whose stub listens on 127.0.0.1:5353; the
    // test asks for a free port instead, so it cannot collide with mDNS.
    let help = kadns(["demo", "--help"]);
    assert!(
        help.stdout.contains("[default: 127.0.0.1:5353]"),
        "{}",
        help.stdout
    );

    let mut demo = KadnsProcess::spawn(Path::new(KADNS), ["demo", "--listen", "127.0.0.1:0"])?;
    demo.wait_for(|l| l == "Ctrl-C to stop.", Duration::from_secs(90))?;
    let lines = demo.stdout_lines().to_vec();
    let commands: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("dig "))
        .collect();
    assert!(commands.len() >= 10, "{lines:?}");
    let zone_id = lines
        .iter()
        .find_map(|l| l.strip_prefix("zone demo.kad = "))
        .ok_or("no zone line")?;

    let mut seen_types = std::collections::BTreeSet::new();
    for command in commands {
        // Each printed command is `@IP -p PORT NAME TYPE`.
        let words: Vec<&str> = command.split_whitespace().collect();
        let [server, "-p", port, name, rtype] = words.as_slice() else {
            return Err(format!("unexpected command: dig {command}").into());
        };
        let server = format!("{}:{port}", server.trim_start_matches('@')).parse()?;
        let out = dig::dig(server, &[name, rtype])?;
        if name.starts_with("nonexistent.") {
            assert_eq!(
                dig::status(&out).as_deref(),
                Some("NXDOMAIN"),
                "{command}: {out}"
            );
            continue;
        }
        assert_eq!(
            dig::status(&out).as_deref(),
            Some("NOERROR"),
            "{command}: {out}"
        );
        let answers = dig::answer_lines(&out);
        assert!(
            answers
                .iter()
                .any(|l| l.split_whitespace().nth(3) == Some(rtype)),
            "{command}: no {rtype} answer: {out}"
        );
        assert!(
            dig::flags(&out).contains(&"ad".to_owned()),
            "{command}: not verified: {out}"
        );
        if name.ends_with(zone_id) {
            assert!(answers.iter().all(|l| l.contains(zone_id)), "{out}");
        }
        seen_types.insert(rtype.to_string());
    }
    for t in ["A", "AAAA", "TXT", "MX", "SRV"] {
        assert!(
            seen_types.contains(t),
            "the demo shows no {t} query: {seen_types:?}"
        );
    }

    // `kadns resolve` through the same network, without any stub.
    let bootstrap = lines
        .iter()
        .find_map(|l| l.strip_prefix("bootstrap "))
        .ok_or("no bootstrap line")?;
    let resolve = |args: &[&str]| {
        let mut command = std::process::Command::new(KADNS);
        command
            .args(["resolve", "--timeout", "20s", "--bootstrap", bootstrap])
            .args(args);
        command.output()
    };
    let found = resolve(&[&format!("www.{zone_id}"), "AAAA"])?;
    assert!(found.status.success(), "{found:?}");
    let text = String::from_utf8_lossy(&found.stdout);
    assert_eq!(
        text.trim(),
        format!("www.{zone_id}. 300 IN AAAA 2001:db8::80")
    );
    let chain = resolve(&[
        "blog.demo.kad",
        "A",
        "--anchor",
        &format!("demo.kad={zone_id}"),
    ])?;
    let text = String::from_utf8_lossy(&chain.stdout);
    assert!(
        text.contains("blog.demo.kad. 300 IN CNAME www.demo.kad.") && text.contains("192.0.2.80"),
        "{text}"
    );
    assert_eq!(
        resolve(&[&format!("nope.{zone_id}"), "A"])?.status.code(),
        Some(3),
        "NXDOMAIN exits 3"
    );
    assert_eq!(
        resolve(&[&format!("www.{zone_id}"), "MX"])?.status.code(),
        Some(4),
        "NODATA exits 4"
    );

    let status = demo.interrupt()?;
    assert!(
        status.success(),
        "demo exits cleanly on Ctrl-C: {status:?} {}",
        demo.stderr()
    );
    Ok(())
}
