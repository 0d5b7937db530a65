//! The HTTP requests responders receive: PagerDuty Events API v2 events,
//! Slack messages, signed webhook posts. Pure functions of the notice and
//! the responder's address and secrets (read once at start-up).
//!
//! PagerDuty severity from priority: P1 `critical`, P2 `error`, P3
//! `warning`, P4 `info`.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use triage_config::{Target, TargetKind};
use triage_model::{IncidentEvent, Priority};

use crate::respond::policy::{Action, Notice};

/// PagerDuty's limit on `payload.summary`.
const SUMMARY_CHARS: usize = 1024;
/// Runbooks linked from a PagerDuty event or a Slack message.
const LINKS: usize = 5;

/// A responder with its secrets read.
#[derive(Clone)]
pub struct Prepared {
    /// Its configuration.
    pub target: Target,
    /// Where requests go.
    pub url: String,
    /// PagerDuty routing key, or webhook HMAC key.
    pub key: Option<String>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL of a Slack webhook and the keys are secrets.
        f.debug_struct("Prepared").field("name", &self.target.name).finish_non_exhaustive()
    }
}

impl Prepared {
    /// Reads the responder's secrets; the error names the source only.
    pub fn new(target: &Target) -> Result<Prepared, String> {
        let what = |e: String| format!("responder {:?}: {e}", target.name);
        let (url, key) = match &target.kind {
            TargetKind::PagerDuty { routing_key, url } => {
                (url.clone(), Some(routing_key.read().map_err(what)?))
            }
            TargetKind::Slack { webhook_url } => (webhook_url.read().map_err(what)?, None),
            TargetKind::Webhook { url, hmac_key } => {
                let key = match hmac_key {
                    Some(secret) => Some(secret.read().map_err(what)?),
                    None => None,
                };
                (url.clone(), key)
            }
        };
        Ok(Prepared { target: target.clone(), url, key })
    }
}

/// One request to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Extra headers beside `Content-Type: application/json`.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body.
    pub body: Vec<u8>,
}

/// The request for `notice`; `now_secs` stamps webhook signatures.
pub fn render(prepared: &Prepared, notice: &Notice, now_secs: u64) -> Request {
    let event = &notice.event;
    match &prepared.target.kind {
        TargetKind::PagerDuty { .. } => {
            let key = prepared.key.clone().unwrap_or_default();
            let body = match &notice.action {
                Action::Resolve => json!({
                    "routing_key": key,
                    "event_action": "resolve",
                    "dedup_key": event.incident_id,
                }),
                Action::Trigger(why) => pagerduty_trigger(&key, event, why),
                other => json!({"unexpected": format!("{other:?}")}),
            };
            Request { headers: Vec::new(), body: body.to_string().into_bytes() }
        }
        TargetKind::Slack { .. } => {
            let text = slack_text(&notice.action, event);
            Request { headers: Vec::new(), body: json!({ "text": text }).to_string().into_bytes() }
        }
        TargetKind::Webhook { .. } => {
            let body = serde_json::to_vec(&**event).unwrap_or_default();
            let timestamp = now_secs.to_string();
            let mut headers = vec![
                ("X-Triage-Event-Id", event.event_id.clone()),
                ("X-Triage-Timestamp", timestamp.clone()),
            ];
            if let Some(key) = &prepared.key {
                headers.push(("X-Triage-Signature", signature(key, &timestamp, &body)));
            }
            Request { headers, body }
        }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `timestamp.body` under `key`:
/// receivers recompute it, and reject old timestamps to stop replays.
pub fn signature(key: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes keys of any length; this arm cannot be reached.
        Err(_) => return String::new(),
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// PagerDuty severity for a priority.
pub fn pagerduty_severity(priority: Priority) -> &'static str {
    match priority {
        Priority::P1 => "critical",
        Priority::P2 => "error",
        Priority::P3 => "warning",
        Priority::P4 => "info",
    }
}

fn pagerduty_trigger(key: &str, event: &IncidentEvent, why: &str) -> Value {
    let summary: String = event.title.chars().take(SUMMARY_CHARS).collect();
    let cause = event.root_cause.first().map(|r| r.service.to_string());
    let links: Vec<Value> = event
        .runbooks
        .iter()
        .take(LINKS)
        .map(|url| json!({"href": url, "text": format!("Runbook: {url}")}))
        .collect();
    json!({
        "routing_key": key,
        "event_action": "trigger",
        "dedup_key": event.incident_id,
        "client": "triage",
        "payload": {
            "summary": summary,
            "source": cause.clone().unwrap_or_else(|| "triage".into()),
            "severity": pagerduty_severity(event.severity),
            "timestamp": event.at.to_string(),
            "component": cause,
            "group": event.owners.first(),
            "class": "incident",
            "custom_details": {
                "incident_id": event.incident_id,
                "priority": event.severity.to_string(),
                "why_paged": why,
                "declared_reason": event.declared_reason,
                "severity_reason": event.severity_reason,
                "root_cause": event.root_cause,
                "blast_radius": event.blast_radius,
                "alert_count": event.alert_count,
                "firing_count": event.firing_count,
                "services": event.services,
                "owners": event.owners,
                "event_id": event.event_id,
            },
        },
        "links": links,
    })
}

fn slack_text(action: &Action, event: &IncidentEvent) -> String {
    let cause = match (event.root_cause.first(), event.owners.first()) {
        (Some(r), Some(team)) => format!("likely cause *{}* ({team})", r.service),
        (Some(r), None) => format!("likely cause *{}*", r.service),
        _ => "cause not yet known".to_owned(),
    };
    let radius = &event.blast_radius;
    let impact = format!(
        "blast radius {} over {} services, {} user-facing · {} of {} alerts firing",
        radius.score,
        radius.impacted.len(),
        radius.user_facing.len(),
        event.firing_count,
        event.alert_count
    );
    let runbooks: Vec<String> =
        event.runbooks.iter().take(LINKS).map(|url| format!("<{url}|runbook>")).collect();
    let footer = format!("`{}` · {}", event.incident_id, runbooks.join(" "));
    match action {
        Action::Announce => format!(
            ":rotating_light: *{} · {}*\n{cause} · {impact}\n{footer}",
            event.severity, event.title
        ),
        Action::Update(why) => format!(
            ":arrow_up: *{} · {}* ({why})\n{cause} · {impact}\n{footer}",
            event.severity, event.title
        ),
        Action::Close => {
            let ended = event.resolved_at.unwrap_or(event.at);
            let lasted = triage_correlate::human_duration(ended.since(event.first_alert_at));
            let how = match &event.merged_into {
                Some(other) => format!("merged into `{other}`"),
                None => format!("resolved after {lasted}"),
            };
            let (title, severity) = (&event.title, event.severity);
            format!(":white_check_mark: *{title}* {how} · was {severity}\n{footer}")
        }
        other => format!("{other:?}: {}", event.title),
    }
}
