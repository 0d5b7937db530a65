//! Grouping quality regression guard: fixed-seed storms scored against
//! their ground truth with `triage eval`'s metrics. The floors sit just
//! under the figures recorded in `docs/evaluation.md`; a change that lowers
//! them must say why. triage must also beat both baselines on pairwise F1
//! and the adjusted Rand index.

use std::sync::Arc;
use std::time::Duration;

use triage::eval::{Report, evaluate, facts, grouping_of, replay_for_eval};
use triage_config::{Config, InputLimits};
use triage_correlate::Settings;
use triage_sim::{StormSpec, generate, layered_topology};
use triage_suite::{reference_config, root};
use triage_topology::Topology;

fn report_for(config: &Config, alerts: &[u8], truth: &[triage_eval::TruthRow]) -> Report {
    let events = replay_for_eval(config, alerts).unwrap_or_else(|e| panic!("{e}"));
    assert!(!grouping_of(&events).incidents.is_empty());
    evaluate(truth, &facts(config, alerts), &events)
}

fn truth_of(rows: &[triage_sim::TruthRow]) -> Vec<triage_eval::TruthRow> {
    rows.iter()
        .map(|r| triage_eval::TruthRow {
            fingerprint: r.fingerprint,
            incident: r.incident.clone(),
            root_cause: r.root_cause.clone(),
        })
        .collect()
}

fn assert_beats_baselines(report: &Report) {
    let t = &report.triage;
    for (name, b) in [("alertmanager", &report.alertmanager), ("time-window", &report.time_window)]
    {
        assert!(t.pairwise_f1 > b.pairwise_f1, "F1 {} <= {name} {}", t.pairwise_f1, b.pairwise_f1);
        assert!(
            t.adjusted_rand_index > b.adjusted_rand_index,
            "ARI {} <= {name} {}",
            t.adjusted_rand_index,
            b.adjusted_rand_index
        );
    }
}

#[test]
fn the_example_storm_scores_at_least_the_recorded_figures() {
    let config = reference_config();
    let alerts = std::fs::read(root().join("examples/storm.jsonl")).unwrap_or_default();
    let truth_text = std::fs::read(root().join("examples/storm.truth.jsonl")).unwrap_or_default();
    let truth = triage::eval::read_truth(truth_text.as_slice()).unwrap_or_else(|e| panic!("{e}"));
    let report = report_for(&config, &alerts, &truth);
    let t = &report.triage;
    assert!(t.pairwise_f1 >= 0.88, "{t:?}");
    assert!(t.adjusted_rand_index >= 0.88, "{t:?}");
    assert!(t.compression >= 0.88, "{t:?}");
    assert!(t.root_cause_top1 >= 0.68, "{t:?}");
    assert_beats_baselines(&report);
}

#[test]
fn a_storm_over_a_large_layered_platform_scores_at_least_the_recorded_figures() {
    let specs = layered_topology(400, 3);
    let settings = Settings::default();
    let topology =
        Topology::build(&specs, settings.grouping.max_hops).unwrap_or_else(|e| panic!("{e:?}"));
    let config = Config {
        settings: Arc::new(settings),
        services: specs,
        topology: Arc::new(topology),
        input: InputLimits::default(),
        warnings: Vec::new(),
    };
    let spec = StormSpec {
        seed: 11,
        duration: Duration::from_secs(12 * 3600),
        faults: 40,
        noise_per_hour: 20,
        ..StormSpec::default()
    };
    let storm = generate(&config.topology, &spec);
    let alerts = storm.lines.join("\n").into_bytes();
    let report = report_for(&config, &alerts, &truth_of(&storm.truth));
    let t = &report.triage;
    assert!(t.pairwise_f1 >= 0.96, "{t:?}");
    assert!(t.adjusted_rand_index >= 0.96, "{t:?}");
    assert!(t.compression >= 0.91, "{t:?}");
    assert!(t.root_cause_top1 >= 0.93, "{t:?}");
    assert_beats_baselines(&report);
}
