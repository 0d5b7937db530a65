//! The Kafka-mode responder: a consumer group of its own
//! (`responders.group_id`) on the incidents topic, so that paging never
//! slows correlation and correlation never waits for paging.
//!
//! # Nothing lost, nothing paged twice
//! 1. On assignment a partition is read from its beginning. Events below
//!    the group's committed offset were settled by an earlier run: they
//!    only rebuild the policy's memory of what was sent ([`Responders::remember`]),
//!    so a restart neither re-pages them nor forgets that an incident was
//!    paged (its update still re-pages on escalation; its resolve still
//!    goes out).
//! 2. Later events go to the responders' queues. When one is full, the
//!    notices that do not fit are held, in order, and the partitions are
//!    paused until they fit: the topic is the buffer, memory stays bounded,
//!    and the consumer keeps polling (so it stays in its group).
//! 3. An offset is committed only once every notice of the events before
//!    it was delivered, refused or given up (counted and logged), and as
//!    soon as it is (within a few milliseconds). A crash re-sends only
//!    what settled within the last commit round trip; PagerDuty folds a
//!    repeated trigger into the open alert by its `dedup_key`.
//!
//! On revoke, what is still out gets up to `live.shutdown_timeout` to
//! settle before the commit; held notices of revoked partitions are not
//! sent (the next owner reads them again from the commit), and the memory
//! of what was sent is dropped, to be rebuilt from the partitions read
//! again. A group without a committed offset pages what was written within
//! `responders.catch_up` (10m) before it joined and remembers the older
//! history without paging it: a first deployment does not page last
//! week's incidents, and a first run killed before its first commit loses
//! none of the pages it owed.
//!
//! Reading from the beginning keeps recovery independent of where the
//! committed offset falls inside a record batch, and the incidents topic is
//! compacted by incident id, so its size follows the incidents kept, not
//! the events sent.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};
use triage_config::Config;
use triage_model::IncidentEvent;

use crate::error::StreamError;
use crate::respond::Responders;
use crate::respond::deliver::{Job, Outcome};
use crate::service::{Control, base_config};
use crate::telemetry::Telemetry;

/// Longest time between two commits while offsets advance.
const COMMIT_PERIOD: Duration = Duration::from_secs(1);
/// Longest wait in one poll.
const POLL_WAIT: Duration = Duration::from_millis(100);
/// Longest wait in one poll while notices are out.
const SETTLE_WAIT: Duration = Duration::from_millis(5);

/// Per partition: where the earlier runs stopped, and what is unsettled.
#[derive(Default)]
struct Progress {
    /// Offsets below this were settled before this assignment.
    settled_before: i64,
    /// The next offset to read.
    next: i64,
    /// Offsets with notices still out, and how many.
    pending: BTreeMap<i64, usize>,
    /// The last offset committed.
    committed: i64,
}

impl Progress {
    /// Where a commit may go: the first unsettled offset, or the next one
    /// to read.
    fn commit_point(&self) -> i64 {
        self.pending.keys().next().copied().unwrap_or(self.next).max(self.settled_before)
    }
}

/// Shared by the polling loop and the rebalance callback (same thread).
struct Shared {
    topic: String,
    progress: BTreeMap<i32, Progress>,
    fatal: Option<StreamError>,
    /// Settlements reported by the delivery tasks: (partition, offset).
    settled: mpsc::Receiver<(i32, i64)>,
    /// Notices that did not fit their queue yet, in order, with the
    /// partition they came from.
    held: VecDeque<(i32, Job)>,
    paused: bool,
}

struct Context {
    shared: Mutex<Shared>,
    telemetry: Arc<Telemetry>,
    responders: Arc<Responders>,
    timeout: Duration,
    /// How far back a group without a committed offset starts paging.
    catch_up: Duration,
}

impl Context {
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// For the partitions of `committed` without a committed offset: the
    /// first offset written within `catch_up` of now (the broker's index
    /// by record time). Partitions with nothing that recent, or when the
    /// lookup fails, are left out: they start at their end.
    fn catch_up_offsets(
        &self,
        consumer: &BaseConsumer<Self>,
        committed: &TopicPartitionList,
        topic: &str,
    ) -> BTreeMap<i32, i64> {
        let mut found = BTreeMap::new();
        if self.catch_up.is_zero() {
            return found;
        }
        let since = std::time::SystemTime::now()
            .checked_sub(self.catch_up)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut times = TopicPartitionList::new();
        for element in committed.elements() {
            if !matches!(element.offset(), Offset::Offset(_)) {
                let _ =
                    times.add_partition_offset(topic, element.partition(), Offset::Offset(since));
            }
        }
        if times.count() == 0 {
            return found;
        }
        match consumer.offsets_for_times(times, self.timeout) {
            Ok(list) => {
                for element in list.elements() {
                    if let Offset::Offset(o) = element.offset() {
                        found.insert(element.partition(), o);
                    }
                }
            }
            Err(e) => self.telemetry.client_error("rebalance", &e.to_string()),
        }
        found
    }
}

impl ClientContext for Context {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        self.telemetry.client_log(level, facility, message);
    }
}

impl ConsumerContext for Context {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let mut shared = self.lock();
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let committed = consumer.committed_offsets(tpl.clone(), self.timeout);
                let committed = match committed {
                    Ok(list) => list,
                    Err(e) => {
                        shared.fatal.get_or_insert(StreamError::client("committed offsets", e));
                        return;
                    }
                };
                let topic = shared.topic.clone();
                let catch_up = self.catch_up_offsets(consumer, &committed, &topic);
                for element in committed.elements() {
                    let partition = element.partition();
                    let settled_before = match element.offset() {
                        Offset::Offset(o) => o,
                        // A new group pages what was written within the
                        // catch-up window (a first run killed before it
                        // committed loses nothing); older history is
                        // remembered, not sent.
                        _ => catch_up.get(&partition).copied().unwrap_or_else(|| {
                            consumer
                                .fetch_watermarks(&topic, partition, self.timeout)
                                .map_or(0, |(_, high)| high)
                        }),
                    };
                    shared.progress.insert(
                        partition,
                        Progress {
                            settled_before,
                            committed: settled_before,
                            ..Progress::default()
                        },
                    );
                    if let Err(e) = tpl.set_partition_offset(&topic, partition, Offset::Beginning) {
                        shared.fatal.get_or_insert(StreamError::client("assign", e));
                    }
                    self.telemetry.responder_partition(partition, settled_before);
                }
                if let Err(e) = consumer.assign(tpl) {
                    shared.fatal.get_or_insert(StreamError::client("assign", e));
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
                // Held notices are not sent: the next owner reads them
                // again from the commit, which stays below them.
                let before = shared.held.len();
                shared.held.retain(|(partition, _)| !revoked.contains(partition));
                let dropped = before - shared.held.len();
                let deadline = Instant::now() + self.timeout;
                loop {
                    let _ = settle(&mut shared);
                    let pending: usize = revoked
                        .iter()
                        .filter_map(|p| shared.progress.get(p))
                        .map(|progress| progress.pending.values().sum::<usize>())
                        .sum();
                    // What is queued or in flight has had its chance.
                    if pending <= dropped || Instant::now() > deadline {
                        break;
                    }
                    drop(shared);
                    std::thread::sleep(SETTLE_WAIT);
                    shared = self.lock();
                }
                commit(consumer, &mut shared, &self.telemetry);
                for partition in &revoked {
                    shared.progress.remove(partition);
                }
                shared.paused = false;
                self.responders.forget();
                let _ = consumer.unassign();
            }
            _ => {
                let _ = consumer.unassign();
            }
        }
    }
}

fn commit(consumer: &BaseConsumer<Context>, shared: &mut Shared, telemetry: &Telemetry) {
    let mut list = TopicPartitionList::new();
    let topic = shared.topic.clone();
    for (&partition, progress) in shared.progress.iter_mut() {
        let point = progress.commit_point();
        if point > progress.committed
            && list.add_partition_offset(&topic, partition, Offset::Offset(point)).is_ok()
        {
            progress.committed = point;
        }
    }
    if list.count() > 0
        && let Err(e) = consumer.commit(&list, CommitMode::Sync)
    {
        telemetry.client_error("commit", &e.to_string());
    }
}

/// Runs the Kafka responder on its own thread until `control.shutdown`;
/// `None` when no responder is configured.
pub fn start_kafka_responders(
    config: &Config,
    control: &Control,
) -> Result<Option<std::thread::JoinHandle<Result<(), StreamError>>>, StreamError> {
    if config.responders.targets.is_empty() {
        return Ok(None);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("triage-responders")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| StreamError::Responder(format!("cannot start the HTTP runtime: {e}")))?;
    let telemetry = control.telemetry.clone();
    let Some(responders) =
        Responders::start(&config.responders, telemetry.clone(), runtime.handle())?
    else {
        return Ok(None);
    };
    let kafka = &config.kafka;
    let mut client = base_config(kafka);
    client.set("auto.offset.reset", "earliest");
    for (key, value) in &kafka.consumer {
        client.set(key, value);
    }
    client
        .set("group.id", &config.responders.group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let (settled_tx, settled_rx) = mpsc::channel::<(i32, i64)>();
    let context = Context {
        shared: Mutex::new(Shared {
            topic: kafka.topics.incidents.clone(),
            progress: BTreeMap::new(),
            fatal: None,
            settled: settled_rx,
            held: VecDeque::new(),
            paused: false,
        }),
        telemetry: telemetry.clone(),
        responders: responders.clone(),
        timeout: config.live.shutdown_timeout,
        catch_up: config.responders.catch_up,
    };
    let consumer: BaseConsumer<Context> = client
        .create_with_context(context)
        .map_err(|e| StreamError::client("responder consumer", e))?;
    consumer
        .subscribe(&[kafka.topics.incidents.as_str()])
        .map_err(|e| StreamError::client("subscribe", e))?;
    let shutdown = control.shutdown.clone();
    let bound = config.live.shutdown_timeout;
    std::thread::Builder::new()
        .name("triage-responder-consumer".into())
        .spawn(move || {
            let _span = tracing::info_span!("responders").entered();
            let result = consume(&consumer, &responders, &settled_tx, &shutdown, bound);
            runtime.block_on(responders.drain(bound));
            // What drained is settled: commit it before leaving.
            let mut shared = consumer.context().lock();
            let _ = settle(&mut shared);
            commit(&consumer, &mut shared, &consumer.context().telemetry);
            drop(shared);
            consumer.unsubscribe();
            result
        })
        .map(Some)
        .map_err(|e| StreamError::Responder(format!("cannot start the responder thread: {e}")))
}

fn consume(
    consumer: &BaseConsumer<Context>,
    responders: &Arc<Responders>,
    settled_tx: &mpsc::Sender<(i32, i64)>,
    shutdown: &std::sync::atomic::AtomicBool,
    bound: Duration,
) -> Result<(), StreamError> {
    let telemetry = consumer.context().telemetry.clone();
    let mut last_commit = Instant::now();
    let mut waiting = false;
    while !shutdown.load(Ordering::Relaxed) {
        // While notices are out, look for their settlement often: the
        // commit follows it within this wait.
        let wait = if waiting { SETTLE_WAIT } else { POLL_WAIT };
        if let Some(result) = consumer.poll(wait) {
            match result {
                Ok(message) => {
                    let payload = message.payload().unwrap_or_default();
                    let event = serde_json::from_slice::<IncidentEvent>(payload)
                        .map(Arc::new)
                        .map_err(|e| e.to_string());
                    let mut shared = consumer.context().lock();
                    take(&mut shared, responders, settled_tx, &telemetry, &message, event);
                }
                Err(e) => telemetry.client_error("consume", &e.to_string()),
            }
        }
        let mut shared = consumer.context().lock();
        if let Some(e) = shared.fatal.take() {
            return Err(e);
        }
        offer_held(consumer, &mut shared, responders);
        // Committed as soon as something settled, so that a crash re-sends
        // at most what was in flight; the period covers offsets that
        // advanced without notices.
        if settle(&mut shared) > 0 || last_commit.elapsed() >= COMMIT_PERIOD {
            commit(consumer, &mut shared, &telemetry);
            last_commit = Instant::now();
        }
        waiting = shared.progress.values().any(|p| !p.pending.is_empty());
    }
    // Give what is queued its chance before the final commit.
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        let mut shared = consumer.context().lock();
        offer_held(consumer, &mut shared, responders);
        let _ = settle(&mut shared);
        if shared.progress.values().all(|p| p.pending.is_empty()) {
            break;
        }
        drop(shared);
        std::thread::sleep(SETTLE_WAIT);
    }
    Ok(())
}

/// One incident event read: remembered when an earlier run settled it,
/// else decided and queued (or held when its queue is full).
fn take(
    shared: &mut Shared,
    responders: &Responders,
    settled_tx: &mpsc::Sender<(i32, i64)>,
    telemetry: &Telemetry,
    message: &rdkafka::message::BorrowedMessage<'_>,
    event: Result<Arc<IncidentEvent>, String>,
) {
    let (partition, offset) = (message.partition(), message.offset());
    let Some(progress) = shared.progress.get_mut(&partition) else { return };
    progress.next = offset + 1;
    let event = match event {
        Ok(event) => event,
        Err(e) => {
            telemetry.responder_unreadable(partition, offset, &e);
            return;
        }
    };
    if offset < progress.settled_before {
        responders.remember(&event);
        return;
    }
    let notices = responders.notices(&event);
    if notices.is_empty() {
        return;
    }
    *progress.pending.entry(offset).or_default() += notices.len();
    for notice in notices {
        let sender = settled_tx.clone();
        let done: Box<dyn FnOnce(Outcome) + Send> = Box::new(move |_| {
            let _ = sender.send((partition, offset));
        });
        let job = Job { notice, done: Some(done) };
        // Order per responder: once something is held, the rest waits too.
        if !shared.held.is_empty() {
            shared.held.push_back((partition, job));
            continue;
        }
        if let Err(job) = responders.try_queue(job) {
            shared.held.push_back((partition, job));
        }
    }
}

/// Offers held notices again, in order; pauses the partitions while any
/// are held, resumes once all fit.
fn offer_held(consumer: &BaseConsumer<Context>, shared: &mut Shared, responders: &Responders) {
    while let Some((partition, job)) = shared.held.pop_front() {
        if let Err(job) = responders.try_queue(job) {
            shared.held.push_front((partition, job));
            break;
        }
    }
    let stalled = !shared.held.is_empty();
    if stalled != shared.paused
        && let Ok(assignment) = consumer.assignment()
    {
        let switched =
            if stalled { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
        match switched {
            Ok(()) => {
                shared.paused = stalled;
                consumer.context().telemetry.responders_paused(stalled, shared.held.len());
            }
            Err(e) => consumer.context().telemetry.client_error("consume", &e.to_string()),
        }
    }
}

/// Counts settled notices off their offsets; returns how many.
fn settle(shared: &mut Shared) -> usize {
    let mut count = 0;
    while let Ok((partition, offset)) = shared.settled.try_recv() {
        count += 1;
        let Some(progress) = shared.progress.get_mut(&partition) else { continue };
        if let Some(left) = progress.pending.get_mut(&offset) {
            *left = left.saturating_sub(1);
            if *left == 0 {
                progress.pending.remove(&offset);
            }
        }
    }
    count
}
