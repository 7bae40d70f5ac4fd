//! `kadns zone publish`: a signed file or a zone file into the DHT, once or kept alive.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use kadns_dht::{DataDir, Handle, Mode, Node};
use kadns_publisher::{
    Config, DEFAULT_PUBLISH_CONCURRENCY, KeepAlive, KeepAliveEvent, NamePublished, ZonePublisher,
    publish, read_signed_file,
};
use tokio_util::sync::CancellationToken;

use kadns_record::{SignedBundle, ZoneId};

use super::report::{join_addrs, progress_bar, report_names};
use super::{PublishArgs, check, now_unix};

pub(super) fn publish_zone(args: PublishArgs) -> anyhow::Result<ExitCode> {
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
            let signal = crate::cli::serve::shutdown_signal().await;
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
