//! What each responder is told, decided from the incident events alone:
//! a pure, deterministic state machine (same events, same notices), so the
//! Kafka responder can rebuild its state by running it over the incidents
//! topic without sending anything.
//!
//! # Routing
//! An incident's team is the first of its `owners`: the owner of its
//! likeliest cause. A responder listing teams takes the incidents of those
//! teams; one listing none is the default of its kind, taking incidents of
//! teams that no responder of its kind lists. Either way only at
//! `min_severity` or more urgent. Once an incident went to a responder it
//! stays there: its updates and resolution follow, wherever its owners
//! move, because PagerDuty resolves an alert only on the service it was
//! triggered on.
//!
//! # What is sent
//! - PagerDuty: `trigger` when the incident first routes here; `trigger`
//!   again (same `dedup_key`) when it escalates in priority or its blast
//!   radius score grew `repage_growth_percent` since last sent, so that the
//!   responders hear it; `resolve` at the end. Other updates send nothing.
//! - Slack: a message when it first routes here, on material change
//!   (escalation, growth, new services, a new likely cause) and at the end.
//! - Webhook: every event, from the first that routes here.
//!
//! An event not newer than the last one handled for an incident (a
//! re-delivery) changes nothing and sends nothing. A resolution of an
//! incident with no memory of a page (standalone, after a restart) still
//! resolves at PagerDuty where it routes: resolving an unknown `dedup_key`
//! is harmless, leaving an alert open is not.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use triage_config::{Target, TargetKind};
use triage_model::{EventKind, IncidentEvent, Priority};

/// What one responder is to be told about one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    /// Index of the responder in the configuration's list.
    pub target: usize,
    /// What to send.
    pub action: Action,
    /// The event it is about.
    pub event: Arc<IncidentEvent>,
}

/// The kinds of messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// PagerDuty `trigger`, with why (`declared`, `escalated to P1`, ...).
    Trigger(String),
    /// PagerDuty `resolve`.
    Resolve,
    /// Slack: the incident is news here.
    Announce,
    /// Slack: something material changed, and what.
    Update(String),
    /// Slack: it is over.
    Close,
    /// Webhook: the event itself.
    Forward,
}

/// What was last sent to a responder about an incident.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    /// The last event version handled (sent or not).
    version: u32,
    severity: Priority,
    blast: u64,
    services: usize,
    cause: Option<Arc<str>>,
}

/// One entry of the memory of what was sent, as a state file keeps it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Remembered {
    /// The responder's name.
    pub responder: String,
    /// The incident.
    pub incident: String,
    /// What it was last told.
    pub sent: Sent,
}

/// The routing and the memory of what was sent.
pub struct Policy {
    targets: Vec<Target>,
    repage_growth_percent: u32,
    sent: FxHashMap<(usize, String), Sent>,
}

impl Policy {
    /// For these responders.
    pub fn new(targets: Vec<Target>, repage_growth_percent: u32) -> Policy {
        Policy { targets, repage_growth_percent, sent: FxHashMap::default() }
    }

    /// The responders, in configuration order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Forgets everything sent.
    pub fn forget(&mut self) {
        self.sent.clear();
    }

    /// What was sent, by responder name and incident, for a state file.
    pub fn memory(&self) -> Vec<Remembered> {
        let mut memory: Vec<Remembered> = self
            .sent
            .iter()
            .map(|((index, incident), sent)| Remembered {
                responder: self.targets[*index].name.clone(),
                incident: incident.clone(),
                sent: sent.clone(),
            })
            .collect();
        memory.sort_by(|a, b| (&a.responder, &a.incident).cmp(&(&b.responder, &b.incident)));
        memory
    }

    /// Takes back [`Policy::memory`]; responders no longer configured are
    /// left out.
    pub fn recall(&mut self, memory: Vec<Remembered>) {
        for remembered in memory {
            if let Some(index) = self.targets.iter().position(|t| t.name == remembered.responder) {
                self.sent.insert((index, remembered.incident), remembered.sent);
            }
        }
    }

    /// Incidents currently engaged with some responder.
    pub fn engaged(&self) -> usize {
        self.sent.len()
    }

    fn routes_here(&self, index: usize, team: Option<&str>, severity: Priority) -> bool {
        let target = &self.targets[index];
        if target.min_severity.is_above(severity) {
            return false;
        }
        let Some(team) = team else { return target.teams.is_empty() };
        if !target.teams.is_empty() {
            return target.teams.iter().any(|t| t == team);
        }
        // The default of its kind: only for teams nobody of its kind lists.
        let kind = target.kind.label();
        !self
            .targets
            .iter()
            .any(|other| other.kind.label() == kind && other.teams.iter().any(|t| t == team))
    }

    /// The notices `event` causes, in responder order.
    pub fn decide(&mut self, event: &Arc<IncidentEvent>) -> Vec<Notice> {
        let team = event.owners.first().map(|t| &**t);
        let cause = event.root_cause.first().map(|r| r.service.clone());
        let now = Sent {
            version: event.version,
            severity: event.severity,
            blast: event.blast_radius.score,
            services: event.services.len(),
            cause,
        };
        let resolved = event.event == EventKind::Resolved;
        let mut notices = Vec::new();
        for index in 0..self.targets.len() {
            let key = (index, event.incident_id.clone());
            let kind = &self.targets[index].kind;
            let action = match self.sent.get(&key) {
                Some(sent) if event.version <= sent.version => None,
                Some(_) if resolved => {
                    self.sent.remove(&key);
                    match kind {
                        TargetKind::PagerDuty { .. } => Some(Action::Resolve),
                        TargetKind::Slack { .. } => Some(Action::Close),
                        TargetKind::Webhook { .. } => Some(Action::Forward),
                    }
                }
                Some(sent) => {
                    let change = self.material_change(sent, &now);
                    let action = match (kind, change) {
                        (TargetKind::PagerDuty { .. }, Some(Change::Escalated(why)))
                        | (TargetKind::PagerDuty { .. }, Some(Change::Grew(why))) => {
                            Some(Action::Trigger(why))
                        }
                        (TargetKind::PagerDuty { .. }, _) => None,
                        (TargetKind::Slack { .. }, Some(change)) => {
                            Some(Action::Update(change.text()))
                        }
                        (TargetKind::Slack { .. }, None) => None,
                        (TargetKind::Webhook { .. }, _) => Some(Action::Forward),
                    };
                    // "Since last sent" counts from what was sent; a silent
                    // event only moves the version on.
                    if let Some(entry) = self.sent.get_mut(&key) {
                        if action.is_some() {
                            *entry = now.clone();
                        } else {
                            entry.version = now.version;
                        }
                    }
                    action
                }
                // Resolved with no memory of a page (a standalone restart):
                // a resolve for an unknown dedup_key changes nothing at
                // PagerDuty, a missed one leaves an alert open forever.
                None if resolved => match kind {
                    TargetKind::PagerDuty { .. }
                        if self.routes_here(index, team, event.severity) =>
                    {
                        Some(Action::Resolve)
                    }
                    _ => None,
                },
                None if self.routes_here(index, team, event.severity) => {
                    self.sent.insert(key, now.clone());
                    Some(match kind {
                        TargetKind::PagerDuty { .. } if event.event == EventKind::Declared => {
                            Action::Trigger("declared".into())
                        }
                        TargetKind::PagerDuty { .. } => {
                            Action::Trigger(format!("now {}", event.severity))
                        }
                        TargetKind::Slack { .. } => Action::Announce,
                        TargetKind::Webhook { .. } => Action::Forward,
                    })
                }
                None => None,
            };
            if let Some(action) = action {
                notices.push(Notice { target: index, action, event: event.clone() });
            }
        }
        notices
    }

    fn material_change(&self, sent: &Sent, now: &Sent) -> Option<Change> {
        if now.severity.is_above(sent.severity) {
            return Some(Change::Escalated(format!(
                "escalated {} -> {}",
                sent.severity, now.severity
            )));
        }
        let grown = sent.blast.saturating_mul(u64::from(100 + self.repage_growth_percent));
        if now.blast > sent.blast && now.blast.saturating_mul(100) >= grown {
            return Some(Change::Grew(format!(
                "blast radius grew {} -> {}",
                sent.blast, now.blast
            )));
        }
        if now.cause != sent.cause {
            let cause = now.cause.as_deref().unwrap_or("unknown");
            return Some(Change::Other(format!("likely cause now {cause}")));
        }
        if now.services > sent.services {
            return Some(Change::Other(format!(
                "{} services alerting (was {})",
                now.services, sent.services
            )));
        }
        None
    }
}

/// Why an update matters.
enum Change {
    Escalated(String),
    Grew(String),
    Other(String),
}

impl Change {
    fn text(self) -> String {
        match self {
            Change::Escalated(t) | Change::Grew(t) | Change::Other(t) => t,
        }
    }
}
