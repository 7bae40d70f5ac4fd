//! Tests of record data: RFC 3597 generic data, TXT strings, escapes.

use super::*;

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
