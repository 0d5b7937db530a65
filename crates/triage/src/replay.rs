//! `triage replay`: runs the engine over JSON lines and writes incident
//! events as JSON lines.
//!
//! Bad lines and bad alerts are reported with their line number and reason,
//! counted by reason, optionally kept whole in a rejects file, and skipped;
//! with `strict` the first one stops the run. At the end of the input the
//! correlator is finished (buffered alerts applied, coalesced updates sent)
//! or, with `drain`, run until no timer is left.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, BufRead, Write};

use serde::Serialize;
use triage_config::Config;
use triage_correlate::{Correlator, DroppedAlert, EventSink, Stats};
use triage_formats::{DecodeError, RejectReason, decode_line};
use triage_model::{IncidentEvent, Priority};

use crate::input::{Line, LineReader};

/// Rejections printed to stderr one by one; after that only counted.
const REJECTIONS_LOGGED: u64 = 20;
/// Bytes of a rejected record kept in the rejects file.
const REJECT_RECORD_BYTES: usize = 64 * 1024;

/// How to run.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplayOptions {
    /// Stop at the first rejected line or alert.
    pub strict: bool,
    /// Fire every timer at the end, resolving what has gone quiet.
    pub drain: bool,
    /// Partition number, which incident ids derive from.
    pub partition: u32,
}

/// What the run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReplayReport {
    /// Input lines read.
    pub lines: u64,
    /// Alert records decoded.
    pub records: u64,
    /// Lines or alerts rejected, in total.
    pub rejected: u64,
    /// Rejections by reason code.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// Incident events written.
    pub events: u64,
    /// The correlator's counters.
    pub engine: Stats,
    /// Noise reduction, `1 - incidents / unique alerts`.
    pub noise_reduction: f64,
}

/// Why a replay stopped.
#[derive(Debug)]
pub enum ReplayError {
    /// Reading input or writing output failed.
    Io(io::Error),
    /// `strict` and a record was rejected.
    Rejected {
        /// Line number.
        line: u64,
        /// Why.
        error: DecodeError,
    },
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::Io(e) => write!(f, "{e}"),
            ReplayError::Rejected { line, error } => write!(f, "line {line}: {error}"),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<io::Error> for ReplayError {
    fn from(e: io::Error) -> Self {
        ReplayError::Io(e)
    }
}

/// Writes events as JSON lines and keeps the first write error.
struct JsonLinesSink<'a, W: Write> {
    out: W,
    rejects: Option<&'a mut dyn Write>,
    error: Option<io::Error>,
    events: u64,
}

impl<W: Write> EventSink for JsonLinesSink<'_, W> {
    fn incident(&mut self, event: IncidentEvent) {
        if self.error.is_some() {
            return;
        }
        let result = serde_json::to_writer(&mut self.out, &event)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"));
        match result {
            Ok(()) => self.events += 1,
            Err(e) => self.error = Some(e),
        }
    }

    fn dropped(&mut self, alert: DroppedAlert) {
        let message = format!("alert {} dropped: {}", alert.fingerprint, alert.reason);
        if let Some(rejects) = self.rejects.as_mut() {
            let row = serde_json::json!({
                "line": alert.position, "reason": alert.reason, "message": message,
            });
            if let Err(e) = writeln!(rejects, "{row}") {
                self.error.get_or_insert(e);
            }
        }
    }
}

/// Runs the engine over `input`, writing events to `out` and rejected
/// records to `rejects`; rejections also go to `log` (stderr).
pub fn replay(
    config: &Config,
    input: impl BufRead,
    out: impl Write,
    rejects: Option<&mut dyn Write>,
    log: &mut dyn Write,
    options: ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let mut correlator =
        Correlator::new(config.settings.clone(), config.topology.clone(), options.partition);
    let mut sink = JsonLinesSink { out: io::BufWriter::new(out), rejects, error: None, events: 0 };
    let mut report = ReplayReport::default();
    let mut reader = LineReader::new(input, config.input.max_line_bytes);
    while let Some((number, line)) = reader.next_line()? {
        report.lines += 1;
        let bytes = match line {
            Line::Text(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Line::Text(bytes) => bytes,
            Line::TooLong(len) => {
                let error = DecodeError {
                    reason: RejectReason::LineTooLong,
                    message: format!("line is {len} bytes, more than input.max_line_bytes"),
                };
                reject(&mut report, &mut sink, log, number, None, &error, b"")?;
                if options.strict {
                    return Err(ReplayError::Rejected { line: number, error });
                }
                continue;
            }
        };
        match decode_line(bytes, &config.input.decode, correlator.head()) {
            Ok(decoded) => {
                for rejected in &decoded.rejected {
                    reject(
                        &mut report,
                        &mut sink,
                        log,
                        number,
                        Some(rejected.index),
                        &rejected.error,
                        bytes,
                    )?;
                    if options.strict {
                        return Err(ReplayError::Rejected {
                            line: number,
                            error: rejected.error.clone(),
                        });
                    }
                }
                for alert in &decoded.alerts {
                    report.records += 1;
                    correlator.ingest(alert, number, &mut sink);
                }
            }
            Err(error) => {
                reject(&mut report, &mut sink, log, number, None, &error, bytes)?;
                if options.strict {
                    return Err(ReplayError::Rejected { line: number, error });
                }
            }
        }
        if let Some(e) = sink.error.take() {
            return Err(e.into());
        }
    }
    if options.drain {
        correlator.drain(&mut sink);
    } else {
        correlator.finish(&mut sink);
    }
    if let Some(e) = sink.error.take() {
        return Err(e.into());
    }
    sink.out.flush()?;
    report.events = sink.events;
    report.engine = correlator.stats().clone();
    report.noise_reduction = report.engine.noise_reduction();
    Ok(report)
}

fn reject<W: Write>(
    report: &mut ReplayReport,
    sink: &mut JsonLinesSink<'_, W>,
    log: &mut dyn Write,
    line: u64,
    alert: Option<usize>,
    error: &DecodeError,
    record: &[u8],
) -> io::Result<()> {
    report.rejected += 1;
    *report.rejected_by_reason.entry(error.reason.code()).or_default() += 1;
    let place = match alert {
        Some(i) => format!("line {line}, alert {i}"),
        None => format!("line {line}"),
    };
    if report.rejected <= REJECTIONS_LOGGED {
        writeln!(log, "rejected {place}: {error}")?;
    } else if report.rejected == REJECTIONS_LOGGED + 1 {
        writeln!(log, "more rejections follow; counted in the summary, not logged")?;
    }
    if let Some(rejects) = sink.rejects.as_mut() {
        let kept = &record[..record.len().min(REJECT_RECORD_BYTES)];
        let row = serde_json::json!({
            "line": line,
            "alert": alert,
            "reason": error.reason.code(),
            "message": error.message,
            "record": String::from_utf8_lossy(kept),
            "record_truncated": record.len() > kept.len(),
        });
        writeln!(rejects, "{row}")?;
    }
    Ok(())
}

/// The end-of-run summary for people.
pub fn summary_text(report: &ReplayReport) -> String {
    let s = &report.engine;
    let mut out = String::new();
    let reasons: Vec<String> =
        report.rejected_by_reason.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let reasons =
        if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) };
    let _ = writeln!(
        out,
        "read {} lines, {} alert records; rejected {}{reasons}",
        report.lines, report.records, report.rejected
    );
    let _ = writeln!(
        out,
        "alerts: {} unique, {} duplicates, {} stale, {} late, {} re-fired, {} flapping, {} dropped",
        s.unique_alerts, s.duplicates, s.stale, s.late, s.refired, s.flapping, s.dropped_capacity
    );
    let _ = writeln!(
        out,
        "groups: {} opened, {} merged; {} ended undeclared holding {} alerts (noise suppressed)",
        s.groups_opened, s.groups_merged, s.noise_groups, s.noise_alerts
    );
    let by_severity: Vec<String> = Priority::ALL
        .iter()
        .map(|p| format!("{p} {}", s.incidents_by_severity[p.index()]))
        .collect();
    let _ = writeln!(
        out,
        "incidents: {} ({}); {} updates, {} resolved, {} merged",
        s.distinct_incidents(),
        by_severity.join(", "),
        s.incidents_updated,
        s.incidents_resolved,
        s.incidents_merged
    );
    let _ = writeln!(
        out,
        "noise reduction: {:.1}% ({} alerts -> {} incidents)",
        report.noise_reduction * 100.0,
        s.unique_alerts,
        s.distinct_incidents()
    );
    out
}
