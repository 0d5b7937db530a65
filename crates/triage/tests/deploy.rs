//! The deployment files (`deploy/`), checked with the real tools and
//! parsers, since no container engine runs here: promtool and amtool on the
//! Prometheus and Alertmanager files, YAML and JSON parsers on the rest,
//! triage's own validation on the configuration the Kubernetes manifests
//! carry. And the board cannot drift from the metrics: every panel's query
//! runs against a real Prometheus scraping a real triage on Kafka that a
//! storm went through, and must return data.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Broker, Scratch, Service, free_port, http, repo, storm, wait_ready};
use serde_json::Value;

fn tool(name: &str) -> PathBuf {
    let path = Path::new("/usr/bin").join(name);
    assert!(path.exists(), "{name} is missing; ./scripts/setup installs it");
    path
}

fn run_tool(name: &str, args: &[&str], file: &Path) -> String {
    let output =
        Command::new(tool(name)).args(args).arg(file).output().unwrap_or_else(|e| panic!("{e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{name} {args:?} {}: {text}", file.display());
    text
}

fn yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---")
        .filter(|doc| doc.lines().any(|l| !l.trim().is_empty() && !l.starts_with('#')))
        .map(|doc| {
            serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

/// Every query of the board, in panel order.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("deploy/grafana/triage.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let board: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let mut queries = Vec::new();
    for panel in board["panels"].as_array().cloned().unwrap_or_default() {
        for target in panel["targets"].as_array().cloned().unwrap_or_default() {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            queries.push((title, target["expr"].as_str().unwrap_or_default().to_owned()));
        }
    }
    queries
}

fn rule_exprs() -> Vec<(String, String)> {
    let rules = yaml(&repo("deploy/prometheus/triage-rules.yml"));
    let mut exprs = Vec::new();
    for group in rules["groups"].as_array().cloned().unwrap_or_default() {
        for rule in group["rules"].as_array().cloned().unwrap_or_default() {
            let name = rule["alert"].as_str().unwrap_or_default().to_owned();
            exprs.push((name, rule["expr"].as_str().unwrap_or_default().to_owned()));
        }
    }
    exprs
}

/// The `triage_*` metric names an expression uses, without histogram
/// suffixes.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("triage_") {
        let tail = &rest[at..];
        let end =
            tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        names.insert(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn prometheus_and_alertmanager_files_pass_their_own_tools() {
    let config =
        run_tool("promtool", &["check", "config"], &repo("deploy/prometheus/prometheus.yml"));
    assert!(config.contains("1 rule files found"), "{config}");
    let rules =
        run_tool("promtool", &["check", "rules"], &repo("deploy/prometheus/triage-rules.yml"));
    assert!(rules.contains("6 rules found"), "{rules}");
    run_tool("amtool", &["check-config"], &repo("deploy/alertmanager/alertmanager.yml"));
}

#[test]
fn the_board_and_the_rules_use_only_metrics_triage_serves() {
    let telemetry = triage_stream::Telemetry::default();
    // Series that exist once a responder is configured.
    telemetry.responder_ready("board", "webhook");
    let served: BTreeSet<String> =
        telemetry.metrics.gather().iter().map(|f| f.name().to_owned()).collect();
    let mut used = BTreeSet::new();
    for (place, expr) in dashboard_queries().into_iter().chain(rule_exprs()) {
        for name in metric_names(&expr) {
            let known = served.contains(&name) || name == "triage_consumer_lag_records";
            assert!(known, "{place}: {name} is not a metric triage serves");
            used.insert(name);
        }
    }
    for needed in [
        "triage_records_received_total",
        "triage_alerts_unique_total",
        "triage_incidents_declared_total",
        "triage_time_to_declare_seconds",
        "triage_consumer_lag_records",
        "triage_dead_letters_total",
        "triage_open_incidents",
        "triage_pages_sent_total",
    ] {
        assert!(used.contains(needed), "the board shows {needed}");
    }
}

#[test]
fn compose_kubernetes_grafana_and_docker_files_hold_together() {
    let deploy = repo("deploy");
    let compose = yaml(&deploy.join("docker-compose.yml"));
    let services = compose["services"].as_object().cloned().unwrap_or_default();
    for name in ["kafka", "kafka-init", "triage", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "compose has {name}");
    }
    let roles = compose["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"].as_str();
    assert_eq!(roles, Some("broker,controller"), "Kafka runs in KRaft mode");
    let command: Vec<&str> = compose["services"]["triage"]["command"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for arg in ["--brokers", "kafka:9092", "--listen", "0.0.0.0:9097"] {
        assert!(command.contains(&arg), "triage command has {arg}: {command:?}");
    }
    // Every file the stack mounts exists.
    for (name, service) in &services {
        for volume in service["volumes"].as_array().cloned().unwrap_or_default() {
            let source = volume.as_str().unwrap_or_default().split(':').next().unwrap_or_default();
            if source.starts_with('.') {
                assert!(deploy.join(source).exists(), "{name} mounts missing {source}");
            }
        }
    }
    let init = compose["services"]["kafka-init"]["command"][0].as_str().unwrap_or_default();
    for topic in ["alerts", "triage-state", "incidents", "alerts-dead-letters"] {
        assert!(init.contains(&format!("--topic {topic} ")), "kafka-init creates {topic}");
    }

    // Kubernetes: the resources listed exist, the probes point at the
    // right paths, and the configuration validates as triage reads it.
    let k8s = deploy.join("kubernetes");
    let kustomization = yaml(&k8s.join("kustomization.yaml"));
    let mut kinds = BTreeSet::new();
    let mut config_text = String::new();
    for resource in kustomization["resources"].as_array().cloned().unwrap_or_default() {
        let file = k8s.join(resource.as_str().unwrap_or_default());
        for document in yaml_documents(&file) {
            let kind = document["kind"].as_str().unwrap_or_default().to_owned();
            if kind == "Deployment" {
                let container = &document["spec"]["template"]["spec"]["containers"][0];
                assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
                assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
                assert_eq!(container["ports"][0]["containerPort"], 9097);
                let security = &document["spec"]["template"]["spec"]["securityContext"];
                assert_eq!(security["runAsNonRoot"], true);
            }
            if kind == "ConfigMap" {
                config_text = document["data"]["triage.yaml"].as_str().unwrap_or_default().into();
            }
            kinds.insert(kind);
        }
    }
    for kind in ["Namespace", "ConfigMap", "Deployment", "Service", "ServiceMonitor"] {
        assert!(kinds.contains(kind), "kubernetes/ has a {kind}");
    }
    let config = triage_config::parse(&config_text).unwrap_or_else(|e| panic!("ConfigMap: {e}"));
    assert!(config.kafka.enabled());
    assert_eq!(config.receiver.listen, "0.0.0.0:9097");

    // Grafana: provisioning parses and the board is a dashboard whose
    // panels all read the datasource variable.
    let datasource = yaml(&deploy.join("grafana/provisioning/datasources/prometheus.yml"));
    assert_eq!(datasource["datasources"][0]["type"], "prometheus");
    let providers = yaml(&deploy.join("grafana/provisioning/dashboards/triage.yml"));
    assert_eq!(providers["providers"][0]["options"]["path"], "/var/lib/grafana/dashboards");
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "{} queries", queries.len());

    // The Dockerfile: a build stage, a runtime stage that copies from it,
    // a non-root user, and sources that exist.
    let dockerfile =
        std::fs::read_to_string(deploy.join("Dockerfile")).unwrap_or_else(|e| panic!("{e}"));
    let stages: Vec<&str> = dockerfile.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(stages.len(), 2, "{stages:?}");
    assert!(stages[0].ends_with(" AS build"));
    let runtime = dockerfile.split(stages[1]).nth(1).unwrap_or_default();
    assert!(runtime.contains("COPY --from=build"));
    let user = runtime.lines().find(|l| l.starts_with("USER ")).unwrap_or_default();
    assert!(!user.is_empty() && !user.contains("root") && !user.contains(" 0"), "{user}");
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            assert!(repo(source).exists(), "Dockerfile copies missing {source}");
        }
    }
}

/// A Prometheus process, killed on drop.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `query` evaluated now; the result array.
fn instant_query(port: u16, query: &str) -> Vec<Value> {
    let mut encoded = String::new();
    for byte in query.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                encoded.push(byte as char);
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    let answer = http(port, "GET", &format!("/api/v1/query?query={encoded}"), &[], b"", false);
    let body = answer.json();
    assert_eq!(body["status"], "success", "{query}: {}", answer.body);
    body["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Waits until `query` returns something.
fn wait_for_data(port: u16, query: &str, bound: Duration) {
    let deadline = Instant::now() + bound;
    while instant_query(port, query).is_empty() {
        assert!(Instant::now() < deadline, "Prometheus never saw {query} within {bound:?}");
        sleep(Duration::from_millis(250));
    }
}

#[test]
fn every_panel_of_the_board_returns_data_from_a_real_prometheus() {
    let dir = Scratch::new("board");
    let broker = Broker::start("memory://tansu/", dir.path("broker.log"));
    for (topic, partitions) in
        [("alerts", 2), ("incidents", 2), ("alerts-dead-letters", 1), ("triage-state", 2)]
    {
        broker.create_topic(topic, partitions);
    }
    // triage on Kafka with the receiver in front, as deployed, paging a
    // webhook.
    let hook = common::FakeHttp::start();
    let reference =
        std::fs::read_to_string(repo("config/triage.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let config = dir.path("triage.yaml");
    let text = reference.replace(
        "  webhooks: []",
        &format!(
            "  webhooks:\n    - {{name: board, url: \"http://127.0.0.1:{}/hook\"}}",
            hook.port
        ),
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let triage_port = free_port();
    let args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        config.into(),
        "--brokers".into(),
        broker.address().into(),
        "--listen".into(),
        format!("127.0.0.1:{triage_port}").into(),
    ];
    let _triage = Service::start(&args, &dir.path("triage.log"));
    wait_ready(triage_port, Duration::from_secs(60));

    // The deploy scrape config, pointed at this triage, every second.
    let scrape = std::fs::read_to_string(repo("deploy/prometheus/prometheus.yml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .replace("scrape_interval: 15s", "scrape_interval: 1s")
        .replace("evaluation_interval: 15s", "evaluation_interval: 1s")
        .replace("triage:9097", &format!("127.0.0.1:{triage_port}"));
    std::fs::write(dir.path("prometheus.yml"), scrape).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(repo("deploy/prometheus/triage-rules.yml"), dir.path("triage-rules.yml"))
        .unwrap_or_else(|e| panic!("{e}"));
    let prom_port = free_port();
    let log = std::fs::File::create(dir.path("prometheus.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(tool("prometheus"))
        .arg(format!("--config.file={}", dir.path("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let _prometheus = Prometheus(child);
    common::wait_for_200(prom_port, "/-/ready", Duration::from_secs(60));
    // Scraped before the storm, so that rates see the counters start at 0.
    wait_for_data(
        prom_port,
        "count_over_time(up{job=\"triage\"}[1m]) >= 2",
        Duration::from_secs(60),
    );

    // A storm through the receiver, and one bad request.
    let (_, lines) = storm(&dir, 8, 2);
    for line in &lines {
        let answer = http(triage_port, "POST", "/webhook", &[], line.as_bytes(), false);
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    assert_eq!(http(triage_port, "POST", "/webhook", &[], b"{oops", false).status, 400);

    // Until Prometheus has seen declarations, resolutions and the lag
    // that librdkafka reports every 5 seconds.
    for wanted in [
        "sum(rate(triage_records_received_total{source=\"kafka\"}[1m])) > 0",
        "sum(triage_incidents_declared_total) > 0",
        "sum(triage_incidents_resolved_total) > 0",
        "count(triage_consumer_lag_records) > 0",
        "sum(triage_pages_sent_total) > 0",
    ] {
        wait_for_data(prom_port, wanted, Duration::from_secs(60));
    }
    assert!(!hook.bodies().is_empty(), "the webhook got the incidents");
    for (panel, expr) in dashboard_queries() {
        let query = expr.replace("$__rate_interval", "1m");
        let result = instant_query(prom_port, &query);
        assert!(!result.is_empty(), "panel {panel:?}: {query} returned no data");
    }
    // The rules evaluate too: TriageDeadLetters holds (the refused request
    // above), TriageDown does not.
    for (_, expr) in rule_exprs() {
        instant_query(prom_port, &expr);
    }
    // The dead letter may be scraped after the waits above are met (an
    // incident now declares at its first critical alert): wait for it.
    let dead_letters = rule_exprs().into_iter().find(|(a, _)| a == "TriageDeadLetters");
    let (_, expr) = dead_letters.unwrap_or_default();
    assert!(!expr.is_empty(), "the rules have TriageDeadLetters");
    wait_for_data(prom_port, &expr, Duration::from_secs(60));
    let down = rule_exprs().into_iter().find(|(a, _)| a == "TriageDown").unwrap_or_default();
    assert!(instant_query(prom_port, &down.1).is_empty(), "triage is up");
}
