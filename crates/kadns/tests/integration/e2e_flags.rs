//! Truncation and header flags through the real `kadns serve`, with raw
//! packets, `dig` and `kdig`: a 3 KB TXT (in a kadns zone, and forwarded)
//! gives a clean TC reply over UDP (header, question, OPT: nothing else)
//! within the client's limit, and comes whole over TCP; AD appears only
//! when the query asks (AD or DO), AA on kadns answers, RA always.

use std::net::SocketAddr;
use std::time::Duration;

use kadns_record::hickory_proto::op::Message;
use kadns_record::hickory_proto::rr::RecordType;
use kadns_record::hickory_proto::rr::{RData, rdata::TXT};
use kadns_tests::client::{self, query_message};
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tracing_test::traced_test;

use crate::e2e_support::{dig as run_dig, dig_until, generate_key, publish, serve, serve_args};

/// 12 strings of 250 characters: a TXT record of about 3 KB.
fn big_strings() -> Vec<String> {
    (0..12)
        .map(|i| format!("{i:02}{}", "x".repeat(248)))
        .collect()
}

fn zone_text() -> String {
    let strings: Vec<String> = big_strings().iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "$ORIGIN flags.kad.\n$TTL 300\n\
         @ IN SOA ns hostmaster ( 1 3600 600 86400 60 )\n\
         www IN A 192.0.2.80\n\
         big IN TXT ( {} )\n",
        strings.join("\n  ")
    )
}

/// Checks a UDP reply byte by byte: TC set, exactly one question (the one
/// asked), no answer or authority record, an OPT record exactly when
/// `edns`, nothing after it, and at most `limit` bytes.
fn assert_clean_tc(query: &Message, reply: &[u8], edns: bool, limit: usize) -> TestResult {
    assert!(
        reply.len() <= limit,
        "{} bytes over a {limit}-byte limit",
        reply.len()
    );
    assert!(reply.len() >= 12, "shorter than a header");
    let count = |at: usize| u16::from_be_bytes([reply[at], reply[at + 1]]);
    assert_eq!(reply[2] & 0x02, 0x02, "TC set");
    assert_eq!(count(4), 1, "QDCOUNT");
    assert_eq!(count(6), 0, "ANCOUNT");
    assert_eq!(count(8), 0, "NSCOUNT");
    assert_eq!(count(10), u16::from(edns), "ARCOUNT: the OPT record only");
    let question = query.to_vec()?;
    // The query's own question section: its name, type and class.
    let q_len = {
        let mut at = 12;
        while question[at] != 0 {
            at += usize::from(question[at]) + 1;
        }
        at + 1 + 4 - 12
    };
    assert_eq!(
        reply[12..12 + q_len].to_ascii_lowercase(),
        question[12..12 + q_len].to_ascii_lowercase(),
        "the question, as asked"
    );
    let opt_len = if edns { 11 } else { 0 };
    // An OPT record with no options is 11 bytes; any option a stub adds
    // (none here) would have to be counted.
    assert_eq!(
        reply.len(),
        12 + q_len + opt_len,
        "nothing after the question and OPT: no partial record"
    );
    let decoded = Message::from_vec(reply)?;
    assert!(decoded.metadata.truncation && decoded.answers.is_empty());
    Ok(())
}

async fn udp_bytes(server: SocketAddr, query: &Message) -> TestResult<Vec<u8>> {
    client::udp_raw(server, &query.to_vec()?, Duration::from_secs(5))
        .await?
        .ok_or_else(|| "no UDP reply".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[traced_test]
async fn big_answers_truncate_cleanly_and_flags_follow_the_rfcs() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(90), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let strings = big_strings();
    let upstream =
        TestUpstream::start(&[("big.example.", RData::TXT(TXT::new(strings.clone())))]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let mut args = serve_args(&dir.path().join("stub"), "127.0.0.1:0");
    args.extend([
        "--upstream".into(),
        upstream.addr().to_string(),
        "--anchor".into(),
        format!("flags.kad={zone_id}"),
    ]);
    let stub = serve(args).await?;
    let server = stub.dns_udp[0];
    let zone = dir.path().join("flags.zone");
    std::fs::write(&zone, zone_text())?;
    let run = publish(&key, &zone, stub.p2p_addr(), 1).await?;
    assert!(run.success, "{run:?}");
    dig_until(
        server,
        &["www.flags.kad", "A"],
        Duration::from_secs(30),
        |out| dig::status(out).as_deref() == Some("NOERROR"),
    )
    .await?;

    for name in ["big.flags.kad.", "big.example."] {
        // No EDNS: at most 512 bytes, header and question only.
        let query = query_message(name, RecordType::TXT, None)?;
        assert_clean_tc(&query, &udp_bytes(server, &query).await?, false, 512)?;
        // EDNS 1232 and 4096 (capped at 1232 over UDP): header, question, OPT.
        for size in [1232, 4096] {
            let query = query_message(name, RecordType::TXT, Some(size))?;
            assert_clean_tc(&query, &udp_bytes(server, &query).await?, true, 1232)?;
        }
        // Over TCP: whole.
        let whole = client::tcp(server, &query_message(name, RecordType::TXT, None)?).await?;
        assert!(!whole.metadata.truncation);
        let RData::TXT(txt) = &whole.answers[0].data else {
            return Err(format!("{name}: not a TXT answer").into());
        };
        let text: Vec<String> = txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        assert_eq!(text, strings, "{name} over TCP");

        // dig: TC without EDNS and without retrying; whole over TCP.
        let out = run_dig(
            server,
            vec![
                "+noedns".into(),
                "+ignore".into(),
                name.into(),
                "TXT".into(),
            ],
        )
        .await?;
        assert!(dig::flags(&out).contains(&"tc".to_owned()), "{out}");
        assert!(dig::answer_lines(&out).is_empty(), "{out}");
        let out = run_dig(server, vec!["+tcp".into(), name.into(), "TXT".into()]).await?;
        assert!(out.contains(&strings[11]), "{out}");
        if kdig_available() {
            let out = kdig(server, &["+notcp", "+noedns", "+ignoretc", name, "TXT"])?;
            assert!(out.contains("TC"), "kdig sees TC: {out}");
            let out = kdig(server, &["+tcp", name, "TXT"])?;
            assert!(out.contains(&strings[11]), "{out}");
        }
    }

    // AD only when asked for; AA on kadns answers; RA always.
    let flags = |args: &[&str]| {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        args.extend(["www.flags.kad".into(), "A".into()]);
        async move { TestResult::Ok(dig::flags(&run_dig(server, args).await?)) }
    };
    let neither = flags(&["+noadflag"]).await?;
    assert!(!neither.contains(&"ad".to_owned()), "{neither:?}");
    assert!(
        neither.contains(&"aa".to_owned()) && neither.contains(&"ra".to_owned()),
        "{neither:?}"
    );
    let ad = flags(&["+adflag"]).await?;
    assert!(ad.contains(&"ad".to_owned()), "{ad:?}");
    let dnssec = flags(&["+noadflag", "+dnssec"]).await?;
    assert!(dnssec.contains(&"ad".to_owned()), "{dnssec:?}");
    // A forwarded answer: no AA, RA, and no AD the upstream did not give.
    let out = run_dig(
        server,
        vec![
            "+adflag".into(),
            "+tcp".into(),
            "big.example.".into(),
            "TXT".into(),
        ],
    )
    .await?;
    let forwarded = dig::flags(&out);
    assert!(
        !forwarded.contains(&"aa".to_owned()) && !forwarded.contains(&"ad".to_owned()),
        "{forwarded:?}"
    );
    assert!(forwarded.contains(&"ra".to_owned()), "{forwarded:?}");
    Ok(())
}

fn kdig_available() -> bool {
    std::process::Command::new("kdig")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kdig(server: SocketAddr, args: &[&str]) -> TestResult<String> {
    let output = std::process::Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+time=5", "+retry=0"])
        .args(args)
        .output()?;
    Ok(String::from_utf8(output.stdout)?)
}
