//! Criterion micro-benchmarks of the engine's steps, over a named list of
//! cases: decoding a webhook payload, computing a fingerprint, replaying
//! the example storm over the reference catalog, and content clustering
//! (feature vectors, one DBSCAN run at the `max_points` bound).
//!
//! Run: `cargo bench --bench engine`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use triage_correlate::content::{ContentSettings, cluster, features};
use triage_correlate::{CollectingSink, Correlator};
use triage_formats::{DecodeLimits, decode_line, fingerprint_of};
use triage_sim::StormSpec;
use triage_suite::{reference_config, storm};

fn cases(c: &mut Criterion) {
    let config = reference_config();
    let lines = storm(&config, &StormSpec { pad_to_bytes: 1024, ..StormSpec::default() });
    let limits = DecodeLimits::default();
    let line = lines.iter().find(|l| l.starts_with("{\"version\"")).cloned().unwrap_or_default();

    let mut group = c.benchmark_group("engine");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode_webhook_1kb", |b| {
        b.iter(|| decode_line(black_box(line.as_bytes()), &limits, None).map(|d| d.alerts.len()))
    });
    let decoded = decode_line(line.as_bytes(), &limits, None).unwrap_or_default();
    if let Some(alert) = decoded.alerts.first() {
        group
            .bench_function("fingerprint", |b| b.iter(|| fingerprint_of(black_box(&alert.labels))));
    }
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.sample_size(20);
    group.bench_function("replay_example_storm", |b| {
        b.iter(|| {
            let mut engine = Correlator::new(config.settings.clone(), config.topology.clone(), 0);
            let mut sink = CollectingSink::default();
            for (n, line) in lines.iter().enumerate() {
                if let Ok(d) = decode_line(line.as_bytes(), &limits, engine.head()) {
                    for alert in &d.alerts {
                        engine.ingest(alert, n as u64, &mut sink);
                    }
                }
            }
            engine.finish(&mut sink);
            sink.events.len()
        })
    });
    // Content clustering: features of every alert of the storm, and one
    // DBSCAN run over `max_points` of them (the most one run takes).
    let content = ContentSettings::default();
    let points: Vec<_> = lines
        .iter()
        .filter_map(|l| decode_line(l.as_bytes(), &limits, None).ok())
        .flat_map(|d| d.alerts.iter().map(|a| features(a, &content)).collect::<Vec<_>>())
        .take(content.max_points)
        .collect();
    if let Some(alert) = decoded.alerts.first() {
        group.throughput(Throughput::Elements(1));
        group.bench_function("content_features", |b| {
            b.iter(|| features(black_box(alert), &content))
        });
    }
    group.throughput(Throughput::Elements(points.len() as u64));
    group.sample_size(10);
    group.bench_function("content_dbscan_max_points", |b| {
        b.iter(|| cluster(black_box(&points), &content).iter().flatten().count())
    });
    group.finish();
}

criterion_group!(benches, cases);
criterion_main!(benches);
