//! The correlation engine: from alert observations to incident events.
//!
//! A [`Correlator`] deduplicates alerts by fingerprint and occurrence,
//! groups them by time window, service dependency graph and a label rule
//! (the [`linker`] seam, where content clustering plugs in), declares groups
//! that meet the [`DeclarePolicy`] as incidents, scores their blast radius
//! and root-cause candidates, suggests a priority, and resolves them once
//! quiet. It is a pure state machine driven by event time: no clocks, no
//! I/O, no randomness; the same observations give the same events, byte for
//! byte, and its state can be snapshotted and restored exactly.
//!
//! See `docs/correlation.md` for the model in prose.

mod analysis;
pub mod content;
mod engine;
pub mod linker;
pub mod settings;
mod snapshot;
mod state;
mod stats;
#[cfg(test)]
mod tests;

pub use analysis::human_duration;
pub use engine::{CollectingSink, Correlator, DroppedAlert, EventSink, incident_id};
pub use settings::{
    DeclarePolicy, FlapPolicy, Grouping, Level, Limits, Settings, SeverityPolicy, UpdatePolicy,
};
pub use snapshot::{RestoreError, SNAPSHOT_FORMAT, Snapshot};
pub use state::{GroupId, JoinReason, ServiceRef};
pub use stats::Stats;
