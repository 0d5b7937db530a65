//! The configuration file as written: a mirror of the YAML with every
//! setting optional. Defaults and checks live in validation, so this layer
//! only knows the shape.

use std::collections::BTreeMap;

use serde::Deserialize;
use triage_model::DurationSpec;

use crate::{ConfigError, ConfigErrors};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The service catalog. Default: empty (every alert falls back to the
    /// label rule).
    #[serde(default)]
    pub services: Vec<RawService>,
    /// Labels naming an alert's service, in order of preference.
    /// Default: `[service, app, job, container]`.
    pub service_labels: Option<Vec<String>>,
    /// Grouping windows and rules.
    #[serde(default)]
    pub grouping: RawGrouping,
    /// When a group becomes an incident.
    #[serde(default)]
    pub declare: RawDeclare,
    /// Priority thresholds.
    #[serde(default)]
    pub severity: RawSeverity,
    /// Flap damping.
    #[serde(default)]
    pub flap: RawFlap,
    /// Resolution.
    #[serde(default)]
    pub resolve: RawResolve,
    /// Update coalescing.
    #[serde(default)]
    pub updates: RawUpdates,
    /// State bounds.
    #[serde(default)]
    pub limits: RawLimits,
    /// Content clustering.
    #[serde(default)]
    pub content: RawContent,
    /// Input bounds.
    #[serde(default)]
    pub input: RawInput,
    /// How `triage run` keeps time and state, in either mode.
    #[serde(default)]
    pub live: RawLive,
    /// The Kafka service (`triage run`). Default: no brokers, standalone.
    #[serde(default)]
    pub kafka: RawKafka,
    /// The Alertmanager webhook receiver.
    #[serde(default)]
    pub receiver: RawReceiver,
    /// Where incidents are paged: PagerDuty, Slack, webhooks.
    #[serde(default)]
    pub responders: RawResponders,
}

/// One catalog entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Unique name, as alerts carry it in a service label. Required.
    pub name: String,
    /// Other label values meaning this service. Default: none.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Services this one calls. Default: none.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// 1 (most critical) to the number of `severity.tier_weights`.
    /// Default: the least critical tier.
    pub tier: Option<u8>,
    /// Reached by users directly. Default: false.
    #[serde(default)]
    pub user_facing: bool,
    /// Owning team. Default: none.
    pub owner: Option<String>,
    /// Runbook address. Default: none.
    pub runbook: Option<String>,
}

/// `grouping:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGrouping {
    /// Join window after a group's last alert. Default: 5m.
    pub window: Option<DurationSpec>,
    /// A group accepts no alerts after this. Default: 2h.
    pub max_group_lifetime: Option<DurationSpec>,
    /// Out-of-order arrival tolerated without changing results. Default: 30s.
    pub allowed_lateness: Option<DurationSpec>,
    /// Dependency hops that link two alerting services. Default: 2.
    pub max_hops: Option<u8>,
    /// How long after a group's symptoms on a service an alert below it may
    /// still join as their likelier cause. Default: 3m.
    pub max_cause_lag: Option<DurationSpec>,
    /// Event time one dependency hop counts as when links compete.
    /// Default: 1m.
    pub hop_cost: Option<DurationSpec>,
    /// Longest topology link a warning or info may join through (0s: no
    /// bound). Default: 2m.
    pub weak_link_within: Option<DurationSpec>,
    /// Labels the fallback rule matches on. Default: `[alertname, cluster]`.
    pub fallback_group_by: Option<Vec<String>>,
}

/// `declare:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeclare {
    /// Distinct alerts that declare. Default: 5.
    pub min_alerts: Option<u32>,
    /// Alerting services that declare. Default: 3.
    pub min_services: Option<u32>,
    /// A critical alert on this tier or more critical declares; `0` turns
    /// the rule off. Default: 1.
    pub critical_max_tier: Option<u8>,
    /// A critical alert on a user-facing service declares. Default: true.
    pub critical_user_facing: Option<bool>,
    /// Still firing this long after opening declares; `0` turns it off.
    /// Default: 15m.
    pub persist_for: Option<DurationSpec>,
    /// Least severity of some alert for the services rule. Default: error.
    pub min_services_severity: Option<String>,
    /// Least severity for the persistence rule. Default: warning.
    pub persist_min_severity: Option<String>,
}

/// `severity:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSeverity {
    /// Impact weight per tier, tier 1 first. Default: `[10, 3, 1]`.
    pub tier_weights: Option<Vec<u64>>,
    /// Weight factor for user-facing services. Default: 2.
    pub user_facing_multiplier: Option<u64>,
    /// P1 thresholds. Default: blast 40, critical.
    pub p1: Option<RawLevel>,
    /// P2 thresholds. Default: blast 15, error.
    pub p2: Option<RawLevel>,
    /// P3 thresholds. Default: blast 5, info.
    pub p3: Option<RawLevel>,
}

/// One priority level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLevel {
    /// Least blast radius score.
    pub min_blast_score: Option<u64>,
    /// Least severity of the most severe alert: info|warning|error|critical.
    pub min_alert_severity: Option<String>,
}

/// `flap:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFlap {
    /// Observation period. Default: 10m.
    pub period: Option<DurationSpec>,
    /// Transitions within the period that make an alert flap; `0` turns
    /// damping off. Default: 4.
    pub max_transitions: Option<u32>,
}

/// `resolve:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResolve {
    /// Quiet time after the last alert resolved. Default: 5m.
    pub quiet_period: Option<DurationSpec>,
}

/// `updates:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpdates {
    /// Least time between two `updated` events for material changes.
    /// Default: 1m.
    pub min_interval: Option<DurationSpec>,
    /// Least time between two `updated` events for other changes.
    /// Default: 5m.
    pub refresh_interval: Option<DurationSpec>,
    /// Membership growth (percent of the last event's) that is material.
    /// Default: 25.
    pub material_growth_percent: Option<u32>,
    /// ... and in alerts. Default: 5.
    pub material_growth_min_alerts: Option<u32>,
}

/// `limits:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Groups open for joining. Default: 10000.
    pub max_open_groups: Option<usize>,
    /// Alerts held in state. Default: 2000000.
    pub max_active_alerts: Option<usize>,
    /// Alerts listed per event. Default: 100.
    pub max_alerts_listed: Option<usize>,
    /// Memory of closed alerts. Default: 1h.
    pub tombstone_retention: Option<DurationSpec>,
}

/// `input:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawInput {
    /// Longest line in bytes. Default: 1048576.
    pub max_line_bytes: Option<usize>,
    /// Labels per alert. Default: 128.
    pub max_labels: Option<usize>,
    /// Bytes per label (name plus value). Default: 4096.
    pub max_label_bytes: Option<usize>,
}

/// `kafka:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Bootstrap servers, `host:port[,host:port]`. Default: empty, which
    /// runs triage standalone.
    pub brokers: Option<String>,
    /// Consumer group. Default: `triage`.
    pub group_id: Option<String>,
    /// Topic names.
    #[serde(default)]
    pub topics: RawTopics,
    /// librdkafka properties for every client (TLS, SASL). Default: none.
    #[serde(default)]
    pub client: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only. Default: none.
    #[serde(default)]
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producers only. Default: none.
    #[serde(default)]
    pub producer: BTreeMap<String, String>,
}

/// `content:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContent {
    /// Whether content clustering runs. Default: false.
    pub enabled: Option<bool>,
    /// Event time between two clustering runs. Default: 30s.
    pub period: Option<DurationSpec>,
    /// Largest feature distance between neighbours (0..2). Default: 0.5.
    pub eps: Option<f32>,
    /// Neighbours, itself included, that make a core point. Default: 3.
    pub min_points: Option<usize>,
    /// Services a cluster's alerts must span to merge groups. Default: 3.
    pub min_services: Option<usize>,
    /// Most alerts in one run, the latest joined. Default: 2000.
    pub max_points: Option<usize>,
    /// How far back each alertname's baseline rate looks. Default: 1h.
    pub baseline: Option<DurationSpec>,
    /// Times its baseline share a cluster must be to merge. Default: 3.
    pub min_burst: Option<f32>,
    /// Weight of the `alertname`. Default: 3.
    pub alertname_weight: Option<f32>,
    /// Weight of a `name=value` label. Default: 1.
    pub label_weight: Option<f32>,
    /// Weight of a volatile label's name. Default: 0.25.
    pub volatile_weight: Option<f32>,
    /// Weight of one `summary` word. Default: 0.5.
    pub text_weight: Option<f32>,
    /// Labels counted by name only. Default: instance, pod, host, ...
    pub volatile_labels: Option<Vec<String>>,
}

/// `live:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLive {
    /// How often state is persisted (and, on Kafka, offsets committed).
    /// Default: 5s.
    pub checkpoint_interval: Option<DurationSpec>,
    /// Wall time without alerts after which a correlator's clock moves
    /// on; `0s` turns it off. Default: 1s.
    pub idle_advance: Option<DurationSpec>,
    /// How long shutdown may take. Default: 30s.
    pub shutdown_timeout: Option<DurationSpec>,
    /// Standalone only: where the correlator's state is kept across
    /// restarts. Default: none (state lives in memory only).
    pub state_file: Option<String>,
}

/// `kafka.topics:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTopics {
    /// Alerts in. Default: `alerts`.
    pub alerts: Option<String>,
    /// Incident events out. Default: `incidents`.
    pub incidents: Option<String>,
    /// Undecodable records. Default: `alerts-dead-letters`.
    pub dead_letters: Option<String>,
    /// Correlator state. Default: `triage-state`.
    pub state: Option<String>,
}

/// `receiver:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// Listen address. Default: `127.0.0.1:9097`.
    pub listen: Option<String>,
    /// File holding the bearer token requests must carry. Default: none.
    pub bearer_token_file: Option<String>,
    /// Environment variable holding the bearer token. Default: none.
    pub bearer_token_env: Option<String>,
    /// Largest accepted request body. Default: 4194304.
    pub max_body_bytes: Option<usize>,
    /// Labels naming an alert's correlation domain (the Kafka key in
    /// bridge mode), first present wins. Default: `[cluster, environment]`.
    pub domain_labels: Option<Vec<String>>,
    /// Bridge mode: how long a request waits for the broker to
    /// acknowledge its alerts before it fails with 503. Default: 10s.
    pub ack_timeout: Option<DurationSpec>,
}

/// `responders:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawResponders {
    /// Kafka mode: the consumer group reading the incidents topic.
    /// Default: `triage-responders`.
    pub group_id: Option<String>,
    /// Re-page (PagerDuty) or post (Slack) when the blast radius score grew
    /// by this many percent since last sent. Default: 50.
    pub repage_growth_percent: Option<u32>,
    /// Kafka mode: how far back a new consumer group starts paging.
    /// Default: 10m.
    pub catch_up: Option<DurationSpec>,
    /// Retries and bounds.
    #[serde(default)]
    pub delivery: RawDelivery,
    /// PagerDuty Events API v2 services.
    #[serde(default)]
    pub pagerduty: Vec<RawTarget>,
    /// Slack incoming webhooks.
    #[serde(default)]
    pub slack: Vec<RawTarget>,
    /// Generic webhooks receiving every incident event, signed.
    #[serde(default)]
    pub webhooks: Vec<RawTarget>,
}

/// `responders.delivery:`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    /// One HTTP attempt. Default: 10s.
    pub timeout: Option<DurationSpec>,
    /// Attempts before giving up. Default: 6.
    pub max_attempts: Option<u32>,
    /// Wait before the first retry, doubled each time. Default: 1s.
    pub initial_backoff: Option<DurationSpec>,
    /// Longest wait between attempts. Default: 2m.
    pub max_backoff: Option<DurationSpec>,
    /// Notifications waiting per responder; past it (standalone) new ones
    /// are dropped and counted. Default: 1000.
    pub queue: Option<usize>,
}

/// One responder of `responders.pagerduty`, `.slack` or `.webhooks`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// Unique name, used in logs and metrics. Required.
    pub name: String,
    /// Owner teams routed here; empty: the default for incidents no other
    /// responder of its kind takes by team.
    #[serde(default)]
    pub teams: Vec<String>,
    /// Least urgent priority sent here. Default: P4 (everything).
    pub min_severity: Option<String>,
    /// PagerDuty: the integration's routing key, from a file or a variable.
    pub routing_key_file: Option<String>,
    /// PagerDuty: the routing key's environment variable.
    pub routing_key_env: Option<String>,
    /// Slack: the incoming webhook URL, from a file.
    pub webhook_url_file: Option<String>,
    /// Slack: the incoming webhook URL's environment variable.
    pub webhook_url_env: Option<String>,
    /// PagerDuty: the events endpoint (default
    /// `https://events.pagerduty.com/v2/enqueue`); webhooks: where to post.
    pub url: Option<String>,
    /// Webhooks: the HMAC-SHA256 signing key, from a file.
    pub hmac_key_file: Option<String>,
    /// Webhooks: the signing key's environment variable.
    pub hmac_key_env: Option<String>,
}

/// Parses YAML text into the raw mirror.
pub fn parse(text: &str) -> Result<RawConfig, ConfigErrors> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_saphyr::from_str(text).map_err(|e| {
        ConfigErrors(vec![ConfigError { path: "file".to_owned(), message: e.to_string() }])
    })
}
