//! Settings of the service edges: the Kafka consumer and producers, and the
//! webhook receiver. The correlator never sees these.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// `kafka:` validated. Kafka is off when `brokers` is empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaSettings {
    /// Bootstrap servers; empty runs triage standalone.
    pub brokers: String,
    /// Consumer group.
    pub group_id: String,
    /// Topic names.
    pub topics: Topics,
    /// librdkafka properties for every client.
    pub client: BTreeMap<String, String>,
    /// librdkafka properties for the consumer only.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for the producers only.
    pub producer: BTreeMap<String, String>,
}

impl KafkaSettings {
    /// Whether brokers are configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        KafkaSettings {
            brokers: String::new(),
            group_id: "triage".into(),
            topics: Topics::default(),
            client: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

/// `live:` validated: how `triage run` keeps time and state, on Kafka or
/// standalone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LiveSettings {
    /// How often state is persisted (and, on Kafka, offsets committed).
    pub checkpoint_interval: Duration,
    /// Wall time without alerts after which a correlator's clock moves on;
    /// zero turns it off.
    pub idle_advance: Duration,
    /// How long shutdown may take before giving up on a clean exit.
    pub shutdown_timeout: Duration,
    /// Standalone only: the file the correlator's state is kept in across
    /// restarts; `None` keeps it in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for LiveSettings {
    fn default() -> Self {
        LiveSettings {
            checkpoint_interval: Duration::from_secs(5),
            idle_advance: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(30),
            state_file: None,
        }
    }
}

/// Topic names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    /// Alerts in.
    pub alerts: String,
    /// Incident events out, keyed by incident id.
    pub incidents: String,
    /// Records that could not be decoded, with their reason in headers.
    pub dead_letters: String,
    /// Correlator state, one partition per alerts partition.
    pub state: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            alerts: "alerts".into(),
            incidents: "incidents".into(),
            dead_letters: "alerts-dead-letters".into(),
            state: "triage-state".into(),
        }
    }
}

/// Where a secret comes from. The value itself is read at start-up and
/// never printed: `Debug` shows the source only.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A file whose content, trimmed, is the secret.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::File(path) => write!(f, "Secret::File({})", path.display()),
            Secret::Env(name) => write!(f, "Secret::Env({name})"),
        }
    }
}

impl Secret {
    /// Reads the secret; the error names the source, never the value.
    pub fn read(&self) -> Result<String, String> {
        let value = match self {
            Secret::File(path) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?,
            Secret::Env(name) => std::env::var(name)
                .map_err(|_| format!("environment variable {name} is not set"))?,
        };
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(format!("secret from {self:?} is empty"));
        }
        Ok(value)
    }
}

/// `receiver:` validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiverSettings {
    /// Listen address, `host:port`; empty serves no HTTP at all.
    pub listen: String,
    /// The bearer token requests must carry, when set.
    pub bearer_token: Option<Secret>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Labels naming an alert's correlation domain, first present wins.
    pub domain_labels: Vec<String>,
    /// Bridge mode: how long a request waits for the broker's
    /// acknowledgement before it fails with 503.
    pub ack_timeout: Duration,
}

impl Default for ReceiverSettings {
    fn default() -> Self {
        ReceiverSettings {
            listen: "127.0.0.1:9097".into(),
            bearer_token: None,
            max_body_bytes: 4 << 20,
            domain_labels: vec!["cluster".into(), "environment".into()],
            ack_timeout: Duration::from_secs(10),
        }
    }
}
