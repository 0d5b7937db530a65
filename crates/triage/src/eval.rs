//! `triage eval`: scores triage's incidents on a storm against its ground
//! truth, next to Alertmanager's default grouping and fixed time windows
//! run on the same alerts.

use std::fmt::Write as _;
use std::io::{self, BufRead};
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use serde::Serialize;
use triage_config::Config;
use triage_eval::{AlertFact, Grouping, PredictedIncident, Scores, TruthRow, baseline, score};
use triage_formats::decode_line;
use triage_model::{AlertStatus, IncidentEvent};

use crate::replay::{ReplayOptions, replay};

/// Alertmanager's default `group_wait`.
const GROUP_WAIT: Duration = Duration::from_secs(30);
/// Alertmanager's default `group_interval`, used as the time window.
const TIME_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The three groupings' scores.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// triage's incidents.
    pub triage: Scores,
    /// Alertmanager, `group_by: [namespace]`, `group_wait` 30s.
    pub alertmanager: Scores,
    /// Fixed 5-minute windows.
    pub time_window: Scores,
    /// The compression a perfect grouping reaches on this storm: one
    /// incident per true incident, noise left alone. No grouping that
    /// keeps true incidents apart can compress more; it is the ceiling to
    /// read `compression` against.
    pub truth_compression: f64,
}

/// Each alert's first start and last end in the input, in order of first
/// appearance.
pub fn facts(config: &Config, alerts: &[u8]) -> Vec<AlertFact> {
    let mut facts: Vec<AlertFact> = Vec::new();
    let mut index: FxHashMap<triage_model::Fingerprint, usize> = FxHashMap::default();
    let mut clock = None;
    for line in alerts.split(|&b| b == b'\n') {
        let Ok(decoded) = decode_line(line, &config.input.decode, clock) else { continue };
        for alert in &decoded.alerts {
            clock = clock.max(Some(alert.event_time()));
            let at = *index.entry(alert.fingerprint).or_insert_with(|| {
                let service =
                    config.settings.service_labels.iter().find_map(|l| alert.labels.get(l));
                facts.push(AlertFact {
                    fingerprint: alert.fingerprint,
                    starts_at: alert.starts_at,
                    ends_at: None,
                    namespace: alert.labels.get("namespace").map(str::to_owned),
                    service: service.map(str::to_owned),
                });
                facts.len() - 1
            });
            if alert.status == AlertStatus::Resolved {
                let fact = &mut facts[at];
                fact.ends_at = fact.ends_at.max(alert.ends_at);
            }
        }
    }
    facts
}

/// The final membership of every incident that stands on its own (merged
/// ones are inside their survivor).
pub fn grouping_of(events: &[IncidentEvent]) -> Grouping {
    let mut last: Vec<&IncidentEvent> = Vec::new();
    let mut position: FxHashMap<&str, usize> = FxHashMap::default();
    for event in events {
        match position.get(event.incident_id.as_str()) {
            Some(&i) => last[i] = event,
            None => {
                position.insert(&event.incident_id, last.len());
                last.push(event);
            }
        }
    }
    let incidents = last
        .into_iter()
        .filter(|e| e.merged_into.is_none())
        .map(|e| PredictedIncident {
            members: e.alerts.iter().map(|a| a.fingerprint).collect(),
            root_causes: e.root_cause.iter().map(|r| r.service.to_string()).collect(),
            declared_at: Some(e.declared_at),
        })
        .collect();
    Grouping { incidents }
}

/// Replays `alerts` with every member listed and time run out, so each
/// incident's last event has its whole membership.
pub fn replay_for_eval(config: &Config, alerts: &[u8]) -> Result<Vec<IncidentEvent>, String> {
    let mut settings = (*config.settings).clone();
    settings.limits.max_alerts_listed = usize::MAX;
    let config = Config { settings: Arc::new(settings), ..config.clone() };
    let mut out = Vec::new();
    let options = ReplayOptions { drain: true, ..ReplayOptions::default() };
    replay(&config, alerts, &mut out, None, &mut io::sink(), options).map_err(|e| e.to_string())?;
    out.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).map_err(|e| format!("event: {e}")))
        .collect()
}

/// Reads truth rows (JSON lines).
pub fn read_truth(input: impl BufRead) -> Result<Vec<TruthRow>, String> {
    let mut rows = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).map_err(|e| format!("truth line {}: {e}", n + 1))?);
    }
    Ok(rows)
}

/// Scores triage's `events` and both baselines on the same storm.
pub fn evaluate(truth: &[TruthRow], facts: &[AlertFact], events: &[IncidentEvent]) -> Report {
    let mut incidents: Vec<&str> = truth.iter().filter_map(|r| r.incident.as_deref()).collect();
    incidents.sort_unstable();
    incidents.dedup();
    let truth_compression = if truth.is_empty() {
        0.0
    } else {
        ((1.0 - incidents.len() as f64 / truth.len() as f64) * 1000.0).round() / 1000.0
    };
    Report {
        truth_compression,
        triage: score(truth, &grouping_of(events), facts),
        alertmanager: score(truth, &baseline::alertmanager(facts, GROUP_WAIT), facts),
        time_window: score(truth, &baseline::time_windows(facts, TIME_WINDOW), facts),
    }
}

/// The report as a table for people.
pub fn table(report: &Report) -> String {
    let columns = [&report.triage, &report.alertmanager, &report.time_window];
    let mut out = String::new();
    let _ =
        writeln!(out, "{:<28} {:>10} {:>14} {:>12}", "", "triage", "alertmanager", "time-window");
    let row = |out: &mut String, name: &str, value: &dyn Fn(&Scores) -> String| {
        let cells: Vec<String> = columns.iter().map(|s| value(s)).collect();
        let _ = writeln!(out, "{name:<28} {:>10} {:>14} {:>12}", cells[0], cells[1], cells[2]);
    };
    row(&mut out, "pairwise precision", &|s| format!("{:.3}", s.pairwise_precision));
    row(&mut out, "pairwise recall", &|s| format!("{:.3}", s.pairwise_recall));
    row(&mut out, "pairwise F1", &|s| format!("{:.3}", s.pairwise_f1));
    row(&mut out, "adjusted Rand index", &|s| format!("{:.3}", s.adjusted_rand_index));
    row(&mut out, "compression", &|s| format!("{:.3}", s.compression));
    row(&mut out, "incidents (predicted/true)", &|s| {
        format!("{}/{}", s.incidents_predicted, s.incidents_true)
    });
    row(&mut out, "root cause top-1", &|s| format!("{:.3}", s.root_cause_top1));
    row(&mut out, "root cause top-3", &|s| format!("{:.3}", s.root_cause_top3));
    row(&mut out, "seconds to declare (mean)", &|s| format!("{:.1}", s.mean_seconds_to_declare));
    row(&mut out, "true incidents missed", &|s| s.incidents_missed.to_string());
    let _ = writeln!(
        out,
        "compression of a perfect grouping on this storm: {:.3}",
        report.truth_compression
    );
    out
}
