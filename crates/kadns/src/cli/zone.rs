//! `kadns zone …`: sign zone files, check and print signed output, publish
//! zones into the DHT.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kadns_dht::{DataDir, Handle, Mode, Multiaddr, Node};
use kadns_publisher::{
    Config, DEFAULT_PUBLISH_CONCURRENCY, KeepAlive, KeepAliveEvent, MIN_VALIDITY_SECS,
    NamePublished, ParsedZone, SignedZone, Signer, ZonePublisher, publish, read_signed_file,
    write_signed_file,
};
use kadns_record::hickory_proto::rr::{Name, Record};
use tokio_util::sync::CancellationToken;

use kadns_publisher::record_line;
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
fn publish_zone(args: PublishArgs) -> anyhow::Result<ExitCode> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
    };
    match (&args.key, &args.signed, &args.zone_file) {
        (Some(key), None, Some(zone_file)) => {
            let mut config = Config::default();
            config.validity_secs = args.validity.as_secs();
            let publisher = ZonePublisher::open(key, zone_file, args.origin.as_ref(), &config)?;
            // Accepted but changed (clamped TTLs, duplicates): the operator should know.
            for warning in publisher.warnings() {
                eprintln!("{warning}");
            }
            if publisher.names() == 0 {
                bail!(
                    "zone {} has no names: nothing to publish",
                    publisher.zone_id()
                );
            }
            runtime()?.block_on(with_client(&args, |node| {
                publish_incremental(node, publisher, &args)
            }))
        }
        (None, Some(path), None) => {
            let (zone, bundles) = load_signed(path)?;
            if bundles.is_empty() {
                bail!("zone {zone} has no names: nothing to publish");
            }
            runtime()?.block_on(with_client(&args, |node| {
                publish_through(node, zone, bundles, &args)
            }))
        }
        // clap enforces this; kept so that nothing can panic.
        _ => bail!("give either --key FILE ZONEFILE or --signed PATH"),
    }
}

/// Reads a signed zone file and verifies every bundle as a node would, all
/// of one zone. Prints a `FAIL` line per bad entry and refuses the whole
/// file if there is one: a zone is not published half.
fn load_signed(path: &Path) -> anyhow::Result<(ZoneId, Vec<SignedBundle>)> {
    let entries = read_signed_file(path)?;
    let now = now_unix()?;
    let mut zone: Option<ZoneId> = None;
    let mut bundles = Vec::with_capacity(entries.len());
    let mut failures = 0usize;
    for entry in entries {
        let bundle = match entry.bundle {
            Ok(bundle) => bundle,
            Err(error) => {
                failures += 1;
                println!("FAIL  entry {}  {error}", entry.index);
                continue;
            }
        };
        let expected = *zone.get_or_insert(*bundle.zone());
        match check(&bundle, &expected, now) {
            Ok(_) => bundles.push(bundle),
            Err(reason) => {
                failures += 1;
                println!("FAIL  {}  {reason}", bundle.content().owner());
            }
        }
    }
    let total = bundles.len() + failures;
    if failures > 0 {
        bail!(
            "{failures} of {total} names in {} are not valid; nothing was published (sign the zone again)",
            path.display()
        );
    }
    let zone =
        zone.with_context(|| format!("{} holds no names: nothing to publish", path.display()))?;
    Ok((zone, bundles))
}

/// Starts a client node, joins the network through `--bootstrap`, runs
/// `work` with it and stops the node.
async fn with_client<F, Fut>(args: &PublishArgs, work: F) -> anyhow::Result<ExitCode>
where
    F: FnOnce(Handle) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<ExitCode>>,
{
    let mut config = kadns_dht::Config::default();
    config.data_dir = DataDir::Temporary;
    config.mode = Mode::Client;
    config.bootstrap = args.bootstrap.clone();
    config.query_timeout = args.timeout;
    config.replication_interval = None;
    let node = Node::spawn(config)
        .await
        .context("cannot start a DHT client")?;
    let outcome = match join(&node.handle(), args).await {
        Ok(()) => work(node.handle()).await,
        Err(error) => Err(error),
    };
    node.shutdown().await;
    outcome
}

/// Waits for a first peer and fills the routing table.
async fn join(dht: &Handle, args: &PublishArgs) -> anyhow::Result<()> {
    if dht.wait_for_peers(1, args.timeout).await.is_err() {
        bail!(
            "no DHT node answered: none of the bootstrap nodes ({}) could be reached within {}",
            join_addrs(&args.bootstrap),
            humantime::format_duration(args.timeout)
        );
    }
    // Fills the routing table; a slow network gets on with what it has.
    if let Ok(result) = tokio::time::timeout(args.timeout, dht.bootstrap()).await {
        result.context("cannot join the DHT")?;
    }
    Ok(())
}

/// `zone publish --key`: one incremental round, or with `--keep` rounds
/// until a signal.
async fn publish_incremental(
    dht: Handle,
    mut publisher: ZonePublisher,
    args: &PublishArgs,
) -> anyhow::Result<ExitCode> {
    let zone = publisher.zone_id();
    if args.keep {
        return keep_alive(dht, publisher).await;
    }
    let bar = progress_bar(publisher.names());
    bar.set_message("publishing");
    let report = publisher.round(&dht, args.all, |_| bar.inc(1)).await?;
    bar.finish_and_clear();
    if report.unreachable {
        if let Some(error) = report.names.first().and_then(|n| n.error.clone()) {
            return Err(error.into());
        }
        bail!(
            "no DHT node answered: none of the bootstrap nodes ({}) could be reached within {}",
            join_addrs(&args.bootstrap),
            humantime::format_duration(args.timeout)
        );
    }
    println!(
        "zone {zone}: {} changed, {} refreshed, {} removed (tombstones), {} unchanged{}",
        report.changed,
        report.refreshed,
        report.removed,
        report.unchanged,
        if report.unchanged > 0 && !args.all {
            " (not put again: --all puts every name)"
        } else {
            ""
        }
    );
    report_names(zone, report.names, args.min_replicas)
}

/// `--keep`: the library's keep-alive loop, one stdout line per round,
/// until SIGINT or SIGTERM.
async fn keep_alive(dht: Handle, publisher: ZonePublisher) -> anyhow::Result<ExitCode> {
    let zone = publisher.zone_id();
    let cancel = CancellationToken::new();
    let signal = {
        let cancel = cancel.clone();
        async move {
            let signal = super::serve::shutdown_signal().await;
            tracing::info!("{signal}: stopping the keep-alive publisher");
            cancel.cancel();
        }
    };
    let run = KeepAlive::new(publisher).run(dht, cancel.clone(), |event| match event {
        KeepAliveEvent::Round { round, report } => {
            println!("round {round}: {report}");
        }
        KeepAliveEvent::ZoneRejected(error) => {
            eprintln!("kadns: zone file edit refused, nothing published changed: {error}");
        }
        KeepAliveEvent::RoundFailed(error) => {
            eprintln!("kadns: publishing round failed (retrying): {error}");
        }
        KeepAliveEvent::ZoneWarnings(warnings) => {
            for warning in warnings {
                eprintln!("{warning}");
            }
        }
        _ => {}
    });
    let signal = tokio::spawn(signal);
    run.await;
    signal.abort();
    println!("zone {zone}: stopped");
    Ok(ExitCode::SUCCESS)
}

async fn publish_through(
    dht: Handle,
    zone: ZoneId,
    bundles: Vec<SignedBundle>,
    args: &PublishArgs,
) -> anyhow::Result<ExitCode> {
    let total = bundles.len();
    let bar = progress_bar(total);

    // The first name goes alone: if nobody answers it, nobody is there, and
    // the remaining names are not worth a lookup each.
    bar.set_message("publishing");
    let mut rest = bundles.into_iter();
    let first: Vec<SignedBundle> = rest.by_ref().take(1).collect();
    let rest: Vec<SignedBundle> = rest.collect();
    let mut names = publish(&dht, first, 1, |_| bar.inc(1)).await.names;
    if !names.iter().any(NamePublished::answered) {
        bar.finish_and_clear();
        if let Some(error) = names.first().and_then(|n| n.error.clone()) {
            return Err(error.into());
        }
        bail!(
            "no DHT node answered: none of the bootstrap nodes ({}) could be reached within {}",
            join_addrs(&args.bootstrap),
            humantime::format_duration(args.timeout)
        );
    }
    let more = publish(&dht, rest, DEFAULT_PUBLISH_CONCURRENCY, |_| bar.inc(1)).await;
    names.extend(more.names.into_iter().map(|mut n| {
        n.index += 1;
        n
    }));
    bar.finish_and_clear();
    report_names(zone, names, args.min_replicas)
}

/// One line per name put, a summary, and the exit status for `min` replicas.
fn report_names(zone: ZoneId, names: Vec<NamePublished>, min: usize) -> anyhow::Result<ExitCode> {
    let total = names.len();
    let width = names
        .iter()
        .map(|n| n.owner.to_string().len())
        .max()
        .unwrap_or(0)
        .min(40);
    for name in &names {
        println!("{}", result_line(name, min, width));
    }
    let low: Vec<&NamePublished> = names.iter().filter(|n| !n.meets(min)).collect();
    let failed = names.iter().filter(|n| n.error.is_some()).count();
    let fewest = names.iter().map(NamePublished::replicas).min().unwrap_or(0);
    println!(
        "zone {zone}: {total} names, {} ok, {} low, {failed} failed; fewest replicas {fewest} (minimum {min})",
        total - low.len(),
        low.len() - failed,
    );
    if !low.is_empty() {
        let advice = if low.iter().any(|n| !n.refused.is_empty()) {
            "nodes refused some of them, with the reasons above"
        } else {
            "publish again once more nodes are up"
        };
        bail!(
            "{} of {total} names are stored on fewer than {min} nodes ({}); {advice}",
            low.len(),
            list_names(&low)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `ok    www  21 replicas`, `LOW   www  1 replica (minimum 3)`, or
/// `FAIL  www  reason`, followed by refusals and silent peers, if any.
fn result_line(name: &NamePublished, min: usize, width: usize) -> String {
    let owner = name.owner.to_string();
    if let Some(error) = &name.error {
        return format!("FAIL  {owner:width$}  {error}");
    }
    let replicas = name.replicas();
    let plural = if replicas == 1 { "" } else { "s" };
    let mut line = if name.meets(min) {
        format!("ok    {owner:width$}  {replicas} replica{plural}")
    } else {
        format!("LOW   {owner:width$}  {replicas} replica{plural} (minimum {min})")
    };
    let refusals = name.refusal_counts();
    if !refusals.is_empty() {
        let reasons: Vec<String> = refusals
            .iter()
            .map(|(reason, count)| format!("{reason} ×{count}"))
            .collect();
        line.push_str(&format!("; refused: {}", reasons.join(", ")));
    }
    if !name.failed.is_empty() {
        line.push_str(&format!("; no answer from {}", name.failed.len()));
    }
    line
}

fn progress_bar(names: usize) -> ProgressBar {
    // Hidden unless a person watches: logs and pipes get the result lines only.
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(names as u64), target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg:16} [{bar:30}] {pos}/{len} names")
            .expect("a constant, valid template")
            .progress_chars("=> "),
    );
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(100));
    }
    bar
}

/// Up to ten names, then how many more.
fn list_names(names: &[&NamePublished]) -> String {
    let mut list: Vec<String> = names.iter().take(10).map(|n| n.owner.to_string()).collect();
    if names.len() > 10 {
        list.push(format!("and {} more", names.len() - 10));
    }
    list.join(", ")
}

fn join_addrs(addrs: &[Multiaddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    list.join(", ")
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
