//! Golden output: the example storm in `examples/` replayed over the
//! reference catalog must give exactly the events in
//! `tests/fixtures/example-storm.events.jsonl`. A deliberate change of
//! behaviour regenerates it with `UPDATE_GOLDEN=1 cargo test --test golden`
//! and the diff is reviewed like code.

use std::fs;

use triage::replay::{ReplayOptions, replay};
use triage_suite::{reference_config, root};

#[test]
fn the_example_storm_replays_to_the_recorded_events() {
    let config = reference_config();
    let input = fs::read(root().join("examples/storm.jsonl")).unwrap_or_default();
    assert!(!input.is_empty(), "examples/storm.jsonl is missing");
    let mut out = Vec::new();
    let report = replay(
        &config,
        input.as_slice(),
        &mut out,
        None,
        &mut std::io::sink(),
        ReplayOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.rejected, 0);
    assert!(report.engine.distinct_incidents() >= 5, "{report:?}");
    let golden = root().join("tests/fixtures/example-storm.events.jsonl");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        fs::write(&golden, &out).unwrap_or_else(|e| panic!("{e}"));
    }
    let expected = fs::read(&golden).unwrap_or_default();
    assert!(
        out == expected,
        "events differ from {}; rerun with UPDATE_GOLDEN=1 and review",
        golden.display()
    );
}
