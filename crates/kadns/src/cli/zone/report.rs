//! What `kadns zone publish` prints: a progress bar, then one line per name.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kadns_dht::Multiaddr;
use kadns_publisher::NamePublished;

use kadns_record::ZoneId;

/// One line per name put, a summary, and the exit status for `min` replicas.
pub(super) fn report_names(
    zone: ZoneId,
    names: Vec<NamePublished>,
    min: usize,
) -> anyhow::Result<ExitCode> {
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

pub(super) fn progress_bar(names: usize) -> ProgressBar {
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

pub(super) fn join_addrs(addrs: &[Multiaddr]) -> String {
    let list: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    list.join(", ")
}
