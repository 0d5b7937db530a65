//! The correlator's state: alerts, groups, incidents and timers.
//!
//! All of it is plain data that serialises into a [`crate::Snapshot`].
//! Ordering invariants that keep the engine deterministic live here:
//! groups are kept in a `BTreeMap` by id (ids are assigned in processing
//! order), timers in a `BTreeSet` by (deadline, kind, id), and hash maps are
//! only ever used for lookups, never iterated to produce output.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use triage_model::{AlertSeverity, AlertStatus, Fingerprint, Priority, Timestamp};
use triage_topology::ServiceId;

/// The service an alert names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServiceRef {
    /// A catalog service.
    Known(ServiceId),
    /// A service label value that is not in the catalog.
    Unknown(Arc<str>),
    /// No service label at all.
    Absent,
}

/// Identity of a group: assigned in processing order, so deterministic.
pub type GroupId = u64;

/// What the engine keeps of an alert's labels and annotations: the same
/// for every observation of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertTraits {
    pub alertname: Arc<str>,
    pub severity: AlertSeverity,
    pub service: ServiceRef,
    /// Hash of the `fallback_group_by` label values.
    pub fallback_key: u64,
    /// `name=value, ...` of those labels, kept only for alerts whose
    /// service is not in the catalog (the ones the label rule places).
    pub fallback_desc: Option<Arc<str>>,
    pub runbook: Option<Arc<str>>,
}

/// An alert observation reduced to what the engine keeps, owned, waiting in
/// the reorder buffer or being applied.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub fingerprint: Fingerprint,
    pub status: AlertStatus,
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub event_time: Timestamp,
    pub traits: AlertTraits,
    /// Where the record came from (line number, Kafka offset).
    pub position: u64,
    /// Content features, when content clustering is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<crate::content::Features>>,
}

/// Why an alert is in its group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinReason {
    /// It opened the group.
    Opened,
    /// Its service is within `max_hops` of a service alerting in the group.
    Topology {
        /// The member alert it was linked to.
        via: Fingerprint,
        /// That alert's service.
        via_service: ServiceId,
        /// Dependency hops between the two services.
        hops: u8,
        /// Event time between the two alerts, nanoseconds.
        gap_nanos: i64,
    },
    /// Its service is unknown and its `fallback_group_by` labels equal a
    /// member's.
    LabelRule {
        /// The member alert it matched.
        via: Fingerprint,
        /// Event time between the two alerts, nanoseconds.
        gap_nanos: i64,
    },
    /// It opened a group that content clustering merged into this one:
    /// its content is within `eps` of `via`'s.
    Content {
        /// The member alert of the surviving group it is closest to.
        via: Fingerprint,
        /// Their feature distance, in thousandths.
        distance_milli: u32,
    },
    /// It opened a group that was merged into this one when `via` linked
    /// both.
    Merged {
        /// The alert that linked the groups.
        via: Fingerprint,
        /// The incident the merged group had been declared as, if any.
        was_incident: Option<String>,
    },
}

impl JoinReason {
    /// The member it was linked to; none for the opener.
    pub fn via(&self) -> Option<Fingerprint> {
        match self {
            JoinReason::Opened => None,
            JoinReason::Topology { via, .. }
            | JoinReason::LabelRule { via, .. }
            | JoinReason::Content { via, .. }
            | JoinReason::Merged { via, .. } => Some(*via),
        }
    }

    /// Event time between the alert and the member it was linked to, for
    /// the links that have one.
    pub fn gap_nanos(&self) -> i64 {
        match self {
            JoinReason::Topology { gap_nanos, .. } | JoinReason::LabelRule { gap_nanos, .. } => {
                *gap_nanos
            }
            _ => 0,
        }
    }
}

/// One alert the engine tracks (by fingerprint).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertState {
    pub fingerprint: Fingerprint,
    pub traits: AlertTraits,
    /// Start of the current occurrence.
    pub starts_at: Timestamp,
    /// The status the engine acts on (a flapping alert stays firing).
    pub status: AlertStatus,
    /// The status the sources last reported.
    pub reported: AlertStatus,
    /// Firing: the time after which it counts as resolved unless re-sent
    /// (also the slot of its expiry timer).
    pub expires_at: Option<Timestamp>,
    /// Slot of its flap-settle timer.
    pub settle_at: Option<Timestamp>,
    /// Recent fire/resolve transitions (at most `max_transitions`).
    pub transitions: VecDeque<Timestamp>,
    pub flapping: bool,
    pub group: GroupId,
    pub reason: JoinReason,
    /// `reason` rendered for people; derived, filled on first use, cleared
    /// when `reason` changes, never persisted.
    #[serde(skip)]
    pub reason_text: std::cell::OnceCell<Arc<str>>,
    /// When it joined (event time).
    pub joined_at: Timestamp,
    /// Content features, when content clustering is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Box<crate::content::Features>>,
}

/// What a closed alert leaves behind: enough to recognise a late
/// re-notification of the same occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub starts_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Per-service tally within a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceTally {
    /// Member alerts on this service.
    pub alerts: u32,
    /// Earliest start among them.
    pub first_at: Timestamp,
    /// The most severe of them (snapshots from before it was kept read as
    /// critical, which ranks causes as before).
    #[serde(default = "most_severe")]
    pub max_severity: AlertSeverity,
}

fn most_severe() -> AlertSeverity {
    AlertSeverity::Critical
}

/// A declared incident riding on a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// Version of the last emitted event.
    pub version: u32,
    pub declared_at: Timestamp,
    pub declared_reason: String,
    /// Only ever escalates.
    pub severity: Priority,
    /// Changes not yet sent in an event.
    pub dirty: bool,
    pub last_emitted_at: Timestamp,
    /// Members and firing members in the last event, to judge how much has
    /// changed since.
    pub emitted_alerts: u32,
    pub emitted_firing: u32,
}

/// The scheduled deadlines of a group (one timer per kind at most).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupTimers {
    pub join_close: Option<Timestamp>,
    pub persist: Option<Timestamp>,
    pub quiet: Option<Timestamp>,
    pub flush: Option<Timestamp>,
}

/// A set of correlated alerts: a candidate until declared, then the body of
/// an incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: GroupId,
    /// The alert that opened the group and its start: the incident id
    /// derives from it.
    pub opener: (Fingerprint, Timestamp),
    /// Start of the earliest member alert.
    pub first_at: Timestamp,
    /// Event time the group opened; its lifetime counts from here.
    pub opened_at: Timestamp,
    pub last_join_at: Timestamp,
    /// Members in join order.
    pub members: Vec<Fingerprint>,
    pub firing: u32,
    #[serde(with = "map_as_pairs")]
    pub services: BTreeMap<ServiceRef, ServiceTally>,
    /// Most severe member alert so far.
    pub max_severity: AlertSeverity,
    /// Set when a critical alert hit an important service (for the
    /// declaration rule), naming the service.
    pub critical_on: Option<String>,
    /// The `alertname` content clustering merged this group on: a cause
    /// outside the catalog that its services share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_cause: Option<Arc<str>>,
    pub joinable: bool,
    /// When the last firing member resolved.
    pub quiet_since: Option<Timestamp>,
    pub incident: Option<Incident>,
    pub timers: GroupTimers,
    /// Derived from `services` and `max_severity`; dropped whenever they
    /// change, recomputed on demand, never persisted.
    #[serde(skip)]
    pub analysis: Option<Arc<crate::analysis::Analysis>>,
    /// The scoring of the current shape when computed before the analysis
    /// was needed (the escalation check); same rules as `analysis`.
    #[serde(skip)]
    pub scoring: Option<Box<crate::analysis::Scoring>>,
}

/// What a timer does when it fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TimerKind {
    /// A firing alert reached its `endsAt` without a re-notification.
    AlertExpiry,
    /// A flapping alert may have been stable for a full period.
    FlapSettle,
    /// A group's window or lifetime ended.
    JoinClose,
    /// A group may have persisted long enough to declare.
    Persist,
    /// A quiet group may resolve.
    Quiet,
    /// An incident's coalesced update is due.
    Flush,
}

/// A scheduled deadline. The id is a group id or a fingerprint by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timer {
    pub at: Timestamp,
    pub kind: TimerKind,
    pub id: u64,
}

/// The set of pending timers with at most one entry per (kind, id) slot
/// that the caller tracks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timers {
    set: BTreeSet<Timer>,
}

impl Timers {
    /// Moves the timer held in `slot` to `at` (or schedules it).
    pub fn schedule(
        &mut self,
        slot: &mut Option<Timestamp>,
        at: Timestamp,
        kind: TimerKind,
        id: u64,
    ) {
        if let Some(old) = slot.replace(at) {
            self.set.remove(&Timer { at: old, kind, id });
        }
        self.set.insert(Timer { at, kind, id });
    }

    /// Removes the timer held in `slot`.
    pub fn cancel(&mut self, slot: &mut Option<Timestamp>, kind: TimerKind, id: u64) {
        if let Some(old) = slot.take() {
            self.set.remove(&Timer { at: old, kind, id });
        }
    }

    /// Takes the earliest timer due strictly before `limit`.
    pub fn pop_before(&mut self, limit: Timestamp) -> Option<Timer> {
        let first = *self.set.first()?;
        if first.at < limit { self.set.pop_first() } else { None }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.set.len()
    }
}

/// JSON object keys must be strings; maps keyed by enums are written as
/// lists of pairs instead.
mod map_as_pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}
