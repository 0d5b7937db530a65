//! The incident event, schema `triage.incident.v1`: what the engine emits
//! when it declares, updates or resolves an incident.
//!
//! Each event is a full snapshot of the incident at that version, so a
//! consumer that keeps only the last event per `incident_id` (a compacted
//! Kafka topic, say) has the whole incident. Field order is fixed and every
//! list is sorted deterministically, so the same input yields the same bytes.
//! The schema is documented field by field in `docs/event-schema.md`.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::alert::{AlertSeverity, AlertStatus, Fingerprint};
use crate::time::Timestamp;

/// The schema name carried in every event.
pub const SCHEMA_V1: &str = "triage.incident.v1";

/// Suggested priority of an incident, P1 (most urgent) to P4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Priority {
    /// Widespread or user-facing outage: page immediately.
    P1,
    /// Major degradation of an important service.
    P2,
    /// Limited impact; handle within working hours.
    P3,
    /// Minor; track it.
    P4,
}

impl Priority {
    /// All priorities, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::P1, Priority::P2, Priority::P3, Priority::P4];

    /// Index 0 for P1 .. 3 for P4.
    pub fn index(self) -> usize {
        self as usize
    }

    /// `true` when `self` is more urgent than `other`.
    pub fn is_above(self, other: Priority) -> bool {
        (self as u8) < (other as u8)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "P{}", *self as u8 + 1)
    }
}

/// What happened to the incident.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The incident exists from now on (version 1).
    Declared,
    /// Something responders care about changed: severity, services, root
    /// cause, membership or alert states.
    Updated,
    /// All its alerts resolved and stayed quiet, or it merged into another
    /// incident (`merged_into`).
    Resolved,
}

/// A root-cause candidate: an alerting service none of whose dependencies
/// is alerting, or, after those, an alternative (its reason says so).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootCause {
    /// The service.
    pub service: Arc<str>,
    /// Share of the incident's alerting services this candidate explains
    /// (itself and those that depend on it), 0..1, rounded to 3 places.
    pub score: f64,
    /// Why it is a candidate, for a person.
    pub reason: String,
}

/// Who and what is affected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlastRadius {
    /// Weighted impact: the sum over impacted services of the tier weight,
    /// multiplied for user-facing services.
    pub score: u64,
    /// Alerting services plus every service that transitively depends on a
    /// root-cause candidate, sorted by name.
    pub impacted: Vec<Arc<str>>,
    /// The user-facing subset of `impacted`.
    pub user_facing: Vec<Arc<str>>,
}

/// One member alert and why it belongs to the incident.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEntry {
    /// The alert's fingerprint.
    pub fingerprint: Fingerprint,
    /// The `alertname` label. (Strings in alert entries are shared with
    /// the engine's state rather than copied per event.)
    pub alertname: Arc<str>,
    /// The resolved service, when a service label named one.
    pub service: Option<Arc<str>>,
    /// Current status as the engine sees it (a flapping alert stays firing).
    pub status: AlertStatus,
    /// The alert's own severity label, normalised.
    pub severity: AlertSeverity,
    /// Start of the current occurrence.
    #[serde(rename = "startsAt")]
    pub starts_at: Timestamp,
    /// Set while the alert fires and resolves repeatedly (flap damping).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub flapping: bool,
    /// Why the alert joined: the dependency path, the rule, or the time gap.
    pub reason: Arc<str>,
}

/// An incident event, `triage.incident.v1`. Names are shared (`Arc<str>`)
/// with the engine's state, so rendering an event does not copy them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    /// Always [`SCHEMA_V1`].
    pub schema: String,
    /// Declared, updated or resolved.
    pub event: EventKind,
    /// `<incident_id>:<version>`; unique per incident version, stable
    /// across replays and restarts, so consumers can deduplicate.
    pub event_id: String,
    /// Derived from the partition and the alert that opened the incident.
    pub incident_id: String,
    /// 1 on declaration, +1 per event.
    pub version: u32,
    /// Event time at which this change happened.
    pub at: Timestamp,
    /// Suggested priority; within an incident's life it only escalates.
    pub severity: Priority,
    /// Impact-first summary for people.
    pub title: String,
    /// Start of the earliest member alert.
    pub first_alert_at: Timestamp,
    /// When the incident was declared.
    pub declared_at: Timestamp,
    /// When it resolved; present on `resolved` events only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// On a `resolved` event caused by a merge: the surviving incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// Which declaration rule the incident met.
    pub declared_reason: String,
    /// How the severity follows from the blast radius and alert severities.
    pub severity_reason: String,
    /// Alerting services, sorted by name.
    pub services: Vec<Arc<str>>,
    /// Ranked root-cause candidates, best first (at most three).
    pub root_cause: Vec<RootCause>,
    /// Impacted services and the weighted score.
    pub blast_radius: BlastRadius,
    /// Owning teams: root causes' owners first, then the other services'.
    pub owners: Vec<Arc<str>>,
    /// Runbooks from the catalog and the alerts' `runbook_url` annotations.
    pub runbooks: Vec<Arc<str>>,
    /// Member alerts in total.
    pub alert_count: u32,
    /// Member alerts currently firing.
    pub firing_count: u32,
    /// Members left out of `alerts` because of `limits.max_alerts_listed`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub alerts_omitted: u32,
    /// Member alerts, sorted by start time then fingerprint.
    pub alerts: Vec<AlertEntry>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_order_from_most_urgent() {
        assert!(Priority::P1.is_above(Priority::P2));
        assert!(!Priority::P4.is_above(Priority::P3));
        assert_eq!(Priority::P3.to_string(), "P3");
        assert_eq!(serde_json::to_string(&Priority::P2).ok().as_deref(), Some("\"P2\""));
    }
}
