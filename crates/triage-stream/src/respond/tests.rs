//! Responders against scripted local HTTP servers that play PagerDuty,
//! Slack and a webhook receiver: what is sent, in which order, how often,
//! and what happens on 202, 400, 429 with `Retry-After`, 500, timeouts and
//! refused connections.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use triage_config::{DeliverySettings, ResponderSettings, Secret, Target, TargetKind};
use triage_model::{IncidentEvent, Priority};

use super::Responders;
use super::policy::{Action, Policy};
use super::render::{Prepared, render, signature};
use crate::telemetry::Telemetry;

/// An incident event as triage writes it, with the fields policies read.
fn event(kind: &str, version: u32, severity: &str, score: u64, services: &[&str]) -> IncidentEvent {
    let value = json!({
        "schema": "triage.incident.v1", "event": kind,
        "event_id": format!("inc-1:{version}"), "incident_id": "inc-1", "version": version,
        "at": "2026-01-01T10:05:00Z", "severity": severity,
        "title": "checkout degraded: 3 alerts on 3 services, likely cause payments-db",
        "first_alert_at": "2026-01-01T10:00:00Z", "declared_at": "2026-01-01T10:00:30Z",
        "resolved_at": if kind == "resolved" { json!("2026-01-01T10:42:00Z") } else { Value::Null },
        "declared_reason": "critical alert on checkout", "severity_reason": "...",
        "services": services,
        "root_cause": [{"service": "payments-db", "score": 1.0, "reason": "..."}],
        "blast_radius": {"score": score, "impacted": services, "user_facing": ["web"]},
        "owners": ["team-dba", "team-checkout"],
        "runbooks": ["https://runbooks.example/postgres"],
        "alert_count": 3, "firing_count": 3, "alerts": [],
    });
    serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
}

fn target(name: &str, kind: TargetKind, teams: &[&str], min: Priority) -> Target {
    Target {
        name: name.into(),
        kind,
        teams: teams.iter().map(|t| (*t).into()).collect(),
        min_severity: min,
    }
}

fn pagerduty(url: &str) -> TargetKind {
    TargetKind::PagerDuty { routing_key: Secret::Env("PD_KEY_FOR_TESTS".into()), url: url.into() }
}

fn slack() -> TargetKind {
    TargetKind::Slack { webhook_url: Secret::Env("SLACK_URL_FOR_TESTS".into()) }
}

fn webhook(url: &str) -> TargetKind {
    TargetKind::Webhook { url: url.into(), hmac_key: None }
}

fn actions(policy: &mut Policy, event: IncidentEvent) -> Vec<(usize, Action)> {
    policy.decide(&Arc::new(event)).into_iter().map(|n| (n.target, n.action)).collect()
}

#[test]
fn one_page_per_incident_then_only_escalation_or_growth_repages() {
    let targets = vec![
        target("dba", pagerduty("http://pd"), &["team-dba"], Priority::P2),
        target("pd-default", pagerduty("http://pd"), &[], Priority::P2),
        target("chat", slack(), &[], Priority::P4),
        target("itsm", webhook("http://hook"), &[], Priority::P4),
    ];
    let mut policy = Policy::new(targets, 50);
    let declared = actions(&mut policy, event("declared", 1, "P2", 40, &["checkout"]));
    // team-dba owns the likely cause: its service, not the default, pages.
    assert_eq!(
        declared,
        [(0, Action::Trigger("declared".into())), (2, Action::Announce), (3, Action::Forward)]
    );
    // One more alert on a service already listed: nothing pages.
    let small = actions(&mut policy, event("updated", 2, "P2", 45, &["checkout"]));
    assert_eq!(small, [(3, Action::Forward)]);
    // New services are news in the channel, not a page.
    let wider = actions(&mut policy, event("updated", 3, "P2", 50, &["checkout", "payments"]));
    assert!(matches!(wider[0], (2, Action::Update(ref why)) if why.contains("2 services")));
    assert_eq!(wider.len(), 2);
    // Escalation re-triggers with the same dedup key.
    let escalated = actions(&mut policy, event("updated", 4, "P1", 55, &["checkout", "payments"]));
    assert!(matches!(&escalated[0], (0, Action::Trigger(why)) if why == "escalated P2 -> P1"));
    // Growth by 50% of the score last sent (55 -> 83) re-triggers too.
    let grew = actions(&mut policy, event("updated", 5, "P1", 83, &["checkout", "payments"]));
    assert!(matches!(&grew[0], (0, Action::Trigger(why)) if why.contains("55 -> 83")));
    // A re-delivered event changes nothing.
    assert!(actions(&mut policy, event("updated", 5, "P1", 83, &["checkout"])).is_empty());
    let resolved = actions(&mut policy, event("resolved", 6, "P1", 83, &["checkout"]));
    assert_eq!(resolved, [(0, Action::Resolve), (2, Action::Close), (3, Action::Forward)]);
    assert_eq!(policy.engaged(), 0, "nothing is remembered after the end");
}

#[test]
fn an_incident_below_the_minimum_pages_once_it_escalates_into_it() {
    let targets = vec![target("pd", pagerduty("http://pd"), &[], Priority::P2)];
    let mut policy = Policy::new(targets, 50);
    assert!(actions(&mut policy, event("declared", 1, "P3", 10, &["a"])).is_empty());
    let now = actions(&mut policy, event("updated", 2, "P2", 12, &["a"]));
    assert_eq!(now, [(0, Action::Trigger("now P2".into()))]);
    // An incident never paged here is not resolved here either.
    let mut other = Policy::new(vec![target("pd", pagerduty("http://pd"), &[], Priority::P1)], 50);
    assert!(actions(&mut other, event("declared", 1, "P3", 10, &["a"])).is_empty());
    assert!(actions(&mut other, event("resolved", 2, "P3", 10, &["a"])).is_empty());
}

#[test]
fn a_resolution_with_no_memory_of_the_page_still_resolves_at_pagerduty() {
    // Standalone after a restart: the declaration was paged by the process
    // before; this one only sees the end.
    let targets = vec![
        target("pd", pagerduty("http://pd"), &[], Priority::P2),
        target("chat", slack(), &[], Priority::P4),
    ];
    let mut policy = Policy::new(targets, 50);
    let resolved = actions(&mut policy, event("resolved", 7, "P1", 80, &["checkout"]));
    assert_eq!(resolved, [(0, Action::Resolve)], "resolve at PagerDuty, no orphan message");
}

#[test]
fn a_team_without_its_own_responder_goes_to_the_default() {
    let targets = vec![
        target("web-team", pagerduty("http://pd"), &["team-web"], Priority::P4),
        target("default", pagerduty("http://pd"), &[], Priority::P4),
    ];
    let mut policy = Policy::new(targets, 50);
    let paged = actions(&mut policy, event("declared", 1, "P2", 40, &["checkout"]));
    assert_eq!(paged, [(1, Action::Trigger("declared".into()))], "team-dba has no responder");
}

#[test]
fn requests_carry_what_each_service_expects() {
    let pd = Prepared {
        target: target("pd", pagerduty("http://pd"), &[], Priority::P4),
        url: "http://pd".into(),
        key: Some("R0UT1NGKEY".into()),
    };
    let declared = Arc::new(event("declared", 1, "P1", 80, &["checkout", "payments-db"]));
    let notice = super::policy::Notice {
        target: 0,
        action: Action::Trigger("declared".into()),
        event: declared.clone(),
    };
    let body: Value = serde_json::from_slice(&render(&pd, &notice, 0).body).unwrap_or_default();
    assert_eq!(body["routing_key"], "R0UT1NGKEY");
    assert_eq!(body["event_action"], "trigger");
    assert_eq!(body["dedup_key"], "inc-1");
    assert_eq!(body["payload"]["severity"], "critical");
    assert_eq!(body["payload"]["source"], "payments-db");
    assert_eq!(body["payload"]["custom_details"]["root_cause"][0]["service"], "payments-db");
    assert_eq!(body["payload"]["custom_details"]["alert_count"], 3);
    assert_eq!(body["links"][0]["href"], "https://runbooks.example/postgres");
    assert!(
        body["payload"]["summary"].as_str().is_some_and(|s| s.starts_with("checkout degraded"))
    );

    let chat = Prepared {
        target: target("chat", slack(), &[], Priority::P4),
        url: "http://slack".into(),
        key: None,
    };
    let resolved = Arc::new(event("resolved", 3, "P1", 80, &["checkout"]));
    let close = super::policy::Notice { target: 0, action: Action::Close, event: resolved };
    let text: Value = serde_json::from_slice(&render(&chat, &close, 0).body).unwrap_or_default();
    let text = text["text"].as_str().unwrap_or_default();
    assert!(text.contains("resolved after 42m"), "{text}");

    // The signature is HMAC-SHA256 over "timestamp.body"; the expected
    // value comes from Python's hmac module, an independent implementation.
    assert_eq!(
        signature("webhook-key", "1764763200", br#"{"event":"declared"}"#),
        "sha256=07b39388c6aefa56af45fc2e3a9db71ad2598baf0ec2ff5765f6a28b34e96d95"
    );
    let hook = Prepared {
        target: target("hook", webhook("http://hook"), &[], Priority::P4),
        url: "http://hook".into(),
        key: Some("webhook-key".into()),
    };
    let forward = super::policy::Notice { target: 0, action: Action::Forward, event: declared };
    let request = render(&hook, &forward, 1_764_763_200);
    let header = |name: &str| {
        request.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    assert_eq!(header("X-Triage-Signature"), signature("webhook-key", "1764763200", &request.body));
    assert_eq!(header("X-Triage-Event-Id"), "inc-1:1");
    let sent: IncidentEvent =
        serde_json::from_slice(&request.body).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sent.incident_id, "inc-1", "the webhook body is the event itself");
}

/// One scripted answer: status, `Retry-After`, how long to take.
type Answer = (u16, Option<&'static str>, Duration);

/// A scripted HTTP server: answers from `script` in order (then 202),
/// records every request body.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Answer>>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

async fn answer(State(script): State<Script>, _headers: HeaderMap, body: Bytes) -> Response {
    let next = script.answers.lock().ok().and_then(|mut a| a.pop_front());
    if let Ok(mut seen) = script.seen.lock() {
        seen.push(serde_json::from_slice(&body).unwrap_or(Value::Null));
    }
    let (status, retry_after, delay) = next.unwrap_or((202, None, Duration::ZERO));
    tokio::time::sleep(delay).await;
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    match retry_after {
        Some(seconds) => (status, [("Retry-After", seconds)], "{}").into_response(),
        None => (status, r#"{"status":"ok"}"#).into_response(),
    }
}

async fn serve(script: Script) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await;
    let listener = listener.unwrap_or_else(|e| panic!("{e}"));
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let router = Router::new().fallback(answer).with_state(script);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    format!("http://{address}/v2/enqueue")
}

fn settings(targets: Vec<Target>) -> ResponderSettings {
    ResponderSettings {
        delivery: DeliverySettings {
            timeout: Duration::from_millis(300),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            queue: 16,
        },
        targets,
        ..ResponderSettings::default()
    }
}

fn counter(telemetry: &Telemetry, family: &str, labels: &[&str]) -> f64 {
    telemetry
        .metrics
        .gather()
        .iter()
        .filter(|f| f.name() == family)
        .flat_map(|f| f.get_metric().to_vec())
        .filter(|m| {
            let values: Vec<&str> = m.get_label().iter().map(|l| l.value()).collect();
            labels.iter().all(|l| values.contains(l))
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_retry_what_a_retry_fixes_and_record_the_rest() {
    let pd_script = Script::default();
    if let Ok(mut answers) = pd_script.answers.lock() {
        answers.extend([
            (500, None, Duration::ZERO),             // retried
            (429, Some("1"), Duration::ZERO),        // retried after 1s
            (202, None, Duration::from_millis(500)), // too slow: timeout, retried
            (202, None, Duration::ZERO),             // trigger delivered
            (400, None, Duration::ZERO),             // resolve refused: not retried
        ]);
    }
    let pd_url = serve(pd_script.clone()).await;
    let key_file = std::env::temp_dir().join(format!("triage-pd-key-{}", std::process::id()));
    std::fs::write(&key_file, "R0UT1NGKEY\n").unwrap_or_else(|e| panic!("{e}"));
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(1);
    let targets = vec![
        target(
            "pd",
            TargetKind::PagerDuty {
                routing_key: Secret::File(key_file.clone()),
                url: pd_url.clone(),
            },
            &[],
            Priority::P4,
        ),
        // Nothing listens here: every attempt is refused, then it gives up.
        target(
            "gone",
            webhook(&format!("http://127.0.0.1:{refused_port}/hook")),
            &[],
            Priority::P4,
        ),
    ];
    let telemetry = Arc::new(Telemetry::default());
    let handle = tokio::runtime::Handle::current();
    let responders = Responders::start(&settings(targets), telemetry.clone(), &handle)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("two responders"));
    let started = std::time::Instant::now();
    responders.offer(event("declared", 1, "P1", 80, &["checkout"]));
    responders.offer(event("resolved", 2, "P1", 80, &["checkout"]));
    responders.drain(Duration::from_secs(20)).await;

    let seen = pd_script.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let actions: Vec<&str> = seen.iter().filter_map(|b| b["event_action"].as_str()).collect();
    assert_eq!(actions, ["trigger", "trigger", "trigger", "trigger", "resolve"], "{seen:?}");
    assert!(seen.iter().all(|b| b["dedup_key"] == "inc-1" && b["routing_key"] == "R0UT1NGKEY"));
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After was honoured");
    assert_eq!(counter(&telemetry, "triage_pages_sent_total", &["pd"]), 1.0);
    assert_eq!(counter(&telemetry, "triage_responder_deliveries_total", &["pd", "refused"]), 1.0);
    assert_eq!(counter(&telemetry, "triage_responder_retries_total", &["pd"]), 3.0);
    assert_eq!(counter(&telemetry, "triage_responder_deliveries_total", &["gone", "gave_up"]), 2.0);
    assert_eq!(counter(&telemetry, "triage_responder_retries_total", &["gone"]), 6.0);
    let _ = std::fs::remove_file(key_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_and_counts_instead_of_waiting() {
    let script = Script::default();
    if let Ok(mut answers) = script.answers.lock() {
        // The first delivery hangs past the timeout on every attempt.
        answers.extend(std::iter::repeat_n((202, None, Duration::from_secs(2)), 4));
    }
    let url = serve(script).await;
    let mut config = settings(vec![target("slow", webhook(&url), &[], Priority::P4)]);
    config.delivery.queue = 2;
    let telemetry = Arc::new(Telemetry::default());
    let handle = tokio::runtime::Handle::current();
    let responders = Responders::start(&config, telemetry.clone(), &handle)
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("one responder"));
    for version in 1..=8 {
        let kind = if version == 1 { "declared" } else { "updated" };
        responders.offer(event(kind, version, "P2", 40, &["checkout"]));
    }
    let dropped = counter(&telemetry, "triage_responder_deliveries_total", &["slow", "dropped"]);
    assert!(dropped >= 5.0, "8 offered, at most 1 in flight and 2 queued: {dropped} dropped");
    responders.drain(Duration::from_millis(100)).await;
}
