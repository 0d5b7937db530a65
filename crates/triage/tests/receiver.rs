//! The Alertmanager receiver of standalone `triage run` (no Kafka), over
//! real HTTP on a loopback port: a storm posted request by request ends
//! as `triage replay` says, across a restart that restores the state
//! file; everything the receiver cannot take is refused with a status and
//! a reason, and kept; and the responders page PagerDuty, Slack and a
//! signed webhook as the policy says, once per incident. Bridge mode is tested against a broker in
//! `kafka.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{FakeHttp, Scratch, Service, free_port, http, repo, storm, wait_ready};
use serde_json::Value;

const READY_WITHIN: Duration = Duration::from_secs(20);
const STOP_WITHIN: Duration = Duration::from_secs(20);

/// The reference configuration with `replacements` applied, written to
/// the scratch directory.
fn config_with(dir: &Scratch, replacements: &[(&str, &str)]) -> PathBuf {
    let mut text =
        std::fs::read_to_string(repo("config/triage.yaml")).unwrap_or_else(|e| panic!("{e}"));
    for (from, to) in replacements {
        assert!(text.contains(from), "the reference config has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.path("triage.yaml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

fn start(config: &Path, port: u16, dir: &Scratch) -> Service {
    let args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        config.into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
        "--events".into(),
        dir.path("events.jsonl").into(),
        "--rejects".into(),
        dir.path("rejects.jsonl").into(),
    ];
    let service = Service::start(&args, &dir.path("triage.log"));
    wait_ready(port, READY_WITHIN);
    service
}

fn lines_of(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(str::to_owned).collect()
}

#[test]
fn a_storm_posted_to_the_receiver_ends_as_replay_says_across_a_restart() {
    let dir = Scratch::new("standalone");
    let state = dir.path("state.json");
    let state_line = format!("state_file: {:?}", state.display().to_string());
    let config = config_with(
        &dir,
        &[("idle_advance: 1s", "idle_advance: 0s"), ("state_file: \"\"", &state_line)],
    );
    let (_, lines) = storm(&dir, 5, 1);
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let expected = common::replay(&config, &refs, 0, &[]);
    assert!(expected.len() > 10, "a storm worth testing: {} events", expected.len());

    let port = free_port();
    let half = lines.len() / 2;
    for (run, part) in [&lines[..half], &lines[half..]].into_iter().enumerate() {
        let mut service = start(&config, port, &dir);
        for (i, line) in part.iter().enumerate() {
            // Both endpoints take a webhook payload.
            let path = if i % 2 == 0 { "/webhook" } else { "/api/v2/alerts" };
            let answer = http(port, "POST", path, &[], line.as_bytes(), false);
            assert_eq!(answer.status, 200, "run {run} request {i}: {}", answer.body);
            assert_eq!(answer.json()["status"], "success");
            assert!(answer.json()["accepted"].as_u64() >= Some(1));
        }
        assert_eq!(service.terminate(STOP_WITHIN), Some(0), "SIGTERM exits 0");
        assert!(state.exists(), "the state is saved at shutdown");
    }
    let events = lines_of(&dir.path("events.jsonl"));
    assert_eq!(events.len(), expected.len(), "as many events as replay");
    for (i, (got, want)) in events.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "event {i} differs from replay");
    }
    assert!(lines_of(&dir.path("rejects.jsonl")).is_empty());
    let log = std::fs::read_to_string(dir.path("triage.log")).unwrap_or_default();
    assert!(log.contains(&format!("requests_restored={half}")), "{log}");
}

#[test]
fn what_the_receiver_cannot_take_is_refused_with_a_reason_and_kept() {
    let dir = Scratch::new("refusals");
    let token_file = dir.path("token");
    std::fs::write(&token_file, "s3cr3t-token\n").unwrap_or_else(|e| panic!("{e}"));
    let token_line = format!("bearer_token_file: {:?}", token_file.display().to_string());
    let config = config_with(
        &dir,
        &[
            ("# bearer_token_env: TRIAGE_RECEIVER_TOKEN", &token_line),
            ("max_body_bytes: 4194304", "max_body_bytes: 65536"),
        ],
    );
    let port = free_port();
    let mut service = start(&config, port, &dir);
    let good = r#"{"labels":{"alertname":"DiskFull","service":"payments-db"},
                  "startsAt":"2026-01-01T10:00:00Z"}"#;
    let auth = [("Authorization", "Bearer s3cr3t-token")];

    let none = http(port, "POST", "/webhook", &[], good.as_bytes(), false);
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none.headers.contains("www-authenticate: bearer"), "{}", none.headers);
    assert!(none.json()["error"].as_str().is_some_and(|e| e.contains("no bearer token")));
    let wrong = [("Authorization", "Bearer guess")];
    let wrong = http(port, "POST", "/api/v2/alerts", &wrong, good.as_bytes(), false);
    assert_eq!(wrong.status, 401);
    assert!(wrong.json()["error"].as_str().is_some_and(|e| e.contains("wrong bearer token")));
    assert_eq!(http(port, "GET", "/healthz", &[], b"", false).status, 200, "probes need no token");

    let taken = http(port, "POST", "/webhook", &auth, good.as_bytes(), false);
    assert_eq!((taken.status, taken.json()["accepted"].as_u64()), (200, Some(1)), "{}", taken.body);
    let lowercase = [("Authorization", "bearer s3cr3t-token")];
    let lowercase = http(port, "POST", "/api/v2/alerts", &lowercase, good.as_bytes(), false);
    assert_eq!(lowercase.status, 200, "the scheme is case-insensitive: {}", lowercase.body);

    let garbage = http(port, "POST", "/webhook", &auth, b"{not json", false);
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json()["reason"], "json");
    assert!(garbage.json()["error"].as_str().is_some_and(|e| e.contains("column")));

    let old = r#"{"version":"3","alerts":[]}"#;
    let old = http(port, "POST", "/webhook", &auth, old.as_bytes(), false);
    assert_eq!((old.status, old.json()["reason"].clone()), (400, Value::from("version")));

    let mixed = format!(r#"[{good}, {{"labels":{{"alertname":"X"}},"startsAt":"soon"}}]"#);
    let mixed = http(port, "POST", "/api/v2/alerts", &auth, mixed.as_bytes(), false);
    assert_eq!(mixed.status, 200, "one bad alert does not cost the good one");
    assert_eq!(mixed.json()["accepted"], 1);
    assert_eq!(mixed.json()["rejected"][0]["index"], 1);
    assert_eq!(mixed.json()["rejected"][0]["reason"], "timestamp");

    let all_bad = r#"[{"labels":{}}]"#;
    let all_bad = http(port, "POST", "/api/v2/alerts", &auth, all_bad.as_bytes(), false);
    assert_eq!(all_bad.status, 400);
    assert_eq!(all_bad.json()["reason"], "no_usable_alert");
    assert_eq!(all_bad.json()["rejected"][0]["reason"], "no_labels");

    let huge = vec![b' '; 70_000];
    for chunked in [false, true] {
        let answer = http(port, "POST", "/webhook", &auth, &huge, chunked);
        assert_eq!(answer.status, 413, "chunked={chunked}: {}", answer.body);
        assert!(answer.json()["error"].as_str().is_some_and(|e| e.contains("65536")));
    }
    assert_eq!(http(port, "GET", "/webhook", &auth, b"", false).status, 405);
    assert_eq!(http(port, "POST", "/alerts", &auth, good.as_bytes(), false).status, 404);

    assert_eq!(service.terminate(STOP_WITHIN), Some(0));
    let rejects: Vec<Value> = lines_of(&dir.path("rejects.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let reasons: Vec<&str> = rejects.iter().filter_map(|r| r["reason"].as_str()).collect();
    assert_eq!(reasons, ["json", "version", "timestamp", "no_labels"], "{rejects:?}");
    assert_eq!(rejects[0]["record"], "{not json", "the refused body is kept as it came");
    assert_eq!(rejects[2]["alert"], 1);
    let log = std::fs::read_to_string(dir.path("triage.log")).unwrap_or_default();
    assert!(!log.contains("s3cr3t-token"), "the token is never logged");
    assert!(log.contains("requests=10 refused=7"), "{log}");
}

#[test]
fn standalone_pages_pagerduty_slack_and_a_signed_webhook_once_per_incident_across_a_restart() {
    let dir = Scratch::new("standalone-responders");
    let (pagerduty, slack, hook) = (FakeHttp::start(), FakeHttp::start(), FakeHttp::start());
    let secret = |name: &str, value: &str| {
        let path = dir.path(name);
        std::fs::write(&path, format!("{value}\n")).unwrap_or_else(|e| panic!("{e}"));
        format!("{:?}", path.display().to_string())
    };
    let pd_key = secret("pd-key", "R0UT1NGKEY0000000000000000000000");
    let slack_url = secret("slack-url", &format!("http://127.0.0.1:{}/services/T0/B0", slack.port));
    let hmac_key = secret("hmac-key", "webhook-signing-key");
    let pd_line = format!(
        "  pagerduty:\n    - {{name: pd, routing_key_file: {pd_key}, min_severity: P2, \
         url: \"http://127.0.0.1:{}/v2/enqueue\"}}",
        pagerduty.port
    );
    let slack_line = format!("  slack:\n    - {{name: chat, webhook_url_file: {slack_url}}}");
    let hook_line = format!(
        concat!(
            "  webhooks:\n    - {{name: itsm, url: \"http://127.0.0.1:{}/hook\", ",
            "hmac_key_file: {}}}"
        ),
        hook.port, hmac_key
    );
    let state_line = format!("state_file: {:?}", dir.path("state.json").display().to_string());
    let config = config_with(
        &dir,
        &[
            ("idle_advance: 1s", "idle_advance: 0s"),
            ("state_file: \"\"", &state_line),
            ("  pagerduty: []", &pd_line),
            ("  slack: []", &slack_line),
            ("  webhooks: []", &hook_line),
        ],
    );
    let (_, lines) = storm(&dir, 6, 1);
    let port = free_port();
    // Two runs with a restart in the middle: the state file carries what
    // the responders were told, so the second run pages nothing twice.
    let half = lines.len() / 2;
    for part in [&lines[..half], &lines[half..]] {
        let mut service = start(&config, port, &dir);
        for line in part {
            assert_eq!(http(port, "POST", "/webhook", &[], line.as_bytes(), false).status, 200);
        }
        // SIGTERM lets the responders' queues empty before the exit.
        assert_eq!(service.terminate(STOP_WITHIN), Some(0));
    }

    // What the policy says the events call for, responder by responder.
    let events: Vec<triage_model::IncidentEvent> = lines_of(&dir.path("events.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let targets = triage_config::load(&config).map(|c| c.responders.targets);
    let mut policy =
        triage_stream::respond::policy::Policy::new(targets.unwrap_or_else(|e| panic!("{e}")), 50);
    let mut wanted: [Vec<(String, String)>; 3] = Default::default();
    for event in events {
        for notice in policy.decide(&std::sync::Arc::new(event)) {
            let action = format!("{:?}", notice.action);
            let kind = action.split('(').next().unwrap_or_default().to_owned();
            wanted[notice.target].push((notice.event.incident_id.clone(), kind));
        }
    }
    let triggers = wanted[0].iter().filter(|(_, a)| a == "Trigger").count();
    assert!(triggers >= 2 && wanted[2].len() > triggers, "a storm worth paging: {wanted:?}");

    // PagerDuty: exactly those requests, in that order.
    let pd: Vec<(String, String)> = pagerduty
        .actions()
        .into_iter()
        .map(|(incident, action)| {
            let kind = if action == "resolve" { "Resolve" } else { "Trigger" };
            (incident, kind.to_owned())
        })
        .collect();
    assert_eq!(pd, wanted[0], "PagerDuty requests");
    for body in pagerduty.bodies() {
        assert_eq!(body["routing_key"], "R0UT1NGKEY0000000000000000000000");
    }
    // Slack: one message per announce, update and close.
    let messages = slack.bodies();
    assert_eq!(messages.len(), wanted[1].len(), "Slack messages");
    assert!(messages.iter().all(|m| m["text"].as_str().is_some_and(|t| t.contains("inc-"))));
    // The webhook: every event of the incidents it took, each signed;
    // the signatures are checked by Python's hmac, not by triage's code.
    let posts = hook.requests();
    assert_eq!(posts.len(), wanted[2].len(), "webhook posts");
    for (headers, body) in &posts {
        let header = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let timestamp = header("X-Triage-Timestamp").unwrap_or_default();
        let signature = header("X-Triage-Signature").unwrap_or_default();
        let script = "import hmac,hashlib,sys; ts,body=sys.argv[1],sys.stdin.buffer.read(); \
                      print('sha256='+hmac.new(b'webhook-signing-key', ts.encode()+b'.'+body, \
                      hashlib.sha256).hexdigest())";
        let mut python = std::process::Command::new("python3")
            .args(["-c", script, &timestamp])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = python.stdin.take() {
            use std::io::Write as _;
            let _ = stdin.write_all(body);
        }
        let output = python.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), signature, "signature");
        let event: Value = serde_json::from_slice(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            header("X-Triage-Event-Id").as_ref(),
            event["event_id"].as_str().map(|s| s.to_owned()).as_ref()
        );
    }
    let log = std::fs::read_to_string(dir.path("triage.log")).unwrap_or_default();
    for secret in ["R0UT1NGKEY", "services/T0/B0", "webhook-signing-key"] {
        assert!(!log.contains(secret), "the log shows a secret: {secret}");
    }
}
