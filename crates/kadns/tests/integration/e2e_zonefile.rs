//! A zone file as an operator writes it — `$TTL 1w`, NS at 172800, a
//! wildcard beside a real name, an empty non-terminal, a duplicate, and
//! record types hickory does not parse — signs with warnings naming the
//! lines, publishes, and real `dig` gets every answer through the stub:
//! wildcard synthesis under the query name, the real name's own record,
//! NODATA for the empty non-terminal, NXDOMAIN where no wildcard reaches,
//! clamped TTLs, and every record type.

use std::time::Duration;

use kadns_publisher::ParsedZone;
use kadns_record::hickory_proto::rr::RData;
use kadns_record::hickory_proto::rr::rdata::A;
use kadns_record::{OwnerName, Rr};
use kadns_tests::upstream::TestUpstream;
use kadns_tests::{TestResult, dig};
use tracing_test::traced_test;

use crate::e2e_support::{
    CLI_TIMEOUT, DigRecord, answers, dig as run_dig, dig_until, generate_key, network, publish,
};
use crate::support::kadns_async;

const NODES: usize = 4;
const MAX_TTL: u32 = 86_400;

/// The zone. Line numbers matter: the warnings name them.
const ZONE: &str = r#"; corp.kad, written the way BIND operators write zones
$ORIGIN corp.kad.
$TTL 1w
@       IN SOA  ns1 hostmaster ( 2026120201 7200 3600 1209600 300 )
@ 172800 IN NS  ns1
@ 172800 IN NS  ns2.example.net.
@       IN MX   10 mail
@       IN TXT  "v=spf1 mx -all"
@       IN SPF  "v=spf1 mx -all"
@       IN CAA  0 issue "letsencrypt.org"
ns1     IN A    192.0.2.53
mail    IN A    192.0.2.25
www     IN A    192.0.2.1
www     IN A    192.0.2.1
www     IN SSHFP 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
_443._tcp.www IN TLSA 3 1 1 ( 0123456789abcdef0123456789abcdef
                              0123456789abcdef0123456789abcdef )
*.users IN A    192.0.2.80
alice.users IN A 192.0.2.81
a.b     IN A    192.0.2.2
_sip._tcp IN SRV 10 60 5060 sip
sip     IN A    192.0.2.50
sip     IN NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
office  IN LOC  52 22 23.000 N 4 53 32.000 E -2.00m 1m 10000m 10m
office  IN HINFO "PC" "Linux"
office  IN RP   admin.corp.kad. info
info    IN TXT  "contact"
afs     IN AFSDB 1 afsdb
afsdb   IN A    192.0.2.60
old     IN DNAME new.example.net.
link    IN URI  10 1 "https://www.corp.kad/"
nic     IN EUI48 00-00-5e-00-53-2a
ilnp    IN L32  10 192.0.2.99
kx      IN KX   10 mail
nets    IN APL  1:192.0.2.0/24 !1:192.0.2.128/25
blob    IN TYPE65280 \# 4 0a000001
"#;

/// More types, each at its own name (`t<code>`), appended after [`ZONE`]:
/// checked byte for byte with `dig +unknownformat` against what the parser
/// makes of the same line. (code, data as written.)
const MORE: &[(u16, &str)] = &[
    (3, "MD mail"),
    (4, "MF mail"),
    (7, "MB mail"),
    (8, "MG Mail.Corp.Kad."),
    (9, "MR mail"),
    (11, "WKS 192.0.2.1 tcp ftp smtp"),
    (14, "MINFO req err.example.net."),
    (19, "X25 \"311061700956\""),
    (20, "ISDN \"150862028003217\" \"004\""),
    (21, "RT 10 relay"),
    (
        22,
        "NSAP 0x47.0005.80.005a00.0000.0001.e133.ffffff000161.00",
    ),
    (23, "NSAP-PTR host"),
    (26, "PX 10 map822 mapx400.example.net."),
    (27, "GPOS \"-32.6882\" \"116.8652\" \"10.0\""),
    (31, "EID 0a0b0c"),
    (32, "NIMLOC 32"),
    (34, "ATMA +16505551234"),
    (38, "A6 64 ::1 prefix"),
    (40, "SINK 1 0 AQID"),
    (
        45,
        "IPSECKEY 10 3 2 gw AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==",
    ),
    (49, "DHCID AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA="),
    (
        55,
        "HIP 2 200100107B1A74DF365639CC39F1D578 AwEAAbdxyhNuSutc5EMzxTs9LBPCIkOFH8cIvM4p9+LrV4e19WzK00+CI6zBCQTdtWsuxKbWIy87UOoJTwkUs7lBu+Upr1gsNrut79ryra+bSRGQb1slImA8YVJyuIDsj7kwzG7jnERNqnWxZ48AWkskmdHaVDP4BcelrTI3rMXdXF5D rvs.example.net.",
    ),
    (56, "NINFO \"up\" \"ok\""),
    (57, "RKEY 0 3 13 AQID"),
    (58, "TALINK prev next"),
    (
        63,
        "ZONEMD 2018031900 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ),
    (100, "UINFO \"user\""),
    (101, "UID 1000"),
    (102, "GID 100"),
    (104, "NID 10 0014:4fff:ff20:ee64"),
    (106, "L64 10 2001:db8:1140:1000"),
    (107, "LP 10 l64-subnet"),
    (109, "EUI64 00-00-5e-ef-10-00-00-2a"),
    (258, "AVC \"app-name:WebEx\""),
    (259, "DOA 0 1 2 \"\" aHR0cHM6Ly93d3cuaXNjLm9yZy8="),
    (260, "AMTRELAY 10 0 3 relay"),
    (261, "RESINFO qnamemin exterr=15-17"),
    (262, "WALLET \"BTC\" \"bc1q\""),
    (10, "NULL \\# 3 010203"),
];

fn more_lines() -> String {
    MORE.iter()
        .map(|(code, data)| format!("t{code} IN {data}\n"))
        .collect()
}

/// What the parser makes of `t<code>`'s line, as dig prints RFC 3597 data.
fn generic_form(code: u16) -> TestResult<String> {
    let zone = ParsedZone::from_text(
        &format!("$ORIGIN corp.kad.\n$TTL 60\n{}", more_lines()),
        "more",
        None,
    )?;
    let owner = OwnerName::from_labels([format!("t{code}").as_bytes()])?;
    let record = &zone.names()[&owner][0];
    let rr = Rr::new(60, record.rdata())?;
    let hex: String = rr
        .rdata_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(format!("\\#{}{hex}", rr.rdata_bytes().len()))
}

/// (query name, type, expected answer data with blanks removed, lower case).
/// Names inside RDATA come back under the name the query used.
const TYPES: &[(&str, &str, &str)] = &[
    ("corp.kad", "MX", "10mail.corp.kad."),
    ("corp.kad", "TXT", "\"v=spf1mx-all\""),
    ("corp.kad", "SPF", "\"v=spf1mx-all\""),
    ("corp.kad", "CAA", "0issue\"letsencrypt.org\""),
    (
        "www.corp.kad",
        "SSHFP",
        "420123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ),
    (
        "_443._tcp.www.corp.kad",
        "TLSA",
        "3110123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ),
    ("_sip._tcp.corp.kad", "SRV", "10605060sip.corp.kad."),
    (
        "sip.corp.kad",
        "NAPTR",
        "10010\"s\"\"sip+d2u\"\"\"_sip._udp.corp.kad.",
    ),
    (
        "office.corp.kad",
        "LOC",
        "522223.000n45332.000e-2.00m1m10000m10m",
    ),
    ("office.corp.kad", "HINFO", "\"pc\"\"linux\""),
    ("office.corp.kad", "RP", "admin.corp.kad.info.corp.kad."),
    ("afs.corp.kad", "AFSDB", "1afsdb.corp.kad."),
    ("old.corp.kad", "DNAME", "new.example.net."),
    ("link.corp.kad", "URI", "101\"https://www.corp.kad/\""),
    ("nic.corp.kad", "EUI48", "00-00-5e-00-53-2a"),
    ("ilnp.corp.kad", "L32", "10192.0.2.99"),
    ("kx.corp.kad", "KX", "10mail.corp.kad."),
    ("nets.corp.kad", "APL", "1:192.0.2.0/24!1:192.0.2.128/25"),
    ("blob.corp.kad", "TYPE65280", "\\#40a000001"),
];

fn squash(text: &str) -> String {
    text.split_whitespace().collect::<String>().to_lowercase()
}

#[tokio::test]
#[traced_test]
async fn an_operators_zone_file_signs_publishes_and_answers_every_type() -> TestResult {
    if !dig::available() {
        eprintln!("dig is not installed: skipping (CI installs it)");
        return Ok(());
    }
    tokio::time::timeout(Duration::from_secs(120), run()).await?
}

async fn run() -> TestResult {
    let dir = tempfile::tempdir()?;
    let upstream =
        TestUpstream::start(&[("outside.example.", RData::A(A::new(198, 51, 100, 7)))]).await?;
    let (key, zone_id) = generate_key(dir.path()).await?;
    let zone = dir.path().join("corp.zone");
    std::fs::write(&zone, format!("{ZONE}{}", more_lines()))?;
    let file = zone.display().to_string();

    // Offline signing: it succeeds, and says what it changed, by line.
    let signed = dir.path().join("corp.signed");
    let sign = kadns_async(
        [
            "zone".as_ref(),
            "sign".as_ref(),
            "--key".as_ref(),
            key.as_os_str(),
            "--out".as_ref(),
            signed.as_os_str(),
            zone.as_os_str(),
        ],
        CLI_TIMEOUT,
    )
    .await?;
    assert!(sign.success, "zone sign: {sign:?}");
    for warning in [
        format!("{file}:3: warning: $TTL 604800 is above the limit of 86400 seconds"),
        format!("{file}:5: warning: TTL 172800 is above the limit of 86400 seconds: clamped"),
        format!("{file}:6: warning: TTL 172800 is above the limit"),
        format!("{file}:14: warning: duplicate A record for www.corp.kad. (first at line 13)"),
    ] {
        assert!(sign.stderr.contains(&warning), "{warning}\n{}", sign.stderr);
    }

    // A small network; the last node is the stub, with the zone's anchor.
    let anchor = ["--anchor".to_owned(), format!("corp.kad={zone_id}")];
    let nodes = network(dir.path(), upstream.addr(), NODES, &anchor).await?;
    let stub = nodes[NODES - 1].dns_udp[0];
    let run = publish(&key, &zone, nodes[1].p2p_addr(), 2).await?;
    assert!(run.success, "zone publish: {run:?}");
    assert!(
        run.stderr
            .contains(&format!("{file}:5: warning: TTL 172800")),
        "publish prints the warnings too: {}",
        run.stderr
    );

    // The wildcard, synthesized under the query name, in the query's case.
    let out = dig_until(
        stub,
        &["X.y.Users.corp.kad", "A"],
        Duration::from_secs(30),
        |out| dig::status(out).as_deref() == Some("NOERROR") && !dig::answer_lines(out).is_empty(),
    )
    .await?;
    let got = answers(&out)?;
    assert_eq!(got.len(), 1, "{out}");
    assert_eq!(
        got[0].owner, "X.y.Users.corp.kad.",
        "owner = query name: {out}"
    );
    assert_eq!(
        (got[0].rtype.as_str(), got[0].rdata.as_str()),
        ("A", "192.0.2.80")
    );
    assert!(
        got[0].ttl <= MAX_TTL && got[0].ttl > MAX_TTL - 120,
        "clamped: {out}"
    );

    // Alice's own record, not the wildcard's.
    let out = run_dig(stub, vec!["alice.users.corp.kad".into(), "A".into()]).await?;
    let got = answers(&out)?;
    assert_eq!(got.len(), 1, "{out}");
    assert_eq!(got[0].rdata, "192.0.2.81", "{out}");

    // `b` exists only because `a.b` does: NODATA with the zone's SOA.
    let out = run_dig(stub, vec!["b.corp.kad".into(), "A".into()]).await?;
    assert_eq!(dig::status(&out).as_deref(), Some("NOERROR"), "{out}");
    assert!(dig::answer_lines(&out).is_empty(), "{out}");
    let authority: Vec<DigRecord> = dig::authority_lines(&out)
        .iter()
        .map(|l| DigRecord::parse(l))
        .collect::<TestResult<_>>()?;
    assert!(
        authority
            .iter()
            .any(|r| r.rtype == "SOA" && r.owner == "corp.kad."),
        "{out}"
    );
    // `a.b` itself still answers.
    let out = run_dig(stub, vec!["a.b.corp.kad".into(), "A".into()]).await?;
    assert_eq!(answers(&out)?[0].rdata, "192.0.2.2", "{out}");

    // No wildcard above: NXDOMAIN, with the SOA.
    for qname in ["nope.corp.kad", "c.b.corp.kad"] {
        let out = run_dig(stub, vec![qname.into(), "A".into()]).await?;
        assert_eq!(
            dig::status(&out).as_deref(),
            Some("NXDOMAIN"),
            "{qname}: {out}"
        );
        assert!(!dig::authority_lines(&out).is_empty(), "{out}");
    }

    // TTLs above the limit were clamped: NS written at 172800, the rest at $TTL 1w.
    for (qname, qtype) in [("corp.kad", "NS"), ("www.corp.kad", "A")] {
        let out = run_dig(stub, vec![qname.into(), qtype.into()]).await?;
        let got = answers(&out)?;
        assert!(!got.is_empty(), "{qname} {qtype}: {out}");
        for r in &got {
            assert!(
                r.ttl <= MAX_TTL && r.ttl > MAX_TTL - 120,
                "{qname} {qtype}: {out}"
            );
        }
        if qtype == "A" {
            assert_eq!(got.len(), 1, "the duplicate is published once: {out}");
        }
    }

    // Every record type, in one dig run.
    let mut args = Vec::new();
    for (qname, qtype, _) in TYPES {
        args.extend([(*qname).to_owned(), (*qtype).to_owned()]);
    }
    let out = run_dig(stub, args).await?;
    let responses = dig::responses(&out);
    assert_eq!(responses.len(), TYPES.len(), "{out}");
    for ((qname, qtype, want), response) in TYPES.iter().zip(responses) {
        let got = answers(response)?;
        assert_eq!(got.len(), 1, "{qname} {qtype}: {response}");
        assert_eq!(got[0].owner, format!("{qname}."), "{response}");
        assert_eq!(squash(&got[0].rdata), *want, "{qname} {qtype}: {response}");
    }

    // And the rest of the survey, byte for byte.
    let mut args = vec!["+unknownformat".to_owned()];
    for (code, _) in MORE {
        args.extend([format!("t{code}.corp.kad"), format!("TYPE{code}")]);
    }
    let out = run_dig(stub, args).await?;
    let responses = dig::responses(&out);
    assert_eq!(responses.len(), MORE.len(), "{out}");
    for ((code, data), response) in MORE.iter().zip(responses) {
        let got = answers(response)?;
        assert_eq!(got.len(), 1, "{data}: {response}");
        assert_eq!(got[0].owner, format!("t{code}.corp.kad."), "{response}");
        assert_eq!(
            squash(&got[0].rdata),
            generic_form(*code)?,
            "{data}: {response}"
        );
    }
    drop(nodes);
    Ok(())
}
