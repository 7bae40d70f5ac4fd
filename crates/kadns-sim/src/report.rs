//! Figures from samples: the per-scenario table, the SUMMARY line, and the
//! latency CDF plot (SVG).

use std::fmt::Write as _;

use crate::scenario::{Outcome, Sample, ScenarioResult};

/// The figures of one scenario (or of all of them together).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Figures {
    /// Scenario label.
    pub scenario: String,
    /// Nodes in the network.
    pub nodes: usize,
    /// Lookups run.
    pub lookups: usize,
    /// Lookups that returned a valid bundle, percent.
    pub success_pct: f64,
    /// Lookups that returned the newest bundle, percent.
    pub fresh_pct: f64,
    /// Latency of successful lookups, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// The same in RTTs.
    pub p50_rtt: f64,
    /// 90th percentile in RTTs.
    pub p90_rtt: f64,
    /// 99th percentile in RTTs.
    pub p99_rtt: f64,
    /// Mean Kademlia requests per lookup.
    pub requests_mean: f64,
    /// 99th percentile of requests per lookup.
    pub requests_p99: f64,
    /// Lookups that returned an older version.
    pub stale: usize,
    /// Lookups that returned something never published.
    pub wrong: usize,
    /// Invalid answers the lookups saw and refused.
    pub refused_answers: usize,
    /// Seconds to start and form the network.
    pub form_s: f64,
    /// Resident memory after forming, MiB.
    pub rss_mib: f64,
    /// Mean replicas per name at publishing.
    pub replicas: f64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// The machine's 1-minute load average when the scenario ended.
    pub load: f64,
    /// CPU seconds the simulator used in the scenario.
    pub cpu_s: f64,
}

/// The `q` quantile of sorted `v` (nearest rank); 0 when empty.
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((v.len() as f64) * q).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn found(s: &Sample) -> bool {
    matches!(s.outcome, Outcome::Fresh | Outcome::Stale | Outcome::Wrong)
}

/// Figures of `samples` at `rtt_ms`.
pub fn figures(label: &str, nodes: usize, rtt_ms: f64, samples: &[Sample]) -> Figures {
    let mut lat: Vec<f64> = samples.iter().filter(|s| found(s)).map(|s| s.ms).collect();
    lat.sort_by(f64::total_cmp);
    let mut req: Vec<f64> = samples.iter().map(|s| f64::from(s.requests)).collect();
    req.sort_by(f64::total_cmp);
    let count = |o: Outcome| samples.iter().filter(|s| s.outcome == o).count();
    let n = samples.len().max(1) as f64;
    let rtt = rtt_ms.max(f64::MIN_POSITIVE);
    Figures {
        scenario: label.to_owned(),
        nodes,
        lookups: samples.len(),
        success_pct: 100.0 * samples.iter().filter(|s| found(s)).count() as f64 / n,
        fresh_pct: 100.0 * count(Outcome::Fresh) as f64 / n,
        p50_ms: quantile(&lat, 0.5),
        p90_ms: quantile(&lat, 0.9),
        p99_ms: quantile(&lat, 0.99),
        p50_rtt: quantile(&lat, 0.5) / rtt,
        p90_rtt: quantile(&lat, 0.9) / rtt,
        p99_rtt: quantile(&lat, 0.99) / rtt,
        requests_mean: req.iter().sum::<f64>() / n,
        requests_p99: quantile(&req, 0.99),
        stale: count(Outcome::Stale),
        wrong: count(Outcome::Wrong),
        refused_answers: samples.iter().map(|s| s.invalid).sum(),
        ..Figures::default()
    }
}

/// Figures of one scenario's result.
pub fn scenario_figures(r: &ScenarioResult) -> Figures {
    Figures {
        form_s: r.formation.form_s,
        rss_mib: r.formation.rss_mib,
        replicas: r.replicas,
        wall_s: r.wall_s,
        load: r.load,
        cpu_s: r.cpu_s,
        ..figures(&r.scenario, r.formation.nodes, r.rtt_ms, &r.samples)
    }
}

/// The markdown table header.
pub const TABLE_HEADER: &str = "| scenario | nodes | lookups | success % | newest % | p50 ms | p90 ms | p99 ms | p50 RTT | p90 RTT | p99 RTT | req/lookup (mean, p99) | stale | wrong | refused answers | replicas | form s | RSS MiB | wall s | CPU s | load |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|";

/// One markdown table row.
pub fn table_row(f: &Figures) -> String {
    format!(
        "| {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1}, {:.0} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} |",
        f.scenario,
        f.nodes,
        f.lookups,
        f.success_pct,
        f.fresh_pct,
        f.p50_ms,
        f.p90_ms,
        f.p99_ms,
        f.p50_rtt,
        f.p90_rtt,
        f.p99_rtt,
        f.requests_mean,
        f.requests_p99,
        f.stale,
        f.wrong,
        f.refused_answers,
        f.replicas,
        f.form_s,
        f.rss_mib,
        f.wall_s,
        f.cpu_s,
        f.load
    )
}

/// The last line a run prints.
pub fn summary_line(f: &Figures, wall_s: f64) -> String {
    format!(
        "SUMMARY nodes={} lookups={} success_pct={:.2} p50_ms={:.0} p99_ms={:.0} p50_rtt={:.2} p99_rtt={:.2} stale={} wrong={} wall_s={:.1}",
        f.nodes,
        f.lookups,
        f.success_pct,
        f.p50_ms,
        f.p99_ms,
        f.p50_rtt,
        f.p99_rtt,
        f.stale,
        f.wrong,
        wall_s
    )
}

/// An SVG plot of the CDF of successful lookups' latency, in RTTs.
pub fn cdf_svg(label: &str, rtt_ms: f64, samples: &[Sample]) -> String {
    let mut lat: Vec<f64> = samples
        .iter()
        .filter(|s| found(s))
        .map(|s| s.ms / rtt_ms.max(f64::MIN_POSITIVE))
        .collect();
    lat.sort_by(f64::total_cmp);
    let (w, h, m) = (640.0, 400.0, 50.0);
    let xmax = lat.last().copied().unwrap_or(1.0).max(1.0).ceil();
    let x = |v: f64| m + (w - 2.0 * m) * v / xmax;
    let y = |f: f64| h - m - (h - 2.0 * m) * f;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="20" text-anchor="middle">{label}: lookup latency CDF ({} of {} found, RTT {rtt_ms} ms)</text>
<line x1="{m}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{m}" y1="{m}" x2="{m}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">latency (RTTs)</text>
<text x="15" y="{}" transform="rotate(-90 15 {})" text-anchor="middle">fraction of lookups</text>
"#,
        w / 2.0,
        lat.len(),
        samples.len(),
        y(0.0),
        w - m,
        y(0.0),
        y(0.0),
        w / 2.0,
        h - 10.0,
        h / 2.0,
        h / 2.0
    );
    for i in 0..=4 {
        let f = f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{f:.2}</text>"#,
            m - 5.0,
            y(f) + 4.0
        );
        let v = xmax * f;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="middle">{v:.1}</text>"#,
            x(v),
            y(0.0) + 15.0
        );
    }
    let total = samples.len().max(1) as f64;
    let mut points = format!("{:.1},{:.1}", x(0.0), y(0.0));
    for (i, v) in lat.iter().enumerate() {
        let _ = write!(
            points,
            " {:.1},{:.1} {:.1},{:.1}",
            x(*v),
            y(i as f64 / total),
            x(*v),
            y((i + 1) as f64 / total)
        );
    }
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="steelblue" stroke-width="2" points="{points}"/>"#
    );
    svg.push_str("</svg>\n");
    svg
}
