//! `triage run` on Kafka: a consumer group over the alerts topic, one
//! correlator per assigned partition, incident events produced to the
//! incidents topic, undecodable records to the dead-letter topic.
//!
//! # At-least-once, in this order
//! 1. Records are decoded and fed to their partition's correlator; the
//!    events they cause are handed to the idempotent producer at once.
//! 2. Every `checkpoint_interval`, on revoke and on shutdown: the producer
//!    is flushed, so every event and dead letter caused so far is
//!    acknowledged (`acks=all`); a permanently failed delivery stops the
//!    service here, before anything is committed.
//! 3. Each partition that changed writes its snapshot to the state topic
//!    ([`crate::state`]), covering the alerts up to `next_offset`.
//! 4. Only then is `next_offset` committed to the group.
//!
//! A crash anywhere replays from the last snapshot. The correlator is
//! deterministic and its clock moves are recorded before they act, so the
//! replay re-sends the events sent since that snapshot with the same ids
//! and the same bytes; downstream deduplicates by `event_id`.
//!
//! # Threads
//! One thread polls the consumer and runs the correlators; librdkafka's
//! own threads fetch and send in the background. The partitions' state
//! sits behind one mutex that the polling thread takes per record and the
//! rebalance callback (which runs inside `poll`, on the same thread) takes
//! to checkpoint or restore: it is never contended.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, TopicPartitionList};
use triage_config::{Config, KafkaSettings};
use triage_correlate::{Correlator, DroppedAlert, EventSink, Stats};
use triage_formats::{RejectReason, decode_line};
use triage_model::IncidentEvent;

use crate::client::{send_waiting, topic_partitions};
use crate::clock::IdleClock;
use crate::error::StreamError;
use crate::state::{StateStore, Tick};
use crate::telemetry::{Source, Telemetry};

/// Most records handled between two housekeeping rounds (idle partitions,
/// checkpoint due, shutdown asked).
const HOUSEKEEPING_EVERY: u32 = 4096;
/// Longest time between two housekeeping rounds under steady traffic.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(50);
/// Records between two looks at the clock.
const CLOCK_EVERY: u32 = 16;
/// Longest wait in one poll, which bounds how late housekeeping runs.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// How often the correlators' counters and sizes go to the metrics.
const PUBLISH_PERIOD: Duration = Duration::from_secs(1);
/// How often librdkafka reports statistics (consumer lag comes from them).
const STATISTICS_INTERVAL_MS: &str = "5000";

/// What the caller controls and observes while the service runs.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// Set to stop: finish the record in hand, checkpoint, exit.
    pub shutdown: Arc<AtomicBool>,
    /// Readiness and counters.
    pub telemetry: Arc<Telemetry>,
}

/// How the service ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSummary {
    /// Partitions still owned at the end, all checkpointed.
    pub partitions: usize,
}

/// Delivery reports of the output producer: failures are kept until the
/// next checkpoint, which refuses to commit past them.
#[derive(Default)]
struct OutputDeliveries {
    failures: Mutex<Vec<String>>,
}

impl OutputDeliveries {
    /// Records an output that will not reach the broker.
    fn fail(&self, what: String) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.push(what);
        }
    }
}

impl ClientContext for OutputDeliveries {}

impl ProducerContext for OutputDeliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {
        if let Err((error, message)) = result {
            self.fail(format!("{} partition {}: {error}", message.topic(), message.partition()));
        }
    }
}

/// One assigned partition.
struct Partition {
    correlator: Correlator,
    /// The first alerts offset not yet fed to the correlator; records
    /// below it (restored state, a re-delivery) are skipped.
    next_offset: i64,
    /// Recorded clock moves still to replay, in order.
    ticks: VecDeque<Tick>,
    generation: u64,
    manifest_at: Option<i64>,
    /// Changed since the last snapshot.
    dirty: bool,
    clock: IdleClock,
    /// The correlator's counters as last published to the metrics.
    published: Stats,
}

/// Everything the polling thread and the rebalance callback share.
struct Core {
    config: Arc<Config>,
    partitions: BTreeMap<i32, Partition>,
    output: BaseProducer<OutputDeliveries>,
    state: StateStore,
    telemetry: Arc<Telemetry>,
    /// A failure met inside a callback, to stop the service with.
    fatal: Option<StreamError>,
    last_checkpoint: Instant,
    last_publish: Instant,
}

/// The consumer's context: rebalances restore and checkpoint partitions.
struct Engine {
    core: Mutex<Core>,
    telemetry: Arc<Telemetry>,
}

impl Engine {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock would already have ended the
        // service; the state behind a poisoned lock is still consistent
        // at record boundaries, so keep going rather than panic again.
        self.core.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClientContext for Engine {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.telemetry.client_log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let code = match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.telemetry.set_ready(false);
                "all_brokers_down"
            }
            Some(RDKafkaErrorCode::BrokerTransportFailure) => "broker_transport",
            _ => "client",
        };
        self.telemetry.client_error(code, reason);
    }

    /// Consumer lag per owned partition: the topic's high watermark minus
    /// the next offset its correlator will take.
    fn stats(&self, statistics: Statistics) {
        let core = self.lock();
        let Some(topic) = statistics.topics.get(&core.config.kafka.topics.alerts) else { return };
        for (&partition, p) in &core.partitions {
            let Some(reported) = topic.partitions.get(&partition) else { continue };
            if reported.hi_offset >= 0 {
                self.telemetry.lag(partition, (reported.hi_offset - p.next_offset).max(0));
            }
        }
    }
}

impl ConsumerContext for Engine {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut core = self.lock();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let partitions: Vec<(String, i32)> =
                    tpl.elements().iter().map(|e| (e.topic().to_owned(), e.partition())).collect();
                for (topic, partition) in partitions {
                    match core.assign(partition) {
                        Ok(offset) => {
                            if let Err(e) = tpl.set_partition_offset(&topic, partition, offset) {
                                core.fatal.get_or_insert(StreamError::client("assign", e));
                            }
                        }
                        Err(e) => {
                            core.fatal.get_or_insert(e);
                        }
                    }
                }
                if let Err(e) = consumer.assign(tpl) {
                    core.fatal.get_or_insert(StreamError::client("assign", e));
                }
                self.telemetry.set_ready(core.fatal.is_none());
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                if let Err(e) = core.checkpoint(consumer, Some(&revoked)) {
                    core.fatal.get_or_insert(e);
                }
                for partition in revoked {
                    if let Some(p) = core.partitions.remove(&partition) {
                        let _span = partition_span(partition);
                        self.telemetry.revoked(partition, p.next_offset);
                    }
                }
                if let Err(e) = consumer.unassign() {
                    core.fatal.get_or_insert(StreamError::client("unassign", e));
                }
            }
            other => {
                self.telemetry.client_error("rebalance", &format!("{other:?}"));
                let _ = consumer.unassign();
            }
        }
    }
}

/// Runs until `control.shutdown` is set or a fatal error.
pub fn run(config: Arc<Config>, control: &Control) -> Result<RunSummary, StreamError> {
    let _span = tracing::info_span!("consumer").entered();
    let kafka = &config.kafka;
    let telemetry = control.telemetry.clone();
    let output: BaseProducer<OutputDeliveries> = producer_config(kafka)
        .create_with_context(OutputDeliveries::default())
        .map_err(|e| StreamError::client("output producer", e))?;
    let mut reader = base_config(kafka);
    reader.set("group.id", format!("{}-state-reader", kafka.group_id));
    let state = StateStore::new(
        &kafka.topics.state,
        producer_config(kafka),
        reader,
        config.live.shutdown_timeout,
    )?;
    check_topics(&output, &state, kafka, config.live.shutdown_timeout)?;

    let core = Core {
        config: config.clone(),
        partitions: BTreeMap::new(),
        output,
        state,
        telemetry: telemetry.clone(),
        fatal: None,
        last_checkpoint: Instant::now(),
        last_publish: Instant::now(),
    };
    let graph = config.topology.stats();
    telemetry.metrics.set_topology(graph.services, graph.edges);
    let engine = Engine { core: Mutex::new(core), telemetry: telemetry.clone() };
    let consumer: BaseConsumer<Engine> = consumer_config(kafka)
        .create_with_context(engine)
        .map_err(|e| StreamError::client("consumer", e))?;
    consumer
        .subscribe(&[kafka.topics.alerts.as_str()])
        .map_err(|e| StreamError::client("subscribe", e))?;

    telemetry.started(&kafka.group_id, &kafka.topics.alerts);
    let mut since_housekeeping = 0u32;
    let mut last_housekeeping = Instant::now();
    while !control.shutdown.load(Ordering::Relaxed) {
        match consumer.poll(POLL_WAIT) {
            Some(Ok(message)) => {
                consumer.context().lock().process(&message);
                since_housekeeping += 1;
                // Steady traffic must not starve checkpoints: look at the
                // clock every so many records.
                if !since_housekeeping.is_multiple_of(CLOCK_EVERY)
                    || (since_housekeeping < HOUSEKEEPING_EVERY
                        && last_housekeeping.elapsed() < HOUSEKEEPING_PERIOD)
                {
                    continue;
                }
            }
            Some(Err(e)) => telemetry.client_error("consume", &e.to_string()),
            None => {}
        }
        since_housekeeping = 0;
        last_housekeeping = Instant::now();
        let mut core = consumer.context().lock();
        if let Some(e) = core.fatal.take() {
            return Err(e);
        }
        core.housekeeping(&consumer)?;
    }

    let deadline = Instant::now() + config.live.shutdown_timeout;
    let mut core = consumer.context().lock();
    if let Some(e) = core.fatal.take() {
        return Err(e);
    }
    core.checkpoint(&consumer, None)?;
    let partitions = core.partitions.len();
    core.partitions.clear();
    drop(core);
    // Closing the consumer leaves the group now instead of at the session
    // timeout, so the partitions move to another instance at once.
    consumer.unsubscribe();
    drop(consumer);
    if Instant::now() > deadline {
        return Err(StreamError::ShutdownTimeout(config.live.shutdown_timeout));
    }
    Ok(RunSummary { partitions })
}

impl Core {
    /// Restores (or starts) `partition` and returns where to consume from.
    fn assign(&mut self, partition: i32) -> Result<Offset, StreamError> {
        if let Some(owned) = self.partitions.get(&partition) {
            // Assigned again without a revoke in between (a rejoin): the
            // correlator in hand is the newest state.
            return Ok(Offset::Offset(owned.next_offset));
        }
        let recovered = self.state.load(partition)?;
        let settings = self.config.settings.clone();
        let topology = self.config.topology.clone();
        let number = partition_number(partition);
        let (correlator, next_offset, generation) = match recovered.snapshot {
            Some((snapshot, manifest)) => {
                let correlator = Correlator::restore(settings, topology, snapshot)
                    .map_err(|e| StreamError::Restore { partition, message: e.to_string() })?;
                (correlator, manifest.next_offset, manifest.generation)
            }
            None => (Correlator::new(settings, topology, number), 0, 0),
        };
        let restored = recovered.manifest_at.is_some();
        let ticks = recovered.ticks.len();
        let mut p = Partition {
            correlator,
            next_offset,
            ticks: recovered.ticks.into(),
            generation,
            manifest_at: recovered.manifest_at,
            dirty: false,
            clock: IdleClock::new(None, Instant::now()),
            published: Stats::default(),
        };
        let _span = partition_span(partition);
        let mut sink =
            OutputSink::new(&self.output, &self.config.kafka, &self.telemetry, partition);
        p.replay_ticks_through(next_offset - 1, &mut sink);
        p.clock = IdleClock::new(p.correlator.head(), Instant::now());
        self.telemetry.assigned(next_offset, restored, ticks);
        self.partitions.insert(partition, p);
        Ok(if restored { Offset::Offset(next_offset) } else { Offset::Beginning })
    }

    /// Feeds one alerts record to its partition.
    fn process(&mut self, message: &BorrowedMessage<'_>) {
        let partition = message.partition();
        let offset = message.offset();
        let Some(p) = self.partitions.get_mut(&partition) else { return };
        if offset < p.next_offset {
            self.telemetry.record_skipped();
            return;
        }
        let started = Instant::now();
        let limits = &self.config.input;
        let mut sink =
            OutputSink::new(&self.output, &self.config.kafka, &self.telemetry, partition);
        let payload = message.payload().unwrap_or_default();
        let position = u64::try_from(offset).unwrap_or_default();
        let mut alerts = 0;
        if payload.len() > limits.max_line_bytes {
            let text = format!("record is {} bytes, more than input.max_line_bytes", payload.len());
            sink.dead_letter(message, RejectReason::LineTooLong.code(), &text, None);
        } else {
            match decode_line(payload, &limits.decode, p.correlator.head()) {
                Ok(decoded) => {
                    for rejected in &decoded.rejected {
                        let reason = rejected.error.reason.code();
                        let text = &rejected.error.message;
                        sink.dead_letter(message, reason, text, Some(rejected.index));
                    }
                    for alert in &decoded.alerts {
                        p.correlator.ingest(alert, position, &mut sink);
                    }
                    alerts = decoded.alerts.len() as u64;
                }
                Err(e) => sink.dead_letter(message, e.reason.code(), &e.message, None),
            }
        }
        p.next_offset = offset + 1;
        p.dirty = true;
        p.clock.observed(p.correlator.head(), Instant::now());
        p.replay_ticks_through(offset, &mut sink);
        self.telemetry.record(Source::Kafka, alerts, started.elapsed());
    }

    /// Idle clocks, due checkpoints, delivery reports.
    fn housekeeping(&mut self, consumer: &BaseConsumer<Engine>) -> Result<(), StreamError> {
        self.output.poll(Duration::ZERO);
        self.advance_idle(self.config.live.idle_advance)?;
        if self.last_checkpoint.elapsed() >= self.config.live.checkpoint_interval {
            self.checkpoint(consumer, None)?;
        }
        if self.last_publish.elapsed() >= PUBLISH_PERIOD {
            self.publish();
        }
        Ok(())
    }

    /// The correlators' counters and state sizes to the metrics.
    fn publish(&mut self) {
        self.last_publish = Instant::now();
        let metrics = &self.telemetry.metrics;
        let (mut groups, mut incidents, mut alerts) = (0, 0, 0);
        for p in self.partitions.values_mut() {
            metrics.publish_stats(p.correlator.stats(), &mut p.published);
            groups += p.correlator.open_groups();
            incidents += p.correlator.open_incidents();
            alerts += p.correlator.active_alerts();
        }
        metrics.set_state(groups, incidents, alerts);
    }

    /// Moves the clock of partitions that received nothing for
    /// `idle_after`, by the wall time since their head last moved. The
    /// move is recorded in the state topic before it acts, so a replay
    /// after a crash makes the same move at the same place.
    fn advance_idle(&mut self, idle_after: Duration) -> Result<(), StreamError> {
        let now = Instant::now();
        for (&partition, p) in &mut self.partitions {
            if !p.ticks.is_empty() {
                continue;
            }
            let Some(time) = p.clock.due(p.correlator.head(), now, idle_after) else { continue };
            // Everything sent so far must be acknowledged before a tick is
            // recorded after it; an idle partition has little in flight.
            flush(&self.output, self.config.live.shutdown_timeout, &self.telemetry)?;
            let tick = Tick { after_offset: p.next_offset - 1, time };
            self.state.record_tick(partition, tick, p.manifest_at)?;
            let mut sink =
                OutputSink::new(&self.output, &self.config.kafka, &self.telemetry, partition);
            p.correlator.advance_to(time, &mut sink);
            p.dirty = true;
            p.clock.moved(now);
            self.telemetry.tick();
        }
        Ok(())
    }

    /// Flush, snapshot, commit (the order the module doc explains), for
    /// `only` these partitions or all.
    fn checkpoint(
        &mut self,
        consumer: &BaseConsumer<Engine>,
        only: Option<&[i32]>,
    ) -> Result<(), StreamError> {
        let started = Instant::now();
        flush(&self.output, self.config.live.shutdown_timeout, &self.telemetry)?;
        let failures = match self.output.context().failures.lock() {
            Ok(mut f) => std::mem::take(&mut *f),
            Err(_) => vec!["delivery reports poisoned".to_owned()],
        };
        if let Some(first) = failures.first() {
            return Err(StreamError::Delivery(format!(
                "{first} ({} failed in all); nothing was committed past them",
                failures.len()
            )));
        }
        let mut commits = TopicPartitionList::new();
        let mut written = 0;
        for (&partition, p) in &mut self.partitions {
            if only.is_some_and(|o| !o.contains(&partition)) || !p.dirty {
                continue;
            }
            let snapshot = p.correlator.snapshot();
            let generation = p.generation + 1;
            let manifest =
                self.state.save(partition, &snapshot, p.next_offset, generation, p.manifest_at)?;
            p.generation = generation;
            p.manifest_at = Some(manifest);
            p.dirty = false;
            written += 1;
            commits
                .add_partition_offset(
                    &self.config.kafka.topics.alerts,
                    partition,
                    Offset::Offset(p.next_offset),
                )
                .map_err(|e| StreamError::client("commit", e))?;
        }
        if commits.count() > 0
            && let Err(e) = consumer.commit(&commits, CommitMode::Sync)
        {
            // The snapshot, not the group offset, is where recovery starts;
            // a failed commit only delays what lag monitoring sees.
            self.telemetry.client_error("commit", &e.to_string());
        }
        self.last_checkpoint = Instant::now();
        if written > 0 {
            self.telemetry.checkpoint(written, started.elapsed());
            self.telemetry.set_ready(true);
        }
        Ok(())
    }
}

impl Partition {
    /// Replays the recorded clock moves that come after `offset` or
    /// before it.
    fn replay_ticks_through(&mut self, offset: i64, sink: &mut OutputSink<'_>) {
        while let Some(tick) = self.ticks.front().copied() {
            if tick.after_offset > offset {
                break;
            }
            self.ticks.pop_front();
            self.correlator.advance_to(tick.time, sink);
            self.dirty = true;
        }
    }
}

/// Waits until everything sent is acknowledged, retrying through broker
/// outages (readiness is false meanwhile) up to `bound`.
fn flush(
    producer: &BaseProducer<OutputDeliveries>,
    bound: Duration,
    telemetry: &Telemetry,
) -> Result<(), StreamError> {
    let deadline = Instant::now() + bound;
    loop {
        match producer.flush(Duration::from_secs(1)) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() < deadline => {
                telemetry.set_ready(false);
                telemetry.client_error("flush", &e.to_string());
            }
            Err(e) => return Err(StreamError::client("flush", e)),
        }
    }
}

/// Sends a correlator's output: events to the incidents topic, dead letters
/// to theirs.
struct OutputSink<'a> {
    producer: &'a BaseProducer<OutputDeliveries>,
    kafka: &'a KafkaSettings,
    telemetry: &'a Telemetry,
    partition: i32,
}

impl<'a> OutputSink<'a> {
    fn new(
        producer: &'a BaseProducer<OutputDeliveries>,
        kafka: &'a KafkaSettings,
        telemetry: &'a Telemetry,
        partition: i32,
    ) -> OutputSink<'a> {
        OutputSink { producer, kafka, telemetry, partition }
    }

    fn send(&self, record: BaseRecord<'_, [u8], [u8]>) {
        let topic = record.topic;
        if let Err(e) = send_waiting(self.producer, record) {
            // Refused before it was queued (too large, say): recorded as a
            // failed delivery, so no commit passes it.
            let what = format!("{topic} partition {}: {e}", self.partition);
            self.producer.context().fail(what);
        }
    }

    /// The original record, untouched, with why it was refused and where
    /// it came from in headers.
    fn dead_letter(
        &self,
        message: &BorrowedMessage<'_>,
        reason: &'static str,
        text: &str,
        alert: Option<usize>,
    ) {
        let alert_text = alert.map(|i| i.to_string());
        let mut headers =
            dead_letter_headers(reason, message.topic(), message.partition(), message.offset())
                .insert(Header { key: "triage.error", value: Some(text) });
        if let Some(index) = &alert_text {
            headers = headers.insert(Header { key: "triage.alert.index", value: Some(index) });
        }
        let mut record: BaseRecord<'_, [u8], [u8]> =
            BaseRecord::to(&self.kafka.topics.dead_letters).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        record = record.payload(message.payload().unwrap_or_default());
        self.send(record);
        let _span = partition_span(self.partition);
        self.telemetry.dead_letter(message.offset(), reason, text);
    }
}

impl EventSink for OutputSink<'_> {
    fn incident(&mut self, event: IncidentEvent) {
        let payload = match serde_json::to_vec(&event) {
            Ok(p) => p,
            Err(e) => {
                let what = format!("event {} not serialized: {e}", event.event_id);
                self.producer.context().fail(what);
                return;
            }
        };
        let headers = OwnedHeaders::new()
            .insert(Header { key: "triage.event_id", value: Some(&event.event_id) })
            .insert(Header { key: "triage.schema", value: Some(&event.schema) });
        let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.kafka.topics.incidents)
            .key(event.incident_id.as_bytes())
            .payload(payload.as_slice())
            .timestamp(event.at.unix_nanos() / 1_000_000)
            .headers(headers);
        self.send(record);
        self.telemetry.incident_event(&event);
    }

    fn dropped(&mut self, alert: DroppedAlert) {
        let payload = serde_json::json!({
            "fingerprint": alert.fingerprint.to_string(),
            "reason": alert.reason,
        })
        .to_string();
        let headers = dead_letter_headers(
            alert.reason,
            &self.kafka.topics.alerts,
            self.partition,
            alert.position,
        );
        let record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.kafka.topics.dead_letters)
            .payload(payload.as_bytes())
            .headers(headers);
        self.send(record);
        let _span = partition_span(self.partition);
        self.telemetry.dropped_alert(alert.position, alert.reason, true);
    }
}

/// What every dead letter says: why, and where its record came from.
fn dead_letter_headers(
    reason: &str,
    topic: &str,
    partition: i32,
    offset: impl std::fmt::Display,
) -> OwnedHeaders {
    let partition = partition.to_string();
    let offset = offset.to_string();
    OwnedHeaders::new()
        .insert(Header { key: "triage.reason", value: Some(reason) })
        .insert(Header { key: "triage.source.topic", value: Some(topic) })
        .insert(Header { key: "triage.source.partition", value: Some(&partition) })
        .insert(Header { key: "triage.source.offset", value: Some(&offset) })
}

/// Carries the partition number into the log lines of the slow paths
/// (assignment, revoke, dead letters); the per-record path logs nothing.
fn partition_span(partition: i32) -> tracing::span::EnteredSpan {
    tracing::info_span!("partition", partition).entered()
}

/// The correlator's partition number (incident ids derive from it).
fn partition_number(partition: i32) -> u32 {
    u32::try_from(partition).unwrap_or_default()
}

pub(crate) fn base_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in &kafka.client {
        config.set(key, value);
    }
    config.set("bootstrap.servers", &kafka.brokers);
    // librdkafka filters by this level before our log callback sees a line.
    let debug = [&kafka.client, &kafka.consumer, &kafka.producer]
        .iter()
        .any(|properties| properties.contains_key("debug"));
    config.set_log_level(if debug { RDKafkaLogLevel::Debug } else { RDKafkaLogLevel::Warning });
    config
}

pub(crate) fn producer_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = base_config(kafka);
    // Retried for as long as it takes: an outage delays output, never
    // loses it. A checkpoint waits for these acknowledgements.
    config.set("message.timeout.ms", "0").set("linger.ms", "5");
    for (key, value) in &kafka.producer {
        config.set(key, value);
    }
    config.set("enable.idempotence", "true").set("acks", "all");
    config
}

fn consumer_config(kafka: &KafkaSettings) -> ClientConfig {
    let mut config = base_config(kafka);
    config.set("auto.offset.reset", "earliest");
    config.set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
    for (key, value) in &kafka.consumer {
        config.set(key, value);
    }
    config
        .set("group.id", &kafka.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    config
}

fn check_topics(
    producer: &BaseProducer<OutputDeliveries>,
    state: &StateStore,
    kafka: &KafkaSettings,
    timeout: Duration,
) -> Result<(), StreamError> {
    let alerts_partitions = topic_partitions(producer.client(), &kafka.topics.alerts, timeout)?;
    for topic in [&kafka.topics.incidents, &kafka.topics.dead_letters] {
        topic_partitions(producer.client(), topic, timeout)?;
    }
    let state_partitions = state.partitions()?;
    if state_partitions < alerts_partitions {
        return Err(StreamError::StatePartitions {
            state: kafka.topics.state.clone(),
            state_partitions,
            alerts: kafka.topics.alerts.clone(),
            alerts_partitions,
        });
    }
    Ok(())
}
