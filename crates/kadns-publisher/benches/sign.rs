//! Signing throughput: parses and signs synthetic zones and prints figures.
//!
//! `cargo bench -p kadns-publisher --bench sign` (a release build). No
//! assertions on time: the figures are for people and release notes.

use std::time::Instant;

use kadns_publisher::{
    Config, ParsedZone, Signer, ZoneState, testing::synthetic_zone, write_signed_file,
};
use kadns_record::ZoneKey;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    for names in [1_000, 10_000] {
        let text = synthetic_zone("example.org.", names);
        let start = Instant::now();
        let zone =
            ParsedZone::from_text(&text, "synthetic.zone", None).expect("synthetic zone parses");
        let parsed = start.elapsed();
        let state = ZoneState::at(dir.path().join(format!("state-{names}")));
        let signer =
            Signer::new(ZoneKey::from_seed([7; 32]), state, &Config::default()).expect("signer");
        let signing = Instant::now();
        let signed = signer.sign(&zone).expect("signs");
        let signed_in = signing.elapsed();
        let out = dir.path().join(format!("zone-{names}.signed"));
        write_signed_file(&out, signed.bundles()).expect("writes");
        let file_bytes = std::fs::metadata(&out).expect("output").len();
        println!(
            "{names:>6} names: parse {:>8.1} ms, sign {:>8.1} ms, total {:>8.1} ms; {} records; signed file {} bytes ({:.0} bytes/name)",
            parsed.as_secs_f64() * 1e3,
            signed_in.as_secs_f64() * 1e3,
            start.elapsed().as_secs_f64() * 1e3,
            signed.summary().records,
            file_bytes,
            file_bytes as f64 / names as f64,
        );
    }
}
