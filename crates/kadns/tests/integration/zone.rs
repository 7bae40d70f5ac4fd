//! `kadns zone sign`, `verify` and `show`, and the errors a zone operator meets.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kadns_publisher::ParsedZone;
use kadns_record::hickory_proto::rr::Name;

use crate::support::{all_types_zone, kadns, new_key};

fn sign(key: &Path, zone: &Path, out: &Path) -> crate::support::Run {
    kadns([
        "zone".as_ref(),
        "sign".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        zone.as_os_str(),
    ])
}

fn verify(zone_id: &str, signed: &Path) -> crate::support::Run {
    kadns([
        "zone".as_ref(),
        "verify".as_ref(),
        zone_id.as_ref(),
        signed.as_os_str(),
    ])
}

/// Every record of a zone file as `name ttl type rdata`, lower-cased.
fn record_set(path: &Path) -> BTreeSet<String> {
    let zone = ParsedZone::from_file(path, None).expect("zone parses");
    zone.names()
        .values()
        .flatten()
        .map(|r| {
            format!("{} {} {} {}", r.name(), r.ttl(), r.record_type(), r.rdata()).to_lowercase()
        })
        .collect()
}

struct Signed {
    _dir: tempfile::TempDir,
    zone_id: String,
    out: PathBuf,
}

fn signed_fixture() -> Signed {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, zone_id) = new_key(dir.path());
    let out = dir.path().join("zone.signed");
    let run = sign(&key, all_types_zone(), &out);
    assert!(run.success, "{run:?}");
    assert!(run.stdout.contains(&zone_id));
    for field in ["names     15", "records   24", "sequence  ", "bytes     "] {
        assert!(
            run.stdout.contains(field),
            "summary lacks {field:?}: {}",
            run.stdout
        );
    }
    Signed {
        _dir: dir,
        zone_id,
        out,
    }
}

#[test]
fn sign_verify_show_round_trips_every_type() {
    let signed = signed_fixture();
    let run = verify(&signed.zone_id, &signed.out);
    assert!(run.success, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    // 10 names with records and 5 empty non-terminals (`in-addr` … `_tcp`).
    assert_eq!(lines.len(), 15);
    assert!(lines.iter().all(|l| l.starts_with("ok ")), "{}", run.stdout);

    let show = kadns([
        "zone".as_ref(),
        "show".as_ref(),
        "--origin".as_ref(),
        "example.org.".as_ref(),
        signed.out.as_os_str(),
    ]);
    assert!(show.success, "{show:?}");
    assert!(show.stdout.contains("sequence ") && show.stdout.contains("expires "));
    let back = signed._dir.path().join("back.zone");
    std::fs::write(&back, &show.stdout).expect("write");
    let original = record_set(all_types_zone());
    assert_eq!(record_set(&back), original);
    let types: BTreeSet<String> = original
        .iter()
        .filter_map(|r| r.split(' ').nth(2).map(str::to_owned))
        .collect();
    for t in [
        "a", "aaaa", "cname", "txt", "mx", "srv", "caa", "ptr", "ns", "soa", "https", "svcb",
    ] {
        assert!(types.contains(t), "fixture lacks {t}: {types:?}");
    }
    assert!(
        show.stdout.contains("TYPE65280 \\# 4 0a000001"),
        "{}",
        show.stdout
    );

    // Without --origin, names come out under the zone id, and in-zone targets too.
    let plain = kadns(["zone".as_ref(), "show".as_ref(), signed.out.as_os_str()]);
    assert!(
        plain.stdout.contains(&format!(
            "www.{}. 3600 IN CNAME {}.",
            signed.zone_id, signed.zone_id
        )),
        "{}",
        plain.stdout
    );
}

/// Entry boundaries of a signed file: (start, end) of each bundle's bytes,
/// including its 2-byte length prefix.
fn entries(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut at = 8;
    while at < bytes.len() {
        let len = usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]));
        out.push((at, at + 2 + len));
        at += 2 + len;
    }
    out
}

#[test]
fn tampering_with_any_byte_fails_that_name() {
    let signed = signed_fixture();
    let original = std::fs::read(&signed.out).expect("signed file");
    let bounds = entries(&original);
    let tampered = signed._dir.path().join("tampered.signed");
    // Every byte of the file: a flip anywhere must be caught.
    for offset in 0..original.len() {
        let mut bytes = original.clone();
        bytes[offset] ^= 0x01;
        std::fs::write(&tampered, &bytes).expect("write");
        let run = verify(&signed.zone_id, &tampered);
        assert!(!run.success, "flip at byte {offset} passed: {run:?}");
        if let Some(entry) = bounds
            .iter()
            .position(|&(start, end)| (start + 2..end).contains(&offset))
        {
            // A flip inside a bundle fails that bundle's line and no other.
            let lines: Vec<&str> = run.stdout.lines().collect();
            assert_eq!(
                lines.len(),
                bounds.len(),
                "flip at {offset}: {}",
                run.stdout
            );
            for (i, line) in lines.iter().enumerate() {
                assert_eq!(
                    line.starts_with("FAIL"),
                    i == entry,
                    "flip at {offset}, line {i}: {line}"
                );
            }
        }
    }
}

#[test]
fn verify_refuses_another_zone_id() {
    let signed = signed_fixture();
    let other = kadns_record::ZoneKey::from_seed([9; 32])
        .zone_id()
        .to_string();
    let run = verify(&other, &signed.out);
    assert!(!run.success);
    assert!(
        run.stdout
            .lines()
            .all(|l| l.starts_with("FAIL") && l.contains("signed by zone")),
        "{}",
        run.stdout
    );
    kadns(["zone", "verify", "not-a-zone-id", "x"])
        .stderr
        .contains("zone id");
}

fn sign_text(text: &str) -> (tempfile::TempDir, crate::support::Run) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, _) = new_key(dir.path());
    let zone = dir.path().join("bad.zone");
    std::fs::write(&zone, text).expect("write");
    let out = dir.path().join("out.signed");
    let run = sign(&key, &zone, &out);
    assert!(!out.exists(), "nothing is written on error");
    (dir, run)
}

#[test]
fn zone_errors_name_file_line_and_reason() {
    let cases: &[(&str, &[&str])] = &[
        (
            "$ORIGIN example.org.\n@ 300 A 192.0.2.1\nwww 300 A 999.1.1.1\n",
            &["bad.zone:3"],
        ),
        (
            "$ORIGIN example.org.\n@ 300 A 192.0.2.1\nhost.other.net. 300 A 192.0.2.2\n",
            &["bad.zone:3", "outside"],
        ),
        (
            "$ORIGIN example.org.\nwww 300 CNAME @\nwww 300 A 192.0.2.1\n",
            &["bad.zone:", "CNAME"],
        ),
        (
            "$ORIGIN example.org.\n@ 300 A 192.0.2.1\nx 300 BOGUS foo\n",
            &["bad.zone:3"],
        ),
    ];
    for (text, fragments) in cases {
        let (_dir, run) = sign_text(text);
        assert!(!run.success, "{text}: {run:?}");
        for fragment in *fragments {
            assert!(
                run.stderr.contains(fragment),
                "{text}: stderr lacks {fragment:?}: {}",
                run.stderr
            );
        }
    }
}

#[test]
fn oversized_name_is_named_with_its_size() {
    let mut text = String::from("$ORIGIN example.org.\n@ 300 A 192.0.2.1\n");
    for i in 0..30 {
        text.push_str(&format!("big 300 TXT \"{i:0>200}\"\n"));
    }
    let (_dir, run) = sign_text(&text);
    assert!(!run.success);
    assert!(
        run.stderr.contains("big") && run.stderr.contains("4096"),
        "{}",
        run.stderr
    );
}

#[test]
fn missing_zone_file_is_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (key, _) = new_key(dir.path());
    let run = sign(&key, &dir.path().join("absent.zone"), &dir.path().join("o"));
    run.assert_error(&["absent.zone"]);
    let _ = Name::root();
}
