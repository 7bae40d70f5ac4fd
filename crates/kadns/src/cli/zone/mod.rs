//! `kadns zone …`: sign zone files, check and print signed output, publish
//! zones into the DHT.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use kadns_dht::Multiaddr;
use kadns_publisher::{
    Config, MIN_VALIDITY_SECS, ParsedZone, SignedZone, Signer, read_signed_file, write_signed_file,
};
use kadns_record::hickory_proto::rr::{Name, Record};

use kadns_publisher::record_line;
use kadns_record::{SignedBundle, VerifiedBundle, ZoneId, rebase_rdata};

mod publish;
mod report;

use publish::publish_zone;

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
        /// How long the signatures stay valid, e.g. `7d`, `36h`, `15s` (10 seconds to 31 days).
        #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_validity)]
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
    /// Sign a zone file (or take a signed zone) and store every name in the
    /// DHT; one line per name says how many nodes really stored it.
    Publish(PublishArgs),
}

/// `kadns zone publish`: `--key FILE ZONEFILE` or `--signed PATH`.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("input").required(true).args(["key", "signed"])),
    after_help = "Exit status: 0 when every name is stored on at least --min-replicas nodes; \
                  1 otherwise (publish again once more nodes are up) or on any error."
)]
pub(crate) struct PublishArgs {
    /// The zone key file: sign ZONEFILE first, exactly as `zone sign` does.
    #[arg(long, value_name = "FILE", requires = "zone_file")]
    key: Option<PathBuf>,
    /// Publish a signed zone written by `zone sign --out`, without the key.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["zone_file", "origin", "validity"])]
    signed: Option<PathBuf>,
    /// With --key: the zone's origin, if the file has no `$ORIGIN` line.
    #[arg(long, value_name = "NAME")]
    origin: Option<Name>,
    /// With --key: how long the signatures stay valid, e.g. `7d`, `36h`, `15s`
    /// (at least 10 seconds, at most 31 days).
    #[arg(long, value_name = "DURATION", default_value = "7d", value_parser = parse_validity)]
    validity: Duration,
    /// With --key: keep running, re-sign every name before it expires and
    /// publish edits of ZONEFILE within seconds, until SIGINT or SIGTERM.
    /// Prints one line per round.
    #[arg(long, requires = "key")]
    keep: bool,
    /// With --key: re-sign and put every name, not only the new, changed,
    /// removed and due ones (to repair replicas after nodes were lost).
    #[arg(long, requires = "key")]
    all: bool,
    /// A node to join through: /ip4|ip6/…/tcp/PORT/p2p/PEERID (repeat for more).
    #[arg(long, value_name = "MULTIADDR", required = true)]
    bootstrap: Vec<Multiaddr>,
    /// Fail if any name is stored on fewer nodes than this.
    #[arg(long, value_name = "N", default_value_t = 3)]
    min_replicas: usize,
    /// How long to wait for the network: to join it, and for each lookup.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// With --key: the zone file.
    #[arg(value_name = "ZONEFILE", requires = "key")]
    zone_file: Option<PathBuf>,
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
        ZoneCommand::Publish(args) => publish_zone(args),
    }
}

fn sign(
    key: PathBuf,
    out: PathBuf,
    origin: Option<Name>,
    validity: Duration,
    zone_file: PathBuf,
) -> anyhow::Result<ExitCode> {
    let (zone, signed) = sign_zone(&key, origin.as_ref(), validity, &zone_file)?;
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

/// Parses and signs a zone file with the key at `key`: what `zone sign` and
/// `zone publish --key` both do.
fn sign_zone(
    key: &Path,
    origin: Option<&Name>,
    validity: Duration,
    zone_file: &Path,
) -> anyhow::Result<(ParsedZone, SignedZone)> {
    let zone = ParsedZone::from_file(zone_file, origin)?;
    // Accepted but changed (clamped TTLs, duplicates): the operator should know.
    for warning in zone.warnings() {
        eprintln!("{warning}");
    }
    let mut config = Config::default();
    config.validity_secs = validity.as_secs();
    let signer = Signer::from_key_file(key, &config)?;
    let signed = signer.sign(&zone)?;
    Ok((zone, signed))
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
pub(super) fn check(
    bundle: &SignedBundle,
    zone: &ZoneId,
    now: u64,
) -> Result<VerifiedBundle, String> {
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
        // Meta records are structure, not zone data (docs/record-format.md).
        if let Some(meta) = content.records().iter().find(|r| r.is_meta()) {
            let flags = kadns_record::Meta::from_rdata(meta.rdata_bytes()).unwrap_or_default();
            if flags.empty_non_terminal() {
                println!("; (empty non-terminal: names exist below it)");
            }
            if flags.wildcard_child() {
                println!("; (has a wildcard child)");
            }
        }
        for rr in content.records().iter().filter(|r| !r.is_meta()) {
            let rdata = rebase_rdata(rr.rdata()?, &zone_apex, &apex)?;
            println!(
                "{}",
                record_line(&Record::from_rdata(owner.clone(), rr.ttl(), rdata))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--validity`: a humantime duration from [`MIN_VALIDITY_SECS`] to 31 days.
fn parse_validity(text: &str) -> Result<Duration, String> {
    let validity = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    let secs = validity.as_secs();
    if !(MIN_VALIDITY_SECS..=kadns_record::MAX_VALIDITY).contains(&secs) {
        return Err(format!(
            "{text} is outside {MIN_VALIDITY_SECS} s to 31 days (the bounds of a signature's validity)"
        ));
    }
    Ok(validity)
}

/// `zone publish`: everything offline first (sign, or read and verify the
/// signed file), so a bad zone never reaches the network; then a client node
/// joins, puts the names and reports. With `--key` the publishing is
/// incremental (see docs/publishing.md); with `--keep` it goes on.
pub(super) fn now_unix() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

fn format_time(unix: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}
