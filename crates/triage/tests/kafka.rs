//! `triage run` against a real Kafka-protocol broker (tansu), with an
//! independent client (kafka-python) producing the alerts and reading the
//! topics back. Each test starts its own broker on a free loopback port
//! and stops it; `./scripts/test` installs both tools when missing.
//!
//! The expected output of every test is `triage replay` of each
//! partition's records: the service must end with exactly those events,
//! whatever crashes, restarts and rebalances happened in between. Each
//! partition's records end with a sentinel alert a day later, so that all
//! timers fire in both runs and there is a final state to compare.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Broker, FakeHttp, Scratch, Service, free_port, repo, storm};
use serde_json::Value;

/// A `triage run` on Kafka.
type Engine = Service;

/// Starts `triage run` on `broker` with `config` (and no receiver unless
/// `extra` asks for one).
fn start_engine(config: &Path, broker: &Broker, log: &Path, extra: &[&str]) -> Engine {
    let mut args: Vec<std::ffi::OsString> = vec!["--config".into(), config.into()];
    args.extend(["--brokers".into(), broker.address().into()]);
    args.extend(extra.iter().map(Into::into));
    Service::start(&args, log)
}

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/kafka/client.py")
}

/// The group session timeout of the test configuration.
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

/// Waits until the last engine started in `log` owns a partition.
fn wait_for_assignment(log: &Path, bound: Duration) {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let last_run = text.rsplit("-- test: engine started").next().unwrap_or_default();
        if last_run.contains("partition assigned") {
            return;
        }
        sleep(Duration::from_millis(50));
    }
    panic!("no partition assigned within {bound:?}");
}

fn python(args: &[&str]) -> Command {
    let mut command = Command::new("python3");
    command.arg(client_script()).args(args);
    command
}

/// Produces `file` to `topic`, line i to partition i % partitions.
fn produce(broker: &Broker, topic: &str, partitions: u32, file: &Path, pace_ms: u32) -> Child {
    python(&["produce", "--brokers", &broker.address(), "--topic", topic])
        .args(["--partitions", &partitions.to_string(), "--pace-ms", &pace_ms.to_string()])
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Every record of `topic`, read from the beginning by kafka-python.
fn read_topic(broker: &Broker, topic: &str) -> Vec<Value> {
    let output = python(&["read", "--brokers", &broker.address(), "--topic", topic])
        .args(["--idle", "2"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The reference configuration tuned for tests: frequent checkpoints, a
/// short group session so a killed member is replaced quickly, and no
/// idle clock moves (so the output is exactly replay's).
fn test_config(dir: &Scratch, idle_advance: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(repo("config/triage.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let text = text
        .replace("checkpoint_interval: 5s", "checkpoint_interval: 300ms")
        .replace("idle_advance: 1s", &format!("idle_advance: {idle_advance}"))
        .replace("shutdown_timeout: 30s", "shutdown_timeout: 20s")
        .replace("ack_timeout: 10s", "ack_timeout: 2s")
        .replace("listen: 127.0.0.1:9097 ", "listen: \"\" ")
        .replace(
            "  consumer: {}",
            "  consumer: {session.timeout.ms: \"6000\", heartbeat.interval.ms: \"500\"}",
        );
    let path = dir.path("triage.yaml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path
}

/// What `triage replay` gives for each partition's share of the lines:
/// event id to event bytes.
fn expected_events(config: &Path, lines: &[String], partitions: u32) -> BTreeMap<String, String> {
    replayed_events(config, lines, partitions, &[])
}

fn replayed_events(
    config: &Path,
    lines: &[String],
    partitions: u32,
    options: &[&str],
) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    for p in 0..partitions {
        let share: Vec<&str> = lines
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % partitions == p)
            .map(|(_, l)| l.as_str())
            .collect();
        for line in common::replay(config, &share, p, options) {
            let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}"));
            let id = event["event_id"].as_str().unwrap_or_default().to_owned();
            expected.insert(id, line);
        }
    }
    expected
}

/// The incidents topic, checked for one payload per event id.
fn produced_events(broker: &Broker) -> BTreeMap<String, String> {
    let mut events: BTreeMap<String, String> = BTreeMap::new();
    for record in read_topic(broker, "incidents") {
        let value = record["value"].as_str().unwrap_or_default().to_owned();
        let event: Value = serde_json::from_str(&value).unwrap_or_else(|e| panic!("{e}"));
        let id = event["event_id"].as_str().unwrap_or_default().to_owned();
        assert_eq!(record["key"], event["incident_id"], "events are keyed by incident id");
        assert_eq!(record["headers"]["triage.event_id"].as_str(), Some(id.as_str()));
        if let Some(previous) = events.get(&id) {
            assert_eq!(previous, &value, "event {id} was re-sent with different bytes");
        }
        events.insert(id, value);
    }
    events
}

/// Waits until the incidents topic holds every expected event id.
fn wait_for_events(broker: &Broker, expected: &BTreeMap<String, String>, bound: Duration) {
    let deadline = Instant::now() + bound;
    loop {
        let produced = produced_events(broker);
        if expected.keys().all(|id| produced.contains_key(id)) || Instant::now() > deadline {
            return;
        }
        sleep(Duration::from_millis(500));
    }
}

fn assert_same_incidents(expected: &BTreeMap<String, String>, produced: &BTreeMap<String, String>) {
    let missing: Vec<&String> = expected.keys().filter(|k| !produced.contains_key(*k)).collect();
    let extra: Vec<&String> = produced.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, extra {extra:?}");
    for (id, bytes) in expected {
        assert_eq!(Some(bytes), produced.get(id), "event {id} differs from replay");
    }
    let mut declared: BTreeSet<String> = BTreeSet::new();
    for bytes in produced.values() {
        let event: Value = serde_json::from_str(bytes).unwrap_or_else(|e| panic!("{e}"));
        if event["event"] == "declared" {
            let incident = event["incident_id"].as_str().unwrap_or_default().to_owned();
            assert!(declared.insert(incident.clone()), "incident {incident} declared twice");
        }
    }
    assert!(!declared.is_empty());
}

fn setup(name: &str, partitions: u32) -> (Scratch, Broker) {
    setup_on(name, partitions, "memory://tansu/")
}

fn setup_on(name: &str, partitions: u32, storage: &str) -> (Scratch, Broker) {
    let dir = Scratch::new(name);
    let broker = Broker::start(storage, dir.path("broker.log"));
    broker.create_topic("alerts", partitions);
    broker.create_topic("incidents", 2);
    broker.create_topic("alerts-dead-letters", 1);
    broker.create_topic("triage-state", partitions);
    (dir, broker)
}

#[test]
fn a_storm_through_kafka_ends_as_replay_says_despite_kill_9() {
    let partitions = 2;
    let (dir, broker) = setup("kill9", partitions);
    let config = test_config(&dir, "0s");
    let (storm_path, lines) = storm(&dir, 3, partitions);
    let expected = expected_events(&config, &lines, partitions);
    assert!(expected.len() > 10, "a storm worth testing: {} events", expected.len());

    // The storm arrives over about thirty seconds while the engine is
    // killed three times, each a while after it got its partitions. As a
    // supervisor would, the test restarts it after the group session
    // timeout, when the broker has dropped the dead member.
    let mut producer = produce(&broker, "alerts", partitions, &storm_path, 100);
    let log = dir.path("engine.log");
    for run_for in [700, 1500, 2500] {
        let mut engine = start_engine(&config, &broker, &log, &[]);
        wait_for_assignment(&log, Duration::from_secs(30));
        sleep(Duration::from_millis(run_for));
        engine.kill9();
        sleep(SESSION_TIMEOUT + Duration::from_secs(1));
    }
    if std::env::var_os("TRIAGE_KEEP_TEST_DIRS").is_some() {
        let state = read_topic(&broker, "triage-state");
        let dump: Vec<String> = state
            .iter()
            .map(|r| format!("{} {} {} {}", r["partition"], r["offset"], r["key"], r["headers"]))
            .collect();
        let ends = python(&["offsets", "--brokers", &broker.address(), "--topic", "triage-state"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let _ = std::fs::write(dir.path("state.dump"), dump.join("\n") + "\n" + &ends);
    }
    let produced_ok = producer.wait().map(|s| s.success()).unwrap_or(false);
    assert!(produced_ok, "the producer failed");
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_events(&broker, &expected, Duration::from_secs(90));
    let code = engine.terminate(Duration::from_secs(30));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(code, Some(0), "SIGTERM ends the engine cleanly:\n{log_text}");

    let produced = produced_events(&broker);
    assert_same_incidents(&expected, &produced);
    assert!(read_topic(&broker, "alerts-dead-letters").is_empty());
    // The restarts recovered state mid-stream instead of starting over.
    // How far each run got before its kill varies (tansu serves a steadily
    // written partition's fetches unevenly), so only some restores are.
    let restored = log_text.matches("restored_from=\"snapshot\"").count();
    assert!(restored >= 1, "{log_text}");
}

#[test]
fn garbage_lands_in_dead_letters_with_its_reason_and_never_blocks_the_partition() {
    let (dir, broker) = setup("dead-letters", 1);
    let config = test_config(&dir, "0s");
    let (_, mut lines) = storm(&dir, 5, 1);
    let sentinel = lines.pop().unwrap_or_default();
    lines.insert(3, "{not json".to_owned());
    lines.insert(7, r#"{"labels":{"alertname":"NoTime"},"startsAt":"yesterday"}"#.to_owned());
    lines.push(sentinel);
    let input = dir.path("input.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    let good: Vec<String> = lines.iter().filter(|l| !l.starts_with("{not")).cloned().collect();
    let expected = expected_events(&config, &good, 1);

    let status = produce(&broker, "alerts", 1, &input, 0).wait();
    assert!(status.is_ok_and(|s| s.success()));
    let log = dir.path("engine.log");
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_events(&broker, &expected, Duration::from_secs(60));
    assert_eq!(engine.terminate(Duration::from_secs(30)), Some(0));

    // Records after the garbage were correlated as usual.
    assert_same_incidents(&expected, &produced_events(&broker));
    let letters = read_topic(&broker, "alerts-dead-letters");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0]["value"], "{not json", "the original bytes are kept");
    assert_eq!(letters[0]["headers"]["triage.reason"], "json");
    assert_eq!(letters[0]["headers"]["triage.source.topic"], "alerts");
    assert_eq!(letters[0]["headers"]["triage.source.partition"], "0");
    assert_eq!(letters[0]["headers"]["triage.source.offset"], "3");
    assert_eq!(letters[1]["headers"]["triage.reason"], "timestamp");
    assert_eq!(letters[1]["headers"]["triage.alert.index"], "0");
    assert_eq!(letters[1]["headers"]["triage.source.offset"], "7");
    let error = letters[1]["headers"]["triage.error"].as_str().unwrap_or_default();
    assert!(error.contains("startsAt"), "the error names the field: {error}");
}

#[test]
fn an_idle_partition_resolves_on_the_wall_clock_and_replays_its_clock_after_a_crash() {
    let (dir, broker) = setup("idle", 1);
    let config = test_config(&dir, "200ms");
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}"));
    let text = text
        .replace("allowed_lateness: 30s", "allowed_lateness: 1s")
        .replace("quiet_period: 5m", "quiet_period: 3s")
        .replace("checkpoint_interval: 300ms", "checkpoint_interval: 1h");
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let alert = |name: &str, service: &str, at: &str, end: Option<&str>| {
        let labels = serde_json::json!({
            "alertname": name, "service": service, "severity": "critical",
        });
        let alert = match end {
            None => serde_json::json!({"labels": labels, "startsAt": at}),
            Some(end) => serde_json::json!({
                "status": "resolved", "labels": labels, "startsAt": at, "endsAt": end,
            }),
        };
        alert.to_string()
    };
    let lines = vec![
        alert("PostgresDown", "payments-db", "2026-01-01T10:00:00Z", None),
        alert("HighErrorRate", "payments", "2026-01-01T10:00:05Z", None),
        alert("HighErrorRate", "checkout", "2026-01-01T10:00:08Z", None),
        alert("PostgresDown", "payments-db", "2026-01-01T10:00:00Z", Some("2026-01-01T10:00:20Z")),
        alert("HighErrorRate", "payments", "2026-01-01T10:00:05Z", Some("2026-01-01T10:00:21Z")),
        alert("HighErrorRate", "checkout", "2026-01-01T10:00:08Z", Some("2026-01-01T10:00:22Z")),
    ];
    // Replay needs the end of its input to let time run out; the service
    // only has the wall clock.
    let expected = replayed_events(&config, &lines, 1, &["--drain"]);
    let kinds: Vec<String> = expected
        .values()
        .map(|e| {
            serde_json::from_str::<Value>(e).map(|v| v["event"].to_string()).unwrap_or_default()
        })
        .collect();
    assert_eq!(kinds, ["\"declared\"", "\"resolved\""]);

    let input = dir.path("input.jsonl");
    std::fs::write(&input, lines.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    assert!(produce(&broker, "alerts", 1, &input, 0).wait().is_ok_and(|s| s.success()));
    let log = dir.path("engine.log");
    // A takes the alerts and stops cleanly: its snapshot holds them all.
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_assignment(&log, Duration::from_secs(30));
    sleep(Duration::from_millis(500));
    assert_eq!(engine.terminate(Duration::from_secs(30)), Some(0));
    // B restores it and, with nothing arriving, only its idle clock can end
    // the incident; it never checkpoints (the interval is an hour) and is
    // killed once the resolution is out.
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_events(&broker, &expected, Duration::from_secs(60));
    engine.kill9();
    sleep(SESSION_TIMEOUT + Duration::from_secs(1));
    // C restores A's snapshot and replays B's recorded clock moves.
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_assignment(&log, Duration::from_secs(30));
    sleep(Duration::from_secs(1));
    assert_eq!(engine.terminate(Duration::from_secs(30)), Some(0));
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let last_run = log_text.rsplit("-- test: engine started").next().unwrap_or_default();
    assert!(!last_run.contains("ticks_replayed=0"), "{log_text}");

    // The same events, re-sent or not, with the same bytes as replay's.
    assert_eq!(produced_events(&broker), expected);
    let ticks = read_topic(&broker, "triage-state")
        .iter()
        .filter(|r| r["headers"]["triage.state.kind"] == "tick")
        .count();
    assert!(ticks > 0, "idle clock moves are recorded in the state topic");
}

#[test]
fn two_instances_share_the_partitions_and_one_takes_over_when_the_other_stops() {
    let partitions = 2;
    let (dir, broker) = setup("two-instances", partitions);
    let config = test_config(&dir, "0s");
    let (storm_path, lines) = storm(&dir, 8, partitions);
    let expected = expected_events(&config, &lines, partitions);

    let mut producer = produce(&broker, "alerts", partitions, &storm_path, 60);
    let (log_a, log_b) = (dir.path("a.log"), dir.path("b.log"));
    let mut a = start_engine(&config, &broker, &log_a, &[]);
    wait_for_assignment(&log_a, Duration::from_secs(30));
    let mut b = start_engine(&config, &broker, &log_b, &[]);
    // The group splits the two partitions between the instances.
    wait_for_assignment(&log_b, Duration::from_secs(30));
    sleep(Duration::from_secs(2));
    assert_eq!(a.terminate(Duration::from_secs(30)), Some(0), "A stops cleanly");
    assert!(producer.wait().is_ok_and(|s| s.success()), "the producer failed");
    wait_for_events(&broker, &expected, Duration::from_secs(90));
    assert_eq!(b.terminate(Duration::from_secs(30)), Some(0), "B stops cleanly");

    assert_same_incidents(&expected, &produced_events(&broker));
    let text_a = std::fs::read_to_string(&log_a).unwrap_or_default();
    let text_b = std::fs::read_to_string(&log_b).unwrap_or_default();
    assert!(text_a.contains("partition revoked"), "A handed its partitions over:\n{text_a}");
    let owned_by_b = ["partition=0", "partition=1"]
        .iter()
        .all(|p| text_b.lines().any(|l| l.contains("partition assigned") && l.contains(p)));
    assert!(owned_by_b, "B ended with both partitions:\n{text_b}");
}

#[test]
fn the_receiver_bridges_a_storm_to_kafka_and_answers_503_when_the_broker_is_gone() {
    let (dir, mut broker) = setup("bridge", 1);
    let config = test_config(&dir, "0s");
    // The bridge asks for a token, like a production receiver would.
    let token = dir.path("token");
    std::fs::write(&token, "bridge-token\n").unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}")).replace(
        "# bearer_token_env: TRIAGE_RECEIVER_TOKEN",
        &format!("bearer_token_file: {:?}", token.display().to_string()),
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let auth = [("Authorization", "Bearer bridge-token")];
    let (_, lines) = storm(&dir, 4, 1);
    let expected = expected_events(&config, &lines, 1);
    assert!(expected.len() > 10, "a storm worth testing: {} events", expected.len());
    let log = dir.path("engine.log");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut engine = start_engine(&config, &broker, &log, &["--listen", &listen]);
    wait_for_assignment(&log, Duration::from_secs(30));
    common::wait_ready(port, Duration::from_secs(30));

    // Alertmanager's side: one notification per request, each answered
    // only once the broker has it.
    for (i, line) in lines.iter().enumerate() {
        let answer = common::http(port, "POST", "/webhook", &auth, line.as_bytes(), false);
        assert_eq!(answer.status, 200, "request {i}: {}", answer.body);
    }
    let garbage = common::http(port, "POST", "/webhook", &auth, b"[1, 2", false);
    assert_eq!(garbage.status, 400, "{}", garbage.body);
    // Refused before anything reaches the broker: no token, too large.
    let unauthorized = common::http(port, "POST", "/webhook", &[], lines[0].as_bytes(), false);
    assert_eq!(unauthorized.status, 401, "{}", unauthorized.body);
    let huge = vec![b' '; (4 << 20) + 1];
    let too_large = common::http(port, "POST", "/api/v2/alerts", &auth, &huge, false);
    assert_eq!(too_large.status, 413, "{}", too_large.body);
    wait_for_events(&broker, &expected, Duration::from_secs(60));
    assert_same_incidents(&expected, &produced_events(&broker));

    let bridged = read_topic(&broker, "alerts");
    assert_eq!(bridged.len(), lines.len(), "one record per single-domain request");
    for record in &bridged {
        assert_eq!(record["key"], "eu-1", "keyed by the cluster label");
        assert_eq!(record["headers"]["triage.source"], "receiver");
    }
    let dead = read_topic(&broker, "alerts-dead-letters");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["value"], "[1, 2");
    assert_eq!(dead[0]["headers"]["triage.reason"], "json");
    assert_eq!(dead[0]["headers"]["triage.source.endpoint"], "/webhook");

    // Without a broker nothing can be acknowledged: 503 within the ack
    // timeout (2s here), so that Alertmanager retries.
    broker.stop();
    let answer = common::http(port, "POST", "/webhook", &auth, lines[0].as_bytes(), false);
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert!(answer.headers.contains("retry-after: 1"), "{}", answer.headers);
    engine.kill9();
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing() {
    let partitions = 2;
    let (dir, mut broker) = setup_on("broker-restart", partitions, "sqlite://tansu.db");
    let config = test_config(&dir, "0s");
    let (_, lines) = storm(&dir, 6, partitions);
    let expected = expected_events(&config, &lines, partitions);
    assert!(expected.len() > 10, "a storm worth testing: {} events", expected.len());
    // Two halves, the first of even length so each line keeps its
    // partition (line i goes to i % 2).
    let half = (lines.len() / 2) & !1;
    let first = dir.path("first.jsonl");
    let second = dir.path("second.jsonl");
    for (path, part) in [(&first, &lines[..half]), (&second, &lines[half..])] {
        std::fs::write(path, part.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
    }
    let log = dir.path("engine.log");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut engine = start_engine(&config, &broker, &log, &["--listen", &listen]);
    wait_for_assignment(&log, Duration::from_secs(30));
    assert!(produce(&broker, "alerts", partitions, &first, 10).wait().is_ok_and(|s| s.success()));
    // Let the engine work on the first half, then take the broker away
    // while it does: its fetches, deliveries and checkpoints fail and are
    // retried until the broker is back on the same port and storage.
    sleep(Duration::from_secs(2));
    broker.stop();
    let deadline = Instant::now() + Duration::from_secs(20);
    while common::http(port, "GET", "/readyz", &[], b"", false).status != 503 {
        assert!(Instant::now() < deadline, "still ready without a broker");
        sleep(Duration::from_millis(100));
    }
    sleep(Duration::from_secs(1));
    broker.spawn();
    assert!(produce(&broker, "alerts", partitions, &second, 0).wait().is_ok_and(|s| s.success()));
    wait_for_events(&broker, &expected, Duration::from_secs(90));
    assert_same_incidents(&expected, &produced_events(&broker));
    assert!(read_topic(&broker, "alerts-dead-letters").is_empty());
    assert_eq!(common::http(port, "GET", "/readyz", &[], b"", false).status, 200, "ready again");
    assert_eq!(engine.terminate(Duration::from_secs(40)), Some(0), "SIGTERM exits 0");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("kafka client error") || text.contains("triage warn kafka"), "{text}");
}

#[test]
fn responders_page_once_per_incident_and_lose_nothing_across_a_kill_9() {
    let partitions = 2;
    let (dir, broker) = setup("responders", partitions);
    let pagerduty = FakeHttp::start();
    let key = dir.path("pd-key");
    std::fs::write(&key, "R0UT1NGKEY0000000000000000000000\n").unwrap_or_else(|e| panic!("{e}"));
    let config = test_config(&dir, "0s");
    let text = std::fs::read_to_string(&config).unwrap_or_else(|e| panic!("{e}")).replace(
        "  pagerduty: []",
        &format!(
            concat!(
                "  pagerduty:\n    - {{name: pd, routing_key_file: {:?}, ",
                "url: \"http://127.0.0.1:{}/v2/enqueue\"}}"
            ),
            key.display().to_string(),
            pagerduty.port
        ),
    );
    std::fs::write(&config, text).unwrap_or_else(|e| panic!("{e}"));
    let (storm_path, lines) = storm(&dir, 5, partitions);
    let expected = expected_events(&config, &lines, partitions);

    // What an uninterrupted run pages: the policy over each incident's
    // events in version order.
    let targets =
        triage_config::load(&config).map(|c| c.responders).unwrap_or_else(|e| panic!("{e}"));
    let mut policy = triage_stream::respond::policy::Policy::new(targets.targets, 50);
    let mut events: Vec<triage_model::IncidentEvent> = expected
        .values()
        .map(|e| serde_json::from_str(e).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    events.sort_by(|a, b| (&a.incident_id, a.version).cmp(&(&b.incident_id, b.version)));
    let mut wanted: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in events {
        for notice in policy.decide(&std::sync::Arc::new(event)) {
            let action = match notice.action {
                triage_stream::respond::policy::Action::Resolve => "resolve",
                _ => "trigger",
            };
            wanted.entry(notice.event.incident_id.clone()).or_default().push(action.into());
        }
    }
    assert!(wanted.len() >= 3, "incidents worth paging: {wanted:?}");

    let mut producer = produce(&broker, "alerts", partitions, &storm_path, 60);
    let log = dir.path("engine.log");
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_assignment(&log, Duration::from_secs(30));
    sleep(Duration::from_millis(2500));
    engine.kill9();
    sleep(SESSION_TIMEOUT + Duration::from_secs(1));
    assert!(producer.wait().is_ok_and(|s| s.success()));
    let mut engine = start_engine(&config, &broker, &log, &[]);
    wait_for_events(&broker, &expected, Duration::from_secs(90));
    let deadline = Instant::now() + Duration::from_secs(60);
    let paged = loop {
        let mut paged: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (incident, action) in pagerduty.actions() {
            paged.entry(incident).or_default().push(action);
        }
        let complete = wanted.iter().all(|(incident, actions)| {
            paged.get(incident).is_some_and(|got| {
                got.iter().filter(|a| *a == "resolve").count()
                    >= actions.iter().filter(|a| *a == "resolve").count()
                    && got.len() >= actions.len()
            })
        });
        if complete || Instant::now() > deadline {
            break paged;
        }
        sleep(Duration::from_millis(250));
    };
    assert_eq!(engine.terminate(Duration::from_secs(30)), Some(0));

    // Nothing lost: every page and every resolve of the uninterrupted run
    // arrived, in its order. Nothing paged twice: the only extra requests
    // are repeats of the request just before (same incident, same action:
    // what was delivered but not yet committed at the kill), which
    // PagerDuty folds into the open alert by dedup_key. How many depends on
    // what settled within the last commit round trip; a handful at most.
    let mut extra = 0;
    for (incident, actions) in &wanted {
        let got = paged.get(incident).cloned().unwrap_or_default();
        let mut next = 0;
        for (i, request) in got.iter().enumerate() {
            if actions.get(next) == Some(request) {
                next += 1;
            } else if i > 0 && got[i - 1] == *request {
                extra += 1;
            } else {
                panic!("{incident}: {request} out of order; wanted {actions:?}, got {got:?}");
            }
        }
        assert_eq!(next, actions.len(), "{incident}: wanted {actions:?}, got {got:?}");
    }
    assert!(extra <= 8, "re-sent after the restart: {extra}; wanted {wanted:?}, got {paged:?}");
    let unknown: Vec<&String> = paged.keys().filter(|k| !wanted.contains_key(*k)).collect();
    assert!(unknown.is_empty(), "paged incidents the run never had: {unknown:?}");
}
