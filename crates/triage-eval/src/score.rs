//! The metrics, from the contingency table of truth and prediction.

use rustc_hash::FxHashMap;
use serde::Serialize;
use triage_model::{Fingerprint, Timestamp};

use crate::{AlertFact, Grouping, TruthRow};

/// Every figure `triage eval` reports for one grouping.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Scores {
    /// Of the alert pairs grouped together, the share that truly belong
    /// together.
    pub pairwise_precision: f64,
    /// Of the alert pairs that truly belong together, the share grouped.
    pub pairwise_recall: f64,
    /// Harmonic mean of the two.
    pub pairwise_f1: f64,
    /// Adjusted Rand index of the two partitions (1 is identical, 0 is
    /// chance).
    pub adjusted_rand_index: f64,
    /// `1 - predicted incidents / distinct alerts`.
    pub compression: f64,
    /// Predicted incidents.
    pub incidents_predicted: usize,
    /// True incidents.
    pub incidents_true: usize,
    /// Share of true incidents with a root whose matched incident ranks it
    /// first.
    pub root_cause_top1: f64,
    /// ... among the first three.
    pub root_cause_top3: f64,
    /// Mean seconds from a true incident's first alert to the declaration
    /// of the incident holding most of it (declared ones only).
    pub mean_seconds_to_declare: f64,
    /// True incidents whose alerts ended up in no predicted incident.
    pub incidents_missed: usize,
}

fn pairs(n: u64) -> f64 {
    (n * n.saturating_sub(1) / 2) as f64
}

/// Scores `grouping` against `truth`. `facts` give first-alert times.
pub fn score(truth: &[TruthRow], grouping: &Grouping, facts: &[AlertFact]) -> Scores {
    // Label every alert of the universe on both sides; singletons get
    // labels of their own.
    let mut true_label: FxHashMap<Fingerprint, usize> = FxHashMap::default();
    let mut incident_ids: FxHashMap<&str, usize> = FxHashMap::default();
    for row in truth {
        let next = incident_ids.len();
        let label = match &row.incident {
            Some(id) => *incident_ids.entry(id.as_str()).or_insert(next),
            None => usize::MAX - true_label.len(),
        };
        true_label.insert(row.fingerprint, label);
    }
    let mut predicted_label: FxHashMap<Fingerprint, usize> = FxHashMap::default();
    for (index, incident) in grouping.incidents.iter().enumerate() {
        for fp in &incident.members {
            if true_label.contains_key(fp) {
                predicted_label.insert(*fp, index);
            }
        }
    }

    let mut cells: FxHashMap<(usize, usize), u64> = FxHashMap::default();
    let mut rows: FxHashMap<usize, u64> = FxHashMap::default();
    let mut columns: FxHashMap<usize, u64> = FxHashMap::default();
    for (n, (fp, &t)) in true_label.iter().enumerate() {
        let p = predicted_label.get(fp).copied().unwrap_or(usize::MAX - n);
        *cells.entry((t, p)).or_default() += 1;
        *rows.entry(t).or_default() += 1;
        *columns.entry(p).or_default() += 1;
    }
    let together: f64 = cells.values().map(|&n| pairs(n)).sum();
    let true_pairs: f64 = rows.values().map(|&n| pairs(n)).sum();
    let predicted_pairs: f64 = columns.values().map(|&n| pairs(n)).sum();
    let all_pairs = pairs(true_label.len() as u64);
    let precision = ratio(together, predicted_pairs);
    let recall = ratio(together, true_pairs);
    let expected = if all_pairs > 0.0 { true_pairs * predicted_pairs / all_pairs } else { 0.0 };
    let max_index = (true_pairs + predicted_pairs) / 2.0;
    let ari = if (max_index - expected).abs() < f64::EPSILON {
        1.0
    } else {
        (together - expected) / (max_index - expected)
    };

    let roots = root_cause_accuracy(truth, grouping, &predicted_label, facts);
    Scores {
        pairwise_precision: round(precision),
        pairwise_recall: round(recall),
        pairwise_f1: round(ratio(2.0 * precision * recall, precision + recall)),
        adjusted_rand_index: round(ari),
        compression: round(1.0 - ratio(grouping.incidents.len() as f64, truth.len() as f64)),
        incidents_predicted: grouping.incidents.len(),
        incidents_true: incident_ids.len(),
        root_cause_top1: round(roots.top1),
        root_cause_top3: round(roots.top3),
        mean_seconds_to_declare: round(roots.mean_seconds_to_declare),
        incidents_missed: roots.missed,
    }
}

struct RootAccuracy {
    top1: f64,
    top3: f64,
    mean_seconds_to_declare: f64,
    missed: usize,
}

/// Matches each true incident to the predicted incident holding most of
/// its alerts, then checks the root and the time to declare.
fn root_cause_accuracy(
    truth: &[TruthRow],
    grouping: &Grouping,
    predicted_label: &FxHashMap<Fingerprint, usize>,
    facts: &[AlertFact],
) -> RootAccuracy {
    let starts: FxHashMap<Fingerprint, Timestamp> =
        facts.iter().map(|f| (f.fingerprint, f.starts_at)).collect();
    let mut members: FxHashMap<&str, Vec<&TruthRow>> = FxHashMap::default();
    for row in truth {
        if let Some(id) = &row.incident {
            members.entry(id.as_str()).or_default().push(row);
        }
    }
    let mut names: Vec<&&str> = members.keys().collect();
    names.sort();
    let (mut with_root, mut top1, mut top3, mut missed) = (0usize, 0usize, 0usize, 0usize);
    let mut delays: Vec<f64> = Vec::new();
    for name in names {
        let rows = &members[*name];
        let mut votes: FxHashMap<usize, usize> = FxHashMap::default();
        for row in rows {
            if let Some(&p) = predicted_label.get(&row.fingerprint) {
                *votes.entry(p).or_default() += 1;
            }
        }
        let matched = votes.into_iter().max_by_key(|&(p, n)| (n, std::cmp::Reverse(p)));
        let root = rows.iter().find_map(|r| r.root_cause.as_deref());
        with_root += usize::from(root.is_some());
        let Some((index, _)) = matched else {
            // Never declared: its root cause was not found either.
            missed += 1;
            continue;
        };
        let incident = &grouping.incidents[index];
        if let Some(root) = root {
            top1 += usize::from(incident.root_causes.first().is_some_and(|r| r == root));
            top3 += usize::from(incident.root_causes.iter().take(3).any(|r| r == root));
        }
        let first = rows.iter().filter_map(|r| starts.get(&r.fingerprint)).min();
        if let (Some(first), Some(declared)) = (first, incident.declared_at) {
            delays.push(declared.since(*first).as_secs_f64());
        }
    }
    RootAccuracy {
        top1: ratio(top1 as f64, with_root as f64),
        top3: ratio(top3 as f64, with_root as f64),
        mean_seconds_to_declare: ratio(delays.iter().sum(), delays.len() as f64),
        missed,
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PredictedIncident;

    fn row(fp: u64, incident: Option<&str>, root: Option<&str>) -> TruthRow {
        TruthRow {
            fingerprint: Fingerprint(fp),
            incident: incident.map(str::to_owned),
            root_cause: root.map(str::to_owned),
        }
    }

    fn truth() -> Vec<TruthRow> {
        vec![
            row(1, Some("a"), Some("db")),
            row(2, Some("a"), Some("db")),
            row(3, Some("a"), Some("db")),
            row(4, Some("b"), Some("cache")),
            row(5, Some("b"), Some("cache")),
            row(6, None, None),
        ]
    }

    fn incident(members: &[u64], roots: &[&str], declared: i64) -> PredictedIncident {
        PredictedIncident {
            members: members.iter().map(|&m| Fingerprint(m)).collect(),
            root_causes: roots.iter().map(|r| (*r).to_owned()).collect(),
            declared_at: Some(Timestamp::from_unix_secs(declared)),
        }
    }

    fn facts() -> Vec<AlertFact> {
        (1..=6)
            .map(|i| AlertFact {
                fingerprint: Fingerprint(i),
                starts_at: Timestamp::from_unix_secs(i as i64),
                ends_at: None,
                namespace: None,
                service: None,
            })
            .collect()
    }

    #[test]
    fn a_perfect_grouping_scores_one_everywhere() {
        let grouping = Grouping {
            incidents: vec![
                incident(&[1, 2, 3], &["db"], 11),
                incident(&[4, 5], &["x", "cache"], 24),
            ],
        };
        let s = score(&truth(), &grouping, &facts());
        assert_eq!((s.pairwise_precision, s.pairwise_recall, s.pairwise_f1), (1.0, 1.0, 1.0));
        assert_eq!(s.adjusted_rand_index, 1.0);
        assert_eq!((s.root_cause_top1, s.root_cause_top3), (0.5, 1.0));
        assert_eq!(s.mean_seconds_to_declare, 15.0, "10s for a, 20s for b");
        assert_eq!(s.compression, round(1.0 - 2.0 / 6.0));
        assert_eq!((s.incidents_predicted, s.incidents_true, s.incidents_missed), (2, 2, 0));
    }

    #[test]
    fn one_big_group_has_full_recall_and_poor_precision() {
        let grouping = Grouping { incidents: vec![incident(&[1, 2, 3, 4, 5, 6], &["db"], 1)] };
        let s = score(&truth(), &grouping, &facts());
        assert_eq!(s.pairwise_recall, 1.0);
        // 4 true pairs among the 15 grouped.
        assert_eq!(s.pairwise_precision, round(4.0 / 15.0));
        assert!(s.adjusted_rand_index < 0.5);
    }

    #[test]
    fn nothing_declared_misses_every_incident() {
        let s = score(&truth(), &Grouping::default(), &facts());
        assert_eq!((s.pairwise_precision, s.pairwise_recall), (0.0, 0.0));
        assert_eq!(s.incidents_missed, 2);
        assert_eq!(s.compression, 1.0);
    }
}
