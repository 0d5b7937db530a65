//! Small pieces every Kafka client of the service shares: waiting out a
//! full producer queue, and asking a topic's partition count.

use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseProducer, BaseRecord, ProducerContext};

use crate::error::StreamError;

/// Hands `record` to `producer`, waiting for room when its queue is full:
/// back-pressure on the broker instead of growing memory. Any other refusal
/// is returned.
pub(crate) fn send_waiting<'a, C, K, P>(
    producer: &BaseProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
) -> Result<(), KafkaError>
where
    C: ProducerContext,
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                producer.poll(Duration::from_millis(10));
            }
            Err((refused, _)) => return Err(refused),
        }
    }
}

/// Partitions of `topic`; [`StreamError::MissingTopic`] when it does not
/// exist or has none.
pub(crate) fn topic_partitions<C: ClientContext>(
    client: &Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<usize, StreamError> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| StreamError::client("metadata", e))?;
    let count = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map_or(0, |t| t.partitions().len());
    if count == 0 {
        return Err(StreamError::MissingTopic(topic.to_owned()));
    }
    Ok(count)
}
