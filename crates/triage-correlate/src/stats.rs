//! Counters of what the correlator did: the noise funnel from observations
//! to incidents. Kept per correlator, not snapshotted (they describe a
//! process, not the state).

use serde::Serialize;
use triage_model::Priority;

/// The funnel and the degradations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Alert observations handed to the correlator.
    pub observations: u64,
    /// Distinct alert occurrences seen for the first time.
    pub unique_alerts: u64,
    /// Re-notifications of an occurrence already known.
    pub duplicates: u64,
    /// Observations about an older occurrence than the one tracked.
    pub stale: u64,
    /// Alerts that fired again after resolving, in the same group.
    pub refired: u64,
    /// Resolutions of alerts never seen firing.
    pub resolved_unknown: u64,
    /// Observations older than the allowed lateness, placed at the
    /// watermark instead of their own time.
    pub late: u64,
    /// Alerts that started flapping.
    pub flapping: u64,
    /// Alerts dropped because `max_active_alerts` was reached.
    pub dropped_capacity: u64,
    /// Alerts that joined an open group instead of opening one.
    pub alerts_grouped: u64,
    /// Groups opened.
    pub groups_opened: u64,
    /// Groups merged into another.
    pub groups_merged: u64,
    /// Of those, merged by content clustering.
    pub content_merges: u64,
    /// Groups closed early because `max_open_groups` was reached.
    pub groups_force_closed: u64,
    /// Groups that ended without being declared.
    pub noise_groups: u64,
    /// Alerts in those groups: the noise suppressed.
    pub noise_alerts: u64,
    /// Incidents declared.
    pub incidents_declared: u64,
    /// `updated` events.
    pub incidents_updated: u64,
    /// `resolved` events (merges included).
    pub incidents_resolved: u64,
    /// Incidents that ended by merging into another.
    pub incidents_merged: u64,
    /// Current priority of every declared, not merged, incident: P1..P4.
    pub incidents_by_severity: [u64; 4],
}

impl Stats {
    /// Incidents that stand on their own (declared, not merged away).
    pub fn distinct_incidents(&self) -> u64 {
        self.incidents_declared - self.incidents_merged
    }

    /// Share of distinct alerts that did not become an incident of their
    /// own: `1 - incidents / unique alerts`.
    pub fn noise_reduction(&self) -> f64 {
        if self.unique_alerts == 0 {
            return 0.0;
        }
        1.0 - self.distinct_incidents() as f64 / self.unique_alerts as f64
    }

    pub(crate) fn count_priority(&mut self, priority: Priority, delta: i64) {
        let slot = &mut self.incidents_by_severity[priority.index()];
        *slot = slot.saturating_add_signed(delta);
    }
}
