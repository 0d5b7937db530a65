//! Helpers shared by the integration tests and benchmarks: the reference
//! configuration, seeded storms, and an in-process replay that returns the
//! event lines.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use triage_config::Config;
use triage_correlate::{CollectingSink, Correlator, Snapshot};
use triage_formats::decode_line;
use triage_model::Timestamp;
use triage_sim::{StormSpec, generate};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// `config/triage.yaml`, parsed.
pub fn reference_config() -> Config {
    let path = root().join("config/triage.yaml");
    triage_config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// A storm over the reference catalog.
pub fn storm(config: &Config, spec: &StormSpec) -> Vec<String> {
    generate(&config.topology, spec).lines
}

/// A point in a replay where the harness intervenes.
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    /// Before line `n` (0-based): call `advance_to` with the current head
    /// minus this many seconds (a heartbeat that must change nothing).
    Heartbeat(usize, u64),
    /// Before line `n`: snapshot, serialise to JSON, restore, continue.
    Restart(usize),
}

/// Replays `lines` in-process, applying `hooks`, draining at the end, and
/// returns every event as its JSON line.
pub fn replay_lines(config: &Config, lines: &[String], hooks: &[Hook]) -> Vec<String> {
    let mut engine = Correlator::new(config.settings.clone(), config.topology.clone(), 0);
    let mut sink = CollectingSink::default();
    for (n, line) in lines.iter().enumerate() {
        for hook in hooks {
            match *hook {
                Hook::Heartbeat(at, back) if at == n => {
                    if let Some(head) = engine.head() {
                        let t = head.minus(std::time::Duration::from_secs(back));
                        engine.advance_to(t, &mut sink);
                    }
                }
                Hook::Restart(at) if at == n => engine = restart(config, &engine),
                _ => {}
            }
        }
        let Ok(decoded) = decode_line(line.as_bytes(), &config.input.decode, engine.head()) else {
            continue;
        };
        for alert in &decoded.alerts {
            engine.ingest(alert, n as u64, &mut sink);
        }
    }
    engine.drain(&mut sink);
    sink.events.iter().map(|e| serde_json::to_string(e).unwrap_or_default()).collect()
}

fn restart(config: &Config, engine: &Correlator) -> Correlator {
    let bytes = serde_json::to_vec(&engine.snapshot()).unwrap_or_else(|e| panic!("snapshot: {e}"));
    let snapshot: Snapshot = serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}"));
    Correlator::restore(Arc::clone(&config.settings), Arc::clone(&config.topology), snapshot)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The event time of a generated single-alert line (start when firing, end
/// when resolved).
pub fn line_time(line: &str) -> Timestamp {
    let decoded = decode_line(line.as_bytes(), &Default::default(), None).unwrap_or_default();
    decoded.alerts.first().map_or(Timestamp::MIN, |a| a.event_time())
}

/// A configuration with default settings over a generated catalog.
pub fn config_for(specs: Vec<triage_topology::ServiceSpec>) -> Config {
    let settings = triage_correlate::Settings::default();
    let topology = triage_topology::Topology::build(&specs, settings.grouping.max_hops)
        .unwrap_or_else(|e| panic!("{e:?}"));
    Config {
        settings: Arc::new(settings),
        services: specs,
        topology: Arc::new(topology),
        input: triage_config::InputLimits::default(),
        live: triage_config::LiveSettings::default(),
        kafka: triage_config::KafkaSettings::default(),
        receiver: triage_config::ReceiverSettings::default(),
        responders: triage_config::ResponderSettings::default(),
        warnings: Vec::new(),
    }
}

/// Generates a storm over `config`'s catalog and scores triage and the
/// baselines on it.
pub fn evaluate_storm(config: &Config, spec: &StormSpec) -> triage::eval::Report {
    let storm = generate(&config.topology, spec);
    let alerts = storm.lines.join("\n").into_bytes();
    let truth: Vec<triage_eval::TruthRow> = storm
        .truth
        .iter()
        .map(|r| triage_eval::TruthRow {
            fingerprint: r.fingerprint,
            incident: r.incident.clone(),
            root_cause: r.root_cause.clone(),
        })
        .collect();
    evaluate_alerts(config, &alerts, &truth)
}

/// Scores triage and the baselines on recorded alerts and truth.
pub fn evaluate_alerts(
    config: &Config,
    alerts: &[u8],
    truth: &[triage_eval::TruthRow],
) -> triage::eval::Report {
    let events = triage::eval::replay_for_eval(config, alerts).unwrap_or_else(|e| panic!("{e}"));
    triage::eval::evaluate(truth, &triage::eval::facts(config, alerts), &events)
}
