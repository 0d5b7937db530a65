//! What the streaming service reports about itself. Each observable
//! occurrence is one function here that writes the log line and bumps its
//! counter, so a log line and a count can never disagree. Counters are
//! plain atomics, read by the binary for its summary (and, later, served
//! as metrics); their only dimensions are bounded codes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rustc_hash::FxHashMap;
use std::sync::Mutex;

/// The service's counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read from the alerts topic.
    pub records: AtomicU64,
    /// Records skipped because recovered state already covers them.
    pub records_skipped: AtomicU64,
    /// Alerts handed to a correlator.
    pub alerts: AtomicU64,
    /// Records or alerts sent to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Incident events produced (re-emissions after recovery included).
    pub events: AtomicU64,
    /// Snapshots written.
    pub checkpoints: AtomicU64,
    /// Clock moves of idle partitions.
    pub ticks: AtomicU64,
    /// Partitions assigned to this instance over its life.
    pub partitions_assigned: AtomicU64,
    /// Partitions revoked from it.
    pub partitions_revoked: AtomicU64,
    /// Errors reported by the Kafka clients.
    pub client_errors: AtomicU64,
    /// HTTP requests answered by the receiver.
    pub receiver_requests: AtomicU64,
    /// Of those, refused as the client's fault (4xx).
    pub receiver_refused: AtomicU64,
    /// Of those, failed for now (5xx): the client should retry.
    pub receiver_unavailable: AtomicU64,
    /// Records the bridge produced to the alerts topic.
    pub bridged_records: AtomicU64,
}

impl Counters {
    fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Ordering::Relaxed);
    }

    /// Reads one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Shared view of the service for the outside: readiness and counters.
#[derive(Debug, Default)]
pub struct Telemetry {
    /// The counters.
    pub counters: Counters,
    ready: AtomicBool,
    limiter: Mutex<FxHashMap<&'static str, (Instant, u64)>>,
}

/// A repeated warning is logged at most once per this period; the lines
/// skipped are counted in the next one.
const WARN_PERIOD: Duration = Duration::from_secs(10);

impl Telemetry {
    /// Whether the service is connected and serving its partitions.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Logs `message` under `code` unless the same code was logged within
    /// [`WARN_PERIOD`]; says how many were held back.
    fn warn_limited(&self, code: &'static str, message: &str) {
        let now = Instant::now();
        let Ok(mut limiter) = self.limiter.lock() else { return };
        let entry = limiter.entry(code).or_insert((now - WARN_PERIOD, 0));
        if now.duration_since(entry.0) >= WARN_PERIOD {
            if entry.1 > 0 {
                eprintln!("triage warn {code}: {message} ({} similar not logged)", entry.1);
            } else {
                eprintln!("triage warn {code}: {message}");
            }
            *entry = (now, 0);
        } else {
            entry.1 += 1;
        }
    }

    pub(crate) fn records(&self, records: u64, alerts: u64) {
        Counters::bump(&self.counters.records, records);
        Counters::bump(&self.counters.alerts, alerts);
    }

    pub(crate) fn record_skipped(&self) {
        Counters::bump(&self.counters.records_skipped, 1);
    }

    pub(crate) fn dead_letter(&self, partition: i32, offset: i64, reason: &str, message: &str) {
        Counters::bump(&self.counters.dead_letters, 1);
        self.warn_limited(
            "dead_letter",
            &format!(
                "record sent to dead letters partition={partition} offset={offset} \
                      reason={reason} error={message:?}"
            ),
        );
    }

    pub(crate) fn events(&self, count: u64) {
        Counters::bump(&self.counters.events, count);
    }

    pub(crate) fn checkpoint(&self, partitions: usize, elapsed: Duration) {
        Counters::bump(&self.counters.checkpoints, partitions as u64);
        if elapsed > Duration::from_secs(1) {
            self.warn_limited(
                "slow_checkpoint",
                &format!("checkpoint was slow partitions={partitions} elapsed={elapsed:?}"),
            );
        }
    }

    pub(crate) fn tick(&self) {
        Counters::bump(&self.counters.ticks, 1);
    }

    pub(crate) fn started(&self, group: &str, topic: &str) {
        eprintln!("triage info: service started group={group} topic={topic}");
    }

    pub(crate) fn assigned(&self, partition: i32, next_offset: i64, restored: bool, ticks: usize) {
        Counters::bump(&self.counters.partitions_assigned, 1);
        let from = if restored { "snapshot" } else { "nothing" };
        eprintln!(
            "triage info: partition assigned partition={partition} restored_from={from} \
             next_offset={next_offset} ticks_replayed={ticks}"
        );
    }

    pub(crate) fn revoked(&self, partition: i32, next_offset: i64) {
        Counters::bump(&self.counters.partitions_revoked, 1);
        eprintln!("triage info: partition revoked partition={partition} next_offset={next_offset}");
    }

    pub(crate) fn client_error(&self, code: &'static str, message: &str) {
        Counters::bump(&self.counters.client_errors, 1);
        self.warn_limited(code, &format!("kafka client error error={message:?}"));
    }

    /// librdkafka's own log lines: warnings and worse always, debug lines
    /// when the `debug` property asked for them.
    pub(crate) fn client_log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        let name = match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error => "error",
            RDKafkaLogLevel::Warning => "warn",
            RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => "info",
            RDKafkaLogLevel::Debug => "debug",
        };
        eprintln!("triage {name} kafka: {message} facility={facility}");
    }

    pub(crate) fn receiver_listening(&self, address: &str) {
        eprintln!("triage info: receiver listening address={address}");
    }

    pub(crate) fn standalone_started(&self, state_file: Option<&std::path::Path>, requests: u64) {
        let state = state_file.map_or("none".to_owned(), |p| p.display().to_string());
        eprintln!(
            "triage info: standalone started state_file={state} requests_restored={requests}"
        );
    }

    /// One answered request; `reason` is a bounded code.
    pub(crate) fn request(&self, endpoint: &str, status: u16, reason: &str) {
        Counters::bump(&self.counters.receiver_requests, 1);
        match status {
            400..=499 => {
                Counters::bump(&self.counters.receiver_refused, 1);
                self.warn_limited(
                    "request_refused",
                    &format!("request refused endpoint={endpoint} status={status} reason={reason}"),
                );
            }
            500..=599 => {
                Counters::bump(&self.counters.receiver_unavailable, 1);
                self.warn_limited(
                    "request_unavailable",
                    &format!("request failed endpoint={endpoint} status={status} reason={reason}"),
                );
            }
            _ => {}
        }
    }

    pub(crate) fn bridged(&self, records: u64, alerts: u64) {
        Counters::bump(&self.counters.bridged_records, records);
        Counters::bump(&self.counters.alerts, alerts);
    }

    pub(crate) fn receiver_dead_letter(&self, endpoint: &str, reason: &str, message: &str) {
        Counters::bump(&self.counters.dead_letters, 1);
        self.warn_limited(
            "dead_letter",
            &format!(
                "request body sent to dead letters endpoint={endpoint} reason={reason} \
                 error={message:?}"
            ),
        );
    }

    pub(crate) fn dropped_alert(&self, partition: i32, offset: u64, reason: &str) {
        Counters::bump(&self.counters.dead_letters, 1);
        self.warn_limited(
            "alert_dropped",
            &format!("alert dropped partition={partition} offset={offset} reason={reason}"),
        );
    }
}
