//! What can stop the streaming service, typed so the binary can tell a
//! configuration problem from a broker problem.

use rdkafka::error::KafkaError;
use thiserror::Error;

/// A failure of the streaming service.
#[derive(Debug, Error)]
pub enum StreamError {
    /// A Kafka client call failed.
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: &'static str,
        /// The client's error.
        source: KafkaError,
    },
    /// A topic the service needs does not exist.
    #[error("topic {0:?} does not exist; create it (see docs/streaming.md)")]
    MissingTopic(String),
    /// The state topic has fewer partitions than the alerts topic.
    #[error(
        "state topic {state:?} has {state_partitions} partitions, fewer than the \
         {alerts_partitions} of {alerts:?}"
    )]
    StatePartitions {
        /// The state topic.
        state: String,
        /// Its partitions.
        state_partitions: usize,
        /// The alerts topic.
        alerts: String,
        /// Its partitions.
        alerts_partitions: usize,
    },
    /// A record could not be delivered: nothing past it may be committed.
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// State could not be serialized.
    #[error("cannot serialize state: {0}")]
    Snapshot(serde_json::Error),
    /// The state topic holds something recovery cannot use.
    #[error("state partition {partition} offset {offset}: {message}")]
    CorruptState {
        /// State partition.
        partition: i32,
        /// Offset of the record.
        offset: i64,
        /// What is wrong.
        message: String,
    },
    /// A snapshot does not fit this configuration.
    #[error("state of partition {partition} cannot be restored: {message}")]
    Restore {
        /// Alerts partition.
        partition: i32,
        /// Why.
        message: String,
    },
    /// The receiver could not start (its token, its runtime).
    #[error("receiver: {0}")]
    Receiver(String),
    /// The receiver's address could not be bound or served.
    #[error("receiver on {address}: {source}")]
    Bind {
        /// `receiver.listen`.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// The standalone state file could not be read or written.
    #[error("state file {}: {message}", path.display())]
    StateFile {
        /// `live.state_file`.
        path: std::path::PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Standalone events or rejects could not be written.
    #[error("cannot write output: {0}")]
    Output(std::io::Error),
    /// A responder could not start (its secret, the HTTP client).
    #[error("responders: {0}")]
    Responder(String),
    /// Shutdown did not finish within its bound.
    #[error("shutdown did not finish within {0:?}")]
    ShutdownTimeout(std::time::Duration),
}

impl StreamError {
    pub(crate) fn client(what: &'static str, source: KafkaError) -> StreamError {
        StreamError::Client { what, source }
    }

    pub(crate) fn corrupt(partition: i32, offset: i64, message: String) -> StreamError {
        StreamError::CorruptState { partition, offset, message }
    }
}
