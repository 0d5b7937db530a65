//! Standalone `triage run`, the embedded default when no Kafka is
//! configured: the receiver feeds one in-process correlator, incident
//! events go out as JSON lines (stdout or a file), rejected alerts to a
//! rejects file, and the state to `live.state_file` every
//! `checkpoint_interval` and at shutdown.
//!
//! Requests are applied one at a time, in the order they are answered,
//! under one lock; an answer of 200 means the alerts are in the correlator.
//! A crash loses what arrived since the last state save (Alertmanager
//! re-sends firing alerts on `repeat_interval`, so they come back); where
//! that is not good enough, run on Kafka, which replays instead.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use triage_config::Config;
use triage_correlate::{Correlator, DroppedAlert, EventSink, Snapshot, Stats};
use triage_formats::decode_line;
use triage_model::{IncidentEvent, Timestamp};

use crate::clock::IdleClock;
use crate::error::StreamError;
use crate::receiver::{Endpoint, Intake, Receiver, Reply, http_runtime, reject_codes, triage_body};
use crate::respond::Responders;
use crate::service::Control;
use crate::telemetry::{Source, Telemetry};

/// How often idle clocks and due state saves are looked at.
const HOUSEKEEPING_PERIOD: Duration = Duration::from_millis(100);
/// Bytes of a rejected body kept in the rejects file.
const REJECT_RECORD_BYTES: usize = 64 * 1024;
/// Version of the state file layout.
const STATE_FORMAT: u32 = 1;

/// Where standalone output goes.
pub struct Outputs {
    /// Incident events, one JSON object per line.
    pub events: Box<dyn Write + Send>,
    /// Rejected requests and alerts with their reason, when kept.
    pub rejects: Option<Box<dyn Write + Send>>,
}

/// The state file: the correlator and the request count it has seen.
#[derive(Serialize, Deserialize)]
struct StateFile {
    format: u32,
    next_request: u64,
    snapshot: Snapshot,
    /// What the responders were told, so a restart pages nothing twice.
    #[serde(default)]
    responders: Vec<crate::respond::policy::Remembered>,
}

/// The in-process engine behind the receiver.
pub struct Standalone {
    inner: Mutex<Inner>,
    config: Arc<Config>,
    telemetry: Arc<Telemetry>,
    /// Where events are paged, when responders are configured.
    responders: Option<Arc<Responders>>,
}

struct Inner {
    correlator: Correlator,
    clock: IdleClock,
    /// Requests are numbered; the number is an alert's source position.
    next_request: u64,
    outputs: Outputs,
    /// Changed since the last save.
    dirty: bool,
    last_save: Instant,
    /// The first output failure; the service stops on it.
    failure: Option<io::Error>,
    /// The correlator's counters as last published to the metrics.
    published: Stats,
}

/// How a standalone run ended.
#[derive(Clone, Debug)]
pub struct StandaloneSummary {
    /// Requests that carried alerts to the correlator.
    pub requests: u64,
    /// The correlator's counters.
    pub stats: Stats,
    /// Where the state was left, if anywhere.
    pub state_file: Option<PathBuf>,
}

impl Standalone {
    /// Restores from `live.state_file` when it exists, else starts empty.
    pub fn open(
        config: Arc<Config>,
        telemetry: Arc<Telemetry>,
        outputs: Outputs,
        responders: Option<Arc<Responders>>,
    ) -> Result<Standalone, StreamError> {
        let settings = config.settings.clone();
        let topology = config.topology.clone();
        let restored = match &config.live.state_file {
            Some(path) => read_state(path)?,
            None => None,
        };
        let (correlator, next_request) = match restored {
            Some(state) => {
                let correlator = Correlator::restore(settings, topology, state.snapshot)
                    .map_err(|e| StreamError::Restore { partition: 0, message: e.to_string() })?;
                if let Some(responders) = &responders {
                    responders.recall(state.responders);
                }
                (correlator, state.next_request)
            }
            None => (Correlator::new(settings, topology, 0), 0),
        };
        telemetry.standalone_started(config.live.state_file.as_deref(), next_request);
        let graph = config.topology.stats();
        telemetry.metrics.set_topology(graph.services, graph.edges);
        let now = Instant::now();
        let inner = Inner {
            clock: IdleClock::new(correlator.head(), now),
            correlator,
            next_request,
            outputs,
            dirty: false,
            last_save: now,
            failure: None,
            published: Stats::default(),
        };
        Ok(Standalone { inner: Mutex::new(inner), config, telemetry, responders })
    }

    /// Where the correlator's output goes: the events file, the rejects
    /// file, the responders.
    fn sink<'a>(
        &'a self,
        outputs: &'a mut Outputs,
        failure: &'a mut Option<io::Error>,
    ) -> FileSink<'a> {
        FileSink {
            outputs,
            failure,
            telemetry: &self.telemetry,
            responders: self.responders.as_deref(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the correlator half
        // updated in a way later requests would notice more than a lost
        // request; keep serving rather than fail every request after it.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Decodes one request body and feeds its alerts to the correlator.
    pub fn accept(&self, body: &[u8], endpoint: Endpoint, received: Timestamp) -> Reply {
        let mut inner = self.lock();
        if inner.failure.is_some() || !self.telemetry.ready() {
            return Reply::unavailable("stopping", "triage is stopping; retry shortly");
        }
        let request = inner.next_request;
        inner.next_request += 1;
        let started = Instant::now();
        let source = match endpoint {
            Endpoint::Webhook => Source::Webhook,
            Endpoint::ApiV2 => Source::ApiV2,
        };
        let decoded = decode_line(body, &self.config.input.decode, Some(received));
        let kept = inner.outputs.rejects.is_some();
        for code in reject_codes(&decoded) {
            self.telemetry.rejected(code, kept);
        }
        let (decoded, rejected) = match triage_body(decoded) {
            Ok(sorted) => sorted,
            Err(reply) => {
                match reply.body.get("rejected").and_then(Value::as_array) {
                    Some(rows) => {
                        for row in rows {
                            inner.keep_reject(request, endpoint, body, row);
                        }
                    }
                    None => inner.keep_reject(request, endpoint, body, &reply.body),
                }
                self.telemetry.record(source, 0, started.elapsed());
                return reply;
            }
        };
        for row in &rejected {
            inner.keep_reject(request, endpoint, body, row);
        }
        let inner = &mut *inner;
        let mut sink = self.sink(&mut inner.outputs, &mut inner.failure);
        for alert in &decoded.alerts {
            inner.correlator.ingest(alert, request, &mut sink);
        }
        sink.flush();
        inner.dirty = true;
        inner.clock.observed(inner.correlator.head(), Instant::now());
        self.telemetry.record(source, decoded.alerts.len() as u64, started.elapsed());
        match &inner.failure {
            Some(e) => Reply::unavailable("output", &format!("events could not be written: {e}")),
            None => Reply::accepted(decoded.alerts.len(), rejected),
        }
    }

    /// Moves an idle clock, saves the state when due; an error stops the
    /// service.
    pub fn housekeeping(&self) -> Result<(), StreamError> {
        let mut inner = self.lock();
        let now = Instant::now();
        let head = inner.correlator.head();
        if let Some(time) = inner.clock.due(head, now, self.config.live.idle_advance) {
            let inner = &mut *inner;
            let mut sink = self.sink(&mut inner.outputs, &mut inner.failure);
            inner.correlator.advance_to(time, &mut sink);
            sink.flush();
            inner.clock.moved(now);
            inner.dirty = true;
            self.telemetry.tick();
        }
        if let Some(e) = &inner.failure {
            // Kept, so that no later save records state whose events
            // were not written.
            return Err(StreamError::Output(io::Error::new(e.kind(), e.to_string())));
        }
        let inner_ref = &mut *inner;
        let metrics = &self.telemetry.metrics;
        metrics.publish_stats(inner_ref.correlator.stats(), &mut inner_ref.published);
        let correlator = &inner_ref.correlator;
        metrics.set_state(
            correlator.open_groups(),
            correlator.open_incidents(),
            correlator.active_alerts(),
        );
        if inner.last_save.elapsed() >= self.config.live.checkpoint_interval {
            self.save(&mut inner)?;
        }
        Ok(())
    }

    /// Stops taking requests and saves the state.
    pub fn close(&self) -> Result<StandaloneSummary, StreamError> {
        self.telemetry.set_ready(false);
        let mut inner = self.lock();
        if let Err(e) = inner.outputs.events.flush() {
            return Err(StreamError::Output(e));
        }
        self.save(&mut inner)?;
        Ok(StandaloneSummary {
            requests: inner.next_request,
            stats: inner.correlator.stats().clone(),
            state_file: self.config.live.state_file.clone(),
        })
    }

    fn save(&self, inner: &mut Inner) -> Result<(), StreamError> {
        inner.last_save = Instant::now();
        let Some(path) = &self.config.live.state_file else { return Ok(()) };
        // After a failed write the correlator holds alerts whose events are
        // lost; the last good save lets a restart take them again.
        if !inner.dirty || inner.failure.is_some() {
            return Ok(());
        }
        let started = Instant::now();
        let state = StateFile {
            format: STATE_FORMAT,
            next_request: inner.next_request,
            snapshot: inner.correlator.snapshot(),
            responders: self.responders.as_ref().map(|r| r.memory()).unwrap_or_default(),
        };
        let bytes = serde_json::to_vec(&state).map_err(StreamError::Snapshot)?;
        write_atomically(path, &bytes)
            .map_err(|e| StreamError::StateFile { path: path.clone(), message: e.to_string() })?;
        inner.dirty = false;
        self.telemetry.checkpoint(1, started.elapsed());
        Ok(())
    }
}

impl Inner {
    /// Keeps a rejected body (or alert of it) with its reason; a failure
    /// to write stops the service, since the reject would be lost.
    fn keep_reject(&mut self, request: u64, endpoint: Endpoint, body: &[u8], why: &Value) {
        let Some(rejects) = self.outputs.rejects.as_mut() else { return };
        let kept = &body[..body.len().min(REJECT_RECORD_BYTES)];
        let row = json!({
            "request": request,
            "endpoint": endpoint.path(),
            "alert": why.get("index"),
            "reason": why.get("reason"),
            "message": why.get("error"),
            "record": String::from_utf8_lossy(kept),
            "record_truncated": body.len() > kept.len(),
        });
        let written = writeln!(rejects, "{row}").and_then(|()| rejects.flush());
        if let Err(e) = written {
            self.failure.get_or_insert(e);
        }
    }
}

/// Writes events as JSON lines; keeps the first write error.
struct FileSink<'a> {
    outputs: &'a mut Outputs,
    failure: &'a mut Option<io::Error>,
    telemetry: &'a Telemetry,
    responders: Option<&'a Responders>,
}

impl FileSink<'_> {
    fn flush(&mut self) {
        if let Err(e) = self.outputs.events.flush() {
            self.failure.get_or_insert(e);
        }
    }
}

impl EventSink for FileSink<'_> {
    fn incident(&mut self, event: IncidentEvent) {
        let written = serde_json::to_writer(&mut self.outputs.events, &event)
            .map_err(io::Error::from)
            .and_then(|()| self.outputs.events.write_all(b"\n"));
        match written {
            Ok(()) => self.telemetry.incident_event(&event),
            Err(e) => {
                self.failure.get_or_insert(e);
            }
        }
        if let Some(responders) = self.responders {
            responders.offer(event);
        }
    }

    fn dropped(&mut self, alert: DroppedAlert) {
        let kept = self.outputs.rejects.is_some();
        self.telemetry.dropped_alert(alert.position, alert.reason, kept);
        let Some(rejects) = self.outputs.rejects.as_mut() else { return };
        let row = json!({
            "request": alert.position,
            "reason": alert.reason,
            "message": format!("alert {} dropped: {}", alert.fingerprint, alert.reason),
        });
        if let Err(e) = writeln!(rejects, "{row}").and_then(|()| rejects.flush()) {
            self.failure.get_or_insert(e);
        }
    }
}

fn read_state(path: &Path) -> Result<Option<StateFile>, StreamError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StreamError::StateFile { path: path.into(), message: e.to_string() });
        }
    };
    let state: StateFile = serde_json::from_slice(&bytes).map_err(|e| StreamError::StateFile {
        path: path.into(),
        message: format!("not a triage state file ({e}); move it away to start empty"),
    })?;
    if state.format != STATE_FORMAT {
        return Err(StreamError::StateFile {
            path: path.into(),
            message: format!("state format {} is not {STATE_FORMAT}", state.format),
        });
    }
    Ok(Some(state))
}

/// Writes beside the file and renames over it, so a crash mid-write
/// leaves the previous state whole.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let mut file = File::create(&partial)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&partial, path)
}

/// Runs standalone until `control.shutdown` is set: the receiver on
/// `receiver.listen`, housekeeping beside it, then a last state save.
pub fn run_standalone(
    config: Arc<Config>,
    control: &Control,
    outputs: Outputs,
) -> Result<StandaloneSummary, StreamError> {
    let _span = tracing::info_span!("standalone").entered();
    if config.receiver.listen.is_empty() {
        return Err(StreamError::Receiver(
            "receiver.listen is empty: standalone triage takes alerts only over HTTP".into(),
        ));
    }
    let runtime = http_runtime()?;
    let responders =
        Responders::start(&config.responders, control.telemetry.clone(), runtime.handle())?;
    let engine = Arc::new(Standalone::open(
        config.clone(),
        control.telemetry.clone(),
        outputs,
        responders.clone(),
    )?);
    let receiver = Receiver::bind(
        &runtime,
        &config.receiver,
        Intake::Standalone(engine.clone()),
        control.telemetry.clone(),
    )?;
    control.telemetry.set_ready(true);
    let shutdown = control.shutdown.clone();
    let served = runtime.block_on(async {
        let ticking = engine.clone();
        let stop = shutdown.clone();
        let housekeeping = tokio::spawn(async move {
            let mut every = tokio::time::interval(HOUSEKEEPING_PERIOD);
            while !stop.load(Ordering::Relaxed) {
                every.tick().await;
                if let Err(e) = ticking.housekeeping() {
                    // Stop serving: the engine can no longer keep what it
                    // is sent.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(())
        });
        let served = receiver.serve(shutdown).await;
        let housekept = housekeeping
            .await
            .unwrap_or_else(|e| Err(StreamError::Receiver(format!("housekeeping stopped: {e}"))));
        served.and(housekept)
    });
    let deadline = Instant::now() + config.live.shutdown_timeout;
    let closed = engine.close();
    if let Some(responders) = &responders {
        runtime.block_on(responders.drain(config.live.shutdown_timeout));
    }
    served?;
    let summary = closed?;
    if Instant::now() > deadline {
        return Err(StreamError::ShutdownTimeout(config.live.shutdown_timeout));
    }
    Ok(summary)
}
