//! The zone file parser's tests: syntax, the gaps filled in hickory's parser, checks and warnings.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NULL};
use hickory_proto::serialize::txt::Parser;
use proptest::prelude::*;

use super::ProblemKind;
use crate::types;

use super::*;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn parse(text: &str) -> Result<ParsedZone, ZoneError> {
    ParsedZone::from_text(text, "test.zone", None)
}

fn problems(text: &str) -> Vec<(usize, ProblemKind)> {
    match parse(text) {
        Err(ZoneError::Invalid { problems, .. }) => {
            problems.into_iter().map(|p| (p.line, p.kind)).collect()
        }
        other => panic!("expected problems, got {other:?}"),
    }
}

/// (owner, type, line) of every record, in name order.
fn summary(zone: &ParsedZone) -> Vec<(String, RecordType, usize)> {
    zone.names()
        .values()
        .flatten()
        .map(|r| (r.name().to_ascii(), r.record_type(), r.line()))
        .collect()
}

fn hickory(
    text: &str,
) -> Result<BTreeMap<hickory_proto::rr::RrKey, hickory_proto::rr::RecordSet>, String> {
    Parser::new(text, None, Some(name("example.org.")))
        .parse()
        .map(|(_, sets)| sets)
        .map_err(|e| e.to_string())
}

/// Each gap this module fills is real in hickory-proto 0.26. If one of these
/// starts failing, hickory changed: revisit the workaround.
#[test]
fn hickory_gaps_are_real() {
    // A relative SVCB target is not made relative to the origin: `www`
    // comes out as the root-level `www.`.
    let sets = hickory("a 300 IN SVCB 1 www\n").unwrap();
    let record = sets
        .values()
        .next()
        .unwrap()
        .records_without_rrsigs()
        .next()
        .unwrap();
    let RData::SVCB(svcb) = &record.data else {
        panic!("SVCB")
    };
    assert_ne!(svcb.target_name, name("www.example.org."));
    // Here it is, as for every other name in RDATA.
    let zone = parse("$ORIGIN example.org.\n$TTL 60\na SVCB 1 www\nb HTTPS 1 .\n").unwrap();
    let rdata: Vec<RData> = zone
        .names()
        .values()
        .flatten()
        .map(|r| r.rdata().clone())
        .collect();
    let RData::SVCB(svcb) = &rdata[0] else {
        panic!("SVCB")
    };
    assert_eq!(svcb.target_name, name("www.example.org."));
    let RData::HTTPS(https) = &rdata[1] else {
        panic!("HTTPS")
    };
    assert!(https.0.target_name.is_root(), "'.' stays the root");
    // RFC 3597 syntax, for unknown and known types, and CLASSnnn/TYPEnnn.
    assert!(hickory("a 300 IN TYPE65534 \\# 4 0a000001\n").is_err());
    assert!(hickory("a 300 IN A \\# 4 0a000001\n").is_err());
    assert!(hickory("a 300 CLASS1 A 192.0.2.1\n").is_err());
    assert!(hickory("a 300 IN TYPE1 192.0.2.1\n").is_err());
    // No line numbers: the error for line 3 does not say 3.
    let err =
        hickory("a 300 IN A 192.0.2.1\nb 300 IN A 192.0.2.2\nc 300 IN A 192.0.2\n").unwrap_err();
    assert!(!err.contains('3'), "{err}");
    // \DDD in a quoted string becomes a wrong character, not the byte.
    let sets = hickory("a 300 IN TXT \"\\065\"\n").unwrap();
    let rdata = &sets
        .values()
        .next()
        .unwrap()
        .records_without_rrsigs()
        .next()
        .unwrap()
        .data;
    assert_ne!(rdata, &RData::TXT(TXT::new(vec!["A".into()])));
    // A backslash-escaped ';' in a bare word starts a comment.
    let sets = hickory("a 300 IN TXT a\\;b\n").unwrap();
    let rdata = &sets
        .values()
        .next()
        .unwrap()
        .records_without_rrsigs()
        .next()
        .unwrap()
        .data;
    assert_eq!(rdata, &RData::TXT(TXT::new(vec!["a\\".into()])));
    // `@` in RDATA is refused.
    assert!(hickory("a 300 IN CNAME @\n").is_err());
    // Two CNAMEs at one name: the first is silently dropped.
    let sets = hickory("a 300 IN CNAME b\na 300 IN CNAME c\n").unwrap();
    assert_eq!(
        sets.values()
            .map(|s| s.records_without_rrsigs().count())
            .sum::<usize>(),
        1
    );
    // A record without a type is silently dropped.
    assert_eq!(hickory("a 300 IN\n").unwrap().len(), 0);
}

#[test]
fn every_listed_type_parses_with_its_line() {
    let text = r#"$ORIGIN example.org.
$TTL 3600
@       IN SOA  ns1 hostmaster (
            2024010101 ; serial
            7200 3600 1209600 300 )
    IN NS   ns1
    IN NS   ns2.example.net.
    IN MX   10 mail
    IN CAA  0 issue "letsencrypt.org"
    IN HTTPS 1 . alpn=h2,h3
ns1     IN A    192.0.2.53
www     IN A    192.0.2.1
    IN AAAA 2001:db8::1
    IN TXT  "v=spf1 -all" "second"
alias   IN CNAME www
_sip._tcp IN SRV 10 60 5060 sip
svc     IN SVCB 1 www alpn="h2" port=8443
1.2     IN PTR  www
blob    IN TYPE65534 \# 4 0a000001
"#;
    let zone = parse(text).unwrap();
    assert_eq!(zone.origin(), &name("example.org."));
    assert_eq!(zone.record_count(), 15);
    let mut got = summary(&zone);
    got.sort_by_key(|r| r.2);
    let want = [
        ("example.org.", RecordType::SOA, 3),
        ("example.org.", RecordType::NS, 6),
        ("example.org.", RecordType::NS, 7),
        ("example.org.", RecordType::MX, 8),
        ("example.org.", RecordType::CAA, 9),
        ("example.org.", RecordType::HTTPS, 10),
        ("ns1.example.org.", RecordType::A, 11),
        ("www.example.org.", RecordType::A, 12),
        ("www.example.org.", RecordType::AAAA, 13),
        ("www.example.org.", RecordType::TXT, 14),
        ("alias.example.org.", RecordType::CNAME, 15),
        ("_sip._tcp.example.org.", RecordType::SRV, 16),
        ("svc.example.org.", RecordType::SVCB, 17),
        ("1.2.example.org.", RecordType::PTR, 18),
        ("blob.example.org.", RecordType::Unknown(65534), 19),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(n, t, l)| (n.to_string(), *t, *l))
        .collect();
    assert_eq!(got, want);
    let records =
        |owner: &str| &zone.names()[&OwnerName::relative_to(&name(owner), zone.origin()).unwrap()];
    assert_eq!(
        records("example.org.")[3].rdata(),
        &RData::MX(MX::new(10, name("mail.example.org.")))
    );
    assert_eq!(
        records("alias.example.org.")[0].rdata(),
        &RData::CNAME(CNAME(name("www.example.org.")))
    );
    assert_eq!(
        records("blob.example.org.")[0].rdata(),
        &RData::Unknown {
            code: RecordType::Unknown(65534),
            rdata: NULL::with(vec![10, 0, 0, 1]),
        }
    );
    assert!(records("www.example.org.").iter().all(|r| r.ttl() == 3600));
}

#[test]
fn origin_ttl_owner_and_class_rules() {
    let text = "$ORIGIN Example.ORG.
a 300 IN A 192.0.2.1 ; explicit TTL
b A 192.0.2.2        ; no $TTL yet: the last explicit TTL
  1h IN AAAA ::1     ; blank owner: b; TTL with a unit
c IN 120 A 192.0.2.3 ; class before TTL
$TTL 60
d in a 192.0.2.4     ; $TTL now; lower-case class and type
$ORIGIN sub          ; relative to the current origin
e A 192.0.2.5
@ A 192.0.2.6
f.example.org. A 192.0.2.7
( g 30 A
  192.0.2.8 )
h 30 ( IN A 192.0.2.9 )
";
    let zone = parse(text).unwrap();
    let got: Vec<_> = zone
        .names()
        .values()
        .flatten()
        .map(|r| (r.name().to_ascii().to_lowercase(), r.ttl(), r.line()))
        .collect();
    let mut got = got;
    got.sort_by_key(|r| r.2);
    let want = [
        ("a.example.org.", 300, 2),
        ("b.example.org.", 300, 3),
        ("b.example.org.", 3600, 4),
        ("c.example.org.", 120, 5),
        ("d.example.org.", 60, 7),
        ("e.sub.example.org.", 60, 9),
        ("sub.example.org.", 60, 10),
        ("f.example.org.", 60, 11),
        ("g.sub.example.org.", 30, 12),
        ("h.sub.example.org.", 30, 14),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(n, t, l)| (n.to_string(), *t, *l))
        .collect();
    assert_eq!(got, want);
    assert_eq!(zone.origin(), &name("example.org."));
    // The caller's origin, when given, is the apex and the first $ORIGIN.
    let zone =
        ParsedZone::from_text("www 60 A 192.0.2.1\n", "t", Some(&name("example.org"))).unwrap();
    assert_eq!(zone.origin(), &name("example.org."));
    assert_eq!(
        summary(&zone),
        [("www.example.org.".to_string(), RecordType::A, 1)]
    );
}

#[test]
fn at_in_rdata_is_the_current_origin() {
    let zone = parse("$ORIGIN example.org.\n$TTL 60\nwww CNAME @\n@ MX 10 @\n").unwrap();
    let all: Vec<_> = zone
        .names()
        .values()
        .flatten()
        .map(|r| r.rdata().clone())
        .collect();
    assert!(all.contains(&RData::CNAME(CNAME(name("example.org.")))));
    assert!(all.contains(&RData::MX(MX::new(10, name("example.org.")))));
}

#[test]
fn rfc_3597_generic_data() {
    let zone = parse(
        "$ORIGIN example.org.\n$TTL 60\n\
         a CLASS1 A \\# 4 c0 00 02 01\n\
         b TYPE1 192.0.2.2\n\
         c TYPE28 \\# 16 20010db8 00000000 ( 00000000\n 00000001 )\n\
         d TYPE65534 \\# 0\n\
         e TYPE260 \\# 3 ABCDEF\n",
    )
    .unwrap();
    let rdata: Vec<_> = zone
        .names()
        .values()
        .flatten()
        .map(|r| r.rdata().clone())
        .collect();
    assert_eq!(rdata[0], RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(rdata[1], RData::A(A(Ipv4Addr::new(192, 0, 2, 2))));
    assert_eq!(
        rdata[2],
        RData::AAAA(AAAA(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)))
    );
    assert_eq!(rdata[3].record_type(), RecordType::Unknown(65534));
    assert_eq!(
        rdata[4],
        RData::Unknown {
            code: RecordType::Unknown(260),
            rdata: NULL::with(vec![0xab, 0xcd, 0xef]),
        }
    );

    let got = problems(
        "$ORIGIN example.org.\n$TTL 60\n\
         a TYPE65534 \\# 4 0a0000\n\
         b TYPE65534 \\# 2 0a0000\n\
         c TYPE65534 \\# 2 0g00\n\
         d TYPE65534 \\# 2 0a0\n\
         e TYPE65534 \\# x 00\n\
         f TYPE65534 \\#\n\
         g A \\# 3 c00002\n\
         h TYPE65534 0a000001\n\
         i AAAA \\# 4 c0000201\n",
    );
    assert_eq!(
        got.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        [3, 4, 5, 6, 7, 8, 9, 10, 11]
    );
    assert_eq!(
        got[0].1,
        ProblemKind::GenericLengthMismatch {
            declared: 4,
            actual: 3
        }
    );
    assert_eq!(
        got[1].1,
        ProblemKind::GenericLengthMismatch {
            declared: 2,
            actual: 3
        }
    );
    assert!(matches!(&got[2].1, ProblemKind::GenericHex { text } if text == "0g00"));
    assert!(matches!(&got[3].1, ProblemKind::GenericHex { .. }));
    assert!(matches!(&got[4].1, ProblemKind::GenericLength { text } if text == "x"));
    assert!(matches!(&got[5].1, ProblemKind::GenericLength { .. }));
    assert!(matches!(
        &got[6].1,
        ProblemKind::BadRdata {
            record_type: RecordType::A,
            ..
        }
    ));
    assert_eq!(
        got[7].1,
        ProblemKind::NeedsGenericData {
            record_type: RecordType::Unknown(65534)
        }
    );
    assert!(matches!(
        &got[8].1,
        ProblemKind::BadRdata {
            record_type: RecordType::AAAA,
            ..
        }
    ));
}

#[test]
fn txt_strings_follow_rfc_1035() {
    let zone = parse(
        "$ORIGIN example.org.\n$TTL 60\n\
         a TXT \"a\\065b\" \"x\\\"y\" bare\\;word \"semi;colon\" \"\\255\\000\"\n\
         b TXT \"two\nlines\" (\n \"in parens\" ; comment\n )\n\
         c TXT \"caf\u{e9}\"\n",
    )
    .unwrap();
    let txt = |owner: &str| -> Vec<Vec<u8>> {
        let owner = OwnerName::from_labels([owner.as_bytes()]).unwrap();
        match zone.names()[&owner][0].rdata() {
            RData::TXT(txt) => txt.txt_data.iter().map(|s| s.to_vec()).collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        txt("a"),
        [&b"aAb"[..], b"x\"y", b"bare;word", b"semi;colon", &[255, 0]].map(<[u8]>::to_vec)
    );
    assert_eq!(txt("b"), [b"two\nlines".to_vec(), b"in parens".to_vec()]);
    assert_eq!(txt("c"), ["caf\u{e9}".as_bytes().to_vec()]);
    assert_eq!(
        zone.names()[&OwnerName::from_labels([b"c".as_slice()]).unwrap()][0].line(),
        8
    );

    let long = "x".repeat(256);
    let got = problems(&format!(
        "$ORIGIN example.org.\n$TTL 60\na TXT \"{long}\"\nb TXT\nc TXT \"\\256\"\n"
    ));
    assert_eq!(
        got,
        [
            (3, ProblemKind::TxtStringTooLong { len: 256 }),
            (4, ProblemKind::EmptyTxt),
            (
                5,
                ProblemKind::BadEscape {
                    escape: "\\256".into()
                }
            ),
        ]
    );
}

#[test]
fn escapes_hickory_misreads_are_refused_elsewhere() {
    let got = problems(
        "$ORIGIN example.org.\n$TTL 60\na CAA 0 issue \"ca\\046example\"\nb CNAME x\\ y\n",
    );
    assert_eq!(
        got,
        [
            (
                3,
                ProblemKind::UnsupportedEscape {
                    record_type: RecordType::CAA,
                    escape: "\\046".into()
                }
            ),
            (
                4,
                ProblemKind::UnsupportedEscape {
                    record_type: RecordType::CNAME,
                    escape: "\\ ".into()
                }
            ),
        ]
    );
    // Escapes hickory reads right are fine: a dot inside a label.
    let zone = parse("$ORIGIN example.org.\n$TTL 60\na CNAME first\\.last\n").unwrap();
    let rdata = zone.names().values().next().unwrap()[0].rdata().clone();
    assert_eq!(
        rdata,
        RData::CNAME(CNAME(
            Name::from_labels([&b"first.last"[..], b"example", b"org"]).unwrap()
        ))
    );
}

#[test]
fn every_problem_is_reported_with_its_line() {
    let text = "$ORIGIN example.org.
$TTL 60
bad A 192.0.2
other.example.net. A 192.0.2.1
meta TYPE65533 \\# 2 0101
sig RRSIG A 8 2 300 20300101000000 20200101000000 1 example.org. AAAA
any TYPE255 \\# 0
chaos CH TXT \"x\"
notype 60 IN
what FOO 1
$INCLUDE other.zone
$GENERATE 1-2 h$ A 192.0.2.$
web A 192.0.2.1
web CNAME elsewhere
two CNAME a
two CNAME b
ok A 192.0.2.1
oops 60 IN A 192.0.2.1 )
$TTL
$TTL abc
";
    let got = problems(text);
    let lines: Vec<usize> = got.iter().map(|(l, _)| *l).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 18, 19, 20]);
    let kinds: Vec<&ProblemKind> = got.iter().map(|(_, k)| k).collect();
    assert!(matches!(
        kinds[0],
        ProblemKind::BadRdata {
            record_type: RecordType::A,
            ..
        }
    ));
    assert!(
        matches!(kinds[1], ProblemKind::OutsideZone { name, .. } if name == "other.example.net.")
    );
    assert_eq!(
        kinds[2],
        &ProblemKind::RefusedType {
            record_type: "TYPE65533".into(),
            reason: types::refused(RecordType::from(65533)).unwrap()
        }
    );
    assert_eq!(
        kinds[3],
        &ProblemKind::ForbiddenType {
            record_type: RecordType::RRSIG
        }
    );
    assert_eq!(
        kinds[4],
        &ProblemKind::ForbiddenType {
            record_type: RecordType::ANY
        }
    );
    assert_eq!(kinds[5], &ProblemKind::NotInClass { class: "CH".into() });
    assert_eq!(kinds[6], &ProblemKind::MissingType);
    assert_eq!(kinds[7], &ProblemKind::UnknownType { text: "FOO".into() });
    assert_eq!(kinds[8], &ProblemKind::IncludeNotSupported);
    assert_eq!(
        kinds[9],
        &ProblemKind::UnknownDirective {
            directive: "$GENERATE".into()
        }
    );
    assert!(matches!(
        kinds[10],
        ProblemKind::CnameAndOtherData { name, cname_line: 14, record_type: RecordType::A } if name == "web.example.org."
    ));
    assert!(matches!(
        kinds[11],
        ProblemKind::TwoCnames { first_line: 15, .. }
    ));
    assert_eq!(kinds[12], &ProblemKind::UnbalancedParenthesis);
    assert_eq!(
        kinds[13],
        &ProblemKind::DirectiveArguments { directive: "$TTL" }
    );
    assert_eq!(kinds[14], &ProblemKind::BadTtl { text: "abc".into() });

    // The message names the file and line of each problem.
    let message = parse(text).unwrap_err().to_string();
    assert!(
        message.starts_with("test.zone: 15 problems\n  test.zone:3: bad A data"),
        "{message}"
    );
    assert!(
        message.contains("test.zone:5: TYPE65533 records are not accepted: type 65533 is reserved"),
        "{message}"
    );
    assert!(
        message.contains(
            "test.zone:16: two.example.org. has a second CNAME (the first is at line 15)"
        ),
        "{message}"
    );
}

#[test]
fn chaos_class_is_sticky_like_rfc_1035_says() {
    let got = problems(
        "$ORIGIN example.org.\n$TTL 60\na CH A 192.0.2.1\nb A 192.0.2.2\nc IN A 192.0.2.3\n",
    );
    assert_eq!(got.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [3, 4]);
}

#[test]
fn one_soa_per_zone() {
    let soa = "SOA ns host 1 2 3 4 5";
    let got = problems(&format!(
        "$ORIGIN example.org.\n$TTL 60\n@ {soa}\na A 192.0.2.1\nsub {soa}\n"
    ));
    assert_eq!(got, [(5, ProblemKind::SecondSoa { first_line: 3 })]);
}

#[test]
fn identical_cnames_are_one_record() {
    let zone = parse("$ORIGIN example.org.\n$TTL 60\na CNAME b\na CNAME B.example.org.\n").unwrap();
    assert_eq!(zone.record_count(), 2);
}

#[test]
fn origin_ttl_and_owner_must_exist() {
    assert_eq!(
        problems("www 60 A 192.0.2.1\nw2 60 A 192.0.2.1\n"),
        [(1, ProblemKind::MissingOrigin)]
    );
    assert_eq!(problems("; nothing\n"), [(1, ProblemKind::MissingOrigin)]);
    assert_eq!(
        problems("$ORIGIN example.org.\nwww A 192.0.2.1\n"),
        [(2, ProblemKind::MissingTtl)]
    );
    assert_eq!(
        problems("$ORIGIN example.org.\n  60 A 192.0.2.1\n"),
        [(2, ProblemKind::MissingOwner)]
    );
    // An owner that does not parse is reported once; its blank-owner records are skipped.
    let long = "x".repeat(64);
    let got = problems(&format!(
        "$ORIGIN example.org.\n{long} 60 A 192.0.2.1\n  60 AAAA ::1\n"
    ));
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], (2, ProblemKind::BadName { .. })));
    // An origin given with no $ORIGIN and an empty file: an empty zone.
    let zone = ParsedZone::from_text("", "t", Some(&name("example.org."))).unwrap();
    assert_eq!(zone.record_count(), 0);
}

#[test]
fn owner_names_too_long_for_the_zone_id_apex() {
    // 4 labels of 50: 205 bytes relative (over MAX_OWNER_LEN), 218 absolute (a valid name).
    let owner = vec!["a".repeat(50); 4].join(".");
    let got = problems(&format!("$ORIGIN example.org.\n{owner} 60 A 192.0.2.1\n"));
    assert!(
        matches!(&got[..], [(2, ProblemKind::OwnerName { .. })]),
        "{got:?}"
    );
}

#[test]
fn from_file_reports_io_and_encoding_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.zone");
    let err = ParsedZone::from_file(&missing, None).unwrap_err();
    assert!(matches!(&err, ZoneError::Read { path, .. } if *path == missing));
    let binary = dir.path().join("binary.zone");
    fs::write(&binary, b"$ORIGIN example.org.\n$TTL 60\na TXT \"\xff\"\n").unwrap();
    assert!(matches!(
        ParsedZone::from_file(&binary, None).unwrap_err(),
        ZoneError::NotUtf8 { line: 3, .. }
    ));
    let good = dir.path().join("good.zone");
    fs::write(&good, "$ORIGIN example.org.\n$TTL 60\na A 192.0.2.1\n").unwrap();
    assert_eq!(ParsedZone::from_file(&good, None).unwrap().path(), good);
}

proptest! {
    /// Any TXT strings, escaped as a zone file writes them, parse back to the same bytes.
    #[test]
    fn txt_bytes_survive_escaping(strings in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..5)) {
        let data: Vec<String> = strings.iter().map(|s| crate::presentation::quote_character_string(s)).collect();
        let text = format!("$ORIGIN example.org.\nt 60 IN TXT {}\n", data.join(" "));
        let zone = parse(&text).unwrap();
        let record = &zone.names().values().next().unwrap()[0];
        let RData::TXT(txt) = record.rdata() else { panic!("not TXT") };
        let got: Vec<Vec<u8>> = txt.txt_data.iter().map(|s| s.to_vec()).collect();
        prop_assert_eq!(got, strings);
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(text in "[ -~\t\n\"();\\\\@$]{0,300}") {
        let _ = ParsedZone::from_text(&format!("$ORIGIN example.org.\n{text}"), "p", None);
    }
}
