//! Every metric triage serves on `/metrics`, in one table: [`Metrics::new`]
//! registers them all, and nothing else does. Names follow Prometheus
//! conventions (`triage_..._total` counters, base units); label values are
//! drawn only from the bounded sets in [`LABEL_VALUES`] (sources, reject
//! codes, severities, endpoints, status codes, partition numbers), never
//! from alert labels or error text. The telemetry functions in
//! [`crate::telemetry`] are the only writers.
//!
//! `docs/operations.md` is the reference for operators; a test keeps it
//! listing every name registered here.

use prometheus::{
    Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use triage_correlate::Stats;
use triage_model::IncidentEvent;

/// The values each label may take; anything else is a bug the label
/// test catches. `partition` takes Kafka partition numbers.
pub const LABEL_VALUES: &[(&str, &[&str])] = &[
    ("source", &["kafka", "webhook", "api_v2"]),
    (
        "reason",
        &[
            "json",
            "shape",
            "version",
            "no_labels",
            "label_name",
            "too_many_labels",
            "label_too_long",
            "timestamp",
            "status",
            "fingerprint",
            "no_time",
            "line_too_long",
            "capacity",
        ],
    ),
    ("severity", &["P1", "P2", "P3", "P4"]),
    ("endpoint", &["/webhook", "/api/v2/alerts"]),
    ("status", &["200", "400", "401", "413", "500", "503"]),
    (
        "operation",
        &[
            "consume",
            "commit",
            "flush",
            "dead_letter",
            "rebalance",
            "all_brokers_down",
            "broker_transport",
            "client",
        ],
    ),
    ("version", &[env!("CARGO_PKG_VERSION")]),
    ("outcome", &["delivered", "refused", "gave_up", "dropped"]),
    ("by", &["topology", "content"]),
];

/// Labels whose values come from the configuration (responder names):
/// bounded by the file, not by the traffic.
pub const CONFIGURED_LABELS: &[&str] = &["responder"];

const SEVERITY: [&str; 4] = ["P1", "P2", "P3", "P4"];

/// The registry and a handle on every metric.
pub struct Metrics {
    registry: Registry,
    pub(crate) records_received: IntCounterVec,
    pub(crate) alerts_received: IntCounterVec,
    pub(crate) rejected: IntCounterVec,
    pub(crate) dead_letters: IntCounterVec,
    pub(crate) alerts_unique: IntCounter,
    pub(crate) alerts_duplicate: IntCounter,
    pub(crate) alerts_grouped: IntCounter,
    pub(crate) alerts_suppressed: IntCounter,
    pub(crate) groups_opened: IntCounter,
    pub(crate) groups_merged: IntCounterVec,
    pub(crate) incidents_declared: IntCounterVec,
    pub(crate) incidents_updated: IntCounterVec,
    pub(crate) incidents_resolved: IntCounterVec,
    pub(crate) incidents_merged: IntCounter,
    pub(crate) noise_reduction: Gauge,
    pub(crate) record_seconds: Histogram,
    pub(crate) time_to_declare: Histogram,
    pub(crate) incident_duration: Histogram,
    pub(crate) open_groups: IntGauge,
    pub(crate) open_incidents: IntGauge,
    pub(crate) active_alerts: IntGauge,
    pub(crate) topology_services: IntGauge,
    pub(crate) topology_dependencies: IntGauge,
    pub(crate) consumer_lag: IntGaugeVec,
    pub(crate) partitions: IntGauge,
    pub(crate) checkpoints: IntCounter,
    pub(crate) checkpoint_seconds: Histogram,
    pub(crate) clock_ticks: IntCounter,
    pub(crate) records_skipped: IntCounter,
    pub(crate) events_produced: IntCounter,
    pub(crate) client_errors: IntCounterVec,
    pub(crate) receiver_requests: IntCounterVec,
    pub(crate) bridged_records: IntCounter,
    pub(crate) ready: IntGauge,
    pub(crate) pages_sent: IntCounterVec,
    pub(crate) responder_deliveries: IntCounterVec,
    pub(crate) responder_retries: IntCounterVec,
    /// `records_received` and `alerts_received` resolved per source once,
    /// so the per-record path does no label lookup.
    pub(crate) by_source: [(IntCounter, IntCounter); 3],
}

/// Registers one metric; names are fixed and unique, so only a typo in
/// the table below can make this fail, and the first test run shows it.
fn register<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    if let Err(e) = registry.register(Box::new(metric.clone())) {
        panic!("metric table: {e}");
    }
    metric
}

fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
    let metric = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric table: {e}"));
    register(r, metric)
}

fn counter_vec(r: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), &[label])
        .unwrap_or_else(|e| panic!("metric table: {e}"));
    register(r, metric)
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let metric = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric table: {e}"));
    register(r, metric)
}

fn histogram(r: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let metric = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| panic!("metric table: {e}"));
    register(r, metric)
}

/// `count` buckets from `start`, each `factor` times the one before.
fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    (0..count).map(|i| start * factor.powi(i as i32)).collect()
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// The table.
    pub fn new() -> Metrics {
        let r = Registry::new();
        // The noise funnel.
        let records_received = counter_vec(
            &r,
            "triage_records_received_total",
            "Records received: Kafka records, or HTTP requests that reached decoding.",
            "source",
        );
        let alerts_received = counter_vec(
            &r,
            "triage_alerts_received_total",
            "Alerts decoded from those records and taken on.",
            "source",
        );
        let by_source = ["kafka", "webhook", "api_v2"].map(|source| {
            (
                records_received.with_label_values(&[source]),
                alerts_received.with_label_values(&[source]),
            )
        });
        let metrics = Metrics {
            registry: r.clone(),
            records_received,
            alerts_received,
            by_source,
            rejected: counter_vec(
                &r,
                "triage_rejected_total",
                "Records or alerts refused while decoding, by reject code.",
                "reason",
            ),
            dead_letters: counter_vec(
                &r,
                "triage_dead_letters_total",
                "Refused records or alerts kept (dead-letter topic or rejects file).",
                "reason",
            ),
            alerts_unique: counter(
                &r,
                "triage_alerts_unique_total",
                "Distinct alert occurrences (fingerprint and startsAt) seen for the first time.",
            ),
            alerts_duplicate: counter(
                &r,
                "triage_alerts_duplicate_total",
                "Re-notifications of an occurrence already known.",
            ),
            alerts_grouped: counter(
                &r,
                "triage_alerts_grouped_total",
                "Alerts that joined an open group instead of opening one.",
            ),
            alerts_suppressed: counter(
                &r,
                "triage_alerts_suppressed_total",
                "Alerts whose group ended without being declared: noise removed.",
            ),
            groups_opened: counter(&r, "triage_groups_opened_total", "Groups opened."),
            groups_merged: counter_vec(
                &r,
                "triage_groups_merged_total",
                "Groups merged into another, by what linked them (a cause below both, or content).",
                "by",
            ),
            incidents_declared: counter_vec(
                &r,
                "triage_incidents_declared_total",
                "Incidents declared, by their priority when declared.",
                "severity",
            ),
            incidents_updated: counter_vec(
                &r,
                "triage_incidents_updated_total",
                "Incident updates sent, by the incident's priority.",
                "severity",
            ),
            incidents_resolved: counter_vec(
                &r,
                "triage_incidents_resolved_total",
                "Incidents resolved (merges included), by their last priority.",
                "severity",
            ),
            incidents_merged: counter(
                &r,
                "triage_incidents_merged_total",
                "Incidents that ended by merging into another.",
            ),
            noise_reduction: register(
                &r,
                Gauge::new(
                    "triage_noise_reduction_ratio",
                    "1 - distinct incidents / unique alerts, since this process started.",
                )
                .unwrap_or_else(|e| panic!("metric table: {e}")),
            ),
            // Latency.
            record_seconds: histogram(
                &r,
                "triage_record_processing_seconds",
                "Wall time to decode a record and apply it to its correlator.",
                exponential(0.000_01, 4.0, 10),
            ),
            time_to_declare: histogram(
                &r,
                "triage_time_to_declare_seconds",
                "Event time from an incident's first alert to its declaration.",
                exponential(1.0, 2.0, 13),
            ),
            incident_duration: histogram(
                &r,
                "triage_incident_duration_seconds",
                "Event time from an incident's first alert to its resolution.",
                exponential(60.0, 2.0, 12),
            ),
            // State.
            open_groups: gauge(
                &r,
                "triage_open_groups",
                "Groups held: candidates and declared incidents.",
            ),
            open_incidents: gauge(&r, "triage_open_incidents", "Declared incidents still open."),
            active_alerts: gauge(&r, "triage_active_alerts", "Alerts held in correlator state."),
            topology_services: gauge(
                &r,
                "triage_topology_services",
                "Services in the catalog's dependency graph.",
            ),
            topology_dependencies: gauge(
                &r,
                "triage_topology_dependencies",
                "Dependency edges in the catalog's graph.",
            ),
            consumer_lag: register(
                &r,
                IntGaugeVec::new(
                    Opts::new(
                        "triage_consumer_lag_records",
                        "Alerts-topic records not yet consumed, per partition owned.",
                    ),
                    &["partition"],
                )
                .unwrap_or_else(|e| panic!("metric table: {e}")),
            ),
            partitions: gauge(
                &r,
                "triage_partitions_assigned",
                "Alerts-topic partitions this instance owns.",
            ),
            // Operations.
            checkpoints: counter(
                &r,
                "triage_checkpoints_total",
                "Partition snapshots written (state topic or state file).",
            ),
            checkpoint_seconds: histogram(
                &r,
                "triage_checkpoint_seconds",
                "Wall time of a checkpoint: flush, snapshots, commit.",
                exponential(0.001, 4.0, 8),
            ),
            clock_ticks: counter(
                &r,
                "triage_clock_ticks_total",
                "Idle clock moves: event time moved on by the wall clock.",
            ),
            records_skipped: counter(
                &r,
                "triage_records_skipped_total",
                "Records skipped because restored state already covers them.",
            ),
            events_produced: counter(
                &r,
                "triage_events_produced_total",
                "Incident events written out (re-sends after a recovery included).",
            ),
            client_errors: counter_vec(
                &r,
                "triage_kafka_errors_total",
                "Errors reported by the Kafka clients, by operation.",
                "operation",
            ),
            receiver_requests: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "triage_receiver_requests_total",
                        "Alert requests answered by the receiver, by endpoint and status.",
                    ),
                    &["endpoint", "status"],
                )
                .unwrap_or_else(|e| panic!("metric table: {e}")),
            ),
            bridged_records: counter(
                &r,
                "triage_bridge_records_total",
                "Records the receiver produced to the alerts topic (bridge mode).",
            ),
            ready: gauge(&r, "triage_ready", "1 when alerts can be taken (the /readyz answer)."),
            // Responders.
            pages_sent: counter_vec(
                &r,
                "triage_pages_sent_total",
                "Notifications a responder accepted (PagerDuty events, Slack messages, webhooks).",
                "responder",
            ),
            responder_deliveries: register(
                &r,
                IntCounterVec::new(
                    Opts::new(
                        "triage_responder_deliveries_total",
                        "Notifications settled, by responder and outcome.",
                    ),
                    &["responder", "outcome"],
                )
                .unwrap_or_else(|e| panic!("metric table: {e}")),
            ),
            responder_retries: counter_vec(
                &r,
                "triage_responder_retries_total",
                "Delivery attempts that failed and were retried.",
                "responder",
            ),
        };
        metrics.initialize_series();
        let build = IntGaugeVec::new(
            Opts::new("triage_build_info", "Always 1; the version in a label."),
            &["version"],
        )
        .unwrap_or_else(|e| panic!("metric table: {e}"));
        register(&r, build).with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        metrics
    }

    /// Creates every series of the bounded label sets at zero, so that
    /// dashboards and alert rules see a 0 rather than no data, and a first
    /// increment shows up in `rate()`.
    fn initialize_series(&self) {
        let values = |label: &str| {
            LABEL_VALUES.iter().find(|(name, _)| *name == label).map_or(&[][..], |(_, v)| *v)
        };
        for value in values("reason") {
            self.rejected.with_label_values(&[value]);
            self.dead_letters.with_label_values(&[value]);
        }
        for value in values("by") {
            self.groups_merged.with_label_values(&[value]);
        }
        for value in values("severity") {
            self.incidents_declared.with_label_values(&[value]);
            self.incidents_updated.with_label_values(&[value]);
            self.incidents_resolved.with_label_values(&[value]);
        }
        for value in values("operation") {
            self.client_errors.with_label_values(&[value]);
        }
        for endpoint in values("endpoint") {
            for status in values("status") {
                self.receiver_requests.with_label_values(&[endpoint, status]);
            }
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            out = format!("# metrics could not be encoded: {e}\n").into_bytes();
        }
        out
    }

    /// Every metric family, for tests and the summary.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    /// Counts one incident event and observes its timings.
    pub(crate) fn incident_event(&self, event: &IncidentEvent) {
        let severity = [SEVERITY[event.severity.index()]];
        match event.event {
            triage_model::EventKind::Declared => {
                self.incidents_declared.with_label_values(&severity).inc();
                let waited = event.declared_at.since(event.first_alert_at);
                self.time_to_declare.observe(waited.as_secs_f64());
            }
            triage_model::EventKind::Updated => {
                self.incidents_updated.with_label_values(&severity).inc();
            }
            triage_model::EventKind::Resolved => {
                self.incidents_resolved.with_label_values(&severity).inc();
                if let Some(resolved) = event.resolved_at {
                    let lasted = resolved.since(event.first_alert_at);
                    self.incident_duration.observe(lasted.as_secs_f64());
                }
            }
        }
        self.events_produced.inc();
    }

    /// Adds what a correlator did since `published` and remembers it.
    pub(crate) fn publish_stats(&self, stats: &Stats, published: &mut Stats) {
        let delta = |now: u64, then: u64| now.saturating_sub(then);
        self.alerts_unique.inc_by(delta(stats.unique_alerts, published.unique_alerts));
        self.alerts_duplicate.inc_by(delta(stats.duplicates, published.duplicates));
        self.alerts_grouped.inc_by(delta(stats.alerts_grouped, published.alerts_grouped));
        self.alerts_suppressed.inc_by(delta(stats.noise_alerts, published.noise_alerts));
        self.groups_opened.inc_by(delta(stats.groups_opened, published.groups_opened));
        let by_content = delta(stats.content_merges, published.content_merges);
        let all = delta(stats.groups_merged, published.groups_merged);
        self.groups_merged.with_label_values(&["content"]).inc_by(by_content);
        self.groups_merged.with_label_values(&["topology"]).inc_by(all.saturating_sub(by_content));
        self.incidents_merged.inc_by(delta(stats.incidents_merged, published.incidents_merged));
        *published = stats.clone();
        let unique = self.alerts_unique.get();
        if unique > 0 {
            let declared: u64 = SEVERITY
                .iter()
                .map(|s| self.incidents_declared.with_label_values(&[s]).get())
                .sum();
            let distinct = declared.saturating_sub(self.incidents_merged.get());
            self.noise_reduction.set(1.0 - distinct as f64 / unique as f64);
        }
    }

    /// The state gauges, summed over the correlators this process holds.
    pub(crate) fn set_state(&self, groups: usize, incidents: usize, alerts: usize) {
        self.open_groups.set(groups as i64);
        self.open_incidents.set(incidents as i64);
        self.active_alerts.set(alerts as i64);
    }

    /// The catalog's size.
    pub(crate) fn set_topology(&self, services: usize, dependencies: usize) {
        self.topology_services.set(services as i64);
        self.topology_dependencies.set(dependencies as i64);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use triage_correlate::{CollectingSink, Correlator, Settings};
    use triage_formats::{DecodeLimits, RejectReason, decode_line};
    use triage_topology::{ServiceSpec, Topology};

    use super::*;
    use crate::telemetry::{Source, Telemetry};

    fn allowed(label: &str) -> Option<&'static [&'static str]> {
        LABEL_VALUES.iter().find(|(name, _)| *name == label).map(|(_, values)| *values)
    }

    /// Real incident events: a database failure and its callers.
    fn events() -> Vec<IncidentEvent> {
        let spec = |name: &str, deps: &[&str]| ServiceSpec {
            name: name.into(),
            depends_on: deps.iter().map(|d| (*d).into()).collect(),
            tier: 1,
            user_facing: true,
            ..ServiceSpec::default()
        };
        let specs = vec![spec("db", &[]), spec("api", &["db"]), spec("web", &["api"])];
        let settings = Arc::new(Settings::default());
        let topology = Arc::new(Topology::build(&specs, 2).unwrap_or_else(|e| panic!("{e:?}")));
        let mut correlator = Correlator::new(settings, topology, 0);
        let mut sink = CollectingSink::default();
        let lines = [
            r#"{"labels":{"alertname":"Down","service":"db","severity":"critical"},
                "startsAt":"2026-01-01T10:00:00Z"}"#,
            r#"{"labels":{"alertname":"Errors","service":"api","severity":"critical"},
                "startsAt":"2026-01-01T10:00:05Z"}"#,
            r#"{"status":"resolved","labels":{"alertname":"Down","service":"db",
                "severity":"critical"},"startsAt":"2026-01-01T10:00:00Z",
                "endsAt":"2026-01-01T10:01:00Z"}"#,
            r#"{"status":"resolved","labels":{"alertname":"Errors","service":"api",
                "severity":"critical"},"startsAt":"2026-01-01T10:00:05Z",
                "endsAt":"2026-01-01T10:01:00Z"}"#,
        ];
        for (i, line) in lines.iter().enumerate() {
            let decoded = decode_line(line.as_bytes(), &DecodeLimits::default(), None);
            for alert in decoded.map(|d| d.alerts).unwrap_or_default() {
                correlator.ingest(&alert, i as u64, &mut sink);
            }
        }
        correlator.drain(&mut sink);
        sink.events
    }

    #[test]
    fn label_values_stay_within_their_bounded_sets() {
        let telemetry = Telemetry::default();
        // Every writer, fed the widest inputs it can get: every reject
        // code, odd status codes, error text full of label-like noise.
        let noise = "pod=\"checkout-7f9\" error: connection refused {instance=10.0.0.1}";
        for reason in RejectReason::ALL {
            telemetry.dead_letter(7, reason.code(), noise);
        }
        for status in [200, 202, 400, 401, 404, 413, 418, 429, 500, 502, 503] {
            telemetry.request("/webhook", status, noise);
            telemetry.request("/api/v2/alerts", status, noise);
        }
        for operation in allowed("operation").unwrap_or_default() {
            telemetry.client_error(operation, noise);
        }
        for source in [Source::Kafka, Source::Webhook, Source::ApiV2] {
            telemetry.record(source, 3, Duration::from_micros(40));
        }
        telemetry.lag(0, 10);
        telemetry.lag(31, 5);
        telemetry.revoked(31, 9);
        let events = events();
        assert!(events.iter().any(|e| e.event == triage_model::EventKind::Resolved));
        for event in &events {
            telemetry.incident_event(event);
        }

        let mut seen = 0;
        for family in telemetry.metrics.gather() {
            for metric in family.get_metric() {
                for pair in metric.get_label() {
                    let (name, value) = (pair.name(), pair.value());
                    seen += 1;
                    if CONFIGURED_LABELS.contains(&name) {
                        continue;
                    }
                    if name == "partition" {
                        assert!(
                            value.parse::<i32>().is_ok(),
                            "{}: partition {value}",
                            family.name()
                        );
                        continue;
                    }
                    let values = allowed(name).unwrap_or_else(|| {
                        panic!("{}: label {name} has no bounded set", family.name())
                    });
                    assert!(values.contains(&value), "{}: {name}={value}", family.name());
                }
            }
        }
        assert!(seen > 40, "the writers above produced labelled series: {seen}");
        let reasons = allowed("reason").unwrap_or_default();
        for reason in RejectReason::ALL {
            assert!(reasons.contains(&reason.code()), "{} missing", reason.code());
        }
        let declared = telemetry.metrics.time_to_declare.get_sample_count();
        assert!(declared >= 1, "declarations observed");
    }

    #[test]
    fn every_metric_is_in_the_operations_guide() {
        let guide = include_str!("../../../docs/operations.md");
        let telemetry = Telemetry::default();
        telemetry.lag(0, 0);
        let families = telemetry.metrics.gather();
        assert!(families.len() >= 30, "{} families", families.len());
        for family in families {
            assert!(guide.contains(family.name()), "docs/operations.md lacks {}", family.name());
        }
    }
}
