//! Replay throughput and memory per active alert, the figures the README
//! records.
//!
//! On a 2,000-service layered catalog, a generated storm of about one
//! million alerts of about 1 KB each (webhook payloads, with faults,
//! propagation, noise and re-notifications) is measured two ways in the
//! same run on one thread: parsing every line into owned structs with
//! serde_json (the baseline), and the full engine (decode, correlate,
//! render events as JSON). The ratio between them is printed. The replay
//! runs twice per round, with content clustering on (the default) and off,
//! and the ratio of the two is printed too. Then a counting allocator
//! measures the bytes held per active alert.
//!
//! Run: `cargo bench --bench throughput` (set `TRIAGE_BENCH_ALERTS` for
//! another size; `taskset -c 1` pins it to one core).

// The counting allocator below is the one place that needs `unsafe`: it
// forwards to the system allocator and only adds bookkeeping.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use triage_correlate::{CollectingSink, Correlator, DroppedAlert, EventSink, Settings};
use triage_formats::{DecodeLimits, decode_line, fingerprint_of};
use triage_model::{AlertRecord, AlertStatus, IncidentEvent, Labels, Timestamp};
use triage_sim::{StormSpec, generate, layered_topology};
use triage_topology::Topology;

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The baseline: a webhook payload parsed into owned, general structs.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedPayload {
    version: String,
    group_key: String,
    truncated_alerts: u64,
    receiver: String,
    group_labels: HashMap<String, String>,
    common_labels: HashMap<String, String>,
    common_annotations: HashMap<String, String>,
    #[serde(rename = "externalURL")]
    external_url: String,
    alerts: Vec<OwnedAlert>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwnedAlert {
    status: String,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL")]
    generator_url: String,
    fingerprint: String,
}

/// Renders events as JSON lines into a reused buffer, as replay does.
struct JsonSink {
    /// Where to copy the events (`TRIAGE_BENCH_EVENTS_OUT`), for looking
    /// at what a storm produced.
    dump: Option<std::io::BufWriter<std::fs::File>>,
    buffer: Vec<u8>,
    events: u64,
    bytes: u64,
}

impl EventSink for JsonSink {
    fn incident(&mut self, event: IncidentEvent) {
        self.buffer.clear();
        let _ = serde_json::to_writer(&mut self.buffer, &event);
        self.buffer.push(b'\n');
        if let Some(dump) = self.dump.as_mut() {
            let _ = dump.write_all(&self.buffer);
        }
        self.events += 1;
        self.bytes += self.buffer.len() as u64;
    }
    fn dropped(&mut self, _: DroppedAlert) {}
}

fn main() {
    let target: usize =
        std::env::var("TRIAGE_BENCH_ALERTS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let specs = layered_topology(2000, 42);
    let settings = Arc::new(Settings::default());
    let mut without_content = Settings::default();
    without_content.content.enabled = !settings.content.enabled;

    let without_content = Arc::new(without_content);
    let topology = Arc::new(
        Topology::build(&specs, settings.grouping.max_hops).unwrap_or_else(|e| panic!("{e:?}")),
    );

    let started = Instant::now();
    let lines = storm_lines(&topology, target);
    let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "storm: {} alerts, {:.0} bytes each on average, {} services (generated in {:.1?})",
        lines.len(),
        bytes as f64 / lines.len() as f64,
        topology.len(),
        started.elapsed()
    );

    let mut parse_best = Duration::MAX;
    let mut decode_best = Duration::MAX;
    let mut replay_best = Duration::MAX;
    let mut other_best = Duration::MAX;
    let (mut events, mut event_bytes) = (0, 0);
    let mut stats = triage_correlate::Stats::default();
    let mut other_stats = triage_correlate::Stats::default();
    // TRIAGE_BENCH_PROFILE=1 runs the replays alone, for a profiler.
    let profiling = std::env::var_os("TRIAGE_BENCH_PROFILE").is_some();
    for _ in 0..5 {
        if profiling {
            let _ = time_replay(&lines, &without_content, &topology);
            continue;
        }
        parse_best = parse_best.min(time_parse(&lines));
        decode_best = decode_best.min(time_decode(&lines));
        let run = time_replay(&lines, &settings, &topology);
        replay_best = replay_best.min(run.elapsed);
        (events, event_bytes, stats) = (run.events, run.event_bytes, run.stats);
        let other = time_replay(&lines, &without_content, &topology);
        other_best = other_best.min(other.elapsed);
        other_stats = other.stats;
    }
    let on = if settings.content.enabled { "on" } else { "off" };
    let off = if settings.content.enabled { "off" } else { "on" };
    let rate = |d: Duration| lines.len() as f64 / d.as_secs_f64();
    let _ =
        writeln!(out, "{:<44} {:>12} {:>14}", "case (best of 5, one thread)", "time", "alerts/s");
    let _ = writeln!(
        out,
        "{:<44} {:>12.3?} {:>14.0}",
        "parse into owned structs (serde_json)",
        parse_best,
        rate(parse_best)
    );
    let _ = writeln!(
        out,
        "{:<44} {:>12.3?} {:>14.0}",
        "decode only (triage-formats)",
        decode_best,
        rate(decode_best)
    );
    let _ = writeln!(
        out,
        "{:<44} {:>12.3?} {:>14.0}",
        "replay: decode + correlate + render events",
        replay_best,
        rate(replay_best)
    );
    let _ = writeln!(
        out,
        "{:<44} {:>12.3?} {:>14.0}",
        format!("replay, content clustering {off}"),
        other_best,
        rate(other_best)
    );
    let _ = writeln!(
        out,
        "replay / parse ratio: {:.2} ({events} incident events, {event_bytes} bytes)",
        rate(replay_best) / rate(parse_best)
    );
    let _ = writeln!(
        out,
        "content clustering {on} / {off} ratio: {:.2} ({} content merges with it on)",
        rate(replay_best) / rate(other_best),
        stats.content_merges.max(other_stats.content_merges)
    );

    let _ = writeln!(
        out,
        "engine: {} unique alerts, {} duplicates, {} groups, {} merges, {} incidents, \
         {} updates, {} resolved, noise reduction {:.1}%",
        stats.unique_alerts,
        stats.duplicates,
        stats.groups_opened,
        stats.groups_merged,
        stats.distinct_incidents(),
        stats.incidents_updated,
        stats.incidents_resolved,
        stats.noise_reduction() * 100.0
    );
    let (per_alert, active) = bytes_per_active_alert(&settings, &topology, 200_000);
    let _ = writeln!(out, "memory: {per_alert:.0} bytes per active alert ({active} active alerts)");
}

/// A storm of `target` single-alert webhook lines of about 1.1 KB over a
/// 2,000-service platform, at a fixed busy rate; the size sets how long it
/// lasts (under two days for a million lines). Per day: 2,080
/// independent faults (each propagating up to three hops to the callers
/// with two to six instances per affected service and one to three symptom
/// rules per caller), 2,600 noise alerts an hour on random
/// services, 520 flapping alerts, 130 fleet-wide events (12-30 hosts, no
/// service label), 130 shared causes outside the catalog (one alert with
/// one text on 4-10 unrelated services), and every firing alert re-sent
/// every two minutes, as
/// Alertmanager does with a short `group_interval`.
fn storm_lines(topology: &Topology, target: usize) -> Vec<String> {
    // This shape yields at least 520,000 lines a day; generate enough
    // days and cut at the target.
    let days = (target as f64 / 520_000.0).max(0.01);
    let spec = StormSpec {
        seed: 42,
        duration: Duration::from_secs_f64(days * 86_400.0),
        faults: (2080.0 * days) as u32,
        noise_per_hour: 2600,
        flapping: (520.0 * days) as u32,
        fleet_events: (130.0 * days).max(1.0) as u32,
        shared_causes: (130.0 * days).max(1.0) as u32,
        renotify_every: Duration::from_secs(2 * 60),
        pad_to_bytes: 1024,
        api_v2_share: 0.0,
        instances: (2, 6),
        ..StormSpec::default()
    };
    let mut lines = generate(topology, &spec).lines;
    lines.truncate(target);
    lines
}

fn time_decode(lines: &[String]) -> Duration {
    let limits = DecodeLimits::default();
    let clock = Some(Timestamp::from_unix_secs(1_767_261_600));
    let start = Instant::now();
    for line in lines {
        black_box(decode_line(line.as_bytes(), &limits, clock).map(|d| d.alerts.len()).ok());
    }
    start.elapsed()
}

fn time_parse(lines: &[String]) -> Duration {
    let start = Instant::now();
    for line in lines {
        let parsed: Result<OwnedPayload, _> = serde_json::from_str(line);
        black_box(parsed.is_ok());
    }
    start.elapsed()
}

fn time_replay(lines: &[String], settings: &Arc<Settings>, topology: &Arc<Topology>) -> ReplayRun {
    let limits = DecodeLimits::default();
    let mut engine = Correlator::new(settings.clone(), topology.clone(), 0);
    let dump = std::env::var_os("TRIAGE_BENCH_EVENTS_OUT")
        .and_then(|p| std::fs::File::create(p).ok())
        .map(std::io::BufWriter::new);
    let mut sink = JsonSink { dump, buffer: Vec::with_capacity(1 << 16), events: 0, bytes: 0 };
    let start = Instant::now();
    for (n, line) in lines.iter().enumerate() {
        if let Ok(decoded) = decode_line(line.as_bytes(), &limits, engine.head()) {
            for alert in &decoded.alerts {
                engine.ingest(alert, n as u64, &mut sink);
            }
        }
    }
    engine.finish(&mut sink);
    ReplayRun {
        elapsed: start.elapsed(),
        events: sink.events,
        event_bytes: sink.bytes,
        stats: engine.stats().clone(),
    }
}

/// What one timed replay did.
struct ReplayRun {
    elapsed: Duration,
    events: u64,
    event_bytes: u64,
    stats: triage_correlate::Stats,
}

/// Live heap bytes held by the correlator per alert it holds, after
/// `count` distinct firing alerts spread over the catalog.
fn bytes_per_active_alert(
    settings: &Arc<Settings>,
    topology: &Arc<Topology>,
    count: usize,
) -> (f64, usize) {
    let names = ["HighLatency", "HighErrorRate", "SLOBurnRateHigh", "Saturation", "InstanceDown"];
    let services: Vec<String> = topology.ids().map(|id| topology.name(id).to_owned()).collect();
    let records: Vec<AlertRecord<'static>> = (0..count)
        .map(|i| {
            let labels = Labels::from_pairs(vec![
                ("alertname".into(), names[i % names.len()].into()),
                ("service".into(), services[(i * 7919) % services.len()].clone().into()),
                ("severity".into(), "warning".into()),
                ("pod".into(), format!("pod-{i}").into()),
                ("cluster".into(), "eu-1".into()),
            ]);
            AlertRecord {
                fingerprint: fingerprint_of(&labels),
                status: AlertStatus::Firing,
                starts_at: Timestamp::from_unix_secs(1_767_261_600 + (i / 100) as i64),
                ends_at: None,
                labels,
                runbook_url: None,
                summary: None,
            }
        })
        .collect();
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut engine = Correlator::new(settings.clone(), topology.clone(), 0);
    let mut sink = CollectingSink::default();
    for (n, record) in records.iter().enumerate() {
        engine.ingest(record, n as u64, &mut sink);
    }
    engine.finish(&mut sink);
    drop(sink);
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    let active = engine.active_alerts();
    black_box(&engine);
    (held as f64 / active.max(1) as f64, active)
}
