//! What `triage run` reports about itself. Each observable occurrence is
//! one function here that writes the log line (a `tracing` event: a short
//! sentence with structured fields) and updates its metric
//! ([`crate::metrics`]), so a log line and a count can never disagree.
//! Repeated warnings are rate-limited per code: a poison topic or a
//! misconfigured sender cannot flood the log, and the line after a quiet
//! period says how many were held back.
//!
//! Identity lives in spans: the binary opens one per component, and the
//! service enters a partition's span around what it does for it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rustc_hash::FxHashMap;
use triage_model::IncidentEvent;

use crate::metrics::Metrics;
use crate::respond::deliver::Outcome;

/// A repeated warning is logged at most once per this period; the lines
/// skipped are counted in the next one.
const WARN_PERIOD: Duration = Duration::from_secs(10);

/// Shared view of the service for the outside: readiness and metrics.
#[derive(Default)]
pub struct Telemetry {
    /// Every metric, served on `/metrics`.
    pub metrics: Metrics,
    ready: AtomicBool,
    limiter: Mutex<FxHashMap<&'static str, (Instant, u64)>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("ready", &self.ready()).finish_non_exhaustive()
    }
}

/// What the binary prints when the service stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Records received (Kafka records, HTTP requests that reached decoding).
    pub records: u64,
    /// Alerts taken on.
    pub alerts: u64,
    /// Incident events written out.
    pub events: u64,
    /// Refused records or alerts kept.
    pub dead_letters: u64,
    /// Snapshots written.
    pub checkpoints: u64,
    /// Alert requests answered by the receiver.
    pub requests: u64,
    /// Of those, refused (4xx).
    pub refused: u64,
    /// Records produced by the bridge.
    pub bridged: u64,
}

/// Which label a record's source has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The alerts topic.
    Kafka,
    /// `POST /webhook`.
    Webhook,
    /// `POST /api/v2/alerts`.
    ApiV2,
}

impl Source {
    /// Its slot in [`Metrics::by_source`].
    fn index(self) -> usize {
        match self {
            Source::Kafka => 0,
            Source::Webhook => 1,
            Source::ApiV2 => 2,
        }
    }
}

/// A status code as a label from the bounded set.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        413 => "413",
        503 => "503",
        _ => "500",
    }
}

fn sum(metric: &prometheus::IntCounterVec) -> u64 {
    use prometheus::core::Collector as _;
    metric
        .collect()
        .iter()
        .flat_map(|family| family.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum()
}

impl Telemetry {
    /// Whether the service is connected and serving its partitions.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
        self.metrics.ready.set(i64::from(ready));
    }

    /// The figures of the stop line.
    pub fn summary(&self) -> Summary {
        let m = &self.metrics;
        let requests = sum(&m.receiver_requests);
        let refused: u64 = ["400", "401", "413"]
            .iter()
            .flat_map(|status| {
                ["/webhook", "/api/v2/alerts"].map(|endpoint| {
                    m.receiver_requests.with_label_values(&[endpoint, status]).get()
                })
            })
            .sum();
        Summary {
            records: sum(&m.records_received),
            alerts: sum(&m.alerts_received),
            events: m.events_produced.get(),
            dead_letters: sum(&m.dead_letters),
            checkpoints: m.checkpoints.get(),
            requests,
            refused,
            bridged: m.bridged_records.get(),
        }
    }

    /// Logs a warning under `code` unless the same code was logged within
    /// [`WARN_PERIOD`]; says how many were held back.
    fn warn_limited(&self, code: &'static str, line: impl FnOnce(u64)) {
        let now = Instant::now();
        let Ok(mut limiter) = self.limiter.lock() else { return };
        let entry = limiter.entry(code).or_insert((now - WARN_PERIOD, 0));
        if now.duration_since(entry.0) >= WARN_PERIOD {
            line(entry.1);
            *entry = (now, 0);
        } else {
            entry.1 += 1;
        }
    }

    /// One record decoded and applied, with `alerts` alerts in it.
    pub(crate) fn record(&self, source: Source, alerts: u64, took: Duration) {
        let (records, alerted) = &self.metrics.by_source[source.index()];
        records.inc();
        alerted.inc_by(alerts);
        self.metrics.record_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn record_skipped(&self) {
        self.metrics.records_skipped.inc();
    }

    /// A record or an alert refused while decoding; `kept` when it was
    /// stored (dead-letter topic, rejects file).
    pub(crate) fn rejected(&self, reason: &'static str, kept: bool) {
        self.metrics.rejected.with_label_values(&[reason]).inc();
        if kept {
            self.metrics.dead_letters.with_label_values(&[reason]).inc();
        }
    }

    pub(crate) fn dead_letter(&self, offset: i64, reason: &'static str, message: &str) {
        self.rejected(reason, true);
        self.warn_limited("dead_letter", |held_back| {
            tracing::warn!(
                offset,
                reason,
                error = message,
                held_back,
                "record sent to dead letters"
            );
        });
    }

    pub(crate) fn dropped_alert(&self, position: u64, reason: &'static str, kept: bool) {
        self.rejected(reason, kept);
        self.warn_limited("alert_dropped", |held_back| {
            tracing::warn!(position, reason, held_back, "alert dropped");
        });
    }

    pub(crate) fn incident_event(&self, event: &IncidentEvent) {
        self.metrics.incident_event(event);
    }

    pub(crate) fn checkpoint(&self, partitions: usize, elapsed: Duration) {
        self.metrics.checkpoints.inc_by(partitions as u64);
        self.metrics.checkpoint_seconds.observe(elapsed.as_secs_f64());
        if elapsed > Duration::from_secs(1) {
            self.warn_limited("slow_checkpoint", |held_back| {
                tracing::warn!(partitions, ?elapsed, held_back, "checkpoint was slow");
            });
        }
    }

    pub(crate) fn tick(&self) {
        self.metrics.clock_ticks.inc();
    }

    pub(crate) fn started(&self, group: &str, topic: &str) {
        tracing::info!(group, topic, "service started");
    }

    pub(crate) fn assigned(&self, next_offset: i64, restored: bool, ticks: usize) {
        self.metrics.partitions.inc();
        let restored_from = if restored { "snapshot" } else { "nothing" };
        tracing::info!(restored_from, next_offset, ticks_replayed = ticks, "partition assigned");
    }

    pub(crate) fn revoked(&self, partition: i32, next_offset: i64) {
        self.metrics.partitions.dec();
        let _ = self.metrics.consumer_lag.remove_label_values(&[&partition.to_string()]);
        tracing::info!(next_offset, "partition revoked");
    }

    /// How far behind the alerts topic a partition is.
    pub(crate) fn lag(&self, partition: i32, records: i64) {
        self.metrics.consumer_lag.with_label_values(&[&partition.to_string()]).set(records);
    }

    pub(crate) fn client_error(&self, operation: &'static str, message: &str) {
        self.metrics.client_errors.with_label_values(&[operation]).inc();
        self.warn_limited(operation, |held_back| {
            tracing::warn!(operation, error = message, held_back, "kafka client error");
        });
    }

    /// librdkafka's own log lines: warnings and worse always, debug lines
    /// when the `debug` property asked for them.
    pub(crate) fn client_log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => tracing::error!(facility, "kafka: {message}"),
            RDKafkaLogLevel::Warning => tracing::warn!(facility, "kafka: {message}"),
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
                tracing::info!(facility, "kafka: {message}");
            }
            RDKafkaLogLevel::Debug => tracing::debug!(facility, "kafka: {message}"),
        }
    }

    pub(crate) fn receiver_listening(&self, address: &str) {
        tracing::info!(address, "receiver listening");
    }

    pub(crate) fn standalone_started(&self, state_file: Option<&std::path::Path>, requests: u64) {
        let state_file = state_file.map_or("none".to_owned(), |p| p.display().to_string());
        tracing::info!(state_file, requests_restored = requests, "standalone started");
    }

    /// One answered alert request; `reason` is a bounded code.
    pub(crate) fn request(&self, endpoint: &'static str, status: u16, reason: &str) {
        let label = status_label(status);
        self.metrics.receiver_requests.with_label_values(&[endpoint, label]).inc();
        match status {
            400..=499 => self.warn_limited("request_refused", |held_back| {
                tracing::warn!(endpoint, status, reason, held_back, "request refused");
            }),
            500..=599 => self.warn_limited("request_unavailable", |held_back| {
                tracing::warn!(endpoint, status, reason, held_back, "request failed");
            }),
            _ => {}
        }
    }

    pub(crate) fn bridged(&self, records: u64) {
        self.metrics.bridged_records.inc_by(records);
    }

    /// A responder is configured: its series start at zero.
    pub fn responder_ready(&self, name: &str, kind: &'static str) {
        self.metrics.pages_sent.with_label_values(&[name]);
        self.metrics.responder_retries.with_label_values(&[name]);
        for outcome in ["delivered", "refused", "gave_up", "dropped"] {
            self.metrics.responder_deliveries.with_label_values(&[name, outcome]);
        }
        tracing::info!(responder = name, kind, "responder ready");
    }

    pub(crate) fn responder_outcome(&self, name: &str, outcome: &Outcome) {
        let m = &self.metrics;
        m.responder_deliveries.with_label_values(&[name, outcome.label()]).inc();
        match outcome {
            Outcome::Delivered(attempts) => {
                m.pages_sent.with_label_values(&[name]).inc();
                tracing::debug!(responder = name, attempts, "notification delivered");
            }
            Outcome::Refused(status, body) => {
                tracing::warn!(responder = name, status, body = %body, "notification refused");
            }
            Outcome::GaveUp(last) => {
                tracing::warn!(responder = name, last_error = %last, "notification given up");
            }
        }
    }

    pub(crate) fn responder_retry(&self, name: &str, attempt: u32, why: &str, wait: Duration) {
        self.metrics.responder_retries.with_label_values(&[name]).inc();
        self.warn_limited("responder_retry", |held_back| {
            tracing::warn!(
                responder = name,
                attempt,
                why,
                ?wait,
                held_back,
                "notification retried"
            );
        });
    }

    pub(crate) fn responder_dropped(&self, name: &str) {
        self.metrics.responder_deliveries.with_label_values(&[name, "dropped"]).inc();
        self.warn_limited("responder_dropped", |held_back| {
            tracing::warn!(
                responder = name,
                held_back,
                "responder queue full: notification dropped"
            );
        });
    }

    pub(crate) fn responders_abandoned(&self, bound: Duration) {
        tracing::warn!(
            ?bound,
            "responders still had notifications queued at shutdown; on Kafka they are sent again \
             after the restart"
        );
    }

    pub(crate) fn responders_paused(&self, paused: bool, held: usize) {
        if paused {
            tracing::warn!(held, "a responder queue is full: incidents partitions paused");
        } else {
            tracing::info!("responder queues have room: incidents partitions resumed");
        }
    }

    pub(crate) fn responder_partition(&self, partition: i32, settled_before: i64) {
        tracing::info!(partition, settled_before, "incidents partition assigned to the responders");
    }

    pub(crate) fn responder_unreadable(&self, partition: i32, offset: i64, error: &str) {
        self.warn_limited("responder_unreadable", |held_back| {
            tracing::warn!(
                partition,
                offset,
                error,
                held_back,
                "incident event unreadable, skipped"
            );
        });
    }

    pub(crate) fn receiver_dead_letter(&self, endpoint: &str, reason: &'static str, message: &str) {
        self.rejected(reason, true);
        self.warn_limited("dead_letter", |held_back| {
            tracing::warn!(
                endpoint,
                reason,
                error = message,
                held_back,
                "request body sent to dead letters"
            );
        });
    }
}
