//! From the raw mirror to validated settings: defaults filled in, every
//! error collected with its path, warnings listed.

use std::sync::Arc;
use std::time::Duration;

use triage_correlate::content::ContentSettings;
use triage_correlate::{
    DeclarePolicy, Grouping, Level, Limits, Settings, SeverityPolicy, UpdatePolicy,
};
use triage_formats::DecodeLimits;
use triage_model::{AlertSeverity, DurationSpec};
use triage_topology::{ServiceSpec, Topology};

use crate::raw::{
    RawConfig, RawContent, RawDeclare, RawGrouping, RawInput, RawKafka, RawLevel, RawLimits,
    RawLive, RawReceiver, RawService, RawSeverity, RawUpdates,
};
use crate::{
    Config, ConfigError, ConfigErrors, InputLimits, KafkaSettings, LiveSettings, ReceiverSettings,
    Secret,
};

/// Collects errors while validation walks the file, and reads optional
/// values against their defaults.
#[derive(Default)]
struct Errors(Vec<ConfigError>);

impl crate::responders::Report for Errors {
    fn problem(&mut self, path: String, message: String) {
        self.push(path, message);
    }
}

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { path: path.into(), message: message.into() });
    }

    fn positive(&mut self, path: &str, value: Option<DurationSpec>, default: Duration) -> Duration {
        match value {
            Some(d) if d.0.is_zero() => {
                self.push(path, "must be longer than zero");
                default
            }
            Some(d) => d.0,
            None => default,
        }
    }

    fn at_least_one(&mut self, path: &str, value: Option<usize>, default: usize) -> usize {
        match value {
            Some(0) => {
                self.push(path, "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    fn labels(
        &mut self,
        path: &str,
        value: Option<Vec<String>>,
        default: Vec<String>,
    ) -> Vec<String> {
        match value {
            Some(labels) if labels.is_empty() => {
                self.push(path, "must name at least one label");
                default
            }
            Some(labels) => labels,
            None => default,
        }
    }

    fn severity(&mut self, path: &str, text: &str, default: AlertSeverity) -> AlertSeverity {
        match text {
            "info" => AlertSeverity::Info,
            "warning" => AlertSeverity::Warning,
            "error" => AlertSeverity::Error,
            "critical" => AlertSeverity::Critical,
            other => {
                self.push(path, format!("{other:?} is not one of info, warning, error, critical"));
                default
            }
        }
    }
}

/// Validates a parsed file, reporting every error at once.
pub fn validate(raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::default();
    let mut settings = Settings::default();
    settings.service_labels =
        errors.labels("service_labels", raw.service_labels, settings.service_labels);
    grouping(&mut errors, raw.grouping, &mut settings.grouping);
    declare(&mut errors, raw.declare, &mut settings.declare);
    severity(&mut errors, raw.severity, &mut settings.severity);
    settings.flap.period = errors.positive("flap.period", raw.flap.period, settings.flap.period);
    settings.flap.max_transitions =
        raw.flap.max_transitions.unwrap_or(settings.flap.max_transitions);
    settings.quiet_period = raw.resolve.quiet_period.map_or(settings.quiet_period, |d| d.0);
    updates(&mut errors, raw.updates, &mut settings.updates);
    limits(&mut errors, raw.limits, &mut settings.limits);
    content(&mut errors, raw.content, &mut settings.content);
    let input = input(&mut errors, raw.input);
    let responders = crate::responders::validate(&mut errors, raw.responders);
    let live = live(&mut errors, raw.live);
    let kafka = kafka(&mut errors, raw.kafka);
    let receiver = receiver(&mut errors, raw.receiver);
    let services = services(&mut errors, raw.services, settings.severity.tier_weights.len());

    let topology = match Topology::build(&services, settings.grouping.max_hops) {
        Ok(t) => Some(t),
        Err(topology_errors) => {
            for e in topology_errors {
                errors.push(e.path(), e.to_string());
            }
            None
        }
    };
    match topology {
        Some(topology) if errors.0.is_empty() => {
            let mut warnings = cycle_warnings(&topology);
            for target in &responders.targets {
                for team in &target.teams {
                    if !services.iter().any(|s| s.owner.as_deref() == Some(team.as_str())) {
                        warnings.push(format!(
                            "responder {:?}: team {team:?} owns no service in the catalog, so \
                             nothing is routed to it by team",
                            target.name
                        ));
                    }
                }
            }
            Ok(Config {
                settings: Arc::new(settings),
                services,
                topology: Arc::new(topology),
                input,
                live,
                kafka,
                receiver,
                responders,
                warnings,
            })
        }
        _ => Err(ConfigErrors(errors.0)),
    }
}

fn grouping(errors: &mut Errors, g: RawGrouping, grouping: &mut Grouping) {
    grouping.window = errors.positive("grouping.window", g.window, grouping.window);
    grouping.max_group_lifetime = errors.positive(
        "grouping.max_group_lifetime",
        g.max_group_lifetime,
        grouping.max_group_lifetime,
    );
    grouping.allowed_lateness = g.allowed_lateness.map_or(grouping.allowed_lateness, |d| d.0);
    grouping.max_cause_lag = g.max_cause_lag.map_or(grouping.max_cause_lag, |d| d.0);
    grouping.hop_cost = g.hop_cost.map_or(grouping.hop_cost, |d| d.0);
    grouping.weak_link_within = g.weak_link_within.map_or(grouping.weak_link_within, |d| d.0);
    if grouping.max_group_lifetime < grouping.window {
        errors.push("grouping.max_group_lifetime", "must not be shorter than grouping.window");
    }
    if let Some(hops) = g.max_hops {
        if hops > 6 {
            errors.push("grouping.max_hops", format!("{hops} is too far to mean related (0..=6)"));
        }
        grouping.max_hops = hops;
    }
    grouping.fallback_group_by = errors.labels(
        "grouping.fallback_group_by",
        g.fallback_group_by,
        std::mem::take(&mut grouping.fallback_group_by),
    );
}

fn declare(errors: &mut Errors, d: RawDeclare, declare: &mut DeclarePolicy) {
    declare.min_alerts = d.min_alerts.unwrap_or(declare.min_alerts);
    declare.min_services = d.min_services.unwrap_or(declare.min_services);
    if declare.min_alerts == 0 {
        errors.push("declare.min_alerts", "must be at least 1");
    }
    if let Some(tier) = d.critical_max_tier {
        declare.critical_max_tier = (tier > 0).then_some(tier);
    }
    declare.critical_user_facing = d.critical_user_facing.unwrap_or(declare.critical_user_facing);
    if let Some(persist) = d.persist_for {
        declare.persist_for = (!persist.0.is_zero()).then_some(persist.0);
    }
    if let Some(text) = d.min_services_severity {
        declare.min_services_severity =
            errors.severity("declare.min_services_severity", &text, declare.min_services_severity);
    }
    if let Some(text) = d.persist_min_severity {
        declare.persist_min_severity =
            errors.severity("declare.persist_min_severity", &text, declare.persist_min_severity);
    }
}

fn severity(errors: &mut Errors, s: RawSeverity, policy: &mut SeverityPolicy) {
    if let Some(weights) = s.tier_weights {
        if weights.is_empty() {
            errors.push("severity.tier_weights", "must give a weight for at least tier 1");
        } else {
            policy.tier_weights = weights;
        }
    }
    policy.user_facing_multiplier =
        s.user_facing_multiplier.unwrap_or(policy.user_facing_multiplier);
    for (i, (raw_level, name)) in [(s.p1, "p1"), (s.p2, "p2"), (s.p3, "p3")].into_iter().enumerate()
    {
        policy.levels[i] = level(errors, name, raw_level, policy.levels[i]);
    }
    for i in 1..3 {
        if policy.levels[i].min_blast_score > policy.levels[i - 1].min_blast_score {
            errors.push(
                format!("severity.p{}.min_blast_score", i + 1),
                format!("must not exceed p{}'s, or P{} could never be reached", i, i),
            );
        }
    }
}

fn level(errors: &mut Errors, name: &str, raw: Option<RawLevel>, default: Level) -> Level {
    let Some(raw) = raw else { return default };
    let path = format!("severity.{name}.min_alert_severity");
    Level {
        min_blast_score: raw.min_blast_score.unwrap_or(default.min_blast_score),
        min_alert_severity: raw.min_alert_severity.map_or(default.min_alert_severity, |s| {
            errors.severity(&path, &s, default.min_alert_severity)
        }),
    }
}

fn updates(errors: &mut Errors, u: RawUpdates, updates: &mut UpdatePolicy) {
    updates.min_interval = u.min_interval.map_or(updates.min_interval, |d| d.0);
    updates.refresh_interval = u.refresh_interval.map_or(updates.refresh_interval, |d| d.0);
    updates.material_growth_percent =
        u.material_growth_percent.unwrap_or(updates.material_growth_percent);
    updates.material_growth_min_alerts =
        u.material_growth_min_alerts.unwrap_or(updates.material_growth_min_alerts);
    if updates.refresh_interval < updates.min_interval {
        errors.push("updates.refresh_interval", "must not be shorter than updates.min_interval");
    }
}

fn limits(errors: &mut Errors, l: RawLimits, limits: &mut Limits) {
    limits.max_open_groups =
        errors.at_least_one("limits.max_open_groups", l.max_open_groups, limits.max_open_groups);
    limits.max_active_alerts = errors.at_least_one(
        "limits.max_active_alerts",
        l.max_active_alerts,
        limits.max_active_alerts,
    );
    limits.max_alerts_listed = errors.at_least_one(
        "limits.max_alerts_listed",
        l.max_alerts_listed,
        limits.max_alerts_listed,
    );
    limits.tombstone_retention = l.tombstone_retention.map_or(limits.tombstone_retention, |d| d.0);
}

fn input(errors: &mut Errors, i: RawInput) -> InputLimits {
    let defaults = InputLimits::default();
    InputLimits {
        max_line_bytes: errors.at_least_one(
            "input.max_line_bytes",
            i.max_line_bytes,
            defaults.max_line_bytes,
        ),
        decode: DecodeLimits {
            max_labels: errors.at_least_one(
                "input.max_labels",
                i.max_labels,
                defaults.decode.max_labels,
            ),
            max_label_bytes: errors.at_least_one(
                "input.max_label_bytes",
                i.max_label_bytes,
                defaults.decode.max_label_bytes,
            ),
        },
    }
}

/// Properties triage sets itself because correctness depends on them.
const RESERVED_PROPERTIES: [&str; 6] = [
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.idempotence",
    "acks",
];

fn kafka(errors: &mut Errors, k: RawKafka) -> KafkaSettings {
    let mut kafka = KafkaSettings {
        brokers: k.brokers.unwrap_or_default().trim().to_owned(),
        ..KafkaSettings::default()
    };
    if let Some(group) = k.group_id {
        if group.trim().is_empty() {
            errors.push("kafka.group_id", "must not be empty");
        } else {
            kafka.group_id = group;
        }
    }
    let topics = [
        ("alerts", k.topics.alerts, &mut kafka.topics.alerts),
        ("incidents", k.topics.incidents, &mut kafka.topics.incidents),
        ("dead_letters", k.topics.dead_letters, &mut kafka.topics.dead_letters),
        ("state", k.topics.state, &mut kafka.topics.state),
    ];
    for (name, value, slot) in topics {
        match value {
            Some(v) if !valid_topic_name(&v) => errors.push(
                format!("kafka.topics.{name}"),
                format!("{v:?} is not a Kafka topic name (1-249 of a-z A-Z 0-9 . _ -)"),
            ),
            Some(v) => *slot = v,
            None => {}
        }
    }
    let t = &kafka.topics;
    let names = [&t.alerts, &t.incidents, &t.dead_letters, &t.state];
    for (i, a) in names.iter().enumerate() {
        if names[..i].contains(a) {
            errors.push("kafka.topics", format!("topic {a:?} is named twice"));
        }
    }
    for (section, properties) in
        [("client", &k.client), ("consumer", &k.consumer), ("producer", &k.producer)]
    {
        for key in properties.keys() {
            if RESERVED_PROPERTIES.contains(&key.as_str()) {
                errors.push(
                    format!("kafka.{section}.{key}"),
                    "is set by triage itself (see docs/streaming.md)",
                );
            }
        }
    }
    kafka.client = k.client;
    kafka.consumer = k.consumer;
    kafka.producer = k.producer;
    kafka
}

fn valid_topic_name(name: &str) -> bool {
    (1..=249).contains(&name.len())
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

fn content(errors: &mut Errors, c: RawContent, content: &mut ContentSettings) {
    content.enabled = c.enabled.unwrap_or(content.enabled);
    content.period = errors.positive("content.period", c.period, content.period);
    if let Some(eps) = c.eps {
        if eps > 0.0 && eps <= 2.0 {
            content.eps = eps;
        } else {
            errors.push("content.eps", format!("{eps} is not a distance in (0, 2]"));
        }
    }
    match c.min_points {
        Some(n) if n < 2 => errors.push("content.min_points", "must be at least 2"),
        Some(n) => content.min_points = n,
        None => {}
    }
    content.min_services =
        errors.at_least_one("content.min_services", c.min_services, content.min_services);
    content.max_points =
        errors.at_least_one("content.max_points", c.max_points, content.max_points);
    content.baseline = errors.positive("content.baseline", c.baseline, content.baseline);
    if let Some(burst) = c.min_burst {
        if burst.is_finite() && burst >= 0.0 {
            content.min_burst = burst;
        } else {
            errors.push("content.min_burst", format!("{burst} is not a factor (0 or more)"));
        }
    }
    let weights = [
        ("content.alertname_weight", c.alertname_weight, &mut content.alertname_weight),
        ("content.label_weight", c.label_weight, &mut content.label_weight),
        ("content.volatile_weight", c.volatile_weight, &mut content.volatile_weight),
        ("content.text_weight", c.text_weight, &mut content.text_weight),
    ];
    for (path, value, slot) in weights {
        match value {
            Some(w) if !(w >= 0.0 && w.is_finite()) => {
                errors.push(path, format!("{w} is not a weight (0 or more)"));
            }
            Some(w) => *slot = w,
            None => {}
        }
    }
    if let Some(labels) = c.volatile_labels {
        content.volatile_labels = labels;
    }
}

fn live(errors: &mut Errors, l: RawLive) -> LiveSettings {
    let mut live = LiveSettings::default();
    live.checkpoint_interval = errors.positive(
        "live.checkpoint_interval",
        l.checkpoint_interval,
        live.checkpoint_interval,
    );
    live.idle_advance = l.idle_advance.map_or(live.idle_advance, |d| d.0);
    live.shutdown_timeout =
        errors.positive("live.shutdown_timeout", l.shutdown_timeout, live.shutdown_timeout);
    live.state_file = match l.state_file {
        Some(path) if path.trim().is_empty() => None,
        Some(path) => Some(path.into()),
        None => None,
    };
    live
}

fn receiver(errors: &mut Errors, r: RawReceiver) -> ReceiverSettings {
    let mut receiver = ReceiverSettings::default();
    if let Some(listen) = r.listen {
        if !listen.is_empty() && listen.parse::<std::net::SocketAddr>().is_err() {
            errors
                .push("receiver.listen", format!("{listen:?} is not an address like 0.0.0.0:9097"));
        } else {
            receiver.listen = listen;
        }
    }
    receiver.bearer_token = match (r.bearer_token_file, r.bearer_token_env) {
        (Some(_), Some(_)) => {
            errors.push("receiver", "set bearer_token_file or bearer_token_env, not both");
            None
        }
        (Some(file), None) => Some(Secret::File(file.into())),
        (None, Some(env)) => Some(Secret::Env(env)),
        (None, None) => None,
    };
    receiver.max_body_bytes =
        errors.at_least_one("receiver.max_body_bytes", r.max_body_bytes, receiver.max_body_bytes);
    receiver.domain_labels =
        errors.labels("receiver.domain_labels", r.domain_labels, receiver.domain_labels);
    receiver.ack_timeout =
        errors.positive("receiver.ack_timeout", r.ack_timeout, receiver.ack_timeout);
    receiver
}

/// Catalog entries as the topology takes them; an entry without a tier
/// gets the least critical one.
fn services(errors: &mut Errors, raw: Vec<RawService>, tiers: usize) -> Vec<ServiceSpec> {
    let tiers = tiers.max(1);
    raw.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let tier = s.tier.unwrap_or(tiers as u8);
            if tier == 0 || usize::from(tier) > tiers {
                errors.push(
                    format!("services[{i}].tier"),
                    format!(
                        "{tier} is not a tier: use 1..={tiers} (one per severity.tier_weights)"
                    ),
                );
            }
            ServiceSpec {
                name: s.name,
                aliases: s.aliases,
                depends_on: s.depends_on,
                tier,
                user_facing: s.user_facing,
                owner: s.owner,
                runbook: s.runbook,
            }
        })
        .collect()
}

fn cycle_warnings(topology: &Topology) -> Vec<String> {
    topology
        .cycles()
        .iter()
        .map(|cycle| {
            let names: Vec<&str> = cycle.iter().map(|&id| topology.name(id)).collect();
            format!(
                "dependency cycle: {} (allowed; root causes inside it are ranked by reach)",
                names.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(yaml: &str) -> Vec<String> {
        match crate::parse(yaml) {
            Ok(_) => vec![],
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let config = crate::parse("").ok();
        assert_eq!(config.map(|c| (*c.settings).clone()), Some(Settings::default()));
    }

    #[test]
    fn the_reference_config_parses_and_spells_out_the_defaults() {
        let text = include_str!("../../../config/triage.yaml");
        let config = match crate::parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(*config.settings, Settings::default());
        assert_eq!(config.input, InputLimits::default());
        assert_eq!(config.live, LiveSettings::default());
        assert_eq!(config.kafka, KafkaSettings::default());
        assert_eq!(config.receiver, ReceiverSettings::default());
        assert_eq!(config.responders, crate::ResponderSettings::default());
        assert!(config.topology.len() >= 25, "a realistic shop: {}", config.topology.len());
    }

    #[test]
    fn every_semantic_error_is_reported_at_once_with_its_place() {
        let yaml = r#"
services:
  - name: checkout
    depends_on: [payment, paymnt]
    tier: 7
  - name: payment
  - name: checkout
grouping:
  window: 0s
  max_hops: 9
declare:
  persist_min_severity: loud
severity:
  p2: { min_blast_score: 100 }
"#;
        assert_eq!(
            errors_of(yaml),
            [
                "grouping.window: must be longer than zero",
                "grouping.max_hops: 9 is too far to mean related (0..=6)",
                "declare.persist_min_severity: \"loud\" is not one of info, warning, error, \
                 critical",
                "severity.p2.min_blast_score: must not exceed p1's, or P1 could never be reached",
                "services[0].tier: 7 is not a tier: use 1..=3 (one per severity.tier_weights)",
                "services[2]: name \"checkout\" is already used by services[0]",
                "services[0].depends_on[1]: \"checkout\" depends on \"paymnt\", which is not in \
                 the catalog",
            ]
        );
    }

    #[test]
    fn unknown_fields_and_bad_durations_are_syntax_errors_with_a_location() {
        let unknown = errors_of("grouping:\n  windw: 5m\n");
        assert_eq!(unknown.len(), 1);
        assert!(unknown[0].contains("windw"), "{unknown:?}");
        let duration = errors_of("grouping:\n  window: 5 minutes\n");
        assert!(duration[0].contains("not a duration"), "{duration:?}");
    }

    #[test]
    fn kafka_and_receiver_errors_name_their_place() {
        let yaml = r#"
kafka:
  brokers: "b:9092"
  topics: {alerts: "bad topic", incidents: same, dead_letters: same}
  producer: {enable.idempotence: "false"}
live:
  checkpoint_interval: 0s
receiver:
  listen: nowhere
  bearer_token_file: /a
  bearer_token_env: B
  domain_labels: []
"#;
        let errors = errors_of(yaml);
        for expected in [
            "kafka.topics.alerts",
            "topic \"same\" is named twice",
            "live.checkpoint_interval",
            "kafka.producer.enable.idempotence",
            "receiver.listen",
            "not both",
            "receiver.domain_labels",
        ] {
            assert!(errors.iter().any(|e| e.contains(expected)), "{expected}: {errors:?}");
        }
        assert_eq!(errors.len(), 7, "{errors:?}");
        let config = crate::parse("kafka: {brokers: \" h:1 \"}\n").ok();
        assert_eq!(config.map(|c| c.kafka.brokers), Some("h:1".to_owned()));
    }

    #[test]
    fn responders_are_validated_with_their_place() {
        let yaml = r#"
services:
  - {name: db, owner: team-dba}
responders:
  delivery: {max_attempts: 0, timeout: 0s}
  pagerduty:
    - {name: dba, routing_key_env: PD_DBA, teams: [team-dba], min_severity: P2}
    - {name: nokey}
    - {name: dba, routing_key_file: /k, hmac_key_env: X}
  slack:
    - {name: chat, webhook_url_env: SLACK, min_severity: P9, teams: [team-ghost]}
  webhooks:
    - {name: itsm, url: "ftp://x"}
    - {name: noc, url: "https://noc.example/hook", hmac_key_file: /h}
"#;
        let errors = errors_of(yaml);
        for expected in [
            "responders.delivery.max_attempts",
            "responders.delivery.timeout",
            "responders.pagerduty[1]: needs routing_key_file or routing_key_env",
            "responders.pagerduty[2].hmac_key: does not apply to pagerduty",
            "responders.slack[0].min_severity",
            "responders.webhooks[0].url",
            "responder name \"dba\" is used twice",
        ] {
            assert!(errors.iter().any(|e| e.contains(expected)), "{expected}: {errors:?}");
        }
        assert_eq!(errors.len(), 7, "{errors:?}");
        let good = r#"
services:
  - {name: db, owner: team-dba}
responders:
  pagerduty:
    - {name: dba, routing_key_env: PD_DBA, teams: [team-dba], min_severity: P2}
  slack:
    - {name: chat, webhook_url_env: SLACK, teams: [team-ghost]}
  webhooks:
    - {name: noc, url: "https://noc.example/hook", hmac_key_file: /h}
"#;
        let config = crate::parse(good).unwrap_or_else(|e| panic!("{e}"));
        let targets = &config.responders.targets;
        let kinds: Vec<&str> = targets.iter().map(|t| t.kind.label()).collect();
        assert_eq!(kinds, ["pagerduty", "slack", "webhook"]);
        assert_eq!(targets[0].min_severity, triage_model::Priority::P2);
        assert!(matches!(&targets[0].kind, crate::TargetKind::PagerDuty { url, .. }
            if url == crate::PAGERDUTY_EVENTS_URL));
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert!(config.warnings[0].contains("team-ghost"));
    }

    #[test]
    fn a_secret_is_read_from_its_source_and_never_shown() {
        let secret = Secret::Env("TRIAGE_TEST_SECRET_THAT_IS_NOT_SET".into());
        let error = secret.read().err().unwrap_or_default();
        assert!(error.contains("TRIAGE_TEST_SECRET_THAT_IS_NOT_SET is not set"), "{error}");
        let dir = std::env::temp_dir().join(format!("triage-secret-{}", std::process::id()));
        let _ = std::fs::write(&dir, "s3cr3t\n");
        let file = Secret::File(dir.clone());
        assert_eq!(file.read().ok().as_deref(), Some("s3cr3t"));
        assert!(!format!("{file:?}").contains("s3cr3t"));
        let _ = std::fs::remove_file(dir);
    }

    #[test]
    fn cycles_are_warnings_not_errors() {
        let yaml = "services:\n  - {name: a, depends_on: [b]}\n  - {name: b, depends_on: [a]}\n";
        let config = crate::parse(yaml).ok();
        let warnings = config.map(|c| c.warnings).unwrap_or_default();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].starts_with("dependency cycle: a, b"), "{warnings:?}");
    }
}
