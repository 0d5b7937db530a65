//! The streaming edges of triage: the Kafka service behind `triage run`.
//!
//! - [`service`]: the consumer group, one correlator per partition, the
//!   at-least-once checkpoint protocol, dead letters and idle clocks;
//! - [`state`]: the state topic layout and recovery;
//! - [`telemetry`]: what the service logs and counts about itself.
//!
//! The correlator it drives is pure; everything here is I/O around it.
//! `docs/streaming.md` explains the design for operators.

mod client;
pub mod error;
pub mod service;
pub mod state;
pub mod telemetry;

pub use error::StreamError;
pub use service::{Control, RunSummary, run};
pub use telemetry::Telemetry;
