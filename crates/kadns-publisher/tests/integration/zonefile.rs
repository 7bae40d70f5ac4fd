//! Zone files as operators write them: every record type, RFC 3597 round
//! trips, TTL clamping and duplicate warnings with lines, refused types with
//! reasons, empty non-terminals and wildcard parents, and in-zone names in
//! RDATA moved to the zone-id apex for every type that carries names.

#![allow(clippy::unwrap_used)]

use kadns_publisher::kadns_record::hickory_proto::rr::rdata::NULL;
use kadns_publisher::kadns_record::hickory_proto::rr::{Name, RData, Record, RecordType};
use kadns_publisher::kadns_record::hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use kadns_publisher::kadns_record::{OwnerName, ZoneKey, rebase_rdata, validate};
use kadns_publisher::{
    Config, ParsedZone, ProblemKind, Signer, WarningKind, ZoneError, ZoneState, record_line,
};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn wire(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = BinEncoder::new(&mut out);
    name(s).emit(&mut encoder).unwrap();
    out
}

fn string(s: &[u8]) -> Vec<u8> {
    let mut out = vec![s.len() as u8];
    out.extend_from_slice(s);
    out
}

fn be16(v: u16) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn parse(text: &str) -> ParsedZone {
    ParsedZone::from_text(
        &format!("$ORIGIN example.org.\n$TTL 300\n{text}"),
        "t.zone",
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The RDATA of the one record of `line`.
fn rdata(line: &str) -> RData {
    let zone = parse(&format!("{line}\n"));
    let mut all = zone.names().values().flatten();
    let record = all.next().expect("one record");
    assert!(all.next().is_none());
    record.rdata().clone()
}

fn opaque(code: u16, bytes: Vec<u8>) -> RData {
    RData::Unknown {
        code: RecordType::from(code),
        rdata: if bytes.is_empty() {
            NULL::new()
        } else {
            NULL::with(bytes)
        },
    }
}

const PK: &str = "AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==";

fn pk() -> Vec<u8> {
    data_encoding_decode(PK)
}

fn data_encoding_decode(b64: &str) -> Vec<u8> {
    // A tiny independent base64 decoder, so the test does not trust the parser's.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in b64.bytes().filter(|c| *c != b'=') {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u32;
        bits = bits << 6 | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

/// Every type kadns parses itself (hickory does not), presentation form →
/// the wire RDATA its RFC defines.
#[test]
fn every_type_hickory_does_not_parse_has_its_rfc_wire_form() {
    let o = |s: &str| wire(&format!("{s}.example.org."));
    let cases: Vec<(&str, RData)> = vec![
        ("a MD mail", opaque(3, o("mail"))),
        ("a MF mail", opaque(4, o("mail"))),
        ("a MB Mail", opaque(7, o("mail"))),
        ("a MG @", opaque(8, wire("example.org."))),
        ("a MR other.net.", opaque(9, wire("other.net."))),
        ("a MINFO req err", opaque(14, cat(&[o("req"), o("err")]))),
        (
            "a RP admin.example.org. info",
            opaque(17, cat(&[o("admin"), o("info")])),
        ),
        ("a AFSDB 1 afs", opaque(18, cat(&[be16(1), o("afs")]))),
        (
            "a X25 \"311061700956\"",
            opaque(19, string(b"311061700956")),
        ),
        (
            "a ISDN \"150862028003217\" \"004\"",
            opaque(20, cat(&[string(b"150862028003217"), string(b"004")])),
        ),
        (
            "a ISDN \"150862028003217\"",
            opaque(20, string(b"150862028003217")),
        ),
        ("a RT 10 relay", opaque(21, cat(&[be16(10), o("relay")]))),
        (
            "a NSAP 0x47.0005.80.005a00.0000.0001.e133.ffffff000161.00",
            opaque(
                22,
                hex::decode("47000580005a0000000001e133ffffff00016100").unwrap(),
            ),
        ),
        ("a NSAP-PTR host", opaque(23, o("host"))),
        (
            "a PX 10 map822 mapx400",
            opaque(26, cat(&[be16(10), o("map822"), o("mapx400")])),
        ),
        (
            "a GPOS \"-32.6882\" \"116.8652\" \"10.0\"",
            opaque(
                27,
                cat(&[string(b"-32.6882"), string(b"116.8652"), string(b"10.0")]),
            ),
        ),
        // RFC 1876's example: 42°21'54"N 71°06'18"W, -24 m, size 30 m.
        (
            "a LOC 42 21 54 N 71 06 18 W -24m 30m",
            opaque(
                29,
                cat(&[
                    vec![0, 0x33, 0x16, 0x13],
                    ((1u32 << 31) + (42 * 3600 + 21 * 60 + 54) * 1000)
                        .to_be_bytes()
                        .to_vec(),
                    ((1u32 << 31) - (71 * 3600 + 6 * 60 + 18) * 1000)
                        .to_be_bytes()
                        .to_vec(),
                    (10_000_000u32 - 2_400).to_be_bytes().to_vec(),
                ]),
            ),
        ),
        ("a EID 0a0b 0c", opaque(31, vec![10, 11, 12])),
        ("a NIMLOC 32", opaque(32, vec![0x32])),
        (
            "a ATMA +16505551234",
            opaque(34, cat(&[vec![1], b"16505551234".to_vec()])),
        ),
        ("a ATMA 39246f00", opaque(34, vec![0, 0x39, 0x24, 0x6f, 0])),
        ("a KX 10 kx", opaque(36, cat(&[be16(10), o("kx")]))),
        (
            "a A6 64 ::1 prefix",
            opaque(
                38,
                cat(&[vec![64], vec![0, 0, 0, 0, 0, 0, 0, 1], o("prefix")]),
            ),
        ),
        (
            "a A6 0 2001:db8::1",
            opaque(
                38,
                cat(&[
                    vec![0],
                    hex::decode("20010db8000000000000000000000001").unwrap(),
                ]),
            ),
        ),
        (
            "a DNAME new.example.net.",
            opaque(39, wire("new.example.net.")),
        ),
        ("a SINK 1 0 AQID", opaque(40, vec![1, 0, 1, 2, 3])),
        (
            "a APL 1:192.168.32.0/21 !1:192.168.38.0/28 2:2001:db8::/32",
            opaque(
                42,
                hex::decode(
                    "00011503c0a82000011c83c0a82600022004 20010db8"
                        .replace(' ', "")
                        .as_str(),
                )
                .unwrap(),
            ),
        ),
        ("a APL", opaque(42, vec![])),
        (
            &*Box::leak(format!("a IPSECKEY 10 3 2 gw {PK}").into_boxed_str()),
            opaque(45, cat(&[vec![10, 3, 2], o("gw"), pk()])),
        ),
        (
            &*Box::leak(format!("a IPSECKEY 10 1 2 192.0.2.38 {PK}").into_boxed_str()),
            opaque(45, cat(&[vec![10, 1, 2, 192, 0, 2, 38], pk()])),
        ),
        ("a IPSECKEY 10 0 2 .", opaque(45, vec![10, 0, 2])),
        (
            &*Box::leak(format!("a DHCID {PK}").into_boxed_str()),
            opaque(49, pk()),
        ),
        (
            &*Box::leak(
                format!("a HIP 2 200100107B1A74DF365639CC39F1D578 {PK} rvs.example.com.")
                    .into_boxed_str(),
            ),
            opaque(
                55,
                cat(&[
                    vec![16, 2],
                    be16(pk().len() as u16),
                    hex::decode("200100107B1A74DF365639CC39F1D578").unwrap(),
                    pk(),
                    wire("rvs.example.com."),
                ]),
            ),
        ),
        (
            "a NINFO \"up\" \"ok\"",
            opaque(56, cat(&[string(b"up"), string(b"ok")])),
        ),
        (
            &*Box::leak(format!("a RKEY 0 3 13 {PK}").into_boxed_str()),
            opaque(57, cat(&[be16(0), vec![3, 13], pk()])),
        ),
        (
            "a TALINK prev next",
            opaque(58, cat(&[o("prev"), o("next")])),
        ),
        (
            "a ZONEMD 2018031900 1 1 ( 0123 4567 89ab )",
            opaque(
                63,
                cat(&[
                    2018031900u32.to_be_bytes().to_vec(),
                    vec![1, 1],
                    hex::decode("0123456789ab").unwrap(),
                ]),
            ),
        ),
        ("a SPF \"v=spf1 -all\"", opaque(99, string(b"v=spf1 -all"))),
        ("a UINFO \"user\"", opaque(100, string(b"user"))),
        ("a UID 1000", opaque(101, 1000u32.to_be_bytes().to_vec())),
        ("a GID 100", opaque(102, 100u32.to_be_bytes().to_vec())),
        (
            "a NID 10 0014:4fff:ff20:ee64",
            opaque(104, hex::decode("000a00144fffff20ee64").unwrap()),
        ),
        (
            "a L32 10 10.1.2.0",
            opaque(105, hex::decode("000a0a010200").unwrap()),
        ),
        (
            "a L64 10 2001:db8:1140:1000",
            opaque(106, hex::decode("000a20010db811401000").unwrap()),
        ),
        (
            "a LP 10 l64-subnet",
            opaque(107, cat(&[be16(10), o("l64-subnet")])),
        ),
        (
            "a EUI48 00-00-5e-00-53-2a",
            opaque(108, hex::decode("00005e00532a").unwrap()),
        ),
        (
            "a EUI64 00-00-5e-ef-10-00-00-2a",
            opaque(109, hex::decode("00005eef1000002a").unwrap()),
        ),
        (
            "a URI 10 1 \"ftp://ftp1.example.com/public\"",
            opaque(
                256,
                cat(&[be16(10), be16(1), b"ftp://ftp1.example.com/public".to_vec()]),
            ),
        ),
        (
            "a AVC \"app-name:WebEx\"",
            opaque(258, string(b"app-name:WebEx")),
        ),
        (
            "a DOA 0 1 2 \"\" aHR0cHM6Ly93d3cuaXNjLm9yZy8=",
            opaque(
                259,
                cat(&[
                    vec![0, 0, 0, 0, 0, 0, 0, 1, 2],
                    string(b""),
                    b"https://www.isc.org/".to_vec(),
                ]),
            ),
        ),
        (
            "a DOA 1 2 3 \"text/plain\" -",
            opaque(
                259,
                cat(&[vec![0, 0, 0, 1, 0, 0, 0, 2, 3], string(b"text/plain")]),
            ),
        ),
        (
            "a AMTRELAY 10 0 3 relay",
            opaque(260, cat(&[vec![10, 3], o("relay")])),
        ),
        (
            "a AMTRELAY 10 1 1 203.0.113.15",
            opaque(260, vec![10, 0x81, 203, 0, 113, 15]),
        ),
        ("a AMTRELAY 10 0 0 .", opaque(260, vec![10, 0])),
        (
            "a RESINFO qnamemin exterr=15-17",
            opaque(261, cat(&[string(b"qnamemin"), string(b"exterr=15-17")])),
        ),
        (
            "a WALLET \"BTC\" \"bc1q\"",
            opaque(262, cat(&[string(b"BTC"), string(b"bc1q")])),
        ),
        (
            "a WKS 192.0.2.1 tcp ftp smtp",
            opaque(11, vec![192, 0, 2, 1, 6, 0, 0, 0x04, 0x40]),
        ),
        (
            "a WKS 192.0.2.1 17 53",
            opaque(11, vec![192, 0, 2, 1, 17, 0, 0, 0, 0, 0, 0, 0x04]),
        ),
    ];
    for (line, want) in &cases {
        assert_eq!(&rdata(line), want, "{line}");
        // The same record in RFC 3597 form parses to the same data, and
        // `record_line` writes it back in a form that parses again.
        let RData::Unknown { code, rdata: bytes } = want else {
            unreachable!()
        };
        let generic = format!(
            "a TYPE{} \\# {} {}",
            u16::from(*code),
            bytes.anything.len(),
            hex::encode(&bytes.anything)
        );
        assert_eq!(&rdata(&generic), want, "{generic}");
        let record = Record::from_rdata(name("a.example.org."), 300, want.clone());
        assert_eq!(
            &rdata(&record_line(&record)),
            want,
            "{}",
            record_line(&record)
        );
    }
}

#[test]
fn malformed_data_of_every_own_type_is_refused_with_its_line() {
    for bad in [
        "a LOC 91 0 0 N 0 E 0m",
        "a LOC 42 21 54 X 71 06 18 W -24m",
        "a RP onlyone",
        "a AFSDB x afs",
        "a GPOS \"north\" \"1\" \"2\"",
        "a EUI48 00-00-5e-00-53",
        "a URI 10 1 bare",
        "a NSAP 47000580",
        "a APL 3:1.2.3.4/8",
        "a IPSECKEY 10 4 2 x",
        "a AMTRELAY 10 2 1 192.0.2.1",
        "a L32 10 10.1.2",
        "a WKS 192.0.2.1 tcp nosuchservice",
        "a DHCID !!!",
        "a KX 10",
        "a UID -1",
        "a MB one two",
    ] {
        let text = format!("$ORIGIN example.org.\n$TTL 300\n{bad}\n");
        match ParsedZone::from_text(&text, "t.zone", None) {
            Err(ZoneError::Invalid { problems, .. }) => {
                assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
                assert_eq!(problems[0].line, 3, "{bad}");
                let message = problems[0].to_string();
                assert!(message.starts_with("t.zone:3: bad "), "{bad}: {message}");
            }
            other => panic!("{bad}: expected a problem, got {other:?}"),
        }
    }
}

#[test]
fn dnssec_types_and_the_meta_type_are_refused_with_the_reason() {
    let text = "$ORIGIN example.org.\n$TTL 300\n\
                @ DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
                @ DNSKEY 257 3 13 AQID\n\
                @ CDS 0 0 0 00\n\
                @ KEY 256 3 13 AQID\n\
                @ TYPE65533 \\# 2 0101\n\
                @ NSEC3PARAM 1 0 0 -\n\
                @ TYPE32769 \\# 1 00\n";
    let Err(ZoneError::Invalid { problems, .. }) = ParsedZone::from_text(text, "t.zone", None)
    else {
        panic!("refused");
    };
    let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [3, 4, 5, 6, 7, 8, 9]);
    for p in &problems {
        assert!(matches!(p.kind, ProblemKind::RefusedType { .. }), "{p}");
    }
    assert!(
        problems[0]
            .to_string()
            .contains("DS records are not accepted: DNSSEC"),
        "{}",
        problems[0]
    );
    assert!(
        problems[4].to_string().contains("reserved for kadns"),
        "{}",
        problems[4]
    );
}

/// A zone the way operators write them. It parses with exactly the expected
/// warnings, signs, and every bundle validates.
#[test]
fn a_real_world_zone_signs_with_warnings_naming_the_lines() {
    let text = r#"; example.org, as exported from a BIND server
$ORIGIN example.org.
$TTL 1w
@   IN  SOA ns1.example.org. hostmaster.example.org. (
            2026120201 ; serial
            7200       ; refresh
            3600       ; retry
            1209600    ; expire
            3600 )     ; minimum
    172800 IN NS ns1
    172800 IN NS ns2.example.net.
    IN  MX  10 mail
    IN  MX  20 mail.backup.example.net.
    IN  TXT "v=spf1 mx include:_spf.example.net -all"
    IN  SPF "v=spf1 mx include:_spf.example.net -all"
    IN  CAA 0 issue "letsencrypt.org"
    IN  CAA 0 iodef "mailto:security@example.org"
ns1 3600 IN A 192.0.2.53
mail    IN  A   192.0.2.25
mail    IN  AAAA 2001:db8::25
www     IN  A   192.0.2.80
www     IN  A   192.0.2.80
www  60 IN  A   192.0.2.81
_sip._tcp   IN SRV 10 60 5060 sip
_sip._udp   IN SRV 10 60 5060 sip
sip     IN  A   192.0.2.50
sip     IN  NAPTR 100 10 "S" "SIP+D2U" "" _sip._udp
_25._tcp.mail IN TLSA 3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
mail    IN  SSHFP 4 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
office  IN  LOC 52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m
office  IN  HINFO "PC" "Linux"
office  IN  RP admin.example.org. office-info
office-info IN TXT "ask at the desk"
*.users IN  A   192.0.2.90
alice.users IN A 192.0.2.91
legacy  IN  TYPE65280 \# 4 0a000001
"#;
    let zone =
        ParsedZone::from_text(text, "example.org.zone", None).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<(usize, &WarningKind)> =
        zone.warnings().iter().map(|w| (w.line, &w.kind)).collect();
    assert_eq!(
        warnings,
        [
            (
                3,
                &WarningKind::DefaultTtlClamped {
                    ttl: 604_800,
                    max: 86_400
                }
            ),
            (
                10,
                &WarningKind::TtlClamped {
                    ttl: 172_800,
                    max: 86_400
                }
            ),
            (
                11,
                &WarningKind::TtlClamped {
                    ttl: 172_800,
                    max: 86_400
                }
            ),
            (
                22,
                &WarningKind::Duplicate {
                    name: "www.example.org.".into(),
                    record_type: "A".into(),
                    first_line: 21
                }
            ),
            (
                23,
                &WarningKind::MixedTtl {
                    name: "www.example.org.".into(),
                    record_type: "A".into(),
                    ttl: 60,
                    first_ttl: 86_400,
                    first_line: 21
                }
            ),
        ]
    );
    assert_eq!(
        zone.warnings()[1].to_string(),
        "example.org.zone:10: warning: TTL 172800 is above the limit of 86400 seconds: clamped to 86400"
    );
    // Every record's TTL is within the limit.
    assert!(zone.names().values().flatten().all(|r| r.ttl() <= 86_400));

    let dir = tempfile::tempdir().unwrap();
    let key = ZoneKey::from_seed([9; 32]);
    let signer = Signer::new(
        key.clone(),
        ZoneState::at(dir.path().join("z.state")),
        &Config::default(),
    )
    .unwrap();
    let signed = signer.sign_at(&zone, NOW).unwrap();
    let owners: Vec<String> = signed
        .bundles()
        .iter()
        .map(|b| b.content().owner().to_string())
        .collect();
    // The empty non-terminals: `_tcp`, `_udp`, `_tcp.mail`, `users` (with its wildcard).
    for ent in ["_tcp", "_udp", "_tcp.mail", "users"] {
        let bundle = signed
            .bundles()
            .iter()
            .find(|b| b.content().owner().to_string() == ent)
            .unwrap_or_else(|| panic!("{ent} in {owners:?}"));
        let verified = validate(&bundle.dht_key(), bundle.as_bytes(), NOW).unwrap();
        assert!(verified.is_empty_non_terminal(), "{ent}");
        assert_eq!(verified.meta().unwrap().wildcard_child(), ent == "users");
    }
    assert!(owners.contains(&"*.users".to_owned()), "{owners:?}");
    for bundle in signed.bundles() {
        let verified = validate(&bundle.dht_key(), bundle.as_bytes(), NOW).unwrap();
        // The duplicate is signed once; the www A records are two.
        if verified.owner().to_string() == "www" {
            assert_eq!(verified.records().len(), 2);
        }
    }
}

/// In-zone names inside RDATA are signed under the zone-id apex, for every
/// type that carries names, and come back unchanged when moved back.
#[test]
fn names_in_rdata_move_to_the_zone_id_apex_for_every_name_carrying_type() {
    let lines = [
        "a NS ns",
        "a2 CNAME target",
        "b MX 10 mx",
        "c PTR host",
        "d SRV 0 0 5060 sip",
        "e NAPTR 100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp",
        "f MD h0",
        "f MF h0",
        "f MB h0",
        "f MG h0",
        "f MR h0",
        "f MINFO h0 h1",
        "f RP h0 h1",
        "f AFSDB 1 h0",
        "f RT 1 h0",
        "f NSAP-PTR h0",
        "f PX 1 h0 h1",
        "f KX 1 h0",
        "g DNAME h0",
        "f TALINK h0 h1",
        "f LP 1 h0",
        "f IPSECKEY 1 3 2 h0",
        "f AMTRELAY 1 0 3 h0",
        "h SVCB 1 h0",
        "i HTTPS 1 h0",
        "@ SOA h0 h1 1 2 3 4 5",
    ];
    let zone = parse(&(lines.join("\n") + "\n"));
    let dir = tempfile::tempdir().unwrap();
    let key = ZoneKey::from_seed([10; 32]);
    let zone_apex = key.zone_id().apex();
    let signer = Signer::new(
        key,
        ZoneState::at(dir.path().join("z.state")),
        &Config::default(),
    )
    .unwrap();
    let signed = signer.sign_at(&zone, NOW).unwrap();
    let origin = name("example.org.");
    let zone_id_text = zone_apex.to_ascii();
    let zone_id_label = zone_id_text.trim_end_matches('.');
    let mut seen = 0;
    for bundle in signed.bundles() {
        let verified = validate(&bundle.dht_key(), bundle.as_bytes(), NOW).unwrap();
        let owner = verified.owner().under(&origin).unwrap();
        for rr in verified.answer_records() {
            // The signed bytes name the zone id, not example.org.
            let bytes = rr.rdata_bytes();
            let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
            assert!(
                has(zone_id_label.as_bytes()),
                "{} {}",
                owner,
                rr.record_type()
            );
            assert!(
                !has(b"\x07example\x03org"),
                "{} {}",
                owner,
                rr.record_type()
            );
            // Moved back, it is what the file said.
            let back = rebase_rdata(rr.rdata().unwrap(), &zone_apex, &origin).unwrap();
            let written = zone.names()[&OwnerName::relative_to(&owner, &origin).unwrap()]
                .iter()
                .find(|r| r.rdata() == &back);
            assert!(written.is_some(), "{owner} {}: {back:?}", rr.record_type());
            seen += 1;
        }
    }
    assert_eq!(seen, lines.len());
}

proptest! {
    /// Any bytes of any type number kadns does not parse itself round-trip
    /// through RFC 3597 form and `record_line`.
    #[test]
    fn rfc_3597_round_trips(code in 65280u16..65533, bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        // Private-use types hickory models itself (ANAME, 65305) have a layout.
        prop_assume!(matches!(RecordType::from(code), RecordType::Unknown(_)));
        let line = format!("a TYPE{code} \\# {} {}", bytes.len(), hex::encode(&bytes));
        let want = opaque(code, bytes);
        prop_assert_eq!(rdata(&line), want.clone());
        let record = Record::from_rdata(name("a.example.org."), 300, want.clone());
        prop_assert_eq!(rdata(&record_line(&record)), want);
    }
}
