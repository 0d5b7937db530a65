//! Persisting and restoring a correlator's state exactly.
//!
//! A [`Snapshot`] holds everything that shapes future output: the clock,
//! the reorder buffer, alerts, tombstones, groups, incidents and timers.
//! Collections are written in a fixed order, so equal states give equal
//! bytes. Linker indexes are not stored; they are rebuilt from the groups.
//! Counters ([`crate::Stats`]) describe a process and start from zero.
//!
//! Service ids are positions in the topology, so a snapshot records the
//! catalog's names and is only restored over the same catalog; restoring
//! over a changed one is refused with [`RestoreError::TopologyChanged`]
//! rather than silently re-pointing state at other services.

use std::fmt;

use serde::{Deserialize, Serialize};
use triage_model::{Fingerprint, Timestamp};

use crate::engine::{Correlator, PendingKey};
use crate::state::{AlertState, Group, Observation, Timers, Tombstone};

/// Format version of [`Snapshot`].
pub const SNAPSHOT_FORMAT: u32 = 1;

/// The whole state of one correlator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`] at the time of writing.
    pub format: u32,
    /// The partition the correlator serves.
    pub partition: u32,
    /// Catalog names by service id.
    pub services: Vec<String>,
    head: Option<Timestamp>,
    watermark: Timestamp,
    next_seq: u64,
    next_group: u64,
    pending: Vec<(PendingKey, Observation)>,
    alerts: Vec<AlertState>,
    tombstones: Vec<(Fingerprint, Tombstone)>,
    tombstone_queue: Vec<(Timestamp, Fingerprint)>,
    groups: Vec<Group>,
    timers: Timers,
    /// When the next content clustering pass runs.
    #[serde(default)]
    next_content_at: Option<Timestamp>,
    /// Whether an alert with content joined since the last pass.
    #[serde(default)]
    content_dirty: bool,
    /// Alertnames' recent counts, for content bursts.
    #[serde(default)]
    baseline: crate::content::BaselineRates,
}

/// Why a snapshot cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// Written by an incompatible version.
    Format(u32),
    /// The catalog differs from the one the snapshot was taken with.
    TopologyChanged,
    /// Internally inconsistent (an alert points at a missing group).
    Inconsistent(String),
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::Format(v) => {
                write!(f, "snapshot format {v} is not supported (expected {SNAPSHOT_FORMAT})")
            }
            RestoreError::TopologyChanged => {
                f.write_str("the service catalog changed since the snapshot was taken")
            }
            RestoreError::Inconsistent(what) => write!(f, "snapshot is inconsistent: {what}"),
        }
    }
}

impl std::error::Error for RestoreError {}

impl Snapshot {
    pub(crate) fn capture(c: &Correlator) -> Snapshot {
        let mut alerts: Vec<AlertState> = c.alerts.values().cloned().collect();
        alerts.sort_by_key(|a| a.fingerprint);
        let mut tombstones: Vec<(Fingerprint, Tombstone)> =
            c.tombstones.iter().map(|(fp, t)| (*fp, *t)).collect();
        tombstones.sort_by_key(|t| t.0);
        Snapshot {
            format: SNAPSHOT_FORMAT,
            partition: c.partition,
            services: c.topology.ids().map(|id| c.topology.name(id).to_owned()).collect(),
            head: c.head,
            watermark: c.watermark,
            next_seq: c.next_seq,
            next_group: c.next_group,
            pending: c.pending.iter().map(|(k, o)| (*k, Observation::clone(o))).collect(),
            alerts,
            tombstones,
            tombstone_queue: c.tombstone_queue.iter().copied().collect(),
            groups: c.groups.values().cloned().collect(),
            timers: c.timers.clone(),
            next_content_at: c.next_content_at,
            content_dirty: c.content_dirty,
            baseline: c.baseline.clone(),
        }
    }

    pub(crate) fn install(self, c: &mut Correlator) -> Result<(), RestoreError> {
        if self.format != SNAPSHOT_FORMAT {
            return Err(RestoreError::Format(self.format));
        }
        let same_catalog = self.services.len() == c.topology.len()
            && c.topology.ids().zip(&self.services).all(|(id, name)| c.topology.name(id) == name);
        if !same_catalog {
            return Err(RestoreError::TopologyChanged);
        }
        for alert in &self.alerts {
            if !self.groups.iter().any(|g| g.id == alert.group) {
                return Err(RestoreError::Inconsistent(format!(
                    "alert {} belongs to missing group {}",
                    alert.fingerprint, alert.group
                )));
            }
        }
        c.head = self.head;
        c.watermark = self.watermark;
        c.next_seq = self.next_seq;
        c.next_group = self.next_group;
        c.pending = self.pending.into_iter().map(|(k, o)| (k, Box::new(o))).collect();
        c.alerts = self.alerts.into_iter().map(|a| (a.fingerprint, a)).collect();
        c.tombstones = self.tombstones.into_iter().collect();
        c.tombstone_queue = self.tombstone_queue.into_iter().collect();
        c.joinable = self.groups.iter().filter(|g| g.joinable).count();
        c.groups = self.groups.into_iter().map(|g| (g.id, g)).collect();
        c.timers = self.timers;
        c.next_content_at = self.next_content_at;
        c.content_dirty = self.content_dirty;
        c.baseline = self.baseline;
        Ok(())
    }
}
