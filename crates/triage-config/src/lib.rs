//! The configuration file: parsed into a raw mirror of the YAML, then
//! validated into the settings the engine trusts.
//!
//! Parsing ([`raw`]) rejects unknown fields and wrong types with the YAML
//! location. Validation ([`validate`]) then reports every semantic error at
//! once, each with its path (`services[3].depends_on[1]`, `grouping.window`),
//! and lists warnings that do not stop the engine (dependency cycles).
//! `config/triage.yaml` is the commented reference; a test parses it and
//! checks that every value it spells out is the built-in default.

pub mod raw;
mod responders;
mod stream;
mod validate;

pub use responders::{
    DeliverySettings, PAGERDUTY_EVENTS_URL, ResponderSettings, Target, TargetKind,
};
pub use stream::{KafkaSettings, LiveSettings, ReceiverSettings, Secret, Topics};

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use triage_correlate::Settings;
use triage_formats::DecodeLimits;
use triage_topology::{ServiceSpec, Topology};

pub use validate::validate;

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Correlation settings.
    pub settings: Arc<Settings>,
    /// The service catalog as given.
    pub services: Vec<ServiceSpec>,
    /// The built dependency graph.
    pub topology: Arc<Topology>,
    /// Input bounds.
    pub input: InputLimits,
    /// How `triage run` keeps time and state.
    pub live: LiveSettings,
    /// The Kafka service.
    pub kafka: KafkaSettings,
    /// The webhook receiver.
    pub receiver: ReceiverSettings,
    /// Where incidents are paged.
    pub responders: ResponderSettings,
    /// Things worth knowing that do not stop the engine.
    pub warnings: Vec<String>,
}

/// Bounds applied while reading input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputLimits {
    /// Longest accepted line; longer ones are rejected and skipped.
    pub max_line_bytes: usize,
    /// Per-alert bounds.
    pub decode: DecodeLimits,
}

impl Default for InputLimits {
    fn default() -> Self {
        InputLimits { max_line_bytes: 1 << 20, decode: DecodeLimits::default() }
    }
}

/// One problem with the configuration and where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: a YAML path such as `grouping.window`, or `file` for syntax.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        writeln!(f, "{count} configuration error{}:", if count == 1 { "" } else { "s" })?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates configuration text.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let raw = raw::parse(text)?;
    validate(raw)
}

/// Reads, parses and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            message: format!("cannot read: {e}"),
        }])
    })?;
    parse(&text)
}
