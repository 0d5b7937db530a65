//! The command line as users meet it: exit codes, error messages that say
//! where and why, rejected records kept, and `--help` on every command.

mod common;

use std::process::{Command, Output, Stdio};

use common::repo;

fn triage(args: &[&str], stdin: &[u8]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_triage"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    common::output_fed(child, stdin.to_vec())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const GOOD: &str = concat!(
    r#"{"labels":{"alertname":"PostgresDown","service":"payments-db","severity":"critical"},"#,
    r#""startsAt":"2026-01-01T10:00:00Z"}"#
);

fn bad_input() -> Vec<u8> {
    let mut input = Vec::new();
    input.extend_from_slice(GOOD.as_bytes());
    input.extend_from_slice(b"\n{not json\n");
    input.extend_from_slice(
        b"{\"labels\":{\"a\":\"\xff\xfe\"},\"startsAt\":\"2026-01-01T10:00:00Z\"}\n",
    );
    input.extend_from_slice(b"{\"labels\":{},\"startsAt\":\"2026-01-01T10:00:00Z\"}\n");
    input.extend_from_slice(b"{\"labels\":{\"a\":\"b\"},\"startsAt\":\"noon\"}\n");
    input.extend_from_slice(
        concat!(
            r#"{"labels":{"service":"not-in-catalog","alertname":"X"},"#,
            r#""startsAt":"2026-01-01T10:00:01Z"}"#,
            "\n"
        )
        .as_bytes(),
    );
    input.extend_from_slice(&vec![b'x'; 2 << 20]);
    input.extend_from_slice(b"\n");
    input
}

#[test]
fn replay_reports_each_bad_line_with_its_number_and_keeps_going() {
    let rejects = std::env::temp_dir().join(format!("triage-rejects-{}.jsonl", std::process::id()));
    let config = repo("config/triage.yaml");
    let args = [
        "replay",
        "-c",
        config.to_str().unwrap_or(""),
        "--rejects",
        rejects.to_str().unwrap_or(""),
        "-",
    ];
    let out = triage(&args, &bad_input());
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for expected in [
        "rejected line 2: invalid JSON at column 2",
        "rejected line 3:",
        "rejected line 4, alert 0: alert has no labels (no_labels)",
        "rejected line 5, alert 0: startsAt \"noon\": not an RFC 3339 timestamp (timestamp)",
        "rejected line 7: line is 2097152 bytes, more than input.max_line_bytes (line_too_long)",
        "rejected 5 (json 2, line_too_long 1, no_labels 1, timestamp 1)",
        "alerts: 2 unique",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    let kept = std::fs::read_to_string(&rejects).unwrap_or_default();
    let _ = std::fs::remove_file(&rejects);
    assert_eq!(kept.lines().count(), 5, "{kept}");
    assert!(
        kept.lines()
            .nth(3)
            .is_some_and(|l| l.contains("\"record\":\"{\\\"labels\\\":{\\\"a\\\":\\\"b\\\"}"))
    );
}

#[test]
fn strict_mode_stops_at_the_first_rejection_with_exit_code_3() {
    let config = repo("config/triage.yaml");
    let out = triage(&["replay", "--strict", "-c", config.to_str().unwrap_or("")], &bad_input());
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains("--strict: line 2 rejected: invalid JSON"));
}

#[test]
fn an_invalid_config_lists_every_error_with_exit_code_2() {
    let path = std::env::temp_dir().join(format!("triage-bad-{}.yaml", std::process::id()));
    let yaml =
        "services:\n  - name: a\n    depends_on: [ghost]\n  - name: a\ngrouping:\n  window: 0s\n";
    std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("{e}"));
    let out = triage(&["check-config", path.to_str().unwrap_or("")], b"");
    let _ = std::fs::remove_file(&path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("3 configuration errors:"), "{stderr}");
    assert!(stderr.contains("services[0].depends_on[0]: \"a\" depends on \"ghost\""), "{stderr}");
    assert!(stderr.contains("grouping.window: must be longer than zero"), "{stderr}");
}

#[test]
fn check_config_describes_the_reference_catalog() {
    let config = repo("config/triage.yaml");
    let out = triage(&["check-config", config.to_str().unwrap_or("")], b"");
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("valid; 31 services"), "{}", text(&out.stdout));
}

#[test]
fn explain_shows_the_reasoning_of_each_incident() {
    let config = repo("config/triage.yaml");
    let storm = std::fs::read(repo("examples/storm.jsonl")).unwrap_or_default();
    let out = triage(&["explain", "-c", config.to_str().unwrap_or("")], &storm);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for expected in [
        "declared because:",
        "priority: P",
        "root-cause candidates:",
        "blast radius",
        "first alert of the group",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?}");
    }
    let unknown =
        triage(&["explain", "--incident", "inc-nope", "-c", config.to_str().unwrap_or("")], &storm);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("incident inc-nope is not in the input"));
}

#[test]
fn every_command_has_help() {
    for command in ["replay", "check-config", "explain", "sim"] {
        let out = triage(&[command, "--help"], b"");
        assert!(out.status.success(), "{command}");
        assert!(text(&out.stdout).contains("Usage: triage"), "{command}");
    }
}

#[test]
fn sim_is_reproducible_from_its_seed() {
    let config = repo("config/triage.yaml");
    let run = || {
        triage(
            &["sim", "-c", config.to_str().unwrap_or(""), "--seed", "9", "--duration", "30m"],
            b"",
        )
        .stdout
    };
    let first = run();
    assert!(!first.is_empty());
    assert_eq!(first, run());
}
