//! `kadns serve --metrics`: Prometheus counters for what the stub answered;
//! no endpoint unless one is configured.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use kadns_record::hickory_proto::op::ResponseCode;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_record::hickory_proto::rr::{RData, RecordType};
use kadns_tests::TestResult;
use kadns_tests::client;
use kadns_tests::process::KadnsProcess;
use kadns_tests::upstream::TestUpstream;

use crate::e2e_support::serve_args;
use crate::support::KADNS;

fn http_get(addr: SocketAddr, path: &str) -> TestResult<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

#[tokio::test]
async fn counters_are_served_only_where_configured() -> TestResult {
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 9)))]).await?;
    let dir = tempfile::tempdir()?;
    let args = |data: &str, metrics: bool| {
        let mut args = serve_args(&dir.path().join(data), "127.0.0.1:0");
        args.extend(["--upstream".into(), upstream.addr().to_string()]);
        if metrics {
            args.extend(["--metrics".into(), "127.0.0.1:0".into()]);
        }
        args
    };
    let mut plain = KadnsProcess::serve(Path::new(KADNS), args("plain", false))?;
    assert!(
        !plain
            .stdout_lines()
            .iter()
            .any(|l| l.starts_with("metrics")),
        "off by default"
    );

    let mut node = KadnsProcess::serve(Path::new(KADNS), args("node", true))?;
    let metrics: SocketAddr = node
        .stdout_lines()
        .iter()
        .find_map(|l| l.strip_prefix("metrics http "))
        .ok_or("no metrics line")?
        .parse()?;
    let dns = node.dns_udp[0];

    let forwarded = client::ask(dns, "outside.example.", RecordType::A).await?;
    assert_eq!(forwarded.answers.len(), 1);
    // A lone node has no peers: a kadns name cannot be looked up (SERVFAIL, not NXDOMAIN).
    let zone = kadns_record::ZoneKey::from_seed([1; 32]).zone_id();
    let lone = client::ask(dns, &format!("www.{zone}."), RecordType::A).await?;
    assert_eq!(lone.metadata.response_code, ResponseCode::ServFail);

    let scrape = tokio::task::spawn_blocking(move || http_get(metrics, "/metrics")).await??;
    assert!(scrape.starts_with("HTTP/1.1 200 OK"), "{scrape}");
    for series in [
        "kadns_stub_responses_total{protocol=\"udp\",outcome=\"upstream\"} 1",
        "kadns_stub_responses_total{protocol=\"udp\",outcome=\"servfail\"} 1",
        "kadns_stub_forwarded_queries_total 1",
        "kadns_stub_kadns_queries_total 1",
        "kadns_resolver_upstream_queries_total 1",
        "kadns_dht_records 0",
    ] {
        assert!(scrape.contains(series), "no {series:?} in {scrape}");
    }
    let other = tokio::task::spawn_blocking(move || http_get(metrics, "/")).await??;
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    assert!(node.terminate()?.success());
    assert!(plain.terminate()?.success());
    Ok(())
}
