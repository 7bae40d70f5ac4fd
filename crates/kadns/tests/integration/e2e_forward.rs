//! Forwarding through the real `kadns serve` and `dig`: answers cached
//! (and still answered once the upstream is gone), negative answers cached
//! for their SOA-derived TTL, a per-domain forward reaching its own
//! upstream, and records a hostile upstream injects for kadns names or out
//! of bailiwick stripped.

use std::time::Duration;

use kadns_record::ZoneKey;
use kadns_record::hickory_proto::rr::rdata::{A, NS};
use kadns_record::hickory_proto::rr::{Name, RData, Record};
use kadns_tests::net::wait_until;
use kadns_tests::upstream::{Behaviour, TestUpstream};
use kadns_tests::{TestResult, dig};
use tokio::time::Instant;
use tracing_test::traced_test;

use crate::e2e_support::{DigRecord, addresses, dig as run_dig, serve, serve_args};

/// The negative TTL the upstream's SOA gives: min(SOA TTL 300, MINIMUM 2).
const NEGATIVE_TTL: Duration = Duration::from_secs(2);

fn a(name: &str, last: u8) -> TestResult<Record> {
    Ok(Record::from_rdata(
        Name::from_ascii(name)?,
        300,
        RData::A(A::new(203, 0, 113, last)),
    ))
}

async fn ask(server: std::net::SocketAddr, name: &str) -> TestResult<String> {
    run_dig(server, vec![name.to_owned(), "A".to_owned()]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn forwarded_answers_are_cached_scrubbed_and_routed_per_domain() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(60), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let zone = ZoneKey::from_seed([21; 32]).zone_id();
    // The default upstream is hostile: it adds records for kadns names and
    // for names that have nothing to do with the question to every answer.
    let hostile = Behaviour {
        soa: Some(("example.".into(), 300, 2)),
        inject_authority: vec![
            Record::from_rdata(
                Name::from_ascii("example.kad.")?,
                300,
                RData::NS(NS(Name::from_ascii("ns.evil.test.")?)),
            ),
            Record::from_rdata(
                Name::from_ascii("com.")?,
                300,
                RData::NS(NS(Name::from_ascii("ns.evil.test.")?)),
            ),
        ],
        inject_additional: vec![
            a("web.example.kad.", 66)?,
            a(&format!("www.{zone}."), 67)?,
            a("ns.evil.test.", 68)?,
        ],
        ..Behaviour::default()
    };
    let default = TestUpstream::start_with(
        &[("cached.example.", RData::A(A::new(198, 51, 100, 1)))],
        hostile,
    )
    .await?;
    let corp =
        TestUpstream::start(&[("host.corp.example.", RData::A(A::new(198, 51, 100, 2)))]).await?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        default.addr().to_string(),
        "--forward".into(),
        format!("corp.example={}", corp.addr()),
        "--anchor".into(),
        format!("example.kad={zone}"),
    ]);
    let stub = serve(args).await?;
    let server = stub.dns_udp[0];

    // A forwarded answer, scrubbed: nothing about kadns names, nothing out
    // of bailiwick.
    let out = ask(server, "cached.example").await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NOERROR"), "{out}");
    assert_eq!(addresses(&out)?, ["198.51.100.1".to_owned()].into());
    for injected in [
        "example.kad",
        &zone.to_string(),
        "evil.test",
        "com.",
        "203.0.113.",
    ] {
        assert!(
            !out.contains(injected),
            "{injected} reached the client: {out}"
        );
    }
    let after_first = default.queries();

    // Cached: asked again, the upstream hears nothing.
    let out = ask(server, "CACHED.example").await?;
    assert_eq!(addresses(&out)?, ["198.51.100.1".to_owned()].into());
    assert_eq!(default.queries(), after_first, "answered from the cache");

    // A per-domain forward reaches its own upstream and not the default one.
    let out = ask(server, "host.corp.example").await?;
    assert_eq!(
        addresses(&out)?,
        ["198.51.100.2".to_owned()].into(),
        "{out}"
    );
    assert_eq!(corp.queries(), 1);
    assert_eq!(default.queries(), after_first, "not the default upstream");

    // A negative answer is cached for min(SOA TTL, MINIMUM), then asked again.
    // Taken before asking: the answer is cached after this instant.
    let asked_at = Instant::now();
    let out = ask(server, "missing.example").await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NXDOMAIN"), "{out}");
    let soa = dig::authority_lines(&out)
        .iter()
        .map(|l| DigRecord::parse(l))
        .collect::<TestResult<Vec<_>>>()?;
    assert!(
        soa.iter().any(|r| r.rtype == "SOA" && r.ttl <= 2),
        "the SOA carries the negative TTL: {out}"
    );
    let after_negative = default.queries();
    let out = ask(server, "missing.example").await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NXDOMAIN"));
    if asked_at.elapsed() < NEGATIVE_TTL {
        assert_eq!(default.queries(), after_negative, "the NXDOMAIN is cached");
    }
    wait_until(
        "the negative answer to expire",
        Duration::from_secs(10),
        || async {
            ask(server, "missing.example").await.is_ok() && default.queries() > after_negative
        },
    )
    .await?;
    assert!(
        asked_at.elapsed() >= NEGATIVE_TTL,
        "asked again only once the negative TTL had passed"
    );

    // The upstream stops: the cached answer is still served.
    drop(default);
    let out = ask(server, "cached.example").await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NOERROR"), "{out}");
    assert_eq!(addresses(&out)?, ["198.51.100.1".to_owned()].into());
    Ok(())
}
