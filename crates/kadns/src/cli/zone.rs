//! `kadns zone …`: sign zone files, check and print signed output.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Subcommand;
use kadns_publisher::{Config, ParsedZone, Signer, read_signed_file, write_signed_file};
use kadns_record::hickory_proto::rr::{Name, Record};

use super::present::record_line;
use kadns_record::{SignedBundle, VerifiedBundle, ZoneId, rebase_rdata};

#[derive(Debug, Subcommand)]
pub(crate) enum ZoneCommand {
    /// Sign an RFC 1035 zone file into one signed bundle per owner name.
    Sign {
        /// The zone key file.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the signed zone (replaced atomically).
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
        /// The zone's origin, if the file has no `$ORIGIN` line.
        #[arg(long, value_name = "NAME")]
        origin: Option<Name>,
        /// How long the signatures stay valid, e.g. `7d`, `36h` (at most 31 days).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = humantime::parse_duration)]
        validity: Duration,
        /// The zone file.
        #[arg(value_name = "ZONEFILE")]
        zone_file: PathBuf,
    },
    /// Check a signed zone offline: one line per name, non-zero exit if any fails.
    Verify {
        /// The zone id every bundle must be signed by.
        #[arg(value_name = "ZONEID")]
        zone: ZoneId,
        /// The signed zone file.
        #[arg(value_name = "PATH")]
        signed: PathBuf,
    },
    /// Print a signed zone back in zone-file form, with sequence and expiry.
    Show {
        /// Write names under this origin instead of the zone id.
        #[arg(long, value_name = "NAME")]
        origin: Option<Name>,
        /// The signed zone file.
        #[arg(value_name = "PATH")]
        signed: PathBuf,
    },
}

pub(crate) fn run(command: ZoneCommand) -> anyhow::Result<ExitCode> {
    match command {
        ZoneCommand::Sign {
            key,
            out,
            origin,
            validity,
            zone_file,
        } => sign(key, out, origin, validity, zone_file),
        ZoneCommand::Verify { zone, signed } => verify(zone, signed),
        ZoneCommand::Show { origin, signed } => show(origin, signed),
    }
}

fn sign(
    key: PathBuf,
    out: PathBuf,
    origin: Option<Name>,
    validity: Duration,
    zone_file: PathBuf,
) -> anyhow::Result<ExitCode> {
    let zone = ParsedZone::from_file(&zone_file, origin.as_ref())?;
    let mut config = Config::default();
    config.validity_secs = validity.as_secs();
    let signer = Signer::from_key_file(&key, &config)?;
    let signed = signer.sign(&zone)?;
    write_signed_file(&out, signed.bundles())?;
    let summary = signed.summary();
    println!("zone      {}", signed.zone_id());
    println!("origin    {}", zone.origin());
    println!("names     {}", summary.names);
    println!("records   {}", summary.records);
    println!("bytes     {}", summary.bytes);
    println!("sequence  {}", summary.sequence);
    println!("expires   {}", format_time(summary.expires));
    println!("written   {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn verify(zone: ZoneId, path: PathBuf) -> anyhow::Result<ExitCode> {
    let entries = read_signed_file(&path)?;
    let now = now_unix()?;
    let mut failures = 0usize;
    for entry in &entries {
        let outcome = match &entry.bundle {
            Err(error) => Err((format!("entry {}", entry.index), error.to_string())),
            Ok(bundle) => {
                let name = bundle.content().owner().to_string();
                check(bundle, &zone, now)
                    .map(|v| (name.clone(), v))
                    .map_err(|reason| (name, reason))
            }
        };
        match outcome {
            Ok((name, verified)) => println!(
                "ok    {name}  sequence {}  {} records  expires {}",
                verified.sequence(),
                verified.records().len(),
                format_time(verified.expires())
            ),
            Err((name, reason)) => {
                failures += 1;
                println!("FAIL  {name}  {reason}");
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} names failed verification", entries.len());
    }
    eprintln!("{} names verified for zone {zone}", entries.len());
    Ok(ExitCode::SUCCESS)
}

/// Validates one bundle as belonging to `zone`, with the reason on failure.
fn check(bundle: &SignedBundle, zone: &ZoneId, now: u64) -> Result<VerifiedBundle, String> {
    if bundle.zone() != zone {
        return Err(format!("signed by zone {}, not {zone}", bundle.zone()));
    }
    // The full check, as any node or resolver makes it.
    kadns_record::validate(&bundle.dht_key(), bundle.as_bytes(), now).map_err(|e| e.to_string())
}

fn show(origin: Option<Name>, path: PathBuf) -> anyhow::Result<ExitCode> {
    let entries = read_signed_file(&path)?;
    let mut zone: Option<ZoneId> = None;
    for entry in &entries {
        let bundle = entry.bundle.as_ref().map_err(Clone::clone)?;
        let id = *bundle.zone();
        if zone.replace(id).is_some_and(|previous| previous != id) {
            bail!(
                "{} mixes bundles of zones {} and {id}",
                path.display(),
                zone.map(|z| z.to_string()).unwrap_or_default()
            );
        }
        let zone_apex = id.apex();
        let apex = origin.clone().unwrap_or_else(|| zone_apex.clone());
        if entry.index == 0 {
            println!("; zone {id}");
            println!("$ORIGIN {apex}");
        }
        let content = bundle.content();
        println!(
            "; {}  sequence {}  expires {}",
            content.owner(),
            content.sequence(),
            format_time(content.expires())
        );
        let owner = content
            .owner()
            .under(&apex)
            .context("owner name does not fit under the origin")?;
        if content.records().is_empty() {
            println!("; (no records: the name is removed)");
        }
        for rr in content.records() {
            let rdata = rebase_rdata(rr.rdata()?, &zone_apex, &apex)?;
            println!(
                "{}",
                record_line(&Record::from_rdata(owner.clone(), rr.ttl(), rdata))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn now_unix() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

fn format_time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}
