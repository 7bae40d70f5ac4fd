//! Helpers for tests and benchmarks of code that uses this crate.

use std::fmt::Write;

/// The text of a synthetic zone file under `origin` (for example
/// `"example.org."`) with an SOA and NS at the apex and `names` more names,
/// `host0` … `host{names-1}`. Every name has an A record and a TXT record;
/// every 4th also an AAAA, every 10th an MX, and every 16th is a CNAME instead.
/// Deterministic: the same arguments give the same text.
///
/// ```
/// use kadns_publisher::{ParsedZone, testing::synthetic_zone};
///
/// let zone = ParsedZone::from_text(&synthetic_zone("example.org.", 100), "synthetic.zone", None)?;
/// assert_eq!(zone.names().len(), 101);
/// # Ok::<_, kadns_publisher::ZoneError>(())
/// ```
pub fn synthetic_zone(origin: &str, names: usize) -> String {
    let mut text = String::with_capacity(64 * names + 256);
    // Writing to a String cannot fail.
    let _ = writeln!(text, "$ORIGIN {origin}\n$TTL 3600");
    let _ = writeln!(text, "@ IN SOA ns1 hostmaster ( 1 7200 3600 1209600 300 )");
    let _ = writeln!(text, "  IN NS ns1");
    for i in 0..names {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        if i % 16 == 15 {
            let _ = writeln!(text, "host{i} 300 IN CNAME host{}", i - 1);
            continue;
        }
        let _ = writeln!(text, "host{i} 300 IN A 10.0.{a}.{b}");
        let _ = writeln!(text, "  IN TXT \"synthetic record {i}\"");
        if i % 4 == 0 {
            let _ = writeln!(text, "  IN AAAA 2001:db8::{a:x}:{b:x}");
        }
        if i % 10 == 0 {
            let _ = writeln!(text, "  IN MX 10 mail.host{i}");
        }
    }
    text
}
