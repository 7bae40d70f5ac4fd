//! Tests of what the parser refuses or warns about, with its line.

use super::*;

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
