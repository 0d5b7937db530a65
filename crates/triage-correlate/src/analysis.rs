//! Scoring a group: root-cause candidates, blast radius, priority, owners,
//! runbooks and the impact-first title; and rendering the incident event.
//!
//! Everything here is a pure function of a group, its member alerts, the
//! topology and the settings, so the same state always renders the same
//! event.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use triage_model::{
    AlertEntry, AlertSeverity, AlertStatus, BlastRadius, EventKind, Fingerprint, IncidentEvent,
    Priority, RootCause, SCHEMA_V1, Timestamp,
};
use triage_topology::{ServiceId, ServiceSet, Topology};

use crate::settings::Settings;
use crate::state::{AlertState, Group, JoinReason, ServiceRef};

/// Most root-cause candidates listed.
const MAX_ROOT_CAUSES: usize = 3;
/// Most runbooks listed.
const MAX_RUNBOOKS: usize = 10;
/// Alerts at least this severe are strong evidence. A service alerting
/// only below it (a `HighCPU` warning, a certificate expiring soon) is
/// weak: it does not take the place of a strongly alerting service above it
/// as root cause, and ranks after the strong candidates.
pub(crate) const STRONG: AlertSeverity = AlertSeverity::Error;

/// What follows from a group's alerting services.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    /// Ranked candidates: service, score, reason.
    pub root_cause: Vec<(ServiceId, f64, String)>,
    /// Impacted catalog services, sorted by id.
    pub impacted: Vec<ServiceId>,
    /// Alerting services not in the catalog.
    pub unknown: Vec<String>,
    /// Weighted blast radius.
    pub score: u64,
    /// Priority the thresholds give.
    pub priority: Priority,
    /// How the thresholds gave it.
    pub priority_reason: String,
    /// The same, rendered as event fields (sorted names), so events of an
    /// unchanged shape cost no sorting.
    pub rendered: Rendered,
}

/// Event fields that follow from a group's shape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rendered {
    /// Alerting services, sorted by name.
    pub services: Vec<Arc<str>>,
    /// Impacted services, sorted by name.
    pub impacted: Vec<Arc<str>>,
    /// User-facing impacted services, sorted by name.
    pub user_facing: Vec<Arc<str>>,
    /// Root-cause candidates as event entries.
    pub root_cause: Vec<RootCause>,
    /// Owning teams, root causes' first.
    pub owners: Vec<Arc<str>>,
    /// Catalog runbooks, root causes' first.
    pub runbooks: Vec<Arc<str>>,
    /// The service the title leads with.
    pub lead: Option<String>,
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis {
            root_cause: Vec::new(),
            impacted: Vec::new(),
            unknown: Vec::new(),
            score: 0,
            priority: Priority::P4,
            priority_reason: String::new(),
            rendered: Rendered::default(),
        }
    }
}

/// The part of a group's analysis that decides its priority, computed
/// with set operations only (no names, no sorting): cheap enough to run on
/// every change of the group's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Scoring {
    /// Alerting catalog services with their first alert.
    alerting: Vec<(ServiceId, Timestamp)>,
    alerting_set: ServiceSet,
    /// Those alerting at [`STRONG`] or above.
    strong_set: ServiceSet,
    /// Root-cause candidates (unranked).
    candidates: Vec<ServiceId>,
    /// True when no service qualified and every alerting one is ranked.
    in_cycle: bool,
    /// Alerting services plus every transitive dependent of a candidate.
    impacted: ServiceSet,
    /// Alerting services not in the catalog.
    unknown: Vec<String>,
    /// Weighted blast radius.
    pub score: u64,
    /// Priority the thresholds give.
    pub priority: Priority,
}

/// Scores a group: candidates, impacted services, blast radius, priority.
pub fn score(group: &Group, topology: &Topology, settings: &Settings) -> Scoring {
    let mut alerting: Vec<(ServiceId, Timestamp)> = Vec::new();
    let mut unknown = Vec::new();
    let mut alerting_set = topology.empty_set();
    let mut strong_set = topology.empty_set();
    for (service, tally) in &group.services {
        match service {
            ServiceRef::Known(id) => {
                alerting.push((*id, tally.first_at));
                alerting_set.insert(*id);
                if tally.max_severity >= STRONG {
                    strong_set.insert(*id);
                }
            }
            ServiceRef::Unknown(name) => unknown.push(name.to_string()),
            ServiceRef::Absent => {}
        }
    }
    // A candidate has no alerting service below it but itself; for a
    // strongly alerting one, no strongly alerting service.
    let mut candidates: Vec<ServiceId> = alerting
        .iter()
        .map(|a| a.0)
        .filter(|&id| {
            let below = if strong_set.contains(id) { &strong_set } else { &alerting_set };
            topology.dependencies_set(id).count_common(below) == 1
        })
        .collect();
    let in_cycle = candidates.is_empty() && !alerting.is_empty();
    if in_cycle {
        candidates = alerting.iter().map(|a| a.0).collect();
    }
    let mut impacted = alerting_set.clone();
    for &candidate in &candidates {
        impacted.union_with(&topology.dependents_set(candidate));
    }
    let policy = &settings.severity;
    let score = impacted
        .iter()
        .map(|id| {
            let s = topology.service(id);
            policy.weight(s.tier, s.user_facing)
        })
        .sum::<u64>()
        + policy.unknown_weight() * unknown.len() as u64;
    let priority = priority_of(score, group.max_severity, settings).0;
    Scoring {
        alerting,
        alerting_set,
        strong_set,
        candidates,
        in_cycle,
        impacted,
        unknown,
        score,
        priority,
    }
}

/// The full analysis of a group: its scoring, the ranked root causes with
/// their reasons, and the rendered event fields.
pub fn analyse(group: &Group, topology: &Topology, settings: &Settings) -> Analysis {
    analyse_scored(group, score(group, topology, settings), topology, settings)
}

/// [`analyse`] from a scoring already computed for the group's shape.
pub fn analyse_scored(
    group: &Group,
    scoring: Scoring,
    topology: &Topology,
    settings: &Settings,
) -> Analysis {
    let root_cause = rank_root_causes(&scoring, topology);
    let (priority, priority_reason) = priority_of(scoring.score, group.max_severity, settings);
    let mut analysis = Analysis {
        root_cause,
        impacted: scoring.impacted.iter().collect(),
        unknown: scoring.unknown,
        score: scoring.score,
        priority,
        priority_reason,
        rendered: Rendered::default(),
    };
    analysis.rendered = render_shape(group, &analysis, topology);
    analysis
}

/// Ranks candidates: strongly alerting ones first, then by the share of
/// alerting services they explain, then by who alerted first, then by
/// name. When fewer than three qualify, the list goes on with the most
/// explanatory other alerting services, marked as alternatives: responders
/// get a second and third place to look when the deepest alert is itself a
/// symptom or noise.
fn rank_root_causes(scoring: &Scoring, topology: &Topology) -> Vec<(ServiceId, f64, String)> {
    let alerting = &scoring.alerting;
    if alerting.is_empty() {
        return Vec::new();
    }
    let first_at: FxHashMap<ServiceId, Timestamp> = alerting.iter().copied().collect();
    let strong = |id: ServiceId| scoring.strong_set.contains(id);
    let explained = |id: ServiceId| topology.dependents_set(id).count_common(&scoring.alerting_set);
    let rank = |ids: &mut dyn Iterator<Item = ServiceId>| {
        let mut ranked: Vec<(ServiceId, usize)> = ids.map(|id| (id, explained(id))).collect();
        ranked.sort_by(|a, b| {
            strong(b.0)
                .cmp(&strong(a.0))
                .then(b.1.cmp(&a.1))
                .then(first_at[&a.0].cmp(&first_at[&b.0]))
                .then(topology.name(a.0).cmp(topology.name(b.0)))
        });
        ranked
    };
    let why = |id: ServiceId| {
        if scoring.in_cycle {
            "alerting services form a dependency cycle"
        } else if !strong(id) && !scoring.strong_set.is_empty() {
            "no dependency of it is alerting, but it alerts only below error"
        } else if topology.dependencies_set(id).count_common(&scoring.alerting_set) > 1 {
            "no dependency of it is alerting at error or above"
        } else {
            "no dependency of it is alerting"
        }
    };
    let mut ranked: Vec<(ServiceId, usize, &str)> = rank(&mut scoring.candidates.iter().copied())
        .into_iter()
        .map(|(id, count)| (id, count, why(id)))
        .collect();
    if ranked.len() < MAX_ROOT_CAUSES {
        let others = alerting.iter().map(|a| a.0).filter(|id| !scoring.candidates.contains(id));
        let alternatives = rank(&mut { others });
        let alternative = "alternative: some of its dependencies alert too";
        ranked.extend(alternatives.into_iter().map(|(id, count)| (id, count, alternative)));
    }
    ranked
        .into_iter()
        .take(MAX_ROOT_CAUSES)
        .map(|(id, count, why)| {
            let share = count as f64 / alerting.len() as f64;
            let score = (share * 1000.0).round() / 1000.0;
            let reason = format!(
                "{why}; explains {count} of {} alerting services; first alert at {}",
                alerting.len(),
                first_at[&id]
            );
            (id, score, reason)
        })
        .collect()
}

fn render_shape(group: &Group, analysis: &Analysis, topology: &Topology) -> Rendered {
    let names = |ids: &mut dyn Iterator<Item = ServiceId>| {
        let mut ids: Vec<ServiceId> = ids.collect();
        topology.sort_by_name(&mut ids);
        ids.into_iter().map(|id| topology.service(id).name.clone()).collect::<Vec<_>>()
    };
    Rendered {
        services: service_names(group, topology),
        impacted: names(&mut analysis.impacted.iter().copied()),
        user_facing: names(
            &mut analysis.impacted.iter().copied().filter(|&id| topology.service(id).user_facing),
        ),
        root_cause: analysis
            .root_cause
            .iter()
            .map(|(id, score, reason)| RootCause {
                service: topology.service(*id).name.clone(),
                score: *score,
                // The catalog's view of a shared cause names a service,
                // but the cause is likely none of them.
                reason: match &group.shared_cause {
                    Some(name) => format!(
                        "{name} on services with no dependency between them points to a \
                         cause outside the catalog; {reason}"
                    ),
                    None => reason.clone(),
                },
            })
            .collect(),
        owners: owners(group, analysis, topology),
        runbooks: catalog_runbooks(analysis, topology),
        lead: lead_service(group, analysis, topology),
    }
}

fn priority_of(score: u64, severity: AlertSeverity, settings: &Settings) -> (Priority, String) {
    let levels = &settings.severity.levels;
    for (level, priority) in levels.iter().zip([Priority::P1, Priority::P2, Priority::P3]) {
        if score >= level.min_blast_score && severity >= level.min_alert_severity {
            let reason = format!(
                "{priority}: blast radius {score} >= {} and most severe alert {} >= {}",
                level.min_blast_score,
                severity.as_str(),
                level.min_alert_severity.as_str()
            );
            return (priority, reason);
        }
    }
    let p3 = &levels[2];
    let reason = format!(
        "P4: below P3 (needs blast radius >= {} and an alert >= {}); blast radius {score}, \
         most severe alert {}",
        p3.min_blast_score,
        p3.min_alert_severity.as_str(),
        severity.as_str()
    );
    (Priority::P4, reason)
}

/// What an event carries besides the group.
pub struct EventHeader<'a> {
    pub kind: EventKind,
    pub at: Timestamp,
    pub merged_into: Option<&'a str>,
}

/// Renders the incident event for `group` (which must carry an incident).
pub fn render_event(
    header: &EventHeader<'_>,
    group: &Group,
    alerts: &FxHashMap<Fingerprint, AlertState>,
    analysis: &Analysis,
    topology: &Topology,
    settings: &Settings,
) -> Option<IncidentEvent> {
    let incident = group.incident.as_ref()?;
    let shape = &analysis.rendered;
    let mut members: Vec<&AlertState> =
        group.members.iter().filter_map(|fp| alerts.get(fp)).collect();
    let firing = members.iter().filter(|a| a.status == AlertStatus::Firing).count();
    let listed = members.len().min(settings.limits.max_alerts_listed);
    // Only the listed prefix needs to be in order.
    let order = |a: &&AlertState| (a.starts_at, a.fingerprint);
    if listed < members.len() {
        members.select_nth_unstable_by_key(listed, order);
    }
    members[..listed].sort_unstable_by_key(order);

    let resolved_at = (header.kind == EventKind::Resolved).then_some(header.at);
    let opener = alerts.get(&group.opener.0).map(|a| a.traits.alertname.as_ref());
    let counts = (members.len(), shape.services.len());
    // Content merged groups that neither topology nor the label rule could
    // link: whatever they share is not in the catalog.
    // (A group restored from a snapshot that predates `shared_cause` says
    // it through its members' reasons.)
    let shared_cause = group.shared_cause.as_deref().or_else(|| {
        let by_content = members.iter().any(|a| matches!(a.reason, JoinReason::Content { .. }));
        opener.filter(|_| by_content)
    });
    let title = title(group, analysis, topology, counts, resolved_at, (opener, shared_cause));
    Some(IncidentEvent {
        schema: SCHEMA_V1.to_owned(),
        event: header.kind,
        event_id: format!("{}:{}", incident.id, incident.version),
        incident_id: incident.id.clone(),
        version: incident.version,
        at: header.at,
        severity: incident.severity,
        title,
        first_alert_at: group.first_at,
        declared_at: incident.declared_at,
        resolved_at,
        merged_into: header.merged_into.map(str::to_owned),
        declared_reason: incident.declared_reason.clone(),
        severity_reason: analysis.priority_reason.clone(),
        services: shape.services.clone(),
        root_cause: shape.root_cause.clone(),
        blast_radius: BlastRadius {
            score: analysis.score,
            impacted: shape.impacted.clone(),
            user_facing: shape.user_facing.clone(),
        },
        owners: shape.owners.clone(),
        runbooks: runbooks(&shape.runbooks, &members),
        alert_count: members.len() as u32,
        firing_count: firing as u32,
        alerts_omitted: (members.len() - listed) as u32,
        alerts: members[..listed].iter().map(|a| alert_entry(a, topology)).collect(),
    })
}

fn service_names(group: &Group, topology: &Topology) -> Vec<Arc<str>> {
    let mut names: Vec<Arc<str>> = group
        .services
        .keys()
        .filter_map(|s| match s {
            ServiceRef::Known(id) => Some(topology.service(*id).name.clone()),
            ServiceRef::Unknown(name) => Some(name.clone()),
            ServiceRef::Absent => None,
        })
        .collect();
    names.sort();
    names
}

/// The service to lead the title with: among the alerting services, the
/// user-facing one of the most critical tier (what users notice), else the
/// most critical; then services outside the catalog; then the alert name.
fn lead_service(group: &Group, analysis: &Analysis, topology: &Topology) -> Option<String> {
    let rank = |id: &ServiceId| {
        let s = topology.service(*id);
        (!s.user_facing, s.tier, s.name.clone())
    };
    group
        .services
        .keys()
        .filter_map(|s| match s {
            ServiceRef::Known(id) => Some(*id),
            _ => None,
        })
        .min_by_key(rank)
        .map(|id| topology.name(id).to_owned())
        .or_else(|| analysis.unknown.first().cloned())
}

fn title(
    group: &Group,
    analysis: &Analysis,
    topology: &Topology,
    (alert_count, service_count): (usize, usize),
    resolved_at: Option<Timestamp>,
    (lead_alertname, shared_cause): (Option<&str>, Option<&str>),
) -> String {
    let lead = analysis
        .rendered
        .lead
        .clone()
        .or_else(|| lead_alertname.map(|n| format!("{n} (no service label)")))
        .unwrap_or_else(|| "unplaced alerts".to_owned());
    let mut title = match resolved_at {
        Some(at) => format!("{lead} recovered after {}", human_duration(at.since(group.first_at))),
        None => format!("{lead} degraded"),
    };
    let _ = write!(title, ": {}", plural(alert_count, "alert"));
    if service_count > 0 {
        let _ = write!(title, " on {}", plural(service_count, "service"));
    }
    if let Some(name) = shared_cause {
        let _ = write!(
            title,
            ", likely a shared cause the catalog does not show ({name} on unrelated services)"
        );
    } else if let Some((root, _, _)) = analysis.root_cause.first() {
        let root = topology.name(*root);
        if root != lead || service_count > 1 {
            let _ = write!(title, ", likely cause {root}");
        }
    }
    title
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

/// `1h02m`, `5m30s`, `45s`: short and stable.
pub fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, secs / 60 % 60),
    }
}

fn owners(group: &Group, analysis: &Analysis, topology: &Topology) -> Vec<Arc<str>> {
    let roots = analysis.root_cause.iter().map(|r| r.0);
    let others = group.services.keys().filter_map(|s| match s {
        ServiceRef::Known(id) => Some(*id),
        _ => None,
    });
    let mut seen = rustc_hash::FxHashSet::default();
    let mut out: Vec<Arc<str>> = Vec::new();
    for id in roots.chain(others) {
        if let Some(owner) = &topology.service(id).owner
            && seen.insert(owner.clone())
        {
            out.push(owner.clone());
        }
    }
    out
}

/// Runbooks from the catalog (root causes first), at most `MAX_RUNBOOKS`.
fn catalog_runbooks(analysis: &Analysis, topology: &Topology) -> Vec<Arc<str>> {
    let roots = analysis.root_cause.iter().map(|r| r.0);
    let urls = roots
        .chain(analysis.impacted.iter().copied())
        .filter_map(|id| topology.service(id).runbook.clone());
    dedup_urls(urls, Vec::new())
}

/// The catalog's runbooks, then the alerts' `runbook_url`s, deduplicated.
fn runbooks(catalog: &[Arc<str>], members: &[&AlertState]) -> Vec<Arc<str>> {
    dedup_urls(members.iter().filter_map(|a| a.traits.runbook.clone()), catalog.to_vec())
}

fn dedup_urls(urls: impl Iterator<Item = Arc<str>>, mut out: Vec<Arc<str>>) -> Vec<Arc<str>> {
    for url in urls {
        if out.len() >= MAX_RUNBOOKS {
            break;
        }
        if !out.contains(&url) {
            out.push(url);
        }
    }
    out
}

fn alert_entry(alert: &AlertState, topology: &Topology) -> AlertEntry {
    AlertEntry {
        fingerprint: alert.fingerprint,
        alertname: alert.traits.alertname.clone(),
        service: match &alert.traits.service {
            ServiceRef::Known(id) => Some(topology.service(*id).name.clone()),
            ServiceRef::Unknown(name) => Some(name.clone()),
            ServiceRef::Absent => None,
        },
        status: alert.status,
        severity: alert.traits.severity,
        starts_at: alert.starts_at,
        flapping: alert.flapping,
        reason: alert.reason_text.get_or_init(|| explain_reason(alert, topology).into()).clone(),
    }
}

/// The sentence saying why an alert is in its group.
pub fn explain_reason(alert: &AlertState, topology: &Topology) -> String {
    match &alert.reason {
        JoinReason::Opened => "first alert of the group".to_owned(),
        JoinReason::Topology { via, via_service, hops, gap_nanos } => {
            let gap = human_duration(Duration::from_nanos(gap_nanos.unsigned_abs()));
            let ServiceRef::Known(own) = alert.traits.service else {
                return format!("linked to alert {via} by topology");
            };
            let via_name = topology.name(*via_service);
            let hops = plural(usize::from(*hops), "hop");
            // Paths read as call chains, caller first.
            let chain = |from: ServiceId, to: ServiceId| {
                let names = topology.path(from, to).map(|path| {
                    path.iter().map(|&id| topology.name(id)).collect::<Vec<_>>().join(" -> ")
                });
                names.unwrap_or_else(|| topology.name(from).to_owned())
            };
            if own == *via_service {
                format!("same service as alert {via}, {gap} later")
            } else if topology.dependencies_set(own).contains(*via_service) {
                let chain = chain(own, *via_service);
                format!("{chain}: depends on alerting {via_name} ({hops}); {gap} after alert {via}")
            } else {
                let chain = chain(*via_service, own);
                format!(
                    "{chain}: {via_name} depends on it ({hops}), a likelier cause; \
                     {gap} after alert {via}"
                )
            }
        }
        JoinReason::LabelRule { via, gap_nanos } => {
            let gap = human_duration(Duration::from_nanos(gap_nanos.unsigned_abs()));
            let labels = alert.traits.fallback_desc.as_deref().unwrap_or("fallback labels");
            format!("service not in the catalog; same {labels} as alert {via}, {gap} later")
        }
        JoinReason::Content { via, distance_milli } => format!(
            "content similar to alert {via} (distance {:.3}), merged in by content clustering",
            f64::from(*distance_milli) / 1000.0
        ),
        JoinReason::Merged { via, was_incident } => match was_incident {
            Some(id) => format!("opened incident {id}, merged in when alert {via} linked both"),
            None => format!("opened a group that merged in when alert {via} linked both"),
        },
    }
}
