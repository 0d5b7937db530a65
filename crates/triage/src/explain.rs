//! `triage explain`: an incident's reasoning, for a person, from its last
//! event: why it was declared, why this priority, which root-cause
//! candidates and why, what is impacted, and why each alert is a member.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::BufRead;

use triage_model::{EventKind, IncidentEvent};

/// The last event of every incident in an events stream, in order of first
/// appearance, plus the lines that were not events.
pub fn last_events(input: impl BufRead) -> std::io::Result<(Vec<IncidentEvent>, Vec<String>)> {
    let mut order: Vec<String> = Vec::new();
    let mut last: BTreeMap<String, IncidentEvent> = BTreeMap::new();
    let mut problems = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<IncidentEvent>(&line) {
            Ok(event) => {
                if !last.contains_key(&event.incident_id) {
                    order.push(event.incident_id.clone());
                }
                last.insert(event.incident_id.clone(), event);
            }
            Err(e) => problems.push(format!("line {}: not an incident event: {e}", i + 1)),
        }
    }
    let events = order.into_iter().filter_map(|id| last.remove(&id)).collect();
    Ok((events, problems))
}

/// Renders one incident's explanation.
pub fn render(event: &IncidentEvent) -> String {
    let mut out = String::new();
    let state = match (event.event, &event.merged_into) {
        (EventKind::Resolved, Some(into)) => format!("merged into {into}"),
        (EventKind::Resolved, None) => {
            format!("resolved {}", event.resolved_at.map(|t| t.to_string()).unwrap_or_default())
        }
        _ => "open".to_owned(),
    };
    let _ = writeln!(
        out,
        "{}  {}  {} (version {})",
        event.incident_id, event.severity, state, event.version
    );
    let _ = writeln!(out, "  {}", event.title);
    let _ = writeln!(out, "  first alert {}, declared {}", event.first_alert_at, event.declared_at);
    let _ = writeln!(out, "  declared because: {}", event.declared_reason);
    let _ = writeln!(out, "  priority: {}", event.severity_reason);
    if event.root_cause.is_empty() {
        let _ = writeln!(out, "  root cause: no catalog service among the alerts");
    } else {
        let _ = writeln!(out, "  root-cause candidates:");
        for (i, rc) in event.root_cause.iter().enumerate() {
            let _ =
                writeln!(out, "    {}. {} (score {}): {}", i + 1, rc.service, rc.score, rc.reason);
        }
    }
    let blast = &event.blast_radius;
    let _ = writeln!(out, "  blast radius {}: {} impacted", blast.score, blast.impacted.len());
    let _ = writeln!(out, "    impacted: {}", or_none(&blast.impacted));
    let _ = writeln!(out, "    user-facing: {}", or_none(&blast.user_facing));
    let _ = writeln!(out, "  owners: {}", or_none(&event.owners));
    let _ = writeln!(out, "  runbooks: {}", or_none(&event.runbooks));
    let _ = writeln!(
        out,
        "  alerts: {} ({} firing){}",
        event.alert_count,
        event.firing_count,
        if event.alerts_omitted > 0 {
            format!(", {} not listed", event.alerts_omitted)
        } else {
            String::new()
        }
    );
    let mut by_service: BTreeMap<&str, Vec<&triage_model::AlertEntry>> = BTreeMap::new();
    for alert in &event.alerts {
        by_service
            .entry(alert.service.as_deref().unwrap_or("(no service label)"))
            .or_default()
            .push(alert);
    }
    for (service, alerts) in by_service {
        let _ = writeln!(out, "    {service}");
        for a in alerts {
            let flap = if a.flapping { ", flapping" } else { "" };
            let _ = writeln!(
                out,
                "      {} {} [{} {}{flap}] since {}: {}",
                a.alertname,
                a.fingerprint,
                a.status.as_str(),
                a.severity.as_str(),
                a.starts_at,
                a.reason
            );
        }
    }
    out
}

fn or_none(items: &[std::sync::Arc<str>]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items.iter().map(|i| i.as_ref()).collect::<Vec<_>>().join(", ")
}
