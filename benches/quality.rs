//! Grouping quality across catalog shapes and seeds: every storm scored
//! with `triage eval`'s metrics for triage and both baselines, one row per
//! storm plus the mean per shape. The table in `docs/evaluation.md` comes
//! from this run.
//!
//! Run: `cargo bench --bench quality`. For experiments:
//! `TRIAGE_BENCH_NO_CONTENT=1` turns content clustering off for every
//! shape, `TRIAGE_BENCH_CONTENT_EPS` sets its `eps`,
//! `TRIAGE_BENCH_WINDOW_SECS` the grouping window, `TRIAGE_BENCH_INSTANCES`
//! and `TRIAGE_BENCH_SYMPTOMS` (`LO-HI`) the default pass's density, and
//! `TRIAGE_BENCH_DUMP=DIR` writes each storm's alerts, truth and incident
//! events there, for reading the errors behind a score.

use std::io::Write as _;
use std::time::Duration;

use triage_config::Config;
use triage_sim::{StormSpec, deep_chain, layered_topology, wide_fanout};
use triage_suite::{config_for, evaluate_storm, reference_config};

struct Shape {
    name: &'static str,
    config: Config,
    faults: u32,
}

/// `LO-HI` from the environment, for storms denser or sparser than the
/// simulator's default.
fn range_from_env(name: &str) -> Option<(u64, u64)> {
    let value = std::env::var(name).ok()?;
    let (lo, hi) = value.split_once('-')?;
    Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?))
}

fn main() {
    let mut shapes = [
        Shape { name: "shop (31)", config: reference_config(), faults: 24 },
        Shape { name: "layered (400)", config: config_for(layered_topology(400, 3)), faults: 40 },
        Shape { name: "deep chain (60)", config: config_for(deep_chain(60, 5)), faults: 20 },
        Shape { name: "wide fan-out (300)", config: config_for(wide_fanout(300, 9)), faults: 40 },
    ];
    let without_content = std::env::var_os("TRIAGE_BENCH_NO_CONTENT").is_some();
    let eps: Option<f32> =
        std::env::var("TRIAGE_BENCH_CONTENT_EPS").ok().and_then(|v| v.parse().ok());
    let window: Option<u64> =
        std::env::var("TRIAGE_BENCH_WINDOW_SECS").ok().and_then(|v| v.parse().ok());
    for shape in &mut shapes {
        let mut settings = (*shape.config.settings).clone();
        settings.content.enabled &= !without_content;
        if let Some(eps) = eps {
            settings.content.eps = eps;
        }
        if let Some(secs) = window {
            settings.grouping.window = Duration::from_secs(secs);
        }
        shape.config.settings = std::sync::Arc::new(settings);
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "| shape | seed | F1 | ARI | compression (perfect) | top-1 | top-3 | s to declare \
         | AM F1 | TW F1 |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    // The simulator's default density, then a sparse variant: one alert
    // rule per caller and fewer pods, so fewer alerts per fault and each
    // wrong link costs more.
    let densities = [
        (
            "",
            range_from_env("TRIAGE_BENCH_INSTANCES").unwrap_or(StormSpec::default().instances),
            range_from_env("TRIAGE_BENCH_SYMPTOMS").unwrap_or(StormSpec::default().symptoms),
        ),
        (", sparse", (1, 3), (1, 1)),
    ];
    for (density, instances, symptoms) in densities {
        for shape in &shapes {
            score_shape(&mut out, shape, density, (instances, symptoms));
        }
    }
}

/// Scores `shape` on every seed at one density, one row per storm and
/// their mean.
fn score_shape(
    out: &mut impl std::io::Write,
    shape: &Shape,
    density: &str,
    (instances, symptoms): ((u64, u64), (u64, u64)),
) {
    let mut sums = [0.0f64; 9];
    let seeds = [1u64, 2, 3, 4, 5];
    let name = format!("{}{density}", shape.name);
    for &seed in &seeds {
        let spec = StormSpec {
            seed,
            duration: Duration::from_secs(12 * 3600),
            faults: shape.faults,
            noise_per_hour: 20,
            instances,
            symptoms,
            ..StormSpec::default()
        };
        let r = evaluate_storm(&shape.config, &spec);
        if let Some(dir) = std::env::var_os("TRIAGE_BENCH_DUMP") {
            dump(std::path::Path::new(&dir), shape, &name, &spec);
        }
        let t = &r.triage;
        let row = [
            t.pairwise_f1,
            t.adjusted_rand_index,
            t.compression,
            t.root_cause_top1,
            t.root_cause_top3,
            t.mean_seconds_to_declare,
            r.alertmanager.pairwise_f1,
            r.time_window.pairwise_f1,
            r.truth_compression,
        ];
        for (sum, value) in sums.iter_mut().zip(row) {
            *sum += value;
        }
        let _ = writeln!(out, "| {name} | {seed} | {} |", cells(&row));
    }
    let n = seeds.len() as f64;
    let m: Vec<f64> = sums.iter().map(|s| s / n).collect();
    let _ = writeln!(out, "| **{name} mean** | | {} |", cells(&m));
}

/// One row's figures, in the table's order: F1, ARI, compression with the
/// perfect grouping's in brackets, top-1, top-3, seconds to declare, and
/// the baselines' F1.
fn cells(v: &[f64]) -> String {
    format!(
        "{:.3} | {:.3} | {:.3} ({:.3}) | {:.3} | {:.3} | {:.0} | {:.3} | {:.3}",
        v[0], v[1], v[2], v[8], v[3], v[4], v[5], v[6], v[7]
    )
}

/// Writes a storm's alerts, truth and drained replay events as JSON lines.
fn dump(dir: &std::path::Path, shape: &Shape, name: &str, spec: &StormSpec) {
    let storm = triage_sim::generate(&shape.config.topology, spec);
    let mut settings = (*shape.config.settings).clone();
    settings.limits.max_alerts_listed = usize::MAX;
    let config = Config { settings: std::sync::Arc::new(settings), ..shape.config.clone() };
    let events = triage_suite::replay_lines(&config, &storm.lines, &[]);
    let truth: Vec<String> =
        storm.truth.iter().map(|r| serde_json::to_string(r).unwrap_or_default()).collect();
    let sparse = if name.ends_with("sparse") { "-sparse" } else { "" };
    let stem = format!("{}{sparse}-{}", name.split(' ').next().unwrap_or("storm"), spec.seed);
    let _ = std::fs::create_dir_all(dir);
    for (suffix, lines) in [("alerts", &storm.lines), ("truth", &truth), ("events", &events)] {
        let path = dir.join(format!("{stem}.{suffix}.jsonl"));
        if let Err(e) = std::fs::write(&path, lines.join("\n") + "\n") {
            eprintln!("{}: {e}", path.display());
        }
    }
}
