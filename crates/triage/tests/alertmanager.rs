//! A real Alertmanager (Debian's `prometheus-alertmanager`, installed by
//! `./scripts/setup`) routed by `config/alertmanager.yml` to a standalone
//! triage: the sample route passes amtool's check, and alerts fed to
//! Alertmanager's API end as a declared and then a resolved incident in
//! triage, through the bearer token, with nothing rejected.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Scratch, Service, free_port, http, repo, wait_ready};
use serde_json::{Value, json};

fn tool(names: &[&str]) -> PathBuf {
    for name in names {
        for dir in ["/usr/bin", "/usr/local/bin"] {
            let path = Path::new(dir).join(name);
            if path.exists() {
                return path;
            }
        }
    }
    panic!("none of {names:?} is installed; ./scripts/setup installs prometheus-alertmanager")
}

/// An Alertmanager process, killed on drop.
struct Alertmanager(Child);

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rfc3339(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    triage_model::Timestamp::from_unix_secs(secs as i64).to_string()
}

fn events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The first event that `wanted`, waiting up to `bound` for it.
fn wait_for_event(path: &Path, wanted: impl Fn(&Value) -> bool, bound: Duration) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(event) = events(path).into_iter().find(|e| wanted(e)) {
            return event;
        }
        assert!(Instant::now() < deadline, "no such event within {bound:?}: {:?}", events(path));
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_sample_route_passes_amtool() {
    let output = Command::new(tool(&["amtool"]))
        .arg("check-config")
        .arg(repo("config/alertmanager.yml"))
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn alertmanager_posts_to_triage_and_the_alerts_become_one_incident() {
    let dir = Scratch::new("alertmanager");
    let token = dir.path("token");
    std::fs::write(&token, "am-to-triage\n").unwrap_or_else(|e| panic!("{e}"));
    let token_path = token.display().to_string();

    // triage, standalone, with short timers so the test takes seconds.
    let reference =
        std::fs::read_to_string(repo("config/triage.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let triage_config = dir.path("triage.yaml");
    let text = reference
        .replace("allowed_lateness: 30s", "allowed_lateness: 1s")
        .replace("quiet_period: 5m", "quiet_period: 2s")
        .replace("min_interval: 1m", "min_interval: 1s")
        .replace(
            "# bearer_token_env: TRIAGE_RECEIVER_TOKEN",
            &format!("bearer_token_file: {token_path:?}"),
        );
    std::fs::write(&triage_config, text).unwrap_or_else(|e| panic!("{e}"));
    let triage_port = free_port();
    let events_path = dir.path("events.jsonl");
    let rejects_path = dir.path("rejects.jsonl");
    let args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        triage_config.into(),
        "--listen".into(),
        format!("127.0.0.1:{triage_port}").into(),
        "--events".into(),
        events_path.clone().into(),
        "--rejects".into(),
        rejects_path.clone().into(),
    ];
    let mut triage = Service::start(&args, &dir.path("triage.log"));
    wait_ready(triage_port, Duration::from_secs(20));

    // Alertmanager with the sample route, pointed at this triage.
    let sample =
        std::fs::read_to_string(repo("config/alertmanager.yml")).unwrap_or_else(|e| panic!("{e}"));
    let am_config = dir.path("alertmanager.yml");
    let text = sample
        .replace("http://triage:9097/webhook", &format!("http://127.0.0.1:{triage_port}/webhook"))
        .replace("/run/secrets/triage-token", &token_path);
    std::fs::write(&am_config, text).unwrap_or_else(|e| panic!("{e}"));
    let am_port = free_port();
    let log = std::fs::File::create(dir.path("alertmanager.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(tool(&["prometheus-alertmanager", "alertmanager"]))
        .arg(format!("--config.file={}", am_config.display()))
        .arg(format!("--storage.path={}", dir.path("am-data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{am_port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let _alertmanager = Alertmanager(child);
    common::wait_for_200(am_port, "/-/ready", Duration::from_secs(30));

    // A database failure and the services calling it, as Prometheus
    // would post them to Alertmanager.
    let now = SystemTime::now();
    let alert = |name: &str, service: &str, severity: &str, ends: Option<SystemTime>| {
        let mut alert = json!({
            "labels": {"alertname": name, "service": service, "severity": severity,
                       "cluster": "eu-1"},
            "annotations": {"summary": format!("{name} on {service}")},
            "startsAt": rfc3339(now),
        });
        if let Some(end) = ends {
            alert["endsAt"] = json!(rfc3339(end));
        }
        alert
    };
    let storm = |ends: Option<SystemTime>| {
        json!([
            alert("PostgresDown", "payments-db", "critical", ends),
            alert("HighErrorRate", "payment", "critical", ends),
            alert("HighErrorRate", "checkout", "critical", ends),
            alert("HighLatency", "api-gateway", "warning", ends),
        ])
        .to_string()
    };
    let posted = http(am_port, "POST", "/api/v2/alerts", &[], storm(None).as_bytes(), false);
    assert_eq!(posted.status, 200, "{}", posted.body);

    // Alertmanager sends each alert on its own; the first critical one
    // declares, the others join it and update it.
    let declared = wait_for_event(&events_path, |_| true, Duration::from_secs(60));
    assert_eq!(declared["event"], "declared");
    let all_in = wait_for_event(
        &events_path,
        |e| {
            let services = e["services"].as_array().cloned().unwrap_or_default();
            ["payments-db", "payment", "checkout"].iter().all(|s| services.contains(&json!(s)))
        },
        Duration::from_secs(60),
    );
    assert_eq!(all_in["incident_id"], declared["incident_id"], "{all_in}");
    assert_eq!(all_in["root_cause"][0]["service"], "payments-db", "{all_in}");

    // Resolve them in Alertmanager: its resolved notifications end the
    // incident once quiet_period passed.
    let ended = SystemTime::now();
    let resolved =
        http(am_port, "POST", "/api/v2/alerts", &[], storm(Some(ended)).as_bytes(), false);
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    let resolution =
        wait_for_event(&events_path, |e| e["event"] == "resolved", Duration::from_secs(90));
    assert_eq!(resolution["incident_id"], declared["incident_id"]);

    assert_eq!(triage.terminate(Duration::from_secs(20)), Some(0));
    let incidents: std::collections::BTreeSet<String> = events(&events_path)
        .iter()
        .filter_map(|e| e["incident_id"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(incidents.len(), 1, "one incident for the whole storm: {incidents:?}");
    let rejects = std::fs::read_to_string(&rejects_path).unwrap_or_default();
    assert!(rejects.is_empty(), "nothing rejected: {rejects}");
    let log = std::fs::read_to_string(dir.path("triage.log")).unwrap_or_default();
    assert!(!log.contains("request refused"), "Alertmanager's token was accepted: {log}");
}
