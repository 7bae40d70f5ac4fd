//! Ten `kadns serve` processes form a DHT on loopback; a zone of 22 names is
//! published into it with `kadns zone publish`; one of the ten, started with
//! a trust anchor, answers real `dig` for every name and type, over UDP and
//! over TCP, exactly as published.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tracing_test::traced_test;

use crate::e2e_support::{
    DigRecord, answers, dig as run_dig, dig_until, generate_key, mixed_case, network, publish,
    replicas,
};

const NODES: usize = 10;
const APEX: &str = "test.kad.";

/// Every record of the zone: owner (relative), TTL, type, data as written in
/// the zone file, and data as dig prints it ("" when the same).
const RECORDS: &[(&str, u32, &str, &str, &str)] = &[
    ("@", 300, "A", "192.0.2.1", ""),
    ("@", 300, "AAAA", "2001:db8::1", ""),
    ("@", 3600, "MX", "10 mail", "10 mail.test.kad."),
    ("@", 3600, "MX", "20 mail2.test.kad.", ""),
    ("@", 300, "TXT", "\"v=spf1 mx -all\"", ""),
    ("www", 300, "A", "192.0.2.10", ""),
    ("www", 300, "A", "192.0.2.11", ""),
    ("www", 600, "AAAA", "2001:DB8:0:0:0:0:0:10", "2001:db8::10"),
    ("mail", 600, "A", "192.0.2.25", ""),
    ("mail", 600, "AAAA", "2001:db8::25", ""),
    ("mail2", 600, "A", "192.0.2.26", ""),
    (
        "info",
        120,
        "TXT",
        "\"first string\" \"second string, with spaces\" \"3rd\"",
        "",
    ),
    ("info", 120, "TXT", "\"another record\"", ""),
    (
        "_sip._tcp",
        300,
        "SRV",
        "10 60 5060 sip",
        "10 60 5060 sip.test.kad.",
    ),
    ("_sip._tcp", 300, "SRV", "20 0 5061 sip2.test.kad.", ""),
    ("sip", 300, "A", "192.0.2.50", ""),
    ("sip2", 300, "AAAA", "2001:db8::51", ""),
    ("blog", 300, "CNAME", "www", "www.test.kad."),
    ("alias1", 300, "CNAME", "www.test.kad.", ""),
    ("alias2", 300, "CNAME", "alias1", "alias1.test.kad."),
    ("deep.sub", 300, "A", "192.0.2.60", ""),
    ("host01", 30, "A", "192.0.2.101", ""),
    ("host02", 60, "A", "192.0.2.102", ""),
    ("host02", 60, "AAAA", "2001:db8::102", ""),
    ("host03", 90, "TXT", "\"host three\"", ""),
    ("host04", 120, "AAAA", "2001:db8::104", ""),
    ("host05", 150, "MX", "5 mail", "5 mail.test.kad."),
    ("host06", 180, "A", "192.0.2.106", ""),
    ("host06", 180, "TXT", "\"six\" \"6\"", ""),
    (
        "host07",
        210,
        "SRV",
        "0 0 443 host06",
        "0 0 443 host06.test.kad.",
    ),
    ("host08", 240, "A", "192.0.2.108", ""),
    ("host09", 270, "AAAA", "2001:db8::109", ""),
    ("host10", 86400, "A", "192.0.2.110", ""),
];

fn zone_file() -> String {
    let mut text = format!("$ORIGIN {APEX}\n$TTL 300\n");
    for (owner, ttl, rtype, rdata, _) in RECORDS {
        text.push_str(&format!("{owner} {ttl} IN {rtype} {rdata}\n"));
    }
    text
}

/// The fully qualified name of a relative owner, under `apex` (`test.kad.`
/// or `<zone id>.`).
fn fqdn(owner: &str, apex: &str) -> String {
    if owner == "@" {
        apex.to_owned()
    } else {
        format!("{owner}.{apex}")
    }
}

/// A record as the stub must answer it, under `apex`.
#[derive(Debug, Clone)]
struct Expected {
    key: String,
    ttl: u32,
}

fn expected(owner: &str, rtype: &str, apex: &str) -> Vec<Expected> {
    RECORDS
        .iter()
        .filter(|r| r.0 == owner && r.2 == rtype)
        .map(|(owner, ttl, rtype, written, printed)| {
            let rdata = if printed.is_empty() { written } else { printed };
            let rdata = rdata.replace(APEX, apex);
            Expected {
                key: format!("{} {rtype} {rdata}", fqdn(owner, apex)).to_lowercase(),
                ttl: *ttl,
            }
        })
        .collect()
}

#[derive(Debug)]
enum Expect {
    /// Exactly these records, in any order.
    Set(Vec<Expected>),
    /// These CNAMEs in this order, then exactly these records in any order.
    Chain(Vec<Expected>, Vec<Expected>),
    NxDomain,
    NoData,
    /// Forwarded: exactly these records, no AD.
    Outside(Vec<Expected>),
}

#[derive(Debug)]
struct Check {
    /// The name as sent, letter case included, without the final dot.
    qname: String,
    qtype: &'static str,
    /// The zone apex the name is under (for the SOA of negative answers).
    apex: String,
    expect: Expect,
}

fn check(owner: &str, qtype: &'static str, apex: &str, expect: Expect) -> Check {
    let name = fqdn(owner, apex);
    Check {
        qname: mixed_case(name.trim_end_matches('.')),
        qtype,
        apex: apex.to_owned(),
        expect,
    }
}

/// The CNAMEs from `links[0]` through each link in turn, then `last`'s records.
fn chain(links: &[&str], last: &str, qtype: &'static str, apex: &str) -> Check {
    let cnames = links
        .iter()
        .flat_map(|l| expected(l, "CNAME", apex))
        .collect();
    check(
        links[0],
        qtype,
        apex,
        Expect::Chain(cnames, expected(last, qtype, apex)),
    )
}

/// Every name and type of the zone, chains, negative answers, and a few
/// names under the zone id.
fn checks(zone_id: &str) -> Vec<Check> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (owner, _, rtype, _, _) in RECORDS {
        if seen.insert((*owner, *rtype)) {
            out.push(check(
                owner,
                rtype,
                APEX,
                Expect::Set(expected(owner, rtype, APEX)),
            ));
        }
    }
    out.push(chain(&["blog"], "www", "A", APEX));
    out.push(chain(&["alias1"], "www", "AAAA", APEX));
    out.push(chain(&["alias2", "alias1"], "www", "A", APEX));
    out.push(check("nope", "A", APEX, Expect::NxDomain));
    out.push(check("nope.www", "AAAA", APEX, Expect::NxDomain));
    out.push(check("www", "MX", APEX, Expect::NoData));
    out.push(check("host01", "TXT", APEX, Expect::NoData));
    out.push(check("_sip._tcp", "A", APEX, Expect::NoData));
    // The same zone under its self-certifying name.
    let by_id = format!("{zone_id}.");
    out.push(check(
        "www",
        "A",
        &by_id,
        Expect::Set(expected("www", "A", &by_id)),
    ));
    out.push(check(
        "@",
        "MX",
        &by_id,
        Expect::Set(expected("@", "MX", &by_id)),
    ));
    out.push(chain(&["alias2", "alias1"], "www", "AAAA", &by_id));
    out.push(check("nope", "A", &by_id, Expect::NxDomain));
    // A name outside kadns, through the upstream.
    out.push(Check {
        qname: "Outside.Example".into(),
        qtype: "A",
        apex: String::new(),
        expect: Expect::Outside(vec![Expected {
            key: "outside.example. a 198.51.100.7".into(),
            ttl: 300,
        }]),
    });
    out
}

/// Compares one dig response with what it must say.
fn verify(check: &Check, out: &str, transport: &str) -> TestResult {
    let what = format!("{transport} {} {}", check.qname, check.qtype);
    let sent = format!("{}.", check.qname);
    assert_eq!(
        dig::question(out),
        Some((sent.clone(), check.qtype.to_owned())),
        "{what}: {out}"
    );
    let status = dig::status(out).unwrap_or_default();
    let flags = dig::flags(out);
    let got = answers(out)?;
    let keys = |records: &[DigRecord]| -> BTreeSet<String> {
        records.iter().map(DigRecord::key).collect()
    };
    let want = |records: &[Expected]| -> BTreeSet<String> {
        records.iter().map(|e| e.key.clone()).collect()
    };
    // TTLs no larger than published: every answer matches an expected record.
    let all_expected: Vec<&Expected> = match &check.expect {
        Expect::Set(e) | Expect::Outside(e) => e.iter().collect(),
        Expect::Chain(c, e) => c.iter().chain(e).collect(),
        Expect::NxDomain | Expect::NoData => Vec::new(),
    };
    for record in &got {
        let published = all_expected
            .iter()
            .find(|e| e.key == record.key())
            .ok_or_else(|| format!("{what}: unexpected record {record:?}: {out}"))?;
        assert!(
            record.ttl <= published.ttl,
            "{what}: TTL {} above the published {}: {out}",
            record.ttl,
            published.ttl
        );
        // The query's letter case is kept on the records at the query name.
        if record.owner.eq_ignore_ascii_case(&sent) {
            assert_eq!(record.owner, sent, "{what}: letter case lost: {out}");
        }
    }
    match &check.expect {
        Expect::Set(expected) => {
            assert_eq!(status, "NOERROR", "{what}: {out}");
            assert!(flags.contains(&"ad".to_owned()), "{what}: no AD: {out}");
            assert_eq!(got.len(), expected.len(), "{what}: {out}");
            assert_eq!(keys(&got), want(expected), "{what}: {out}");
        }
        Expect::Chain(cnames, last) => {
            assert_eq!(status, "NOERROR", "{what}: {out}");
            assert!(flags.contains(&"ad".to_owned()), "{what}: no AD: {out}");
            assert_eq!(got.len(), cnames.len() + last.len(), "{what}: {out}");
            let (head, tail) = got.split_at(cnames.len());
            let head: Vec<String> = head.iter().map(DigRecord::key).collect();
            let cnames: Vec<String> = cnames.iter().map(|e| e.key.clone()).collect();
            assert_eq!(head, cnames, "{what}: the chain, in order: {out}");
            assert_eq!(keys(tail), want(last), "{what}: {out}");
        }
        Expect::NxDomain | Expect::NoData => {
            let code = if matches!(check.expect, Expect::NxDomain) {
                "NXDOMAIN"
            } else {
                "NOERROR"
            };
            assert_eq!(status, code, "{what}: {out}");
            assert!(got.is_empty(), "{what}: {out}");
            let soa: Vec<DigRecord> = dig::authority_lines(out)
                .iter()
                .map(|l| DigRecord::parse(l))
                .collect::<TestResult<_>>()?;
            assert!(
                soa.iter()
                    .any(|r| r.rtype == "SOA" && r.owner.eq_ignore_ascii_case(&check.apex)),
                "{what}: no SOA of the zone in authority: {out}"
            );
            if code == "NOERROR" {
                assert!(flags.contains(&"ad".to_owned()), "{what}: no AD: {out}");
            }
        }
        Expect::Outside(expected) => {
            assert_eq!(status, "NOERROR", "{what}: {out}");
            assert!(!flags.contains(&"ad".to_owned()), "{what}: AD: {out}");
            assert_eq!(keys(&got), want(expected), "{what}: {out}");
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn ten_nodes_publish_and_dig_every_name_and_type() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(150), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone = dir.path().join("test.zone");
    std::fs::write(&zone, zone_file())?;
    let mut names: BTreeSet<&str> = RECORDS.iter().map(|r| r.0).collect();
    assert!(names.len() >= 20, "{} names", names.len());
    // Empty non-terminals (above `deep.sub` and `_sip._tcp`) are published too.
    names.extend(["sub", "_tcp"]);

    // Ten nodes: the first alone, the others joining through it; the last
    // one is the stub under test, with the zone's trust anchor.
    let anchor = ["--anchor".to_owned(), format!("test.kad={zone_id}")];
    let nodes = network(dir.path(), upstream.addr(), NODES, &anchor).await?;
    let stub = nodes[NODES - 1].dns_udp[0];

    // Published through a node in the middle, not the first one.
    let run = publish(&key, &zone, nodes[5].p2p_addr(), 3).await?;
    assert!(run.success, "zone publish: {run:?}");
    let stored = replicas(&run.stdout);
    let stored_names: BTreeSet<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(stored_names, names, "one ok line per name: {}", run.stdout);
    for (name, count) in &stored {
        assert!(*count >= 3, "{name} on {count} nodes: {}", run.stdout);
    }

    // The first answer after publishing, within a deadline.
    let www: BTreeSet<String> = ["192.0.2.10", "192.0.2.11"].map(String::from).into();
    dig_until(
        stub,
        &["www.test.kad", "A"],
        Duration::from_secs(30),
        |out| crate::e2e_support::addresses(out).is_ok_and(|a| a == www),
    )
    .await?;

    // Every check over UDP, then over TCP: one dig run each.
    let checks = checks(&zone_id);
    for transport in ["+notcp", "+tcp"] {
        let mut args = vec![transport.to_owned()];
        for c in &checks {
            args.extend([c.qname.clone(), c.qtype.to_owned()]);
        }
        let out = run_dig(stub, args).await?;
        let responses = dig::responses(&out);
        assert_eq!(responses.len(), checks.len(), "{transport}: {out}");
        for (c, response) in checks.iter().zip(responses) {
            verify(c, response, transport)?;
        }
    }
    // Once: the second transport's query is answered from the forward cache.
    assert!(upstream.queries() >= 1, "the outside name went upstream");
    drop(nodes);
    Ok(())
}
