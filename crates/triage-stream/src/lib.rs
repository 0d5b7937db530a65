//! The live edges of triage: everything behind `triage run`.
//!
//! - [`service`]: the Kafka consumer group, one correlator per partition,
//!   the at-least-once checkpoint protocol, dead letters and idle clocks;
//! - [`state`]: the state topic layout and recovery;
//! - [`receiver`]: the Alertmanager HTTP receiver, in front of either
//!   [`standalone`] (an in-process correlator, no Kafka) or [`bridge`]
//!   (produce to the alerts topic, answer once acknowledged);
//! - [`respond`]: paging PagerDuty, Slack and webhooks, once per incident;
//! - [`telemetry`] and [`metrics`]: what the service logs and counts about
//!   itself.
//!
//! The correlator it drives is pure; everything here is I/O around it.
//! `docs/streaming.md` explains the design for operators.

pub mod bridge;
mod client;
mod clock;
pub mod error;
pub mod metrics;
pub mod receiver;
pub mod respond;
pub mod service;
pub mod standalone;
pub mod state;
pub mod telemetry;

pub use bridge::start_bridge;
pub use error::StreamError;
pub use respond::kafka::start_kafka_responders;
pub use service::{Control, RunSummary, run};
pub use standalone::{Outputs, StandaloneSummary, run_standalone};
pub use telemetry::Telemetry;
