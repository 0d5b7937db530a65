//! The correlator's validated settings and their defaults.
//!
//! These are the values the engine trusts; `triage-config` parses the YAML
//! file, checks it, and builds them. Every default is documented here and in
//! `config/triage.yaml`, and the two are kept equal by a test in
//! `triage-config`.

use std::time::Duration;

use triage_model::AlertSeverity;

/// Everything that shapes correlation.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Labels that name an alert's service, in order of preference. The
    /// first one whose value is a catalog service (or alias) wins; failing
    /// that, the first one present names an unknown service.
    pub service_labels: Vec<String>,
    /// Grouping bounds and the label rule for alerts topology cannot place.
    pub grouping: Grouping,
    /// When a group becomes a declared incident.
    pub declare: DeclarePolicy,
    /// How the priority follows from blast radius and alert severities.
    pub severity: SeverityPolicy,
    /// Flap damping.
    pub flap: FlapPolicy,
    /// How long a group must be quiet (all alerts resolved) to resolve.
    pub quiet_period: Duration,
    /// When `updated` events are sent.
    pub updates: UpdatePolicy,
    /// Bounds on state.
    pub limits: Limits,
    /// Content clustering of alerts topology and the label rule did not
    /// link.
    pub content: crate::content::ContentSettings,
}

/// Grouping bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Grouping {
    /// An alert may join a group whose last alert joined at most this long
    /// before it.
    pub window: Duration,
    /// A group accepts no alerts after this long from its first alert.
    pub max_group_lifetime: Duration,
    /// How far out of event-time order alerts may arrive and still be
    /// placed exactly as if they had arrived in order.
    pub allowed_lateness: Duration,
    /// Dependency hops within which two alerting services are linked.
    pub max_hops: u8,
    /// An alert is taken as the likelier cause of a group only if it joins
    /// at most this long after the group's first alert on the service it
    /// would explain; later, it is more likely an unrelated problem below.
    /// Generous enough for cause rules with a longer `for:` than their
    /// symptoms' rules.
    pub max_cause_lag: Duration,
    /// When an alert could join several groups, the closest link wins:
    /// the one with the least event time to the linked service's latest
    /// alert, each dependency hop counting as this much more. A service
    /// that has just started alerting is a likelier link than one that
    /// alerted minutes ago, however near in the graph.
    pub hop_cost: Duration,
    /// A weak link (an alert below `error` joining, or a strong alert
    /// whose only link is to a service that alerts below `error`) places
    /// an alert through topology only when the link (event time plus
    /// `hop_cost` per hop) is at most this long, and any alert links
    /// through services that alert nowhere only within this much event
    /// time; zero removes both bounds. More instances of one alert on one
    /// service are exempt.
    pub weak_link_within: Duration,
    /// For alerts whose service is unknown: alerts with equal values of
    /// these labels join one group.
    pub fallback_group_by: Vec<String>,
}

/// The declaration policy: a group is declared when any rule holds.
#[derive(Clone, Debug, PartialEq)]
pub struct DeclarePolicy {
    /// At least this many distinct alerts.
    pub min_alerts: u32,
    /// At least this many alerting services...
    pub min_services: u32,
    /// ...with an alert at least this severe: warnings on neighbouring
    /// services minutes apart are more often coincidence than one fault.
    pub min_services_severity: AlertSeverity,
    /// A critical alert on a service of this tier or more critical.
    pub critical_max_tier: Option<u8>,
    /// A critical alert on a user-facing service.
    pub critical_user_facing: bool,
    /// A group still firing this long after its first alert...
    pub persist_for: Option<Duration>,
    /// ...with an alert at least this severe.
    pub persist_min_severity: AlertSeverity,
}

/// One priority level's thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Level {
    /// Blast radius score at least this.
    pub min_blast_score: u64,
    /// Most severe member alert at least this.
    pub min_alert_severity: AlertSeverity,
}

/// Priority thresholds. An incident gets the most urgent level whose both
/// conditions hold, P4 otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct SeverityPolicy {
    /// Weight of an impacted service by tier: index 0 is tier 1.
    pub tier_weights: Vec<u64>,
    /// Factor applied to the weight of user-facing services.
    pub user_facing_multiplier: u64,
    /// Thresholds for P1, P2 and P3.
    pub levels: [Level; 3],
}

impl SeverityPolicy {
    /// Weight of one impacted service.
    pub fn weight(&self, tier: u8, user_facing: bool) -> u64 {
        let index = usize::from(tier.max(1) - 1).min(self.tier_weights.len().saturating_sub(1));
        let base = self.tier_weights.get(index).copied().unwrap_or(1);
        if user_facing { base * self.user_facing_multiplier } else { base }
    }

    /// Weight of an alerting service that is not in the catalog: the least
    /// critical tier's.
    pub fn unknown_weight(&self) -> u64 {
        self.tier_weights.last().copied().unwrap_or(1)
    }
}

/// Flap damping: an alert that changes state this often within the period
/// is kept firing (flagged `flapping`) until it has been stable for a full
/// period.
#[derive(Clone, Debug, PartialEq)]
pub struct FlapPolicy {
    /// The observation period.
    pub period: Duration,
    /// Fire/resolve transitions within the period that make an alert flap.
    pub max_transitions: u32,
}

/// Delta-aware updates. Escalations are sent at once; material changes
/// (alerting services, root cause, most severe alert, firing again after
/// all alerts were quiet, membership grown by `material_growth_percent` and by at
/// least `material_growth_min_alerts`) at most every `min_interval`; other
/// changes refresh the snapshot at most every `refresh_interval`. Changes
/// in between are coalesced.
#[derive(Clone, Debug, PartialEq)]
pub struct UpdatePolicy {
    /// Least event time between two events for material changes.
    pub min_interval: Duration,
    /// Least event time between two events for other changes.
    pub refresh_interval: Duration,
    /// Membership growth, in percent of the last event's, that is material.
    pub material_growth_percent: u32,
    /// ... and in alerts, so small incidents do not update on every alert.
    pub material_growth_min_alerts: u32,
}

/// Bounds on state. When one is reached the engine degrades as documented
/// per field and counts it in [`crate::Stats`].
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Groups open for joining. At the limit the oldest stops accepting
    /// alerts (it keeps its lifecycle).
    pub max_open_groups: usize,
    /// Alerts held in state. At the limit new alerts are dropped and handed
    /// to the sink with the reason.
    pub max_active_alerts: usize,
    /// Member alerts listed in one event; the rest are counted in
    /// `alerts_omitted`.
    pub max_alerts_listed: usize,
    /// How long a closed alert is remembered, so late re-notifications are
    /// recognised as duplicates.
    pub tombstone_retention: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            service_labels: ["service", "app", "job", "container"].map(String::from).to_vec(),
            grouping: Grouping {
                window: Duration::from_secs(5 * 60),
                max_group_lifetime: Duration::from_secs(2 * 3600),
                allowed_lateness: Duration::from_secs(30),
                max_hops: 2,
                max_cause_lag: Duration::from_secs(3 * 60),
                hop_cost: Duration::from_secs(60),
                weak_link_within: Duration::from_secs(120),
                fallback_group_by: ["alertname", "cluster"].map(String::from).to_vec(),
            },
            declare: DeclarePolicy {
                min_alerts: 5,
                min_services: 3,
                min_services_severity: AlertSeverity::Error,
                critical_max_tier: Some(3),
                critical_user_facing: true,
                persist_for: Some(Duration::from_secs(15 * 60)),
                persist_min_severity: AlertSeverity::Warning,
            },
            severity: SeverityPolicy {
                tier_weights: vec![10, 3, 1],
                user_facing_multiplier: 2,
                levels: [
                    Level { min_blast_score: 40, min_alert_severity: AlertSeverity::Critical },
                    Level { min_blast_score: 15, min_alert_severity: AlertSeverity::Error },
                    Level { min_blast_score: 5, min_alert_severity: AlertSeverity::Info },
                ],
            },
            flap: FlapPolicy { period: Duration::from_secs(10 * 60), max_transitions: 4 },
            quiet_period: Duration::from_secs(5 * 60),
            updates: UpdatePolicy {
                min_interval: Duration::from_secs(60),
                refresh_interval: Duration::from_secs(5 * 60),
                material_growth_percent: 25,
                material_growth_min_alerts: 5,
            },
            limits: Limits {
                max_open_groups: 10_000,
                max_active_alerts: 2_000_000,
                max_alerts_listed: 100,
                tombstone_retention: Duration::from_secs(3600),
            },
            content: crate::content::ContentSettings::default(),
        }
    }
}
