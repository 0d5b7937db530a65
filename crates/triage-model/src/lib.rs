//! Domain types shared by every layer of triage.
//!
//! This crate owns the vocabulary of the engine and nothing else: event-time
//! timestamps and durations ([`time`]), alerts as they arrive ([`alert`]),
//! and the incident events the engine emits ([`event`], schema
//! `triage.incident.v1`). It does no I/O and has no async; every type here is
//! plain data with deterministic formatting, so that the same input always
//! renders to the same bytes.

pub mod alert;
pub mod event;
pub mod hash;
pub mod time;

pub use alert::{AlertRecord, AlertSeverity, AlertStatus, Fingerprint, Labels};
pub use event::{
    AlertEntry, BlastRadius, EventKind, IncidentEvent, Priority, RootCause, SCHEMA_V1,
};
pub use time::{DurationSpec, TimeError, Timestamp};
