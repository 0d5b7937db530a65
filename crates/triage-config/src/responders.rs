//! `responders:` validated: where declared incidents are paged (PagerDuty,
//! Slack, signed webhooks), how they are routed (owner team, minimum
//! priority) and how deliveries are retried and bounded. Secrets are kept
//! as their source, read at start-up and never printed.

use std::time::Duration;

use triage_model::Priority;

use crate::raw::{RawResponders, RawTarget};
use crate::stream::Secret;

/// PagerDuty's Events API v2 endpoint.
pub const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// `responders:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponderSettings {
    /// Kafka mode: the consumer group reading the incidents topic.
    pub group_id: String,
    /// Blast radius growth (percent of the score last sent) that re-pages.
    pub repage_growth_percent: u32,
    /// Kafka mode: a consumer group without a committed offset pages the
    /// incidents written this long before it joined; older ones are
    /// remembered, not paged. Zero: only what comes after it joined.
    pub catch_up: std::time::Duration,
    /// Retries and bounds.
    pub delivery: DeliverySettings,
    /// Every responder, PagerDuty first, then Slack, then webhooks, each
    /// in file order.
    pub targets: Vec<Target>,
}

impl Default for ResponderSettings {
    fn default() -> Self {
        ResponderSettings {
            group_id: "triage-responders".into(),
            repage_growth_percent: 50,
            catch_up: std::time::Duration::from_secs(600),
            delivery: DeliverySettings::default(),
            targets: Vec::new(),
        }
    }
}

/// `responders.delivery:` validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliverySettings {
    /// One HTTP attempt.
    pub timeout: Duration,
    /// Attempts before giving up.
    pub max_attempts: u32,
    /// Wait before the first retry; doubled each time, with jitter.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Notifications waiting per responder.
    pub queue: usize,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        DeliverySettings {
            timeout: Duration::from_secs(10),
            max_attempts: 6,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(120),
            queue: 1000,
        }
    }
}

/// One responder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Unique name (logs, metrics).
    pub name: String,
    /// What it is and where it goes.
    pub kind: TargetKind,
    /// Owner teams routed here; empty: the default of its kind.
    pub teams: Vec<String>,
    /// Least urgent priority sent here.
    pub min_severity: Priority,
}

/// A responder's kind and address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetKind {
    /// PagerDuty Events API v2.
    PagerDuty {
        /// The integration's routing key.
        routing_key: Secret,
        /// The events endpoint.
        url: String,
    },
    /// A Slack incoming webhook.
    Slack {
        /// Its URL (a secret: anyone holding it can post).
        webhook_url: Secret,
    },
    /// A generic webhook: every incident event, signed.
    Webhook {
        /// Where to post.
        url: String,
        /// The HMAC-SHA256 key; unsigned without one.
        hmac_key: Option<Secret>,
    },
}

impl TargetKind {
    /// `pagerduty`, `slack` or `webhook`.
    pub fn label(&self) -> &'static str {
        match self {
            TargetKind::PagerDuty { .. } => "pagerduty",
            TargetKind::Slack { .. } => "slack",
            TargetKind::Webhook { .. } => "webhook",
        }
    }
}

/// What validation needs to report problems: a sink for `(path, message)`.
pub(crate) trait Report {
    fn problem(&mut self, path: String, message: String);
}

fn secret(
    report: &mut dyn Report,
    path: &str,
    what: &str,
    file: Option<String>,
    env: Option<String>,
) -> Option<Secret> {
    match (file, env) {
        (Some(_), Some(_)) => {
            report.problem(path.into(), format!("set {what}_file or {what}_env, not both"));
            None
        }
        (Some(file), None) => Some(Secret::File(file.into())),
        (None, Some(env)) => Some(Secret::Env(env)),
        (None, None) => None,
    }
}

fn url(report: &mut dyn Report, path: &str, value: &str) -> bool {
    let ok = (value.starts_with("https://") || value.starts_with("http://"))
        && value.len() > "https://".len();
    if !ok {
        report.problem(path.into(), format!("{value:?} is not an http:// or https:// URL"));
    }
    ok
}

fn priority(report: &mut dyn Report, path: &str, text: Option<String>) -> Priority {
    match text.as_deref() {
        None | Some("P4") => Priority::P4,
        Some("P1") => Priority::P1,
        Some("P2") => Priority::P2,
        Some("P3") => Priority::P3,
        Some(other) => {
            report.problem(path.into(), format!("{other:?} is not one of P1, P2, P3, P4"));
            Priority::P4
        }
    }
}

/// Validates one responder of `section` (`pagerduty`, `slack`, `webhooks`).
fn target(report: &mut dyn Report, section: &str, index: usize, raw: RawTarget) -> Option<Target> {
    let path = format!("responders.{section}[{index}]");
    if raw.name.trim().is_empty() {
        report.problem(format!("{path}.name"), "is required".into());
    }
    let min_severity = priority(report, &format!("{path}.min_severity"), raw.min_severity);
    let stray = |report: &mut dyn Report, set: bool, field: &str| {
        if set {
            report.problem(format!("{path}.{field}"), format!("does not apply to {section}"));
        }
    };
    let kind = match section {
        "pagerduty" => {
            stray(
                report,
                raw.webhook_url_file.is_some() || raw.webhook_url_env.is_some(),
                "webhook_url",
            );
            stray(report, raw.hmac_key_file.is_some() || raw.hmac_key_env.is_some(), "hmac_key");
            let key =
                secret(report, &path, "routing_key", raw.routing_key_file, raw.routing_key_env);
            let endpoint = raw.url.unwrap_or_else(|| PAGERDUTY_EVENTS_URL.into());
            let url_ok = url(report, &format!("{path}.url"), &endpoint);
            match key {
                Some(routing_key) if url_ok => TargetKind::PagerDuty { routing_key, url: endpoint },
                Some(_) => return None,
                None => {
                    report.problem(path, "needs routing_key_file or routing_key_env".into());
                    return None;
                }
            }
        }
        "slack" => {
            stray(
                report,
                raw.routing_key_file.is_some() || raw.routing_key_env.is_some(),
                "routing_key",
            );
            stray(report, raw.hmac_key_file.is_some() || raw.hmac_key_env.is_some(), "hmac_key");
            stray(report, raw.url.is_some(), "url (use webhook_url_file or webhook_url_env)");
            match secret(report, &path, "webhook_url", raw.webhook_url_file, raw.webhook_url_env) {
                Some(webhook_url) => TargetKind::Slack { webhook_url },
                None => {
                    report.problem(path, "needs webhook_url_file or webhook_url_env".into());
                    return None;
                }
            }
        }
        _ => {
            stray(
                report,
                raw.routing_key_file.is_some() || raw.routing_key_env.is_some(),
                "routing_key",
            );
            stray(
                report,
                raw.webhook_url_file.is_some() || raw.webhook_url_env.is_some(),
                "webhook_url",
            );
            let hmac_key = secret(report, &path, "hmac_key", raw.hmac_key_file, raw.hmac_key_env);
            let Some(endpoint) = raw.url else {
                report.problem(format!("{path}.url"), "is required".into());
                return None;
            };
            if !url(report, &format!("{path}.url"), &endpoint) {
                return None;
            }
            TargetKind::Webhook { url: endpoint, hmac_key }
        }
    };
    Some(Target { name: raw.name, kind, teams: raw.teams, min_severity })
}

/// Validates `responders:`; problems go to `report` with their place.
pub(crate) fn validate(report: &mut dyn Report, raw: RawResponders) -> ResponderSettings {
    let defaults = ResponderSettings::default();
    let d = defaults.delivery;
    let duration = |report: &mut dyn Report,
                    field: &str,
                    value: Option<triage_model::DurationSpec>,
                    default: Duration| match value {
        Some(v) if v.0.is_zero() => {
            report
                .problem(format!("responders.delivery.{field}"), "must be longer than zero".into());
            default
        }
        Some(v) => v.0,
        None => default,
    };
    let delivery = DeliverySettings {
        timeout: duration(report, "timeout", raw.delivery.timeout, d.timeout),
        initial_backoff: duration(
            report,
            "initial_backoff",
            raw.delivery.initial_backoff,
            d.initial_backoff,
        ),
        max_backoff: duration(report, "max_backoff", raw.delivery.max_backoff, d.max_backoff),
        max_attempts: match raw.delivery.max_attempts {
            Some(0) => {
                report.problem(
                    "responders.delivery.max_attempts".into(),
                    "must be at least 1".into(),
                );
                d.max_attempts
            }
            Some(n) => n,
            None => d.max_attempts,
        },
        queue: match raw.delivery.queue {
            Some(0) => {
                report.problem("responders.delivery.queue".into(), "must be at least 1".into());
                d.queue
            }
            Some(n) => n,
            None => d.queue,
        },
    };
    let group_id = match raw.group_id {
        Some(g) if g.trim().is_empty() => {
            report.problem("responders.group_id".into(), "must not be empty".into());
            defaults.group_id
        }
        Some(g) => g,
        None => defaults.group_id,
    };
    let mut targets = Vec::new();
    for (section, list) in
        [("pagerduty", raw.pagerduty), ("slack", raw.slack), ("webhooks", raw.webhooks)]
    {
        for (index, raw) in list.into_iter().enumerate() {
            if let Some(t) = target(report, section, index, raw) {
                targets.push(t);
            }
        }
    }
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].iter().any(|other| other.name == t.name) {
            report
                .problem("responders".into(), format!("responder name {:?} is used twice", t.name));
        }
    }
    ResponderSettings {
        group_id,
        repage_growth_percent: raw.repage_growth_percent.unwrap_or(defaults.repage_growth_percent),
        catch_up: raw.catch_up.map_or(defaults.catch_up, |d| d.0),
        delivery,
        targets,
    }
}
